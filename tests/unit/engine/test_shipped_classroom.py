"""The shipped classroom machine (config/classroom.asl.yaml), run by the engine on a clock the
test moves: a recording that may have started is always stopped, bad input sends nothing, and
a class that is over is not recorded.

The engine, the interpreter and the definition are the real ones; the store is the in-memory
one and the classroom server a FakeCaller, so an hour of retries takes a moment.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stepd.asl.loader import load_definition
from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.engine.inputs import InputSchema
from stepd.engine.machines import Machine
from stepd.errors import InvalidExecutionInput
from stepd.store.records import Execution
from stepd.tasks.caller import TaskOutcome, TaskRequest
from stepd.tasks.endpoints import EndpointMap
from stepd.testing import FakeCaller, MemoryStore

CONFIG = Path(__file__).resolve().parents[3] / "config"
SHIPPED = load_definition(CONFIG / "classroom.asl.yaml").definition
BASE_URL = "http://classroom.test"
ENDPOINTS = {  # as config/stepd.toml maps them
    "StartRecording": "/recording/start",
    "SendLivePing": "/recording/ping",
    "StopRecording": "/recording/stop",
    "StopAfterFailure": "/recording/stop",
}
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
MAX_STEPS = 1000  # more advances than any run here takes


def at(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


CLASS = {"start": at(60), "end": at(3600)}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def failing(path: str, outcome: TaskOutcome) -> Callable[[TaskRequest], TaskOutcome | None]:
    """Every call to `path` comes to `outcome`; the others succeed."""
    return lambda request: outcome if request.url.endswith(path) else None


async def run(
    input_value: Any, respond: Callable[[TaskRequest], Any] | None = None
) -> tuple[Execution, FakeCaller]:
    """Start an execution of the shipped machine at T0 and advance it, moving the clock to
    each due instant, until it closes."""
    clock = Clock()
    store = MemoryStore(clock=clock)
    await store.open()
    caller = FakeCaller(respond=respond)
    engine = Engine(
        store=store, caller=caller, machines={}, arns=Arns(), clock=clock, random=lambda: 0.5
    )
    machine = Machine(
        name="classroom",
        definition=SHIPPED,
        definition_text=json.dumps(SHIPPED),
        endpoints=EndpointMap(base_url=BASE_URL, routes=ENDPOINTS),
    )
    await engine.register({"classroom": machine})
    engine.set_timer(lambda _id, _due: None)
    started = await engine.start_execution("classroom", "class-42", json.dumps(input_value))
    execution: Execution | None = started.execution
    for _ in range(MAX_STEPS):
        assert execution is not None
        if execution.status != "RUNNING" or execution.due_at is None:
            break
        clock.now = max(clock.now, execution.due_at)
        await engine.advance(execution.id)
        execution = await store.get_execution(execution.id)
    assert execution is not None
    assert execution.status != "RUNNING", execution
    await store.close()
    return execution, caller


def paths(caller: FakeCaller) -> list[str]:
    return [url.removeprefix(BASE_URL) for url in caller.urls]


@pytest.mark.parametrize(
    "input_value",
    [
        pytest.param({"start": at(60)}, id="no end"),
        pytest.param({"end": at(3600)}, id="no start"),
        pytest.param({"start": "tomorrow at nine", "end": at(3600)}, id="start not a timestamp"),
        pytest.param({"start": at(60), "end": 1800003600}, id="end a number"),
        pytest.param({"start": at(3600), "end": at(60)}, id="end before start"),
        pytest.param({"start": at(60), "end": at(60)}, id="end at start"),
        pytest.param([CLASS], id="not an object"),
    ],
)
async def test_bad_input_fails_before_anything_is_sent(input_value: Any):
    """Input without valid start and end fails with Classroom.InvalidInput, and the classroom
    server hears nothing."""
    execution, caller = await run(input_value)
    assert (execution.status, execution.error, caller.calls) == (
        "FAILED",
        "Classroom.InvalidInput",
        [],
    )


async def test_a_class_already_over_is_not_recorded():
    """A class whose end has passed fails with Classroom.AlreadyOver and sends nothing."""
    execution, caller = await run({"start": at(-7200), "end": at(-3600)})
    assert (execution.status, execution.error, caller.calls) == (
        "FAILED",
        "Classroom.AlreadyOver",
        [],
    )


async def test_a_class_under_way_starts_recording_at_once_and_stops_at_its_end():
    """A class whose start has passed but not its end is recorded from now to its end."""
    execution, caller = await run({"start": at(-600), "end": at(600)})
    assert execution.status == "SUCCEEDED"
    assert paths(caller) == ["/recording/start", "/recording/ping", "/recording/stop"]


@pytest.mark.parametrize(
    "outcome",
    [
        pytest.param(TaskOutcome(error="States.Http.StatusCode.500", status=500), id="500"),
        pytest.param(TaskOutcome(error="States.Timeout"), id="timeout"),
        pytest.param(TaskOutcome(error="States.Http.Socket"), id="down"),
    ],
)
async def test_a_start_that_fails_for_good_is_still_stopped(outcome: TaskOutcome):
    """When StartRecording fails after all its retries (the server may have started recording
    before it failed to answer), StopRecording is sent and the execution fails with the
    start's error."""
    execution, caller = await run(CLASS, failing("/recording/start", outcome))
    sent = paths(caller)
    assert (execution.status, execution.error) == ("FAILED", outcome.error)
    assert sent[-1] == "/recording/stop"
    assert sent.count("/recording/stop") == 1
    assert "/recording/ping" not in sent
    assert (
        sent.count("/recording/start")
        == SHIPPED["States"]["StartRecording"]["Retry"][0]["MaxAttempts"] + 1
    )


