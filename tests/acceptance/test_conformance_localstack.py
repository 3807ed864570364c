"""More AWS-recorded cases, Task states included, run through the real daemon and the real API.

conformance/localstack-cases.json holds the cases localstack_cases.py converted from
LocalStack's Step Functions tests and the snapshots they recorded against AWS (the ones
/work/shared/conformance does not have). Every case runs as a machine of one `stepd run`; the
executions all start at once with boto3's StartExecution, and each test waits for its own to
close: DescribeExecution gives the status and the output (JSON-equal) or the error and the
cause (where AWS recorded one), GetExecutionHistory the event types.

A Task state's calls go, by the machine's `[machines.endpoints]`, to a stand-in server on
loopback that answers as AWS's history shows the service did: the recorded result; a
function's error as AWS Lambda reports one (a 200 with `X-Amz-Function-Error` and the error
body); another service's error with `Stepd-Error: <its name>` and its message as the body; a
result over 256 KiB; or no answer before the state's TimeoutSeconds. For AWS's Lambda
integration (`arn:aws:states:::lambda:invoke`, Parameters naming a FunctionName) the stand-in
plays the function, not the service: it is sent the Payload (JSON text when a string, `{}`
when null), and answers with the recorded result's `Payload` and `StatusCode`, so that the
Invoke answer around it (its `SdkHttpMetadata` headers) is stepd's. A case stepd still runs
differently is in KNOWN_DIFFERENCES with the reason, and is expected to fail (strictly: a
case that starts to pass must leave the table).

Attribution and licence of the cases: the definitions and inputs come from LocalStack's Step
Functions tests (github.com/localstack/localstack, commit
8b9a79f05846835cf4dff63ab7eefdde9df83783, Apache-2.0; conformance/NOTICE), and the expected
status, output, error, cause and history event types from their snapshot files, which
LocalStack records against real AWS (tests marked `aws.validated`).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote

import pytest
from tests.acceptance.conformance_support import (
    CLOSED,
    MACHINE_ARN,
    Served,
    assert_json_matches,
    history_types,
    serve,
    text_matches,
)
from tests.acceptance.http_support import serving

_RECORDING_PLACEHOLDER: Final = re.compile(r"<[A-Za-z][A-Za-z0-9_:.-]*>")
CASES_FILE: Final = Path(__file__).parent / "conformance" / "localstack-cases.json"
SETTLE_SECONDS = 60.0  # every execution runs at once; the Retry cases wait seconds between tries
FUNCTION_ERROR: Final = "X-Amz-Function-Error"
NAMED_ERROR: Final = "Stepd-Error"
OVER_THE_LIMIT_BYTES: Final = 300 * 1024  # a result over AWS's (and stepd's) 256 KiB
TIMED_OUT_AFTER_SECONDS: Final = 7.0  # the cases' Task TimeoutSeconds are 5 or less
CASES: Final[list[dict[str, Any]]] = json.loads(CASES_FILE.read_text(encoding="utf-8"))["cases"]

# A Task that starts a state machine (states:startExecution, which stepd runs itself) names
# it only by the recording's placeholders: the runner serves that machine as TARGET<n> (one for
# each case, as each LocalStack test creates one) and names it in the case's input; a name with
# a random part (`<ArnPart_0idx><random_arn_part>`) is a machine that does not exist. The
# recording's account becomes stepd's in what the case expects, and the values LocalStack's
# transformers replaced (request ids, dates, content lengths) are compared by their presence.
START_EXECUTION: Final = "arn:aws:states:::states:startExecution"
TARGET: Final = "target"
TARGET_DEFINITION: Final = {
    "StartAt": "State_1",
    "States": {"State_1": {"Type": "Pass", "Result": {"Arg1": "argument1"}, "End": True}},
}
RECORDED_ACCOUNT: Final = "111111111111"
ACCOUNT: Final = MACHINE_ARN.split(":")[4]  # stepd's, as the daemon is configured
_RECORDED_MACHINE: Final = re.compile(
    r"arn:<partition>:states:<region>:111111111111:stateMachine:((?:<[A-Za-z0-9_]+>)+)"
)
_TRANSFORMED_KEYS: Final = frozenset(
    {"x-amzn-RequestId", "RequestId", "Date", "StartDate", "Content-Length", "X-Amzn-Trace-Id"}
)
LAMBDA_INVOKE: Final = "arn:aws:states:::lambda:invoke"

# Cases stepd does not end as AWS recorded, and why.
KNOWN_DIFFERENCES: dict[str, str] = {}
# Cases whose history types differ from AWS's, and why; the rest of the case is compared.
_INTERLEAVED = (
    "AWS interleaves the events of concurrent branches or iterations; stepd records each "
    "one's steps together, in order (the same events: compared as a multiset)"
)
_RECORDING_TRANSFORMED = (
    "LocalStack's recording of nested Parallel states passes through a transformer that "
    "drops the inner branches' events"
)
KNOWN_HISTORY_DIFFERENCES: dict[str, str] = {
    **dict.fromkeys(
        [
            "scenarios_test_base_scenarios::BaseScenarios::test_parallel_state[PARALLEL_STATE]",
            "scenarios_test_base_scenarios::BaseScenarios::test_parallel_state[PARALLEL_STATE_PARAMETERS]",
            "timeouts_test_timeouts::Timeouts::test_service_lambda_map_timeout",
        ],
        _INTERLEAVED,
    ),
    "scenarios_test_base_scenarios::BaseScenarios::test_parallel_state_nested": _RECORDING_TRANSFORMED,
}


# Interleaved cases whose recording depends on a race: events that may come fewer times here.
RACED_EVENTS: dict[str, tuple[str, ...]] = {
    # four iterations time out at one instant: AWS recorded each TaskTimedOut before it failed
    # the Map; stepd fails it at the first (the others are then aborted, as AWS records too)
    "timeouts_test_timeouts::Timeouts::test_service_lambda_map_timeout": ("TaskTimedOut",),
}


def task_state_names(states: dict[str, Any]) -> set[str]:
    """The names of every Task state of `states`, nested ones too."""
    return set(task_resources(states))


def task_resources(states: dict[str, Any]) -> dict[str, Any]:
    """The Resource of every Task state of `states`, nested ones too, by state name."""
    found: dict[str, Any] = {}
    for name, state in states.items():
        if state.get("Type") == "Task":
            found[name] = state.get("Resource")
        for branch in state.get("Branches", []):
            found.update(task_resources(branch.get("States", {})))
        for key in ("Iterator", "ItemProcessor"):
            if isinstance(state.get(key), dict):
                found.update(task_resources(state[key].get("States", {})))
    return found


def invokes_function(number: int, state: str, recorded_input: Any) -> bool:
    """Whether the recorded call is AWS's Lambda integration invoking a named function: then
    the stand-in plays the function."""
    resource = task_resources(CASES[number]["definition"].get("States", {})).get(state)
    return (
        isinstance(resource, str)
        and resource.startswith(LAMBDA_INVOKE)
        and isinstance(recorded_input, dict)
        and "FunctionName" in recorded_input
    )


def function_input(recorded_input: dict[str, Any]) -> Any:
    """What AWS sent the function: the Payload, JSON text when a string, `{}` when null."""
    payload = recorded_input.get("Payload")
    if payload is None:
        return {}
    if isinstance(payload, str):
        try:
            return json.loads(payload)
        except ValueError:
            return payload
    return payload


class StandIn(ThreadingHTTPServer):
    """Answers `POST /c<n>/<state>` as AWS's history shows the service answered that state:
    the first recorded call with an equal input not yet answered, else the next in order."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.answered: dict[tuple[int, str], set[int]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, number: int, state: str, body: Any) -> dict[str, Any] | None:
        recorded = CASES[number].get("stand_in", {}).get(state, [])
        with self.lock:
            used = self.answered.setdefault((number, state), set())
            free = [i for i in range(len(recorded)) if i not in used]
            same = [i for i in free if _sent(number, state, recorded[i]["input"]) == body]
            chosen = (same or free or [None])[0]
            if chosen is None:
                return None
            used.add(chosen)
            answer = dict(recorded[chosen])
        if "output" in answer and invokes_function(number, state, answer["input"]):
            answer["function"] = True  # the function's answer is the Invoke answer's Payload
        return answer


