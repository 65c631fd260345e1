"""The one queue interface the gateway holds, whatever runs the tasks behind it.

Today: ``LocalQueue``, worker coroutines in each server process; tasks are claimed by a lease on
their row, so replicas on one PostgreSQL database never run a task twice, and ``enqueue`` after
the task's commit is at least once (recovery re-enqueues what a crash dropped).

The PostgreSQL job queue (procrastinate, scale profile) plugs in behind this same interface:
- deferral in the task's own transaction: ``service.submit`` would call an added
  ``async defer_in(session, task)`` just after ``_admit`` adds the row (procrastinate's
  external-connection mode on the session's psycopg connection; a no-op for LocalQueue, whose
  ``enqueue`` after the commit stays), so a task and its job commit or roll back together;
- the job is ``runner.run(gw, task_id)``, already idempotent (claims by lease, ends once through
  ``ending.end_task``), with ``queueing_lock=task_id`` and the queue named by the provider kind;
- ``start`` in an API-only process (``serve --no-worker``) starts nothing; ``imagegate worker
  --queues ...`` runs procrastinate's worker plus periodic jobs for ``recovery.sweep_expired``,
  ``recovery.recover`` and retrying stalled jobs (a worker killed with -9 leaves its job ``doing``);
- ``cancel_running`` becomes a cancel request that the running worker sees (events bus).
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

    def cancel_running(self, task_id: str) -> bool:
        """Stop the task's provider call if this process runs it."""
