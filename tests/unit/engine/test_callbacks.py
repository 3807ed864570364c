"""Callbacks: a `.waitForTaskToken` Task sends its call with a token, then waits for
SendTaskSuccess / SendTaskFailure, its TimeoutSeconds or its HeartbeatSeconds.

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
from stepd.engine.tokens import MAX_TOKEN_LENGTH, token_target
from stepd.errors import InvalidOutput, InvalidToken, TaskDoesNotExist, TaskTimedOut
from stepd.store.base import Store
from stepd.store.records import Execution
from stepd.tasks.caller import TaskOutcome
from stepd.tasks.endpoints import EndpointMap
from stepd.testing import FakeCaller

T0 = 1_800_000_000.0
RESOURCE = "arn:aws:states:::lambda:invoke.waitForTaskToken"


def callback_task(**fields: Any) -> dict[str, Any]:
    parameters = {"token.$": "$$.Task.Token", "room.$": "$.room"}
    return {"Type": "Task", "Resource": RESOURCE, "Parameters": parameters, **fields}


def one(state: dict[str, Any]) -> dict[str, Any]:
    return {"StartAt": "Ask", "States": {"Ask": {"End": True, **state}}}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self, store: Store, definition: dict[str, Any], caller: FakeCaller) -> None:
        self.store = store
        self.clock = Clock()
        self.caller = caller
        self.definition = definition
        self.engine = self.new_engine(caller)

    def new_engine(self, caller: FakeCaller) -> Engine:
        engine = Engine(
            uid=lambda: "u1",
            store=self.store,
            caller=caller,
            machines={},
            arns=Arns(),
            clock=self.clock,
            random=lambda: 0.5,
        )
        engine.set_timer(self._arm)
        return engine

    def _arm(self, execution_id: int, due: float) -> None:
        if due <= self.clock.now:
            self.engine.dispatch(execution_id, due)

    async def start(self, execution_input: Any) -> int:
        await self.engine.register(
            {
                "m": Machine(
                    name="m",
                    definition=self.definition,
                    definition_text=json.dumps(self.definition),
                    endpoints=EndpointMap(base_url="http://classroom.test", routes={"Ask": "/ask"}),
                )
            }
        )
        self.engine.start()
        started = await self.engine.start_execution("m", "x", json.dumps(execution_input))
        return started.execution.id

    async def tick(self, execution_id: int, now: float) -> None:
        """The clock moves on to `now` and the timer fires."""
        self.clock.now = now
        self.engine.dispatch(execution_id, now)
        await asyncio.sleep(0.05)

    async def tokens(self, count: int) -> list[str]:
        calls = await self.caller.wait_for(count)
        return [call.payload["token"] for call in calls]

    async def waiting(self, execution_id: int) -> None:
        """Until the execution's task call was answered and it waits for the callback."""

        async def check() -> bool:
            execution = await self.store.get_execution(execution_id)
            task = execution.task if execution else None
            return task is not None and task.awaiting_callback

        await until(check)

    async def closed(self, execution_id: int) -> Execution:
        async def check() -> bool:
            execution = await self.store.get_execution(execution_id)
            return execution is not None and execution.status != "RUNNING"

        await until(check)
        execution = await self.store.get_execution(execution_id)
        assert execution is not None
        return execution

    async def types(self, execution_id: int) -> list[str]:
        events = await self.store.history(execution_id, reverse=False, limit=1000, after=None)
        return [e.type for e in events]

    async def stop(self) -> None:
        self.engine.close()
        await self.engine.drain(1.0)


async def until(check: Callable[[], Any], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        if loop.time() > end:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.005)


async def test_success_is_the_task_result_and_the_http_answer_is_not(store: Store):
    """The call carries `$$.Task.Token`; the task waits; SendTaskSuccess's output is its
    result; the call is made once."""
    h = Harness(store, one(callback_task(ResultPath="$.answer")), FakeCaller({"ignored": 1}))
    execution_id = await h.start({"room": "r1"})
    [token] = await h.tokens(1)
    await h.waiting(execution_id)
    assert h.caller.calls[0].payload["room"] == "r1"
    assert 0 < len(token) <= MAX_TOKEN_LENGTH
    assert token_target(token) == ("m", "x", "")
    assert (await store.get_execution(execution_id)).status == "RUNNING"  # type: ignore[union-attr]
    await h.engine.send_task_success(token, '{"recorded": true}')
    done = await h.closed(execution_id)
    assert (done.status, json.loads(done.output or "")) == (
        "SUCCEEDED",
        {"room": "r1", "answer": {"recorded": True}},
    )
    assert await h.types(execution_id) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSubmitted",  # the call's answer, as AWS records it; the callback is the result
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    assert len(h.caller.calls) == 1
    with pytest.raises(TaskTimedOut):  # the task closed: a second callback is refused
        await h.engine.send_task_success(token, "{}")
    await h.stop()


