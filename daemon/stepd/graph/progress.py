"""Where an execution has been, read from its history.

`progress(events)` reads an execution's history (events shaped as GetExecutionHistory returns
them) into one status per state: done, failed (its task failed last, or the execution ended
there), current (the execution is in it) or not reached; and the transitions it took.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Per-state status in an execution.
DONE = "done"
FAILED = "failed"
CURRENT = "current"
NOT_REACHED = "not-reached"

EXECUTION_FAILURES = frozenset({"ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"})
TASK_FAILURES = frozenset({"TaskFailed", "TaskTimedOut"})


@dataclass(frozen=True, kw_only=True)
class Progress:
    """Where an execution has been: each entered state's status, and the edges it took."""

    states: Mapping[str, str]
    taken: frozenset[tuple[str | None, str | None]]

    def status(self, name: str) -> str:
        return self.states.get(name, NOT_REACHED)


def progress(events: Iterable[Mapping[str, Any]]) -> Progress:
    """Read a history, oldest event first, each shaped as GetExecutionHistory returns it."""
    states: dict[str, str] = {}
    taken: set[tuple[str | None, str | None]] = set()
    errored: set[str] = set()
    previous: str | None = None  # the state last left
    current: str | None = None  # the state last entered
    for event in events:
        event_type = str(event.get("type", ""))
        if event_type.endswith("StateEntered"):
            name = _state_name(event, "stateEnteredEventDetails")
            taken.add((previous, name))
            states[name] = CURRENT
            errored.discard(name)
            current = name
        elif event_type.endswith("StateExited"):
            name = _state_name(event, "stateExitedEventDetails")
            states[name] = FAILED if name in errored else DONE
            previous = name
        elif event_type in TASK_FAILURES and current is not None:
            errored.add(current)
        elif event_type == "TaskSucceeded" and current is not None:
            errored.discard(current)
        elif event_type == "ExecutionSucceeded":
            taken.add((previous, None))
        elif event_type in EXECUTION_FAILURES:
            for name, status in states.items():
                if status == CURRENT:
                    states[name] = FAILED
    return Progress(states=states, taken=frozenset(taken))


def _state_name(event: Mapping[str, Any], key: str) -> str:
    details = event.get(key)
    return str(details.get("name", "")) if isinstance(details, Mapping) else ""
