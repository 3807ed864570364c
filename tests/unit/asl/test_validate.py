"""Validating definitions as AWS does at CreateStateMachine, plus stepd's data-flow warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stepd.asl.loader import load_definition
from stepd.asl.validate import (
    DATA_REPLACED_BY_TASK,
    DUPLICATE_STATE_NAME,
    INVALID_RESOURCE,
    INVALID_STATE_NAME,
    ITEM_READER_NOT_RUN,
    MISSING_END_STATE,
    MISSING_TRANSITION_TARGET,
    NO_DOLLAR,
    NO_PATH,
    PASS_RESULT_IS_STATIC,
    RESULT_WRITER_NOT_RUN,
    SCHEMA_VALIDATION_FAILED,
    TOO_DEEPLY_NESTED,
    UNASSIGNED_VARIABLE,
    Finding,
    validate,
)

FIXTURES = Path(__file__).parent / "fixtures"
CONFIG = Path(__file__).parents[3] / "config"

SVF = SCHEMA_VALIDATION_FAILED
MTT = MISSING_TRANSITION_TARGET
ARN = "arn:aws:lambda:ap-southeast-1:123456789012:function:f"
SUCCEED = {"Type": "Succeed"}


def flow(next_state: str | None) -> dict[str, Any]:
    """Next when a next state is given, else End."""
    return {"End": True} if next_state is None else {"Next": next_state}


def task(next_state: str | None = None, **fields: Any) -> dict[str, Any]:
    """A Task state going to `next_state`, or ending the machine."""
    return {"Type": "Task", "Resource": ARN, **flow(next_state), **fields}


def wait(next_state: str | None = None, **fields: Any) -> dict[str, Any]:
    """A Wait state going to `next_state`, or ending the machine."""
    return {"Type": "Wait", **flow(next_state), **fields}


def machine(**states: Any) -> dict[str, Any]:
    """A machine starting at its first state."""
    return {"StartAt": next(iter(states)), "States": states}


def one(state: Any) -> dict[str, Any]:
    """A machine of the single state S."""
    return machine(S=state)


def choice(*rules: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A machine whose Choice state C chooses among `rules` and may go to Done."""
    return machine(C={"Type": "Choice", "Choices": list(rules), **fields}, Done=SUCCEED)


def is_null(variable: str = "$.x") -> dict[str, Any]:
    """A nested Choice rule."""
    return {"Variable": variable, "IsNull": True}


def to_done(rule: dict[str, Any]) -> dict[str, Any]:
    """A top-level Choice rule going to Done."""
    return {**rule, "Next": "Done"}


def retry(**fields: Any) -> dict[str, Any]:
    """A machine whose Task has one retrier."""
    return one(task(Retry=[{"ErrorEquals": ["States.TaskFailed"], **fields}]))


def catch(*catchers: dict[str, Any]) -> dict[str, Any]:
    """A machine whose Task S catches into Handler."""
    return machine(S=task(Catch=list(catchers)), Handler=SUCCEED)


def parallel(*branches: Any, **fields: Any) -> dict[str, Any]:
    """A machine of one Parallel state P."""
    return machine(P={"Type": "Parallel", "Branches": list(branches), "End": True, **fields})


def map_state(**fields: Any) -> dict[str, Any]:
    """A machine of one Map state M."""
    return machine(M={"Type": "Map", "End": True, **fields})


def parameters(**template: Any) -> dict[str, Any]:
    """A machine whose Task has `template` as Parameters."""
    return one(task(Parameters=template))


BRANCH = machine(B=SUCCEED)


def codes(definition: Any) -> list[tuple[str, str]]:
    """The (where, code) of every finding."""
    return [(finding.where, finding.code) for finding in validate(definition)]


FIXED_CLASSROOM = machine(
    RecordingWait=wait("StartRecording", TimestampPath="$.start"),
    StartRecording=task("SendLivePingWait", ResultPath=None),
    SendLivePingWait=wait("SendLivePing", Seconds=60),
    SendLivePing=task("StoppingWait", ResultPath=None),
    StoppingWait=wait("StopRecording", TimestampPath="$.end"),
    StopRecording=task(ResultPath=None),
)


# The seed and the shipped examples ----------------------------------------------------------


def test_seed_send_live_ping_is_unreachable() -> None:
    """The blog post's machine is refused: SendLivePing can never run."""
    definition = load_definition(FIXTURES / "seed-serverless.yml").definition
    errors = [f for f in validate(definition) if f.severity == "error"]
    expected = [
        Finding(
            where="/States/SendLivePing",
            code=MTT,
            message='State "SendLivePing" is not reachable',
            severity="error",
        )
    ]
    assert expected == errors


def test_seed_data_replaced_warning() -> None:
    """The blog post's StoppingWait reads $.end after StartRecording's result replaced the data."""
    definition = load_definition(FIXTURES / "seed-serverless.yml").definition
    warnings = [f for f in validate(definition) if f.severity == "warning"]
    expected = [
        Finding(
            where="/States/StoppingWait",
            code=DATA_REPLACED_BY_TASK,
            message='State "StoppingWait" reads $.end, but the data may have been replaced by '
            'the result of Task "StartRecording" (no ResultPath, so ResultPath defaults to "$"); '
            "set ResultPath (e.g. null) to keep the input",
            severity="warning",
        )
    ]
    assert expected == warnings


def test_fixed_classroom_is_clean() -> None:
    """The intended classroom machine, with ResultPath null on its Tasks, has no findings."""
    expected: list[Any] = []
    assert expected == validate(FIXED_CLASSROOM)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        pytest.param("classroom.asl.yaml", None, id="classroom.asl.yaml"),
        pytest.param("serverless.yml", "classroom", id="serverless.yml"),
    ],
)
def test_shipped_examples_are_clean(name: str, key: str | None) -> None:
    """Both shipped examples validate without errors or warnings."""
    expected: list[Any] = []
    assert expected == validate(load_definition(CONFIG / name, key).definition)


# One row per rule ---------------------------------------------------------------------------

