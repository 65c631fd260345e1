"""Usage reports: an account's calls and spend per day and variant; the operator's margins.

Both are summed by the database (GROUP BY the UTC day), so a report costs one row per day and
group whatever the number of tasks in its window.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.billing.money import micro_to_cents
from imagegate.db.models import Task, utc_day
from imagegate.errors import ValidationError
from imagegate.tasks.status import TaskStatus


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


_CALLS = func.count()
_COMPLETED = _count(Task.status == TaskStatus.COMPLETED)
_CHARGED = func.sum(case((Task.hold_state == "captured", Task.charge_micro), else_=0))


async def _per_day(
    session: AsyncSession,
    group: Any,
    start: date,
    end: date,
    sums: dict[str, ColumnElement[Any]],
    *where: ColumnElement[bool],
) -> list[dict[str, Any]]:
    """One row per (UTC day, ``group``) with tasks created in ``start``..``end`` (inclusive),
    oldest first: ``date``, the group's column by its name, and each of ``sums``."""
    since = datetime.combine(start, time(), tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC)
    day = utc_day(Task.created_at)
    statement = (
        select(day, group, *(value.label(name) for name, value in sums.items()))
        .where(Task.created_at >= since, Task.created_at < until, *where)
        .group_by(day, group)
        .order_by(day, group)
    )
    rows = (await session.execute(statement)).all()
    return [
        {
            "date": str(row[0])[:10],  # SQLite answers the text, PostgreSQL a date
            group.key: row[1],
            **{name: int(value or 0) for name, value in zip(sums, row[2:], strict=True)},
        }
        for row in rows
    ]


async def daily(session: AsyncSession, account_id: str, start: date, end: date) -> list[dict[str, Any]]:
    """One row per (day, variant) with activity, days inclusive, oldest first."""
    sums = {
        "calls": _CALLS,
        "completed": _COMPLETED,
        "failures": _count(Task.status == TaskStatus.FAILED),
        "free_calls": _count(Task.free_call.is_(True)),
        "spend_micro": _CHARGED,
    }
    rows = await _per_day(session, Task.variant, start, end, sums, Task.account_id == account_id)
    for row in rows:
        row["spend_cents"] = micro_to_cents(row["spend_micro"])
    return rows


def report_window(
    today: date, start: date | None, end: date | None, max_days: int = 366
) -> tuple[date, date]:
    """A report's days: ``end`` defaults to today, ``start`` to 29 days before ``end``."""
    end = end or today
    start = start or end - timedelta(days=29)
    if start > end:
        raise ValidationError("from must not be after to", param="from")
    if (end - start).days >= max_days:
        raise ValidationError(f"at most {max_days} days per request", param="from")
    return start, end


async def margins(session: AsyncSession, start: date, end: date) -> list[dict[str, Any]]:
    """The operator's view, every account together: per (day, model sold) the calls, what was
    charged, what the upstream cost and the margin between them, days inclusive, oldest first.

    A task counts on the day it was created, under the model it was sold as (a retired
    model's calls cost what its successor costs upstream). Charged is what was captured;
    failed and canceled tasks charge nothing and, having produced nothing, cost nothing.
    """
    sums = {
        "calls": _CALLS,
        "completed": _COMPLETED,
        "charged_micro": _CHARGED,
        "upstream_cost_micro": func.sum(func.coalesce(Task.upstream_cost_micro, 0)),
    }
    rows = await _per_day(session, Task.model, start, end, sums)
    for row in rows:
        row["margin_micro"] = row["charged_micro"] - row["upstream_cost_micro"]
    return rows


def margin_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows of :func:`margins` summed: date ``total``, model ``*``."""
    keys = ("calls", "completed", "charged_micro", "upstream_cost_micro", "margin_micro")
    return {"date": "total", "model": "*", **{key: sum(row[key] for row in rows) for key in keys}}
