"""A definition written for AWS's Lambda integration (`arn:aws:states:::lambda:invoke`, as the
console and CDK write it) through the real daemon: the function's endpoint, mapped by the
function's name, gets the Payload, and a ResultSelector written for AWS reads the answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.integration.harness import Stepd, write_machine_config

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

DONE_SECONDS = 30.0
DEFINITION = {
    "StartAt": "Add",
    "States": {
        "Add": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {
                "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:adder:$LATEST",
                "Payload": {"x.$": "$.x"},
            },
            "ResultSelector": {"answer.$": "$.Payload", "status.$": "$.StatusCode"},
            "ResultPath": "$.added",
            "End": True,
        }
    },
}


async def test_a_lambda_invoke_task_runs_as_on_aws(tmp_path: Path, classroom: ClassroomServer):
    """The endpoint mapped to "adder" gets `{"x": 5}`; the state reads the function's answer
    under `Payload` and StatusCode 200."""
    port = free_port()
    config = write_machine_config(
        tmp_path,
        port=port,
        base_url=classroom.base_url,
        machine="math",
        definition=DEFINITION,
        endpoints={"adder": "/adder"},
    )
    stepd = Stepd(config, port, tmp_path / "stepd.log")
    try:
        await stepd.start()
        request = {"stateMachineArn": "math", "name": "m1", "input": '{"x": 5}'}
        await stepd.ok("StartExecution", request)
        async with asyncio.timeout(DONE_SECONDS):
            while (described := await stepd.describe_in("math", "m1"))["status"] == "RUNNING":
                await asyncio.sleep(0.1)
        assert described["status"] == "SUCCEEDED", described
        [record] = classroom.records
        assert (record.path, record.body) == ("/adder", {"x": 5})
        added = json.loads(described["output"])["added"]
        assert (added["status"], added["answer"]["ok"], added["answer"]["path"]) == (
            200,
            True,
            "/adder",
        )
    finally:
        stepd.cleanup()
