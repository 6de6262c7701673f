"""Lifecycle (SPEC section 3): TVIEWs stay exact across what a production database goes through.

Partitioned tables and inheritance children: writes through the parent or straight into a
partition or child, partitions and children created, attached, detached, (un)inherited and
dropped later, TRUNCATE of one partition. After every step the oracle compares every TVIEW
with its definition, both ways.
"""

from __future__ import annotations

import psycopg
import pytest

from engine_helpers import damage, prepared_database, refused
from oracle import assert_oracle

pytestmark = pytest.mark.engine

# Users and their posts, the posts partitioned by range of key (two levels: 2 is itself
# partitioned by list of kind); post embeds its author, user aggregates its posts (child
# lineage over the partitioned table), and a third TVIEW reads one partition directly.
PARTITIONED = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text NOT NULL);
CREATE TABLE tb_post (pk_post int NOT NULL, fk_user int NOT NULL, kind text NOT NULL DEFAULT 'a', title text,
                      PRIMARY KEY (pk_post, kind)) PARTITION BY RANGE (pk_post);
CREATE TABLE tb_post_1 PARTITION OF tb_post FOR VALUES FROM (0) TO (100);
CREATE TABLE tb_post_2 PARTITION OF tb_post FOR VALUES FROM (100) TO (200) PARTITION BY LIST (kind);
CREATE TABLE tb_post_2a PARTITION OF tb_post_2 FOR VALUES IN ('a');
CREATE TABLE tb_post_2b PARTITION OF tb_post_2 FOR VALUES IN ('b');
INSERT INTO tb_user SELECT g, 'u' || g FROM generate_series(1, 5) g;
INSERT INTO tb_post SELECT g, 1 + g % 5, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, 't' || g
FROM generate_series(1, 20) g UNION ALL
SELECT g, 1 + g % 5, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END, 't' || g FROM generate_series(100, 120) g;
SELECT tview.create('post', $$
    SELECT p.pk_post, p.fk_user, jsonb_build_object('title', p.title, 'kind', p.kind, 'author', u.name) AS data
    FROM tb_post p JOIN tb_user u ON u.pk_user = p.fk_user $$);
SELECT tview.create('user', $$
    SELECT u.pk_user, jsonb_build_object('name', u.name, 'posts',
           coalesce((SELECT jsonb_agg(p.title ORDER BY p.pk_post) FROM tb_post p WHERE p.fk_user = u.pk_user), '[]'))
           AS data
    FROM tb_user u $$);
SELECT tview.create('old_post', $$
    SELECT p.pk_post, jsonb_build_object('title', p.title) AS data FROM tb_post_1 p $$);
