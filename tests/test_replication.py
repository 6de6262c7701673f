"""Logical replication (SPEC section 3, Lifecycle): a subscription's apply worker fires row triggers
only (in replica sessions), never the engine's statement triggers. TVIEWs over subscribed tables
follow the applied rows anyway, health() reports a subscribed table they do not follow, and tv_*
tables can be published like any table.

One cluster of the server's version with wal_level = logical, three databases: the publisher, the
subscriber with the engine, and a mirror subscribing to the subscriber's TVIEW.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tview_tui import installer
from tview_tui.embedded import TemporaryServer

from engine_helpers import USER_POST_TVIEWS, server_tools
from oracle import assert_oracle

pytestmark = pytest.mark.slow

TABLES = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text NOT NULL);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int NOT NULL, title text NOT NULL);
"""
ROWS = """
INSERT INTO tb_user SELECT g, 'user ' || g FROM generate_series(1, 5) g;
INSERT INTO tb_post SELECT g, 1 + g % 5, 'post ' || g FROM generate_series(1, 20) g;
"""


# The cluster's log, for the message of a wait that timed out (the workers' errors are there).
SERVER_LOG: list[Path] = []


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            log = SERVER_LOG[0].read_text(errors="replace")[-4000:] if SERVER_LOG else ""
            raise AssertionError(f"{what}: not reached in {timeout:g} s; the cluster's log ends:\n{log}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(server_dsn: str) -> Iterator[str]:
    """A cluster of the server under test's version that can publish (wal_level = logical)."""
    with psycopg.connect(server_dsn) as conn:
        bin_dir = server_tools(conn)
    server = TemporaryServer(bin_dir=bin_dir)
    try:
        admin = server.start()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET wal_level = logical")
            # an apply worker per subscription and table-copy workers beside them
            conn.execute("ALTER SYSTEM SET max_logical_replication_workers = 16")
            conn.execute("ALTER SYSTEM SET max_worker_processes = 24")
        server.stop()
        server.start()
        SERVER_LOG[:] = [server.data_dir / "server.log"]
        yield admin
    finally:
        SERVER_LOG.clear()
        server.cleanup()


def database(admin: str, setup: str = "", engine: bool = False) -> str:
    name = f"tview_repl_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(admin, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if engine:
            installer.install(conn)
        if setup:
            conn.execute(setup)
    return dsn


@pytest.fixture
def subscribe() -> Iterator[Callable[[str, str, str], None]]:
    """subscribe(publisher, subscriber, publication): a subscription, its slot made beforehand
    (as one cluster needs); dropped with its slot after the test, freeing its workers."""
    made: list[tuple[str, str]] = []

    def make(publisher: str, subscriber: str, publication: str) -> None:
        name = f"s_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(publisher, autocommit=True) as conn:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))
        with psycopg.connect(subscriber, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {}"
                                 " WITH (create_slot = false, slot_name = {})")
                         .format(sql.Identifier(name), sql.Literal(publisher), sql.Identifier(publication),
                                 sql.Literal(name)))
        made.append((subscriber, name))

    yield make
    for subscriber, name in reversed(made):
        with psycopg.connect(subscriber, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(name)))


def rows(dsn: str, query: str) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def caught_up(publisher: str, subscriber: str) -> bool:
    query = "SELECT (SELECT array_agg(u ORDER BY pk_user) FROM tb_user u), (SELECT array_agg(p ORDER BY pk_post) FROM tb_post p)"
    return rows(publisher, query) == rows(subscriber, query)


def replicate(cluster: str, subscribe, subscriber_tables: str = TABLES, publisher_tables: str = TABLES,
              published: str = "tb_user, tb_post") -> tuple[str, str]:
    """A publisher of the blog's tables (those named by published) and a subscriber with
    subscriber_tables (the same names), the engine and TVIEWs over them, after the initial copy:
    their DSNs."""
    publisher = database(cluster, publisher_tables + ROWS + f"CREATE PUBLICATION blog FOR TABLE {published};")
    subscriber = database(cluster, subscriber_tables + USER_POST_TVIEWS, engine=True)
    subscribe(publisher, subscriber, "blog")
    wait_until(lambda: caught_up(publisher, subscriber), "the initial copy")
    return publisher, subscriber


@pytest.fixture
def replicated(cluster, subscribe) -> tuple[str, str]:
    return replicate(cluster, subscribe)


def findings(dsn: str) -> list[tuple]:
    return rows(dsn, "SELECT check_name, tview, detail, fix FROM tview.health() WHERE check_name = 'unfollowed_replication'")


