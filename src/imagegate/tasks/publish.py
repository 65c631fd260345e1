"""What a task tells the bus: its status, its progress, its partial images and its end.

Events carry only what is cheap to know where they happen (no database read): the end says
which terminal status, and each listener reads the task itself when it renders the end.
A partial image is stored first, under a record that the sweeper deletes after
``partial_retention_s``, and its event names the stored key; each face makes the URL.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from imagegate.db.models import StoredFile, Task
from imagegate.events import EventKind
from imagegate.gateway import Gateway
from imagegate.providers.base import PartialImage, Progress, ProviderEvent
from imagegate.storage.media import EXTENSIONS
from imagegate.tasks.status import TaskStatus

log = logging.getLogger("imagegate.tasks")

PARTIALS_PREFIX = "partials/"  # their records are no account's uploads (see held_files)


async def status(gw: Gateway, task_id: str, status: TaskStatus) -> None:
    await gw.bus.publish(task_id, EventKind.STATUS, {"task_id": task_id, "status": status.value})


async def ended(gw: Gateway, task_id: str, status: TaskStatus) -> None:
    await gw.bus.publish(task_id, EventKind(status.value), {"task_id": task_id, "status": status.value})


async def partial(gw: Gateway, task: Task, run_id: str, event: PartialImage) -> None:
    """Store a preview (its record commits first, so a crash leaves nothing the sweeper misses),
    then tell listeners where it is."""
    image = event.image
    key = (
        f"{PARTIALS_PREFIX}{task.id}/{run_id}-{event.index}-{event.partial_index}."
        f"{EXTENSIONS.get(image.content_type, 'bin')}"
    )
    now = gw.now()
    expires = now + timedelta(seconds=gw.settings.partial_retention_s)
    record = StoredFile(
        id=str(uuid.uuid4()),
        account_id=task.account_id,
        task_id=None,  # outlives the task's end: a late listener still fetches it, until it expires
        key=key,
        mime_type=image.content_type,
        size_bytes=len(image.data),
        created_at=now,
        expires_at=expires,
    )
    async with gw.db.transaction() as session:
        session.add(record)
    await gw.storage.put(key, image.data, image.content_type)
    await gw.bus.publish(
        task.id,
        EventKind.PARTIAL_IMAGE,
        {
            "task_id": task.id,
            "index": event.index,
            "partial_index": event.partial_index,
            "key": key,
            "expires": int(expires.timestamp()),
            "width": image.width,
            "height": image.height,
            "content_type": image.content_type,
        },
    )


class Relay:
    """Passes one run's provider events on: progress as it comes, partial images once stored."""

    def __init__(self, gw: Gateway, task: Task) -> None:
        self.gw = gw
        self.task = task
        self.run_id = uuid.uuid4().hex[:12]

    async def __call__(self, event: ProviderEvent) -> None:
        if isinstance(event, Progress):
            fraction = min(1.0, max(0.0, float(event.fraction)))
            await self.gw.bus.publish(
                self.task.id, EventKind.PROGRESS, {"task_id": self.task.id, "progress": fraction}
            )
        elif isinstance(event, PartialImage):
            try:
                await partial(self.gw, self.task, self.run_id, event)
            except Exception:  # a preview that could not be stored must not fail the task
                log.warning("task %s: could not store a partial image", self.task.id, exc_info=True)


__all__ = ["PARTIALS_PREFIX", "Relay", "ended", "partial", "status"]