"""


def build_parts(db: psycopg.Connection) -> None:
    db.execute(PARTITIONED)
    assert_oracle(db)


parts = prepared_database(build_parts, name="parts")


def titles(db: psycopg.Connection, user: int) -> list[str]:
    return db.execute("SELECT data->'posts' FROM tv_user WHERE pk_user = %s", (user,)).fetchone()[0]


@pytest.mark.parametrize("statement", [
    "INSERT INTO tb_post_1 VALUES (50, 1, 'a', 'direct')",
    "INSERT INTO tb_post_2a SELECT g, 2, 'a', 'bulk' || g FROM generate_series(150, 199) g",
    "INSERT INTO tb_post_2 VALUES (130, 3, 'b', 'mid-level')",
    "UPDATE tb_post_1 SET title = title || '!', fk_user = 5 WHERE pk_post <= 10",
    "UPDATE tb_post_2b SET fk_user = 1",
    "UPDATE tb_post_2 SET kind = 'b' WHERE pk_post = 100",           # moves between sub-partitions
    "UPDATE tb_post SET pk_post = pk_post + 150 WHERE pk_post = 3",    # moves between partitions
    "DELETE FROM tb_post_1 WHERE pk_post % 3 = 0",
    "DELETE FROM tb_post_2a",
    "MERGE INTO tb_post_1 t USING (VALUES (1, 'm1'), (60, 'm60')) s(k, title) ON t.pk_post = s.k"
    " WHEN MATCHED THEN UPDATE SET title = s.title WHEN NOT MATCHED THEN INSERT VALUES (s.k, 4, 'a', s.title)",
    "INSERT INTO tb_post_1 VALUES (1, 3, 'b', 'upserted') ON CONFLICT (pk_post, kind) DO UPDATE SET title = 'upserted'",
    "TRUNCATE tb_post_1",
    "TRUNCATE tb_post_2b",
    "TRUNCATE tb_post",
])
def test_writes_straight_into_a_partition(parts, statement):
    parts.execute(statement)
    assert_oracle(parts)


def test_rolled_back_writes_into_partitions(parts):
    parts.execute("BEGIN")
    parts.execute("INSERT INTO tb_post_1 VALUES (70, 1, 'a', 'kept')")
    parts.execute("SAVEPOINT s")
    parts.execute("DELETE FROM tb_post_2a")
    parts.execute("TRUNCATE tb_post_1")
    assert_oracle(parts)
    parts.execute("ROLLBACK TO SAVEPOINT s")
    parts.execute("UPDATE tb_post_2b SET title = 'after' WHERE pk_post = 101")
    assert_oracle(parts)
    parts.execute("COMMIT")
    assert "kept" in titles(parts, 1)
    assert_oracle(parts)
    parts.execute("BEGIN")
    parts.execute("INSERT INTO tb_post_1 VALUES (71, 1, 'a', 'gone')")
    parts.execute("ROLLBACK")
    assert "gone" not in titles(parts, 1)
    assert_oracle(parts)


def test_a_partition_created_later_is_followed(parts):
    parts.execute("CREATE TABLE tb_post_3 PARTITION OF tb_post FOR VALUES FROM (200) TO (300)")
    parts.execute("INSERT INTO tb_post_3 VALUES (200, 1, 'a', 'new partition')")
    assert "new partition" in titles(parts, 1)
    parts.execute("UPDATE tb_post_3 SET fk_user = 2")
    parts.execute("CREATE TABLE tb_post_2c PARTITION OF tb_post_2 FOR VALUES IN ('c')")
    parts.execute("INSERT INTO tb_post_2c VALUES (160, 3, 'c', 'sub-partition')")
    assert_oracle(parts)
    parts.execute("TRUNCATE tb_post_3")
    parts.execute("DELETE FROM tb_post_2c")
    assert_oracle(parts)


def test_attach_and_detach_refresh_the_rows_they_move(parts):
    parts.execute("CREATE TABLE tb_post_4 (LIKE tb_post INCLUDING DEFAULTS)")
    parts.execute("INSERT INTO tb_post_4 VALUES (400, 1, 'a', 'attached'), (401, 2, 'b', 'attached too')")
    parts.execute("UPDATE tb_post_4 SET title = 'still outside' WHERE pk_post = 401")
    assert_oracle(parts)
    parts.execute("ALTER TABLE tb_post ATTACH PARTITION tb_post_4 FOR VALUES FROM (400) TO (500)")
    assert "attached" in titles(parts, 1)
    assert_oracle(parts)
    parts.execute("INSERT INTO tb_post_4 VALUES (402, 3, 'a', 'written after')")
    assert_oracle(parts)
    parts.execute("ALTER TABLE tb_post DETACH PARTITION tb_post_1")
    assert parts.execute("SELECT count(*) FROM tv_post WHERE pk_post < 100").fetchone() == (0,)
    assert_oracle(parts)
    # detached, the table is still read by old_post (directly); it is no longer a post
    parts.execute("INSERT INTO tb_post_1 VALUES (90, 1, 'a', 'outside')")
    assert "outside" not in titles(parts, 1)
    assert_oracle(parts)
    # a partitioned table attached with its own partitions
    parts.execute("ALTER TABLE tb_post DETACH PARTITION tb_post_2")
    assert_oracle(parts)
    parts.execute("ALTER TABLE tb_post ATTACH PARTITION tb_post_2 FOR VALUES FROM (100) TO (200)")
    parts.execute("ALTER TABLE tb_post ATTACH PARTITION tb_post_1 FOR VALUES FROM (0) TO (100)")
    assert_oracle(parts)
    parts.execute("UPDATE tb_post_2b SET title = 'back' WHERE pk_post = 101")
    assert_oracle(parts)


def test_detach_concurrently_and_its_finalize_refresh_the_rows_they_move(parts, dsn):
    """DETACH CONCURRENTLY runs in two transactions of its own (no transaction block); a
    writer in another session goes on writing into the partition before and after."""
    with psycopg.connect(dsn, autocommit=True) as writer:
        writer.execute("UPDATE tb_post SET title = 'before' WHERE pk_post = 5")
        parts.execute("ALTER TABLE tb_post DETACH PARTITION tb_post_1 CONCURRENTLY")
        assert parts.execute("SELECT count(*) FROM tv_post WHERE pk_post < 100").fetchone() == (0,)
        assert "before" not in titles(parts, 1)
        assert_oracle(parts)
        writer.execute("UPDATE tb_post_1 SET title = 'outside now' WHERE pk_post = 5")
        assert "outside now" not in titles(parts, 1)
        assert_oracle(parts)
        parts.execute("ALTER TABLE tb_post ATTACH PARTITION tb_post_1 FOR VALUES FROM (0) TO (100)")
        assert "outside now" in titles(parts, 1)
        writer.execute("INSERT INTO tb_post VALUES (95, 1, 'a', 'through the parent again')")
        assert "through the parent again" in titles(parts, 1)
        assert_oracle(parts)


def test_an_interrupted_detach_concurrently_and_its_finalize(parts, dsn):
    """The second transaction of DETACH CONCURRENTLY waits for every older snapshot; cancelled
    there, the partition stays "detach pending" (left out of the parent already) until
    DETACH ... FINALIZE. Until then health() reports it; FINALIZE brings the TVIEWs back to exact."""
    with psycopg.connect(dsn) as reader:
        reader.execute("SELECT count(*) FROM tb_post")          # an open transaction holding a snapshot
        parts.execute("SET statement_timeout = '1s'")
        with pytest.raises(psycopg.errors.QueryCanceled):
            parts.execute("ALTER TABLE tb_post DETACH PARTITION tb_post_1 CONCURRENTLY")
        parts.execute("RESET statement_timeout")
        assert parts.execute("SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'tb_post_1'::regclass"
                             ).fetchone() == (True,)
        parts.execute("UPDATE tb_post_1 SET title = 'pending' WHERE pk_post = 5")
        # the TVIEWs still hold the partition's rows, which the parent leaves out: not exact, and
        # health() says so, with the statement that ends it
        found = parts.execute("SELECT tview, detail, fix FROM tview.health() WHERE check_name = 'detach_pending'"
                              ).fetchall()
        assert len(found) == 1, found
        readers, detail, fix = found[0]
        assert set(readers.split(", ")) == {"public.tv_post", "public.tv_user"}
        assert "tb_post_1" in detail and fix.startswith("ALTER TABLE public.tb_post DETACH PARTITION public.tb_post_1 "
                                                         "FINALIZE")
        reader.rollback()
    parts.execute("ALTER TABLE tb_post DETACH PARTITION tb_post_1 FINALIZE")
    assert parts.execute("SELECT count(*) FROM tv_post WHERE pk_post < 100").fetchone() == (0,)
    assert_oracle(parts)
    parts.execute("UPDATE tb_post_1 SET title = 'outside' WHERE pk_post = 5")
    assert_oracle(parts)


def test_a_null_key_arriving_through_attach_is_refused_like_a_write(db):
    """A TVIEW whose key comes from a nullable column: an INSERT of a NULL key fails (23502);
    so does an ATTACH (or INHERIT) of a table holding one, and nothing changes."""
    db.execute("""
        CREATE TABLE tb_ev (id int NOT NULL, ref int, what text) PARTITION BY RANGE (id);
        CREATE TABLE tb_ev_1 PARTITION OF tb_ev FOR VALUES FROM (0) TO (100);
        INSERT INTO tb_ev VALUES (1, 1, 'a');
        SELECT tview.create('ev', $$SELECT e.ref AS pk_ev, jsonb_build_object('what', e.what) AS data FROM tb_ev e$$);
        CREATE TABLE tb_ev_2 (LIKE tb_ev);
        INSERT INTO tb_ev_2 VALUES (150, NULL, 'null key'), (151, 7, 'fine');
    """)
    refused(db, "INSERT INTO tb_ev VALUES (2, NULL, 'b')", None, "23502", "public.tv_ev", "pk_ev")
    refused(db, "ALTER TABLE tb_ev ATTACH PARTITION tb_ev_2 FOR VALUES FROM (100) TO (200)", None, "23502",
            "public.tv_ev", "pk_ev")
    assert db.execute("SELECT count(*) FROM pg_inherits WHERE inhrelid = 'tb_ev_2'::regclass").fetchone() == (0,)
    assert_oracle(db)
    db.execute("UPDATE tb_ev_2 SET ref = 8 WHERE ref IS NULL")
    db.execute("ALTER TABLE tb_ev ATTACH PARTITION tb_ev_2 FOR VALUES FROM (100) TO (200)")
    assert db.execute("SELECT array_agg(pk_ev ORDER BY pk_ev) FROM tv_ev").fetchone() == ([1, 7, 8],)
    assert_oracle(db)


def test_ddl_rolled_back_leaves_the_tviews_exact(parts):
    parts.execute("BEGIN")
    parts.execute("ALTER TABLE tb_post DETACH PARTITION tb_post_2")
    parts.execute("CREATE TABLE tb_post_5 PARTITION OF tb_post FOR VALUES FROM (500) TO (600)")
    parts.execute("INSERT INTO tb_post_5 VALUES (500, 1, 'a', 'rolled back')")
    assert_oracle(parts)
    parts.execute("ROLLBACK")
    assert_oracle(parts)
    parts.execute("INSERT INTO tb_post_2a VALUES (190, 1, 'a', 'after rollback')")
    assert "after rollback" in titles(parts, 1)
    assert_oracle(parts)


def test_dropping_a_partition_with_rows(parts):
    parts.execute("DROP TABLE tb_post_2")
    assert parts.execute("SELECT count(*) FROM tv_post WHERE pk_post >= 100").fetchone() == (0,)
    assert_oracle(parts)
    parts.execute("INSERT INTO tb_post_1 VALUES (99, 5, 'a', 'still followed')")
    assert_oracle(parts)
    # nothing of the engine stays behind for the dropped tables
    assert parts.execute("SELECT count(*) FROM pg_proc p WHERE pronamespace = 'tview'::regnamespace"
                         " AND proname ~ '^_capture_[0-9]+$' AND NOT EXISTS (SELECT FROM pg_class c"
                         " WHERE c.oid::text = substr(p.proname, 10))").fetchone() == (0,)


def test_the_engine_leaves_a_detached_table_it_no_longer_needs(parts):
    parts.execute("ALTER TABLE tb_post DETACH PARTITION tb_post_2")
    assert parts.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid IN"
                         " ('tb_post_2'::regclass, 'tb_post_2a'::regclass, 'tb_post_2b'::regclass)").fetchone() == (0,)
    assert parts.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tb_post_1'::regclass").fetchone() == (4,)
    parts.execute("SELECT tview.drop('old_post')")
    parts.execute("SELECT tview.drop('user')")
    parts.execute("SELECT tview.drop('post')")
    assert parts.execute("SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal"
                         " AND tgrelid::regclass::text NOT LIKE 'tview.%'").fetchall() == []
    assert parts.execute("SELECT count(*) FROM tview.members").fetchone() == (0,)


def test_health_reports_a_partition_made_behind_the_engines_back(parts):
    """Event triggers do not fire in replica sessions: the partition made there has no engine
    triggers, health() says so and its fix makes the TVIEWs exact again."""
    parts.execute("SET session_replication_role = replica")
    parts.execute("CREATE TABLE tb_post_6 PARTITION OF tb_post FOR VALUES FROM (600) TO (700)")
    parts.execute("RESET session_replication_role")
    parts.execute("INSERT INTO tb_post_6 VALUES (600, 1, 'a', 'unseen')")
    findings = parts.execute("SELECT check_name, tview, detail, fix FROM tview.health()"
                             " WHERE check_name = 'missing_trigger'").fetchall()
    assert findings and all("tb_post_6" in detail for _, _, detail, _ in findings)
    assert {tv for _, tv, _, _ in findings} == {"public.tv_post", "public.tv_user"}
    for _, _, _, fix in findings:
        parts.execute(fix)
    assert_oracle(parts)
    assert not parts.execute("SELECT 1 FROM tview.health() WHERE check_name LIKE '%trigger'").fetchall()
    parts.execute("UPDATE tb_post_6 SET title = 'seen'")
    assert_oracle(parts)


# Inheritance: events with an archive child (more columns); the TVIEW reads the parent without
# ONLY, so it holds the children's rows too.
INHERITED = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text NOT NULL);
CREATE TABLE tb_event (pk_event int NOT NULL, fk_user int NOT NULL, what text);
CREATE TABLE tb_event_archive (archived_at date) INHERITS (tb_event);
INSERT INTO tb_user SELECT g, 'u' || g FROM generate_series(1, 3) g;
INSERT INTO tb_event SELECT g, 1 + g % 3, 'e' || g FROM generate_series(1, 10) g;
INSERT INTO tb_event_archive SELECT g, 1 + g % 3, 'a' || g, date '2020-01-01' FROM generate_series(11, 20) g;
SELECT tview.create('event', $$
    SELECT e.pk_event, e.fk_user, jsonb_build_object('what', e.what, 'who', u.name) AS data
    FROM tb_event e JOIN tb_user u ON u.pk_user = e.fk_user $$);
SELECT tview.create('user', $$
    SELECT u.pk_user, jsonb_build_object('events',
           coalesce((SELECT jsonb_agg(e.what ORDER BY e.pk_event) FROM tb_event e WHERE e.fk_user = u.pk_user), '[]'))
           AS data
    FROM tb_user u $$);
"""


