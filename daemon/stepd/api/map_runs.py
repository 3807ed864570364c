"""The Map Runs of DISTRIBUTED Map states and their child executions, read from the history.

stepd runs a Map Run's children inside its execution, as cursors, and records their events in
the execution's history marked as the run's (stepd.engine.history.MAP_RUN_CHILD). AWS records
them in child executions, so GetExecutionHistory leaves them out (`shown_history`) and shows
the run as AWS does (MapRunStarted, then MapRunSucceeded or MapRunFailed). A run is read from
its MapRunStarted (whose ARN names the execution and the event: stepd.engine.arns.map_run_arn),
its MapIteration events (status and counts) and its redrives; each child, as AWS's child
execution, from its own MapIteration events and the events marked as its.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from stepd.api.links import linked
from stepd.engine import history
from stepd.engine.arns import ROLE_ARN
from stepd.store.records import ABORTED, FAILED, RUNNING, SUCCEEDED, Event, Execution

ENDS: Final = {"MapRunSucceeded": SUCCEEDED, "MapRunFailed": FAILED, "MapRunAborted": ABORTED}
CHILD_ENDS: Final = {"MapIterationSucceeded": SUCCEEDED, "MapIterationFailed": FAILED}


@dataclass
class Child:
    """One child of a Map Run (a child execution in AWS)."""

    index: int
    start_date: float
    status: str = RUNNING
    stop_date: float | None = None
    error: str | None = None
    cause: str | None = None
    events: list[Event] = field(default_factory=list)  # its own, as the execution has them
    redrive_count: int = 0
    redrive_date: float | None = None
    given: str | None = None  # its input, as its MapIterationStarted keeps it

    def redriven(self, at: float) -> None:
        """Its run was redriven at `at`, and it runs again (it did not succeed): its history
        says how it had ended, then ExecutionRedriven."""
        ended_at = self.stop_date if self.stop_date is not None else at
        kind, details = self._end()
        self.redrive_count += 1
        self.redrive_date = at
        self.events += [
            Event(id=0, previous_id=0, ts=ended_at, type=kind, details=details),
            Event(
                id=0,
                previous_id=0,
                ts=at,
                type="ExecutionRedriven",
                details=history.execution_redriven(self.redrive_count),
            ),
        ]
        self.status, self.stop_date = RUNNING, None

    def record(self, event: Event) -> None:
        """Take in one of its MapIteration events."""
        own = event.details.get(history.MAP_RUN_ITERATION) or {}
        if event.type == "MapIterationStarted":
            self.status, self.stop_date, self.start_date = RUNNING, None, event.ts
            self.given = own.get("input")
            return
        self.status, self.stop_date = CHILD_ENDS[event.type], event.ts
        self.error, self.cause = own.get("error"), own.get("cause")

    @property
    def input(self) -> str:
        """What it started with: its item."""
        return self.given if self.given is not None else "{}"

    @property
    def output(self) -> str | None:
        """What it ended with, when it succeeded: the output of its last state."""
        if self.status != SUCCEEDED:
            return None
        for event in reversed(self.events):
            exited = event.details.get("stateExitedEventDetails")
            if isinstance(exited, dict):
                return str(exited.get("output", "null"))
        return None

    def history(self, account: str) -> list[Event]:
        """Its history as AWS records a child execution's: ExecutionStarted, its own events,
        and how it ended; numbered from 1."""
        shaped: list[tuple[float, str, dict[str, Any]]] = [
            (
                self.start_date,
                "ExecutionStarted",
                history.execution_started(self.input, ROLE_ARN.format(account=account)),
            ),
            *((e.ts, e.type, history.shown(e.details)) for e in self.events),
        ]
        if self.stop_date is not None:
            shaped.append((self.stop_date, *self._end()))
        return linked(
            [
                Event(id=n, previous_id=n - 1, ts=ts, type=kind, details=details)
                for n, (ts, kind, details) in enumerate(shaped, start=1)
            ]
        )

    def _end(self) -> tuple[str, dict[str, Any]]:
        if self.status == SUCCEEDED:
            return "ExecutionSucceeded", history.execution_succeeded(self.output or "null")
        if self.status == FAILED:
            return "ExecutionFailed", history.execution_failed(self.error, self.cause)
        return "ExecutionAborted", history.execution_aborted(None, None)


@dataclass
class MapRun:
    """One Map Run as its events tell it."""

    arn: str
    event_id: int  # its MapRunStarted
    start_date: float
    facts: dict[str, Any]
    status: str = RUNNING
    stop_date: float | None = None
    children: dict[int, Child] = field(default_factory=dict)
    redrive_count: int = 0
    redrive_date: float | None = None

    def record(self, event: Event) -> None:
        """Take in one of the run's events after its MapRunStarted."""
        if event.type in ENDS:
            self.status, self.stop_date = ENDS[event.type], event.ts
            for child in self.children.values():
                if child.status == RUNNING:  # stopped with the run
                    child.status, child.stop_date = ABORTED, event.ts
        elif event.type == "MapRunRedriven":  # its children that did not succeed run again
            self.status, self.stop_date = RUNNING, None
            for child in self.children.values():
                if child.status != SUCCEEDED:
                    child.redriven(event.ts)
            self.redrive_count += 1
            self.redrive_date = event.ts
        elif event.type.startswith("MapIteration"):
            index = int(event.details[history.MAP_RUN_ITERATION]["index"])
            child = self.children.setdefault(index, Child(index=index, start_date=event.ts))
            child.record(event)

    def closed(self, execution: Execution) -> None:
        """The execution closed while the run ran: the run and its running children were
        aborted then."""
        if self.status != RUNNING or execution.status == RUNNING:
            return
        self.status, self.stop_date = ABORTED, execution.stop_date
        for child in self.children.values():
            if child.status == RUNNING:
                child.status, child.stop_date = ABORTED, execution.stop_date

    def counts(self) -> dict[str, int]:
        """AWS's MapRunItemCounts (and MapRunExecutionCounts: one child execution an item)."""
        statuses = [child.status for child in self.children.values()]
        total = int(self.facts.get("total", len(statuses)))
        return {
            "pending": max(0, total - len(statuses)),  # never started, also once it ended
            "running": statuses.count(RUNNING),
            "succeeded": statuses.count(SUCCEEDED),
            "failed": statuses.count(FAILED),
            "timedOut": 0,
            "aborted": statuses.count(ABORTED),
            "total": total,
            "resultsWritten": 0,
            "failuresNotRedrivable": 0,
            "pendingRedrive": 0,
        }


