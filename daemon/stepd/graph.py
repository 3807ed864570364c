"""State machine diagrams: a definition as a graph, drawn as Mermaid, Graphviz dot or SVG.

`build_graph(definition)` reads the states and transitions of an ASL definition: `Next`,
`Default`, each `Choices[].Next` (labelled with its rule), each `Catch[].Next` (labelled with
its errors), a start marker into `StartAt` and an end marker after every state that ends the
machine (`End: true`, Succeed, Fail). The states of a Parallel's branches and a Map's item
processor are clusters inside their state. State names are unique across a definition (AWS
requires it); a repeated name is drawn once, and a transition to a state of another machine
level is left out.

`progress(events)` reads an execution's history (events shaped as GetExecutionHistory returns
them) into one status per state: done, failed (its task failed last, or the execution ended
there), current (the execution is in it) or not reached.

`to_svg` lays the graph out top to bottom in layers, deterministically: the same definition and
history always give the same bytes. Every state element carries `data-state="<name>"` and the
classes `state` plus its status; every edge element carries `data-from`/`data-to` (an edge from
the start marker has no `data-from`, an edge to the end marker no `data-to`).

`register` adds the `stepd graph` command to the command line; `cmd_graph` runs it.
"""

from __future__ import annotations

import argparse
import functools
import heapq
import itertools
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Protocol

from stepd.asl.loader import load_definition
from stepd.client import ApiClientError, Client, api_url
from stepd.config import EX_CONFIG, client_key, load_settings
from stepd.engine.arns import Arns
from stepd.errors import ConfigError, DefinitionError, StepdError

# Per-state status in an execution.
DONE = "done"
FAILED = "failed"
CURRENT = "current"
NOT_REACHED = "not-reached"

# Edge kinds.
EDGE_START = "start"  # the start marker into StartAt
EDGE_NEXT = "next"
EDGE_DEFAULT = "default"  # a Choice's Default
EDGE_CHOICE = "choice"  # a Choice rule's Next
EDGE_CATCH = "catch"  # a Catch's Next
EDGE_BRANCH = "branch"  # a Parallel or Map state into the StartAt of a branch
EDGE_END = "end"  # a state that ends the machine into the end marker

FORMATS = ("mermaid", "dot", "svg")
COMPOUND_TYPES = frozenset({"Parallel", "Map"})
TERMINAL_TYPES = frozenset({"Succeed", "Fail"})
EXECUTION_FAILURES = frozenset({"ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"})
TASK_FAILURES = frozenset({"TaskFailed", "TaskTimedOut"})
MAX_LABEL_CHARS = 28  # an edge label longer than this is cut short (its title keeps it whole)
HISTORY_PAGE = 1000  # events per GetExecutionHistory call

# SVG geometry, in pixels.
FONT_SIZE = 13
CHAR_WIDTH = 7.8  # a generous average advance of a bold sans-serif character at FONT_SIZE
SMALL_CHAR_WIDTH = 6.6  # the same at the type line's and labels' 11 px
NODE_HEIGHT = 46
NODE_PADDING = 16  # each side of a state's name
MIN_NODE_WIDTH = 110
MARKER_WIDTH = 64
MARKER_HEIGHT = 28
LAYER_GAP = 52  # between rows
GAP_SHARE = 0.3  # how far into the gap beside its rows an edge that goes up runs across
LABEL_AT = 0.7  # an edge's label sits this far along its last segment
NODE_GAP = 30  # between neighbours in a row
DUMMY_WIDTH = 10  # the slot a long edge takes in a row it passes through
MARGIN = 20
LANE_GAP = 20  # between the lanes of edges that go back up, at the right
SELF_LOOP_WIDTH = 40
HEADER_HEIGHT = 34  # the name line of a Parallel or Map state
CLUSTER_PADDING = 14
CLUSTER_LABEL_HEIGHT = 20
BRANCH_ARROW_HEIGHT = 16  # the arrow from a branch's label into its first state
CLUSTER_GAP = 18  # between the branches of a Parallel
ORDERING_SWEEPS = 6  # barycentre passes that reduce crossings within rows
POSITION_SWEEPS = 6  # passes that pull each box over its neighbours

SVG_CSS = """
.stepd-graph{font-family:"DejaVu Sans",Verdana,Arial,sans-serif;font-size:13px}
.stepd-graph .state>rect{fill:#fff;stroke:#5b6470;stroke-width:1.5}
.stepd-graph .state .name{font-weight:bold;fill:#1f2328}
.stepd-graph .state .type{font-size:11px;fill:#6b7280}
.stepd-graph .state.compound>rect{fill:#f8fafc;stroke-dasharray:6 4}
.stepd-graph .state.done>rect{fill:#dcfce7;stroke:#16a34a}
.stepd-graph .state.failed>rect{fill:#fee2e2;stroke:#dc2626}
.stepd-graph .state.current>rect{fill:#dbeafe;stroke:#1d4ed8;stroke-width:4}
.stepd-graph .state.not-reached>rect{fill:#f3f4f6;stroke:#c4c8ce}
.stepd-graph .state.not-reached text{fill:#9ca3af}
.stepd-graph .state.compound.done>rect,.stepd-graph .state.compound.failed>rect,
.stepd-graph .state.compound.current>rect{fill-opacity:.4}
.stepd-graph .marker>rect{fill:#374151}
.stepd-graph .marker>text{fill:#fff;font-size:12px;font-weight:bold}
.stepd-graph .edge>path{fill:none;stroke:#6b7280;stroke-width:1.5}
.stepd-graph .edge.catch>path{stroke:#b45309;stroke-dasharray:6 4}
.stepd-graph .edge.branch>path{stroke-dasharray:2 3}
.stepd-graph .edge.taken>path{stroke:#16a34a;stroke-width:2.5}
.stepd-graph .edge-label{font-size:11px;fill:#4b5563;paint-order:stroke;stroke:#fff;
stroke-width:3px;stroke-linejoin:round}
.stepd-graph .cluster>rect{fill:none;stroke:#cbd5e1;stroke-dasharray:3 3}
.stepd-graph .cluster>text{font-size:11px;fill:#64748b}
.stepd-graph .arrow{fill:#6b7280}
.stepd-graph .arrow-taken{fill:#16a34a}
"""