def build_inherited(db: psycopg.Connection) -> None:
    db.execute(INHERITED)
    assert_oracle(db)


inherited = prepared_database(build_inherited, name="inherited")


@pytest.mark.parametrize("statement", [
    "INSERT INTO tb_event_archive SELECT g, 2, 'bulk', NULL FROM generate_series(100, 150) g",
    "UPDATE tb_event_archive SET what = what || '!', fk_user = 3 WHERE pk_event < 15",
    "UPDATE tb_event SET what = 'through the parent' WHERE pk_event % 2 = 0",
    "DELETE FROM tb_event_archive WHERE pk_event > 15",
    "DELETE FROM tb_event WHERE pk_event IN (1, 12)",
    "UPDATE ONLY tb_event SET what = 'parent only'",
    "TRUNCATE tb_event_archive",
    "TRUNCATE tb_event",
    "TRUNCATE ONLY tb_event",
])
def test_writes_to_inheritance_children(inherited, statement):
    inherited.execute(statement)
    assert_oracle(inherited)


def test_children_made_inherited_and_disinherited_later(inherited):
    inherited.execute("CREATE TABLE tb_event_new () INHERITS (tb_event)")
    inherited.execute("INSERT INTO tb_event_new VALUES (30, 1, 'new child')")
    assert_oracle(inherited)
    inherited.execute("CREATE TABLE tb_event_old (LIKE tb_event)")
    inherited.execute("INSERT INTO tb_event_old VALUES (40, 2, 'adopted'), (41, 3, 'adopted too')")
    inherited.execute("ALTER TABLE tb_event_old INHERIT tb_event")
    assert inherited.execute("SELECT data->>'what' FROM tv_event WHERE pk_event = 40").fetchone() == ("adopted",)
    assert_oracle(inherited)
    inherited.execute("UPDATE tb_event_old SET what = 'edited'")
    assert_oracle(inherited)
    inherited.execute("ALTER TABLE tb_event_archive NO INHERIT tb_event")
    assert inherited.execute("SELECT count(*) FROM tv_event WHERE pk_event BETWEEN 11 AND 20").fetchone() == (0,)
    assert_oracle(inherited)
    inherited.execute("INSERT INTO tb_event_archive VALUES (50, 1, 'not an event any more', NULL)")
    assert_oracle(inherited)
    inherited.execute("DROP TABLE tb_event_new")
    assert_oracle(inherited)


