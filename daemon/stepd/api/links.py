"""`previousEventId` as AWS links a history's events.

Most events name the event just before them, but not all: the first state entered names
none (0); the next iteration of a Map names the last event of the iteration before it, not its
MapIterationSucceeded; a Map state's exit names the event before its MapStateSucceeded; an
EvaluationFailed (or a stop) that ends a state as it is entered
names what that state's entry named. These are the links AWS records for one branch of events;
stepd records the events of a Parallel's branches and a Map's iterations one after another,
so they are linked as if run in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from stepd.store.records import Event

# (event, the event just before it): the event names what the one before it named
_PAST_THE_ONE_BEFORE: Final = frozenset(
    {
        ("MapIterationStarted", "MapIterationSucceeded"),
        ("MapIterationStarted", "MapIterationFailed"),
        ("MapStateStarted", "MapIterationFailed"),  # the Map state retried
        ("MapStateFailed", "MapIterationFailed"),
        ("ParallelStateFailed", "TaskStateAborted"),
        ("MapStateExited", "MapStateSucceeded"),
    }
)
# the kinds of state whose entry an EvaluationFailed goes past (a Wait's names its entry)
_ENTRY_FAILS: Final = frozenset({"Pass", "Task", "Map", "Parallel", "Choice"})
ENTERED: Final = "StateEntered"


def linked(events: Sequence[Event]) -> list[Event]:
    """`events` (consecutive, in ascending order) with AWS's `previous_id`s; the first keeps
    its own, so give a few events before the ones that matter."""
    shown: list[Event] = []
    for n, event in enumerate(events):
        if n == 0:
            shown.append(event)
            continue
        shown.append(replace(event, previous_id=_previous(event.type, shown)))
    return shown


def _previous(kind: str, before: list[Event]) -> int:
    last = before[-1]
    if last.type == "ExecutionStarted":
        return 0
    if (kind, last.type) in _PAST_THE_ONE_BEFORE:
        return last.previous_id
    entered = last.type.endswith(ENTERED)
    if kind == "EvaluationFailed" and entered and last.type.removesuffix(ENTERED) in _ENTRY_FAILS:
        return last.previous_id
    if kind == "ExecutionAborted" and entered:
        return last.previous_id
    return last.id
