"""Tracing through the real daemon: with `[tracing] otlp_endpoint`, an execution is one trace,
sent as OTLP/HTTP JSON to a receiver on loopback: a root span from its start to its end and a
CLIENT span per task call under it, whose `traceparent` the classroom server received."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from tests.integration.harness import (
    DEFINITION,
    ENDPOINTS,
    STEP_PATHS,
    Stepd,
    rfc3339,
    wait_until,
    write_machine_config,
)

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

SETTLE_SECONDS = 30.0


class Receiver:
    """An OTLP/HTTP receiver: keeps the spans POSTed to /v1/traces."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.services: set[str] = set()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        async def traces(request: web.Request) -> web.Response:
            body = await request.json()
            for resource in body["resourceSpans"]:
                for attribute in resource["resource"]["attributes"]:
                    self.services.add(attribute["value"]["stringValue"])
                for scope in resource["scopeSpans"]:
                    self.spans.extend(scope["spans"])
            return web.json_response({})

        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = Receiver()
    await made.start()
    yield made
    assert made.runner is not None
    await made.runner.cleanup()


async def test_an_execution_is_one_trace_and_its_calls_carry_it(
    tmp_path: Path, classroom: ClassroomServer, receiver: Receiver
) -> None:
    """Three task calls, three CLIENT spans under the execution's root span, one trace id; the
    classroom server got each call's span in `traceparent`."""
    port = free_port()
    config = write_machine_config(
        tmp_path,
        port=port,
        base_url=classroom.base_url,
        machine="classroom",
        definition=DEFINITION,
        endpoints=ENDPOINTS,
        sections=f'[tracing]\notlp_endpoint = "{receiver.url}"\nservice_name = "rooms"',
    )
    daemon = Stepd(config, port, tmp_path / "stepd.log")
    await daemon.start()
    try:
        now = time.time()
        body = {"start": rfc3339(now + 1), "end": rfc3339(now + 4)}
        await daemon.ok(
            "StartExecution",
            {"stateMachineArn": "classroom", "name": "traced", "input": json.dumps(body)},
        )

        async def exported() -> bool:
            return any(s["name"] == "execution classroom" for s in receiver.spans)

        await wait_until(
            exported, timeout=SETTLE_SECONDS, what="the root span", explain=daemon.tail()
        )
    finally:
        daemon.cleanup()
    (root,) = [s for s in receiver.spans if s["name"] == "execution classroom"]
    calls = [s for s in receiver.spans if s["name"] == "task call"]
    assert receiver.services == {"rooms"}
    assert len(calls) == 3
    assert {s["traceId"] for s in calls} == {root["traceId"]}
    assert {s["parentSpanId"] for s in calls} == {root["spanId"]}
    assert root["status"] == {"code": 1}
    parents = [r.headers.get("traceparent") for r in classroom.records]
    assert [r.path for r in classroom.records] == list(STEP_PATHS)
    assert sorted(parents) == sorted(f"00-{s['traceId']}-{s['spanId']}-01" for s in calls)
