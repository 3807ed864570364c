"""previousEventId as AWS links a history's events.

Each case is a history AWS recorded (event types, in order, and the previousEventId of each),
from LocalStack's Step Functions snapshot files (github.com/localstack/localstack, commit
8b9a79f05846835cf4dff63ab7eefdde9df83783, Apache-2.0; tests/acceptance/conformance/NOTICE).
"""

from __future__ import annotations

import pytest

from stepd.api.links import linked
from stepd.api.protocol import LINK_CONTEXT
from stepd.store.records import Event

CASES = {
    # scenarios/test_base_scenarios: test_map_state (the first three iterations)
    "inline-map": [
        ("ExecutionStarted", 0),
        ("PassStateEntered", 0),
        ("PassStateExited", 2),
        ("MapStateEntered", 3),
        ("MapStateStarted", 4),
        ("MapIterationStarted", 5),
        ("PassStateEntered", 6),
        ("PassStateExited", 7),
        ("MapIterationSucceeded", 8),
        ("MapIterationStarted", 8),
        ("PassStateEntered", 10),
        ("PassStateExited", 11),
        ("MapIterationSucceeded", 12),
        ("MapStateSucceeded", 13),
        ("MapStateExited", 13),
        ("ExecutionSucceeded", 15),
    ],
    # assign/test_assign_reference_variables: BASE_UNDEFINED_OUTPUT_MULTIPLE_STATES
    "evaluation-failed": [
        ("ExecutionStarted", 0),
        ("PassStateEntered", 0),
        ("PassStateExited", 2),
        ("PassStateEntered", 3),
        ("PassStateExited", 4),
        ("PassStateEntered", 5),
        ("EvaluationFailed", 5),
        ("ExecutionFailed", 7),
    ],
    # scenarios/test_base_scenarios: test_wait_timestamp_jsonata[NO_T]
    "wait-evaluation-failed": [
        ("ExecutionStarted", 0),
        ("WaitStateEntered", 0),
        ("EvaluationFailed", 2),
        ("ExecutionFailed", 3),
    ],
    # the test_sfn_api snapshot, test_stop_execution
    "stopped": [("ExecutionStarted", 0), ("WaitStateEntered", 0), ("ExecutionAborted", 0)],
    # scenarios/test_base_scenarios: test_map_state_retry (its end)
    "map-retried": [
        ("ExecutionStarted", 0),
        ("MapStateEntered", 0),
        ("MapStateStarted", 2),
        ("MapIterationStarted", 3),
        ("FailStateEntered", 4),
        ("MapIterationFailed", 5),
        ("MapStateStarted", 5),
        ("MapIterationStarted", 7),
        ("FailStateEntered", 8),
        ("MapIterationFailed", 9),
        ("MapStateFailed", 9),
        ("ExecutionFailed", 11),
    ],
}


@pytest.mark.parametrize("name", list(CASES))
def test_events_are_linked_as_aws_recorded(name: str) -> None:
    recorded = CASES[name]
    stored = [
        Event(id=n, previous_id=n - 1, ts=0.0, type=kind, details={})
        for n, (kind, _) in enumerate(recorded, start=1)
    ]
    assert [e.previous_id for e in linked(stored)] == [previous for _, previous in recorded]


@pytest.mark.parametrize("first", range(4, len(CASES["inline-map"])))
def test_a_page_read_with_four_events_before_it_is_linked_as_the_whole(first: int) -> None:
    """GetExecutionHistory reads a page with the four events before it (LINK_CONTEXT)."""
    recorded = CASES["inline-map"]
    stored = [
        Event(id=n, previous_id=n - 1, ts=0.0, type=kind, details={})
        for n, (kind, _) in enumerate(recorded, start=1)
    ]
    page = linked(stored[first - LINK_CONTEXT :])[LINK_CONTEXT:]
    assert [e.previous_id for e in page] == [previous for _, previous in recorded[first:]]