async def test_a_callback_during_the_call_wins_over_its_answer(store: Store):
    """The server may call back before it answers the call: the callback settles the task
    and the late answer is discarded."""
    caller = FakeCaller()
    h = Harness(store, one(callback_task()), caller)
    caller.hold()
    execution_id = await h.start({"room": "r1"})
    [token] = await h.tokens(1)
    await h.engine.send_task_success(token, '"early"')
    caller.release()
    done = await h.closed(execution_id)
    assert (done.status, done.output) == ("SUCCEEDED", '"early"')
    await h.stop()


async def test_failure_is_retried_then_caught_with_its_error_and_cause(store: Store):
    """SendTaskFailure fails the task with its error and cause; Retry and Catch apply."""
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": callback_task(
                Retry=[{"ErrorEquals": ["Refused"], "IntervalSeconds": 5, "MaxAttempts": 1}],
                Catch=[{"ErrorEquals": ["Refused"], "ResultPath": "$.error", "Next": "Handled"}],
                End=True,
            ),
            "Handled": {"Type": "Pass", "End": True},
        },
    }
    h = Harness(store, definition, FakeCaller())
    execution_id = await h.start({"room": "r1"})
    [token] = await h.tokens(1)
    await h.waiting(execution_id)
    await h.engine.send_task_failure(token, "Refused", "the room is closed")
    retrying = await store.get_execution(execution_id)
    assert retrying is not None
    assert (retrying.state, retrying.attempt, retrying.due_at) == ("Ask", 1, T0 + 5)
    with pytest.raises(TaskTimedOut):  # between attempts there is no task to settle
        await h.engine.send_task_success(token, "{}")
    await h.tick(execution_id, T0 + 5)
    [_, again] = await h.tokens(2)
    await h.waiting(execution_id)
    await h.engine.send_task_failure(again, "Refused", "still closed")
    done = await h.closed(execution_id)
    assert (done.status, done.state) == ("SUCCEEDED", "Handled")
    assert json.loads(done.output or "")["error"] == {"Error": "Refused", "Cause": "still closed"}
    assert (await h.types(execution_id)).count("TaskFailed") == 2
    await h.stop()


async def test_a_failure_naming_no_error_is_caught_with_nulls_as_aws_does(store: Store):
    """SendTaskFailure with neither error nor cause: TaskFailed records neither, States.ALL
    catches it, and the error output is `{"Error": null, "Cause": null}` (AWS-recorded)."""
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": callback_task(
                Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}],
                End=True,
            ),
            "Caught": {"Type": "Pass", "End": True},
        },
    }
    h = Harness(store, definition, FakeCaller())
    execution_id = await h.start({"room": "r1"})
    [token] = await h.tokens(1)
    await h.waiting(execution_id)
    await h.engine.send_task_failure(token, None, None)
    done = await h.closed(execution_id)
    assert (done.status, done.state) == ("SUCCEEDED", "Caught")
    assert json.loads(done.output or "")["error"] == {"Error": None, "Cause": None}
    events = await store.history(execution_id, reverse=False, limit=1000, after=None)
    [failed] = [e.details["taskFailedEventDetails"] for e in events if e.type == "TaskFailed"]
    assert "error" not in failed
    assert "cause" not in failed
    await h.stop()


async def test_a_missed_heartbeat_times_the_task_out_and_a_late_callback_is_refused(
    store: Store,
):
    """SendTaskHeartbeat moves the heartbeat deadline; without one the task fails with
    States.Timeout (as AWS reports a heartbeat's timeout); a callback after that answers
    TaskTimedOut."""
    h = Harness(store, one(callback_task(HeartbeatSeconds=10, TimeoutSeconds=100)), FakeCaller())
    execution_id = await h.start({"room": "r1"})
    [token] = await h.tokens(1)
    await h.waiting(execution_id)
    assert (await store.get_execution(execution_id)).due_at == T0 + 10  # type: ignore[union-attr]
    h.clock.now = T0 + 6
    await h.engine.send_task_heartbeat(token)
    assert (await store.get_execution(execution_id)).due_at == T0 + 16  # type: ignore[union-attr]
    await h.tick(execution_id, T0 + 12)
    assert (await store.get_execution(execution_id)).status == "RUNNING"  # type: ignore[union-attr]
    await h.tick(execution_id, T0 + 16)
    done = await h.closed(execution_id)
    assert (done.status, done.error) == ("FAILED", "States.Timeout")
    assert "TaskTimedOut" in await h.types(execution_id)
    with pytest.raises(TaskTimedOut):
        await h.engine.send_task_success(token, "{}")
    with pytest.raises(TaskTimedOut):
        await h.engine.send_task_heartbeat(token)
    await h.stop()


