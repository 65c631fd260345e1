"""Wake in-process waiters (the synchronous OpenAI routes) when a task ends."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class Notifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self.closed = False  # the server is stopping: waiters answer now instead of waiting

    def subscribe(self, task_id: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_result(None)
        else:
            self._waiters[task_id].add(future)
        return future

    def close(self) -> None:
        """Wake every waiter for good (a graceful stop has begun)."""
        self.closed = True
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        self._waiters.clear()

    def unsubscribe(self, task_id: str, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(task_id)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[task_id]

    def task_ended(self, task_id: str) -> None:
        for future in self._waiters.pop(task_id, set()):
            if not future.done():
                future.set_result(None)
