"""Live tail: recent events, with pause, follow, filter, rate and latency sparklines.

Back-pressure: the event stream's process sends the app only the newest events of each
update (the rest are numbered but not sent), into a bounded buffer; this screen reads it on a
timer and renders at most LINES_PER_TICK rows per tick. What it cannot show in time, what the
stream did not send, or what passed while paused beyond what the buffer holds, is counted and
marked by a gap row in place, instead of making the screen lag behind.

Columns put what a person tails for first (time, refresh time, rows, mode, TVIEW), so a
narrow terminal cuts the keys, not the timings; enter on an event opens its transaction's
cascade trace with every key.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from rich.markup import escape
from rich.text import Text
from textual.containers import Container, Vertical
from textual.widget import Widget
from textual.widgets import Label, Sparkline

from .. import trace
from ..events import Event, Gap, format_rate
from .base import BaseScreen
from .commands import bindings
from .eventlog import EventLog
from .widgets import PromptScreen, TextScreen

TICK = 0.2
LINES_PER_TICK = 200
MAX_LINES = 2000         # lines kept; older ones fall off the front
SPARKLINES = 6
HEADER = f"{'time':<12}  {'ms':>9}  {'rows':>6}  {'mode':<9}  {'TVIEW':<26}  {'source':<18}  {'op':<8}  d  keys"


def trace_text(found: trace.Trace) -> Text:
    """The trace as rich text, the slowest step highlighted and marked ▶."""
    text = Text()
    for n, (line, slow) in enumerate(found.lines()):
        if n:
            text.append("\n")
        style = "bold reverse" if slow else "bold" if n == 0 else ""
        text.append(("▶ " if slow else "  ") + line, style=style)    # a prefix: the wrapping stays put
    return text


def event_line(event: Event) -> str:
    """One line, what a person tails for first: time, refresh time, rows, mode, TVIEW."""
    keys = ",".join(map(str, event.keys[:8]))
    more = len(event.keys) - min(len(event.keys), 8) + event.keys_more
    return (f"{event.ts.astimezone().strftime('%H:%M:%S.%f')[:-3]:<12}  {event.ms:9.3f}  {event.rows:>6}  "
            f"{event.mode:<9}  {event.name:<26}  {event.source or '-':<18}  {event.op:<8}  {event.depth}  "
            f"[{keys}{f',+{more}' if more else ''}]")


def gap_row(text: str) -> tuple[str, str, bool]:
    """A marked row of the log: what was skipped or missed, selectable to read it whole."""
    line = f"-- {text} --"
    return line, line, True


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

    def compose_body(self) -> Iterator[Widget]:
        yield Label("", id="tail-info")
        yield Container(EventLog(HEADER, MAX_LINES, id="tail-log"), Vertical(id="sparklines"), id="tail-body")

    def on_mount(self) -> None:
        self.last_seq = self.tapp.event_seq
        self.set_interval(TICK, self._tick)
        self.set_interval(1.0, self._update_sparklines)
        self._update_info()

    @property
    def event_log(self) -> EventLog:
        return self.query_one("#tail-log", EventLog)

    def _matches(self, event: Event) -> bool:
        if not self.filter_text:
            return True
        text = self.filter_text.lower()
        return any(text in (part or "").lower() for part in (event.name, event.source, event.op))

    def _gap(self, text: str) -> None:
        self.event_log.add([gap_row(text)])

    def _tick(self) -> None:
        app = self.tapp
        now = time.monotonic()
        self.rate_window.append((now, app.event_seq))
        if self.paused:
            self._update_info()
            return
        log = self.event_log
        if self.follow and not log.at_end:
            self.follow = False                              # the user moved up to read: stay there
        fresh = app.events_since(self.last_seq, LINES_PER_TICK)    # only what one tick shows
        if not fresh:
            self._update_info()
            return
        lines: list[tuple[str, Event | str, bool]] = []
        for seq, item in fresh:
            lost = seq - self.last_seq - 1         # before the oldest shown, or not sent by the stream
            self.last_seq = seq
            if lost > 0:
                self.skipped += lost
                lines.append(gap_row(f"{lost} event(s) skipped: too fast to show"))
            if isinstance(item, Gap):
                lines.append(gap_row(item.describe()))
            elif self._matches(item):
                lines.append((event_line(item), item, False))
                self.shown += 1
        log.add(lines)
        if self.follow:
            log.go_end()
        self._update_info()

    def events_per_second(self) -> float:
        if len(self.rate_window) < 2:
            return 0.0
        (t0, s0), (t1, s1) = self.rate_window[0], self.rate_window[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0

    def _update_info(self) -> None:
        state = ("PAUSED (space to resume)" if self.paused else
                 "following" if self.follow else "not following (f to follow)")
        filt = f" · filter '{escape(self.filter_text)}'" if self.filter_text else ""
        self.query_one("#tail-info", Label).update(
            f"{state} · {format_rate(self.events_per_second())} events/s · shown {self.shown} · "
            f"skipped {self.skipped}{filt} · enter: trace of the event's transaction")

    def _update_sparklines(self) -> None:
        """The busiest TVIEWs' timings, in widgets made once and updated in place."""
        panel = self.query_one("#sparklines", Vertical)
        if not panel.children:
            panel.mount_all([Label("no events yet: write to a table that a TVIEW reads", classes="spark-label")]
                            + [w for _ in range(SPARKLINES)
                               for w in (Label("", classes="spark-label"), Sparkline([], classes="spark"))])
        busiest = sorted(list(self.tapp.stats.by_tview.items()), key=lambda kv: -kv[1].per_minute)[:SPARKLINES]
        empty, *pairs = panel.children
        empty.display = not busiest
        for n, (label, spark) in enumerate(zip(pairs[::2], pairs[1::2], strict=True)):
            label.display = spark.display = n < len(busiest)
            if n < len(busiest):
                name, stats = busiest[n]
                assert isinstance(label, Label) and isinstance(spark, Sparkline)
                label.update(f"{escape(name)}  p50 {stats.p50 or 0:.1f} · p95 {stats.p95 or 0:.1f}"
                             f" ms · {stats.per_minute:.0f}/min")
                spark.data = list(stats.recent_us)

    # -- actions ------------------------------------------------------------------------
    def on_event_log_selected(self, message: EventLog.Selected) -> None:
        message.stop()
        self.action_trace()

    def action_trace(self) -> None:
        """The cascade trace of the selected event's transaction, from the events kept."""
        item = self.event_log.selected()
        if item is None:
            return
        if isinstance(item, str):
            self.app.push_screen(TextScreen("Gap", item))
            return
        found = trace.of_transaction(self.tapp.buffered_events(), item.xid, item.pid) or trace.build([item])
        assert found is not None
        self.tapp.light_trace(found)
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
                unseen = max(0, waiting - LINES_PER_TICK)      # counted here, not again as too fast
                self.skipped += unseen
                self.last_seq += unseen
        self._update_info()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self.event_log.go_end()
        self._update_info()

    def action_clear(self) -> None:
        self.event_log.clear()
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
