"""The retry policy, the circuit breaker and zero-configuration provider choice."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from imagegate.providers.breaker import BreakerState, CircuitBreaker
from imagegate.providers.registry import Providers, implicit_openai
from imagegate.retry import RetryPolicy, parse_retry_after


def test_backoff_is_jittered_within_a_capped_exponential_step() -> None:
    policy = RetryPolicy(max_retries=5, base_s=1.0, cap_s=4.0, rng=random.Random(1))
    for retries_done, step in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 4.0)]:
        waits = [policy.delay(retries_done) for _ in range(200)]
        assert all(step * 0.75 <= w <= step for w in waits)  # shortened by up to a quarter
        assert min(waits) < step * 0.8 < max(waits)  # jittered: no two clients in lock step
    assert policy.delay(0, retry_after=3.0) == 3.0
    assert policy.delay(0, retry_after=60.0) == 4.0  # Retry-After honoured, but capped
    assert policy.should_retry(4) and not policy.should_retry(5)


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": "Wed, 25 Nov 2026 12:00:30 GMT"}, now=now) == 30.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_breaker_opens_after_k_failures_and_half_opens_after_t() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=3, reset_s=10, now=lambda: now[0])
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    now[0] = 10.0
    assert breaker.allow()  # the one trial call
    assert not breaker.allow()  # and only one
    breaker.failure()  # the trial failed: open again, for another full period
    assert breaker.state is BreakerState.OPEN
    now[0] = 20.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_zero_configuration_picks_openai_only_with_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert implicit_openai({}) is None
    config = implicit_openai({"OPENAI_API_KEY": "sk-x"})
    assert config is not None and config.kind == "openai" and config.api_key_env == "OPENAI_API_KEY"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert Providers().default == "offline"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    providers = Providers()
    assert providers.default == "openai"
    assert not providers.get("openai").placeholder
    assert providers.get("offline").placeholder
