"""The graph drawn as a standalone SVG document, top to bottom, with its own style.

The same definition and history always give the same bytes. Every state element carries
`data-state="<name>"` and the classes `state` plus its status; every edge element carries
`data-from`/`data-to` (an edge from the start marker has no `data-from`, an edge to the end
marker no `data-to`) and `data-kind`; each branch frame carries `data-cluster` (its state) and
`data-branch`. Every name and label is escaped here: the text is safe to place in a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from stepd.graph.layout import (
    BRANCH_ARROW_HEIGHT,
    END,
    LANE_GAP,
    LAYER_GAP,
    SMALL_CHAR_WIDTH,
    START,
    Box,
    Frame,
    Key,
    Placement,
    Point,
    place,
    text_width,
)
from stepd.graph.model import EDGE_BRANCH, Edge, Graph, Node, short
from stepd.graph.progress import Progress

MARGIN = 20  # pixels around the drawing
GAP_SHARE = 0.3  # how far into the gap beside its rows an edge that goes up runs across
LABEL_AT = 0.7  # an edge's label sits this far along its last segment

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


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text.removesuffix(".0")


@dataclass
class _Canvas:
    """The drawing's elements, in the groups they are painted in (later ones on top)."""

    graph: Graph
    progress: Progress | None
    placement: Placement
    clusters: list[str] = field(default_factory=list)
    compounds: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    left: float = 0.0  # how far edge labels reach beyond the layout, either side
    right: float = 0.0

    def _frame(self, frame: Frame) -> None:
        box = frame.box
        self.clusters.append(
            f'<g class="cluster" data-cluster="{escape(frame.state)}" data-branch="{frame.index}">'
            f'<rect x="{_num(box.x)}" y="{_num(box.y)}" width="{_num(box.w)}"'
            f' height="{_num(box.h)}"'
            f' rx="6"/><text x="{_num(box.x + 8)}" y="{_num(box.y + 14)}">'
            f"{escape(frame.label)}</text></g>"
        )

    def status_class(self, name: str) -> str:
        return "" if self.progress is None else f" {self.progress.status(name)}"

    def draw(self) -> None:
        for frame in self.placement.frames:
            self._frame(frame)
        for node in self.graph.nodes:
            box = self.placement.boxes.get(("s", node.name))
            if box is not None:
                self._state(node, box)
        for key, label in ((START, "Start"), (END, "End")):
            box = self.placement.boxes.get(key)
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

    def _state(self, node: Node, box: Box) -> None:
        compound = bool(self.graph.clusters_of(node.name))
        classes = "state compound" if compound else "state"
        status = self.progress.status(node.name) if self.progress is not None else ""
        name_y = box.y + (22 if compound else 20)
        type_y = name_y + 15 if not compound else name_y
        name_x, type_x, anchor = box.cx, box.cx, "middle"
        if compound:
            name_x, anchor = box.x + 12, "start"
            type_x = name_x + text_width(node.name) + 8
        counted = self.progress.iterations.get(node.name) if self.progress is not None else None
        type_text = f"{node.type} · {counted.text()}" if counted is not None else node.type
        title = f"{node.name} ({type_text})" + (f": {status}" if status else "")
        group = (
            f'<g class="{classes}{self.status_class(node.name)}" data-state="{escape(node.name)}"'
            f' data-type="{escape(node.type)}"><title>{escape(title)}</title>'
            f'<rect x="{_num(box.x)}" y="{_num(box.y)}" width="{_num(box.w)}"'
            f' height="{_num(box.h)}" rx="8"/>'
            f'<text class="name" x="{_num(name_x)}" y="{_num(name_y)}" text-anchor="{anchor}">'
            f"{escape(node.name)}</text>"
            f'<text class="type" x="{_num(type_x)}" y="{_num(type_y)}" text-anchor="{anchor}">'
            f"{escape(type_text)}</text></g>"
        )
        (self.compounds if compound else self.states).append(group)

    def _edge(self, edge: Edge) -> None:
        placed = self.placement
        source: Key = START if edge.source is None else ("s", edge.source)
        target: Key = END if edge.target is None else ("s", edge.target)
        if source not in placed.boxes or target not in placed.boxes:
            return
        start, end = placed.boxes[source], placed.boxes[target]
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
            lane = placed.lanes.get((source, target))
            if lane is not None:  # down into the gap below, over to the lane, up, in
                x1, x2 = start.cx + start.w / 4, end.cx + end.w / 4
                below = placed.spans[source][1] + LAYER_GAP * GAP_SHARE
                above = placed.spans[target][0] - LAYER_GAP * GAP_SHARE
                d = (
                    f"M{_num(x1)},{_num(start.y + start.h)} V{_num(below)} H{_num(lane)}"
                    f" V{_num(above)} H{_num(x2)} V{_num(end.y)}"
                )
                label_at, anchor = (lane + 4, (below + above) / 2), "start"
            else:
                points = placed.via.get((source, target), [])
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
            label_width = text_width(short(edge.label), SMALL_CHAR_WIDTH)
            left = label_at[0] - (label_width / 2 if anchor == "middle" else 0.0)
            self.left, self.right = min(self.left, left), max(self.right, left + label_width)
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


def _label_point(start: Point, end: Point) -> tuple[Point, str]:
    """Where an edge's label goes: beside a straight edge, or on a bent one near its end."""
    (x1, y1), (x2, y2) = start, end
    if abs(x2 - x1) < 1:
        return (x1 + 6, (y1 + y2) / 2 + 4), "start"
    along = 3 * LABEL_AT**2 - 2 * LABEL_AT**3  # the share of the way a vertical-tangent
    return (x1 + (x2 - x1) * along, y1 + (y2 - y1) * along - 4), "middle"  # curve has come


def _curve(points: Sequence[Point]) -> str:
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
    placement = place(graph, (MARGIN, MARGIN))
    canvas = _Canvas(graph=graph, progress=progress, placement=placement)
    canvas.draw()
    width = placement.width + 2 * MARGIN + (LANE_GAP if placement.lanes_right else 0)
    left = min(0.0, canvas.left - MARGIN / 2)
    width = max(width, canvas.right + MARGIN / 2) - left
    height = placement.height + 2 * MARGIN
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
