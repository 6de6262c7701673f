"""Diagnostics: break a database on purpose, get the exact finding, fix it, check it is clean.

Every fix is the one the finding names: `apply_fix` for the automatic ones, the finding's
own `fix` statement for the others, so a wrong suggestion fails here too.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from tview_tui import demo, diagnostics, installer
from tview_tui.diagnostics import Finding, apply_fix, exit_code, run_checks

from engine_helpers import damage, prepared_database, set_engine, wait_until
from oracle import assert_oracle

pytestmark = pytest.mark.engine

TVIEWS = ["public.tv_company", "public.tv_user", "public.tv_comment", "public.tv_post", "public.tv_post_card"]
POST_CARD = dict(demo.TVIEWS)["post_card"]


# The demo schema: five TVIEWs in four levels over four tables, one helper view.
blog = prepared_database(demo.setup, name="blog")


def findings(conn, check: str | None = None, *, deep: bool = True, **kwargs) -> list[Finding]:
    """Findings of one check (default: all); deep by default so drift counts are exact."""
    return [f for f in run_checks(conn, deep=deep, **kwargs) if check is None or f.check_name == check]


def names(conn) -> dict[str, str]:
    """This database and role, quoted as the findings quote them (%I)."""
    db, role = conn.execute("SELECT quote_ident(current_database()), quote_ident(current_user)").fetchone()
    return {"db": db, "role": role}


def index_on(conn, table: str, column: str) -> str:
    return conn.execute(
        "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_attribute a"
        " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
        " WHERE i.indrelid = %s::regclass AND a.attname = %s", (table, column)).fetchone()[0]


@contextlib.contextmanager
def drop_interception_off(conn) -> Iterator[None]:
    """Plain DDL on TVIEW objects, as if the engine's DROP event trigger were not there."""
    present = conn.execute("SELECT count(*) FROM pg_event_trigger"
                           " WHERE evtname = 'tview_ddl_drop'").fetchone()[0]
    if present:
        conn.execute("ALTER EVENT TRIGGER tview_ddl_drop DISABLE")
    try:
        yield
    finally:
        if present:
            conn.execute("ALTER EVENT TRIGGER tview_ddl_drop ENABLE")


@contextlib.contextmanager
def writer_in_background(dsn: str, statement: str) -> Iterator[dict]:
    """Run a write in its own session (application_name 'waiter') without waiting for it."""
    state: dict = {"errors": [], "done": threading.Event()}

    def write() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True, application_name="waiter") as conn:
                state["pid"] = conn.info.backend_pid
                conn.execute(statement)
            state["done"].set()
        except psycopg.Error as exc:
            state["errors"].append(exc)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        thread.join(30)


# -- healthy ------------------------------------------------------------------------------

@pytest.mark.parametrize("deep, sample_rows", [(True, None), (False, None), (False, 50)],
                         ids=["deep", "sampled", "small-sample"])
def test_a_healthy_database_has_no_findings(blog, deep, sample_rows):
    """No false alarms: whole, default-sampled and tiny-sampled drift checks all stay quiet."""
    if sample_rows:
        set_engine(blog, health_sample_rows=str(sample_rows))
    found = run_checks(blog, deep=deep)
    assert found == []
    assert exit_code(found) == 0


# -- triggers -----------------------------------------------------------------------------

TRIGGER_CASES = [
    pytest.param(
        "DROP TRIGGER tview_after_insert ON tb_comment",
        "INSERT INTO tb_comment (pk_comment, fk_post, fk_user, body) VALUES ({n}, 3, 4, 'unseen')",
        "missing_trigger", ["public.tv_comment", "public.tv_post"],
        "public.tb_comment has no tview_after_insert: INSERTs on it do not reach this TVIEW",
        "re-created 1 trigger(s), re-enabled 0 trigger(s) on public.tb_comment", id="dropped"),
    pytest.param(
        "ALTER TABLE tb_user DISABLE TRIGGER tview_after_update",
        "UPDATE tb_user SET name = 'renamed {n}' WHERE pk_user = 3",
        "disabled_trigger", ["public.tv_user"],
        "public.tb_user has tview_after_update disabled: UPDATEs on it do not reach this TVIEW",
        "re-created 0 trigger(s), re-enabled 1 trigger(s) on public.tb_user", id="disabled"),
    pytest.param(
        "ALTER TABLE tb_company ENABLE REPLICA TRIGGER tview_after_update",
        "UPDATE tb_company SET name = 'renamed {n}' WHERE pk_company = 2",
        "disabled_trigger", ["public.tv_company"],
        "public.tb_company has tview_after_update enabled for replica sessions only: UPDATEs on it do not reach"
        " this TVIEW",
        "re-created 0 trigger(s), re-enabled 1 trigger(s) on public.tb_company", id="replica-only"),
    pytest.param(
        "DROP TRIGGER tview_after_delete ON tb_post;"
        " CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';"
        " CREATE TRIGGER tview_after_delete AFTER DELETE ON tb_post FOR EACH ROW EXECUTE FUNCTION noop()",
        "INSERT INTO tb_post (pk_post, fk_user, title) VALUES ({n}, 1, 'lonely'); DELETE FROM tb_post WHERE pk_post = {n}",
        "foreign_trigger", ["public.tv_post"],
        "public.tb_post has tview_after_delete not made by the engine (it must run the table's capture function once per"
        " statement with its transition tables): DELETEs on it may not reach this TVIEW",
        "re-created 1 trigger(s), re-enabled 0 trigger(s) on public.tb_post", id="foreign"),
]


