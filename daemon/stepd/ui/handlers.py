"""The routes under /ui/: each reads through the engine's read interface and renders a page.

Only what `Engine` offers for reading is used (`list_executions`, `count_by_status`,
`find_execution`, `history`, `definition_of`, `machines`, `clock`, `redrive_refusal`), and
the engine's limit on an execution's history (`MAX_EVENTS`). The one write is an action, a
POST form: redrive (`redrive_execution`), which the access check lets through only from the
pages' own site (and with a signed-in session's CSRF token, when key pairs are configured).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from markupsafe import Markup

from stepd.asl.validate import validate
from stepd.catalog import Report
from stepd.engine.agenda import MAX_DUE, counts, per_minute
from stepd.engine.executor import Engine
from stepd.engine.steps import MAX_EVENTS
from stepd.engine.testruns import NOT_TESTED
from stepd.errors import ExecutionDoesNotExist, ExecutionNotRedrivable, StoreError
from stepd.graph import build_graph, progress, to_svg
from stepd.store.records import RUNNING, STATUSES, Event, Execution
from stepd.ui.agenda import chart
from stepd.ui.pages import ACTION_CSRF, ACTION_ROUTE_PREFIX, SIGNED_IN, render
from stepd.ui.views import UI_PATH, execution_path, list_path, summarise, timeline

Findings = Callable[[], Mapping[str, Sequence[Report]]]
# on several nodes (PostgreSQL): the nodes' status, as /healthz's `node` section has it
Nodes = Callable[[], Awaitable[Mapping[str, Any]]]

PAGE_SIZE = 50  # executions per page of the list
PAGE_ROUTE_PREFIX = "ui."  # the name of every page's route begins so (access checks rely on it)
RECENT_EXECUTIONS = 10  # on a state machine's page
AGENDA_HOURS = (1, 3, 6, 12, 24)  # the spans the agenda page offers; the default is 3
BUSIEST_MINUTES = 10  # listed under the agenda's chart
HISTORY_BATCH = 1000  # events per read of an execution's history


def add_ui_routes(
    app: web.Application,
    engine: Engine,
    findings: Findings | None = None,
    *,
    nodes: Nodes | None = None,
) -> None:
    """Serve the pages under /ui/ from `app`; `findings` gives each machine's validation
    reports (without it, each definition is validated when its page is shown); `nodes` the
    nodes sharing the store (without it, one node: the nodes page says so)."""
    pages = _Pages(engine, findings, nodes)
    app.router.add_get("/ui", pages.home, name=PAGE_ROUTE_PREFIX + "home")
    app.router.add_get(UI_PATH, pages.executions, name=PAGE_ROUTE_PREFIX + "executions")
    app.router.add_get(
        UI_PATH + "executions/{machine}/{name}",
        pages.execution,
        name=PAGE_ROUTE_PREFIX + "execution",
    )
    app.router.add_get(
        UI_PATH + "machines/{name}", pages.machine, name=PAGE_ROUTE_PREFIX + "machine"
    )
    app.router.add_get(UI_PATH + "agenda", pages.agenda, name=PAGE_ROUTE_PREFIX + "agenda")
    app.router.add_get(UI_PATH + "nodes", pages.nodes, name=PAGE_ROUTE_PREFIX + "nodes")
    app.router.add_post(
        UI_PATH + "executions/{machine}/{name}/redrive",
        pages.redrive,
        name=ACTION_ROUTE_PREFIX + "redrive",
    )


def _diagram(svg: str) -> Markup:
    """An SVG drawing from stepd.graph, placed in a page as it is: it escapes what it draws."""
    return Markup(svg)  # noqa: S704 - to_svg escapes every name and label it draws


class _Pages:
    def __init__(self, engine: Engine, findings: Findings | None, nodes: Nodes | None) -> None:
        self.engine = engine
        self.findings = findings
        self._nodes = nodes

    # -- handlers ----------------------------------------------------------------------

    async def home(self, _: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(UI_PATH)

    async def nodes(self, request: web.Request) -> web.Response:
        """The nodes sharing the store: leases, what each holds, definitions that differ."""
        cluster = None if self._nodes is None else await self._nodes()
        return self._page(
            request,
            "nodes.html",
            title="Nodes",
            now=self.engine.clock(),
            refresh=cluster is not None,
            cluster=cluster,
        )

    async def executions(self, request: web.Request) -> web.Response:
        machine = request.query.get("machine") or None
        status = request.query.get("status") or None
        before_text = request.query.get("before") or None
        if status is not None and status not in STATUSES:
            return self._problem(
                request, 400, "Unknown status", f"Choose one of {', '.join(STATUSES)}."
            )
        before = None
        if before_text is not None:
            if not before_text.isdigit() or int(before_text) <= 0:
                return self._problem(request, 400, "Bad page", "`before` is an execution id.")
            before = int(before_text)
        try:
            rows = await self.engine.list_executions(
                machine=machine, status=status, limit=PAGE_SIZE + 1, before_id=before
            )
            counts = await self.engine.count_by_status()
        except StoreError as exc:
            return self._unavailable(request, exc)
        now = self.engine.clock()
        shown = rows[:PAGE_SIZE]
        older = None
        if len(rows) > PAGE_SIZE:
            older = list_path(machine=machine, status=status, before=shown[-1].id)
        return self._page(
            request,
            "executions.html",
            title="Executions",
            now=now,
            refresh=any(row.status == RUNNING for row in shown),
            rows=[summarise(row, now, self.engine.host_down_for(row)) for row in shown],
            hosts_down=self.engine.status().down,
            counts=counts,
            statuses=STATUSES,
            chosen_machine=machine,
            chosen_status=status,
            machine_choices=sorted(set(self.engine.machines) | ({machine} if machine else set())),
            older=older,
        )

    async def execution(self, request: web.Request) -> web.Response:
        machine, name = request.match_info["machine"], request.match_info["name"]
        try:
            execution = await self.engine.find_execution(machine, name)
            if execution is None:
                return self._problem(
                    request,
                    404,
                    "No such execution",
                    f"State machine {machine!r} has no execution named {name!r}.",
                )
            events = await self._history(execution)
            definition = await self._definition(execution)
            tested = await self.engine.test_settings(execution)
            parent, children = await self.engine.nested.family(execution)
        except StoreError as exc:
            return self._unavailable(request, exc)
        now = self.engine.clock()
        history = [{"type": e.type, **e.details} for e in events]
        diagram = to_svg(
            build_graph(definition), progress(history), title=f"{machine}: {name} diagram"
        )
        return self._page(
            request,
            "execution.html",
            title=f"{name} · {machine}",
            now=now,
            refresh=execution.status == RUNNING,
            summary=summarise(execution, now, self.engine.host_down_for(execution)),
            execution=execution,
            redrivable=self.engine.redrive_refusal(execution) is None,
            diagram=_diagram(diagram),
            timeline=timeline(events, execution.start_date),
            tested=tested if tested != NOT_TESTED else None,
            parent=parent,
            children=children,
        )

    async def redrive(self, request: web.Request) -> web.Response:
        """POST: redrive the execution, then show its page again."""
        machine, name = request.match_info["machine"], request.match_info["name"]
        try:
            await self.engine.redrive_execution(machine, name)
        except ExecutionDoesNotExist:
            return self._problem(
                request,
                404,
                "No such execution",
                f"State machine {machine!r} has no execution named {name!r}.",
            )
        except ExecutionNotRedrivable as exc:
            return self._problem(request, 409, "Not redrivable", exc.message)
        except StoreError as exc:
            return self._unavailable(request, exc)
        raise web.HTTPSeeOther(execution_path(machine, name))

    async def agenda(self, request: web.Request) -> web.Response:
        """How many executions fall due in each minute of the next hours, as a chart."""
        machine = request.query.get("machine") or None
        hours_text = request.query.get("hours") or "3"
        hours = int(hours_text) if hours_text.isdigit() else 0
        if hours not in AGENDA_HOURS or (machine and machine not in self.engine.machines):
            return self._problem(
                request,
                400,
                "Not an agenda",
                f"hours is one of {', '.join(map(str, AGENDA_HOURS))}; machine one of "
                f"{', '.join(sorted(self.engine.machines))}.",
            )
        now = self.engine.clock()
        end = now + hours * 3600
        try:
            due = await self.engine.falling_due(now, end, machine=machine, limit=MAX_DUE)
        except StoreError as exc:
            return self._unavailable(request, exc)
        minutes = per_minute(due)
        title = f"Executions due per minute, next {hours} h (UTC)"
        return self._page(
            request,
            "agenda.html",
            title="Agenda",
            now=now,
            refresh=False,
            hours=hours,
            hour_choices=AGENDA_HOURS,
            machine_choices=sorted(self.engine.machines),
            chosen_machine=machine,
            total=len(due),
            truncated=len(due) >= MAX_DUE,
            diagram=chart(counts(minutes, now, end), title=title),
            busiest=sorted(minutes, key=lambda m: (-m.count, m.start))[:BUSIEST_MINUTES],
        )

    async def machine(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        machine = self.engine.machines.get(name)
        if machine is None:
            return self._problem(
                request, 404, "No such state machine", f"No state machine named {name!r}."
            )
        try:
            recent = await self.engine.list_executions(
                machine=name, status=None, limit=RECENT_EXECUTIONS, before_id=None
            )
        except StoreError as exc:
            return self._unavailable(request, exc)
        now = self.engine.clock()
        comment = machine.definition.get("Comment")
        return self._page(
            request,
            "machine.html",
            title=name,
            now=now,
            name=name,
            comment=comment if isinstance(comment, str) else None,
            source=machine.source,
            diagram=_diagram(to_svg(build_graph(machine.definition), title=f"{name} diagram")),
            findings=self._findings(name, machine.source, machine.definition),
            rows=[summarise(row, now, self.engine.host_down_for(row)) for row in recent],
        )

    # -- reading -----------------------------------------------------------------------

    async def _history(self, execution: Execution) -> list[Event]:
        events: list[Event] = []
        after: int | None = None
        while len(events) < MAX_EVENTS:  # the engine writes no more: no page reads more
            batch = await self.engine.history(
                execution.id, reverse=False, limit=HISTORY_BATCH, after=after
            )
            events.extend(batch)
            if len(batch) < HISTORY_BATCH:
                break
            after = batch[-1].id
        return events

    async def _definition(self, execution: Execution) -> Mapping[str, Any]:
        """The definition the execution runs (the snapshot it started with)."""
        try:
            return await self.engine.definition_of(execution)
        except (StoreError, ValueError):
            machine = self.engine.machines.get(execution.machine)
            return machine.definition if machine is not None else {}

    def _findings(self, name: str, source: str, definition: Mapping[str, Any]) -> Sequence[Report]:
        if self.findings is not None:
            known = self.findings()
            if name in known:
                return known[name]
        return [
            Report(
                where=f"{source}#{finding.where}",
                code=finding.code,
                message=finding.message,
                severity=finding.severity,
            )
            for finding in validate(definition)
        ]

    # -- answering ---------------------------------------------------------------------

    def _page(
        self,
        request: web.Request,
        template: str,
        *,
        status: int = 200,
        refresh: bool = False,
        **context: Any,
    ) -> web.Response:
        return render(
            template,
            status=status,
            refresh=refresh,
            machine_names=sorted(self.engine.machines),
            signed_in=request.get(SIGNED_IN),
            csrf=request.get(ACTION_CSRF),
            **context,
        )

    def _problem(self, request: web.Request, status: int, title: str, message: str) -> web.Response:
        return self._page(
            request,
            "problem.html",
            status=status,
            title=title,
            message=message,
            now=self.engine.clock(),
        )

    def _unavailable(self, request: web.Request, exc: StoreError) -> web.Response:
        return self._problem(request, 503, "The store cannot be read right now", exc.message)