def _sent(number: int, state: str, recorded_input: Any) -> Any:
    """What stepd sends for a recorded call: the function's input, or the whole Parameters."""
    if invokes_function(number, state, recorded_input):
        return function_input(recorded_input)
    return recorded_input


class _Handler(BaseHTTPRequestHandler):
    server: StandIn

    def do_POST(self) -> None:
        _, case, state = self.path.split("/", 2)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        answer = self.server.answer(int(case.removeprefix("c")), unquote(state), body)
        if answer is None:
            self._send(500, {"message": "AWS's recording has no further call of this state"})
        elif answer.get("function"):  # as the function answered: AWS's Invoke holds it
            output = answer["output"]
            self._send(output["StatusCode"], json.dumps(output["Payload"]))
        elif "output" in answer:
            self._send(200, answer["output"])
        elif answer["error"] == "States.DataLimitExceeded":
            self._send(200, {"Payload": "x" * OVER_THE_LIMIT_BYTES})
        elif answer["error"] == "States.Timeout":
            time.sleep(TIMED_OUT_AFTER_SECONDS)  # longer than the state's TimeoutSeconds
            self._send(200, {})
        elif _is_function_error(answer):  # as AWS Lambda reports a function's error
            self._send(200, _text(answer["cause"]), headers={FUNCTION_ERROR: "Unhandled"})
        else:  # an AWS service's own error: its name, and its message as the cause
            self._send(400, _text(answer["cause"]), headers={NAMED_ERROR: answer["error"]})

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(ConnectionError):  # stepd gave up on a timed-out call
            self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None


