"""DescribeStateMachineForExecution answers the definition an execution runs: the one it
started with, also after a reload changed its machine (boto3 against the real daemon)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import time

import boto3
import pytest
from tests.integration.harness import DEFINITION, Stepd, rfc3339, wait_until

from stepd.classroom import ClassroomServer

RELOAD_SECONDS = 20.0


def client(daemon: Stepd):
    return boto3.client(
        "stepfunctions",
        endpoint_url=daemon.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret-not-a-secret",
    )


async def test_an_execution_keeps_the_definition_it_started_with(
    stepd: Stepd, classroom: ClassroomServer
) -> None:
    """After the machine's definition changes and the config is reloaded, the execution that
    was running still describes (and runs) its own definition; a new one gets the new."""
    await stepd.start()
    start = math.ceil(time.time()) + 3600
    body = {"classroom": "old", "start": rfc3339(start), "end": rfc3339(start + 60)}
    sfn = client(stepd)
    old = await asyncio.to_thread(
        sfn.start_execution, stateMachineArn="classroom", name="old", input=json.dumps(body)
    )
    changed = json.loads(json.dumps(DEFINITION))
    changed["Comment"] = "changed by a reload"
    (stepd.config.parent / "classroom.asl.json").write_text(json.dumps(changed), encoding="utf-8")
    assert stepd.process is not None
    os.kill(stepd.process.pid, signal.SIGHUP)

    async def reloaded() -> bool:
        return bool(stepd.log_events("config.reloaded"))

    await wait_until(reloaded, timeout=RELOAD_SECONDS, what="the reload", explain=stepd.tail())
    new = await asyncio.to_thread(
        sfn.start_execution, stateMachineArn="classroom", name="new", input=json.dumps(body)
    )
    for arn, comment in (
        (old["executionArn"], DEFINITION["Comment"]),
        (new["executionArn"], changed["Comment"]),
    ):
        described = await asyncio.to_thread(
            sfn.describe_state_machine_for_execution, executionArn=arn
        )
        assert json.loads(described["definition"])["Comment"] == comment
        assert described["name"] == "classroom"
        assert described["stateMachineArn"].endswith(":stateMachine:classroom")
        assert described["roleArn"].startswith("arn:aws:iam::")
        assert described["loggingConfiguration"]["level"] == "OFF"
        assert described["tracingConfiguration"] == {"enabled": False}
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        await asyncio.to_thread(
            sfn.describe_state_machine_for_execution,
            executionArn=old["executionArn"].replace(":old", ":missing"),
        )