RULES = [
    # top level
    pytest.param({"States": {"S": SUCCEED}}, [("/StartAt", SVF)], id="startat-missing"),
    pytest.param({"StartAt": "S"}, [("/States", SVF)], id="states-missing"),
    pytest.param({"StartAt": "S", "States": {}}, [("/States", SVF)], id="states-empty"),
    pytest.param(
        {"StartAt": "X", "States": {"S": SUCCEED}}, [("/StartAt", MTT)], id="startat-unknown"
    ),
    pytest.param({**one(SUCCEED), "Foo": 1}, [("/Foo", SVF)], id="top-level-unknown-field"),
    pytest.param(
        {**one(SUCCEED), "Version": "1.0", "Comment": "c"}, [], id="top-level-optional-fields"
    ),
    pytest.param(
        {**one(SUCCEED), "TimeoutSeconds": 0}, [("/TimeoutSeconds", SVF)], id="machine-timeout-zero"
    ),
    pytest.param({**one(SUCCEED), "TimeoutSeconds": 3600}, [], id="machine-timeout-ok"),
    pytest.param({**one(SUCCEED), "QueryLanguage": "JSONata"}, [], id="jsonata"),
    pytest.param(
        {**one(SUCCEED), "QueryLanguage": "XPath"}, [("/QueryLanguage", SVF)], id="query-xpath"
    ),
    pytest.param(
        {"QueryLanguage": "JSONata", **one({**SUCCEED, "QueryLanguage": "JSONPath"})},
        [("/States/S/QueryLanguage", SVF)],
        id="jsonpath-state-in-jsonata-machine",
    ),
    pytest.param(
        one({"Type": "Pass", "QueryLanguage": "JSONata", "InputPath": "$.a", "End": True}),
        [("/States/S/InputPath", SVF)],
        id="jsonata-state-refuses-inputpath",
    ),
    pytest.param(
        one({"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% 1 + %}", "End": True}),
        [("/States/S/Output", SVF)],
        id="jsonata-bad-expression",
    ),
    pytest.param(
        one({"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $x %}", "End": True}),
        [("/States/S/Output", UNASSIGNED_VARIABLE)],
        id="jsonata-unassigned-variable",
    ),
    pytest.param(
        one(
            {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Assign": {"x": 1},
                "Output": "{% ($y := $x; $sum([$y, $states.input.n])) %}",
                "End": True,
            }
        ),
        [],
        id="jsonata-assigned-local-and-function",
    ),
    pytest.param(
        one({"Type": "Pass", "Parameters": {"a.$": "$missing.b"}, "End": True}),
        [("/States/S/Parameters/a.$", UNASSIGNED_VARIABLE)],
        id="jsonpath-unassigned-variable",
    ),
    pytest.param(
        one({"Type": "Pass", "Assign": {"m.$": "$.a"}, "Parameters": {"a.$": "$m"}, "End": True}),
        [],
        id="jsonpath-assigned-variable",
    ),
    pytest.param({**one(SUCCEED), "QueryLanguage": "JSONPath"}, [], id="jsonpath"),
    pytest.param([], [("", SVF)], id="not-an-object"),
    # states in general
    pytest.param(one({"Type": "Sleep", "End": True}), [("/States/S/Type", SVF)], id="type-unknown"),
    pytest.param(
        one({"Next": "S"}), [("/States", MISSING_END_STATE), ("/States/S", SVF)], id="type-missing"
    ),
    pytest.param(
        one("Succeed"), [("/States", MISSING_END_STATE), ("/States/S", SVF)], id="state-not-object"
    ),
    pytest.param(one(task(Foo=1)), [("/States/S/Foo", SVF)], id="task-unknown-field"),
    pytest.param(one({**SUCCEED, "Comment": "done"}), [], id="comment-allowed"),
    pytest.param(one({**SUCCEED, "Next": "S"}), [("/States/S/Next", SVF)], id="succeed-with-next"),
    pytest.param(one({**SUCCEED, "End": True}), [("/States/S/End", SVF)], id="succeed-with-end"),
    pytest.param(
        one({"Type": "Fail", "InputPath": "$"}),
        [("/States/S/InputPath", SVF)],
        id="fail-with-inputpath",
    ),
    pytest.param(machine(S=task("T"), T=SUCCEED), [], id="task-next"),
    pytest.param(
        machine(S=task("T"), T=SUCCEED, U=SUCCEED), [("/States/U", MTT)], id="state-unreachable"
    ),
    pytest.param(
        machine(S=task(Next="Nowhere"), T=SUCCEED),
        [("/States/S", SVF), ("/States/S/Next", MTT), ("/States/T", MTT)],
        id="next-and-end",
    ),
    pytest.param(
        machine(S=task(End=False, Next="T"), T=SUCCEED),
        [("/States/S", SVF), ("/States/S/End", SVF)],
        id="end-false-with-next",
    ),
    pytest.param(
        one({"Type": "Task", "Resource": ARN}),
        [("/States", MISSING_END_STATE), ("/States/S", SVF)],
        id="neither-next-nor-end",
    ),
    pytest.param(
        machine(S={"Type": "Pass", "Next": "Nowhere"}, T=SUCCEED),
        [("/States/S/Next", MTT), ("/States/T", MTT)],
        id="next-target-missing",
    ),
    pytest.param(
        machine(S={"Type": "Pass", "Next": 3}, T=SUCCEED),
        [("/States/S/Next", SVF), ("/States/T", MTT)],
        id="next-not-a-string",
    ),
    pytest.param(
        machine(A={"Type": "Pass", "Next": "B"}, B={"Type": "Pass", "Next": "A"}),
        [("/States", MISSING_END_STATE)],
        id="no-terminal-state",
    ),
    pytest.param(one({"Type": "Fail"}), [], id="fail-is-terminal"),
    pytest.param(
        one({**SUCCEED, "InputPath": "data"}),
        [("/States/S/InputPath", SVF)],
        id="inputpath-not-a-path",
    ),
    pytest.param(
        one({**SUCCEED, "InputPath": "$.a["}),
        [("/States/S/InputPath", SVF)],
        id="inputpath-malformed",
    ),
    pytest.param(one({**SUCCEED, "OutputPath": "$..a"}), [], id="outputpath-deep-scan"),
    pytest.param(
        one({**SUCCEED, "OutputPath": "$..[0]"}),
        [("/States/S/OutputPath", SVF)],
        id="outputpath-deep-scan-of-index",
    ),
    pytest.param(
        one(task(ResultPath="$..a")), [("/States/S/ResultPath", SVF)], id="resultpath-deep-scan"
    ),
    pytest.param(
        one(task(ResultPath="$.a[0,1]")), [("/States/S/ResultPath", SVF)], id="resultpath-union"
    ),
    pytest.param(
        one(wait(SecondsPath="$['a','b']")),
        [("/States/S/SecondsPath", SVF)],
        id="wait-secondspath-union",
    ),
    pytest.param(one({**SUCCEED, "InputPath": "$.a[*].b"}), [], id="inputpath-wildcard"),
    pytest.param(one({**SUCCEED, "InputPath": None, "OutputPath": None}), [], id="paths-null"),
    pytest.param(
        one(task(ResultPath="$.a[*]")), [("/States/S/ResultPath", SVF)], id="resultpath-wildcard"
    ),
    pytest.param(
        one(wait(SecondsPath="$.s[*]")),
        [("/States/S/SecondsPath", SVF)],
        id="wait-secondspath-wildcard",
    ),
    pytest.param(
        one(task(TimeoutSecondsPath="$.t.*")),
        [("/States/S/TimeoutSecondsPath", SVF)],
        id="task-timeoutsecondspath-wildcard",
    ),
    pytest.param(
        catch({"ErrorEquals": ["E"], "Next": "Handler", "ResultPath": "$$.error"}),
        [("/States/S/Catch/0/ResultPath", SVF)],
        id="catch-resultpath-context",
    ),
    pytest.param(
        one(task(ResultPath="$$.x")), [("/States/S/ResultPath", SVF)], id="resultpath-context"
    ),
    pytest.param(one(task(ResultPath="$.result")), [], id="resultpath-ok"),
    pytest.param(
        machine(**{"x" * 81: SUCCEED}),
        [("/States/" + "x" * 81, INVALID_STATE_NAME)],
        id="name-81-chars",
    ),
    pytest.param(machine(**{"x" * 80: SUCCEED}), [], id="name-80-chars"),
    pytest.param(machine(**{"a/b~c": SUCCEED}), [], id="name-with-slash"),
    pytest.param(
        machine(**{"a/b": {"Type": "Pass", "Next": "a/b", "Foo": 1}}, Done=SUCCEED),
        [("/States/Done", MTT), ("/States/a~1b/Foo", SVF)],
        id="pointer-escaping",
    ),
    # Task
    pytest.param(
        one({"Type": "Task", "End": True}), [("/States/S", SVF)], id="task-resource-missing"
    ),
    pytest.param(
        one(task(Resource=7)), [("/States/S/Resource", INVALID_RESOURCE)], id="task-resource-number"
    ),
    pytest.param(
        one(task(Resource="")), [("/States/S/Resource", INVALID_RESOURCE)], id="task-resource-empty"
    ),
    pytest.param(one(task(Resource={"Fn::GetAtt": ["fn", "Arn"]})), [], id="task-resource-getatt"),
    pytest.param(one(task(Resource={"Ref": "fnAlias"})), [], id="task-resource-ref"),
    pytest.param(one(task(Resource="${self:custom.fn}")), [], id="task-resource-variable"),
    pytest.param(
        one(task(Resource={"Foo": "x"})),
        [("/States/S/Resource", INVALID_RESOURCE)],
        id="task-resource-odd-object",
    ),
    pytest.param(
        one(task(TimeoutSeconds=0)), [("/States/S/TimeoutSeconds", SVF)], id="timeout-zero"
    ),
    pytest.param(
        one(task(TimeoutSeconds=1.5)), [("/States/S/TimeoutSeconds", SVF)], id="timeout-fraction"
    ),
    pytest.param(
        one(task(TimeoutSeconds=100_000_000)),
        [("/States/S/TimeoutSeconds", SVF)],
        id="timeout-too-large",
    ),
    pytest.param(one(task(TimeoutSeconds=99_999_999)), [], id="timeout-max"),
    pytest.param(
        one(task(TimeoutSeconds=5, TimeoutSecondsPath="$.t")),
        [("/States/S", SVF)],
        id="timeout-and-path",
    ),
    pytest.param(
        one(task(TimeoutSecondsPath="t")),
        [("/States/S/TimeoutSecondsPath", SVF)],
        id="timeout-path-not-a-path",
    ),
    pytest.param(
        one(task(HeartbeatSeconds=0)), [("/States/S/HeartbeatSeconds", SVF)], id="heartbeat-zero"
    ),
    pytest.param(
        one(task(HeartbeatSeconds=5, HeartbeatSecondsPath="$.h")),
        [("/States/S", SVF)],
        id="heartbeat-and-path",
    ),
    pytest.param(
        one(task(TimeoutSeconds=10, HeartbeatSeconds=10)),
        [("/States/S/HeartbeatSeconds", SVF)],
        id="heartbeat-not-below-timeout",
    ),
    pytest.param(
        one(task(TimeoutSeconds=10, HeartbeatSeconds=9)), [], id="heartbeat-below-timeout"
    ),
    # Wait
    pytest.param(one(wait()), [("/States/S", SVF)], id="wait-no-duration"),
    pytest.param(
        one(wait(Seconds=1, SecondsPath="$.s")), [("/States/S", SVF)], id="wait-two-durations"
    ),
    pytest.param(one(wait(Seconds=-1)), [("/States/S/Seconds", SVF)], id="wait-seconds-negative"),
    pytest.param(one(wait(Seconds=1.5)), [("/States/S/Seconds", SVF)], id="wait-seconds-fraction"),
    pytest.param(one(wait(Seconds=True)), [("/States/S/Seconds", SVF)], id="wait-seconds-boolean"),
    pytest.param(one(wait(Seconds="10")), [("/States/S/Seconds", SVF)], id="wait-seconds-string"),
    pytest.param(
        one(wait(Seconds=100_000_000)), [("/States/S/Seconds", SVF)], id="wait-seconds-too-large"
    ),
    pytest.param(one(wait(Seconds=0)), [], id="wait-seconds-zero"),
    pytest.param(one(wait(Seconds=99_999_999)), [], id="wait-seconds-max"),
    pytest.param(
        one(wait(SecondsPath="seconds")),
        [("/States/S/SecondsPath", SVF)],
        id="wait-secondspath-not-a-path",
    ),
    pytest.param(one(wait(TimestampPath="$.start")), [], id="wait-timestamppath"),
    pytest.param(
        one(wait(TimestampPath="start")),
        [("/States/S/TimestampPath", SVF)],
        id="wait-timestamppath-not-a-path",
    ),
    # Retry
    pytest.param(
        retry(
            IntervalSeconds=2,
            MaxAttempts=5,
            BackoffRate=2,
            MaxDelaySeconds=30,
            JitterStrategy="FULL",
        ),
        [],
        id="retry-all-fields",
    ),
    pytest.param(
        retry(IntervalSeconds=0),
        [("/States/S/Retry/0/IntervalSeconds", SVF)],
        id="retry-interval-zero",
    ),
    pytest.param(
        retry(IntervalSeconds=1.5),
        [("/States/S/Retry/0/IntervalSeconds", SVF)],
        id="retry-interval-fraction",
    ),
    pytest.param(
        retry(MaxAttempts=-1),
        [("/States/S/Retry/0/MaxAttempts", SVF)],
        id="retry-attempts-negative",
    ),
    pytest.param(retry(MaxAttempts=0), [], id="retry-attempts-zero"),
    pytest.param(
        retry(BackoffRate=0.5),
        [("/States/S/Retry/0/BackoffRate", SVF)],
        id="retry-backoff-below-one",
    ),
    pytest.param(retry(BackoffRate=1.0), [], id="retry-backoff-one"),
    pytest.param(
        retry(MaxDelaySeconds=0),
        [("/States/S/Retry/0/MaxDelaySeconds", SVF)],
        id="retry-maxdelay-zero",
    ),
    pytest.param(
        retry(MaxDelaySeconds=31_622_401),
        [("/States/S/Retry/0/MaxDelaySeconds", SVF)],
        id="retry-maxdelay-too-large",
    ),
    pytest.param(retry(MaxDelaySeconds=31_622_400), [], id="retry-maxdelay-max"),
    pytest.param(
        retry(JitterStrategy="SOME"),
        [("/States/S/Retry/0/JitterStrategy", SVF)],
        id="retry-jitter-unknown",
    ),
    pytest.param(retry(Foo=1), [("/States/S/Retry/0/Foo", SVF)], id="retry-unknown-field"),
    pytest.param(
        retry(ErrorEquals=[]), [("/States/S/Retry/0/ErrorEquals", SVF)], id="errorequals-empty"
    ),
    pytest.param(
        one(task(Retry=[{"MaxAttempts": 1}])),
        [("/States/S/Retry/0/ErrorEquals", SVF)],
        id="errorequals-missing",
    ),
    pytest.param(
        retry(ErrorEquals=["States.ALL", "Custom"]),
        [("/States/S/Retry/0/ErrorEquals", SVF)],
        id="states-all-not-alone",
    ),
    pytest.param(
        one(task(Retry=[{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["E"]}])),
        [("/States/S/Retry/0/ErrorEquals", SVF)],
        id="states-all-not-last",
    ),
    pytest.param(
        one(task(Retry=[{"ErrorEquals": ["E"]}, {"ErrorEquals": ["States.ALL"]}])),
        [],
        id="states-all-last",
    ),
    pytest.param(
        retry(ErrorEquals=["States.Custom"]),
        [("/States/S/Retry/0/ErrorEquals", SVF)],
        id="error-name-reserved",
    ),
    pytest.param(
        retry(ErrorEquals=["States.Timeout", "States.Http.Socket", "Lambda.ServiceException"]),
        [],
        id="error-names-known",
    ),
    pytest.param(
        one(task(Retry={"ErrorEquals": ["E"]})), [("/States/S/Retry", SVF)], id="retry-not-a-list"
    ),
    # Catch
    pytest.param(
        catch({"ErrorEquals": ["States.ALL"], "Next": "Handler", "ResultPath": "$.error"}),
        [],
        id="catch-ok",
    ),
    pytest.param(
        catch({"ErrorEquals": ["States.ALL"], "Next": "Nowhere"}),
        [("/States/Handler", MTT), ("/States/S/Catch/0/Next", MTT)],
        id="catch-target-missing",
    ),
    pytest.param(
        catch({"ErrorEquals": ["States.ALL"]}),
        [("/States/Handler", MTT), ("/States/S/Catch/0", SVF)],
        id="catch-next-missing",
    ),
    pytest.param(
        catch({"ErrorEquals": ["E"], "Next": "Handler", "ResultPath": "error"}),
        [("/States/S/Catch/0/ResultPath", SVF)],
        id="catch-resultpath-not-a-path",
    ),
    pytest.param(
        catch(
            {"ErrorEquals": ["States.ALL"], "Next": "Handler"},
            {"ErrorEquals": ["E"], "Next": "Handler"},
        ),
        [("/States/S/Catch/0/ErrorEquals", SVF)],
        id="catch-states-all-not-last",
    ),
    # Choice
    pytest.param(choice(to_done(is_null())), [], id="choice-ok"),
    pytest.param(choice(to_done(is_null()), Default="Done"), [], id="choice-default"),
    pytest.param(
        choice(to_done(is_null()), Default="Nowhere"),
        [("/States/C/Default", MTT)],
        id="choice-default-missing",
    ),
    pytest.param(
        machine(C={"Type": "Choice", "Default": "Done"}, Done=SUCCEED),
        [("/States/C/Choices", SVF)],
        id="choice-choices-missing",
    ),
    pytest.param(
        machine(C={"Type": "Choice", "Choices": []}, Done=SUCCEED),
        [("/States/C/Choices", SVF), ("/States/Done", MTT)],
        id="choice-empty",
    ),
    pytest.param(
        choice(to_done(is_null()), End=True), [("/States/C/End", SVF)], id="choice-with-end"
    ),
    pytest.param(
        choice(to_done(is_null()), Next="Done"), [("/States/C/Next", SVF)], id="choice-with-next"
    ),
    pytest.param(
        choice(is_null()),
        [("/States/C/Choices/0", SVF), ("/States/Done", MTT)],
        id="rule-next-missing",
    ),
    pytest.param(
        choice({"Variable": "$.x", "Next": "Done"}),
        [("/States/C/Choices/0", SVF)],
        id="rule-no-operator",
    ),
    pytest.param(
        choice(to_done({**is_null(), "IsString": True})),
        [("/States/C/Choices/0", SVF)],
        id="rule-two-operators",
    ),
    pytest.param(
        choice(to_done({"IsNull": True})),
        [("/States/C/Choices/0/Variable", SVF)],
        id="rule-variable-missing",
    ),
    pytest.param(
        choice(to_done(is_null("x"))),
        [("/States/C/Choices/0/Variable", SVF)],
        id="rule-variable-not-a-path",
    ),
    pytest.param(
        choice(to_done({"Variable": "$.x", "StringEquals": 1})),
        [("/States/C/Choices/0/StringEquals", SVF)],
        id="string-operand",
    ),
    pytest.param(
        choice(to_done({"Variable": "$.x", "NumericEquals": "1"})),
        [("/States/C/Choices/0/NumericEquals", SVF)],
        id="numeric-operand",
    ),
    pytest.param(
        choice(to_done({"Variable": "$.x", "NumericLessThanPath": "$.y"})),
        [],
        id="numeric-path-operand",
    ),
    pytest.param(
        choice(to_done({"Variable": "$.x", "NumericLessThanPath": "y"})),
        [("/States/C/Choices/0/NumericLessThanPath", SVF)],
        id="path-operand-not-a-path",
    ),
    pytest.param(
        choice(to_done({"Variable": "$.x", "BooleanEquals": "true"})),
        [("/States/C/Choices/0/BooleanEquals", SVF)],
        id="boolean-operand",
    ),
    pytest.param(
        choice(to_done({"Variable": "$.x", "TimestampEquals": "2016-03-14 01:59:00Z"})),
        [("/States/C/Choices/0/TimestampEquals", SVF)],
        id="timestamp-operand",
    ),
    pytest.param(
        choice(to_done({"Variable": "$.x", "TimestampGreaterThan": "2016-03-14T01:59:00Z"})),
        [],
        id="timestamp-operand-ok",
    ),
    pytest.param(
        choice(to_done({"Variable": "$.x", "TimestampEquals": "0000-01-01T00:00:00Z"})),
        [("/States/C/Choices/0/TimestampEquals", SVF)],
        id="timestamp-operand-year-0000",
    ),
    pytest.param(
        choice(to_done({"Variable": "$.x[", "IsPresent": True})),
        [("/States/C/Choices/0/Variable", SVF)],
        id="variable-malformed",
    ),
    pytest.param(
        choice(to_done({"Variable": "$.x", "StringEqualsPath": "$...y"})),
        [("/States/C/Choices/0/StringEqualsPath", SVF)],
        id="path-operand-malformed-deep-scan",
    ),
    pytest.param(
        choice(to_done({"Variable": "$.x", "IsNull": 1})),
        [("/States/C/Choices/0/IsNull", SVF)],
        id="type-test-operand",
    ),
    pytest.param(
        choice(to_done({"IsNull": True})),
        [("/States/C/Choices/0/Variable", SVF)],
        id="comparison-without-variable",
    ),
    pytest.param(
        choice(to_done({"Variable": "$.x", "StringMatches": "log-*.txt"})), [], id="string-matches"
    ),
    pytest.param(choice(to_done({"And": [is_null(), {"Not": is_null("$.y")}]})), [], id="and-not"),
    pytest.param(choice(to_done({"Or": []})), [("/States/C/Choices/0/Or", SVF)], id="or-empty"),
    pytest.param(
        choice(to_done({"Not": is_null(), "Variable": "$.x"})),
        [("/States/C/Choices/0/Variable", SVF)],
        id="not-with-variable",
    ),
    pytest.param(
        choice(to_done({"And": [to_done(is_null())]})),
        [("/States/C/Choices/0/And/0/Next", SVF)],
        id="nested-rule-with-next",
    ),
    pytest.param(
        choice(to_done({"Not": {"Variable": "$.x"}})),
        [("/States/C/Choices/0/Not", SVF)],
        id="nested-rule-no-operator",
    ),
    # Fail
    pytest.param(one({"Type": "Fail", "Error": "E", "Cause": "c"}), [], id="fail-error-cause"),
    pytest.param(
        one({"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('{}', $.c)"}),
        [],
        id="fail-paths",
    ),
    pytest.param(
        one({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}),
        [("/States/S", SVF)],
        id="fail-error-and-path",
    ),
    pytest.param(
        one({"Type": "Fail", "Cause": "c", "CausePath": "$.c"}),
        [("/States/S", SVF)],
        id="fail-cause-and-path",
    ),
    pytest.param(
        one({"Type": "Fail", "ErrorPath": "e"}),
        [("/States/S/ErrorPath", SVF)],
        id="fail-errorpath-not-a-path",
    ),
    pytest.param(
        one({"Type": "Fail", "CausePath": "States.Format('{}', $.c"}),
        [("/States/S/CausePath", SVF)],
        id="fail-causepath-malformed-intrinsic",
    ),
    pytest.param(
        one({"Type": "Fail", "Error": "$.error"}),
        [("/States/S/Error", NO_PATH)],
        id="fail-error-looks-like-path",
    ),
    # Parameters and ResultSelector
    pytest.param(
        parameters(**{"a.$": "$.x", "b.$": "$$.Execution.Id", "c": 1}), [], id="parameters-ok"
    ),
    pytest.param(
        parameters(**{"a.$": "States.Format('id {}', $.x)"}), [], id="parameters-intrinsic"
    ),
    pytest.param(
        parameters(**{"a.$": "States.Nope($.x)"}),
        [("/States/S/Parameters/a.$", SVF)],
        id="parameters-unknown-intrinsic",
    ),
    pytest.param(
        parameters(**{"a.$": "States.Array(States.Nope())"}),
        [("/States/S/Parameters/a.$", SVF)],
        id="parameters-unknown-nested-intrinsic",
    ),
    pytest.param(
        parameters(**{"a.$": "States.Format(')"}),
        [("/States/S/Parameters/a.$", SVF)],
        id="parameters-intrinsic-open-string",
    ),
    pytest.param(
        parameters(**{"a.$": "States.MathAdd($.x)"}),
        [("/States/S/Parameters/a.$", SVF)],
        id="parameters-intrinsic-arity",
    ),
    pytest.param(
        parameters(**{"a.$": "States.Array($.x[)"}),
        [("/States/S/Parameters/a.$", SVF)],
        id="parameters-intrinsic-malformed-path",
    ),
    pytest.param(
        parameters(**{"a.$": "$.x["}),
        [("/States/S/Parameters/a.$", SVF)],
        id="parameters-malformed-path",
    ),
    pytest.param(
        parameters(**{"a.$": 1}),
        [("/States/S/Parameters/a.$", SVF)],
        id="parameters-dollar-not-string",
    ),
    pytest.param(
        parameters(**{"a.$": "x"}),
        [("/States/S/Parameters/a.$", SVF)],
        id="parameters-dollar-not-path",
    ),
    pytest.param(
        parameters(a="$.x"),
        [("/States/S/Parameters/a", NO_DOLLAR)],
        id="parameters-no-dollar",
    ),
    pytest.param(
        parameters(a="States.UUID()"),
        [("/States/S/Parameters/a", NO_DOLLAR)],
        id="parameters-intrinsic-no-dollar",
    ),
    pytest.param(parameters(a="$", b="price in $"), [], id="parameters-plain-dollar-strings"),
    pytest.param(
        parameters(**{"a": 1, "a.$": "$.x"}),
        [("/States/S/Parameters/a.$", SVF)],
        id="parameters-duplicate-after-strip",
    ),
    pytest.param(
        parameters(outer={"list": [{"x.$": 3}]}),
        [("/States/S/Parameters/outer/list/0/x.$", SVF)],
        id="parameters-nested",
    ),
    pytest.param(one(task(ResultSelector={"v.$": "$.Payload"})), [], id="resultselector-ok"),
    pytest.param(
        one(task(ResultSelector={"v.$": "Payload"})),
        [("/States/S/ResultSelector/v.$", SVF)],
        id="resultselector-not-path",
    ),
    # Pass
    pytest.param(
        one({"Type": "Pass", "Result": {"a": 1}, "ResultPath": "$.r", "End": True}),
        [],
        id="pass-result",
    ),
    pytest.param(
        one({"Type": "Pass", "Result": {"a.$": "$.x"}, "End": True}),
        [("/States/S/Result", PASS_RESULT_IS_STATIC)],
        id="pass-result-static",
    ),
    pytest.param(
        one({"Type": "Pass", "Parameters": {"a.$": "$.x"}, "End": True}), [], id="pass-parameters"
    ),
    # Parallel
    pytest.param(parallel(BRANCH, machine(C=SUCCEED)), [], id="parallel-ok"),
    pytest.param(parallel(), [("/States/P/Branches", SVF)], id="parallel-no-branches"),
    pytest.param(
        machine(P={"Type": "Parallel", "End": True}),
        [("/States/P/Branches", SVF)],
        id="parallel-branches-missing",
    ),
    pytest.param(
        parallel({"States": {"B": SUCCEED}}),
        [("/States/P/Branches/0/StartAt", SVF)],
        id="branch-startat-missing",
    ),
    pytest.param(
        parallel({**BRANCH, "Foo": 1}),
        [("/States/P/Branches/0/Foo", SVF)],
        id="branch-unknown-field",
    ),
    pytest.param(
        parallel(BRANCH, machine(B=SUCCEED)),
        [("/States/P/Branches/1/States/B", DUPLICATE_STATE_NAME)],
        id="duplicate-across-branches",
    ),
    pytest.param(
        parallel(machine(P=SUCCEED)),
        [("/States/P/Branches/0/States/P", DUPLICATE_STATE_NAME)],
        id="duplicate-with-outer",
    ),
    pytest.param(
        parallel(machine(B={"Type": "Pass", "Next": "B"})),
        [("/States/P/Branches/0/States", MISSING_END_STATE)],
        id="branch-no-terminal",
    ),
    pytest.param(
        parallel(machine(B=SUCCEED, C=SUCCEED)),
        [("/States/P/Branches/0/States/C", MTT)],
        id="branch-unreachable",
    ),
    pytest.param(
        machine(
            P={
                "Type": "Parallel",
                "Branches": [machine(B={"Type": "Pass", "Next": "Out"})],
                "Next": "Out",
            },
            Out=SUCCEED,
        ),
        [
            ("/States/P/Branches/0/States", MISSING_END_STATE),
            ("/States/P/Branches/0/States/B/Next", MTT),
        ],
        id="branch-leaves-its-machine",
    ),
    pytest.param(
        parallel(BRANCH, Retry=[{"ErrorEquals": []}]),
        [("/States/P/Retry/0/ErrorEquals", SVF)],
        id="parallel-retry",
    ),
    # Map
    pytest.param(
        map_state(ItemsPath="$.items", ItemProcessor=BRANCH, MaxConcurrency=2),
        [],
        id="map-item-processor",
    ),
    pytest.param(map_state(Iterator=BRANCH), [], id="map-iterator"),
    pytest.param(
        map_state(ItemProcessor=BRANCH, ItemReader={"Resource": "arn:aws:states:::s3:getObject"}),
        [("/States/M/ItemReader", ITEM_READER_NOT_RUN)],
        id="map-item-reader-not-run",
    ),
    pytest.param(
        map_state(ItemProcessor=BRANCH, ResultWriter={"Resource": "arn:aws:states:::s3:putObject"}),
        [("/States/M/ResultWriter", RESULT_WRITER_NOT_RUN)],
        id="map-result-writer-not-run",
    ),
    pytest.param(map_state(), [("/States/M", SVF)], id="map-no-processor"),
    pytest.param(
        map_state(Iterator=BRANCH, ItemProcessor=machine(C=SUCCEED)),
        [("/States/M", SVF)],
        id="map-both-processors",
    ),
    pytest.param(
        map_state(Iterator=BRANCH, MaxConcurrency=-1),
        [("/States/M/MaxConcurrency", SVF)],
        id="map-concurrency-negative",
    ),
    pytest.param(
        map_state(Iterator=BRANCH, ItemsPath="items"),
        [("/States/M/ItemsPath", SVF)],
        id="map-itemspath-not-a-path",
    ),
    pytest.param(
        map_state(Iterator=BRANCH, ItemsPath="$..items"),
        [("/States/M/ItemsPath", SVF)],
        id="map-itemspath-deep-scan",
    ),
    pytest.param(
        map_state(Iterator=BRANCH, ToleratedFailurePercentage=101),
        [("/States/M/ToleratedFailurePercentage", SVF)],
        id="map-tolerated-percentage",
    ),
    pytest.param(
        map_state(Iterator=machine(B={"Type": "Pass", "Next": "Nope"})),
        [
            ("/States/M/Iterator/States", MISSING_END_STATE),
            ("/States/M/Iterator/States/B/Next", MTT),
        ],
        id="map-iterator-target-missing",
    ),
    pytest.param(
        map_state(Iterator=BRANCH, ItemSelector={"v.$": "$$.Map.Item.Value"}),
        [],
        id="map-item-selector",
    ),
    pytest.param(
        map_state(ItemProcessor={**BRANCH, "ProcessorConfig": {"Mode": "INLINE"}}),
        [],
        id="map-processor-config",
    ),
]


