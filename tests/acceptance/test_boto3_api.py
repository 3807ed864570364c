"""The control API as boto3 sees it: a real `stepd run` subprocess, botocore's own model.

botocore parses every answer with the Step Functions service model, so a wrong shape fails
the call itself; the raw-key checks below catch what a parser would silently drop. The
protocol's error edges (unknown operation, malformed bodies) are driven with raw httpx.
"""

from __future__ import annotations

import http.server
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import pytest
import yaml
from botocore.exceptions import ClientError
from tests.acceptance.callback_support import callback_machine, token_for
from tests.acceptance.http_support import serving

REGION = "us-east-1"
ACCOUNT = "123456789012"
MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{{}}"
EXECUTION_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{{}}:{{}}"
MAX_INPUT_BYTES = 262_144
AMZ_JSON = "application/x-amz-json-1.0"
CLOCK_SLACK = timedelta(seconds=2)  # between this process's clock and the daemon's
QUICK_HISTORY = [
    "ExecutionStarted",
    "PassStateEntered",
    "PassStateExited",
    "TaskStateEntered",
    "LambdaFunctionScheduled",
    "LambdaFunctionStarted",
    "LambdaFunctionSucceeded",
    "TaskStateExited",
    "SucceedStateEntered",
    "SucceedStateExited",
    "ExecutionSucceeded",
]
CONFIGURED_MACHINES = ["classroom", "failing", "nap", "pager", "quick", "sleeper"]
STEPD_EXTENSION = "stepd"  # DescribeExecution's documented extra key (current state, due time)
REENTRY_SECONDS = 10.0  # a redriven execution re-enters its state within this


def machine_arn(name: str) -> str:
    return MACHINE_ARN.format(name)


def execution_arn(machine: str, name: str) -> str:
    return EXECUTION_ARN.format(machine, name)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error_of(exc_info: pytest.ExceptionInfo[Any]) -> tuple[str, str]:
    error = exc_info.value.response["Error"]
    return error["Code"], error["Message"]


def raw_call(url: str, target: str | None, body: bytes) -> httpx.Response:
    headers = {"Content-Type": AMZ_JSON}
    if target is not None:
        headers["X-Amz-Target"] = target
    return httpx.post(f"{url}/", content=body, headers=headers, timeout=30.0)


def unknown_keys(value: Any, shape: Any, where: str = "$") -> list[str]:
    """Keys botocore's model does not know, and enum values outside the model's enum."""
    if shape.type_name == "structure":
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, not an object"]
        found = []
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                found.append(f"{where}.{key}")
            else:
                found += unknown_keys(item, member, f"{where}.{key}")
        return found
    if shape.type_name == "list":
        return [
            problem
            for index, item in enumerate(value)
            for problem in unknown_keys(item, shape.member, f"{where}[{index}]")
        ]
    if shape.type_name == "string" and shape.enum and value not in shape.enum:
        return [f"{where}: {value!r} not in the model's enum"]
    return []


def all_events(sfn: Any, arn: str, **kwargs: Any) -> list[dict[str, Any]]:
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn, **kwargs)
    return [event for page in pages for event in page["events"]]


def all_executions(sfn: Any, machine: str, **kwargs: Any) -> list[dict[str, Any]]:
    pages = sfn.get_paginator("list_executions").paginate(
        stateMachineArn=machine_arn(machine), **kwargs
    )
    return [item for page in pages for item in page["executions"]]


@pytest.fixture(scope="module")
def quick_run(sfn: Any, settle: Any) -> dict[str, Any]:
    """One finished execution of `quick` (Pass -> Task -> Succeed), described."""
    name = f"quick-{uuid.uuid4().hex[:12]}"
    started = sfn.start_execution(
        stateMachineArn=machine_arn("quick"), name=name, input='{"classroom": "c-42"}'
    )
    return settle(sfn, started["executionArn"], {"SUCCEEDED", "FAILED"})


# -- StartExecution ------------------------------------------------------------------------


def test_start_execution_returns_the_execution_arn_and_start_date(sfn, new_name):
    """StartExecution by state machine ARN answers the execution ARN and an aware startDate."""
    name = new_name("start")
    before = datetime.now(UTC)
    started = sfn.start_execution(stateMachineArn=machine_arn("quick"), name=name, input="{}")
    after = datetime.now(UTC)

    assert started["executionArn"] == execution_arn("quick", name)
    assert isinstance(started["startDate"], datetime)
    assert started["startDate"].tzinfo is not None
    assert before - CLOCK_SLACK <= started["startDate"] <= after + CLOCK_SLACK


def test_seed_style_start_waits_for_the_class_start(sfn, new_name):
    """The seed's call (input {start, end}, name = class) runs the classroom machine, which
    waits in RecordingWait for the start time."""
    class_name = new_name("class")
    now = datetime.now(UTC)
    payload = json.dumps(
        {"start": iso(now + timedelta(hours=1)), "end": iso(now + timedelta(hours=2))}
    )

    started = sfn.start_execution(
        stateMachineArn=machine_arn("classroom"), input=payload, name=class_name
    )
    described = sfn.describe_execution(executionArn=started["executionArn"])
    last = sfn.get_execution_history(executionArn=started["executionArn"], reverseOrder=True)[
        "events"
    ][0]

    assert (described["status"], described["name"], described["input"]) == (
        "RUNNING",
        class_name,
        payload,
    )
    assert (last["type"], last["stateEnteredEventDetails"]["name"]) == (
        "WaitStateEntered",
        "RecordingWait",
    )


def test_start_accepts_a_bare_machine_name(sfn, new_name):
    """A bare state machine name works where the ARN is expected."""
    name = new_name("bare")
    started = sfn.start_execution(stateMachineArn="quick", name=name, input="{}")
    assert started["executionArn"] == execution_arn("quick", name)


def test_start_without_input_runs_with_an_empty_object(sfn, new_name):
    """Without `input`, the execution's input is `{}`."""
    started = sfn.start_execution(stateMachineArn=machine_arn("sleeper"), name=new_name("noin"))
    described = sfn.describe_execution(executionArn=started["executionArn"])
    assert described["input"] == "{}"


