"""Conversions between micro-dollars, cents and user-typed dollar amounts."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation, localcontext

from imagegate.errors import ValidationError

MICRO_PER_USD = 1_000_000
MICRO_PER_CENT = 10_000
MAX_MICRO = 10**15  # a billion dollars per amount: sums stay far inside 64 bits
MAX_AMOUNT_CHARS = 40  # '1000000000.000000' is 17; anything much longer is not an amount


def usd_to_micro(text: object, param: str = "usd") -> int:
    """'5', '0.25' or 5 -> micro-dollars: the one checked parser for amounts users type.

    Refuses non-numbers, NaN and Infinity, fractions of a micro-dollar and amounts over
    ``MAX_MICRO``, comparing before any arithmetic so that ``1e999999999`` cannot overflow.
    """
    typed = isinstance(text, str | int | float | Decimal) and not isinstance(text, bool)
    try:
        if not typed or len(str(text)) > MAX_AMOUNT_CHARS:
            raise InvalidOperation
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValidationError(f"{param} must be a dollar amount like 5 or 0.25", param=param) from None
    if not value.is_finite():  # NaN, sNaN and Infinity parse as Decimals; arithmetic on sNaN raises
        raise ValidationError(f"{param} must be a finite dollar amount", param=param)
    # copy_abs() and adjusted() are exact: they cannot overflow, whatever the exponent.
    if (value and value.adjusted() > 12) or value.copy_abs() > MAX_MICRO // MICRO_PER_USD:
        raise ValidationError(f"{param} must be at most {MAX_MICRO // MICRO_PER_USD} dollars", param=param)
    with localcontext(prec=2 * MAX_AMOUNT_CHARS):  # exact for every amount that got this far
        micro = value.scaleb(6) if value and value.adjusted() >= -6 else value
        if micro != micro.to_integral_value():
            raise ValidationError(f"{param} must be a dollar amount with at most 6 decimals", param=param)
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
