"""Diagnostics: health findings by severity, with one-key fixes."""

from __future__ import annotations

from collections.abc import Iterator

from textual.widget import Widget
from textual.widgets import DataTable, Label

from .. import diagnostics
from .base import BaseScreen
from .commands import bindings
from .widgets import ConfirmScreen

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


class DiagnosticsScreen(BaseScreen):
    SCOPE = "diagnostics"
    BINDINGS = bindings("diagnostics")

    def __init__(self) -> None:
        super().__init__()
        self.findings: list[diagnostics.Finding] = []

    def compose_body(self) -> Iterator[Widget]:
        yield Label("running checks ...", id="diag-info")
        table = DataTable(cursor_type="row", zebra_stripes=True, id="findings")
        table.add_columns("severity", "check", "TVIEW", "detail", "fix")
        yield table

    def on_mount(self) -> None:
        self.run_checks(deep=False)

    def run_checks(self, deep: bool) -> None:
        self.query_one("#diag-info", Label).update("running deep checks ..." if deep else "running checks ...")
        self.run_db(diagnostics.run_checks, deep, done=self._show)

    def _show(self, findings: list[diagnostics.Finding]) -> None:
        self.findings = sorted(findings, key=lambda f: (SEVERITY_ORDER.get(f.severity, 3), f.check_name))
        table = self.query_one("#findings", DataTable)
        table.clear()
        for finding in self.findings:
            table.add_row(finding.severity, finding.check_name, finding.tview or "-", finding.detail,
                          finding.fix or "-")
        counts = {s: sum(f.severity == s for f in findings) for s in SEVERITY_ORDER}
        self.query_one("#diag-info", Label).update(
            f"{counts['error']} error(s) · {counts['warning']} warning(s) · {counts['info']} info"
            if findings else "healthy: no findings")

    def selected(self) -> diagnostics.Finding | None:
        table = self.query_one("#findings", DataTable)
        if not self.findings or table.cursor_row is None or table.cursor_row >= len(self.findings):
            return None
        return self.findings[table.cursor_row]

    def action_rerun(self) -> None:
        self.run_checks(deep=False)

    def action_deep(self) -> None:
        self.run_checks(deep=True)

    def action_fix(self) -> None:
        finding = self.selected()
        if finding is None or self.app.refuse_if_read_only("fix"):
            return
        if not diagnostics.can_fix(finding):
            self.app.notify("no automatic fix for this finding; see its fix column", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_db(diagnostics.apply_fix, finding, done=self._fixed)

        self.app.push_screen(ConfirmScreen(f"Apply fix for [b]{finding.check_name}[/b]"
                                           f" on {finding.tview or 'the database'}?\n{finding.fix}"), answered)

    def _fixed(self, result: str) -> None:
        self.query_one("#last-action", Label).update(result)
        self.app.notify(result)
        self.run_checks(deep=False)