def test_start_without_name_generates_one(sfn):
    """Without `name`, stepd names the execution itself (a valid, unique name)."""
    first = sfn.start_execution(stateMachineArn=machine_arn("sleeper"), input="{}")
    second = sfn.start_execution(stateMachineArn=machine_arn("sleeper"), input="{}")
    names = [
        sfn.describe_execution(executionArn=s["executionArn"])["name"] for s in (first, second)
    ]
    assert [0 < len(n) <= 80 for n in names] == [True, True]
    assert names[0] != names[1]


def test_same_name_and_input_while_running_returns_the_original(sfn, new_name):
    """Starting a RUNNING execution again with the same name and input is idempotent."""
    name = new_name("idem")
    payload = json.dumps({"classroom": name})
    first = sfn.start_execution(stateMachineArn=machine_arn("sleeper"), name=name, input=payload)
    again = sfn.start_execution(stateMachineArn=machine_arn("sleeper"), name=name, input=payload)
    assert (first["executionArn"], first["startDate"]) == (
        again["executionArn"],
        again["startDate"],
    )


def test_same_name_other_input_while_running_is_already_exists(sfn, new_name):
    """Starting a RUNNING execution's name with other input is ExecutionAlreadyExists."""
    name = new_name("other")
    sfn.start_execution(stateMachineArn=machine_arn("sleeper"), name=name, input='{"a": 1}')
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists) as raised:
        sfn.start_execution(stateMachineArn=machine_arn("sleeper"), name=name, input='{"a": 2}')
    expected = f"Execution Already Exists: '{execution_arn('sleeper', name)}'"
    assert error_of(raised) == ("ExecutionAlreadyExists", expected)


@pytest.mark.parametrize("again", ['{"classroom": "c-42"}', '{"classroom": "other"}'])
def test_name_of_a_succeeded_execution_is_already_exists(sfn, quick_run, again):
    """Once an execution has SUCCEEDED, its name is taken whatever the input."""
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(
            stateMachineArn=machine_arn("quick"), name=quick_run["name"], input=again
        )


@pytest.mark.parametrize("again", ['{"a": 1}', '{"a": 2}'])
def test_name_of_an_aborted_execution_is_already_exists(sfn, new_name, again):
    """Once an execution is ABORTED, its name is taken whatever the input."""
    name = new_name("aborted")
    started = sfn.start_execution(
        stateMachineArn=machine_arn("sleeper"), name=name, input='{"a": 1}'
    )
    sfn.stop_execution(executionArn=started["executionArn"])
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=machine_arn("sleeper"), name=name, input=again)


@pytest.mark.parametrize(
    "name",
    [
        "with space",
        "a/b",
        "x" * 81,
        "tab\there",
        "colon:name",
        "<angle>",
        "star*",
        "question?",
        "dollar$",
        "new\nline",
    ],
    ids=[
        "space",
        "slash",
        "81-chars",
        "tab",
        "colon",
        "angle",
        "star",
        "question",
        "dollar",
        "newline",
    ],
)
def test_invalid_names_are_refused(sfn, name):
    """Names AWS refuses (whitespace, reserved characters, over 80 characters): InvalidName."""
    with pytest.raises(sfn.exceptions.InvalidName):
        sfn.start_execution(stateMachineArn=machine_arn("sleeper"), name=name, input="{}")


def test_a_name_of_80_characters_is_accepted(sfn):
    """80 characters is the longest valid name."""
    name = ("n80-" + uuid.uuid4().hex * 3)[:80]
    started = sfn.start_execution(stateMachineArn=machine_arn("sleeper"), name=name, input="{}")
    assert started["executionArn"] == execution_arn("sleeper", name)


@pytest.mark.parametrize(
    "text",
    ["not json", "{", "{'single': 'quotes'}", "", "NaN", '{"a": Infinity}'],
    ids=["text", "truncated", "single-quotes", "empty", "NaN", "Infinity"],
)
def test_input_that_is_not_json_is_refused(sfn, new_name, text):
    """Input that is not strict JSON (RFC 8259) is InvalidExecutionInput."""
    with pytest.raises(sfn.exceptions.InvalidExecutionInput):
        sfn.start_execution(
            stateMachineArn=machine_arn("sleeper"), name=new_name("bad"), input=text
        )


def test_input_of_262144_bytes_is_accepted(sfn, new_name):
    """Input of exactly 262144 bytes (AWS's limit) starts an execution."""
    text = '"' + "a" * (MAX_INPUT_BYTES - 2) + '"'
    started = sfn.start_execution(
        stateMachineArn=machine_arn("sleeper"), name=new_name("big"), input=text
    )
    assert (
        len(sfn.describe_execution(executionArn=started["executionArn"])["input"])
        == MAX_INPUT_BYTES
    )


