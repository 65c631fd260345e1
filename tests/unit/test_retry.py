"""The shared retry policy: which answers are retried, how long to wait."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from imagegate.retry import (
    MAX_DELAY_S,
    MAX_RETRIES,
    backoff,
    parse_retry_after,
    retry_delay,
    should_retry,
)


@pytest.mark.parametrize("status", [None, 408, 429, 500, 502, 503, 504])
def test_transient_answers_are_retried_until_the_budget_is_spent(status: int | None) -> None:
    assert should_retry(status, attempt=0)
    assert not should_retry(status, attempt=MAX_RETRIES)


@pytest.mark.parametrize("status", [400, 401, 402, 404, 409, 410, 413, 415])
def test_client_errors_are_never_retried(status: int) -> None:
    assert not should_retry(status, attempt=0)


def test_retry_after_in_seconds_milliseconds_and_dates() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_retry_after({"Retry-After": "3"}) == 3
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": "Wed, 25 Nov 2026 12:00:10 GMT"}, now=now) == 10


@pytest.mark.parametrize("value", ["soon", "-1", "3600", "nan", ""])
def test_unusable_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after({"Retry-After": value}) is None


def test_backoff_doubles_is_capped_and_jittered_downwards() -> None:
    rng = random.Random(7)
    delays = [backoff(attempt, rng=rng) for attempt in range(8)]
    assert 0.375 <= delays[0] <= 0.5
    assert 0.75 <= delays[1] <= 1.0
    assert all(d <= MAX_DELAY_S for d in delays)
    assert delays[-1] >= MAX_DELAY_S * 0.75
    assert len({backoff(3) for _ in range(20)}) > 1  # jitter: clients do not retry in lock step


def test_server_hint_wins_over_backoff() -> None:
    assert retry_delay(5, {"Retry-After": "1"}) == 1
    assert retry_delay(0, {}) <= 0.5
