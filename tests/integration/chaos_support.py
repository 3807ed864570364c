"""What the chaos, fault, clock and storage suites share, on top of `harness`.

- `Daemon`: a `harness.Stepd` whose process may get extra environment (libfaketime).
- `write_machines_config`: a config with several machines, each with its own definition,
  endpoints and late policy, and the `[http]` settings a suite needs.
- `RecordingServer`: the stand-in classroom server on a fixed port (so it can be stopped and
  started again: connection refused in between), which also measures how many requests it
  holds at once and can answer every request late ("processed, answer still on its way").
- `FakeClock`: a libfaketime timestamp file and the offsets written to it, so a test that
  measures with the real clock can translate to the daemon's.
- `Figures`: measured figures, printed at the end and, in the long mode, written to a file.

The long mode (`make soak`, STEPD_SOAK=1) runs the same scenarios with larger numbers.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import os
import signal
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import pytest
from aiohttp import web
from tests.integration.harness import (
    DEFINITION,
    ENDPOINTS,
    MACHINE,
    ApiError,
    Classroom,
    Delivery,
    Stepd,
    running,
)

from stepd.asl.loader import load_definition
from stepd.classroom import ClassroomServer, Record
from stepd.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DEFINITION = ROOT / "config" / "classroom.asl.yaml"
SHIPPED_CONFIG = ROOT / "config" / "stepd.toml"
SOAK = os.environ.get("STEPD_SOAK") == "1"  # the long mode: `make soak`
FIGURES_FILE = ROOT / "tests" / "soak" / "FIGURES.md"
# Debian's libfaketime (package faketime), for this machine's architecture
LIBFAKETIME = min(
    Path("/usr/lib").glob("*/faketime/libfaketime.so.1"),
    default=Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
)
FAKETIME_HINT = "apt-get install faketime (`make test` as root installs it: tests/setup.sh)"
IN_FLIGHT_SLACK_SECONDS = 0.25  # a request written just before SIGKILL may be read just after
RSS_BOUND_KIB = 400 * 1024  # a generous bound on the daemon's resident memory
TASK_STATES = tuple(ENDPOINTS)  # StartRecording, SendLivePing, StopRecording

# -- definitions ------------------------------------------------------------------------------


def shipped_retry() -> dict[str, list[dict[str, Any]]]:
    """Each Task state's Retry as config/classroom.asl.yaml declares it."""
    states = load_definition(SHIPPED_DEFINITION).definition["States"]
    return {name: copy.deepcopy(states[name].get("Retry", [])) for name in TASK_STATES}


def shipped_wait_for_host() -> float:
    """The classroom machine's wait_for_host_seconds as config/stepd.toml sets it."""
    with SHIPPED_CONFIG.open("rb") as handle:
        config = tomllib.load(handle)
    return float(config["machines"][0].get("wait_for_host_seconds", 0))


def classroom_definition(
    *,
    retry: Mapping[str, list[dict[str, Any]]] | list[dict[str, Any]] | None = None,
    catch: Mapping[str, list[dict[str, Any]]] | None = None,
    extra_states: Mapping[str, dict[str, Any]] | None = None,
    timeout_seconds: int | None = None,
) -> dict[str, Any]:
    """The harness's classroom machine (2 s ping wait), with Retry, Catch or more states."""
    definition = copy.deepcopy(DEFINITION)
    states = definition["States"]
    for name in TASK_STATES:
        retriers = retry.get(name) if isinstance(retry, Mapping) else retry
        if retriers:
            states[name]["Retry"] = copy.deepcopy(retriers)
        if catch and catch.get(name):
            states[name]["Catch"] = copy.deepcopy(catch[name])
        if timeout_seconds is not None:
            states[name]["TimeoutSeconds"] = timeout_seconds
    states.update(copy.deepcopy(dict(extra_states or {})))
    return definition


@dataclass(frozen=True, kw_only=True)
class MachineSpec:
    """One `[[machines]]` entry: a name, its definition and where its three tasks POST."""

    name: str
    definition: Mapping[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFINITION))
    prefix: str = "/recording"  # the tasks POST to PREFIX/start, PREFIX/ping, PREFIX/stop
    endpoints: Mapping[str, str] | None = None  # overrides: state -> path or URL
    late_threshold_seconds: float | None = None
    late_policy: str | None = None
    wait_for_host_seconds: float | None = None  # as config/stepd.toml sets it: 3600

    def paths(self) -> dict[str, str]:
        """Task state -> the path (or URL) it posts to."""
        routes = {
            "StartRecording": f"{self.prefix}/start",
            "SendLivePing": f"{self.prefix}/ping",
            "StopRecording": f"{self.prefix}/stop",
        }
        routes.update(self.endpoints or {})
        return routes


