"""AWS-recorded Parallel and Map cases, run through the real daemon and the real API.

Every `map` and `parallel` case of /work/shared/conformance/aws-recorded-cases.json runs as a
machine of one `stepd run`, started with boto3's StartExecution; DescribeExecution gives the
status and the output (compared JSON-equal) or the error and cause, GetExecutionHistory the
event types, compared where AWS recorded them except for the known differences below.

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

CATEGORIES = {"map", "parallel"}
SETTLE_SECONDS = 30.0  # the Retry cases wait 1 + 2 s between attempts

# Cases whose history types stepd does not record as AWS did, and why; status and output
# (or error and cause) are still compared.
KNOWN_HISTORY_DIFFERENCES = {
    "test_parallel_state_order": (
        "AWS interleaves concurrent branches (every PassStateEntered before any "
        "PassStateExited); stepd records each branch's steps together, in branch order"
    ),
}


CASES = load_cases(CATEGORIES)


@pytest.fixture(scope="module")
def conformance(tmp_path_factory, start_daemon) -> Iterator[Served]:
    """One daemon serving every case as machine `c<n>`."""
    if not CASES:
        pytest.skip(f"{CASES_FILE} is not here")
    with serve(CASES, tmp_path_factory.mktemp("conformance"), start_daemon) as served:
        yield served


@pytest.mark.parametrize("number", range(len(CASES)), ids=[short(c) for c in CASES])
def test_the_case_ends_as_aws_recorded(conformance: Served, settle: Any, number: int) -> None:
    """Status, output or error and cause, and history types match AWS's recording."""
    case = CASES[number]
    arn, described = run_case(conformance, settle, number, case, SETTLE_SECONDS)
    assert_ends_as_recorded(case, described)
    if "history_types" in case["expected"] and short(case) not in KNOWN_HISTORY_DIFFERENCES:
        assert history_types(conformance.sfn, arn) == case["expected"]["history_types"]
