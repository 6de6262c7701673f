"""Diagnostics: health findings by severity, with one-key fixes."""

from __future__ import annotations

import time
from collections.abc import Iterator

from rich.markup import escape
from rich.text import Text
from textual.widget import Widget
from textual.widgets import DataTable, Label

from .. import diagnostics
from .base import BaseScreen
from .commands import bindings
from .widgets import ConfirmScreen, PlainTable, TextScreen

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def describe(finding: diagnostics.Finding) -> str:
    """The whole finding, for the describe view."""
    how = ("x applies it (asks first)" if diagnostics.can_fix(finding) else
           "not applied automatically: run it yourself, or do what it says")
    return (f"check     {finding.check_name} ({finding.severity})\n"
            f"TVIEW     {finding.tview or '(the database)'}\n\n"
            f"{finding.detail}\n\nfix ({how}):\n{finding.fix or '-'}")


class DiagnosticsScreen(BaseScreen):
    SCOPE = "diagnostics"
    BINDINGS = bindings("diagnostics")

    def __init__(self) -> None:
        super().__init__()
        self.findings: list[diagnostics.Finding] = []
        self.deep = False
        self.started = 0.0

    def compose_body(self) -> Iterator[Widget]:
        yield Label("running checks ...", id="diag-info")
        table: PlainTable[str] = PlainTable(cursor_type="row", zebra_stripes=True, id="findings")
        table.add_columns("severity", "check", "TVIEW", "detail", "fix")
        yield table

    def on_mount(self) -> None:
        self.run_checks(deep=False)

    def scope(self) -> str:
        """What a check covers: a deep one reads every row, a quick one samples."""
        if not self.deep:
            return "quick check (drift sampled; d: deep check of every row)"
        rows = sum(info.rows or 0 for info in self.tapp.tviews)
        return f"deep check: every row of {len(self.tapp.tviews)} TVIEW(s), ~{rows:,} row(s)"

    def run_checks(self, deep: bool) -> None:
        self.deep = deep
        self.started = time.monotonic()
        self.query_one("#diag-info", Label).update(f"running the {self.scope()} ...")
        self.run_db(diagnostics.run_checks, deep, done=self._show)

    def _show(self, findings: list[diagnostics.Finding]) -> None:
        self.findings = sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f.severity, 3), f.check_name))
        table = self.query_one("#findings", DataTable)
        table.clear()
        for finding in self.findings:
            table.add_row(finding.severity, finding.check_name, finding.tview or "-", finding.detail,
                          finding.fix or "-")
        counts = {s: sum(f.severity == s for f in findings) for s in SEVERITY_ORDER}
        took = f"{self.scope()} in {time.monotonic() - self.started:.1f}s"
        self.query_one("#diag-info", Label).update(
            f"{counts['error']} error(s) · {counts['warning']} warning(s) · {counts['info']} info · {took}"
            " · enter: the whole finding" if findings else f"healthy: no findings · {took}")

    def selected(self) -> diagnostics.Finding | None:
        table = self.query_one("#findings", DataTable)
        if not self.findings or table.cursor_row is None or table.cursor_row >= len(self.findings):
            return None
        return self.findings[table.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_describe()

    def action_describe(self) -> None:
        finding = self.selected()
        if finding is not None:
            self.app.push_screen(TextScreen(f"{finding.severity}: {finding.check_name}", describe(finding)))

    def action_rerun(self) -> None:
        self.run_checks(deep=False)

    def action_deep(self) -> None:
        self.run_checks(deep=True)

    def action_fix(self) -> None:
        finding = self.selected()
        if finding is None or self.tapp.refuse_if_read_only("fix"):
            return
        if not diagnostics.can_fix(finding):
            self.app.push_screen(TextScreen(f"No automatic fix for {finding.check_name}: what to do",
                                            describe(finding)))
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_db(diagnostics.apply_fix, finding, done=self._fixed)

        where = escape(finding.tview or "the database")
        self.app.push_screen(ConfirmScreen(f"Apply fix for [b]{finding.check_name}[/b] on {where}?\n"
                                           f"{escape(finding.fix or '')}"), answered)

    def _fixed(self, result: str) -> None:
        self.query_one("#last-action", Label).update(Text(result))
        self.app.notify(result)
        self.run_checks(deep=False)
