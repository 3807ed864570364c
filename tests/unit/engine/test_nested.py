"""Nested executions in the engine (MemoryStore, a fake clock): `states:startExecution`
starts a child of a configured machine; `.sync` and `.sync:2` wait for it and take its
DescribeExecution answer as AWS shapes it; a failed child fails the task with
States.TaskFailed; no suffix answers at once; stopping the parent stops the child."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from structlog.testing import capture_logs
from tests.unit.engine.engine_support import Clock, until

from stepd.engine import nested as nested_module
from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.engine.machines import Machine
from stepd.engine.nested import Nested
from stepd.errors import StoreError
from stepd.store.base import Store
from stepd.store.records import Execution
from stepd.tasks.endpoints import EndpointMap
from stepd.testing import FakeCaller, MemoryStore

CHILD_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:child"
START = "arn:aws:states:::states:startExecution"
QUICK = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"done": True}, "End": True}}}
FAILING = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Room.Closed", "Cause": "c"}}}
WAITING = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100, "End": True}}}


def parent_of(suffix: str) -> dict[str, Any]:
    task = {
        "Type": "Task",
        "Resource": START + suffix,
        "Parameters": {"StateMachineArn": CHILD_ARN, "Input": {"room.$": "$.room"}},
        "End": True,
    }
    return {"StartAt": "Nest", "States": {"Nest": task}}


def as_machine(name: str, definition: dict[str, Any]) -> Machine:
    return Machine(
        name=name,
        definition=definition,
        definition_text=json.dumps(definition),
        endpoints=EndpointMap(base_url="http://classroom.test", routes={}),
    )


async def engine_with(store: Store, parent: dict[str, Any], child: dict[str, Any]) -> Engine:
    clock = Clock()
    engine = Engine(
        uid=lambda: "u1",
        store=store,
        caller=FakeCaller(),
        machines={},
        arns=Arns(),
        clock=clock,
        random=lambda: 0.5,
    )
    await engine.register(
        {"parent": as_machine("parent", parent), "child": as_machine("child", child)}
    )
    engine.set_timer(
        lambda execution_id, due: engine.dispatch(execution_id, due) if due <= clock.now else None
    )
    engine.start()
    return engine


async def closed(store: Store, machine: str, name: str) -> Execution:
    async def check() -> bool:
        found = await store.find_execution(machine, name)
        return found is not None and found.status != "RUNNING"

    await until(check)
    found = await store.find_execution(machine, name)
    assert found is not None
    return found


@pytest.fixture
async def store() -> Store:
    opened = MemoryStore()
    await opened.open()
    return opened


@pytest.mark.parametrize(("suffix", "as_json"), [(".sync", False), (".sync:2", True)])
async def test_a_sync_parent_gets_the_childs_description(
    store: Store, suffix: str, as_json: bool
) -> None:
    """The parent's result is the child's DescribeExecution answer, AWS's capitalised names;
    `.sync` keeps Input and Output as JSON text, `.sync:2` as JSON."""
    engine = await engine_with(store, parent_of(suffix), QUICK)
    await engine.start_execution("parent", "p", json.dumps({"room": "blue"}))
    parent = await closed(store, "parent", "p")
    assert parent.status == "SUCCEEDED", parent.cause
    result = json.loads(parent.output or "")
    assert result["Status"] == "SUCCEEDED"
    assert result["StateMachineArn"] == CHILD_ARN
    assert result["ExecutionArn"].startswith(
        "arn:aws:states:us-east-1:123456789012:execution:child:"
    )
    assert isinstance(result["StartDate"], int)
    if as_json:
        assert (result["Input"], result["Output"]) == ({"room": "blue"}, {"done": True})
    else:
        assert (json.loads(result["Input"]), json.loads(result["Output"])) == (
            {"room": "blue"},
            {"done": True},
        )
    parent_of_child, children = await engine.nested.family(parent)
    assert parent_of_child is None
    assert [c.machine for c in children] == ["child"]
    assert (await engine.nested.family(children[0]))[0] == parent


async def test_a_childs_output_that_is_not_unicode_text_still_reaches_a_sync2_parent(
    store: Store,
) -> None:
    """A child whose output holds a lone UTF-16 surrogate (a task's answer may, and
    States.StringToJson makes one here) succeeds, and its `.sync:2` parent gets that output
    as it is (the engine hands it over as a value: as text it would be refused like a
    client's SendTaskSuccess)."""
    lone = {
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Pass",
                "Parameters": {"s.$": r"""States.StringToJson('"\\ud800"')"""},
                "End": True,
            }
        },
    }
    engine = await engine_with(store, parent_of(".sync:2"), lone)
    await engine.start_execution("parent", "p", json.dumps({"room": "blue"}))
    parent = await closed(store, "parent", "p")
    assert parent.status == "SUCCEEDED", parent.cause
    assert json.loads(parent.output or "")["Output"] == {"s": "\ud800"}


async def test_a_failed_child_fails_the_task_with_its_description(store: Store) -> None:
    """A child that fails fails its `.sync` parent's task with States.TaskFailed, the cause
    being its DescribeExecution answer (its Error and Cause in it)."""
    engine = await engine_with(store, parent_of(".sync"), FAILING)
    await engine.start_execution("parent", "p", json.dumps({"room": "blue"}))
    parent = await closed(store, "parent", "p")
    assert parent.status == "FAILED"
    assert parent.error == "States.TaskFailed"
    cause = json.loads(parent.cause or "")
    assert (cause["Status"], cause["Error"], cause["Cause"]) == ("FAILED", "Room.Closed", "c")
    assert "Output" not in cause


