"""`stepd demo`: the real daemon, a stand-in classroom server and one classroom, end to end.

The class starts a few seconds from now and ends about a minute and a quarter later; the demo
prints each step as the daemon takes it and each POST as the classroom server receives it,
and exits 0 once the execution has succeeded.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from stepd.classroom import ClassroomServer
from stepd.graph.progress import TASK_FAILURES, TASK_SUCCESSES
from stepd.testing import free_port

START_IN_SECONDS = 5  # the class starts this long after the demo does
CLASS_LENGTH_SECONDS = 70  # start recording, ping a minute later, stop 10 s after that
DEADLINE_SECONDS = 115  # the demo gives up after this long
POLL_SECONDS = 0.2
DAEMON_READY_SECONDS = 15


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


def _say(message: str) -> None:
    print(message, flush=True)


def _write_config(folder: Path, base_url: str, port: int) -> Path:
    definition = resources.files("stepd").joinpath("examples/classroom.asl.yaml").read_text()
    (folder / "classroom.asl.yaml").write_text(definition)
    config = folder / "stepd.toml"
    config.write_text(
        f"""[store]
path = "stepd.db"
[api]
listen = "127.0.0.1:{port}"
[http]
base_url = "{base_url}"
timeout_seconds = 5
[log]
format = "json"
level = "info"
[[machines]]
name = "classroom"
definition = "classroom.asl.yaml"
[machines.endpoints]
StartRecording = "/recording/start"
SendLivePing = "/recording/ping"
StopRecording = "/recording/stop"
StopAfterFailure = "/recording/stop"
"""
    )
    return config


async def _aws(client: httpx.AsyncClient, operation: str, body: dict[str, Any]) -> Any:
    response = await client.post(
        "/",
        content=json.dumps(body),
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"AWSStepFunctions.{operation}",
        },
    )
    answer = response.json()
    if response.status_code != httpx.codes.OK:
        raise RuntimeError(f"{operation}: {answer}")
    return answer


Line = tuple[float, str]  # (when, text)


def merge_lines(events: Iterable[Line], posts: Iterable[Line]) -> list[Line]:
    """The daemon's events and the server's POSTs as one timeline.

    Each keeps its own order (the events their history order, by event id; the POSTs the
    order the server received them), and the two are interleaved by time. Several events
    share a millisecond (a state entered, its task scheduled): sorting by time would shuffle
    them. On a tie the event comes first.
    """
    return list(heapq.merge(events, posts, key=lambda line: line[0]))


def _describe_event(event: dict[str, Any]) -> str | None:
    details: dict[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
    kind = str(event["type"])
    if kind.endswith("StateEntered"):
        return f"enter {details.get('name')}"
    if kind in {"TaskScheduled", "LambdaFunctionScheduled", "ActivityScheduled"}:
        return f"call  {details.get('resource')}"
    if kind in TASK_SUCCESSES or kind == "WaitStateExited":
        return kind
    if kind.startswith("Execution") or kind in TASK_FAILURES:
        extra = details.get("error") or ""
        return f"{kind} {extra}".rstrip()
    return None


async def _wait_ready(client: httpx.AsyncClient, daemon: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + DAEMON_READY_SECONDS
    while time.monotonic() < deadline:
        if daemon.returncode is not None:
            raise RuntimeError(f"the daemon exited with {daemon.returncode}")
        try:
            if (await client.get("/healthz")).status_code == httpx.codes.OK:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the daemon did not become ready")


async def _demo(folder: Path) -> int:
    server = ClassroomServer(log_path=folder / "classroom-requests.jsonl")
    base_url = await server.start()
    port = free_port()
    config = _write_config(folder, base_url, port)
    _say(f"stepd demo: classroom server at {base_url}, work folder {folder}")
    log = (folder / "daemon.log").open("wb")
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stepd", "run", "-c", str(config),
        stdout=log, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await _wait_ready(client, daemon)
            _say(f"daemon ready (pid {daemon.pid}), API at http://127.0.0.1:{port}")
            return await _run_class(client, server)
    finally:
        if daemon.returncode is None:
            daemon.send_signal(signal.SIGTERM)
            await daemon.wait()
        log.close()
        await server.stop()


async def _run_class(client: httpx.AsyncClient, server: ClassroomServer) -> int:
    now = datetime.now(UTC).replace(microsecond=0)
    start = now + timedelta(seconds=START_IN_SECONDS)
    end = start + timedelta(seconds=CLASS_LENGTH_SECONDS)
    name = f"demo-class-{now:%Y%m%d-%H%M%S}"
    class_input = {
        "classId": name,
        "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    started = await _aws(
        client,
        "StartExecution",
        {"stateMachineArn": "classroom", "name": name, "input": json.dumps(class_input)},
    )
    arn = started["executionArn"]
    _say(f"started {arn}")
    _say(f"  class starts {class_input['start']}, ends {class_input['end']}")
    seen_events = 0
    seen_posts = 0
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        history = await _aws(
            client, "GetExecutionHistory", {"executionArn": arn, "maxResults": 1000}
        )
        events: list[Line] = []
        for event in history["events"][seen_events:]:  # in history order
            text = _describe_event(event)
            if text:
                events.append((event["timestamp"], f"stepd   {text}"))
        seen_events = len(history["events"])
        posts: list[Line] = []
        for record in server.records[seen_posts:]:
            dup = " (duplicate)" if record.duplicate else ""
            posts.append(
                (
                    record.received_at,
                    f"server  POST {record.path}  Idempotency-Key {record.idempotency_key}{dup}",
                )
            )
        seen_posts = len(server.records)
        for at, text in merge_lines(events, posts):
            _say(f"  {_clock(at)}  {text}")
        described = await _aws(client, "DescribeExecution", {"executionArn": arn})
        if described["status"] != "RUNNING":
            _say(f"execution {described['status']}")
            return 0 if described["status"] == "SUCCEEDED" else 1
        await asyncio.sleep(POLL_SECONDS)
    _say("the execution did not finish in time")
    return 1


def _interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(*, keep: bool = False, nodes: int = 1) -> int:
    folder = Path(tempfile.mkdtemp(prefix="stepd-demo-"))
    # SIGTERM and SIGHUP (`kill`, `timeout`, a closed terminal or CI job) stop it as Ctrl-C
    # does: the daemons, the classroom server and PostgreSQL stop, the folder goes
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupted)
    try:
        if nodes > 1:
            from stepd.demo_nodes import run_nodes_demo  # noqa: PLC0415 - needs PostgreSQL

            return run_nodes_demo(folder, nodes)
        return asyncio.run(_demo(folder))
    except KeyboardInterrupt:
        return 130
    finally:
        if keep:
            _say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