# -- the graph ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Node:
    """One state."""

    name: str
    type: str
    parent: str | None = None  # the Parallel or Map state holding it
    branch: int = 0  # which of the parent's branches
    terminal: bool = False  # it ends its machine (End: true, Succeed or Fail)


@dataclass(frozen=True, kw_only=True)
class Edge:
    """One transition; `source` None is the start marker, `target` None the end marker."""

    source: str | None
    target: str | None
    kind: str
    label: str = ""


@dataclass(frozen=True, kw_only=True)
class Cluster:
    """A branch of a Parallel state, or the item processor of a Map state."""

    state: str
    index: int
    label: str
    start: str | None
    states: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Graph:
    start: str | None
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    clusters: tuple[Cluster, ...]

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def top_level(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes if n.parent is None)

    def clusters_of(self, state: str) -> tuple[Cluster, ...]:
        return tuple(c for c in self.clusters if c.state == state)


def build_graph(definition: Mapping[str, Any]) -> Graph:
    """The states and transitions of `definition`, in definition order."""
    builder = _Builder()
    top = builder.machine(definition, parent=None, branch=0)
    start = definition.get("StartAt")
    edges: list[Edge] = []
    if isinstance(start, str) and start in top:
        edges.append(Edge(source=None, target=start, kind=EDGE_START))
    else:
        start = None
    edges.extend(builder.edges)
    edges.extend(
        Edge(source=n.name, target=None, kind=EDGE_END)
        for n in builder.nodes
        if n.parent is None and n.terminal
    )
    return Graph(
        start=start,
        nodes=tuple(builder.nodes),
        edges=tuple(edges),
        clusters=tuple(builder.clusters),
    )


@dataclass
class _Builder:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def machine(self, machine: Any, *, parent: str | None, branch: int) -> list[str]:
        """Add the states of one machine level; their names, in order."""
        states = machine.get("States") if isinstance(machine, Mapping) else None
        if not isinstance(states, Mapping):
            return []
        names: list[str] = []
        for raw_name, state in states.items():
            name = str(raw_name)
            if not isinstance(state, Mapping) or name in self.seen:
                continue
            self.seen.add(name)
            names.append(name)
            state_type = str(state.get("Type", "?"))
            terminal = state.get("End") is True or state_type in TERMINAL_TYPES
            self.nodes.append(
                Node(name=name, type=state_type, parent=parent, branch=branch, terminal=terminal)
            )
            if state_type in COMPOUND_TYPES:
                self._nested(name, state)
        known = set(names)
        for name in names:
            self._transitions(name, states[name], known)
        return names

    def _nested(self, name: str, state: Mapping[str, Any]) -> None:
        if state.get("Type") == "Parallel":
            branches = state.get("Branches")
            nested = list(branches) if isinstance(branches, list) else []
            labels = [f"Branch {index + 1}" for index in range(len(nested))]
        else:
            key = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
            nested = [state.get(key)]
            labels = ["Item processor" if key == "ItemProcessor" else "Iterator"]
        for index, (machine, label) in enumerate(zip(nested, labels, strict=True)):
            names = self.machine(machine, parent=name, branch=index)
            start = machine.get("StartAt") if isinstance(machine, Mapping) else None
            start = start if isinstance(start, str) and start in names else None
            self.clusters.append(
                Cluster(state=name, index=index, label=label, start=start, states=tuple(names))
            )
            if start is not None:
                self.edges.append(Edge(source=name, target=start, kind=EDGE_BRANCH, label=label))

    def _transitions(self, name: str, state: Mapping[str, Any], known: set[str]) -> None:
        found: list[Edge] = []
        if isinstance(state.get("Next"), str):
            found.append(Edge(source=name, target=state["Next"], kind=EDGE_NEXT))
        found.extend(
            Edge(source=name, target=rule["Next"], kind=EDGE_CHOICE, label=rule_text(rule))
            for rule in state.get("Choices") or ()
            if isinstance(rule, Mapping) and isinstance(rule.get("Next"), str)
        )
        if isinstance(state.get("Default"), str):
            found.append(
                Edge(source=name, target=state["Default"], kind=EDGE_DEFAULT, label="Default")
            )
        for catcher in state.get("Catch") or ():
            if isinstance(catcher, Mapping) and isinstance(catcher.get("Next"), str):
                errors = catcher.get("ErrorEquals")
                label = ", ".join(map(str, errors)) if isinstance(errors, list) else "catch"
                found.append(
                    Edge(source=name, target=catcher["Next"], kind=EDGE_CATCH, label=label)
                )
        merged: dict[tuple[str | None, str | None, str], Edge] = {}
        for edge in found:
            if edge.target not in known:
                continue
            key = (edge.source, edge.target, edge.kind)
            if key in merged:
                label = f"{merged[key].label}; {edge.label}"
                merged[key] = Edge(source=name, target=edge.target, kind=edge.kind, label=label)
            else:
                merged[key] = edge
        self.edges.extend(merged.values())


_COMPARISON = re.compile(
    r"(?:String|Numeric|Boolean|Timestamp)"
    r"(?P<op>Equals|LessThanEquals|GreaterThanEquals|LessThan|GreaterThan|Matches)(?P<path>Path)?"
)
_OPERATORS = {
    "Equals": "==",
    "LessThan": "<",
    "GreaterThan": ">",
    "LessThanEquals": "<=",
    "GreaterThanEquals": ">=",
    "Matches": "matches",
}
_TESTS = {
    "IsNull": "null",
    "IsPresent": "present",
    "IsNumeric": "numeric",
    "IsString": "a string",
    "IsBoolean": "a boolean",
    "IsTimestamp": "a timestamp",
}