def test_tviews_follow_the_rows_a_subscription_applies_and_can_be_published(cluster, replicated, subscribe):
    publisher, subscriber = replicated
    with psycopg.connect(publisher, autocommit=True) as conn:
        conn.execute("UPDATE tb_user SET name = 'renamed' WHERE pk_user = 1")
        conn.execute("INSERT INTO tb_post VALUES (21, 1, 'new'), (22, 2, 'newer')")
        conn.execute("UPDATE tb_post SET fk_user = 3 WHERE pk_post = 5")
        conn.execute("DELETE FROM tb_post WHERE pk_post IN (6, 7)")
        with conn.transaction():                       # one applied transaction, several statements
            conn.execute("UPDATE tb_user SET name = name || '!' WHERE pk_user > 3")
            conn.execute("INSERT INTO tb_user VALUES (6, 'user 6')")
            conn.execute("INSERT INTO tb_post VALUES (23, 6, 'by six')")
    wait_until(lambda: caught_up(publisher, subscriber), "the writes replicated")
    with psycopg.connect(subscriber, autocommit=True) as conn:
        assert conn.execute("SELECT data->'author'->>'name' FROM tv_post WHERE pk_post = 21").fetchone() == ("renamed",)
        assert conn.execute("SELECT data->>'posts' FROM tv_post_count WHERE pk_user = 6").fetchone() == ("1",)
        assert conn.execute("SELECT count(*) FROM tview.queue").fetchone() == (0,)
        assert_oracle(conn)
        assert findings(subscriber) == []

    # the subscriber's TVIEW published on to a mirror, where it is a plain table
    with psycopg.connect(subscriber, autocommit=True) as conn:
        conn.execute("CREATE PUBLICATION posts FOR TABLE tv_post")
    mirror = database(cluster, "CREATE TABLE tv_post (pk_post bigint PRIMARY KEY, fk_user bigint, data jsonb)")
    subscribe(subscriber, mirror, "posts")
    query = "SELECT pk_post, data FROM tv_post ORDER BY pk_post"
    wait_until(lambda: rows(mirror, query) == rows(subscriber, query), "the TVIEW's rows on the mirror")
    with psycopg.connect(publisher, autocommit=True) as conn:
        conn.execute("UPDATE tb_user SET name = 'twice renamed' WHERE pk_user = 1")
        conn.execute("TRUNCATE tb_post")
    wait_until(lambda: caught_up(publisher, subscriber), "the rename and TRUNCATE replicated")
    with psycopg.connect(subscriber, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM tv_post").fetchone() == (0,)
        assert_oracle(conn)
    wait_until(lambda: rows(mirror, query) == [], "the emptied TVIEW on the mirror")


def test_health_reports_a_subscribed_table_the_tviews_do_not_follow(replicated):
    publisher, subscriber = replicated
    with psycopg.connect(subscriber, autocommit=True) as conn:
        conn.execute("DROP TRIGGER tview_replicated ON tb_post")
    found = findings(subscriber)
    assert [(f[0], f[1]) for f in found] == [("unfollowed_replication", "public.tv_post"),
                                              ("unfollowed_replication", "public.tv_post_count")]
    assert "tb_post receives rows from a subscription" in found[0][2]
    with psycopg.connect(publisher, autocommit=True) as conn:
        conn.execute("INSERT INTO tb_post VALUES (30, 2, 'missed')")
    wait_until(lambda: caught_up(publisher, subscriber), "the insert replicated")
    assert rows(subscriber, "SELECT count(*) FROM tv_post WHERE pk_post = 30") == [(0,)]   # not followed: stale
    with psycopg.connect(subscriber, autocommit=True) as conn:
        for statement in dict.fromkeys(f[3] for f in found):     # the fixes as given
            conn.execute(statement)
        assert findings(subscriber) == []
        assert_oracle(conn)
    with psycopg.connect(publisher, autocommit=True) as conn:
        conn.execute("INSERT INTO tb_post VALUES (31, 2, 'followed')")
    wait_until(lambda: caught_up(publisher, subscriber), "the next insert replicated")
    with psycopg.connect(subscriber, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM tv_post WHERE pk_post = 31").fetchone() == (1,)
        assert_oracle(conn)


PARTITIONED = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text NOT NULL);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int NOT NULL, title text NOT NULL) PARTITION BY HASH (pk_post);
CREATE TABLE tb_post_0 PARTITION OF tb_post FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE tb_post_1 PARTITION OF tb_post FOR VALUES WITH (MODULUS 2, REMAINDER 1);
"""


@pytest.mark.parametrize("publisher_tables, published", [
    (TABLES, "tb_user, tb_post"),                          # the subscription names the parent
    (PARTITIONED, "tb_user, tb_post_0, tb_post_1"),        # it names the partitions, the TVIEWs read the parent
], ids=["parent-subscribed", "partitions-subscribed"])
def test_rows_applied_into_a_partitioned_subscriber_table_reach_the_tviews(cluster, subscribe, publisher_tables,
                                                                          published):
    """The worker routes each row into its partition, whose own row trigger follows it."""
    publisher, subscriber = replicate(cluster, subscribe, PARTITIONED, publisher_tables, published)
    with psycopg.connect(publisher, autocommit=True) as conn:
        conn.execute("UPDATE tb_post SET fk_user = 2, title = 'moved' WHERE pk_post IN (1, 2)")
        conn.execute("DELETE FROM tb_post WHERE pk_post = 3")
        conn.execute("INSERT INTO tb_post VALUES (40, 4, 'forty'), (41, 4, 'forty-one')")
        conn.execute("UPDATE tb_user SET name = 'renamed' WHERE pk_user = 4")
    wait_until(lambda: caught_up(publisher, subscriber), "the writes replicated")
    with psycopg.connect(subscriber, autocommit=True) as conn:
        assert conn.execute("SELECT data->'author'->>'name' FROM tv_post WHERE pk_post = 41").fetchone() == ("renamed",)
        assert_oracle(conn)
        assert findings(subscriber) == []
