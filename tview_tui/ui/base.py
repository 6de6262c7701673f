"""What every full screen shares: the chrome (header, status line, footer), a typed ``app``,
database work in screen-owned workers, and bindings that hide writing commands when the
session is read-only.

Results of a screen's database work come back as messages to that screen: when the screen
is gone (Esc before its data arrived), the message is dropped, and its workers are cancelled
with it, so no result ever reaches widgets that no longer exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import psycopg
from rich.text import Text
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Label

from ..catalog import RefreshResult
from ..connection import TviewError, first_line
from .commands import REGISTRY
from .widgets import StatusBar

if TYPE_CHECKING:
    from .app import TviewApp


class DbResult(Message):
    """The outcome of one database job, for the screen that asked for it."""

    def __init__(self, callback: Callable[[Any], None], value: Any) -> None:
        super().__init__()
        self.callback = callback
        self.value = value


class BaseScreen(Screen):
    SCOPE = ""

    @property
    def tapp(self) -> TviewApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    # -- chrome -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield StatusBar(id="status")
        yield from self.compose_body()
        yield Label("", id="last-action")
        yield Footer()

    def compose_body(self) -> Iterable[Widget]:
        return ()

    def on_mount(self) -> None:
        if self.tapp.read_only:
            self.hide_writing_bindings()

    def hide_writing_bindings(self) -> None:
        """Writing commands leave the footer (their keys still say why they are refused)."""
        writing = {c.key for c in REGISTRY if c.writes and c.scope == self.SCOPE}
        for key, found in self._bindings.key_to_bindings.items():
            if key in writing:
                self._bindings.key_to_bindings[key] = [replace(b, show=False) for b in found]
        self.refresh_bindings()

    def show_result(self, result: RefreshResult, split: dict[str, int] | None = None) -> None:
        """The last refresh's outcome, under the table (split: rows per TVIEW, once known)."""
        self.query_one("#last-action", Label).update(Text(result.describe(split)))

    # -- database work ------------------------------------------------------------------
    def run_db(self, fn: Callable[..., Any], *args: Any, done: Callable[[Any], None],
               failed: Callable[[str], None] | None = None) -> None:
        """Run fn(conn, *args) in a worker owned by this screen; done(result) or failed(message)
        run on the UI thread, only while this screen exists."""
        app = self.tapp
        db = app.db

        def job() -> None:
            if db is None:
                return
            try:
                result = db.run(fn, *args)
            except (TviewError, psycopg.Error) as exc:
                self.post_message(DbResult(failed or app.notify_error, first_line(exc)))
                return
            self.post_message(DbResult(done, result))

        self.run_worker(job, thread=True, group="db", exit_on_error=False)

    def on_db_result(self, message: DbResult) -> None:
        message.stop()
        if self.is_attached:
            message.callback(message.value)