def rule_text(rule: Mapping[str, Any]) -> str:
    """A Choice rule as a short condition: `$.n > 3`, `$.a == "x" and not ($.b is null)`."""
    for key, joiner in (("And", " and "), ("Or", " or ")):
        if isinstance(rule.get(key), list):
            parts = [rule_text(r) for r in rule[key] if isinstance(r, Mapping)]
            return joiner.join(f"({p})" if " " in p and len(parts) > 1 else p for p in parts)
    if isinstance(rule.get("Not"), Mapping):
        return f"not ({rule_text(rule['Not'])})"
    variable = str(rule.get("Variable", "?"))
    for key, value in rule.items():
        match = _COMPARISON.fullmatch(str(key))
        if match is not None:
            shown = str(value) if match["path"] else json.dumps(value, ensure_ascii=False)
            return f"{variable} {_OPERATORS[match['op']]} {shown}"
        if key in _TESTS:
            negation = "" if value is True else "not "
            return f"{variable} is {negation}{_TESTS[key]}"
    return variable


def short(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- an execution's progress --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Progress:
    """Where an execution has been: each entered state's status, and the edges it took."""

    states: Mapping[str, str]
    taken: frozenset[tuple[str | None, str | None]]

    def status(self, name: str) -> str:
        return self.states.get(name, NOT_REACHED)


def progress(events: Iterable[Mapping[str, Any]]) -> Progress:
    """Read a history, oldest event first, each shaped as GetExecutionHistory returns it."""
    states: dict[str, str] = {}
    taken: set[tuple[str | None, str | None]] = set()
    errored: set[str] = set()
    previous: str | None = None  # the state last left
    current: str | None = None  # the state last entered
    for event in events:
        event_type = str(event.get("type", ""))
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
        elif event_type == "TaskSucceeded" and current is not None:
            errored.discard(current)
        elif event_type == "ExecutionSucceeded":
            taken.add((previous, None))
        elif event_type in EXECUTION_FAILURES:
            for name, status in states.items():
                if status == CURRENT:
                    states[name] = FAILED
    return Progress(states=states, taken=frozenset(taken))


def _state_name(event: Mapping[str, Any], key: str) -> str:
    details = event.get(key)
    return str(details.get("name", "")) if isinstance(details, Mapping) else ""


# -- text formats -------------------------------------------------------------------------


def node_ids(graph: Graph) -> dict[str, str]:
    """The identifier each state has in the Mermaid and dot output: s0, s1, ... in order."""
    return {node.name: f"s{index}" for index, node in enumerate(graph.nodes)}


_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 _.,:()$\-]")
_MERMAID_SHAPES = {"Choice": ('{"', '"}'), "Succeed": ('(["', '"])'), "Fail": ('(["', '"])')}
_MERMAID_STYLES = {
    DONE: "fill:#dcfce7,stroke:#16a34a",
    FAILED: "fill:#fee2e2,stroke:#dc2626",
    CURRENT: "fill:#dbeafe,stroke:#1d4ed8,stroke-width:4px",
    NOT_REACHED: "fill:#f3f4f6,stroke:#c4c8ce,color:#9ca3af",
}


def _mermaid_text(text: str) -> str:
    return "".join(c if _MERMAID_SAFE.fullmatch(c) else f"#{ord(c)};" for c in text)


def to_mermaid(graph: Graph, progress: Progress | None = None) -> str:
    """A Mermaid flowchart, top to bottom."""
    ids = node_ids(graph)
    lines = ["flowchart TD", "    start_((Start))"]
    if any(e.kind == EDGE_END for e in graph.edges):
        lines.append("    end_((End))")

    def node_line(node: Node, indent: str) -> str:
        opening, closing = _MERMAID_SHAPES.get(node.type, ('("', '")'))
        label = f"{_mermaid_text(node.name)}<br/>{_mermaid_text(node.type)}"
        return f"{indent}{ids[node.name]}{opening}{label}{closing}"

    def level(names: Sequence[str], indent: str) -> None:
        for name in names:
            node = graph.node(name)
            assert node is not None
            lines.append(node_line(node, indent))
            for cluster in graph.clusters_of(name):
                title = _mermaid_text(f"{name}: {cluster.label}")
                lines.append(f'{indent}subgraph {ids[name]}_{cluster.index} ["{title}"]')
                level(cluster.states, indent + "    ")
                lines.append(f"{indent}end")

    level(graph.top_level(), "    ")
    for edge in graph.edges:
        source = "start_" if edge.source is None else ids[edge.source]
        target = "end_" if edge.target is None else ids[edge.target]
        arrow = "-.->" if edge.kind in {EDGE_CATCH, EDGE_BRANCH} else "-->"
        label = f'|"{_mermaid_text(short(edge.label))}"|' if edge.label else ""
        lines.append(f"    {source} {arrow}{label} {target}")
    if progress is not None:
        for status, style in _MERMAID_STYLES.items():
            members = [ids[n.name] for n in graph.nodes if progress.status(n.name) == status]
            if members:
                lines.append(f"    classDef {status.replace('-', '_')} {style}")
                lines.append(f"    class {','.join(members)} {status.replace('-', '_')}")
    return "\n".join(lines) + "\n"


_DOT_COLOURS = {
    DONE: ("#dcfce7", "#16a34a"),
    FAILED: ("#fee2e2", "#dc2626"),
    CURRENT: ("#dbeafe", "#1d4ed8"),
    NOT_REACHED: ("#f3f4f6", "#c4c8ce"),
}


def _dot_text(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "") + '"'