@pytest.mark.parametrize(("definition", "expected"), RULES)
def test_rules(definition: Any, expected: list[tuple[str, str]]) -> None:
    """Each rule reports what it finds, where it finds it, and nothing more."""
    assert expected == codes(definition)


@pytest.mark.parametrize(
    "timestamp",
    [
        pytest.param("2016-03-14T01:59:00Z", id="zulu"),
        pytest.param("2016-03-14T01:59:00.243167252Z", id="nanoseconds"),
        pytest.param("2016-03-14T01:59:00+08:00", id="offset"),
        pytest.param("2016-03-14T01:59:00-05:30", id="negative-offset"),
        pytest.param("2024-02-29T23:59:59Z", id="leap-day"),
        pytest.param("0001-01-01T00:00:00Z", id="first-second-of-0001"),
        pytest.param("9999-12-31T23:59:59Z", id="last-second-of-9999"),
    ],
)
def test_wait_timestamp_accepted(timestamp: str) -> None:
    """RFC3339 timestamps with an uppercase T and a Z or numeric offset are accepted."""
    expected: list[Any] = []
    assert expected == validate(one(wait(Timestamp=timestamp)))


@pytest.mark.parametrize(
    "timestamp",
    [
        pytest.param("2016-03-14 01:59:00Z", id="space-for-T"),
        pytest.param("2016-03-14T01:59:00", id="no-zone"),
        pytest.param("2016-13-14T01:59:00Z", id="month-13"),
        pytest.param("2016-03-14T25:59:00Z", id="hour-25"),
        pytest.param("05-12-2016T01:59:00Z", id="day-first"),
        pytest.param("2016-03-14t01:59:00z", id="lower-case"),
        pytest.param("2023-02-29T00:00:00Z", id="not-a-leap-year"),
        pytest.param("2016-03-14T01:60:00Z", id="minute-60"),
        pytest.param("2016-03-14T01:59:00+24:00", id="offset-hour-24"),
        pytest.param("{% $now() %}", id="jsonata"),
        pytest.param(1457920740, id="epoch-number"),
        pytest.param("2016-03-14T01:59:00Z\n", id="trailing-newline"),
        pytest.param("2016-12-31T23:59:60Z", id="leap-second"),
        pytest.param("\uff12\uff10\uff11\uff16-03-14T01:59:00Z", id="full-width-digits"),
    ],
)
def test_wait_timestamp_rejected(timestamp: Any) -> None:
    """Timestamps AWS rejects at creation get its message at the Timestamp field."""
    expected = [
        Finding(
            where="/States/S/Timestamp",
            code=SVF,
            message="String does not match RFC3339 timestamp",
            severity="error",
        )
    ]
    assert expected == validate(one(wait(Timestamp=timestamp)))


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        pytest.param(
            "0000-01-01T00:00:00Z",
            "Timestamp 0000-01-01T00:00:00Z is before the year 0001, which stepd cannot represent",
            id="year-0000",
        ),
        pytest.param(
            "0001-01-01T00:00:00+01:00",
            "Timestamp 0001-01-01T00:00:00+01:00 is outside the years 0001 to 9999 in UTC, "
            "which stepd cannot represent",
            id="offset-before-0001",
        ),
        pytest.param(
            "9999-12-31T23:59:59-01:00",
            "Timestamp 9999-12-31T23:59:59-01:00 is outside the years 0001 to 9999 in UTC, "
            "which stepd cannot represent",
            id="offset-after-9999",
        ),
    ],
)
def test_wait_timestamp_out_of_range(timestamp: str, message: str) -> None:
    """RFC3339 timestamps outside the years 0001 to 9999 (UTC) are refused, saying why."""
    expected = [Finding(where="/States/S/Timestamp", code=SVF, message=message, severity="error")]
    assert expected == validate(one(wait(Timestamp=timestamp)))


