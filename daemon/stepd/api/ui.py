"""Read-only web pages about executions and state machines, served beside the API.

    /ui/                              the executions: status, current state, next due time and
                                      lateness; `?machine=NAME&status=STATUS` filter them,
                                      `?before=ID` shows older ones
    /ui/executions/<machine>/<name>   one execution: the diagram with the states it passed
                                      coloured (done, failed, current, not reached), and its
                                      history as a timeline
    /ui/machines/<name>               one state machine: its diagram and validation findings

Plain HTML rendered here with one inline style sheet: no script, nothing fetched from anywhere
else (the Content-Security-Policy says so), and a page about a running execution reloads itself.
Everything shown from an execution or a definition is escaped. The pages only read, and sit
behind the same access middleware as the API.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from stepd import __version__
from stepd.asl.validate import validate
from stepd.catalog import Report
from stepd.engine.executor import Engine
from stepd.engine.steps import MAX_EVENTS
from stepd.errors import StoreError
from stepd.graph import SVG_CSS as GRAPH_CSS
from stepd.graph import build_graph, progress, to_svg
from stepd.store.records import PHASE_TASK, PHASE_WAIT, RUNNING, STATUSES, Event, Execution

Findings = Callable[[], Mapping[str, Sequence[Report]]]

UI_PATH = "/ui/"
REFRESH_SECONDS = 2  # how often a page about a running execution reloads itself
PAGE_SIZE = 50  # executions per page of the list
RECENT_EXECUTIONS = 10  # on a state machine's page
HISTORY_BATCH = 1000  # events per store read
MAX_TIMELINE_EVENTS = 500  # the latest events shown on an execution's timeline
MAX_DATA_CHARS = 4000  # of an input or output shown in the timeline
OVERDUE_GRACE_SECONDS = 1.0  # a step this little past its due time is starting, not late
FAILURE_EVENTS = frozenset(
    {"TaskFailed", "TaskTimedOut", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"}
)
TENTHS_BELOW_SECONDS = 10  # a shorter span is shown to a tenth of a second
SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86_400

PAGE_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 "DejaVu Sans",Verdana,Arial,sans-serif;color:#1f2328;
background:#f6f7f9}
header{background:#1f2937;color:#fff;padding:10px 24px;display:flex;gap:20px;
align-items:baseline;flex-wrap:wrap}
header a{color:#e5e7eb;text-decoration:none}
header a.brand{font-weight:bold;font-size:18px;color:#fff}
main{padding:16px 24px;max-width:1400px}
footer{padding:12px 24px;color:#6b7280;font-size:12px}
h1{font-size:22px;margin:8px 0 12px}
h2{font-size:17px;margin:24px 0 8px}
a{color:#1d4ed8}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th{background:#f1f3f5;font-size:12px;text-transform:uppercase;color:#4b5563}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;
font-weight:bold;color:#fff;background:#6b7280}
.status.RUNNING{background:#1d4ed8}.status.SUCCEEDED{background:#16a34a}
.status.FAILED,.status.TIMED_OUT{background:#dc2626}.status.ABORTED{background:#92400e}
.late{color:#b91c1c;font-weight:bold}
.muted{color:#6b7280}
form.filter{display:flex;gap:12px;align-items:end;margin:0 0 12px;flex-wrap:wrap}
form.filter label{display:flex;flex-direction:column;font-size:12px;color:#4b5563}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
dl.facts dt{color:#4b5563}dl.facts dd{margin:0}
.diagram{background:#fff;border:1px solid #e5e7eb;padding:8px;overflow:auto;text-align:center}
.diagram svg{max-width:100%;height:auto}
.legend{display:flex;gap:14px;font-size:12px;margin:6px 0}
.swatch{display:inline-block;width:14px;height:14px;border-radius:3px;vertical-align:middle;
margin-right:4px;border:1.5px solid}
.swatch.done{background:#dcfce7;border-color:#16a34a}
.swatch.failed{background:#fee2e2;border-color:#dc2626}
.swatch.current{background:#dbeafe;border:3px solid #1d4ed8}
.swatch.not-reached{background:#f3f4f6;border-color:#c4c8ce}
ol.timeline{list-style:none;padding:0;margin:0;background:#fff;border:1px solid #e5e7eb}
ol.timeline li{display:grid;grid-template-columns:4em 14em 7em 14em 1fr;gap:8px;
padding:5px 10px;border-bottom:1px solid #f1f3f5}
ol.timeline li.bad{background:#fef2f2}ol.timeline li.good{background:#f0fdf4}
ol.timeline .type{font-weight:bold}
pre{white-space:pre-wrap;word-break:break-all;background:#f8fafc;padding:6px;margin:4px 0;
font-size:12px}
.findings .error td:first-child{color:#b91c1c;font-weight:bold}
.findings .warning td:first-child{color:#b45309;font-weight:bold}
.layout{display:grid;grid-template-columns:minmax(300px,auto) 1fr;gap:24px;align-items:start}
.layout>section{min-width:0}
@media (max-width:900px){.layout{grid-template-columns:1fr}}
"""


