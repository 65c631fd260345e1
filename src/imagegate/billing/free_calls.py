"""Free first calls: N per variant per account, used before paid credits, given back on failure."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import Base, FreeCallUsage
from imagegate.db.writer import Tx

_USAGE = Base.metadata.tables["free_call_usage"]


def used_of(account_id: str | ColumnElement[str], variant: str | ColumnElement[str]) -> ScalarSelect[int]:
    """The free calls used on a variant (NULL when none yet), to read under the balance lock."""
    return (
        select(_USAGE.c.used)
        .where(_USAGE.c.account_id == account_id, _USAGE.c.variant == variant)
        .scalar_subquery()
    )


def left(used: int | None, allowance: int) -> bool:
    """Whether a free call is left, from ``used_of``'s value: once spent, no statement is needed."""
    return allowance > 0 and (used or 0) < allowance


@functools.cache
def _claim_statement(dialect: str) -> Any:
    upsert = postgresql_insert(_USAGE) if dialect == "postgresql" else sqlite_insert(_USAGE)
    return upsert.on_conflict_do_update(
        index_elements=[_USAGE.c.account_id, _USAGE.c.variant],
        set_={"used": _USAGE.c.used + 1},
        where=_USAGE.c.used < bindparam("allowance"),
    ).returning(_USAGE.c.used)


async def claim(tx: Tx, account_id: str, variant: str, allowance: int) -> bool:
    """Use one free call if any is left (one upsert). Call with the account's balance row locked."""
    if allowance <= 0:
        return False
    statement = _claim_statement(tx.dialect)
    values = {"account_id": account_id, "variant": variant, "used": 1, "allowance": allowance}
    return await tx.first(statement, values) is not None


_GIVE_BACK = (
    update(_USAGE)
    .where(
        _USAGE.c.account_id == bindparam("owner"),
        _USAGE.c.variant == bindparam("used_variant"),
        _USAGE.c.used > 0,
    )
    .values(used=_USAGE.c.used - 1)
)


async def give_back(tx: Tx, account_id: str, variant: str) -> None:
    await tx.run(_GIVE_BACK, {"owner": account_id, "used_variant": variant})


async def used(session: AsyncSession, account_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(FreeCallUsage.variant, FreeCallUsage.used).where(FreeCallUsage.account_id == account_id)
    )
    return {variant: count for variant, count in rows}
