"""Wait states, with AWS's recorded behaviour (asl.md §1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.unit.asl.asl_support import NOW, context, machine

from stepd.asl.decisions import Fail, GoTo, Succeed, WaitUntil
from stepd.asl.interpreter import enter

NOW_SECOND = NOW.replace(microsecond=0)


def wait(fields: dict[str, Any], state_input: Any) -> Any:
    """enter a Wait state S (Next: N) holding `fields`."""
    state = {"Type": "Wait", "Next": "N", **fields}
    return enter(machine("S", state), "S", state_input, context("S"), NOW)


def runtime(cause: str) -> Fail:
    """The States.Runtime failure with `cause`."""
    return Fail(error="States.Runtime", cause=cause)


def stamp(moment: datetime) -> str:
    """`moment` as an RFC 3339 string with Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("seconds", "expected_until"),
    [
        pytest.param(0, NOW, id="zero"),
        pytest.param(60, NOW + timedelta(seconds=60), id="sixty-keeps-fraction"),
        pytest.param(99999999, NOW + timedelta(seconds=99999999), id="largest"),
    ],
)
def test_seconds_waits_exactly_that_long(seconds: int, expected_until: datetime) -> None:
    """Seconds ends the wait at now + Seconds, not truncated."""
    then = GoTo(next_state="N", output={"k": 1})
    assert WaitUntil(until=expected_until, then=then) == wait({"Seconds": seconds}, {"k": 1})


def test_timestamp_is_truncated_to_whole_seconds() -> None:
    """A Timestamp's milliseconds are dropped."""
    decision = wait({"Timestamp": "2024-08-18T13:00:00.999Z"}, {})
    assert datetime(2024, 8, 18, 13, 0, tzinfo=UTC) == decision.until


def test_past_timestamp_is_returned_as_is() -> None:
    """A Timestamp in the past is fine: the engine proceeds at once."""
    decision = wait({"Timestamp": "2016-03-14T01:59:00Z"}, {})
    expected = WaitUntil(
        until=datetime(2016, 3, 14, 1, 59, tzinfo=UTC), then=GoTo(next_state="N", output={})
    )
    assert expected == decision


@pytest.mark.parametrize(
    ("timestamp", "cause"),
    [
        pytest.param(
            "2024-08-18 13:00:00Z",
            "The definition is invalid: String does not match RFC3339 timestamp",
            id="space-for-T",
        ),
        pytest.param(
            "0000-01-01T00:00:00Z",
            "The definition is invalid: Timestamp 0000-01-01T00:00:00Z is before the year 0001, "
            "which stepd cannot represent",
            id="year-0000",
        ),
    ],
)
def test_invalid_timestamp_literal_fails(timestamp: str, cause: str) -> None:
    """A Timestamp literal the parser refuses fails with States.Runtime: the definition is bad."""
    assert runtime(cause) == wait({"Timestamp": timestamp}, {})


@pytest.mark.parametrize(
    ("value", "expected_until"),
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
            datetime(2024, 8, 18, 17, 33, tzinfo=UTC),
            id="nanoseconds",
        ),
        pytest.param(
            "2024-08-18T19:33:00+02:00",
            datetime(2024, 8, 18, 17, 33, tzinfo=UTC),
            id="numeric-offset",
        ),
    ],
)
def test_timestamp_path_accepted(value: str, expected_until: datetime) -> None:
    """TimestampPath accepts AWS's recorded forms and truncates to whole seconds."""
    decision = wait({"TimestampPath": "$.start_at"}, {"start_at": value})
    assert expected_until == decision.until


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param("2024-08-18T17:33:00", "2024-08-18T17:33:00", id="no-Z"),
        pytest.param("2024-08-18 17:33:00Z", "2024-08-18 17:33:00Z", id="no-T"),
        pytest.param("2024-13-18T17:33:00Z", "2024-13-18T17:33:00Z", id="bad-date"),
        pytest.param("2024-08-18T25:33:00Z", "2024-08-18T25:33:00Z", id="bad-time"),
        pytest.param(1723995180, "1723995180", id="epoch-number"),
        pytest.param(None, "null", id="null"),
    ],
)
def test_timestamp_path_rejected(value: Any, shown: str) -> None:
    """An invalid TimestampPath value fails with AWS's cause."""
    expected = runtime(
        "The TimestampPath parameter does not reference a valid ISO-8601 extended offset "
        f"date-time format string: $.start_at == {shown}"
    )
    assert expected == wait({"TimestampPath": "$.start_at"}, {"start_at": value})


