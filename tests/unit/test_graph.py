"""Diagrams of state machines: the graph read from a definition, an execution's progress over
it, and the Mermaid, dot and SVG drawings (the SVG checked as XML, element by element)."""

from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from stepd.asl.loader import load_definition
from stepd.graph import (
    CURRENT,
    DONE,
    FAILED,
    NOT_REACHED,
    SMALL_CHAR_WIDTH,
    build_graph,
    node_ids,
    progress,
    register,
    render,
    rule_text,
    to_dot,
    to_mermaid,
    to_svg,
)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "stepd.toml"
README = REPO / "README.md"
SVG = "{http://www.w3.org/2000/svg}"
EX_OK = 0
EX_CONFIG = 78

CLASSROOM = load_definition(REPO / "config" / "classroom.asl.yaml").definition
CLASSROOM_STATES = (
    "RecordingWait",
    "StartRecording",
    "SendLivePingWait",
    "SendLivePing",
    "StoppingWait",
    "StopRecording",
)
# (from, to) of every edge; None is the start or the end marker.
CLASSROOM_EDGES = {
    (None, "RecordingWait"),
    ("RecordingWait", "StartRecording"),
    ("StartRecording", "SendLivePingWait"),
    ("SendLivePingWait", "SendLivePing"),
    ("SendLivePing", "StoppingWait"),
    ("StoppingWait", "StopRecording"),
    ("StopRecording", None),
}

# A Choice with two rules and a Default, a Catch, a loop back up, a Parallel with two branches.
BRANCHY: dict[str, Any] = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.n", "NumericGreaterThan": 3, "Next": "Big"},
                {"Variable": "$.again", "BooleanEquals": True, "Next": "Pause"},
            ],
            "Default": "Small",
        },
        "Big": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:big",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Oops"}],
            "Next": "Fan",
        },
        "Small": {"Type": "Pass", "Next": "Done"},
        "Pause": {"Type": "Wait", "Seconds": 3, "Next": "Check"},
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "A1",
                    "States": {
                        "A1": {"Type": "Pass", "Next": "A2"},
                        "A2": {"Type": "Pass", "End": True},
                    },
                },
                {"StartAt": "B1", "States": {"B1": {"Type": "Pass", "End": True}}},
            ],
            "Next": "Done",
        },
        "Oops": {"Type": "Fail", "Error": "Big.Failed"},
        "Done": {"Type": "Succeed"},
    },
}
# A Choice whose Default is itself.
LOOPING: dict[str, Any] = {
    "StartAt": "Poll",
    "States": {
        "Poll": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.ready", "IsPresent": True, "Next": "Done"}],
            "Default": "Poll",
        },
        "Done": {"Type": "Succeed"},
    },
}
BRANCHY_EDGES = {
    (None, "Check", "start"),
    ("Check", "Big", "choice"),
    ("Check", "Pause", "choice"),
    ("Check", "Small", "default"),
    ("Big", "Fan", "next"),
    ("Big", "Oops", "catch"),
    ("Small", "Done", "next"),
    ("Pause", "Check", "next"),
    ("Fan", "A1", "branch"),
    ("Fan", "B1", "branch"),
    ("A1", "A2", "next"),
    ("Fan", "Done", "next"),
    ("Oops", None, "end"),
    ("Done", None, "end"),
}


def entered(name: str, state_type: str = "Wait") -> dict[str, Any]:
    return {"type": f"{state_type}StateEntered", "stateEnteredEventDetails": {"name": name}}


def exited(name: str, state_type: str = "Wait") -> dict[str, Any]:
    return {"type": f"{state_type}StateExited", "stateExitedEventDetails": {"name": name}}


def event(event_type: str) -> dict[str, Any]:
    return {"type": event_type}


# The classroom execution waiting before its live ping.
WAITING_FOR_PING = [
    event("ExecutionStarted"),
    entered("RecordingWait"),
    exited("RecordingWait"),
    entered("StartRecording", "Task"),
    event("TaskScheduled"),
    event("TaskStarted"),
    event("TaskSucceeded"),
    exited("StartRecording", "Task"),
    entered("SendLivePingWait"),
]
SUCCEEDED = [
    *WAITING_FOR_PING,
    exited("SendLivePingWait"),
    entered("SendLivePing", "Task"),
    event("TaskSucceeded"),
    exited("SendLivePing", "Task"),
    entered("StoppingWait"),
    exited("StoppingWait"),
    entered("StopRecording", "Task"),
    event("TaskSucceeded"),
    exited("StopRecording", "Task"),
    event("ExecutionSucceeded"),
]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def groups(root: ET.Element, css: str) -> list[ET.Element]:
    """The <g> elements whose class list holds `css`."""
    return [g for g in root.iter(f"{SVG}g") if css in (g.get("class") or "").split()]


