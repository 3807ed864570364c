"""A `.waitForTaskToken` task's token survives SIGKILL: the real daemon, killed after its call
went out and before the callback, restarted on its database, completes the task with the
callback; the call is sent again only when it was in flight at the kill, with its key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.integration.harness import Stepd, run_cli, write_machine_config

from stepd.classroom import ClassroomServer, Record
from stepd.testing import free_port

DONE_SECONDS = 30.0
ARRIVAL_SECONDS = 10.0
DEFINITION = {
    "StartAt": "Ask",
    "States": {
        "Ask": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"token.$": "$$.Task.Token", "room.$": "$.room"},
            "TimeoutSeconds": 600,
            "ResultPath": "$.answer",
            "End": True,
        }
    },
}


def _config(folder: Path, base_url: str, port: int) -> Path:
    return write_machine_config(
        folder,
        port=port,
        base_url=base_url,
        machine="ask",
        definition=DEFINITION,
        endpoints={"Ask": "/ask"},
    )


async def _calls(classroom: ClassroomServer, count: int) -> list[Record]:
    async with asyncio.timeout(ARRIVAL_SECONDS):
        while len(classroom.records) < count:
            await classroom.wait_for(count)
    return list(classroom.records)


async def _waiting_for_callback(stepd: Stepd, name: str) -> None:
    """Until the call's answer is committed and the task waits for its callback."""
    async with asyncio.timeout(ARRIVAL_SECONDS):
        while True:
            described = await stepd.describe_in("ask", name)
            assert described["status"] == "RUNNING", stepd.tail()
            if stepd.log_events("task.awaiting_callback"):
                return
            await asyncio.sleep(0.05)


async def test_kill_while_waiting_for_the_callback(tmp_path: Path, classroom: ClassroomServer):
    """SIGKILL after the call was answered: after the restart the token still completes the
    task (here through `stepd task-success`), and the call is not made again."""
    port = free_port()
    config = _config(tmp_path, classroom.base_url, port)
    stepd = Stepd(config, port, tmp_path / "stepd.log")
    try:
        await stepd.start()
        await stepd.ok(
            "StartExecution",
            {"stateMachineArn": "ask", "name": "c1", "input": json.dumps({"room": "r1"})},
        )
        [call] = await _calls(classroom, 1)
        token = call.body["token"]
        await _waiting_for_callback(stepd, "c1")

        stepd.kill()
        await stepd.start()

        done = run_cli("task-success", token, "--output", '{"recorded": true}', "-c", config)
        assert done.returncode == 0, done.stderr
        async with asyncio.timeout(DONE_SECONDS):
            while (described := await stepd.describe_in("ask", "c1"))["status"] == "RUNNING":
                await asyncio.sleep(0.05)
        assert described["status"] == "SUCCEEDED", stepd.tail()
        assert json.loads(described["output"]) == {"room": "r1", "answer": {"recorded": True}}
        assert len(classroom.records) == 1
        again = run_cli("task-success", token, "--output", "{}", "-c", config)
        assert again.returncode != 0
        assert "TaskTimedOut" in again.stderr
    finally:
        stepd.cleanup()


async def test_kill_during_the_call_resends_it_then_the_callback_completes_it(
    tmp_path: Path, classroom: ClassroomServer
):
    """SIGKILL while the call is unanswered: it is sent again once, with the same key and
    token; SendTaskSuccess then completes the task."""
    port = free_port()
    stepd = Stepd(_config(tmp_path, classroom.base_url, port), port, tmp_path / "stepd.log")
    classroom.fail_next("/ask", status=200, delay=3)  # processed, answered 3 s late
    try:
        await stepd.start()
        await stepd.ok(
            "StartExecution",
            {"stateMachineArn": "ask", "name": "c2", "input": json.dumps({"room": "r2"})},
        )
        await _calls(classroom, 1)
        stepd.kill()  # the answer is still 3 s away
        await stepd.start()
        first, resent = await _calls(classroom, 2)
        assert first.idempotency_key == resent.idempotency_key
        assert first.body == resent.body
        assert (resent.duplicate, resent.payload_mismatch) == (True, False)
        await _waiting_for_callback(stepd, "c2")
        await stepd.ok("SendTaskSuccess", {"taskToken": first.body["token"], "output": '"ok"'})
        async with asyncio.timeout(DONE_SECONDS):
            while (described := await stepd.describe_in("ask", "c2"))["status"] == "RUNNING":
                await asyncio.sleep(0.05)
        assert described["status"] == "SUCCEEDED", stepd.tail()
        assert json.loads(described["output"]) == {"room": "r2", "answer": "ok"}
        assert len(classroom.records) == 2
    finally:
        stepd.cleanup()