def assert_ends_as_recorded_here(expected: dict[str, Any], described: dict[str, Any]) -> None:
    """Status, then output or error and cause, each as the snapshot files keep values."""
    status = described["status"]
    got = (described.get("error"), described.get("cause"), described.get("output"))
    assert status == expected["status"], f"{status} (error, cause, output: {got})"
    if status == "SUCCEEDED":
        output = as_recorded({"output": json.loads(described["output"])})["output"]
        recorded = as_recorded({"output": expected["output"]})["output"]
        output = _transformed_taken(output, recorded)
        assert_json_matches(_placeholders_taken(output, recorded), recorded)
        return
    error, cause = described.get("error"), described.get("cause")
    assert error == expected.get("error"), f"error {error!r} (cause {cause!r})"
    recorded = as_recorded({"cause": expected.get("cause")})["cause"]
    if isinstance(recorded, str) or recorded is None:
        assert text_matches(cause, _placeholders_as_timestamps(recorded)), f"cause {cause!r}"
    else:
        assert_json_matches(as_recorded({"cause": cause})["cause"], recorded)


def assert_same_history(actual: list[str], expected: dict[str, Any]) -> None:
    """The event types AWS recorded, in order; the message shows where they part."""
    recorded = expected["history_types"]
    if actual == recorded:
        return
    at = next((i for i, (a, r) in enumerate(zip(actual, recorded, strict=False)) if a != r), None)
    at = min(len(actual), len(recorded)) if at is None else at
    pytest.fail(
        f"history parts at event {at + 1}: stepd {actual[max(0, at - 1) : at + 3]}, "
        f"AWS {recorded[max(0, at - 1) : at + 3]} ({len(actual)} and {len(recorded)} events)"
    )


def _placeholders_as_timestamps(text: str | None) -> str | None:
    """A value the recording replaced in a cause (`<lambda_function_name>`, `<request_id>`)
    matches any text, as `<timestamp>` does."""
    return None if text is None else _RECORDING_PLACEHOLDER.sub("<timestamp>", text)


def _placeholders_taken(actual: Any, expected: Any) -> Any:
    """`actual` with each string that matches a recorded string holding placeholders replaced
    by that string (the rest is compared as it is)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: _placeholders_taken(v, expected.get(k)) for k, v in actual.items()}
    if isinstance(expected, list) and isinstance(actual, list) and len(actual) == len(expected):
        return [_placeholders_taken(a, e) for a, e in zip(actual, expected, strict=True)]
    if isinstance(expected, str) and isinstance(actual, str) and "<" in expected:
        pattern = _placeholders_as_timestamps(expected)
        return expected if text_matches(actual, pattern) else actual
    return actual


def as_recorded(value: Any) -> Any:
    """As LocalStack's snapshot files keep values: a string within an object that starts with
    `{` and is JSON is kept decoded (the case's expectations went through this once; decoding
    both sides again changes nothing more)."""
    if isinstance(value, dict):
        return {k: as_recorded(_decoded(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [as_recorded(v) for v in value]
    return value


def _decoded(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text(cause: Any) -> str:
    return cause if isinstance(cause, str) else json.dumps(cause)


def _is_function_error(answer: dict[str, Any]) -> bool:
    """A Lambda function's error: its cause is the error body, whose errorType is the error."""
    cause = answer["cause"]
    if isinstance(cause, str):
        try:
            cause = json.loads(cause)
        except ValueError:
            return False
    return isinstance(cause, dict) and cause.get("errorType") == answer["error"]


def _with_target(text: str, number: int) -> str:
    """`text` naming case `number`'s TARGET<n> (or, for a name with a random part, a machine
    that does not exist) where the recording names a machine by placeholders."""

    def named(found: re.Match[str]) -> str:
        name = f"{TARGET}{number}" if found[1] == "<ArnPart_0idx>" else f"{TARGET}-missing"
        return MACHINE_ARN.replace("c{number}", name)

    return _RECORDED_MACHINE.sub(named, text)


