"""Retry and Catch: error matching, backoff and the catcher's output."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.unit.asl.asl_support import NOW, machine, never

from stepd.asl.decisions import Caught, Fail, RetryAt
from stepd.asl.interpreter import task_failed
from stepd.asl.retry import delay_seconds, error_matches


@pytest.mark.parametrize(
    ("error_equals", "error", "expected"),
    [
        pytest.param(["States.ALL"], "Custom.Error", True, id="ALL-custom"),
        pytest.param(["States.ALL"], "States.Timeout", True, id="ALL-timeout"),
        pytest.param(["States.ALL"], "States.TaskFailed", True, id="ALL-task-failed"),
        pytest.param(["States.ALL"], "States.Runtime", False, id="ALL-not-runtime"),
        pytest.param(["States.ALL"], "States.DataLimitExceeded", True, id="ALL-data-limit"),
        pytest.param(["States.TaskFailed"], "Custom.Error", True, id="TaskFailed-custom"),
        pytest.param(
            ["States.TaskFailed"], "States.Http.StatusCode.500", True, id="TaskFailed-http-status"
        ),
        # AWS's States.Timeout covers heartbeat timeouts too (before States.HeartbeatTimeout
        # existed they were recorded as States.Timeout), so States.TaskFailed, which leaves
        # out States.Timeout, leaves them out as well
        pytest.param(
            ["States.TaskFailed"], "States.HeartbeatTimeout", False, id="TaskFailed-not-heartbeat"
        ),
        pytest.param(["States.Timeout"], "States.HeartbeatTimeout", True, id="Timeout-heartbeat"),
        pytest.param(
            ["States.HeartbeatTimeout"], "States.Timeout", False, id="Heartbeat-not-timeout"
        ),
        pytest.param(
            ["States.HeartbeatTimeout"], "States.HeartbeatTimeout", True, id="Heartbeat-exact"
        ),
        pytest.param(["States.TaskFailed"], "States.Timeout", False, id="TaskFailed-not-timeout"),
        pytest.param(["States.TaskFailed"], "States.Runtime", False, id="TaskFailed-not-runtime"),
        pytest.param(["States.Timeout"], "States.Timeout", True, id="exact-name"),
        pytest.param(["custom.error"], "Custom.Error", False, id="case-sensitive"),
        pytest.param(["A", "B"], "B", True, id="any-of-several"),
        pytest.param(["States.Runtime"], "States.Runtime", False, id="runtime-never-by-name"),
        pytest.param([], "A", False, id="empty"),
    ],
)
def test_error_matches(error_equals: list[str], error: str, expected: bool) -> None:
    """ErrorEquals follows AWS's rules for States.ALL, States.TaskFailed and exact names."""
    assert expected == error_matches(error_equals, error)


@pytest.mark.parametrize(
    ("retrier", "attempts", "draw", "expected"),
    [
        pytest.param({}, 0, 0.0, 1.0, id="defaults-first"),
        pytest.param({}, 2, 0.0, 4.0, id="defaults-third"),
        pytest.param({"IntervalSeconds": 3, "BackoffRate": 1.5}, 2, 0.0, 6.75, id="backoff"),
        pytest.param({"IntervalSeconds": 2, "BackoffRate": 1.0}, 5, 0.0, 2.0, id="no-backoff"),
        pytest.param(
            {"IntervalSeconds": 10, "MaxDelaySeconds": 15}, 3, 0.0, 15.0, id="max-delay-caps"
        ),
        pytest.param(
            {"IntervalSeconds": 10, "MaxDelaySeconds": 15}, 0, 0.0, 10.0, id="max-delay-below-cap"
        ),
        pytest.param(
            {"IntervalSeconds": 4, "JitterStrategy": "FULL"}, 1, 0.25, 2.0, id="full-jitter"
        ),
        pytest.param(
            {"IntervalSeconds": 10, "MaxDelaySeconds": 15, "JitterStrategy": "FULL"},
            3,
            0.5,
            7.5,
            id="jitter-after-cap",
        ),
        pytest.param(
            {"IntervalSeconds": 4, "JitterStrategy": "NONE"}, 1, 0.25, 8.0, id="no-jitter"
        ),
    ],
)
def test_delay_seconds(
    retrier: dict[str, Any], attempts: int, draw: float, expected: float
) -> None:
    """The delay is Interval * Rate ** attempts, capped by MaxDelaySeconds, then jittered."""
    assert expected == delay_seconds(retrier, attempts, lambda: draw)


