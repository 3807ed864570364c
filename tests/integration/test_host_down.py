"""A classroom server that is down is visible: /healthz says degraded (503), naming the host
and since when; DescribeExecution and the web pages name the host its waiting call goes to;
all of it clears once it answers again."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.harness import (
    DEFINITION,
    ENDPOINTS,
    Stepd,
    rfc3339,
    run_cli,
    wait_until,
)

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

WAIT_FOR_HOST_SECONDS = 600
FIRST_FAILURE_SECONDS = 10.0  # the class's first call fails within this of its start


@pytest.fixture
def daemons() -> Iterator[list[Stepd]]:
    made: list[Stepd] = []
    yield made
    for daemon in made:
        daemon.cleanup()


def write_config(folder: Path, port: int, base_url: str) -> Path:
    definition = json.loads(json.dumps(DEFINITION))
    for state in ENDPOINTS:  # calls to a down host wait only when the state would retry
        definition["States"][state]["Retry"] = [{"ErrorEquals": ["States.ALL"]}]
    (folder / "classroom.asl.json").write_text(json.dumps(definition), encoding="utf-8")
    routes = "\n".join(f'{state} = "{path}"' for state, path in ENDPOINTS.items())
    config = folder / "stepd.toml"
    config.write_text(
        f"""[store]
path = "stepd.db"
[api]
listen = "127.0.0.1:{port}"
[http]
base_url = "{base_url}"
[log]
format = "json"
[[machines]]
name = "classroom"
definition = "classroom.asl.json"
wait_for_host_seconds = {WAIT_FOR_HOST_SECONDS}
[machines.endpoints]
{routes}
""",
        encoding="utf-8",
    )
    return config


async def health(daemon: Stepd) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        answer = await client.get(daemon.url + "/healthz")
    return answer.status_code, answer.json()


async def page(daemon: Stepd, path: str) -> str:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        answer = await client.get(daemon.url + path)
    assert answer.status_code == 200, answer.text
    return answer.text


async def test_a_down_classroom_server_is_reported_until_it_answers(
    tmp_path: Path, daemons: list[Stepd]
) -> None:
    """While the server refuses connections, /healthz answers 503 degraded naming the host,
    its error and since when, and DescribeExecution names it for the waiting execution; once
    the server answers, both are clear and the call goes out."""
    server_port = free_port()
    base_url = f"http://127.0.0.1:{server_port}"
    port = free_port()
    daemon = Stepd(write_config(tmp_path, port, base_url), port, tmp_path / "stepd.log")
    daemons.append(daemon)
    await daemon.start()
    assert (await health(daemon))[0] == 200
    start = math.ceil(time.time()) + 1
    body = {"classroom": "class-42", "start": rfc3339(start), "end": rfc3339(start + 60)}
    await daemon.ok(
        "StartExecution",
        {"stateMachineArn": "classroom", "name": "class-42", "input": json.dumps(body)},
    )

    async def degraded() -> bool:
        return (await health(daemon))[0] == 503

    await wait_until(
        degraded, timeout=FIRST_FAILURE_SECONDS, what="/healthz degraded", explain=daemon.tail()
    )
    status, report = await health(daemon)
    (down,) = report["down"]
    assert (status, report["status"], down["host"], down["error"]) == (
        503,
        "degraded",
        base_url,
        "States.Http.Socket",
    )
    since = datetime.fromisoformat(down["since"]).timestamp()
    assert start - 1 <= since <= time.time()
    described = await daemon.describe("class-42")
    assert described["stepd"]["hostDown"]["host"] == base_url
    assert described["stepd"]["hostDown"]["error"] == "States.Http.Socket"
    told = await asyncio.to_thread(
        run_cli, "describe", "classroom", "class-42", "--api", daemon.url
    )  # `stepd describe` says why the step due in the past has not gone out
    assert f"waiting for host: {base_url}, down since" in told.stdout, told.stdout + told.stderr
    listing = await page(daemon, "/ui/")
    assert "host-down-banner" in listing
    assert f"{base_url} down since" in listing
    assert f"{base_url} down since" in await page(daemon, "/ui/executions/classroom/class-42")

    server = ClassroomServer(port=server_port, log_path=tmp_path / "classroom.jsonl")
    await server.start()
    try:

        async def recovered() -> bool:
            return (await health(daemon))[0] == 200 and bool(server.records)

        await wait_until(recovered, timeout=30, what="the host back up", explain=daemon.tail())
        status, report = await health(daemon)
        assert (status, report["status"], report["down"]) == (200, "ok", [])
        assert "hostDown" not in (await daemon.describe("class-42"))["stepd"]
        assert "down since" not in await page(daemon, "/ui/")
        assert [r.path for r in server.records] == ["/recording/start"]
    finally:
        await server.stop()
