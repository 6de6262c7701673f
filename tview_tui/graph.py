"""The dependency graph: relations and TVIEWs as nodes, "is read by" as edges.

Built with networkx from the catalog's edges; used for the detail screen's trees
(upstream: what a TVIEW reads, transitively; downstream: where its changes cascade to).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from .catalog import Dependency


@dataclass
class TreeNode:
    """A node of an upstream/downstream tree, ready for a Tree widget."""

    name: str
    kind: str            # table | tview
    lineage: str | None  # how changes travel along the edge to its parent
    children: list[TreeNode] = field(default_factory=list)


def build(edges: list[Dependency]) -> nx.DiGraph:
    """source -> tview edges, with each node's kind and each edge's lineage."""
    graph = nx.DiGraph()
    for dep in edges:
        graph.add_node(dep.tview, kind="tview")
        if dep.source not in graph or graph.nodes[dep.source].get("kind") != "tview":
            graph.add_node(dep.source, kind=dep.source_kind)
        graph.add_edge(dep.source, dep.tview, lineage=dep.lineage)
    return graph


def upstream(graph: nx.DiGraph, name: str) -> TreeNode:
    """What `name` reads, transitively (the tree of its sources)."""
    return _tree(graph, name, graph.predecessors, lambda parent, child: (child, parent))


def downstream(graph: nx.DiGraph, name: str) -> TreeNode:
    """What reads `name`, transitively (where its changes cascade to)."""
    return _tree(graph, name, graph.successors, lambda parent, child: (parent, child))


def _tree(graph: nx.DiGraph, root: str, neighbours, edge_of) -> TreeNode:
    def node(name: str, lineage: str | None, seen: frozenset[str]) -> TreeNode:
        kind = graph.nodes[name].get("kind", "table") if name in graph else "tview"
        tree = TreeNode(name, kind, lineage)
        if name in graph and name not in seen:
            for other in sorted(neighbours(name)):
                tree.children.append(node(other, graph.edges[edge_of(name, other)]["lineage"], seen | {name}))
        return tree

    return node(root, None, frozenset())


@dataclass
class Layer:
    """The nodes of one topological level: 0 holds what reads nothing (base tables)."""

    level: int
    nodes: list[str]


def layers(graph: nx.DiGraph) -> list[Layer]:
    """Nodes by topological level (networkx generations), each level sorted by name."""
    return [Layer(level, sorted(nodes)) for level, nodes in enumerate(nx.topological_generations(graph))]


def inputs(graph: nx.DiGraph, name: str) -> list[tuple[str, str]]:
    """(source, lineage) of every edge into a node, sorted by source."""
    return sorted((source, graph.edges[source, name]["lineage"]) for source in graph.predecessors(name))


def short(name: str) -> str:
    """public.tb_user -> tb_user (events name written tables without their schema)."""
    return name.rpartition(".")[2]


# -- the drawing: levels left to right, boxes and box-drawing lines ---------------------------

BOX_MIN_WIDTH = 16     # room for "12345 ev/min" and "p95 1234.5 ms"
BOX_ROWS = 3           # name, rate, p95
LANE_GAP = 1           # rows between two items of one level


@dataclass
class Box:
    """Where a node is drawn: its top-left corner and size (borders included)."""

    name: str
    label: str           # the name as printed (without the schema when every node shares one)
    kind: str            # table | tview
    level: int
    x: int
    y: int
    width: int
    height: int
    lit: bool = False

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.x + self.width and self.y <= y < self.y + self.height


@dataclass
class Drawing:
    """A graph laid out on a character grid. ``rows`` hold the picture without the live
    figures, ``flags`` the style of each character: "" plain, "line", "lit", "full",
    "lit full", "box"."""

    width: int
    height: int
    boxes: dict[str, Box]
    rows: list[list[str]]
    flags: list[list[str]]

    def text(self) -> str:
        return "\n".join("".join(row).rstrip() for row in self.rows)

    def levels(self) -> list[list[str]]:
        """Names of the boxes of each level, top to bottom (the keyboard walks them)."""
        found: dict[int, list[Box]] = {}
        for box in self.boxes.values():
            found.setdefault(box.level, []).append(box)
        return [[b.name for b in sorted(found[level], key=lambda b: b.y)] for level in sorted(found)]


# directions a line leaves a cell in -> the box-drawing character
_LINES = {
    frozenset("ud"): "│", frozenset("lr"): "─", frozenset("dr"): "┌", frozenset("dl"): "┐",
    frozenset("ur"): "└", frozenset("ul"): "┘", frozenset("udr"): "├", frozenset("udl"): "┤",
    frozenset("dlr"): "┬", frozenset("ulr"): "┴", frozenset("udlr"): "┼", frozenset("u"): "│",
    frozenset("d"): "│", frozenset("l"): "─", frozenset("r"): "─",
}


@dataclass
class _Item:
    """One thing in a level's column: a node's box, or a line passing through (a node's edges
    to levels further right, one per source and level)."""

    key: str
    node: str               # the node itself, or the source whose edges pass through
    passing: bool
    height: int = 1
    y: int = 0
    ports: dict[str, int] = field(default_factory=dict)   # source -> row its edge arrives at

    @property
    def out_row(self) -> int:
        return self.y + (0 if self.passing else 1)


def layout(graph: nx.DiGraph, lit: set[str] | frozenset[str] = frozenset()) -> Drawing:
    """Lay the graph out by topological level, left to right: every edge goes from a level to
    a later one; an edge spanning levels passes through the levels between as a line (one per
    source, shared by its edges). Edges of one source leave its box from one row and branch to
    each node it feeds; each arrival is labelled with its lineage. ``lit``: names (or names
    without schema) of the nodes of a trace; edges between two of them are lit."""
    level_of = {name: n for n, nodes in enumerate(nx.topological_generations(graph)) for name in nodes}
    schemas = {name.rpartition(".")[0] for name in graph}
    label_of = {name: (short(name) if len(schemas) == 1 else name) for name in graph}
    is_lit = {name: name in lit or short(name) in lit for name in graph}

    columns: list[list[_Item]] = [[] for _ in range(max(level_of.values(), default=-1) + 1)]
    for name in graph:
        columns[level_of[name]].append(_Item(name, name, False, BOX_ROWS + 2))
    # what reaches each (level, node or passing line): source item key per edge
    feeds: dict[str, list[tuple[str, str]]] = {}          # item key -> [(target item key, lineage)]
    for source in graph:
        targets = sorted(graph.successors(source), key=lambda t: level_of[t])
        if not targets:
            continue
        carrier = source
        for level in range(level_of[source] + 1, level_of[targets[-1]] + 1):
            here = [t for t in targets if level_of[t] == level]
            feeds.setdefault(carrier, []).extend((t, graph.edges[source, t]["lineage"]) for t in here)
            if level < level_of[targets[-1]]:
                passing = _Item(f"{source}@{level}", source, True)
                columns[level].append(passing)
                feeds.setdefault(carrier, []).append((passing.key, ""))
                carrier = passing.key
    items = {item.key: item for column in columns for item in column}
    sources_of: dict[str, list[str]] = {}
    for carrier, targets in feeds.items():
        for target, _ in targets:
            sources_of.setdefault(target, []).append(carrier)
    for column in columns:
        for item in column:
            if not item.passing:
                item.height = max(BOX_ROWS, len(sources_of.get(item.key, []))) + 2

    _order(columns, sources_of, feeds)
    for column in columns:
        y = 0
        for item in column:
            item.y = y
            y += item.height + LANE_GAP

    # column widths, channels between levels and the x of each column
    widths = [max([BOX_MIN_WIDTH] + [len(label_of[i.node]) + 4 for i in column if not i.passing])
              for column in columns]
    label_room = max([len(lineage) for targets in feeds.values() for _, lineage in targets] + [0]) + 3
    xs: list[int] = []
    channels: list[list[str]] = []          # carriers of each channel, in track order
    x = 0
    for level, column in enumerate(columns):
        xs.append(x)
        x += widths[level]
        if level + 1 < len(columns):
            carriers = _tracks([i.key for i in column if i.key in feeds], items, feeds)
            channels.append(carriers)
            x += 1 + len(carriers) + label_room
    width = x
    height = max((i.y + i.height for column in columns for i in column), default=0)

    rows = [[" "] * width for _ in range(height)]
    flags = [[""] * width for _ in range(height)]
    dirs: dict[tuple[int, int], set[str]] = {}
    styles: dict[tuple[int, int], set[str]] = {}

    def mark(px: int, py: int, ways: str, style: set[str]) -> None:
        dirs.setdefault((px, py), set()).update(ways)
        styles.setdefault((px, py), set()).update(style)

    def hline(x0: int, x1: int, py: int, style: set[str]) -> None:
        for px in range(x0, x1 + 1):
            mark(px, py, ("l" if px > x0 else "") + ("r" if px < x1 else ""), style)

    def vline(px: int, y0: int, y1: int, style: set[str]) -> None:
        top, bottom = min(y0, y1), max(y0, y1)
        for py in range(top, bottom + 1):
            mark(px, py, ("u" if py > top else "") + ("d" if py < bottom else ""), style)

    def final(key: str) -> list[tuple[str, str]]:
        """(real target, lineage) of every edge a carrier's line leads to."""
        found: list[tuple[str, str]] = []
        for target, lineage in feeds.get(key, []):
            found.extend(final(target) if items[target].passing else [(target, lineage)])
        return found

    arrivals: list[tuple[int, int, str, set[str]]] = []
    for level, carriers in enumerate(channels):
        start = xs[level] + widths[level]
        for track, carrier in enumerate(carriers):
            item = items[carrier]
            source = item.node
            track_x = start + 1 + track
            for target_key, lineage in feeds[carrier]:
                into = items[target_key]
                ends = [t for t, _ in final(target_key)] if into.passing else [target_key]
                style: set[str] = set()
                if any(is_lit[source] and is_lit[t] for t in ends):
                    style.add("lit")
                if any(graph.edges[source, t]["lineage"] == "full" for t in ends):
                    style.add("full")
                arrive = into.y if into.passing else into.y + 1 + into.ports[carrier]
                end_x = xs[level + 1] - 1
                hline(start - (1 if item.passing else 0), track_x, item.out_row, style)
                vline(track_x, item.out_row, arrive, style)
                hline(track_x, end_x, arrive, style)
                if not into.passing:
                    arrivals.append((end_x - len(lineage) - 1, arrive, lineage, style))
        for column_item in columns[level + 1]:
            if column_item.passing:      # the line goes on through this level
                hline(xs[level + 1] - 1, xs[level + 1] + widths[level + 1], column_item.y,
                      styles.get((xs[level + 1] - 1, column_item.y), set()))
    for (px, py), ways in dirs.items():
        rows[py][px] = _LINES[frozenset(ways)]
        flags[py][px] = " ".join(sorted(styles[(px, py)])) or "line"
    for px, py, lineage, style in arrivals:
        text = f" {lineage}▶" if lineage else "▶"
        for n, char in enumerate(text):
            rows[py][px + n] = char
            flags[py][px + n] = " ".join(sorted(style)) or "line"
        rows[py][px + len(text) - 1] = "▶"

    boxes: dict[str, Box] = {}
    for level, column in enumerate(columns):
        for item in column:
            if item.passing:
                continue
            box = Box(item.key, label_of[item.key], graph.nodes[item.key].get("kind", "table"), level, xs[level],
                      item.y, widths[level], item.height, is_lit[item.key])
            boxes[item.key] = box
            _draw_box(rows, flags, box)
    return Drawing(width, height, boxes, rows, flags)


