"""Parallel and Map states in the durable engine: children as cursors, calls in flight at
once, failures that stop siblings, nested fan-outs, the machine-wide TimeoutSeconds, restarts.

The store is `MemoryStore`, the classroom server `FakeCaller`, the clock a fake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.engine.machines import Machine
from stepd.store.base import Store
from stepd.store.records import Execution
from stepd.tasks.endpoints import EndpointMap
from stepd.testing import FakeCaller, MemoryStore

T0 = 1_800_000_000.0
POLL_SECONDS = 0.005
SETTLE_SECONDS = 5.0

CALL = {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:deliver", "End": True}
PASS_END = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
CALLING = {"StartAt": "Deliver", "States": {"Deliver": CALL}}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def machine(definition: dict[str, Any]) -> Machine:
    return Machine(
        name="m",
        definition=definition,
        definition_text=json.dumps(definition),
        endpoints=EndpointMap(base_url="http://classroom.test", routes={"Deliver": "/deliver"}),
    )


def one_state(state: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"StartAt": "S", "States": {"S": {"End": True, **state}}, **top}


async def running_engine(
    store: Store, caller: FakeCaller, definition: dict[str, Any], clock: Clock
) -> Engine:
    engine = Engine(
        uid=lambda: "u1",
        store=store,
        caller=caller,
        machines={},
        arns=Arns(),
        clock=clock,
        random=lambda: 0.5,
    )
    await engine.register({"m": machine(definition)})
    engine.set_timer(lambda execution_id, due: _arm(engine, clock, execution_id, due))
    engine.start()
    return engine


def _arm(engine: Engine, clock: Clock, execution_id: int, due: float) -> None:
    if due <= clock.now:
        engine.dispatch(execution_id, due)


async def until(check: Callable[[], Any], timeout: float = SETTLE_SECONDS) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        if loop.time() > end:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(POLL_SECONDS)


async def finished(store: Store, execution_id: int) -> Execution:
    async def closed() -> bool:
        execution = await store.get_execution(execution_id)
        return execution is not None and execution.status != "RUNNING"

    await until(closed)
    execution = await store.get_execution(execution_id)
    assert execution is not None
    return execution


async def types(store: Store, execution_id: int) -> list[str]:
    events = await store.history(execution_id, reverse=False, limit=10_000, after=None)
    return [e.type for e in events]


@pytest.fixture
async def store():
    opened = MemoryStore()
    await opened.open()
    yield opened
    await opened.close()


async def run(
    store: Store, definition: dict[str, Any], execution_input: Any, caller: FakeCaller | None = None
) -> Execution:
    clock = Clock()
    engine = await running_engine(store, caller or FakeCaller(), definition, clock)
    started = await engine.start_execution("m", "x", json.dumps(execution_input))
    done = await finished(store, started.execution.id)
    await engine.drain(1.0)
    return done


async def test_parallel_outputs_come_in_branch_order(store: Store):
    """Each branch gets the input; the outputs form an array in branch order."""
    branches = [
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": n, "End": True}}}
        for n in range(3)
    ]
    done = await run(store, one_state({"Type": "Parallel", "Branches": branches}), {})
    assert (done.status, json.loads(done.output or "")) == ("SUCCEEDED", [0, 1, 2])
    assert await types(store, done.id) == [
        "ExecutionStarted",
        "ParallelStateEntered",
        "ParallelStateStarted",
        *["PassStateEntered", "PassStateExited"] * 3,
        "ParallelStateExited",
        "ExecutionSucceeded",
    ]
