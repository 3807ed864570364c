"""RFC 3339 timestamps as AWS accepts them in Wait states and Choice rules.

`2024-08-18T17:33:00Z`, `2024-08-18T17:33:00.243167252Z`, `2024-08-18T19:33:00+02:00`:
an uppercase `T`, an uppercase `Z` or a numeric offset, fractional seconds of any length
(kept to the microsecond, extra digits truncated). Everything else is rejected, and so are
leap seconds (`23:59:60`) and instants outside the years 0001 to 9999 in UTC (year 0000,
or `0001-01-01T00:00:00+01:00`), which RFC 3339 allows but Python cannot represent.

`parse_timestamp` reads a value from the data (TimestampPath, a Choice Variable);
`parse_literal` reads one written in the definition (Wait Timestamp, Choice `Timestamp…`
operands) and raises ParseError, with AWS's words; `stepd check` calls the same function.
"""

from __future__ import annotations

import re
from datetime import MINYEAR, UTC, datetime, timedelta, timezone
from typing import Any, Final

from stepd.errors import InvalidTimestampError, ParseError, TimestampRangeError

MICROSECOND_DIGITS: Final = 6
RFC3339_MISMATCH: Final = "String does not match RFC3339 timestamp"  # AWS, at creation

_TIMESTAMP: Final = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"T(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})"
    r"(?:\.(?P<fraction>\d+))?"
    r"(?:(?P<utc>Z)|(?P<sign>[+-])(?P<offset_hours>\d{2}):(?P<offset_minutes>\d{2}))",
    re.ASCII,
)
_MAX_OFFSET_HOURS: Final = 23
_MAX_OFFSET_MINUTES: Final = 59


def parse_timestamp(text: Any) -> datetime:
    """The instant `text` names, as an aware UTC datetime. Raises InvalidTimestampError."""
    if not isinstance(text, str):
        raise InvalidTimestampError(f"not a string: {text!r}")
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise InvalidTimestampError(f"not an RFC 3339 timestamp: {text!r}")
    if int(match["year"]) < MINYEAR:
        raise TimestampRangeError(f"{text} is before the year 0001")
    fraction = (match["fraction"] or "")[:MICROSECOND_DIGITS].ljust(MICROSECOND_DIGITS, "0")
    try:
        moment = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            int(fraction),
            tzinfo=_offset(match),
        )
    except ValueError as error:
        raise InvalidTimestampError(f"not an RFC 3339 timestamp: {text!r} ({error})") from None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise TimestampRangeError(f"{text} is outside the years 0001 to 9999 in UTC") from None


def parse_literal(text: Any) -> datetime:
    """A timestamp written in the definition, as an aware UTC datetime. Raises ParseError."""
    try:
        return parse_timestamp(text)
    except TimestampRangeError as error:
        raise ParseError(f"Timestamp {error.message}, which stepd cannot represent") from None
    except InvalidTimestampError:
        raise ParseError(RFC3339_MISMATCH) from None


def _offset(match: re.Match[str]) -> timezone:
    if match["utc"]:
        return UTC
    hours, minutes = int(match["offset_hours"]), int(match["offset_minutes"])
    if hours > _MAX_OFFSET_HOURS or minutes > _MAX_OFFSET_MINUTES:
        raise ValueError("offset out of range")
    sign = -1 if match["sign"] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def is_timestamp(value: Any) -> bool:
    """Whether `value` is a string holding a valid timestamp."""
    try:
        parse_timestamp(value)
    except InvalidTimestampError:
        return False
    return True


def truncate_to_seconds(moment: datetime) -> datetime:
    """Drop the fraction of a second, as AWS does for Wait timestamps."""
    return moment.replace(microsecond=0)
