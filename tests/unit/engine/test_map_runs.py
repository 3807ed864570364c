"""DISTRIBUTED Map states in the durable engine: what a Map Run stores (its children's events
marked as theirs), and how stepd.api.map_runs reads it back as AWS's Map Run and child
executions; its ARNs; a tolerated inline Map untouched by a child's cause.

The store is `MemoryStore`, the clock a fake.
"""

from __future__ import annotations

import json
from typing import Any

from tests.unit.engine.engine_support import Clock, finished, one_state, running_engine

from stepd.api.map_runs import map_runs, shown_history
from stepd.engine import history
from stepd.engine.arns import Arns, child_execution_arn, map_run_arn
from stepd.store.base import Store
from stepd.store.records import Event, Execution
from stepd.testing import FakeCaller

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:m:x"
DISTRIBUTED = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
CHILD = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


def fan(processor: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return one_state({"Type": "Map", "ItemProcessor": processor, **fields})


async def run(
    store: Store, definition: dict[str, Any], items: Any
) -> tuple[Execution, list[Event]]:
    engine = await running_engine(store, FakeCaller(), definition, Clock())
    started = await engine.start_execution("m", "x", json.dumps(items))
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    events = await store.history(done.id, reverse=False, limit=1000, after=None)
    return done, events


async def test_a_map_run_keeps_its_childrens_events_marked_and_shows_aws_history(store: Store):
    """Every event of a child is stored, marked with its run and index; what is shown is the
    run's own events, numbered 1..n; the run and each child read back from them."""
    done, events = await run(
        store, fan({**CHILD, "ProcessorConfig": DISTRIBUTED}, Label="L"), ["a", "b"]
    )
    assert done.status == "SUCCEEDED"
    started = next(e for e in events if e.type == "MapRunStarted")
    assert events[events.index(started) - 1].type == "MapStateStarted"
    children = [e for e in events if history.MAP_RUN_CHILD in e.details]
    assert {e.details[history.MAP_RUN_CHILD]["run"] for e in children} == {started.id}
    assert sorted({e.details[history.MAP_RUN_CHILD]["index"] for e in children}) == [0, 1]
    shown = [event for _, event in shown_history(events)]
    assert [e.type for e in shown] == [
        "ExecutionStarted",
        "MapStateEntered",
        "MapStateStarted",
        "MapRunStarted",
        "MapRunSucceeded",
        "MapStateSucceeded",
        "MapStateExited",
        "ExecutionSucceeded",
    ]
    assert [e.id for e in shown] == list(range(1, 9))
    [found] = map_runs(events, done)
    assert found.arn == started.details["mapRunStartedEventDetails"]["mapRunArn"]
    assert (found.status, found.counts()["succeeded"], found.counts()["total"]) == (
        "SUCCEEDED",
        2,
        2,
    )
    child = found.children[1]
    assert (child.input, child.output) == ('"b"', '"b"')
    assert [e.type for e in child.history("123456789012")] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]


async def test_an_inline_map_stores_no_map_run(store: Store):
    """Without DISTRIBUTED nothing is marked and the history is shown as stored."""
    done, events = await run(store, fan(CHILD), ["a"])
    assert done.status == "SUCCEEDED"
    assert not [e for e in events if history.hidden(e.details) or "MapRun" in e.type]
    assert [e.id for _, e in shown_history(events)] == [e.id for e in events]
    assert map_runs(events, done) == []


async def test_a_childs_cause_does_not_fail_a_tolerated_inline_map(store: Store):
    """A child failing with the words of a full history, while the history is not full, is
    a tolerated failure like any other."""
    failing = {
        "StartAt": "F",
        "States": {
            "F": {
                "Type": "Fail",
                "Error": "States.Runtime",
                "Cause": "The execution reached the limit of 25000 events.",
            }
        },
    }
    done, _ = await run(store, fan(failing, ToleratedFailureCount=1), ["a"])
    assert done.status == "SUCCEEDED"


def test_map_run_and_child_arns_name_what_they_belong_to() -> None:
    """A run's ARN names the machine, the Label, the execution and the event, its last part
    after a colon (AWS's map run id) naming the execution and the event; a child's the run and
    the index; both read back; a Label AWS would refuse gives way to a UUID."""
    run = map_run_arn(EXECUTION, "L", 4)
    assert run == "arn:aws:states:us-east-1:123456789012:mapRun:m/L:x-4"
    assert map_run_arn(EXECUTION.replace(":x", ":a-b-7"), "L", 4).endswith(":mapRun:m/L:a-b-7-4")
    assert Arns.map_run_of(run.replace(":x-4", ":a-b-7-4")) == ("m", "a-b-7", 4)
    assert Arns.map_run_of(run) == ("m", "x", 4)
    child = child_execution_arn(run, 3)
    assert child == "arn:aws:states:us-east-1:123456789012:execution:m/L:x-4-3"
    assert Arns.child_of(child) == ("m", "x", 4, 3)
    assert Arns.child_of(EXECUTION) is None
    assert Arns.child_of(child.replace("-3", "-³")) is None
    assert Arns.map_run_of(run.replace("-4", "-٤")) is None
    assert Arns.map_run_of(run.replace("x-4", "x")) is None
    odd = map_run_arn(EXECUTION, "a:b", 4)
    assert "a:b" not in odd
    assert Arns.map_run_of(odd) == ("m", "x", 4)
