"""`stepd demo --nodes N`: several nodes on one throwaway PostgreSQL, one killed mid-class.

Where PostgreSQL is installed: a server in a temporary folder (stepd.pgserver), a stand-in
classroom server, N `stepd run` processes on the same config and database, and a handful of
short classes started through different nodes. Once the first recordings started, node 1 is
killed with SIGKILL; the others take its work over (its calls in flight sent again with the
same Idempotency-Key) and every class runs to its end. Prints each POST as the server gets it,
the nodes as the survivors see them, and exits 0 when every class succeeded.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from stepd.classroom import ClassroomServer
from stepd.pgserver import PostgresServer, remove_server, start_server
from stepd.testing import free_port

CLASSES = 6
START_IN_SECONDS = 6
PING_WAIT_SECONDS = 4
CLASS_LENGTH_SECONDS = 12
DEADLINE_SECONDS = 90
READY_SECONDS = 20
EX_INTERRUPTED = 130  # as a shell reports a command ended by Ctrl-C
DEFINITION: dict[str, Any] = {
    "Comment": "Record a classroom (stepd demo --nodes)",
    "StartAt": "RecordingWait",
    "States": {
        "RecordingWait": {"Type": "Wait", "TimestampPath": "$.start", "Next": "StartRecording"},
        "StartRecording": {"Type": "Task", "Resource": "start", "ResultPath": None,
                           "Next": "SendLivePingWait"},
        "SendLivePingWait": {"Type": "Wait", "Seconds": PING_WAIT_SECONDS,
                             "Next": "SendLivePing"},
        "SendLivePing": {"Type": "Task", "Resource": "ping", "ResultPath": None,
                         "Next": "StoppingWait"},
        "StoppingWait": {"Type": "Wait", "TimestampPath": "$.end", "Next": "StopRecording"},
        "StopRecording": {"Type": "Task", "Resource": "stop", "ResultPath": None, "End": True},
    },
}  # fmt: skip


def _say(message: str) -> None:
    print(message, flush=True)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_config(folder: Path, url: str, base_url: str) -> Path:
    (folder / "classroom.asl.json").write_text(json.dumps(DEFINITION), encoding="utf-8")
    config = folder / "stepd.toml"
    config.write_text(
        f"""[store]
url = "{url}"
[http]
base_url = "{base_url}"
timeout_seconds = 30
[log]
format = "json"
level = "info"
[[machines]]
name = "classroom"
definition = "classroom.asl.json"
[machines.endpoints]
StartRecording = "/recording/start"
SendLivePing = "/recording/ping"
StopRecording = "/recording/stop"
""",
        encoding="utf-8",
    )
    return config


class _Node:
    def __init__(self, number: int, folder: Path, config: Path) -> None:
        self.number = number
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"node{number}.log"
        self.config = config
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the node: its control socket in a folder of its own inside the demo's, and
        in a session of its own (Ctrl-C reaches the demo, which stops the nodes itself)."""
        runtime = self.log.parent / f"node{self.number}-run"
        runtime.mkdir(mode=0o700, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "stepd", "run", "-c", str(self.config),
                stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "RUNTIME_DIRECTORY": str(runtime),
                     "STEPD_API__LISTEN": f"127.0.0.1:{self.port}"},
            )  # fmt: skip

    async def ready(self, client: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.process is not None and self.process.returncode is not None:
                raise RuntimeError(f"node {self.number} exited; see {self.log}")
            try:
                if (await client.get(self.url + "/healthz")).status_code == httpx.codes.OK:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"node {self.number} did not become ready; see {self.log}")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()


async def _aws(client: httpx.AsyncClient, node: _Node, operation: str, body: Any) -> Any:
    response = await client.post(
        node.url + "/",
        content=json.dumps(body),
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"AWSStepFunctions.{operation}",
        },
    )
    response.raise_for_status()
    return response.json()


async def _show_nodes(client: httpx.AsyncClient, node: _Node) -> None:
    health = (await client.get(node.url + "/healthz")).json()
    _say(f"  nodes as node {node.number} sees them:")
    for row in health["node"]["nodes"]:
        _say(f"    {row['id']}  pid {row['pid']}  api {row['api']}  holds {row['holds']}")


async def _classes(client: httpx.AsyncClient, nodes: list[_Node], server: ClassroomServer) -> int:
    start = float(int(time.time()) + START_IN_SECONDS)
    names = []
    for n in range(CLASSES):
        name = f"class-{n + 1}"
        body = {
            "classroom": name,
            "start": _rfc3339(start + n % 3),
            "end": _rfc3339(start + CLASS_LENGTH_SECONDS),
        }
        node = nodes[n % len(nodes)]
        request = {"stateMachineArn": "classroom", "name": name, "input": json.dumps(body)}
        await _aws(client, node, "StartExecution", request)
        names.append(name)
        _say(f"started {name} through node {node.number}, recording at {body['start']}")
    seen = 0
    killed = False
    survivor = nodes[-1]
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        for record in server.records[seen:]:
            who = record.body.get("classroom") if isinstance(record.body, dict) else "?"
            again = "  (sent again, same key)" if record.duplicate else ""
            _say(f"  {_clock(record.received_at)}  POST {record.path:18} {who}{again}")
        seen = len(server.records)
        if not killed and seen >= 1:
            victim = nodes[0]
            assert victim.process is not None
            victim.process.kill()
            await victim.process.wait()
            killed = True
            _say(f"killed node 1 (pid {victim.process.pid}) with SIGKILL: the others take over")
            await _show_nodes(client, survivor)
        statuses = [
            (await _aws(client, survivor, "DescribeExecution", {
                "executionArn": f"arn:aws:states:us-east-1:123456789012:execution:classroom:{n}"
            }))["status"]
            for n in names
        ]  # fmt: skip
        if all(s != "RUNNING" for s in statuses):
            await _show_nodes(client, survivor)
            ok = all(s == "SUCCEEDED" for s in statuses)
            _say(f"{statuses.count('SUCCEEDED')} of {len(names)} classes SUCCEEDED")
            return 0 if ok else 1
        await asyncio.sleep(0.2)
    _say("the classes did not finish in time")
    return 1


async def _demo(folder: Path, count: int, server_pg: PostgresServer) -> int:
    server = ClassroomServer(log_path=folder / "classroom-requests.jsonl")
    base_url = await server.start()
    url = await asyncio.to_thread(server_pg.new_database)
    config = _write_config(folder, url, base_url)
    nodes = [_Node(n, folder, config) for n in range(1, count + 1)]
    _say(f"stepd demo: PostgreSQL at {url}, classroom server at {base_url}, folder {folder}")
    try:
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            for node in nodes:
                await node.start()
            for node in nodes:
                await node.ready(client)
                _say(f"node {node.number} ready, API at {node.url}")
            return await _classes(client, nodes, server)
    finally:
        for node in nodes:
            await node.stop()
        await server.stop()


def run_nodes_demo(folder: Path, count: int) -> int:
    """The demo in `folder` with `count` nodes (at least 2); 69 when PostgreSQL is not
    installed."""
    try:
        server_pg = start_server()
    except RuntimeError as exc:
        _say(f"stepd demo --nodes: {exc}")
        return 69
    try:
        return asyncio.run(_demo(folder, count, server_pg))
    except KeyboardInterrupt:
        _say("interrupted: the nodes, the classroom server and PostgreSQL are stopped")
        return EX_INTERRUPTED
    finally:
        remove_server(server_pg)
