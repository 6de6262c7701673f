"""The installer against a real server: idempotence, upgrade, uninstall, refusals."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import sql

from tview_tui import installer
from tview_tui.connection import TviewError

pytestmark = pytest.mark.engine


def engine_objects(conn: psycopg.Connection) -> dict[str, int]:
    """Counts of everything the engine could leave behind."""
    row = conn.execute(
        """
        SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'tview'),
               (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'tview'),
               (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'tview'),
               (SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'tview%%'),
               (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tview%%')
        """
    ).fetchone()
    return dict(zip(["schema", "relations", "functions", "event_triggers", "triggers"], row,
                    strict=True))


def test_install_creates_engine_and_records_version(empty_dsn):
    with psycopg.connect(empty_dsn) as conn:
        assert installer.installed_version(conn) is None
        outcome = installer.install(conn)
        assert outcome.action == "installed"
        assert outcome.after == installer.bundled_version()
        version = conn.execute("SELECT tview.version()").fetchone()[0]
        assert version == installer.bundled_version()
        objects = engine_objects(conn)
        assert objects["schema"] == 1 and objects["functions"] > 0


def test_install_twice_is_a_noop(empty_dsn):
    with psycopg.connect(empty_dsn) as conn:
        installer.install(conn)
        before = engine_objects(conn)
        stamp = conn.execute("SELECT installed_at, upgraded_at FROM tview.meta").fetchone()
        outcome = installer.install(conn)
        assert outcome.action == "unchanged"
        assert engine_objects(conn) == before
        assert conn.execute("SELECT installed_at, upgraded_at FROM tview.meta").fetchone() == stamp


def test_upgrade_from_older_version_in_place(empty_dsn):
    with psycopg.connect(empty_dsn) as conn:
        installer.install(conn)
        conn.execute("CREATE TABLE public.keep_me (id int)")
        conn.execute("UPDATE tview.meta SET version = '0.0.1'")
        conn.commit()
        outcome = installer.install(conn, upgrade_only=True)
        assert (outcome.action, outcome.before, outcome.after) == (
            "upgraded", "0.0.1", installer.bundled_version())
        assert conn.execute("SELECT tview.version()").fetchone()[0] == installer.bundled_version()
        assert conn.execute("SELECT upgraded_at IS NOT NULL FROM tview.meta").fetchone()[0]
        assert conn.execute("SELECT to_regclass('public.keep_me')").fetchone()[0] is not None


def test_upgrade_refused_when_not_installed(empty_dsn):
    with psycopg.connect(empty_dsn) as conn, pytest.raises(TviewError, match="not installed"):
        installer.install(conn, upgrade_only=True)


def test_newer_installed_version_is_refused_and_left_alone(empty_dsn):
    with psycopg.connect(empty_dsn) as conn:
        installer.install(conn)
        conn.execute("UPDATE tview.meta SET version = '99.0.0'")
        conn.commit()
        with pytest.raises(TviewError, match="newer than this tool"):
            installer.install(conn)
        assert conn.execute("SELECT tview.version()").fetchone()[0] == "99.0.0"
        assert installer.status(conn).state == "newer than this tool"


def test_uninstall_removes_every_engine_object_and_keeps_user_tables(empty_dsn):
    with psycopg.connect(empty_dsn) as conn:
        conn.execute("CREATE TABLE public.tb_user (pk_user int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO public.tb_user VALUES (1, 'a')")
        conn.commit()
        installer.install(conn)
        outcome = installer.uninstall(conn)
        assert outcome.action == "uninstalled"
        assert engine_objects(conn) == dict(
            schema=0, relations=0, functions=0, event_triggers=0, triggers=0)
        assert conn.execute("SELECT count(*) FROM public.tb_user").fetchone()[0] == 1
        assert installer.uninstall(conn).action == "absent"


def test_install_without_privilege_fails_cleanly_and_creates_nothing(empty_dsn):
    role = "tview_test_nopriv"
    with psycopg.connect(empty_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        dbname = admin.info.dbname
        admin.execute(sql.SQL("REVOKE CREATE ON DATABASE {} FROM PUBLIC").format(
            sql.Identifier(dbname)))
    try:
        limited = psycopg.conninfo.make_conninfo(empty_dsn, user=role)
        with psycopg.connect(limited) as conn:
            with pytest.raises(TviewError) as err:
                installer.install(conn)
            assert err.value.sqlstate == "42501"
            assert "privilege" in str(err.value)
        with psycopg.connect(empty_dsn) as admin:
            assert engine_objects(admin)["schema"] == 0
    finally:
        with psycopg.connect(empty_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_concurrent_installers_serialise_on_the_advisory_lock(empty_dsn):
    outcomes: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run() -> None:
        try:
            with psycopg.connect(empty_dsn) as conn:
                barrier.wait()
                outcomes.append(installer.install(conn).action)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(outcomes) == ["installed", "unchanged", "unchanged"]
