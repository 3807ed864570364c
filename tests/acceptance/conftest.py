"""The real daemon and a real classroom stand-in, each in a subprocess, for acceptance tests.

`daemon` is one `stepd run` for the whole session, configured with the small machines below
(every test gives its executions names of its own); `start_daemon` starts another one for a
module that needs its own config. Both talk to `classroom`, the stand-in server run as
`python -m stepd.classroom`, which records every task call in a JSON-lines file.

Helpers reach test modules as fixtures (`settle`, `stepd_cli`, `new_name`, `start_daemon`):
with `--import-mode=importlib` a conftest is not importable. A failing test gets the tail of
every daemon log it used appended to its report.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from tests.integration import clients

from stepd.access import KeyPair
from stepd.classroom import Record, load_records
from stepd.testing import free_port

REPO = Path(__file__).resolve().parents[2]
CLASSROOM_DEFINITION = REPO / "config" / "classroom.asl.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"

STARTUP_DEADLINE_SECONDS = 30.0  # for a subprocess to listen
SETTLE_DEADLINE_SECONDS = 30.0  # for an execution to reach a status it should reach soon
STOP_TIMEOUT_SECONDS = 10.0  # SIGTERM, then SIGKILL after this
CLI_TIMEOUT_SECONDS = 60.0
POLL_INTERVAL_SECONDS = 0.05
LOG_TAIL_LINES = 80
# Variables that would change how a subprocess behaves behind the test's back (as would
# STEPD_* overrides and AWS_* keys, endpoints or profiles).
_NOT_INHERITED = frozenset(
    {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY", "STEPD_CONFIG"}
)


def _lambda(function: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"


# Pass -> Task -> Succeed: completes at once against the stand-in server.
QUICK = {
    "Comment": "Pass, call the classroom server, succeed",
    "StartAt": "Prepare",
    "States": {
        "Prepare": {
            "Type": "Pass",
            "Result": {"room": "blue"},
            "ResultPath": "$.prepared",
            "Next": "Call",
        },
        "Call": {
            "Type": "Task",
            "Resource": _lambda("quick"),
            "ResultPath": "$.result",
            "Next": "Done",
        },
        "Done": {"Type": "Succeed"},
    },
}
# A one-second Wait, then the end.
NAP = {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 1, "End": True}}}
# Waits an hour: stays RUNNING for as long as a test needs.
SLEEPER = {
    "StartAt": "Sleep",
    "States": {"Sleep": {"Type": "Wait", "Seconds": 3600, "End": True}},
}
# Pass -> Fail.
FAILING = {
    "StartAt": "Check",
    "States": {
        "Check": {"Type": "Pass", "Next": "Cancelled"},
        "Cancelled": {"Type": "Fail", "Error": "Classroom.Cancelled", "Cause": "teacher is ill"},
    },
}
# The shipped classroom machine's Task states, mapped to the stand-in server.
CLASSROOM_ENDPOINTS = {
    "StartRecording": "/recording/start",
    "SendLivePing": "/recording/ping",
    "StopRecording": "/recording/stop",
    "StopAfterFailure": "/recording/stop",
}


@dataclass(frozen=True, kw_only=True)
class MachineConfig:
    """One `[[machines]]` entry."""

    name: str
    definition: Path
    endpoints: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class RunningDaemon:
    """A `stepd run` subprocess and where to reach it."""

    config: Path
    url: str
    log: Path
    process: subprocess.Popen[bytes]
    machines: Mapping[str, Path]  # name -> definition file
    key: KeyPair | None = None  # the key pair API calls are signed with, when one is configured

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def client(self) -> Any:
        """A Step Functions client of boto3 pointed at this daemon, without retries."""
        return boto3.client(
            "stepfunctions",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=self.key.access_key_id if self.key else "x",
            aws_secret_access_key=self.key.secret_access_key if self.key else "y",
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )


@dataclass(frozen=True, kw_only=True)
class Classroom:
    """A `python -m stepd.classroom` subprocess and the file it records requests in."""

    base_url: str
    log: Path

    def records(self) -> list[Record]:
        return load_records(self.log)


def subprocess_env() -> dict[str, str]:
    """This process's environment without anything that would reconfigure stepd."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STEPD_", "AWS_")) and key not in _NOT_INHERITED
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of printable text is a TOML basic string