def to_dot(graph: Graph, progress: Progress | None = None) -> str:
    """A Graphviz digraph, top to bottom."""
    ids = node_ids(graph)
    lines = [
        "digraph stepd {",
        "    rankdir=TB;",
        '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="sans-serif"];',
        '    edge [fontname="sans-serif", fontsize=10];',
        '    start_ [label="Start", shape=oval, fillcolor="#374151", fontcolor="#ffffff"];',
    ]
    if any(e.kind == EDGE_END for e in graph.edges):
        lines.append(
            '    end_ [label="End", shape=oval, fillcolor="#374151", fontcolor="#ffffff"];'
        )

    def node_line(node: Node, indent: str) -> str:
        attributes = [f"label={_dot_text(node.name + chr(10) + node.type)}"]
        if node.type == "Choice":
            attributes.append("shape=diamond")
        if progress is not None:
            fill, stroke = _DOT_COLOURS[progress.status(node.name)]
            attributes += [f'fillcolor="{fill}"', f'color="{stroke}"']
            if progress.status(node.name) == CURRENT:
                attributes.append("penwidth=3")
        return f"{indent}{ids[node.name]} [{', '.join(attributes)}];"

    def level(names: Sequence[str], indent: str) -> None:
        for name in names:
            node = graph.node(name)
            assert node is not None
            lines.append(node_line(node, indent))
            for cluster in graph.clusters_of(name):
                lines.append(f"{indent}subgraph cluster_{ids[name]}_{cluster.index} {{")
                lines.append(f"{indent}    label={_dot_text(f'{name}: {cluster.label}')};")
                lines.append(f"{indent}    style=dashed;")
                level(cluster.states, indent + "    ")
                lines.append(f"{indent}}}")

    level(graph.top_level(), "    ")
    for edge in graph.edges:
        source = "start_" if edge.source is None else ids[edge.source]
        target = "end_" if edge.target is None else ids[edge.target]
        attributes = []
        if edge.label:
            attributes.append(f"label={_dot_text(short(edge.label))}")
        if edge.kind in {EDGE_CATCH, EDGE_BRANCH}:
            attributes.append("style=dashed")
        if progress is not None and (edge.source, edge.target) in progress.taken:
            attributes += ['color="#16a34a"', "penwidth=2"]
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"    {source} -> {target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- layout -------------------------------------------------------------------------------

# A layout key: ("s", state name), ("m", "start" | "end") for the markers, ("d", n) for the
# slots a long edge takes in the rows it crosses.
_Key = tuple[str, str]
_START: _Key = ("m", "start")
_END: _Key = ("m", "end")
_Point = tuple[float, float]


@dataclass
class _Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass
class _Layout:
    """One machine level placed with its top-left corner at (0, 0)."""

    boxes: dict[_Key, _Box]
    via: dict[tuple[_Key, _Key], list[_Key]]  # a long forward link -> the slots it passes
    back: list[tuple[_Key, _Key]]  # links that go up (or across a row), drawn in lanes
    spans: dict[_Key, tuple[float, float]]  # the top and bottom of each key's row
    lanes_x: float  # where the first lane runs
    width: float
    height: float


def _layered(
    keys: Sequence[_Key],
    sizes: Mapping[_Key, tuple[float, float]],
    links: Sequence[tuple[_Key, _Key]],
) -> _Layout:
    """A layered (Sugiyama-style) layout: rows by longest path, order by barycentres."""
    position = {key: index for index, key in enumerate(keys)}
    unique = list(dict.fromkeys((s, t) for s, t in links if s != t))
    back = _back_links(keys, unique)
    forward = [link for link in unique if link not in back]
    layer = _layers(keys, forward)
    if _END in layer:  # the end marker goes below everything
        layer[_END] = max((row for key, row in layer.items() if key != _END), default=0) + 1
    # Long links pass through one slot per row they cross.
    widths = {key: sizes[key][0] for key in keys}
    heights = {key: sizes[key][1] for key in keys}
    proper: list[tuple[_Key, _Key]] = []
    via: dict[tuple[_Key, _Key], list[_Key]] = {}
    for source, target in forward:
        chain: list[_Key] = []
        for crossed in range(layer[source] + 1, layer[target]):
            slot: _Key = ("d", str(len(widths)))
            widths[slot], heights[slot] = DUMMY_WIDTH, 0.0
            layer[slot] = crossed
            chain.append(slot)
        via[(source, target)] = chain
        path = [source, *chain, target]
        proper.extend(itertools.pairwise(path))
    rows = _ordered_rows(keys, layer, proper, position)
    centres = _positions(rows, widths, proper)
    # Rows top to bottom.
    boxes: dict[_Key, _Box] = {}
    spans: dict[_Key, tuple[float, float]] = {}
    top = 0.0
    for row in rows:
        height = max((heights[key] for key in row), default=0.0)
        for key in row:
            x, y = centres[key] - widths[key] / 2, top + (height - heights[key]) / 2
            boxes[key] = _Box(x, y, widths[key], heights[key])
            spans[key] = (top, top + height)
        top += height + LAYER_GAP
    left = min((box.x for box in boxes.values()), default=0.0)
    for box in boxes.values():
        box.x -= left
    width = max((box.x + box.w for box in boxes.values()), default=0.0)
    self_loops = any(s == t for s, t in links)
    lanes_x = width + (SELF_LOOP_WIDTH if self_loops else 0.0) + LANE_GAP
    width = lanes_x + LANE_GAP * (len(back) - 1) if back else lanes_x - LANE_GAP
    return _Layout(
        boxes=boxes,
        via=via,
        back=back,
        spans=spans,
        lanes_x=lanes_x,
        width=width,
        height=max(top - LAYER_GAP, 0.0),
    )


