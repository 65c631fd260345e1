"""A per-provider circuit breaker: stop calling an upstream that keeps failing.

closed     calls go through; K consecutive retryable failures open it
open       calls are refused without trying, for ``reset_s`` seconds
half-open  after that, one trial call goes through: success closes, failure opens again

Time comes from the ``now`` callable (the gateway's clock in a server), so tests advance
a clock instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"  # calls go through
    OPEN = "open"  # calls are refused until the reset time has passed
    HALF_OPEN = "half_open"  # one trial call is in flight or allowed


class CircuitBreaker:
    def __init__(self, failures: int, reset_s: float, now: Callable[[], float]) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._now = now
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial = False  # a half-open trial call is in flight

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._trial or self._now() - self._opened_at >= self.reset_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """Whether a call may go through now (a half-open breaker lets exactly one through)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial:
            self._trial = True
            return True
        return False

    def success(self) -> None:
        self._consecutive = 0
        self._opened_at = None
        self._trial = False

    def failure(self) -> None:
        self._consecutive += 1
        if self._trial or self._consecutive >= self.failures:
            self._opened_at = self._now()
        self._trial = False

    def release(self) -> None:
        """The call ended in a way that says nothing about the upstream (canceled): a half-open
        breaker lets the next call try instead."""
        self._trial = False


__all__ = ["BreakerState", "CircuitBreaker"]