@pytest.mark.parametrize("damage, write, check, tviews, detail, repaired", TRIGGER_CASES)
def test_broken_trigger_is_found_and_repaired(blog, damage, write, check, tviews, detail, repaired):
    """A broken trigger is an error for each TVIEW reading the table; the fix repairs and refreshes."""
    blog.execute(damage)
    found = findings(blog, check)
    assert [(f.severity, f.tview, f.detail) for f in found] == [("error", t, detail) for t in tviews]
    assert [f.fix for f in found] == [f"SELECT tview.repair_triggers('{t}'); SELECT tview.refresh('{t}')"
                                      for t in tviews]
    blog.execute(write.format(n=9001))                      # missed: the TVIEWs are now stale
    assert sorted(f.tview for f in findings(blog, "drift")) == sorted(tviews)
    results = [apply_fix(blog, f) for f in found]
    assert repaired in results[0]
    assert findings(blog) == []
    blog.execute(write.format(n=9002))                      # reaches the TVIEWs again
    assert_oracle(blog)


def test_repair_triggers_takes_unqualified_names_along_search_path(blog):
    """Like every public function, repair_triggers resolves 'post' the way the caller would."""
    blog.execute("ALTER TABLE tb_post DISABLE TRIGGER tview_after_insert")
    (line,) = blog.execute("SELECT tview.repair_triggers('post')").fetchone()
    assert line == "public.tv_post: re-created 0 trigger(s), re-enabled 1 trigger(s) on public.tb_post"
    (line,) = blog.execute("SELECT tview.repair_triggers()").fetchone()
    assert line == "all TVIEWs: re-created 0 trigger(s), re-enabled 0 trigger(s): nothing to repair"
    with pytest.raises(psycopg.errors.UndefinedTable):
        blog.execute("SELECT tview.repair_triggers('no_such_tview')")


# -- drift --------------------------------------------------------------------------------

@pytest.mark.parametrize("statement, expected", [
    ("DELETE FROM tv_comment WHERE pk_comment = 7",
     [("public.tv_comment", "1 row(s) differ from the definition (1 missing): keys 7"),
      ("public.tv_post", "1 row(s) differ from the definition (1 different): keys 8")]),
    ("UPDATE tv_comment SET data = '{}' WHERE pk_comment = 8",
     [("public.tv_comment", "1 row(s) differ from the definition (1 different): keys 8"),
      ("public.tv_post", "1 row(s) differ from the definition (1 different): keys 9")]),
    ("INSERT INTO tv_comment (pk_comment, data) VALUES (-1, '{}')",
     [("public.tv_comment", "1 row(s) differ from the definition (1 extra): keys -1")]),
], ids=["missing", "different", "extra"])
def test_drift_is_found_and_refreshed(blog, statement, expected):
    """Hand-made damage in tv_comment (and what tv_post embeds of it) is found row by row: made by a
    superuser bypassing the engine (it refuses direct writes)."""
    damage(blog, statement)
    found = findings(blog, "drift")
    assert [(f.severity, f.tview, f.detail, f.fix) for f in found] == [
        ("error", tview, detail, f"SELECT tview.refresh('{tview}')") for tview, detail in expected]
    for finding in found:
        apply_fix(blog, finding)
    assert findings(blog) == []
    assert_oracle(blog)


@pytest.mark.parametrize("statement, problem", [
    ("UPDATE tv_comment SET data = '{}'", "different"),
    ("DELETE FROM tv_comment WHERE pk_comment % 2 = 0", "missing"),
], ids=["different", "missing"])
def test_drift_in_a_sample_of_a_large_tview(blog, statement, problem):
    """Above tview.health_sample_rows the cheap check verifies a sample, keys from both sides."""
    set_engine(blog, health_sample_rows="100")
    damage(blog, statement)
    (found,) = [f for f in findings(blog, "drift", deep=False) if f.tview == "public.tv_comment"]
    match = re.fullmatch(r"(\d+) row\(s\) differ from the definition in a sample of (\d+) key\(s\) "
                         r"\(\1 " + problem + r"\): keys [-\d, .]+", found.detail)
    assert match, found.detail
    differ, sampled = int(match[1]), int(match[2])
    assert 0 < differ <= sampled <= 200
    if problem == "different":
        assert differ == sampled                     # every row was damaged
    apply_fix(blog, found)
    assert findings(blog, deep=False) == []
    assert_oracle(blog)


