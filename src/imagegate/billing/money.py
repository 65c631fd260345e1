"""Conversions between micro-dollars, cents and user-typed dollar amounts."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from imagegate.errors import ValidationError

MICRO_PER_USD = 1_000_000
MICRO_PER_CENT = 10_000
MAX_MICRO = 10**15  # a billion dollars per amount: sums stay far inside 64 bits


def usd_to_micro(text: str | int | float | Decimal, param: str = "usd") -> int:
    """'5', '0.25' or 5 -> micro-dollars; refuses fractions of a micro-dollar and non-numbers."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise ValidationError(f"{param} must be a dollar amount like 5 or 0.25", param=param) from None
    if not value.is_finite():  # NaN, sNaN and Infinity parse as Decimals; arithmetic on sNaN raises
        raise ValidationError(f"{param} must be a finite dollar amount", param=param)
    micro = value * MICRO_PER_USD
    if micro != micro.to_integral_value():
        raise ValidationError(f"{param} must be a dollar amount with at most 6 decimals", param=param)
    if abs(micro) > MAX_MICRO:  # balances are 64-bit integers of micro-dollars
        raise ValidationError(f"{param} must be at most {MAX_MICRO // MICRO_PER_USD} dollars", param=param)
    return int(micro)


def micro_to_cents(micro: int) -> int:
    """Whole cents, rounded half up (prices are whole cents in practice)."""
    return (micro + MICRO_PER_CENT // 2) // MICRO_PER_CENT


def micro_to_usd(micro: int) -> str:
    return (
        f"${Decimal(micro) / MICRO_PER_USD:.2f}"
        if micro % MICRO_PER_CENT == 0
        else f"${Decimal(micro) / MICRO_PER_USD}"
    )
