"""The shipped files (config/stepd.toml and config/classroom.asl.yaml, as `make install` puts
them in /etc/stepd) run by the real daemon against classroom servers that misbehave the ways
real ones do: one that answers `200 OK` in plain text, one that fails a few times before it
answers, and one that is down when the class starts. Every recording that is started is
stopped, each call takes effect once, and nothing is sent early. Only the store, the API
address and the classroom server's address are set, from the environment.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from tests.integration.harness import EARLY_SLACK_SECONDS, Stepd, rfc3339, wait_until

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

CONFIG = Path(__file__).resolve().parents[2] / "config" / "stepd.toml"
PING_WAIT_SECONDS = 60  # the shipped SendLivePingWait
CLASS_SECONDS = PING_WAIT_SECONDS + 8  # long enough for the ping to come before the end
DOWN_SECONDS = 6  # how long the third server is down after its class starts
SETTLE_SECONDS = 30  # after a class's end, for its execution to close
STEPS = ("/recording/start", "/recording/ping", "/recording/stop")


@dataclass
class PlainServer:
    """Answers every POST with `200 OK` in text/plain, and keeps what it got."""

    records: list[tuple[float, str, dict[str, Any], str | None]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> str:
        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            key = request.headers.get("Idempotency-Key")
            self.records.append((time.time(), request.path, body, key))
            return web.Response(text="OK", content_type="text/plain")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def plain() -> AsyncIterator[PlainServer]:
    server = PlainServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def failing(tmp_path: Path) -> AsyncIterator[ClassroomServer]:
    server = ClassroomServer(log_path=tmp_path / "failing.jsonl")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def down(tmp_path: Path) -> AsyncIterator[tuple[ClassroomServer, str]]:
    port = free_port()
    server = ClassroomServer(port=port, log_path=tmp_path / "down.jsonl")
    yield server, f"http://127.0.0.1:{port}"
    await server.stop()


@pytest.fixture
def daemons() -> Iterator[list[Stepd]]:
    made: list[Stepd] = []
    yield made
    for daemon in made:
        daemon.cleanup()


async def shipped_daemon(folder: Path, name: str, base_url: str, daemons: list[Stepd]) -> Stepd:
    """`stepd run -c config/stepd.toml`, its store, API and classroom server from the
    environment."""
    port = free_port()
    daemon = Stepd(CONFIG, port, folder / f"{name}.log")
    daemon.extra_env = {
        "STEPD_STORE__PATH": str(folder / f"{name}.db"),
        "STEPD_API__LISTEN": f"127.0.0.1:{port}",
        "STEPD_HTTP__BASE_URL": base_url,
        "STEPD_LOG__FORMAT": "json",
    }
    daemons.append(daemon)
    await daemon.start()
    return daemon


async def start_class(daemon: Stepd, name: str, start: float, end: float) -> None:
    body = {"start": rfc3339(start), "end": rfc3339(end)}
    await daemon.ok(
        "StartExecution",
        {"stateMachineArn": "classroom", "name": name, "input": json.dumps(body)},
    )


async def closed(daemon: Stepd, name: str, timeout: float) -> dict[str, Any]:
    described: dict[str, Any] = {}

    async def done() -> bool:
        described.update(await daemon.describe(name))
        return described["status"] != "RUNNING"

    await wait_until(done, timeout=timeout, what=f"{name} to close", explain=daemon.tail())
    return described


def check_once_each_never_early(
    sent: list[tuple[float, str, str | None]], start: float, end: float, explain: str
) -> None:
    """Start, ping and stop each took effect once (one key each, in order), none early."""
    paths = [path for _, path, _ in sent]
    firsts = {path: paths.index(path) for path in STEPS if path in paths}
    assert list(firsts) == list(STEPS), f"{paths}\n{explain}"
    assert sorted(firsts.values()) == list(firsts.values()), f"out of order: {paths}\n{explain}"
    for path in STEPS:
        keys = {key for _, p, key in sent if p == path}
        assert len(keys) == 1, f"{path}: {keys}\n{explain}"
    received = {path: [at for at, p, _ in sent if p == path] for path in STEPS}
    assert min(received["/recording/start"]) >= start - EARLY_SLACK_SECONDS, explain
    assert min(received["/recording/stop"]) >= end - EARLY_SLACK_SECONDS, explain
    ping_due = min(received["/recording/start"]) + PING_WAIT_SECONDS
    assert min(received["/recording/ping"]) >= ping_due - EARLY_SLACK_SECONDS, explain


@pytest.mark.slow
async def test_the_shipped_machine_records_once_whatever_the_server_does(
    tmp_path: Path,
    plain: PlainServer,
    failing: ClassroomServer,
    down: tuple[ClassroomServer, str],
    daemons: list[Stepd],
) -> None:
    """Against a plain-text server, a failing one and a down one, the shipped config records
    each class once: started at its start, pinged a minute later, stopped at its end."""
    down_server, down_url = down
    on_plain = await shipped_daemon(tmp_path, "plain", f"http://127.0.0.1:{plain.port}", daemons)
    on_failing = await shipped_daemon(tmp_path, "failing", failing.base_url, daemons)
    on_down = await shipped_daemon(tmp_path, "down", down_url, daemons)

    start = math.ceil(time.time()) + 3
    end = start + CLASS_SECONDS
    failing.fail_next("/recording/start", status=500, times=3)
    for daemon in (on_plain, on_failing, on_down):
        await start_class(daemon, "class-42", start, end)
    # a class already over is refused by the machine before anything is sent
    await start_class(on_plain, "class-over", start - 7200, start - 3600)
    over = await closed(on_plain, "class-over", timeout=SETTLE_SECONDS)
    assert (over["status"], over["error"]) == ("FAILED", "Classroom.AlreadyOver")

    await asyncio.sleep(max(0.0, start + DOWN_SECONDS - time.time()))
    await down_server.start()  # the server comes back; the waiting start goes out at once

    outcomes = await asyncio.gather(
        *(
            closed(daemon, "class-42", timeout=end - time.time() + SETTLE_SECONDS)
            for daemon in (on_plain, on_failing, on_down)
        )
    )
    assert [o["status"] for o in outcomes] == ["SUCCEEDED"] * 3, outcomes

    plain_sent = [(at, path, key) for at, path, body, key in plain.records if body]
    check_once_each_never_early(plain_sent, start, end, on_plain.tail())
    assert [path for _, path, _ in plain_sent] == list(STEPS)  # one call each: none repeated
    output = json.loads(outcomes[0]["output"])
    assert (output["start"], output["end"]) == (rfc3339(start), rfc3339(end))

    failing_sent = [(r.received_at, r.path, r.idempotency_key) for r in failing.records]
    check_once_each_never_early(failing_sent, start, end, on_failing.tail())
    starts = [r.status for r in failing.records if r.path == "/recording/start"]
    assert starts == [500, 500, 500, 200], starts  # retried until it took, then never again

    down_sent = [(r.received_at, r.path, r.idempotency_key) for r in down_server.records]
    check_once_each_never_early(down_sent, start, end, on_down.tail())
    assert [r.path for r in down_server.records] == list(STEPS)
    assert down_server.records[0].received_at >= start + DOWN_SECONDS - EARLY_SLACK_SECONDS


async def test_the_shipped_config_refuses_bad_input_at_start(
    tmp_path: Path, plain: PlainServer, daemons: list[Stepd]
) -> None:
    """The shipped config's input_schema refuses a class without a valid end at
    StartExecution (InvalidExecutionInput, naming the field), and nothing is stored or sent."""
    daemon = await shipped_daemon(tmp_path, "plain", f"http://127.0.0.1:{plain.port}", daemons)
    status, answer = await daemon.call(
        "StartExecution",
        {
            "stateMachineArn": "classroom",
            "name": "class-42",
            "input": json.dumps({"start": "2027-01-15T09:00:00Z", "end": "at ten"}),
        },
    )
    assert (status, answer["__type"]) == (400, "InvalidExecutionInput")
    assert "$.end" in answer["message"]
    listed = await daemon.ok("ListExecutions", {"stateMachineArn": "classroom"})
    assert (listed["executions"], plain.records) == ([], [])