@pytest.mark.parametrize(
    ("timeouts", "fires_at", "caught"),
    [
        pytest.param({"HeartbeatSeconds": 10, "TimeoutSeconds": 100}, 10, True, id="heartbeat"),
        pytest.param({"TimeoutSeconds": 30}, 30, False, id="timeout-seconds"),
    ],
)
async def test_a_catcher_naming_the_heartbeat_timeout_catches_only_that_one(
    store: Store, timeouts: dict[str, int], fires_at: int, *, caught: bool
):
    """Both timeouts are reported as States.Timeout (the TaskTimedOut event, the error
    output, the execution's error), but a catcher naming States.HeartbeatTimeout catches the
    heartbeat's alone."""
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                **callback_task(**timeouts),
                "Catch": [
                    {"ErrorEquals": ["States.HeartbeatTimeout"], "ResultPath": "$.missed",
                     "Next": "Missed"}
                ],
                "End": True,
            },
            "Missed": {"Type": "Pass", "End": True},
        },
    }  # fmt: skip
    h = Harness(store, definition, FakeCaller())
    execution_id = await h.start({"room": "r1"})
    await h.tokens(1)
    await h.waiting(execution_id)
    await h.tick(execution_id, T0 + fires_at)
    done = await h.closed(execution_id)
    events = await store.history(execution_id, reverse=False, limit=1000, after=None)
    [timed_out] = [
        e.details["taskTimedOutEventDetails"] for e in events if e.type == "TaskTimedOut"
    ]
    assert timed_out["error"] == "States.Timeout"
    if caught:
        assert (done.status, done.error) == ("SUCCEEDED", None)
        assert json.loads(done.output or "null")["missed"] == {"Error": "States.Timeout"}
    else:
        assert (done.status, done.error) == ("FAILED", "States.Timeout")
    await h.stop()


async def test_timeout_seconds_times_the_task_out(store: Store):
    """Without a callback within TimeoutSeconds (from the task's start): States.Timeout."""
    h = Harness(store, one(callback_task(TimeoutSeconds=30)), FakeCaller())
    execution_id = await h.start({"room": "r1"})
    await h.tokens(1)
    await h.waiting(execution_id)
    await h.tick(execution_id, T0 + 30)
    done = await h.closed(execution_id)
    assert (done.status, done.error) == ("FAILED", "States.Timeout")
    await h.stop()


async def test_a_failed_call_fails_the_task_without_waiting(store: Store):
    """When the call itself fails, the task fails with its error: no callback is awaited."""
    caller = FakeCaller(TaskOutcome(error="States.Http.StatusCode.500", cause="500", status=500))
    h = Harness(store, one(callback_task()), caller)
    execution_id = await h.start({"room": "r1"})
    done = await h.closed(execution_id)
    assert (done.status, done.error) == ("FAILED", "States.Http.StatusCode.500")
    await h.stop()


async def test_tokens_and_outputs_that_are_not_valid_are_refused(store: Store):
    h = Harness(store, one(callback_task()), FakeCaller())
    execution_id = await h.start({"room": "r1"})
    [token] = await h.tokens(1)
    await h.waiting(execution_id)
    with pytest.raises(InvalidToken):
        await h.engine.send_task_success("not-a-token", "{}")
    with pytest.raises(TaskTimedOut):  # the right task, a forged secret
        await h.engine.send_task_success(token[:-4] + "AAAA", "{}")
    forged = token.replace(token.split(".")[1], "WyJtIiwieSIsIiJd")  # ["m","y",""]
    with pytest.raises(TaskDoesNotExist):
        await h.engine.send_task_success(forged, "{}")
    for not_json in ("{not json", "NaN", '{"a": 1e400}'):
        with pytest.raises(InvalidOutput):
            await h.engine.send_task_success(token, not_json)
    assert (await store.get_execution(execution_id)).status == "RUNNING"  # type: ignore[union-attr]
    await h.stop()


