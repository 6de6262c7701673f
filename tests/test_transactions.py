"""Transactions and concurrency: deferred mode, savepoints, 2PC, concurrent writers."""

from __future__ import annotations

import itertools
import random
import time

import psycopg
import pytest
from psycopg import IsolationLevel, errors

from tview_tui.tools.soak import WriteLoad

from engine_helpers import ORDER_BY_LINE, ORDER_TABLES, set_engine, two_writers
from oracle import assert_oracle

pytestmark = pytest.mark.engine

SCHEMA = """
CREATE TABLE tb_post (pk_post int PRIMARY KEY, title text NOT NULL);
CREATE TABLE tb_comment (pk_comment int PRIMARY KEY, fk_post int NOT NULL, body text);
INSERT INTO tb_post VALUES (1, 'one'), (2, 'two'), (3, 'three');
"""

POST = """
SELECT p.pk_post,
       jsonb_build_object(
           'title', p.title,
           'comments', coalesce((SELECT jsonb_agg(c.body ORDER BY c.pk_comment)
                                 FROM tb_comment c WHERE c.fk_post = p.pk_post), '[]')) AS data
FROM tb_post p
"""


@pytest.fixture
def posts(db):
    db.execute(SCHEMA)
    return db


def create_post(conn, mode="immediate"):
    conn.execute("SELECT tview.create('post', %s, %s)", (POST, mode))


def comments_of(conn, pk):
    return conn.execute("SELECT data->'comments' FROM tv_post WHERE pk_post = %s", (pk,)).fetchone()[0]


def post_events(conn):
    return conn.execute(
        "SELECT payload FROM tview.events WHERE payload->>'tview' = 'tv_post' ORDER BY id").fetchall()


# -- deferred mode --------------------------------------------------------------------

def test_deferred_refreshes_once_at_commit_and_leaves_nothing_queued(posts, dsn):
    create_post(posts, "deferred")
    with psycopg.connect(dsn) as conn:
        set_engine(conn, log="on")
        for i in range(20):
            conn.execute("UPDATE tb_post SET title = %s WHERE pk_post = 1", (f"t{i}",))
            conn.execute("INSERT INTO tb_comment VALUES (%s, 1, %s)", (100 + i, f"c{i}"))
        # not refreshed yet inside the transaction: deferred to commit
        assert conn.execute("SELECT data->>'title' FROM tv_post WHERE pk_post = 1").fetchone()[0] == "one"
        assert conn.execute("SELECT count(*) FROM tview.queue").fetchone()[0] == 1   # deduplicated
        conn.commit()
        events = post_events(conn)
    assert len(events) == 1, events
    assert events[0][0]["keys"] == [1] and events[0][0]["op"] == "COMMIT"
    assert posts.execute("SELECT count(*) FROM tview.queue").fetchone()[0] == 0
    assert posts.execute("SELECT count(*) FROM tview.pending").fetchone()[0] == 0
    assert comments_of(posts, 1) == [f"c{i}" for i in range(20)]
    assert_oracle(posts)


def test_set_mode_switches_between_immediate_and_deferred(posts, dsn):
    create_post(posts)
    posts.execute("SELECT tview.set_mode('post', 'deferred')")
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE tb_post SET title = 'x' WHERE pk_post = 2")
        assert conn.execute("SELECT data->>'title' FROM tv_post WHERE pk_post = 2").fetchone()[0] == "two"
        conn.commit()
    assert_oracle(posts)
    posts.execute("SELECT tview.set_mode('post', 'immediate')")
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE tb_post SET title = 'y' WHERE pk_post = 2")
        assert conn.execute("SELECT data->>'title' FROM tv_post WHERE pk_post = 2").fetchone()[0] == "y"
        conn.rollback()
    with pytest.raises(errors.InvalidParameterValue):
        posts.execute("SELECT tview.set_mode('post', 'sometimes')")


