"""A definition the AWS console writes for its Lambda integration (`arn:aws:states:::lambda:invoke`)
through the real daemon and boto3: the function's endpoint is mapped by the function's name, it
gets the Payload, the console's ResultSelector reads the answer, its Retry takes a throttled
call again and its Catch takes the function's own error. A Task whose Parameters name no
function keeps stepd's earlier behaviour.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import pytest
from tests.acceptance.http_support import serving

ADDER_ARN: Final = "arn:aws:lambda:us-east-1:123456789012:function:adder:$LATEST"
CONSOLE_RETRY: Final = [
    {
        "ErrorEquals": [
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
        ],
        "IntervalSeconds": 1,
        "MaxAttempts": 3,
        "BackoffRate": 2,
    }
]
CONSOLE: Final = {
    "StartAt": "Add",
    "States": {
        "Add": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": ADDER_ARN, "Payload.$": "$"},
            "ResultSelector": {"sum.$": "$.Payload.sum"},
            "Retry": CONSOLE_RETRY,
            "Catch": [
                {"ErrorEquals": ["Adder.Overflow"], "ResultPath": "$.error", "Next": "TooBig"}
            ],
            "End": True,
        },
        "TooBig": {"Type": "Pass", "End": True},
    },
}
WHOLE: Final = {  # no ResultSelector: AWS's whole Invoke answer
    "StartAt": "Add",
    "States": {
        "Add": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "adder", "Payload": {"a.$": "$.a", "b.$": "$.b"}},
            "End": True,
        }
    },
}
EARLIER: Final = {  # Parameters without FunctionName, as stepd 0.1 took them
    "StartAt": "Record",
    "States": {
        "Record": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"a.$": "$.a", "b.$": "$.b"},
            "End": True,
        }
    },
}
OVERFLOW_ERROR: Final = {"errorType": "Adder.Overflow", "errorMessage": "the sum is too big"}
ANSWER_HEADERS: Final = {
    "Connection",
    "Content-Length",
    "Content-Type",
    "Date",
    "X-Amz-Executed-Version",
    "x-amzn-Remapped-Content-Length",
    "x-amzn-RequestId",
    "X-Amzn-Trace-Id",
}


class Function(ThreadingHTTPServer):
    """The `adder` function: answers `{"sum": a + b}`; `overflow` raises Adder.Overflow as
    AWS Lambda reports a function's error; `busy` is throttled once, as Lambda's service
    reports it. Keeps every call's path and body."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def called(self, path: str) -> list[Any]:
        with self.lock:
            return [body for at, body in self.calls if at == path]


class _Handler(BaseHTTPRequestHandler):
    server: Function

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.calls.append((self.path, body))
            earlier = [b for p, b in self.server.calls if p == self.path and b == body]
        if isinstance(body, dict) and body.get("overflow"):
            self._send(200, OVERFLOW_ERROR, {"X-Amz-Function-Error": "Unhandled"})
        elif isinstance(body, dict) and body.get("busy") and len(earlier) == 1:
            self._send(429, "Rate exceeded", {"Stepd-Error": "Lambda.TooManyRequestsException"})
        else:
            self._send(200, {"sum": body["a"] + body["b"]})

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def function() -> Iterator[Function]:
    with serving(Function()) as server:
        yield server


@pytest.fixture(scope="module")
def sfn(tmp_path_factory: pytest.TempPathFactory, start_daemon: Any, function: Function) -> Any:
    """A daemon serving the console's definition and two more, the function mapped by name."""
    folder = tmp_path_factory.mktemp("lambda-invoke")
    machines = []
    for name, definition, endpoints in (
        ("console", CONSOLE, {"adder": "/adder"}),
        ("whole", WHOLE, {"adder": "/adder"}),
        ("earlier", EARLIER, {"Record": "/record"}),
    ):
        path = folder / f"{name}.asl.json"
        path.write_text(json.dumps(definition), encoding="utf-8")
        machines.append((name, path, endpoints))
    with start_daemon(folder, function.url, machines) as running:
        yield running.client()


def _run(sfn: Any, settle: Any, machine: str, name: str, given: Any) -> dict[str, Any]:
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(given))
    return settle(sfn, arn["executionArn"], {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    return sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]


def test_the_console_definition_runs_as_on_aws(sfn: Any, settle: Any, function: Function) -> None:
    """The function mapped by its name gets the state's input as Payload; ResultSelector
    reads `$.Payload.sum`."""
    described = _run(sfn, settle, "console", "add-2-3", {"a": 2, "b": 3})
    assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", {"sum": 5})
    assert {"a": 2, "b": 3} in function.called("/adder")


def test_a_throttled_call_is_retried(sfn: Any, settle: Any, function: Function) -> None:
    """Lambda.TooManyRequestsException is retried by the console's Retry; the second call's
    answer is the result."""
    given = {"a": 1, "b": 1, "busy": "retry-once"}
    described = _run(sfn, settle, "console", "add-busy", given)
    assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", {"sum": 2})
    assert function.called("/adder").count(given) == 2
    failed = [
        e["taskFailedEventDetails"]["error"]
        for e in _history(sfn, described["executionArn"])
        if e["type"] == "TaskFailed"
    ]
    assert failed == ["Lambda.TooManyRequestsException"]


def test_the_function_error_is_caught(sfn: Any, settle: Any) -> None:
    """The function's errorType is the error Catch names; the cause is its error body."""
    given = {"a": 1, "b": 2, "overflow": True}
    described = _run(sfn, settle, "console", "add-overflow", given)
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert (output["error"]["Error"], json.loads(output["error"]["Cause"])) == (
        "Adder.Overflow",
        OVERFLOW_ERROR,
    )
    assert {k: v for k, v in output.items() if k != "error"} == given
    history = _history(sfn, described["executionArn"])
    [failed] = [e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed"]
    assert (failed["resourceType"], failed["resource"], failed["error"]) == (
        "lambda",
        "invoke",
        "Adder.Overflow",
    )


def test_the_result_is_aws_invoke_answer(sfn: Any, settle: Any) -> None:
    """Without a ResultSelector the result is AWS's Invoke answer, with the headers AWS
    records; the Content-Length is that of the function's body."""
    described = _run(sfn, settle, "whole", "whole-1", {"a": 20, "b": 22})
    assert described["status"] == "SUCCEEDED"
    result = json.loads(described["output"])
    metadata = result["SdkHttpMetadata"]
    headers = metadata["HttpHeaders"]
    assert (result["Payload"], result["StatusCode"], result["ExecutedVersion"]) == (
        {"sum": 42},
        200,
        "$LATEST",
    )
    assert (set(headers), set(metadata["AllHttpHeaders"]), metadata["HttpStatusCode"]) == (
        ANSWER_HEADERS,
        ANSWER_HEADERS,
        200,
    )
    assert headers["Content-Length"] == str(len(json.dumps({"sum": 42})))
    assert headers["x-amzn-RequestId"] == result["SdkResponseMetadata"]["RequestId"]


def test_parameters_without_function_name_keep_the_earlier_behaviour(
    sfn: Any, settle: Any, function: Function
) -> None:
    """Parameters that name no function are sent whole to the state's endpoint, and the
    answer is the result as it is."""
    described = _run(sfn, settle, "earlier", "earlier-1", {"a": 4, "b": 5})
    assert (described["status"], json.loads(described["output"])) == ("SUCCEEDED", {"sum": 9})
    assert function.called("/record") == [{"a": 4, "b": 5}]
