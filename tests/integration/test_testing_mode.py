"""Testing a definition in seconds through the real daemon: the shipped classroom machine runs
end to end with a time scale and mocked task results (AWS Step Functions Local's
MockConfigFile, the test case named after the machine's ARN), driven by boto3 and the AWS CLI;
the same config without `[testing] enabled = true` refuses a time scale and a test case."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from botocore.exceptions import ClientError
from tests.integration.clients import aws_cli, sfn
from tests.integration.harness import Stepd, rfc3339, run_cli, wait_until, write_machine_config

from stepd.testing import free_port

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "classroom.asl.yaml"
ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:classroom"
TIME_SCALE = 10_000  # an hour-long class in 0.36 s
END_TO_END_SECONDS = 5.0  # the bar: the classroom machine runs end to end within this
ENDPOINTS = {
    "StartRecording": "/recording/start",
    "SendLivePing": "/recording/ping",
    "StopRecording": "/recording/stop",
    "StopAfterFailure": "/recording/stop",
}
MOCKS = {
    "StateMachines": {
        "classroom": {
            "TestCases": {
                "HappyPath": {
                    "StartRecording": "Recorded",
                    "SendLivePing": "Pinged",
                    "StopRecording": "Stopped",
                },
                "FlakyStart": {
                    "StartRecording": "FailsTwiceThenRecords",
                    "SendLivePing": "Pinged",
                    "StopRecording": "Stopped",
                },
                "ServerBroken": {
                    "StartRecording": "Broken",
                    "StopAfterFailure": "Stopped",
                },
            }
        }
    },
    "MockedResponses": {
        "Recorded": {"0": {"Return": {"recordingId": "r-1"}}},
        "Pinged": {"0": {"Return": {"live": True}}},
        "Stopped": {"0": {"Return": {"stopped": True}}},
        "FailsTwiceThenRecords": {
            "0-1": {"Throw": {"Error": "States.TaskFailed", "Cause": "the recorder is busy"}},
            "2": {"Return": {"recordingId": "r-2"}},
        },
        "Broken": {"0": {"Throw": {"Error": "Recorder.Broken", "Cause": "no camera"}}},
    },
}


def write_testing_config(folder: Path, port: int, *, testing: bool) -> Path:
    """The shipped classroom machine, its tasks sent to a port nobody listens on (a call that
    is not mocked fails), with a time scale, and `[testing]` on or off."""
    (folder / "mocks.json").write_text(json.dumps(MOCKS), encoding="utf-8")
    return write_machine_config(
        folder,
        port=port,
        base_url=f"http://127.0.0.1:{free_port()}",
        machine="classroom",
        definition=yaml.safe_load(SHIPPED.read_text(encoding="utf-8")),
        endpoints=ENDPOINTS,
        machine_settings=f"time_scale = {TIME_SCALE}",
        sections='[testing]\nenabled = true\nmock_config = "mocks.json"' if testing else "",
    )


@pytest.fixture
async def tested(tmp_path: Path):
    port = free_port()
    daemon = Stepd(write_testing_config(tmp_path, port, testing=True), port, tmp_path / "d.log")
    await daemon.start()
    yield daemon
    daemon.cleanup()


def an_hour_long_class() -> str:
    now = time.time()
    return json.dumps({"start": rfc3339(now + 60), "end": rfc3339(now + 3660)})


def with_time_scale(scale: float) -> Callable[..., None]:
    """A botocore hook adding `timeScale` to a StartExecution request's JSON body."""

    def add(request: Any, **_: Any) -> None:
        body = json.loads(request.data or b"{}")
        request.data = json.dumps({**body, "timeScale": scale}).encode()

    return add


async def finished(daemon: Stepd, name: str) -> dict:
    async def closed() -> bool:
        return (await daemon.describe(name))["status"] != "RUNNING"

    await wait_until(closed, timeout=30, what=f"{name} to close", explain=daemon.tail())
    return await daemon.describe(name)


async def test_classroom_runs_end_to_end_in_seconds_with_mocked_tasks(
    tested: Stepd, figures: Callable[[str], None]
) -> None:
    """An hour-long class, an hour away from its end, runs through every state in under 5 s:
    waits shortened by the machine's time scale, every task answered from the test case; the
    scale and the test case are shown by DescribeExecution and on the web page."""
    client = sfn(tested.url)
    await asyncio.to_thread(
        client.start_execution,
        stateMachineArn=f"{ARN}#HappyPath",
        name="class-1",
        input=an_hour_long_class(),
    )
    described = await finished(tested, "class-1")
    took = described["stopDate"] - described["startDate"]  # as the daemon timed it
    figures(f"an hour-long class at time scale {TIME_SCALE}, mocked: {took:.2f} s end to end")
    assert described["status"] == "SUCCEEDED", described
    assert took < END_TO_END_SECONDS
    assert described["stepd"]["timeScale"] == TIME_SCALE
    assert described["stepd"]["testCase"] == "HappyPath"
    history = await tested.history("class-1")
    results = [
        json.loads(e["lambdaFunctionSucceededEventDetails"]["output"])
        for e in history
        if e["type"] == "LambdaFunctionSucceeded"
    ]
    assert results == [{"recordingId": "r-1"}, {"live": True}, {"stopped": True}]
    async with httpx.AsyncClient(trust_env=False) as web:
        page = await web.get(f"{tested.url}/ui/executions/classroom/class-1")
    assert "time scale" in page.text
    assert "HappyPath" in page.text


