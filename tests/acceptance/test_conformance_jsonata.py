"""AWS-recorded JSONata and variables cases, run through the real daemon and the real API.

Every `jsonata` and `variables` case of /work/shared/conformance/aws-recorded-cases.json runs
as a machine of one `stepd run`, started with boto3's StartExecution; DescribeExecution gives
the status and the output (compared JSON-equal) or the error and cause. A case that still
differs from AWS is listed in KNOWN_DIFFERENCES with the reason, and expected to fail.

Attribution and licence of the cases: the definitions and inputs come from LocalStack's Step
Functions tests (github.com/localstack/localstack, commit
8b9a79f05846835cf4dff63ab7eefdde9df83783, Apache-2.0), and the expected status, output,
error, cause and history event types from their snapshot files, which LocalStack records
against real AWS (tests marked `aws.validated`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CASES_FILE = Path("/work/shared/conformance/aws-recorded-cases.json")
CATEGORIES = {"jsonata", "variables"}
SETTLE_SECONDS = 30.0

# Cases stepd still runs differently from AWS, and why.
KNOWN_DIFFERENCES: dict[str, str] = {}


def _cases() -> list[dict[str, Any]]:
    if not CASES_FILE.exists():
        return []
    cases = json.loads(CASES_FILE.read_text(encoding="utf-8"))["cases"]
    return [c for c in cases if c["category"] in CATEGORIES]


CASES = _cases()


def _short(case: dict[str, Any]) -> str:
    return str(case["id"]).split("::")[-1]


def _params() -> list[Any]:
    params = []
    for number, case in enumerate(CASES):
        reason = KNOWN_DIFFERENCES.get(_short(case))
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        params.append(pytest.param(number, id=_short(case), marks=marks))
    return params


@pytest.fixture(scope="module")
def conformance(tmp_path_factory, start_daemon) -> Iterator[Any]:
    """One daemon serving every case as machine `c<n>`."""
    if not CASES:
        pytest.skip(f"{CASES_FILE} is not here")
    folder = tmp_path_factory.mktemp("conformance")
    machines = []
    for number, case in enumerate(CASES):
        path = folder / f"c{number}.asl.json"
        path.write_text(json.dumps(case["definition"]), encoding="utf-8")
        machines.append((f"c{number}", path, {}))
    with start_daemon(folder, "http://127.0.0.1:9", machines) as running:
        yield running.client()


@pytest.mark.parametrize("number", _params())
def test_the_case_ends_as_aws_recorded(conformance: Any, settle: Any, number: int) -> None:
    """Status, and output or error and cause, match AWS's recording."""
    case = CASES[number]
    expected = case["expected"]
    sfn = conformance
    arn = sfn.start_execution(
        stateMachineArn=f"arn:aws:states:us-east-1:123456789012:stateMachine:c{number}",
        name="run",
        input=json.dumps(case["input"]),
    )["executionArn"]
    described = settle(sfn, arn, {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}, SETTLE_SECONDS)
    assert described["status"] == expected["status"], described
    if expected["status"] == "SUCCEEDED":
        assert json.loads(described["output"]) == expected["output"]
    else:
        assert (described.get("error"), described.get("cause")) == (
            expected.get("error"),
            expected.get("cause"),
        )
