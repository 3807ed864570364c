"""DISTRIBUTED Map states as boto3 sees them: a Map Run in the execution's history (its
children's events left out, as AWS records them in child executions), ListMapRuns,
DescribeMapRun with its counts while it runs and once it ended, and a Map Run's failure as
AWS reports it. A real `stepd run`, and a SIGKILL in the middle of a run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.acceptance.test_boto3_api import AMZ_JSON, error_of, execution_arn, machine_arn

LABEL = "fanout"
ITEMS = [1, 2, 3, 4, 5]
RUN_HISTORY = [
    "ExecutionStarted",
    "MapStateEntered",
    "MapStateStarted",
    "MapRunStarted",
    "MapRunSucceeded",
    "MapStateSucceeded",
    "MapStateExited",
    "ExecutionSucceeded",
]
WAIT_SECONDS = 3  # each child of the `napping` run waits this long
RUNNING_DEADLINE_SECONDS = 20.0


def distributed(states: dict[str, Any], *, concurrency: int = 0, **fields: Any) -> dict[str, Any]:
    """A machine of one DISTRIBUTED Map state over its input, children running `states` (the
    first one starts)."""
    return {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Map",
                "Label": LABEL,
                "MaxConcurrency": concurrency,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": next(iter(states)),
                    "States": states,
                },
                "End": True,
                **fields,
            }
        },
    }


FAIL_ON_TWO = {
    "Check": {
        "Type": "Choice",
        "Choices": [{"Variable": "$", "NumericEquals": 2, "Next": "Broken"}],
        "Default": "Fine",
    },
    "Broken": {"Type": "Fail", "Error": "Item.Broken", "Cause": "two is broken"},
    "Fine": {"Type": "Pass", "End": True},
}
# item 2 matches no rule (States.NoChoiceMatched) until the execution is redriven: a redrive
# enters the failed state again
FAIL_ON_TWO_ONCE = {
    "Check": {
        "Type": "Choice",
        "Choices": [
            {
                "Not": {
                    "And": [
                        {"Variable": "$", "NumericEquals": 2},
                        {"Variable": "$$.Execution.RedriveCount", "NumericEquals": 0},
                    ]
                },
                "Next": "Fine",
            }
        ],
    },
    "Fine": {"Type": "Pass", "End": True},
}
ABANDONED = {
    "StartAt": "Both",
    "States": {
        "Both": {
            "Type": "Parallel",
            "Branches": [
                distributed({"Nap": {"Type": "Wait", "Seconds": 3600, "End": True}}, concurrency=2),
                {
                    "StartAt": "Moment",
                    "States": {
                        "Moment": {"Type": "Wait", "Seconds": 1, "Next": "Give up"},
                        "Give up": {"Type": "Fail", "Error": "Gave.Up"},
                    },
                },
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}],
            "End": True,
        },
        "Done": {"Type": "Pass", "End": True},
    },
}
FORSAKEN = {
    "StartAt": "Both",
    "States": {"Both": {**{k: v for k, v in ABANDONED["States"]["Both"].items() if k != "Catch"}}},
}
ODDLY_LABELLED = distributed({"Keep": {"Type": "Pass", "End": True}}, concurrency=100)
ODDLY_LABELLED["States"]["Fan"]["Label"] = "odd: label"
MACHINES = {
    "passing": distributed(
        {"Double": {"Type": "Pass", "Parameters": {"n.$": "$"}, "End": True}}, concurrency=2
    ),
    "intolerant": distributed(FAIL_ON_TWO),
    "tolerant": distributed(FAIL_ON_TWO, ToleratedFailureCount=1),
    "mended": distributed(FAIL_ON_TWO_ONCE),
    "abandoned": ABANDONED,
    "forsaken": FORSAKEN,
    "oddly": ODDLY_LABELLED,
    "sleeping": distributed({"Nap": {"Type": "Wait", "Seconds": 3600, "End": True}}, concurrency=2),
    "napping": distributed(
        {"Nap": {"Type": "Wait", "Seconds": WAIT_SECONDS, "End": True}}, concurrency=2
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, classroom: Any, start_daemon: Any) -> Any:
    """A daemon serving MACHINES: (its boto3 client, its URL, its folder)."""
    folder = tmp_path_factory.mktemp("map-runs")
    machines = []
    for name, definition in MACHINES.items():
        path = folder / f"{name}.asl.json"
        path.write_text(json.dumps(definition), encoding="utf-8")
        machines.append((name, path, {}))
    with start_daemon(folder, classroom.base_url, machines) as daemon:
        yield daemon.client(), daemon.url


def _start(sfn: Any, machine: str, name: str, items: list[Any] = ITEMS) -> str:
    started = sfn.start_execution(
        stateMachineArn=machine_arn(machine), name=name, input=json.dumps(items)
    )
    return str(started["executionArn"])


def _ended(sfn: Any, settle: Any, machine: str, name: str) -> tuple[str, dict[str, Any]]:
    """Start an execution of `machine` on ITEMS: its ARN and DescribeExecution once closed."""
    arn = _start(sfn, machine, name)
    return arn, settle(sfn, arn, {"SUCCEEDED", "FAILED", "ABORTED", "TIMED_OUT"})


def _types(sfn: Any, arn: str) -> list[str]:
    return [e["type"] for e in sfn.get_execution_history(executionArn=arn)["events"]]


def _run_arn(sfn: Any, arn: str) -> str:
    events = sfn.get_execution_history(executionArn=arn)["events"]
    started = [e for e in events if e["type"] == "MapRunStarted"]
    assert len(started) == 1, [e["type"] for e in events]
    return str(started[0]["mapRunStartedEventDetails"]["mapRunArn"])


def _running(sfn: Any, run_arn: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    end = time.monotonic() + RUNNING_DEADLINE_SECONDS
    described: dict[str, Any] = {}
    while time.monotonic() < end:
        described = sfn.describe_map_run(mapRunArn=run_arn)
        if check(described):
            return described
        time.sleep(0.2)
    pytest.fail(f"{run_arn}: {described}")


def test_a_distributed_map_shows_its_map_run_and_not_its_childrens_events(
    runs: Any, settle: Any, new_name: Any
) -> None:
    """The history AWS records for a Map Run: its start and end, numbered 1..n, and its
    ARN naming the machine, the Label and the execution."""
    sfn, _ = runs
    arn, described = _ended(sfn, settle, "passing", new_name("run"))
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == [{"n": n} for n in ITEMS]
    events = sfn.get_execution_history(executionArn=arn)["events"]
    assert [e["type"] for e in events] == RUN_HISTORY
    assert [e["id"] for e in events] == list(range(1, len(RUN_HISTORY) + 1))
    # as AWS links them (LocalStack's AWS-recorded test_map_item_reader_base_list_objects_v2)
    assert [e["previousEventId"] for e in events] == [0, 0, 2, 3, 4, 5, 5, 7]
    run_arn = _run_arn(sfn, arn)
    name = arn.rsplit(":", 1)[1]
    assert run_arn.startswith(f"arn:aws:states:us-east-1:123456789012:mapRun:passing/{LABEL}:")
    assert name in run_arn


def test_history_pages_and_reversed_pages_skip_the_childrens_events(
    runs: Any, settle: Any, new_name: Any
) -> None:
    """Pages of 3, forwards and backwards, give the same events; no stepd key shows."""
    sfn, url = runs
    arn, described = _ended(sfn, settle, "passing", new_name("pages"))
    assert described["status"] == "SUCCEEDED"
    for reverse in (False, True):
        seen: list[str] = []
        token = None
        while True:
            page = sfn.get_execution_history(
                executionArn=arn,
                maxResults=3,
                reverseOrder=reverse,
                **({"nextToken": token} if token else {}),
            )
            assert len(page["events"]) <= 3
            seen += [e["type"] for e in page["events"]]
            token = page.get("nextToken")
            if token is None:
                break
        assert seen == (RUN_HISTORY[::-1] if reverse else RUN_HISTORY)
    raw = httpx.post(
        f"{url}/",
        content=json.dumps({"executionArn": arn}).encode(),
        headers={"Content-Type": AMZ_JSON, "X-Amz-Target": "AWSStepFunctions.GetExecutionHistory"},
        timeout=30.0,
    ).json()
    for event in raw["events"]:
        assert not [key for key in event if key.startswith("stepd")], event


def test_list_and_describe_map_runs_of_a_finished_run(
    runs: Any, settle: Any, new_name: Any
) -> None:
    """ListMapRuns and DescribeMapRun of a run that succeeded: its ARNs, dates and counts."""
    sfn, _ = runs
    arn, described = _ended(sfn, settle, "passing", new_name("described"))
    assert described["status"] == "SUCCEEDED"
    run_arn = _run_arn(sfn, arn)
    listed = sfn.list_map_runs(executionArn=arn)["mapRuns"]
    assert [r["mapRunArn"] for r in listed] == [run_arn]
    assert listed[0]["executionArn"] == arn
    assert listed[0]["stateMachineArn"] == f"{machine_arn('passing')}/{LABEL}"
    assert listed[0]["stopDate"] >= listed[0]["startDate"]
    described = sfn.describe_map_run(mapRunArn=run_arn)
    assert described["status"] == "SUCCEEDED"
    assert described["executionArn"] == arn
    assert described["maxConcurrency"] == 2
    counts = described["itemCounts"]
    assert (counts["total"], counts["succeeded"], counts["failed"]) == (5, 5, 0)
    assert (counts["pending"], counts["running"], counts["aborted"]) == (0, 0, 0)
    assert described["executionCounts"] == counts


def test_a_failed_child_fails_the_run_with_the_tolerance_error(
    runs: Any, settle: Any, new_name: Any
) -> None:
    """Without a tolerance, one failed child fails the run and the state with
    States.ExceedToleratedFailureThreshold, as AWS."""
    sfn, _ = runs
    arn, described = _ended(sfn, settle, "intolerant", new_name("fails"))
    assert described["status"] == "FAILED"
    assert described["error"] == "States.ExceedToleratedFailureThreshold"
    types = _types(sfn, arn)
    assert types[:4] == RUN_HISTORY[:4]
    assert types[4:] == ["MapRunFailed", "MapStateFailed", "ExecutionFailed"]
    events = sfn.get_execution_history(executionArn=arn)["events"]
    failed = next(e for e in events if e["type"] == "MapRunFailed")["mapRunFailedEventDetails"]
    assert failed["error"] == "States.ExceedToleratedFailureThreshold"
    run = sfn.describe_map_run(mapRunArn=_run_arn(sfn, arn))
    assert run["status"] == "FAILED"
    assert run["itemCounts"]["failed"] == 1


def test_a_tolerated_failure_leaves_the_run_succeeded(
    runs: Any, settle: Any, new_name: Any
) -> None:
    """A failure within ToleratedFailureCount: the run succeeds, the failed item's error in
    its place."""
    sfn, _ = runs
    arn, described = _ended(sfn, settle, "tolerant", new_name("tolerated"))
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output[1] == {"Error": "Item.Broken", "Cause": "two is broken"}
    assert _types(sfn, arn) == RUN_HISTORY
    run = sfn.describe_map_run(mapRunArn=_run_arn(sfn, arn))
    assert run["toleratedFailureCount"] == 1
    counts = run["itemCounts"]
    assert (counts["succeeded"], counts["failed"], counts["total"]) == (4, 1, 5)


def test_a_redrive_takes_the_failed_run_up_again(runs: Any, settle: Any, new_name: Any) -> None:
    """RedriveExecution runs the children that did not succeed again: MapRunRedriven, the
    run's and the children's redrive counts, and each redriven child's history."""
    sfn, _ = runs
    arn, described = _ended(sfn, settle, "mended", new_name("redriven"))
    assert described["status"] == "FAILED"
    run_arn = _run_arn(sfn, arn)
    assert sfn.describe_map_run(mapRunArn=run_arn)["status"] == "FAILED"
    before = sfn.list_executions(mapRunArn=run_arn)["executions"]
    unfinished = {c["executionArn"] for c in before if c["status"] != "SUCCEEDED"}
    failed = [c["executionArn"] for c in before if c["status"] == "FAILED"]
    assert len(failed) == 1
    sfn.redrive_execution(executionArn=arn)
    assert settle(sfn, arn, {"SUCCEEDED", "FAILED"})["status"] == "SUCCEEDED"
    assert _types(sfn, arn) == [
        *RUN_HISTORY[:4],
        "MapRunFailed",
        "MapStateFailed",
        "ExecutionFailed",
        "ExecutionRedriven",
        "MapRunRedriven",
        *RUN_HISTORY[4:],
    ]
    events = sfn.get_execution_history(executionArn=arn)["events"]
    redriven = next(e for e in events if e["type"] == "MapRunRedriven")
    assert redriven["mapRunRedrivenEventDetails"] == {"mapRunArn": run_arn, "redriveCount": 1}
    run = sfn.describe_map_run(mapRunArn=run_arn)
    assert (run["status"], run["redriveCount"]) == ("SUCCEEDED", 1)
    assert "redriveDate" in run
    counts = run["itemCounts"]
    assert (counts["succeeded"], counts["failed"], counts["total"]) == (5, 0, 5)
    assert [r["mapRunArn"] for r in sfn.list_map_runs(executionArn=arn)["mapRuns"]] == [run_arn]
    again = sfn.list_executions(mapRunArn=run_arn, redriveFilter="REDRIVEN")["executions"]
    assert {c["executionArn"] for c in again} == unfinished
    assert {c["redriveCount"] for c in again} == {1}
    others = sfn.list_executions(mapRunArn=run_arn, redriveFilter="NOT_REDRIVEN")["executions"]
    assert len(others) == len(ITEMS) - len(unfinished)
    child = sfn.describe_execution(executionArn=failed[0])
    assert (child["status"], child["redriveCount"], child["input"]) == ("SUCCEEDED", 1, "2")
    assert _types(sfn, failed[0]) == [
        "ExecutionStarted",
        "ChoiceStateEntered",
        "ExecutionFailed",
        "ExecutionRedriven",
        "ChoiceStateEntered",
        "ChoiceStateExited",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]
    with pytest.raises(sfn.exceptions.ClientError) as refused:
        sfn.list_executions(mapRunArn=run_arn, redriveFilter="BOGUS")
    assert error_of(refused)[0] == "ValidationException"


