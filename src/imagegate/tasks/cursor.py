"""Page cursors of the task list: the last task's (created_at, id), as url-safe base64 JSON.

A cursor comes back from the client, so decoding trusts nothing: any text that is not
exactly a cursor this server could have made answers the same 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime

from imagegate import safejson
from imagegate.dates import parse_instant
from imagegate.db.models import Task
from imagegate.errors import ValidationError

MAX_CURSOR_CHARS = 256  # ours are about 100
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_TASK_ID = re.compile(r"^[0-9a-f-]{1,64}$")


def encode(task: Task) -> str:
    raw = json.dumps([task.created_at.isoformat(), task.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, param: str = "after") -> tuple[datetime, str]:
    refused = ValidationError("cursor is not one this server gave out", param=param)
    if len(cursor) > MAX_CURSOR_CHARS or not _BASE64URL.match(cursor):
        raise refused
    try:
        value = safejson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created, task_id = value if isinstance(value, list) and len(value) == 2 else (None, None)
        if not isinstance(task_id, str) or not _TASK_ID.match(task_id):
            raise refused
        return parse_instant(created, param), task_id
    except (binascii.Error, ValidationError):
        raise refused from None
