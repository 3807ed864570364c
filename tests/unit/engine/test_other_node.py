"""A node whose answer comes back after another node took its execution on (its lease ran
out while the call was in flight): the answer is discarded, and the call the other node has in
flight now is left to that node, not sent again from here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from tests.unit.engine.engine_support import (
    Clock,
    arm,
    machine,
    new_engine,
    running_engine,
    until,
)

from stepd.engine.executor import Engine
from stepd.store.memory import MemoryStore
from stepd.tasks.caller import TaskRequest
from stepd.testing import FakeCaller

TWO_CALLS: dict[str, Any] = {
    "StartAt": "First",
    "States": {
        "First": {"Type": "Task", "Resource": "first", "Next": "Second"},
        "Second": {"Type": "Task", "Resource": "second", "End": True},
    },
}


class SharedStore(MemoryStore):
    """One database for two nodes; `holder` says which node holds what (held_here asks)."""

    def __init__(self) -> None:
        super().__init__()
        self.holder: dict[int, str] = {}
        self.asking = "a"

    async def held_here(self, execution_id: int) -> bool:
        return self.holder.get(execution_id, self.asking) == self.asking


@pytest.fixture
async def shared() -> AsyncIterator[SharedStore]:
    store = SharedStore()
    await store.open()
    yield store
    await store.close()


async def node(store: SharedStore, caller: FakeCaller, clock: Clock, name: str) -> Engine:
    """An engine of node `name`; its timer wakes what is due and this node may claim (what
    no other node holds), as the cluster's claims do, and records what it was asked."""
    armed: list[tuple[int, float]] = []

    def arm(engine: Engine, execution_id: int, due: float) -> None:
        armed.append((execution_id, due))
        if due <= clock.now and store.holder.get(execution_id, name) == name:
            engine.dispatch(execution_id, due)

    engine = await running_engine(
        store,
        caller,
        TWO_CALLS,
        clock,
        routes={"First": "/first", "Second": "/second"},
        timer=arm,
    )
    engine.armed = armed  # type: ignore[attr-defined]
    return engine


async def test_an_answer_that_comes_after_a_takeover_sends_nothing_more(
    shared: SharedStore,
) -> None:
    clock = Clock()
    second_answered = asyncio.Event()

    async def respond(request: TaskRequest) -> None:
        if request.url.endswith("/second"):
            await second_answered.wait()

    caller_a, caller_b = FakeCaller(), FakeCaller(respond=respond)
    a = await node(shared, caller_a, clock, "a")
    b = await node(shared, caller_b, clock, "b")
    try:
        caller_a.hold()  # node a's call of First stays in flight
        started = await a.start_execution("m", "class-1", "{}")
        execution_id = started.execution.id
        await caller_a.wait_for(1)
        # node a is cut off; node b takes the execution and sends First again, with its key,
        # and goes on to Second, whose call it holds in flight
        shared.holder[execution_id] = "b"
        b.dispatch(execution_id, clock.now)
        await caller_b.wait_for(2)
        # node a's answer comes back: refused, and Second's call is node b's
        armed_before = len(a.armed)  # type: ignore[attr-defined]
        caller_a.release()

        async def a_let_go() -> bool:
            return len(a.armed) > armed_before  # type: ignore[attr-defined]

        await until(a_let_go)
        second_answered.set()

        async def succeeded() -> bool:
            found = await shared.get_execution(execution_id)
            return found is not None and found.status == "SUCCEEDED"

        await until(succeeded)
    finally:
        await a.drain(1)
        await b.drain(1)
    assert caller_a.urls == ["http://classroom.test/first"]
    assert caller_b.urls == ["http://classroom.test/first", "http://classroom.test/second"]
    assert caller_b.keys[0] == caller_a.keys[0]  # the same call, sent again with its key


async def test_a_node_runs_a_machine_its_config_does_not_name_with_the_stored_endpoints(
    shared: SharedStore,
) -> None:
    """A machine added to one node's config only (a reload rolling out node by node): a node
    that does not serve it takes its executions on with the endpoints stored with its
    definition (a path joined to its own base URL); none fails for want of an endpoint."""
    clock = Clock()
    caller_a, caller_b = FakeCaller(), FakeCaller()
    routes = {"First": "/first", "Second": "/second"}
    a = new_engine(shared, caller_a, clock)
    await a.register({"m": replace(machine(TWO_CALLS, routes), state_endpoints=routes)})
    a.set_timer(lambda execution_id, due: arm(a, clock, execution_id, due))
    a.start()
    b = new_engine(shared, caller_b, clock)
    b.base_url = "http://other-host.test"
    b.set_timer(lambda execution_id, due: arm(b, clock, execution_id, due))
    b.start()
    try:
        caller_a.hold()
        started = await a.start_execution("m", "class-2", "{}")
        execution_id = started.execution.id
        await caller_a.wait_for(1)
        shared.holder[execution_id] = "b"  # node a is gone; b takes it on
        b.dispatch(execution_id, clock.now)

        async def succeeded() -> bool:
            found = await shared.get_execution(execution_id)
            return found is not None and found.status == "SUCCEEDED"

        await until(succeeded)
    finally:
        caller_a.release()
        await a.drain(1)
        await b.drain(1)
    assert caller_b.urls == ["http://other-host.test/first", "http://other-host.test/second"]
