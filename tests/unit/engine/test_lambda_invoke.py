"""AWS's Lambda integration in the engine: a `lambda:invoke` Task sends its Parameters'
Payload to the endpoint its function is mapped to, and its result is AWS's Invoke answer with
the function's answer as `Payload`; `.waitForTaskToken` sends the Payload and waits.

The store is `MemoryStore`, the server `FakeCaller`, the clock a fake moved by the test.
"""

from __future__ import annotations

import json
from typing import Any

from tests.unit.engine.engine_support import Clock, stepped_engine

from stepd.store.base import Store
from stepd.tasks.caller import TaskOutcome
from stepd.testing import FakeCaller

INVOKE = "arn:aws:states:::lambda:invoke"
ADDER = "arn:aws:lambda:us-east-1:123456789012:function:adder"


def _definition(resource: str = INVOKE, **task: Any) -> dict[str, Any]:
    state = {
        "Type": "Task",
        "Resource": resource,
        "Parameters": {
            "FunctionName": ADDER,
            "Payload": {"x.$": "$.x", "token.$": "$$.Task.Token"},
        },
        "End": True,
        **task,
    }
    if resource == INVOKE and "Parameters" not in task:
        state["Parameters"]["Payload"].pop("token.$")
    return {"StartAt": "Add", "States": {"Add": state}}


async def _run(
    store: Store,
    caller: FakeCaller,
    definition: dict[str, Any],
    name: str = "e1",
    routes: dict[str, str] | None = None,
) -> Any:
    engine = await stepped_engine(
        store,
        caller,
        definition,
        Clock(),
        routes=routes or {"adder": "/adder"},
        base_url="http://fn.test",
    )
    started = await engine.start_execution("m", name, json.dumps({"x": 5}))
    await engine.advance(started.execution.id)
    return await store.get_execution(started.execution.id)


async def test_the_function_mapped_by_name_gets_the_payload(store: Store):
    """The call goes to the endpoint of the function FunctionName names, with the Payload as
    its body; the history's TaskScheduled shows the whole Parameters, as AWS's does."""
    caller = FakeCaller({"sum": 6})
    done = await _run(store, caller, _definition())
    assert [(call.url, call.payload) for call in caller.calls] == [
        ("http://fn.test/adder", {"x": 5})
    ]
    events = await store.history(done.id, reverse=False, limit=100, after=None)
    [scheduled] = [e for e in events if e.type == "TaskScheduled"]
    parameters = scheduled.details["taskScheduledEventDetails"]["parameters"]
    assert json.loads(parameters) == {"FunctionName": ADDER, "Payload": {"x": 5}}


async def test_the_result_is_aws_invoke_answer(store: Store):
    """The function's answer is the result's Payload, with StatusCode 200 and AWS's metadata,
    so a ResultSelector written for AWS reads it."""
    caller = FakeCaller({"sum": 6})
    done = await _run(store, caller, _definition(ResultSelector={"value.$": "$.Payload"}))
    assert (done.status, json.loads(done.output)) == ("SUCCEEDED", {"value": {"sum": 6}})
    whole = await _run(store, FakeCaller({"sum": 6}), _definition(), "e2")
    result = json.loads(whole.output)
    assert (result["Payload"], result["StatusCode"], result["ExecutedVersion"]) == (
        {"sum": 6},
        200,
        "$LATEST",
    )
    assert set(result) == {
        "ExecutedVersion",
        "Payload",
        "SdkHttpMetadata",
        "SdkResponseMetadata",
        "StatusCode",
    }


async def test_wait_for_task_token_sends_the_payload_and_waits(store: Store):
    """`.waitForTaskToken`: the Payload (with the token) is sent, and the task waits for the
    callback instead of taking the answer as its result."""
    caller = FakeCaller({"accepted": True})
    waiting = await _run(store, caller, _definition(INVOKE + ".waitForTaskToken"))
    [call] = caller.calls
    assert (call.url, call.payload["x"], set(call.payload)) == (
        "http://fn.test/adder",
        5,
        {"x", "token"},
    )
    assert (waiting.status, waiting.task.awaiting_callback) == ("RUNNING", True)


async def test_the_answer_carries_the_headers_aws_records(store: Store):
    """SdkHttpMetadata holds AWS's header set: the body's size as the caller measured it, the
    date of the answer from the engine's clock, one request id for the headers and the SDK."""
    caller = FakeCaller(TaskOutcome(result={"sum": 6}, status=200, size=11))
    done = await _run(store, caller, _definition())
    result = json.loads(done.output)
    headers = result["SdkHttpMetadata"]["HttpHeaders"]
    assert (headers["Content-Length"], headers["Date"]) == ("11", "Fri, 15 Jan 2027 08:00:00 GMT")
    assert headers["x-amzn-RequestId"] == result["SdkResponseMetadata"]["RequestId"]
    assert result["SdkHttpMetadata"]["AllHttpHeaders"] == {k: [v] for k, v in headers.items()}


async def test_a_string_payload_is_sent_as_json_text(store: Store):
    """A string Payload is the JSON text the function gets, as AWS sends it."""
    caller = FakeCaller(0)
    definition = _definition(Parameters={"FunctionName": ADDER, "Payload": "0.0"})
    done = await _run(store, caller, definition)
    [call] = caller.calls
    assert (call.payload, type(call.payload)) == (0.0, float)
    assert json.loads(done.output)["Payload"] == 0


async def test_a_payload_that_is_not_json_text_fails_without_a_call(store: Store):
    """AWS Lambda refuses a string Payload that is not JSON: the task fails with
    Lambda.InvalidRequestContentException and nothing is sent."""
    caller = FakeCaller({"sum": 6})
    definition = _definition(Parameters={"FunctionName": ADDER, "Payload": "HelloWorld"})
    done = await _run(store, caller, definition)
    assert (done.status, done.error, caller.calls) == (
        "FAILED",
        "Lambda.InvalidRequestContentException",
        [],
    )
    assert "Could not parse request body into json" in (done.cause or "")


async def test_parameters_without_function_name_are_sent_whole(store: Store):
    """Parameters that name no function (as stepd 0.1 took them) are sent as they are to the
    state's endpoint, and the answer is the result unwrapped."""
    caller = FakeCaller({"sum": 6})
    definition = _definition(Parameters={"x.$": "$.x"})
    done = await _run(store, caller, definition, routes={"Add": "/add"})
    assert [(call.url, call.payload) for call in caller.calls] == [("http://fn.test/add", {"x": 5})]
    assert json.loads(done.output) == {"sum": 6}


async def test_a_function_error_fails_the_task_with_its_error_type(store: Store):
    """The function's error (its errorType, its body as cause) fails the task, as AWS does."""
    cause = json.dumps({"errorType": "Adder.Overflow", "errorMessage": "too big"})
    caller = FakeCaller(TaskOutcome(error="Adder.Overflow", cause=cause, status=200))
    done = await _run(store, caller, _definition())
    assert (done.status, done.error, done.cause) == ("FAILED", "Adder.Overflow", cause)