# -- lineage and indexes -------------------------------------------------------------------

def test_full_lineage_is_reported_until_the_definition_is_provable(db):
    """A window function hides which rows change: info (correct, but refreshed whole)."""
    db.execute("""
        CREATE TABLE tb_item (pk_item int PRIMARY KEY, score int);
        INSERT INTO tb_item VALUES (1, 10), (2, 20);
        SELECT tview.create('ranked', $$SELECT i.pk_item, jsonb_build_object('rank', rank() OVER (ORDER BY i.score))
                                        AS data FROM tb_item i$$);
    """)
    assert findings(db) == [Finding(
        "full_lineage", "info", "public.tv_ranked",
        "any change of public.tb_item refreshes the whole TVIEW: window functions in the top level",
        "join each of those relations by equality to pk_item in the definition (docs/engine.md, Lineage), "
        "or accept a whole refresh per change")]
    db.execute("UPDATE tb_item SET score = 30 WHERE pk_item = 1")
    assert_oracle(db)
    db.execute("SELECT tview.drop('ranked')")
    db.execute("SELECT tview.create('ranked', $$SELECT i.pk_item, jsonb_build_object('score', i.score) AS data"
               " FROM tb_item i$$)")
    assert findings(db) == []


@pytest.mark.parametrize("table, column, readers", [
    ("tb_comment", "fk_user", "public.tv_comment, public.tv_post"),
    ("tv_comment", "fk_post", "public.tv_post"),
], ids=["base-table", "tview-table"])
def test_unindexed_fk_column(blog, table, column, readers):
    """An fk_* column without a usable index (a partial one does not count) is a warning."""
    blog.execute(f"DROP INDEX {index_on(blog, table, column)}")
    blog.execute(f"CREATE INDEX partial_fk ON {table} ({column}) WHERE {column} > 10")
    found = findings(blog)
    assert found == [Finding("unindexed_fk", "warning", readers,
                             f"public.{table}.{column} has no index: keys that follow it scan the table",
                             f"CREATE INDEX CONCURRENTLY ON public.{table} ({column})")]
    assert exit_code(found) == 1
    blog.execute(found[0].fix)
    assert findings(blog) == []
    blog.execute("UPDATE tb_user SET name = 'indexed' WHERE pk_user = 7")
    assert_oracle(blog)


def test_unindexed_expressions_keys_are_looked_up_by(db):
    """An equality on an expression of one table's columns, and a key that is such an expression, are
    looked up by that expression: without an index on it (a partial one, or one on another
    expression, does not count) a warning whose fix creates it; then silent."""
    db.execute("""
        CREATE TABLE tb_user (pk_user bigint PRIMARY KEY, name text);
        CREATE TABLE tb_post (pk_post int PRIMARY KEY, data jsonb);
        CREATE INDEX partial_fk ON tb_post (((data ->> 'fk_user')::bigint)) WHERE data ? 'fk_user';
        CREATE INDEX other_field ON tb_post (((data ->> 'fk_author')::bigint));
        INSERT INTO tb_user VALUES (1, 'ann'), (2, 'bob');
        INSERT INTO tb_post VALUES (10, '{"id": 100, "fk_user": 1}'), (20, '{"id": 200, "fk_user": 2}');
        SELECT tview.create('post', $$SELECT (p.data ->> 'id')::bigint AS pk_post, jsonb_build_object('author', u.name)
                                      AS data FROM tb_post p JOIN tb_user u ON (p.data ->> 'fk_user')::bigint = u.pk_user$$);
    """)
    field = ("(((tb_post.data)::pg_catalog.jsonb OPERATOR(pg_catalog.->>) (('{}')::pg_catalog.text)::pg_catalog.text))"
             "::pg_catalog.int8")
    found = findings(db)
    assert found == [
        Finding("unindexed_fk", "warning", "public.tv_post",
                f"public.tb_post has no index on {field.format('fk_user')}: keys that follow it scan the table",
                f"CREATE INDEX CONCURRENTLY ON public.tb_post (({field.format('fk_user')}))"),
        Finding("unindexed_fk", "warning", "public.tv_post",
                f"public.tb_post has no index on {field.format('id')}: keyed refreshes find their rows by it, "
                "scanning the table",
                f"CREATE INDEX CONCURRENTLY ON public.tb_post (({field.format('id')}))")]
    assert exit_code(found) == 1
    for finding in found:
        db.execute(finding.fix)
    assert findings(db) == []
    assert db.execute("SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'tb_post'::regclass"
                      " AND indpred IS NULL AND indkey[0] = 0 ORDER BY 1").fetchall() == [
        ("CREATE INDEX other_field ON public.tb_post USING btree ((((data ->> 'fk_author'::text))::bigint))",),
        ("CREATE INDEX tb_post_int8_idx ON public.tb_post USING btree ((((data ->> 'fk_user'::text))::bigint))",),
        ("CREATE INDEX tb_post_int8_idx1 ON public.tb_post USING btree ((((data ->> 'id'::text))::bigint))",)]
    db.execute("UPDATE tb_user SET name = 'indexed' WHERE pk_user = 2")
    assert_oracle(db)


