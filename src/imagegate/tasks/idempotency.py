"""Idempotency-Key: the same key and body within 24 h replays the task; another body is 409.

The row's primary key (account, key) is what makes it safe, not a lookup: the claim is an
INSERT ... ON CONFLICT DO NOTHING, so of two racing requests exactly one inserts and the
other (on PostgreSQL, after waiting for the first to commit or roll back) finds its row
and replays it or gets 409. That holds with billing and limits off too, when no balance
lock serializes the account's creations.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
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


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql_insert(IdempotencyRecord)
    if dialect == "sqlite":
        return sqlite_insert(IdempotencyRecord)
    raise NotImplementedError(f"idempotency claims need ON CONFLICT, which {dialect} lacks here")


async def claim(
    session: AsyncSession, account_id: str, key: str, digest: str, task_id: str, now: datetime
) -> str | None:
    """The task id to replay, or None when this request is new (and now owns the key)."""
    values = {"account_id": account_id, "key": key, "request_hash": digest, "task_id": task_id}
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT through SQLAlchemy.
    inserted = await session.execute(
        _insert(session)
        .values(**values, created_at=now)
        .on_conflict_do_nothing()
        .returning(IdempotencyRecord.key)
    )
    if inserted.first() is not None:
        return None
    # Taken over only if expired, by a conditional UPDATE: two late requests cannot both win.
    renewed = await session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.account_id == account_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at <= now - TTL,
        )
        .values(request_hash=digest, task_id=task_id, created_at=now)
        .execution_options(synchronize_session=False)
    )
    if renewed.rowcount == 1:  # type: ignore[attr-defined]
        return None
    record = await session.get(IdempotencyRecord, (account_id, key), populate_existing=True)
    assert record is not None  # it conflicted, is not expired, and rows are only deleted with accounts
    if record.request_hash != digest:
        raise ConflictError(
            "This Idempotency-Key was used with a different request body.", param="Idempotency-Key"
        )
    return record.task_id
