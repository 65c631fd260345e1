"""The one queue interface the gateway holds, whatever runs the tasks behind it.

- ``LocalQueue`` (embedded default): worker coroutines in each server process; ``enqueue`` after
  the task's commit, at least once (recovery re-enqueues what a crash dropped); tasks are claimed
  by a lease on their row, so replicas on one database never run a task twice.
- ``JobQueue`` (``IMAGEGATE_JOB_QUEUE=postgres``, queue/jobs.py): procrastinate jobs. It sets
  ``Gateway.defer_in_transaction``, which ``service.submit`` calls inside the task's transaction,
  so a task and its job commit or roll back together; ``enqueue`` is then a no-op. Its workers
  run in ``imagegate worker`` processes (``serve --no-worker`` only defers).
"""

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