# -- catalog ------------------------------------------------------------------------------

def test_catalog_entry_without_its_table(blog):
    """A catalog entry whose table is gone makes writes fail: error, fixed by tview.drop."""
    tview_id = blog.execute("SELECT id FROM tview.tviews WHERE name = 'post_card'").fetchone()[0]
    with drop_interception_off(blog):
        blog.execute("DROP TABLE tv_post_card")
    found = findings(blog)
    assert found == [Finding(
        "catalog_orphan", "error", "public.tv_post_card",
        f"catalog entry {tview_id} has no table any more: writes that reach this TVIEW fail",
        f"SELECT tview.drop('public.post_card')  -- then create it again from its definition (tview.tviews id {tview_id})")]
    with pytest.raises(psycopg.errors.UndefinedTable):
        blog.execute("UPDATE tb_post SET title = 'fails' WHERE pk_post = 1")
    blog.execute(found[0].fix)
    assert findings(blog) == []
    blog.execute("UPDATE tb_post SET title = 'works' WHERE pk_post = 1")
    assert_oracle(blog)


def test_tview_table_and_view_the_catalog_does_not_know_are_adopted(blog):
    """An engine-made tv_/v_ pair without its catalog entry (what a restore of its schema alone
    leaves) is an error, fixed by tview.adopt, which registers it again from its view."""
    blog.execute("DELETE FROM tview.tviews WHERE name = 'post_card'")
    blog.execute("UPDATE tb_post SET title = 'while nothing maintained it' WHERE pk_post = 2")
    found = findings(blog)
    assert found == [Finding(
        "restored_tview", "error", "public.tv_post_card",
        "public.tv_post_card and its view were restored without the engine's catalog (a dump of their schema"
        " alone?): nothing keeps it current", "SELECT tview.adopt()")]
    assert blog.execute(found[0].fix).fetchone()[0] == (
        "adopted 1 TVIEW(s): public.tv_post_card; 1 row(s) brought up to date")
    assert findings(blog) == []
    blog.execute("UPDATE tb_post SET title = 'maintained again' WHERE pk_post = 3")
    assert_oracle(blog)


def test_tview_table_the_catalog_does_not_know(blog):
    """A tv_ table nothing maintains any more, without its view, is found; re-creating the TVIEW
    brings it back."""
    blog.execute("DELETE FROM tview.tviews WHERE name = 'post_card'; DROP VIEW v_post_card")
    found = findings(blog)
    assert found == [Finding(
        "untracked_tview", "warning", "public.tv_post_card",
        "public.tv_post_card looks like a TVIEW (made by the engine) but the catalog does not know it: nothing keeps"
        " it current",
        "if it should be a TVIEW: drop it (and its view) and create it again with tview.create('post_card',"
        " <definition>); else rename it")]
    blog.execute("DROP TABLE tv_post_card")
    blog.execute("SELECT tview.create('post_card', %s)", (POST_CARD,))
    assert findings(blog) == []
    blog.execute("UPDATE tb_post SET title = 'maintained again' WHERE pk_post = 2")
    assert_oracle(blog)


# -- sessions, queues, events ---------------------------------------------------------------

DROP_PATCH_FUNCTION = ("DO $$ BEGIN EXECUTE format('DROP FUNCTION tview.%I(jsonb, bigint[], integer, boolean)', '_patch_'"
                       " || (SELECT id FROM tview.tviews WHERE name = 'post')); END $$")


