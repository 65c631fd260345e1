"""The bus interface: what happens to a task, told to whoever listens, in any process.

A task's events carry increasing integer ids, so a listener that lost its connection resumes
after the last id it saw with nothing lost or repeated, for as long as the bus keeps the task's
recent history. The bus also carries one request the other way: cancel a task, delivered to
whichever process runs it.

Publishing is on the hot path of every task: an implementation makes it cheap when nobody
listens (a bounded append) and never reads the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class EventKind(StrEnum):
    STATUS = "status"  # the task moved to pending or processing
    PROGRESS = "progress"  # a fraction of the work done, 0..1
    PARTIAL_IMAGE = "partial_image"  # a preview of an output image, stored for a short while
    COMPLETED = "completed"  # the task ended with its images (terminal)
    FAILED = "failed"  # the task ended without images (terminal)
    CANCELED = "canceled"  # its client canceled it (terminal)

    @property
    def terminal(self) -> bool:
        return self in (EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELED)


@dataclass(frozen=True, slots=True)
class Event:
    task_id: str
    id: int  # increasing per task; a resumed subscription starts after one of these
    kind: EventKind
    data: dict[str, Any]  # JSON-safe; each face renders it (URLs need the request's base)


class BusClosed(Exception):
    """The server is stopping: listeners answer now (waiters 503, streams end) instead of waiting."""


class Subscription(Protocol):
    """One listener's view of one task: its recent history after ``after``, then live events.

    Registered before it is returned, so nothing published after ``subscribe`` is entered is
    missed, whatever the listener reads from the database in the meantime.
    """

    @property
    def last_id(self) -> int:
        """The newest id the bus has given this task (0 or a floor when it has none): an event
        made up from the database (history lost to a restart) takes an id that live ones exceed."""
        ...

    def backlog(self) -> list[Event]:
        """The events after ``after`` the bus still holds, without waiting (replay of an ended task)."""
        ...

    async def get(self, wait_s: float | None = None) -> Event | None:
        """The next event after the last one returned; None when ``wait_s`` passes first.
        Raises BusClosed when the server stops. Cancel-safe: a timed-out wait loses nothing."""
        ...

    def __aiter__(self) -> AsyncIterator[Event]:
        """Every event up to and including the terminal one; ends early if the bus closes."""
        ...


class Bus(Protocol):
    async def publish(self, task_id: str, kind: EventKind, data: dict[str, Any]) -> Event:
        """Tell every listener of the task, and keep it in the task's bounded history."""
        ...

    def subscribe(self, task_id: str, after: int | None = None) -> AbstractAsyncContextManager[Subscription]:
        """Listen to a task from just after event ``after`` (None: its whole held history)."""
        ...

    async def request_cancel(self, task_id: str) -> None:
        """Ask whichever process runs the task to stop its provider call (the task has ended)."""
        ...

    def on_cancel(self, task_id: str, stop: Callable[[], None]) -> Callable[[], None]:
        """Call ``stop`` when a cancel of the task is requested; returns the unregistering call."""
        ...

    def close(self) -> None:
        """A graceful stop has begun: every subscription ends now (BusClosed), new ones too."""
        ...

    @property
    def closed(self) -> bool: ...

    async def aclose(self) -> None:
        """Release connections (a networked bus); the in-process one has none."""
        ...


__all__ = ["Bus", "BusClosed", "Event", "EventKind", "Subscription"]


class CancelHandlers:
    """This process's runs that can be told to stop, by task: each bus keeps one."""

    def __init__(self) -> None:
        self._stops: dict[str, list[Callable[[], None]]] = {}

    def stop(self, task_id: str) -> None:
        for stop in list(self._stops.get(task_id, ())):
            stop()

    def add(self, task_id: str, stop: Callable[[], None]) -> Callable[[], None]:
        """Register ``stop`` for the task; the function returned takes it off again."""
        self._stops.setdefault(task_id, []).append(stop)

        def off() -> None:
            stops = self._stops.get(task_id)
            if stops is not None and stop in stops:
                stops.remove(stop)
                if not stops:
                    del self._stops[task_id]

        return off


class UntilTheEnd:
    """``async for`` over a subscription: every event up to the terminal one (a mixin for the
    buses' subscriptions, which define ``get``)."""

    _ended = False

    async def get(self, wait_s: float | None = None) -> Event | None:
        raise NotImplementedError

    async def __aiter__(self) -> AsyncIterator[Event]:
        while not self._ended:
            try:
                event = await self.get()
            except BusClosed:
                return
            assert event is not None
            self._ended = event.kind.terminal
            yield event
