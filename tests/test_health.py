"""Diagnostics: break a database on purpose, find the exact finding, fix it, check again."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psycopg
import pytest

from tview_tui import demo
from tview_tui.diagnostics import apply_fix, exit_code, run_checks

from oracle import assert_oracle

pytestmark = pytest.mark.engine


@pytest.fixture
def blog(db):
    demo.setup(db)
    return db


def findings(conn, deep: bool = False, check: str | None = None):
    return [f for f in run_checks(conn, deep=deep) if check is None or f.check_name == check]


def fix_all(conn, check: str) -> None:
    for finding in findings(conn, deep=True, check=check):
        apply_fix(conn, finding)


def test_healthy_demo_has_no_findings(blog):
    assert findings(blog, deep=True) == []
    assert exit_code([]) == 0


def test_missing_trigger_is_found_and_repaired(blog):
    blog.execute("DROP TRIGGER tview_after_insert ON tb_comment")
    (found,) = findings(blog, check="missing_trigger")
    assert found.severity == "error" and "tb_comment has no tview_after_insert" in found.detail
    assert "public.tv_comment" in found.tview and "public.tv_post" in found.tview
    blog.execute("INSERT INTO tb_comment (pk_comment, fk_post, fk_user, body) VALUES (99999, 1, 1, 'unseen')")
    drift = findings(blog, deep=True, check="drift")
    assert {f.tview for f in drift} >= {"public.tv_comment", "public.tv_post"}
    fix_all(blog, "missing_trigger")
    fix_all(blog, "drift")
    assert findings(blog, deep=True) == []
    blog.execute("INSERT INTO tb_comment (pk_comment, fk_post, fk_user, body) VALUES (99998, 1, 1, 'seen')")
    assert_oracle(blog)


def test_disabled_trigger_is_found_and_enabled(blog):
    blog.execute("ALTER TABLE tb_user DISABLE TRIGGER tview_after_update")
    (found,) = findings(blog, check="disabled_trigger")
    assert found.severity == "error" and "tview_after_update on public.tb_user is disabled" in found.detail
    fix_all(blog, "disabled_trigger")
    assert findings(blog, check="disabled_trigger") == []
    blog.execute("UPDATE tb_user SET name = 'after repair' WHERE pk_user = 3")
    assert_oracle(blog)


@pytest.mark.parametrize("damage, problem", [
    ("DELETE FROM tv_comment WHERE pk_comment = 7", "missing"),
    ("UPDATE tv_comment SET data = '{}' WHERE pk_comment = 8", "different"),
    ("INSERT INTO tv_comment (pk_comment, data) VALUES (-1, '{}')", "extra"),
])
def test_drift_is_found_and_refreshed(blog, damage, problem):
    blog.execute(damage)
    assert any(p == problem for _, p in blog.execute("SELECT * FROM tview.verify('comment')"))
    (found,) = [f for f in findings(blog, deep=True, check="drift") if f.tview == "public.tv_comment"]
    assert found.severity == "error" and found.detail.startswith("1 row(s) differ")
    apply_fix(blog, found)
    assert [f for f in findings(blog, deep=True, check="drift") if f.tview == "public.tv_comment"] == []
    assert_oracle(blog)


def test_unindexed_fk_column(blog):
    index = blog.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'tb_comment'::regclass"
                         " AND indkey[0] = (SELECT attnum FROM pg_attribute WHERE attrelid = 'tb_comment'::regclass"
                         " AND attname = 'fk_user')").fetchone()[0]
    blog.execute(f"DROP INDEX {index}")
    (found,) = findings(blog, check="unindexed_fk")
    assert found.severity == "warning" and "public.tb_comment.fk_user has no index" in found.detail
    apply_fix(blog, found)
    assert findings(blog, check="unindexed_fk") == []


def test_full_lineage_is_reported(db):
    db.execute("""
        CREATE TABLE tb_item (pk_item int PRIMARY KEY, score int);
        INSERT INTO tb_item VALUES (1, 10), (2, 20);
        SELECT tview.create('ranked', $$SELECT i.pk_item, jsonb_build_object('rank', rank() OVER (ORDER BY i.score))
                                        AS data FROM tb_item i$$);
    """)
    (found,) = findings(db, check="full_lineage")
    assert found.severity == "warning" and found.tview == "public.tv_ranked"
    assert "window functions" in found.detail
    db.execute("UPDATE tb_item SET score = 30 WHERE pk_item = 1")
    assert_oracle(db)


def test_catalog_orphan_and_untracked_table(blog):
    blog.execute("SET tview.notify = off")
    blog.execute("DROP EVENT TRIGGER tview_ddl_drop")          # so plain DROP leaves the catalog behind
    blog.execute("DROP TABLE tv_post_card")
    (found,) = findings(blog, check="catalog_orphan")
    assert found.tview == "public.tv_post_card" and found.detail == "catalog entry without its table"
    apply_fix(blog, found)
    assert findings(blog, check="catalog_orphan") == []
    blog.execute("CREATE TABLE tv_stray (pk_stray int)")
    blog.execute("COMMENT ON TABLE tv_stray IS 'TVIEW maintained by the tview engine from public.v_stray; do not write to it'")
    (stray,) = findings(blog, check="untracked_tview")
    assert stray.tview == "public.tv_stray"


def test_blocked_session_on_tview_rows(blog, dsn):
    holder = psycopg.connect(dsn)
    try:
        holder.execute("UPDATE tb_comment SET body = 'holding' WHERE pk_comment = 1")   # locks its post's row
        post = holder.execute("SELECT fk_post FROM tb_comment WHERE pk_comment = 1").fetchone()[0]
        waiter_done = threading.Event()
        errors: list[BaseException] = []

        def wait_for_row() -> None:
            try:
                with psycopg.connect(dsn, autocommit=True) as waiter:
                    waiter.execute("INSERT INTO tb_comment (pk_comment, fk_post, fk_user, body)"
                                   " VALUES (99999, %s, 1, 'waiting')", (post,))
                waiter_done.set()
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        thread = threading.Thread(target=wait_for_row, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        found = []
        while not found and time.monotonic() < deadline:
            time.sleep(0.2)
            found = findings(blog, check="blocked_session")
        assert found and not errors, errors
        assert found[0].severity == "warning" and "waits for a TVIEW row" in found[0].detail
        assert found[0].tview in ("public.tv_comment", "public.tv_post", "public.tv_comment, public.tv_post")
    finally:
        holder.rollback()
        holder.close()
    thread.join(10)
    assert waiter_done.is_set()
    assert findings(blog, check="blocked_session") == []


def test_slow_tviews_from_the_event_log(blog):
    blog.execute("SET tview.log = on")
    blog.execute("SET tview.slow_ms = 0")
    blog.execute("UPDATE tb_company SET name = 'slow?' WHERE pk_company = 1")
    slow = findings(blog, check="slow_tview")
    assert {f.tview for f in slow} >= {"public.tv_company", "public.tv_user"}
    blog.execute("SET tview.slow_ms = 100000")
    assert findings(blog, check="slow_tview") == []


def test_deferred_backlog_of_ended_transactions(blog):
    blog.execute("INSERT INTO tview.queue (txid, tview_id, key) VALUES ('1'::xid8, 1, 42)")   # a long-gone xact
    (found,) = findings(blog, check="deferred_backlog")
    assert found.detail.startswith("1 queued key(s)")
    apply_fix(blog, found)
    assert findings(blog, check="deferred_backlog") == []


def test_events_turned_off_for_the_database(blog):
    name = blog.info.dbname
    blog.execute(psycopg.sql.SQL("ALTER DATABASE {} SET tview.notify = off").format(psycopg.sql.Identifier(name)))
    (found,) = findings(blog, check="events_off")
    assert found.severity == "info"
    apply_fix(blog, found)
    assert findings(blog, check="events_off") == []


def test_outdated_engine_and_missing_engine(blog, empty_dsn):
    blog.execute("UPDATE tview.meta SET version = '0.0.1'")
    (found,) = findings(blog, check="engine_outdated")
    assert "0.0.1" in found.detail
    with psycopg.connect(empty_dsn) as conn:
        (missing,) = run_checks(conn)
    assert missing.check_name == "engine_missing" and exit_code([missing]) == 2


def run_check_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tview_tui", "check", *args], capture_output=True, text=True,
                          timeout=120)


def test_check_cli_exit_codes_and_fix(blog, dsn):
    assert run_check_cli(dsn).returncode == 0
    blog.execute("ALTER TABLE tb_comment DISABLE TRIGGER tview_after_delete")
    result = run_check_cli(dsn, "--json")
    assert result.returncode == 2 and '"disabled_trigger"' in result.stdout
    result = run_check_cli(dsn, "--fix", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "re-enabled 1 trigger(s)" in result.stderr
    index = blog.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'tb_post'::regclass"
                         " AND NOT indisprimary").fetchone()[0]
    blog.execute(f"DROP INDEX {index}")
    assert run_check_cli(dsn).returncode == 1
