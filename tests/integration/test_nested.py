"""Nested executions through the real daemon: a parent whose `.sync` child waits survives a
SIGKILL of the daemon and gets the child's description when it ends (boto3); the AWS CLI
starts a `.sync:2` parent and stops it, which stops its child; the web pages link parent and
children."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from tests.integration.clients import aws_cli, sfn
from tests.integration.harness import Stepd, wait_until, write_machine_config

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

START = "arn:aws:states:::states:startExecution"
ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:{}"
CHILD_WAIT_SECONDS = 4
SETTLE_SECONDS = 40.0

CHILD: dict[str, Any] = {
    "StartAt": "Wait",
    "States": {
        "Wait": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "Done"},
        "Done": {"Type": "Pass", "Parameters": {"recorded.$": "$.room"}, "End": True},
    },
}


def nest(suffix: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": START + suffix,
        "Parameters": {
            "StateMachineArn": ARN.format("child"),
            "Input": {"room.$": "$.room", "wait.$": "$.wait"},
        },
        "End": True,
    }


PARENT: dict[str, Any] = {
    "StartAt": "Which",
    "States": {
        "Which": {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.json", "IsPresent": True},
                        {"Variable": "$.json", "BooleanEquals": True},
                    ],
                    "Next": "Sync2",
                }
            ],
            "Default": "Sync",
        },
        "Sync": nest(".sync"),
        "Sync2": nest(".sync:2"),
    },
}


async def nested_daemon(
    tmp_path: Path, classroom: ClassroomServer, env: dict[str, str] | None = None
) -> Stepd:
    """A daemon serving the parent and child machines from `tmp_path` (with `env` more
    environment), started."""
    (tmp_path / "child.asl.json").write_text(json.dumps(CHILD), encoding="utf-8")
    port = free_port()
    config = write_machine_config(
        tmp_path,
        port=port,
        base_url=classroom.base_url,
        machine="parent",
        definition=PARENT,
        endpoints={},
        sections='[[machines]]\nname = "child"\ndefinition = "child.asl.json"',
    )
    daemon = Stepd(config, port, tmp_path / "stepd.log")
    daemon.extra_env.update(env or {})
    await daemon.start()
    return daemon


async def running_child(daemon: Stepd, parent: str) -> str:
    """The name of the running child the parent's Task started, once it has."""
    client = sfn(daemon.url)
    found: list[str] = []

    async def started() -> bool:
        listed = await asyncio.to_thread(
            client.list_executions, stateMachineArn=ARN.format("child"), statusFilter="RUNNING"
        )
        found[:] = [e["name"] for e in listed["executions"]]
        return bool(found)

    await wait_until(
        started, timeout=SETTLE_SECONDS, what=f"{parent}'s child", explain=daemon.tail()
    )
    return found[0]


def start_parent(daemon: Stepd, home: Path, name: str, body: dict[str, Any]) -> str:
    """`aws stepfunctions start-execution` of the parent machine; the execution's ARN."""
    ran = aws_cli(
        daemon.url,
        home,
        "start-execution",
        "--state-machine-arn",
        ARN.format("parent"),
        "--name",
        name,
        "--input",
        json.dumps(body),
    )
    assert ran.returncode == 0, ran.stderr
    return str(json.loads(ran.stdout)["executionArn"])


async def closed(daemon: Stepd, name: str, machine: str = "parent") -> dict[str, Any]:
    async def done() -> bool:
        return (await daemon.describe_in(machine, name))["status"] != "RUNNING"

    await wait_until(done, timeout=SETTLE_SECONDS, what=f"{name} to close", explain=daemon.tail())
    return await daemon.describe_in(machine, name)


async def test_a_sync_parent_survives_a_sigkill_while_its_child_waits(
    tmp_path: Path, classroom: ClassroomServer
) -> None:
    """The daemon is killed while the child waits; after the restart the child ends and the
    parent succeeds with the child's DescribeExecution answer (AWS's names, Output as JSON
    text); DescribeExecution and the pages link the two."""
    daemon = await nested_daemon(tmp_path, classroom)
    try:
        client = sfn(daemon.url)
        body = json.dumps({"room": "blue", "wait": CHILD_WAIT_SECONDS})
        await asyncio.to_thread(
            client.start_execution, stateMachineArn=ARN.format("parent"), name="p1", input=body
        )
        child = await running_child(daemon, "p1")
        assert (await daemon.describe_in("child", child))["status"] == "RUNNING"
        daemon.kill()
        await daemon.start()
        parent = await closed(daemon, "p1")
        assert parent["status"] == "SUCCEEDED", parent
        result = json.loads(parent["output"])
        assert (result["Name"], result["Status"]) == (child, "SUCCEEDED")
        assert json.loads(result["Output"]) == {"recorded": "blue"}
        described = await daemon.describe_in("child", child)
        assert described["stepd"]["parentExecutionArn"] == parent["executionArn"]
        async with httpx.AsyncClient(trust_env=False) as web:
            parent_page = (await web.get(f"{daemon.url}/ui/executions/parent/p1")).text
            child_page = (await web.get(f"{daemon.url}/ui/executions/child/{child}")).text
        assert f"/ui/executions/child/{child}" in parent_page
        assert "/ui/executions/parent/p1" in child_page
    finally:
        daemon.cleanup()


async def test_the_aws_cli_runs_a_sync2_parent_and_stopping_a_parent_stops_its_child(
    tmp_path: Path, classroom: ClassroomServer
) -> None:
    """`.sync:2` gives the child's Output as JSON; stop-execution of a parent whose child
    waits stops the child too."""
    daemon = await nested_daemon(tmp_path, classroom)
    try:
        arn = start_parent(daemon, tmp_path, "p2", {"room": "red", "wait": 0, "json": True})
        result = json.loads((await closed(daemon, "p2"))["output"])
        assert result["Output"] == {"recorded": "red"}
        assert result["Input"] == {"room": "red", "wait": 0}

        arn = start_parent(daemon, tmp_path, "p3", {"room": "green", "wait": 600})
        child_name = await running_child(daemon, "p3")
        stopped = aws_cli(
            daemon.url,
            tmp_path,
            "stop-execution",
            "--execution-arn",
            arn,
        )
        assert stopped.returncode == 0, stopped.stderr
        child = await closed(daemon, child_name, machine="child")
        assert child["status"] == "ABORTED"
    finally:
        daemon.cleanup()
