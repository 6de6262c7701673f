"""Install / upgrade / uninstall the engine, with confirmation."""

from __future__ import annotations

from collections.abc import Iterator

from textual.widget import Widget
from textual.widgets import Label, Static

from .. import installer
from .base import BaseScreen
from .commands import bindings
from .widgets import ConfirmScreen


def _describe(status: installer.Status) -> str:
    interception = ("on" if status.ddl_interception else
                    "off — needs a superuser at install time; tview.create() works")
    return (f"server            PostgreSQL {status.server_version}\n"
            f"engine installed  {status.installed or '-'}  ([b]{status.state}[/b])\n"
            f"engine bundled    {status.bundled}\n"
            f"DDL interception  {interception}\n"
            f"TVIEWs            {status.tview_count}")


class InstallScreen(BaseScreen):
    SCOPE = "install"
    BINDINGS = bindings("install")

    def compose_body(self) -> Iterator[Widget]:
        yield Static("loading ...", id="install-status")

    def on_mount(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        self.load()                      # the engine may have changed meanwhile, from anywhere

    def load(self) -> None:
        self.run_db(installer.status, done=self._show)

    def _show(self, status: installer.Status) -> None:
        self.status = status
        self.tapp.engine_status = status
        self.query_one("#install-status", Static).update(_describe(status))

    def _result(self, outcome: installer.Outcome) -> None:
        self.query_one("#last-action", Label).update(outcome.describe())
        self.app.notify(outcome.describe())
        self.tapp.engine_status = None        # re-read on the next list refresh
        self.load()
        self.tapp.reload()

    def action_install(self) -> None:
        if self.tapp.refuse_if_read_only("install"):
            return
        status = getattr(self, "status", None)
        verb = "Install" if status is None or status.installed is None else "Upgrade"

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_db(installer.install, done=self._result)

        self.app.push_screen(ConfirmScreen(f"{verb} the engine ({installer.bundled_version()}) in this database?"),
                             answered)

    def action_uninstall(self) -> None:
        if self.tapp.refuse_if_read_only("uninstall"):
            return
        status = getattr(self, "status", None)
        count = status.tview_count if status else 0
        question = ("Uninstall the engine? User tables stay."
                    + (f"\n[b]This also drops {count} TVIEW(s).[/b]" if count else ""))

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_db(lambda conn: installer.uninstall(conn, cascade=True), done=self._result)

        self.app.push_screen(ConfirmScreen(question), answered)