@pytest.mark.parametrize("constraints", ["ALL", "tview.tview_flush_at_commit"])
def test_deferred_mode_under_set_constraints_immediate_refreshes_at_each_statement(posts, dsn, constraints):
    """SET CONSTRAINTS ... IMMEDIATE makes the commit-time flush run at the end of each statement:
    every write, the last one included, is in the TVIEW, and nothing stays queued. Back to
    DEFERRED, the transaction's later writes wait for the commit again."""
    create_post(posts, "deferred")
    with psycopg.connect(dsn) as conn:
        conn.execute(f"SET CONSTRAINTS {constraints} IMMEDIATE")
        conn.execute("UPDATE tb_post SET title = 'a' WHERE pk_post = 1")
        assert conn.execute("SELECT data->>'title' FROM tv_post WHERE pk_post = 1").fetchone()[0] == "a"
        conn.execute("INSERT INTO tb_comment VALUES (1, 1, 'x'), (2, 2, 'y')")
        conn.execute("UPDATE tb_post SET title = 'b' WHERE pk_post = 1")
        assert conn.execute("SELECT data->>'title' FROM tv_post WHERE pk_post = 1").fetchone()[0] == "b"
        assert conn.execute("SELECT count(*) FROM tview.queue").fetchone()[0] == 0
        conn.execute(f"SET CONSTRAINTS {constraints} DEFERRED")
        conn.execute("UPDATE tb_post SET title = 'c' WHERE pk_post = 2")
        assert conn.execute("SELECT data->>'title' FROM tv_post WHERE pk_post = 2").fetchone()[0] == "two"
        conn.commit()
    assert comments_of(posts, 1) == ["x"] and comments_of(posts, 2) == ["y"]
    assert posts.execute("SELECT data->>'title' FROM tv_post ORDER BY pk_post").fetchall() == [("b",), ("c",), ("three",)]
    assert posts.execute("SELECT (SELECT count(*) FROM tview.queue), (SELECT count(*) FROM tview.pending)").fetchone() == (0, 0)
    assert_oracle(posts)


def test_set_constraints_all_immediate_midway_flushes_what_was_queued(posts, dsn):
    """Writes queued under the deferred default, then SET CONSTRAINTS ALL IMMEDIATE: the queue is
    flushed there (as PostgreSQL runs pending deferred triggers), and the single last write too."""
    create_post(posts, "deferred")
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE tb_post SET title = 'q' WHERE pk_post = 3")
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
        assert conn.execute("SELECT data->>'title' FROM tv_post WHERE pk_post = 3").fetchone()[0] == "q"
        conn.execute("UPDATE tb_comment SET body = 'edited' WHERE pk_comment = 1")
        conn.execute("INSERT INTO tb_comment VALUES (7, 3, 'last')")
        conn.commit()
    assert comments_of(posts, 3) == ["last"]
    assert posts.execute("SELECT (SELECT count(*) FROM tview.queue), (SELECT count(*) FROM tview.pending)").fetchone() == (0, 0)
    assert_oracle(posts)


@pytest.mark.parametrize("mode", ["immediate", "deferred"])
def test_savepoint_script_leaves_exactly_the_committed_writes(posts, dsn, mode):
    create_post(posts, mode)
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO tb_comment VALUES (1, 1, 'c1')")
        conn.execute("INSERT INTO tb_comment VALUES (2, 1, 'c2')")
        conn.execute("SAVEPOINT a")
        conn.execute("INSERT INTO tb_comment VALUES (3, 1, 'c3')")
        conn.execute("SAVEPOINT b")
        conn.execute("INSERT INTO tb_comment VALUES (4, 2, 'c4')")
        conn.execute("ROLLBACK TO SAVEPOINT a")
        conn.execute("INSERT INTO tb_comment VALUES (5, 1, 'c5')")
        conn.execute("INSERT INTO tb_comment VALUES (6, 3, 'c6')")
        conn.commit()
    assert [r[0] for r in posts.execute("SELECT pk_comment FROM tb_comment ORDER BY 1")] == [1, 2, 5, 6]
    assert comments_of(posts, 1) == ["c1", "c2", "c5"]
    assert comments_of(posts, 2) == []
    assert comments_of(posts, 3) == ["c6"]
    assert posts.execute("SELECT count(*) FROM tview.queue").fetchone()[0] == 0
    assert_oracle(posts)


@pytest.mark.parametrize("mode", ["immediate", "deferred"])
def test_rollback_leaves_tviews_untouched(posts, dsn, mode):
    create_post(posts, mode)
    before = posts.execute("SELECT pk_post, data::text FROM tv_post ORDER BY 1").fetchall()
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO tb_comment VALUES (1, 1, 'gone')")
        conn.execute("UPDATE tb_post SET title = 'gone'")
        conn.execute("DELETE FROM tb_post WHERE pk_post = 3")
        conn.rollback()
    assert posts.execute("SELECT pk_post, data::text FROM tv_post ORDER BY 1").fetchall() == before
    assert posts.execute("SELECT count(*) FROM tview.queue").fetchone()[0] == 0


