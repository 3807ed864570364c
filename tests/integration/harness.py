"""The real daemon as a subprocess, its API over loopback, and the checks the crash tests share.

`Stepd` starts `python -m stepd run -c FILE` with its output in a log file, waits for
`GET /healthz`, kills it with SIGKILL and starts it again on the same config and database.
`Classroom` describes one execution of the test machine (its input and due instants), and the
`check_*` helpers state what "nothing lost, nothing early" means for the records the stand-in
classroom server kept.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from stepd import __version__
from stepd.classroom import ClassroomServer, Record

READY_SECONDS = 20.0  # a daemon that is not answering /healthz after this has failed to start
EXIT_SECONDS = 20.0  # a refusing daemon (bad config, locked store) exits within this
API_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.05
EARLY_SLACK_SECONDS = 0.005  # clock resolution: a POST this much before its due instant is early
LOG_TAIL_LINES = 80
AMZ_JSON = "application/x-amz-json-1.0"
USER_AGENT = f"stepd/{__version__}"
_START_MARK = "--- stepd run, start "

MACHINE = "classroom"
PING_WAIT_SECONDS = 2
START_PATH = "/recording/start"
PING_PATH = "/recording/ping"
STOP_PATH = "/recording/stop"
STEP_PATHS = (START_PATH, PING_PATH, STOP_PATH)  # in the order the machine takes them
ENDPOINTS = {"StartRecording": START_PATH, "SendLivePing": PING_PATH, "StopRecording": STOP_PATH}

# The classroom machine of config/classroom.asl.yaml with a short ping wait and no Retry: a
# task that fails fails the execution, so a test sees it.
DEFINITION: dict[str, Any] = {
    "Comment": "Record a classroom (integration tests)",
    "StartAt": "RecordingWait",
    "States": {
        "RecordingWait": {"Type": "Wait", "TimestampPath": "$.start", "Next": "StartRecording"},
        "StartRecording": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:StartRecorder",
            "ResultPath": None,
            "Next": "SendLivePingWait",
        },
        "SendLivePingWait": {
            "Type": "Wait",
            "Seconds": PING_WAIT_SECONDS,
            "Next": "SendLivePing",
        },
        "SendLivePing": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:SendLivePing",
            "ResultPath": None,
            "Next": "StoppingWait",
        },
        "StoppingWait": {"Type": "Wait", "TimestampPath": "$.end", "Next": "StopRecording"},
        "StopRecording": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:StopRecorder",
            "ResultPath": None,
            "End": True,
        },
    },
}

_TASK = (
    "TaskStateEntered",
    "LambdaFunctionScheduled",
    "LambdaFunctionStarted",
    "LambdaFunctionSucceeded",
    "TaskStateExited",
)
_WAIT = ("WaitStateEntered", "WaitStateExited")
EXPECTED_TYPES = (
    "ExecutionStarted",
    *_WAIT,
    *_TASK,
    *_WAIT,
    *_TASK,
    *_WAIT,
    *_TASK,
    "ExecutionSucceeded",
)
EXPECTED_STATES = (
    "RecordingWait",
    "StartRecording",
    "SendLivePingWait",
    "SendLivePing",
    "StoppingWait",
    "StopRecording",
)


# -- time ---------------------------------------------------------------------------------


def rfc3339(ts: float) -> str:
    """`ts` as RFC 3339 UTC with `Z`, whole seconds (what stepd and AWS read without loss)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_second(after: float) -> int:
    """The first whole unix second at least `after` seconds from now."""
    return math.ceil(time.time() + after)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float, what: str, explain: str = ""
) -> None:
    """Poll `predicate` until it holds; fail with `what` (and `explain`) after `timeout`."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{explain}")
        await asyncio.sleep(POLL_SECONDS)


async def sleep_until(ts: float) -> None:
    """Sleep until the wall clock reads `ts` (unix seconds)."""
    while (left := ts - time.time()) > 0:
        await asyncio.sleep(min(left, 0.5))


# -- files --------------------------------------------------------------------------------


def write_config(
    folder: Path,
    *,
    base_url: str,
    port: int,
    name: str = "stepd.toml",
    db: str = "stepd.db",
    timeout_seconds: float = 10,
) -> Path:
    """The test machine's definition and a config naming it, in `folder`."""
    definition = folder / "classroom.asl.json"
    definition.write_text(json.dumps(DEFINITION, indent=2), encoding="utf-8")
    endpoints = "\n".join(f'{state} = "{path}"' for state, path in ENDPOINTS.items())
    config = folder / name
    config.write_text(
        f"""[store]
path = "{db}"
[api]
listen = "127.0.0.1:{port}"
[http]
base_url = "{base_url}"
timeout_seconds = {timeout_seconds}
[log]
level = "info"
format = "json"
[[machines]]
name = "{MACHINE}"
definition = "{definition.name}"
[machines.endpoints]
{endpoints}
""",
        encoding="utf-8",
    )
    return config


