"""Where everything goes: a layered layout of a graph, deterministic (the same graph always
gets the same positions).

Each machine level is laid out on its own, Sugiyama-style: rows by longest path, the keys of
each row ordered by barycentre sweeps that reduce crossings (the best order kept), boxes pulled
over their neighbours; a link that goes back up is routed in a lane at the right. A Parallel or
Map state is sized to hold its branches' levels side by side. `place` gives every box, lane,
long link and branch frame its position in the drawing. Sizes follow the text drawn in a box,
estimated at CHAR_WIDTH per character.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from stepd.graph.model import EDGE_BRANCH, Cluster, Edge, Graph

# Geometry, in pixels.
FONT_SIZE = 13
CHAR_WIDTH = 7.8  # a generous average advance of a bold sans-serif character at FONT_SIZE
SMALL_CHAR_WIDTH = 6.6  # the same at the type line's and labels' 11 px
NODE_HEIGHT = 46
NODE_PADDING = 16  # each side of a state's name
MIN_NODE_WIDTH = 110
MARKER_WIDTH = 64
MARKER_HEIGHT = 28
LAYER_GAP = 52  # between rows
NODE_GAP = 30  # between neighbours in a row
DUMMY_WIDTH = 10  # the slot a long edge takes in a row it passes through
LANE_GAP = 20  # between the lanes of edges that go back up, at the right
SELF_LOOP_WIDTH = 40
HEADER_HEIGHT = 34  # the name line of a Parallel or Map state
CLUSTER_PADDING = 14
CLUSTER_LABEL_HEIGHT = 20
BRANCH_ARROW_HEIGHT = 16  # the arrow from a branch's label into its first state
CLUSTER_GAP = 18  # between the branches of a Parallel
ORDERING_SWEEPS = 6  # barycentre passes that reduce crossings within rows
POSITION_SWEEPS = 6  # passes that pull each box over its neighbours

# A layout key: ("s", state name), ("m", "start" | "end") for the markers, ("d", n) for the
# slots a long edge takes in the rows it crosses.
Key = tuple[str, str]
START: Key = ("m", "start")
END: Key = ("m", "end")
Point = tuple[float, float]


@dataclass
class Box:
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
class Layout:
    """One machine level placed with its top-left corner at (0, 0)."""

    boxes: dict[Key, Box]
    via: dict[tuple[Key, Key], list[Key]]  # a long forward link -> the slots it passes
    back: list[tuple[Key, Key]]  # links that go up (or across a row), drawn in lanes
    spans: dict[Key, tuple[float, float]]  # the top and bottom of each key's row
    lanes_x: float  # where the first lane runs
    width: float
    height: float


@dataclass(frozen=True, kw_only=True)
class Frame:
    """The frame around one branch of a Parallel state (or a Map's item processor)."""

    state: str
    index: int
    label: str
    box: Box


@dataclass
class Placement:
    """A whole graph laid out: where each key, lane, long link and frame is in the drawing."""

    width: float  # of the top level, from its origin, lanes included
    height: float
    lanes_right: bool  # links go back up in lanes at the right of the top level
    boxes: dict[Key, Box] = field(default_factory=dict)
    spans: dict[Key, tuple[float, float]] = field(default_factory=dict)  # of each key's row
    lanes: dict[tuple[Key, Key], float] = field(default_factory=dict)  # x of a link's lane
    via: dict[tuple[Key, Key], list[Point]] = field(default_factory=dict)  # a long link's bends
    frames: list[Frame] = field(default_factory=list)  # inner ones first

    def add(self, level: _Level, ox: float, oy: float) -> None:
        """Place `level` (and the levels inside its states) with its origin at (ox, oy)."""
        layout = level.layout
        for key, box in layout.boxes.items():
            self.boxes[key] = Box(box.x + ox, box.y + oy, box.w, box.h)
            top, bottom = layout.spans[key]
            self.spans[key] = (top + oy, bottom + oy)
        for index, link in enumerate(layout.back):
            self.lanes[link] = ox + layout.lanes_x + index * LANE_GAP
        for link, chain in layout.via.items():
            self.via[link] = [(self.boxes[k].cx, self.boxes[k].cy) for k in chain]
        for name, placed in level.children.items():
            box = self.boxes[("s", name)]
            for cluster, child, (cx, cy) in placed:
                self.add(child, box.x + cx, box.y + cy)
                self.frames.append(_frame(cluster, child, box.x + cx, box.y + cy))


def place(graph: Graph, origin: Point) -> Placement:
    """Lay `graph` out with the top-left corner of its top level at `origin`."""
    level = _lay_out(graph, graph.top_level(), markers=True)
    placement = Placement(
        width=level.layout.width, height=level.layout.height, lanes_right=bool(level.layout.back)
    )
    placement.add(level, *origin)
    return placement


def _frame(cluster: Cluster, level: _Level, x: float, y: float) -> Frame:
    """The frame of a branch whose level is placed at (x, y): wide enough for its label."""
    width = max(level.layout.width, text_width(cluster.label, SMALL_CHAR_WIDTH))
    left = x - CLUSTER_PADDING - (width - level.layout.width) / 2
    top = y - BRANCH_ARROW_HEIGHT - CLUSTER_LABEL_HEIGHT - CLUSTER_PADDING / 2
    box = Box(
        left,
        top,
        width + 2 * CLUSTER_PADDING,
        level.layout.height + y - top + CLUSTER_PADDING,
    )
    return Frame(state=cluster.state, index=cluster.index, label=cluster.label, box=box)


def _layered(
    keys: Sequence[Key],
    sizes: Mapping[Key, tuple[float, float]],
    links: Sequence[tuple[Key, Key]],
) -> Layout:
    """A layered (Sugiyama-style) layout: rows by longest path, order by barycentres."""
    position = {key: index for index, key in enumerate(keys)}
    unique = list(dict.fromkeys((s, t) for s, t in links if s != t))
    back = _back_links(keys, unique)
    forward = [link for link in unique if link not in back]
    layer = _layers(keys, forward)
    if END in layer:  # the end marker goes below everything
        layer[END] = max((row for key, row in layer.items() if key != END), default=0) + 1
    # Long links pass through one slot per row they cross.
    widths = {key: sizes[key][0] for key in keys}
    heights = {key: sizes[key][1] for key in keys}
    proper: list[tuple[Key, Key]] = []
    via: dict[tuple[Key, Key], list[Key]] = {}
    for source, target in forward:
        chain: list[Key] = []
        for crossed in range(layer[source] + 1, layer[target]):
            slot: Key = ("d", str(len(widths)))
            widths[slot], heights[slot] = DUMMY_WIDTH, 0.0
            layer[slot] = crossed
            chain.append(slot)
        via[(source, target)] = chain
        path = [source, *chain, target]
        proper.extend(itertools.pairwise(path))
    rows = _ordered_rows(keys, layer, proper, position)
    centres = _positions(rows, widths, proper)
    # Rows top to bottom.
    boxes: dict[Key, Box] = {}
    spans: dict[Key, tuple[float, float]] = {}
    top = 0.0
    for row in rows:
        height = max((heights[key] for key in row), default=0.0)
        for key in row:
            x, y = centres[key] - widths[key] / 2, top + (height - heights[key]) / 2
            boxes[key] = Box(x, y, widths[key], heights[key])
            spans[key] = (top, top + height)
        top += height + LAYER_GAP
    left = min((box.x for box in boxes.values()), default=0.0)
    for box in boxes.values():
        box.x -= left
    width = max((box.x + box.w for box in boxes.values()), default=0.0)
    self_loops = any(s == t for s, t in links)
    lanes_x = width + (SELF_LOOP_WIDTH if self_loops else 0.0) + LANE_GAP
    width = lanes_x + LANE_GAP * (len(back) - 1) if back else lanes_x - LANE_GAP
    return Layout(
        boxes=boxes,
        via=via,
        back=back,
        spans=spans,
        lanes_x=lanes_x,
        width=width,
        height=max(top - LAYER_GAP, 0.0),
    )


def _back_links(keys: Sequence[Key], links: Sequence[tuple[Key, Key]]) -> list[tuple[Key, Key]]:
    """The links that close a cycle, found by a depth-first walk in definition order."""
    successors: dict[Key, list[Key]] = {key: [] for key in keys}
    for source, target in links:
        successors[source].append(target)
    colour: dict[Key, int] = {}  # 1: on the walk's path, 2: finished
    back: list[tuple[Key, Key]] = []
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


def _layers(keys: Sequence[Key], forward: Sequence[tuple[Key, Key]]) -> dict[Key, int]:
    """Each key's row: the longest path to it, below the start marker when there is one."""
    position = {key: index for index, key in enumerate(keys)}
    predecessors: dict[Key, list[Key]] = {key: [] for key in keys}
    successors: dict[Key, list[Key]] = {key: [] for key in keys}
    for source, target in forward:
        predecessors[target].append(source)
        successors[source].append(target)
    floor = 1 if START in position else 0
    waiting = {key: len(predecessors[key]) for key in keys}
    ready = [(position[key], key) for key in keys if waiting[key] == 0]
    heapq.heapify(ready)
    layer: dict[Key, int] = {}
    while ready:
        _, key = heapq.heappop(ready)
        above = [layer[p] + 1 for p in predecessors[key]]
        layer[key] = max(above, default=0 if key == START else floor)
        for successor in successors[key]:
            waiting[successor] -= 1
            if waiting[successor] == 0:
                heapq.heappush(ready, (position[successor], successor))
    return layer


def _ordered_rows(
    keys: Sequence[Key],
    layer: Mapping[Key, int],
    proper: Sequence[tuple[Key, Key]],
    position: Mapping[Key, int],
) -> list[list[Key]]:
    """Rows with their keys ordered to cross few edges (barycentre sweeps, best kept)."""
    predecessors: dict[Key, list[Key]] = {key: [] for key in layer}
    successors: dict[Key, list[Key]] = {key: [] for key in layer}
    for source, target in proper:
        predecessors[target].append(source)
        successors[source].append(target)
    # First order: as a breadth-first walk in definition order meets them.
    seen: dict[Key, int] = {}
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
    rows: list[list[Key]] = [[] for _ in range(count)]
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
    key: Key,
    place: Mapping[Key, int],
    current: Mapping[Key, int],
    near: Mapping[Key, list[Key]],
) -> float:
    """The mean place of `key`'s neighbours in the reference row (its own place if none)."""
    places = [place[n] for n in near[key] if n in place]
    return sum(places) / len(places) if places else float(current[key])