def _style_hash(css: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_style_hash(PAGE_CSS)} {_style_hash(GRAPH_CSS)}; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def add_ui_routes(
    app: web.Application,
    engine: Engine,
    findings: Findings | None = None,
) -> None:
    """Serve the pages under /ui/ from `app`; `findings` gives each machine's validation
    reports (without it, each definition is validated when its page is shown)."""
    pages = _Pages(engine, findings)
    app.router.add_get("/ui", pages.home)
    app.router.add_get(UI_PATH, pages.executions)
    app.router.add_get(UI_PATH + "executions/{machine}/{name}", pages.execution)
    app.router.add_get(UI_PATH + "machines/{name}", pages.machine)


def execution_path(machine: str, name: str) -> str:
    return f"{UI_PATH}executions/{quote(machine, safe='')}/{quote(name, safe='')}"


def machine_path(machine: str) -> str:
    return f"{UI_PATH}machines/{quote(machine, safe='')}"


class _Pages:
    def __init__(self, engine: Engine, findings: Findings | None) -> None:
        self.engine = engine
        self.findings = findings

    # -- handlers ----------------------------------------------------------------------

    async def home(self, _: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(UI_PATH)

    async def executions(self, request: web.Request) -> web.Response:
        machine = request.query.get("machine") or None
        status = request.query.get("status") or None
        before_text = request.query.get("before") or None
        if status is not None and status not in STATUSES:
            return self._problem(400, "Unknown status", f"Choose one of {', '.join(STATUSES)}.")
        before = None
        if before_text is not None:
            if not before_text.isdigit() or int(before_text) <= 0:
                return self._problem(400, "Bad page", "`before` is an execution id.")
            before = int(before_text)
        try:
            rows = await self.engine.list_executions(
                machine=machine, status=status, limit=PAGE_SIZE + 1, before_id=before
            )
            counts = await self.engine.count_by_status()
        except StoreError as exc:
            return self._unavailable(exc)
        now = self.engine.clock()
        shown = rows[:PAGE_SIZE]
        body = [
            "<h1>Executions</h1>",
            self._counts(counts),
            self._filter_form(machine, status),
            _execution_table(shown, now, with_machine=True),
        ]
        if len(rows) > PAGE_SIZE:
            query = {"machine": machine or "", "status": status or "", "before": shown[-1].id}
            older = UI_PATH + "?" + urlencode({k: v for k, v in query.items() if v})
            body.append(f'<p><a rel="next" href="{escape(older)}">Older executions →</a></p>')
        running = any(row.status == RUNNING for row in shown)
        return self._page("Executions", "".join(body), refresh=running)

    async def execution(self, request: web.Request) -> web.Response:
        machine, name = request.match_info["machine"], request.match_info["name"]
        try:
            execution = await self.engine.find_execution(machine, name)
            if execution is None:
                return self._problem(
                    404,
                    "No such execution",
                    f"State machine {machine!r} has no execution named {name!r}.",
                )
            events = await self._history(execution)
            definition = await self._definition(execution)
        except StoreError as exc:
            return self._unavailable(exc)
        now = self.engine.clock()
        history = [{"type": e.type, **e.details} for e in events]
        diagram = to_svg(
            build_graph(definition), progress(history), title=f"{machine}: {name} diagram"
        )
        body = [
            f"<h1>{escape(name)} {_badge(execution.status)}</h1>",
            '<div class="layout"><section>',
            _execution_facts(execution, now),
            "</section><section>",
            "<h2>Diagram</h2>",
            _legend(),
            f'<div class="diagram" id="diagram">{diagram}</div>',
            "</section></div>",
            "<h2>Timeline</h2>",
            _timeline(events, execution.start_date),
        ]
        return self._page(f"{name} · {machine}", "".join(body), refresh=execution.status == RUNNING)

    async def machine(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        machine = self.engine.machines.get(name)
        if machine is None:
            return self._problem(404, "No such state machine", f"No state machine named {name!r}.")
        try:
            recent = await self.engine.list_executions(
                machine=name, status=None, limit=RECENT_EXECUTIONS, before_id=None
            )
        except StoreError as exc:
            return self._unavailable(exc)
        reports = self._findings(name, machine.source, machine.definition)
        diagram = to_svg(build_graph(machine.definition), title=f"{name} diagram")
        comment = machine.definition.get("Comment")
        all_link = UI_PATH + "?" + urlencode({"machine": name})
        body = [
            f"<h1>{escape(name)}</h1>",
            f"<p>{escape(comment)}</p>" if isinstance(comment, str) else "",
            f'<p class="muted">Definition: {escape(machine.source)}</p>' if machine.source else "",
            '<div class="layout"><section>',
            f'<div class="diagram" id="diagram">{diagram}</div>',
            "</section><section>",
            "<h2>Validation findings</h2>",
            _findings_table(reports),
            "<h2>Latest executions</h2>",
            _execution_table(recent, self.engine.clock(), with_machine=False),
            f'<p><a href="{escape(all_link)}">All executions of {escape(name)} →</a></p>',
            "</section></div>",
        ]
        return self._page(name, "".join(body))

    # -- reading -----------------------------------------------------------------------

    async def _history(self, execution: Execution) -> list[Event]:
        events: list[Event] = []
        after: int | None = None
        while len(events) < MAX_EVENTS:
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

    # -- pieces ------------------------------------------------------------------------

    def _counts(self, counts: Mapping[str, int]) -> str:
        parts = [
            f'<a href="{escape(UI_PATH + "?" + urlencode({"status": status}))}">'
            f"{_badge(status)}</a> {counts.get(status, 0)}"
            for status in STATUSES
        ]
        return f'<p class="counts">{" · ".join(parts)}</p>'

    def _filter_form(self, machine: str | None, status: str | None) -> str:
        machines = sorted(set(self.engine.machines) | ({machine} if machine else set()))
        machine_options = "".join(
            f'<option value="{escape(m)}"{" selected" if m == machine else ""}>{escape(m)}</option>'
            for m in machines
        )
        status_options = "".join(
            f'<option value="{s}"{" selected" if s == status else ""}>{s}</option>'
            for s in STATUSES
        )
        return (
            f'<form class="filter" method="get" action="{UI_PATH}">'
            '<label>State machine<select name="machine"><option value="">all</option>'
            f"{machine_options}</select></label>"
            '<label>Status<select name="status"><option value="">all</option>'
            f"{status_options}</select></label>"
            '<button type="submit">Filter</button></form>'
        )

    def _page(
        self, title: str, body: str, *, status: int = 200, refresh: bool = False
    ) -> web.Response:
        nav = "".join(
            f'<a href="{escape(machine_path(name))}">{escape(name)}</a>'
            for name in sorted(self.engine.machines)
        )
        reload = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
        stamp = _when(self.engine.clock())
        text = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"{reload}<title>{escape(title)} · stepd</title><style>{PAGE_CSS}</style></head>"
            f'<body><header><a class="brand" href="{UI_PATH}">stepd</a>'
            f'<a href="{UI_PATH}">Executions</a><nav>{nav}</nav></header>'
            f"<main>{body}</main>"
            f"<footer>stepd {escape(__version__)} · {stamp}"
            f"{' · refreshes every ' + str(REFRESH_SECONDS) + ' s' if refresh else ''}</footer>"
            "</body></html>"
        )
        return web.Response(
            text=text, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
        )

    def _problem(self, status: int, title: str, message: str) -> web.Response:
        body = f"<h1>{escape(title)}</h1><p>{escape(message)}</p>"
        return self._page(title, body, status=status)

    def _unavailable(self, exc: StoreError) -> web.Response:
        return self._problem(503, "The store cannot be read right now", exc.message)


# -- rendering helpers ----------------------------------------------------------------------


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    moment = datetime.fromtimestamp(ts, UTC)
    return (
        f'<time datetime="{moment.isoformat(timespec="milliseconds")}">'
        f"{moment.strftime('%Y-%m-%d %H:%M:%S')}Z</time>"
    )


def duration(seconds: float) -> str:
    """A span of time as a person reads it: `0.4 s`, `12 s`, `4 min 05 s`, `2 h 03 min`."""
    seconds = abs(seconds)
    if seconds < TENTHS_BELOW_SECONDS:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < SECONDS_PER_MINUTE:
        return f"{whole} s"
    if whole < SECONDS_PER_HOUR:
        return f"{whole // SECONDS_PER_MINUTE} min {whole % SECONDS_PER_MINUTE:02d} s"
    if whole < SECONDS_PER_DAY:
        return f"{whole // SECONDS_PER_HOUR} h {whole % SECONDS_PER_HOUR // 60:02d} min"
    return f"{whole // SECONDS_PER_DAY} d {whole % SECONDS_PER_DAY // SECONDS_PER_HOUR} h"


def _relative(ts: float, now: float) -> str:
    return f"in {duration(ts - now)}" if ts >= now else f"{duration(now - ts)} ago"


def _link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def _badge(status: str) -> str:
    return f'<span class="status {escape(status)}">{escape(status)}</span>'


def _in_flight(execution: Execution) -> bool:
    return execution.task is not None and execution.task.sent


def lateness(execution: Execution, now: float) -> float | None:
    """How long a running execution's next step is overdue, if it is; None if it is not."""
    if execution.status != RUNNING or execution.due_at is None or _in_flight(execution):
        return None
    late = now - execution.due_at
    return late if late > OVERDUE_GRACE_SECONDS else None


def _doing(execution: Execution, now: float) -> str:
    """What a running execution does next, in words."""
    if _in_flight(execution):
        sent_at = execution.task.sent_at if execution.task else None
        since = f" (sent {_relative(sent_at, now)})" if sent_at is not None else ""
        return f"calling its task{since}"
    if execution.due_at is None:
        return "—"
    if execution.phase == PHASE_WAIT:
        verb = "waiting until"
    elif execution.phase == PHASE_TASK and execution.attempt:
        verb = f"retry {execution.attempt} at"
    elif execution.phase == PHASE_TASK:
        verb = "calling its task at"
    else:
        verb = "next step at"
    return f"{verb} {_when(execution.due_at)} ({_relative(execution.due_at, now)})"


def _execution_table(rows: Sequence[Execution], now: float, *, with_machine: bool) -> str:
    if not rows:
        return '<p class="muted">No executions.</p>'
    head = [
        "Execution",
        "State machine",
        "Status",
        "Current state",
        "Next step due",
        "Late by",
        "Started",
        "Stopped",
    ]
    if not with_machine:
        head.remove("State machine")
    lines = ['<table class="executions"><thead><tr>']
    lines += [f"<th>{h}</th>" for h in head]
    lines.append("</tr></thead><tbody>")
    for row in rows:
        running = row.status == RUNNING
        late = lateness(row, now)
        cells = [
            f'<a href="{escape(execution_path(row.machine, row.name))}">{escape(row.name)}</a>',
            f'<a href="{escape(machine_path(row.machine))}">{escape(row.machine)}</a>',
            _badge(row.status),
            escape(row.state or "—") if running else "—",
            _doing(row, now) if running else "—",
            f'<span class="late">{duration(late)}</span>' if late is not None else "—",
            _when(row.start_date),
            _when(row.stop_date),
        ]
        if not with_machine:
            del cells[1]
        lines.append(
            f'<tr data-execution="{escape(row.name)}" data-status="{escape(row.status)}">'
            + "".join(f"<td>{cell}</td>" for cell in cells)
            + "</tr>"
        )
    lines.append("</tbody></table>")
    return "".join(lines)


def _execution_facts(execution: Execution, now: float) -> str:
    machine_link = _link(machine_path(execution.machine), execution.machine)
    facts: list[tuple[str, str]] = [
        ("State machine", machine_link),
        ("Status", _badge(execution.status)),
    ]
    if execution.status == RUNNING:
        facts.append(
            (
                "Current state",
                f'<strong id="current-state">{escape(execution.state or "—")}</strong>',
            )
        )
        facts.append(("Next", _doing(execution, now)))
        late = lateness(execution, now)
        if late is not None:
            facts.append(("Late by", f'<span class="late">{duration(late)}</span>'))
    facts.append(("Started", _when(execution.start_date)))
    if execution.stop_date is not None:
        facts.append(("Stopped", _when(execution.stop_date)))
        facts.append(("Took", duration(execution.stop_date - execution.start_date)))
    if execution.error is not None:
        facts.append(("Error", escape(execution.error)))
    if execution.cause is not None:
        facts.append(("Cause", f"<pre>{escape(execution.cause)}</pre>"))
    facts.append(("Input", f"<pre>{escape(_pretty(execution.input))}</pre>"))
    if execution.output is not None:
        facts.append(("Output", f"<pre>{escape(_pretty(execution.output))}</pre>"))
    items = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in facts)
    return f'<dl class="facts">{items}</dl>'


