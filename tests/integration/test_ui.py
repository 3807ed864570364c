"""The web pages under /ui/, served in-process by aiohttp from a real Engine on real SQLite.

The clock is a fake and the classroom server a `FakeCaller`, so each test puts its
executions exactly where it wants them; pages are read as a browser gets them, over loopback.
The `stepd graph` command is run against the real API server the same way.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stepd.api.server import ApiServer
from stepd.catalog import Report
from stepd.cli import main
from stepd.engine.arns import Arns
from stepd.engine.executor import Engine
from stepd.engine.machines import Machine
from stepd.store.sqlite import SqliteStore
from stepd.tasks.caller import TaskOutcome, TaskRequest
from stepd.tasks.endpoints import EndpointMap
from stepd.testing import FakeCaller
from stepd.ui import PAGE_SIZE, REFRESH_SECONDS, add_ui_routes

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
START_TEXT = "2027-01-15T08:00:10Z"  # the class starts 10 s after T0
END_TEXT = "2027-01-15T09:00:00Z"
PING_WAIT_SECONDS = 60
SVG = "{http://www.w3.org/2000/svg}"
OK = 200
FOUND = 302
BAD_REQUEST = 400
NOT_FOUND = 404
EX_OK = 0

CLASSROOM = {
    "Comment": "Record a classroom",
    "StartAt": "RecordingWait",
    "States": {
        "RecordingWait": {"Type": "Wait", "TimestampPath": "$.start", "Next": "StartRecording"},
        "StartRecording": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:start",
            "ResultPath": None,
            "Next": "PingWait",
        },
        "PingWait": {"Type": "Wait", "Seconds": PING_WAIT_SECONDS, "Next": "StopRecording"},
        "StopRecording": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:stop",
            "ResultPath": None,
            "End": True,
        },
    },
}
STATES = ("RecordingWait", "StartRecording", "PingWait", "StopRecording")
# The blog post's trap: the task's result replaces the data that the next Wait reads.
FORGETFUL = {
    "StartAt": "Call",
    "States": {
        "Call": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:call",
            "Next": "Later",
        },
        "Later": {"Type": "Wait", "TimestampPath": "$.end", "End": True},
    },
}
ENDPOINTS = {"StartRecording": "/start", "StopRecording": "/stop", "Call": "/call"}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Classroom:
    """The stand-in classroom server: answers 200, or 500 on the paths in `failing`."""

    failing: set[str] = field(default_factory=set)

    def handle(self, request: TaskRequest) -> TaskOutcome:
        if urlsplit(request.url).path in self.failing:
            return TaskOutcome(
                error="States.Http.StatusCode.500",
                cause='HTTP 500 Internal Server Error: {"error":"down"}',
                status=500,
            )
        return TaskOutcome(result={"ok": True}, status=200)


@dataclass
class Ui:
    """A running engine, its pages and the clock and classroom server it sees."""

    engine: Engine
    client: TestClient[web.Request, web.Application]
    clock: Clock
    classroom: Classroom
    reports: dict[str, list[Report]]

    async def start(self, name: str, machine: str = "classroom", **extra: Any) -> int:
        data = {"start": START_TEXT, "end": END_TEXT, **extra}
        started = await self.engine.start_execution(machine, name, json.dumps(data))
        return started.execution.id

    async def advance_to(self, execution_id: int, now: float) -> None:
        self.clock.now = now
        await self.engine.advance(execution_id)

    async def page(self, path: str, status: int = OK) -> str:
        response = await self.client.get(path, allow_redirects=False)
        text = await response.text()
        assert response.status == status, text
        return text


def machine(name: str, definition: dict[str, Any]) -> Machine:
    return Machine(
        name=name,
        definition=definition,
        definition_text=json.dumps(definition),
        endpoints=EndpointMap(base_url="http://classroom.test", routes=ENDPOINTS),
        source=f"{name}.asl.json",
    )


@pytest.fixture
async def ui(tmp_path: Path) -> AsyncIterator[Ui]:
    """The machines classroom and forgetful, their pages, nothing running yet."""
    store = SqliteStore(tmp_path / "stepd.db")
    await store.open()
    classroom = Classroom()
    caller = FakeCaller(respond=classroom.handle)
    clock = Clock()
    engine = Engine(store=store, caller=caller, machines={}, arns=Arns(), clock=clock)
    await engine.register(
        {"classroom": machine("classroom", CLASSROOM), "forgetful": machine("forgetful", FORGETFUL)}
    )
    engine.set_timer(lambda _id, _due: None)
    reports: dict[str, list[Report]] = {}
    app = web.Application()
    add_ui_routes(app, engine, lambda: reports)
    async with TestClient(TestServer(app)) as client:
        yield Ui(engine=engine, client=client, clock=clock, classroom=classroom, reports=reports)
    await caller.aclose()
    await store.close()


# -- reading pages ------------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    content: list[Element | str] = field(default_factory=list)  # in document order

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.content:
            if isinstance(child, Element):
                yield from child.iter()

    def all_text(self) -> str:
        parts = (c if isinstance(c, str) else c.all_text() for c in self.content)
        return " ".join(" ".join(parts).split())

    def find_all(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.iter()
            if e.tag == tag and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _Tree(HTMLParser):
    VOID = frozenset({"meta", "br", "input", "img", "link", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].content.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].content.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        while len(self.stack) > 1:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        self.stack[-1].content.append(data)


def dom(html: str) -> Element:
    tree = _Tree()
    tree.feed(html)
    return tree.root


def rows(html: str) -> dict[str, dict[str, str]]:
    """The executions table: name -> column heading -> cell text."""
    document = dom(html)
    (table,) = document.find_all("table", **{"class": "executions"})
    headings = [th.all_text() for th in table.find_all("th")]
    return {
        tr.attrs["data-execution"]: dict(
            zip(headings, [td.all_text() for td in tr.find_all("td")], strict=True)
        )
        for tr in table.find_all("tr")
        if "data-execution" in tr.attrs
    }


def diagram(html: str) -> dict[str, set[str]]:
    """The diagram's states: name -> classes, read from the SVG as XML."""
    found = re.search(r"<svg .*?</svg>", html, re.DOTALL)
    assert found is not None, "no diagram on the page"
    root = ET.fromstring(found.group())
    return {
        g.get("data-state", ""): set((g.get("class") or "").split())
        for g in root.iter(f"{SVG}g")
        if "state" in (g.get("class") or "").split()
    }


