"""RFC 3339 timestamps as AWS accepts them (asl.md §1)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stepd.asl.timestamps import (
    RFC3339_MISMATCH,
    is_timestamp,
    parse_literal,
    parse_timestamp,
    truncate_to_seconds,
)
from stepd.errors import InvalidTimestampError, ParseError, TimestampRangeError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2024-08-18T17:33:00Z", datetime(2024, 8, 18, 17, 33, tzinfo=UTC), id="Z"),
        pytest.param(
            "2024-08-18T17:33:00.00Z", datetime(2024, 8, 18, 17, 33, tzinfo=UTC), id="two-zeros"
        ),
        pytest.param(
            "2024-08-18T17:33:00.000000Z", datetime(2024, 8, 18, 17, 33, tzinfo=UTC), id="six-zeros"
        ),
        pytest.param(
            "2024-08-18T17:33:00.243167252Z",
            datetime(2024, 8, 18, 17, 33, 0, 243167, tzinfo=UTC),
            id="nanoseconds-truncated",
        ),
        pytest.param(
            "2024-08-18T17:33:00.5Z",
            datetime(2024, 8, 18, 17, 33, 0, 500000, tzinfo=UTC),
            id="one-digit-fraction",
        ),
        pytest.param(
            "2024-08-18T17:33:00+00:00", datetime(2024, 8, 18, 17, 33, tzinfo=UTC), id="zero-offset"
        ),
        pytest.param(
            "2024-08-18T19:33:00+02:00", datetime(2024, 8, 18, 17, 33, tzinfo=UTC), id="plus-offset"
        ),
        pytest.param(
            "2024-08-18T12:03:00-05:30",
            datetime(2024, 8, 18, 17, 33, tzinfo=UTC),
            id="minus-offset",
        ),
        pytest.param("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC), id="leap-day"),
    ],
)
def test_accepted_timestamps_parse_to_utc(text: str, expected: datetime) -> None:
    """An accepted timestamp parses to the aware UTC instant it names."""
    actual = parse_timestamp(text)
    assert expected == actual
    assert actual.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("2024-08-18 17:33:00Z", id="space-instead-of-T"),
        pytest.param("2024-08-18T17:33:00", id="no-Z"),
        pytest.param("2024-13-18T17:33:00Z", id="month-13"),
        pytest.param("2024-08-18T25:33:00Z", id="hour-25"),
        pytest.param("05-12-2016T17:33:00Z", id="day-month-year"),
        pytest.param("{% $now() %}", id="jsonata-expression"),
        pytest.param("2024-08-18t17:33:00Z", id="lowercase-t"),
        pytest.param("2024-08-18T17:33:00z", id="lowercase-z"),
        pytest.param("2023-02-29T00:00:00Z", id="no-leap-day"),
        pytest.param("2024-08-18T17:33Z", id="no-seconds"),
        pytest.param("2024-08-18T17:33:60Z", id="second-60"),
        pytest.param("2024-08-18T17:33:00.Z", id="empty-fraction"),
        pytest.param("2024-08-18T17:33:00+24:00", id="offset-hour-24"),
        pytest.param("2024-08-18T17:33:00+0200", id="offset-without-colon"),
        pytest.param("2024-08-18", id="date-only"),
        pytest.param(" 2024-08-18T17:33:00Z", id="leading-space"),
        pytest.param("", id="empty"),
        pytest.param("2016-12-31T23:59:60Z", id="leap-second"),
        pytest.param("2024-08-18T24:00:00Z", id="hour-24"),
        pytest.param("\uff12\uff10\uff12\uff14-08-18T17:33:00Z", id="full-width-digits"),
    ],
)
def test_rejected_timestamps_raise(text: str) -> None:
    """A string outside AWS's RFC 3339 profile is rejected."""
    with pytest.raises(InvalidTimestampError):
        parse_timestamp(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("0000-01-01T00:00:00Z", id="year-0000"),
        pytest.param("0001-01-01T00:59:59+01:00", id="offset-moves-before-0001"),
        pytest.param("9999-12-31T23:59:59-00:01", id="offset-moves-after-9999"),
    ],
)
def test_instants_outside_0001_to_9999_raise_a_range_error(text: str) -> None:
    """An RFC 3339 instant outside the years 0001 to 9999 in UTC is a TimestampRangeError."""
    with pytest.raises(TimestampRangeError):
        parse_timestamp(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC), id="first"),
        pytest.param(
            "9999-12-31T23:59:59.999999999Z",
            datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            id="last",
        ),
        pytest.param(
            "0001-01-01T00:00:00-01:00", datetime(1, 1, 1, 1, tzinfo=UTC), id="negative-offset"
        ),
    ],
)
def test_the_ends_of_the_range_parse(text: str, expected: datetime) -> None:
    """The first and last instants of the years 0001 to 9999 in UTC parse."""
    assert expected == parse_timestamp(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("2024-08-18 17:33:00Z", RFC3339_MISMATCH, id="space-instead-of-T"),
        pytest.param(1723995180, RFC3339_MISMATCH, id="epoch-number"),
        pytest.param(
            "0000-01-01T00:00:00Z",
            "Timestamp 0000-01-01T00:00:00Z is before the year 0001, which stepd cannot represent",
            id="year-0000",
        ),
    ],
)
def test_parse_literal_raises_parse_error(text: object, problem: str) -> None:
    """A timestamp in the definition that does not parse is a ParseError with AWS's words."""
    with pytest.raises(ParseError) as raised:
        parse_literal(text)
    assert problem == raised.value.problem


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2024-08-18T17:33:00Z", True, id="timestamp"),
        pytest.param("2024-08-18T17:33:00", False, id="bad-string"),
        pytest.param(1723995180, False, id="epoch-number"),
        pytest.param(None, False, id="null"),
    ],
)
def test_is_timestamp(value: object, expected: bool) -> None:
    """is_timestamp is true only for strings that parse."""
    assert expected == is_timestamp(value)


def test_truncate_to_seconds_drops_the_fraction() -> None:
    """truncate_to_seconds keeps the second and drops the microseconds."""
    moment = datetime(2024, 8, 18, 17, 33, 0, 999999, tzinfo=UTC)
    assert datetime(2024, 8, 18, 17, 33, tzinfo=UTC) == truncate_to_seconds(moment)
