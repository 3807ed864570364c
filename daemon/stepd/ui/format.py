"""How the pages write times, spans and data: plain functions, registered as Jinja filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from stepd import jsontext

MAX_DATA_CHARS = 4000  # of an input or output shown on a page
TENTHS_BELOW_SECONDS = 10  # a shorter span is shown to a tenth of a second
SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86_400


def duration(seconds: float) -> str:
    """A span of time as a person reads it: `0.4 s`, `12 s`, `4 min 05 s`, `2 h 03 min`."""
    seconds = abs(seconds)
    if seconds < TENTHS_BELOW_SECONDS:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < SECONDS_PER_MINUTE:
        return f"{whole} s"
    if whole < SECONDS_PER_HOUR:
        return f"{whole // SECONDS_PER_MINUTE} min {whole % SECONDS_PER_MINUTE:02d} s"
    if whole < SECONDS_PER_DAY:
        minutes = whole % SECONDS_PER_HOUR // SECONDS_PER_MINUTE
        return f"{whole // SECONDS_PER_HOUR} h {minutes:02d} min"
    return f"{whole // SECONDS_PER_DAY} d {whole % SECONDS_PER_DAY // SECONDS_PER_HOUR} h"


def relative(ts: float, now: float) -> str:
    """An instant seen from `now`: `in 10 s`, `1 min 30 s ago`."""
    return f"in {duration(ts - now)}" if ts >= now else f"{duration(now - ts)} ago"


def utc(ts: float) -> str:
    """An instant to the second, in UTC: `2027-01-15 08:00:10Z`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(ts: float) -> str:
    """An instant as RFC 3339 to the millisecond, for machines: `2027-01-15T08:00:10.000+00:00`."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def pretty(text: str) -> str:
    """JSON text indented (other text as it is), cut short after MAX_DATA_CHARS."""
    try:
        shown = jsontext.escape_surrogates(
            json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        )
    except ValueError:
        shown = text
    return shown if len(shown) <= MAX_DATA_CHARS else shown[:MAX_DATA_CHARS] + "\n…"


FILTERS = {"duration": duration, "relative": relative, "utc": utc, "iso": iso, "pretty": pretty}
