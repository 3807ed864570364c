"""The Map Runs of DISTRIBUTED Map states: ListMapRuns, DescribeMapRun, UpdateMapRun, and what
GetExecutionHistory shows of them.

stepd runs a Map Run's children inside its execution, as cursors, and records their events in
the execution's history marked as the run's (stepd.engine.history.MAP_RUN_CHILD): AWS records
them in the child executions, so GetExecutionHistory leaves them out and shows the run as AWS
does (MapRunStarted, then MapRunSucceeded or MapRunFailed). A Map Run is read from those events:
its MapRunStarted (its ARN names the execution and the event, `stepd.engine.arns.map_run_arn`)
and its children's MapIteration events give DescribeMapRun's status and counts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from stepd.api import fields
from stepd.engine import history
from stepd.engine.arns import Arns, map_run_machine_arn
from stepd.errors import ExecutionDoesNotExist, ResourceNotFound, ValidationException
from stepd.store.records import RUNNING, Event, Execution

MAX_ARN: Final = 2000  # AWS's LongArn
DEFAULT_PAGE: Final = 100
HISTORY_BATCH: Final = 1000
ENDS: Final = {"MapRunSucceeded": "SUCCEEDED", "MapRunFailed": "FAILED"}

FindExecution = Callable[[str, str], Awaitable[Execution | None]]


class ReadHistory(Protocol):
    """The store's events of an execution (stepd.engine.executor.Engine.history)."""

    async def __call__(
        self, execution_id: int, *, reverse: bool, limit: int, after: int | None
    ) -> list[Event]: ...


@dataclass
class MapRun:
    """One Map Run as its events tell it."""

    arn: str
    event_id: int  # its MapRunStarted
    start_date: float
    facts: dict[str, Any]
    status: str = RUNNING
    stop_date: float | None = None
    children: dict[int, str] = field(default_factory=dict)  # index -> its last iteration event
    redrive_count: int = 0
    redrive_date: float | None = None

    def record(self, event: Event) -> None:
        """Take in one of the run's events after its MapRunStarted."""
        if event.type in ENDS:
            self.status, self.stop_date = ENDS[event.type], event.ts
        elif event.type == "MapRunRedriven":  # its children that did not succeed run again
            self.status, self.stop_date = RUNNING, None
            self.children = {
                index: last if last == "MapIterationSucceeded" else "MapIterationStarted"
                for index, last in self.children.items()
            }
            self.redrive_count += 1
            self.redrive_date = event.ts
        elif event.type.startswith("MapIteration"):
            own = event.details[history.MAP_RUN_ITERATION]
            self.children[int(own["index"])] = event.type

    def counts(self) -> dict[str, int]:
        """AWS's MapRunItemCounts (and MapRunExecutionCounts: one child execution an item)."""
        last = list(self.children.values())
        running = last.count("MapIterationStarted")
        aborted = running if self.status != RUNNING else 0
        total = int(self.facts.get("total", len(last)))
        return {
            "pending": max(0, total - len(last)) if self.status == RUNNING else 0,
            "running": running - aborted,
            "succeeded": last.count("MapIterationSucceeded"),
            "failed": last.count("MapIterationFailed"),
            "timedOut": 0,
            "aborted": aborted,
            "total": total,
            "resultsWritten": 0,
            "failuresNotRedrivable": 0,
            "pendingRedrive": 0,
        }


async def visible_history(
    read: ReadHistory, execution_id: int, *, reverse: bool, limit: int, after: int | None
) -> list[Event]:
    """Up to `limit` events of the execution as GetExecutionHistory shows them (a Map Run's
    children's left out), continuing after event id `after`."""
    shown: list[Event] = []
    while True:
        batch = await read(execution_id, reverse=reverse, limit=limit, after=after)
        shown += [e for e in batch if not history.hidden(e.details)]
        if len(batch) < limit or len(shown) >= limit:
            return shown[:limit]
        after = batch[-1].id


def map_runs(events: Sequence[Event], execution: Execution) -> list[MapRun]:
    """The execution's Map Runs, in the order they started, read from its events."""
    runs: dict[int, MapRun] = {}
    for event in events:
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
    for run in runs.values():  # the execution closed while the run ran: it was aborted
        if run.status == RUNNING and execution.status != RUNNING:
            run.status, run.stop_date = "ABORTED", execution.stop_date
    return list(runs.values())