def status_of(classes: dict[str, set[str]]) -> dict[str, str]:
    return {
        name: next(iter(c & {"done", "failed", "current", "not-reached"}))
        for name, c in classes.items()
    }


def timeline(html: str) -> list[tuple[str, str]]:
    """The timeline's events: (type, rest of the line)."""
    return [
        (li.attrs["data-type"], li.all_text())
        for li in dom(html).find_all("li")
        if "data-type" in li.attrs
    ]


def refreshes(html: str) -> bool:
    return any(m.attrs.get("http-equiv") == "refresh" for m in dom(html).find_all("meta"))


def execution_page(name: str, machine_name: str = "classroom") -> str:
    return f"/ui/executions/{machine_name}/{name}"


# -- the list -----------------------------------------------------------------------------


async def test_the_list_shows_each_execution_with_its_status_state_and_due_time(ui: Ui):
    """Each execution is a row linking to its page, with status, state and next due time."""
    await ui.start("c1")
    listed = rows(await ui.page("/ui/"))
    assert listed == {
        "c1": {
            "Execution": "c1",
            "State machine": "classroom",
            "Status": "RUNNING",
            "Current state": "RecordingWait",
            "Next step due": "waiting until 2027-01-15 08:00:10Z (in 10 s)",
            "Late by": "—",
            "Started": "2027-01-15 08:00:00Z",
            "Stopped": "—",
        }
    }


async def test_rows_link_to_the_execution_and_its_machine(ui: Ui):
    """The name links to the execution's page and the machine to the machine's page."""
    await ui.start("c1")
    (row,) = [
        tr for tr in dom(await ui.page("/ui/")).find_all("tr") if tr.attrs.get("data-execution")
    ]
    links = [a.attrs["href"] for a in row.find_all("a")]
    assert links == [execution_page("c1"), "/ui/machines/classroom"]


