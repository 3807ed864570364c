"""What the engine tests of Parallel, Map and redrive share: a clock the test moves, a
definition of one state, an engine on it that runs due work as soon as it is due, and waits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.engine.machines import Machine
from stepd.store.base import Store
from stepd.store.records import Execution
from stepd.tasks.endpoints import EndpointMap
from stepd.testing import FakeCaller

T0 = 1_800_000_000.0
POLL_SECONDS = 0.005
SETTLE_SECONDS = 5.0

CALL = {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:deliver", "End": True}
CALLING = {"StartAt": "Deliver", "States": {"Deliver": CALL}}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def machine(
    definition: dict[str, Any],
    routes: dict[str, str] | None = None,
    base_url: str = "http://classroom.test",
) -> Machine:
    return Machine(
        name="m",
        definition=definition,
        definition_text=json.dumps(definition),
        endpoints=EndpointMap(base_url=base_url, routes=routes or {"Deliver": "/deliver"}),
    )


def new_engine(store: Store, caller: FakeCaller, clock: Callable[[], float]) -> Engine:
    return Engine(
        uid=lambda: "u1",
        store=store,
        caller=caller,
        machines={},
        arns=Arns(),
        clock=clock,
        random=lambda: 0.5,
    )


async def stepped_engine(
    store: Store,
    caller: FakeCaller,
    definition: dict[str, Any],
    clock: Callable[[], float],
    *,
    routes: dict[str, str] | None = None,
    base_url: str = "http://classroom.test",
) -> Engine:
    """An engine serving machine "m" that the test steps itself (`advance`): no workers,
    and its timers arm nothing."""
    engine = new_engine(store, caller, clock)
    await engine.register({"m": machine(definition, routes, base_url)})
    engine.set_timer(lambda _id, _due: None)
    return engine


def one_state(state: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"StartAt": "S", "States": {"S": {"End": True, **state}}, **top}


async def running_engine(
    store: Store,
    caller: FakeCaller,
    definition: dict[str, Any],
    clock: Clock,
    *,
    routes: dict[str, str] | None = None,
    timer: Callable[[Engine, int, float], None] | None = None,
) -> Engine:
    """An engine serving machine "m" that runs whatever falls due by `clock` at once (or
    whose timer is `timer`)."""
    engine = new_engine(store, caller, clock)
    await engine.register({"m": machine(definition, routes)})
    wake = timer or (lambda engine, execution_id, due: arm(engine, clock, execution_id, due))
    engine.set_timer(lambda execution_id, due: wake(engine, execution_id, due))
    engine.start()
    return engine


def arm(engine: Engine, clock: Clock, execution_id: int, due: float) -> None:
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
    """The execution once it has closed."""

    async def closed() -> bool:
        execution = await store.get_execution(execution_id)
        return execution is not None and execution.status != "RUNNING"

    await until(closed)
    execution = await store.get_execution(execution_id)
    assert execution is not None
    return execution


async def types(store: Store, execution_id: int) -> list[str]:
    events = await store.history(execution_id, reverse=False, limit=30_000, after=None)
    return [e.type for e in events]