@pytest.mark.parametrize(
    "text",
    ['"' + "a" * (MAX_INPUT_BYTES - 1) + '"', '"' + "é" * (MAX_INPUT_BYTES // 2) + '"'],
    ids=["262145-ascii", "utf8-bytes-over-limit"],
)
def test_input_over_262144_bytes_is_refused(sfn, new_name, text):
    """Input over 262144 bytes of UTF-8 is InvalidExecutionInput."""
    with pytest.raises(sfn.exceptions.InvalidExecutionInput):
        sfn.start_execution(
            stateMachineArn=machine_arn("sleeper"), name=new_name("big"), input=text
        )


@pytest.mark.parametrize("machine", [machine_arn("nosuchmachine"), "nosuchmachine"])
def test_start_on_an_unknown_machine_is_state_machine_does_not_exist(sfn, new_name, machine):
    """StartExecution on a machine the config does not name is StateMachineDoesNotExist."""
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.start_execution(stateMachineArn=machine, name=new_name("nomachine"), input="{}")


@pytest.mark.parametrize(
    "arn",
    [
        f"arn:aws:states:{REGION}:{ACCOUNT}:activity:quick",
        f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine",
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:quick",
    ],
    ids=["activity", "no-name", "lambda"],
)
def test_start_with_a_malformed_machine_arn_is_invalid_arn(sfn, new_name, arn):
    """A state machine ARN of the wrong shape is InvalidArn."""
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.start_execution(stateMachineArn=arn, name=new_name("arn"), input="{}")


@pytest.mark.parametrize(
    "arn",
    ["not-an-arn", machine_arn("quick"), f"arn:aws:states:{REGION}:{ACCOUNT}:execution:quick"],
    ids=["text", "machine-arn", "no-name"],
)
def test_describe_with_a_malformed_execution_arn_is_invalid_arn(sfn, arn):
    """An execution ARN of the wrong shape is InvalidArn."""
    with pytest.raises(sfn.exceptions.InvalidArn):
        sfn.describe_execution(executionArn=arn)


# -- DescribeExecution ---------------------------------------------------------------------


def test_describe_a_succeeded_execution(quick_run):
    """A SUCCEEDED execution has every field, its input as given, its output, a stopDate."""
    output = json.loads(quick_run["output"])
    assert {k: quick_run[k] for k in ("executionArn", "stateMachineArn", "status", "input")} == {
        "executionArn": execution_arn("quick", quick_run["name"]),
        "stateMachineArn": machine_arn("quick"),
        "status": "SUCCEEDED",
        "input": '{"classroom": "c-42"}',
    }
    assert (
        output["prepared"],
        output["result"]["ok"],
        output["result"]["path"],
    ) == ({"room": "blue"}, True, "/quick")
    assert quick_run["startDate"] <= quick_run["stopDate"]
    assert [k for k in ("error", "cause") if k in quick_run] == []


def test_describe_a_running_execution_has_no_stop_date_or_output(sfn, new_name):
    """A RUNNING execution has no stopDate and no output."""
    started = sfn.start_execution(
        stateMachineArn=machine_arn("sleeper"), name=new_name("run"), input='{"x": 1}'
    )
    described = sfn.describe_execution(executionArn=started["executionArn"])
    assert (described["status"], described["input"], described["startDate"]) == (
        "RUNNING",
        '{"x": 1}',
        started["startDate"],
    )
    assert [k for k in ("stopDate", "output", "error", "cause") if k in described] == []


def test_describe_a_failed_execution_has_error_and_cause_without_output(sfn, new_name, settle):
    """A FAILED execution carries the Fail state's error and cause, a stopDate, no output."""
    started = sfn.start_execution(
        stateMachineArn=machine_arn("failing"), name=new_name("fail"), input="{}"
    )
    described = settle(sfn, started["executionArn"], {"FAILED", "SUCCEEDED"})
    assert (
        described["status"],
        described.get("error"),
        described.get("cause"),
    ) == ("FAILED", "Classroom.Cancelled", "teacher is ill")
    assert ("stopDate" in described, "output" in described) == (True, False)


def test_describe_an_unknown_execution_is_execution_does_not_exist(sfn):
    """DescribeExecution of a name never started is ExecutionDoesNotExist."""
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.describe_execution(executionArn=execution_arn("quick", "never-started"))


def test_describe_answer_has_only_keys_botocore_knows(sfn, daemon, quick_run):
    """DescribeExecution's raw answer uses only the model's keys (plus stepd's extension)."""
    answer = raw_call(
        daemon.url,
        "AWSStepFunctions.DescribeExecution",
        json.dumps({"executionArn": quick_run["executionArn"]}).encode(),
    ).json()
    answer.pop(STEPD_EXTENSION, None)
    shape = sfn.meta.service_model.operation_model("DescribeExecution").output_shape
    assert unknown_keys(answer, shape) == []


def test_a_one_second_wait_holds_the_execution_then_succeeds(sfn, new_name, settle):
    """A Wait of Seconds: 1 keeps the execution RUNNING for a second, then it SUCCEEDS."""
    started = sfn.start_execution(
        stateMachineArn=machine_arn("nap"), name=new_name("nap"), input='{"n": 1}'
    )
    described = settle(sfn, started["executionArn"], {"SUCCEEDED", "FAILED", "ABORTED"})
    assert (described["status"], described["output"]) == ("SUCCEEDED", '{"n":1}')
    assert described["stopDate"] - described["startDate"] >= timedelta(seconds=1)


# -- StopExecution -------------------------------------------------------------------------


def test_stop_aborts_and_keeps_error_and_cause(sfn, new_name):
    """StopExecution makes the execution ABORTED with the given error and cause."""
    started = sfn.start_execution(
        stateMachineArn=machine_arn("sleeper"), name=new_name("stop"), input="{}"
    )
    stopped = sfn.stop_execution(
        executionArn=started["executionArn"], error="Class.Cancelled", cause="no students"
    )
    described = sfn.describe_execution(executionArn=started["executionArn"])
    assert (
        described["status"],
        described.get("error"),
        described.get("cause"),
        described.get("stopDate"),
    ) == ("ABORTED", "Class.Cancelled", "no students", stopped["stopDate"])
    assert "output" not in described


def test_stopped_history_ends_with_execution_aborted(sfn, new_name):
    """The history of a stopped Wait ends WaitStateEntered, ExecutionAborted(error, cause)."""
    started = sfn.start_execution(
        stateMachineArn=machine_arn("sleeper"), name=new_name("stoph"), input="{}"
    )
    sfn.stop_execution(executionArn=started["executionArn"], error="E", cause="C")
    events = all_events(sfn, started["executionArn"])
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "WaitStateEntered",
        "ExecutionAborted",
    ]
    assert events[-1]["executionAbortedEventDetails"] == {"error": "E", "cause": "C"}


def test_stopping_twice_is_fine(sfn, new_name):
    """Stopping an ABORTED execution again succeeds and changes nothing."""
    started = sfn.start_execution(
        stateMachineArn=machine_arn("sleeper"), name=new_name("stop2"), input="{}"
    )
    first = sfn.stop_execution(executionArn=started["executionArn"])
    second = sfn.stop_execution(executionArn=started["executionArn"])
    events = all_events(sfn, started["executionArn"])
    assert first["stopDate"] == second["stopDate"]
    assert [e["type"] for e in events].count("ExecutionAborted") == 1


def test_stop_an_unknown_execution_is_execution_does_not_exist(sfn):
    """StopExecution of a name never started is ExecutionDoesNotExist."""
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.stop_execution(executionArn=execution_arn("sleeper", "never-started"))


def test_stop_with_an_error_over_256_characters_is_a_validation_error(sfn, new_name):
    """StopExecution's error is at most 256 characters (ValidationException)."""
    started = sfn.start_execution(
        stateMachineArn=machine_arn("sleeper"), name=new_name("long"), input="{}"
    )
    with pytest.raises(sfn.exceptions.ValidationException):
        sfn.stop_execution(executionArn=started["executionArn"], error="E" * 257)
    assert sfn.describe_execution(executionArn=started["executionArn"])["status"] == "RUNNING"


# -- ListExecutions ------------------------------------------------------------------------


def test_list_executions_newest_first_through_the_paginator(sfn):
    """ListExecutions pages (maxResults + nextToken) through every execution, newest first."""
    names = [f"page-{i}-{uuid.uuid4().hex[:8]}" for i in range(5)]
    for name in names:
        sfn.start_execution(stateMachineArn=machine_arn("pager"), name=name, input="{}")

    pages = list(
        sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine_arn("pager"), PaginationConfig={"PageSize": 2}
        )
    )
    listed = [item for page in pages for item in page["executions"]]

    assert [len(page["executions"]) for page in pages] == [2, 2, 1]
    assert [item["name"] for item in listed] == list(reversed(names))
    assert [item["executionArn"] for item in listed] == [
        execution_arn("pager", n) for n in reversed(names)
    ]
    dates = [item["startDate"] for item in listed]
    assert dates == sorted(dates, reverse=True)


