"""AWS-recorded Choice, intrinsic, data-flow, error, Wait and context-object cases.

Every case of the categories below in /work/shared/conformance/aws-recorded-cases.json runs
as a machine of one `stepd run`, started with boto3's StartExecution; DescribeExecution gives
the status and the output (compared JSON-equal) or the error and the cause (where AWS recorded
one), GetExecutionHistory the event types where AWS recorded them. A case stepd still runs
differently is in KNOWN_DIFFERENCES with the reason, and is expected to fail (strictly: a
case that starts to pass must leave the table).

Attribution and licence of the cases: the definitions and inputs come from LocalStack's Step
Functions tests (github.com/localstack/localstack, commit
8b9a79f05846835cf4dff63ab7eefdde9df83783, Apache-2.0), and the expected status, output,
error, cause and history event types from their snapshot files, which LocalStack records
against real AWS (tests marked `aws.validated`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.acceptance.conformance_support import (
    CASES_FILE,
    Served,
    assert_ends_as_recorded,
    history_types,
    load_cases,
    run_case,
    serve,
    short,
)

CATEGORIES = {"choice", "intrinsic", "pass-dataflow", "errors", "wait", "context"}
SETTLE_SECONDS = 30.0

# Cases stepd does not end as AWS recorded, and why.
KNOWN_DIFFERENCES: dict[str, str] = {}
# Cases whose history types differ from AWS's, and why; the rest of the case is compared.
KNOWN_HISTORY_DIFFERENCES: dict[str, str] = {}

CASES = load_cases(CATEGORIES)


def _param(number: int, case: dict[str, Any]) -> Any:
    reason = KNOWN_DIFFERENCES.get(short(case))
    marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
    return pytest.param(number, id=short(case), marks=marks)


@pytest.fixture(scope="module")
def conformance(tmp_path_factory, start_daemon) -> Iterator[Served]:
    """One daemon serving every case as machine `c<n>`."""
    if not CASES:
        pytest.skip(f"{CASES_FILE} is not here")
    with serve(CASES, tmp_path_factory.mktemp("conformance"), start_daemon) as served:
        yield served


@pytest.mark.parametrize("number", [_param(n, c) for n, c in enumerate(CASES)])
def test_the_case_ends_as_aws_recorded(conformance: Served, settle: Any, number: int) -> None:
    """Status, output or error and cause, and history types match AWS's recording."""
    case = CASES[number]
    arn, described = run_case(conformance, settle, number, case, SETTLE_SECONDS)
    assert_ends_as_recorded(case, described)
    if "history_types" in case["expected"] and short(case) not in KNOWN_HISTORY_DIFFERENCES:
        assert history_types(conformance.sfn, arn) == case["expected"]["history_types"]


def test_the_tables_name_only_cases_that_exist() -> None:
    """Every id in the tables of differences is a case of these categories."""
    ids = {short(c) for c in CASES}
    if not ids:
        pytest.skip(f"{CASES_FILE} is not here")
    assert set(KNOWN_DIFFERENCES) - ids == set()
    assert set(KNOWN_HISTORY_DIFFERENCES) - ids == set()
