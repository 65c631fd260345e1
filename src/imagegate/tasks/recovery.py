"""Find work that lost its worker, holds that outlived any task, and bytes past their time.

Safe in several processes at once: every change is a conditional UPDATE (a task is taken
over only once its lease has run out, ended only through ``end_task``), so two sweepers
racing on one database end each task once.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from imagegate.gateway import Gateway
from imagegate.tasks import store
from imagegate.tasks.ending import Fence, Outcome, end_task

INPUT_GRACE = timedelta(minutes=10)  # transient inputs outlive their task's deadline by this much

WORKER_LOST = Outcome.failed("worker_lost", "the worker running this task stopped")
TOO_OLD = Outcome.failed("timeout", "the task did not finish in time")


def task_deadline(gw: Gateway) -> timedelta:
    """The longest a task may live before its hold is given back whatever its state."""
    return timedelta(seconds=gw.settings.task_timeout_s * gw.settings.max_attempts) + INPUT_GRACE


async def recover(gw: Gateway) -> list[str]:
    """Ids to enqueue: tasks whose lease ran out with attempts left, and pending tasks that no
    queue seems to hold (older than a lease). Tasks out of attempts fail as ``worker_lost``;
    tasks older than any task may live fail as ``timeout``. Each failure releases its hold."""
    now = gw.now()
    lease = timedelta(seconds=gw.settings.lease_s)
    async with gw.db.sessions() as session:
        expired = await store.lease_expired(session, now)
        stale = await store.active_before(session, now - task_deadline(gw))
        waiting = await store.pending_ids(session, created_before=now - lease)
    to_run = list(waiting)
    for task in expired:
        if task.attempts < gw.settings.max_attempts:
            to_run.append(task.id)  # claim() takes it over: its lease has run out
        else:
            fence = Fence(attempt=task.attempts, lease_expired_at=now)
            await end_task(gw, task.id, WORKER_LOST, fence)
    for task in stale:
        await end_task(gw, task.id, TOO_OLD)
    stale_ids = {task.id for task in stale}
    return [task_id for task_id in dict.fromkeys(to_run) if task_id not in stale_ids]


async def sweep_expired(gw: Gateway) -> int:
    """Delete outputs past retention, partial images and input files past their time; the task
    rows stay (their links answer 410). Returns what this sweep deleted.

    Safe in several processes at once: bytes are deleted before their record is marked or
    removed (a delete of what is gone is a no-op, so a crash in between only repeats it), and
    each record is marked by one conditional statement, so racing sweepers count each once.
    No transaction is held while files are deleted.
    """
    now = gw.now()
    async with gw.db.sessions() as session:
        outputs = [
            (task.id, [image["key"] for image in task.images])
            for task in await store.expired_outputs(session, now)
        ]
        files = [(record.id, record.key) for record in await store.expired_files(session, now)]
    removed = 0
    for task_id, keys in outputs:
        await _delete(gw, keys)
        async with gw.db.transaction() as session:
            if await store.mark_outputs_deleted(session, task_id, now):
                removed += len(keys)
    if files:
        await _delete(gw, [key for _, key in files])
        async with gw.db.transaction() as session:
            removed += await store.forget_files(session, [file_id for file_id, _ in files])
    return removed


async def _delete(gw: Gateway, keys: list[str]) -> None:
    for key in keys:
        with contextlib.suppress(Exception):  # kept by its record: the next sweep tries again
            await gw.storage.delete(key)


__all__ = ["INPUT_GRACE", "recover", "sweep_expired", "task_deadline"]
