"""The classroom machine, driven by hand through enter and task_succeeded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.unit.asl.asl_support import context

from stepd.asl.decisions import CallTask, Fail, GoTo, Succeed, WaitUntil
from stepd.asl.interpreter import enter, start_state, task_succeeded

ARN = "arn:aws:lambda:ap-southeast-1:123456789012:function:consult-api-dev-"


def classroom(result_path: Any = None, *, keep_data: bool = True) -> dict[str, Any]:
    """The classroom machine; `keep_data=False` leaves out ResultPath as the seed did."""
    kept = {"ResultPath": result_path} if keep_data else {}
    return {
        "StartAt": "RecordingWait",
        "States": {
            "RecordingWait": {"Type": "Wait", "TimestampPath": "$.start", "Next": "StartRecording"},
            "StartRecording": {
                "Type": "Task",
                "Resource": ARN + "StartRecorder",
                "Next": "SendLivePingWait",
                **kept,
            },
            "SendLivePingWait": {"Type": "Wait", "Seconds": 60, "Next": "SendLivePing"},
            "SendLivePing": {
                "Type": "Task",
                "Resource": ARN + "SendLivePing",
                "Next": "StoppingWait",
                **kept,
            },
            "StoppingWait": {"Type": "Wait", "TimestampPath": "$.end", "Next": "StopRecording"},
            "StopRecording": {
                "Type": "Task",
                "Resource": ARN + "StopRecorder",
                "End": True,
                **kept,
            },
        },
    }


CREATED = datetime(2024, 8, 17, 9, 0, 0, 250000, tzinfo=UTC)
START = datetime(2024, 8, 18, 17, 0, tzinfo=UTC)
END = datetime(2024, 8, 18, 18, 0, tzinfo=UTC)
INPUT = {"start": "2024-08-18T17:00:00Z", "end": "2024-08-18T18:00:00Z"}


def test_classroom_machine_runs_start_ping_stop() -> None:
    """The shipped machine waits for start, records, pings a minute later, stops at end."""
    definition = classroom()
    steps: list[Any] = []

    name = start_state(definition)
    wait = enter(definition, name, INPUT, context(name, INPUT), CREATED)
    steps.append(wait)
    name, data = wait.then.next_state, wait.then.output

    start_call = enter(definition, name, data, context(name, INPUT), START)
    steps.append(start_call)
    after_start = task_succeeded(definition, name, data, {"recording": "on"}, context(name))
    steps.append(after_start)
    name, data = after_start.next_state, after_start.output

    ping_wait = enter(definition, name, data, context(name, INPUT), START)
    steps.append(ping_wait)
    name, data = ping_wait.then.next_state, ping_wait.then.output

    ping_call = enter(definition, name, data, context(name, INPUT), START)
    steps.append(ping_call)
    after_ping = task_succeeded(definition, name, data, {"ping": "ok"}, context(name))
    steps.append(after_ping)
    name, data = after_ping.next_state, after_ping.output

    stop_wait = enter(definition, name, data, context(name, INPUT), START)
    steps.append(stop_wait)
    name, data = stop_wait.then.next_state, stop_wait.then.output

    stop_call = enter(definition, name, data, context(name, INPUT), END)
    steps.append(stop_call)
    steps.append(task_succeeded(definition, name, data, {"recording": "off"}, context(name)))

    expected = [
        WaitUntil(until=START, then=GoTo(next_state="StartRecording", output=INPUT)),
        CallTask(resource=ARN + "StartRecorder", payload=INPUT),
        GoTo(next_state="SendLivePingWait", output=INPUT),
        WaitUntil(
            until=START + timedelta(seconds=60), then=GoTo(next_state="SendLivePing", output=INPUT)
        ),
        CallTask(resource=ARN + "SendLivePing", payload=INPUT),
        GoTo(next_state="StoppingWait", output=INPUT),
        WaitUntil(until=END, then=GoTo(next_state="StopRecording", output=INPUT)),
        CallTask(resource=ARN + "StopRecorder", payload=INPUT),
        Succeed(output=INPUT),
    ]
    assert expected == steps


def test_result_path_under_results_keeps_start_and_end() -> None:
    """With ResultPath "$.results.X" the data keeps start and end and gains the result."""
    definition = classroom("$.results.StartRecording")
    decision = task_succeeded(
        definition, "StartRecording", INPUT, {"recording": "on"}, context("StartRecording")
    )
    expected = GoTo(
        next_state="SendLivePingWait",
        output={**INPUT, "results": {"StartRecording": {"recording": "on"}}},
    )
    assert expected == decision


def test_seed_machine_without_result_path_loses_end() -> None:
    """Without ResultPath the task result replaces the data, so StoppingWait cannot find $.end."""
    definition = classroom(keep_data=False)
    after_start = task_succeeded(
        definition, "StartRecording", INPUT, {"recording": "on"}, context("StartRecording")
    )
    after_ping = task_succeeded(
        definition, "SendLivePing", after_start.output, {"ping": "ok"}, context("SendLivePing")
    )
    decision = enter(
        definition, "StoppingWait", after_ping.output, context("StoppingWait", INPUT), START
    )
    expected = Fail(
        error="States.Runtime",
        cause="The TimestampPath parameter does not reference an input value: $.end",
    )
    assert expected == decision