def test_a_tview_reading_a_partition_follows_writes_through_the_parent(parts):
    """old_post reads tb_post_1 itself: writes routed there through tb_post (or through its
    ancestors, as a row moving out of it) reach it."""
    parts.execute("INSERT INTO tb_post VALUES (80, 1, 'a', 'routed')")
    parts.execute("UPDATE tb_post SET pk_post = 180 WHERE pk_post = 2")
    parts.execute("UPDATE tb_post SET title = 'via parent' WHERE pk_post < 10")
    assert parts.execute("SELECT data->>'title' FROM tv_old_post WHERE pk_post = 80").fetchone() == ("routed",)
    assert_oracle(parts)


def test_damage_behind_the_engine_is_not_mistaken_for_a_partition_change(parts):
    """The refresh a partition change triggers is keyed: rows of other partitions stay as the
    engine left them (here: damaged by hand, repaired by a refresh)."""
    damage(parts, "UPDATE tv_post SET data = '{}' WHERE pk_post = 120")
    parts.execute("CREATE TABLE tb_post_7 (LIKE tb_post INCLUDING DEFAULTS)")
    parts.execute("INSERT INTO tb_post_7 VALUES (700, 1, 'a', 'x')")
    parts.execute("ALTER TABLE tb_post ATTACH PARTITION tb_post_7 FOR VALUES FROM (700) TO (800)")
    assert parts.execute("SELECT data FROM tv_post WHERE pk_post = 120").fetchone() == ({},)
    parts.execute("SELECT tview.refresh('post')")
    assert_oracle(parts)