def test_refresh_error_at_commit_aborts_the_transaction(db, dsn):
    db.execute(ORDER_TABLES)
    db.execute("INSERT INTO tb_order VALUES (1, 'a')")
    # one row per line: a second line of an order duplicates the key
    db.execute("SELECT tview.create('order', %s, 'deferred')", (ORDER_BY_LINE,))
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO tb_line VALUES (1, 1), (2, 1)")
        with pytest.raises(errors.UniqueViolation) as err:
            conn.commit()
        assert "tv_order" in str(err.value)
    assert db.execute("SELECT count(*) FROM tb_line").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM tview.queue").fetchone()[0] == 0
    assert_oracle(db)


# -- two-phase commit -----------------------------------------------------------------

@pytest.mark.parametrize("mode", ["immediate", "deferred"])
@pytest.mark.parametrize("finish", ["COMMIT PREPARED", "ROLLBACK PREPARED"])
def test_prepared_transactions_keep_tviews_right(posts, dsn, mode, finish):
    create_post(posts, mode)
    gid = f"tview-{mode}-{finish.split()[0].lower()}"
    before = posts.execute("SELECT pk_post, data::text FROM tv_post ORDER BY 1").fetchall()
    with psycopg.connect(dsn, autocommit=True) as conn:
        set_engine(conn, log="on", notify="on")        # the database's: events logged, and notified
        conn.execute("BEGIN")
        conn.execute("SET LOCAL tview.notify = off")   # NOTIFY cannot be PREPAREd: a session may turn it off
        conn.execute("INSERT INTO tb_comment VALUES (1, 1, 'prepared')")
        conn.execute("UPDATE tb_post SET title = 'p' WHERE pk_post = 2")
        conn.execute(f"PREPARE TRANSACTION '{gid}'")
        conn.execute(f"{finish} '{gid}'")
    if finish == "COMMIT PREPARED":
        assert comments_of(posts, 1) == ["prepared"]
        assert posts.execute("SELECT data->>'title' FROM tv_post WHERE pk_post = 2").fetchone()[0] == "p"
        assert len(post_events(posts)) >= 1
    else:
        assert posts.execute("SELECT pk_post, data::text FROM tv_post ORDER BY 1").fetchall() == before
        assert post_events(posts) == []
    assert posts.execute("SELECT count(*) FROM tview.queue").fetchone()[0] == 0
    assert_oracle(posts)


def test_prepare_with_notify_on_is_refused_by_postgres(posts, dsn):
    """Documents why tview.notify = off exists: PostgreSQL refuses to PREPARE after NOTIFY."""
    create_post(posts)
    set_engine(posts, notify="on")      # (the default, auto, sends nothing while no listener is registered)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO tb_comment VALUES (1, 1, 'x')")
        with pytest.raises(errors.FeatureNotSupported):
            conn.execute("PREPARE TRANSACTION 'tview-notify'")


# -- concurrency ----------------------------------------------------------------------

def lost_update_scenario(dsn: str, row_locks: str) -> list:
    """Two transactions each add a comment to post 1; the first commits while the second
    is refreshing. Returns post 1's comments afterwards."""
    two_writers(dsn, "INSERT INTO tb_comment VALUES (1, 1, 'first')",
                "INSERT INTO tb_comment VALUES (2, 1, 'second')", row_locks)
    with psycopg.connect(dsn) as check:
        return comments_of(check, 1)


def test_read_committed_lost_update_is_prevented_by_row_locks(posts, dsn):
    create_post(posts)
    assert lost_update_scenario(dsn, "on") == ["first", "second"]
    assert_oracle(posts)


def test_lost_update_happens_without_row_locks(posts, dsn):
    """The scenario above really exercises the race: with the locks off it loses a child."""
    create_post(posts)
    assert lost_update_scenario(dsn, "off") != ["first", "second"]


AUTHORS = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text NOT NULL);
CREATE TABLE tb_note (pk_note int PRIMARY KEY, fk_user int NOT NULL, body text);
INSERT INTO tb_user VALUES (1, 'ann'), (2, 'bob');
INSERT INTO tb_note VALUES (1, 1, 'old note');
SELECT tview.create('note', $$SELECT n.pk_note, n.fk_user,
                                     jsonb_build_object('body', n.body, 'author', u.name) AS data
                              FROM tb_note n JOIN tb_user u ON u.pk_user = n.fk_user$$);
