"""Tail an account's task-end events for ``imagegate listen``, each signed like a delivery.

Events are rows (``webhook_events``), so a listener on any replica sees ends made by a
worker anywhere, and a reconnect with ``Last-Event-ID`` resumes where it stopped. Ids come
from the database in insert order; on PostgreSQL two ending transactions can commit out of
that order, so the reader keeps a low mark it only moves past events older than
``SETTLE`` and skips the ids above it that it has already sent: nothing is skipped or repeated.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from imagegate.db.models import Task, WebhookEvent
from imagegate.gateway import Gateway
from imagegate.webhooks import outbox, payload, secrets, signing, store

SETTLE = timedelta(seconds=10)  # longer than any ending transaction stays open
BATCH = 100
MAX_UNSETTLED = 1000  # ids kept above the low mark; beyond this the mark moves on regardless


@dataclass(frozen=True)
class Signed:
    """An event as ``listen`` forwards it: the exact body, and the headers that sign it."""

    event_id: int
    type: str
    webhook_id: str
    headers: dict[str, str]
    body: str


async def start_after(gw: Gateway, account_id: str, last_event_id: str | None) -> int:
    """Where a stream begins: after ``Last-Event-ID`` when resuming, else after the newest event."""
    if last_event_id is not None and last_event_id.strip().isdigit():
        return int(last_event_id)
    async with gw.db.sessions() as session:
        return await store.latest_event_id(session, account_id)


async def tail(gw: Gateway, account_id: str, after: int, base_url: str) -> AsyncIterator[Signed]:
    """The account's events after ``after``, as they come, forever (the caller stops it)."""
    low, sent = after, set[int]()
    while True:
        async with gw.db.sessions() as session:
            rows = await store.events_after(session, account_id, low, sent, BATCH)
            found = [(row, await session.get(Task, row.task_id)) for row in rows]
        keys = await secrets.signing_keys(gw, account_id) if found else []
        for row, task in found:
            sent.add(row.id)
            if task is not None:
                yield _signed(gw, row, task, base_url, keys)
        settled = gw.now() - SETTLE
        low = max([low, *(row.id for row, _ in found if row.created_at <= settled)])
        if len(sent) > MAX_UNSETTLED:
            low = max(low, sorted(sent)[-MAX_UNSETTLED])
        sent = {event_id for event_id in sent if event_id > low}
        if len(rows) < BATCH:
            await asyncio.sleep(gw.settings.webhook_listen_poll_s)


def _signed(gw: Gateway, row: WebhookEvent, task: Task, base_url: str, keys: list[str]) -> Signed:
    body = payload.body(gw, task, base_url)
    message_id = outbox.message_id(task.id)
    return Signed(row.id, row.type, message_id, signing.headers(keys, message_id, body), body.decode())


__all__ = ["Signed", "start_after", "tail"]
