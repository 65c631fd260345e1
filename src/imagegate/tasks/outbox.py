"""What a task's end writes, in the transaction that ends it (called by ``end_task``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import Base, Task, WebhookDelivery
from imagegate.db.writer import Tx


class EventType(StrEnum):
    COMPLETED = "task.completed"  # images stored and charged
    FAILED = "task.failed"  # ended without images, released
    CANCELED = "task.canceled"  # the client gave up on it, released


class DeliveryState(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or being sent under a lease)
    SUCCEEDED = "succeeded"  # a 2xx came back
    FAILED = "failed"  # retried for the whole window without a 2xx


def event_type(status: str) -> EventType:
    return EventType(f"task.{status}")


def message_id(task_id: str) -> str:
    """The ``webhook-id`` of a task's end: the same for every delivery of it, so receivers
    can drop repeats."""
    return f"evt_{task_id}"


_INSERT = insert(
    Base.metadata.tables[WebhookDelivery.__tablename__]
)  # built once: the statement is compiled once and cached


async def record_end(tx: Tx, task: Task, now: datetime) -> None:
    """A delivery row if the task has a callback; nothing otherwise (``listen`` reads the task
    rows themselves), so a task without a callback pays no statement here."""
    if task.callback_url:
        await tx.run(_INSERT, _delivery(task, task.callback_url, now))


async def enqueue(session: AsyncSession, task: Task, url: str, now: datetime) -> str:
    """A new delivery of ``task``'s end to ``url``, due now: its id."""
    row = _delivery(task, url, now)
    await session.execute(_INSERT, row)
    return str(row["id"])


def _delivery(task: Task, url: str, now: datetime) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "account_id": task.account_id,
        "task_id": task.id,
        "message_id": message_id(task.id),
        "type": event_type(task.status),
        "url": url,
        "state": DeliveryState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "lease_until": None,
        "created_at": now,
        "finished_at": None,
    }


__all__ = ["DeliveryState", "EventType", "enqueue", "event_type", "message_id", "record_end"]