def test_a_running_map_run_counts_its_children_and_a_stop_aborts_it(
    runs: Any, new_name: Any, settle: Any
) -> None:
    """While it runs: RUNNING, its running and pending children; StopExecution aborts it."""
    sfn, _ = runs
    arn = _start(sfn, "sleeping", new_name("sleeps"))
    end = time.monotonic() + RUNNING_DEADLINE_SECONDS
    while "MapRunStarted" not in _types(sfn, arn):
        assert time.monotonic() < end
        time.sleep(0.2)
    run_arn = _run_arn(sfn, arn)
    running = _running(sfn, run_arn, lambda d: d["itemCounts"]["running"] == 2)
    assert running["status"] == "RUNNING"
    assert "stopDate" not in running
    assert (running["itemCounts"]["pending"], running["itemCounts"]["total"]) == (3, 5)
    assert "stopDate" not in sfn.list_map_runs(executionArn=arn)["mapRuns"][0]
    with pytest.raises(sfn.exceptions.ClientError) as refused:
        sfn.update_map_run(mapRunArn=run_arn, maxConcurrency=5)
    assert error_of(refused)[0] == "ValidationException"
    sfn.stop_execution(executionArn=arn)
    settle(sfn, arn, {"ABORTED"})
    aborted = sfn.describe_map_run(mapRunArn=run_arn)
    assert aborted["status"] == "ABORTED"
    assert (aborted["itemCounts"]["aborted"], aborted["itemCounts"]["running"]) == (2, 0)
    assert "stopDate" in aborted


