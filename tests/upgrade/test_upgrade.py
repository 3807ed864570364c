"""An upgrade keeps every running execution going.

The previous release (tests/upgrade/releases.toml) runs on a fresh store and leaves
executions in every position that matters: waiting beyond the timer window, due a few seconds
after the stop, a task call in flight against a slow server, a task in a Retry back-off, and
a call waiting for a host that is down. It is stopped as a service manager stops it
(SIGTERM), and the code under test starts on the same config and store. Every execution
completes; every task call reaches its server once per attempt (the call that was in flight is
sent again with the same Idempotency-Key); nothing arrives before it is due.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.harness import (
    EARLY_SLACK_SECONDS,
    Stepd,
    rfc3339,
    wait_until,
)
from tests.upgrade.releases import Installed, install, previous_release

from stepd import __version__
from stepd.classroom import ClassroomServer, Record
from stepd.testing import free_port

PING_WAIT_SECONDS = 2
RETRY_INTERVAL_SECONDS = 60  # the Retry back-off the old release is stopped in
TASK_TIMEOUT_SECONDS = 300  # longer than the slow server takes: the call stays in flight
SLOW_ANSWER_SECONDS = 120
WINDOW_SECONDS = 120  # stepd.timers.WINDOW_SECONDS: a wait beyond it has no date job at start
STOP_SECONDS = 60  # SIGTERM to exit, with the old release's 15 s drain of the slow call
SETTLE_SECONDS = 60  # after the last due instant, for everything to be delivered
PATHS = ("start", "ping", "stop")


# The classroom flow with a Retry on StartRecording; each machine gets its own paths.
def definition(retry_interval_seconds: int) -> dict[str, Any]:
    return {
        "StartAt": "RecordingWait",
        "States": {
            "RecordingWait": {"Type": "Wait", "TimestampPath": "$.start", "Next": "StartRecording"},
            "StartRecording": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:StartRecorder",
                "ResultPath": None,
                "Retry": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "IntervalSeconds": retry_interval_seconds,
                        "MaxAttempts": 3,
                        "BackoffRate": 1.0,
                    }
                ],
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


STATES = {"start": "StartRecording", "ping": "SendLivePing", "stop": "StopRecording"}


@dataclass(frozen=True, kw_only=True)
class Case:
    """One execution, on machine `machine`, of a class from `start` to `end`."""

    name: str
    machine: str
    start: float
    end: float

    @property
    def input(self) -> dict[str, Any]:
        return {"classroom": self.name, "start": rfc3339(self.start), "end": rfc3339(self.end)}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The newest release before this code, ready to run."""
    return install(previous_release(), tmp_path_factory.mktemp("releases"))


@dataclass(frozen=True, kw_only=True)
class Servers:
    up: ClassroomServer  # the classroom server
    down: ClassroomServer  # on a host that is down until the test starts it
    down_url: str


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    up = ClassroomServer(log_path=tmp_path / "classroom.jsonl")
    await up.start()
    port = free_port()
    down = ClassroomServer(port=port, log_path=tmp_path / "down.jsonl")
    yield Servers(up=up, down=down, down_url=f"http://127.0.0.1:{port}")
    await down.stop()
    await up.stop()


@pytest.fixture
def daemons() -> Iterator[list[Stepd]]:
    made: list[Stepd] = []
    yield made
    for daemon in made:
        daemon.cleanup()


