"""Bad input never crashes the pure core: generated definitions, inputs and task outcomes.

The validator answers with findings, the interpreter with a decision, the loader with a
DefinitionError; nothing else escapes. Definitions are drawn "valid-ish" (the right field
names with plausible and implausible values) and as plain garbage. Examples that once found
a crash are pinned with `@example`, so they fail on every run, not only on a lucky one.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import example, given

from stepd.asl import interpreter
from stepd.asl.decisions import (
    CallTask,
    Caught,
    Context,
    Fail,
    GoTo,
    RetryAt,
    Succeed,
    WaitUntil,
)
from stepd.asl.loader import load_definition, parse_definition_text
from stepd.asl.validate import Finding, validate
from stepd.errors import DefinitionError

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 8, 18, 12, 0, 0, 500000, tzinfo=UTC)
ENTERED = (GoTo, Succeed, Fail, WaitUntil, CallTask)
SUCCEEDED = (GoTo, Succeed, Fail, Caught)
FAILED = (RetryAt, Caught, Fail)
NAMES = ("A", "B", "C", "Wait", "Task", "Choice")
STATE_NAMES = st.sampled_from([*NAMES, "Missing"])
TYPES = ("Pass", "Task", "Wait", "Choice", "Succeed", "Fail", "Parallel", "Map", "Bogus", 7, None)

# -- JSON values -----------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "n", "s", "t", "list", "end", "start", "x.$", "é", ""])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["2024-08-18T12:00:05Z", "2024-08-18T12:00:05.123+02:00", "9999-12-31T23:59:59Z", "0"]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)

# -- the pieces of a definition --------------------------------------------------------------

PATHS = st.sampled_from(
    [
        "$",
        "$.a",
        "$.a.b",
        "$.n",
        "$.s",
        "$.list[0]",
        "$.list[-1]",
        "$.list[*]",
        "$..a",
        "$['a']",
        "$.a[?(@.b)]",
        "$$.Execution.Input",
        "$$.State.RetryCount",
        "$$.Nothing",
        "a",
        "$.",
        "$[",
        "",
    ]
) | st.text(alphabet="$.[]*'a0@?()", max_size=8)
INTRINSICS = st.sampled_from(
    [
        "States.Format('{} and {}', $.a, $.n)",
        "States.Format('{}')",
        "States.StringToJson($.s)",
        "States.JsonToString($.a)",
        "States.Array($.a, $.n, 1, 'x', null)",
        "States.ArrayPartition($.list, $.n)",
        "States.ArrayPartition($.list, 0)",
        "States.ArrayContains($.list, $.a)",
        "States.ArrayRange(1, 9999999, 1)",
        "States.ArrayRange(0, $.n, 0)",
        "States.ArrayGetItem($.list, $.n)",
        "States.ArrayLength($.a)",
        "States.ArrayUnique($.list)",
        "States.Base64Encode($.s)",
        "States.Base64Decode($.s)",
        "States.Hash($.s, 'SHA-256')",
        "States.Hash($.a, 'MD4')",
        "States.JsonMerge($.a, $.b, false)",
        "States.MathRandom($.n, 10)",
        "States.MathAdd($.n, 9223372036854775807)",
        "States.StringSplit($.s, ',')",
        "States.UUID()",
        "States.Nope()",
        "States.Format(",
        "States.MathAdd($.n,",
    ]
)
DYNAMIC = PATHS | INTRINSICS
TEMPLATE = st.recursive(
    st.dictionaries(st.sampled_from(["a", "b", "n"]), SCALARS, max_size=3),
    lambda inner: (
        st.dictionaries(st.sampled_from(["a", "b", "list"]), inner | SCALARS, max_size=3)
        | st.dictionaries(
            st.sampled_from(["a.$", "b.$", "n.$", "$"]), DYNAMIC | SCALARS, max_size=3
        )
    ),
    max_leaves=8,
)
ERRORS = st.sampled_from(
    [
        "States.ALL",
        "States.TaskFailed",
        "States.Timeout",
        "States.Runtime",
        "States.Http.StatusCode.503",
        "States.Http.Socket",
        "stepd.StepLate",
        "Custom",
    ]
)
BIG_NUMBERS = st.sampled_from([0, 1, 2, 99_999_999, 2**31, 2**63, 10**400, 1.5, -1, 1e308])
RETRIER = st.fixed_dictionaries(
    {"ErrorEquals": st.lists(ERRORS, min_size=0, max_size=3)},
    optional={
        "IntervalSeconds": BIG_NUMBERS | SCALARS,
        "MaxAttempts": BIG_NUMBERS | SCALARS,
        "BackoffRate": BIG_NUMBERS | SCALARS,
        "MaxDelaySeconds": BIG_NUMBERS | SCALARS,
        "JitterStrategy": st.sampled_from(["FULL", "NONE", "SOME", 1]),
    },
)
CATCHER = st.fixed_dictionaries(
    {"ErrorEquals": st.lists(ERRORS, max_size=3), "Next": st.sampled_from(NAMES)},
    optional={"ResultPath": PATHS | st.none()},
)
OPERATORS = st.sampled_from(
    [
        "StringEquals",
        "NumericEquals",
        "NumericLessThanPath",
        "BooleanEquals",
        "TimestampGreaterThan",
        "StringMatches",
        "IsPresent",
        "IsNull",
        "IsNumeric",
        "Bogus",
    ]
)
COMPARISON = st.builds(
    lambda variable, operator, operand: {"Variable": variable, operator: operand},
    PATHS,
    OPERATORS,
    SCALARS | PATHS,
)
RULE = st.recursive(
    COMPARISON,
    lambda inner: (
        st.fixed_dictionaries({"And": st.lists(inner, max_size=3)})
        | st.fixed_dictionaries({"Or": st.lists(inner, max_size=3)})
        | st.fixed_dictionaries({"Not": inner})
    ),
    max_leaves=4,
)
CHOICE_RULE = RULE.map(lambda rule: {**rule, "Next": "A"})
STATE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "Next": st.sampled_from(NAMES) | SCALARS,
    "End": st.booleans() | SCALARS,
    "InputPath": PATHS | st.none(),
    "OutputPath": PATHS | st.none(),
    "ResultPath": PATHS | st.none(),
    "Parameters": TEMPLATE | SCALARS,
    "ResultSelector": TEMPLATE | SCALARS,
    "Result": JSON,
    "Resource": st.sampled_from(["arn:aws:lambda:us-east-1:1:function:f", ""])
    | st.fixed_dictionaries({"Fn::GetAtt": st.just(["f", "Arn"])})
    | SCALARS,
    "TimeoutSeconds": BIG_NUMBERS | SCALARS,
    "TimeoutSecondsPath": PATHS,
    "HeartbeatSeconds": BIG_NUMBERS,
    "Retry": st.lists(RETRIER, max_size=3) | SCALARS,
    "Catch": st.lists(CATCHER, max_size=2) | SCALARS,
    "Seconds": BIG_NUMBERS | SCALARS,
    "SecondsPath": PATHS,
    "Timestamp": SCALARS,
    "TimestampPath": PATHS,
    "Choices": st.lists(CHOICE_RULE, max_size=3) | SCALARS,
    "Default": st.sampled_from(NAMES),
    "Error": st.text(max_size=8) | SCALARS,
    "Cause": st.text(max_size=8) | SCALARS,
    "ErrorPath": PATHS | INTRINSICS,
    "CausePath": PATHS | INTRINSICS,
    "QueryLanguage": st.sampled_from(["JSONPath", "JSONata", "Klingon"]),
    "Comment": SCALARS,
}
STATE = st.builds(
    lambda kind, fields: {"Type": kind, **fields},
    st.sampled_from(TYPES),
    st.dictionaries(st.sampled_from(sorted(STATE_FIELDS)), st.none(), max_size=7).flatmap(
        lambda chosen: st.fixed_dictionaries({k: STATE_FIELDS[k] for k in chosen})
    ),
)
VALID_ISH = st.fixed_dictionaries(
    {
        "StartAt": st.sampled_from(NAMES) | SCALARS,
        "States": st.dictionaries(st.sampled_from(NAMES), STATE, min_size=1, max_size=4),
    },
    optional={
        "Comment": SCALARS,
        "TimeoutSeconds": BIG_NUMBERS,
        "Version": SCALARS,
        "QueryLanguage": st.sampled_from(["JSONPath", "JSONata"]),
    },
)
GARBAGE = st.dictionaries(st.text(max_size=6) | KEYS, JSON, max_size=4) | st.fixed_dictionaries(
    {"StartAt": JSON, "States": JSON}
)
DEFINITIONS = VALID_ISH | GARBAGE
ANY_DEFINITION = DEFINITIONS | JSON
INPUTS = JSON | st.fixed_dictionaries(
    {},
    optional={
        "a": JSON,
        "b": JSON,
        "n": BIG_NUMBERS | st.integers(-5, 5),
        "s": st.sampled_from(['{"a": 1}', "a,b", "aGVsbG8=", "not json", ""]),
        "list": st.lists(JSON, max_size=4),
        "start": st.sampled_from(["2024-08-18T12:00:05Z", "garbage", "0000-01-01T00:00:00Z"]),
    },
)
MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 2),  # noqa: DTZ001 - hypothesis draws naive values; made UTC below
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
).map(lambda moment: moment.replace(tzinfo=UTC)) | st.just(NOW)
RETRY_COUNTS = st.lists(st.integers(0, 2**40), max_size=4).map(tuple)
RANDOMS = st.sampled_from([0.0, 0.5, 0.999999])


def context(state_name: str, execution_input: Any, now: datetime) -> Context:
    return Context(
        execution_id="arn:aws:states:us-east-1:123456789012:execution:m:e",
        execution_name="e",
        execution_input=execution_input,
        execution_start_time=now,
        state_machine_id="arn:aws:states:us-east-1:123456789012:stateMachine:m",
        state_machine_name="m",
        state_name=state_name,
        state_entered_time=now,
    )


def explain(definition: Any, **more: Any) -> str:
    return json.dumps({"definition": definition, **more}, default=repr)[:4000]


def retry_overflow_machine(**retrier: Any) -> dict[str, Any]:
    """A valid Task whose only retrier has the given fields (a crash once found here)."""
    return {
        "StartAt": "Task",
        "States": {
            "Task": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                "Retry": [{"ErrorEquals": ["States.ALL"], **retrier}],
                "End": True,
            }
        },
    }


# -- the validator ---------------------------------------------------------------------------


@given(ANY_DEFINITION)
def test_validate_answers_with_findings_only(definition: Any) -> None:
    """validate() returns a sorted list of findings for any JSON value; it never raises."""
    findings = validate(definition)

    assert isinstance(findings, list)
    assert all(isinstance(f, Finding) for f in findings), explain(definition)
    assert findings == validate(definition), "validate() must be deterministic"


# -- the interpreter -------------------------------------------------------------------------


@example(  # a Choice whose Choices is not a list (found by this test)
    {"StartAt": "Choice", "States": {"Choice": {"Type": "Choice", "Choices": None}}},
    "Choice",
    {},
    NOW,
)
@given(DEFINITIONS, STATE_NAMES, INPUTS, MOMENTS)
def test_enter_answers_with_a_decision(
    definition: Any, name: str, state_input: Any, now: datetime
) -> None:
    """enter() turns any state and input into a decision; a broken state is a Fail."""

    decision = interpreter.enter(
        definition, name, state_input, context(name, state_input, now), now
    )

    assert isinstance(decision, ENTERED), explain(definition, state=name, decision=decision)
    if isinstance(decision, WaitUntil):
        assert decision.until.tzinfo is not None


@example(  # a Catch that is not a list, reached through a ResultPath failure (found by this test)
    {"StartAt": "B", "States": {"B": {"Type": "Pass", "Catch": False, "ResultPath": "$.a"}}},
    "B",
    None,
    None,
    NOW,
)
@example(  # a Catch that is a list of non-objects (found by this test)
    {"StartAt": "B", "States": {"B": {"Type": "Task", "Catch": ["0"], "ResultPath": "$.a"}}},
    "B",
    None,
    [],
    NOW,
)
@example(  # an ErrorEquals that is not a list of strings
    {
        "StartAt": "B",
        "States": {"B": {"Type": "Task", "Catch": [{"ErrorEquals": 3}], "ResultPath": "$.a"}},
    },
    "B",
    None,
    [],
    NOW,
)
@given(DEFINITIONS, STATE_NAMES, INPUTS, JSON, MOMENTS)
def test_task_succeeded_answers_with_a_decision(
    definition: Any, name: str, state_input: Any, result: Any, now: datetime
) -> None:
    """task_succeeded() handles any result: ResultSelector/ResultPath failures are decisions."""

    decision = interpreter.task_succeeded(
        definition, name, state_input, result, context(name, state_input, now)
    )

    assert isinstance(decision, SUCCEEDED), explain(definition, state=name, decision=decision)


@example(  # BackoffRate is only bounded below: 1e308 ** 2 overflows a float
    retry_overflow_machine(IntervalSeconds=1, BackoffRate=1e308, MaxAttempts=5),
    "Task",
    "Custom",
    (2,),
    NOW,
    0.5,
)
@example(  # a valid, uncapped backoff grows past what a datetime can hold
    retry_overflow_machine(IntervalSeconds=99_999_999, BackoffRate=2, MaxAttempts=99_999_999),
    "Task",
    "States.Http.StatusCode.503",
    (40,),
    NOW,
    0.5,
)
@example(  # an integer BackoffRate too large for a float
    retry_overflow_machine(IntervalSeconds=1, BackoffRate=10**400, MaxAttempts=5),
    "Task",
    "States.Http.Socket",
    (1,),
    NOW,
    0.5,
)
@given(
    DEFINITIONS,
    STATE_NAMES | st.text(max_size=4),
    ERRORS | st.text(max_size=8),
    RETRY_COUNTS,
    MOMENTS,
    RANDOMS,
)
def test_task_failed_answers_with_a_decision(  # noqa: PLR0917 - hypothesis passes them by position
    definition: Any,
    name: str,
    error: str,
    retry_counts: tuple[int, ...],
    now: datetime,
    draw: float,
) -> None:
    """task_failed() retries, catches or fails for any retrier and counters; it never raises."""
    state_input = {"a": 1}

    decision = interpreter.task_failed(
        definition, name, state_input, error, "cause", retry_counts, now, _constant(draw)
    )

    assert isinstance(decision, FAILED), explain(definition, state=name, decision=decision)
    if isinstance(decision, RetryAt):
        assert decision.until >= now - timedelta(seconds=1)


@given(INPUTS, st.integers(0, 3), MOMENTS)
def test_validated_machines_run_to_a_decision(
    state_input: Any, attempts: int, now: datetime
) -> None:
    """The shipped classroom machine takes any input through enter/succeeded/failed cleanly."""
    definition = CLASSROOM
    for name in definition["States"]:
        ctx = context(name, state_input, now)
        assert isinstance(interpreter.enter(definition, name, state_input, ctx, now), ENTERED)
        assert isinstance(
            interpreter.task_succeeded(definition, name, state_input, state_input, ctx), SUCCEEDED
        )
        failed = interpreter.task_failed(
            definition, name, state_input, "States.Timeout", None, (attempts,), now, _constant(0.5)
        )
        assert isinstance(failed, FAILED)


# -- the loader ------------------------------------------------------------------------------

YAML_BITS = st.sampled_from(
    [
        "StartAt: A\n",
        "States:\n  A: {Type: Pass, End: true}\n",
        "a: &x [1, 2]\nb: *x\n",
        "a: &a [*a]\n",
        "!GetAtt fn.Arn\n",
        "!!python/object:os.system ls\n",
        "? [1, 2]\n: 3\n",
        "a: 1\na: 2\n",
        "stepFunctions:\n  stateMachines:\n    m:\n      definition: {}\n",
        "stepFunctions: {stateMachines: []}\n",
        "---\n...\n",
        "{",
        "[1, 2",
        '{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}',
        '{"a": NaN}',
        '{"a": 1, "a": 2}',
        "\t- x\n",
        "\x00\x01",
        "\ufeffStartAt: A",
        "a: 2024-08-18\n",
        "a: yes\n",
        "x: " + "[" * 200 + "]" * 200 + "\n",
    ]
)
DOCUMENTS = (
    st.lists(YAML_BITS | st.text(max_size=40), max_size=5).map("".join)
    | JSON.map(json.dumps)
    | DEFINITIONS.map(json.dumps)
    | st.text(alphabet=string.printable, max_size=200)
)
SOURCES = st.sampled_from(["machine.json", "machine.yaml", "serverless.yml", "machine.txt", ""])


@example("StartAt: A\n\0\0\0\0", "machine.yaml", None)  # a file cut short, zeros after
@example('{"a": ' * 5000 + "1" + "}" * 5000, "deep.json", None)
@example("a: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml", None)
@given(DOCUMENTS, SOURCES, st.none() | st.sampled_from(["m", "other"]))
def test_parse_definition_text_raises_only_definition_errors(
    text: str, source: str, key: str | None
) -> None:
    """Any text parses to a definition or raises DefinitionError, naming the source."""
    try:
        loaded = parse_definition_text(text, source, key)
    except DefinitionError as exc:
        refused = str(exc)
        assert refused, "a DefinitionError says what is wrong"
        return
    assert isinstance(loaded.definition, dict)
    json.dumps(loaded.definition)  # what the store snapshots must be JSON


def _constant(value: float) -> Callable[[], float]:
    return lambda: value


CLASSROOM = load_definition(ROOT / "config" / "classroom.asl.yaml").definition
