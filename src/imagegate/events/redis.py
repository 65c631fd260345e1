"""The Redis bus: every process's tasks, listeners and cancel requests, through one Redis.

Chosen when ``IMAGEGATE_REDIS_URL`` is set; it runs on the gateway's one redis-py client.

- History: a capped stream per task (``imagegate:ev:{task}``, the newest ``HISTORY`` events),
  kept ``KEEP_ENDED_S`` after the task's end and ``KEEP_IDLE_S`` after its last event otherwise.
- Publish: one script call that appends to the stream and publishes the event on one channel,
  atomically, so a listener reading the stream after its channel subscription took effect misses
  nothing and sees repeats only by id. No database read.
- Ids: the stream entry's own id ``N-0``, ``N`` = max(the task's last id + 1, Redis time in
  microseconds): increasing per task whichever process publishes, and above the ids of a
  history that expired (the in-process bus's ids are of the same kind).
- Listening: each process subscribes once, on its first listener, to the events channel, and
  hands each event to that task's subscriptions in the process: an API replica hears every
  task's events (a dictionary lookup for tasks nobody there listens to); a worker that has no
  listener hears none. After Redis comes back from a lost connection, each open subscription
  reads what it missed from the stream.
- Cancel: one channel every process subscribes to at open; a request reaches the process whose
  run registered a cancel handler for the task (its own process at once, the others by Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from imagegate.events.base import BusClosed, CancelHandlers, Event, EventKind, UntilTheEnd

log = logging.getLogger("imagegate.events")

HISTORY = 128  # events held per task, newest first kept (the stream's MAXLEN)
KEEP_ENDED_S = 300  # an ended task's history serves late reconnects this long
KEEP_IDLE_S = 3600  # a task silent this long (its process died, say) is forgotten
PENDING = 1024  # live events one slow listener may hold unread; past it old progress goes
EVENTS_CHANNEL = "imagegate:events"
CANCEL_CHANNEL = "imagegate:cancel"
SUBSCRIBE_TIMEOUT_S = 10.0
RECONNECT_S = 1.0

# KEYS[1] the task's stream; ARGV: channel, task id, kind, data (JSON), maxlen, ttl.
# Returns the event id, as text (Lua numbers are doubles: exact up to 2^53, ids are ~2^51).
_PUBLISH = """
local last = 0
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if newest[1] then last = tonumber(string.match(newest[1][1], '^(%d+)')) end
local t = redis.call('TIME')
local id = math.max(last + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
local text = string.format('%.0f', id)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[5], text .. '-0', 'k', ARGV[3], 'd', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. text .. ' ' .. ARGV[3] .. ' ' .. ARGV[4])
return text
"""


def stream_key(task_id: str) -> str:
    return f"imagegate:ev:{task_id}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry_id(entry_id: Any) -> int:
    return int(_text(entry_id).split("-", 1)[0])


def _from_entry(task_id: str, entry: Any) -> Event:
    entry_id, fields = entry
    values = {_text(k): _text(v) for k, v in fields.items()}
    return Event(task_id, _entry_id(entry_id), EventKind(values["k"]), json.loads(values["d"]))


class RedisSubscription(UntilTheEnd):
    def __init__(self, bus: RedisBus, task_id: str, after: int | None) -> None:
        self._bus = bus
        self.task_id = task_id
        self._cursor = after or 0
        self._newest = after or 0  # the newest id queued (or returned): older arrivals are repeats
        self._pending: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._floor = 0
        self._ended = False

    @property
    def last_id(self) -> int:
        return max(self._floor, self._newest)

    def push(self, event: Event) -> None:
        if event.id <= self._newest:
            return
        self._newest = event.id
        pending = self._pending
        pending.append(event)
        if len(pending) > PENDING:  # progress is a level: an old one says nothing a later one does not
            oldest = next((e for e in pending if e.kind is EventKind.PROGRESS), pending[0])
            pending.remove(oldest)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def backlog(self) -> list[Event]:
        return list(self._pending)

    async def get(self, wait_s: float | None = None) -> Event | None:
        while True:
            if self._bus.closed:
                raise BusClosed
            if self._pending:
                event = self._pending.popleft()
                self._cursor = event.id
                return event
            self._wake.clear()
            if wait_s is None:
                await self._wake.wait()
                continue
            try:
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()
            except TimeoutError:
                return None

    async def fill(self) -> None:
        """Queue what the task's stream holds after the newest id seen (open, or a reconnect)."""
        redis = self._bus.redis
        async with redis.pipeline(transaction=False) as pipe:
            start = f"({self._newest}-0" if self._newest else "-"
            pipe.time()  # first: whatever is published after it is in the read below, or above the floor
            pipe.xrange(stream_key(self.task_id), start, "+")
            (seconds, micros), entries = await pipe.execute()
        held = [_from_entry(self.task_id, entry) for entry in entries]
        # With no history, an event made up from the database takes this id: live ones exceed it.
        self._floor = max(self._floor, int(seconds) * 1_000_000 + int(micros) - 1)
        merged = sorted({e.id: e for e in [*held, *self._pending]}.values(), key=lambda e: e.id)
        self._pending = deque(e for e in merged if e.id > self._cursor)
        self._newest = max(self._newest, *(e.id for e in merged)) if merged else self._newest
        if self._pending:
            self._wake.set()