def write_machines_config(
    folder: Path,
    *,
    base_url: str,
    port: int,
    machines: Sequence[MachineSpec],
    name: str = "stepd.toml",
    db: str | Path = "stepd.db",
    timeout_seconds: float = 10,
    max_concurrency: int | None = None,
    log_level: str = "info",
) -> Path:
    """A config naming each machine's definition (written next to it) and endpoints."""
    parts = [
        f'[store]\npath = "{db}"\n',
        f'[api]\nlisten = "127.0.0.1:{port}"\n',
        f'[http]\nbase_url = "{base_url}"\ntimeout_seconds = {timeout_seconds}\n'
        + (f"max_concurrency = {max_concurrency}\n" if max_concurrency else ""),
        f'[log]\nlevel = "{log_level}"\nformat = "json"\n',
    ]
    for machine in machines:
        definition = folder / f"{machine.name}.asl.json"
        definition.write_text(json.dumps(machine.definition, indent=2), encoding="utf-8")
        entry = f'[[machines]]\nname = "{machine.name}"\ndefinition = "{definition.name}"\n'
        if machine.late_threshold_seconds is not None:
            entry += f"late_threshold_seconds = {machine.late_threshold_seconds}\n"
        if machine.late_policy is not None:
            entry += f'late_policy = "{machine.late_policy}"\n'
        if machine.wait_for_host_seconds is not None:
            entry += f"wait_for_host_seconds = {machine.wait_for_host_seconds}\n"
        entry += "[machines.endpoints]\n" + "".join(
            f'{state} = "{path}"\n' for state, path in machine.paths().items()
        )
        parts.append(entry)
    config = folder / name
    config.write_text("\n".join(parts), encoding="utf-8")
    return config


# -- the daemon ------------------------------------------------------------------------------


class Daemon(Stepd):
    """A `Stepd` with extra environment for its process (LD_PRELOAD, FAKETIME_*)."""

    def __init__(
        self, config: Path, port: int, log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(config, port, log_path)
        self.extra_env = dict(env or {})
        self.kill_times: list[float] = []  # wall clock just before each SIGKILL
        self.ready_times: list[float] = []  # wall clock when /healthz answered, each start

    async def start(self) -> None:
        await super().start()
        self.ready_times.append(self.ready_at)

    def kill(self) -> None:
        self.kill_times.append(time.time())
        super().kill()

    @property
    def pid(self) -> int:
        assert self.process is not None, "the daemon is not running"
        return self.process.pid

    def rss_kib(self) -> int:
        """The process's resident memory (VmRSS) in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc/<pid>/status")

    def signal(self, signum: signal.Signals) -> None:
        os.kill(self.pid, signum)

    async def healthy(self) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
                return running(await client.get(self.url + "/healthz"))
        except httpx.HTTPError:
            return False

    async def start_retrying(self, classroom: Classroom, *, machine: str = MACHINE) -> None:
        """StartExecution until acknowledged, through kills and restarts (same name, same
        input: the same execution)."""
        request = {**classroom.start_request(), "stateMachineArn": machine}
        while True:
            try:
                status, answer = await self.call("StartExecution", request)
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
                continue
            if status == httpx.codes.OK:
                return
            if status >= 500:
                await asyncio.sleep(0.1)
                continue
            raise ApiError(f"StartExecution answered {status}: {answer}\n{self.tail()}")

    async def wait_closed(
        self, machine: str, names: Iterable[str], timeout: float
    ) -> dict[str, dict[str, Any]]:
        """Wait until every execution has closed; each one's DescribeExecution."""
        waiting = set(names)
        closed: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while waiting:
            for name in sorted(waiting):
                described = await self.describe_in(machine, name)
                if described["status"] != "RUNNING":
                    closed[name] = described
                    waiting.discard(name)
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"still RUNNING after {timeout} s: {sorted(waiting)}\n{self.tail()}"
                )
            await asyncio.sleep(0.2)
        return closed


def task_keys_in(
    machine: str, name: str, events: Sequence[dict[str, Any]], uid: str
) -> dict[str, str]:
    """Task state -> the Idempotency-Key of its (first) entry."""
    keys: dict[str, str] = {}
    for event in events:
        if event["type"] == "TaskStateEntered":
            state = event["stateEnteredEventDetails"]["name"]
            keys.setdefault(state, f"{machine}/{name}/{uid}/{event['id']}")
    return keys


# -- the classroom server --------------------------------------------------------------------


