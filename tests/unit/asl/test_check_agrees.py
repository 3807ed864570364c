"""`stepd check` and the runtime agree on what parses.

The rule: put a path, a timestamp or an intrinsic call in any field that can hold it (one
state, every other field valid). If `validate()` accepts the definition, running the state
never fails on a parse error; if it refuses it, running the state fails on one. A failure on
the data (a path that matches nothing, a timestamp too far away) is fine either way.

A parse error is a `Fail` whose cause starts with INVALID_DEFINITION: every ParseError gets
there, and nothing else does. Map states are not run by stepd, so ItemsPath is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given
from tests.unit.asl.asl_support import NOW, context

from stepd.asl import interpreter
from stepd.asl.decisions import CallTask, Decision, Fail
from stepd.asl.intrinsics import ARITY
from stepd.asl.validate import SCHEMA_VALIDATION_FAILED, UNASSIGNED_VARIABLE, Finding, validate
from stepd.errors import INVALID_DEFINITION

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"
DONE = {"Type": "Succeed"}
RESULT = {"Payload": {"k": 1}, "list": [1, 2]}


# -- the fields a value can go in --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Place:
    """A field of state S that holds the value, and where validate() reports on it."""

    name: str
    where: str
    state: Callable[[Any], dict[str, Any]]

    def machine(self, value: Any) -> dict[str, Any]:
        state = self.state(value)
        done = {} if state["Type"] == "Fail" else {"Done": DONE}
        return {"StartAt": "S", "States": {"S": state, **done}}


def pass_state(**fields: Any) -> dict[str, Any]:
    return {"Type": "Pass", "Next": "Done", **fields}


def task_state(**fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": ARN, "Next": "Done", **fields}


def wait_state(**fields: Any) -> dict[str, Any]:
    return {"Type": "Wait", "Next": "Done", **fields}


def choice_state(rule: dict[str, Any]) -> dict[str, Any]:
    return {"Type": "Choice", "Choices": [{**rule, "Next": "Done"}], "Default": "Done"}


S = "/States/S"
PATH_PLACES = (
    Place(name="InputPath", where=f"{S}/InputPath", state=lambda v: pass_state(InputPath=v)),
    Place(name="OutputPath", where=f"{S}/OutputPath", state=lambda v: pass_state(OutputPath=v)),
    Place(name="ResultPath", where=f"{S}/ResultPath", state=lambda v: task_state(ResultPath=v)),
    Place(
        name="Parameters .$",
        where=f"{S}/Parameters/v.$",
        state=lambda v: pass_state(Parameters={"v.$": v}),
    ),
    Place(
        name="ResultSelector .$",
        where=f"{S}/ResultSelector/v.$",
        state=lambda v: task_state(ResultSelector={"v.$": v}),
    ),
    Place(
        name="Catch ResultPath",
        where=f"{S}/Catch/0/ResultPath",
        state=lambda v: task_state(
            Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Done", "ResultPath": v}]
        ),
    ),
    Place(
        name="Choice Variable",
        where=f"{S}/Choices/0/Variable",
        state=lambda v: choice_state({"Variable": v, "IsPresent": True}),
    ),
    Place(
        name="Choice path operand",
        where=f"{S}/Choices/0/NumericEqualsPath",
        state=lambda v: choice_state({"Variable": "$.n", "NumericEqualsPath": v}),
    ),
    Place(name="SecondsPath", where=f"{S}/SecondsPath", state=lambda v: wait_state(SecondsPath=v)),
    Place(
        name="TimestampPath",
        where=f"{S}/TimestampPath",
        state=lambda v: wait_state(TimestampPath=v),
    ),
    Place(
        name="TimeoutSecondsPath",
        where=f"{S}/TimeoutSecondsPath",
        state=lambda v: task_state(TimeoutSecondsPath=v),
    ),
    Place(
        name="ErrorPath",
        where=f"{S}/ErrorPath",
        state=lambda v: {"Type": "Fail", "ErrorPath": v},
    ),
)
TIMESTAMP_PLACES = (
    Place(name="Wait Timestamp", where=f"{S}/Timestamp", state=lambda v: wait_state(Timestamp=v)),
    Place(
        name="Choice Timestamp operand",
        where=f"{S}/Choices/0/TimestampEquals",
        state=lambda v: choice_state({"Variable": "$.t", "TimestampEquals": v}),
    ),
)
PLACES = PATH_PLACES + TIMESTAMP_PLACES


def named(*names: str) -> tuple[Place, ...]:
    """The places with these names."""
    return tuple(place for place in PLACES if place.name in names)


PATH_READERS = named(
    "InputPath",
    "OutputPath",
    "Parameters .$",
    "ResultSelector .$",
    "Choice Variable",
    "Choice path operand",
    "ErrorPath",
)
EXPRESSIONS = named("Parameters .$", "ResultSelector .$", "ErrorPath")


# -- the values ----------------------------------------------------------------------------------

VALID_PATHS = [
    "$",
    "$.a",
    "$.a.b",
    "$['a b']",
    '$["q"]',
    "$.list[0]",
    "$.list[-1].k",
    "$.list[*].k",
    "$.*",
    "$.n",
    "$.t",
    "$.missing",
    "$$",
    "$$.Execution.Input",
    "$$.State.RetryCount",
    "$.list[0:2]",
    "$.list[1:]",
    "$.missing[:1].k",
    "$['a\\'b']",
]
MALFORMED_PATHS = [
    "$.a[",
    "",
    "a",
    "$.",
    "$..a",
    "$[",
    "$[x]",
    "$['a]",
    "$a",
    "$.a[?(@.b && @.c)]",
    "$.a[0:2:1]",
    "$.a[1:x]",
    "$.a[0,1]",
    "$[1_0]",
    "$$$",
    "States.UUID()",
]
NOT_STRINGS = [None, 0, 1.5, True, [], {"a": 1}]
PATHS = (
    st.sampled_from(VALID_PATHS + MALFORMED_PATHS + NOT_STRINGS)
    | st.text(alphabet="$.[]*'\"\\a0-1@?(),: ", max_size=12)
    | st.text(alphabet="$.[]*'a0", max_size=8).map(lambda text: "$" + text)
    | st.text(max_size=8)
)

TIMESTAMP_EDGES = [
    "2024-08-18T12:00:05Z",
    "2024-08-18T12:00:05.243167252Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+00:01",
    "0001-01-01T00:00:00-00:01",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999999Z",
    "9999-12-31T23:59:59-00:01",
    "2016-12-31T23:59:60Z",
    "2024-08-18T24:00:00Z",
    "2024-02-29T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2024-08-18T17:33:00+00:00",
    "2024-08-18T17:33:00-00:00",
    "2024-08-18T17:33:00+23:59",
    "2024-08-18T17:33:00+24:00",
    "2024-08-18T17:33:00+0200",
    "2024-08-18t17:33:00z",
    "2024-08-18T17:33:00",
    "2024-08-18 17:33:00Z",
    "\uff12\uff10\uff12\uff14-08-18T17:33:00Z",
    "{% $now() %}",
    "",
    1723995180,
    None,
]
BUILT_TIMESTAMPS = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}{}".format,
    st.integers(0, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from(["", ".5", ".000", ".243167252", "."]),
    st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+01:00", "-12:30", "+23:59", "+24:00"]),
)
TIMESTAMPS = (
    st.sampled_from(TIMESTAMP_EDGES)
    | BUILT_TIMESTAMPS
    | st.text(alphabet="0123456789-:TZz+. ", max_size=26)
)

FUNCTION_NAMES = st.sampled_from([*sorted(ARITY), "States.Nope", "States.format", "Format"])
LITERALS = st.sampled_from(["'x'", "'{} and {}'", "'it\\'s'", "1", "-2.5", "1e3", "1e999"])
ARGUMENTS = st.recursive(
    LITERALS | st.sampled_from(["true", "null", "nope", *VALID_PATHS[:8], *MALFORMED_PATHS[:5]]),
    lambda inner: st.builds(
        lambda name, args: f"{name}({', '.join(args)})", FUNCTION_NAMES, st.lists(inner, max_size=3)
    ),
    max_leaves=6,
)
CALLS = st.builds(
    lambda name, args: f"{name}({', '.join(args)})", FUNCTION_NAMES, st.lists(ARGUMENTS, max_size=3)
)
WELL_FORMED_ARGUMENTS = st.sampled_from(
    ["'x'", "'{}'", "1", "-2.5", "true", "null", "$.a", "$.list", "$$.Execution.Input"]
)
WELL_FORMED_CALLS = st.sampled_from(sorted(ARITY)).flatmap(
    lambda name: st.lists(
        WELL_FORMED_ARGUMENTS,
        min_size=ARITY[name][0],
        max_size=ARITY[name][1] or ARITY[name][0] + 2,
    ).map(lambda args: f"{name}({', '.join(args)})")
)
INTRINSICS = (
    WELL_FORMED_CALLS
    | CALLS
    | st.builds(lambda call, cut: call[:cut], CALLS, st.integers(0, 40))
    | st.builds(lambda call, junk: call + junk, CALLS, st.sampled_from([")", " x", ",", "'"]))
    | st.text(alphabet="Format()$.,' a1[]", max_size=16).map(lambda text: "States." + text)
)

INPUTS = st.fixed_dictionaries(
    {},
    optional={
        "a": st.sampled_from([{"b": 1}, "text", [1]]),
        "a b": st.just(2),
        "q": st.just("x"),
        "list": st.just([{"k": 1}, {"k": 2}]),
        "n": st.sampled_from([0, 3, -1, 1.5, "3"]),
        "t": st.sampled_from(TIMESTAMP_EDGES),
    },
) | st.sampled_from([None, [], "text"])


# -- running a state -----------------------------------------------------------------------------


def run(definition: dict[str, Any], state_input: Any) -> list[Decision]:
    """Enter S; for a Task, also hand it a result and a failure."""
    ctx = context("S", state_input)
    decisions: list[Decision] = [interpreter.enter(definition, "S", state_input, ctx, NOW)]
    if isinstance(decisions[0], CallTask):
        decisions.append(interpreter.task_succeeded(definition, "S", state_input, RESULT, ctx))
        decisions.append(
            interpreter.task_failed(definition, "S", state_input, "E", "c", (), NOW, lambda: 0.5)
        )
    return decisions


def parse_failures(decisions: list[Decision]) -> list[str]:
    """The causes of the decisions that fail on a parse error."""
    return [
        decision.cause
        for decision in decisions
        if isinstance(decision, Fail) and (decision.cause or "").startswith(INVALID_DEFINITION)
    ]


def assert_agree(place: Place, value: Any, state_input: Any) -> None:
    """check refuses `value` at `place` exactly when running the state fails to parse it."""
    definition = place.machine(value)
    errors = [  # a variable no Assign sets is a data error at run time, not a parse error
        finding
        for finding in validate(definition)
        if finding.severity == "error" and finding.code != UNASSIGNED_VARIABLE
    ]
    assert all(finding.where == place.where for finding in errors), (place.name, value, errors)
    failures = parse_failures(run(definition, state_input))
    if errors:
        assert failures, f"check refuses {value!r} in {place.name} ({errors}); the runtime ran it"
    else:
        assert not failures, f"check accepts {value!r} in {place.name}; the runtime: {failures}"


# -- the rule ------------------------------------------------------------------------------------


@given(PATHS, INPUTS)
def test_check_and_runtime_agree_on_paths(value: Any, state_input: Any) -> None:
    """A path check accepts in any field parses at run time; one it refuses does not."""
    for place in PLACES:
        assert_agree(place, value, state_input)


@given(TIMESTAMPS, INPUTS)
def test_check_and_runtime_agree_on_timestamps(value: Any, state_input: Any) -> None:
    """A timestamp check accepts in any field parses at run time; one it refuses does not."""
    for place in PLACES:
        assert_agree(place, value, state_input)


@given(INTRINSICS, INPUTS)
def test_check_and_runtime_agree_on_intrinsics(value: str, state_input: Any) -> None:
    """An intrinsic call check accepts in any field parses at run time; one it refuses does not."""
    for place in PLACES:
        assert_agree(place, value, state_input)


@given(TIMESTAMPS)
def test_timestamps_in_the_data_are_data_errors(value: Any) -> None:
    """A TimestampPath reading any value never fails on a parse error: the data is at fault."""
    (place,) = named("TimestampPath")
    assert not parse_failures(run(place.machine("$.t"), {"t": value}))


# -- the definitions that used to pass check and fail every execution ----------------------------


@pytest.mark.parametrize(
    ("place", "value", "problem"),
    [
        pytest.param(
            *named("InputPath"),
            "$.a[",
            "Invalid path '$.a[': missing ']'",
            id="inputpath-open-bracket",
        ),
        pytest.param(
            *named("Wait Timestamp"),
            "0000-01-01T00:00:00Z",
            "Timestamp 0000-01-01T00:00:00Z is before the year 0001, which stepd cannot represent",
            id="wait-timestamp-year-0000",
        ),
    ],
)
def test_check_reports_what_the_runtime_fails_on(place: Place, value: str, problem: str) -> None:
    """check refuses the definition with the problem every execution of it fails on."""
    definition = place.machine(value)
    finding = Finding(
        where=place.where, code=SCHEMA_VALIDATION_FAILED, message=problem, severity="error"
    )
    expected = ([finding], [Fail(error="States.Runtime", cause=INVALID_DEFINITION + problem)])
    assert expected == (validate(definition), run(definition, {"a": {"b": 1}}))


@pytest.mark.parametrize(
    ("places", "value"),
    [
        *(pytest.param(PATH_PLACES, path, id=path) for path in ["$", "$.a.b", "$['a b'][-1]"]),
        pytest.param(PATH_READERS, "$.list[*].k", id="wildcard"),
        pytest.param(PATH_READERS, "$$.Execution.Input", id="context"),
        pytest.param(TIMESTAMP_PLACES, "9999-12-31T23:59:59Z", id="9999"),
        pytest.param(TIMESTAMP_PLACES, "2024-08-18T17:33:00.5-05:30", id="offset"),
        pytest.param(EXPRESSIONS, "States.Format('{}', $.a)", id="intrinsic"),
        pytest.param(
            EXPRESSIONS, "States.Array(States.MathAdd($.n, 1), $$.State.Name)", id="nested"
        ),
    ],
)
def test_check_accepts_well_formed_values(places: tuple[Place, ...], value: str) -> None:
    """Well-formed values pass check in the fields made for them: the rule is not vacuous."""
    findings = {place.name: validate(place.machine(value)) for place in places}
    assert findings == {place.name: [] for place in places}


def test_each_place_puts_its_value_where_check_looks() -> None:
    """A malformed path in any place is refused at that place and nowhere else."""
    refused = {
        place.name: [finding.where for finding in validate(place.machine("$.a["))]
        for place in PLACES
    }
    assert refused == {place.name: [place.where] for place in PLACES}