def test_deferred_tviews_over_partitions(parts):
    """Deferred TVIEWs queue the keys of direct partition writes and of attached rows, and
    refresh them at commit."""
    parts.execute("SELECT tview.set_mode('user', 'deferred'); SELECT tview.set_mode('post', 'deferred')")
    parts.execute("CREATE TABLE tb_post_8 (LIKE tb_post INCLUDING DEFAULTS)")
    parts.execute("INSERT INTO tb_post_8 VALUES (800, 4, 'a', 'deferred attach')")
    with parts.transaction():
        parts.execute("INSERT INTO tb_post_1 VALUES (55, 4, 'a', 'deferred direct')")
        parts.execute("ALTER TABLE tb_post ATTACH PARTITION tb_post_8 FOR VALUES FROM (800) TO (900)")
        parts.execute("UPDATE tb_post_2b SET fk_user = 4 WHERE pk_post = 101")
        assert "deferred direct" not in titles(parts, 4)       # not before the commit
    assert {"deferred direct", "deferred attach", "t101"} <= set(titles(parts, 4))
    assert parts.execute("SELECT count(*) FROM tview.queue").fetchone() == (0,)
    assert_oracle(parts)


# -- schema changes -------------------------------------------------------------------------

SCHEMAS = """
CREATE SCHEMA app;
CREATE SCHEMA rm;
CREATE TABLE app.tb_user (pk_user int PRIMARY KEY, name text);
CREATE TABLE app.tb_post (pk_post int PRIMARY KEY, fk_user int REFERENCES app.tb_user, title text);
INSERT INTO app.tb_user SELECT g, 'u' || g FROM generate_series(1, 5) g;
INSERT INTO app.tb_post SELECT g, 1 + g % 5, 't' || g FROM generate_series(1, 12) g;
CREATE VIEW app.v_titles AS SELECT p.pk_post, p.fk_user, p.title AS shown FROM app.tb_post p;
SELECT tview.create('user', $$SELECT u.pk_user, to_jsonb(u) AS data FROM app.tb_user u$$, schema_name => 'rm');
SELECT tview.create('post', $$SELECT t.pk_post, t.fk_user, jsonb_build_object('title', t.shown, 'author', u.data)
                              AS data FROM app.v_titles t JOIN rm.tv_user u ON u.pk_user = t.fk_user$$,
                    schema_name => 'rm');
"""