def state_classes(svg: str) -> dict[str, set[str]]:
    return {
        g.get("data-state", ""): set((g.get("class") or "").split())
        for g in groups(parse(svg), "state")
    }


def svg_edges(svg: str) -> set[tuple[str | None, str | None]]:
    return {(g.get("data-from"), g.get("data-to")) for g in groups(parse(svg), "edge")}


def statuses(svg: str) -> dict[str, str]:
    """Each state's status class."""
    found = {}
    for name, classes in state_classes(svg).items():
        (status,) = classes & {DONE, FAILED, CURRENT, NOT_REACHED}
        found[name] = status
    return found


# -- the graph ----------------------------------------------------------------------------


def test_the_classroom_graph_has_every_state_in_order_with_its_type():
    """build_graph lists the states in definition order, each with its ASL type."""
    graph = build_graph(CLASSROOM)
    assert [(n.name, n.type) for n in graph.nodes] == [
        ("RecordingWait", "Wait"),
        ("StartRecording", "Task"),
        ("SendLivePingWait", "Wait"),
        ("SendLivePing", "Task"),
        ("StoppingWait", "Wait"),
        ("StopRecording", "Task"),
    ]


def test_every_kind_of_transition_becomes_an_edge():
    """Next, Choices, Default, Catch, Parallel branches and both markers are edges."""
    graph = build_graph(BRANCHY)
    assert {(e.source, e.target, e.kind) for e in graph.edges} == BRANCHY_EDGES


def test_edges_carry_the_choice_rule_and_the_caught_errors_as_labels():
    """A Choice edge is labelled with its rule, a Catch edge with its ErrorEquals."""
    labels = {(e.source, e.target): e.label for e in build_graph(BRANCHY).edges}
    assert (labels["Check", "Big"], labels["Check", "Small"], labels["Big", "Oops"]) == (
        "$.n > 3",
        "Default",
        "States.ALL",
    )


def test_parallel_branches_are_clusters_of_their_state():
    """Each branch of a Parallel is a cluster holding its states, and its states know it."""
    graph = build_graph(BRANCHY)
    clusters = [(c.state, c.label, c.start, c.states) for c in graph.clusters]
    parents = {n.name: (n.parent, n.branch) for n in graph.nodes if n.parent}
    assert (clusters, parents) == (
        [("Fan", "Branch 1", "A1", ("A1", "A2")), ("Fan", "Branch 2", "B1", ("B1",))],
        {"A1": ("Fan", 0), "A2": ("Fan", 0), "B1": ("Fan", 1)},
    )


def test_transitions_to_unknown_states_are_left_out():
    """A Next naming no state draws nothing rather than failing."""
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}
    assert [(e.source, e.target) for e in build_graph(definition).edges] == [(None, "A")]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"Variable": "$.n", "NumericLessThan": 3}, "$.n < 3"),
        ({"Variable": "$.s", "StringEquals": "x"}, '$.s == "x"'),
        ({"Variable": "$.a", "NumericGreaterThanEqualsPath": "$.b"}, "$.a >= $.b"),
        (
            {"Variable": "$.t", "TimestampLessThanEquals": "2027-01-01T00:00:00Z"},
            '$.t <= "2027-01-01T00:00:00Z"',
        ),
        ({"Variable": "$.s", "StringMatches": "log-*"}, '$.s matches "log-*"'),
        ({"Variable": "$.x", "IsPresent": False}, "$.x is not present"),
        ({"Not": {"Variable": "$.x", "IsNull": True}}, "not ($.x is null)"),
        (
            {
                "And": [
                    {"Variable": "$.a", "BooleanEquals": True},
                    {"Variable": "$.b", "NumericEquals": 1},
                ]
            },
            "($.a == true) and ($.b == 1)",
        ),
        ({"Or": [{"Variable": "$.a", "IsString": True}]}, "$.a is a string"),
    ],
    ids=["less", "string", "path", "timestamp", "matches", "not-present", "not", "and", "or"],
)
def test_choice_rules_read_as_conditions(rule: dict[str, Any], expected: str):
    """Each comparison operator reads as a short condition."""
    assert rule_text(rule) == expected


# -- progress -----------------------------------------------------------------------------


