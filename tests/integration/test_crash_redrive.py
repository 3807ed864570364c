"""A redriven execution loses nothing across SIGKILL: the redrive is one commit, and its
task call is re-sent after a restart only if it was in flight, with the same key."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

from tests.integration.harness import Stepd, execution_arn, write_machine_config

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

SLOW_ANSWER_SECONDS = 2.0  # the redriven calls stay in flight this long
DONE_SECONDS = 60.0
ITEMS = 3
DEFINITION = {
    "StartAt": "Fan",
    "States": {
        "Fan": {
            "Type": "Map",
            "MaxConcurrency": 1,
            "ItemProcessor": {
                "StartAt": "Deliver",
                "States": {
                    "Deliver": {
                        "Type": "Task",
                        "Resource": "arn:aws:lambda:us-east-1:1:function:deliver",
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    },
}


def _config(folder: Path, base_url: str, port: int) -> Path:
    return write_machine_config(
        folder,
        port=port,
        base_url=base_url,
        machine="fan",
        definition=DEFINITION,
        endpoints={"Deliver": "/deliver"},
    )


async def _status(stepd: Stepd, wanted: str) -> dict[str, object]:
    async with asyncio.timeout(DONE_SECONDS):
        while (described := await stepd.describe_in("fan", "r1"))["status"] != wanted:
            await asyncio.sleep(0.1)
    return described


async def test_a_redrive_killed_right_after_its_answer_and_during_its_call_completes(
    tmp_path: Path, classroom: ClassroomServer
):
    """SIGKILL right after RedriveExecution answered, then again while the redriven call is in
    flight: after each restart the execution goes on, the succeeded iteration is never called
    again, and the redriven call arrives again only with its one (new) key."""
    port = free_port()
    stepd = Stepd(_config(tmp_path, classroom.base_url, port), port, tmp_path / "stepd.log")
    classroom.fail_next("/deliver", status=200)  # item 0 succeeds
    classroom.fail_next("/deliver", status=500)  # item 1 fails: the Map and execution fail
    try:
        await stepd.start()
        await stepd.ok(
            "StartExecution",
            {
                "stateMachineArn": "fan",
                "name": "r1",
                "input": json.dumps([{"item": n} for n in range(ITEMS)]),
            },
        )
        await _status(stepd, "FAILED")
        failed_key = classroom.records[1].idempotency_key
        classroom.fail_next("/deliver", status=200, delay=SLOW_ANSWER_SECONDS, times=10)
        redriven = await stepd.ok(
            "RedriveExecution",
            {"executionArn": execution_arn("r1", "fan")},
        )
        stepd.kill()  # right after the answer
        await stepd.start()
        after_restart = await stepd.describe_in("fan", "r1")
        async with asyncio.timeout(DONE_SECONDS):
            while not any(
                r.body == {"item": 1} and r.idempotency_key != failed_key for r in classroom.records
            ):
                await classroom.wait_for(len(classroom.records) + 1)
        stepd.kill()  # during the redriven call
        await stepd.start()
        described = await _status(stepd, "SUCCEEDED")
        history = await stepd.history_in("fan", "r1")
    finally:
        stepd.cleanup()
    assert (after_restart["status"], after_restart["redriveCount"]) == ("RUNNING", 1)
    assert after_restart["redriveDate"] == redriven["redriveDate"]
    assert (described["redriveCount"], len(json.loads(str(described["output"])))) == (1, ITEMS)
    keys: defaultdict[int, list[str | None]] = defaultdict(list)
    for record in classroom.records:
        keys[record.body["item"]].append(record.idempotency_key)
    assert len(keys[0]) == 1  # succeeded before the redrive: never called again
    first, *again = keys[1]
    assert first == failed_key
    assert len(again) >= 2  # in flight at the second kill: sent again
    assert len(set(again)) == 1
    assert again[0] != failed_key
    assert len(keys[2]) == 1  # started after the last restart: sent once
    types = [e["type"] for e in history]
    assert types.count("ExecutionRedriven") == 1
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
