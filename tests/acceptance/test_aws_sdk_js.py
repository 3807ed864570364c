"""The control API as the AWS SDKs for JavaScript see it: v3 (`@aws-sdk/client-sfn`) and v2
(`aws-sdk`, called as the classroom blog post calls it), unchanged but for their endpoint,
against the session's real `stepd run`.

tests/js holds the SDK pinned by package-lock.json; `npm ci` installs it once (again only when
the lockfile changes). One `node tests/js/sfn_client.mjs` run makes every call below in order
and answers what the SDK parsed: its output objects (Dates marked as such) and its errors'
`name`, message, fault and HTTP status. The tests assert on those, as JavaScript code would.
node and npm are required, not optional: `make test` installs them (tests/setup.sh).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "js"
SCRIPT = JS_DIR / "sfn_client.mjs"
V2_SCRIPT = JS_DIR / "sdk_v2_client.cjs"  # aws-sdk v2, as the classroom blog post uses it
V2_NAME = f"js2-class-{uuid.uuid4().hex[:12]}"  # the execution the aws-sdk v2 calls are about
LOCK_INPUTS = ("package.json", "package-lock.json")
INSTALLED_STAMP = ".stepd-installed"  # in node_modules: digest of LOCK_INPUTS at `npm ci`
NPM_TIMEOUT_SECONDS = 300.0
NODE_TIMEOUT_SECONDS = 120.0

REGION = "us-east-1"
ACCOUNT = "123456789012"
CLASSROOM_DEFINITION = REPO / "config" / "classroom.asl.yaml"
CONFIGURED_MACHINES = ["classroom", "failing", "nap", "pager", "quick", "sleeper"]
CLOCK_SLACK = timedelta(seconds=2)  # between this process's clock and the daemon's


def machine_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"


def execution_arn(machine: str, name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{name}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def date_of(value: Any) -> datetime:
    """A value sfn_client.mjs wrote for a JavaScript Date, as an aware datetime; fails the test
    for anything else (a number or a string the SDK left unparsed)."""
    assert isinstance(value, dict), f"not a Date: {value!r}"
    assert list(value) == ["$date"], f"not a Date: {value!r}"
    return datetime.fromisoformat(value["$date"])


# -- the SDK, installed --------------------------------------------------------------------


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in LOCK_INPUTS:
        digest.update((JS_DIR / name).read_bytes())
    return digest.hexdigest()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not on PATH: the AWS SDK for JavaScript test needs node and npm "
            "(apt-get install nodejs npm; `make test` as root installs them)"
        )
    return path


@pytest.fixture(scope="session")
def node() -> str:
    """node, with tests/js/node_modules installed from the lockfile (`npm ci` when stale)."""
    node = _tool("node")
    npm = _tool("npm")
    stamp = JS_DIR / "node_modules" / INSTALLED_STAMP
    digest = _lock_digest()
    if not stamp.exists() or stamp.read_text(encoding="utf-8").strip() != digest:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(
                f"`npm ci` in {JS_DIR} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        stamp.write_text(digest + "\n", encoding="utf-8")
    return node


# -- one scenario, one node run ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """What the SDK answered to each call, by label, and what the calls were about."""

    name: str  # the classroom execution's name
    arn: str  # its ARN, as stepd should answer it
    payload: str  # its input
    before: datetime  # just before the run
    after: datetime  # just after it
    answers: dict[str, dict[str, Any]]

    def output(self, label: str) -> dict[str, Any]:
        answer = self.answers[label]
        assert answer["ok"], f"{label}: the SDK threw {answer['error']}"
        output: dict[str, Any] = answer["output"]
        return output

    def error(self, label: str) -> dict[str, Any]:
        answer = self.answers[label]
        assert not answer["ok"], f"{label}: the SDK answered {answer['output']}, no error"
        error: dict[str, Any] = answer["error"]
        return error


def _node_env(folder: Path) -> dict[str, str]:
    """This environment without AWS_* settings or NODE_OPTIONS, and with no AWS config files,
    so only the client's own configuration counts."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "STEPD_")) and key != "NODE_OPTIONS"
    }
    env["AWS_CONFIG_FILE"] = str(folder / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(folder / "no-aws-credentials")
    return env


def run_calls(
    node: str,
    url: str,
    calls: list[tuple[str, str, dict[str, Any]]],
    folder: Path,
    script: Path = SCRIPT,
) -> dict[str, dict[str, Any]]:
    """Runs `calls` ((label, command, input), in order) in one node process; answers by label."""
    request = [{"op": op, "input": params} for _, op, params in calls]
    done = subprocess.run(
        [node, str(script), url],
        cwd=JS_DIR,
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_SECONDS,
        env=_node_env(folder),
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{script.name} exited with {done.returncode}:\n{done.stderr}")
    try:
        answers = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"{script.name} wrote no JSON:\n{done.stdout}\n{done.stderr}")
    assert len(answers) == len(calls), done.stdout
    return {label: answer for (label, _, _), answer in zip(calls, answers, strict=True)}


@pytest.fixture(scope="module")
def scenario(node: str, daemon: Any, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The seed's call (classroom machine, name = class, input {start, end}) and everything
    around it, through the JavaScript SDK."""
    name = f"js-class-{uuid.uuid4().hex[:12]}"
    arn = execution_arn("classroom", name)
    now = datetime.now(UTC)
    start, end = now + timedelta(hours=1), now + timedelta(hours=2)
    payload = json.dumps({"start": iso(start), "end": iso(end)})
    other = json.dumps({"start": iso(start), "end": iso(end + timedelta(minutes=30))})
    classroom = machine_arn("classroom")
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("start", "StartExecution", {"stateMachineArn": classroom, "name": name, "input": payload}),
        ("again", "StartExecution", {"stateMachineArn": classroom, "name": name, "input": payload}),
        ("other", "StartExecution", {"stateMachineArn": classroom, "name": name, "input": other}),
        ("running", "DescribeExecution", {"executionArn": arn}),
        (
            "listed",
            "ListExecutions",
            {"stateMachineArn": classroom, "statusFilter": "RUNNING", "maxResults": 1000},
        ),
        ("history", "GetExecutionHistory", {"executionArn": arn}),
        (
            "stop",
            "StopExecution",
            {"executionArn": arn, "error": "Class.Cancelled", "cause": "no students"},
        ),
        ("stopped", "DescribeExecution", {"executionArn": arn}),
        (
            "listed_aborted",
            "ListExecutions",
            {"stateMachineArn": classroom, "statusFilter": "ABORTED", "maxResults": 1000},
        ),
        ("stopped_history", "GetExecutionHistory", {"executionArn": arn, "reverseOrder": True}),
        ("machines", "ListStateMachines", {}),
        ("machine", "DescribeStateMachine", {"stateMachineArn": classroom}),
        (
            "no_machine",
            "StartExecution",
            {"stateMachineArn": machine_arn("nosuchmachine"), "name": name, "input": "{}"},
        ),
        (
            "describe_no_machine",
            "DescribeStateMachine",
            {"stateMachineArn": machine_arn("nosuchmachine")},
        ),
        (
            "invalid_name",
            "StartExecution",
            {"stateMachineArn": classroom, "name": "with space", "input": payload},
        ),
        (
            "not_json",
            "StartExecution",
            {"stateMachineArn": classroom, "name": f"{name}-bad", "input": "not json"},
        ),
        (
            "no_execution",
            "DescribeExecution",
            {"executionArn": execution_arn("classroom", f"{name}-never")},
        ),
        ("bad_arn", "DescribeExecution", {"executionArn": "not-an-arn"}),
    ]
    before = datetime.now(UTC)
    answers = run_calls(node, daemon.url, calls, tmp_path_factory.mktemp("js-sdk"))
    after = datetime.now(UTC)
    return Scenario(
        name=name, arn=arn, payload=payload, before=before, after=after, answers=answers
    )


# -- executions ----------------------------------------------------------------------------


def test_start_execution_answers_the_execution_arn_and_a_start_date(scenario):
    """StartExecution resolves with the execution ARN and a Date startDate of about now."""
    started = scenario.output("start")
    assert started["executionArn"] == scenario.arn
    assert scenario.before - CLOCK_SLACK <= date_of(started["startDate"])
    assert date_of(started["startDate"]) <= scenario.after + CLOCK_SLACK


def test_start_execution_carries_http_status(scenario):
    """The SDK's $metadata has stepd's 200, from one attempt."""
    metadata = scenario.output("start")["$metadata"]
    assert (metadata["httpStatusCode"], metadata["attempts"]) == (200, 1)


@pytest.mark.parametrize("label", ["start", "other"])
def test_answers_carry_a_request_id(scenario, label):
    """Every answer, error or not, has a request id (x-amzn-RequestId) in the SDK's
    $metadata."""
    answer = scenario.answers[label]
    request_id = (
        answer["output"]["$metadata"].get("requestId")
        if answer["ok"]
        else answer["error"].get("requestId")
    )
    assert request_id


def test_same_name_and_input_again_is_the_same_execution(scenario):
    """Starting the class again with the same input resolves with the same execution."""
    first, again = scenario.output("start"), scenario.output("again")
    assert (again["executionArn"], again["startDate"]) == (
        first["executionArn"],
        first["startDate"],
    )


def test_same_name_other_input_is_execution_already_exists(scenario):
    """Other input under a running execution's name rejects with ExecutionAlreadyExists."""
    error = scenario.error("other")
    assert (error["name"], error["message"], error["modeled"]) == (
        "ExecutionAlreadyExists",
        f"Execution Already Exists: '{scenario.arn}'",
        True,
    )


def test_describe_a_running_classroom_execution(scenario):
    """DescribeExecution: RUNNING, the name, the input as given, Date startDate, no stopDate."""
    described = scenario.output("running")
    assert {
        key: described.get(key)
        for key in ("executionArn", "stateMachineArn", "name", "status", "input")
    } == {
        "executionArn": scenario.arn,
        "stateMachineArn": machine_arn("classroom"),
        "name": scenario.name,
        "status": "RUNNING",
        "input": scenario.payload,
    }
    assert date_of(described["startDate"]) == date_of(scenario.output("start")["startDate"])
    assert [key for key in ("stopDate", "output", "error", "cause") if key in described] == []


def test_list_executions_running_contains_it(scenario):
    """ListExecutions with statusFilter RUNNING lists the class with a Date startDate."""
    listed = {item["name"]: item for item in scenario.output("listed")["executions"]}
    item = listed[scenario.name]
    assert (item["executionArn"], item["stateMachineArn"], item["status"]) == (
        scenario.arn,
        machine_arn("classroom"),
        "RUNNING",
    )
    assert date_of(item["startDate"]) == date_of(scenario.output("start")["startDate"])
    assert {i["status"] for i in listed.values()} == {"RUNNING"}


def test_history_starts_with_execution_started(scenario):
    """GetExecutionHistory's first event is ExecutionStarted, id 1 after 0, with the input;
    the class then waits in RecordingWait."""
    events = scenario.output("history")["events"]
    first = events[0]
    assert (first["type"], first["id"], first["previousEventId"]) == ("ExecutionStarted", 1, 0)
    assert first["executionStartedEventDetails"]["input"] == scenario.payload
    assert isinstance(date_of(first["timestamp"]), datetime)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert (events[-1]["type"], events[-1]["stateEnteredEventDetails"]["name"]) == (
        "WaitStateEntered",
        "RecordingWait",
    )


def test_stop_then_describe_is_aborted(scenario):
    """StopExecution resolves with a Date stopDate; DescribeExecution is then ABORTED with the
    error and cause given."""
    stopped = scenario.output("stop")
    described = scenario.output("stopped")
    assert (
        described["status"],
        described.get("error"),
        described.get("cause"),
        date_of(described["stopDate"]),
    ) == ("ABORTED", "Class.Cancelled", "no students", date_of(stopped["stopDate"]))
    assert date_of(described["startDate"]) <= date_of(described["stopDate"])


def test_stopped_execution_is_listed_as_aborted_and_its_history_ends_aborted(scenario):
    """After the stop, ListExecutions ABORTED lists it and the history ends ExecutionAborted."""
    aborted = {
        item["name"]: item["status"] for item in scenario.output("listed_aborted")["executions"]
    }
    last = scenario.output("stopped_history")["events"][0]
    assert aborted.get(scenario.name) == "ABORTED"
    assert (last["type"], last["executionAbortedEventDetails"]) == (
        "ExecutionAborted",
        {"error": "Class.Cancelled", "cause": "no students"},
    )


# -- state machines ------------------------------------------------------------------------


def test_list_state_machines_lists_the_configured_machines(scenario):
    """ListStateMachines lists every configured machine, STANDARD, with a Date creationDate."""
    machines = sorted(scenario.output("machines")["stateMachines"], key=lambda m: m["name"])
    assert [(m["name"], m["stateMachineArn"], m["type"]) for m in machines] == [
        (n, machine_arn(n), "STANDARD") for n in CONFIGURED_MACHINES
    ]
    assert [isinstance(date_of(m["creationDate"]), datetime) for m in machines] == [True] * len(
        machines
    )


def test_describe_state_machine_gives_the_classroom_definition(scenario):
    """DescribeStateMachine answers the shipped classroom machine as JSON, ACTIVE, STANDARD."""
    described = scenario.output("machine")
    expected = yaml.safe_load(CLASSROOM_DEFINITION.read_text(encoding="utf-8"))
    assert (
        described["name"],
        described["stateMachineArn"],
        described["status"],
        described["type"],
    ) == ("classroom", machine_arn("classroom"), "ACTIVE", "STANDARD")
    assert json.loads(described["definition"]) == expected
    assert isinstance(date_of(described["creationDate"]), datetime)
    assert described["roleArn"].startswith("arn:aws:iam::")


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("other", "ExecutionAlreadyExists"),
        ("no_machine", "StateMachineDoesNotExist"),
        ("describe_no_machine", "StateMachineDoesNotExist"),
        ("invalid_name", "InvalidName"),
        ("not_json", "InvalidExecutionInput"),
        ("no_execution", "ExecutionDoesNotExist"),
        ("bad_arn", "InvalidArn"),
    ],
)
def test_errors_are_the_sdk_exception_classes(scenario, label, name):
    """Each refusal rejects with the client's exception class of AWS's name: a client fault,
    HTTP 400, a message."""
    error = scenario.error(label)
    assert (
        error["name"],
        error["modeled"],
        error["serviceException"],
        error["fault"],
        error["httpStatusCode"],
    ) == (name, True, True, "client", 400)
    assert error["message"]
    assert error["message"] != "UnknownError"