class RedisBus:
    def __init__(
        self, redis: Any, *, keep_ended_s: int = KEEP_ENDED_S, keep_idle_s: int = KEEP_IDLE_S
    ) -> None:
        self.redis = redis
        self.keep_ended_s = keep_ended_s
        self.keep_idle_s = keep_idle_s
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # this process: its own cancels come back
        self._script = redis.register_script(_PUBLISH)
        self._pubsub = redis.pubsub()
        self._reader: asyncio.Task[None] | None = None
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._listening: asyncio.Future[None] | None = None  # the events channel, once asked for
        self._subscriptions: dict[str, set[RedisSubscription]] = {}
        self._cancels = CancelHandlers()
        self._closed = False

    @classmethod
    async def open(cls, redis: Any) -> RedisBus:
        """A bus that already hears cancel requests (a run registers its handler before claiming)."""
        bus = cls(redis)
        try:
            await bus._channel(CANCEL_CHANNEL)
        except BaseException:
            await bus.aclose()
            raise
        return bus

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the connection that hears events and cancels -----------------------------------------
    async def _channel(self, channel: str) -> None:
        """Subscribe, and return once Redis confirmed it (what is published after is heard)."""
        confirmed = self._confirmed.get(channel)
        if confirmed is None:
            confirmed = self._confirmed[channel] = asyncio.get_running_loop().create_future()
            try:
                await self._pubsub.subscribe(channel)
            except BaseException:
                del self._confirmed[channel]  # the next listener asks again
                raise
            if self._reader is None:
                self._reader = asyncio.create_task(self._read(), name="redis-bus")
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
            await asyncio.shield(confirmed)

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("redis bus: connection lost (%s); listening again in %s s", exc, RECONNECT_S)
                await asyncio.sleep(RECONNECT_S)
                continue
            if message is None:
                continue
            try:
                await self._handle(message)
            except Exception:
                log.exception("redis bus: could not handle a message")

    async def _handle(self, message: dict[str, Any]) -> None:
        channel = _text(message["channel"])
        if message["type"] == "subscribe":
            confirmed = self._confirmed.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            elif channel == EVENTS_CHANNEL:  # subscribed again after a lost connection
                for held in list(self._subscriptions.values()):
                    for subscription in list(held):
                        await subscription.fill()
            return
        if message["type"] != "message":
            return
        data = _text(message["data"])
        if channel == CANCEL_CHANNEL:
            origin, _, task_id = data.partition(" ")
            if origin != self.origin:
                self._stop(task_id)
        elif channel == EVENTS_CHANNEL:
            task_id, event_id, kind, body = data.split(" ", 3)
            listening = self._subscriptions.get(task_id)
            if listening:
                event = Event(task_id, int(event_id), EventKind(kind), json.loads(body))
                for subscription in listening:
                    subscription.push(event)

    # -- the Bus protocol ---------------------------------------------------------------------
    async def publish(self, task_id: str, kind: EventKind, data: dict[str, Any]) -> Event:
        keep = self.keep_ended_s if kind.terminal else self.keep_idle_s
        args = [EVENTS_CHANNEL, task_id, kind.value, json.dumps(data, separators=(",", ":")), HISTORY, keep]
        try:
            event_id = await self._script(keys=[stream_key(task_id)], args=args)
        except Exception as exc:  # Redis away: the task goes on; listeners' safety net reads its end
            log.warning(
                "redis bus: could not publish %s of task %s (%s)", kind.value, task_id, type(exc).__name__
            )
            return Event(task_id, 0, kind, data)
        return Event(task_id, int(_text(event_id)), kind, data)

    @asynccontextmanager
    async def subscribe(self, task_id: str, after: int | None = None) -> AsyncIterator[RedisSubscription]:
        if self._closed:
            raise BusClosed
        subscription = RedisSubscription(self, task_id, after)
        self._subscriptions.setdefault(task_id, set()).add(subscription)
        try:
            await self._channel(EVENTS_CHANNEL)  # before the stream is read: nothing falls between
            await subscription.fill()
            yield subscription
        finally:
            subscriptions = self._subscriptions.get(task_id)
            if subscriptions is not None:
                subscriptions.discard(subscription)
                if not subscriptions:
                    del self._subscriptions[task_id]

    async def request_cancel(self, task_id: str) -> None:
        self._stop(task_id)
        try:
            await self.redis.publish(CANCEL_CHANNEL, f"{self.origin} {task_id}")
        except Exception as exc:  # the task has ended: its run stops at its next lease renewal
            log.warning("redis bus: could not send the cancel of task %s (%s)", task_id, type(exc).__name__)

    def _stop(self, task_id: str) -> None:
        self._cancels.stop(task_id)

    def on_cancel(self, task_id: str, stop: Callable[[], None]) -> Callable[[], None]:
        return self._cancels.add(task_id, stop)

    def close(self) -> None:
        self._closed = True
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.wake()

    async def aclose(self) -> None:
        """Stop hearing; the client itself is the gateway's (it closes it)."""
        self.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()


__all__ = ["CANCEL_CHANNEL", "EVENTS_CHANNEL", "HISTORY", "RedisBus", "RedisSubscription", "stream_key"]
