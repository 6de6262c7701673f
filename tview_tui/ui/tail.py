"""Live tail: recent events, with pause, follow, filter, rate and latency sparklines.

Back-pressure: the event stream only appends to the app's bounded buffer; this screen
reads it on a timer and renders at most LINES_PER_TICK lines per tick. What it cannot
show in time is counted as skipped instead of making the screen lag behind.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label, RichLog, Sparkline

from ..events import Event, Gap, format_event
from .base import BaseScreen
from .commands import bindings
from .widgets import PromptScreen

TICK = 0.2
LINES_PER_TICK = 200
MAX_LINES = 2000
SPARKLINES = 6


class TailScreen(BaseScreen):
    SCOPE = "tail"
    BINDINGS = bindings("tail")

    def __init__(self) -> None:
        super().__init__()
        self.last_seq = 0
        self.paused = False
        self.follow = True
        self.filter_text = ""
        self.shown = 0
        self.skipped = 0
        self.rate_window: deque[tuple[float, int]] = deque(maxlen=50)

    def compose_body(self) -> Iterator[Widget]:
        yield Label("", id="tail-info")
        yield Horizontal(RichLog(max_lines=MAX_LINES, wrap=False, markup=False, id="tail-log"),
                         Vertical(id="sparklines"), id="tail-body")

    def on_mount(self) -> None:
        self.last_seq = self.app.event_seq
        self.set_interval(TICK, self._tick)
        self.set_interval(1.0, self._update_sparklines)
        self._update_info()

    def _matches(self, event: Event) -> bool:
        if not self.filter_text:
            return True
        text = self.filter_text.lower()
        return any(text in (part or "").lower() for part in (event.name, event.source, event.op))

    def _tick(self) -> None:
        now = time.monotonic()
        self.rate_window.append((now, self.app.event_seq))
        if self.paused:
            self._update_info()
            return
        fresh = self.app.events_since(self.last_seq)
        if fresh and fresh[0][0] > self.last_seq + 1:
            self.skipped += fresh[0][0] - self.last_seq - 1       # fell out of the buffer unseen
        if fresh:
            self.last_seq = fresh[-1][0]
        if len(fresh) > LINES_PER_TICK:
            self.skipped += len(fresh) - LINES_PER_TICK
            fresh = fresh[-LINES_PER_TICK:]
        log = self.query_one("#tail-log", RichLog)
        for _, item in fresh:
            if isinstance(item, Gap):
                log.write(f"-- {item.describe()} --")
            elif self._matches(item):
                log.write(format_event(item), scroll_end=self.follow)
                self.shown += 1
        self._update_info()

    def events_per_second(self) -> float:
        if len(self.rate_window) < 2:
            return 0.0
        (t0, s0), (t1, s1) = self.rate_window[0], self.rate_window[-1]
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0

    def _update_info(self) -> None:
        state = "PAUSED (space to resume)" if self.paused else ("following" if self.follow else "not following")
        filt = f" · filter '{self.filter_text}'" if self.filter_text else ""
        self.query_one("#tail-info", Label).update(
            f"{state} · {self.events_per_second():.0f} events/s · shown {self.shown} · "
            f"skipped {self.skipped} (too fast to show){filt}")

    def _update_sparklines(self) -> None:
        panel = self.query_one("#sparklines", Vertical)
        busiest = sorted(list(self.app.stats.by_tview.items()), key=lambda kv: -kv[1].per_minute())[:SPARKLINES]
        panel.remove_children()
        widgets = []
        for name, stats in busiest:
            widgets.append(Label(f"{name}  p50 {stats.percentile(50) or 0:.1f} · p95 {stats.percentile(95) or 0:.1f}"
                                 f" ms · {stats.per_minute():.0f}/min", classes="spark-label"))
            widgets.append(Sparkline(list(stats.recent_us)[-60:], classes="spark"))
        if not widgets:
            widgets.append(Label("no events yet: write to a table that a TVIEW reads", classes="spark-label"))
        panel.mount_all(widgets)

    # -- actions ------------------------------------------------------------------------
    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self._update_info()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self.query_one("#tail-log", RichLog).scroll_end(animate=False)
        self._update_info()

    def action_clear(self) -> None:
        self.query_one("#tail-log", RichLog).clear()
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