def write_config(folder: Path, port: int, up: str, down: str) -> Path:
    (folder / "classroom.asl.json").write_text(
        json.dumps(definition(RETRY_INTERVAL_SECONDS)), encoding="utf-8"
    )
    # the call to a host found down is retried at once, and then waits for the host
    (folder / "remote.asl.json").write_text(json.dumps(definition(1)), encoding="utf-8")
    machines = {"classroom": up, "slow": f"{up}/slow", "retry": f"{up}/retry", "remote": down}
    lines = [
        "[store]",
        'path = "stepd.db"',
        "[api]",
        f'listen = "127.0.0.1:{port}"',
        "[http]",
        f'base_url = "{up}"',
        f"timeout_seconds = {TASK_TIMEOUT_SECONDS}",
        "[log]",
        'level = "info"',
        'format = "json"',
    ]
    for name, base in machines.items():
        lines += [
            "[[machines]]",
            f'name = "{name}"',
            f'definition = "{"remote" if name == "remote" else "classroom"}.asl.json"',
            # calls to a host that is down wait for it instead of spending their attempts
            "wait_for_host_seconds = 3600",
            "[machines.endpoints]",
            *(f'{STATES[path]} = "{base}/{path}"' for path in PATHS),
        ]
    config = folder / "stepd.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


async def start(daemon: Stepd, case: Case) -> None:
    await daemon.ok(
        "StartExecution",
        {"stateMachineArn": case.machine, "name": case.name, "input": json.dumps(case.input)},
    )


def sent(records: list[Record], case: Case, step: str) -> list[Record]:
    return [
        r
        for r in records
        if r.path.endswith(f"/{step}")
        and isinstance(r.body, dict)
        and r.body.get("classroom") == case.name
    ]


async def health(daemon: Stepd) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        answer: dict[str, Any] = (await client.get(daemon.url + "/healthz")).json()
        return answer


@dataclass(frozen=True, kw_only=True)
class Positions:
    """The executions the previous release was stopped with, one per position."""

    in_flight: Case  # its StartRecording call in flight against a slow server
    retrying: Case  # its StartRecording in a Retry back-off after a 500
    host_down: Case  # its StartRecording waiting for a host that is down
    far: Case  # waiting beyond the timer window of the daemon that takes over
    soon: Case  # due a few seconds after the stop
    retry_failed_at: float  # when the retrying case's first attempt got its 500

    @property
    def cases(self) -> tuple[Case, ...]:
        return (self.in_flight, self.retrying, self.host_down, self.far, self.soon)


def at(seconds: float) -> int:
    """The first whole second `seconds` from now (inputs carry whole seconds)."""
    return math.ceil(time.time() + seconds)


async def leave_in_positions(old: Stepd, up: ClassroomServer) -> Positions:
    """Start an execution in each position on the old release, and see them there."""
    up.fail_next("/slow/start", status=200, delay=SLOW_ANSWER_SECONDS)
    up.fail_next("/retry/start", status=500)
    in_flight = Case(name="in-flight", machine="slow", start=at(2), end=at(6))
    retrying = Case(name="retrying", machine="retry", start=at(2), end=at(6))
    host_down = Case(name="host-down", machine="remote", start=at(2), end=at(6))
    # beyond the new daemon's timer window when it starts (it starts after the old one's drain)
    far_start = at(STOP_SECONDS / 2 + WINDOW_SECONDS + 10)
    far = Case(name="far-ahead", machine="classroom", start=far_start, end=far_start + 3)
    for case in (in_flight, retrying, host_down, far):
        await start(old, case)

    async def reached() -> bool:
        return (
            len(sent(up.records, in_flight, "start")),
            len(sent(up.records, retrying, "start")),
            (await health(old))["waiting_for_host"],
        ) == (1, 1, 1)

    await wait_until(reached, timeout=30, what="every position", explain=old.tail())
    soon = Case(name="due-soon", machine="classroom", start=at(3), end=at(6))
    await start(old, soon)
    return Positions(
        in_flight=in_flight,
        retrying=retrying,
        host_down=host_down,
        far=far,
        soon=soon,
        retry_failed_at=sent(up.records, retrying, "start")[0].received_at,
    )


