"""Shared by the engine tests: what a refused engine call must leave as it was, and the check that it
did; two concurrent writers; fixtures for databases prepared once per worker."""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import psycopg.sql
import pytest
from psycopg import IsolationLevel

from tview_tui.embedded import embedded_bin_dir

# Schemas of the server itself, and the per-session temporary ones (gone with the session).
_NOT_OURS = """n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
               AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'"""


# Orders and their lines, and a definition whose key is unique only while an order has at most
# one line: a write can make it duplicate.
ORDER_TABLES = """
CREATE TABLE tb_order (pk_order int PRIMARY KEY, ref text);
CREATE TABLE tb_line (pk_line int PRIMARY KEY, fk_order int);
"""
ORDER_BY_LINE = """SELECT o.pk_order, jsonb_build_object('ref', o.ref, 'line', l.pk_line) AS data
                   FROM tb_order o LEFT JOIN tb_line l ON l.fk_order = o.pk_order"""


def snapshot(conn: psycopg.Connection) -> dict[str, list]:
    """Every object and catalog row a TVIEW creation can make, in the user schemas and in tview:
    relations, types, functions, triggers (on any table), event triggers, tview.tviews and
    tview.dependencies rows."""
    queries = {
        "relations": f"""SELECT n.nspname::text, c.relname::text, c.relkind::text FROM pg_class c
                         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_NOT_OURS}""",
        "types": f"""SELECT n.nspname::text, t.typname::text, t.typtype::text FROM pg_type t
                     JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {_NOT_OURS}""",
        "functions": f"""SELECT p.oid::regprocedure::text, p.provolatile::text FROM pg_proc p
                         JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_NOT_OURS}""",
        "triggers": f"""SELECT tg.tgrelid::regclass::text, tg.tgname::text, tg.tgenabled::text FROM pg_trigger tg
                        JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE NOT tg.tgisinternal AND {_NOT_OURS}""",
        "event_triggers": "SELECT evtname::text, evtevent::text, evtenabled::text FROM pg_event_trigger",
        "tviews": "SELECT t::text FROM tview.tviews t",
        "dependencies": "SELECT d::text FROM tview.dependencies d",
    }
    return {key: sorted(conn.execute(query).fetchall()) for key, query in queries.items()}


def refused(conn: psycopg.Connection, statement: str, params, sqlstate: str, *mentions: str,
            hint: bool = True) -> psycopg.Error:
    """Run a statement that must fail with sqlstate, a message naming every mention (and a HINT),
    and leave every object and catalog row as it was."""
    before = snapshot(conn)
    in_transaction = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    # inside a transaction: fail in a savepoint, so the transaction stays usable
    savepoint = conn.transaction() if in_transaction else contextlib.nullcontext()
    with pytest.raises(psycopg.Error) as info, savepoint:
        conn.execute(statement, params)
    exc = info.value
    if not in_transaction and not conn.autocommit:
        conn.rollback()
    assert exc.sqlstate == sqlstate, f"expected {sqlstate}, got {exc.sqlstate}: {exc}"
    message = exc.diag.message_primary or ""
    for mention in mentions:
        assert mention in message, f"message does not name {mention!r}: {message!r}"
    if hint:
        assert exc.diag.message_hint, f"no HINT on: {message!r}"
    after = snapshot(conn)
    changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    assert not changed, f"a refused statement changed the database: {changed}"
    return exc


def damage(conn: psycopg.Connection, statement: str, params=None) -> None:
    """Write to a TVIEW's table behind the engine's back, as only a superuser can (the engine refuses
    direct writes): with session_replication_role = replica, under which no ordinary trigger fires."""
    conn.execute("SET session_replication_role = replica")
    try:
        conn.execute(statement, params)
    finally:
        conn.execute("RESET session_replication_role")


def set_engine(conn: psycopg.Connection, **settings: str | None) -> None:
    """Set (or, with None, reset) tview.<name> for the database, where the engine reads its settings
    (a session's SET is ignored). Takes effect at once, in every session: the engine reads
    pg_db_role_setting, not the session's copy."""
    for name, value in settings.items():
        query = ("ALTER DATABASE {} RESET {}" if value is None else "ALTER DATABASE {} SET {} = {}")
        conn.execute(psycopg.sql.SQL(query).format(psycopg.sql.Identifier(conn.info.dbname),
                                                   psycopg.sql.Identifier("tview", name),
                                                   psycopg.sql.Literal(value)))
    if not conn.autocommit:
        conn.commit()


