"""On-call diagnostics: the engine's health findings, the installed-version check, and fixes.

``run_checks`` is what the app's diagnostics screen and list use; ``print_report``,
``fix_findings`` and ``exit_code`` (0 healthy or info only, 1 warnings, 2 errors, for
monitoring) are the ``tview-tui check`` subcommand's. Every SQL statement of the
diagnostics is in this module.

Automatic fixes are built here, with the TVIEW name bound as a parameter: the ``fix`` text
a finding carries is shown to people, never executed.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, replace
from typing import TextIO

import psycopg

from . import installer
from .connection import TviewError, error_from_db, first_line, one

SEVERITY_RANK = {"error": 2, "warning": 1, "info": 0}
SEVERITY_TITLES = {"error": "errors", "warning": "warnings", "info": "info"}
DEFAULT_BUDGET_MS = 2_000          # sampled drift: the app runs this in the background
DEEP_BUDGET_MS = 60_000            # every row of every TVIEW
GRACE_MS = 500                     # statement_timeout = budget + grace: a verification in
                                   # progress at the end of the budget gets this long to finish

PRIVILEGE_FIX = "run the check as a role that can use the tview schema (e.g. the engine's owner)"

HEALTH = "SELECT check_name, severity, tview, detail, fix FROM tview.health(%s, %s)"
SET_STATEMENT_TIMEOUT = "SELECT set_config('statement_timeout', %s, true)"

# The steps of each automatic fix, in the order they run; %s is the finding's TVIEW.
REFRESH = "SELECT tview.refresh(%s)"
REPAIR_TRIGGERS = "SELECT tview.repair_triggers(%s)"
CLEAN_QUEUE = "SELECT tview.clean_queue()"
RELINK = "SELECT tview.relink()"
ADOPT = "SELECT tview.adopt()"
FIX_STEPS = {
    "catalog_moved": (RELINK,),     # a restored database: find the TVIEWs again by name
    "restored_tview": (ADOPT,),     # one schema restored without the catalog: register its TVIEWs again
    # writes made while a trigger was missing or off never reached the TVIEW: refresh it too
    "missing_trigger": (REPAIR_TRIGGERS, REFRESH),
    "foreign_trigger": (REPAIR_TRIGGERS, REFRESH),
    "disabled_trigger": (REPAIR_TRIGGERS, REFRESH),
    "deferred_backlog": (CLEAN_QUEUE,),
    "drift": (REFRESH,),
}


@dataclass(frozen=True)
class Finding:
    check_name: str
    severity: str          # error | warning | info
    tview: str | None      # 'schema.tv_name', several joined by ', ', or None (the database)
    detail: str
    fix: str | None        # the statement that fixes it, or what to do

    def as_dict(self) -> dict:
        return dict(asdict(self), fixable=can_fix(self))


def can_fix(finding: Finding) -> bool:
    """True when `apply_fix` can fix it (the others say what to do in `fix`)."""
    steps = FIX_STEPS.get(finding.check_name)
    if steps is None:
        return False
    needs_tview = any("%s" in step for step in steps)
    return not needs_tview or bool(finding.tview and ", " not in finding.tview)


def _fix_steps(finding: Finding) -> list[tuple[str, tuple]]:
    return [(step, (finding.tview,) if "%s" in step else ()) for step in FIX_STEPS[finding.check_name]]


def _step_text(step: str, params: tuple) -> str:
    """The step as SQL, for people (it runs with the parameter bound)."""
    return step % tuple("'" + p.replace("'", "''") + "'" for p in params)


def _step_result(step: str, params: tuple, value) -> str:
    if step == REFRESH:
        return f"refreshed {params[0]} ({value} row(s) written)"
    return str(value)


def apply_fix(conn: psycopg.Connection, finding: Finding, done: set | None = None) -> str:
    """Run a finding's fix in one transaction; return its result line.

    Steps already in `done` (from earlier fixes of the same run) are not repeated."""
    if not can_fix(finding):
        raise TviewError(f"no automatic fix for {finding.check_name}", hint=finding.fix)
    results = []
    try:
        with conn.transaction():
            for step, params in _fix_steps(finding):
                if done is not None and (step, params) in done:
                    results.append(f"{_step_text(step, params)} already ran")
                    continue
                value = one(conn.execute(step, params))[0]
                results.append(_step_result(step, params, value))
    except psycopg.Error as exc:
        raise error_from_db(exc, f"fixing {finding.check_name} failed") from None
    if done is not None:
        done.update(_fix_steps(finding))
    where = f" {finding.tview}" if finding.tview else ""
    return f"fixed {finding.check_name}{where}: {'; '.join(results)}"


def _skipped(check_name: str, why: str, exc: psycopg.Error, fix: str) -> Finding:
    """An info finding for a check that could not run: why is 'privilege' or 'timeout'."""
    message = exc.diag.message_primary or first_line(exc)
    return Finding(check_name, "info", None, f"skipped ({why}): {message}", fix)


def _version_findings(conn: psycopg.Connection) -> list[Finding] | None:
    """The installed engine against the bundled one; None when the engine is not installed."""
    try:
        status = installer.status(conn)
    except psycopg.errors.InsufficientPrivilege as exc:
        return [_skipped("engine_version", "privilege", exc, PRIVILEGE_FIX)]
    if status.installed is None:
        return None
    if status.state == "upgrade available":
        return [Finding("engine_outdated", "warning", None,
                        f"engine {status.installed} is installed; this tool bundles {status.bundled}",
                        "tview-tui upgrade [DSN]")]
    if status.state == "newer than this tool":
        return [Finding("engine_newer", "info", None,
                        f"engine {status.installed} is newer than this tool's {status.bundled}",
                        "upgrade tview-tui")]
    return []


def _health(conn: psycopg.Connection, deep: bool, budget_ms: int) -> list[Finding]:
    try:
        with conn.transaction():
            conn.execute(SET_STATEMENT_TIMEOUT, (f"{budget_ms + GRACE_MS}ms",))
            rows = conn.execute(HEALTH, (deep, budget_ms)).fetchall()
    except psycopg.errors.UndefinedFunction:
        return [Finding("engine_outdated", "warning", None, "the installed engine has no health checks",
                        "tview-tui upgrade [DSN]")]
    except psycopg.errors.QueryCanceled as exc:
        return [_skipped("health", "timeout", exc, "run the check again with a larger --budget-ms")]
    except psycopg.errors.InsufficientPrivilege as exc:
        return [_skipped("health", "privilege", exc, PRIVILEGE_FIX)]
    return [Finding(*row) for row in rows]


def run_checks(conn: psycopg.Connection, deep: bool = False,
               time_budget_ms: int | None = None) -> list[Finding]:
    """Every finding, errors first (in check order within a severity).

    A database without the engine is one error finding."""
    found = _version_findings(conn)
    if found is None:
        return [Finding("engine_missing", "error", None, "the TVIEW engine is not installed in this database",
                        "tview-tui install [DSN]")]
    budget = time_budget_ms if time_budget_ms is not None else (DEEP_BUDGET_MS if deep else DEFAULT_BUDGET_MS)
    found += [_with_plan_hint(f) for f in _health(conn, deep, max(budget, 0))]
    return sorted(found, key=lambda f: -SEVERITY_RANK.get(f.severity, 0))


def _with_plan_hint(finding: Finding) -> Finding:
    """A slow TVIEW's fix points to the plan of its keyed refresh, where a full scan shows."""
    if finding.check_name != "slow_tview" or not finding.tview:
        return finding
    hint = (f"see where the time goes: tview-tui explain {finding.tview} [--analyze]"
            " (or e on its detail screen)")
    return replace(finding, fix=f"{finding.fix}; {hint}" if finding.fix else hint)