class RecordingServer(ClassroomServer):
    """The stand-in server on a fixed port, measuring requests held at once.

    `answer_delay` holds every answer back that long after the request was processed and
    recorded (a slow server: the call stays in flight at the daemon).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        answer_delay: float = 0.0,
    ) -> None:
        self.port = free_port()
        super().__init__(host=host, port=self.port, log_path=log_path)
        self.answer_delay = answer_delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.up_since: float | None = None
        self.down_since: float | None = None

    async def start(self) -> str:
        url = await super().start()
        self.up_since, self.down_since = time.time(), None
        return url

    async def stop(self) -> None:
        self.down_since = time.time()
        await super().stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            response = await super()._handle(request)
            if self.answer_delay > 0:
                await asyncio.sleep(self.answer_delay)
            return response
        finally:
            self.in_flight -= 1

    def of(self, name: str, prefix: str = "/recording") -> list[Record]:
        """The requests for execution `name` on the machine posting under `prefix`."""
        return [
            r
            for r in self.records
            if r.path.startswith(prefix + "/")
            and isinstance(r.body, dict)
            and r.body.get("classroom") == name
        ]


# -- a clock the test moves ------------------------------------------------------------------


class FakeClock:
    """libfaketime's timestamp file for one daemon, and the offsets the test wrote to it.

    The daemon reads the file on every clock call (FAKETIME_NO_CACHE=1); only its wall clock
    is moved (FAKETIME_DONT_FAKE_MONOTONIC=1), as NTP or a suspend move a real one.
    """

    def __init__(self, path: Path) -> None:
        if not self.available():
            pytest.fail(f"the clock tests need libfaketime ({LIBFAKETIME}): {FAKETIME_HINT}")
        self.path = path
        self.changes: list[tuple[float, float]] = []  # (real time of the change, new offset)
        self.set(0.0)

    @staticmethod
    def available() -> bool:
        return LIBFAKETIME.is_file()

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }

    def set(self, offset: float) -> float:
        """Move the daemon's wall clock to real time + `offset` seconds; the real time of it."""
        text = f"{offset:+.0f}\n"
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(self.path)  # never a half-written file for the daemon to read
        now = time.time()
        self.changes.append((now, offset))
        return now

    @property
    def offset(self) -> float:
        return self.changes[-1][1]

    def offset_at(self, real: float) -> float:
        """The offset in force at real instant `real`."""
        current = 0.0
        for changed_at, offset in self.changes:
            if changed_at > real:
                break
            current = offset
        return current

    def daemon_time(self, real: float) -> float:
        return real + self.offset_at(real)


# -- figures ---------------------------------------------------------------------------------


class Figures:
    """Figures measured by the long mode, kept as `section -> lines` and written as Markdown."""

    def __init__(self, path: Path = FIGURES_FILE) -> None:
        self.path = path

    def record(self, section: str, lines: Sequence[str]) -> None:
        sections = self._read()
        sections[section] = list(lines)
        body = [
            "# stepd soak figures",
            "",
            "Written by `make soak` (tests/soak); each section is replaced when its test runs.",
            "",
        ]
        for name in sorted(sections):
            body += [f"## {name}", "", *[f"- {line}" for line in sections[name]], ""]
        self.path.write_text("\n".join(body), encoding="utf-8")

    def _read(self) -> dict[str, list[str]]:
        sections: dict[str, list[str]] = {}
        if not self.path.exists():
            return sections
        current: str | None = None
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.startswith("## "):
                current = line[3:]
                sections[current] = []
            elif current is not None and line.startswith("- "):
                sections[current].append(line[2:])
        return sections


def check_resends(delivery: Delivery, chaos: Sequence[tuple[float, float]], explain: str) -> None:
    """Each re-send of a step follows a moment of chaos, (began, ended), that fell while its
    previous send was in flight: a kill is (k, k); a node cut off from the database is (the
    cut, when it stopped sending), since what it sent meanwhile cannot be committed."""
    for path, records in delivery.by_path().items():
        for before, after in itertools.pairwise(records):
            caught = [
                (began, ended)
                for began, ended in chaos
                if before.received_at - IN_FLIGHT_SLACK_SECONDS <= ended
                and began <= after.received_at
            ]
            assert caught, (
                f"{delivery.classroom.name} {path}: re-sent at {after.received_at:.3f} "
                f"without a kill or a cut since the send at {before.received_at:.3f}\n{explain}"
            )


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# -- a test's world: one classroom server and the daemons pointed at it ----------------------


class Lab:
    """The stand-in server (started on entry, on `host`) and the daemons a test makes; all
    cleaned up."""

    def __init__(self, folder: Path, *, answer_delay: float = 0.0, host: str = "127.0.0.1") -> None:
        self.folder = folder
        self.server = RecordingServer(
            host=host, log_path=folder / "classroom.jsonl", answer_delay=answer_delay
        )
        self.daemons: list[Daemon] = []

    async def __aenter__(self) -> Self:
        await self.server.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        for daemon in self.daemons:
            daemon.cleanup()
        await self.server.stop()

    def daemon(
        self,
        machines: Sequence[MachineSpec] = (MachineSpec(name=MACHINE),),
        *,
        name: str = "stepd",
        db: str | Path = "stepd.db",
        env: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> Daemon:
        """A daemon handle (not started) on its own config in the lab's folder."""
        port = free_port()
        config = write_machines_config(
            self.folder,
            base_url=self.server.base_url,
            port=port,
            machines=machines,
            name=f"{name}.toml",
            db=db,
            **settings,
        )
        daemon = Daemon(config, port, self.folder / f"{name}.log", env=env)
        self.daemons.append(daemon)
        return daemon

    def explain(self) -> str:
        return "\n".join(d.tail() for d in self.daemons)
