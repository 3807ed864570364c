"""A retried Task builds its request again for each attempt, as AWS does: Parameters (or
JSONata Arguments) see `$$.State.RetryCount` of that attempt, while every attempt of one state
entry keeps the same Idempotency-Key, and a re-send after a crash sends that attempt's body.

The store is `MemoryStore`, the server `FakeCaller`, the clock a fake moved by the test.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.unit.engine.engine_support import T0, Clock, stepped_engine

from stepd.engine.executor import Engine
from stepd.store.base import Store
from stepd.tasks.caller import TaskOutcome
from stepd.testing import FakeCaller

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:deliver"
BUSY = TaskOutcome(error="Room.Busy", cause="busy")
RETRY = [{"ErrorEquals": ["Room.Busy"], "IntervalSeconds": 2, "BackoffRate": 1}]
KEY = "m/e1/u1/2"  # the key of the one entry of state "Deliver" (entered at event 2)


class Crash(BaseException):
    """The daemon dies while the call is in flight."""


def _definition(**task: Any) -> dict[str, Any]:
    state = {"Type": "Task", "Resource": FUNCTION, "Retry": RETRY, "End": True, **task}
    return {"StartAt": "Deliver", "States": {"Deliver": state}}


async def _engine(store: Store, clock: Clock, caller: FakeCaller, definition: Any) -> Engine:
    return await stepped_engine(store, caller, definition, clock)


async def _run_attempts(engine: Engine, clock: Clock, execution_id: int, attempts: int) -> None:
    """Advance through `attempts` calls, 2 s apart (the retrier's interval)."""
    for attempt in range(attempts):
        clock.now = T0 + 2 * attempt
        await engine.advance(execution_id)


async def _scheduled_inputs(store: Store, execution_id: int) -> list[Any]:
    events = await store.history(execution_id, reverse=False, limit=1000, after=None)
    return [
        json.loads(e.details["lambdaFunctionScheduledEventDetails"]["input"])
        for e in events
        if e.type == "LambdaFunctionScheduled"
    ]


async def test_each_attempt_sends_parameters_with_its_retry_count(store: Store):
    """Parameters reading `$$.State.RetryCount` send 0, 1, 2 on the first call and two retries,
    all with one Idempotency-Key."""
    clock, caller = Clock(), FakeCaller(BUSY, BUSY)
    parameters = {"room.$": "$.room", "attempt.$": "$$.State.RetryCount"}
    engine = await _engine(store, clock, caller, _definition(Parameters=parameters))
    started = await engine.start_execution("m", "e1", json.dumps({"room": "B12"}))
    await _run_attempts(engine, clock, started.execution.id, 3)
    assert [call.payload for call in caller.calls] == [
        {"room": "B12", "attempt": 0},
        {"room": "B12", "attempt": 1},
        {"room": "B12", "attempt": 2},
    ]
    assert caller.keys == [KEY] * 3
    done = await store.get_execution(started.execution.id)
    assert done is not None
    assert done.status == "SUCCEEDED"


async def test_each_attempts_scheduled_event_shows_its_own_input(store: Store):
    """The history's LambdaFunctionScheduled of each attempt holds the input that attempt sent."""
    clock, caller = Clock(), FakeCaller(BUSY, BUSY)
    parameters = {"attempt.$": "$$.State.RetryCount"}
    engine = await _engine(store, clock, caller, _definition(Parameters=parameters))
    started = await engine.start_execution("m", "e1", "{}")
    await _run_attempts(engine, clock, started.execution.id, 3)
    assert await _scheduled_inputs(store, started.execution.id) == [
        {"attempt": 0},
        {"attempt": 1},
        {"attempt": 2},
    ]


async def test_jsonata_arguments_are_evaluated_for_each_attempt(store: Store):
    """JSONata Arguments reading `$states.context.State.RetryCount` send 0 then 1."""
    clock, caller = Clock(), FakeCaller(BUSY)
    arguments = {"attempt": "{% $states.context.State.RetryCount %}"}
    definition = {"QueryLanguage": "JSONata", **_definition(Arguments=arguments)}
    engine = await _engine(store, clock, caller, definition)
    started = await engine.start_execution("m", "e1", "{}")
    await _run_attempts(engine, clock, started.execution.id, 2)
    assert [call.payload for call in caller.calls] == [{"attempt": 0}, {"attempt": 1}]
    assert caller.keys == [KEY] * 2


async def test_a_resend_after_a_crash_sends_the_same_attempts_body(store: Store):
    """A crash while the second attempt is in flight: after the restart that attempt is sent
    again with its own body (RetryCount 1) and the same key, not built once more."""
    clock = Clock()
    parameters = {"attempt.$": "$$.State.RetryCount"}
    definition = _definition(Parameters=parameters)
    crashing = FakeCaller(BUSY, Crash())
    engine = await _engine(store, clock, crashing, definition)
    started = await engine.start_execution("m", "e1", "{}")
    await engine.advance(started.execution.id)
    clock.now = T0 + 2
    with pytest.raises(Crash):
        await engine.advance(started.execution.id)
    restarted_caller = FakeCaller()
    restarted = await _engine(store, clock, restarted_caller, definition)
    clock.now = T0 + 3
    await restarted.advance(started.execution.id)
    sent = [(call.payload, call.idempotency_key) for call in crashing.calls]
    resent = [(call.payload, call.idempotency_key) for call in restarted_caller.calls]
    assert sent == [({"attempt": 0}, KEY), ({"attempt": 1}, KEY)]
    assert resent == [({"attempt": 1}, KEY)]
    assert await _scheduled_inputs(store, started.execution.id) == [{"attempt": 0}, {"attempt": 1}]


async def test_parameters_that_fail_on_a_retry_fail_the_execution(store: Store):
    """Parameters that cannot be built for a retry attempt (a path that the attempt's
    RetryCount makes missing) fail the execution with States.Runtime, as on entry."""
    clock, caller = Clock(), FakeCaller(BUSY)
    parameters = {"item.$": "States.ArrayGetItem($.items, $$.State.RetryCount)"}
    engine = await _engine(store, clock, caller, _definition(Parameters=parameters))
    started = await engine.start_execution("m", "e1", json.dumps({"items": ["a"]}))
    await _run_attempts(engine, clock, started.execution.id, 2)
    failed = await store.get_execution(started.execution.id)
    assert failed is not None
    assert [call.payload for call in caller.calls] == [{"item": "a"}]
    assert (failed.status, failed.error) == ("FAILED", "States.Runtime")
