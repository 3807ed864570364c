"""RedriveExecution as AWS does it: which closed executions may be taken up again, and how.

A redriven execution enters again the state it failed in, with the input that state had. A
Parallel or Map state that failed runs again only the children that did not succeed (failed,
or stopped when a sibling failed); those that succeeded keep their output, and the children
never started start as they would have.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from stepd.store.records import (
    PHASE_ENTER,
    PHASE_FANOUT,
    RUNNING,
    SUCCEEDED,
    Cursor,
    Execution,
    Progress,
)

REDRIVABLE = "REDRIVABLE"
NOT_REDRIVABLE = "NOT_REDRIVABLE"
REDRIVABLE_PERIOD_SECONDS = 14 * 86_400  # AWS: within 14 days of closing
MAX_OPEN_SECONDS = 365 * 86_400  # AWS: an execution is open at most a year
MAX_EVENTS_TO_REDRIVE = 24_999  # AWS: fewer events, to leave room for the redrive's own

ChildrenOf = Callable[[str], Awaitable[list[Cursor]]]  # a cursor's children that did not succeed
P = TypeVar("P", bound=Progress)


def refusal(execution: Execution, now: float) -> str | None:
    """Why `execution` cannot be redriven at `now`, in AWS's words (its redriveStatusReason
    and the message of ExecutionNotRedrivable); None when it can."""
    if execution.status in {RUNNING, SUCCEEDED}:
        return f"Execution is {execution.status} and cannot be redriven"
    if execution.resume is None:  # closed by a stepd that did not keep where it stood
        return "Execution was started before the launch of RedriveExecution"
    if execution.last_event_id >= MAX_EVENTS_TO_REDRIVE:
        return "Execution history event limit exceeded"
    if now - execution.start_date > MAX_OPEN_SECONDS:
        return "Execution has exceeded the max execution time"
    if execution.stop_date is None or now - execution.stop_date > REDRIVABLE_PERIOD_SECONDS:
        return "Execution redrivable period exceeded"
    return None


async def revive(
    progress: P, cursor_id: str, children_of: ChildrenOf, now: float
) -> tuple[P, list[Cursor]]:
    """`progress` (of the cursor `cursor_id`, closed without succeeding) running again from
    `now`, and its descendants that run again with it."""
    again = replace(
        progress,
        status=RUNNING,
        stop_date=None,
        output=None,
        error=None,
        cause=None,
        due_at=now,
        attempt=0,
        retry_counts=(),
    )
    resume = progress.resume
    fanout = resume.fanout if resume is not None else None
    if fanout is None:  # the state is entered again, with the input it had
        return replace(again, phase=PHASE_ENTER, pending=None), []
    revived: list[Cursor] = []
    running = 0
    for child in await children_of(cursor_id):  # those that did not succeed
        child_again, below = await revive(child, child.id, children_of, now)
        revived += [child_again, *below]
        running += 1
    # those that succeeded keep their outputs, and the record its count of them
    fanout = replace(fanout, running=running, failed=0, retry_at=None)
    return replace(again, phase=PHASE_FANOUT, pending=fanout), revived
