"""Money conversions, tier selection and the rate limiter's decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pydantic
import pytest

from imagegate.billing.money import micro_to_cents, micro_to_usd, usd_to_micro
from imagegate.clock import ManualClock
from imagegate.errors import ValidationError
from imagegate.limits import Decision, RateLimiter, Tier, default_tiers, tier_for


# -- usd_to_micro --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "micro"),
    [
        ("5", 5_000_000),
        ("0.25", 250_000),
        ("0.04", 40_000),
        ("2.5", 2_500_000),
        ("0.000001", 1),
        ("1.000000", 1_000_000),
        ("1e-6", 1),
        (" 3 ", 3_000_000),
        (5, 5_000_000),
        (0.1, 100_000),
        (Decimal("7.123456"), 7_123_456),
    ],
)
def test_usd_to_micro(given: str | int | float | Decimal, micro: int) -> None:
    result = usd_to_micro(given)
    assert result == micro
    assert isinstance(result, int)


@pytest.mark.parametrize(
    "given",
    [
        "1.0000001",
        "0.0000005",
        "abc",
        "",
        "5 dollars",
        "$5",
        "0x10",
        "nan",
        "NaN",
        "inf",
        "-Infinity",
        "1e30",
    ],
)
def test_usd_to_micro_refuses(given: str) -> None:
    with pytest.raises(ValidationError) as caught:
        usd_to_micro(given, param="amount")
    assert caught.value.param == "amount"
    assert caught.value.status_code == 400


def test_usd_to_micro_refuses_a_signaling_nan() -> None:
    """'sNaN' is a number to Decimal() but signals on arithmetic: it must be a 400, not a crash."""
    with pytest.raises(ValidationError):
        usd_to_micro("sNaN")


# -- cents and dollars ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("micro", "cents"),
    [
        (0, 0),
        (40_000, 4),
        (220_000, 22),
        (4_999, 0),
        (5_000, 1),  # half a cent rounds up
        (14_999, 1),
        (15_000, 2),
        (960_000, 96),
        (1_000_000, 100),
        (123_456_789, 12_346),
    ],
)
def test_micro_to_cents(micro: int, cents: int) -> None:
    assert micro_to_cents(micro) == cents


@pytest.mark.parametrize(
    ("micro", "text"),
    [(0, "$0.00"), (960_000, "$0.96"), (3_460_000, "$3.46"), (5_000_000, "$5.00"), (1, "$0.000001")],
)
def test_micro_to_usd(micro: int, text: str) -> None:
    assert micro_to_usd(micro) == text


def test_round_trip_of_whole_micro_amounts() -> None:
    for micro in (1, 999, 40_000, 1_234_567, 10**12):
        assert usd_to_micro(str(Decimal(micro) / 1_000_000)) == micro


# -- tiers ---------------------------------------------------------------------------------------
TIERS = default_tiers()


@pytest.mark.parametrize(
    ("spend", "name"),
    [
        (0, "free"),
        (4_999_999, "free"),
        (5_000_000, "tier1"),
        (49_999_999, "tier1"),
        (50_000_000, "tier2"),
        (10**12, "tier2"),
    ],
)
def test_tier_by_paid_spend(spend: int, name: str) -> None:
    assert tier_for(TIERS, spend, None).name == name


def test_a_pinned_tier_wins_over_spend() -> None:
    assert tier_for(TIERS, 0, "tier2").name == "tier2"
    assert tier_for(TIERS, 10**12, "free").name == "free"
    assert tier_for(TIERS, 5_000_000, "tier1").name == "tier1"


def test_an_unknown_pin_falls_back_to_spend() -> None:
    assert tier_for(TIERS, 0, "platinum").name == "free"
    assert tier_for(TIERS, 5_000_000, "platinum").name == "tier1"
    assert tier_for(TIERS, 60_000_000, "platinum").name == "tier2"


def test_tier_order_in_settings_does_not_matter() -> None:
    shuffled = [TIERS[2], TIERS[0], TIERS[1]]
    assert tier_for(shuffled, 0, None).name == "free"
    assert tier_for(shuffled, 6_000_000, None).name == "tier1"
    assert tier_for(shuffled, 60_000_000, None).name == "tier2"


def test_below_every_threshold_gets_the_lowest_tier() -> None:
    tiers = [
        Tier(
            name="starter",
            creates_per_minute=1,
            reads_per_minute=1,
            max_concurrent=1,
            paid_spend_threshold_micro=100,
        ),
        Tier(
            name="pro",
            creates_per_minute=2,
            reads_per_minute=2,
            max_concurrent=2,
            paid_spend_threshold_micro=500,
        ),
    ]
    assert tier_for(tiers, 0, None).name == "starter"
    assert tier_for(tiers, 499, None).name == "starter"
    assert tier_for(tiers, 500, None).name == "pro"


@pytest.mark.parametrize(
    "broken",
    [
        {"creates_per_minute": 0},
        {"reads_per_minute": -1},
        {"max_concurrent": 0},
        {"paid_spend_threshold_micro": -1},
    ],
)
def test_tiers_refuse_impossible_limits(broken: dict[str, int]) -> None:
    values = {
        "name": "x",
        "creates_per_minute": 1,
        "reads_per_minute": 1,
        "max_concurrent": 1,
        "paid_spend_threshold_micro": 0,
        **broken,
    }
    with pytest.raises(pydantic.ValidationError):
        Tier(**values)


# -- the limiter ---------------------------------------------------------------------------------
def test_decision_headers() -> None:
    reset = 1_800_000_000.5
    allowed = Decision(allowed=True, limit=3, remaining=2, reset_at=reset)
    assert allowed.headers() == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "2",
        "X-RateLimit-Reset": "1800000001",
    }
    refused = Decision(allowed=False, limit=3, remaining=0, reset_at=reset, retry_after_s=2)
    assert refused.headers()["Retry-After"] == "2"


async def test_windows_follow_the_clock() -> None:
    tier = Tier(
        name="t", creates_per_minute=1, reads_per_minute=1, max_concurrent=1, paid_spend_threshold_micro=0
    )
    clock = ManualClock(datetime(2026, 11, 25, 12, 0, 10, tzinfo=UTC))
    limiter = RateLimiter("memory://", window_s=60, clock=clock)
    assert (await limiter.hit_create("k", tier)).allowed
    refused = await limiter.hit_create("k", tier)
    assert not refused.allowed
    assert 49 <= refused.retry_after_s <= 50  # the minute's window ends 50 s after 12:00:10
    clock.advance(refused.retry_after_s)
    assert (await limiter.hit_create("k", tier)).allowed


async def test_limiter_counts_per_key_and_scope() -> None:
    tier = Tier(
        name="t", creates_per_minute=2, reads_per_minute=3, max_concurrent=1, paid_spend_threshold_micro=0
    )
    limiter = RateLimiter("memory://", window_s=60)
    first = await limiter.hit_create("key-a", tier)
    second = await limiter.hit_create("key-a", tier)
    third = await limiter.hit_create("key-a", tier)
    assert [d.allowed for d in (first, second, third)] == [True, True, False]
    assert [d.remaining for d in (first, second, third)] == [1, 0, 0]
    assert third.limit == 2 and "Retry-After" in third.headers()
    assert 1 <= third.retry_after_s <= 60
    assert (await limiter.hit_create("key-b", tier)).allowed
    reads = [await limiter.hit_read("key-a", tier) for _ in range(4)]
    assert [d.allowed for d in reads] == [True, True, True, False]
    assert reads[0].limit == 3
