"""The one parser for dates and instants that clients send (query parameters, cursors).

Python's ``date`` spans years 1-9999, but a window arithmetic step (30 days back, one day
forward, a UTC offset) from either end overflows. The gateway supports a range with room
on both sides, and says so, instead of failing inside a query.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from imagegate.errors import ValidationError

MIN_DAY = date(1970, 1, 1)
MAX_DAY = date(2999, 12, 31)
_MAX_TEXT = 40  # the longest ISO 8601 instant with microseconds and offset is 32 characters


def _in_range(day: date, param: str) -> None:
    if not MIN_DAY <= day <= MAX_DAY:
        raise ValidationError(
            f"{param} must be between {MIN_DAY.isoformat()} and {MAX_DAY.isoformat()}", param=param
        )


def parse_day(value: str, param: str) -> date:
    """A calendar day like ``2026-11-25`` inside the supported range."""
    try:
        if len(value) > _MAX_TEXT:
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{param} must be a date like 2026-11-25", param=param) from None
    _in_range(day, param)
    return day


def parse_instant(value: object, param: str) -> datetime:
    """An ISO 8601 instant with a UTC offset, inside the supported range, as UTC."""
    try:
        if not isinstance(value, str) or len(value) > _MAX_TEXT:
            raise ValueError
        instant = datetime.fromisoformat(value)
        if instant.tzinfo is None:
            raise ValueError
        _in_range(instant.replace(tzinfo=None).date(), param)
        return instant.astimezone(UTC)
    except ValueError:
        raise ValidationError(f"{param} must be an ISO 8601 time with a UTC offset", param=param) from None
