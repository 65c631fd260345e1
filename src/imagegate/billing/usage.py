"""Usage reports: calls, failures and spend per day and variant."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.billing.money import micro_to_cents
from imagegate.db.models import Task
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
