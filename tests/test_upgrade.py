"""Upgrading real older releases (read from git history) with TVIEWs, data and events in them.

Each old release is installed from `git show <commit>:sql/...` with the same installer code as the
bundled one. Releases are named by their commits, because a clone made from a pushed branch has
the history but not the tags. After the upgrade, the engine must be what a fresh
install of this version would have made for the same TVIEWs (functions, generated code,
catalog), the TVIEWs must be the same tables, and they must stay exact under writes. Only the public API and the catalog
are read, so the engine's internals can change without touching these tests.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tview_tui import demo, installer
from tview_tui.connection import TviewError

from engine_helpers import damage
from oracle import assert_oracle

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parent.parent
OLD_RELEASES = {
    "v0.1.0": "43ae43399cbe1bd391f52dbd9ed938b3f16ecdf5",   # what the tag v0.1.0 points to
    "v0.2.0": "d1ec993",                                    # the last commit of engine 0.2.0 (shared triggers)
    "v0.3.0": "809432c",                                    # the last commit of engine 0.3.0 (before tview.alter)
    "v0.4.0": "c2f54a3",                                    # the last commit of engine 0.4.0 (before tview._derive)
    "v0.5.0": "1e714d7",                                    # the last commit of engine 0.5.0 (before the snapshot guard)
    "v0.6.0": "a30c7c7",                                    # the last commit of engine 0.6.0 (stamps share-locked)
    "v0.6.1": "0c0235e",                                    # the last commit of engine 0.6.1 (bulk root deletes recomputed)
    "v0.6.2": "ae0cc02",                                    # the last commit of engine 0.6.2 (images for every refresh)
    "v0.6.3": "d82c8e9",                                    # the last commit of engine 0.6.3 (images between TVIEWs)
}
BUNDLED = installer.bundled_version()


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True,
                              timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        pytest.fail(f"cannot read an old release from git history ({str(detail).strip()}): the upgrade tests "
                    "need the repository with its history (a clone without --depth)")


@functools.cache
def git_release(commit: str) -> installer.Release:
    """The engine as released at a git commit."""
    names = sorted(n for n in _git("ls-tree", "--name-only", f"{commit}:sql").split() if n.endswith(".sql"))
    assert names, f"{commit} has no sql/*.sql"
    return installer.Release(_git("show", f"{commit}:sql/VERSION").strip(),
                             tuple((n, _git("show", f"{commit}:sql/{n}")) for n in names))


def set_up_blog(conn: psycopg.Connection, release: installer.Release | None = None) -> None:
    """The demo blog (5 TVIEWs, 4 levels, embedded objects and an ordered array: patchable),
    tv_comment deferred, events logged to tview.events."""
    installer.install(conn, release=release)
    demo.setup(conn)
    conn.execute("SELECT tview.set_mode('comment', 'deferred')")
    log_events(conn)


def log_events(conn: psycopg.Connection) -> None:
    """tview.log on, in this session and the database's next ones."""
    conn.execute(sql.SQL("ALTER DATABASE {} SET tview.log = on").format(sql.Identifier(conn.info.dbname)))
    conn.execute("SET tview.log = on")


@functools.cache
def old_blog_setup(release: installer.Release) -> Callable[[psycopg.Connection], None]:
    """The setup of the blog made with an older engine, after a cascading write (one object per
    release: its database is built once per worker and copied for each test)."""
    def setup(conn: psycopg.Connection) -> None:
        set_up_blog(conn, release)
        conn.execute("UPDATE tb_company SET name = name || '.' WHERE pk_company = 1")   # events in the log
    return setup


@pytest.fixture(params=sorted(OLD_RELEASES))
def old_release(request) -> installer.Release:
    return git_release(OLD_RELEASES[request.param])


@pytest.fixture
def old_blog_dsn(copy_of, old_release) -> str:
    """A database holding the blog made with an older engine."""
    return copy_of(old_blog_setup(old_release))


