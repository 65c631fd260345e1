"""The one JSON parser, the date parser and the cursor codec, without a server."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from imagegate import safejson
from imagegate.dates import MAX_DAY, MIN_DAY, parse_day, parse_instant
from imagegate.db.models import Task
from imagegate.errors import ValidationError
from imagegate.tasks import cursor


def test_ordinary_json_is_parsed_as_json_loads_would() -> None:
    text = '{"a": [1, 2.5, -3e2, "é🐋", null, true], "b": {"c": "' + "x" * 10_000 + '"}}'
    assert safejson.loads(text.encode()) == {
        "a": [1, 2.5, -300.0, "é🐋", None, True],
        "b": {"c": "x" * 10_000},
    }
    assert safejson.loads("\ufeff[1]".encode()) == [1]  # a UTF-8 byte order mark, as json.loads allows
    assert safejson.loads('"' + "9" * 40 + '"') == "9" * 40  # digits inside strings are not numbers


def test_nesting_up_to_the_limit_is_fine_one_more_is_refused() -> None:
    depth = safejson.MAX_DEPTH
    assert safejson.loads("[" * depth + "]" * depth) is not None
    with pytest.raises(ValidationError, match="nests deeper"):
        safejson.loads("[" * (depth + 1) + "]" * (depth + 1))
    with pytest.raises(ValidationError, match="nests deeper"):
        safejson.loads('{"a":' * (depth + 1) + "1" + "}" * (depth + 1))


@pytest.mark.parametrize("number", ["1" * 41, "-" + "1" * 41, "1e999", "-1e999", "1" * 41 + ".5"])
def test_numbers_too_long_or_out_of_range(number: str) -> None:
    with pytest.raises(ValidationError):
        safejson.loads("[" + number + "]")


def test_largest_accepted_integer() -> None:
    assert safejson.loads("1" * safejson.MAX_NUMBER_CHARS) == int("1" * safejson.MAX_NUMBER_CHARS)


def test_dates_range_and_shape() -> None:
    assert parse_day(MIN_DAY.isoformat(), "from") == MIN_DAY
    assert parse_day(MAX_DAY.isoformat(), "from") == MAX_DAY
    for bad in ["1969-12-31", "3000-01-01", "0001-01-01", "9999-12-31", "tomorrow", ""]:
        with pytest.raises(ValidationError) as caught:
            parse_day(bad, "from")
        assert caught.value.param == "from"
    assert parse_day("2026-11-25", "to") == date(2026, 11, 25)


def test_instants_are_utc_and_need_an_offset() -> None:
    assert parse_instant("2026-11-25T13:00:00+01:00", "t") == datetime(2026, 11, 25, 12, tzinfo=UTC)
    for bad in ["2026-11-25T12:00:00", 5, None, "0001-01-01T00:00:00+05:00", "x" * 100]:
        with pytest.raises(ValidationError):
            parse_instant(bad, "t")


def test_a_cursor_round_trips() -> None:
    task = Task(id="0f6c5f36-0000-4000-8000-000000000001", created_at=datetime(2026, 11, 25, tzinfo=UTC))
    assert cursor.decode(cursor.encode(task)) == (task.created_at, task.id)