def test_a_running_execution_has_done_states_a_current_one_and_the_rest_not_reached():
    """States exited are done, the one entered last is current, the others not reached."""
    seen = progress(WAITING_FOR_PING)
    assert [seen.status(name) for name in CLASSROOM_STATES] == [
        DONE,
        DONE,
        CURRENT,
        NOT_REACHED,
        NOT_REACHED,
        NOT_REACHED,
    ]


def test_a_task_that_fails_the_execution_is_failed():
    """A task whose failure ends the execution is marked failed, not current."""
    events = [*WAITING_FOR_PING[:6], event("TaskFailed"), event("ExecutionFailed")]
    assert progress(events).status("StartRecording") == FAILED


def test_a_task_that_succeeds_on_a_retry_is_done():
    """A failed attempt followed by a successful one leaves the state done."""
    events = [
        *WAITING_FOR_PING[:6],
        event("TaskFailed"),
        event("TaskSucceeded"),
        exited("StartRecording", "Task"),
    ]
    assert progress(events).status("StartRecording") == DONE


def test_a_caught_failure_marks_the_state_failed_and_the_catcher_reached():
    """A task whose error a Catch handled is failed; the execution goes on from the catcher."""
    events = [
        event("ExecutionStarted"),
        entered("Check", "Choice"),
        exited("Check", "Choice"),
        entered("Big", "Task"),
        event("TaskFailed"),
        exited("Big", "Task"),
        entered("Oops", "Fail"),
        event("ExecutionFailed"),
    ]
    seen = progress(events)
    assert (seen.status("Check"), seen.status("Big"), seen.status("Oops")) == (
        DONE,
        FAILED,
        FAILED,
    )


def test_an_aborted_execution_marks_the_state_it_was_in_failed():
    """Stopping an execution leaves the state it was in red."""
    seen = progress([*WAITING_FOR_PING, event("ExecutionAborted")])
    assert seen.status("SendLivePingWait") == FAILED


def test_the_edges_taken_include_the_start_and_the_end():
    """A succeeded execution took its start edge, each transition and its end edge."""
    assert progress(SUCCEEDED).taken == CLASSROOM_EDGES


# -- SVG ----------------------------------------------------------------------------------


def test_the_svg_has_one_element_per_state_with_its_name_and_type():
    """Every state is a `g.state` with data-state and data-type, its name and type as text."""
    root = parse(to_svg(build_graph(CLASSROOM)))
    found = [
        (g.get("data-state"), g.get("data-type"), [t.text for t in g.iter(f"{SVG}text")])
        for g in groups(root, "state")
    ]
    expected_types = ["Wait", "Task", "Wait", "Task", "Wait", "Task"]
    assert found == [
        (name, kind, [name, kind])
        for name, kind in zip(CLASSROOM_STATES, expected_types, strict=True)
    ]


def test_the_svg_has_every_edge_with_an_arrowhead():
    """Every edge of the classroom machine is a path with an arrowhead, start and end included."""
    root = parse(to_svg(build_graph(CLASSROOM)))
    arrows = [path.get("marker-end") for g in groups(root, "edge") for path in g.iter(f"{SVG}path")]
    assert (svg_edges(to_svg(build_graph(CLASSROOM))), set(arrows)) == (
        CLASSROOM_EDGES,
        {"url(#stepd-arrow)"},
    )


def test_the_svg_has_start_and_end_markers():
    """A Start and an End marker are drawn."""
    root = parse(to_svg(build_graph(CLASSROOM)))
    assert [g.get("data-marker") for g in groups(root, "marker")] == ["start", "end"]


def test_every_edge_of_a_branchy_machine_is_drawn():
    """Choice, Default, Catch, loop and branch edges all appear with their kind."""
    root = parse(to_svg(build_graph(BRANCHY)))
    drawn = {
        (g.get("data-from"), g.get("data-to"), g.get("data-kind")) for g in groups(root, "edge")
    }
    assert drawn == BRANCHY_EDGES


def test_states_inside_a_parallel_are_drawn_inside_its_box():
    """Branch states lie within their Parallel state's rectangle, one cluster per branch."""
    root = parse(to_svg(build_graph(BRANCHY)))
    boxes = {g.get("data-state"): _rect(g) for g in groups(root, "state")}
    fx, fy, fw, fh = boxes["Fan"]
    inside = [
        fx <= x and x + w <= fx + fw and fy <= y and y + h <= fy + fh
        for x, y, w, h in (boxes["A1"], boxes["A2"], boxes["B1"])
    ]
    clusters = [(g.get("data-cluster"), g.get("data-branch")) for g in groups(root, "cluster")]
    assert (inside, clusters) == ([True, True, True], [("Fan", "0"), ("Fan", "1")])