def write_config(
    path: Path,
    *,
    port: int,
    base_url: str,
    machines: Sequence[MachineConfig],
    keys: Sequence[KeyPair] = (),
) -> Path:
    """A stepd.toml with a store next to it, listening on loopback `port`; with `keys`, they
    are the API's key pairs (in a credentials file next to it)."""
    credentials = []
    if keys:
        key_file = path.parent / "api.keys"
        key_file.write_text(
            "".join(f"{k.access_key_id}:{k.secret_access_key}\n" for k in keys), encoding="utf-8"
        )
        key_file.chmod(0o600)
        credentials = [f"credentials_file = {_toml_string(str(key_file))}"]
    lines = [
        "[store]",
        f"path = {_toml_string(str(path.parent / 'stepd.db'))}",
        "[api]",
        f'listen = "127.0.0.1:{port}"',
        f'region = "{REGION}"',
        f'account = "{ACCOUNT}"',
        *credentials,
        "[http]",
        f"base_url = {_toml_string(base_url)}",
        "timeout_seconds = 10",
        "[log]",
        'level = "info"',
        'format = "json"',
    ]
    for machine in machines:
        lines += [
            "",
            "[[machines]]",
            f"name = {_toml_string(machine.name)}",
            f"definition = {_toml_string(str(machine.definition))}",
            "[machines.endpoints]",
            *(f"{_toml_string(k)} = {_toml_string(v)}" for k, v in machine.endpoints.items()),
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)


@contextlib.contextmanager
def run_daemon(
    folder: Path, base_url: str, machines: Sequence[MachineConfig], keys: Sequence[KeyPair] = ()
) -> Iterator[RunningDaemon]:
    """`stepd run` with a config in `folder` until the block ends; ready once `/healthz` is 200.
    With `keys`, the API needs them (and `client()` signs with the first)."""
    port = free_port()
    config = write_config(
        folder / "stepd.toml", port=port, base_url=base_url, machines=machines, keys=keys
    )
    log = folder / "stepd.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "stepd", "run", "-c", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=subprocess_env(),
            cwd=folder,
        )
    daemon = RunningDaemon(
        config=config,
        url=f"http://127.0.0.1:{port}",
        log=log,
        process=process,
        machines={m.name: m.definition for m in machines},
        key=keys[0] if keys else None,
    )
    try:
        _wait_healthy(daemon)
        yield daemon
    finally:
        _stop(process)


