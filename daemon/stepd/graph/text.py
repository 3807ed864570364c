"""The graph as text: a Mermaid flowchart or a Graphviz digraph, top to bottom.

States are named s0, s1, ... in definition order (`node_ids`); the markers are `start_` and
`end_`. With an execution's progress, each state is coloured by its status and, in dot, each
edge taken is green.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from stepd.graph.model import EDGE_BRANCH, EDGE_CATCH, EDGE_END, Edge, Graph, Node, short
from stepd.graph.progress import CURRENT, DONE, FAILED, NOT_REACHED, Progress


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
    lines += _dot_level(graph, graph.top_level(), ids, progress, "    ")
    lines += (_dot_edge(edge, ids, progress) for edge in graph.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_level(
    graph: Graph,
    names: Sequence[str],
    ids: Mapping[str, str],
    progress: Progress | None,
    indent: str,
) -> list[str]:
    """The nodes `names`, each followed by its clusters (Parallel branches, Map iterators)."""
    lines = []
    for name in names:
        node = graph.node(name)
        assert node is not None
        lines.append(_dot_node(node, ids[name], progress, indent))
        for cluster in graph.clusters_of(name):
            lines.append(f"{indent}subgraph cluster_{ids[name]}_{cluster.index} {{")
            lines.append(f"{indent}    label={_dot_text(f'{name}: {cluster.label}')};")
            lines.append(f"{indent}    style=dashed;")
            lines += _dot_level(graph, cluster.states, ids, progress, indent + "    ")
            lines.append(f"{indent}}}")
    return lines


def _dot_node(node: Node, node_id: str, progress: Progress | None, indent: str) -> str:
    attributes = [f"label={_dot_text(node.name + chr(10) + node.type)}"]
    if node.type == "Choice":
        attributes.append("shape=diamond")
    if progress is not None:
        fill, stroke = _DOT_COLOURS[progress.status(node.name)]
        attributes += [f'fillcolor="{fill}"', f'color="{stroke}"']
        if progress.status(node.name) == CURRENT:
            attributes.append("penwidth=3")
    return f"{indent}{node_id} [{', '.join(attributes)}];"


def _dot_edge(edge: Edge, ids: Mapping[str, str], progress: Progress | None) -> str:
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
    return f"    {source} -> {target}{suffix};"