schemas = prepared_database(lambda db: db.execute(SCHEMAS), name="schemas")


def write_everywhere(db: psycopg.Connection, schema: str = "app") -> None:
    db.execute(f"UPDATE {schema}.tb_user SET name = name || '!' WHERE pk_user = 2")
    db.execute(f"INSERT INTO {schema}.tb_post VALUES (50, 2, 'new')")
    db.execute(f"DELETE FROM {schema}.tb_post WHERE pk_post = 3")
    assert_oracle(db)


@pytest.mark.parametrize("renamed", ["app", "rm"])
def test_renaming_a_schema_keeps_every_write_followed(schemas, renamed):
    """The schema of the tables read, or the TVIEWs' own: the catalog and the generated code follow."""
    schemas.execute(f"ALTER SCHEMA {renamed} RENAME TO {renamed}_v2")
    assert schemas.execute("SELECT DISTINCT schema_name::text FROM tview.tviews").fetchall() == \
        [("rm_v2" if renamed == "rm" else "rm",)]
    write_everywhere(schemas, "app_v2" if renamed == "app" else "app")
    schemas.execute(f"SELECT tview.refresh('{'rm_v2' if renamed == 'rm' else 'rm'}.post')")
    assert_oracle(schemas)
    assert schemas.execute("SELECT count(*) FROM tview.health() WHERE severity = 'error'").fetchone()[0] == 0


