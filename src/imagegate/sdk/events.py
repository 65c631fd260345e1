"""Typed events of a task, as ``client.tasks.stream(task_id)`` yields them.

They mirror the gateway's event stream (``GET /api/v1/tasks/{id}/events``): a status change,
progress (0..1), a partial image, and the end (completed, failed or canceled) carrying the
whole task. When the gateway has no event stream, the polling fallback makes the status and
end events itself (``event_id`` is then None).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from imagegate.sdk.tasks import TaskBase

TaskT = TypeVar("TaskT", bound=TaskBase)
END_EVENTS = frozenset({"completed", "failed", "canceled"})


@dataclass(frozen=True, kw_only=True)
class TaskEvent:
    """What every event has: the task's id and the stream's event id (None when polled)."""

    task_id: str
    event_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class StatusEvent(TaskEvent):
    """The task moved to ``pending`` or ``processing``."""

    status: str


@dataclass(frozen=True, kw_only=True)
class ProgressEvent(TaskEvent):
    """How far the provider is, from 0 to 1."""

    progress: float


@dataclass(frozen=True, kw_only=True)
class PartialImageEvent(TaskEvent):
    """A preview of the image being drawn (``index`` counts from 0)."""

    index: int
    url: str


@dataclass(frozen=True, kw_only=True)
class TaskEndEvent(TaskEvent, Generic[TaskT]):
    """The last event: the task completed, failed or was canceled; ``task`` is all of it."""

    task: TaskT

    @property
    def status(self) -> str:
        return self.task.status


def parse(name: str, data: str, event_id: str, wrap: Any) -> TaskEvent | None:
    """The typed event for one Server-Sent Event, or None for anything the contract does not
    name (a heartbeat, an event kind from a newer gateway)."""
    if not data:
        return None
    try:
        body = json.loads(data)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    number = int(event_id) if event_id.isdigit() else None
    task_id = str(body.get("task_id") or body.get("id") or "")
    try:
        return _typed(name, body, task_id, number, wrap)
    except (KeyError, TypeError, ValueError):  # a malformed event is skipped, not a crash
        return None


def _typed(name: str, body: dict[str, Any], task_id: str, number: int | None, wrap: Any) -> TaskEvent | None:
    if name == "status":
        return StatusEvent(task_id=task_id, event_id=number, status=str(body["status"]))
    if name == "progress":
        return ProgressEvent(task_id=task_id, event_id=number, progress=float(body["progress"]))
    if name == "partial_image":
        return PartialImageEvent(
            task_id=task_id, event_id=number, index=int(body["index"]), url=str(body["url"])
        )
    if name in END_EVENTS:
        return TaskEndEvent(task_id=task_id, event_id=number, task=wrap(body))
    return None
