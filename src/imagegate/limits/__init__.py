"""Usage tiers and the per-key, per-account limits they set."""

from imagegate.limits.limiter import Decision, RateLimiter
from imagegate.limits.tiers import Tier, default_tiers, tier_for

__all__ = ["Decision", "RateLimiter", "Tier", "default_tiers", "tier_for"]
