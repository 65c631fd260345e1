"""Free first calls: N per variant per account, used before paid credits, given back on failure."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import FreeCallUsage


async def claim(session: AsyncSession, account_id: str, variant: str, allowance: int) -> bool:
    """Use one free call if any is left. Call with the account's balance row locked."""
    if allowance <= 0:
        return False
    usage = await session.get(FreeCallUsage, (account_id, variant))
    if usage is None:
        session.add(FreeCallUsage(account_id=account_id, variant=variant, used=1))
        await session.flush()
        return True
    moved = await session.execute(
        update(FreeCallUsage)
        .where(
            FreeCallUsage.account_id == account_id,
            FreeCallUsage.variant == variant,
            FreeCallUsage.used < allowance,
        )
        .values(used=FreeCallUsage.used + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


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