def _rect(group: ET.Element) -> tuple[float, float, float, float]:
    rect = group.find(f"{SVG}rect")
    assert rect is not None
    return tuple(float(rect.get(k, "0")) for k in ("x", "y", "width", "height"))  # type: ignore[return-value]


@pytest.mark.parametrize(
    "definition", [CLASSROOM, BRANCHY, LOOPING], ids=["classroom", "branchy", "looping"]
)
def test_everything_drawn_lies_inside_the_picture(definition: dict[str, Any]):
    """No box or path point falls outside the SVG's width and height."""
    root = parse(to_svg(build_graph(definition)))
    left, top, width, height = map(float, root.get("viewBox", "").split())
    points: list[tuple[float, float]] = []
    for rect in root.iter(f"{SVG}rect"):
        x, y = float(rect.get("x", "0")), float(rect.get("y", "0"))
        points += [(x, y), (x + float(rect.get("width", "0")), y + float(rect.get("height", "0")))]
    for g in groups(root, "edge"):
        for path in g.iter(f"{SVG}path"):
            numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path.get("d", ""))]
            points += list(zip(numbers[::2], numbers[1::2], strict=False))
    outside = [
        p for p in points if not (left <= p[0] <= left + width and top <= p[1] <= top + height)
    ]
    assert outside == []


@pytest.mark.parametrize("definition", [BRANCHY, LOOPING], ids=["branchy", "looping"])
def test_edge_labels_fit_in_the_picture(definition: dict[str, Any]):
    """Each edge label, at its estimated width, lies within the SVG's viewBox."""
    root = parse(to_svg(build_graph(definition)))
    left, _, width, _ = map(float, root.get("viewBox", "").split())
    spans = []
    for text in root.iter(f"{SVG}text"):
        if text.get("class") == "edge-label":
            size = len(text.text or "") * SMALL_CHAR_WIDTH
            x = float(text.get("x", "0")) - (size / 2 if text.get("text-anchor") == "middle" else 0)
            spans.append((x, x + size))
    assert spans
    assert [span for span in spans if not (left <= span[0] and span[1] <= left + width)] == []


def test_no_two_states_overlap():
    """The layout keeps the boxes of one level apart."""
    root = parse(to_svg(build_graph(BRANCHY)))
    boxes = [_rect(g) for g in groups(root, "state") if g.get("data-state") != "Fan"]
    overlaps = [
        (a, b)
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
    ]
    assert overlaps == []


def test_the_current_state_is_marked_and_passed_states_are_done():
    """With a running execution's history the SVG marks current, done and not-reached states."""
    svg = to_svg(build_graph(CLASSROOM), progress(WAITING_FOR_PING))
    assert statuses(svg) == {
        "RecordingWait": DONE,
        "StartRecording": DONE,
        "SendLivePingWait": CURRENT,
        "SendLivePing": NOT_REACHED,
        "StoppingWait": NOT_REACHED,
        "StopRecording": NOT_REACHED,
    }


def test_after_success_every_state_is_done_and_every_edge_taken():
    """A succeeded classroom is all green: each state done, each edge taken."""
    root = parse(to_svg(build_graph(CLASSROOM), progress(SUCCEEDED)))
    taken = {(g.get("data-from"), g.get("data-to")) for g in groups(root, "taken")}
    assert (set(statuses(ET.tostring(root, encoding="unicode")).values()), taken) == (
        {DONE},
        CLASSROOM_EDGES,
    )


def test_a_failed_state_is_marked_failed():
    """The task whose failure ended the execution carries the class `failed`."""
    events = [*WAITING_FOR_PING[:6], event("TaskFailed"), event("ExecutionFailed")]
    svg = to_svg(build_graph(CLASSROOM), progress(events))
    assert statuses(svg)["StartRecording"] == FAILED


def test_without_an_execution_states_carry_no_status():
    """A machine's own diagram has plain `state` elements."""
    classes = state_classes(to_svg(build_graph(CLASSROOM)))
    assert set(map(frozenset, classes.values())) == {frozenset({"state"})}


def test_names_are_escaped_and_survive_as_data():
    """A state name with markup characters is escaped and read back unchanged."""
    name = 'Say "<hi>" & go'
    definition = {"StartAt": name, "States": {name: {"Type": "Succeed"}}}
    svg = to_svg(build_graph(definition), title="<x>")
    assert ("<hi>" in svg, list(state_classes(svg))) == (False, [name])


