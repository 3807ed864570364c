"""How the pages write spans, instants and data."""

from __future__ import annotations

import json

import pytest

from stepd.ui.format import MAX_DATA_CHARS, duration, iso, pretty, relative, utc

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.0, "0.0 s"),
        (0.44, "0.4 s"),
        (9.96, "10.0 s"),
        (12.7, "12 s"),
        (59.9, "59 s"),
        (60, "1 min 00 s"),
        (245, "4 min 05 s"),
        (3600, "1 h 00 min"),
        (7380, "2 h 03 min"),
        (86_400 + 7200, "1 d 2 h"),
        (-90, "1 min 30 s"),
    ],
    ids=[
        "zero",
        "tenths",
        "rounds-up-to-ten",
        "seconds",
        "under-a-minute",
        "a-minute",
        "minutes",
        "an-hour",
        "hours",
        "days",
        "negative",
    ],
)
def test_durations_read_as_a_person_says_them(seconds: float, expected: str):
    """Tenths below ten seconds, then seconds, minutes, hours and days, two units at most."""
    assert duration(seconds) == expected


def test_an_instant_is_relative_to_now():
    """An instant ahead is `in …`, one past is `… ago`."""
    assert (relative(T0 + 10, T0), relative(T0 - 90, T0)) == ("in 10 s", "1 min 30 s ago")


def test_instants_are_written_in_utc():
    """For people to the second with a Z; for machines RFC 3339 to the millisecond."""
    assert (utc(T0 + 10.5), iso(T0 + 10.5)) == (
        "2027-01-15 08:00:10Z",
        "2027-01-15T08:00:10.500+00:00",
    )


def test_json_is_indented_and_other_text_kept():
    """JSON text is shown indented, non-ASCII as it is; anything else unchanged."""
    assert (pretty('{"room":"Zoë"}'), pretty("not json")) == ('{\n  "room": "Zoë"\n}', "not json")


def test_long_data_is_cut_short():
    """Data longer than MAX_DATA_CHARS is cut there, with an ellipsis line."""
    shown = pretty(json.dumps("x" * MAX_DATA_CHARS))
    assert (len(shown), shown.endswith("\n…")) == (MAX_DATA_CHARS + 2, True)
