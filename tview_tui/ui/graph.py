"""The whole dependency graph at a glance: every base table and TVIEW by topological level,
drawn left to right with its live event rate and p95, the edges into it labelled with their
lineage (full lineage stands out), and the path of the last cascade trace opened lit. Enter
on a TVIEW opens its detail; `t` shows the same as a table (one row per node)."""

from __future__ import annotations

from collections.abc import Iterator

import networkx as nx
from rich.text import Text
from textual.widget import Widget
from textual.widgets import ContentSwitcher, DataTable, Label

from .. import catalog, graph
from .base import BaseScreen
from .commands import bindings
from .graphview import GraphView
from .widgets import PlainTable

COLUMNS = [("node", "node"), ("kind", "kind"), ("rate", "ev/min"), ("p95", "p95 ms"), ("reads", "reads (lineage)")]


class GraphScreen(BaseScreen):
    SCOPE = "graph"
    BINDINGS = bindings("graph")

    def __init__(self) -> None:
        super().__init__()
        self.graph: nx.DiGraph = nx.DiGraph()
        self.order: list[str] = []
        self.levels: dict[str, int] = {}
        self.shown: dict[str, tuple] = {}

    def compose_body(self) -> Iterator[Widget]:
        yield Label("loading the graph ...", id="graph-info")
        table: PlainTable[str | Text] = PlainTable(cursor_type="row", id="graph-table")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        with ContentSwitcher(initial="graph-view", id="graph-switcher"):
            yield GraphView(id="graph-view")
            yield table

    def on_mount(self) -> None:
        self.load()
        self.set_interval(1.0, self._update)

    def on_screen_resume(self) -> None:
        self.load()

    def load(self) -> None:
        self.run_db(catalog.dependencies, done=self._loaded)

    def _loaded(self, edges: list[catalog.Dependency]) -> None:
        self.graph = graph.build(edges)
        self.levels = {name: layer.level for layer in graph.layers(self.graph) for name in layer.nodes}
        self.order = list(self.levels)
        table = self.query_one("#graph-table", DataTable)
        table.clear()
        self.shown = {}
        for name in self.order:
            cells = self._cells(name)
            table.add_row(*cells, key=name)
            self.shown[name] = cells
        full = sum(1 for *_, lineage in self.graph.edges(data="lineage") if lineage == "full")
        tables = sum(1 for _, kind in self.graph.nodes(data="kind") if kind != "tview")
        self.query_one("#graph-info", Label).update(
            f"{tables} table(s) · {self.graph.number_of_nodes() - tables} TVIEW(s) · "
            f"{self.graph.number_of_edges()} edge(s), {full} with full lineage (red) · "
            "lit: the last cascade trace opened · enter: detail · t: picture/table")
        self.query_one(GraphView).show(graph.layout(self.graph, self.tapp.last_trace_nodes))
        self._update()

    def _cells(self, name: str) -> tuple:
        app = self.tapp
        kind = self.graph.nodes[name].get("kind", "table")
        lit = name in app.last_trace_nodes or graph.short(name) in app.last_trace_nodes
        level = self.levels.get(name, 0)
        label = Text("  " * level + ("● " if lit else "  ") + name, style="bold" if lit else "")
        if kind == "tview":
            info = app.tview_labelled(name)
            stats = app.stats.get(info.event_name) if info else None
            rate = f"{stats.per_minute:.0f}" if stats else "0"
            p95 = stats.p95 if stats else None
            p95_text = "-" if p95 is None else f"{p95:.1f}"
        else:
            started = app.stats.sources.get(graph.short(name))
            rate, p95_text = f"{started or 0:.0f}", ""
        reads = Text()
        for n, (source, lineage) in enumerate(graph.inputs(self.graph, name)):
            if n:
                reads.append(", ")
            reads.append(f"{graph.short(source)} ({lineage})", style="bold red" if lineage == "full" else "")
        return (label, f"L{level} {kind}", rate, p95_text, reads)

    def _update(self) -> None:
        if not self.is_current or not self.order:
            return
        table = self.query_one("#graph-table", DataTable)
        figures: dict[str, tuple[str, str]] = {}
        for name in self.order:
            cells = self._cells(name)
            p95 = cells[3]
            figures[name] = (f"{cells[2]}/min", "cascades" if not p95 else "p95 -" if p95 == "-" else f"p95 {p95} ms")
            if cells != self.shown.get(name):
                for (key, _), value in zip(COLUMNS, cells, strict=True):
                    table.update_cell(name, key, value)
                self.shown[name] = cells
        self.query_one(GraphView).set_figures(figures)

    def action_toggle_view(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "graph-table" if switcher.current == "graph-view" else "graph-view"
        chosen = self.query_one(GraphView).selected
        if switcher.current == "graph-table" and chosen in self.order:
            self.query_one(DataTable).move_cursor(row=self.order.index(chosen))
        self.query_one(f"#{switcher.current}").focus()

    def on_graph_view_selected(self, event: GraphView.Selected) -> None:
        event.stop()
        self.open_detail(event.name)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_detail()

    def action_open_detail(self) -> None:
        if self.query_one(ContentSwitcher).current == "graph-view":
            self.query_one(GraphView).action_select()
            return
        table = self.query_one("#graph-table", DataTable)
        if table.row_count == 0:
            return
        self.open_detail(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))

    def open_detail(self, name: str) -> None:
        info = self.tapp.tview_labelled(name)
        if info is None:
            self.app.notify(f"{name} is a table: its detail is that of the TVIEWs that read it",
                            severity="information")
            return
        from .detail import DetailScreen

        self.app.push_screen(DetailScreen(info))
