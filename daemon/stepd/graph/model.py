"""A state machine as a graph: its states, and the transitions between them.

`build_graph(definition)` reads the states and transitions of an ASL definition: `Next`,
`Default`, each `Choices[].Next` (labelled with its rule), each `Catch[].Next` (labelled with
its errors), a start marker into `StartAt` and an end marker after every state that ends the
machine (`End: true`, Succeed, Fail). The states of a Parallel's branches and a Map's item
processor are clusters inside their state. State names are unique across a definition (AWS
requires it); a repeated name is drawn once, and a transition to a state of another machine
level is left out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stepd import jsontext

# Edge kinds.
EDGE_START = "start"  # the start marker into StartAt
EDGE_NEXT = "next"
EDGE_DEFAULT = "default"  # a Choice's Default
EDGE_CHOICE = "choice"  # a Choice rule's Next
EDGE_CATCH = "catch"  # a Catch's Next
EDGE_BRANCH = "branch"  # a Parallel or Map state into the StartAt of a branch
EDGE_END = "end"  # a state that ends the machine into the end marker

COMPOUND_TYPES = frozenset({"Parallel", "Map"})
TERMINAL_TYPES = frozenset({"Succeed", "Fail"})
MAX_LABEL_CHARS = 28  # an edge label longer than this is cut short (its title keeps it whole)


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
    """A definition's states, transitions and branches, each in definition order."""

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
            return f"{variable} {_OPERATORS[match['op']]} {jsontext.escape_surrogates(shown)}"
        if key in _TESTS:
            negation = "" if value is True else "not "
            return f"{variable} is {negation}{_TESTS[key]}"
    return variable


def short(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    """A label as drawn: cut to `limit` characters, the last an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