def test_the_svg_is_the_same_every_time():
    """Layout is deterministic: the same input gives the same bytes."""
    assert to_svg(build_graph(BRANCHY), progress(SUCCEEDED)) == to_svg(
        build_graph(BRANCHY), progress(SUCCEEDED)
    )


# -- Mermaid and dot ----------------------------------------------------------------------


def mermaid_edges(text: str) -> set[tuple[str, str]]:
    return set(re.findall(r"^\s*(\w+) -(?:->|\.->)(?:\|[^|]*\|)? (\w+)$", text, re.MULTILINE))


def dot_edges(text: str) -> set[tuple[str, str]]:
    return set(re.findall(r"^\s*(\w+) -> (\w+)(?: \[.*\])?;$", text, re.MULTILINE))


def expected_ids(
    graph_edges: Sequence[tuple[str | None, str | None]], ids: Mapping[str, str]
) -> set[tuple[str, str]]:
    return {
        ("start_" if s is None else ids[s], "end_" if t is None else ids[t]) for s, t in graph_edges
    }


@pytest.mark.parametrize("definition", [CLASSROOM, BRANCHY], ids=["classroom", "branchy"])
def test_mermaid_has_every_edge(definition: dict[str, Any]):
    """Each edge is a `from --> to` line between the states' ids."""
    graph = build_graph(definition)
    expected = expected_ids([(e.source, e.target) for e in graph.edges], node_ids(graph))
    assert mermaid_edges(to_mermaid(graph)) == expected


@pytest.mark.parametrize("definition", [CLASSROOM, BRANCHY], ids=["classroom", "branchy"])
def test_dot_has_every_edge(definition: dict[str, Any]):
    """Each edge is a `from -> to;` statement between the states' ids."""
    graph = build_graph(definition)
    expected = expected_ids([(e.source, e.target) for e in graph.edges], node_ids(graph))
    assert dot_edges(to_dot(graph)) == expected


def test_mermaid_names_each_state_and_escapes_quotes():
    """A state's label holds its name; quotes and brackets become entity codes."""
    name = 'Say "hi" [now]'
    definition = {"StartAt": name, "States": {name: {"Type": "Pass", "End": True}}}
    text = to_mermaid(build_graph(definition))
    assert 's0("Say #34;hi#34; #91;now#93;<br/>Pass")' in text


def test_mermaid_and_dot_colour_an_execution():
    """With progress, Mermaid gets status classes and dot fill colours."""
    graph = build_graph(CLASSROOM)
    seen = progress(WAITING_FOR_PING)
    mermaid, dot = to_mermaid(graph, seen), to_dot(graph, seen)
    assert ("class s0,s1 done" in mermaid, "class s2 current" in mermaid) == (True, True)
    assert 's2 [label="SendLivePingWait\\nWait", fillcolor="#dbeafe"' in dot


def test_render_refuses_an_unknown_format():
    """Only mermaid, dot and svg are drawn."""
    with pytest.raises(ValueError, match="unknown format"):
        render(CLASSROOM, "png")


# -- the command --------------------------------------------------------------------------


def run_graph(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="stepd")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["graph", *argv])
    code = args.func(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_command_draws_a_configured_machine(capsys: pytest.CaptureFixture[str]):
    """`stepd graph classroom -c config/stepd.toml` prints the Mermaid flowchart."""
    code, out, err = run_graph(capsys, "classroom", "-c", str(CONFIG))
    assert (code, err, out) == (EX_OK, "", to_mermaid(build_graph(CLASSROOM)))


@pytest.mark.parametrize("fmt", ["dot", "svg"])
def test_the_command_draws_in_other_formats(capsys: pytest.CaptureFixture[str], fmt: str):
    """`--format dot|svg` prints that drawing."""
    code, out, _ = run_graph(capsys, "classroom", "-c", str(CONFIG), "--format", fmt)
    assert (code, out) == (EX_OK, render(CLASSROOM, fmt, title="classroom"))


def test_the_command_names_an_unknown_machine(capsys: pytest.CaptureFixture[str]):
    """A machine the config does not name exits 78, listing the ones it does."""
    code, out, err = run_graph(capsys, "nosuch", "-c", str(CONFIG))
    assert (code, out) == (EX_CONFIG, "")
    assert "no state machine named 'nosuch' (configured: classroom)" in err


def test_the_readme_shows_the_classroom_diagram(capsys: pytest.CaptureFixture[str]):
    """The README's Mermaid block is what `stepd graph classroom --format mermaid` prints."""
    _, out, _ = run_graph(capsys, "classroom", "-c", str(CONFIG), "--format", "mermaid")
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```mermaid\n(.*?)```", text, re.DOTALL)
    assert blocks == [out]