def shown_history(events: Sequence[Event]) -> list[tuple[int, Event]]:
    """An execution's events as GetExecutionHistory shows them, each after the id it is
    stored with: a Map Run's children's left out, the others numbered again from 1, each
    naming the one before it."""
    shown = [
        (e.id, Event(id=n, previous_id=n - 1, ts=e.ts, type=e.type, details=e.details))
        for n, e in enumerate((e for e in events if not history.hidden(e.details)), start=1)
    ]
    links = linked([event for _, event in shown])
    return [(stored, event) for (stored, _), event in zip(shown, links, strict=True)]


def runs_distributed(definition: Any) -> bool:
    """Whether a definition has a DISTRIBUTED Map state anywhere (its executions' histories
    may hold a Map Run's children's events)."""
    if isinstance(definition, dict):
        config = definition.get("ProcessorConfig")
        if isinstance(config, dict) and config.get("Mode") == "DISTRIBUTED":
            return True
        return any(runs_distributed(value) for value in definition.values())
    if isinstance(definition, list):
        return any(runs_distributed(value) for value in definition)
    return False


def map_runs(events: Sequence[Event], execution: Execution) -> list[MapRun]:
    """The execution's Map Runs, in the order they started, read from its events."""
    runs: dict[int, MapRun] = {}
    for event in events:
        own = event.details.get(history.MAP_RUN_CHILD)
        if isinstance(own, dict):  # a child's own event (a run of its own included)
            run = runs.get(own["run"])
            child = run.children.get(own["index"]) if run is not None else None
            if child is not None:
                child.events.append(event)
            continue
        if event.type == "MapRunStarted":
            started = event.details.get("mapRunStartedEventDetails") or {}
            runs[event.id] = MapRun(
                arn=str(started.get("mapRunArn", "")),
                event_id=event.id,
                start_date=event.ts,
                facts=dict(event.details.get(history.MAP_RUN_FACTS) or {}),
            )
            continue
        run = runs.get(_run_named(event))
        if run is not None:
            run.record(event)
    for run in runs.values():
        run.closed(execution)
    return list(runs.values())


def _run_named(event: Event) -> int:
    """The id of the MapRunStarted of the run an event is about (-1: none)."""
    details = event.details
    if event.type.startswith("MapIteration"):
        own = details.get(history.MAP_RUN_ITERATION)
        return int(own.get("run", -1)) if isinstance(own, dict) else -1
    return int(details.get(history.MAP_RUN_END, -1))
