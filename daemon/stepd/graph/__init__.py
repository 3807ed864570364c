"""State machine diagrams: a definition as a graph, drawn as Mermaid, Graphviz dot or SVG.

    model.py     the graph: states, transitions (labelled), Parallel and Map branches
    progress.py  an execution's history read as one status per state, and the edges taken
    text.py      Mermaid and dot
    layout.py    where every box and edge goes, deterministically
    svg.py       the SVG drawing, with its own style
    formats.py   `render`: a definition (and history) in a format named by the caller

The package takes plain values (a definition mapping, history events shaped as
GetExecutionHistory returns them) and returns text; reading a config or calling the API is the
command line's job (`stepd graph`, in stepd.cli).
"""

from stepd.graph.formats import FORMATS, render
from stepd.graph.model import Cluster, Edge, Graph, Node, build_graph, rule_text
from stepd.graph.progress import CURRENT, DONE, FAILED, NOT_REACHED, Progress, progress
from stepd.graph.svg import SVG_CSS, to_svg
from stepd.graph.text import node_ids, to_dot, to_mermaid

__all__ = [
    "CURRENT",
    "DONE",
    "FAILED",
    "FORMATS",
    "NOT_REACHED",
    "SVG_CSS",
    "Cluster",
    "Edge",
    "Graph",
    "Node",
    "Progress",
    "build_graph",
    "node_ids",
    "progress",
    "render",
    "rule_text",
    "to_dot",
    "to_mermaid",
    "to_svg",
]
