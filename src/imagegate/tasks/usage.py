"""Usage reports: an account's calls and spend per day and variant; the operator's margins."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.billing.money import micro_to_cents
from imagegate.db.models import Task
from imagegate.errors import ValidationError
from imagegate.tasks.status import TaskStatus


async def daily(session: AsyncSession, account_id: str, start: date, end: date) -> list[dict[str, Any]]:
    """One row per (day, variant) with activity, days inclusive, oldest first."""
    since = datetime.combine(start, time(), tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC)
    rows = await session.execute(
        select(
            Task.created_at, Task.variant, Task.status, Task.hold_state, Task.charge_micro, Task.free_call
        ).where(Task.account_id == account_id, Task.created_at >= since, Task.created_at < until)
    )
    buckets: dict[tuple[str, str], dict[str, Any]] = {}
    for created_at, variant, status, hold_state, charge, free in rows:
        day = created_at.date().isoformat()
        bucket = buckets.setdefault(
            (day, variant),
            {
                "date": day,
                "variant": variant,
                "calls": 0,
                "completed": 0,
                "failures": 0,
                "free_calls": 0,
                "spend_micro": 0,
            },
        )
        bucket["calls"] += 1
        if status == TaskStatus.COMPLETED:
            bucket["completed"] += 1
        elif status == TaskStatus.FAILED:
            bucket["failures"] += 1
        if free:
            bucket["free_calls"] += 1
        if hold_state == "captured":
            bucket["spend_micro"] += charge
    result = sorted(buckets.values(), key=lambda b: (b["date"], b["variant"]))
    for bucket in result:
        bucket["spend_cents"] = micro_to_cents(bucket["spend_micro"])
    return result


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
    since = datetime.combine(start, time(), tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC)
    rows = await session.execute(
        select(
            Task.created_at,
            Task.model,
            Task.status,
            Task.hold_state,
            Task.charge_micro,
            Task.upstream_cost_micro,
        ).where(Task.created_at >= since, Task.created_at < until)
    )
    buckets: dict[tuple[str, str], dict[str, Any]] = {}
    for created_at, model, status, hold_state, charge, cost in rows:
        day = created_at.date().isoformat()
        bucket = buckets.setdefault(
            (day, model),
            {
                "date": day,
                "model": model,
                "calls": 0,
                "completed": 0,
                "charged_micro": 0,
                "upstream_cost_micro": 0,
            },
        )
        bucket["calls"] += 1
        if status == TaskStatus.COMPLETED:
            bucket["completed"] += 1
        if hold_state == "captured":
            bucket["charged_micro"] += charge
        bucket["upstream_cost_micro"] += cost or 0
    result = sorted(buckets.values(), key=lambda b: (b["date"], b["model"]))
    for bucket in result:
        bucket["margin_micro"] = bucket["charged_micro"] - bucket["upstream_cost_micro"]
    return result


def margin_totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows of :func:`margins` summed: date ``total``, model ``*``."""
    keys = ("calls", "completed", "charged_micro", "upstream_cost_micro", "margin_micro")
    return {"date": "total", "model": "*", **{key: sum(row[key] for row in rows) for key in keys}}
