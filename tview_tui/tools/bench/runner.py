"""Running the bench's workloads: build the variant schemas, time the arms alternately, measure
throughput with concurrent clients, check the oracle, and drop everything again."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg
from psycopg import sql

from ... import connection
from ...connection import Target, error_from_db, one
from .workloads import (
    COMMENT_DEF,
    FLAT_POST_DEF,
    HAND_KEYS,
    HAND_SETUP_SQL,
    HAND_TRIGGER_SQL,
    POST_DEF,
    TABLES_SQL,
    USER_DEF,
    Arm,
    Options,
    Plan,
    Sizes,
    Throughput,
    fill_sql,
    rename_user,
    restore_user,
)

WARM_UP_RUNS, WARM_UP_SECONDS = 5, 1.0


def connect(dsn: str) -> psycopg.Connection:
    """A benchmark connection: explicit transactions, no client-side statement preparation
    (so the first and the later runs of an arm are executed the same way)."""
    return connection.connect(Target(dsn, application_name="tview-tui bench"), prepare=False)


# -- building --------------------------------------------------------------------------------

def set_search_path(conn: psycopg.Connection, schema: str | None, local: bool) -> None:
    """Point unqualified names (tables, tview.create names) at one variant schema."""
    value = sql.Identifier(schema).as_string(conn) if schema else '"$user", public'
    conn.execute("SELECT set_config('search_path', %s, %s)", (value, local))


def build_variant(conn: psycopg.Connection, schema: str, variant: str, sizes: Sizes) -> None:
    """Create one schema with the tables, the rows and the variant's way of keeping posts."""
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    set_search_path(conn, schema, local=False)
    try:
        conn.execute(TABLES_SQL)
        for statement in fill_sql(sizes):
            conn.execute(statement)
        if variant == "composed":
            for name, definition in (("user", USER_DEF), ("comment", COMMENT_DEF), ("post", POST_DEF)):
                conn.execute("SELECT tview.create(%s, %s)", (name, definition))
        elif variant == "flat":
            conn.execute("SELECT tview.create('post', %s)", (FLAT_POST_DEF,))
        elif variant == "hand":
            conn.execute(HAND_SETUP_SQL)
            for table, keys in HAND_KEYS.items():
                conn.execute(HAND_TRIGGER_SQL.format(table=table, new=keys.format(rows="new_rows"),
                                                     old=keys.format(rows="old_rows")))
        elif variant == "mv":
            conn.execute(f"CREATE MATERIALIZED VIEW mv_post AS {FLAT_POST_DEF}")
        conn.commit()
        settle(conn)
    finally:
        conn.rollback()
        set_search_path(conn, None, local=False)
        conn.commit()
    vacuum_schema(conn, schema)


def settle(conn: psycopg.Connection) -> None:
    """Commit one real change and its undo, as any database has seen after its first writes.

    The engine creates some of its per-TVIEW functions lazily, in the first transaction
    that needs them; the timed runs are rolled back, so without this every run would pay
    for that creation again and measure a state no production database is in."""
    for statement in (rename_user(1), restore_user(1)):
        conn.execute(statement)
        conn.commit()


def vacuum_schema(conn: psycopg.Connection, schema: str) -> None:
    """VACUUM ANALYZE the new tables, so every variant starts with statistics and visibility maps."""
    tables = [r[0] for r in conn.execute(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'm')", (schema,))]
    conn.commit()
    conn.autocommit = True
    try:
        for table in tables:
            conn.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        conn.autocommit = False


def drop_variants(conn: psycopg.Connection, schemas: list[str]) -> None:
    """Drop a workload's TVIEWs through the engine (dependents first), then its schemas."""
    conn.rollback()
    for schema, name in conn.execute(
            "SELECT schema_name, name FROM tview.tviews WHERE schema_name = ANY (%s)"
            " ORDER BY topo_level DESC, id DESC", (schemas,)).fetchall():
        conn.execute("SELECT tview.drop(%s)", (f"{schema}.{name}",))
    for schema in schemas:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    conn.commit()


def has_patch_specs(conn: psycopg.Connection, schema: str) -> bool:
    """Did the engine recognise any patchable shape in this schema's TVIEWs?"""
    found = one(conn.execute("SELECT EXISTS (SELECT 1 FROM tview.tviews WHERE schema_name = %s"
                         " AND jsonb_array_length(patch_specs) > 0)", (schema,)))[0]
    conn.rollback()
    return bool(found)


# -- measuring -------------------------------------------------------------------------------

def apply_settings(conn: psycopg.Connection, settings: dict[str, str], local: bool) -> None:
    """The engine's settings (tview.*) for the benchmark database (the engine ignores a session's SET):
    inside the current transaction, so that its rollback undoes them; any other with set_config."""
    for name, value in settings.items():
        if name.startswith("tview."):
            conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(conn.info.dbname), sql.Identifier(*name.split(".")), sql.Literal(value)))
        else:
            conn.execute("SELECT set_config(%s, %s, %s)", (name, value, local))


