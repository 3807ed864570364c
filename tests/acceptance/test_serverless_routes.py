"""serverless.yml `events: - http:` routes on a real daemon whose machine is a serverless.yml.

`POST /classroom/create?name=N` with a JSON body starts execution N with that body as input,
as the serverless-step-functions plugin's API Gateway route does; the execution is then seen
through boto3, and its task calls at the stand-in classroom server.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

import httpx
import pytest

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROUTE = "/classroom/create"
SERVERLESS_YML = """\
service: classroom
provider:
  name: aws
  runtime: nodejs20.x
  stage: dev
functions:
  startRecorder:
    handler: recorder.start
  sendLivePing:
    handler: recorder.ping
  stopRecorder:
    handler: recorder.stop
plugins:
  - serverless-step-functions
stepFunctions:
  validate: true
  stateMachines:
    classroom:
      name: classroom-state-machine
      type: STANDARD
      events:
        - http:
            path: classroom/create
            method: POST
      definition:
        Comment: The classroom machine with a one-second ping wait
        StartAt: RecordingWait
        States:
          RecordingWait:
            Type: Wait
            TimestampPath: $.start
            Next: StartRecording
          StartRecording:
            Type: Task
            Resource:
              Fn::GetAtt: [startRecorder, Arn]
            ResultPath: null
            Next: SendLivePingWait
          SendLivePingWait:
            Type: Wait
            Seconds: 1
            Next: SendLivePing
          SendLivePing:
            Type: Task
            Resource: !GetAtt sendLivePing.Arn
            ResultPath: null
            Next: StoppingWait
          StoppingWait:
            Type: Wait
            TimestampPath: $.end
            Next: StopRecording
          StopRecording:
            Type: Task
            Resource:
              Fn::GetAtt: [StopRecorderLambdaFunction, Arn]
            ResultPath: null
            End: true
