"""Shared values for the ASL interpreter tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stepd.asl.decisions import Context

NOW = datetime(2024, 8, 18, 12, 0, 0, 500000, tzinfo=UTC)
EXECUTION_ARN = "arn:aws:states:us-east-1:123456789012:execution:classroom:room-42"
MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:classroom"


def context(state_name: str = "S", execution_input: Any = None, retry_count: int = 0) -> Context:
    """A context object for one visit of `state_name`, entered at NOW."""
    return Context(
        execution_id=EXECUTION_ARN,
        execution_name="room-42",
        execution_input={} if execution_input is None else execution_input,
        execution_start_time=datetime(2024, 8, 18, 11, 0, 0, 192000, tzinfo=UTC),
        state_machine_id=MACHINE_ARN,
        state_machine_name="classroom",
        state_name=state_name,
        state_entered_time=NOW,
        retry_count=retry_count,
    )


def machine(name: str, state: dict[str, Any], **others: dict[str, Any]) -> dict[str, Any]:
    """A definition that starts in `name` and holds `others` as further states."""
    return {"StartAt": name, "States": {name: state, **others}}


def never() -> float:
    """A random source for tests that must not draw."""
    raise AssertionError("random() was called")
