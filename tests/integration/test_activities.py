"""Activities through the real daemon: the AWS CLI creates, describes and lists an activity; a
worker process polling GetActivityTask with boto3 does a classroom step; a worker killed
mid-task leaves the task to time out by its heartbeat, and the state's Retry gives it to the
next worker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.clients import aws_cli, sfn
from tests.integration.harness import (
    DEFINITION,
    ENDPOINTS,
    PING_PATH,
    STOP_PATH,
    Stepd,
    rfc3339,
    wait_until,
    write_machine_config,
)
from tests.postgres_server import PostgresServer

from stepd.classroom import ClassroomServer
from stepd.testing import free_port

WORKER = Path(__file__).with_name("activity_worker.py")
ACTIVITY = "arn:aws:states:us-east-1:123456789012:activity:recorder"
MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:classroom"
HEARTBEAT_SECONDS = 2
SETTLE_SECONDS = 40.0


def with_recorder_activity(**state: Any) -> dict[str, Any]:
    """The test classroom machine whose StartRecording is done by the `recorder` activity."""
    definition = json.loads(json.dumps(DEFINITION))
    definition["States"]["StartRecording"] = {
        **definition["States"]["StartRecording"],
        "Resource": ACTIVITY,
        "Parameters": {"room.$": "$.room", "step": "start"},
        "ResultPath": "$.recording",
        **state,
    }
    return definition


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def worker(workers: list[subprocess.Popen[str]], url: str, mode: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(WORKER), url, ACTIVITY, mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    workers.append(process)
    return process


async def started_daemon(
    tmp_path: Path, classroom: ClassroomServer, definition: dict, *, store_url: str | None = None
) -> Stepd:
    """A daemon in `tmp_path` running `definition`; on the PostgreSQL database `store_url`
    when given (a node of several), else on a SQLite file."""
    port = free_port()
    endpoints = {k: v for k, v in ENDPOINTS.items() if k != "StartRecording"}
    config = write_machine_config(
        tmp_path,
        port=port,
        base_url=classroom.base_url,
        machine="classroom",
        definition=definition,
        endpoints=endpoints,
    )
    daemon = Stepd(config, port, tmp_path / "stepd.log")
    if store_url is not None:
        daemon.extra_env["STEPD_STORE__URL"] = store_url
    await daemon.start()
    return daemon


async def closed(daemon: Stepd, name: str) -> dict[str, Any]:
    async def done() -> bool:
        return (await daemon.describe(name))["status"] != "RUNNING"

    await wait_until(done, timeout=SETTLE_SECONDS, what=f"{name} to close", explain=daemon.tail())
    return await daemon.describe(name)


def a_class(seconds: float) -> str:
    now = time.time()
    return json.dumps({"room": "blue", "start": rfc3339(now + 1), "end": rfc3339(now + seconds)})


async def test_a_worker_process_does_a_classroom_step(
    tmp_path: Path, classroom: ClassroomServer, workers: list[subprocess.Popen[str]]
) -> None:
    """The AWS CLI creates the activity (again: the same ARN) and finds it; a worker polling
    GetActivityTask gets the state's input, its SendTaskSuccess is the step's result, and the
    execution goes on to ping and stop the recording."""
    daemon = await started_daemon(tmp_path, classroom, with_recorder_activity(HeartbeatSeconds=30))
    try:
        for _ in range(2):
            ran = aws_cli(daemon.url, tmp_path, "create-activity", "--name", "recorder")
            assert ran.returncode == 0, ran.stderr
            assert json.loads(ran.stdout)["activityArn"] == ACTIVITY
        listed = json.loads(aws_cli(daemon.url, tmp_path, "list-activities").stdout)
        assert [a["name"] for a in listed["activities"]] == ["recorder"]
        described = aws_cli(daemon.url, tmp_path, "describe-activity", "--activity-arn", ACTIVITY)
        assert json.loads(described.stdout)["name"] == "recorder"

        process = worker(workers, daemon.url, "complete")
        client = sfn(daemon.url)
        await asyncio.to_thread(
            client.start_execution, stateMachineArn=MACHINE_ARN, name="c1", input=a_class(5)
        )
        described = await closed(daemon, "c1")
        assert described["status"] == "SUCCEEDED", described
        output = json.loads(described["output"])
        assert output["recording"] == {
            "worker": process.pid,
            "input": {"room": "blue", "step": "start"},
        }
        assert await asyncio.to_thread(process.wait, 10) == 0
        # the history AWS records for an activity Task, read back with boto3
        events = (
            await asyncio.to_thread(
                client.get_execution_history,
                executionArn=described["executionArn"],
            )
        )["events"]
        activity = [e for e in events if e["type"].startswith("Activity")]
        assert [e["type"] for e in activity] == [
            "ActivityScheduled",
            "ActivityStarted",
            "ActivitySucceeded",
        ]
        scheduled = activity[0]["activityScheduledEventDetails"]
        assert (scheduled["resource"], scheduled["heartbeatInSeconds"]) == (ACTIVITY, 30)
        assert json.loads(scheduled["input"]) == {"room": "blue", "step": "start"}
        started = activity[1]["activityStartedEventDetails"]
        assert started == {"workerName": f"worker-{process.pid}"}
        succeeded = activity[2]["activitySucceededEventDetails"]
        assert json.loads(succeeded["output"])["worker"] == process.pid
        paths = [r.path for r in classroom.records]
        assert PING_PATH in paths
        assert STOP_PATH in paths
    finally:
        daemon.cleanup()


async def test_a_worker_killed_mid_task_leads_to_a_retry_by_heartbeat_timeout(
    tmp_path: Path, classroom: ClassroomServer, workers: list[subprocess.Popen[str]]
) -> None:
    """The first worker takes the task and is killed; no heartbeat comes, the task times out
    after HeartbeatSeconds (reported as States.Timeout, as AWS does), the state's Retry naming
    States.HeartbeatTimeout queues it again, and a second worker completes it."""
    retry = [{"ErrorEquals": ["States.HeartbeatTimeout"], "IntervalSeconds": 1, "MaxAttempts": 2}]
    definition = with_recorder_activity(HeartbeatSeconds=HEARTBEAT_SECONDS, Retry=retry)
    daemon = await started_daemon(tmp_path, classroom, definition)
    try:
        ran = aws_cli(daemon.url, tmp_path, "create-activity", "--name", "recorder")
        assert ran.returncode == 0, ran.stderr
        doomed = worker(workers, daemon.url, "hang")
        client = sfn(daemon.url)
        await asyncio.to_thread(
            client.start_execution, stateMachineArn=MACHINE_ARN, name="c2", input=a_class(12)
        )
        assert doomed.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(doomed.stdout.readline), SETTLE_SECONDS)
        assert line.startswith("taken ")
        doomed.kill()
        doomed.wait()
        rescuer = worker(workers, daemon.url, "complete")
        described = await closed(daemon, "c2")
        assert described["status"] == "SUCCEEDED", described
        assert json.loads(described["output"])["recording"]["worker"] == rescuer.pid
        history = await daemon.history("c2")
        timed_out = [e for e in history if e["type"] == "ActivityTimedOut"]
        assert [e["activityTimedOutEventDetails"]["error"] for e in timed_out] == ["States.Timeout"]
        taken_at = next(e["timestamp"] for e in history if e["type"] == "ActivityStarted")
        assert timed_out[0]["timestamp"] >= taken_at + HEARTBEAT_SECONDS - 0.005
        # StartRecording twice (the killed worker's attempt, the retry), each started by its
        # worker; the ping and the stop are Lambda tasks
        types = [e["type"] for e in history]
        assert (types.count("ActivityScheduled"), types.count("LambdaFunctionScheduled")) == (2, 2)
        assert "TaskScheduled" not in types
        workers_named = [
            e["activityStartedEventDetails"]["workerName"]
            for e in history
            if e["type"] == "ActivityStarted"
        ]
        assert workers_named == [f"worker-{doomed.pid}", f"worker-{rescuer.pid}"]
    finally:
        daemon.cleanup()


async def test_on_two_postgresql_nodes_a_task_queued_by_one_is_done_through_the_other(
    tmp_path: Path,
    classroom: ClassroomServer,
    workers: list[subprocess.Popen[str]],
    postgres: PostgresServer,
) -> None:
    """Two nodes on one database: the activity created through one is listed by the other,
    an execution started through the first queues its task in the database, and a worker
    polling only the second node gets it and settles it there."""
    url = await asyncio.to_thread(postgres.new_database)
    nodes: list[Stepd] = []
    try:
        for n in (1, 2):
            folder = tmp_path / f"node{n}"
            folder.mkdir()
            definition = with_recorder_activity(HeartbeatSeconds=30)
            nodes.append(await started_daemon(folder, classroom, definition, store_url=url))
        first, second = nodes
        ran = aws_cli(first.url, tmp_path, "create-activity", "--name", "recorder")
        assert ran.returncode == 0, ran.stderr
        listed = json.loads(aws_cli(second.url, tmp_path, "list-activities").stdout)
        assert [a["name"] for a in listed["activities"]] == ["recorder"]
        process = worker(workers, second.url, "complete")
        await asyncio.to_thread(
            sfn(first.url).start_execution,
            stateMachineArn=MACHINE_ARN,
            name="c3",
            input=a_class(5),
        )
        described = await closed(second, "c3")
        assert described["status"] == "SUCCEEDED", described
        assert json.loads(described["output"])["recording"]["worker"] == process.pid
        assert await asyncio.to_thread(process.wait, 10) == 0
    finally:
        for node in nodes:
            node.cleanup()