async def test_mocked_errors_are_retried_and_caught_by_attempt(tested: Stepd) -> None:
    """Mocked answers go by attempt ("0-1" fails twice, "2" succeeds: the state's Retry gets
    there); a mocked error that is not retried is caught as the definition says."""
    client = sfn(tested.url)
    for name, case in (("flaky", "FlakyStart"), ("broken", "ServerBroken")):
        await asyncio.to_thread(
            client.start_execution,
            stateMachineArn=f"{ARN}#{case}",
            name=name,
            input=an_hour_long_class(),
        )
    flaky = await finished(tested, "flaky")
    assert flaky["status"] == "SUCCEEDED", flaky
    history = await tested.history("flaky")
    assert [e["type"] for e in history].count("LambdaFunctionFailed") == 2
    broken = await finished(tested, "broken")
    assert (broken["status"], broken["error"]) == ("FAILED", "Recorder.Broken")


async def test_aws_cli_starts_a_test_case_and_unknown_cases_are_refused(
    tested: Stepd, tmp_path: Path
) -> None:
    """The AWS CLI names the test case as AWS's emulator takes it; a test case the mock
    config does not have is refused, saying so."""
    ran = aws_cli(
        tested.url,
        tmp_path,
        "start-execution",
        "--state-machine-arn",
        f"{ARN}#HappyPath",
        "--name",
        "cli",
        "--input",
        an_hour_long_class(),
    )
    assert ran.returncode == 0, ran.stderr
    assert (await finished(tested, "cli"))["status"] == "SUCCEEDED"
    ran = aws_cli(
        tested.url,
        tmp_path,
        "start-execution",
        "--state-machine-arn",
        f"{ARN}#NoSuchCase",
        "--name",
        "nope",
    )
    assert ran.returncode != 0
    assert "ValidationException" in ran.stderr
    assert "NoSuchCase" in ran.stderr


async def test_without_the_test_switch_a_time_scale_is_refused(tmp_path: Path) -> None:
    """The same config without `[testing] enabled = true`: `stepd check` and the daemon
    refuse the machine's time scale; without it, the daemon refuses a per-execution time
    scale and a test case with a clear error."""
    port = free_port()
    config = write_testing_config(tmp_path, port, testing=False)
    checked = run_cli("check", "-c", config)
    assert checked.returncode == 78
    assert "time_scale: a time scale is for tests only" in checked.stdout
    assert "[testing] enabled = true" in checked.stdout
    refused = run_cli("run", "-c", config)
    assert refused.returncode == 78
    assert "[testing] enabled = true" in refused.stderr + refused.stdout

    config.write_text(config.read_text().replace("time_scale = 10000\n", ""))
    daemon = Stepd(config, port, tmp_path / "d.log")
    await daemon.start()
    try:
        client = sfn(daemon.url)
        with pytest.raises(ClientError) as case:
            await asyncio.to_thread(
                client.start_execution, stateMachineArn=f"{ARN}#HappyPath", name="x"
            )
        assert case.value.response["Error"]["Code"] == "ValidationException"
        assert "testing is not enabled" in case.value.response["Error"]["Message"]
        # boto3 with stepd's own StartExecution field `timeScale` (added to the request body,
        # as a user's CI would with a botocore event hook)
        scaled = sfn(daemon.url)
        scaled.meta.events.register("before-sign.states.StartExecution", with_time_scale(100))
        with pytest.raises(ClientError) as scale:
            await asyncio.to_thread(
                scaled.start_execution,
                stateMachineArn=ARN,
                name="scaled",
                input=an_hour_long_class(),
            )
        assert scale.value.response["Error"]["Code"] == "ValidationException"
        assert "time scale" in scale.value.response["Error"]["Message"]
        # the AWS CLI naming a test case, as AWS's emulator takes it
        cli = aws_cli(
            daemon.url,
            tmp_path,
            "start-execution",
            "--state-machine-arn",
            f"{ARN}#HappyPath",
            "--name",
            "cli",
        )
        assert cli.returncode != 0
        assert "ValidationException" in cli.stderr
        assert "testing is not enabled" in cli.stderr
        listed = await asyncio.to_thread(client.list_executions, stateMachineArn=ARN)
        assert listed["executions"] == []  # nothing refused was started
        ran = run_cli(
            "start",
            "classroom",
            "y",
            "--time-scale",
            "100",
            "--api",
            daemon.url,
            "--input",
            an_hour_long_class(),
        )
        assert ran.returncode != 0
        assert "[testing] enabled = true" in ran.stderr
    finally:
        daemon.cleanup()
