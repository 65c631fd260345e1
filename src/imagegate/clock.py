"""The gateway's one clock.

Billing days, usage windows, retention, hold expiry, leases and the sweeper all read
time here, never from ``datetime.now`` directly, so a test can pin the date or jump
forward instead of sleeping. Model lifecycles are the one exception: they are judged
by ``catalog_date`` when an operator sets it (see ``Gateway.lifecycle_date``).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta


class Clock:
    """Wall-clock UTC time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return self.now().date()

    def timestamp(self) -> float:
        return self.now().timestamp()


class ManualClock(Clock):
    """A clock that starts at a chosen instant and moves on by real elapsed time plus
    whatever ``advance`` adds: tests get a fixed calendar and can skip hours at once,
    while timestamps taken in a row still increase."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._start = start.astimezone(UTC)
        self._origin = time.monotonic()
        self._skipped = timedelta()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._origin) + self._skipped

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self._skipped += timedelta(seconds=seconds)


SYSTEM_CLOCK = Clock()
