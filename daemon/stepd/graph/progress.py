"""Where an execution has been, read from its history.

`progress(events)` reads an execution's history (events shaped as GetExecutionHistory returns
them) into one status per state: done, failed (its task failed last, or the execution ended
there), current (the execution is in it) or not reached; the transitions it took; and, for
each Map state, how many of its iterations have succeeded and failed, of how many.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# Per-state status in an execution.
DONE = "done"
FAILED = "failed"
CURRENT = "current"
NOT_REACHED = "not-reached"

EXECUTION_FAILURES = frozenset({"ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"})
TASK_FAILURES = frozenset(
    {
        "TaskFailed",
        "TaskTimedOut",
        "LambdaFunctionFailed",
        "LambdaFunctionTimedOut",
        "ActivityFailed",
        "ActivityTimedOut",
        "ActivityScheduleFailed",
    }
)
TASK_SUCCESSES = frozenset({"TaskSucceeded", "LambdaFunctionSucceeded", "ActivitySucceeded"})
ITERATION_ENDS = frozenset({"MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted"})


@dataclass(frozen=True, kw_only=True)
class Progress:
    """Where an execution has been: each entered state's status, and the edges it took."""

    states: Mapping[str, str]
    taken: frozenset[tuple[str | None, str | None]]
    iterations: Mapping[str, Iterations] = field(default_factory=dict)

    def status(self, name: str) -> str:
        return self.states.get(name, NOT_REACHED)


@dataclass(frozen=True, kw_only=True)
class Iterations:
    """A Map state's iterations in its latest run: how many of `total` ended, and how."""

    total: int
    succeeded: int = 0
    failed: int = 0

    def text(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.succeeded}/{self.total} done{failed}"


def progress(events: Iterable[Mapping[str, Any]]) -> Progress:
    """Read a history, oldest event first, each shaped as GetExecutionHistory returns it."""
    states: dict[str, str] = {}
    taken: set[tuple[str | None, str | None]] = set()
    errored: set[str] = set()
    previous: str | None = None  # the state last left
    current: str | None = None  # the state last entered
    maps: dict[str, Iterations] = {}
    for event in events:
        event_type = str(event.get("type", ""))
        _count_map(maps, event, event_type, current)
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
        elif event_type in TASK_SUCCESSES and current is not None:
            errored.discard(current)
        elif event_type == "ExecutionSucceeded":
            taken.add((previous, None))
        elif event_type in EXECUTION_FAILURES:
            for name, status in states.items():
                if status == CURRENT:
                    states[name] = FAILED
    return Progress(states=states, taken=frozenset(taken), iterations=maps)


def _count_map(
    maps: dict[str, Iterations], event: Mapping[str, Any], kind: str, current: str | None
) -> None:
    """Count a Map state's start (a new run of it, of `length` items) or an iteration's end."""
    if kind == "MapStateStarted" and current is not None:
        details = event.get("mapStateStartedEventDetails")
        length = details.get("length") if isinstance(details, Mapping) else None
        maps[current] = Iterations(total=length if isinstance(length, int) else 0)
        return
    if kind not in ITERATION_ENDS:
        return
    key = kind[0].lower() + kind[1:] + "EventDetails"
    details = event.get(key)
    name = details.get("name") if isinstance(details, Mapping) else None
    counted = maps.get(name) if isinstance(name, str) else None
    if counted is None or not isinstance(name, str):
        return
    if kind == "MapIterationSucceeded":
        maps[name] = replace(counted, succeeded=counted.succeeded + 1)
    else:
        maps[name] = replace(counted, failed=counted.failed + 1)


def _state_name(event: Mapping[str, Any], key: str) -> str:
    details = event.get(key)
    return str(details.get("name", "")) if isinstance(details, Mapping) else ""