def reset_settings(conn: psycopg.Connection, settings: dict[str, str]) -> None:
    """Undo apply_settings for the engine's settings that a committed run left in the database."""
    for name in settings:
        if name.startswith("tview."):
            conn.execute(sql.SQL("ALTER DATABASE {} RESET {}").format(
                sql.Identifier(conn.info.dbname), sql.Identifier(*name.split("."))))


def begin_arm(conn: psycopg.Connection, arm: Arm, extra: dict[str, str] | None = None) -> None:
    """Open the arm's transaction: settings local to it (nothing leaks into the next arm), then setup."""
    set_search_path(conn, arm.schema, local=True)
    apply_settings(conn, {**arm.settings, **(extra or {})}, local=True)
    for statement in arm.setup:
        conn.execute(statement)


def run_once(conn: psycopg.Connection, arm: Arm) -> float:
    """One timed run in its own transaction; returns milliseconds; leaves the data as it found it."""
    begin_arm(conn, arm)
    start = time.perf_counter()
    for statement in arm.timed:
        conn.execute(statement)
    if arm.revert is not None:
        conn.commit()
    elapsed = (time.perf_counter() - start) * 1000
    conn.rollback()
    if arm.revert is not None:
        set_search_path(conn, arm.schema, local=True)
        reset_settings(conn, arm.settings)
        for statement in arm.revert:
            conn.execute(statement)
        conn.commit()
    return elapsed


def check_arm(conn: psycopg.Connection, arm: Arm, opts: Options, verify: bool) -> None:
    """Untimed warm-up run that records how each TVIEW was maintained and whether it is right."""
    begin_arm(conn, arm, {"tview.log": "on", "tview.notify": "off"} if opts.event_log else None)
    for statement in arm.timed:
        conn.execute(statement)
    if opts.event_log:
        arm.modes = dict(conn.execute(
            "SELECT payload ->> 'tview', string_agg(DISTINCT payload ->> 'mode', '/')"
            " FROM tview.events WHERE payload ->> 'xid' = pg_current_xact_id()::text"
            " AND payload ->> 'schema' = %s GROUP BY 1 ORDER BY 1", (arm.schema,)).fetchall())
    if verify:
        found = oracle(conn, arm.schema)
        arm.drift = sum(found.values()) if found else None    # None: nothing to check (bare tables)
    conn.rollback()


def oracle(conn: psycopg.Connection, schema: str) -> dict[str, int]:
    """Rows of each TVIEW of a schema that differ from its definition (tview.verify)."""
    names = conn.execute("SELECT name FROM tview.tviews WHERE schema_name = %s ORDER BY topo_level, id",
                         (schema,)).fetchall()
    return {f"{schema}.tv_{name}": one(conn.execute("SELECT count(*) FROM tview.verify(%s)",
                                                (f"{schema}.{name}",)))[0]
            for (name,) in names}


def hand_oracle(conn: psycopg.Connection, schema: str) -> dict[str, int]:
    """The same check for the hand-kept table (no engine involved): rows differing from its view."""
    if not one(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.hand_post",)))[0]:
        return {}
    query = sql.SQL("SELECT count(*) FROM ((TABLE {t} EXCEPT ALL TABLE {v})"
                    " UNION ALL (TABLE {v} EXCEPT ALL TABLE {t})) d")
    table, view = sql.Identifier(schema, "hand_post"), sql.Identifier(schema, "v_hand_post")
    return {f"{schema}.hand_post": one(conn.execute(query.format(t=table, v=view)))[0]}


def warm_up(conn: psycopg.Connection, arm: Arm) -> None:
    """Untimed runs until PL/pgSQL's plan caches are in their steady state.

    PostgreSQL plans a cached statement afresh for its first WARM_UP_RUNS executions and only
    then settles on a plan; arms with more statements would otherwise pay that in their first
    timed runs. Slow arms (over WARM_UP_SECONDS) stop early: planning is noise for them."""
    started = time.perf_counter()
    for _ in range(WARM_UP_RUNS):
        if time.perf_counter() - started > WARM_UP_SECONDS:
            break
        run_once(conn, arm)


def prepare_arm(conn: psycopg.Connection, arm: Arm, opts: Options, plan: Plan) -> bool:
    """Check and warm up one arm; an arm the server refuses (e.g. a setting an older engine
    rejects) is reported with its error instead of sinking the other arms."""
    try:
        check_arm(conn, arm, opts, verify=plan.check_in_arms)
        warm_up(conn, arm)
    except psycopg.Error as exc:
        conn.rollback()
        arm.error = str(error_from_db(exc, "failed"))
        return False
    return True


def measure(conn: psycopg.Connection, dsn: str, plan: Plan, opts: Options) -> None:
    """Prepare each arm, then run the arms that work alternately, repeat times (an arm that asks
    for it on a connection of its own)."""
    with connect(dsn) as own:
        session = {a.name: own if a.own_session else conn for a in plan.arms}
        arms = [a for a in plan.arms if a.unavailable is None and prepare_arm(session[a.name], a, opts, plan)]
        for _ in range(opts.repeat):
            for arm in arms:
                arm.samples_ms.append(run_once(session[arm.name], arm))
    medians = {a.name: a.median for a in arms}
    for arm in arms:
        base = medians.get(arm.vs) if arm.vs else None
        arm.ratio = arm.median / base if base and arm.median is not None else None


def client_loop(dsn: str, job: Throughput, seed: int, comments: int, seconds: float,
                ready: threading.Barrier) -> tuple[int, int, float]:
    """One client: leaf updates, each committed, for `seconds`; returns commits, errors, elapsed."""
    rnd = random.Random(seed)
    commits = errors = 0
    with connect(dsn) as conn:
        set_search_path(conn, job.schema, local=False)
        apply_settings(conn, {k: v for k, v in job.settings.items() if not k.startswith("tview.")}, local=False)
        conn.commit()
        ready.wait()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            pk = rnd.randint(1, comments)
            try:
                conn.execute("UPDATE tb_comment SET body = %s WHERE pk_comment = %s",
                             (f"edit {seed}.{commits}", pk))
                conn.commit()
                commits += 1
            except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected):
                conn.rollback()
                errors += 1
        return commits, errors, time.perf_counter() - start