def _back_links(
    keys: Sequence[_Key], links: Sequence[tuple[_Key, _Key]]
) -> list[tuple[_Key, _Key]]:
    """The links that close a cycle, found by a depth-first walk in definition order."""
    successors: dict[_Key, list[_Key]] = {key: [] for key in keys}
    for source, target in links:
        successors[source].append(target)
    colour: dict[_Key, int] = {}  # 1: on the walk's path, 2: finished
    back: list[tuple[_Key, _Key]] = []
    for root in keys:
        if root in colour:
            continue
        colour[root] = 1
        stack = [(root, iter(successors[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
            elif colour.get(child) == 1:
                back.append((node, child))
            elif child not in colour:
                colour[child] = 1
                stack.append((child, iter(successors[child])))
    closing = set(back)
    return [link for link in links if link in closing]


def _layers(keys: Sequence[_Key], forward: Sequence[tuple[_Key, _Key]]) -> dict[_Key, int]:
    """Each key's row: the longest path to it, below the start marker when there is one."""
    position = {key: index for index, key in enumerate(keys)}
    predecessors: dict[_Key, list[_Key]] = {key: [] for key in keys}
    successors: dict[_Key, list[_Key]] = {key: [] for key in keys}
    for source, target in forward:
        predecessors[target].append(source)
        successors[source].append(target)
    floor = 1 if _START in position else 0
    waiting = {key: len(predecessors[key]) for key in keys}
    ready = [(position[key], key) for key in keys if waiting[key] == 0]
    heapq.heapify(ready)
    layer: dict[_Key, int] = {}
    while ready:
        _, key = heapq.heappop(ready)
        above = [layer[p] + 1 for p in predecessors[key]]
        layer[key] = max(above, default=0 if key == _START else floor)
        for successor in successors[key]:
            waiting[successor] -= 1
            if waiting[successor] == 0:
                heapq.heappush(ready, (position[successor], successor))
    return layer


def _ordered_rows(
    keys: Sequence[_Key],
    layer: Mapping[_Key, int],
    proper: Sequence[tuple[_Key, _Key]],
    position: Mapping[_Key, int],
) -> list[list[_Key]]:
    """Rows with their keys ordered to cross few edges (barycentre sweeps, best kept)."""
    predecessors: dict[_Key, list[_Key]] = {key: [] for key in layer}
    successors: dict[_Key, list[_Key]] = {key: [] for key in layer}
    for source, target in proper:
        predecessors[target].append(source)
        successors[source].append(target)
    # First order: as a breadth-first walk in definition order meets them.
    seen: dict[_Key, int] = {}
    queue = list(keys)
    for root in queue[:]:
        if root in seen:
            continue
        frontier = [root]
        while frontier:
            key = frontier.pop(0)
            if key in seen:
                continue
            seen[key] = len(seen)
            frontier.extend(successors[key])
    count = max(layer.values(), default=-1) + 1
    rows: list[list[_Key]] = [[] for _ in range(count)]
    for key in sorted(layer, key=lambda k: (seen.get(k, len(seen)), position.get(k, 0))):
        rows[layer[key]].append(key)
    best = [row[:] for row in rows]
    best_crossings = _crossings(rows, successors)
    for sweep in range(ORDERING_SWEEPS):
        downward = sweep % 2 == 0
        order = range(1, count) if downward else range(count - 2, -1, -1)
        for index in order:
            reference = rows[index - 1] if downward else rows[index + 1]
            place = {key: i for i, key in enumerate(reference)}
            neighbours = predecessors if downward else successors
            current = {key: i for i, key in enumerate(rows[index])}
            ordering = functools.partial(_barycentre, place=place, current=current, near=neighbours)
            rows[index].sort(key=ordering)
        crossings = _crossings(rows, successors)
        if crossings < best_crossings:
            best, best_crossings = [row[:] for row in rows], crossings
    return best


def _barycentre(
    key: _Key,
    place: Mapping[_Key, int],
    current: Mapping[_Key, int],
    near: Mapping[_Key, list[_Key]],
) -> float:
    """The mean place of `key`'s neighbours in the reference row (its own place if none)."""
    places = [place[n] for n in near[key] if n in place]
    return sum(places) / len(places) if places else float(current[key])


def _crossings(rows: Sequence[Sequence[_Key]], successors: Mapping[_Key, list[_Key]]) -> int:
    total = 0
    for upper, lower in itertools.pairwise(rows):
        place = {key: i for i, key in enumerate(lower)}
        pairs = [
            (i, place[t]) for i, key in enumerate(upper) for t in successors[key] if t in place
        ]
        total += sum(
            1 for a, (i, j) in enumerate(pairs) for k, m in pairs[a + 1 :] if (i - k) * (j - m) < 0
        )
    return total


def _positions(
    rows: Sequence[Sequence[_Key]],
    widths: Mapping[_Key, float],
    proper: Sequence[tuple[_Key, _Key]],
) -> dict[_Key, float]:
    """Horizontal centres: each box pulled over its neighbours, rows kept in order."""
    predecessors: dict[_Key, list[_Key]] = {key: [] for row in rows for key in row}
    successors: dict[_Key, list[_Key]] = {key: [] for row in rows for key in row}
    for source, target in proper:
        predecessors[target].append(source)
        successors[source].append(target)
    centre: dict[_Key, float] = {}
    for row in rows:
        _pack(row, widths, dict.fromkeys(row, 0.0), centre)
    for sweep in range(POSITION_SWEEPS):
        downward = sweep % 2 == 0
        neighbours = predecessors if downward else successors
        for row in rows if downward else list(reversed(rows)):
            wanted = {}
            for key in row:
                near = [centre[n] for n in neighbours[key]]
                wanted[key] = sum(near) / len(near) if near else centre[key]
            _pack(row, widths, wanted, centre)
    return centre


def _pack(
    row: Sequence[_Key],
    widths: Mapping[_Key, float],
    wanted: Mapping[_Key, float],
    centre: dict[_Key, float],
) -> None:
    """Place `row` left to right as near `wanted` as the gaps allow, the excess shared."""
    placed: list[float] = []
    for index, key in enumerate(row):
        x = wanted[key]
        if index:
            before = row[index - 1]
            x = max(x, placed[-1] + (widths[before] + widths[key]) / 2 + NODE_GAP)
        placed.append(x)
    if placed:
        shift = sum(placed[i] - wanted[key] for i, key in enumerate(row)) / len(row)
        for index, key in enumerate(row):
            centre[key] = placed[index] - shift


# -- SVG ----------------------------------------------------------------------------------


def _text_width(text: str, char_width: float = CHAR_WIDTH) -> float:
    return len(text) * char_width


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text.removesuffix(".0")


@dataclass
class _Level:
    """One machine level laid out, with the levels of its Parallel and Map states."""

    names: list[str]
    layout: _Layout
    children: dict[str, list[tuple[Cluster, _Level, _Point]]]  # offsets inside the state


def _lay_out(graph: Graph, names: Sequence[str], *, markers: bool) -> _Level:
    children: dict[str, list[tuple[Cluster, _Level, _Point]]] = {}
    sizes: dict[_Key, tuple[float, float]] = {}
    for name in names:
        node = graph.node(name)
        assert node is not None
        text = max(_text_width(name), _text_width(node.type, SMALL_CHAR_WIDTH))
        width, height = max(MIN_NODE_WIDTH, text + 2 * NODE_PADDING), float(NODE_HEIGHT)
        clusters = graph.clusters_of(name)
        if clusters:
            levels = [(c, _lay_out(graph, c.states, markers=False)) for c in clusters]
            inner = [
                (max(level.layout.width, _text_width(c.label, SMALL_CHAR_WIDTH)), level)
                for c, level in levels
            ]
            content = sum(w for w, _ in inner) + CLUSTER_GAP * (len(inner) - 1)
            content += 2 * CLUSTER_PADDING * len(inner)
            width = max(width, content + 2 * CLUSTER_PADDING)
            tallest = max(level.layout.height for _, level in levels)
            top = HEADER_HEIGHT + CLUSTER_LABEL_HEIGHT + BRANCH_ARROW_HEIGHT
            height = top + tallest + 3 * CLUSTER_PADDING
            x = (width - content) / 2
            placed = []
            for (cluster, level), (inner_width, _) in zip(levels, inner, strict=True):
                offset = x + CLUSTER_PADDING + (inner_width - level.layout.width) / 2
                placed.append((cluster, level, (offset, float(top))))
                x += inner_width + 2 * CLUSTER_PADDING + CLUSTER_GAP
            children[name] = placed
        sizes[("s", name)] = (width, height)
    keys: list[_Key] = [("s", name) for name in names]
    links: list[tuple[_Key, _Key]] = []
    inside = set(names)
    for edge in graph.edges:
        if edge.kind == EDGE_BRANCH:
            continue
        if edge.source is None or edge.target is None:
            if markers and (edge.source or edge.target) in inside:
                links.append(_marker_link(edge))
        elif edge.source in inside and edge.target in inside:
            links.append((("s", edge.source), ("s", edge.target)))
    if markers:
        keys.insert(0, _START)
        sizes[_START] = (MARKER_WIDTH, MARKER_HEIGHT)
        if any(t == _END for _, t in links):
            keys.append(_END)
            sizes[_END] = (MARKER_WIDTH, MARKER_HEIGHT)
    return _Level(names=list(names), layout=_layered(keys, sizes, links), children=children)


def _marker_link(edge: Edge) -> tuple[_Key, _Key]:
    source: _Key = _START if edge.source is None else ("s", edge.source)
    target: _Key = _END if edge.target is None else ("s", edge.target)
    return source, target


@dataclass
class _Canvas:
    graph: Graph
    progress: Progress | None
    boxes: dict[_Key, _Box] = field(default_factory=dict)
    clusters: list[str] = field(default_factory=list)
    compounds: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    lanes: dict[tuple[_Key, _Key], float] = field(default_factory=dict)  # x of its lane
    spans: dict[_Key, tuple[float, float]] = field(default_factory=dict)
    via: dict[tuple[_Key, _Key], list[_Point]] = field(default_factory=dict)
    left: float = 0.0  # how far edge labels reach beyond the layout, either side
    right: float = 0.0

    def place(self, level: _Level, ox: float, oy: float) -> None:
        layout = level.layout
        for key, box in layout.boxes.items():
            self.boxes[key] = _Box(box.x + ox, box.y + oy, box.w, box.h)
            top, bottom = layout.spans[key]
            self.spans[key] = (top + oy, bottom + oy)
        for index, link in enumerate(layout.back):
            self.lanes[link] = ox + layout.lanes_x + index * LANE_GAP
        for link, chain in layout.via.items():
            self.via[link] = [(self.boxes[k].cx, self.boxes[k].cy) for k in chain]
        for name, placed in level.children.items():
            box = self.boxes[("s", name)]
            for cluster, child, (cx, cy) in placed:
                self.place(child, box.x + cx, box.y + cy)
                self._cluster(name, cluster, child, box.x + cx, box.y + cy)

    def _cluster(self, state: str, cluster: Cluster, level: _Level, x: float, y: float) -> None:
        width = max(level.layout.width, _text_width(cluster.label, SMALL_CHAR_WIDTH))
        left = x - CLUSTER_PADDING - (width - level.layout.width) / 2
        top = y - BRANCH_ARROW_HEIGHT - CLUSTER_LABEL_HEIGHT - CLUSTER_PADDING / 2
        self.clusters.append(
            f'<g class="cluster" data-cluster="{escape(state)}" data-branch="{cluster.index}">'
            f'<rect x="{_num(left)}" y="{_num(top)}" width="{_num(width + 2 * CLUSTER_PADDING)}"'
            f' height="{_num(level.layout.height + y - top + CLUSTER_PADDING)}"'
            f' rx="6"/><text x="{_num(left + 8)}" y="{_num(top + 14)}">'
            f"{escape(cluster.label)}</text></g>"
        )

    def status_class(self, name: str) -> str:
        return "" if self.progress is None else f" {self.progress.status(name)}"

    def draw(self) -> None:
        for node in self.graph.nodes:
            box = self.boxes.get(("s", node.name))
            if box is not None:
                self._state(node, box)
        for key, label in ((_START, "Start"), (_END, "End")):
            box = self.boxes.get(key)
            if box is not None:
                self.states.append(
                    f'<g class="marker {key[1]}" data-marker="{key[1]}">'
                    f'<rect x="{_num(box.x)}" y="{_num(box.y)}" width="{_num(box.w)}"'
                    f' height="{_num(box.h)}" rx="{_num(box.h / 2)}"/>'
                    f'<text x="{_num(box.cx)}" y="{_num(box.cy + 4)}" text-anchor="middle">'
                    f"{label}</text></g>"
                )
        for edge in self.graph.edges:
            self._edge(edge)

    def _state(self, node: Node, box: _Box) -> None:
        compound = bool(self.graph.clusters_of(node.name))
        classes = "state compound" if compound else "state"
        status = self.progress.status(node.name) if self.progress is not None else ""
        name_y = box.y + (22 if compound else 20)
        type_y = name_y + 15 if not compound else name_y
        name_x, type_x, anchor = box.cx, box.cx, "middle"
        if compound:
            name_x, anchor = box.x + 12, "start"
            type_x = name_x + _text_width(node.name) + 8
        title = f"{node.name} ({node.type})" + (f": {status}" if status else "")
        group = (
            f'<g class="{classes}{self.status_class(node.name)}" data-state="{escape(node.name)}"'
            f' data-type="{escape(node.type)}"><title>{escape(title)}</title>'
            f'<rect x="{_num(box.x)}" y="{_num(box.y)}" width="{_num(box.w)}"'
            f' height="{_num(box.h)}" rx="8"/>'
            f'<text class="name" x="{_num(name_x)}" y="{_num(name_y)}" text-anchor="{anchor}">'
            f"{escape(node.name)}</text>"
            f'<text class="type" x="{_num(type_x)}" y="{_num(type_y)}" text-anchor="{anchor}">'
            f"{escape(node.type)}</text></g>"
        )
        (self.compounds if compound else self.states).append(group)

    def _edge(self, edge: Edge) -> None:
        source: _Key = _START if edge.source is None else ("s", edge.source)
        target: _Key = _END if edge.target is None else ("s", edge.target)
        if source not in self.boxes or target not in self.boxes:
            return
        start, end = self.boxes[source], self.boxes[target]
        if edge.kind == EDGE_BRANCH:
            origin = (end.cx, end.y - BRANCH_ARROW_HEIGHT)
            d, label_at, anchor = _curve([origin, (end.cx, end.y)]), origin, "middle"
        elif source == target:
            right, y = start.x + start.w, start.cy
            d = (
                f"M{_num(right)},{_num(y - 10)} C{_num(right + 34)},{_num(y - 24)}"
                f" {_num(right + 34)},{_num(y + 24)} {_num(right)},{_num(y + 10)}"
            )
            label_at, anchor = (right + 36, y), "start"
        else:
            lane = self.lanes.get((source, target))
            if lane is not None:  # down into the gap below, over to the lane, up, in
                x1, x2 = start.cx + start.w / 4, end.cx + end.w / 4
                below = self.spans[source][1] + LAYER_GAP * GAP_SHARE
                above = self.spans[target][0] - LAYER_GAP * GAP_SHARE
                d = (
                    f"M{_num(x1)},{_num(start.y + start.h)} V{_num(below)} H{_num(lane)}"
                    f" V{_num(above)} H{_num(x2)} V{_num(end.y)}"
                )
                label_at, anchor = (lane + 4, (below + above) / 2), "start"
            else:
                points = self.via.get((source, target), [])
                route = [(start.cx, start.y + start.h), *points, (end.cx, end.y)]
                d = _curve(route)
                label_at, anchor = _label_point(route[-2], route[-1])
        taken = self.progress is not None and (edge.source, edge.target) in self.progress.taken
        classes = f"edge {edge.kind}" + (" taken" if taken else "")
        attributes = "".join(
            f' data-{key}="{escape(value)}"'
            for key, value in (("from", edge.source), ("to", edge.target))
            if value is not None
        )
        arrow = "stepd-arrow-taken" if taken else "stepd-arrow"
        label = ""
        if edge.label and edge.kind != EDGE_BRANCH:  # a branch is labelled by its cluster
            text_width = _text_width(short(edge.label), SMALL_CHAR_WIDTH)
            left = label_at[0] - (text_width / 2 if anchor == "middle" else 0.0)
            self.left, self.right = min(self.left, left), max(self.right, left + text_width)
            label = (
                f"<title>{escape(edge.label)}</title>"
                f'<text class="edge-label" x="{_num(label_at[0])}" y="{_num(label_at[1])}"'
                f' text-anchor="{anchor}">'
                f"{escape(short(edge.label))}</text>"
            )
        self.edges.append(
            f'<g class="{classes}"{attributes} data-kind="{edge.kind}">'
            f'<path d="{d}" marker-end="url(#{arrow})"/>{label}</g>'
        )


def _label_point(start: _Point, end: _Point) -> tuple[_Point, str]:
    """Where an edge's label goes: beside a straight edge, or on a bent one near its end."""
    (x1, y1), (x2, y2) = start, end
    if abs(x2 - x1) < 1:
        return (x1 + 6, (y1 + y2) / 2 + 4), "start"
    along = 3 * LABEL_AT**2 - 2 * LABEL_AT**3  # the share of the way a vertical-tangent
    return (x1 + (x2 - x1) * along, y1 + (y2 - y1) * along - 4), "middle"  # curve has come


def _curve(points: Sequence[_Point]) -> str:
    """A path through `points`, leaving and entering each vertically."""
    x, y = points[0]
    parts = [f"M{_num(x)},{_num(y)}"]
    for nx, ny in points[1:]:
        bend = (ny - y) / 2
        parts.append(
            f"C{_num(x)},{_num(y + bend)} {_num(nx)},{_num(ny - bend)} {_num(nx)},{_num(ny)}"
        )
        x, y = nx, ny
    return " ".join(parts)


def to_svg(graph: Graph, progress: Progress | None = None, *, title: str = "") -> str:
    """The diagram as a standalone SVG document (it carries its own style)."""
    level = _lay_out(graph, graph.top_level(), markers=True)
    canvas = _Canvas(graph=graph, progress=progress)
    canvas.place(level, MARGIN, MARGIN)
    canvas.draw()
    width = level.layout.width + 2 * MARGIN + (LANE_GAP if level.layout.back else 0)
    left = min(0.0, canvas.left - MARGIN / 2)
    width = max(width, canvas.right + MARGIN / 2) - left
    height = level.layout.height + 2 * MARGIN
    label = title or "State machine diagram"
    return "".join(
        [
            (
                f'<svg xmlns="http://www.w3.org/2000/svg" class="stepd-graph"'
                f' width="{_num(width)}" height="{_num(height)}"'
                f' viewBox="{_num(left)} 0 {_num(width)} {_num(height)}" role="img"'
                f' aria-label="{escape(label)}">'
            ),
            f"<title>{escape(label)}</title>",
            f"<style>{SVG_CSS}</style>",
            "<defs>",
            *(
                f'<marker id="{marker}" viewBox="0 0 10 10" refX="9" refY="5"'
                f' markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9"'
                f' orient="auto-start-reverse">'
                f'<path class="{css}" d="M0,0 L10,5 L0,10 z"/></marker>'
                for marker, css in (("stepd-arrow", "arrow"), ("stepd-arrow-taken", "arrow-taken"))
            ),
            "</defs>",
            '<g class="compounds">',
            *canvas.compounds,
            "</g>",
            '<g class="clusters">',
            *canvas.clusters,
            "</g>",
            '<g class="edges">',
            *canvas.edges,
            "</g>",
            '<g class="states">',
            *canvas.states,
            "</g>",
            "</svg>\n",
        ]
    )


def render(
    definition: Mapping[str, Any],
    fmt: str,
    events: Iterable[Mapping[str, Any]] | None = None,
    *,
    title: str = "",
) -> str:
    """`definition` in format `fmt` (one of FORMATS), coloured by `events` when given."""
    graph = build_graph(definition)
    state_progress = progress(events) if events is not None else None
    if fmt == "mermaid":
        return to_mermaid(graph, state_progress)
    if fmt == "dot":
        return to_dot(graph, state_progress)
    if fmt == "svg":
        return to_svg(graph, state_progress, title=title)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


# -- the command line ---------------------------------------------------------------------

EX_OK = 0
EX_FAILURE = 1
DEFAULT_CONFIG = Path("/etc/stepd/stepd.toml")


class Subcommands(Protocol):
    """What `register` needs of `argparse`'s subparsers action."""

    def add_parser(
        self,
        name: str,
        *,
        help: str | None = ...,  # noqa: A002 - argparse's own keyword
        description: str | None = ...,
    ) -> argparse.ArgumentParser: ...


def register(commands: Subcommands) -> argparse.ArgumentParser:
    """Add `stepd graph MACHINE [--execution NAME] [--format F] [-c FILE] [--api URL]`."""
    parser = commands.add_parser(
        "graph",
        help="draw a state machine (and where an execution is) as mermaid, dot or svg",
        description="Print the diagram of MACHINE. Its definition comes from the config file, "
        "or from the API with --api or --execution; --execution colours the states the "
        "execution passed (done, failed, current).",
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=Path(os.environ.get("STEPD_CONFIG", str(DEFAULT_CONFIG))),
        help="config file (default: $STEPD_CONFIG or /etc/stepd/stepd.toml)",
    )
    parser.add_argument("--api", help="API URL (http://HOST:PORT or unix:/PATH) instead of -c")
    parser.add_argument("machine", help="state machine name or ARN")
    parser.add_argument("--execution", metavar="NAME", help="colour the states NAME passed")
    parser.add_argument("--format", choices=FORMATS, default="mermaid", help="default: mermaid")
    parser.set_defaults(func=cmd_graph)
    return parser


def cmd_graph(args: argparse.Namespace) -> int:
    """Print the diagram; 0 when drawn, 78 on a config problem, 1 when the API refuses."""
    machine = Arns.machine_of(args.machine)
    try:
        if args.api or args.execution:
            definition, events = _from_api(args, machine)
        else:
            definition, events = _from_config(args.config, machine), None
    except ConfigError as exc:
        sys.stderr.write(f"stepd: {exc}\n")
        return EX_CONFIG
    except DefinitionError as exc:
        sys.stderr.write(f"stepd: {exc.where}: {exc}\n")
        return EX_CONFIG
    except ApiClientError as exc:
        sys.stderr.write(f"stepd: {exc}\n")
        return EX_FAILURE
    title = f"{machine}: {args.execution}" if args.execution else machine
    sys.stdout.write(render(definition, args.format, events, title=title))
    return EX_OK


def _from_config(config: Path, machine: str) -> Mapping[str, Any]:
    settings = load_settings(config)
    for entry in settings.machines:
        if entry.name == machine:
            return load_definition(entry.definition, entry.key).definition
    names = ", ".join(entry.name for entry in settings.machines) or "none"
    raise ConfigError(f"{config}: no state machine named {machine!r} (configured: {names})")


def _from_api(
    args: argparse.Namespace, machine: str
) -> tuple[Mapping[str, Any], list[dict[str, Any]] | None]:
    if args.api:
        client, arns = Client(args.api, key=client_key(None)), Arns()
    else:
        try:
            settings = load_settings(args.config)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (or pass --api URL)") from None
        arns = Arns(region=settings.api.region, account=settings.api.account)
        client = Client(
            api_url(settings.api.listen), key=client_key(settings), region=settings.api.region
        )
    try:
        described = client.call("DescribeStateMachine", {"stateMachineArn": machine})
        definition = json.loads(described["definition"])
        if not isinstance(definition, Mapping):
            raise StepdError("the API answered a definition that is not a JSON object")
        if not args.execution:
            return definition, None
        arn = arns.execution(machine, args.execution)
        events: list[dict[str, Any]] = []
        body: dict[str, Any] = {"executionArn": arn, "maxResults": HISTORY_PAGE}
        while True:
            answer = client.call("GetExecutionHistory", body)
            events.extend(answer["events"])
            if not answer.get("nextToken"):
                return definition, events
            body["nextToken"] = answer["nextToken"]
    finally:
        client.close()
