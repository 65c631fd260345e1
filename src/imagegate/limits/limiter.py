"""Per-key request rates: fixed windows on the gateway's clock, counters in ``limits`` storage.

The window a request falls in is computed from the gateway clock (so tests move to the next
window by advancing it, and every replica agrees on the boundaries). ``memory://`` counts in
a dict of this process (no task, no lock: the event loop runs one hit at a time); any other
URL (Redis, to share the counters across replicas) uses ``limits``' atomic ``incr`` with expiry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from limits.aio.storage import Storage
from limits.storage import storage_from_string

from imagegate.clock import SYSTEM_CLOCK, Clock
from imagegate.limits.tiers import Tier


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # unix seconds when the window ends
    retry_after_s: int = 1  # whole seconds until then, at least 1

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class RateLimiter:
    def __init__(
        self,
        storage_url: str = "memory://",
        window_s: int = 60,
        clock: Clock = SYSTEM_CLOCK,
        *,
        redis_pool: Any = None,
    ) -> None:
        """``redis_pool``: a redis-py asyncio connection pool the gateway owns and closes; a redis
        URL then counts through it (redis-py, not ``limits``' default coredis client)."""
        self.window_s = window_s
        self.clock = clock
        # memory:// is counted here: limits' memory storage starts an expiry task on every hit.
        self._storage: Storage | None = None
        self._counts: dict[str, tuple[int, int]] = {}  # counter -> (window, hits in it)
        self._window = 0  # the latest window seen: counters of older ones are dropped
        if storage_url.startswith("memory://"):
            return
        if "://" in storage_url and not storage_url.startswith("async+"):
            storage_url = "async+" + storage_url
        options: dict[str, Any] = {}
        if storage_url.startswith(("async+redis", "async+rediss")):
            options["implementation"] = "redispy"
            if redis_pool is not None:
                options["connection_pool"] = redis_pool
        storage = storage_from_string(storage_url, **options)
        assert isinstance(storage, Storage)
        self._storage = storage

    async def _count(self, name: str, window: int) -> int:
        if self._storage is not None:
            return await self._storage.incr(f"{name}/{window}", self.window_s + 1)
        if window > self._window:  # a new window: what was counted before can go
            self._window = window
            self._counts = {k: v for k, v in self._counts.items() if v[0] >= window}
        seen, count = self._counts.get(name, (window, 0))
        count = count + 1 if seen == window else 1
        self._counts[name] = (window, count)
        return count

    async def _hit(self, scope: str, key_id: str, per_window: int) -> Decision:
        # The tiers speak per minute; the window is a setting so tests need not wait a minute.
        now = self.clock.timestamp()
        window = int(now // self.window_s)
        reset_at = float((window + 1) * self.window_s)
        count = await self._count(f"imagegate/{scope}/{key_id}", window)
        return Decision(
            allowed=count <= per_window,
            limit=per_window,
            remaining=max(0, per_window - count),
            reset_at=reset_at,
            retry_after_s=max(1, math.ceil(reset_at - now)),
        )

    async def hit_create(self, key_id: str, tier: Tier) -> Decision:
        return await self._hit("create", key_id, tier.creates_per_minute)

    async def hit_read(self, key_id: str, tier: Tier) -> Decision:
        return await self._hit("read", key_id, tier.reads_per_minute)

    async def aclose(self) -> None:
        """Nothing to close for memory://; shared clients are closed by their owner."""