def test_unknown_and_malformed_map_runs_are_refused(runs: Any, settle: Any, new_name: Any) -> None:
    """A map run or execution that does not exist: ResourceNotFound, InvalidArn or
    ExecutionDoesNotExist, as AWS answers."""
    sfn, _ = runs
    arn, described = _ended(sfn, settle, "passing", new_name("unknown"))
    assert described["status"] == "SUCCEEDED"
    run_arn = _run_arn(sfn, arn)
    head, _, event = run_arn.rpartition("-")
    for wrong in (f"{head}-{int(event) + 1}", run_arn.replace(":passing/", ":tolerant/")):
        with pytest.raises(sfn.exceptions.ResourceNotFound):
            sfn.describe_map_run(mapRunArn=wrong)
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.describe_map_run(mapRunArn="arn:aws:states:us-east-1:123456789012:mapRun:nothing")
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.list_map_runs(executionArn=execution_arn("passing", "never-started"))


def test_a_map_run_killed_midway_finishes_after_a_restart_with_its_history_as_aws_shows_it(
    tmp_path: Path, classroom: Any, start_daemon: Any, settle: Any
) -> None:
    """SIGKILL while the run's children wait; after a restart the run finishes, and its
    history and counts are those of an uninterrupted run."""
    path = tmp_path / "napping.asl.json"
    path.write_text(json.dumps(MACHINES["napping"]), encoding="utf-8")
    machines = [("napping", path, {})]
    with start_daemon(tmp_path, classroom.base_url, machines) as daemon:
        sfn = daemon.client()
        arn = _start(sfn, "napping", "killed")
        run_arn = ""
        end = time.monotonic() + RUNNING_DEADLINE_SECONDS
        while not run_arn:
            assert time.monotonic() < end
            if "MapRunStarted" in _types(sfn, arn):
                run_arn = _run_arn(sfn, arn)
            time.sleep(0.2)
        _running(sfn, run_arn, lambda d: d["itemCounts"]["running"] == 2)
        daemon.process.kill()
        daemon.process.wait()
    with start_daemon(tmp_path, classroom.base_url, machines) as daemon:
        sfn = daemon.client()
        described = settle(sfn, arn, {"SUCCEEDED", "FAILED"}, deadline=60.0)
        assert described["status"] == "SUCCEEDED"
        assert _types(sfn, arn) == RUN_HISTORY
        counts = sfn.describe_map_run(mapRunArn=run_arn)["itemCounts"]
        assert (counts["succeeded"], counts["total"], counts["running"]) == (5, 5, 0)


