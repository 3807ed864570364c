"""A real daemon and a real stand-in classroom server, for benchmarks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from stepd.classroom import ClassroomServer

PING_MACHINE = {
    "StartAt": "Until",
    "States": {
        "Until": {"Type": "Wait", "TimestampPath": "$.at", "Next": "Ping"},
        "Ping": {"Type": "Task", "Resource": "ping", "ResultPath": None, "End": True},
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Bench:
    def __init__(self, folder: Path, *, concurrency: int = 64) -> None:
        self.folder = folder
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
level = "warning"
[[machines]]
name = "ping"
definition = "ping.asl.json"
late_threshold_seconds = 3600
[machines.endpoints]
Ping = "/ping"
"""
        )

    def start_daemon(self) -> None:
        log = (self.folder / "daemon.log").open("ab")
        self.started_at = time.time()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stepd", "run", "-c", str(self.folder / "stepd.toml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

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

    def cpu_seconds(self) -> float:
        """User + system CPU time the daemon has used so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    async def start_execution(self, name: str, at: float) -> None:
        response = await self.api.post(
            "/",
            content=json.dumps(
                {"stateMachineArn": "ping", "name": name, "input": json.dumps({"at": rfc3339(at)})}
            ),
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": "AWSStepFunctions.StartExecution",
            },
        )
        if response.status_code != httpx.codes.OK:
            raise RuntimeError(response.text)

    async def describe(self, name: str) -> dict[str, Any]:
        response = await self.api.post(
            "/",
            content=json.dumps(
                {"executionArn": f"arn:aws:states:us-east-1:123456789012:execution:ping:{name}"}
            ),
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