# Messages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        pytest.param(
            machine(S={"Type": "Pass", "Next": "Nowhere"}, T=SUCCEED),
            ("/States/S/Next", 'Missing "Next" target: Nowhere'),
            id="next",
        ),
        pytest.param(
            machine(C={"Type": "Choice", "Choices": [to_done(is_null())], "Default": "Else"}),
            ("/States/C/Default", 'Missing "Default" target: Else'),
            id="default",
        ),
        pytest.param(
            machine(
                P={
                    "Type": "Parallel",
                    "Branches": [machine(B=wait("Out", Seconds=1))],
                    "End": True,
                },
                Out=SUCCEED,
            ),
            (
                "/States/P/Branches/0/States/B/Next",
                'Missing "Next" target: Out (a nested machine cannot leave)',
            ),
            id="leaving-a-branch",
        ),
        pytest.param(
            {"StartAt": "Begin", "States": {"S": SUCCEED}},
            ("/StartAt", 'Missing "StartAt" target: Begin'),
            id="start-at",
        ),
    ],
)
def test_missing_target_messages(definition: dict[str, Any], expected: tuple[str, str]) -> None:
    """A missing target names the field and the target it could not find."""
    findings = [(f.where, f.message) for f in validate(definition) if f.code == MTT]
    assert expected in findings