@pytest.mark.parametrize("setup, holder, tview, what", [
    (None, "UPDATE tb_comment SET body = 'held' WHERE pk_comment = 1", "public.tv_post", "a row of this TVIEW"),
    (None, "SELECT tview.refresh('post')", "public.tv_post", "a lock (RowShareLock) on this TVIEW's table"),
    (None, "INSERT INTO tb_comment SELECT 10000 + g, 1 + g % 300, 1, 'bulk' FROM generate_series(1, 100) g",
     "public.tv_comment", "the engine's lock for new keys of this TVIEW"),
    (DROP_PATCH_FUNCTION, "UPDATE tb_comment SET body = 'held' WHERE pk_comment = 1", "public.tv_post",
     "the engine's lock for creating this TVIEW's functions"),
], ids=["row-lock", "full-refresh", "new-keys", "function-creation"])
def test_session_blocked_on_a_tview_lock(blog, dsn, setup, holder, tview, what):
    """A transaction holding a TVIEW lock blocks writers: found with both sessions; terminating it frees them."""
    set_engine(blog, lock_wait_ms="300")
    blog.execute(setup or "SELECT 1")
    post = blog.execute("SELECT fk_post FROM tb_comment WHERE pk_comment = 1").fetchone()[0]
    holding = psycopg.connect(dsn, application_name="holder")
    holding.execute(holder)                                  # the transaction stays open
    insert = f"INSERT INTO tb_comment (pk_comment, fk_post, fk_user, body) VALUES (9001, {post}, 1, 'waits')"
    try:
        with writer_in_background(dsn, insert) as waiter:
            (found,) = wait_until(lambda: findings(blog, "blocked_session", deep=False))
            assert (found.severity, found.tview) == ("warning", tview)
            assert re.fullmatch(
                rf"backend {waiter['pid']} \(waiter\) has waited [\d.]+ s for {re.escape(what)}, held by backend"
                rf" {holding.info.backend_pid} \(holder, idle in transaction for [\d.]+ s, last statement: "
                rf"{re.escape(holder[:80])}\)", found.detail), found.detail   # the statement, cut at 80
            assert found.fix == (f"SELECT pg_terminate_backend({holding.info.backend_pid})"
                                 "  -- if that transaction is stuck; else let it commit")
            blog.execute(found.fix)
            assert waiter["done"].wait(15) and not waiter["errors"], waiter["errors"]
    finally:
        holding.close()
    assert findings(blog, "blocked_session") == []
    assert blog.execute("SELECT count(*) FROM tv_comment WHERE pk_comment = 9001").fetchone()[0] == 1
    assert_oracle(blog)


@pytest.mark.exclusive                  # the NOTIFY queue is the whole server's: other tests' listeners move it
def test_notify_queue_held_by_a_listener_in_a_long_transaction(blog, dsn):
    """A listener that never reads keeps notifications queued; ending its transaction drains them."""
    set_engine(blog, notify_queue_pct="0")        # any use is over the threshold
    listener = psycopg.connect(dsn)
    try:
        listener.execute("LISTEN tview_events")
        listener.commit()
        listener.execute("SELECT 1")                      # in a transaction: it reads nothing
        blog.execute("SELECT pg_notify('tview_health_test', repeat('x', 7000) || g) FROM generate_series(1, 4) g")
        (found,) = findings(blog, "notify_queue", deep=False)
        assert found.severity == "warning"
        assert re.fullmatch(r"the NOTIFY queue is [\d.]+% full \(above tview.notify_queue_pct = 0\): the engine's"
                            r" writers send no NOTIFY until it drains \(their events reach only the log, when"
                            r" tview.log is on\); other notifying transactions fail at commit once it is full",
                            found.detail), found.detail
        assert found.fix.startswith("end the LISTENing session that sits in a long transaction")
        listener.commit()                                 # the fix: end that transaction
        wait_until(lambda: not findings(blog, "notify_queue", deep=False))
    finally:
        listener.close()
    assert_oracle(blog)


def test_slowest_tviews_from_the_event_log(blog):
    """p95 of logged refresh times after writes against tview.slow_ms; manual refreshes do not count."""
    set_engine(blog, log="on", slow_ms="0")
    blog.execute("SELECT tview.refresh('post')")
    assert findings(blog, "slow_tview", deep=False) == []
    blog.execute("UPDATE tb_company SET name = 'slow?' WHERE pk_company = 1")
    logged = blog.execute("SELECT format('public.%s', payload ->> 'tview'), round((payload ->> 'us')::numeric / 1000, 1)"
                          " FROM tview.events WHERE payload ->> 'op' = 'UPDATE' ORDER BY (payload ->> 'us')::numeric DESC"
                          ).fetchall()
    assert {t for t, _ in logged} >= {"public.tv_company", "public.tv_user"}
    found = findings(blog, "slow_tview", deep=False)
    assert sorted((f.severity, f.tview, f.detail) for f in found) == sorted(
        ("warning", t, f"p95 refresh time {ms} ms over 1 refresh(es) after writes in the last hour (max {ms} ms),"
                       " above tview.slow_ms = 0") for t, ms in logged)
    view = found[0].tview.replace("public.tv_", "public.v_")
    assert found[0].fix.startswith(f"EXPLAIN ANALYZE SELECT * FROM {view} WHERE pk_")
    set_engine(blog, slow_ms="100000")
    assert findings(blog, "slow_tview", deep=False) == []