SPEC_EXAMPLE = machine(
    "T",
    {
        "Type": "Task",
        "Resource": "arn:aws:lambda:us-east-1:123456789012:function:work",
        "Retry": [
            {
                "ErrorEquals": ["ErrorA", "ErrorB"],
                "IntervalSeconds": 1,
                "BackoffRate": 2.0,
                "MaxAttempts": 2,
            },
            {"ErrorEquals": ["ErrorC"], "IntervalSeconds": 5},
        ],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Recover"}],
        "Next": "Done",
    },
    Recover={"Type": "Pass", "End": True},
    Done={"Type": "Succeed"},
)


def test_spec_example_waits_1_2_5_seconds_then_catches() -> None:
    """Errors A, B, C, B wait 1 s, 2 s and 5 s, then the catcher takes the fourth."""
    decisions: list[Any] = []
    counts: tuple[int, ...] = ()
    for error in ["ErrorA", "ErrorB", "ErrorC", "ErrorB"]:
        decision = task_failed(SPEC_EXAMPLE, "T", {"in": 1}, error, None, counts, NOW, never)
        decisions.append(decision)
        if isinstance(decision, RetryAt):
            counts = decision.retry_counts
    expected = [
        RetryAt(until=NOW + timedelta(seconds=1), retry_counts=(1, 0), error="ErrorA"),
        RetryAt(until=NOW + timedelta(seconds=2), retry_counts=(2, 0), error="ErrorB"),
        RetryAt(until=NOW + timedelta(seconds=5), retry_counts=(2, 1), error="ErrorC"),
        Caught(next_state="Recover", output={"Error": "ErrorB"}, error="ErrorB"),
    ]
    assert expected == decisions


def task(**fields: Any) -> dict[str, Any]:
    """A definition with one Task state `T` holding `fields`."""
    state = {"Type": "Task", "Resource": "arn:r", "Next": "Next", **fields}
    return machine("T", state, Next={"Type": "Succeed"}, Handler={"Type": "Succeed"})


def fail_task(definition: dict[str, Any], error: str, counts: tuple[int, ...] = ()) -> Any:
    """task_failed for state `T` with input {"in": 1} and cause "why"."""
    return task_failed(definition, "T", {"in": 1}, error, "why", counts, NOW, never)


def test_retry_carries_error_and_cause() -> None:
    """A retry keeps the error and cause and counts one attempt."""
    definition = task(Retry=[{"ErrorEquals": ["States.ALL"]}])
    expected = RetryAt(until=NOW + timedelta(seconds=1), retry_counts=(1,), error="E", cause="why")
    assert expected == fail_task(definition, "E")


def test_retry_uses_jitter_from_the_random_source() -> None:
    """With FULL jitter the delay is random() times the computed interval."""
    definition = task(
        Retry=[{"ErrorEquals": ["E"], "IntervalSeconds": 8, "JitterStrategy": "FULL"}]
    )
    decision = task_failed(definition, "T", {}, "E", None, (), NOW, lambda: 0.25)
    assert NOW + timedelta(seconds=2) == decision.until


def test_max_attempts_exhausted_falls_through_to_catch() -> None:
    """Once a retrier's counter reaches MaxAttempts the error goes to the catchers."""
    definition = task(
        Retry=[{"ErrorEquals": ["E"], "MaxAttempts": 3}],
        Catch=[{"ErrorEquals": ["E"], "Next": "Handler"}],
    )
    expected = Caught(
        next_state="Handler", output={"Error": "E", "Cause": "why"}, error="E", cause="why"
    )
    assert expected == fail_task(definition, "E", (3,))


def test_max_attempts_zero_never_retries() -> None:
    """MaxAttempts 0 means the retrier never retries."""
    definition = task(Retry=[{"ErrorEquals": ["E"], "MaxAttempts": 0}])
    assert Fail(error="E", cause="why") == fail_task(definition, "E")


def test_only_the_first_matching_retrier_is_used() -> None:
    """A spent first matching retrier does not hand over to a later matching one."""
    definition = task(
        Retry=[{"ErrorEquals": ["E"], "MaxAttempts": 1}, {"ErrorEquals": ["States.ALL"]}]
    )
    assert Fail(error="E", cause="why") == fail_task(definition, "E", (1, 0))


