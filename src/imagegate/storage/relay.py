"""Hand a finished run from the worker to the OpenAI face waiting in this process.

The worker has the image in memory when it stores it; an OpenAI face call that wants
``b64_json`` would otherwise read the bytes back from storage (a thread hop and a 2 MB read)
and encode them. Instead the worker leaves the images here, keyed by the stored object's key,
and the face takes them once: the upstream's own base64 when it sent one (relayed as it came,
never encoded again), else the bytes, encoded on the way out. The end leaves the ended task
with them, so the face woken by the end event does not read it back either.

Only runs a face in this process is waiting for are kept (``waiting``), and they go when that
face stops waiting, answered or not: a client that hung up leaves nothing behind. It is a
process-local shortcut: a face in another process, or an entry evicted by the size bound,
finds nothing and reads storage as before. The keys make it safe: a stale entry (a run that
lost its task) names keys the task lacks.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pybase64

from imagegate.db.models import Task
from imagegate.providers.base import GeneratedImage

MAX_BYTES = 128 * 1024 * 1024  # ~40 answers of 2 MB waiting at once; older ones are dropped


def _size(image: GeneratedImage) -> int:
    return len(image.data) + (len(image.b64) if image.b64 is not None else 0)


@dataclass
class _Run:
    images: dict[str, GeneratedImage]  # by stored key
    task: Task | None = field(default=None)  # as it ended, once the end committed

    @property
    def size(self) -> int:
        return sum(map(_size, self.images.values()))


class Relay:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Run] = OrderedDict()
        self._bytes = 0
        self._waiting: Counter[str] = Counter()  # task id -> faces in this process waiting for it

    @contextmanager
    def waiting(self, task_id: str) -> Iterator[None]:
        """While a face waits for the task: its run is kept for it; dropped when the last one leaves."""
        self._waiting[task_id] += 1
        try:
            yield
        finally:
            self._waiting[task_id] -= 1
            if self._waiting[task_id] <= 0:
                del self._waiting[task_id]
                self._pop(task_id)

    def keep(self, task_id: str, stored: Sequence[dict[str, Any]], images: Sequence[GeneratedImage]) -> None:
        """Leave a finished run's images for the face waiting for it (if one is)."""
        if task_id not in self._waiting:
            return
        entry = _Run({item["key"]: image for item, image in zip(stored, images, strict=True)})
        size = entry.size
        if not entry.images or size > self.max_bytes:
            return
        self.drop(task_id)
        self._entries[task_id] = entry
        self._bytes += size
        while self._bytes > self.max_bytes and self._entries:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size

    def ended(self, task: Task) -> None:
        """The task as its end committed, for a run this relay holds (before the end is published)."""
        entry = self._entries.get(task.id)
        if entry is not None:
            entry.task = task

    def ended_task(self, task_id: str, account_id: str) -> Task | None:
        """The ended task, when this process ended the run it holds (else None: read it)."""
        entry = self._entries.get(task_id)
        task = entry.task if entry is not None else None
        return task if task is not None and task.account_id == account_id else None

    def take(self, task_id: str) -> dict[str, bytes | str | memoryview]:
        """The stored key -> base64 (ASCII) of the task's images, once; empty when there is none."""
        entry = self._pop(task_id)
        # SIMD base64: ~0.1 ms for 2 MB on the loop, cheaper than a thread hop
        images = entry.images.items() if entry is not None else ()
        return {
            key: pybase64.b64encode(image.data) if image.b64 is None else image.b64 for key, image in images
        }

    def drop(self, task_id: str) -> None:
        """Forget the task's run."""
        self._pop(task_id)

    def _pop(self, task_id: str) -> _Run | None:
        entry = self._entries.pop(task_id, None)
        if entry is not None:
            self._bytes -= entry.size
        return entry


__all__ = ["Relay"]