def _draw_box(rows: list[list[str]], flags: list[list[str]], box: Box) -> None:
    x, y, w, h = box.x, box.y, box.width, box.height
    for py in range(y, y + h):
        for px in range(x, x + w):
            edge = py in (y, y + h - 1) or px in (x, x + w - 1)
            rows[py][px] = " " if not edge else (
                "┌" if (px, py) == (x, y) else "┐" if (px, py) == (x + w - 1, y) else
                "└" if (px, py) == (x, y + h - 1) else "┘" if (px, py) == (x + w - 1, y + h - 1) else
                "─" if py in (y, y + h - 1) else "│")
            flags[py][px] = "box"
    for n, char in enumerate(f" {'TVIEW' if box.kind == 'tview' else 'table'} "):
        rows[y][x + 1 + n] = char
    for n, char in enumerate(box.label[:w - 4]):
        rows[y + 1][x + 2 + n] = char


def _order(columns: list[list[_Item]], sources_of: dict[str, list[str]],
           feeds: dict[str, list[tuple[str, str]]]) -> None:
    """Order each level's items to keep edges short and crossings few: by the mean position
    of their sources, then of their targets (a few sweeps of the barycenter heuristic)."""
    columns[0].sort(key=lambda i: i.key)

    def sweep(order: list[list[_Item]], neighbours) -> None:
        position: dict[str, int] = {}
        for column in order:
            if position:
                def mean(item: _Item) -> float:
                    near = [position[n] for n in neighbours(item.key) if n in position]
                    return sum(near) / len(near) if near else float("inf")
                column.sort(key=lambda i: (mean(i), i.key))
            position.update({i.key: n for n, i in enumerate(column)})

    for _ in range(3):
        sweep(columns, lambda key: sources_of.get(key, []))
        sweep(columns[::-1], lambda key: [t for t, _ in feeds.get(key, [])])
    items_y: dict[str, int] = {i.key: n for column in columns for n, i in enumerate(column)}
    for column in columns:
        for item in column:
            if not item.passing:
                ordered = sorted(sources_of.get(item.key, []), key=lambda s: items_y[s])
                item.ports = {s: n for n, s in enumerate(ordered)}


def _tracks(carriers: list[str], items: dict[str, _Item], feeds: dict[str, list[tuple[str, str]]]) -> list[str]:
    """The order of the vertical lines in a channel (left to right): a line whose source row is
    another line's arrival row runs left of it, so the two never merge on that row."""
    rows_in = {c: {items[t].y if items[t].passing else items[t].y + 1 + items[t].ports[c] for t, _ in feeds[c]}
               for c in carriers}
    before = nx.DiGraph()
    before.add_nodes_from(carriers)
    for a in carriers:
        for b in carriers:
            if a != b and items[a].out_row in rows_in[b]:
                before.add_edge(a, b)
    try:
        return list(nx.lexicographical_topological_sort(before, key=lambda c: items[c].out_row))
    except nx.NetworkXUnfeasible:
        return sorted(carriers, key=lambda c: items[c].out_row)
