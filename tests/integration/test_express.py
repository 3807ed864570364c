"""EXPRESS machines through the real daemon: StartSyncExecution (boto3 and the AWS CLI) runs
the execution to its end within the request, calling the classroom server, and answers as AWS
does; nothing of it is kept; a STANDARD machine refuses it, and `stepd check` refuses an
EXPRESS machine that would wait for a callback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.integration.clients import aws_cli, sfn
from tests.integration.harness import PING_PATH, Stepd, run_cli, write_machine_config

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:{}"
QUICK: dict[str, Any] = {
    "StartAt": "Breathe",
    "States": {
        "Breathe": {"Type": "Wait", "Seconds": 1, "Next": "Ping"},
        "Ping": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:SendLivePing",
            "ResultPath": None,
            "Next": "Closed?",
        },
        "Closed?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.room", "StringEquals": "closed", "Next": "Closed"}],
            "Default": "Done",
        },
        "Closed": {"Type": "Fail", "Error": "Room.Closed", "Cause": "nobody there"},
        "Done": {
            "Type": "Pass",
            "Parameters": {"pinged.$": "$.room", "id.$": "$$.Execution.Id"},
            "End": True,
        },
    },
}
EXPRESS = 'type = "EXPRESS"'
STANDARD_MACHINE = """[[machines]]
name = "standard"
definition = "quick.asl.json"
[machines.endpoints]
Ping = "/recording/ping"
"""


@pytest.fixture
async def express(tmp_path: Path, classroom: ClassroomServer):
    (tmp_path / "quick.asl.json").write_text(json.dumps(QUICK), encoding="utf-8")
    port = free_port()
    config = write_machine_config(
        tmp_path,
        port=port,
        base_url=classroom.base_url,
        machine="quick",
        definition=QUICK,
        endpoints={"Ping": PING_PATH},
        machine_settings=EXPRESS,
        sections=STANDARD_MACHINE,
    )
    daemon = Stepd(config, port, tmp_path / "stepd.log")
    await daemon.start()
    yield daemon
    daemon.cleanup()


async def test_start_sync_execution_runs_to_the_end_within_the_request(
    express: Stepd, classroom: ClassroomServer, tmp_path: Path
) -> None:
    """boto3 gets the output (after the Wait and the call), a failure's error and cause; the
    AWS CLI too; no execution is kept; DescribeStateMachine says EXPRESS."""
    client = sfn(express.url)
    done = await asyncio.to_thread(
        client.start_sync_execution, stateMachineArn=ARN.format("quick"), input='{"room": "blue"}'
    )
    assert done["status"] == "SUCCEEDED", done
    # the execution's id in its context is the express ARN the answer gives, as on AWS
    assert json.loads(done["output"]) == {"pinged": "blue", "id": done["executionArn"]}
    assert done["executionArn"].startswith("arn:aws:states:us-east-1:123456789012:express:quick:")
    assert (done["stopDate"] - done["startDate"]).total_seconds() >= 1
    assert [r.path for r in classroom.records] == [PING_PATH]
    failed = await asyncio.to_thread(
        client.start_sync_execution, stateMachineArn=ARN.format("quick"), input='{"room": "closed"}'
    )
    assert (failed["status"], failed["error"], failed["cause"]) == (
        "FAILED",
        "Room.Closed",
        "nobody there",
    )
    ran = await asyncio.to_thread(  # the classroom server answers on this loop meanwhile
        aws_cli,
        express.url,
        tmp_path,
        "start-sync-execution",
        "--state-machine-arn",
        ARN.format("quick"),
        "--input",
        '{"room": "red"}',
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(json.loads(ran.stdout).get("output", "null"))["pinged"] == "red", ran.stdout
    listed = await asyncio.to_thread(client.list_executions, stateMachineArn=ARN.format("quick"))
    assert listed["executions"] == []
    described = await asyncio.to_thread(
        client.describe_state_machine, stateMachineArn=ARN.format("quick")
    )
    assert described["type"] == "EXPRESS"


async def test_a_standard_machine_refuses_start_sync_execution(express: Stepd) -> None:
    """As AWS does: StateMachineTypeNotSupported."""
    client = sfn(express.url)
    with pytest.raises(ClientError) as refused:
        await asyncio.to_thread(client.start_sync_execution, stateMachineArn=ARN.format("standard"))
    assert refused.value.response["Error"]["Code"] == "StateMachineTypeNotSupported"


def test_check_refuses_an_express_machine_that_waits_for_a_callback(tmp_path: Path) -> None:
    """An EXPRESS machine cannot wait for a callback, an activity or a .sync child."""
    waiting = json.loads(json.dumps(QUICK))
    waiting["States"]["Ping"]["Resource"] = "arn:aws:states:::lambda:invoke.waitForTaskToken"
    config = write_machine_config(
        tmp_path,
        port=free_port(),
        base_url="http://127.0.0.1:9",
        machine="quick",
        definition=waiting,
        endpoints={"Ping": PING_PATH},
        machine_settings=EXPRESS,
    )
    checked = run_cli("check", "-c", config)
    assert checked.returncode == 78
    assert "EXPRESS_UNSUPPORTED" in checked.stdout