def test_a_map_runs_children_are_listed_and_described_as_child_executions(
    runs: Any, settle: Any, new_name: Any
) -> None:
    """ListExecutions of a map run pages through its children; each is described with its
    item, status, error and history; a child cannot be stopped on its own."""
    sfn, _ = runs
    arn, described = _ended(sfn, settle, "intolerant", new_name("children"))
    assert described["status"] == "FAILED"
    run_arn = _run_arn(sfn, arn)
    listed: list[dict[str, Any]] = []
    token = None
    while True:
        page = sfn.list_executions(
            mapRunArn=run_arn, maxResults=2, **({"nextToken": token} if token else {})
        )
        listed += page["executions"]
        token = page.get("nextToken")
        if token is None:
            break
    assert {c["mapRunArn"] for c in listed} == {run_arn}
    assert {c["stateMachineArn"] for c in listed} == {f"{machine_arn('intolerant')}/{LABEL}"}
    assert len({c["executionArn"] for c in listed}) == len(listed) >= 2
    for listed_child in listed:  # aborted ones too, whether or not they entered a state
        index = int(listed_child["executionArn"].rsplit("-", 1)[1])
        described = sfn.describe_execution(executionArn=listed_child["executionArn"])
        assert json.loads(described["input"]) == ITEMS[index]
    failed = sfn.list_executions(mapRunArn=run_arn, statusFilter="FAILED")["executions"]
    assert len(failed) == 1
    child = sfn.describe_execution(executionArn=failed[0]["executionArn"])
    assert (child["status"], child["input"]) == ("FAILED", "2")
    assert (child["error"], child["cause"]) == ("Item.Broken", "two is broken")
    assert child["redriveStatus"] == "REDRIVABLE_BY_MAP_RUN"
    assert child["mapRunArn"] == run_arn
    assert _types(sfn, child["executionArn"]) == [
        "ExecutionStarted",
        "ChoiceStateEntered",
        "ChoiceStateExited",
        "FailStateEntered",
        "ExecutionFailed",
    ]
    with pytest.raises(sfn.exceptions.ClientError) as refused:
        sfn.stop_execution(executionArn=child["executionArn"])
    assert error_of(refused)[0] == "ValidationException"


