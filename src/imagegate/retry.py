"""One retry policy: what to retry, how long to wait, and for how long at most.

Pure functions and constants, no I/O and no server imports, so the SDK and the provider
calls share it (providers through :class:`RetryPolicy`, their settings' numbers on the same rules). The shape follows openai-python's base client: retry connection errors and
transient statuses (408, 429, 5xx), honour ``Retry-After`` when the server gives one,
otherwise a capped exponential back-off with jitter so many clients do not retry in lock
step. Callers decide which requests are safe to repeat (reads, creations with an
idempotency key); this module only judges the answer.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_RETRIES = 2  # attempts after the first
INITIAL_DELAY_S = 0.5  # the first back-off, doubled on each attempt
MAX_DELAY_S = 8.0  # no single wait is longer than this
MAX_RETRY_AFTER_S = 60.0  # a Retry-After longer than this is not waited for
JITTER = 0.25  # a back-off is shortened by up to this fraction, at random

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def should_retry(status: int | None, *, attempt: int, max_retries: int = MAX_RETRIES) -> bool:
    """Whether attempt number ``attempt`` (0 for the first) may be followed by another.

    ``status`` is the HTTP status, or None when no response came (a connection error or a
    timeout); those are retried too. Only call this for requests that are safe to repeat.
    """
    if attempt >= max_retries:
        return False
    return status is None or status in RETRY_STATUSES


def parse_retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date), or
    ``retry-after-ms``; None when absent, unreadable, negative or over MAX_RETRY_AFTER_S."""
    lowered = {k.lower(): v for k, v in headers.items()}
    seconds: float | None = None
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            seconds = float(ms) / 1000
        except ValueError:
            seconds = None
    if seconds is None and (value := lowered.get("retry-after")) is not None:
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds is None or seconds != seconds or not 0 <= seconds <= MAX_RETRY_AFTER_S:
        return None
    return seconds


def backoff(
    attempt: int,
    *,
    initial: float = INITIAL_DELAY_S,
    cap: float = MAX_DELAY_S,
    jitter: float = JITTER,
    rng: random.Random | None = None,
) -> float:
    """The wait before retry number ``attempt + 1``: doubling from ``initial``, capped,
    shortened by up to ``jitter`` of itself at random."""
    delay = min(cap, initial * (2.0**attempt))
    spread: float = (rng or random).random()
    return delay * (1 - jitter * spread)


def retry_delay(attempt: int, headers: Mapping[str, str] | None = None) -> float:
    """Retry-After when the server set a usable one, else the jittered back-off."""
    told = parse_retry_after(headers) if headers is not None else None
    return told if told is not None else backoff(attempt)


def is_retryable_status(status: int) -> bool:
    """An upstream answer worth another try: the transient statuses and every 5xx."""
    return status in RETRY_STATUSES or status >= 500


@dataclass(frozen=True)
class RetryPolicy:
    """A provider's retries: ``max_retries`` further tries after the first, back-off from
    ``base_s`` doubling up to ``cap_s`` (jittered), a usable ``Retry-After`` first, capped too."""

    max_retries: int = MAX_RETRIES
    base_s: float = INITIAL_DELAY_S
    cap_s: float = MAX_DELAY_S
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def should_retry(self, retries_done: int) -> bool:
        return retries_done < self.max_retries

    def delay(self, retries_done: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retries_done + 1``."""
        if retry_after is not None:
            return min(retry_after, self.cap_s)
        return backoff(retries_done, initial=self.base_s, cap=self.cap_s, rng=self.rng)
