"""The SVG drawing, checked as XML element by element: states, edges, markers, branch frames,
everything inside the picture, statuses as classes, escaping, determinism."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from tests.unit.graph.graph_support import (
    BRANCHY,
    BRANCHY_EDGES,
    CLASSROOM,
    CLASSROOM_EDGES,
    CLASSROOM_STATES,
    LOOPING,
    SUCCEEDED,
    WAITING_FOR_PING,
    event,
)

from stepd.graph.layout import SMALL_CHAR_WIDTH
from stepd.graph.model import build_graph
from stepd.graph.progress import CURRENT, DONE, FAILED, NOT_REACHED, progress
from stepd.graph.svg import to_svg

SVG = "{http://www.w3.org/2000/svg}"


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