def test_a_succeeded_child_has_its_input_output_and_history(
    runs: Any, settle: Any, new_name: Any
) -> None:
    """A child that succeeded: its item, its output, its history numbered 1..n in both
    orders."""
    sfn, _ = runs
    arn, described = _ended(sfn, settle, "passing", new_name("child"))
    assert described["status"] == "SUCCEEDED"
    children = sfn.list_executions(mapRunArn=_run_arn(sfn, arn))["executions"]
    assert [c["status"] for c in children] == ["SUCCEEDED"] * len(ITEMS)
    assert all(c["stopDate"] >= c["startDate"] for c in children)
    described = [sfn.describe_execution(executionArn=c["executionArn"]) for c in children]
    assert sorted(json.loads(d["input"]) for d in described) == ITEMS
    assert all(json.loads(d["output"]) == {"n": json.loads(d["input"])} for d in described)
    history = sfn.get_execution_history(executionArn=children[0]["executionArn"])["events"]
    assert [e["type"] for e in history] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "ExecutionSucceeded",
    ]
    assert [e["id"] for e in history] == [1, 2, 3, 4]
    assert [e["previousEventId"] for e in history] == [0, 0, 2, 3]
    reverse = sfn.get_execution_history(
        executionArn=children[0]["executionArn"], reverseOrder=True, maxResults=3
    )
    assert [e["id"] for e in reverse["events"]] == [4, 3, 2]
    rest = sfn.get_execution_history(
        executionArn=children[0]["executionArn"],
        reverseOrder=True,
        maxResults=3,
        nextToken=reverse["nextToken"],
    )
    assert [e["id"] for e in rest["events"]] == [1]
    assert "nextToken" not in rest
    missing = children[0]["executionArn"].rsplit("-", 1)[0] + "-99"
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.describe_execution(executionArn=missing)