def test_non_matching_retrier_is_skipped() -> None:
    """A retrier whose ErrorEquals does not match is skipped for the next one."""
    definition = task(
        Retry=[{"ErrorEquals": ["Other"]}, {"ErrorEquals": ["E"], "IntervalSeconds": 7}]
    )
    expected = RetryAt(
        until=NOW + timedelta(seconds=7), retry_counts=(0, 1), error="E", cause="why"
    )
    assert expected == fail_task(definition, "E")


def test_timeout_is_not_retried_by_task_failed() -> None:
    """States.TaskFailed does not match States.Timeout, so no retry happens."""
    definition = task(Retry=[{"ErrorEquals": ["States.TaskFailed"]}])
    assert Fail(error="States.Timeout", cause="why") == fail_task(definition, "States.Timeout")


@pytest.mark.parametrize(
    "error_equals",
    [
        pytest.param(["States.ALL"], id="ALL"),
        pytest.param(["States.Runtime"], id="by-name"),
        pytest.param(["States.TaskFailed"], id="TaskFailed"),
    ],
)
def test_runtime_is_never_retried_or_caught(error_equals: list[str]) -> None:
    """States.Runtime fails the execution whatever the retriers and catchers say."""
    definition = task(
        Retry=[{"ErrorEquals": error_equals}],
        Catch=[{"ErrorEquals": error_equals, "Next": "Handler"}],
    )
    assert Fail(error="States.Runtime", cause="why") == fail_task(definition, "States.Runtime")


@pytest.mark.parametrize(
    ("catcher", "expected_output"),
    [
        pytest.param({}, {"Error": "E", "Cause": "why"}, id="default-replaces"),
        pytest.param(
            {"ResultPath": "$.error"},
            {"in": 1, "error": {"Error": "E", "Cause": "why"}},
            id="result-path",
        ),
        pytest.param({"ResultPath": None}, {"in": 1}, id="null-keeps-input"),
    ],
)
def test_catch_result_path(catcher: dict[str, Any], expected_output: Any) -> None:
    """A catcher places {"Error", "Cause"} at its ResultPath (default `$`)."""
    definition = task(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Handler", **catcher}])
    expected = Caught(next_state="Handler", output=expected_output, error="E", cause="why")
    assert expected == fail_task(definition, "E")


def test_first_matching_catcher_wins() -> None:
    """Catchers are tried in order and the first match is used."""
    definition = task(
        Catch=[
            {"ErrorEquals": ["Other"], "Next": "Next"},
            {"ErrorEquals": ["E"], "Next": "Handler"},
            {"ErrorEquals": ["States.ALL"], "Next": "Next"},
        ]
    )
    assert fail_task(definition, "E").next_state == "Handler"


def test_no_matching_catcher_fails_with_the_error() -> None:
    """Without a matching retrier or catcher the execution fails with the task's error."""
    definition = task(Catch=[{"ErrorEquals": ["Other"], "Next": "Handler"}])
    assert Fail(error="E", cause="why") == fail_task(definition, "E")


def test_catch_into_non_object_input_is_a_result_path_failure() -> None:
    """A catcher ResultPath into a non-object input fails with ResultPathMatchFailure."""
    definition = task(Catch=[{"ErrorEquals": ["E"], "Next": "Handler", "ResultPath": "$.err"}])
    decision = task_failed(definition, "T", "text", "E", None, (), NOW, never)
    expected = Fail(
        error="States.ResultPathMatchFailure",
        cause='Unable to apply ReferencePath $.err to input "text"',
    )
    assert expected == decision


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        pytest.param("Catch", False, "Catch must be an array of objects", id="catch-not-list"),
        pytest.param("Catch", ["0"], "Catch must be an array of objects", id="catch-of-strings"),
        pytest.param(
            "Catch",
            [{"ErrorEquals": "E", "Next": "Handler"}],
            "ErrorEquals in Catch must be an array of strings",
            id="catch-error-equals-string",
        ),
        pytest.param("Retry", {"ErrorEquals": ["E"]}, "Retry must be an array", id="retry-object"),
    ],
)
def test_a_malformed_retry_or_catch_fails_naming_the_field(
    field: str, value: Any, message: str
) -> None:
    """A definition that skipped validation fails with States.Runtime, not an engine crash."""
    decision = fail_task(task(**{field: value}), "E")

    assert isinstance(decision, Fail)
    assert decision.error == "States.Runtime"
    assert decision.cause is not None
    assert message in decision.cause
