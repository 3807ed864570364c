"""A retried Task through the real daemon: each attempt's body is built again (its
`$$.State.RetryCount`), every attempt carries the state entry's one Idempotency-Key, and the
history shows each attempt's own input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.integration.harness import Stepd, write_machine_config

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

DONE_SECONDS = 30.0
DEFINITION = {
    "StartAt": "Deliver",
    "States": {
        "Deliver": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:deliver",
            "Parameters": {"room.$": "$.room", "attempt.$": "$$.State.RetryCount"},
            "Retry": [
                {
                    "ErrorEquals": ["States.Http.StatusCode.503"],
                    "IntervalSeconds": 1,
                    "BackoffRate": 1,
                }
            ],
            "ResultPath": None,
            "End": True,
        }
    },
}


async def test_each_retry_sends_its_own_retry_count_with_one_key(
    tmp_path: Path, classroom: ClassroomServer
):
    """Two 503s, then success: the server gets attempts 0, 1, 2 with one Idempotency-Key, and
    each LambdaFunctionScheduled event holds what its attempt sent."""
    port = free_port()
    config = write_machine_config(
        tmp_path,
        port=port,
        base_url=classroom.base_url,
        machine="deliver",
        definition=DEFINITION,
        endpoints={"Deliver": "/deliver"},
    )
    stepd = Stepd(config, port, tmp_path / "stepd.log")
    classroom.fail_next("/deliver", status=503, times=2)
    try:
        await stepd.start()
        request = {"stateMachineArn": "deliver", "name": "c1", "input": '{"room": "B12"}'}
        await stepd.ok("StartExecution", request)
        async with asyncio.timeout(DONE_SECONDS):
            while (await stepd.describe_in("deliver", "c1"))["status"] == "RUNNING":
                await asyncio.sleep(0.1)
        assert (await stepd.describe_in("deliver", "c1"))["status"] == "SUCCEEDED"
        records = list(classroom.records)
        assert [r.body for r in records] == [{"room": "B12", "attempt": n} for n in range(3)]
        assert len({r.idempotency_key for r in records}) == 1
        events = await stepd.history_in("deliver", "c1")
        scheduled = [
            json.loads(e["lambdaFunctionScheduledEventDetails"]["input"])
            for e in events
            if e["type"] == "LambdaFunctionScheduled"
        ]
        assert scheduled == [{"room": "B12", "attempt": n} for n in range(3)]
    finally:
        stepd.cleanup()
