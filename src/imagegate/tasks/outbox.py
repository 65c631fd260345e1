"""What a task's end writes, in the transaction that ends it (called by ``end_task``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import Task, WebhookDelivery


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


_INSERT = insert(WebhookDelivery)  # built once: the statement is compiled once and cached


async def record_end(session: AsyncSession, task: Task, now: datetime) -> None:
    """A delivery row if the task has a callback; nothing otherwise (``listen`` reads the task
    rows themselves), so a task without a callback pays no statement here."""
    if task.callback_url:
        await enqueue(session, task, task.callback_url, now)


async def enqueue(session: AsyncSession, task: Task, url: str, now: datetime) -> str:
    """A new delivery of ``task``'s end to ``url``, due now: its id."""
    delivery_id = str(uuid.uuid4())
    row = {
        "id": delivery_id,
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
    await session.execute(_INSERT, row)
    return delivery_id


__all__ = ["DeliveryState", "EventType", "enqueue", "event_type", "message_id", "record_end"]
