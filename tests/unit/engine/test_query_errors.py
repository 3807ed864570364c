"""States.QueryEvaluationError is an error like any other for Retry and Catch, as in AWS: a
JSONata expression that fails while a Task, Map or Parallel state is entered (or while a
Task's Output is built) goes to the state's Retry, then its Catch, by name or by States.ALL;
without either the execution fails, with an EvaluationFailed event before ExecutionFailed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tests.unit.engine.engine_support import CALL, Clock, finished, running_engine, types

from stepd.store.base import Store
from stepd.testing import FakeCaller

QEE = "States.QueryEvaluationError"
BROKEN = "{% $states.input.missing %}"  # nothing: an error for Arguments, Items, Output


def jsonata(first: dict[str, Any]) -> dict[str, Any]:
    """`first` as state Deliver (mapped to an endpoint); its catcher goes to Caught, which
    passes the error on."""
    return {
        "QueryLanguage": "JSONata",
        "StartAt": "Deliver",
        "States": {
            "Deliver": {"Next": "Done", **first},
            "Caught": {"Type": "Pass", "End": True},
            "Done": {"Type": "Succeed"},
        },
    }


def caught_by(*names: str) -> list[dict[str, Any]]:
    return [{"ErrorEquals": list(names), "Next": "Caught"}]


async def run(store: Store, definition: dict[str, Any], caller: FakeCaller) -> Any:
    engine = await running_engine(store, caller, definition, Clock())
    started = await engine.start_execution("m", "x", json.dumps({"room": "B12"}))
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    return done, await types(store, started.execution.id)


@pytest.mark.parametrize("name", [QEE, "States.ALL"])
@pytest.mark.parametrize(
    "state",
    [
        pytest.param({**CALL, "Arguments": BROKEN}, id="task-arguments"),
        pytest.param({**CALL, "Output": {"r": BROKEN}}, id="task-output"),
        pytest.param(
            {
                "Type": "Map",
                "Items": BROKEN,
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            },
            id="map-items",
        ),
        pytest.param(
            {
                "Type": "Parallel",
                "Arguments": BROKEN,
                "Branches": [{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}],
            },
            id="parallel-arguments",
        ),
    ],
)
async def test_a_catcher_takes_the_query_evaluation_error(store, state, name):
    """Catch by name or by States.ALL: the execution goes on with the error output."""
    state = {key: value for key, value in state.items() if key != "End"}
    done, _ = await run(store, jsonata({**state, "Catch": caught_by(name)}), FakeCaller())

    assert done.status == "SUCCEEDED", (done.error, done.cause)
    output = json.loads(done.output or "")
    assert output["Error"] == QEE
    assert "An error occurred while executing the state 'Deliver'" in output["Cause"]


async def test_a_retrier_enters_the_state_again_and_counts_its_attempts(store):
    """Retry on States.QueryEvaluationError enters the state again after the interval, as
    often as MaxAttempts says; then the catcher takes the error."""
    state = {
        **{k: v for k, v in CALL.items() if k != "End"},
        "Arguments": BROKEN,
        "Retry": [{"ErrorEquals": [QEE], "IntervalSeconds": 1, "MaxAttempts": 2}],
        "Catch": caught_by("States.ALL"),
    }
    clock = Clock()
    engine = await running_engine(store, FakeCaller(), jsonata(state), clock)
    started = await engine.start_execution("m", "x", json.dumps({"room": "B12"}))
    for _ in range(3):  # each retry falls due a second later
        await asyncio.sleep(0.05)
        clock.now += 1
        engine.dispatch(started.execution.id, clock.now)
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    events = await types(store, started.execution.id)

    assert done.status == "SUCCEEDED", (done.error, done.cause)
    assert events.count("TaskStateEntered") == 3  # the first entry and two retries
    assert json.loads(done.output or "")["Error"] == QEE


async def test_without_retry_or_catch_the_execution_fails_with_an_evaluation_failed_event(
    store,
):
    """No catcher: FAILED with the error, and EvaluationFailed names the state and field."""
    state = {**{k: v for k, v in CALL.items() if k != "End"}, "Arguments": {"a": BROKEN}}
    done, events = await run(store, jsonata(state), FakeCaller())

    assert (done.status, done.error) == ("FAILED", QEE)
    assert "specified for the field 'Arguments/a'" in (done.cause or "")
    assert events[-2:] == ["EvaluationFailed", "ExecutionFailed"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("Timestamp", "{% $states.input.room %}"), ("Seconds", "{% -1 %}")],
)
async def test_a_wait_that_cannot_be_worked_out_names_its_field_as_the_location(
    store, field: str, value: str
):
    """A JSONata Wait whose Timestamp is no date (or whose Seconds is negative): the
    EvaluationFailed event's `location` is the field, as AWS records it."""
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Nap",
        "States": {"Nap": {"Type": "Wait", field: value, "End": True}},
    }
    engine = await running_engine(store, FakeCaller(), definition, Clock())
    started = await engine.start_execution("m", "x", json.dumps({"room": "B12"}))
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    events = await store.history(started.execution.id, reverse=False, limit=100, after=None)
    failed = next(e for e in events if e.type == "EvaluationFailed")

    assert (done.status, done.error) == ("FAILED", QEE)
    assert failed.details["evaluationFailedEventDetails"]["location"] == field
