"""Per-key request rates on the ``limits`` library (moving window).

Storage comes from a URL (``memory://`` by default), so a Redis URL makes the
limits shared across replicas without code changes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from imagegate.limits.tiers import Tier


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # unix seconds when a slot frees up

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers

    @property
    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))


class RateLimiter:
    def __init__(self, storage_url: str = "memory://", window_s: int = 60) -> None:
        self.window_s = window_s
        if "://" in storage_url and not storage_url.startswith("async+"):
            storage_url = "async+" + storage_url
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url))

    async def _hit(self, scope: str, key_id: str, per_minute: int) -> Decision:
        # The tiers speak per minute; the window is a setting so tests need not wait a minute.
        item = RateLimitItemPerSecond(per_minute, self.window_s)
        allowed = await self._limiter.hit(item, scope, key_id)
        stats = await self._limiter.get_window_stats(item, scope, key_id)
        return Decision(
            allowed=allowed, limit=per_minute, remaining=max(0, stats.remaining), reset_at=stats.reset_time
        )

    async def hit_create(self, key_id: str, tier: Tier) -> Decision:
        return await self._hit("create", key_id, tier.creates_per_minute)

    async def hit_read(self, key_id: str, tier: Tier) -> Decision:
        return await self._hit("read", key_id, tier.reads_per_minute)
