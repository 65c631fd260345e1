"""The in-process bus: one process's tasks, their listeners and their cancel requests.

Each task has a topic: its recent events (bounded), the futures of listeners waiting for the
next one, and a count of open subscriptions. Listeners read the history by event id rather
than each holding a queue, so publishing with nobody listening is an append, and a listener
that falls behind skips only superseded progress. Topics go some minutes after their task
ended, or after a long silence, and their number is capped: memory stays bounded however many
tasks a process has run. A topic with an open subscription is never dropped.

Ids come from one counter per bus, started at the time the bus was made in microseconds: they
increase per task even when a task's topic was dropped and made again, and the ids a restarted
process gives exceed those a client saw before the restart (that would take a million events a
second), so its Last-Event-ID stays valid.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from imagegate.events.base import BusClosed, CancelHandlers, Event, EventKind, UntilTheEnd

HISTORY = 128  # events held per task; past it the oldest progress (superseded by later ones) goes
KEEP_ENDED_S = 300.0  # an ended task's history serves late reconnects this long
KEEP_IDLE_S = 3600.0  # a task silent this long (ended in another process, say) is forgotten
MAX_TOPICS = 4096  # beyond this, the least recently active topics go first
_floors = [0]  # the last floor given in this process: a bus made after another starts above it


def _floor() -> int:
    floor = max(time.time_ns() // 1000, _floors[0] + 1_000_000)
    _floors[0] = floor
    return floor


class _Topic:
    __slots__ = ("ended", "events", "last_id", "subscribers", "touched", "waiters")

    def __init__(self, floor: int, now: float) -> None:
        self.events: list[Event] = []
        self.last_id = floor
        self.waiters: list[asyncio.Future[None]] = []
        self.subscribers = 0
        self.touched = now
        self.ended = False

    def after(self, cursor: int) -> int:
        """Index of the first held event with an id above ``cursor``."""
        return bisect.bisect_right(self.events, cursor, key=lambda event: event.id)

    def append(self, event: Event) -> None:
        events = self.events
        events.append(event)
        if len(events) > HISTORY:
            # Progress is a level: dropping an old one loses nothing a later one does not say.
            oldest = next((i for i, e in enumerate(events) if e.kind is EventKind.PROGRESS), 0)
            del events[oldest]

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)


class LocalSubscription(UntilTheEnd):
    def __init__(self, bus: LocalBus, topic: _Topic, after: int | None) -> None:
        self._bus = bus
        self._topic = topic
        self._cursor = after or 0
        self._ended = False

    @property
    def last_id(self) -> int:
        return self._topic.last_id

    def backlog(self) -> list[Event]:
        topic = self._topic
        return topic.events[topic.after(self._cursor) :]

    async def get(self, wait_s: float | None = None) -> Event | None:
        topic = self._topic
        while True:
            if self._bus.closed:
                raise BusClosed
            index = topic.after(self._cursor)
            if index < len(topic.events):
                event = topic.events[index]
                self._cursor = event.id
                return event
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            topic.waiters.append(future)
            if wait_s is None:
                await future
                continue
            done, _ = await asyncio.wait((future,), timeout=wait_s)
            if not done:
                future.cancel()
                if future in topic.waiters:
                    topic.waiters.remove(future)
                return None


class LocalBus:
    def __init__(
        self,
        *,
        keep_ended_s: float = KEEP_ENDED_S,
        keep_idle_s: float = KEEP_IDLE_S,
        max_topics: int = MAX_TOPICS,
        now: Callable[[], float] = time.monotonic,
        id_floor: int | None = None,
    ) -> None:
        self.keep_ended_s = keep_ended_s
        self.keep_idle_s = keep_idle_s
        self.max_topics = max_topics
        self._now = now
        self._last_id = _floor() if id_floor is None else id_floor  # the newest id given
        self._topics: OrderedDict[str, _Topic] = OrderedDict()  # least recently active first
        self._cancels = CancelHandlers()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        """Tasks whose history is held (for tests and the benchmark)."""
        return len(self._topics)

    async def publish(self, task_id: str, kind: EventKind, data: dict[str, Any]) -> Event:
        now = self._now()
        topic = self._topics.get(task_id)
        if topic is None:
            topic = self._topics[task_id] = _Topic(self._last_id, now)
        else:
            self._topics.move_to_end(task_id)
            topic.touched = now
        self._last_id += 1
        topic.last_id = self._last_id
        event = Event(task_id, self._last_id, kind, data)
        topic.append(event)
        if kind.terminal:
            topic.ended = True
        if topic.waiters:
            topic.wake()
        self._prune(now)
        return event

    def _prune(self, now: float) -> None:
        """Drop at most two stale topics: each publish adds at most one, so the cap holds, and
        no call ever scans the whole map."""
        topics = self._topics
        for _ in range(2):
            if not topics:
                return
            task_id, topic = next(iter(topics.items()))
            keep = self.keep_ended_s if topic.ended else self.keep_idle_s
            if now - topic.touched <= keep and len(topics) <= self.max_topics:
                return
            if topic.subscribers:
                topics.move_to_end(task_id)  # someone listens: it stays
            else:
                del topics[task_id]

    @asynccontextmanager
    async def subscribe(self, task_id: str, after: int | None = None) -> AsyncIterator[LocalSubscription]:
        if self._closed:
            raise BusClosed
        topic = self._topics.get(task_id)
        if topic is None:
            topic = self._topics[task_id] = _Topic(self._last_id, self._now())
        topic.subscribers += 1
        try:
            yield LocalSubscription(self, topic, after)
        finally:
            topic.subscribers -= 1
            if not topic.subscribers and not topic.events and self._topics.get(task_id) is topic:
                del self._topics[task_id]  # made only for this listener: nothing to keep

    async def request_cancel(self, task_id: str) -> None:
        self._cancels.stop(task_id)

    def on_cancel(self, task_id: str, stop: Callable[[], None]) -> Callable[[], None]:
        return self._cancels.add(task_id, stop)

    def close(self) -> None:
        self._closed = True
        for topic in self._topics.values():
            topic.wake()

    async def aclose(self) -> None:
        self.close()


__all__ = ["HISTORY", "LocalBus", "LocalSubscription"]
