"""Idempotency-Key: the same key and body within 24 h replays the task; another body is 409.

The row's primary key (account, key) is what makes it safe, not a lookup: the claim is an
INSERT ... ON CONFLICT DO NOTHING, so of two racing requests exactly one inserts and the
other (on PostgreSQL, after waiting for the first to commit or roll back) finds its row
and replays it or gets 409. That holds with billing and limits off too, when no balance
lock serializes the account's creations.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from imagegate.db.models import Base
from imagegate.db.writer import Tx
from imagegate.errors import ConflictError, ValidationError

TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 512


def check_key(key: str | None) -> str | None:
    if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
        raise ValidationError("Idempotency-Key must be 1-512 printable characters", param="Idempotency-Key")
    return key


def request_hash(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


_RECORDS = Base.metadata.tables["idempotency_keys"]


@functools.cache
def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        upsert: Any = postgresql_insert(_RECORDS)
    elif dialect == "sqlite":
        upsert = sqlite_insert(_RECORDS)
    else:
        raise NotImplementedError(f"idempotency claims need ON CONFLICT, which {dialect} lacks here")
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT through SQLAlchemy.
    return upsert.on_conflict_do_nothing().returning(_RECORDS.c.key)


_OURS = (_RECORDS.c.account_id == bindparam("owner"), _RECORDS.c.key == bindparam("claimed_key"))
# Taken over only if expired, by a conditional UPDATE: two late requests cannot both win.
_RENEW = (
    update(_RECORDS)
    .where(*_OURS, _RECORDS.c.created_at <= bindparam("expired_at"))
    .values(
        request_hash=bindparam("new_hash"), task_id=bindparam("new_task"), created_at=bindparam("renewed_at")
    )
)
_READ = select(_RECORDS.c.request_hash, _RECORDS.c.task_id).where(*_OURS)


async def claim(tx: Tx, account_id: str, key: str, digest: str, task_id: str, now: datetime) -> str | None:
    """The task id to replay, or None when this request is new (and now owns the key)."""
    values = {
        "account_id": account_id,
        "key": key,
        "request_hash": digest,
        "task_id": task_id,
        "created_at": now,
    }
    if await tx.first(_insert(tx.dialect), values) is not None:
        return None
    ours = {"owner": account_id, "claimed_key": key}
    renew = {"expired_at": now - TTL, "new_hash": digest, "new_task": task_id, "renewed_at": now}
    if await tx.run(_RENEW, {**ours, **renew}) == 1:
        return None
    record = await tx.first(_READ, ours)
    assert record is not None  # it conflicted, is not expired, and rows are only deleted with accounts
    if record[0] != digest:
        raise ConflictError(
            "This Idempotency-Key was used with a different request body.", param="Idempotency-Key"
        )
    return str(record[1])
