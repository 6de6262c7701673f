"""One TVIEW: definition, columns, dependency trees up and down, recent events."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

from rich.markup import escape
from rich.syntax import Syntax
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Label, Static, TabbedContent, TabPane, Tree

from .. import catalog, events, graph, trace
from ..catalog import TviewDetail, TviewInfo
from ..keys import parse_keys
from . import refresh_actions
from .base import BaseScreen
from .commands import bindings
from .tail import trace_text
from .widgets import PlainTable, PromptScreen, TextScreen


def _load(conn, info: TviewInfo) -> tuple[TviewDetail, list[catalog.Dependency]]:
    return catalog.detail(conn, info), catalog.dependencies(conn)


def tidy_definition(definition: str) -> str:
    """The definition as written, its common indentation removed; a first line written right
    after the opening quote (less indented than the rest) is aligned with the others."""
    lines = definition.strip("\n").rstrip().splitlines()
    if not lines:
        return ""
    rest = [line for line in lines[1:] if line.strip()]
    first_indent = len(lines[0]) - len(lines[0].lstrip())
    rest_indent = min((len(line) - len(line.lstrip()) for line in rest), default=first_indent)
    if first_indent < rest_indent:
        return lines[0].strip() + "\n" + textwrap.dedent("\n".join(lines[1:]))
    return textwrap.dedent("\n".join(lines))


def fill_tree(tree: Tree, node: graph.TreeNode) -> None:
    def label(n: graph.TreeNode) -> str:
        kind = "[b]TVIEW [/b]" if n.kind == "tview" else "table "
        lineage = f"  [dim]lineage: {escape(n.lineage)}[/dim]" if n.lineage else ""
        return f"{kind}{escape(n.name)}{lineage}"

    def add(parent, n: graph.TreeNode) -> None:
        for child in n.children:
            branch = parent.add(label(child), expand=True)
            add(branch, child)
            if not child.children:
                branch.allow_expand = False

    tree.reset(label(node))
    add(tree.root, node)
    tree.root.expand()


class DetailScreen(BaseScreen):
    SCOPE = "detail"
    BINDINGS = bindings("detail")

    def __init__(self, info: TviewInfo):
        super().__init__()
        self.info = info
        self.shown_events: list[events.Event] = []

    def compose_body(self) -> Iterator[Widget]:
        info = self.info
        yield Label(f"[b]{escape(info.label)}[/b] · key {escape(info.key_column)} · mode {info.mode}"
                    f" · level {info.topo_level} · lineage {escape(info.lineage)}", id="detail-title")
        with TabbedContent(id="detail-tabs"):
            with TabPane("Definition", id="tab-definition"), VerticalScroll():
                yield Static("loading ...", id="definition")
                yield Static("", id="analysis")
            with TabPane("Columns", id="tab-columns"):
                yield PlainTable(cursor_type="row", id="columns")
            with TabPane("Dependencies", id="tab-dependencies"), Horizontal():
                upstream: Tree[None] = Tree("reads", id="upstream")
                upstream.border_title = "reads: what it is built from"
                yield upstream
                downstream: Tree[None] = Tree("read by", id="downstream")
                downstream.border_title = "read by: refreshed after it"
                yield downstream
            with TabPane("Events", id="tab-events"):
                yield PlainTable(cursor_type="row", id="events")

    def on_mount(self) -> None:
        columns = self.query_one("#columns", DataTable)
        columns.add_columns("column", "type", "role")
        events = self.query_one("#events", DataTable)
        events.add_columns("time", "source", "op", "depth", "rows", "mode", "ms", "keys")
        self.run_db(_load, self.info, done=self._show, failed=self._failed)
        self._show_events()
        self.set_interval(1.0, self._show_events)

    def _failed(self, message: str) -> None:
        self.query_one("#definition", Static).update(f"[red]could not load: {escape(message)}[/red]")

    def _show(self, loaded: tuple[TviewDetail, list[catalog.Dependency]]) -> None:
        detail, edges = loaded
        self.query_one("#definition", Static).update(Syntax(tidy_definition(detail.definition), "sql",
                                                            word_wrap=True))
        reads = escape("\n".join(f"  {d.source} ({d.source_kind}): lineage {d.lineage}" for d in detail.reads))
        why = f"\n[yellow]recomputed whole on any change: {escape(detail.analysis)}[/yellow]" if detail.analysis else ""
        if detail.patch_paths:
            patch = "\n\n[b]Patched in place[/b] (when the embedded TVIEW changes)\n" + escape("\n".join(
                f"  {p.path}: {p.kind} of {p.source} documents, {p.detail}" for p in detail.patch_paths))
        else:
            patch = "\n\n[dim]no patch paths: every change is recomputed[/dim]"
        self.query_one("#analysis", Static).update(f"\n[b]Reads[/b]\n{reads}{why}{patch}")
        table = self.query_one("#columns", DataTable)
        table.clear()
        for column in detail.columns:
            role = ("key" if column.name == detail.info.key_column else
                    "document" if column.name == "data" else
                    "lineage fk" if column.name.startswith("fk_") else
                    "public id" if column.name == "id" else "")
            table.add_row(column.name, column.type, role)
        dependency_graph = graph.build(edges)
        fill_tree(self.query_one("#upstream", Tree), graph.upstream(dependency_graph, self.info.label))
        fill_tree(self.query_one("#downstream", Tree), graph.downstream(dependency_graph, self.info.label))

    def _show_events(self) -> None:
        table = self.query_one("#events", DataTable)
        shown = self.tapp.recent_events(self.info.event_name, limit=100)
        if shown == self.shown_events:
            return
        selected = (self.shown_events[table.cursor_row] if 0 <= table.cursor_row < len(self.shown_events)
                    else None)
        table.clear()
        self.shown_events = shown
        for event in shown:
            table.add_row(event.ts.astimezone().strftime("%H:%M:%S.%f")[:-3], event.source or "-", event.op,
                          str(event.depth), str(event.rows), event.mode, f"{event.ms:.2f}",
                          ",".join(map(str, event.keys[:8])) + (" ..." if len(event.keys) > 8 or event.keys_more
                                                                 else ""))
        if selected in shown:                    # the cursor stays on its event as new ones arrive
            table.move_cursor(row=shown.index(selected), animate=False)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a recent event: its transaction's cascade trace."""
        if event.data_table.id != "events" or not 0 <= event.cursor_row < len(self.shown_events):
            return
        chosen = self.shown_events[event.cursor_row]
        found = trace.of_transaction(self.tapp.buffered_events(), chosen.xid, chosen.pid) or trace.build([chosen])
        assert found is not None
        self.tapp.light_trace(found)
        self.app.push_screen(TextScreen("Cascade trace (the slowest step is marked)", trace_text(found)))

    def action_explain(self, analyze: bool) -> None:
        """EXPLAIN [ANALYZE] of the refresh of some keys (asked for; empty: one existing key)."""
        def answered(text: str | None) -> None:
            if text is None:
                return
            try:
                keys = parse_keys(text) or None
            except ValueError as exc:
                self.app.notify(f"not a list of integer keys: {exc}", severity="error")
                return
            self.run_db(catalog.explain, self.info, keys, analyze, done=self._explained)

        verb = "EXPLAIN ANALYZE (run, then rolled back)" if analyze else "EXPLAIN"
        self.app.push_screen(PromptScreen(f"{verb} the refresh of {self.info.label} for keys"
                                          f" ({self.info.key_column}):", "e.g. 1, 5-9 (empty: one existing key)"),
                             answered)

    def _explained(self, explained: catalog.Explained) -> None:
        self.app.push_screen(TextScreen(f"Plan of the refresh of {explained.tview}", explained.text()))

    def action_describe(self) -> None:
        """The last refresh of this TVIEW made here, whole: every key, rows per TVIEW, its trace."""
        last = refresh_actions.last_refresh_text(self, self.info.label)
        if last is None:
            self.app.notify(f"no refresh of {self.info.label} made here yet (r or k)", severity="information")
            return
        self.app.push_screen(TextScreen(f"Last refresh of {self.info.label}", last))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_refresh_whole(self) -> None:
        refresh_actions.refresh_whole(self, self.info)

    def action_refresh_keys(self) -> None:
        refresh_actions.refresh_keys(self, self.info)