def test_list_executions_max_results_gives_a_next_token(sfn):
    """A page of maxResults items with more to come carries a nextToken that continues it."""
    for _ in range(3):
        sfn.start_execution(stateMachineArn=machine_arn("sleeper"), input="{}")
    first = sfn.list_executions(stateMachineArn=machine_arn("sleeper"), maxResults=1)
    second = sfn.list_executions(
        stateMachineArn=machine_arn("sleeper"), maxResults=1, nextToken=first["nextToken"]
    )
    assert (len(first["executions"]), len(second["executions"])) == (1, 1)
    assert first["executions"][0]["name"] != second["executions"][0]["name"]


def test_list_executions_status_filter(sfn, new_name):
    """statusFilter lists only executions in that status."""
    running = new_name("running")
    aborted = new_name("aborted")
    for name in (running, aborted):
        sfn.start_execution(stateMachineArn=machine_arn("sleeper"), name=name, input="{}")
    sfn.stop_execution(executionArn=execution_arn("sleeper", aborted))

    listed_aborted = all_executions(sfn, "sleeper", statusFilter="ABORTED")
    listed_running = all_executions(sfn, "sleeper", statusFilter="RUNNING")

    assert {i["status"] for i in listed_aborted} == {"ABORTED"}
    assert {i["status"] for i in listed_running} == {"RUNNING"}
    # in botocore's enum; stepd begins a redrive as it answers it, so none is pending
    assert all_executions(sfn, "sleeper", statusFilter="PENDING_REDRIVE") == []
    assert (
        aborted in {i["name"] for i in listed_aborted},
        running in {i["name"] for i in listed_aborted},
    ) == (True, False)
    assert (
        running in {i["name"] for i in listed_running},
        aborted in {i["name"] for i in listed_running},
    ) == (True, False)


def test_list_executions_of_an_unknown_machine(sfn):
    """ListExecutions of a machine the config does not name is StateMachineDoesNotExist."""
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.list_executions(stateMachineArn=machine_arn("nosuchmachine"))


def test_list_executions_with_a_bad_token(sfn):
    """A nextToken stepd did not issue is InvalidToken; one longer than AWS's model allows
    is a ValidationException, as AWS answers it."""
    with pytest.raises(sfn.exceptions.InvalidToken):
        sfn.list_executions(stateMachineArn=machine_arn("quick"), nextToken="not-a-token")
    with pytest.raises(ClientError) as refused:
        sfn.list_executions(stateMachineArn=machine_arn("quick"), nextToken="t" * 3097)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 3096" in refused.value.response["Error"]["Message"]


def test_list_answer_has_only_keys_botocore_knows(sfn, daemon, quick_run):
    """ListExecutions' raw answer uses only the model's keys and enum values."""
    answer = raw_call(
        daemon.url,
        "AWSStepFunctions.ListExecutions",
        json.dumps({"stateMachineArn": machine_arn("quick"), "maxResults": 5}).encode(),
    ).json()
    shape = sfn.meta.service_model.operation_model("ListExecutions").output_shape
    assert unknown_keys(answer, shape) == []


# -- RedriveExecution ----------------------------------------------------------------------


