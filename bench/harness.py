"""A real daemon and a real stand-in classroom server, for benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from stepd.classroom import ClassroomServer
from stepd.testing import free_port, with_history_limit

PING_MACHINE = {
    "StartAt": "Until",
    "States": {
        "Until": {"Type": "Wait", "TimestampPath": "$.at", "Next": "Ping"},
        "Ping": {"Type": "Task", "Resource": "ping", "ResultPath": None, "End": True},
    },
}


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pids(data: Path | None) -> list[int]:
    """The processes of the PostgreSQL server whose data folder is `data` (its postmaster and
    the backends it started)."""
    if data is None:
        return []
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    return [postmaster, *(int(pid) for pid in children)]


def cpu_seconds(pids: list[int]) -> float:
    """The CPU time of the processes `pids` still there."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += process_cpu_seconds(pid)
    return total


def export_daemon(commit: str, into: Path) -> Path:
    """daemon/ as it is at `commit`, unpacked under `into`; the folder to import stepd from."""
    archive = subprocess.run(
        ["git", "archive", commit, "daemon"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "daemon"


def daemon_sources(against: list[str], folder: Path) -> dict[str, Path]:
    """By name, the daemon/ folders to run: each of `against`'s commits, then this
    checkout's, copied now (edits made meanwhile do not change it)."""
    sources: dict[str, Path] = {}
    for n, commit in enumerate(against):
        (folder / str(n)).mkdir()
        sources[f"commit {commit}"] = export_daemon(commit, folder / str(n))
    sources["this checkout"] = folder / "tree" / "daemon"
    shutil.copytree(Path(__file__).parent.parent / "daemon", sources["this checkout"])
    return sources


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Bench:
    """`machines`: more machines beside `ping`, by name: (definition, endpoints).
    `max_events`: the daemon's history limit per execution instead of AWS's 25,000 (an inline
    Map of 10,000 iterations writes about 40,000 events), for measurements only.
    `source`: a copy of another commit's daemon/ folder to run the daemon from (to compare
    commits in one run)."""

    def __init__(
        self,
        folder: Path,
        *,
        concurrency: int = 64,
        machines: Mapping[str, tuple[dict[str, Any], dict[str, str]]] | None = None,
        max_events: int | None = None,
        source: Path | None = None,
    ) -> None:
        self.folder = folder
        self.source = source
        self.machines = dict(machines or {})
        self.max_events = max_events
        self.port = free_port()
        self.server = ClassroomServer()
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.concurrency = concurrency
        self.api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    async def setup(self) -> None:
        base_url = await self.server.start()
        (self.folder / "ping.asl.json").write_text(json.dumps(PING_MACHINE))
        (self.folder / "stepd.toml").write_text(
            f"""[store]
path = "stepd.db"
[api]
listen = "127.0.0.1:{self.port}"
[http]
base_url = "{base_url}"
max_concurrency = {self.concurrency}
[log]
format = "json"
level = "info"
[[machines]]
name = "ping"
definition = "ping.asl.json"
late_threshold_seconds = 3600
[machines.endpoints]
Ping = "/ping"
"""
            + "".join(self._machine(name, *spec) for name, spec in self.machines.items())
        )

    def _machine(self, name: str, definition: dict[str, Any], endpoints: dict[str, str]) -> str:
        (self.folder / f"{name}.asl.json").write_text(json.dumps(definition))
        routes = "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in endpoints.items())
        return (
            f'[[machines]]\nname = "{name}"\ndefinition = "{name}.asl.json"\n'
            f"late_threshold_seconds = 3600\n[machines.endpoints]\n{routes}"
        )

    def start_daemon(self) -> None:
        log = (self.folder / "daemon.log").open("ab")
        self.started_at = time.time()
        command = ["-m", "stepd"]
        if self.max_events is not None:
            command = with_history_limit(self.max_events)
        self.process = subprocess.Popen(
            [sys.executable, *command, "run", "-c", str(self.folder / "stepd.toml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self._path()},
        )

    def _path(self) -> dict[str, str]:
        return {} if self.source is None else {"PYTHONPATH": str(self.source)}

    async def wait_ready(self) -> float:
        while True:
            try:
                if (await self.api.get("/healthz")).status_code == httpx.codes.OK:
                    return time.time()
            except httpx.HTTPError:
                pass
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError("the daemon exited")
            await asyncio.sleep(0.01)

    def succeeded(self) -> int:
        """How many executions the daemon has committed as SUCCEEDED, read from its database
        file in this process (polling the daemon's API would count in its CPU)."""
        row = self._read("SELECT count(*) FROM executions WHERE status = 'SUCCEEDED'", ())
        return int(row[0]) if row else 0

    def status(self, name: str, machine: str = "ping") -> str | None:
        """An execution's status as committed, read from the daemon's database file."""
        row = self._read(
            "SELECT status FROM executions WHERE machine = ? AND name = ?", (machine, name)
        )
        return str(row[0]) if row else None

    def _read(self, sql: str, parameters: tuple[str, ...]) -> tuple[Any, ...] | None:
        database = sqlite3.connect(f"file:{self.folder / 'stepd.db'}?mode=ro", uri=True)
        try:
            row: tuple[Any, ...] | None = database.execute(sql, parameters).fetchone()
        finally:
            database.close()
        return row

    def cpu_seconds(self) -> float:
        """User + system CPU time the daemon has used so far."""
        assert self.process is not None
        return process_cpu_seconds(self.process.pid)

    def rss_bytes(self) -> int:
        return self._status_bytes("VmRSS:")

    def peak_rss_bytes(self) -> int:
        """The most resident memory the daemon has had so far (VmHWM)."""
        return self._status_bytes("VmHWM:")

    def _status_bytes(self, field: str) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        return 0

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    async def start_execution(self, name: str, at: float) -> None:
        await self.start(name, {"at": rfc3339(at)})

    async def start(self, name: str, execution_input: Any, machine: str = "ping") -> None:
        response = await self.api.post(
            "/",
            content=json.dumps(
                {"stateMachineArn": machine, "name": name, "input": json.dumps(execution_input)}
            ),
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "AWSStepFunctions.StartExecution",
            },
        )
        if response.status_code != httpx.codes.OK:
            raise RuntimeError(response.text)

    async def describe(self, name: str, machine: str = "ping") -> dict[str, Any]:
        arn = f"arn:aws:states:us-east-1:123456789012:execution:{machine}:{name}"
        response = await self.api.post(
            "/",
            content=json.dumps({"executionArn": arn}),
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "AWSStepFunctions.DescribeExecution",
            },
        )
        return dict(response.json())

    async def close(self) -> None:
        self.stop()
        await self.api.aclose()
        await self.server.stop()


def fill_waiting(db: Path, template: str, count: int, *, first_due: float) -> None:
    """Copy execution `template` (and its events) `count` times, due one second apart."""
    conn = sqlite3.connect(db)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(executions)") if r[1] != "id"]
    row = conn.execute(
        f"SELECT id, {', '.join(columns)} FROM executions WHERE name = ?", (template,)
    ).fetchone()
    template_id, values = row[0], dict(zip(columns, row[1:], strict=True))
    events = conn.execute(
        "SELECT id, previous_id, ts, type, details, more FROM events WHERE execution_id = ?",
        (template_id,),
    ).fetchall()
    start = conn.execute("SELECT max(id) FROM executions").fetchone()[0] + 1
    marks = ", ".join("?" for _ in columns)
    batch = 50_000
    with conn:
        for offset in range(0, count, batch):
            rows, event_rows = [], []
            for n in range(offset, min(count, offset + batch)):
                values["name"] = f"w{n}"
                values["due_at"] = first_due + n
                rows.append((start + n, *values.values()))
                event_rows += [(start + n, *event) for event in events]
            conn.executemany(
                f"INSERT INTO executions (id, {', '.join(columns)}) VALUES (?, {marks})", rows
            )
            conn.executemany(
                "INSERT INTO events (execution_id, id, previous_id, ts, type, details, more)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                event_rows,
            )
    conn.close()