def test_timestamp_path_missing() -> None:
    """A TimestampPath that matches nothing fails with States.Runtime."""
    expected = runtime("The TimestampPath parameter does not reference an input value: $.end")
    assert expected == wait({"TimestampPath": "$.end"}, {"start": "2024-08-18T17:33:00Z"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0, NOW, id="zero"),
        pytest.param(1, NOW + timedelta(seconds=1), id="one"),
        pytest.param(2**31 - 1, NOW + timedelta(seconds=2**31 - 1), id="largest-delay"),
    ],
)
def test_seconds_path_accepted(value: int, expected: datetime) -> None:
    """SecondsPath 0 and 1 succeed and end the wait at now + value."""
    decision = wait({"SecondsPath": "$.input.waitSeconds"}, {"input": {"waitSeconds": value}})
    assert expected == decision.until


@pytest.mark.parametrize(
    ("state_input", "cause"),
    [
        pytest.param(
            {"input": {"waitSeconds": -1}},
            "The SecondsPath parameter references a negative value: $.input.waitSeconds == -1",
            id="negative",
        ),
        pytest.param(
            {"input": {"waitSeconds": 1.5}},
            "The SecondsPath parameter cannot be parsed as a long value: "
            "$.input.waitSeconds == 1.5",
            id="fraction",
        ),
        pytest.param(
            {"input": {}},
            "The SecondsPath parameter does not reference an input value: $.input.waitSeconds",
            id="missing",
        ),
        pytest.param(
            {"input": {"waitSeconds": "10"}},
            "The SecondsPath parameter cannot be parsed as a long value: $.input.waitSeconds == 10",
            id="string",
        ),
        pytest.param(
            {"input": {"waitSeconds": True}},
            "The SecondsPath parameter cannot be parsed as a long value: "
            "$.input.waitSeconds == true",
            id="boolean",
        ),
        pytest.param(
            {"input": {"waitSeconds": 2**63}},
            "The SecondsPath parameter cannot be parsed as a long value: "
            f"$.input.waitSeconds == {2**63}",
            id="beyond-long",
        ),
        pytest.param(
            {"input": {"waitSeconds": 2**31}}, "Wait state delay is too long.", id="too-long"
        ),
    ],
)
def test_seconds_path_rejected(state_input: Any, cause: str) -> None:
    """An invalid SecondsPath value fails with States.Runtime and AWS's cause."""
    assert runtime(cause) == wait({"SecondsPath": "$.input.waitSeconds"}, state_input)


def test_timestamp_24855_days_ahead_is_accepted() -> None:
    """A TimestampPath 24855 days ahead (under 2**31 seconds) is accepted."""
    target = NOW_SECOND + timedelta(days=24855)
    assert target == wait({"TimestampPath": "$.t"}, {"t": stamp(target)}).until


def test_timestamp_24856_days_ahead_is_too_long() -> None:
    """A TimestampPath 24856 days ahead (over 2**31 seconds) fails as too long."""
    target = NOW_SECOND + timedelta(days=24856)
    expected = runtime("Wait state delay is too long.")
    assert expected == wait({"TimestampPath": "$.t"}, {"t": stamp(target)})


def test_far_future_timestamp_literal_too_long() -> None:
    """A Timestamp literal more than 2**31 seconds ahead is too long."""
    target = stamp(NOW_SECOND + timedelta(days=24856))
    assert runtime("Wait state delay is too long.") == wait({"Timestamp": target}, {})


def test_wait_with_end_succeeds_afterwards() -> None:
    """A Wait state with End carries Succeed as what happens after the wait."""
    state = {"Type": "Wait", "Seconds": 5, "End": True}
    decision = enter(machine("S", state), "S", {"k": 1}, context("S"), NOW)
    expected = WaitUntil(until=NOW + timedelta(seconds=5), then=Succeed(output={"k": 1}))
    assert expected == decision


def test_wait_applies_input_and_output_path() -> None:
    """SecondsPath reads the InputPath result, and OutputPath shapes the output."""
    fields = {"InputPath": "$.inner", "SecondsPath": "$.s", "OutputPath": "$.keep"}
    decision = wait(fields, {"inner": {"s": 3, "keep": {"x": 1}}, "outer": 0})
    expected = WaitUntil(
        until=NOW + timedelta(seconds=3), then=GoTo(next_state="N", output={"x": 1})
    )
    assert expected == decision