def _pretty(text: str) -> str:
    try:
        shown = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        shown = text
    return shown if len(shown) <= MAX_DATA_CHARS else shown[:MAX_DATA_CHARS] + "\n…"


def _legend() -> str:
    items = (
        ("done", "done"),
        ("current", "current"),
        ("failed", "failed"),
        ("not-reached", "not reached"),
    )
    return (
        '<div class="legend">'
        + "".join(f'<span><span class="swatch {css}"></span>{label}</span>' for css, label in items)
        + "</div>"
    )


def _timeline(events: Sequence[Event], start: float) -> str:
    shown = events[-MAX_TIMELINE_EVENTS:]
    lines = []
    if len(events) > len(shown):
        lines.append(
            f'<p class="muted">The {len(events) - len(shown)} earlier events are not shown.</p>'
        )
    lines.append('<ol class="timeline">')
    for event in shown:
        found: Any = next((v for k, v in event.details.items() if k.endswith("EventDetails")), None)
        details: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        kind = "bad" if event.type in FAILURE_EVENTS else ""
        if event.type == "ExecutionSucceeded":
            kind = "good"
        summary = " ".join(
            f"{key}={details[key]}" for key in ("error", "cause", "resource") if key in details
        )
        data = "".join(
            f"<details><summary>{key}</summary><pre>{escape(_pretty(str(details[key])))}</pre>"
            "</details>"
            for key in ("input", "output", "parameters")
            if key in details
        )
        lines.append(
            f'<li class="{kind}" data-event="{event.id}" data-type="{escape(event.type)}">'
            f'<span class="muted">#{event.id}</span>'
            f"<span>{_when(event.ts)}</span>"
            f'<span class="muted">+{duration(event.ts - start)}</span>'
            f'<span class="type">{escape(event.type)}</span>'
            f"<span>{escape(str(details.get('name', '')))} {escape(summary)}{data}</span></li>"
        )
    lines.append("</ol>")
    return "".join(lines)


def _findings_table(reports: Sequence[Report]) -> str:
    if not reports:
        return '<p class="clean">No findings: the definition is clean.</p>'
    rows = "".join(
        f'<tr class="{escape(r.severity)}"><td>{escape(r.severity)}</td><td>{escape(r.code)}</td>'
        f"<td>{escape(r.where)}</td><td>{escape(r.message)}</td></tr>"
        for r in reports
    )
    return (
        '<table class="findings"><thead><tr><th>Severity</th><th>Code</th><th>Where</th>'
        f"<th>Message</th></tr></thead><tbody>{rows}</tbody></table>"
    )