def rename_task(config: Path, *, old: str, new: str, path: str) -> None:
    """Make `config` run the test machine with its Task state `old` renamed `new` (in a
    definition file of its own): the endpoint line of `old` gives way to one of `new`, to
    `path`, as an operator does after renaming a state."""
    states = {
        new if name == old else name: state | ({"Next": new} if state.get("Next") == old else {})
        for name, state in DEFINITION["States"].items()
    }
    definition = config.with_name(f"{config.stem}-renamed.asl.json")
    definition.write_text(json.dumps(DEFINITION | {"States": states}), encoding="utf-8")
    text = config.read_text(encoding="utf-8")
    text = text.replace('definition = "classroom.asl.json"', f'definition = "{definition.name}"')
    text = text.replace(f'{old} = "{ENDPOINTS[old]}"', f'{new} = "{path}"')
    config.write_text(text, encoding="utf-8")


def write_machine_config(
    folder: Path,
    *,
    port: int,
    base_url: str,
    machine: str,
    definition: dict[str, Any],
    endpoints: dict[str, str],
    timeout_seconds: float = 10,
    machine_settings: str = "",
    sections: str = "",
) -> Path:
    """A config of one machine, `machine`, running `definition`, its Tasks' `endpoints`;
    `machine_settings` (TOML lines) go into its [[machines]] table, `sections` (TOML tables)
    before it."""
    (folder / f"{machine}.asl.json").write_text(json.dumps(definition), encoding="utf-8")
    routes = "\n".join(f'"{key}" = "{path}"' for key, path in endpoints.items())
    config = folder / "stepd.toml"
    config.write_text(
        f"""[store]
path = "stepd.db"
[api]
listen = "127.0.0.1:{port}"
[http]
base_url = "{base_url}"
timeout_seconds = {timeout_seconds}
[log]
level = "info"
format = "json"
{sections}
[[machines]]
name = "{machine}"
definition = "{machine}.asl.json"
{machine_settings}
[machines.endpoints]
{routes}
""",
        encoding="utf-8",
    )
    return config