def wait_until(condition: Callable[[], object], timeout: float = 15.0):
    """Poll until condition() is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)
    return value


def listeners(conn: psycopg.Connection) -> int:
    """Sessions registered as listeners (tview.listen()) that are still there: each LISTENs."""
    return conn.execute("SELECT count(*) FROM tview.listeners l JOIN pg_stat_activity a ON a.pid = l.pid").fetchone()[0]


def two_writers(dsn: str, first_sql: str, second_sql: str, row_locks: str = "on", *,
                first_isolation: IsolationLevel | None = None, must_wait: bool = False) -> None:
    """first_sql runs (at first_isolation, else the default) and stays uncommitted while
    second_sql runs in another transaction; the first commits once the second waits on it (a
    lock the first holds), or got past it (a failure when must_wait)."""
    first, second = psycopg.connect(dsn), psycopg.connect(dsn)
    observer = psycopg.connect(dsn, autocommit=True)
    try:
        if first_isolation is not None:
            first.isolation_level = first_isolation
        set_engine(first, row_locks=None if row_locks == "on" else row_locks)
        first.execute(first_sql)
        pids = (first.info.backend_pid, second.info.backend_pid)
        failures: list[BaseException] = []

        def run_second() -> None:
            try:
                second.execute(second_sql)
                second.commit()
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                failures.append(exc)

        worker = threading.Thread(target=run_second)
        worker.start()
        deadline = time.monotonic() + 30
        while worker.is_alive() and not observer.execute("SELECT %s = ANY(pg_blocking_pids(%s))", pids).fetchone()[0]:
            assert time.monotonic() < deadline, "the second writer neither waits on the first nor finishes"
            time.sleep(0.01)
        assert worker.is_alive() or not must_wait, "the second writer did not wait for the first"
        first.commit()
        worker.join(30)
        assert not failures, failures
    finally:
        first.close()
        second.close()
        observer.close()


def prepared_database(setup: Callable[[psycopg.Connection], object], *, name: str, gives: str = "db"):
    """A fixture for a test's database after ``setup(conn)``, to assign to a module global of the
    same ``name``. The schema and TVIEWs are built once per worker, in a database that each test
    using the fixture then gets a copy of (a copy keeps every oid, so the engine's catalog holds
    as it is). The fixture gives the test's ``db`` connection, or its ``dsn`` (``gives="dsn"``):
    ``dsn`` and ``db`` are that database. ``setup`` must depend on nothing but the connection,
    and may not ALTER DATABASE (a copy keeps no per-database settings)."""
    @pytest.fixture(name=name)
    def prepared(db: psycopg.Connection, dsn: str):
        return db if gives == "db" else dsn
    prepared.prepared_setup = setup        # type: ignore[attr-defined] - read by _template_for
    return prepared


def server_tools(conn: psycopg.Connection) -> Path:
    """The bin directory of the server's major version (its pg_dump, pg_restore, initdb, postgres)."""
    major = conn.info.server_version // 10000
    for candidate in (embedded_bin_dir(), Path(f"/usr/lib/postgresql/{major}/bin")):
        pg_dump = candidate / "pg_dump"
        if pg_dump.exists():
            version = subprocess.run([str(pg_dump), "--version"], capture_output=True, text=True).stdout
            if re.search(rf"\b{major}\.\d+", version):
                return candidate
    pytest.skip(f"no pg_dump of PostgreSQL {major} here")


# Users and their posts, as three TVIEWs: a post embeds its author's document; post_count
# (deferred) counts each user's posts. The tables are the caller's.
USER_POST_TVIEWS = """
SELECT tview.create('user', $$SELECT u.pk_user, jsonb_build_object('name', u.name) AS data FROM tb_user u$$);
SELECT tview.create('post', $$SELECT p.pk_post, p.fk_user, jsonb_build_object('title', p.title, 'author', u.data)
                             AS data FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user$$);
SELECT tview.create('post_count', $$SELECT u.pk_user, jsonb_build_object('posts',
                        (SELECT count(*) FROM tb_post p WHERE p.fk_user = u.pk_user)) AS data FROM tb_user u$$,
                    'deferred');
"""