"""
# Mapped by Resource (a function key, a GetAtt, a logical id), not by state name.
ENDPOINTS = {
    "startRecorder": "/recording/start",
    "sendLivePing.Arn": "/recording/ping",
    "StopRecorderLambdaFunction": "/recording/stop",
}
RECORDING_PATHS = ["/recording/start", "/recording/ping", "/recording/stop"]
LIFECYCLE_DEADLINE_SECONDS = 30.0


def execution_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:classroom:{name}"


def stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def later_class() -> str:
    """A class an hour from now: the execution stays in RecordingWait."""
    now = time.time()
    return json.dumps({"start": stamp(now + 3600), "end": stamp(now + 7200), "room": "r-1"})


@pytest.fixture(scope="module")
def sls_daemon(tmp_path_factory, start_daemon, classroom):
    """`stepd run` whose only machine, `classroom`, is defined by a serverless.yml."""
    folder = tmp_path_factory.mktemp("serverless")
    definition = folder / "serverless.yml"
    definition.write_text(SERVERLESS_YML, encoding="utf-8")
    with start_daemon(
        folder, classroom.base_url, [("classroom", definition, ENDPOINTS)]
    ) as running:
        yield running


@pytest.fixture(scope="module")
def sls_sfn(sls_daemon) -> Any:
    return sls_daemon.client()


def post(daemon: Any, body: bytes | str, *, name: str | None = None, **kwargs: Any) -> Any:
    params = {"name": name} if name is not None else None
    return httpx.post(
        f"{daemon.url}{ROUTE}",
        content=body,
        params=params,
        headers={"Content-Type": "application/json", **kwargs.pop("headers", {})},
        timeout=30.0,
        **kwargs,
    )


def test_the_route_starts_an_execution_named_by_the_query(sls_daemon, sls_sfn):
    """POST /classroom/create?name=cls-1 starts execution cls-1 with the body as its input."""
    body = later_class()
    response = post(sls_daemon, body, name="cls-1")
    described = sls_sfn.describe_execution(executionArn=execution_arn("cls-1"))
    assert (response.status_code, response.json()["executionArn"]) == (200, execution_arn("cls-1"))
    assert (described["name"], described["status"], described["input"]) == (
        "cls-1",
        "RUNNING",
        body,
    )


def test_the_route_runs_the_whole_class(sls_daemon, sls_sfn, classroom, settle):
    """A class started by the route records: start at `start`, a ping, stop at `end`."""
    name = f"cls-{uuid.uuid4().hex[:12]}"
    start = math.ceil(time.time()) + 1
    end = start + 2
    body = json.dumps({"start": stamp(start), "end": stamp(end), "room": "r-2"})

    response = post(sls_daemon, body, name=name)
    described = settle(
        sls_sfn,
        execution_arn(name),
        {"SUCCEEDED", "FAILED", "ABORTED"},
        deadline=LIFECYCLE_DEADLINE_SECONDS,
    )
    calls = [
        r for r in classroom.records() if (r.idempotency_key or "").startswith(f"classroom/{name}/")
    ]

    assert (response.status_code, described["status"]) == (200, "SUCCEEDED")
    assert [c.path for c in calls] == RECORDING_PATHS
    assert [c.body for c in calls] == [json.loads(body)] * 3
    assert (calls[0].received_at >= start, calls[2].received_at >= end) == (True, True)


def test_the_route_without_a_name_generates_one(sls_daemon, sls_sfn):
    """Without ?name= the route starts an execution under a generated name."""
    body = later_class()
    response = post(sls_daemon, body)
    arn = response.json()["executionArn"]
    described = sls_sfn.describe_execution(executionArn=arn)
    assert (response.status_code, described["input"], described["status"]) == (200, body, "RUNNING")
    assert arn == execution_arn(described["name"])
    assert 0 < len(described["name"]) <= 80


def test_the_route_takes_the_name_from_a_header(sls_daemon, sls_sfn):
    """The X-Stepd-Execution-Name header names the execution when the query does not."""
    name = f"hdr-{uuid.uuid4().hex[:12]}"
    response = post(sls_daemon, later_class(), headers={"X-Stepd-Execution-Name": name})
    assert (response.status_code, response.json()["executionArn"]) == (200, execution_arn(name))


def test_the_same_name_and_body_again_is_idempotent(sls_daemon):
    """Posting the same name and body twice answers the same execution."""
    name = f"twice-{uuid.uuid4().hex[:12]}"
    body = later_class()
    first = post(sls_daemon, body, name=name)
    again = post(sls_daemon, body, name=name)
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json() == again.json()


def test_the_same_name_with_another_body_is_already_exists(sls_daemon):
    """Posting a running execution's name with another body is 400 ExecutionAlreadyExists."""
    name = f"clash-{uuid.uuid4().hex[:12]}"
    post(sls_daemon, later_class(), name=name)
    response = post(sls_daemon, json.dumps({"start": "2099-01-01T00:00:00Z"}), name=name)
    assert (response.status_code, response.json()["__type"]) == (400, "ExecutionAlreadyExists")


@pytest.mark.parametrize(
    ("body", "aws_type"),
    [
        (b"{not json", "InvalidExecutionInput"),
        (b'{"start": ', "InvalidExecutionInput"),
        (b"\xff\xfe\x00", "InvalidExecutionInput"),
    ],
    ids=["not-json", "truncated", "not-utf8"],
)
def test_a_bad_body_is_400_with_aws_shape(sls_daemon, body, aws_type):
    """A body that is not JSON answers 400 {"__type", "message"} and starts nothing."""
    name = f"bad-{uuid.uuid4().hex[:12]}"
    response = post(sls_daemon, body, name=name)
    assert response.status_code == 400, response.text[:200]
    assert (set(response.json()), response.json()["__type"]) == ({"__type", "message"}, aws_type)


def test_an_invalid_name_is_400_invalid_name(sls_daemon):
    """?name= with a character AWS refuses is 400 InvalidName."""
    response = post(sls_daemon, later_class(), name="has space")
    assert (response.status_code, response.json()["__type"]) == (400, "InvalidName")


def test_the_route_leaves_the_aws_api_in_place(sls_daemon, sls_sfn):
    """The daemon with routes still serves the AWS API: the machine is listed by its name."""
    machines = sls_sfn.list_state_machines()["stateMachines"]
    assert [m["name"] for m in machines] == ["classroom"]