def test_a_failed_execution_is_redrivable_and_redrive_enters_the_failed_state(
    sfn, daemon, new_name, settle
):
    """RedriveExecution answers redriveDate; the failed state runs again (the Pass before it
    does not), and DescribeExecution, ListExecutions and the history show the redrive."""
    started = sfn.start_execution(
        stateMachineArn=machine_arn("failing"), name=new_name("redrive"), input='{"n": 1}'
    )
    arn = started["executionArn"]
    failed = settle(sfn, arn, {"FAILED"})
    assert (failed["redriveCount"], failed["redriveStatus"]) == (0, "REDRIVABLE")
    assert "redriveDate" not in failed
    answer = sfn.redrive_execution(executionArn=arn)
    assert abs(answer["redriveDate"] - datetime.now(UTC)) < CLOCK_SLACK
    again = settle(sfn, arn, {"FAILED"})
    assert (again["redriveCount"], again["redriveDate"]) == (1, answer["redriveDate"])
    assert (again["startDate"], again["input"]) == (failed["startDate"], '{"n": 1}')
    assert again["redriveStatus"] == "REDRIVABLE"
    events = sfn.get_execution_history(executionArn=arn)["events"]
    types = [e["type"] for e in events]
    assert types[types.index("ExecutionRedriven") :] == [
        "ExecutionRedriven",
        "FailStateEntered",
        "ExecutionFailed",
    ]
    assert types.count("PassStateEntered") == 1
    redriven = events[types.index("ExecutionRedriven")]
    assert redriven["executionRedrivenEventDetails"] == {"redriveCount": 1}
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    raw = raw_call(
        daemon.url, "AWSStepFunctions.DescribeExecution", json.dumps({"executionArn": arn}).encode()
    ).json()
    raw.pop(STEPD_EXTENSION, None)
    shape = sfn.meta.service_model.operation_model("DescribeExecution").output_shape
    assert unknown_keys(raw, shape) == []


def test_an_aborted_execution_redriven_runs_again(sfn, new_name, settle):
    """A stopped execution redriven is RUNNING again, in the state it was stopped in."""
    started = sfn.start_execution(
        stateMachineArn=machine_arn("sleeper"), name=new_name("redrive-stop"), input="{}"
    )
    arn = started["executionArn"]
    sfn.stop_execution(executionArn=arn)
    sfn.redrive_execution(executionArn=arn)
    described = sfn.describe_execution(executionArn=arn)
    assert (described["status"], described["redriveCount"], "stopDate" in described) == (
        "RUNNING",
        1,
        False,
    )
    assert described["redriveStatus"] == "NOT_REDRIVABLE"
    assert described["redriveStatusReason"] == "Execution is RUNNING and cannot be redriven"
    deadline = time.monotonic() + REENTRY_SECONDS  # the state is entered again at once, async
    while True:
        types = [e["type"] for e in sfn.get_execution_history(executionArn=arn)["events"]]
        if types[-1] != "ExecutionRedriven" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert types[-3:] == ["ExecutionAborted", "ExecutionRedriven", "WaitStateEntered"]
    sfn.stop_execution(executionArn=arn)


def test_list_executions_redrive_filter(sfn, new_name, settle):
    """redriveFilter REDRIVEN lists only redriven executions, NOT_REDRIVEN only the others;
    the items carry redriveCount and redriveDate."""
    arns = []
    for label in ("kept", "redriven"):
        started = sfn.start_execution(
            stateMachineArn=machine_arn("failing"), name=new_name(label), input="{}"
        )
        arns.append(started["executionArn"])
        settle(sfn, started["executionArn"], {"FAILED"})
    kept, redriven = arns
    sfn.redrive_execution(executionArn=redriven)
    settle(sfn, redriven, {"FAILED"})

    def listed(redrive_filter: str) -> dict[str, Any]:
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=machine_arn("failing"), redriveFilter=redrive_filter
        )
        return {e["executionArn"]: e for page in pages for e in page["executions"]}

    only_redriven, not_redriven = listed("REDRIVEN"), listed("NOT_REDRIVEN")
    assert (redriven in only_redriven, kept in only_redriven) == (True, False)
    assert (redriven in not_redriven, kept in not_redriven) == (False, True)
    assert only_redriven[redriven]["redriveCount"] == 1
    assert "redriveDate" in only_redriven[redriven]
    assert (not_redriven[kept]["redriveCount"], "redriveDate" in not_redriven[kept]) == (0, False)


def test_a_succeeded_execution_is_not_redrivable(sfn, quick_run):
    """Redriving a SUCCEEDED execution is ExecutionNotRedrivable, with AWS's reason, which
    DescribeExecution gives too."""
    assert quick_run["redriveStatus"] == "NOT_REDRIVABLE"
    reason = "Execution is SUCCEEDED and cannot be redriven"
    assert quick_run["redriveStatusReason"] == reason
    with pytest.raises(sfn.exceptions.ExecutionNotRedrivable) as refused:
        sfn.redrive_execution(executionArn=quick_run["executionArn"])
    assert error_of(refused) == ("ExecutionNotRedrivable", reason)


def test_redrive_of_an_unknown_execution_is_execution_does_not_exist(sfn):
    """RedriveExecution of a name never started is ExecutionDoesNotExist."""
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.redrive_execution(executionArn=execution_arn("failing", "never-started"))


def test_redrive_with_the_same_client_token_redrives_once(sfn, new_name, settle):
    """RedriveExecution sent again with its clientToken answers the first redrive's date."""
    started = sfn.start_execution(
        stateMachineArn=machine_arn("failing"), name=new_name("token"), input="{}"
    )
    arn = started["executionArn"]
    settle(sfn, arn, {"FAILED"})
    first = sfn.redrive_execution(executionArn=arn, clientToken="retry-me")
    settle(sfn, arn, {"FAILED"})
    again = sfn.redrive_execution(executionArn=arn, clientToken="retry-me")
    assert again["redriveDate"] == first["redriveDate"]
    assert sfn.describe_execution(executionArn=arn)["redriveCount"] == 1


# -- GetExecutionHistory -------------------------------------------------------------------


def test_history_of_pass_task_succeed(sfn, quick_run):
    """The history of Pass -> Task -> Succeed has AWS's event types in AWS's order."""
    events = all_events(sfn, quick_run["executionArn"])
    assert [e["type"] for e in events] == QUICK_HISTORY


def test_history_ids_and_previous_event_ids(sfn, quick_run):
    """Event ids count from 1; each event's previousEventId is the one before it, but for the
    first state entered, which names none, as AWS links them."""
    events = all_events(sfn, quick_run["executionArn"])
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert [e["previousEventId"] for e in events] == [0, 0, *range(2, len(events))]
    last_two = sfn.get_execution_history(  # a page links as the whole history does
        executionArn=quick_run["executionArn"], reverseOrder=True, maxResults=2
    )["events"]
    assert [(e["id"], e["previousEventId"]) for e in last_two] == [
        (len(events), len(events) - 1),
        (len(events) - 1, len(events) - 2),
    ]


