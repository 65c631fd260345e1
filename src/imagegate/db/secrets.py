"""Secrets kept in the database, so every replica on it agrees without a shared file."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from imagegate.db.models import GatewaySecret
from imagegate.db.session import Database


def _insert(dialect: str) -> Any:
    return postgresql_insert(GatewaySecret) if dialect == "postgresql" else sqlite_insert(GatewaySecret)


async def shared_secret(db: Database, name: str, nbytes: int = 32) -> bytes:
    """The secret called ``name``, made by whichever replica asks first (the others read it)."""
    fresh = base64.b64encode(secrets.token_bytes(nbytes)).decode()
    async with db.transaction() as session:
        await session.execute(
            _insert(db.engine.dialect.name)
            .values(name=name, value=fresh, created_at=datetime.now(UTC))
            .on_conflict_do_nothing()
        )
        stored = await session.scalar(select(GatewaySecret.value).where(GatewaySecret.name == name))
    assert stored is not None
    return base64.b64decode(stored)