async def test_every_running_execution_completes_after_an_upgrade(
    tmp_path: Path,
    release: Installed,
    servers: Servers,
    daemons: list[Stepd],
) -> None:
    """Executions left in every position by the previous release complete under this one:
    each call once per attempt, the one in flight re-sent with its key, nothing early."""
    up, down = servers.up, servers.down
    port = free_port()
    config = write_config(tmp_path, port, up.base_url, servers.down_url)
    old = Stepd(config, port, tmp_path / "old.log")
    old.extra_env = release.env
    old.python = release.python
    daemons.append(old)
    await old.start()
    assert (await health(old))["version"] == release.release.version
    positions = await leave_in_positions(old, up)

    assert old.process is not None
    old.process.send_signal(signal.SIGTERM)  # as `systemctl stop` does
    assert await old.exited(STOP_SECONDS) == 0, old.tail()
    old.process = None
    stopped_at = time.time()
    assert stopped_at < positions.retry_failed_at + RETRY_INTERVAL_SECONDS, "back-off over"
    assert stopped_at < positions.far.start - WINDOW_SECONDS, "far-ahead is within the window"
    keys_before = {r.idempotency_key for r in up.records}

    new = Stepd(config, port, tmp_path / "new.log")
    daemons.append(new)
    await new.start()
    assert (await health(new))["version"] == __version__
    await asyncio.sleep(2)
    await down.start()  # the host comes back; its waiting call goes out
    await wait_succeeded(
        new, positions.cases, timeout=positions.far.end - time.time() + SETTLE_SECONDS
    )

    for case in positions.cases:
        history = await new.history_in(case.machine, case.name)
        ids = [e["id"] for e in history]
        assert ids == list(range(1, len(ids) + 1)), f"{case.name}: {ids}"
        records = down.records if case is positions.host_down else up.records
        check_calls(case, records, positions, keys_before)
        check_never_early(case, records)


def check_calls(
    case: Case, records: list[Record], positions: Positions, keys_before: set[str | None]
) -> None:
    """Each call reached its server once per attempt, with one key per call."""
    for step in PATHS:
        got = sent(records, case, step)
        keys = {r.idempotency_key for r in got}
        assert len(keys) == 1, f"{case.name} {step}: one key per call, got {keys}"
        if case is positions.in_flight and step == "start":
            # sent by the old release, then again by this one after the upgrade
            assert [r.duplicate for r in got] == [False, True], got
            assert keys <= keys_before
        elif case is positions.retrying and step == "start":
            # the first attempt failed under the old release; the retry came after its back-off
            assert [r.status for r in got] == [500, 200], got
            earliest = positions.retry_failed_at + RETRY_INTERVAL_SECONDS
            assert got[1].received_at >= earliest - EARLY_SLACK_SECONDS, got
        else:
            assert len(got) == 1, f"{case.name} {step}: {len(got)} calls"


def check_never_early(case: Case, records: list[Record]) -> None:
    """No call of `case` arrived before its due instant."""
    due = {"start": case.start, "stop": case.end}
    for step, instant in due.items():
        for record in sent(records, case, step):
            lateness = record.received_at - instant
            assert lateness >= -EARLY_SLACK_SECONDS, f"{case.name} {step} early: {lateness:.3f} s"
    started = sent(records, case, "start")[-1].received_at
    (ping,) = sent(records, case, "ping")
    assert ping.received_at >= started + PING_WAIT_SECONDS - EARLY_SLACK_SECONDS


async def wait_succeeded(daemon: Stepd, cases: tuple[Case, ...], timeout: float) -> None:
    """Wait until every case SUCCEEDED; fail at once if one closes otherwise."""
    waiting = set(cases)

    async def done() -> bool:
        for case in sorted(waiting, key=lambda c: c.name):
            described = await daemon.describe_in(case.machine, case.name)
            assert described["status"] in {"RUNNING", "SUCCEEDED"}, described
            if described["status"] == "SUCCEEDED":
                waiting.discard(case)
        return not waiting

    await wait_until(done, timeout=timeout, what="every execution SUCCEEDED", explain=daemon.tail())