def test_history_names_the_states(sfn, quick_run):
    """State entered/exited events name their state; the task events name the Resource."""
    events = all_events(sfn, quick_run["executionArn"])
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]
    exited = [
        e["stateExitedEventDetails"]["name"] for e in events if "stateExitedEventDetails" in e
    ]
    scheduled = next(e for e in events if e["type"] == "LambdaFunctionScheduled")[
        "lambdaFunctionScheduledEventDetails"
    ]
    assert (entered, exited) == (["Prepare", "Call", "Done"], ["Prepare", "Call", "Done"])
    assert scheduled["resource"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:quick"
    assert json.loads(scheduled["input"]) == {
        "classroom": "c-42",
        "prepared": {"room": "blue"},
    }


def test_history_paginator_pages_through_every_event(sfn, quick_run):
    """Paging with a small page size gives the same events as one page."""
    whole = sfn.get_execution_history(executionArn=quick_run["executionArn"], maxResults=1000)
    pages = list(
        sfn.get_paginator("get_execution_history").paginate(
            executionArn=quick_run["executionArn"], PaginationConfig={"PageSize": 3}
        )
    )
    assert [len(p["events"]) for p in pages] == [3, 3, 3, 2]
    assert whole["events"] == [e for p in pages for e in p["events"]]
    assert "nextToken" not in whole


def test_history_in_reverse_order(sfn, quick_run):
    """reverseOrder gives the events newest first, also across pages."""
    forward = all_events(sfn, quick_run["executionArn"])
    backward = all_events(
        sfn, quick_run["executionArn"], reverseOrder=True, PaginationConfig={"PageSize": 4}
    )
    assert backward == list(reversed(forward))


def test_history_without_execution_data(sfn, quick_run):
    """includeExecutionData=False leaves inputs and outputs out of the details."""
    events = all_events(sfn, quick_run["executionArn"], includeExecutionData=False)
    carried = [
        (e["type"], key)
        for e in events
        for name, details in e.items()
        if name.endswith("EventDetails")
        for key in details
        if key in {"input", "output", "parameters"}
    ]
    assert carried == []


def test_history_answer_has_only_keys_botocore_knows(sfn, daemon, quick_run):
    """GetExecutionHistory's raw events use only the model's keys and event types."""
    answer = raw_call(
        daemon.url,
        "AWSStepFunctions.GetExecutionHistory",
        json.dumps({"executionArn": quick_run["executionArn"]}).encode(),
    ).json()
    shape = sfn.meta.service_model.operation_model("GetExecutionHistory").output_shape
    assert unknown_keys(answer, shape) == []


def test_history_of_an_unknown_execution(sfn):
    """GetExecutionHistory of a name never started is ExecutionDoesNotExist."""
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.get_execution_history(executionArn=execution_arn("quick", "never-started"))


# -- state machines ------------------------------------------------------------------------


def test_list_state_machines_lists_the_configured_machines(sfn):
    """ListStateMachines lists every configured machine as a STANDARD machine."""
    pages = sfn.get_paginator("list_state_machines").paginate()
    machines = sorted((m for page in pages for m in page["stateMachines"]), key=lambda m: m["name"])
    assert [(m["name"], m["stateMachineArn"], m["type"]) for m in machines] == [
        (n, machine_arn(n), "STANDARD") for n in CONFIGURED_MACHINES
    ]


@pytest.mark.parametrize("machine", ["quick", "classroom"])
def test_describe_state_machine_gives_the_configured_definition(sfn, daemon, machine):
    """DescribeStateMachine's definition is JSON of the machine the config names."""
    described = sfn.describe_state_machine(stateMachineArn=machine_arn(machine))
    source = daemon.machines[machine]
    expected = yaml.safe_load(source.read_text(encoding="utf-8"))  # JSON is YAML
    assert (
        described["name"],
        described["stateMachineArn"],
        described["status"],
        described["type"],
    ) == (machine, machine_arn(machine), "ACTIVE", "STANDARD")
    assert json.loads(described["definition"]) == expected
    # as AWS describes a machine without logging or tracing (client code reads them)
    assert described["loggingConfiguration"] == {"level": "OFF", "includeExecutionData": False}
    assert described["tracingConfiguration"] == {"enabled": False}


def test_state_machine_creation_date_is_a_real_date(sfn):
    """A machine's creationDate is when stepd first registered it, not the Unix epoch."""
    described = sfn.describe_state_machine(stateMachineArn=machine_arn("quick"))
    listed = {m["name"]: m for m in sfn.list_state_machines()["stateMachines"]}
    now = datetime.now(UTC)
    assert (
        now - timedelta(days=1) <= described["creationDate"] <= now + CLOCK_SLACK,
        described["creationDate"] == listed["quick"]["creationDate"],
    ) == (True, True)


def test_describe_an_unknown_state_machine(sfn):
    """DescribeStateMachine of a machine the config does not name is StateMachineDoesNotExist."""
    with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
        sfn.describe_state_machine(stateMachineArn=machine_arn("nosuchmachine"))


# -- the protocol's edges, raw -------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "AWSStepFunctions.NoSuchOperation",
        "AWSStepFunctions.CreateStateMachine",
        "Other.ListExecutions",
        None,
    ],
    ids=["unknown", "unsupported", "other-service", "no-target"],
)
def test_an_unknown_operation_is_400_with_aws_shape(daemon, target):
    """An operation stepd does not serve answers 400 {"__type", "message"}."""
    response = raw_call(daemon.url, target, b"{}")
    body = response.json()
    assert (response.status_code, set(body)) == (400, {"__type", "message"})
    assert (bool(body["__type"]), isinstance(body["message"], str)) == (True, True)