def test_a_new_column_under_a_whole_row_reference_is_in_the_documents_at_once(schemas):
    with schemas.transaction():
        schemas.execute("ALTER TABLE app.tb_user ADD COLUMN email text DEFAULT 'none'")
        assert_oracle(schemas)                                   # in the same transaction
    assert schemas.execute("SELECT data->'author'->>'email' FROM rm.tv_post WHERE pk_post = 1").fetchone()[0] == "none"
    schemas.execute("ALTER TABLE app.tb_user DROP COLUMN email")
    assert_oracle(schemas)
    write_everywhere(schemas)


def test_a_helper_view_replaced_with_a_new_expression_is_recomputed(schemas):
    with schemas.transaction():
        schemas.execute("CREATE OR REPLACE VIEW app.v_titles AS"
                        " SELECT p.pk_post, p.fk_user, upper(p.title) AS shown FROM app.tb_post p")
        assert_oracle(schemas)
    assert schemas.execute("SELECT data->>'title' FROM rm.tv_post WHERE pk_post = 1").fetchone()[0] == "T1"
    write_everywhere(schemas)


def test_dropping_a_column_the_definition_reads_with_cascade_drops_the_tviews_cleanly(schemas):
    notices: list[str] = []
    schemas.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    schemas.execute("ALTER TABLE app.tb_post DROP COLUMN title CASCADE")   # drops v_titles, so v_post
    assert "dropping TVIEW rm.tv_post: its definition rm.v_post was dropped" in notices
    assert schemas.execute("SELECT name::text FROM tview.tviews").fetchall() == [("user",)]
    assert schemas.execute("SELECT to_regclass('rm.tv_post')").fetchone()[0] is None
    schemas.execute("UPDATE app.tb_user SET name = 'still followed' WHERE pk_user = 1")
    assert_oracle(schemas)


# -- isolation ------------------------------------------------------------------------------

USERS_ONLY = "SELECT u.pk_user, jsonb_build_object('name', u.name) AS data FROM tb_user u"


@pytest.mark.parametrize("level", ["read committed", "repeatable read", "serializable"])
def test_create_racing_a_writer_is_exact_or_refused(db, dsn, level):
    """A opens a transaction and reads; B inserts and commits; A creates the TVIEW: under READ
    COMMITTED the row is there, at the snapshot levels the create is refused (a snapshot older
    than its locks would miss the row for good)."""
    db.execute("CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text)")
    with psycopg.connect(dsn) as a:
        a.execute(f"BEGIN ISOLATION LEVEL {level}")
        a.execute("SELECT count(*) FROM tb_user")
        db.execute("INSERT INTO tb_user VALUES (1, 'committed meanwhile')")
        if level == "read committed":
            a.execute("SELECT tview.create('user', %s)", (USERS_ONLY,))
            a.commit()
            assert db.execute("SELECT data->>'name' FROM tv_user").fetchall() == [("committed meanwhile",)]
            assert_oracle(db)
        else:
            with pytest.raises(psycopg.errors.InvalidTransactionState) as info:
                a.execute("SELECT tview.create('user', %s)", (USERS_ONLY,))
            assert "READ COMMITTED" in info.value.diag.message_hint
            a.rollback()
            assert db.execute("SELECT to_regclass('tv_user')").fetchone()[0] is None
