"""One call from a definition (and an execution's history) to a diagram in a named format."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stepd.graph.model import build_graph
from stepd.graph.progress import progress
from stepd.graph.svg import to_svg
from stepd.graph.text import to_dot, to_mermaid

FORMATS = ("mermaid", "dot", "svg")


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
