"""Tail an account's task ends for ``imagegate listen``, each signed like a delivery.

The task rows themselves are the source (indexed by account, ``completed_at``, id), so a task
end costs no extra write, a listener on any replica sees ends made by a worker anywhere, and a
reconnect with ``Last-Event-ID`` resumes where it stopped. An event's id is its position:
``<completed_at in unix microseconds>-<task id>``.

``completed_at`` is stamped before the ending transaction commits, so two ends can become
visible out of that order (two processes, or PostgreSQL). The reader therefore keeps a low
mark that it only moves past ends older than ``SETTLE``, and skips the tasks above it that it
has already sent: nothing is skipped or repeated.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from imagegate.db.models import Task
from imagegate.gateway import Gateway
from imagegate.tasks import outbox
from imagegate.webhooks import payload, secrets, signing, store
from imagegate.webhooks.store import Cursor

SETTLE = timedelta(seconds=10)  # longer than any ending transaction stays open
BATCH = 100
MAX_UNSETTLED = 1000  # tasks kept above the low mark; beyond this the mark moves on regardless
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BEGINNING: Cursor = (EPOCH, "")
_EVENT_ID = re.compile(r"^(\d{1,20})-([0-9a-f-]{0,36})$")


@dataclass(frozen=True)
class Signed:
    """An end as ``listen`` forwards it: the exact body, and the headers that sign it."""

    event_id: str
    type: str
    webhook_id: str
    headers: dict[str, str]
    body: str


def event_id(cursor: Cursor) -> str:
    at, task_id = cursor
    return f"{(at - EPOCH) // timedelta(microseconds=1)}-{task_id}"


def parse_event_id(value: str) -> Cursor | None:
    found = _EVENT_ID.match(value.strip())
    if found is None:
        return None
    return EPOCH + timedelta(microseconds=int(found[1])), found[2]


async def start_after(gw: Gateway, account_id: str, last_event_id: str | None) -> Cursor:
    """Where a stream begins: after ``Last-Event-ID`` when resuming, else after the newest end."""
    resumed = parse_event_id(last_event_id) if last_event_id else None
    if resumed is not None:
        return resumed
    async with gw.db.sessions() as session:
        return await store.latest_end(session, account_id) or BEGINNING


async def tail(gw: Gateway, account_id: str, after: Cursor, base_url: str) -> AsyncIterator[Signed]:
    """The account's task ends after ``after``, as they come, forever (the caller stops it)."""
    low, sent = after, dict[str, Cursor]()
    while True:
        async with gw.db.sessions() as session:
            ended = await store.ends_after(session, account_id, low, sent.keys(), BATCH)
        keys = await secrets.signing_keys(gw, account_id) if ended else []
        for task in ended:
            assert task.completed_at is not None
            sent[task.id] = (task.completed_at, task.id)
            yield _signed(gw, task, base_url, keys)
        settled = gw.now() - SETTLE
        low = max([low, *(c for c in sent.values() if c[0] <= settled)])
        if len(sent) > MAX_UNSETTLED:
            low = max(low, sorted(sent.values())[-MAX_UNSETTLED])
        sent = {task_id: c for task_id, c in sent.items() if c > low}
        if len(ended) < BATCH:
            await asyncio.sleep(gw.settings.webhook_listen_poll_s)


def _signed(gw: Gateway, task: Task, base_url: str, keys: list[str]) -> Signed:
    assert task.completed_at is not None
    body = payload.body(gw, task, base_url)
    message_id = outbox.message_id(task.id)
    headers = signing.headers(keys, message_id, body)
    kind = outbox.event_type(task.status)
    return Signed(event_id((task.completed_at, task.id)), kind, message_id, headers, body.decode())


__all__ = ["BEGINNING", "Signed", "event_id", "parse_event_id", "start_after", "tail"]