async def test_the_list_filters_by_machine_and_status(ui: Ui):
    """`?machine=` and `?status=` narrow the list."""
    first = await ui.start("c1")
    await ui.start("c2")
    await ui.start("f1", "forgetful")
    await ui.engine.stop_execution("classroom", "c2", None, None)
    by_machine = rows(await ui.page("/ui/?machine=classroom"))
    by_status = rows(await ui.page("/ui/?machine=classroom&status=RUNNING"))
    aborted = rows(await ui.page("/ui/?status=ABORTED"))
    assert (sorted(by_machine), sorted(by_status), sorted(aborted), first > 0) == (
        ["c1", "c2"],
        ["c1"],
        ["c2"],
        True,
    )


async def test_the_filter_form_keeps_the_chosen_values(ui: Ui):
    """The machine and status chosen are selected in the form."""
    page = dom(await ui.page("/ui/?machine=forgetful&status=FAILED"))
    selected = [o.attrs["value"] for o in page.find_all("option") if "selected" in o.attrs]
    assert selected == ["forgetful", "FAILED"]


async def test_an_unknown_status_filter_is_refused(ui: Ui):
    """A status that does not exist is a 400 page naming the statuses that do."""
    page = await ui.page("/ui/?status=%3Cb%3E", status=BAD_REQUEST)
    assert "RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED" in page


async def test_an_overdue_execution_shows_how_late_it_is(ui: Ui):
    """A running execution past its due time shows the lateness, in words."""
    await ui.start("c1")
    ui.clock.now = T0 + 10 + 90
    row = rows(await ui.page("/ui/"))["c1"]
    assert (row["Late by"], row["Next step due"]) == (
        "1 min 30 s",
        "waiting until 2027-01-15 08:00:10Z (1 min 30 s ago)",
    )


async def test_a_step_just_due_is_not_late(ui: Ui):
    """Within the grace second a due step counts as starting, not late."""
    await ui.start("c1")
    ui.clock.now = T0 + 10.5
    assert rows(await ui.page("/ui/"))["c1"]["Late by"] == "—"


async def test_a_finished_execution_shows_no_state_or_due_time(ui: Ui):
    """Once stopped, the row shows the status and the stop time only."""
    await ui.start("c1")
    ui.clock.now = T0 + 5
    await ui.engine.stop_execution("classroom", "c1", None, None)
    row = rows(await ui.page("/ui/"))["c1"]
    assert (row["Status"], row["Current state"], row["Next step due"], row["Stopped"]) == (
        "ABORTED",
        "—",
        "—",
        "2027-01-15 08:00:05Z",
    )


async def test_the_list_pages_on_to_older_executions(ui: Ui):
    """Past a page of executions, an `Older` link shows the rest."""
    names = [f"c{n:03d}" for n in range(PAGE_SIZE + 2)]
    for name in names:
        await ui.start(name)
    first = await ui.page("/ui/")
    (older,) = [a.attrs["href"] for a in dom(first).find_all("a") if a.attrs.get("rel") == "next"]
    second = await ui.page(older)
    assert (sorted(rows(first)), sorted(rows(second))) == (
        sorted(names[2:]),
        sorted(names[:2]),
    )


async def test_a_malformed_page_token_is_refused(ui: Ui):
    """`?before=` takes an execution id, nothing else."""
    await ui.page("/ui/?before=x", status=BAD_REQUEST)


async def test_the_list_refreshes_itself_while_something_runs(ui: Ui):
    """With a running execution on it the list reloads itself; without, it does not."""
    empty = await ui.page("/ui/")
    await ui.start("c1")
    assert (refreshes(empty), refreshes(await ui.page("/ui/"))) == (False, True)