LONE = "\udc00"  # a lone UTF-16 surrogate: json.dumps writes it as the escape "\\udc00"


def _body(**members: Any) -> bytes:
    return json.dumps(members).encode()


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


MALFORMED = {
    "not-json": ("StartExecution", b"{not json"),
    "array": ("StartExecution", b"[1, 2]"),
    "string": ("ListExecutions", b'"text"'),
    "not-utf8": ("StartExecution", b"\xff\xfe\x00"),
    "wrong-type": ("StartExecution", b'{"stateMachineArn": 5}'),
    "missing-arn": ("DescribeExecution", b"{}"),
    "max-results-type": ("ListExecutions", b'{"maxResults": "ten"}'),
    "reverse-order-type": ("GetExecutionHistory", b'{"executionArn": "x", "reverseOrder": 1}'),
    "deeply-nested-body": ("StartExecution", _deep(100_000).encode()),
    "deeply-nested-input": (
        "StartExecution",
        json.dumps(
            {"stateMachineArn": "sleeper", "name": "deep", "input": _deep(100_000)}
        ).encode(),
    ),
    "lone-surrogate-input": (
        "StartExecution",
        b'{"stateMachineArn": "sleeper", "name": "surrogate", "input": "\\"\\ud800\\""}',
    ),
    "lone-surrogate-arn": (
        "DescribeExecution",
        b'{"executionArn": "arn:aws:states:us-east-1:123456789012:execution:quick:\\ud800"}',
    ),
    "lone-surrogate-in-an-input-object": (
        "StartExecution",
        _body(stateMachineArn="sleeper", name="surrogate2", input=json.dumps({"k": LONE})),
    ),
    "lone-surrogate-input-key": (
        "StartExecution",
        _body(stateMachineArn="sleeper", name="surrogate3", input=json.dumps({LONE: 1})),
    ),
    "lone-surrogate-stop-error": (
        "StopExecution",
        _body(executionArn=execution_arn("sleeper", "x"), error=LONE),
    ),
    "lone-surrogate-tag-key": (
        "TagResource",
        _body(resourceArn=machine_arn("quick"), tags=[{"key": LONE, "value": "v"}]),
    ),
    "lone-surrogate-client-token": (
        "RedriveExecution",
        _body(executionArn=execution_arn("quick", "x"), clientToken=LONE),
    ),
    "lone-surrogate-definition": (
        "ValidateStateMachineDefinition",
        _body(definition=json.dumps({"StartAt": LONE, "States": {}}, ensure_ascii=False)),
    ),
    "lone-surrogate-task-failure-cause": ("SendTaskFailure", _body(taskToken="x", cause=LONE)),
    "token-out-of-range": (
        "ListExecutions",
        json.dumps({"stateMachineArn": "quick", "nextToken": "c3RlcGQ6" + "OTk5" * 10}).encode(),
    ),
}