async def test_each_map_iteration_gets_its_own_token(store: Store):
    """In a Map, every iteration's task has its own token; each callback settles its own."""
    ask = callback_task(End=True, Parameters={"token.$": "$$.Task.Token", "room.$": "$"})
    definition = one(
        {
            "Type": "Map",
            "ItemsPath": "$.rooms",
            "ItemProcessor": {"StartAt": "Ask", "States": {"Ask": ask}},
        }
    )
    h = Harness(store, definition, FakeCaller())
    execution_id = await h.start({"rooms": ["a", "b"]})
    calls = await h.caller.wait_for(2)
    by_room = {call.payload["room"]: call.payload["token"] for call in calls}
    assert len(set(by_room.values())) == 2

    async def both_waiting() -> bool:
        cursors = await store.running_cursors(execution_id)
        return len(cursors) == 2 and all(c.task and c.task.awaiting_callback for c in cursors)

    await until(both_waiting)
    await h.engine.send_task_success(by_room["b"], '"B"')
    await h.engine.send_task_success(by_room["a"], '"A"')
    done = await h.closed(execution_id)
    assert (done.status, json.loads(done.output or "")) == ("SUCCEEDED", ["A", "B"])
    with pytest.raises(TaskTimedOut):
        await h.engine.send_task_failure(by_room["a"], "Late", None)
    await h.stop()


async def test_a_token_survives_a_restart(store: Store):
    """A new engine on the same store settles the task a token was issued for, without
    calling again."""
    h = Harness(store, one(callback_task()), FakeCaller())
    execution_id = await h.start({"room": "r1"})
    [token] = await h.tokens(1)
    await h.waiting(execution_id)
    await h.stop()
    after = FakeCaller()
    h.caller = after
    h.engine = h.new_engine(after)
    await h.start({"room": "r1"})  # registers and starts; same name and input: same execution
    await h.engine.send_task_success(token, '"done"')
    done = await h.closed(execution_id)
    assert (done.status, done.output, after.calls) == ("SUCCEEDED", '"done"', [])
    await h.stop()


async def test_a_retried_task_gets_a_new_token_and_the_last_one_is_refused(store: Store):
    """Each attempt of a retried `.waitForTaskToken` task has its own token, as in AWS: the
    first attempt's token is refused like a closed task's while the second attempt waits."""
    retry = [{"ErrorEquals": ["Refused"], "IntervalSeconds": 5, "MaxAttempts": 1}]
    h = Harness(store, one(callback_task(Retry=retry)), FakeCaller())
    execution_id = await h.start({"room": "r1"})
    [first] = await h.tokens(1)
    await h.waiting(execution_id)
    await h.engine.send_task_failure(first, "Refused", "the room is closed")
    await h.tick(execution_id, T0 + 5)
    [_, second] = await h.tokens(2)
    await h.waiting(execution_id)

    assert second != first
    with pytest.raises(TaskTimedOut):
        await h.engine.send_task_success(first, '"late"')
    with pytest.raises(TaskTimedOut):
        await h.engine.send_task_heartbeat(first)
    await h.engine.send_task_success(second, '"done"')
    done = await h.closed(execution_id)
    assert (done.status, done.output) == ("SUCCEEDED", '"done"')
    await h.stop()


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(
            {"HeartbeatSecondsPath": "$.beat", "TimeoutSecondsPath": "$.limit"}, id="jsonpath"
        ),
        pytest.param(
            {
                "QueryLanguage": "JSONata",
                "Parameters": None,
                "Arguments": {"token": "{% $states.context.Task.Token %}"},
                "HeartbeatSeconds": "{% $states.input.beat %}",
                "TimeoutSeconds": "{% $states.input.limit %}",
            },
            id="jsonata",
        ),
    ],
)
async def test_heartbeat_and_timeout_seconds_are_read_from_the_input(
    store: Store, fields: dict[str, Any]
):
    """HeartbeatSecondsPath and TimeoutSecondsPath (in JSONata, expressions for
    HeartbeatSeconds and TimeoutSeconds) set the task's deadlines from the input."""
    state = {k: v for k, v in {**callback_task(), **fields}.items() if v is not None}
    h = Harness(store, one(state), FakeCaller())
    execution_id = await h.start({"room": "r1", "beat": 10, "limit": 25})
    [token] = await h.tokens(1)
    await h.waiting(execution_id)
    assert (await store.get_execution(execution_id)).due_at == T0 + 10  # type: ignore[union-attr]
    for beat in (8, 16, 24):  # heartbeats keep it going until TimeoutSeconds
        h.clock.now = T0 + beat
        await h.engine.send_task_heartbeat(token)
    assert (await store.get_execution(execution_id)).due_at == T0 + 25  # type: ignore[union-attr]
    await h.tick(execution_id, T0 + 25)
    done = await h.closed(execution_id)
    assert (done.status, done.error) == ("FAILED", "States.Timeout")
    await h.stop()
