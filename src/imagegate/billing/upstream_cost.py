"""What a task cost us upstream: its token usage at the catalog's token prices.

Token prices are micro-dollars per 1M tokens, so a cost is a sum of products divided once by
1M and rounded half up: integers all the way, never a float. A placeholder provider (offline,
fake) reports made-up usage and costs nothing; a model without token prices costs nothing we
can compute (0), which the margin report shows as a full margin.
"""

from __future__ import annotations

from collections.abc import Mapping

from imagegate.catalog.schema import TokenPrices

TOKENS_PER_PRICE_UNIT = 1_000_000


def token_cost_micro(prices: TokenPrices, usage: Mapping[str, int]) -> int:
    """Micro-dollars for ``usage`` ({input_text_tokens, input_image_tokens, output_image_tokens})."""
    scaled = (
        int(usage.get("input_text_tokens", 0) or 0) * prices.text_in
        + int(usage.get("input_image_tokens", 0) or 0) * prices.image_in
        + int(usage.get("output_image_tokens", 0) or 0) * prices.image_out
    )
    return (scaled + TOKENS_PER_PRICE_UNIT // 2) // TOKENS_PER_PRICE_UNIT


def task_cost_micro(prices: TokenPrices | None, usage: Mapping[str, int] | None, *, placeholder: bool) -> int:
    """A finished task's upstream cost: 0 without usage, without prices or from a placeholder."""
    if placeholder or prices is None or not usage:
        return 0
    return token_cost_micro(prices, usage)


__all__ = ["task_cost_micro", "token_cost_micro"]
