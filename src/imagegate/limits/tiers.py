"""Usage tiers: limits that grow with an account's paid spend, or an admin's pin."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Tier(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    creates_per_minute: int = Field(gt=0, description="Task creations per key per minute (moving window).")
    reads_per_minute: int = Field(gt=0, description="Task reads per key per minute.")
    max_concurrent: int = Field(gt=0, description="pending + processing tasks per account.")
    paid_spend_threshold_micro: int = Field(
        ge=0, description="Paid spend (micro-dollars) after which an account moves up to this tier."
    )


def default_tiers() -> list[Tier]:
    return [
        Tier(
            name="free",
            creates_per_minute=5,
            reads_per_minute=120,
            max_concurrent=1,
            paid_spend_threshold_micro=0,
        ),
        Tier(
            name="tier1",
            creates_per_minute=60,
            reads_per_minute=1200,
            max_concurrent=5,
            paid_spend_threshold_micro=5_000_000,
        ),
        Tier(
            name="tier2",
            creates_per_minute=600,
            reads_per_minute=12_000,
            max_concurrent=50,
            paid_spend_threshold_micro=50_000_000,
        ),
    ]


def tier_for(tiers: list[Tier], paid_spend_micro: int, pinned: str | None) -> Tier:
    """The pinned tier if any, else the highest whose threshold the paid spend has reached."""
    if pinned is not None:
        for tier in tiers:
            if tier.name == pinned:
                return tier
    ordered = sorted(tiers, key=lambda t: t.paid_spend_threshold_micro)
    reached = [t for t in ordered if paid_spend_micro >= t.paid_spend_threshold_micro]
    return reached[-1] if reached else ordered[0]
