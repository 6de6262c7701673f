"""Live tail: recent events, with pause, follow, filter, rate and latency sparklines.

Back-pressure: the event stream only appends to the app's bounded buffer; this screen
reads it on a timer and renders at most LINES_PER_TICK rows per tick. What it cannot show
in time, or what passed while paused beyond what the buffer holds, is counted and marked by
a gap row in place, instead of making the screen lag behind.

Columns put what a person tails for first (time, refresh time, rows, mode, TVIEW), so a
narrow terminal cuts the keys, not the timings; enter on an event opens its transaction's
cascade trace with every key.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from rich.text import Text
from textual.containers import Container, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Label, Sparkline

from .. import trace
from ..events import Event, Gap, format_rate
from .base import BaseScreen
from .commands import bindings
from .widgets import PromptScreen, TextScreen

TICK = 0.2
LINES_PER_TICK = 200
MAX_ROWS = 1000          # rows kept in the table; past it, the oldest half goes at once
SPARKLINES = 6
COLUMNS = [("time", 12), ("ms", 9), ("rows", 6), ("mode", 9), ("TVIEW", 26), ("source", 18), ("op", 8),
           ("d", 2), ("keys", 40)]


def trace_text(found: trace.Trace) -> Text:
    """The trace as rich text, the slowest step highlighted."""
    text = Text()
    for n, (line, slow) in enumerate(found.lines()):
        if n:
            text.append("\n")
        style = "bold reverse" if slow else "bold" if n == 0 else ""
        text.append(line + ("   <- slowest" if slow else ""), style=style)
    return text


def event_cells(event: Event) -> tuple[str, ...]:
    keys = ",".join(map(str, event.keys[:8]))
    more = len(event.keys) - min(len(event.keys), 8) + event.keys_more
    return (event.ts.astimezone().strftime("%H:%M:%S.%f")[:-3], f"{event.ms:.3f}", str(event.rows),
            event.mode, event.name, event.source or "-", event.op, str(event.depth),
            keys + (f",+{more}" if more else ""))


class TailScreen(BaseScreen):
    SCOPE = "tail"
    BINDINGS = bindings("tail")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    def __init__(self) -> None:
        super().__init__()
        self.last_seq = 0
        self.paused = False
        self.paused_at = 0.0
        self.follow = True
        self.filter_text = ""
        self.shown = 0
        self.skipped = 0
        self.rate_window: deque[tuple[float, int]] = deque(maxlen=50)
        self.rows: deque[tuple[str, Event | str]] = deque()   # row key -> event (or gap text), oldest first
        self.by_key: dict[str, Event | str] = {}
        self.row_seq = 0

    def compose_body(self) -> Iterator[Widget]:
        yield Label("", id="tail-info")
        table = DataTable(cursor_type="row", id="tail-table")
        for label, width in COLUMNS:
            table.add_column(label, width=width, key=label)
        yield Container(table, Vertical(id="sparklines"), id="tail-body")

    def on_mount(self) -> None:
        self.last_seq = self.tapp.event_seq
        self.set_interval(TICK, self._tick)
        self.set_interval(1.0, self._update_sparklines)
        self._update_info()

    @property
    def table(self) -> DataTable:
        return self.query_one("#tail-table", DataTable)

    def _matches(self, event: Event) -> bool:
        if not self.filter_text:
            return True
        text = self.filter_text.lower()
        return any(text in (part or "").lower() for part in (event.name, event.source, event.op))

    def _add(self, item: Event | str) -> None:
        self.row_seq += 1
        key = str(self.row_seq)
        if isinstance(item, str):
            self.table.add_row("--", "", "", "", item, "", "", "", "", key=key)
        else:
            self.table.add_row(*event_cells(item), key=key)
        self.rows.append((key, item))
        self.by_key[key] = item

    def _gap(self, text: str) -> None:
        self._add(f"-- {text} --")

    def _trim(self) -> None:
        """Keep the newest rows only: clear and refill once in a while, not a row at a time."""
        if len(self.rows) <= MAX_ROWS:
            return
        keep = list(self.rows)[-MAX_ROWS // 2:]
        self.table.clear()
        self.rows.clear()
        self.by_key.clear()
        for _, item in keep:
            self._add(item)

    def _tick(self) -> None:
        app = self.tapp
        now = time.monotonic()
        self.rate_window.append((now, app.event_seq))
        if self.paused:
            self._update_info()
            return
        table = self.table
        if self.follow and table.row_count and table.cursor_row < table.row_count - 1:
            self.follow = False                              # the user moved up to read: stay there
        fresh = app.events_since(self.last_seq)
        if not fresh:
            self._update_info()
            return
        lost = fresh[0][0] - self.last_seq - 1
        if lost > 0:                                         # fell out of the buffer unseen
            self.skipped += lost
            self._gap(f"{lost} event(s) not shown (the tail fell behind or was paused)")
        self.last_seq = fresh[-1][0]
        if len(fresh) > LINES_PER_TICK:
            dropped = len(fresh) - LINES_PER_TICK
            self.skipped += dropped
            self._gap(f"{dropped} event(s) skipped: too fast to show")
            fresh = fresh[-LINES_PER_TICK:]
        for _, item in fresh:
            if isinstance(item, Gap):
                self._gap(item.describe())
            elif self._matches(item):
                self._add(item)
                self.shown += 1
        self._trim()
        if self.follow:
            table.move_cursor(row=table.row_count - 1, animate=False)
        self._update_info()

    def events_per_second(self) -> float:
        if len(self.rate_window) < 2:
            return 0.0
        (t0, s0), (t1, s1) = self.rate_window[0], self.rate_window[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0

    def _update_info(self) -> None:
        state = ("PAUSED (space to resume)" if self.paused else
                 "following" if self.follow else "not following (f to follow)")
        filt = f" · filter '{self.filter_text}'" if self.filter_text else ""
        self.query_one("#tail-info", Label).update(
            f"{state} · {format_rate(self.events_per_second())} events/s · shown {self.shown} · "
            f"skipped {self.skipped}{filt} · enter: trace of the event's transaction")

    def _update_sparklines(self) -> None:
        panel = self.query_one("#sparklines", Vertical)
        busiest = sorted(list(self.tapp.stats.by_tview.items()), key=lambda kv: -kv[1].per_minute())[:SPARKLINES]
        panel.remove_children()
        widgets: list[Widget] = []
        for name, stats in busiest:
            widgets.append(Label(f"{name}  p50 {stats.percentile(50) or 0:.1f} · p95 {stats.percentile(95) or 0:.1f}"
                                 f" ms · {stats.per_minute():.0f}/min", classes="spark-label"))
            widgets.append(Sparkline(list(stats.recent_us)[-60:], classes="spark"))
        if not widgets:
            widgets.append(Label("no events yet: write to a table that a TVIEW reads", classes="spark-label"))
        panel.mount_all(widgets)

    # -- actions ------------------------------------------------------------------------
    def selected_item(self) -> Event | str | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - an empty or refilled table has no cursor row
            return None
        return self.by_key.get(str(key))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_trace()

    def action_trace(self) -> None:
        """The cascade trace of the selected event's transaction, from the events kept."""
        item = self.selected_item()
        if item is None:
            return
        if isinstance(item, str):
            self.app.push_screen(TextScreen("Gap", item))
            return
        found = trace.of_transaction(self.tapp.buffered_events(), item.xid, item.pid) or trace.build([item])
        assert found is not None
        self.tapp.last_trace_nodes = found.nodes()
        self.app.push_screen(TextScreen("Cascade trace (enter on an event; the slowest step is marked)",
                                        trace_text(found)))

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        if self.paused:
            self.paused_at = time.monotonic()
        else:
            waiting = self.tapp.event_seq - self.last_seq
            if waiting:
                self._gap(f"paused {time.monotonic() - self.paused_at:.0f}s: {waiting} event(s) arrived meanwhile,"
                          " the newest follow")
        self._update_info()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow and self.table.row_count:
            self.table.move_cursor(row=self.table.row_count - 1, animate=False)
        self._update_info()

    def action_clear(self) -> None:
        self.table.clear()
        self.rows.clear()
        self.by_key.clear()
        self.shown = 0
        self.skipped = 0
        self._update_info()

    def action_filter(self) -> None:
        def apply(text: str | None) -> None:
            if text is not None:
                self.filter_text = text.strip()
                self._update_info()

        self.app.push_screen(PromptScreen("Show events whose TVIEW, source or op contains:", "text (empty: all)",
                                          self.filter_text), apply)