def exit_code(findings: list[Finding]) -> int:
    """0 healthy (info only), 1 warnings, 2 errors: usable from monitoring."""
    return max((SEVERITY_RANK.get(f.severity, 0) for f in findings), default=0)


def summary(findings: list[Finding]) -> str:
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITY_RANK}
    if not counts["error"] and not counts["warning"]:
        return "healthy" + (f" ({counts['info']} info)" if counts["info"] else ": no findings")
    return f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info"


def print_report(findings: list[Finding], out: TextIO) -> None:
    """Findings grouped by severity, most severe first, each with its fix."""
    for severity, title in SEVERITY_TITLES.items():
        group = [f for f in findings if f.severity == severity]
        if not group:
            continue
        print(f"{title} ({len(group)}):", file=out)
        for f in group:
            print(f"  {f.check_name}{'  ' + f.tview if f.tview else ''}", file=out)
            print(f"    {f.detail}", file=out)
            if f.fix:
                print(f"    fix: {f.fix}{'  [--fix]' if can_fix(f) else ''}", file=out)
    print(summary(findings), file=out)


def _confirm(question: str, out: TextIO) -> bool:
    print(f"{question} [y/N] ", end="", file=out, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def fix_findings(conn: psycopg.Connection, findings: list[Finding], *, ask: bool, out: TextIO) -> int:
    """Apply every automatic fix, asking first if `ask`; print a result line each; return how many ran."""
    order = list(FIX_STEPS)
    fixable = sorted((f for f in findings if can_fix(f)), key=lambda f: order.index(f.check_name))
    done: set = set()
    applied = 0
    for finding in fixable:
        where = f" {finding.tview}" if finding.tview else ""
        steps = "; ".join(_step_text(step, params) for step, params in _fix_steps(finding))
        if ask and not _confirm(f"fix {finding.check_name}{where}: {steps}?", out):
            print(f"skipped {finding.check_name}{where}", file=out)
            continue
        try:
            print(apply_fix(conn, finding, done), file=out)
            applied += 1
        except TviewError as exc:
            print(f"error: {exc}", file=out)
    return applied
