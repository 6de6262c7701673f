"""On-call diagnostics: the engine's health findings plus the installed-version check, and
their fixes. Used by `tview-tui check` (exit code for monitoring) and the app's screen.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass

import psycopg
from psycopg import sql

from . import installer
from .connection import Target, TviewError, connect

SEVERITY_RANK = {"error": 2, "warning": 1, "info": 0}
CHECK_TIMEOUT_MS = 30_000     # the whole health() call; drift checks use their own time budget


@dataclass(frozen=True)
class Finding:
    check_name: str
    severity: str          # error | warning | info
    tview: str | None
    detail: str
    fix: str | None
    fix_sql: str | None    # a statement that fixes it, when one can

    def line(self) -> str:
        where = f" {self.tview}:" if self.tview else ""
        advice = f" — fix: {self.fix}" if self.fix else ""
        return f"[{self.severity}] {self.check_name}{where} {self.detail}{advice}"


def can_fix(finding: Finding) -> bool:
    return finding.fix_sql is not None


def run_checks(conn: psycopg.Connection, deep: bool = False, time_budget_ms: int = 2000) -> list[Finding]:
    """Every finding, most severe first. A database without the engine is one finding."""
    status = installer.status(conn)
    findings: list[Finding] = []
    if status.installed is None:
        return [Finding("engine_missing", "error", None, "the TVIEW engine is not installed in this database",
                        "install it with `tview-tui install`", None)]
    if status.state == "upgrade available":
        findings.append(Finding("engine_outdated", "warning", None,
                                f"engine {status.installed} is installed; this tool bundles {status.bundled}",
                                "upgrade it with `tview-tui upgrade`", None))
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(CHECK_TIMEOUT_MS + time_budget_ms)))
        try:
            rows = conn.execute("SELECT * FROM tview.health(%s, %s)", (deep, time_budget_ms)).fetchall()
        except psycopg.errors.UndefinedFunction:
            rows = []
            findings.append(Finding("engine_outdated", "warning", None, "this engine version has no health checks",
                                    "upgrade it with `tview-tui upgrade`", None))
    findings.extend(Finding(*row) for row in rows)
    return sorted(findings, key=lambda f: (-SEVERITY_RANK.get(f.severity, 0), f.check_name, f.tview or ""))


def apply_fix(conn: psycopg.Connection, finding: Finding) -> str:
    """Run a finding's fix in its own transaction; return a one-line result."""
    if finding.fix_sql is None:
        raise TviewError(f"no automatic fix for {finding.check_name}", hint=finding.fix)
    with conn.transaction():
        cursor = conn.execute(finding.fix_sql)
        row = cursor.fetchone() if cursor.description else None
    outcome = f": {row[0]}" if row and row[0] is not None else ""
    return f"fixed {finding.check_name}{' on ' + finding.tview if finding.tview else ''} ({finding.fix_sql}){outcome}"


def exit_code(findings: list[Finding]) -> int:
    """0 healthy (info only), 1 warnings, 2 errors: usable from monitoring."""
    return max((SEVERITY_RANK.get(f.severity, 0) for f in findings), default=0)


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="health checks for monitoring: exit 0 healthy, 1 warnings, 2 errors")
    p.add_argument("dsn", nargs="?", default="", help="connection string (default: PG* env)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--deep", action="store_true", help="verify every row of every TVIEW (slower)")
    p.add_argument("--budget-ms", type=int, default=2000, help="time budget of the drift checks")
    p.add_argument("--fix", action="store_true", help="apply the fixes that can be applied (asks first)")
    p.add_argument("--yes", action="store_true", help="with --fix: do not ask")


def run(args: argparse.Namespace) -> int:
    with connect(Target(args.dsn)) as conn:
        findings = run_checks(conn, deep=args.deep, time_budget_ms=args.budget_ms)
        if args.json:
            print(json.dumps([asdict(f) for f in findings]))
        else:
            for finding in findings:
                print(finding.line())
            print("healthy" if not findings else
                  f"{sum(f.severity == 'error' for f in findings)} error(s), "
                  f"{sum(f.severity == 'warning' for f in findings)} warning(s), "
                  f"{sum(f.severity == 'info' for f in findings)} info")
        if args.fix:
            fixable = [f for f in findings if can_fix(f)]
            for finding in fixable:
                if not args.yes:
                    answer = input(f"apply: {finding.fix_sql}  [y/N] ").strip().lower()
                    if answer != "y":
                        continue
                print(apply_fix(conn, finding), file=sys.stderr)
            if fixable:
                findings = run_checks(conn, deep=args.deep, time_budget_ms=args.budget_ms)
    return exit_code(findings)
