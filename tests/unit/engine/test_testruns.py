"""Testing mode's pure parts: the MockConfigFile as AWS Step Functions Local writes it, which
answer an attempt gets, and what is refused without `[testing] enabled = true`."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.engine.engine_support import T0, Clock, running_engine, until

from stepd.engine.testruns import (
    TestRuns,
    parse_mock_config,
    split_test_case,
)
from stepd.errors import ConfigError, ValidationException
from stepd.tasks.caller import TaskOutcome
from stepd.testing import FakeCaller, MemoryStore

MOCKS: dict[str, Any] = {
    "StateMachines": {"m": {"TestCases": {"Happy": {"Call": "Retried"}}}},
    "MockedResponses": {
        "Retried": {
            "0": {"Throw": {"Error": "Lambda.Busy", "Cause": "busy"}},
            "1-2": {"Throw": {"Error": "Lambda.Timeout"}},
            "3": {"Return": {"ok": True}},
        }
    },
}


@pytest.mark.parametrize(
    ("attempt", "error", "result"),
    [
        (0, "Lambda.Busy", None),
        (1, "Lambda.Timeout", None),
        (2, "Lambda.Timeout", None),
        (3, None, {"ok": True}),
        (9, None, {"ok": True}),  # beyond the last key, the last answer repeats
    ],
)
def test_answers_go_by_attempt(attempt: int, error: str | None, result: Any) -> None:
    """ "0" answers the first attempt, "1-2" the second and third, the last key the rest."""
    runs = TestRuns(enabled=True, mocks=parse_mock_config(MOCKS, "mocks.json"))
    runs.remember(7, runs.settings_for_start("m", test_case="Happy", time_scale=None))
    outcome = runs.mocked(7, "m", "Call", attempt)
    assert outcome is not None
    assert (outcome.error, outcome.result, outcome.final) == (error, result, True)
    assert runs.mocked(7, "m", "Other", 0) is None  # not in the test case: called for real


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ({"Nope": {}}, "unknown field 'Nope'"),
        ({"MockedResponses": {"R": {"x": {"Return": 1}}}}, "'x' is not an attempt"),
        ({"MockedResponses": {"R": {"2-1": {"Return": 1}}}}, "ends before it starts"),
        ({"MockedResponses": {"R": {"0": {"Return": 1}, "0-1": {"Return": 2}}}}, "two answers"),
        ({"MockedResponses": {"R": {"0": {"Throw": {"Cause": "c"}}}}}, "needs an Error"),
        ({"MockedResponses": {"R": {"0": {"Result": 1}}}}, 'expected {"Return"'),
        ({"MockedResponses": {"R": {}}}, "at least one answer"),
        (
            {"StateMachines": {"m": {"TestCases": {"T": {"S": "Missing"}}}}},
            "'S' names the mocked response 'Missing'",
        ),
    ],
)
def test_a_broken_mock_config_says_what_and_where(broken: dict[str, Any], message: str) -> None:
    """Each mistake in a MockConfigFile is refused naming the file and the place in it."""
    with pytest.raises(ConfigError, match=message) as raised:
        parse_mock_config(broken, "mocks.json")
    assert raised.value.where.startswith("mocks.json")


def test_without_the_switch_time_scales_and_test_cases_are_refused() -> None:
    """Testing off: asking for a time scale or a test case is a ValidationException that
    says how to switch it on; asking for neither runs in real time."""
    runs = TestRuns()
    for asked in ({"time_scale": 10.0, "test_case": None}, {"time_scale": None, "test_case": "T"}):
        with pytest.raises(ValidationException, match=r"\[testing\] enabled = true"):
            runs.settings_for_start("m", **asked)
    assert runs.settings_for_start("m", time_scale=None, test_case=None).time_scale == 1.0


def test_the_test_case_follows_a_hash_in_the_machine_arn() -> None:
    """As AWS's emulator takes it: `...:stateMachine:name#TestCase`."""
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:m"
    assert split_test_case(f"{arn}#Happy") == (arn, "Happy")
    assert split_test_case(arn) == (arn, None)


async def test_a_time_scale_shortens_waits_and_retry_intervals() -> None:
    """At time scale 10, a Wait of 100 s is due 10 s after it began, and a Retry interval of
    30 s comes 3 s after the failure; the execution keeps its scale in its first event."""
    store = MemoryStore()
    await store.open()
    clock = Clock()
    caller = FakeCaller(respond=lambda _: TaskOutcome(error="States.TaskFailed"))
    definition = {
        "StartAt": "Wait",
        "States": {
            "Wait": {"Type": "Wait", "Seconds": 100, "Next": "Deliver"},
            "Deliver": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:1:function:deliver",
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 30}],
                "End": True,
            },
        },
    }
    engine = await running_engine(store, caller, definition, clock)
    engine.tests.take_config(TestRuns(enabled=True))
    started = await engine.start_execution("m", "x", "{}", time_scale=10.0)
    execution = started.execution
    assert execution.due_at == pytest.approx(T0 + 10.0)
    clock.now = T0 + 10.0
    engine.dispatch(execution.id, clock.now)

    async def retrying() -> bool:
        found = await store.get_execution(execution.id)
        return found is not None and found.attempt == 1

    await until(retrying)
    found = await store.get_execution(execution.id)
    assert found is not None
    assert found.due_at == pytest.approx(T0 + 13.0)
    first = (await store.history(execution.id, reverse=False, limit=1, after=None))[0]
    assert first.details["stepd"] == {"timeScale": 10.0}


async def test_a_mocked_activity_task_records_its_activity_events() -> None:
    """A mocked answer to an activity Task (no worker, no queue) is recorded as the activity's:
    ActivityScheduled then ActivitySucceeded, no Task events."""
    store = MemoryStore()
    await store.open()
    activity = "arn:aws:states:us-east-1:123456789012:activity:recorder"
    definition = {
        "StartAt": "Call",
        "States": {"Call": {"Type": "Task", "Resource": activity, "End": True}},
    }
    mocks = {
        "StateMachines": {"m": {"TestCases": {"Happy": {"Call": "Done"}}}},
        "MockedResponses": {"Done": {"0": {"Return": {"ok": True}}}},
    }
    engine = await running_engine(store, FakeCaller(), definition, Clock())
    engine.tests.take_config(TestRuns(enabled=True, mocks=parse_mock_config(mocks, "m.json")))
    started = await engine.start_execution("m", "x", "{}", test_case="Happy")

    async def closed() -> bool:
        found = await store.get_execution(started.execution.id)
        return found is not None and found.status == "SUCCEEDED"

    await until(closed)
    events = await store.history(started.execution.id, reverse=False, limit=100, after=None)
    assert [e.type for e in events if e.type.startswith(("Activity", "TaskS", "TaskF"))] == [
        "TaskStateEntered",
        "ActivityScheduled",
        "ActivitySucceeded",
        "TaskStateExited",
    ]
