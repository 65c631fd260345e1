"""The one queue interface the gateway holds, whatever runs the tasks behind it."""

from __future__ import annotations

from typing import Protocol


class Queue(Protocol):
    def enqueue(self, task_id: str) -> None:
        """Hand a committed task to a worker (at least once: runs claim the task atomically)."""

    async def start(self) -> None:
        """Recover what a previous process left and start the workers."""

    async def stop(self) -> None:
        """Stop taking work; in-flight tasks are handed back without spending an attempt."""

    async def drain(self) -> None:
        """Return once everything queued so far, and what it queued in turn, has run."""