async def test_ui_without_the_slash_redirects_to_the_list(ui: Ui):
    """`/ui` sends the browser to `/ui/`."""
    response = await ui.client.get("/ui", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (FOUND, "/ui/")


# -- an execution -------------------------------------------------------------------------


async def test_the_execution_page_highlights_the_current_state(ui: Ui):
    """Passed states are done, the one it waits in is current, the rest not reached."""
    execution_id = await ui.start("c1")
    await ui.advance_to(execution_id, T0 + 10)
    page = await ui.page(execution_page("c1"))
    assert status_of(diagram(page)) == {
        "RecordingWait": "done",
        "StartRecording": "done",
        "PingWait": "current",
        "StopRecording": "not-reached",
    }
    assert dom(page).find_all("strong", id="current-state")[0].all_text() == "PingWait"


async def test_the_timeline_lists_every_event_in_order(ui: Ui):
    """The history appears oldest first, each event with its type and state."""
    execution_id = await ui.start("c1")
    await ui.advance_to(execution_id, T0 + 10)
    events = timeline(await ui.page(execution_page("c1")))
    assert [
        (kind, "RecordingWait" in text or "StartRecording" in text) for kind, text in events
    ] == [
        ("ExecutionStarted", False),
        ("WaitStateEntered", True),
        ("WaitStateExited", True),
        ("TaskStateEntered", True),
        ("LambdaFunctionScheduled", False),
        ("LambdaFunctionStarted", False),
        ("LambdaFunctionSucceeded", False),
        ("TaskStateExited", True),
        ("WaitStateEntered", False),
    ]


async def test_events_of_one_instant_are_listed_by_event_id(ui: Ui):
    """The seven events one transition writes at the same instant appear in history order."""
    execution_id = await ui.start("c1")
    await ui.advance_to(execution_id, T0 + 10)
    history = await ui.engine.history(execution_id, reverse=False, limit=100, after=None)
    page = dom(await ui.page(execution_page("c1")))
    shown = [
        (int(li.attrs["data-event"]), li.attrs["data-type"])
        for li in page.find_all("li")
        if "data-event" in li.attrs
    ]
    assert [e.type for e in history if e.ts == T0 + 10] == [
        "WaitStateExited",
        "TaskStateEntered",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
        "TaskStateExited",
        "WaitStateEntered",
    ]
    assert shown == sorted((e.id, e.type) for e in history)


async def test_after_success_every_state_is_done_and_the_page_stops_refreshing(ui: Ui):
    """A succeeded execution is all green, and its page no longer reloads itself."""
    execution_id = await ui.start("c1")
    running = await ui.page(execution_page("c1"))
    await ui.advance_to(execution_id, T0 + 10)
    await ui.advance_to(execution_id, T0 + 10 + PING_WAIT_SECONDS)
    done = await ui.page(execution_page("c1"))
    assert (refreshes(running), refreshes(done)) == (True, False)
    assert set(status_of(diagram(done)).values()) == {"done"}
    assert timeline(done)[-1][0] == "ExecutionSucceeded"
    assert f'content="{REFRESH_SECONDS}"' in running


async def test_a_task_that_failed_the_execution_is_red(ui: Ui):
    """The task whose failure ended the execution is failed; its error is shown."""
    ui.classroom.failing.add("/start")
    execution_id = await ui.start("c1")
    await ui.advance_to(execution_id, T0 + 10)
    page = await ui.page(execution_page("c1"))
    assert status_of(diagram(page)) == {
        "RecordingWait": "done",
        "StartRecording": "failed",
        "PingWait": "not-reached",
        "StopRecording": "not-reached",
    }
    assert "States.Http.StatusCode.500" in dom(page).all_text()


async def test_user_data_is_escaped(ui: Ui):
    """Markup in an execution's input is shown as text, never as markup."""
    await ui.start("c1", note="<script>alert(1)</script>")
    page = await ui.page(execution_page("c1"))
    assert ("<script>" in page, "&lt;script&gt;alert(1)&lt;/script&gt;" in page) == (False, True)


# What API callers choose: an execution's name (it may hold a quote, never markup), its input,
# and the error and cause it is stopped with; and a name asked for in a page's address.
QUOTED_NAME = "o'neil-(class=1)"
HOSTILE = """<script>alert("x" + 'y')</script>"""
HOSTILE_ERROR = 'Teacher."<b>ill</b>"'
ASKED = """<img src=x onerror="alert('x')">"""


@pytest.mark.parametrize(
    ("path", "status", "shown", "listed"),
    [
        ("/ui/", OK, [QUOTED_NAME], [QUOTED_NAME]),
        ("/ui/?status=ABORTED", OK, [QUOTED_NAME], [QUOTED_NAME]),
        ("/ui/machines/classroom", OK, [QUOTED_NAME], [QUOTED_NAME]),
        (
            execution_page(quote(QUOTED_NAME, safe="")),
            OK,
            [QUOTED_NAME, HOSTILE, HOSTILE_ERROR, json.dumps(HOSTILE, ensure_ascii=False)],
            [],
        ),
        (execution_page(quote(ASKED, safe="")), NOT_FOUND, [repr(ASKED)], []),
    ],
    ids=["list", "filtered-list", "machine", "execution", "unknown-execution"],
)
async def test_what_callers_sent_is_escaped_on_every_page(
    ui: Ui, path: str, status: int, shown: list[str], listed: list[str]
):
    """Names, inputs, errors and causes holding markup or quotes are in the page as escaped
    text: none of it is in the source as it was sent, all of it reads back unchanged."""
    await ui.start(QUOTED_NAME, note=HOSTILE)
    await ui.engine.stop_execution("classroom", QUOTED_NAME, HOSTILE_ERROR, HOSTILE)
    page = await ui.page(path, status=status)
    document = dom(page)
    sent = [QUOTED_NAME, HOSTILE, HOSTILE_ERROR, ASKED]
    assert ([s for s in sent if s in page], "<script" in page, "<img" in page) == ([], False, False)
    assert [s for s in shown if s not in document.all_text()] == []
    rows_named = [
        tr.attrs["data-execution"] for tr in document.find_all("tr", data_status="ABORTED")
    ]
    assert rows_named == listed


@pytest.mark.parametrize(
    "path",
    [execution_page("nope"), execution_page("c1", "nosuch"), "/ui/machines/%3Cb%3Ex"],
    ids=["execution", "execution-machine", "machine"],
)
async def test_unknown_pages_are_404_and_escape_what_was_asked(ui: Ui, path: str):
    """An execution or machine that does not exist is a 404 page; the name in it is escaped."""
    page = await ui.page(path, status=NOT_FOUND)
    assert "<b>" not in page


async def test_pages_allow_no_script_and_only_their_own_styles(ui: Ui):
    """The Content-Security-Policy names the hashes of exactly the page's inline styles."""
    execution_id = await ui.start("c1")
    await ui.advance_to(execution_id, T0 + 10)
    response = await ui.client.get(execution_page("c1"))
    page = await response.text()
    policy = response.headers["Content-Security-Policy"]
    styles = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
    hashes = {
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in styles
    }
    style_src = re.search(r"style-src ([^;]*)", policy)
    assert style_src is not None
    assert ("default-src 'none'" in policy, "<script" in page) == (True, False)
    assert set(style_src.group(1).split()) == hashes


# -- a machine ----------------------------------------------------------------------------


async def test_the_machine_page_shows_its_diagram(ui: Ui):
    """Every state of the machine is in its diagram, none coloured."""
    page = await ui.page("/ui/machines/classroom")
    assert diagram(page) == {name: {"state"} for name in STATES}


async def test_the_machine_page_shows_the_validation_findings(ui: Ui):
    """A definition's warnings are listed with code, place and message."""
    page = dom(await ui.page("/ui/machines/forgetful"))
    (table,) = page.find_all("table", **{"class": "findings"})
    cells = [[td.all_text() for td in tr.find_all("td")] for tr in table.find_all("tr")[1:]]
    assert [(c[0], c[1], c[2]) for c in cells] == [
        ("warning", "DATA_REPLACED_BY_TASK", "forgetful.asl.json#/States/Later")
    ]


async def test_a_clean_machine_says_so(ui: Ui):
    """A definition without findings says it is clean."""
    page = dom(await ui.page("/ui/machines/classroom"))
    assert [p.all_text() for p in page.find_all("p", **{"class": "clean"})] == [
        "No findings: the definition is clean."
    ]


async def test_findings_handed_over_by_the_daemon_are_shown(ui: Ui):
    """When the daemon supplies a machine's reports, those are what the page lists."""
    ui.reports["classroom"] = [
        Report(
            where="stepd.toml#/machines/0", code="CUSTOM", message="<i>x</i>", severity="warning"
        )
    ]
    page = await ui.page("/ui/machines/classroom")
    assert ("CUSTOM" in page, "&lt;i&gt;x&lt;/i&gt;" in page) == (True, True)


async def test_the_machine_page_lists_its_latest_executions(ui: Ui):
    """A machine's page lists its own executions only."""
    await ui.start("c1")
    await ui.start("f1", "forgetful")
    assert sorted(rows(await ui.page("/ui/machines/classroom"))) == ["c1"]


# -- `stepd graph` against the API --------------------------------------------------------


@pytest.fixture
async def api(ui: Ui) -> AsyncIterator[str]:
    """The real API server over the same engine, on a free loopback port; its URL."""

    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    server = ApiServer(ui.engine, "127.0.0.1:0", health)
    await server.start()
    yield server.url
    await server.stop()


def graph_command(*argv: str) -> int:
    return main(["graph", *argv])


async def test_the_graph_command_colours_an_execution_from_the_api(
    ui: Ui, api: str, capsys: pytest.CaptureFixture[str]
):
    """`stepd graph classroom --execution c1 --api URL --format svg` marks where c1 is."""
    execution_id = await ui.start("c1")
    await ui.advance_to(execution_id, T0 + 10)
    code = await asyncio.to_thread(
        graph_command, "classroom", "--execution", "c1", "--api", api, "--format", "svg"
    )
    assert (code, status_of(diagram(capsys.readouterr().out))) == (
        EX_OK,
        {
            "RecordingWait": "done",
            "StartRecording": "done",
            "PingWait": "current",
            "StopRecording": "not-reached",
        },
    )


async def test_the_graph_command_reads_the_definition_from_the_api(
    api: str, capsys: pytest.CaptureFixture[str]
):
    """With --api alone the definition comes from DescribeStateMachine."""
    code = await asyncio.to_thread(graph_command, "classroom", "--api", api, "--format", "dot")
    out = capsys.readouterr().out
    assert (code, [name for name in STATES if f'label="{name}\\n' in out]) == (EX_OK, list(STATES))


async def test_the_graph_command_reports_an_unknown_execution(
    api: str, capsys: pytest.CaptureFixture[str]
):
    """An execution the API does not know exits 1 with the API's message."""
    code = await asyncio.to_thread(graph_command, "classroom", "--execution", "nope", "--api", api)
    assert (code, "ExecutionDoesNotExist" in capsys.readouterr().err) == (1, True)


# -- the agenda ---------------------------------------------------------------------------------


async def test_the_agenda_charts_executions_due_per_minute_with_the_spike_in_red(ui: Ui):
    """Four classes at 08:30, one at 08:45: a bar per busy minute, the busiest one red, and
    the busiest minutes listed with links."""
    for n in range(4):
        await ui.start(f"top{n}", start="2027-01-15T08:30:00Z")
    await ui.start("quarter", start="2027-01-15T08:45:20Z")
    page = await ui.page("/ui/agenda?hours=1")
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", page, re.DOTALL).group(0))  # type: ignore[union-attr]
    bars = {r.find(f"{SVG}title").text: r.get("fill") for r in svg.iter(f"{SVG}rect")}
    assert bars == {"08:30 UTC: 4 due": "#c0392b", "08:45 UTC: 1 due": "#3b6ea5"}
    assert "5 execution(s) fall due in the next 1 h" in page
    assert 'href="/ui/executions/classroom/top0"' in page
    assert "stepd agenda --to +1h" in page


async def test_the_agenda_refuses_a_span_it_does_not_offer(ui: Ui):
    await ui.page("/ui/agenda?hours=5", status=BAD_REQUEST)
    await ui.page("/ui/agenda?machine=nope", status=BAD_REQUEST)


# -- the nodes ----------------------------------------------------------------------------


async def test_on_sqlite_the_nodes_page_says_there_is_one_node(ui: Ui):
    """One SQLite store: one node, which holds everything; the page says so simply."""
    page = dom(await ui.page("/ui/nodes"))
    (note,) = [e for e in page.iter() if e.attrs.get("id") == "one-node"]
    assert "One node" in note.all_text()
    assert not [e for e in page.iter() if e.attrs.get("id") == "nodes"]