def _crossings(rows: Sequence[Sequence[Key]], successors: Mapping[Key, list[Key]]) -> int:
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
    rows: Sequence[Sequence[Key]],
    widths: Mapping[Key, float],
    proper: Sequence[tuple[Key, Key]],
) -> dict[Key, float]:
    """Horizontal centres: each box pulled over its neighbours, rows kept in order."""
    predecessors: dict[Key, list[Key]] = {key: [] for row in rows for key in row}
    successors: dict[Key, list[Key]] = {key: [] for row in rows for key in row}
    for source, target in proper:
        predecessors[target].append(source)
        successors[source].append(target)
    centre: dict[Key, float] = {}
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
    row: Sequence[Key],
    widths: Mapping[Key, float],
    wanted: Mapping[Key, float],
    centre: dict[Key, float],
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


def text_width(text: str, char_width: float = CHAR_WIDTH) -> float:
    return len(text) * char_width


@dataclass
class _Level:
    """One machine level laid out, with the levels of its Parallel and Map states."""

    names: list[str]
    layout: Layout
    children: dict[str, list[tuple[Cluster, _Level, Point]]]  # offsets inside the state


def _lay_out(graph: Graph, names: Sequence[str], *, markers: bool) -> _Level:
    children: dict[str, list[tuple[Cluster, _Level, Point]]] = {}
    sizes: dict[Key, tuple[float, float]] = {}
    for name in names:
        node = graph.node(name)
        assert node is not None
        text = max(text_width(name), text_width(node.type, SMALL_CHAR_WIDTH))
        width, height = max(MIN_NODE_WIDTH, text + 2 * NODE_PADDING), float(NODE_HEIGHT)
        clusters = graph.clusters_of(name)
        if clusters:
            width, height, children[name] = _lay_out_clusters(graph, clusters, width)
        sizes[("s", name)] = (width, height)
    keys: list[Key] = [("s", name) for name in names]
    links = _links(graph, set(names), markers=markers)
    if markers:
        keys.insert(0, START)
        sizes[START] = (MARKER_WIDTH, MARKER_HEIGHT)
        if any(t == END for _, t in links):
            keys.append(END)
            sizes[END] = (MARKER_WIDTH, MARKER_HEIGHT)
    return _Level(names=list(names), layout=_layered(keys, sizes, links), children=children)