def starts_target(case: dict[str, Any]) -> bool:
    """Whether the case's Task starts (stepd itself, not the stand-in: states:startExecution)
    the machine the recording names by placeholders."""
    return (
        START_EXECUTION in json.dumps(case["definition"])
        and _RECORDED_MACHINE.search(json.dumps(case["input"])) is not None
    )


def case_input(number: int, case: dict[str, Any]) -> str:
    text = json.dumps(case["input"])
    return _with_target(text, number) if starts_target(case) else text


def expected_of(case: dict[str, Any]) -> dict[str, Any]:
    """What the case expects, in stepd's account where its Task starts TARGET."""
    if not starts_target(case):
        return case["expected"]
    text = json.dumps(case["expected"]).replace(f":{RECORDED_ACCOUNT}:", f":{ACCOUNT}:")
    return json.loads(text)


def _transformed_taken(
    actual: Any, expected: Any, *, varying: frozenset[str] = _TRANSFORMED_KEYS
) -> Any:
    """`actual` with the values LocalStack's transformers replaced (`varying`) taken from
    `expected` where both have them. In a Lambda Invoke answer whose Payload the recording
    kept as it was, Content-Length is compared as it is: it counts the function's body, which
    the stand-in sends as recorded."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if _is_invoke_answer(expected):
            varying = _TRANSFORMED_KEYS - {"Content-Length"}
        return {
            k: expected[k]
            if k in varying and k in expected
            else _transformed_taken(v, expected.get(k), varying=varying)
            for k, v in actual.items()
        }
    return actual


def _is_invoke_answer(value: dict[str, Any]) -> bool:
    """A Lambda Invoke answer whose Payload holds no value the recording replaced."""
    return (
        "ExecutedVersion" in value
        and "SdkHttpMetadata" in value
        and not _RECORDING_PLACEHOLDER.search(json.dumps(value.get("Payload")))
    )


def _param(number: int, case: dict[str, Any]) -> Any:
    reason = KNOWN_DIFFERENCES.get(case["id"])
    marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
    return pytest.param(number, id=case["id"], marks=marks)


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandIn]:
    with serving(StandIn()) as server:
        yield server


@pytest.fixture(scope="module")
def started(
    tmp_path_factory, start_daemon, stand_in: StandIn
) -> Iterator[tuple[Served, dict[int, str]]]:
    """One daemon serving every case as machine `c<n>`, each case's execution started."""

    def endpoints(number: int, case: dict[str, Any]) -> dict[str, str]:
        names = task_state_names(case["definition"].get("States", {}))
        return {name: f"{stand_in.url}/c{number}/{quote(name, safe='')}" for name in names}

    folder = tmp_path_factory.mktemp("conformance")
    targets = {f"{TARGET}{n}": TARGET_DEFINITION for n, c in enumerate(CASES) if starts_target(c)}
    with serve(CASES, folder, start_daemon, endpoints, targets) as served:
        arns = {
            number: served.sfn.start_execution(
                stateMachineArn=MACHINE_ARN.format(number=number),
                name="run",
                input=case_input(number, case),
            )["executionArn"]
            for number, case in enumerate(CASES)
            if number not in served.refused
        }
        yield served, arns


@pytest.mark.parametrize("number", [_param(n, c) for n, c in enumerate(CASES)])
def test_the_case_ends_as_aws_recorded(
    started: tuple[Served, dict[int, str]], settle: Any, number: int
) -> None:
    """Status, output or error and cause, and history types match AWS's recording."""
    served, arns = started
    case = CASES[number]
    if number in served.refused:
        pytest.fail(f"stepd check refuses the definition: {served.refused[number]}")
    described = settle(served.sfn, arns[number], set(CLOSED), SETTLE_SECONDS)
    expected = expected_of(case)
    assert_ends_as_recorded_here(expected, described)
    if "history_types" not in expected:
        return
    reason = KNOWN_HISTORY_DIFFERENCES.get(case["id"])
    if reason is None:
        assert_same_history(history_types(served.sfn, arns[number]), expected)
    elif reason == _INTERLEAVED:  # the same events, in another order
        got = Counter(history_types(served.sfn, arns[number]))
        recorded = Counter(expected["history_types"])
        for kind in RACED_EVENTS.get(case["id"], ()):
            assert got.pop(kind, 0) >= 1, kind
            recorded.pop(kind, None)
        assert got == recorded


def test_the_tables_name_only_cases_that_exist() -> None:
    """Every id in the tables of differences is a case of the file."""
    ids = {c["id"] for c in CASES}
    assert set(KNOWN_DIFFERENCES) - ids == set()
    assert set(KNOWN_HISTORY_DIFFERENCES) - ids == set()
