"""Idempotency-Key: the same key and body within 24 h replays the task; another body is 409.

The row's primary key (account, key) is what makes it safe, not a lookup; callers hold the
account's balance lock, so two racing requests with one key are serialized anyway.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import IdempotencyRecord
from imagegate.errors import ConflictError, ValidationError

TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 512


def check_key(key: str | None) -> str | None:
    if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
        raise ValidationError("Idempotency-Key must be 1-512 printable characters", param="Idempotency-Key")
    return key


def request_hash(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


async def claim(
    session: AsyncSession, account_id: str, key: str, digest: str, task_id: str, now: datetime
) -> str | None:
    """The task id to replay, or None when this request is new (and now owns the key)."""
    record = await session.get(IdempotencyRecord, (account_id, key))
    if record is not None and record.created_at > now - TTL:
        if record.request_hash != digest:
            raise ConflictError(
                "This Idempotency-Key was used with a different request body.", param="Idempotency-Key"
            )
        return record.task_id
    if record is not None:  # expired: the key is free again
        record.request_hash, record.task_id, record.created_at = digest, task_id, now
    else:
        session.add(
            IdempotencyRecord(
                account_id=account_id, key=key, request_hash=digest, task_id=task_id, created_at=now
            )
        )
    await session.flush()
    return None