def _lay_out_clusters(
    graph: Graph, clusters: Sequence[Cluster], min_width: float
) -> tuple[float, float, list[tuple[Cluster, _Level, Point]]]:
    """The width and height of a state holding `clusters` side by side (at least
    `min_width` wide), and each cluster's level with its offset inside the state."""
    levels = [(c, _lay_out(graph, c.states, markers=False)) for c in clusters]
    inner = [
        (max(level.layout.width, text_width(c.label, SMALL_CHAR_WIDTH)), level)
        for c, level in levels
    ]
    content = sum(w for w, _ in inner) + CLUSTER_GAP * (len(inner) - 1)
    content += 2 * CLUSTER_PADDING * len(inner)
    width = max(min_width, content + 2 * CLUSTER_PADDING)
    tallest = max(level.layout.height for _, level in levels)
    top = HEADER_HEIGHT + CLUSTER_LABEL_HEIGHT + BRANCH_ARROW_HEIGHT
    height = top + tallest + 3 * CLUSTER_PADDING
    x = (width - content) / 2
    placed = []
    for (cluster, level), (inner_width, _) in zip(levels, inner, strict=True):
        offset = x + CLUSTER_PADDING + (inner_width - level.layout.width) / 2
        placed.append((cluster, level, (offset, float(top))))
        x += inner_width + 2 * CLUSTER_PADDING + CLUSTER_GAP
    return width, height, placed


def _links(graph: Graph, inside: set[str], *, markers: bool) -> list[tuple[Key, Key]]:
    """The edges between states of one level (and, with `markers`, to Start and End)."""
    links: list[tuple[Key, Key]] = []
    for edge in graph.edges:
        if edge.kind == EDGE_BRANCH:
            continue
        if edge.source is None or edge.target is None:
            if markers and (edge.source or edge.target) in inside:
                links.append(_marker_link(edge))
        elif edge.source in inside and edge.target in inside:
            links.append((("s", edge.source), ("s", edge.target)))
    return links


def _marker_link(edge: Edge) -> tuple[Key, Key]:
    source: Key = START if edge.source is None else ("s", edge.source)
    target: Key = END if edge.target is None else ("s", edge.target)
    return source, target
