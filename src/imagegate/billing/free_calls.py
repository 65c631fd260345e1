"""Free first calls: N per variant per account, used before paid credits, given back on failure."""

from __future__ import annotations

from sqlalchemy import ScalarSelect, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import FreeCallUsage


def used_of(account_id: str, variant: str) -> ScalarSelect[int]:
    """The free calls used on a variant (NULL when none yet), to read under the balance lock."""
    return (
        select(FreeCallUsage.used)
        .where(FreeCallUsage.account_id == account_id, FreeCallUsage.variant == variant)
        .scalar_subquery()
    )


def left(used: int | None, allowance: int) -> bool:
    """Whether a free call is left, from ``used_of``'s value: once spent, no statement is needed."""
    return allowance > 0 and (used or 0) < allowance


async def claim(session: AsyncSession, account_id: str, variant: str, allowance: int) -> bool:
    """Use one free call if any is left (one upsert). Call with the account's balance row locked."""
    if allowance <= 0:
        return False
    dialect = session.get_bind().dialect.name
    upsert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(FreeCallUsage)
    claimed = await session.execute(
        upsert.values(account_id=account_id, variant=variant, used=1)
        .on_conflict_do_update(
            index_elements=[FreeCallUsage.account_id, FreeCallUsage.variant],
            set_={"used": FreeCallUsage.used + 1},
            where=FreeCallUsage.used < allowance,
        )
        .returning(FreeCallUsage.used)
    )
    return claimed.first() is not None


async def give_back(session: AsyncSession, account_id: str, variant: str) -> None:
    await session.execute(
        update(FreeCallUsage)
        .where(
            FreeCallUsage.account_id == account_id, FreeCallUsage.variant == variant, FreeCallUsage.used > 0
        )
        .values(used=FreeCallUsage.used - 1)
        .execution_options(synchronize_session=False)
    )


async def used(session: AsyncSession, account_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(FreeCallUsage.variant, FreeCallUsage.used).where(FreeCallUsage.account_id == account_id)
    )
    return {variant: count for variant, count in rows}