# -- aws-sdk v2, the blog post's client ----------------------------------------------------


@pytest.fixture(scope="module")
def v2_answers(
    node: str, daemon: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The blog post's `stepFunction.startExecution(params, callback)` with aws-sdk v2, and
    what such code does next."""
    name = V2_NAME
    now = datetime.now(UTC)
    payload = json.dumps(
        {"start": iso(now + timedelta(hours=1)), "end": iso(now + timedelta(hours=2))}
    )
    classroom = machine_arn("classroom")
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("start", "StartExecution", {"stateMachineArn": classroom, "name": name, "input": payload}),
        ("again", "StartExecution", {"stateMachineArn": classroom, "name": name, "input": "{}"}),
        ("running", "DescribeExecution", {"executionArn": execution_arn("classroom", name)}),
        ("stop", "StopExecution", {"executionArn": execution_arn("classroom", name)}),
        (
            "no_machine",
            "StartExecution",
            {"stateMachineArn": machine_arn("nosuchmachine"), "name": name, "input": "{}"},
        ),
    ]
    return run_calls(
        node, daemon.url, calls, tmp_path_factory.mktemp("js-sdk-v2"), script=V2_SCRIPT
    )


def test_v2_start_execution_as_the_blog_post_calls_it(v2_answers):
    """aws-sdk v2's callback gets the execution ARN and a Date."""
    start = v2_answers["start"]
    assert start["ok"], start
    assert start["output"]["executionArn"] == execution_arn("classroom", V2_NAME)
    assert date_of(start["output"]["startDate"]) > datetime.now(UTC) - timedelta(minutes=5)


def test_v2_errors_carry_the_aws_code_and_status(v2_answers):
    """The callback's err has AWS's code, HTTP 400 and a request id, not retryable."""
    for label, code in (
        ("again", "ExecutionAlreadyExists"),
        ("no_machine", "StateMachineDoesNotExist"),
    ):
        answer = v2_answers[label]
        assert not answer["ok"], answer
        error = answer["error"]
        assert (error["code"], error["statusCode"], error["retryable"]) == (code, 400, False)
        assert error["requestId"], error


def test_v2_describe_and_stop(v2_answers):
    """Describe answers RUNNING with the input; Stop answers a stopDate."""
    running = v2_answers["running"]
    assert running["ok"], running
    assert running["output"]["status"] == "RUNNING"
    assert json.loads(running["output"]["input"])["start"]
    stop = v2_answers["stop"]
    assert stop["ok"], stop
    assert date_of(stop["output"]["stopDate"]) >= date_of(
        v2_answers["start"]["output"]["startDate"]
    )