def test_deferred_queue_rows_of_an_ended_transaction(blog):
    """Queued keys nobody will flush are a backlog; clean_queue refreshes them, which also ends the drift."""
    card = blog.execute("SELECT id FROM tview.tviews WHERE name = 'post_card'").fetchone()[0]
    damage(blog, "UPDATE tv_post_card SET data = '{}' WHERE pk_post = 5")
    blog.execute("INSERT INTO tview.queue (txid, tview_id, key) VALUES ('1'::xid8, %s, 5)", (card,))
    drift, backlog = findings(blog)
    assert drift == Finding("drift", "error", "public.tv_post_card",
                            "1 row(s) differ from the definition (1 different): keys 5",
                            "SELECT tview.refresh('public.tv_post_card')")
    assert backlog == Finding("deferred_backlog", "warning", "public.tv_post_card",
                              "1 queued key(s) of 1 transaction(s) that ended without refreshing them",
                              "SELECT tview.clean_queue()")
    assert apply_fix(blog, backlog) == ("fixed deferred_backlog public.tv_post_card: removed 1 stale queue row(s);"
                                        " refreshed 1 key(s) of 1 TVIEW(s): 1 row(s) written")
    assert findings(blog) == []
    assert_oracle(blog)


SETTING_CASES = [
    pytest.param("ALTER DATABASE {db} SET tview.notify = off", "events_off", "info",
                 "tview.notify = off for database {db}: no NOTIFY events are sent: live tails see nothing"
                 " (polling works only where tview.log = on)", "ALTER DATABASE {db} RESET tview.notify", False,
                 id="notify-database"),
    pytest.param("ALTER ROLE {role} IN DATABASE {db} SET tview.notify = off", "events_off", "info",
                 "tview.notify = off for role {role} in database {db}: no NOTIFY events are sent: live tails see"
                 " nothing (polling works only where tview.log = on)",
                 "ALTER ROLE {role} IN DATABASE {db} RESET tview.notify", False, id="notify-role"),
    pytest.param("ALTER DATABASE {db} SET tview.row_locks = off", "row_locks_off", "warning",
                 "tview.row_locks = off for database {db}: refreshes skip their row locks: concurrent writes can"
                 " lose updates in TVIEWs", "ALTER DATABASE {db} RESET tview.row_locks", False, id="row-locks"),
    pytest.param("ALTER DATABASE {db} SET session_replication_role = replica", "triggers_off", "error",
                 "session_replication_role = replica for database {db}: the engine's triggers do not fire: writes"
                 " do not reach any TVIEW", "ALTER DATABASE {db} RESET session_replication_role", True,
                 id="replication-role"),
]


@pytest.mark.parametrize("setting, check, severity, detail, fix, loses_writes", SETTING_CASES)
def test_settings_that_turn_engine_features_off(blog, dsn, setting, check, severity, detail, fix,
                                                loses_writes):
    """Database and role settings apply to every new session: found by scope, reset by the fix."""
    quoted = names(blog)
    blog.execute(setting.format(**quoted))
    found = findings(blog)
    assert found == [Finding(check, severity, None, detail.format(**quoted), fix.format(**quoted))]
    with psycopg.connect(dsn, autocommit=True) as session:       # a new session gets the setting
        session.execute("UPDATE tb_company SET name = 'from a new session' WHERE pk_company = 3")
    assert bool(findings(blog, "drift")) == loses_writes
    blog.execute(found[0].fix)
    for drifted in findings(blog, "drift"):
        apply_fix(blog, drifted)
    assert findings(blog) == []
    assert_oracle(blog)


def test_events_off_for_new_sessions_from_connection_options(blog, dsn):
    """A value no database or role setting explains comes from the server or the connection: still found."""
    with psycopg.connect(dsn, autocommit=True, options="-c tview.notify=off") as conn:
        found = findings(conn, deep=False)
    assert found == [Finding(
        "events_off", "info", None,
        f"tview.notify = off for new sessions of role {names(blog)['role']} (server configuration, ALTER SYSTEM"
        " or connection options): no NOTIFY events are sent: live tails see nothing (polling works only where"
        " tview.log = on)",
        "ALTER SYSTEM RESET tview.notify (then SELECT pg_reload_conf()), or remove it from the connection options")]
    with psycopg.connect(dsn, autocommit=True) as conn:          # the fix: connect without it
        assert findings(conn, deep=False) == []


# -- privileges, time, versions --------------------------------------------------------------

def test_checks_without_privileges_are_skipped_not_failed(blog):
    """A monitoring role that can read only the catalog gets every other check, and 'skipped' rows."""
    role = f"tview_monitor_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier(role)
    blog.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident))
    try:
        blog.execute(sql.SQL("GRANT USAGE ON SCHEMA tview TO {0}; GRANT SELECT ON tview.tviews, tview.dependencies"
                             " TO {0}").format(ident))
        blog.execute(sql.SQL("ALTER TABLE tb_post DISABLE TRIGGER tview_after_update"))
        blog.execute(sql.SQL("SET ROLE {}").format(ident))
        found = run_checks(blog)
        blog.execute("RESET ROLE")
        denied = "skipped (privilege): permission denied for table {}"
        assert {(f.check_name, f.severity, f.tview, f.detail) for f in found} == {
            ("disabled_trigger", "error", "public.tv_post",
             "public.tb_post has tview_after_update disabled: UPDATEs on it do not reach this TVIEW"),
            ("engine_version", "info", None, denied.format("meta")),
            ("slow_tview", "info", None, denied.format("events")),
            ("deferred_backlog", "info", None, denied.format("queue")),
            *{("drift", "info", t, denied.format(t.split(".")[1])) for t in TVIEWS}}
        blog.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA tview, public TO {}").format(ident))
        blog.execute(sql.SQL("SET ROLE {}").format(ident))
        assert [f.check_name for f in run_checks(blog)] == ["disabled_trigger"]
    finally:
        blog.execute("RESET ROLE")
        blog.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(ident))


