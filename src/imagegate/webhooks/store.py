"""SQL for webhook deliveries, their attempts, and task ends as ``listen`` reads them. Functions take the session first and never commit."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import Task, WebhookAttempt, WebhookDelivery
from imagegate.tasks.outbox import DeliveryState


async def due(session: AsyncSession, now: datetime, limit: int) -> list[tuple[str, bool, datetime]]:
    """Pending deliveries whose next attempt is due and that no live lease holds: (id, whether
    a lease ran out on it, i.e. its last sender stopped before recording a result, created_at)."""
    rows = await session.execute(
        select(WebhookDelivery.id, WebhookDelivery.lease_until.is_not(None), WebhookDelivery.created_at)
        .where(
            WebhookDelivery.state == DeliveryState.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    return [(delivery_id, bool(lost), created) for delivery_id, lost, created in rows]


async def claim(session: AsyncSession, delivery_id: str, now: datetime, lease_until: datetime) -> int | None:
    """Take the delivery's next attempt: its number (the fence its result is written under),
    or None when another sender took it first."""
    number: int | None = await session.scalar(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.state == DeliveryState.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now),
        )
        .values(attempts=WebhookDelivery.attempts + 1, lease_until=lease_until)
        .returning(WebhookDelivery.attempts)
    )
    return number


async def finish(session: AsyncSession, delivery_id: str, number: int, values: dict[str, Any]) -> bool:
    """Write an attempt's consequence, only if no later attempt has taken the delivery over."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.attempts == number,
            WebhookDelivery.state == DeliveryState.PENDING,
        )
        .values(lease_until=None, **values)
    )
    return bool(getattr(result, "rowcount", 0))


async def pending_for_task(session: AsyncSession, task_id: str) -> WebhookDelivery | None:
    found: WebhookDelivery | None = await session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.task_id == task_id, WebhookDelivery.state == DeliveryState.PENDING)
        .limit(1)
    )
    return found


async def for_task(session: AsyncSession, task_id: str) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """A task's deliveries, oldest first, each with its attempts in order."""
    deliveries = list(
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.task_id == task_id)
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        )
    )
    attempts: dict[str, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        for attempt in await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.number)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [(d, attempts[d.id]) for d in deliveries]


Cursor = tuple[datetime, str]  # (completed_at, task id): where a listen stream stands


async def latest_end(session: AsyncSession, account_id: str) -> Cursor | None:
    """The account's most recent task end."""
    row = (
        await session.execute(
            select(Task.completed_at, Task.id)
            .where(Task.account_id == account_id, Task.completed_at.is_not(None))
            .order_by(Task.completed_at.desc(), Task.id.desc())
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row is not None and row[0] is not None else None


async def ends_after(
    session: AsyncSession, account_id: str, after: Cursor, skip: Collection[str], limit: int
) -> list[Task]:
    """The account's ended tasks past ``after`` in (completed_at, id) order, except ``skip``."""
    at, task_id = after
    query = select(Task).where(
        Task.account_id == account_id,
        Task.completed_at.is_not(None),
        or_(Task.completed_at > at, and_(Task.completed_at == at, Task.id > task_id)),
    )
    if skip:
        query = query.where(Task.id.not_in(list(skip)))
    return list(await session.scalars(query.order_by(Task.completed_at, Task.id).limit(limit)))


async def sweep(session: AsyncSession, before: datetime) -> int:
    """Delete finished deliveries, with their attempts, that finished before ``before``."""
    old = and_(WebhookDelivery.state != DeliveryState.PENDING, WebhookDelivery.finished_at < before)
    ids = list(await session.scalars(select(WebhookDelivery.id).where(old)))
    if ids:
        await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
        await session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
    return len(ids)


__all__ = [
    "Cursor",
    "claim",
    "due",
    "ends_after",
    "finish",
    "for_task",
    "latest_end",
    "pending_for_task",
    "sweep",
]