@pytest.mark.parametrize(("operation", "body"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_is_400_with_aws_shape(daemon, operation, body):
    """A body that is not a valid request answers 400 {"__type", "message"}, never 5xx."""
    response = raw_call(daemon.url, f"AWSStepFunctions.{operation}", body)
    assert (
        response.status_code,
        response.headers.get("content-type", "").split(";")[0],
    ) == (400, AMZ_JSON), response.text[:300]
    assert set(response.json()) == {"__type", "message"}


def test_input_that_is_not_unicode_text_starts_nothing(sfn, daemon):
    """Input whose JSON escapes give a lone UTF-16 surrogate is InvalidExecutionInput, and no
    execution of that name is stored (starting it again with good input works)."""
    name = f"surrogate-{uuid.uuid4().hex[:8]}"
    for text in ('{"k": "\\ud800"}', '["\\udfff"]', '{"\\udc00": 1}'):
        with pytest.raises(sfn.exceptions.InvalidExecutionInput, match="surrogate"):
            sfn.start_execution(stateMachineArn=machine_arn("quick"), name=name, input=text)
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.describe_execution(executionArn=execution_arn("quick", name))
    emoji = '{"k": "\\ud83d\\ude00"}'  # a pair is one character: fine
    arn = sfn.start_execution(stateMachineArn=machine_arn("quick"), name=name, input=emoji)
    assert json.loads(sfn.describe_execution(executionArn=arn["executionArn"])["input"]) == {
        "k": "\U0001f600"
    }


def test_an_oversized_request_is_refused_with_aws_shape(daemon):
    """A request body over the server's size limit is refused 4xx {"__type", "message"}."""
    body = json.dumps(
        {"stateMachineArn": "sleeper", "name": "huge", "input": json.dumps("a" * 2_000_000)}
    ).encode()
    response = raw_call(daemon.url, "AWSStepFunctions.StartExecution", body)
    assert (
        400 <= response.status_code < 500,
        response.headers.get("content-type", "").split(";")[0],
    ) == (True, AMZ_JSON), f"{response.status_code} {response.text[:300]}"
    assert set(response.json()) == {"__type", "message"}


def test_the_daemon_stays_healthy_after_bad_requests(daemon):
    """After every refusal above, /healthz still answers 200 ok."""
    for operation, body in MALFORMED.values():
        raw_call(daemon.url, f"AWSStepFunctions.{operation}", body)
    response = httpx.get(f"{daemon.url}/healthz", timeout=10.0)
    assert (response.status_code, response.json()["status"]) == (200, "ok")


def test_every_answer_carries_a_request_id(sfn):
    """boto3 reports x-amzn-RequestId as ResponseMetadata.RequestId, on answers and errors."""
    ok = sfn.list_state_machines()["ResponseMetadata"]["RequestId"]
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist) as caught:
        sfn.describe_execution(executionArn=execution_arn("classroom", "no-such-class"))
    failed = caught.value.response["ResponseMetadata"]["RequestId"]
    assert ok
    assert failed
    assert ok != failed


# -- callbacks (.waitForTaskToken) ------------------------------------------------------


CALLBACK_MACHINE = callback_machine(HeartbeatSeconds=10, TimeoutSeconds=300, ResultPath="$.answer")


def test_callbacks_settle_waiting_tasks_as_aws_does(
    start_daemon, classroom, tmp_path_factory, settle
):
    """SendTaskSuccess's output is the task's result, SendTaskFailure's error and cause
    fail it, a missed heartbeat times it out, and a callback after it closed is
    TaskTimedOut; every answer parses with botocore's model."""
    folder = tmp_path_factory.mktemp("callbacks")
    path = folder / "asker.asl.json"
    path.write_text(json.dumps(CALLBACK_MACHINE), encoding="utf-8")
    rooms = {kind: f"{kind}-{uuid.uuid4().hex[:8]}" for kind in ("ok", "fail", "beat")}
    with start_daemon(folder, classroom.base_url, [("asker", path, {"Ask": "/quick"})]) as d:
        sfn = d.client()
        arns = {
            kind: sfn.start_execution(
                stateMachineArn=machine_arn("asker"), name=room, input=json.dumps({"room": room})
            )["executionArn"]
            for kind, room in rooms.items()
        }
        tokens = {kind: token_for(classroom, room) for kind, room in rooms.items()}
        assert all(0 < len(token) <= 2048 for token in tokens.values())
        time.sleep(0.5)
        assert sfn.send_task_heartbeat(taskToken=tokens["ok"])["ResponseMetadata"]
        with pytest.raises(sfn.exceptions.InvalidOutput, match="unpaired UTF-16 surrogate"):
            sfn.send_task_success(taskToken=tokens["ok"], output=json.dumps({"k": "\ud800"}))
        assert sfn.send_task_success(taskToken=tokens["ok"], output='{"url": "v.mp4"}')
        sfn.send_task_failure(taskToken=tokens["fail"], error="Room.Closed", cause="no teacher")
        ok = settle(sfn, arns["ok"], {"SUCCEEDED"})
        assert json.loads(ok["output"])["answer"] == {"url": "v.mp4"}
        failed = settle(sfn, arns["fail"], {"FAILED"})
        assert (failed["error"], failed["cause"]) == ("Room.Closed", "no teacher")
        beat = settle(sfn, arns["beat"], {"FAILED"})
        assert beat["error"] == "States.Timeout"  # a heartbeat's timeout, as AWS reports it
        kinds = [e["type"] for e in all_events(sfn, arns["beat"])]
        assert kinds[-2:] == ["TaskTimedOut", "ExecutionFailed"]

        with pytest.raises(sfn.exceptions.TaskTimedOut):
            sfn.send_task_success(taskToken=tokens["ok"], output="{}")
        with pytest.raises(sfn.exceptions.TaskTimedOut):
            sfn.send_task_heartbeat(taskToken=tokens["beat"])
        with pytest.raises(sfn.exceptions.InvalidToken):
            sfn.send_task_failure(taskToken="not-a-token")
        with pytest.raises(sfn.exceptions.InvalidOutput):
            sfn.send_task_success(taskToken=tokens["ok"], output="{not json")


# -- an answer that is not Unicode text --------------------------------------------------


class _LoneSurrogateAnswer(http.server.BaseHTTPRequestHandler):
    """Answers every POST with JSON whose escape gives a lone surrogate; counts the calls."""

    calls: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.calls.append(self.headers.get("Idempotency-Key", ""))
        body = b'{"room": "\\ud800", "ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def test_an_answer_holding_a_lone_surrogate_is_kept_and_sent_once(
    start_daemon, tmp_path_factory, settle
):
    """A task's answer whose JSON holds a lone UTF-16 surrogate (no store can write it as it
    is) becomes the task's result, written escaped: the execution goes on to succeed, with
    the same value in its output, and the call is made once."""
    folder = tmp_path_factory.mktemp("surrogate-answer")
    path = folder / "asker.asl.json"
    definition = {
        "StartAt": "Ask",
        "States": {
            "Ask": {"Type": "Task", "Resource": "arn:aws:states:::task:ask", "Next": "Done"},
            "Done": {"Type": "Pass", "End": True},
        },
    }
    path.write_text(json.dumps(definition), encoding="utf-8")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LoneSurrogateAnswer)
    with serving(server):
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        with start_daemon(folder, base_url, [("asker", path, {"Ask": "/ask"})]) as d:
            sfn = d.client()
            arn = sfn.start_execution(stateMachineArn=machine_arn("asker"), name="lone")
            done = settle(sfn, arn["executionArn"], {"SUCCEEDED", "FAILED"})
            time.sleep(2.5)  # past the timers' sweep: nothing runs the call again
    assert done["status"] == "SUCCEEDED"
    assert json.loads(done["output"]) == {"room": "\ud800", "ok": True}
    assert len(_LoneSurrogateAnswer.calls) == 1


# -- the execution's own timeout ------------------------------------------------------------


def test_an_execution_that_timed_out_is_described_as_aws_describes_it(
    start_daemon, classroom, tmp_path_factory, settle
):
    """The machine's TimeoutSeconds ends it TIMED_OUT: DescribeExecution has no error or cause
    (AWS-recorded), the history ends in ExecutionTimedOut, and it may be redriven."""
    folder = tmp_path_factory.mktemp("timeout")
    path = folder / "slow.asl.json"
    path.write_text(
        json.dumps(
            {
                "TimeoutSeconds": 1,
                "StartAt": "Nap",
                "States": {"Nap": {"Type": "Wait", "Seconds": 60, "End": True}},
            }
        ),
        encoding="utf-8",
    )
    with start_daemon(folder, classroom.base_url, [("slow", path, {})]) as d:
        sfn = d.client()
        arn = sfn.start_execution(stateMachineArn=machine_arn("slow"), name="napper")[
            "executionArn"
        ]
        described = settle(sfn, arn, {"TIMED_OUT"})
        assert "error" not in described
        assert "cause" not in described
        assert described["redriveStatus"] == "REDRIVABLE"
        assert [e["type"] for e in all_events(sfn, arn)][-1] == "ExecutionTimedOut"