def _run_named(event: Event) -> int:
    """The id of the MapRunStarted of the run an event is about (-1: none)."""
    details = event.details
    if event.type.startswith("MapIteration"):
        own = details.get(history.MAP_RUN_ITERATION)
        return int(own.get("run", -1)) if isinstance(own, dict) else -1
    return int(details.get(history.MAP_RUN_END, -1))


class MapRunOperations:
    """`find(machine, name)` finds an execution (None if there is none); `read` reads its
    events as the store has them."""

    def __init__(self, arns: Arns, find: FindExecution, read: ReadHistory) -> None:
        self.arns = arns
        self._find = find
        self._read = read

    def handlers(self) -> dict[str, fields.Handler]:
        return {
            "ListMapRuns": self.list_map_runs,
            "DescribeMapRun": self.describe_map_run,
            "UpdateMapRun": self.update_map_run,
        }

    async def list_map_runs(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = fields.required_string(body, "executionArn")
        machine, name = self.arns.execution_of(arn)
        execution = await self._find(machine, name) if self.arns.is_ours(arn) else None
        if execution is None:
            raise ExecutionDoesNotExist(f"Execution Does Not Exist: '{arn[:256]}'")
        limit = fields.integer(body, "maxResults", default=DEFAULT_PAGE, maximum=fields.MAX_PAGE)
        scope = f"map runs {execution.id} {execution.uid}"
        first = fields.page_start(fields.string(body, "nextToken"), scope) or 0
        runs = map_runs(await self._events(execution), execution)
        answer: dict[str, Any] = {
            "mapRuns": [
                {
                    "executionArn": arn,
                    "mapRunArn": run.arn,
                    "stateMachineArn": map_run_machine_arn(run.arn),
                    "startDate": run.start_date,
                    **({} if run.stop_date is None else {"stopDate": run.stop_date}),
                }
                for run in runs[first : first + limit]
            ]
        }
        if first + limit < len(runs):
            answer["nextToken"] = fields.page_token_for(first + limit, scope)
        return answer

    async def describe_map_run(self, body: dict[str, Any]) -> dict[str, Any]:
        execution, run = await self._run(body)
        return {
            "mapRunArn": run.arn,
            "executionArn": self.arns.execution(execution.machine, execution.name),
            "status": run.status,
            "startDate": run.start_date,
            **({} if run.stop_date is None else {"stopDate": run.stop_date}),
            "maxConcurrency": int(run.facts.get("maxConcurrency", 0)),
            "toleratedFailurePercentage": float(run.facts.get("toleratedFailurePercentage", 0)),
            "toleratedFailureCount": int(run.facts.get("toleratedFailureCount", 0)),
            "itemCounts": run.counts(),
            "executionCounts": run.counts(),
            "redriveCount": run.redrive_count,
            **({} if run.redrive_date is None else {"redriveDate": run.redrive_date}),
        }

    async def update_map_run(self, body: dict[str, Any]) -> dict[str, Any]:
        _, run = await self._run(body)
        if run.status != RUNNING:
            raise ValidationException(
                f"Map Run '{run.arn}' is {run.status}: only a running Map Run can be updated"
            )
        raise ValidationException(
            f"Map Run '{run.arn}' cannot be updated: stepd runs a Map Run with the "
            "MaxConcurrency and tolerated failures its Map state gave it"
        )

    async def _run(self, body: dict[str, Any]) -> tuple[Execution, MapRun]:
        arn = fields.required_string(body, "mapRunArn")
        if len(arn) > MAX_ARN:
            raise ValidationException(f"'mapRunArn' must be at most {MAX_ARN} characters")
        found = self.arns.map_run_of(arn)
        if found is not None and self.arns.is_ours(arn):
            machine, name, event_id = found
            execution = await self._find(machine, name)
            runs = [] if execution is None else map_runs(await self._events(execution), execution)
            for run in runs:
                if run.event_id == event_id and run.arn == arn and execution is not None:
                    return execution, run
        raise ResourceNotFound(f"Resource not found: '{arn[:256]}'")

    async def _events(self, execution: Execution) -> list[Event]:
        events: list[Event] = []
        after: int | None = None
        while True:
            batch = await self._read(execution.id, reverse=False, limit=HISTORY_BATCH, after=after)
            events += batch
            if len(batch) < HISTORY_BATCH:
                return events
            after = batch[-1].id
