"""The graph read from a definition: its states, its transitions and their labels, the
branches of a Parallel."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.graph.graph_support import BRANCHY, BRANCHY_EDGES, CLASSROOM

from stepd.graph.model import build_graph, rule_text


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
