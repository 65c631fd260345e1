"""Each account's webhook signing secret, in the Standard Webhooks ``whsec_`` form.

A secret is a signing key, not a password: it is stored as it is, because every delivery
signs with it, and it is shown only to its own account (never logged). Rotation keeps the
previous secret signing alongside the new one for ``webhook_secret_grace_s``, so receivers
can switch without dropping a message (Standard Webhooks allows several signatures).
"""

from __future__ import annotations

import base64
import secrets as _random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import WebhookSecret
from imagegate.gateway import Gateway

PREFIX = "whsec_"
KEY_BYTES = 32


def new_secret() -> str:
    return PREFIX + base64.b64encode(_random.token_bytes(KEY_BYTES)).decode()


@dataclass(frozen=True)
class Keys:
    """What signs an account's webhooks now: the current secret, and the previous one while
    its grace lasts."""

    secret: str
    created_at: datetime
    previous: str | None = None
    previous_until: datetime | None = None

    @property
    def signing(self) -> list[str]:
        return [self.secret] + ([self.previous] if self.previous else [])


def _keys(row: WebhookSecret, now: datetime) -> Keys:
    if row.previous_secret and row.previous_until and row.previous_until > now:
        return Keys(row.secret, row.created_at, row.previous_secret, row.previous_until)
    return Keys(row.secret, row.created_at)


async def get(session: AsyncSession, account_id: str, now: datetime) -> Keys:
    """The account's keys, made on first use (two first uses at once agree on one)."""
    row = await session.get(WebhookSecret, account_id)
    if row is None:
        try:
            async with session.begin_nested():
                row = WebhookSecret(account_id=account_id, secret=new_secret(), created_at=now)
                session.add(row)
        except IntegrityError:  # another request made it first: use theirs
            row = await session.get(WebhookSecret, account_id, populate_existing=True)
            assert row is not None
    return _keys(row, now)


async def signing_keys(gw: Gateway, account_id: str) -> list[str]:
    """The secrets that sign the account's webhooks now."""
    return (await show(gw, account_id)).signing


async def show(gw: Gateway, account_id: str) -> Keys:
    """The account's keys (made on first use; a read otherwise)."""
    async with gw.db.sessions() as session:
        if await session.get(WebhookSecret, account_id) is not None:
            return await get(session, account_id, gw.now())
    async with gw.db.transaction() as session:
        return await get(session, account_id, gw.now())


async def renew(gw: Gateway, account_id: str) -> Keys:
    """Rotate the account's secret now."""
    grace = timedelta(seconds=gw.settings.webhook_secret_grace_s)
    async with gw.db.transaction() as session:
        return await rotate(session, account_id, gw.now(), grace)


async def rotate(session: AsyncSession, account_id: str, now: datetime, grace: timedelta) -> Keys:
    """A new current secret; the old one keeps signing for ``grace``."""
    old = await get(session, account_id, now)
    fresh = new_secret()
    await session.execute(
        update(WebhookSecret)
        .where(WebhookSecret.account_id == account_id)
        .values(
            secret=fresh,
            previous_secret=old.secret if grace > timedelta(0) else None,
            previous_until=now + grace if grace > timedelta(0) else None,
            created_at=now,
        )
    )
    row = await session.get(WebhookSecret, account_id, populate_existing=True)
    assert row is not None
    return _keys(row, now)


__all__ = ["PREFIX", "Keys", "get", "new_secret", "renew", "rotate", "show", "signing_keys"]
