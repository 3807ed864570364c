"""`[[notify]]`: a signed POST for each execution that ends FAILED, TIMED_OUT or ABORTED,
delivered once through a SIGKILL of the daemon between the failure and the delivery."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from tests.integration.harness import (
    START_PATH,
    Classroom,
    Stepd,
    execution_arn,
    wait_until,
    whole_second,
)

from stepd.classroom import ClassroomServer
from stepd.tasks.signing import verify
from stepd.testing import free_port

SECRET = "whsec_" + base64.b64encode(b"notify-test-secret-0123456789abc").decode()
SETTLE_SECONDS = 20.0


@dataclass
class Receiver:
    """A webhook receiver on loopback that answers `status` and keeps what it received."""

    status: int = 503
    received: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((dict(request.headers), body, self.status))
        return web.Response(status=self.status)

    def answered(self, status: int) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b, s in self.received if s == status]

    def keys(self, status: int | None = None) -> list[str]:
        return [h["webhook-id"] for h, _, s in self.received if status is None or s == status]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    made = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/stepd", made.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    made.url = f"http://127.0.0.1:{port}/hooks/stepd"
    yield made
    await runner.cleanup()


def add_notify(stepd: Stepd, url: str) -> None:
    """A [[notify]] target `url` in the daemon's config (before it starts)."""
    secret = stepd.config.parent / "notify.secret"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    text = stepd.config.read_text(encoding="utf-8")
    stepd.config.write_text(
        text + f'\n[[notify]]\nurl = "{url}"\nsecret_file = "{secret.name}"\n', encoding="utf-8"
    )


async def test_a_failure_is_told_once_even_with_a_sigkill_before_its_delivery(
    stepd: Stepd, classroom: ClassroomServer, receiver: Receiver
) -> None:
    add_notify(stepd, receiver.url)
    await stepd.start()
    now = whole_second(0)
    bad = {"start": "not a time", "end": "2027-01-15T10:00:00Z"}
    await stepd.ok(
        "StartExecution",
        {"stateMachineArn": "classroom", "name": "bad-input", "input": json.dumps(bad)},
    )
    classroom.fail_next(START_PATH, status=500)
    await stepd.start_execution(Classroom(name="server-error", start=now, end=now + 3600))
    await stepd.wait_status(["bad-input", "server-error"], "FAILED", SETTLE_SECONDS)

    async def both_tried() -> bool:
        return len(set(receiver.keys())) == 2

    await wait_until(both_tried, timeout=SETTLE_SECONDS, what="a try for each failure")
    assert receiver.answered(200) == []
    stepd.kill()  # between the failure and its delivery: the receiver refused every try
    await asyncio.sleep(1.0)  # a try that reached the receiver before the kill is refused too
    receiver.status = 200
    await stepd.start()

    async def both_told() -> bool:
        return len(set(receiver.keys(200))) == 2

    await wait_until(
        both_told, timeout=SETTLE_SECONDS, what="a delivery for each", explain=stepd.tail()
    )
    await _quiet(2.0)
    told = receiver.answered(200)
    assert len(told) == 2, receiver.keys()
    by_name = {}
    for headers, body in told:
        assert verify(SECRET, headers, body, now=time.time())
        sent: dict[str, Any] = json.loads(body)
        by_name[sent["data"]["name"]] = sent
    assert sorted(by_name) == ["bad-input", "server-error"]
    failed = by_name["server-error"]
    assert failed["type"] == "execution.failed"
    assert failed["data"]["executionArn"] == execution_arn("server-error")
    assert failed["data"]["error"] == "States.Http.StatusCode.500"
    assert failed["data"]["url"].endswith("/ui/executions/classroom/server-error")
    assert "not a time" in (by_name["bad-input"]["data"]["cause"] or "")


async def test_a_stopped_execution_is_told_and_a_succeeding_one_is_not(
    stepd: Stepd, receiver: Receiver
) -> None:
    receiver.status = 200
    add_notify(stepd, receiver.url)
    await stepd.start()
    now = whole_second(0)
    await stepd.start_execution(Classroom(name="stopped", start=now + 3600, end=now + 7200))
    await stepd.start_execution(Classroom(name="fine", start=now, end=now + 3))
    await stepd.ok("StopExecution", {"executionArn": execution_arn("stopped")})
    await stepd.wait_status(["fine"], "SUCCEEDED", SETTLE_SECONDS)

    async def told() -> bool:
        return len(receiver.answered(200)) >= 1

    await wait_until(told, timeout=SETTLE_SECONDS, what="the stop told")
    await _quiet(2.0)
    names = [json.loads(b)["data"]["name"] for _, b in receiver.answered(200)]
    assert names == ["stopped"]
    assert json.loads(receiver.answered(200)[0][1])["type"] == "execution.aborted"


async def _quiet(seconds: float) -> None:
    """Give a duplicate the time to arrive, if one were coming."""
    await asyncio.sleep(seconds)
