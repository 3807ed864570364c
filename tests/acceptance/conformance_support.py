"""The runner shared by the tests of AWS-recorded cases (test_conformance*.py).

/work/shared/conformance/aws-recorded-cases.json holds ASL cases with the results AWS
recorded. `serve` writes the chosen cases as machines `c<n>` of one `stepd run` (a
definition `stepd check` refuses would stop the daemon from starting, so it is left out and
its case fails with the findings); `run_case` starts one with boto3's StartExecution and
waits for DescribeExecution to show it closed; `assert_ends_as_recorded` compares the status
and the output (JSON-equal) or the error and the cause, and `history_types` gives the event
types of GetExecutionHistory.

The recordings replace values that change from run to run with placeholders: a string that
is exactly `<timestamp>` matches any string, and `<timestamp>` or `<json-input:N>` inside a
cause matches any text.

Attribution and licence of the cases: the definitions and inputs come from LocalStack's Step
Functions tests (github.com/localstack/localstack, commit
8b9a79f05846835cf4dff63ab7eefdde9df83783, Apache-2.0), and the expected status, output,
error, cause and history event types from their snapshot files, which LocalStack records
against real AWS (tests marked `aws.validated`).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest

from stepd.asl.validate import validate

CASES_FILE: Final = Path("/work/shared/conformance/aws-recorded-cases.json")
CLOSED: Final = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
TIMESTAMP: Final = "<timestamp>"
_PLACEHOLDER: Final = re.compile(r"<timestamp>|<json-input:\d+>")
_PREFIXES: Final = ("scenarios_test_base_scenarios::BaseScenarios::",)
MACHINE_ARN: Final = "arn:aws:states:us-east-1:123456789012:stateMachine:c{number}"
# A case whose test puts its Wait's timestamp this many days after the moment it runs
_DAYS_FROM_NOW: Final = re.compile(r"::test_timestamp_too_far_in_future_boundary\[(\d+)\]$")


def load_cases(categories: set[str]) -> list[dict[str, Any]]:
    """The cases of `categories`, in the file's order; none when the file is not here."""
    if not CASES_FILE.exists():
        return []
    cases = json.loads(CASES_FILE.read_text(encoding="utf-8"))["cases"]
    return [c for c in cases if c["category"] in categories]


def short(case: dict[str, Any]) -> str:
    """The case's id without the LocalStack test class most ids share."""
    name = str(case["id"])
    for prefix in _PREFIXES:
        name = name.removeprefix(prefix)
    return name


@dataclass(frozen=True, kw_only=True)
class Served:
    """A daemon serving cases: its boto3 client, and the cases `stepd check` refused."""

    sfn: Any
    refused: dict[int, list[str]] = field(default_factory=dict)  # number -> error findings


@contextlib.contextmanager
def serve(
    cases: list[dict[str, Any]],
    folder: Path,
    start_daemon: Callable[..., Any],
    endpoints: Callable[[int, dict[str, Any]], dict[str, str]] | None = None,
    also: Mapping[str, dict[str, Any]] | None = None,
) -> Iterator[Served]:
    """One daemon serving every case `stepd check` accepts as machine `c<n>`; `endpoints`
    gives a case's `[machines.endpoints]` (none by default); `also` names more machines
    (their definitions) the cases use, as the machine a Task starts."""
    machines = []
    for name, definition in (also or {}).items():
        path = folder / f"{name}.asl.json"
        path.write_text(json.dumps(definition), encoding="utf-8")
        machines.append((name, path, {}))
    refused: dict[int, list[str]] = {}
    for number, case in enumerate(cases):
        errors = [
            f"{f.where}: {f.code}: {f.message}"
            for f in validate(case["definition"])
            if f.severity == "error"
        ]
        if errors:
            refused[number] = errors
            continue
        path = folder / f"c{number}.asl.json"
        path.write_text(json.dumps(case["definition"]), encoding="utf-8")
        machines.append((f"c{number}", path, endpoints(number, case) if endpoints else {}))
    with start_daemon(folder, "http://127.0.0.1:9", machines) as running:
        yield Served(sfn=running.client(), refused=refused)


def run_case(
    served: Served,
    settle: Callable[..., dict[str, Any]],
    number: int,
    case: dict[str, Any],
    deadline: float,
) -> tuple[str, dict[str, Any]]:
    """Start case `number` and wait until it closes: its execution ARN and DescribeExecution."""
    if number in served.refused:
        pytest.fail(f"stepd check refuses the definition: {served.refused[number]}")
    sfn = served.sfn
    arn = sfn.start_execution(
        stateMachineArn=MACHINE_ARN.format(number=number),
        name="run",
        input=json.dumps(case_input(case)),
    )["executionArn"]
    return arn, settle(sfn, arn, set(CLOSED), deadline)


def case_input(case: dict[str, Any], now: datetime | None = None) -> Any:
    """The case's input as its test makes it when it runs. The boundary cases of a Wait's
    longest delay put `start_at` N days after the moment they run (AWS refuses a delay of
    24,856 days, just beyond 2**31 seconds); the file holds the instant its recording computed,
    which drifts under the boundary a day later, so it is made again from now."""
    match = _DAYS_FROM_NOW.search(case["id"])
    if match is None:
        return case["input"]
    at = (now or datetime.now(UTC)) + timedelta(days=int(match.group(1)))
    return {**case["input"], "start_at": at.strftime("%Y-%m-%dT%H:%M:%S.000Z")}


def assert_ends_as_recorded(case: dict[str, Any], described: dict[str, Any]) -> None:
    """Status, then output (JSON-equal) or error and cause, as AWS recorded them."""
    expected = case["expected"]
    status = described["status"]
    got = (described.get("error"), described.get("cause"), described.get("output"))
    assert status == expected["status"], f"{status} (error, cause, output: {got})"
    if expected["status"] == "SUCCEEDED":
        assert_json_matches(json.loads(described["output"]), expected["output"])
    else:
        error, cause = described.get("error"), described.get("cause")
        assert error == expected.get("error"), f"error {error!r} (cause {cause!r})"
        if isinstance(expected.get("cause"), dict | list):  # recorded as JSON, not as text
            assert_json_matches(json.loads(cause or "null"), expected["cause"])
        else:
            assert text_matches(cause, expected.get("cause")), f"cause {cause!r}"


def assert_json_matches(actual: Any, expected: Any) -> None:
    """JSON-equal, where a `<timestamp>` string in `expected` matches any string."""
    compared = _without_placeholders(actual, expected)
    assert compared == expected, f"output {paths_json(actual)} != {paths_json(expected)}"


def paths_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))[:2000]


def _without_placeholders(actual: Any, expected: Any) -> Any:
    if expected == TIMESTAMP and isinstance(actual, str):
        return TIMESTAMP
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: _without_placeholders(v, expected.get(k)) for k, v in actual.items()}
    if isinstance(expected, list) and isinstance(actual, list) and len(actual) == len(expected):
        return [_without_placeholders(a, e) for a, e in zip(actual, expected, strict=True)]
    return actual


def text_matches(actual: str | None, expected: str | None) -> bool:
    """Equal, where a placeholder in `expected` matches any non-empty text."""
    if actual is None or expected is None:
        return actual == expected
    pattern = ".+".join(re.escape(piece) for piece in _PLACEHOLDER.split(expected))
    return re.fullmatch(pattern, actual, re.DOTALL) is not None


def history_types(sfn: Any, arn: str) -> list[str]:
    """The types of the execution's history events, oldest first."""
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [e["type"] for e in events]