async def test_a_sync_task_records_aws_events(store: Store) -> None:
    """As AWS records a `.sync` nested execution: TaskScheduled and TaskStarted naming the
    `states` integration's action, TaskSubmitted with StartExecution's answer, then the
    outcome."""
    engine = await engine_with(store, parent_of(".sync"), QUICK)
    await engine.start_execution("parent", "p", json.dumps({"room": "blue"}))
    parent = await closed(store, "parent", "p")
    events = await store.history(parent.id, reverse=False, limit=100, after=None)
    tasks = [e for e in events if e.type in {"TaskScheduled", "TaskStarted", "TaskSubmitted"}]
    tasks += [e for e in events if e.type == "TaskSucceeded"]
    assert [e.type for e in tasks] == [
        "TaskScheduled",
        "TaskStarted",
        "TaskSubmitted",
        "TaskSucceeded",
    ]
    for event in tasks:
        details = next(iter(event.details.values()))
        assert (details["resourceType"], details["resource"]) == ("states", "startExecution.sync")
    submitted = json.loads(tasks[2].details["taskSubmittedEventDetails"]["output"])
    assert set(submitted) == {"ExecutionArn", "StartDate", "SdkHttpMetadata", "SdkResponseMetadata"}


async def test_without_a_suffix_the_parent_goes_on_at_once(store: Store) -> None:
    """No suffix: the result is StartExecution's answer as AWS recorded it (ExecutionArn,
    StartDate in milliseconds, the SDK's response metadata), while the child still runs."""
    engine = await engine_with(store, parent_of(""), WAITING)
    await engine.start_execution("parent", "p", json.dumps({"room": "blue"}))
    parent = await closed(store, "parent", "p")
    result = json.loads(parent.output or "")
    assert set(result) == {"ExecutionArn", "StartDate", "SdkHttpMetadata", "SdkResponseMetadata"}
    metadata = result["SdkHttpMetadata"]
    assert metadata["HttpStatusCode"] == 200
    assert set(metadata["HttpHeaders"]) == {
        "connection",
        "Content-Length",
        "Content-Type",
        "Date",
        "x-amzn-RequestId",
    }
    assert metadata["HttpHeaders"]["x-amzn-RequestId"] == result["SdkResponseMetadata"]["RequestId"]
    assert isinstance(result["StartDate"], int)
    machine, name = engine.arns.execution_of(result["ExecutionArn"])
    child = await store.find_execution(machine, name)
    assert child is not None
    assert child.status == "RUNNING"


async def test_stopping_a_parent_stops_the_child_it_waits_for(store: Store) -> None:
    """StopExecution of a `.sync` parent whose child waits stops the child too."""
    engine = await engine_with(store, parent_of(".sync"), WAITING)
    await engine.start_execution("parent", "p", json.dumps({"room": "blue"}))

    async def has_child() -> bool:
        parent = await store.find_execution("parent", "p")
        return parent is not None and bool((await engine.nested.family(parent))[1])

    await until(has_child)
    stopped = await engine.stop_execution("parent", "p", None, None)
    child = (await engine.nested.family(stopped))[1][0]
    child = await closed(store, child.machine, child.name)
    assert child.status == "ABORTED"
    assert "parent execution" in (child.cause or "")


async def test_a_child_of_a_machine_not_configured_fails_as_aws_says(store: Store) -> None:
    """StartExecution refused: the task fails with StepFunctions.<Code>Exception."""
    definition = parent_of(".sync")
    definition["States"]["Nest"]["Parameters"]["StateMachineArn"] = "nope"
    engine = await engine_with(store, definition, QUICK)
    await engine.start_execution("parent", "p", json.dumps({"room": "blue"}))
    parent = await closed(store, "parent", "p")
    assert parent.error == "StepFunctions.StateMachineDoesNotExistException", parent.cause
    assert "Error Code: StateMachineDoesNotExist" in (parent.cause or "")


async def test_a_store_away_is_logged_once_per_outage_without_a_traceback(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep of links while the database is away (every sweep fails): one warning naming
    the error, no traceback, not one line a sweep; and once more after it came back and went."""
    monkeypatch.setattr(nested_module, "SWEEP_SECONDS", 0.01)
    failing = True

    async def sweep() -> None:
        if failing:
            raise StoreError("couldn't get a connection after 5.00 sec")

    nested = Nested(store, arns=Arns(), parent=None)  # type: ignore[arg-type]
    monkeypatch.setattr(nested, "sweep", sweep)
    with capture_logs() as logs:
        nested.start()
        await asyncio.sleep(0.1)
        failing = False
        await asyncio.sleep(0.05)
        failing = True
        await asyncio.sleep(0.05)
        nested.close()
    lines = [e for e in logs if e["event"] == "nested.sweep_failed"]
    assert [(e["log_level"], "exc_info" in e) for e in lines] == [("warning", False)] * 2
    assert "couldn't get a connection" in lines[0]["error"]