@pytest.fixture
def slow_tview(db):
    """tv_slow takes 1.5 s to verify (0.1 s per row); tv_fast, created after it, is instant."""
    db.execute("""
        CREATE TABLE tb_item (pk_item int PRIMARY KEY, score int);
        INSERT INTO tb_item SELECT g, g FROM generate_series(1, 15) g;
        -- same result every run (the engine refuses volatile definitions), just slow
        CREATE FUNCTION slow_score(int) RETURNS int LANGUAGE sql STABLE AS 'SELECT $1 FROM pg_sleep(0.1)';
        SELECT tview.create('slow', $$SELECT i.pk_item, jsonb_build_object('s', slow_score(i.score)) AS data
                                      FROM tb_item i$$);
        SELECT tview.create('fast', $$SELECT i.pk_item, jsonb_build_object('s', i.score) AS data FROM tb_item i$$);
    """)
    return db


def test_drift_past_the_time_budget_is_skipped_not_failed(slow_tview, alone):
    """A verification cut by statement_timeout and the TVIEWs after it are 'skipped (timeout)'; the rest runs."""
    slow_tview.execute("ALTER TABLE tb_item DISABLE TRIGGER tview_after_delete")
    with alone():                                    # timed: not next to other tests of a parallel run
        started = time.monotonic()
        found = findings(slow_tview, deep=False, time_budget_ms=300)
        took = time.monotonic() - started
    assert took < 1.2                                # cut at budget + grace, not after the 1.5 s verification
    assert [(f.check_name, f.severity, f.tview, f.detail) for f in found] == [
        ("disabled_trigger", "error", "public.tv_slow",
         "public.tb_item has tview_after_delete disabled: DELETEs on it do not reach this TVIEW"),
        ("disabled_trigger", "error", "public.tv_fast",
         "public.tb_item has tview_after_delete disabled: DELETEs on it do not reach this TVIEW"),
        ("drift", "info", "public.tv_slow", "skipped (timeout): verifying it took longer than the time budget"),
        ("drift", "info", "public.tv_fast",
         "skipped (timeout): the time budget was used up before this TVIEW was verified")]
    for finding in found:
        if diagnostics.can_fix(finding):
            apply_fix(slow_tview, finding)
    assert findings(slow_tview, time_budget_ms=10_000) == []
    assert_oracle(slow_tview)


def test_a_cancel_by_the_user_is_not_taken_for_a_timeout(slow_tview, dsn):
    """Only the statement timeout becomes a finding; pg_cancel_backend still cancels health()."""
    pid = slow_tview.info.backend_pid
    with psycopg.connect(dsn, autocommit=True) as other:
        canceller = threading.Timer(0.4, lambda: other.execute("SELECT pg_cancel_backend(%s)", (pid,)))
        canceller.start()
        with pytest.raises(psycopg.errors.QueryCanceled, match="user request"):
            slow_tview.execute("SELECT * FROM tview.health(true, 60000)")
        canceller.join()


def test_outdated_engine_with_the_old_health_signature_upgrades(blog):
    """An older engine (here: health() with a sixth column) is reported; the upgrade replaces it."""
    blog.execute("UPDATE tview.meta SET version = '0.0.1'")
    blog.execute("DROP FUNCTION tview.health(boolean, integer)")
    blog.execute("""CREATE FUNCTION tview.health(deep boolean DEFAULT false, time_budget_ms int DEFAULT 2000)
                    RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text, fix_sql text)
                    LANGUAGE sql AS $$ SELECT NULL, NULL, NULL, NULL, NULL, NULL WHERE false $$""")
    assert findings(blog) == [Finding("engine_outdated", "warning", None,
                                      f"engine 0.0.1 is installed; this tool bundles {installer.bundled_version()}",
                                      "tview-tui upgrade [DSN]")]
    assert installer.install(blog).action == "upgraded"
    columns = blog.execute("SELECT proargnames FROM pg_proc WHERE oid = 'tview.health(boolean, integer)'::regprocedure"
                           ).fetchone()[0]
    assert columns == ["deep", "time_budget_ms", "check_name", "severity", "tview", "detail", "fix"]
    assert findings(blog) == []
    assert_oracle(blog)


def test_health_sql_can_be_applied_twice_in_one_transaction(blog):
    """The installer re-applies every file in one transaction: the file must be idempotent."""
    text = dict(installer.sql_files())["100_health.sql"]
    with blog.transaction():
        blog.execute(text)
        blog.execute(text)
    assert findings(blog) == []


