"""The failure notifier: which targets hear of which closing, back-off, and the outbox."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from stepd.alerts import RETRY_FIRST_SECONDS, Alerts, Target
from stepd.engine.arns import Arns
from stepd.store.records import FAILED, RUNNING, NewExecution, Progress, Transition
from stepd.tasks.signing import verify
from stepd.testing import MemoryStore

SECRET = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Hooks:
    """The receiving end: answers each URL with its status, and keeps every request."""

    def __init__(self, **status: int) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status.get(request.url.host, 200))

    def hosts(self) -> list[str]:
        return [r.url.host for r in self.requests]


@pytest.fixture
async def store():
    opened = MemoryStore()
    await opened.open()
    yield opened
    await opened.close()


async def fail(store: MemoryStore, name: str, machine: str = "classroom", status: str = FAILED):
    definition = await store.put_definition(machine, "{}")
    execution, _ = await store.create_execution(
        NewExecution(
            machine=machine,
            name=name,
            definition_id=definition,
            input="{}",
            start_date=1.0,
            uid=f"uid-{name}",
            progress=Progress(status=RUNNING, due_at=5.0),
        )
    )
    closed = Progress(status=status, stop_date=2.0, error="E.Boom", cause="it broke")
    await store.commit(Transition(base=execution, progress=closed))


def alerts(store: MemoryStore, hooks: Hooks, clock: Clock, *targets: Target) -> Alerts:
    return Alerts(
        store,
        targets,
        arns=Arns(),
        page_base="https://stepd.school.example/",
        clock=clock,
        transport=httpx.MockTransport(hooks),
    )


async def test_a_failure_is_posted_signed_with_its_page_and_then_removed(store: MemoryStore):
    hooks, clock = Hooks(), Clock()
    await fail(store, "c1")
    sender = alerts(store, hooks, clock, Target(url="http://ops.test/h", secret=SECRET))
    assert await sender.deliver_due() == 1
    (request,) = hooks.requests
    body: dict[str, Any] = json.loads(request.content)
    assert body["type"] == "execution.failed"
    assert body["data"]["url"] == "https://stepd.school.example/ui/executions/classroom/c1"
    assert (body["data"]["error"], body["data"]["cause"]) == ("E.Boom", "it broke")
    assert verify(SECRET, dict(request.headers), request.content, now=clock.now)
    assert await store.outbox(10) == []
    await sender.stop()


async def test_a_failing_target_is_retried_with_back_off_and_the_others_not_again(
    store: MemoryStore,
):
    hooks, clock = Hooks(**{"down.test": 503}), Clock()
    await fail(store, "c1")
    sender = alerts(
        store, hooks, clock, Target(url="http://up.test/h"), Target(url="http://down.test/h")
    )
    assert await sender.deliver_due() == 0
    assert await sender.deliver_due() == 0  # not due again yet
    assert hooks.hosts() == ["up.test", "down.test"]
    clock.now += RETRY_FIRST_SECONDS
    hooks.status = {}
    assert await sender.deliver_due() == 1
    assert hooks.hosts() == ["up.test", "down.test", "down.test"]
    keys = {r.headers["webhook-id"] for r in hooks.requests}
    assert len(keys) == 1
    await sender.stop()


async def test_targets_hear_only_of_their_machines_and_statuses(store: MemoryStore):
    hooks, clock = Hooks(), Clock()
    await fail(store, "c1", machine="other")
    await fail(store, "c2", status="ABORTED")
    await fail(store, "c3")
    sender = alerts(
        store,
        hooks,
        clock,
        Target(url="http://ops.test/h", machines=frozenset({"classroom"}),
               statuses=frozenset({FAILED})),
    )  # fmt: skip
    assert await sender.deliver_due() == 3  # each one done: told, or wanted by no target
    assert [json.loads(r.content)["data"]["name"] for r in hooks.requests] == ["c3"]
    await sender.stop()


async def test_once_a_target_answers_again_every_waiting_notice_is_tried_at_once(
    store: MemoryStore,
):
    hooks, clock = Hooks(**{"ops.test": 503}), Clock()
    await fail(store, "c1")
    sender = alerts(store, hooks, clock, Target(url="http://ops.test/h"))
    for wait in (1, 2):  # two tries; the third is 4 s away
        await sender.deliver_due()
        clock.now += wait
    await sender.deliver_due()
    await fail(store, "c2")
    hooks.status = {}
    assert await sender.deliver_due() == 1  # c2; c1 is still waiting out its back-off
    assert await sender.deliver_due() == 1  # c1, at once: the target answers again
    assert await store.outbox(10) == []
    await sender.stop()
