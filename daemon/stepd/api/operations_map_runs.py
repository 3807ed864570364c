"""ListMapRuns, DescribeMapRun, UpdateMapRun, and a Map Run's child executions: ListExecutions
of a map run, DescribeExecution and GetExecutionHistory of a child (stepd.api.map_runs reads
them from the parent execution's history).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from stepd.api import fields
from stepd.api.map_runs import Child, MapRun, map_runs, runs_distributed, shown_history
from stepd.engine.arns import child_execution_arn, map_run_machine_arn
from stepd.engine.executor import Engine
from stepd.engine.redrive import NOT_REDRIVABLE
from stepd.errors import (
    ExecutionDoesNotExist,
    ResourceNotFound,
    StoreError,
    ValidationException,
)
from stepd.store.records import ABORTED, FAILED, RUNNING, Event, Execution

MAX_LONG_ARN: Final = 2000  # AWS's LongArn: a map run's ARN
DEFAULT_PAGE: Final = 100
HISTORY_BATCH: Final = 1000
T = TypeVar("T")
REDRIVABLE_BY_MAP_RUN: Final = "REDRIVABLE_BY_MAP_RUN"


class MapRunOperations:
    """The operations on Map Runs and their children, read from the engine's store."""

    def __init__(self, engine: Engine) -> None:
        self.arns = engine.arns
        self.engine = engine
        self._find = engine.find_execution
        self._distributed: dict[int, bool] = {}  # definition id -> runs_distributed

    async def runs_any(self, execution: Execution) -> bool:
        """Whether the execution's definition has a DISTRIBUTED Map (its history may hold
        events GetExecutionHistory leaves out)."""
        known = self._distributed.get(execution.definition_id)
        if known is None:
            try:
                definition = await self.engine.definition_of(execution)
            except (StoreError, ValueError):
                return True  # read as if it had (the slower, always right, way)
            known = self._distributed[execution.definition_id] = runs_distributed(definition)
        return known

    async def history(
        self, execution: Execution, *, limit: int, reverse: bool, token: str | None
    ) -> tuple[list[Event], str | None]:
        """A page of the history of an execution that runs DISTRIBUTED Maps, as AWS shows it
        (`shown_history`), and the token of the next page (if any): it names the stored
        event the page ended with, as the store's own paging does."""
        shown = shown_history(await self._events(execution))
        scope = f"history {execution.id} {execution.uid} {reverse}"
        page, token = _page(
            shown, lambda p: p[0], limit, descending=reverse, token=token, scope=scope
        )
        return [event for _, event in page], token

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

    # -- child executions ----------------------------------------------------------------

    async def list_children(self, body: dict[str, Any]) -> dict[str, Any]:
        """ListExecutions of a map run: its children, the latest started first."""
        execution, run = await self._run(body)
        status, redriven = fields.execution_filters(body)
        limit = fields.integer(body, "maxResults", default=DEFAULT_PAGE, maximum=fields.MAX_PAGE)
        scope = f"children {execution.id} {execution.uid} {run.event_id} {status} {redriven}"
        children = [
            c
            for c in sorted(run.children.values(), key=lambda c: c.index)
            if (status is None or c.status == status)
            and (redriven is None or (c.redrive_count > 0) == fields.REDRIVE_FILTERS[redriven])
        ]
        page, token = _page(
            children,
            lambda c: c.index + 1,
            limit,
            descending=True,
            token=fields.string(body, "nextToken"),
            scope=scope,
        )
        answer: dict[str, Any] = {
            "executions": [
                {**self._child_summary(run, child), "mapRunArn": run.arn, "itemCount": 1}
                for child in page
            ]
        }
        return answer if token is None else {**answer, "nextToken": token}

    async def describe_child(self, arn: str) -> dict[str, Any]:
        """DescribeExecution of a child execution."""
        run, child = await self._child(arn)
        described: dict[str, Any] = {
            **self._child_summary(run, child),
            "input": child.input,
            "inputDetails": {"included": True},
            "mapRunArn": run.arn,
        }
        if child.status in {FAILED, ABORTED} and run.status in {FAILED, ABORTED}:
            # a redrive of its parent execution runs it again
            described["redriveStatus"] = REDRIVABLE_BY_MAP_RUN
        else:
            described["redriveStatus"] = NOT_REDRIVABLE
            described["redriveStatusReason"] = f"Execution is {child.status} and cannot be redriven"
        if child.output is not None:
            described.update(output=child.output, outputDetails={"included": True})
        if child.error is not None:
            described["error"] = child.error
        if child.cause is not None:
            described["cause"] = child.cause
        return described

    async def child_history(
        self, arn: str, *, limit: int, reverse: bool, token: str | None
    ) -> tuple[list[Event], str | None]:
        """A page of a child execution's history, and the token of the next page (if any)."""
        _, child = await self._child(arn)
        events = child.history(self.arns.account)
        scope = f"child {arn} {reverse}"
        return _page(events, lambda e: e.id, limit, descending=reverse, token=token, scope=scope)

    def _child_summary(self, run: MapRun, child: Child) -> dict[str, Any]:
        arn = child_execution_arn(run.arn, child.index)
        return {
            "executionArn": arn,
            "stateMachineArn": map_run_machine_arn(run.arn),
            "name": arn.rpartition(":")[2],
            "status": child.status,
            "startDate": child.start_date,
            **({} if child.stop_date is None else {"stopDate": child.stop_date}),
            "redriveCount": child.redrive_count,
            **({} if child.redrive_date is None else {"redriveDate": child.redrive_date}),
        }

    async def _child(self, arn: str) -> tuple[MapRun, Child]:
        found = self.arns.child_of(arn)
        if found is not None and self.arns.is_ours(arn):
            machine, name, _, index = found
            execution = await self._find(machine, name)
            runs = [] if execution is None else map_runs(await self._events(execution), execution)
            for run in runs:
                child = run.children.get(index)
                if child is not None and child_execution_arn(run.arn, index) == arn:
                    return run, child
        raise ExecutionDoesNotExist(f"Execution Does Not Exist: '{arn[:256]}'")

    # -- reading -------------------------------------------------------------------------

    async def _run(self, body: dict[str, Any]) -> tuple[Execution, MapRun]:
        arn = fields.required_string(body, "mapRunArn")
        if len(arn) > MAX_LONG_ARN:
            raise ValidationException(f"'mapRunArn' must be at most {MAX_LONG_ARN} characters")
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
            batch = await self.engine.history(
                execution.id, reverse=False, limit=HISTORY_BATCH, after=after
            )
            events += batch
            if len(batch) < HISTORY_BATCH:
                return events
            after = batch[-1].id


def _page(
    items: list[T],
    key: Callable[[T], int],
    limit: int,
    *,
    descending: bool,
    token: str | None,
    scope: str,
) -> tuple[list[T], str | None]:
    """A page of `items` (in ascending order of `key`, a positive number each), descending
    when asked, after the item whose key the `token` names; and the token of the next page
    (if any): it names the page's last item, so that items added meanwhile (past the end)
    are not shown twice."""
    after = fields.page_start(token, scope)
    ordered = items[::-1] if descending else items
    if after is not None:
        ordered = [i for i in ordered if (key(i) < after if descending else key(i) > after)]
    page = ordered[:limit]
    more = len(ordered) > limit
    return page, fields.page_token_for(key(page[-1]), scope) if more else None
