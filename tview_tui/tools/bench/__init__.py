"""`tview-tui bench`: measure the engine against what users would otherwise do.

Every workload is built in its own schemas of a fresh database (on a temporary embedded
server by default), one schema per *variant* of the same tables and rows:

* ``bare``      the write tables only: the floor any maintenance is compared with;
* ``composed``  TVIEWs user, comment (embeds its author) and post (embeds its author and the
                ordered array of its comments' documents): what smart patching is for;
* ``flat``      one TVIEW post whose definition reads the base tables only;
* ``hand``      the same single definition kept by a hand-written statement trigger
                (what users write today without the engine);
* ``mv``        the same single definition as a materialized view.

Because the variants use the same table names in different schemas, an arm is "a schema,
some settings, and the SQL to time", and the SQL text is identical across the arms it is
compared between. Arms run alternately (A1 B1 C1 A2 B2 C2 ...) so that drift of the
machine (caches, autovacuum, other load) spreads over all of them. Every timed operation
runs in its own transaction, with its settings set in it (the engine's with ALTER DATABASE, the
only place it reads them from), and is rolled back (or, when
the commit itself is what is measured, committed and then reverted) so that each run
starts from the same data. Timing is time.perf_counter around the client calls.

Each variant commits one change and its undo after it is built (the engine creates some
per-TVIEW functions lazily, at the first write), so runs measure the steady state of a
database in use. Before the timed runs each arm runs once untimed as a check: inside that
transaction the engine's event log says how each TVIEW was maintained (recompute, patch,
...) and tview.verify() says whether the written state is right; then a few untimed runs
let PostgreSQL's plan caches settle. After the runs the
oracle is checked again on the committed state. Nothing is ever estimated: an arm the
engine cannot run (smart patching before it exists) is reported as such, with no number.

Data shape (deterministic, no random()): users 1..U/2 write the comments, users U/2+1..U
the posts (so renaming a poster touches exactly the documents that embed them as author);
comments are spread evenly over posts; the large cascade gives one author its own block of
posts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from ... import scratch
from ...connection import TviewError
from .report import engine_drift, print_header, render_plan, results_json, summary_lines
from .runner import connect, engine_features, run_plan
from .workloads import DEFAULT_WORKLOADS, PLANS, WORKLOADS, Options, Plan


def chosen_workloads(args: argparse.Namespace, say: Callable[[str], None]) -> list[str]:
    """The workloads to run, in their canonical order; scale_m needs to be asked for (and scale >= 1)."""
    names = [w for w in WORKLOADS if w in (args.workload or DEFAULT_WORKLOADS)]
    if "scale_m" in names and args.scale < 1 and not args.quick:
        say("scale_m: skipped (it needs --scale >= 1; use --quick for a tiny smoke run)")
        names.remove("scale_m")
    return names


def run(args: argparse.Namespace) -> int:
    """The `bench` subcommand: 0 when every workload ran and every oracle is 0, else 1."""
    def progress(text: str) -> None:
        print(f"[bench] {text}", file=sys.stderr, flush=True)

    if args.repeat < 1 or args.scale <= 0:
        raise TviewError("--repeat must be >= 1 and --scale > 0")
    names = chosen_workloads(args, print)
    plans: dict[str, Plan] = {}
    with (scratch.server(args.dsn, progress) as admin, scratch.database(admin, progress) as dsn,
          connect(dsn) as conn):
        patching, event_log, engine, server = engine_features(conn)
        opts = Options(args.scale, args.repeat, args.quick,
                       args.seconds if args.seconds is not None else (0.5 if args.quick else 10.0),
                       patching, event_log)
        print_header(args, server, engine, patching)
        for name in names:
            plan = PLANS[name](opts)
            run_plan(conn, dsn, plan, opts, progress)
            plans[name] = plan
            print(render_plan(plan) + "\n", flush=True)
    summary = summary_lines(plans)
    print("summary (targets: engine vs. the alternatives):")
    for line in summary:
        print(f"  {line}")
    if args.json:
        meta = {"server": server, "engine": engine, "scale": args.scale, "repeat": args.repeat,
                "quick": args.quick, "patching": patching}
        args.json.write_text(json.dumps(results_json(plans, meta, summary), indent=2, default=str))
    failed = any(p.error or any(a.error for a in p.arms) for p in plans.values())
    return 1 if engine_drift(plans) or failed else 0
