"""The Textual app: owns the connection, the refresh loop and the event stream (in a process of its own).

Screens never touch the database: they ask the app, which runs the work in a worker and
keeps the results (the TVIEW list, rolling statistics, a bounded buffer of recent events)
for the screens to read.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from textual import work
from textual.app import App, SystemCommand
from textual.keys import format_key
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import get_current_worker

from .. import catalog, diagnostics, eventproc, events, installer, trace
from ..config import Config
from ..connection import Target, TviewError, connect, first_line, in_recovery
from ..demo import DemoWriter
from ..themes import load_themes
from .commands import REGISTRY, RegistryCommands, bindings, for_screen
from .diagnostics import DiagnosticsScreen
from .graph import GraphScreen
from .install import InstallScreen
from .tail import TailScreen
from .tviews import TviewsScreen
from .widgets import HelpScreen, OfferDemoScreen

EVENT_BUFFER = events.EVENT_BUFFER
ENGINE_GONE = (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName, psycopg.errors.UndefinedFunction)
HEALTH_INTERVAL = 30.0  # seconds between background health checks (the list's health column)
class Database:
    """The app's catalog connection, used by one thread worker at a time, reopened on failure."""

    def __init__(self, target: Target):
        self.target = target
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = connect(self.target)
            try:
                return fn(self._conn, *args)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self.close_locked()
                raise TviewError(f"lost the connection: {first_line(exc)}") from None
            finally:
                if self._conn is not None and not self._conn.closed and not self._conn.broken:
                    self._conn.rollback()

    def close_locked(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()


class TviewApp(App):
    TITLE = "tview-tui"
    CSS_PATH = "app.tcss"
    MODES = {
        "tviews": TviewsScreen,
        "tail": TailScreen,
        "diagnostics": DiagnosticsScreen,
        "install": InstallScreen,
        "graph": GraphScreen,
    }
    COMMANDS = App.COMMANDS | {RegistryCommands}
    BINDINGS = bindings("app")

    tviews: reactive[list[catalog.TviewInfo]] = reactive(list, always_update=True)
    status: reactive[str] = reactive("starting")
    connected: reactive[bool] = reactive(False)

    def __init__(self, target: Target | None, *, config: Config | None = None, read_only: bool = False,
                 writer: DemoWriter | None = None, demo_starter: Callable[[], tuple[Target, DemoWriter]] | None = None,
                 theme: str | None = None):
        super().__init__()
        self.target = target
        self.config = config or Config(path=None)
        self.read_only = read_only or bool(target and target.read_only)
        self.writer = writer
        self.demo_starter = demo_starter
        self.preferred_theme = theme or self.config.theme
        self.db: Database | None = None
        self.stats = eventproc.LiveStats()
        self.event_buffer: deque[tuple[int, events.Item]] = deque(maxlen=EVENT_BUFFER)
        self.event_seq = 0          # events and gaps the stream received (numbered from 1)
        self.events_not_sent = 0    # of those, the ones its process did not send (too many to show)
        self.stream: eventproc.EventProcess | None = None
        self.can_write = not self.read_only
        self.standby = False                       # a hot standby: read-only, events from the log
        self.engine_status: installer.Status | None = None
        self.last_reload_error: str | None = None
        self.findings: list[diagnostics.Finding] | None = None    # None: not checked yet
        self.last_trace_nodes: set[str] = set()   # tables and TVIEWs of the last trace opened (lit in the graph)
        # the last refresh of each TVIEW made here, with its cascade trace once its events arrived
        self.refreshes: dict[str, tuple[catalog.RefreshResult, trace.Trace | None]] = {}

    # -- start-up ----------------------------------------------------------------------
    def on_mount(self) -> None:
        themes, problems = load_themes()
        for theme in themes:
            self.register_theme(theme)
        for problem in problems:
            self.notify(problem, severity="warning", timeout=8)
        if self.preferred_theme in self.available_themes:
            self.theme = self.preferred_theme
        else:
            self.notify(f"unknown theme {self.preferred_theme!r}; using the default", severity="warning")
            self.theme = "tview-dark"
        if self.target is None:
            self.push_screen(OfferDemoScreen(), self._offer_demo_answered)
        else:
            self.start()

    def _offer_demo_answered(self, accepted: bool | None) -> None:
        if accepted and self.demo_starter is not None:
            self.status = "starting the demo database..."
            self.start_demo()
        else:
            self.exit(message="No database: pass a DSN or profile, set PG* variables, or run `tview-tui demo`.")

    @work(thread=True, exclusive=True, group="demo")
    def start_demo(self) -> None:
        assert self.demo_starter is not None
        try:
            target, writer = self.demo_starter()
        except TviewError as exc:
            self.call_from_thread(self.exit, message=f"error: {exc}")
            return
        self.target, self.writer = target, writer
        self.call_from_thread(self.start)

    def start(self) -> None:
        assert self.target is not None
        self.db = Database(self.target)
        self.switch_mode("tviews")
        self._show_read_only()
        self.reload()            # the first load starts the health checks (they share its connection)
        self.set_interval(self.config.refresh_interval, self.reload)
        self.set_interval(HEALTH_INTERVAL, self.check_health)
        self.stream_events()

    # -- the refresh loop --------------------------------------------------------------
    @work(thread=True, exclusive=True, group="reload")
    def reload(self) -> None:
        """Load the TVIEW list (and, the first time, the engine status and write rights)."""
        if self.db is None:
            return
        try:
            if self.engine_status is None and self.db.run(in_recovery):
                self.standby = self.read_only = True
                self.can_write = False
                self.call_from_thread(self._show_read_only)
            if self.engine_status is None or not self.engine_status.installed:
                self.engine_status = self.db.run(installer.status)
                if not self.read_only:
                    self.can_write = bool(self.engine_status.installed) and self.db.run(catalog.can_write)
            if not self.engine_status.installed:
                items: list[catalog.TviewInfo] = []
            else:
                try:
                    items = self.db.run(catalog.list_tviews)
                except ENGINE_GONE:          # uninstalled meanwhile (by anyone): say so, list nothing
                    self.engine_status = self.db.run(installer.status)
                    items = []
        except (TviewError, psycopg.Error) as exc:
            message = first_line(exc)
            self.call_from_thread(self._set_disconnected, message)
            return
        self.call_from_thread(self._set_loaded, items)

    @work(thread=True, exclusive=True, group="health")
    def check_health(self) -> None:
        """Cheap health checks in the background, for the list's health column."""
        if self.db is None:
            return
        try:
            findings = self.db.run(diagnostics.run_checks)
        except (TviewError, psycopg.Error):
            return                       # the list shows the connection problem already
        self.call_from_thread(setattr, self, "findings", findings)

    def health_of(self, label: str) -> str:
        """Worst severity of the findings about one TVIEW ('ok' when none, '-' before the first check)."""
        if self.findings is None:
            return "-"
        worst = max((diagnostics.SEVERITY_RANK[f.severity] for f in self.findings
                     if f.tview and label in f.tview.split(", ")), default=None)
        return {None: "ok", 0: "info", 1: "warning", 2: "error"}[worst]

    def light_trace(self, found: trace.Trace) -> None:
        """Light the trace opened last in the graph, whose nodes are named as the graph names them:
        TVIEWs by label (events name them by schema and table), written tables as events do."""
        labels = {info.event_name: info.label for info in self.tviews}
        self.last_trace_nodes = {labels.get(name, name) for name in found.nodes()}

    def tview_labelled(self, label: str) -> catalog.TviewInfo | None:
        """The listed TVIEW of that label (graph nodes and findings name TVIEWs by label)."""
        return next((info for info in self.tviews if info.label == label), None)

    def _show_read_only(self) -> None:
        assert self.target is not None
        self.sub_title = self.target.describe() + (
            "  [standby, read-only]" if self.standby else "  [read-only]" if self.read_only else "")

    def _set_loaded(self, items: list[catalog.TviewInfo]) -> None:
        if self.findings is None and not self.connected:
            self.call_after_refresh(self.check_health)  # after the list is shown: they take turns on one connection
        self.connected = True
        self.last_reload_error = None
        self.tviews = items
        self._show_status()

    def _set_disconnected(self, message: str) -> None:
        self.connected = False
        self.last_reload_error = message
        self.status = f"disconnected: {message} — retrying every {self.config.refresh_interval:g}s"

    def _status_line(self) -> str:
        parts = ["connected" if self.connected else "disconnected"]
        if self.stream is not None:
            parts.append("events: reconnecting" if not self.stream.connected
                         else "events: from the log (standby)" if self.stream.standby else "events: live")
            if self.stream.reconnects:
                parts.append(f"{self.stream.reconnects} reconnect(s)")
        if self.writer is not None:
            parts.append(self.writer.describe())
        if self.read_only or not self.can_write:
            parts.append("standby, read-only" if self.standby else "read-only")
        return " · ".join(parts)

    # -- events ------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="events")
    def stream_events(self) -> None:
        """Receive the event stream's updates from its own process (see eventproc): parsing and
        counting thousands of events a second happen there, so they never delay a key press.
        Applying an update takes a few bulk operations, however many events it stands for."""
        assert self.target is not None
        worker = get_current_worker()
        while not worker.is_cancelled:
            self.stream = stream = eventproc.EventProcess(self.target, self.event_seq)
            shown_state = None
            try:
                while not worker.is_cancelled:
                    update = stream.receive(0.2)
                    if update is not None:
                        self._apply(update)
                        state = (stream.connected, stream.standby, stream.reconnects)
                        if state != shown_state:        # the status line says so now, not at the next reload
                            shown_state = state
                            self.call_from_thread(self._show_status)
            except EOFError:            # it ended unasked (it never should): start another
                if not (stream.stopped or worker.is_cancelled):
                    self.call_from_thread(self.notify_error, "the event stream stopped; restarting it")
                    time.sleep(1)
            finally:
                stream.close()

    def _show_status(self) -> None:
        self.status = self._status_line()

    def _apply(self, update: eventproc.Update) -> None:
        self.event_buffer.extend(update.items)      # one C call: the buffer keeps the newest EVENT_BUFFER
        self.stats.by_tview.update(update.stats)
        self.stats.sources = update.sources
        self.events_not_sent += update.not_sent
        self.event_seq = update.seq

    def events_since(self, seq: int, limit: int = EVENT_BUFFER) -> list[tuple[int, events.Item]]:
        """The newest buffered items after seq, at most ``limit`` of them, oldest first (a copy
        taken from the newest end, in one step: the stream thread keeps appending)."""
        wanted = min(limit, self.event_seq - seq)
        newest = list(itertools.islice(reversed(self.event_buffer), max(0, wanted)))
        return [entry for entry in reversed(newest) if entry[0] > seq]

    def buffered_events(self) -> list[events.Event]:
        """Every event kept in the buffer, oldest first (a copy)."""
        return [i for _, i in list(self.event_buffer) if isinstance(i, events.Event)]

    def recent_events(self, name: str | None = None, limit: int = 50) -> list[events.Event]:
        found = [i for _, i in reversed(list(self.event_buffer))
                 if isinstance(i, events.Event) and (name is None or i.name == name)]
        return found[:limit]

    # -- actions shared by screens ---------------------------------------------------------
    def refuse_if_read_only(self, what: str) -> bool:
        if self.read_only or not self.can_write:
            self.notify(f"read-only: {what} is not allowed here", severity="warning")
            return True
        return False

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Toasts carry names and server errors: plain text unless asked otherwise."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def notify_error(self, message: str) -> None:
        self.notify(message, severity="error", timeout=8)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's own palette commands, minus the ones the registry already offers (Quit)."""
        ours = {c.title for c in REGISTRY}
        return (c for c in super().get_system_commands(screen) if c.title not in ours)

    def action_help(self) -> None:
        scope = getattr(self.screen, "SCOPE", "")
        rows = [(format_key(c.key), c.title, c.help) for c in for_screen(scope, self.read_only)]
        self.push_screen(HelpScreen(rows))

    def action_writer_rate(self, factor: float) -> None:
        if self.writer is None:
            self.notify("no demo writer is running", severity="warning")
            return
        self.writer.set_rate(max(0.5, self.writer.rate * factor))
        self.notify(f"demo writer asked for {events.format_rate(self.writer.rate)} writes/s")
        self._show_status()

    def on_unmount(self) -> None:
        if self.stream is not None:
            self.stream.stop()
        if self.db is not None:
            self.db.close()