def _wait_healthy(daemon: RunningDaemon) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    last = "no answer yet"
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            pytest.fail(
                f"stepd exited with {daemon.process.returncode} before it was healthy; "
                f"log tail:\n{daemon.log_tail()}"
            )
        try:
            response = httpx.get(f"{daemon.url}/healthz", timeout=1.0)
        except httpx.HTTPError as exc:
            last = repr(exc)
        else:
            if response.status_code == 200 or (
                response.status_code == 503 and response.json().get("status") == "degraded"
            ):
                return
            last = f"{response.status_code} {response.text}"
        time.sleep(POLL_INTERVAL_SECONDS)
    pytest.fail(
        f"stepd not healthy after {STARTUP_DEADLINE_SECONDS}s ({last}); log tail:\n"
        f"{daemon.log_tail()}"
    )


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def classroom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Classroom]:
    """The stand-in classroom server, recording every request in a JSON-lines file."""
    folder = tmp_path_factory.mktemp("classroom")
    log = folder / "requests.jsonl"
    with (folder / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "stepd.classroom", "--port", "0", "--log", str(log)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=subprocess_env(),
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_DEADLINE_SECONDS)
        base_url = process.stdout.readline().decode().strip() if ready else ""
        if not base_url.startswith("http://"):
            pytest.fail(
                f"the classroom server did not start: {base_url!r} "
                f"{(folder / 'stderr.txt').read_text(encoding='utf-8')}"
            )
        yield Classroom(base_url=base_url, log=log)
    finally:
        _stop(process)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="session")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, classroom: Classroom
) -> Iterator[RunningDaemon]:
    """One `stepd run` for the session, with the machines quick, nap, sleeper, failing,
    pager and classroom (the shipped example)."""
    folder = tmp_path_factory.mktemp("daemon")
    machines = [
        MachineConfig(
            name="classroom", definition=CLASSROOM_DEFINITION, endpoints=CLASSROOM_ENDPOINTS
        )
    ]
    for name, definition, endpoints in (
        ("quick", QUICK, {"Call": "/quick"}),
        ("nap", NAP, {}),
        ("sleeper", SLEEPER, {}),
        ("failing", FAILING, {}),
        ("pager", SLEEPER, {}),
    ):
        path = folder / f"{name}.asl.json"
        path.write_text(json.dumps(definition, indent=2), encoding="utf-8")
        machines.append(MachineConfig(name=name, definition=path, endpoints=endpoints))
    with run_daemon(folder, classroom.base_url, machines) as running:
        yield running


@pytest.fixture(scope="session")
def sfn(daemon: RunningDaemon) -> Any:
    """boto3's Step Functions client, pointed at the session daemon."""
    return daemon.client()


@pytest.fixture(scope="session")
def start_daemon() -> Callable[..., contextlib.AbstractContextManager[RunningDaemon]]:
    """`start_daemon(folder, base_url, [(name, definition, endpoints), ...], keys=())`:
    another `stepd run` with a config of its own (and API key pairs), as a context manager."""

    def start(
        folder: Path,
        base_url: str,
        machines: Sequence[tuple[str, Path, Mapping[str, str]]],
        keys: Sequence[KeyPair] = (),
    ) -> contextlib.AbstractContextManager[RunningDaemon]:
        configs = [MachineConfig(name=n, definition=d, endpoints=e) for n, d, e in machines]
        return run_daemon(folder, base_url, configs, keys)

    return start


@pytest.fixture(scope="session")
def settle() -> Callable[..., dict[str, Any]]:
    """`settle(sfn, arn, statuses)`: DescribeExecution once the status is one of `statuses`."""

    def wait(
        sfn: Any, arn: str, statuses: set[str], deadline: float = SETTLE_DEADLINE_SECONDS
    ) -> dict[str, Any]:
        end = time.monotonic() + deadline
        described: dict[str, Any] = {}
        while time.monotonic() < end:
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] in statuses:
                return described
            time.sleep(POLL_INTERVAL_SECONDS)
        pytest.fail(f"{arn} not in {sorted(statuses)} after {deadline}s: {described}")

    return wait


@pytest.fixture(scope="session")
def stepd_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`stepd_cli(*args)`: `python -m stepd ARGS` in a subprocess, output captured as text;
    `stdin=` text to read, `env=` variables to add."""

    def run(
        *args: str,
        timeout: float = CLI_TIMEOUT_SECONDS,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stepd", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=subprocess_env() | dict(env or {}),
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def aws_cli(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`aws_cli(url, *args)`: `aws stepfunctions ARGS --endpoint-url URL --output json` from
    the venv, with dummy credentials and region in the environment and no ~/.aws to read."""
    home = tmp_path_factory.mktemp("aws-home")

    def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
        return clients.aws_cli(url, home, *args)

    return run


@pytest.fixture
def new_name() -> Callable[[str], str]:
    """Execution names unique to this test run: `<label>-<random>`."""

    def make(label: str = "x") -> str:
        return f"{label}-{uuid.uuid4().hex[:12]}"

    return make


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, RunningDaemon):
                report.sections.append((f"stepd log tail ({value.log})", value.log_tail()))
    return report
