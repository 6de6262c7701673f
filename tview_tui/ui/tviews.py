"""The TVIEW list: updated in place every refresh interval, keeping the cursor on its row."""

from __future__ import annotations

from collections.abc import Iterator

from rich.cells import cell_len
from rich.markup import escape
from rich.text import Text
from textual.widget import Widget
from textual.widgets import DataTable, Label

from ..catalog import TviewInfo
from . import refresh_actions
from .base import BaseScreen
from .commands import bindings
from .widgets import PlainTable, PromptScreen, TextScreen

COLUMNS = [  # key, label: what on-call reads first comes first, so a narrow terminal cuts the rest
    ("tview", "TVIEW"), ("health", "health"), ("rows", "rows"), ("rate", "ev/min"), ("p50", "p50 ms"),
    ("p95", "p95 ms"), ("last", "last event"), ("size", "size"), ("mode", "mode"), ("lineage", "lineage"),
]
SORTS = ["tview", "rows", "size", "rate", "p95"]


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class TviewsScreen(BaseScreen):
    SCOPE = "tviews"
    BINDINGS = bindings("tviews")

    def __init__(self) -> None:
        super().__init__()
        self.filter_text = ""
        self.sort_key = "tview"
        self.rows_by_key: dict[str, TviewInfo] = {}
        self.cells_by_key: dict[str, dict[str, str]] = {}

    def compose_body(self) -> Iterator[Widget]:
        yield Label("", id="list-info")
        table: PlainTable[str] = PlainTable(cursor_type="row", zebra_stripes=True, id="tviews")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table

    def on_mount(self) -> None:
        self.watch(self.app, "tviews", self._tviews_changed, init=True)
        self.set_interval(1.0, self._update_stats)

    @property
    def table(self) -> DataTable:
        return self.query_one("#tviews", DataTable)

    def _cells(self, info: TviewInfo) -> dict[str, str]:
        stats = self.tapp.stats.get(info.event_name)
        last = stats.last.ts.astimezone().strftime("%H:%M:%S") if stats and stats.last else "-"
        return {
            "tview": info.label,
            "rows": "?" if info.rows is None else (f"{info.rows:,}" if info.rows_exact else f"~{info.rows:,}"),
            "size": human_bytes(info.bytes),
            "mode": info.mode,
            "lineage": info.lineage,
            "last": last,
            "rate": f"{stats.per_minute:.0f}" if stats else "0",
            "p50": fmt_ms(stats.p50 if stats else None),
            "p95": fmt_ms(stats.p95 if stats else None),
            "health": self.tapp.health_of(info.label),
        }

    def _sort_value(self, info: TviewInfo):
        stats = self.tapp.stats.get(info.event_name)
        return {
            "tview": info.label,
            "rows": -(info.rows or 0),
            "size": -info.bytes,
            "rate": -(stats.per_minute if stats else 0),
            "p95": -((stats.p95 or 0) if stats else 0),
        }[self.sort_key]

    def _update_table(self, items: list[TviewInfo]) -> None:
        """Update rows in place, touching only cells that changed; the cursor stays on its TVIEW."""
        table = self.table
        selected = self.selected
        wanted = [i for i in items if self.filter_text.lower() in i.label.lower()]
        wanted.sort(key=self._sort_value)
        wanted_keys = [i.label for i in wanted]
        for key in [k for k in self.rows_by_key if k not in set(wanted_keys)]:
            table.remove_row(key)
            del self.rows_by_key[key]
            del self.cells_by_key[key]
        widest: dict[str, tuple[int, str, str]] = {}    # column -> width, row and text of its widest new cell
        for info in wanted:
            cells = self._cells(info)
            shown = self.cells_by_key.get(info.label)
            if shown is None:
                table.add_row(*(cells[key] for key, _ in COLUMNS), key=info.label)
            else:
                for column, value in cells.items():
                    if shown[column] != value:
                        table.update_cell(info.label, column, value)
                        width = cell_len(value)
                        if width > widest.get(column, (-1, "", ""))[0]:
                            widest[column] = (width, info.label, value)
            self.rows_by_key[info.label] = info
            self.cells_by_key[info.label] = cells
        # The table fits a column to a changed cell, measuring the whole column when the cell got
        # narrower: done for every changed cell, that was rows x rows measures per column. The
        # widest changed cell alone gives the same width (it is the new widest, or the column is
        # measured once).
        for column, (_, row, value) in widest.items():
            table.update_cell(row, column, value, update_width=True)
        current = [str(row.key.value) for row in table.ordered_rows]
        if current != wanted_keys:
            order = {key: n for n, key in enumerate(wanted_keys)}
            table.sort("tview", key=lambda name: order.get(str(name), 0))
            if selected in order:
                table.move_cursor(row=order[selected], animate=False)
        plural = "TVIEW" if len(items) == 1 else "TVIEWs"
        shown_count = f"{len(wanted)} of {len(items)} {plural}" if self.filter_text else f"{len(items)} {plural}"
        if not items:
            status = self.tapp.engine_status
            shown_count = ("no engine in this database: 4 then i installs it" if status and not status.installed
                           else "0 TVIEWs: create one with SELECT tview.create('name', $$ SELECT pk_x, ... AS data"
                                " FROM tb_x $$) (docs/engine.md)")
        filt = (f" · filter: '{escape(self.filter_text)}' (/ then enter on empty text to clear)"
                if self.filter_text else "")
        self.query_one("#list-info", Label).update(f"{shown_count} · sorted by {self.sort_key}{filt}")

    def _tviews_changed(self, items: list[TviewInfo]) -> None:
        if self.is_current or not self.rows_by_key:
            self._update_table(items)

    def on_screen_resume(self) -> None:
        self._update_table(list(self.tapp.tviews))

    def _update_stats(self) -> None:
        if self.is_current:          # screens of other modes stay mounted: do not work for nothing
            self._update_table(list(self.tapp.tviews))

    @property
    def selected(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        except Exception:  # noqa: BLE001 - an empty or shrinking table has no cursor row
            return None

    def selected_info(self) -> TviewInfo | None:
        key = self.selected
        return self.rows_by_key.get(key) if key else None

    # -- actions ----------------------------------------------------------------------
    def action_open_detail(self) -> None:
        info = self.selected_info()
        if info is not None:
            from .detail import DetailScreen

            self.app.push_screen(DetailScreen(info))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_detail()

    def action_filter(self) -> None:
        def apply(text: str | None) -> None:
            if text is not None:
                self.filter_text = text.strip()
                self._update_table(list(self.tapp.tviews))

        self.app.push_screen(PromptScreen("Show TVIEWs whose name contains:", "text (empty: all)",
                                          self.filter_text), apply)

    def action_describe(self) -> None:
        """The selected row whole: every column, and the last refresh of this TVIEW made here."""
        info = self.selected_info()
        if info is None:
            return
        cells = self._cells(info)
        text = Text("\n".join(f"{label:<11}{cells[key]}" for key, label in COLUMNS))
        last = refresh_actions.last_refresh_text(self, info.label)
        text.append("\n\nlast refresh made here: ")
        if last is None:
            text.append("none (r or k refreshes it)")
        else:
            text.append("\n")
            text.append_text(last)
        self.app.push_screen(TextScreen(info.label, text))

    def action_cycle_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self._update_table(list(self.tapp.tviews))

    def action_refresh_whole(self) -> None:
        refresh_actions.refresh_whole(self, self.selected_info())

    def action_refresh_keys(self) -> None:
        refresh_actions.refresh_keys(self, self.selected_info())
