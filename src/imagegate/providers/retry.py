"""When to try an upstream call again, and how long to wait first.

Exponential back-off with full jitter (a random wait between 0 and the capped exponential
step, so many clients that failed together do not retry together), with the upstream's
``Retry-After`` taking precedence, itself capped. This module imports nothing of the server,
so the SDK uses it too.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
DEFAULT_MAX_RETRIES = 2
DEFAULT_BASE_S = 0.5
DEFAULT_CAP_S = 8.0


def is_retryable_status(status: int) -> bool:
    """429 and 5xx (and the two transient 4xx) may succeed later; other 4xx never will."""
    return status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, ``Retry-After`` as seconds or as
    an HTTP date. None when absent or unreadable."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` further tries after the first; waits grow from ``base_s`` up to ``cap_s``."""

    max_retries: int = DEFAULT_MAX_RETRIES
    base_s: float = DEFAULT_BASE_S
    cap_s: float = DEFAULT_CAP_S
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def should_retry(self, retries_done: int) -> bool:
        return retries_done < self.max_retries

    def delay(self, retries_done: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retries_done + 1``."""
        if retry_after is not None:
            return min(retry_after, self.cap_s)
        step = min(self.cap_s, self.base_s * 2**retries_done)
        return self.rng.uniform(0.0, step)


__all__ = ["RetryPolicy", "is_retryable_status", "parse_retry_after"]