# Reachability -------------------------------------------------------------------------------


def test_isolated_cycle_is_unreachable() -> None:
    """Two states that only point at each other are unreachable even though each has an edge in."""
    definition = machine(
        Start=SUCCEED,
        Ping={"Type": "Pass", "Next": "Pong"},
        Pong={"Type": "Pass", "Next": "Ping"},
    )
    expected = [
        ("/States/Ping", 'State "Ping" is not reachable'),
        ("/States/Pong", 'State "Pong" is not reachable'),
    ]
    assert expected == [(f.where, f.message) for f in validate(definition)]


@pytest.mark.parametrize(
    "definition",
    [
        pytest.param(
            machine(
                C={"Type": "Choice", "Choices": [to_done(is_null())], "Default": "Other"},
                Done=SUCCEED,
                Other=SUCCEED,
            ),
            id="choice-next-and-default",
        ),
        pytest.param(
            machine(
                S=task(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Handler"}]),
                Handler={"Type": "Fail", "Error": "Failed"},
            ),
            id="catch-next",
        ),
        pytest.param(
            machine(
                Loop={"Type": "Wait", "Seconds": 1, "Next": "Check"},
                Check={"Type": "Choice", "Choices": [to_done(is_null())], "Default": "Loop"},
                Done=SUCCEED,
            ),
            id="loop-back",
        ),
    ],
)
def test_every_edge_kind_reaches(definition: dict[str, Any]) -> None:
    """Next, Default, Choices[].Next and Catch[].Next all count as ways in."""
    expected: list[Any] = []
    assert expected == codes(definition)


# Data flow ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        pytest.param(
            {"T": task("W"), "W": wait(TimestampPath="$.end")},
            [("/States/W", DATA_REPLACED_BY_TASK)],
            id="task-then-timestamppath",
        ),
        pytest.param(
            {"T": task("W", ResultPath=None), "W": wait(TimestampPath="$.end")},
            [],
            id="resultpath-null-keeps-input",
        ),
        pytest.param(
            {"T": task("W", ResultPath="$.r"), "W": wait(TimestampPath="$.end")},
            [],
            id="resultpath-keeps-input",
        ),
        pytest.param(
            {
                "T": task("U"),
                "U": task("W", ResultPath=None),
                "W": wait(SecondsPath="$.delay"),
            },
            [("/States/W", DATA_REPLACED_BY_TASK)],
            id="carried-past-a-keeping-task",
        ),
        pytest.param(
            {"T": task("W", ResultSelector={"v.$": "$.Payload"}), "W": wait(SecondsPath="$.v")},
            [],
            id="result-selector-is-deliberate",
        ),
        pytest.param(
            {"T": task("W", OutputPath="$.Payload"), "W": wait(SecondsPath="$.v")},
            [],
            id="output-path-is-deliberate",
        ),
        pytest.param(
            {
                "P": {"Type": "Pass", "Result": {"a": 1}, "Next": "C"},
                "C": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.kind", "IsPresent": True, "Next": "Done"}],
                },
                "Done": SUCCEED,
            },
            [("/States/C", DATA_REPLACED_BY_TASK)],
            id="pass-result-then-choice",
        ),
        pytest.param(
            {"T": task("U"), "U": task(Parameters={"id.$": "$.id"})},
            [("/States/U", DATA_REPLACED_BY_TASK)],
            id="task-then-parameters",
        ),
        pytest.param(
            {"T": task("U"), "U": task(Parameters={"id.$": "$$.Execution.Id", "all.$": "$"})},
            [],
            id="context-and-root-are-fine",
        ),
        pytest.param(
            {"T": task("W"), "W": wait(Seconds=5)},
            [],
            id="nothing-read",
        ),
        pytest.param(
            {
                "W": wait("T", TimestampPath="$.start"),
                "T": task("Done"),
                "Done": SUCCEED,
            },
            [],
            id="read-before-the-task",
        ),
        pytest.param(
            {
                "T": task(
                    "Done", ResultPath=None, Catch=[{"ErrorEquals": ["States.ALL"], "Next": "W"}]
                ),
                "W": wait(TimestampPath="$.end"),
                "Done": SUCCEED,
            },
            [],
            id="catch-carries-the-input",
        ),
    ],
)
def test_data_flow(states: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    """A path read after a Task result replaced the data is a warning; kept data is not."""
    assert expected == codes(machine(**states))


def test_data_flow_names_every_replacing_task() -> None:
    """When results from several Tasks can arrive, the warning names them all."""
    definition = machine(
        C={
            "Type": "Choice",
            "Choices": [{"Variable": "$.fast", "BooleanEquals": True, "Next": "A"}],
            "Default": "B",
        },
        A=task("W"),
        B=task("W"),
        W=wait(TimestampPath="$.end"),
    )
    warning = next(f for f in validate(definition) if f.code == DATA_REPLACED_BY_TASK)
    assert 'result of Task "A", Task "B" (no' in warning.message


# Whole-definition limits --------------------------------------------------------------------


def test_definition_over_one_megabyte() -> None:
    """A definition over 1 MB is refused."""
    definition = one({"Type": "Pass", "Result": "x" * 1_048_576, "End": True})
    assert codes(definition) == [("", SVF)]


def test_too_deeply_nested() -> None:
    """Nesting deep enough to exhaust the checker is reported, not raised."""
    rule: dict[str, Any] = is_null()
    for _ in range(5_000):
        rule = {"Not": rule}
    assert codes(choice(to_done(rule))) == [("", TOO_DEEPLY_NESTED)]


def test_findings_are_sorted_and_deterministic() -> None:
    """Findings come sorted by where, then code, whatever the definition's order."""
    definition = machine(
        Z=task("Nowhere", Foo=1),
        A=wait(Seconds=-1),
        M={"Type": "Pass", "End": True},
    )
    findings = validate(definition)
    expected = sorted(findings, key=lambda f: (f.where, f.code, f.message))
    assert (expected, findings) == (findings, validate(definition))


def _assigning(name: str, *, jsonata: bool = False) -> dict[str, Any]:
    """A Pass state of a JSONata or JSONPath machine assigning the variable `name`."""
    key = name if jsonata else f"{name}.$"
    state = {"Type": "Pass", "Assign": {key: "{% 1 %}" if jsonata else "$.a"}, "End": True}
    return {**one(state), "QueryLanguage": "JSONata"} if jsonata else one(state)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("room", id="letters"),
        pytest.param("room_2", id="digits-and-underscore-after-the-first"),
        pytest.param("_private", id="underscore-first"),
        pytest.param("café", id="letters-beyond-ascii"),
        pytest.param("x" * 80, id="eighty-characters"),
        pytest.param("States", id="reserved-name-is-case-sensitive"),
    ],
)
@pytest.mark.parametrize("jsonata", [False, True], ids=["jsonpath", "jsonata"])
def test_variable_names_aws_accepts(name: str, jsonata: bool) -> None:
    """An Assign's variable name that is a Unicode identifier of up to 80 characters is
    accepted."""
    assert codes(_assigning(name, jsonata=jsonata)) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("my-var", 'The variable name "my-var" is not valid', id="hyphen"),
        pytest.param("1abc", 'The variable name "1abc" is not valid', id="digit-first"),
        pytest.param("a b", 'The variable name "a b" is not valid', id="space"),
        pytest.param("", 'The variable name "" is not valid', id="empty"),
        pytest.param("x" * 81, "is 81 characters long; at most 80", id="eighty-one-characters"),
        pytest.param("states", 'The variable name "states" is reserved', id="reserved-states"),
    ],
)
@pytest.mark.parametrize("jsonata", [False, True], ids=["jsonpath", "jsonata"])
def test_variable_names_aws_refuses(name: str, message: str, jsonata: bool) -> None:
    """An Assign's variable name AWS refuses is an error at the name, saying why."""
    key = name if jsonata else f"{name}.$"
    [finding] = validate(_assigning(name, jsonata=jsonata))
    assert (finding.where, finding.code, finding.severity) == (
        f"/States/S/Assign/{key}",
        SVF,
        "error",
    )
    assert message in finding.message


def test_variable_names_are_checked_in_catchers_and_choice_rules() -> None:
    """Assign in a Catch or a Choice rule is held to the same rule."""
    definition = machine(
        C={
            "Type": "Choice",
            "Choices": [{**to_done(is_null()), "Assign": {"bad-rule": 1}}],
            "Default": "T",
        },
        T=task(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Done", "Assign": {"9": 1}}]),
        Done=SUCCEED,
    )
    assert codes(definition) == [
        ("/States/C/Choices/0/Assign/bad-rule", SVF),
        ("/States/T/Catch/0/Assign/9", SVF),
    ]