def test_a_run_abandoned_by_its_parallel_state_is_aborted_then(
    runs: Any, settle: Any, new_name: Any
) -> None:
    """A Parallel whose other branch fails gives up the run: MapRunAborted, ABORTED."""
    sfn, _ = runs
    arn, described = _ended(sfn, settle, "abandoned", new_name("abandoned"))
    assert described["status"] == "SUCCEEDED"
    assert "MapRunAborted" in _types(sfn, arn)
    run = sfn.describe_map_run(mapRunArn=_run_arn(sfn, arn))
    assert run["status"] == "ABORTED"
    assert "stopDate" in run
    counts = run["itemCounts"]
    assert (counts["running"], counts["aborted"], counts["succeeded"]) == (0, 2, 0)


def test_a_run_given_up_by_a_failing_parallel_state_ends_before_the_execution(
    runs: Any, settle: Any, new_name: Any
) -> None:
    """The run's MapRunAborted comes before the state's failure; ExecutionFailed is last."""
    sfn, _ = runs
    arn, described = _ended(sfn, settle, "forsaken", new_name("forsaken"))
    assert described["status"] == "FAILED"
    types = _types(sfn, arn)
    assert types[-1] == "ExecutionFailed"
    assert types.index("MapRunAborted") < types.index("ParallelStateFailed")
    last = sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=1)
    assert last["events"][0]["type"] == "ExecutionFailed"


def test_a_label_aws_would_refuse_gives_a_run_that_can_be_found(
    runs: Any, settle: Any, new_name: Any
) -> None:
    """A Label AWS would refuse: the ARN takes a UUID, and the run is found by it."""
    sfn, _ = runs
    arn, described = _ended(sfn, settle, "oddly", new_name("oddly"))
    assert described["status"] == "SUCCEEDED"
    run_arn = _run_arn(sfn, arn)
    assert "odd: label" not in run_arn
    assert run_arn.split(":")[6].startswith("oddly/")
    run = sfn.describe_map_run(mapRunArn=run_arn)
    assert (run["status"], run["maxConcurrency"]) == ("SUCCEEDED", 100)
    children = sfn.list_executions(mapRunArn=run_arn)["executions"]
    assert len(children) == len(ITEMS)