"""
RENAME = "UPDATE tb_user SET name = 'ann renamed' WHERE pk_user = 1"
NEW_NOTE = "INSERT INTO tb_note VALUES (2, 1, 'new note')"


@pytest.mark.parametrize("first_sql, second_sql", [(NEW_NOTE, RENAME), (RENAME, NEW_NOTE)],
                         ids=["note-then-rename", "rename-then-note"])
def test_a_new_row_and_a_change_of_the_row_it_joins_from_two_transactions(db, dsn, first_sql, second_sql):
    """Write skew: each transaction's keys come from its own snapshot, which misses the other's row.
    The refresh share-locks the rows its definition joins, so the two serialize."""
    db.execute(AUTHORS)
    two_writers(dsn, first_sql, second_sql, "on")
    assert db.execute("SELECT data->>'author' FROM tv_note WHERE pk_note = 2").fetchone()[0] == "ann renamed"
    assert_oracle(db)


@pytest.mark.parametrize("first_sql, second_sql", [(NEW_NOTE, RENAME), (RENAME, NEW_NOTE)],
                         ids=["note-then-rename", "rename-then-note"])
def test_the_write_skew_happens_without_row_locks(db, dsn, first_sql, second_sql):
    """The scenario above really exercises the race: with the locks off the new note keeps the old name."""
    db.execute(AUTHORS)
    two_writers(dsn, first_sql, second_sql, "off")
    assert db.execute("SELECT data->>'author' FROM tv_note WHERE pk_note = 2").fetchone()[0] == "ann"


@pytest.mark.parametrize("renamer_level, writer_level", [
    ("serializable", "serializable"), ("repeatable read", "read committed"), ("serializable", "read committed"),
    ("repeatable read", "repeatable read")])
def test_a_writer_whose_snapshot_misses_a_row_gets_a_serialization_failure(db, dsn, renamer_level, writer_level):
    """The renaming transaction's snapshot predates the new note: it cannot refresh what it cannot
    see, whatever the level of the transaction that wrote the note; it fails with 40001 and its
    retry renames the note too."""
    db.execute(AUTHORS)
    renamer, writer = psycopg.connect(dsn), psycopg.connect(dsn, autocommit=True)
    try:
        writer.execute(f"SET default_transaction_isolation = '{writer_level}'")
        renamer.execute(f"SET TRANSACTION ISOLATION LEVEL {renamer_level}")
        renamer.execute("SELECT count(*) FROM tb_note")          # its snapshot, before the new note
        writer.execute(NEW_NOTE)
        with pytest.raises(errors.SerializationFailure):
            renamer.execute(RENAME)
            renamer.commit()
        renamer.rollback()
        renamer.execute(RENAME)                                   # the retry sees the note
        renamer.commit()
    finally:
        renamer.close()
        writer.close()
    assert db.execute("SELECT data->>'author' FROM tv_note WHERE pk_note = 2").fetchone()[0] == "ann renamed"
    assert_oracle(db)


def test_a_read_committed_writer_waits_for_a_repeatable_read_writer_and_sees_its_commit(db, dsn):
    """The other order: the REPEATABLE READ renamer wrote first; the note's writer waits for its
    commit before refreshing, so the note carries the new name."""
    db.execute(AUTHORS)
    two_writers(dsn, RENAME, NEW_NOTE, first_isolation=IsolationLevel.REPEATABLE_READ, must_wait=True)
    assert db.execute("SELECT data->>'author' FROM tv_note WHERE pk_note = 2").fetchone()[0] == "ann renamed"
    assert_oracle(db)


def test_the_serialization_failure_says_why_and_what_to_do(db, dsn):
    db.execute(AUTHORS)
    renamer, writer = psycopg.connect(dsn), psycopg.connect(dsn, autocommit=True)
    try:
        renamer.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        renamer.execute("SELECT 1")
        writer.execute(NEW_NOTE)
        with pytest.raises(errors.SerializationFailure) as failure:
            renamer.execute(RENAME)
        diag = failure.value.diag
        assert "TVIEW" in diag.message_primary and "snapshot" in diag.message_primary
        assert diag.message_detail.startswith("repeatable read")
        assert "Retry" in diag.message_hint
    finally:
        renamer.close()
        writer.close()


TWO_TVIEWS = """
CREATE TABLE tb_a (pk_a int PRIMARY KEY, v int);
CREATE TABLE tb_b (pk_b int PRIMARY KEY, v int);
INSERT INTO tb_a VALUES (1, 0), (2, 0);
INSERT INTO tb_b VALUES (1, 0), (2, 0);
SELECT tview.create('a', 'SELECT pk_a, jsonb_build_object(''v'', v) AS data FROM tb_a');
SELECT tview.create('b', 'SELECT pk_b, jsonb_build_object(''v'', v) AS data FROM tb_b');
"""


@pytest.mark.parametrize("level", [IsolationLevel.REPEATABLE_READ, IsolationLevel.SERIALIZABLE])
def test_snapshot_writers_crossing_two_tviews_fail_at_once_instead_of_deadlocking(db, dsn, level):
    """Two writers each change their own row of one TVIEW's table, then of the other's. The one that
    reaches a TVIEW the other is maintaining gets 40001 at once: waiting could only end in a 40001
    (its snapshot misses the other's work) or, here, in a deadlock. Its retry goes through."""
    db.execute(TWO_TVIEWS)
    first, second = psycopg.connect(dsn), psycopg.connect(dsn)
    try:
        for conn in (first, second):
            conn.isolation_level = level
            conn.execute("SET statement_timeout = '10s'")  # a wait would end here, in a 57014
        first.execute("UPDATE tb_a SET v = 1 WHERE pk_a = 1")
        second.execute("UPDATE tb_b SET v = 2 WHERE pk_b = 2")
        with pytest.raises(errors.SerializationFailure) as failure:
            first.execute("UPDATE tb_b SET v = 1 WHERE pk_b = 1")
        assert "another transaction" in failure.value.diag.message_primary
        first.rollback()
        second.execute("UPDATE tb_a SET v = 2 WHERE pk_a = 2")
        second.commit()
        first.execute("UPDATE tb_a SET v = 1 WHERE pk_a = 1")          # the retry
        first.execute("UPDATE tb_b SET v = 1 WHERE pk_b = 1")
        first.commit()
    finally:
        first.close()
        second.close()
    assert db.execute("SELECT array_agg(data->>'v' ORDER BY pk_a) FROM tv_a").fetchone()[0] == ["1", "2"]
    assert db.execute("SELECT array_agg(data->>'v' ORDER BY pk_b) FROM tv_b").fetchone()[0] == ["1", "2"]
    assert_oracle(db)


def test_new_parent_and_its_child_from_two_transactions(db, dsn):
    """A child written while its (not yet committed) parent is being created elsewhere."""
    db.execute("""
        CREATE TABLE tb_post (pk_post int PRIMARY KEY, title text);
        CREATE TABLE tb_comment (pk_comment int PRIMARY KEY, fk_post int, body text);
    """)
    create_post(db)
    two_writers(dsn, "INSERT INTO tb_post VALUES (9, 'new')", "INSERT INTO tb_comment VALUES (1, 9, 'early')")
    assert comments_of(db, 9) == ["early"]
    assert_oracle(db)


def test_repeatable_read_conflict_is_a_serialization_failure(posts, dsn):
    create_post(posts)
    first = psycopg.connect(dsn)
    second = psycopg.connect(dsn)
    try:
        second.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        second.execute("SELECT 1 FROM tb_post LIMIT 1")        # take the snapshot now
        first.execute("INSERT INTO tb_comment VALUES (1, 1, 'first')")
        first.commit()
        with pytest.raises(errors.SerializationFailure):
            second.execute("INSERT INTO tb_comment VALUES (2, 1, 'second')")
        second.rollback()
    finally:
        first.close()
        second.close()
    assert comments_of(posts, 1) == ["first"]
    assert_oracle(posts)


@pytest.mark.slow
def test_concurrent_random_writers_keep_the_oracle(posts, dsn):
    """N writers over shared parents for a bounded time, retrying 40001/40P01 (the soak's WriteLoad)."""
    create_post(posts)
    ids = itertools.count(1000)          # next() of a count is atomic: unique keys across writers

    def transaction(conn: psycopg.Connection, rng: random.Random) -> bool:
        for _ in range(rng.randint(1, 3)):
            action = rng.random()
            post = rng.randint(1, 3)
            if action < 0.5:
                conn.execute("INSERT INTO tb_comment VALUES (%s, %s, %s)", (next(ids), post, "w"))
            elif action < 0.7:
                conn.execute("UPDATE tb_comment SET fk_post = %s WHERE pk_comment IN "
                             "(SELECT pk_comment FROM tb_comment ORDER BY random() LIMIT 1)", (post,))
            elif action < 0.85:
                conn.execute("DELETE FROM tb_comment WHERE pk_comment IN "
                             "(SELECT pk_comment FROM tb_comment ORDER BY random() LIMIT 1)")
            else:
                conn.execute("UPDATE tb_post SET title = %s WHERE pk_post = %s", (f"t{rng.random():.4f}", post))
        return True

    load = WriteLoad(dsn, writers=4, transaction=transaction, session_sql=())
    load.start()
    time.sleep(4.0)
    load.stop()
    stats = load.stats
    assert stats.errors == 0 and stats.connection_errors == 0 and stats.conflicts == 0, stats.error_samples
    print(f"\nconcurrent writers: {stats.commits} commits, {stats.retries} retries")
    assert stats.commits > 0
    assert_oracle(posts)
