"""SQL for accounts and keys. Functions take the session first and never commit."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.accounts.keys import hash_key, looks_like_key, new_key, visible_prefix
from imagegate.db.models import Account, ApiKey, Balance, utcnow
from imagegate.errors import ConflictError, NotFoundError, ValidationError


@dataclass(frozen=True)
class Principal:
    """Who is calling: the account and the key used."""

    account_id: str
    account_name: str
    key_id: str
    key_prefix: str
    tier_pinned: str | None = None
    paid_spend_micro: int = 0  # what decides the tier when none is pinned
    account_email: str | None = None


@dataclass(frozen=True)
class IssuedKey:
    key: str  # the only time the secret exists in clear
    record: ApiKey


# One @, no spaces, a dot in the domain: enough to catch typos; deliverability is not ours to judge.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_email(email: str | None) -> str | None:
    """``email`` trimmed, or None for none; a 400 when it cannot be an address."""
    if email is None:
        return None
    email = email.strip()
    if not email:
        return None
    if len(email) > 320 or not _EMAIL.match(email):
        raise ValidationError(f"email {email!r} is not an e-mail address", param="email")
    return email


async def create_account(session: AsyncSession, name: str, email: str | None = None) -> Account:
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationError("name must be 1-200 characters", param="name")
    account = Account(id=str(uuid.uuid4()), name=name, email=check_email(email), created_at=utcnow())
    session.add(account)
    try:
        await session.flush()
        # The balance row exists from the start, so the first creations' row lock never races
        # two INSERTs (PostgreSQL would fail one of them).
        session.add(Balance(account_id=account.id))
        await session.flush()
    except IntegrityError:
        raise ConflictError(f"An account named {name!r} already exists.", param="name") from None
    return account


async def get_account(session: AsyncSession, ref: str) -> Account:
    """An account by id or by name."""
    account = await session.scalar(select(Account).where((Account.id == ref) | (Account.name == ref)))
    if account is None:
        raise NotFoundError(f"No account {ref!r}.", param="account")
    return account


def set_email(account: Account, email: str | None) -> None:
    """Set (or, with None or "", clear) an account's e-mail address."""
    account.email = check_email(email)


async def list_accounts(session: AsyncSession) -> list[Account]:
    return list(await session.scalars(select(Account).order_by(Account.created_at)))


async def create_key(session: AsyncSession, account: Account, name: str | None = None) -> IssuedKey:
    key = new_key()
    record = ApiKey(
        id=str(uuid.uuid4()),
        account_id=account.id,
        prefix=visible_prefix(key),
        secret_hash=hash_key(key),
        name=name,
        created_at=utcnow(),
    )
    session.add(record)
    await session.flush()
    return IssuedKey(key=key, record=record)


async def list_keys(session: AsyncSession, account: Account) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.account_id == account.id).order_by(ApiKey.created_at)
    return list(await session.scalars(query))


async def revoke_key(session: AsyncSession, prefix: str, account_id: str | None = None) -> ApiKey:
    query = select(ApiKey).where(ApiKey.prefix == prefix)
    if account_id is not None:
        query = query.where(ApiKey.account_id == account_id)
    record = await session.scalar(query)
    if record is None:
        raise NotFoundError(f"No key with prefix {prefix!r}.", param="prefix")
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    return record


async def authenticate(session: AsyncSession, key: str) -> Principal | None:
    if not looks_like_key(key):
        return None
    row = (
        await session.execute(
            select(ApiKey, Account, Balance.spent_paid_micro)
            .join(Account, Account.id == ApiKey.account_id)
            .outerjoin(Balance, Balance.account_id == Account.id)
            .where(ApiKey.secret_hash == hash_key(key), ApiKey.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    record, account, spent = row
    return Principal(
        tier_pinned=account.tier_pinned,
        paid_spend_micro=int(spent or 0),
        account_id=account.id,
        account_name=account.name,
        account_email=account.email,
        key_id=record.id,
        key_prefix=record.prefix,
    )


async def pin_tier(session: AsyncSession, account: Account, tier: str | None, known: list[str]) -> None:
    if tier is not None and tier not in known:
        raise ValidationError(f"tier must be one of: {', '.join(known)}", param="tier")
    account.tier_pinned = tier
