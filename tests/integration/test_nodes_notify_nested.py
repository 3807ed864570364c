"""Failure notifications and nested executions on two stepd nodes sharing one PostgreSQL
database, with the node doing the work SIGKILLed in between: a failure is told to the receiver
by the survivor, with the same webhook-id; a parent whose `.sync` child was started by the
killed node succeeds on the survivor with the child's answer."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from tests.integration.clients import sfn
from tests.integration.harness import (
    START_PATH,
    Classroom,
    DaemonFactory,
    Stepd,
    wait_until,
    whole_second,
)
from tests.integration.test_nested import ARN, CHILD_WAIT_SECONDS, closed, nested_daemon
from tests.integration.test_nodes import start_nodes
from tests.integration.test_notify import SECRET, Receiver, add_notify, receiver
from tests.postgres_server import PostgresServer

from stepd.classroom import ClassroomServer
from stepd.tasks.signing import verify

__all__ = ["receiver"]  # the fixture

# A killed node's notices and executions go to a survivor once its lease (5 s) ran out and
# the survivor reaped it, then at the notifier's next retry: a generous bound.
SETTLE_SECONDS = 40.0


def trying_nodes(nodes: list[Stepd], name: str) -> list[Stepd]:
    """The nodes whose notifier tried to tell of `name`'s closing (and logged it)."""
    return [
        n for n in nodes if any(e.get("execution") == name for e in n.log_events("notify.refused"))
    ]


async def test_a_failure_is_told_once_by_a_survivor_when_the_telling_node_is_killed(
    make_stepd: DaemonFactory,
    postgres: PostgresServer,
    classroom: ClassroomServer,
    receiver: Receiver,
) -> None:
    """The receiver refuses the first tries; the node whose notifier tried is SIGKILLed; the
    survivor's notifier takes the notice over and the receiver gets it once, signed, with the
    same webhook-id as every try before."""
    nodes = await start_nodes(
        make_stepd, postgres, count=2, prepare=lambda node: add_notify(node, receiver.url)
    )
    classroom.fail_next(START_PATH, status=500)
    now = whole_second(0)
    await nodes[0].start_execution(Classroom(name="failing", start=now, end=now + 3600))
    await nodes[1].wait_status(["failing"], "FAILED", SETTLE_SECONDS)

    async def tried() -> bool:  # refused, and the refusal logged by the node that tried
        return bool(receiver.keys(503)) and bool(trying_nodes(nodes, "failing"))

    await wait_until(tried, timeout=SETTLE_SECONDS, what="a try of the failure's notice")
    (telling,) = trying_nodes(nodes, "failing")
    telling.kill()
    await asyncio.sleep(1.0)  # a try that reached the receiver before the kill is refused too
    receiver.status = 200
    survivor = next(n for n in nodes if n.process)

    async def told() -> bool:
        return bool(receiver.answered(200))

    await wait_until(told, timeout=SETTLE_SECONDS, what="the notice told", explain=survivor.tail())
    await asyncio.sleep(2.0)  # a duplicate, if one were coming
    ((headers, body),) = receiver.answered(200)
    assert verify(SECRET, headers, body, now=time.time())
    sent: dict[str, Any] = json.loads(body)
    assert (sent["type"], sent["data"]["name"]) == ("execution.failed", "failing")
    assert len(set(receiver.keys())) == 1, receiver.keys()  # every try had the one webhook-id
    delivered = survivor.log_events("notify.delivered")
    assert [e["execution"] for e in delivered] == ["failing"]


async def test_a_sync_parent_succeeds_on_a_survivor_when_the_node_that_started_its_child_dies(
    tmp_path: Path, postgres: PostgresServer, classroom: ClassroomServer
) -> None:
    """A parent started on node 1 starts its `.sync` child; the node that started the child is
    SIGKILLed while the child waits; the child ends on the survivor, which tells the parent,
    and the parent succeeds there with the child's DescribeExecution answer."""
    url = await asyncio.to_thread(postgres.new_database)
    nodes = []
    try:
        for n in (1, 2):
            folder = tmp_path / f"node{n}"
            folder.mkdir()
            nodes.append(await nested_daemon(folder, classroom, {"STEPD_STORE__URL": url}))
        body = json.dumps({"room": "green", "wait": CHILD_WAIT_SECONDS})
        await asyncio.to_thread(
            sfn(nodes[0].url).start_execution,
            stateMachineArn=ARN.format("parent"),
            name="p1",
            input=body,
        )
        starter: list[Stepd] = []

        async def child_started() -> bool:
            starter[:] = [n for n in nodes if child_starts(n)]
            return bool(starter)

        await wait_until(child_started, timeout=SETTLE_SECONDS, what="the child started")
        (child,) = child_starts(starter[0])
        starter[0].kill()
        survivor = next(n for n in nodes if n.process)
        parent = await closed(survivor, "p1")
        assert parent["status"] == "SUCCEEDED", f"{parent}\n{survivor.tail()}"
        result = json.loads(parent["output"])
        assert (result["Name"], result["Status"]) == (child, "SUCCEEDED")
        assert json.loads(result["Output"]) == {"recorded": "green"}
        described = await survivor.describe_in("child", child)
        assert described["stepd"]["parentExecutionArn"] == parent["executionArn"]
    finally:
        for node in nodes:
            node.cleanup()


def child_starts(node: Stepd) -> list[str]:
    """The child executions `node` started."""
    return [str(e["child"]) for e in node.log_events("nested.child_started")]
