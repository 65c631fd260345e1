"""The hot path's in-memory parts: the principal cache and the in-process rate counters."""

from __future__ import annotations

from datetime import UTC, datetime

from imagegate.accounts.cache import PrincipalCache
from imagegate.accounts.store import Principal
from imagegate.clock import ManualClock
from imagegate.limits import RateLimiter, Tier


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def who(account: str = "acct", key: str = "key") -> Principal:
    return Principal(account_id=account, account_name=account, key_id=key, key_prefix="ig_" + key)


def test_entries_live_for_the_ttl_only() -> None:
    ticks = Ticks()
    cache = PrincipalCache(ttl_s=5, monotonic=ticks)
    cache.put("h1", who())
    assert cache.get("h1") == who()
    ticks.now += 4.9
    assert cache.get("h1") == who()
    ticks.now += 0.2
    assert cache.get("h1") is None


def test_forget_account_drops_every_key_of_it_and_only_those() -> None:
    cache = PrincipalCache(ttl_s=5, monotonic=Ticks())
    cache.put("a1", who("a", "1"))
    cache.put("a2", who("a", "2"))
    cache.put("b1", who("b", "1"))
    cache.forget_account("a")
    assert cache.get("a1") is None and cache.get("a2") is None
    assert cache.get("b1") == who("b", "1")


def test_paid_spend_moves_the_cached_principal() -> None:
    cache = PrincipalCache(ttl_s=5, monotonic=Ticks())
    cache.put("a1", who("a", "1"))
    cache.add_paid_spend("a", 40_000)
    cache.add_paid_spend("a", 0)
    cache.add_paid_spend("nobody", 5)
    cached = cache.get("a1")
    assert cached is not None and cached.paid_spend_micro == 40_000


def test_size_is_bounded_and_zero_ttl_keeps_nothing() -> None:
    cache = PrincipalCache(ttl_s=5, max_entries=2, monotonic=Ticks())
    for n in range(3):
        cache.put(f"h{n}", who(str(n), str(n)))
    assert cache.get("h0") is None and cache.get("h2") is not None
    off = PrincipalCache(ttl_s=0)
    off.put("h", who())
    assert off.get("h") is None


async def test_memory_counters_of_past_windows_are_dropped() -> None:
    tier = Tier(
        name="t", creates_per_minute=2, reads_per_minute=2, max_concurrent=1, paid_spend_threshold_micro=0
    )
    clock = ManualClock(datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC))
    limiter = RateLimiter("memory://", window_s=60, clock=clock)
    for key in ("a", "b", "c"):
        await limiter.hit_create(key, tier)
    assert len(limiter._counts) == 3
    clock.advance(60)
    assert (await limiter.hit_create("a", tier)).remaining == 1  # a new window, counted from zero
    assert len(limiter._counts) == 1