@pytest.fixture
def old_blog(old_blog_dsn, old_release):
    """An autocommit connection to the blog made with an older engine, after a cascading write."""
    with psycopg.connect(old_blog_dsn, autocommit=True) as conn:
        log_events(conn)            # a copied database keeps no per-database setting
        assert installer.installed_version(conn) == old_release.version
        assert events(conn)
        assert_oracle(conn)
        yield conn


def write_every_kind(conn: psycopg.Connection) -> None:
    """Inserts, updates and deletes on every level, a company rename that cascades through
    every TVIEW, and a deferred transaction; the oracle after each."""
    company, user, post, comment = 900, 900, 9000, 90000
    statements = [
        ("INSERT INTO tb_company VALUES (%s, 'New company', 'NZ')", (company,)),
        ("UPDATE tb_company SET name = name || ' renamed' WHERE pk_company = 1", None),
        ("INSERT INTO tb_user VALUES (%s, %s, 'New user', 'x@example.com')", (user, company)),
        ("UPDATE tb_user SET name = name || '!', fk_company = 2 WHERE pk_user = 7", None),
        ("INSERT INTO tb_post (pk_post, fk_user, title) VALUES (%s, %s, 'Fresh')", (post, user)),
        ("UPDATE tb_post SET title = title || ' (edited)' WHERE pk_post = 5", None),
        ("UPDATE tb_post SET fk_user = %s WHERE pk_post = 6", (user,)),
    ]
    for statement, params in statements:
        conn.execute(statement, params)
        assert_oracle(conn)
    with conn.transaction():   # tv_comment is deferred: everything is refreshed at commit
        conn.execute("INSERT INTO tb_comment (pk_comment, fk_post, fk_user, body) VALUES (%s, %s, %s, 'hi')",
                     (comment, post, user))
        conn.execute("UPDATE tb_comment SET body = body || ' (edited)' WHERE pk_comment IN (3, %s)", (comment,))
        conn.execute("DELETE FROM tb_comment WHERE pk_comment = 4")
        conn.execute("UPDATE tb_comment SET fk_post = 8 WHERE pk_comment = 10")
    assert_oracle(conn)
    deletes = [
        ("DELETE FROM tb_comment WHERE pk_comment = %s", (comment,)),
        ("DELETE FROM tb_post WHERE pk_post = %s", (post,)),
        ("UPDATE tb_post SET fk_user = 3 WHERE pk_post = 6", None),
        ("DELETE FROM tb_user WHERE pk_user = %s", (user,)),
        ("DELETE FROM tb_company WHERE pk_company = %s", (company,)),
    ]
    for statement, params in deletes:
        conn.execute(statement, params)
        assert_oracle(conn)


def engine_state(conn: psycopg.Connection) -> dict:
    """Everything the engine made, comparable between databases: relation oids are replaced
    by names (in generated code and catalog columns too)."""
    names = dict(conn.execute(   # the user's and the engine's relations (not a number in code that happens to be an oid)
        "SELECT c.oid, c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid >= 16384 AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'").fetchall())

    def named(value) -> str:   # oids stand alone or end a name (tview._capture_<table oid>)
        return re.sub(r"(?<!\d)\d{5,}\b", lambda m: names.get(int(m.group()), m.group()), str(value))

    def rows(query: str) -> list[tuple]:
        return sorted(tuple(named(v) for v in row) for row in conn.execute(query).fetchall())

    return {
        "routines": {f"{name}({args})": body for name, args, body in rows(   # a dict: diffs name what differs
            "SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)"
            " FROM pg_proc p WHERE p.pronamespace = 'tview'::regnamespace")},
        "relations": rows(
            "SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
            " pg_get_expr(d.adbin, d.adrelid)"
            " FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
            " LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum"
            " WHERE c.relnamespace = 'tview'::regnamespace"),
        "tviews": rows(
            "SELECT id, schema_name, name, entity, key_column, definition, mode, patching, topo_level,"
            " root_oid, root_column, analysis, refresh_sql, patch_specs FROM tview.tviews"),
        "dependencies": rows("SELECT tview_id, source_oid, source_kind, lineage, key_sql, roles FROM tview.dependencies"),
        "triggers": rows(
            "SELECT tgrelid::regclass, tgname, tgfoid::regprocedure, tgenabled, tgtype FROM pg_trigger"
            " WHERE NOT tgisinternal"),
        "event_triggers": rows("SELECT evtname, evtevent, evtfoid::regprocedure, evtenabled, evttags FROM pg_event_trigger"),
    }