def clean_env() -> dict[str, str]:
    """The environment for a daemon: ours, minus anything that would reconfigure it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STEPD_")
        and k not in {"NOTIFY_SOCKET", "WATCHDOG_USEC", "RUNTIME_DIRECTORY"}
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(*args: str | Path, timeout: float = EXIT_SECONDS) -> subprocess.CompletedProcess[str]:
    """`python -m stepd ARGS`, run to completion."""
    return subprocess.run(  # noqa: PLW1510 - the caller asserts the exit status it expects
        [sys.executable, "-m", "stepd", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
    )


# -- the daemon ---------------------------------------------------------------------------


class ApiError(AssertionError):
    """The API refused a request the test expected to succeed."""


class Stepd:
    """One daemon configuration: started, killed and restarted as one process at a time."""

    def __init__(self, config: Path, port: int, log_path: Path) -> None:
        self.config = config
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.processes: list[subprocess.Popen[bytes]] = []
        self.started_at = 0.0  # wall clock just before the last start
        self.ready_at = 0.0  # wall clock when /healthz first answered after the last start
        self.extra_env: dict[str, str] = {}  # more environment for the process (LD_PRELOAD)
        self.python = sys.executable  # the interpreter that runs `-m stepd`
        self.launch = ["-m", "stepd"]  # its arguments before stepd's own

    # lifecycle

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process; do not wait for it."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the daemon is already running")
        with self.log_path.open("ab") as log:
            log.write(f"{_START_MARK}{len(self.processes) + 1} ---\n".encode())
            log.flush()
            self.started_at = time.time()
            self.process = subprocess.Popen(
                [self.python, *self.launch, "run", "-c", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**clean_env(), **self.extra_env},
            )
        self.processes.append(self.process)
        return self.process

    async def start(self) -> None:
        """Start the daemon and wait until `GET /healthz` answers that it runs (ok, or
        degraded: a task host is down)."""
        process = self.spawn()
        deadline = time.monotonic() + READY_SECONDS
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            while True:
                if process.poll() is not None:
                    raise AssertionError(
                        f"the daemon exited with {process.returncode} before it was ready\n"
                        + self.tail()
                    )
                try:
                    if running(await client.get(self.url + "/healthz")):
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"the daemon was not ready in {READY_SECONDS} s\n" + self.tail()
                    )
                await asyncio.sleep(POLL_SECONDS)
        self.ready_at = time.time()

    def kill(self) -> None:
        """SIGKILL the daemon and reap it."""
        process = self.process
        assert process is not None, "the daemon is not running"
        assert process.poll() is None, f"the daemon had already exited\n{self.tail()}"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=EXIT_SECONDS)
        self.process = None

    async def restart(self) -> None:
        """SIGKILL, then start again on the same config and database."""
        self.kill()
        await self.start()

    async def stop(self) -> int:
        """SIGTERM the daemon, as `systemctl stop` does, and wait for it to exit; its exit
        status."""
        process = self.process
        assert process is not None, "the daemon is not running"
        process.send_signal(signal.SIGTERM)
        status = await asyncio.to_thread(process.wait, EXIT_SECONDS)
        self.process = None
        return status

    async def exited(self, timeout: float = EXIT_SECONDS) -> int:
        """Wait for the current process to exit on its own; its exit status."""
        process = self.process
        assert process is not None
        return await asyncio.to_thread(process.wait, timeout)

    def cleanup(self) -> None:
        """Kill whatever is still running (a test's finalizer)."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=EXIT_SECONDS)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        text = "\n".join(self.log_text().splitlines()[-lines:])
        return f"--- daemon log tail ({self.log_path}) ---\n{text}"

    def log_events(self, event: str, *, latest_start: bool = False) -> list[dict[str, Any]]:
        """The JSON log lines of `event`, from every start or only the latest one."""
        text = self.log_text()
        if latest_start:
            text = text.rsplit(_START_MARK, 1)[-1]
        found = []
        for line in text.splitlines():
            try:
                entry = json.loads(line) if line.startswith("{") else None
            except ValueError:  # a line cut short by SIGKILL
                entry = None
            if isinstance(entry, dict) and entry.get("event") == event:
                found.append(entry)
        return found

    # the API

    async def call(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One AWS JSON 1.0 request: (HTTP status, answer)."""
        async with httpx.AsyncClient(timeout=API_TIMEOUT_SECONDS, trust_env=False) as client:
            response = await client.post(
                self.url + "/",
                content=json.dumps(body),
                headers={
                    "Content-Type": AMZ_JSON,
                    "X-Amz-Target": f"AWSStepFunctions.{operation}",
                },
            )
        return response.status_code, response.json()

    async def ok(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = await self.call(operation, body)
        if status != httpx.codes.OK:
            raise ApiError(f"{operation} answered {status}: {answer}\n{self.tail()}")
        return answer

    async def start_execution(self, classroom: Classroom) -> dict[str, Any]:
        return await self.ok("StartExecution", classroom.start_request())

    async def describe(self, name: str) -> dict[str, Any]:
        return await self.describe_in(MACHINE, name)

    async def describe_in(self, machine: str, name: str) -> dict[str, Any]:
        return await self.ok("DescribeExecution", {"executionArn": execution_arn(name, machine)})

    async def uid(self, name: str, machine: str = MACHINE) -> str:
        """The execution's unique id, which its task calls' keys carry."""
        return str((await self.describe_in(machine, name))["stepd"]["uid"])

    async def history(self, name: str) -> list[dict[str, Any]]:
        return await self.history_in(MACHINE, name)

    async def history_in(self, machine: str, name: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        body: dict[str, Any] = {"executionArn": execution_arn(name, machine), "maxResults": 1000}
        while True:
            answer = await self.ok("GetExecutionHistory", body)
            events.extend(answer["events"])
            if not answer.get("nextToken"):
                return events
            body["nextToken"] = answer["nextToken"]

    async def wait_status(self, names: Iterable[str], status: str, timeout: float) -> None:
        """Wait until every execution in `names` has `status` (and fail if one closes otherwise)."""
        waiting = set(names)

        async def settled() -> bool:
            for name in sorted(waiting):
                described = await self.describe(name)
                if described["status"] == status:
                    waiting.discard(name)
                elif described["status"] != "RUNNING":
                    raise AssertionError(f"{name} ended {described}\n{self.tail()}")
            return not waiting

        await wait_until(
            settled, timeout=timeout, what=f"{status}: {sorted(waiting)}", explain=self.tail()
        )


DaemonFactory = Callable[..., Stepd]


def running(health: httpx.Response) -> bool:
    """Whether a /healthz answer says the daemon runs: ok (200) or degraded (503: a task host
    is down); not when the store cannot answer."""
    try:
        status = health.json().get("status")
    except ValueError:
        return False
    return status == "ok" or (
        health.status_code == httpx.codes.SERVICE_UNAVAILABLE and status == "degraded"
    )


def execution_arn(name: str, machine: str = MACHINE) -> str:
    return f"arn:aws:states:us-east-1:123456789012:execution:{machine}:{name}"


# -- executions and their records -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Classroom:
    """One execution of the test machine: a class from `start` to `end` (unix seconds)."""

    name: str
    start: int
    end: int

    @property
    def input(self) -> dict[str, Any]:
        return {"classroom": self.name, "start": rfc3339(self.start), "end": rfc3339(self.end)}

    def start_request(self) -> dict[str, Any]:
        return {"stateMachineArn": MACHINE, "name": self.name, "input": json.dumps(self.input)}


def records_of(records: Sequence[Record], name: str) -> list[Record]:
    """The POSTs made for execution `name` (its input, which is every state's input)."""
    return [r for r in records if isinstance(r.body, dict) and r.body.get("classroom") == name]


def ping_due(events: Sequence[dict[str, Any]]) -> float:
    """When SendLivePing fell due: its Wait was entered, plus the wait's seconds."""
    (entered,) = [
        e
        for e in events
        if e["type"] == "WaitStateEntered"
        and e["stateEnteredEventDetails"]["name"] == "SendLivePingWait"
    ]
    return float(entered["timestamp"]) + PING_WAIT_SECONDS


def due_instants(classroom: Classroom, events: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Each step's path -> the instant before which its POST must not arrive."""
    return {
        START_PATH: float(classroom.start),
        PING_PATH: ping_due(events),
        STOP_PATH: float(classroom.end),
    }


def check_history(events: Sequence[dict[str, Any]], explain: str = "") -> None:
    """Ids 1..n, each previousEventId the one before (the first state entered none, as AWS
    links it), the types and states of a clean run."""
    ids = [e["id"] for e in events]
    assert ids == list(range(1, len(events) + 1)), f"{ids}\n{explain}"
    previous = [e["previousEventId"] for e in events]
    assert previous == [0, 0, *ids[1:-1]], f"{previous}\n{explain}"
    types = tuple(e["type"] for e in events)
    assert types == EXPECTED_TYPES, f"{types}\n{explain}"
    entered = tuple(
        e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")
    )
    assert entered == EXPECTED_STATES, f"{entered}\n{explain}"
    stamps = [float(e["timestamp"]) for e in events]
    assert stamps == sorted(stamps), f"timestamps go back: {stamps}\n{explain}"


def task_keys(name: str, events: Sequence[dict[str, Any]], uid: str) -> dict[str, str]:
    """Each step's path -> the Idempotency-Key stepd derives from the execution's uid and its
    TaskStateEntered event."""
    entered = {
        e["stateEnteredEventDetails"]["name"]: e["id"]
        for e in events
        if e["type"] == "TaskStateEntered"
    }
    return {path: f"{MACHINE}/{name}/{uid}/{entered[state]}" for state, path in ENDPOINTS.items()}


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """What the classroom server got for one execution, checked against its history."""

    classroom: Classroom
    events: Sequence[dict[str, Any]]
    records: Sequence[Record]
    uid: str  # the execution's unique id (DescribeExecution's stepd.uid)

    def by_path(self) -> dict[str, list[Record]]:
        return {path: [r for r in self.records if r.path == path] for path in STEP_PATHS}

    def lateness(self) -> dict[str, float]:
        """Each step's first POST: seconds after its due instant (negative = early)."""
        due = due_instants(self.classroom, self.events)
        return {
            path: records[0].received_at - due[path]
            for path, records in self.by_path().items()
            if records
        }

    def check(self, *, max_sends: int = 1, explain: str = "") -> None:
        """Every step arrived 1..max_sends times, in order, never early, one key per step."""
        name = self.classroom.name
        by_path = self.by_path()
        counts = {path: len(records) for path, records in by_path.items()}
        assert all(1 <= n <= max_sends for n in counts.values()), f"{name}: {counts}\n{explain}"
        firsts = [by_path[path][0] for path in STEP_PATHS]
        assert [r.received_at for r in firsts] == sorted(r.received_at for r in firsts), (
            f"{name}: steps out of order\n{explain}"
        )
        keys = task_keys(name, self.events, self.uid)
        due = due_instants(self.classroom, self.events)
        for path, records in by_path.items():
            for record in records:
                where = f"{name} {path} at {record.received_at:.3f}"
                assert record.received_at >= due[path] - EARLY_SLACK_SECONDS, (
                    f"{where}: early, due {due[path]:.3f}\n{explain}"
                )
                assert record.idempotency_key == keys[path], f"{where}\n{explain}"
                assert record.headers["webhook-id"] == record.idempotency_key, where
                assert record.headers["user-agent"] == USER_AGENT, where
                assert 0 <= record.received_at - int(record.headers["webhook-timestamp"]) < 5, where
                assert record.body == self.classroom.input, where
                assert not record.payload_mismatch, where
            assert [r.duplicate for r in records] == [False] + [True] * (len(records) - 1), (
                f"{name} {path}: only re-sends may be duplicates\n{explain}"
            )


async def delivered(stepd: Stepd, classroom: ClassroomServer, room: Classroom) -> Delivery:
    """The execution's history (checked complete) and what the server got for it."""
    events = await stepd.history(room.name)
    check_history(events, stepd.tail())
    return Delivery(
        classroom=room,
        events=events,
        records=records_of(classroom.records, room.name),
        uid=await stepd.uid(room.name),
    )