def run_throughput(dsn: str, job: Throughput, sizes: Sizes, seconds: float) -> None:
    """job.clients connections at once; commits/s summed over the clients."""
    ready = threading.Barrier(job.clients)
    with connect(dsn) as conn:          # the engine's settings: the database's, for every client
        apply_settings(conn, job.settings, local=False)
        conn.commit()
    try:
        with ThreadPoolExecutor(job.clients) as pool:
            futures = [pool.submit(client_loop, dsn, job, 1000 + i, sizes.comments, seconds, ready)
                       for i in range(job.clients)]
            results = [f.result() for f in futures]
    finally:
        with connect(dsn) as conn:
            reset_settings(conn, job.settings)
            conn.commit()
    job.commits = sum(r[0] for r in results)
    job.errors = sum(r[1] for r in results)
    job.seconds = max(r[2] for r in results)
    job.per_second = sum(r[0] / r[2] for r in results)


def measure_throughput(dsn: str, plan: Plan, opts: Options) -> None:
    """For each client count, the arms one after the other (same random key streams)."""
    for job in plan.throughput:
        run_throughput(dsn, job, plan.sizes, opts.seconds)
    rates = {t.name: t.per_second for t in plan.throughput}
    for job in plan.throughput:
        base = rates.get(job.vs) if job.vs else None
        job.ratio = job.per_second / base if base and job.per_second is not None else None


def run_plan(conn: psycopg.Connection, dsn: str, plan: Plan, opts: Options,
             progress: Callable[[str], None]) -> None:
    """Build, measure, check the oracle and clean up one workload; an error is kept, not raised."""
    started = time.perf_counter()
    try:
        for schema, variant in plan.builds.items():
            progress(f"{plan.name}: building {schema} ({variant}, {plan.sizes.describe()})")
            build_variant(conn, schema, variant, plan.sizes)
        for arm in plan.arms:
            if arm.needs_patching and arm.unavailable is None and not has_patch_specs(conn, arm.schema):
                arm.unavailable = "not applicable (the engine recognised no patchable shape here)"
        progress(f"{plan.name}: measuring {len(plan.arms)} arms x {opts.repeat} runs")
        measure(conn, dsn, plan, opts)
        if plan.throughput:
            progress(f"{plan.name}: throughput, {opts.seconds:g} s per arm and client count")
            measure_throughput(dsn, plan, opts)
        for schema in plan.builds:
            plan.oracle.update(oracle(conn, schema))
            plan.hand_oracle.update(hand_oracle(conn, schema))
        conn.rollback()
    except psycopg.Error as exc:
        conn.rollback()
        plan.error = str(error_from_db(exc, f"{plan.name} failed"))
    finally:
        drop_variants(conn, list(plan.builds))
        plan.seconds = time.perf_counter() - started


def engine_features(conn: psycopg.Connection) -> tuple[bool, bool, str, str]:
    """(smart patching present, event log present, engine version, server version)."""
    row = one(conn.execute("""
        SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'tview.tviews'::regclass
                       AND attname = 'patch_specs' AND NOT attisdropped),
               to_regclass('tview.events') IS NOT NULL, tview.version(),
               current_setting('server_version')"""))
    conn.rollback()
    return bool(row[0]), bool(row[1]), row[2], row[3]