def tview_tables(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT id, name, table_oid, view_oid, mode FROM tview.tviews ORDER BY id").fetchall()


def engine_tables(conn: psycopg.Connection) -> set[tuple]:
    return set(conn.execute("SELECT relname, oid FROM pg_class WHERE relnamespace = 'tview'::regnamespace"
                            " AND relkind IN ('r', 'p')").fetchall())


def generated_routines(conn: psycopg.Connection) -> set[int]:
    """The per-TVIEW functions the engine generates (named _<what>_<TVIEW id>), made anew by an
    upgrade. (The per-table capture functions are replaced in place, keeping their oids, and
    compared with a fresh install's by engine_state.)"""
    return {oid for (oid,) in conn.execute(
        "SELECT oid FROM pg_proc WHERE pronamespace = 'tview'::regnamespace AND proname ~ '^_[a-z]+_[0-9]+$'"
        " AND proname !~ '^_capture_'")}


def routine_oids(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT p.oid, p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid)) FROM pg_proc p"
                        " WHERE p.pronamespace = 'tview'::regnamespace ORDER BY p.oid").fetchall()


def events(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT id, payload FROM tview.events ORDER BY id").fetchall()


def error_findings(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT check_name, tview, detail FROM tview.health(true) WHERE severity = 'error'").fetchall()


def test_the_old_releases_are_older_than_the_bundled_one():
    for commit in OLD_RELEASES.values():
        old = git_release(commit)
        assert installer.parse_version(old.version) < installer.parse_version(installer.bundled_version())


def test_upgrade_equals_a_fresh_install_and_keeps_every_tview(old_blog, old_release, copy_of):
    conn = old_blog
    tables, old_events, old_generated = tview_tables(conn), events(conn), generated_routines(conn)
    catalog, installed_at = engine_tables(conn), conn.execute("SELECT installed_at FROM tview.meta").fetchone()
    assert old_events and old_generated and {"queue", "pending", "events"} <= {name for name, _ in catalog}

    outcome = installer.install(conn, upgrade_only=True)

    assert (outcome.action, outcome.before, outcome.after) == ("upgraded", old_release.version, BUNDLED)
    assert conn.execute("SELECT tview.version()").fetchone()[0] == BUNDLED
    assert tview_tables(conn) == tables, "a TVIEW was recreated or its mode lost"
    assert catalog <= engine_tables(conn), "an engine table (catalog, deferred queue, event log) was recreated"
    assert conn.execute("SELECT installed_at FROM tview.meta WHERE upgraded_at IS NOT NULL").fetchone() == installed_at
    assert events(conn) == old_events
    assert not generated_routines(conn) & old_generated, "generated code of the old engine is still there"
    assert_oracle(conn)

    # The same blog made by this version from scratch (in the same order, so ids match; once per worker).
    with psycopg.connect(copy_of(set_up_blog), autocommit=True) as fresh:
        expected = engine_state(fresh)
    upgraded = engine_state(conn)
    for part in expected:
        assert upgraded[part] == expected[part], f"{part} differ from a fresh install"

    write_every_kind(conn)
    assert len(events(conn)) > len(old_events)
    assert error_findings(conn) == []


def test_upgrading_twice_is_a_noop_and_the_cli_upgrades(old_blog, old_release, old_blog_dsn):
    result = subprocess.run([sys.executable, "-m", "tview_tui", "upgrade", old_blog_dsn],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"upgraded engine {old_release.version} -> {BUNDLED}")
    state, oids = engine_state(old_blog), routine_oids(old_blog)
    stamp = old_blog.execute("SELECT installed_at, upgraded_at FROM tview.meta").fetchone()

    assert installer.install(old_blog).action == "unchanged"
    assert installer.install(old_blog, upgrade_only=True).action == "unchanged"

    assert engine_state(old_blog) == state and routine_oids(old_blog) == oids
    assert old_blog.execute("SELECT installed_at, upgraded_at FROM tview.meta").fetchone() == stamp
    write_every_kind(old_blog)


def test_functions_the_new_version_does_not_define_are_removed(old_blog):
    """Overloads and functions an older engine had (here added by hand) do not survive the upgrade:
    an old overload with a default would make every call of the current signature ambiguous."""
    planted = {"tview.refresh(text,bigint[],boolean)", "tview.old_helper(integer)", "tview._refresh_999(bigint[])"}
    old_blog.execute("CREATE FUNCTION tview.refresh(name text, keys bigint[], cascade boolean DEFAULT true)"
                     " RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'")
    old_blog.execute("CREATE FUNCTION tview.old_helper(x int DEFAULT 0) RETURNS int LANGUAGE sql AS 'SELECT x'")
    old_blog.execute("CREATE FUNCTION tview._refresh_999(keys bigint[]) RETURNS void LANGUAGE sql AS ''")
    with pytest.raises(psycopg.errors.AmbiguousFunction):
        old_blog.execute("SELECT tview.refresh('post', ARRAY[1, 2]::bigint[])")

    installer.install(old_blog)

    left = {name for (name,) in old_blog.execute(
        "SELECT oid::regprocedure::text FROM pg_proc WHERE pronamespace = 'tview'::regnamespace")}
    assert not planted & left
    damage(old_blog, "UPDATE tv_post SET data = '{}' WHERE pk_post IN (1, 2)")
    assert old_blog.execute("SELECT tview.refresh('post', ARRAY[1, 2]::bigint[])").fetchone()[0] >= 2
    write_every_kind(old_blog)


def assert_still_old(conn: psycopg.Connection, version: str, tables: list, oids: list, old_events: list) -> None:
    """The failed upgrade changed nothing: old version, same functions, TVIEWs, events; writes work."""
    assert installer.installed_version(conn) == version
    assert routine_oids(conn) == oids
    assert tview_tables(conn) == tables
    assert events(conn) == old_events
    assert_oracle(conn)
    write_every_kind(conn)


def test_a_user_object_using_a_removed_function_stops_the_upgrade_and_changes_nothing(old_blog, old_release):
    """A function the new version does not have is dropped RESTRICT: a view using it is never dropped."""
    old_blog.execute("CREATE FUNCTION tview.old_helper(x int) RETURNS int LANGUAGE sql AS 'SELECT x'")
    old_blog.execute("CREATE VIEW public.uses_engine AS SELECT tview.old_helper(1) AS one")
    tables, oids, old_events = tview_tables(old_blog), routine_oids(old_blog), events(old_blog)

    with pytest.raises(TviewError) as err:
        installer.install(old_blog)

    assert err.value.sqlstate == "2BP01"
    assert "tview.old_helper(x integer)" in err.value.message and "uses_engine" in err.value.message
    assert_still_old(old_blog, old_release.version, tables, oids, old_events)
    assert old_blog.execute("SELECT one FROM public.uses_engine").fetchone() == (1,)


def test_an_upgrade_blocked_by_a_long_transaction_fails_fast_and_changes_nothing(old_blog, old_release,
                                                                               old_blog_dsn):
    """A transaction that wrote to a TVIEW's table and changed a TVIEW's mode, left open: the
    upgrade waits at most lock_timeout_ms for the locks it needs, then rolls back everything."""
    tables, oids, old_events = tview_tables(old_blog), routine_oids(old_blog), events(old_blog)
    with psycopg.connect(old_blog_dsn) as holder:
        holder.execute("UPDATE tb_post SET title = 'held' WHERE pk_post = 1")
        holder.execute("SELECT tview.set_mode('post_card', 'deferred')")
        with pytest.raises(TviewError) as err:
            installer.install(old_blog, lock_timeout_ms=300)
        holder.rollback()

    assert err.value.sqlstate == "55P03"
    assert "failed" in err.value.message and "retry" in (err.value.hint or "")
    assert_still_old(old_blog, old_release.version, tables, oids, old_events)
    assert installer.install(old_blog).action == "upgraded"
    assert_oracle(old_blog)
