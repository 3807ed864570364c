"""The Mermaid and dot drawings: every edge between the states' ids, escaping, colours; and
`render`, which picks the format."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from tests.unit.graph.graph_support import BRANCHY, CLASSROOM, WAITING_FOR_PING

from stepd.graph import render
from stepd.graph.model import build_graph
from stepd.graph.progress import progress
from stepd.graph.text import node_ids, to_dot, to_mermaid


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
