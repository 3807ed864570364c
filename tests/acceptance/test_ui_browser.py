"""The web pages in headless Chromium, on the real daemon running a real classroom.

`stepd run` serves the shipped classroom machine (its ping wait shortened to two seconds) and
calls the stand-in classroom server; Chromium opens the pages as a person would, and the test
checks what is on the screen: the execution in the list, the diagram with the state it waits in
highlighted, the page refreshing itself until every state is green, the timeline; and a failed
execution with a very long cause, whose page must still fit the window with its diagram in view;
and, with API key pairs configured, a person signing in through the form. Screenshots are saved
under test-artifacts/.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.acceptance.webdriver import INSTALL_HINT, Browser, chromium, missing
from tests.integration.harness import DEFINITION as SIMPLE_CLASSROOM
from tests.integration.harness import EXPECTED_TYPES

from stepd.access import KeyPair

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
REGION = "us-east-1"
ACCOUNT = "123456789012"
MACHINE = "classroom"
ENDPOINTS = {
    "StartRecording": "/recording/start",
    "SendLivePing": "/recording/ping",
    "StopRecording": "/recording/stop",
}
STATES = (
    "RecordingWait",
    "StartRecording",
    "SendLivePingWait",
    "SendLivePing",
    "StoppingWait",
    "StopRecording",
)
# Fails at once with the reason it is given: a cause as long as the caller makes it.
CANCELLED = "cancelled"
CANCELLED_DEFINITION = {
    "Comment": "A class called off",
    "StartAt": "Check",
    "States": {
        "Check": {"Type": "Pass", "Next": "Cancelled"},
        "Cancelled": {"Type": "Fail", "Error": "Classroom.Cancelled", "CausePath": "$.reason"},
    },
}
LONG_CAUSE = ("The classroom server said: " + "0123456789abcdef" * 320)[:5000]  # no spaces
NARROW_WINDOW = (1300, 900)  # pixels
START_IN_SECONDS = 20  # the class starts this long after it is started: time to look at it waiting
CLASS_SECONDS = 6  # from the class's start to its end
FINISH_DEADLINE_SECONDS = 60.0  # for the page to show the execution succeeded
HTTP_TIMEOUT_SECONDS = 10.0
NOT_FOUND = 404
SEE_OTHER = 303
KEY = KeyPair(access_key_id="AKIDBROWSER0001", secret_access_key="browser-Secret/0123456789+abc")
CURRENT_STROKE = "rgb(29, 78, 216)"  # the blue outline of the current state
DONE_FILL = "rgb(220, 252, 231)"  # the green of a state done
EXPECTED_TIMELINE = EXPECTED_TYPES  # the simple classroom machine's events, in order

STATE_CLASSES = """
return [...document.querySelectorAll('#diagram g.state')]
    .map(g => [g.dataset.state, g.getAttribute('class')]);
"""
STATE_COLOURS = """
return [...document.querySelectorAll('#diagram g.state > rect')]
    .map(r => [r.parentNode.dataset.state, getComputedStyle(r).fill, getComputedStyle(r).stroke]);