async def test_a_ping_that_fails_for_good_does_not_end_the_class():
    """A ping that fails after all its retries is passed over: the recording still stops at
    the class's end, and the execution succeeds."""
    outcome = TaskOutcome(error="States.Http.StatusCode.503", status=503)
    execution, caller = await run(CLASS, failing("/recording/ping", outcome))
    assert execution.status == "SUCCEEDED"
    assert paths(caller)[0] == "/recording/start"
    assert paths(caller)[-1] == "/recording/stop"
    assert paths(caller).count("/recording/stop") == 1
    output = json.loads(execution.output or "{}")
    assert output["pingFailure"]["Error"] == outcome.error


async def test_the_stop_is_retried_for_an_hour_before_the_execution_fails():
    """StopRecording failing is retried like the others; when it fails for good the execution
    fails with its error (there is nothing left to try)."""
    outcome = TaskOutcome(error="States.Http.StatusCode.500", status=500)
    execution, caller = await run(CLASS, failing("/recording/stop", outcome))
    assert (execution.status, execution.error) == ("FAILED", outcome.error)
    retries = SHIPPED["States"]["StopRecording"]["Retry"][0]["MaxAttempts"]
    assert paths(caller).count("/recording/stop") == retries + 1


SCHEMA = InputSchema(
    json.loads((CONFIG / "classroom.schema.json").read_text(encoding="utf-8")),
    source="classroom.schema.json",
)


@pytest.mark.parametrize(
    ("input_value", "named"),
    [
        pytest.param({"start": at(60)}, "$: 'end' is a required property", id="no end"),
        pytest.param(
            {"start": "tomorrow at nine", "end": at(3600)},
            "$.start: 'tomorrow at nine' is not a 'date-time'",
            id="start not a timestamp",
        ),
        pytest.param(
            {"start": at(60), "end": 1800003600},
            "$.end: 1800003600 is not of type 'string'",
            id="end a number",
        ),
        pytest.param([CLASS], "$: [", id="not an object"),
    ],
)
async def test_the_shipped_schema_refuses_bad_input_at_start_naming_where(
    input_value: Any, named: str
):
    """With the shipped input_schema, StartExecution refuses bad input with
    InvalidExecutionInput naming where it is wrong, and stores nothing."""
    store = MemoryStore()
    await store.open()
    engine = Engine(store=store, caller=FakeCaller(), machines={}, arns=Arns())
    machine = Machine(
        name="classroom",
        definition=SHIPPED,
        definition_text=json.dumps(SHIPPED),
        endpoints=EndpointMap(base_url=BASE_URL, routes=ENDPOINTS),
        input_schema=SCHEMA,
    )
    await engine.register({"classroom": machine})
    with pytest.raises(InvalidExecutionInput) as refused:
        await engine.start_execution("classroom", "class-42", json.dumps(input_value))
    assert named in refused.value.message
    assert "classroom.schema.json" in refused.value.message
    assert await store.count_by_status() == {}
    started = await engine.start_execution("classroom", "class-42", json.dumps(CLASS))
    assert started.created