def test_a_failing_check_does_not_hide_the_others(blog):
    """A check that errors is one warning row naming the error; every other check still reports."""
    blog.execute("ALTER TABLE tb_user DISABLE TRIGGER tview_after_insert")
    blog.execute("INSERT INTO tview.queue (txid, tview_id, key) VALUES ('999999999999'::xid8, 1, 1)")
    assert [(f.check_name, f.severity, f.detail) for f in findings(blog)] == [
        ("disabled_trigger", "error",
         "public.tb_user has tview_after_insert disabled: INSERTs on it do not reach this TVIEW"),
        ("deferred_backlog", "warning", "check failed: transaction ID 999999999999 is in the future [22023]")]
    blog.execute("DELETE FROM tview.queue")
    blog.execute("SELECT tview.repair_triggers('user')")
    assert findings(blog) == []


def test_missing_engine_is_an_error(empty_dsn):
    """A database without the engine is one finding, exit code 2."""
    with psycopg.connect(empty_dsn) as conn:
        found = run_checks(conn)
    assert found == [Finding("engine_missing", "error", None, "the TVIEW engine is not installed in this database",
                             "tview-tui install [DSN]")]
    assert exit_code(found) == 2


# -- the check command ----------------------------------------------------------------------

@pytest.fixture
def check_command(dsn) -> Callable[..., subprocess.CompletedProcess]:
    """`tview-tui check DSN ...` in a subprocess."""
    def in_subprocess(*args: str, answers: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tview_tui", "check", dsn, *args], input=answers,
                              capture_output=True, text=True, timeout=120)

    return in_subprocess


@pytest.mark.parametrize("damage, code, last_line", [
    (None, 0, "healthy: no findings"),
    ("SELECT tview.create('ranked', $$SELECT p.pk_post, jsonb_build_object('r', rank() OVER (ORDER BY p.title))"
     " AS data FROM tb_post p$$)", 0, "healthy (1 info)"),
    ("DROP INDEX tb_post_fk_user_idx", 1, "0 error(s), 1 warning(s), 0 info"),
    ("ALTER TABLE tb_post DISABLE TRIGGER tview_after_update", 2, "1 error(s), 0 warning(s), 0 info"),
], ids=["healthy", "info-only", "warning", "error"])
def test_check_exit_codes(blog, check_command, damage, code, last_line):
    """Monitoring reads the exit code: 0 healthy or info only, 1 warnings, 2 errors."""
    if damage:
        blog.execute(damage)
    result = check_command()
    output = result.stdout + result.stderr
    assert (result.returncode, result.stdout.splitlines()[-1]) == (code, last_line), output


def test_check_json_and_fix_with_confirmation(blog, check_command):
    """--json prints only JSON; --fix asks first, applies on 'y' and exits with the state after the fixes."""
    blog.execute("ALTER TABLE tb_post DISABLE TRIGGER tview_after_update")
    blog.execute("DROP INDEX tb_post_fk_user_idx")
    result = check_command("--json")
    assert result.returncode == 2
    assert [(f["check_name"], f["fixable"]) for f in json.loads(result.stdout)] == [
        ("disabled_trigger", True), ("unindexed_fk", False)]

    result = check_command("--fix", answers="n\n")
    assert result.returncode == 2 and "skipped disabled_trigger public.tv_post" in result.stdout
    assert findings(blog, "disabled_trigger")

    result = check_command("--fix", answers="y\n")
    assert result.returncode == 1, result.stdout + result.stderr
    assert ("fixed disabled_trigger public.tv_post: public.tv_post: re-created 0 trigger(s), re-enabled 1 trigger(s)"
            " on public.tb_post; refreshed public.tv_post (0 row(s) written)") in result.stdout
    assert result.stdout.splitlines()[-1] == "0 error(s), 1 warning(s), 0 info"
    assert [f.check_name for f in findings(blog)] == ["unindexed_fk"]
    assert_oracle(blog)


def test_check_fix_yes_with_json_keeps_stdout_parseable(blog, check_command):
    """With --json the fix results go to stderr; --yes does not ask; a refresh already done is not repeated."""
    blog.execute("ALTER TABLE tb_post DISABLE TRIGGER tview_after_update")
    blog.execute("UPDATE tb_post SET title = 'missed' WHERE pk_post = 4")
    result = check_command("--json", "--deep", "--fix", "--yes")
    assert (result.returncode, json.loads(result.stdout)) == (0, []), result.stderr
    assert result.stderr.splitlines() == [
        "fixed disabled_trigger public.tv_post: public.tv_post: re-created 0 trigger(s), re-enabled 1 trigger(s)"
        " on public.tb_post; refreshed public.tv_post (2 row(s) written)",   # and tv_post_card
        "fixed drift public.tv_post: SELECT tview.refresh('public.tv_post') already ran"]
    assert_oracle(blog)