"""
SIGNIN_SECONDS = 10.0  # for the list to show after the sign-in form is sent


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """Headless Chromium with a fresh profile."""
    lacking = missing()
    if lacking:
        pytest.fail(f"the browser tests need {', '.join(lacking)}: {INSTALL_HINT}")
    with chromium(tmp_path / "profile", tmp_path / "chromedriver.log") as opened:
        yield opened


@pytest.fixture
def ui_daemon(
    tmp_path: Path,
    classroom: Any,
    start_daemon: Callable[..., AbstractContextManager[Any]],
) -> Iterator[Any]:
    """`stepd run` with the blog post's classroom machine (fixed, its ping wait two seconds),
    and the cancelled machine; /ui/ must answer."""
    definition = copy.deepcopy(SIMPLE_CLASSROOM)
    path = tmp_path / "classroom.asl.json"
    path.write_text(json.dumps(definition, indent=2), encoding="utf-8")
    cancelled = tmp_path / "cancelled.asl.json"
    cancelled.write_text(json.dumps(CANCELLED_DEFINITION, indent=2), encoding="utf-8")
    folder = tmp_path / "daemon"
    folder.mkdir()
    machines = [(MACHINE, path, ENDPOINTS), (CANCELLED, cancelled, {})]
    with start_daemon(folder, classroom.base_url, machines) as daemon:
        answer = httpx.get(f"{daemon.url}/ui/", timeout=HTTP_TIMEOUT_SECONDS, trust_env=False)
        if answer.status_code == NOT_FOUND:
            pytest.fail(
                "ui not wired: the daemon answers GET /ui/ with 404 "
                "(ApiServer.app() must call stepd.ui.add_ui_routes)"
            )
        answer.raise_for_status()
        yield daemon


@pytest.fixture
def signed_daemon(
    tmp_path: Path,
    classroom: Any,
    start_daemon: Callable[..., AbstractContextManager[Any]],
) -> Iterator[Any]:
    """`stepd run` with the classroom machine and the API key pair KEY: /ui/ sends a browser
    without a session to the sign-in form."""
    path = tmp_path / "classroom.asl.json"
    path.write_text(json.dumps(SIMPLE_CLASSROOM, indent=2), encoding="utf-8")
    folder = tmp_path / "signed"
    folder.mkdir()
    with start_daemon(folder, classroom.base_url, [(MACHINE, path, ENDPOINTS)], [KEY]) as daemon:
        answer = httpx.get(f"{daemon.url}/ui/", timeout=HTTP_TIMEOUT_SECONDS, trust_env=False)
        assert (answer.status_code, answer.headers.get("Location")) == (SEE_OTHER, "/ui/signin")
        yield daemon


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def start_class(daemon: Any) -> str:
    """Start a classroom execution beginning START_IN_SECONDS from now; its name."""
    name = f"class-{uuid.uuid4().hex[:8]}"
    start = math.ceil(time.time()) + START_IN_SECONDS
    daemon.client().start_execution(
        stateMachineArn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{MACHINE}",
        name=name,
        input=json.dumps({"start": rfc3339(start), "end": rfc3339(start + CLASS_SECONDS)}),
    )
    return name


def test_a_person_watches_a_classroom_from_waiting_to_done(browser: Browser, ui_daemon: Any):
    """The list shows the class running; its page highlights the waiting state, refreshes
    itself until the class is recorded, then shows every state green and the whole timeline."""
    name = start_class(ui_daemon)
    browser.open(f"{ui_daemon.url}/ui/")
    row = browser.text(f'tr[data-execution="{name}"]')
    assert (name in row, "RUNNING" in row, "RecordingWait" in row, "waiting until" in row) == (
        True,
        True,
        True,
        True,
    ), row
    browser.screenshot(ARTIFACTS / "ui-list-running.png")

    browser.open(f"{ui_daemon.url}/ui/executions/{MACHINE}/{name}")
    heading = browser.text("h1")
    classes = dict(browser.run(STATE_CLASSES))
    colours = {state: stroke for state, _, stroke in browser.run(STATE_COLOURS)}
    assert (heading, list(classes)) == (f"{name} RUNNING", list(STATES))
    assert classes == {
        state: "state current" if state == "RecordingWait" else "state not-reached"
        for state in STATES
    }
    assert colours["RecordingWait"] == CURRENT_STROKE
    assert browser.text("#current-state") == "RecordingWait"
    browser.screenshot(ARTIFACTS / "ui-execution-running.png")

    # No navigation from here on: the page reloads itself while the execution runs.
    browser.wait_for(
        "return document.querySelector('h1 .status')?.innerText === 'SUCCEEDED'",
        timeout=FINISH_DEADLINE_SECONDS,
        what=f"the page of {name} to show SUCCEEDED",
    )
    fills = {state: fill for state, fill, _ in browser.run(STATE_COLOURS)}
    timeline = browser.run(
        "return [...document.querySelectorAll('ol.timeline li')].map(li => li.dataset.type)"
    )
    assert fills == dict.fromkeys(STATES, DONE_FILL)
    assert tuple(timeline) == EXPECTED_TIMELINE
    assert "ExecutionSucceeded" in browser.text("ol.timeline li:last-child")
    assert browser.run("return document.querySelector('meta[http-equiv=refresh]') === null")
    browser.screenshot(ARTIFACTS / "ui-execution-succeeded.png")
    described = ui_daemon.client().describe_execution(
        executionArn=f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{MACHINE}:{name}"
    )
    assert described["status"] == "SUCCEEDED"


def test_a_person_filters_the_list_and_reads_the_machine_page(browser: Browser, ui_daemon: Any):
    """The status filter narrows the list; the machine page draws every state and says the
    definition is clean."""
    name = start_class(ui_daemon)
    browser.open(f"{ui_daemon.url}/ui/?machine={MACHINE}&status=SUCCEEDED")
    empty = browser.run("return document.querySelectorAll('tr[data-execution]').length")
    browser.open(f"{ui_daemon.url}/ui/?machine={MACHINE}&status=RUNNING")
    listed = browser.run(
        "return [...document.querySelectorAll('tr[data-execution]')]"
        ".map(tr => tr.dataset.execution)"
    )
    assert (empty, listed) == (0, [name])

    browser.open(f"{ui_daemon.url}/ui/machines/{MACHINE}")
    drawn = [state for state, _ in browser.run(STATE_CLASSES)]
    edges = browser.run(
        "return [...document.querySelectorAll('#diagram g.edge')]"
        ".map(g => [g.dataset.from || null, g.dataset.to || null])"
    )
    assert drawn == list(STATES)
    assert [tuple(e) for e in edges] == [
        (None, STATES[0]),
        *itertools.pairwise(STATES),
        (STATES[-1], None),
    ]
    assert "No findings" in browser.text("p.clean")
    browser.screenshot(ARTIFACTS / "ui-machine.png")


def test_a_failed_execution_with_a_long_cause_fits_the_window(browser: Browser, ui_daemon: Any):
    """At 1300 x 900, the page of an execution that failed with a 5,000-character cause (its
    input as long) has no horizontal scrollbar, and its diagram is on the screen, full size."""
    name = f"cancelled-{uuid.uuid4().hex[:8]}"
    client = ui_daemon.client()
    arn = client.start_execution(
        stateMachineArn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{CANCELLED}",
        name=name,
        input=json.dumps({"reason": LONG_CAUSE}),
    )["executionArn"]
    described = client.describe_execution(executionArn=arn)
    assert (described["status"], len(described["cause"])) == ("FAILED", len(LONG_CAUSE))

    browser.resize(*NARROW_WINDOW)
    browser.open(f"{ui_daemon.url}/ui/executions/{CANCELLED}/{name}")
    width, height, scroll_width = browser.run(
        "return [innerWidth, innerHeight, document.scrollingElement.scrollWidth]"
    )
    left, top, right, bottom, drawn_width = browser.run(
        "const svg = document.querySelector('#diagram svg');"
        "const box = svg.getBoundingClientRect();"
        "return [box.left, box.top, box.right, box.bottom, svg.width.baseVal.value]"
    )
    browser.screenshot(ARTIFACTS / "ui-execution-failed-long-cause.png")
    assert (width, height) == NARROW_WINDOW
    assert scroll_width <= width
    assert (left >= 0, top >= 0, right <= width, bottom <= height) == (True, True, True, True), (
        left,
        top,
        right,
        bottom,
    )
    assert right - left == pytest.approx(drawn_width, abs=1)
    assert LONG_CAUSE in browser.text("dl.facts")


def test_a_person_signs_in_with_a_key_pair_and_sees_the_executions(
    browser: Browser, signed_daemon: Any
):
    """With key pairs configured, /ui/ shows the sign-in form; the right pair typed into it
    opens the list, which names the key signed in with; the session cookie is out of the
    page's reach (HttpOnly); signing out returns to the form."""
    name = start_class(signed_daemon)
    browser.open(f"{signed_daemon.url}/ui/")
    form_url, heading = browser.url, browser.text("h1")
    browser.screenshot(ARTIFACTS / "ui-signin.png")
    browser.type("#access_key_id", KEY.access_key_id)
    browser.type("#secret_access_key", "not-the-secret-0123456789")
    browser.click("#signin")
    refused = browser.text("#signin-error")
    browser.type("#secret_access_key", KEY.secret_access_key)
    browser.click("#signin")
    browser.wait_for(  # the form's redirect to the list may still be under way
        f"return document.querySelector('tr[data-execution=\"{name}\"]') !== null",
        timeout=SIGNIN_SECONDS,
        what="the execution list after signing in",
    )
    row = browser.text(f'tr[data-execution="{name}"]')
    assert (form_url, heading) == (f"{signed_daemon.url}/ui/signin", "Sign in")
    assert "wrong" in refused
    assert browser.url == f"{signed_daemon.url}/ui/"
    assert (name in row, "RUNNING" in row) == (True, True), row
    assert browser.text("#session") == f"signed in as {KEY.access_key_id} · sign out"
    assert browser.run("return document.cookie") == ""
    browser.screenshot(ARTIFACTS / "ui-signed-in.png")

    browser.click("#session a")
    signed_out = browser.url
    browser.open(f"{signed_daemon.url}/ui/executions/{MACHINE}/{name}")
    assert signed_out == f"{signed_daemon.url}/ui/signin"
    assert browser.url.startswith(f"{signed_daemon.url}/ui/signin?next=")
