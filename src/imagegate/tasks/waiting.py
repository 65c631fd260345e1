"""Listening for a task: its next event on the bus, with one slow safety net.

An in-process bus hears only the ends made in its own process; on the embedded profile a task
taken over by another process (after this one lost its lease) ends there. So a listener that
has heard nothing for a few leases reads the task once; an ended task answers for the event it
missed. Nothing is read while events arrive, and a quiet listener costs one read per two
minutes (by default): 1,000 open streams make 8 reads a second.
"""

from __future__ import annotations

from imagegate.db.models import Task
from imagegate.events import Event, Subscription
from imagegate.gateway import Gateway
from imagegate.tasks import store
from imagegate.tasks.status import TaskStatus

SILENCE_LEASES = 4  # how many leases of silence before a listener reads the task itself


async def read(gw: Gateway, account_id: str, task_id: str) -> Task:
    return await store.read_for_account(gw.db, account_id, task_id)


async def next_event(gw: Gateway, events: Subscription, account_id: str, task_id: str) -> Event | Task:
    """The task's next event, or the task itself when it ended without the bus saying so.
    Raises BusClosed when the server stops."""
    while True:
        event = await events.get(gw.settings.lease_s * SILENCE_LEASES)
        if event is not None:
            return event
        task = await read(gw, account_id, task_id)
        if TaskStatus(task.status).terminal:
            return task


__all__ = ["next_event", "read"]
