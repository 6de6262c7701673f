"""Creation, catalog, drop, limits and bad input (ACCEPTANCE 1-8 and 35-41, SPEC errors table).

Every refusal is checked for its SQLSTATE, a message naming the object, a HINT, and for
leaving the database exactly as it was (no tv_/v_ relation, catalog row, engine trigger or
generated function left behind). Every successful creation is checked with the oracle.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from engine_helpers import damage, refused, set_engine
from oracle import assert_oracle

pytestmark = pytest.mark.engine


# --------------------------------------------------------------------------- schema

BLOG_DDL = """
CREATE TABLE tb_user (pk_user integer PRIMARY KEY, id uuid NOT NULL DEFAULT gen_random_uuid(), name text NOT NULL);
CREATE TABLE tb_post (pk_post integer PRIMARY KEY, id uuid NOT NULL DEFAULT gen_random_uuid(),
                      fk_user integer NOT NULL REFERENCES tb_user, title text NOT NULL);
CREATE TABLE tb_comment (pk_comment integer PRIMARY KEY,
                         fk_post integer NOT NULL REFERENCES tb_post ON DELETE CASCADE,
                         fk_user integer NOT NULL REFERENCES tb_user, body text NOT NULL);
INSERT INTO tb_user (pk_user, name) VALUES (1, 'ann'), (2, 'bob'), (3, 'cy');
INSERT INTO tb_post (pk_post, fk_user, title) VALUES (1, 1, 'first'), (2, 1, 'second'), (3, 2, 'third');
INSERT INTO tb_comment VALUES (1, 1, 2, 'nice'), (2, 1, 3, 'meh'), (3, 3, 1, 'ok');
"""

USER_SQL = ("SELECT u.pk_user, u.id, jsonb_build_object('id', u.id, 'name', u.name) AS data "
            "FROM tb_user u")

POST_SQL = (
    "SELECT p.pk_post, p.id, p.fk_user, jsonb_build_object('id', p.id, 'title', p.title,"
    " 'author', jsonb_build_object('name', u.name),"
    " 'comments', coalesce((SELECT jsonb_agg(jsonb_build_object('body', c.body) ORDER BY c.pk_comment)"
    " FROM tb_comment c WHERE c.fk_post = p.pk_post), '[]'::jsonb)) AS data "
    "FROM tb_post p JOIN tb_user u ON u.pk_user = p.fk_user")

POST_CARD_SQL = ("SELECT p.pk_post, p.fk_user, jsonb_build_object('title', p.title, 'by', u.name) AS data "
                 "FROM tb_post p JOIN tb_user u ON u.pk_user = p.fk_user")

# A post embedding the tv_user document (a TVIEW reading another TVIEW).
POST_EMBED_SQL = ("SELECT p.pk_post, p.fk_user, jsonb_build_object('title', p.title, 'author', u.data) AS data "
                  "FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user")

COMMENT_SQL = ("SELECT c.pk_comment, c.fk_post, jsonb_build_object('body', c.body) AS data "
               "FROM tb_comment c")


# --------------------------------------------------------------------------- helpers

def setup_blog(conn: psycopg.Connection) -> None:
    conn.execute(BLOG_DDL)


def create(conn: psycopg.Connection, name: str, definition: str, **kwargs) -> str:
    """tview.create(name, definition [, schema_name => ...]); returns the table it returned, as schema.name."""
    call = "tview.create(%s, %s, schema_name => %s)" if "schema_name" in kwargs else "tview.create(%s, %s)"
    params = (name, definition, kwargs["schema_name"]) if "schema_name" in kwargs else (name, definition)
    oid = conn.execute(f"SELECT {call}::oid", params).fetchone()[0]
    return conn.execute("SELECT n.nspname || '.' || c.relname FROM pg_class c"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s", (oid,)).fetchone()[0]


def ctas(conn: psycopg.Connection, table: str, definition: str) -> None:
    """CREATE TABLE <table> AS <definition>, sent as plain text (no parameters)."""
    conn.execute(f"CREATE TABLE {table} AS {definition}")


def user_relations(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    """(schema, name, relkind) of every relation outside the system and engine schemas."""
    return set(conn.execute("""
        SELECT n.nspname::text, c.relname::text, c.relkind::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'tview')
          AND n.nspname NOT LIKE 'pg\\_temp%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp%'""").fetchall())


def tview_relations(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    """User tables and views (not indexes) named tv_* or v_*."""
    return {r for r in user_relations(conn) if r[1].startswith(("tv_", "v_")) and r[2] != "i"}


CAPTURE_TRIGGERS = ("tview_after_insert", "tview_after_update", "tview_after_delete", "tview_after_truncate")


def engine_triggers(conn: psycopg.Connection) -> set[tuple[str, str]]:
    """(relation, trigger) of every trigger named tview% on a relation outside schema tview."""
    return set(conn.execute("""
        SELECT tg.tgrelid::regclass::text, tg.tgname::text
        FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
        WHERE tg.tgname LIKE 'tview%' AND NOT tg.tgisinternal
          AND c.relnamespace <> 'tview'::regnamespace""").fetchall())


def triggers_on(conn: psycopg.Connection, relation: str) -> set[str]:
    return {t for r, t in engine_triggers(conn) if r == relation}


def catalog(conn: psycopg.Connection) -> tuple[list[str], list[str]]:
    tviews = [r[0] for r in conn.execute("SELECT t::text FROM tview.tviews t ORDER BY id")]
    deps = [r[0] for r in conn.execute("SELECT d::text FROM tview.dependencies d ORDER BY 1")]
    return tviews, deps


def engine_functions(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = 'tview'::regnamespace")}


def state(conn: psycopg.Connection) -> dict:
    """Everything a TVIEW creation or drop may touch."""
    return {
        "relations": user_relations(conn),
        "catalog": catalog(conn),
        "triggers": engine_triggers(conn),
        "functions": engine_functions(conn),
    }


def assert_no_tview(conn: psycopg.Connection, name: str) -> None:
    """No tv_<name>/v_<name> anywhere, no catalog row for name."""
    rels = {(s, n) for s, n, _ in user_relations(conn) if n in ("tv_" + name, "v_" + name)}
    assert not rels, f"left behind: {rels}"
    rows = conn.execute("SELECT schema_name, name FROM tview.tviews WHERE name = %s", (name,)).fetchall()
    assert not rows, f"catalog rows left: {rows}"


def assert_engine_empty(conn: psycopg.Connection) -> None:
    """No TVIEW at all: no tv_/v_ relation, no catalog row, no engine trigger on any table."""
    assert tview_relations(conn) == set()
    assert conn.execute("SELECT count(*) FROM tview.tviews").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM tview.dependencies").fetchone()[0] == 0
    assert engine_triggers(conn) == set()
    generated = conn.execute(
        "SELECT proname FROM pg_proc WHERE pronamespace = 'tview'::regnamespace"
        " AND proname ~ '^_(refresh|patch)_[0-9]+$'").fetchall()
    assert generated == [], f"generated functions left: {generated}"


def columns(conn: psycopg.Connection, regclass: str) -> list[tuple[str, str]]:
    return conn.execute("""
        SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
        FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum""", (regclass,)).fetchall()


def signature(conn: psycopg.Connection, schema: str, name: str) -> dict:
    """Everything about a TVIEW except ids, oids and timestamps."""
    tv = sql.Identifier(schema, "tv_" + name).as_string(conn)
    v = sql.Identifier(schema, "v_" + name).as_string(conn)
    row = conn.execute("""
        SELECT to_jsonb(t) - '{id,table_oid,view_oid,root_oid,created_at}'::text[]
               || jsonb_build_object('root', t.root_oid::regclass::text,
                                     'table', t.table_oid::regclass::text, 'view', t.view_oid::regclass::text)
        FROM tview.tviews t WHERE t.schema_name = %s AND t.name = %s""", (schema, name)).fetchone()
    assert row is not None, f"no catalog row for {schema}.{name}"
    deps = conn.execute("""
        SELECT d.source_oid::regclass::text, d.source_kind, d.lineage, d.key_sql, d.roles
        FROM tview.dependencies d JOIN tview.tviews t ON t.id = d.tview_id
        WHERE t.schema_name = %s AND t.name = %s ORDER BY 1""", (schema, name)).fetchall()
    table = conn.execute("""
        SELECT c.relkind, c.relpersistence, pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class')
        FROM pg_class c WHERE c.oid = %s::regclass""", (tv,)).fetchone()
    attrs = conn.execute("""
        SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef
        FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum""", (tv,)).fetchall()
    indexes = conn.execute("""
        SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = %s::regclass ORDER BY 1""",
                           (tv,)).fetchall()
    constraints = conn.execute("""
        SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass ORDER BY 1""",
                               (tv,)).fetchall()
    view = conn.execute("SELECT pg_get_viewdef(%s::regclass), obj_description(%s::regclass, 'pg_class')",
                        (v, v)).fetchone()
    triggers = conn.execute("""
        SELECT tg.tgrelid::regclass::text, tg.tgname, pg_get_triggerdef(tg.oid), tg.tgenabled
        FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
        WHERE NOT tg.tgisinternal AND c.relnamespace <> 'tview'::regnamespace ORDER BY 1, 2""").fetchall()
    return {"catalog": row[0], "dependencies": deps, "table": table, "columns": attrs,
            "indexes": indexes, "constraints": constraints, "view": view, "view_columns": columns(conn, v),
            "triggers": triggers}


def rows(conn: psycopg.Connection, relation: str) -> list[str]:
    return [r[0] for r in conn.execute(
        sql.SQL("SELECT t::text FROM {} t ORDER BY 1").format(sql.SQL(relation)))]


# =========================================================================== 1. two ways to create

@pytest.mark.parametrize("definition", [POST_SQL, POST_EMBED_SQL], ids=["base-tables", "reads-tview"])
def test_function_and_ddl_create_identical_tviews(db, definition):
    setup_blog(db)
    create(db, "user", USER_SQL)

    assert create(db, "post", definition) == "public.tv_post"
    by_function = signature(db, "public", "post")
    assert_oracle(db)
    db.execute("SELECT tview.drop('post')")
    assert_no_tview(db, "post")

    assert create(db, "tv_post", definition) == "public.tv_post"
    by_prefixed_name = signature(db, "public", "post")
    db.execute("DROP TABLE tv_post")
    assert_no_tview(db, "post")

    ctas(db, "tv_post", definition)
    by_ddl = signature(db, "public", "post")
    assert by_function["catalog"]["name"] == "post"
    assert by_function["dependencies"], "no dependencies recorded"
    assert any(t[1] == "tview_after_update" for t in by_function["triggers"] if t[0] == "tb_post")
    assert by_prefixed_name == by_function
    assert by_ddl == by_function
    assert_oracle(db)

    # The DDL-made TVIEW is maintained like the other.
    db.execute("UPDATE tb_user SET name = 'ann2' WHERE pk_user = 1")
    db.execute("INSERT INTO tb_post (pk_post, fk_user, title) VALUES (4, 3, 'fourth')")
    assert_oracle(db)
    assert db.execute("SELECT count(*) FROM tv_post").fetchone()[0] == 4


# =========================================================================== 2. schemas

def test_objects_land_in_current_schema_or_named_schema(db):
    setup_blog(db)
    db.execute("CREATE SCHEMA app; CREATE SCHEMA other")
    db.execute("SET search_path = app, public")
    base = user_relations(db)

    assert create(db, "post", POST_SQL) == "app.tv_post"
    added = user_relations(db) - base
    assert {(s, n) for s, n, k in added if k in "rv"} == {("app", "tv_post"), ("app", "v_post")}
    assert all(s == "app" for s, _, _ in added), added
    assert all(n.startswith(("tv_post", "v_post")) for _, n, _ in added), added
    assert db.execute("SELECT schema_name FROM tview.tviews WHERE name = 'post'").fetchall() == [("app",)]
    assert_oracle(db, "app.post")

    # schema_name wins over search_path; the same name may exist in two schemas.
    base = user_relations(db)
    assert create(db, "tv_post", POST_SQL, schema_name="other") == "other.tv_post"
    added = user_relations(db) - base
    assert {(s, n) for s, n, k in added if k in "rv"} == {("other", "tv_post"), ("other", "v_post")}
    assert all(s == "other" for s, _, _ in added), added
    assert sorted(db.execute("SELECT schema_name FROM tview.tviews WHERE name = 'post'").fetchall()) == \
        [("app",), ("other",)]
    db.execute("UPDATE tb_user SET name = 'ann2' WHERE pk_user = 1")
    assert_oracle(db, "app.post", "other.post")

    db.execute("SELECT tview.drop('other.post')")
    assert db.execute("SELECT schema_name FROM tview.tviews").fetchall() == [("app",)]
    assert db.execute("SELECT to_regclass('other.tv_post'), to_regclass('other.v_post')").fetchone() == (None, None)
    db.execute("SELECT tview.drop('post')")   # found along search_path
    assert_engine_empty(db)
    assert not any(s == "public" and n.startswith(("tv_", "v_")) for s, n, _ in user_relations(db))


def test_ddl_create_lands_in_current_schema_or_qualified_schema(db):
    setup_blog(db)
    db.execute("CREATE SCHEMA app; CREATE SCHEMA other")
    db.execute("SET search_path = app, public")
    ctas(db, "tv_post", POST_SQL)
    ctas(db, "other.tv_card", POST_CARD_SQL)
    assert tview_relations(db) == {("app", "tv_post", "r"), ("app", "v_post", "v"),
                                   ("other", "tv_card", "r"), ("other", "v_card", "v")}
    assert sorted(db.execute("SELECT schema_name, name FROM tview.tviews").fetchall()) == \
        [("app", "post"), ("other", "card")]
    db.execute("UPDATE tb_post SET title = 'x' WHERE pk_post = 2")
    assert_oracle(db, "app.post", "other.card")

    # Tables not named tv_* are left alone.
    ctas(db, "public.tb_copy", POST_CARD_SQL)
    ctas(db, "app.post_copy", POST_CARD_SQL)
    assert db.execute("SELECT count(*) FROM tview.tviews").fetchone()[0] == 2
    assert triggers_on(db, "tb_copy") == set()

    # Dropping a schema drops its TVIEWs with it, catalog and triggers included.
    db.execute("DROP SCHEMA app CASCADE")
    assert db.execute("SELECT schema_name, name FROM tview.tviews").fetchall() == [("other", "card")]
    db.execute("DROP SCHEMA other CASCADE")
    assert_engine_empty(db)


# =========================================================================== 3. column types

TYPED_DDL = """
CREATE TABLE tb_thing (
    pk_thing integer PRIMARY KEY, id uuid, price numeric(10,2), ratio numeric, title text, code varchar(12),
    done boolean, seen_at timestamptz, day date, tags text[], scores int[], extra jsonb, big bigint,
    fk_owner bigint, created_at text, is_active integer, id_text text);
INSERT INTO tb_thing VALUES
    (1, '6f1c8a8e-6a0b-4b8e-9a55-1f2f6f0f3a01', 12.50, 0.333333333333333333333, 'a', 'C-1', true,
     '2026-01-02 03:04:05.123456+00', '2026-01-02', '{x,"y z"}', '{1,2,3}', '{"k": [1, 2.50]}', 9007199254740993,
     42, 'yesterday', 0, 'not-a-uuid'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""

TYPED_SQL = ("SELECT t.pk_thing, t.id, t.price, t.ratio, t.title, t.code, t.done, t.seen_at, t.day, t.tags,"
             " t.scores, t.extra, t.big, t.fk_owner, t.created_at, t.is_active, t.id_text, t.price * 2 AS doubled,"
             " jsonb_build_object('title', t.title, 'price', t.price) AS data FROM tb_thing t")

TYPED_EXPECTED = [
    ("pk_thing", "integer"), ("id", "uuid"), ("price", "numeric(10,2)"), ("ratio", "numeric"), ("title", "text"),
    ("code", "character varying(12)"), ("done", "boolean"), ("seen_at", "timestamp with time zone"),
    ("day", "date"), ("tags", "text[]"), ("scores", "integer[]"), ("extra", "jsonb"), ("big", "bigint"),
    ("fk_owner", "bigint"), ("created_at", "text"), ("is_active", "integer"), ("id_text", "text"),
    ("doubled", "numeric"), ("data", "jsonb"),
]


@pytest.mark.parametrize("path", ["function", "ddl"])
def test_column_types_are_the_views_types(db, path):
    db.execute(TYPED_DDL)
    if path == "function":
        create(db, "thing", TYPED_SQL)
    else:
        ctas(db, "tv_thing", TYPED_SQL)
    assert columns(db, "v_thing") == TYPED_EXPECTED
    assert columns(db, "tv_thing") == TYPED_EXPECTED
    assert_oracle(db)
    db.execute("UPDATE tb_thing SET price = 99.99, tags = '{}', scores = NULL, seen_at = now() WHERE pk_thing = 1")
    db.execute("INSERT INTO tb_thing (pk_thing, big, extra) VALUES (3, -1, 'null')")
    assert_oracle(db)
    assert db.execute("SELECT price::text, big FROM tv_thing WHERE pk_thing = 1").fetchone() == ("99.99", 9007199254740993)


# =========================================================================== 4. empty base table

def test_tview_over_empty_table_is_empty_then_follows_inserts(db):
    db.execute("CREATE TABLE tb_user (pk_user integer PRIMARY KEY, id uuid, name text)")
    create(db, "user", USER_SQL)
    assert db.execute("SELECT count(*) FROM tv_user").fetchone()[0] == 0
    assert db.execute("SELECT * FROM tview.verify('user')").fetchall() == []
    db.execute("INSERT INTO tb_user VALUES (1, gen_random_uuid(), 'ann')")
    assert_oracle(db)
    assert db.execute("SELECT pk_user, data->>'name' FROM tv_user").fetchall() == [(1, "ann")]
    db.execute("INSERT INTO tb_user SELECT g, gen_random_uuid(), 'u' || g FROM generate_series(2, 50) g")
    assert db.execute("SELECT count(*) FROM tv_user").fetchone()[0] == 50
    assert_oracle(db)


# =========================================================================== 5. duplicates

def test_duplicate_create_fails_42710_and_changes_nothing(db):
    setup_blog(db)
    create(db, "post", POST_SQL)
    before_rows = rows(db, "tv_post")
    refused(db, "SELECT tview.create('post', %s)", (POST_CARD_SQL,), "42710", "tv_post")
    refused(db, "SELECT tview.create('tv_post', %s)", (POST_CARD_SQL,), "42710", "tv_post")
    assert rows(db, "tv_post") == before_rows
    assert db.execute("SELECT definition FROM tview.tviews WHERE name = 'post'").fetchone()[0] == POST_SQL
    # A plain table already holding the name is not replaced either.
    db.execute("CREATE TABLE tv_plain (x int); INSERT INTO tv_plain VALUES (7)")
    refused(db, "SELECT tview.create('plain', %s)", (POST_CARD_SQL,), "42710", "tv_plain")
    assert db.execute("SELECT x FROM tv_plain").fetchall() == [(7,)]
    assert_oracle(db)


def test_duplicate_ddl_create_fails_42710(db):
    setup_blog(db)
    ctas(db, "tv_post", POST_SQL)
    before = state(db)
    db.execute(f"CREATE TABLE IF NOT EXISTS tv_post AS {POST_CARD_SQL}")   # a notice, nothing else
    assert state(db) == before
    refused(db, f"CREATE TABLE tv_post AS {POST_CARD_SQL}", None, "42710", "tv_post")
    assert db.execute("SELECT definition FROM tview.tviews WHERE name = 'post'").fetchone()[0] == POST_SQL
    assert_oracle(db)


# =========================================================================== 6. transactions

def test_ddl_create_rolled_back_leaves_nothing(db, dsn):
    setup_blog(db)
    before = state(db)
    with psycopg.connect(dsn) as conn:
        ctas(conn, "tv_post", POST_SQL)
        create(conn, "user", USER_SQL)
        assert conn.execute("SELECT count(*) FROM tv_post").fetchone()[0] == 3
        assert triggers_on(conn, "tb_post")
        conn.rollback()
        assert state(conn) == before
    assert_engine_empty(db)
    db.execute("UPDATE tb_post SET title = 'still writable' WHERE pk_post = 1")


def test_rollback_to_savepoint_removes_only_later_creations(db, dsn):
    setup_blog(db)
    with psycopg.connect(dsn) as conn:
        ctas(conn, "tv_user", USER_SQL)
        conn.execute("SAVEPOINT s")
        at_savepoint = state(conn)
        ctas(conn, "tv_comment", COMMENT_SQL)
        create(conn, "post", POST_SQL)
        assert triggers_on(conn, "tb_comment")
        conn.execute("ROLLBACK TO SAVEPOINT s")
        assert state(conn) == at_savepoint

        # A drop after a savepoint is undone by rolling back to it.
        conn.execute("SAVEPOINT t")
        conn.execute("SELECT tview.drop('user')")
        assert conn.execute("SELECT to_regclass('tv_user')").fetchone()[0] is None
        conn.execute("ROLLBACK TO SAVEPOINT t")
        assert state(conn) == at_savepoint
        conn.commit()

    assert tview_relations(db) == {("public", "tv_user", "r"), ("public", "v_user", "v")}
    assert db.execute("SELECT name FROM tview.tviews").fetchall() == [("user",)]
    assert triggers_on(db, "tb_user")
    assert triggers_on(db, "tb_comment") == set()
    assert triggers_on(db, "tb_post") == set()
    db.execute("UPDATE tb_user SET name = 'ann2' WHERE pk_user = 1")
    db.execute("INSERT INTO tb_user (pk_user, name) VALUES (9, 'new')")
    db.execute("INSERT INTO tb_comment VALUES (9, 2, 1, 'untracked')")
    assert_oracle(db)
    assert db.execute("SELECT data->>'name' FROM tv_user WHERE pk_user = 1").fetchone()[0] == "ann2"


# =========================================================================== 7. drops

def test_drop_table_and_tview_drop_remove_everything_and_nothing_else(db):
    setup_blog(db)
    pristine = state(db)
    create(db, "user", USER_SQL)
    create(db, "post", POST_SQL)
    assert triggers_on(db, "tb_comment")

    db.execute("DROP TABLE tv_post")
    assert_no_tview(db, "post")
    assert db.execute("SELECT count(*) FROM tview.dependencies d JOIN tview.tviews t ON t.id = d.tview_id"
                      " WHERE t.name = 'post'").fetchone()[0] == 0
    assert triggers_on(db, "tb_post") == set()
    assert triggers_on(db, "tb_comment") == set()
    assert triggers_on(db, "tb_user"), "tv_user still reads tb_user"
    assert db.execute("SELECT count(*) FROM tb_post").fetchone()[0] == 3
    db.execute("UPDATE tb_user SET name = 'ann2' WHERE pk_user = 1")
    db.execute("UPDATE tb_post SET title = 'untracked' WHERE pk_post = 1")
    assert_oracle(db)

    db.execute("SELECT tview.drop('user')")
    assert_engine_empty(db)
    after = state(db)
    assert after["relations"] == pristine["relations"]
    assert after["functions"] == pristine["functions"]
    assert db.execute("SELECT count(*) FROM tb_user").fetchone()[0] == 3

    # The names are free again.
    create(db, "post", POST_SQL)
    assert_oracle(db)


def test_drop_missing(db):
    setup_blog(db)
    create(db, "user", USER_SQL)
    before = state(db)
    db.execute("DROP TABLE IF EXISTS tv_missing")
    db.execute("SELECT tview.drop('missing', if_exists => true)")
    db.execute("SELECT tview.drop('tv_missing', if_exists => true)")
    assert state(db) == before
    refused(db, "SELECT tview.drop('missing')", None, "42P01", "missing")
    refused(db, "SELECT tview.drop('tv_missing')", None, "42P01", "missing")
    refused(db, "SELECT tview.refresh('missing')", None, "42P01", "missing")
    refused(db, "SELECT * FROM tview.verify('missing')", None, "42P01", "missing")
    # tv_plain is a plain table, not a TVIEW: tview.drop does not touch it.
    db.execute("CREATE TABLE tv_plain (x int)")
    refused(db, "SELECT tview.drop('plain')", None, "42P01", "plain")
    assert_oracle(db)


def test_drop_several_tables_in_one_statement(db):
    setup_blog(db)
    create(db, "user", USER_SQL)
    create(db, "post", POST_SQL)
    create(db, "comment", COMMENT_SQL)
    db.execute("DROP TABLE tv_user, tv_post")
    assert_no_tview(db, "user")
    assert_no_tview(db, "post")
    assert db.execute("SELECT name FROM tview.tviews").fetchall() == [("comment",)]
    # the capture triggers of the table tv_comment reads, and tv_comment's own refusal of direct writes
    assert engine_triggers(db) == {("tb_comment", t) for t in CAPTURE_TRIGGERS} | {("tv_comment", "tview_refuse_writes")}
    assert db.execute("SELECT count(*) FROM tb_user").fetchone()[0] == 3
    db.execute("INSERT INTO tb_comment VALUES (4, 2, 2, 'more')")
    db.execute("UPDATE tb_user SET name = 'untracked' WHERE pk_user = 1")
    assert_oracle(db)


def test_shared_triggers_stay_until_last_reader_is_dropped(db):
    setup_blog(db)
    create(db, "post", POST_SQL)
    create(db, "card", POST_CARD_SQL)
    shared = triggers_on(db, "tb_post")
    assert {"tview_after_insert", "tview_after_update", "tview_after_delete", "tview_after_truncate"} <= shared
    db.execute("SELECT tview.drop('post')")
    assert triggers_on(db, "tb_post") == shared
    assert triggers_on(db, "tb_user")
    assert triggers_on(db, "tb_comment") == set()
    db.execute("UPDATE tb_user SET name = 'bob2' WHERE pk_user = 2")
    db.execute("UPDATE tb_post SET title = 'renamed' WHERE pk_post = 1")
    assert_oracle(db)
    assert db.execute("SELECT data FROM tv_card WHERE pk_post = 3").fetchone()[0] == {"title": "third", "by": "bob2"}
    db.execute("DROP TABLE tv_card")
    assert_engine_empty(db)


def test_drop_of_a_tview_others_read(db):
    setup_blog(db)
    create(db, "user", USER_SQL)
    create(db, "post", POST_EMBED_SQL)
    create(db, "card", "SELECT p.pk_post, jsonb_build_object('t', p.data->'title') AS data FROM tv_post p")
    refused(db, "SELECT tview.drop('user')", None, "2BP01", "tv_user")
    refused(db, "SELECT tview.drop('post')", None, "2BP01", "tv_post")
    refused(db, "DROP TABLE tv_user", None, "2BP01", "tv_user")
    assert_oracle(db)
    db.execute("SELECT tview.drop('user', cascade => true)")
    assert_engine_empty(db)


def test_drop_table_cascade_removes_dependent_tviews(db):
    setup_blog(db)
    create(db, "user", USER_SQL)
    create(db, "post", POST_EMBED_SQL)
    create(db, "comment", COMMENT_SQL)
    db.execute("DROP TABLE tv_user CASCADE")
    assert_no_tview(db, "user")
    assert_no_tview(db, "post")
    assert db.execute("SELECT name FROM tview.tviews").fetchall() == [("comment",)]
    # the capture triggers of the table tv_comment reads, and tv_comment's own refusal of direct writes
    assert engine_triggers(db) == {("tb_comment", t) for t in CAPTURE_TRIGGERS} | {("tv_comment", "tview_refuse_writes")}
    assert db.execute("SELECT count(*) FROM tb_post").fetchone()[0] == 3
    db.execute("DELETE FROM tb_comment WHERE pk_comment = 1")
    assert_oracle(db)

    # Dropping a base table with CASCADE takes the TVIEWs that read it along, entirely.
    db.execute("DROP TABLE tb_comment CASCADE")
    assert_engine_empty(db)
    assert db.execute("SELECT count(*) FROM tb_post").fetchone()[0] == 3


def test_drop_table_if_exists_of_an_existing_tview(db):
    setup_blog(db)
    create(db, "post", POST_SQL)
    db.execute("DROP TABLE IF EXISTS tv_post, tv_missing")
    assert_engine_empty(db)


# =========================================================================== 8. repair

def test_refresh_repairs_a_damaged_tview(db):
    setup_blog(db)
    create(db, "post", POST_SQL)
    good = rows(db, "tv_post")
    # as a superuser bypassing the engine (it refuses direct writes)
    damage(db, "DELETE FROM tv_post WHERE pk_post = 1")
    damage(db, "UPDATE tv_post SET data = data || '{\"title\": \"vandalised\"}' WHERE pk_post = 2")
    damage(db, "UPDATE tv_post SET fk_user = 3 WHERE pk_post = 3")
    damage(db, "INSERT INTO tv_post SELECT 99, id, fk_user, data FROM tv_post WHERE pk_post = 2")
    assert sorted(db.execute("SELECT * FROM tview.verify('post')").fetchall()) == \
        [(1, "missing"), (2, "different"), (3, "different"), (99, "extra")]

    # A keyed refresh repairs only its keys.
    db.execute("SELECT tview.refresh('post', ARRAY[2]::bigint[])")
    assert sorted(db.execute("SELECT * FROM tview.verify('post')").fetchall()) == \
        [(1, "missing"), (3, "different"), (99, "extra")]

    assert db.execute("SELECT tview.refresh('tv_post')").fetchone()[0] == 3
    assert db.execute("SELECT * FROM tview.verify('post')").fetchall() == []
    assert rows(db, "tv_post") == good
    assert_oracle(db)


# =========================================================================== 35. cycles and depth

def test_tviews_form_a_dag_and_a_cycle_cannot_be_made(db):
    """A cycle cannot be built through the API: a definition can only read relations that
    already exist, so a new TVIEW can read older TVIEWs but never be read by them, and the
    names tv_<new>/v_<new> cannot pre-exist (42710). What the API allows is checked instead:
    levels, the recorded graph, refusing a definition that reads its own (not yet existing)
    table, and refusing to drop a TVIEW out from under its readers (2BP01)."""
    db.execute("CREATE TABLE tb_a (pk_a integer PRIMARY KEY, v text); INSERT INTO tb_a VALUES (1, 'x')")
    create(db, "a", "SELECT pk_a, jsonb_build_object('v', v) AS data FROM tb_a")
    create(db, "b", "SELECT a.pk_a AS pk_b, jsonb_build_object('a', a.data) AS data FROM tv_a a")
    create(db, "c", "SELECT a.pk_a AS pk_c, jsonb_build_object('a', a.data, 'b', b.data) AS data"
                    " FROM tv_a a JOIN tv_b b ON b.pk_b = a.pk_a")
    assert db.execute("SELECT name, topo_level FROM tview.tviews ORDER BY name").fetchall() == \
        [("a", 0), ("b", 1), ("c", 2)]
    assert sorted(db.execute("SELECT tview, source, source_kind FROM tview.graph").fetchall()) == [
        ("public.tv_a", "tb_a", "table"), ("public.tv_b", "tv_a", "tview"),
        ("public.tv_c", "tv_a", "tview"), ("public.tv_c", "tv_b", "tview")]

    before = state(db)
    with pytest.raises(psycopg.Error) as info:
        create(db, "d", "SELECT d.pk_d, d.data FROM tv_d d")
    assert info.value.sqlstate == "42P01"
    assert state(db) == before
    refused(db, "SELECT tview.drop('a')", None, "2BP01", "tv_a")
    db.execute("UPDATE tb_a SET v = 'y'")
    assert_oracle(db)
    assert db.execute("SELECT data FROM tv_c").fetchone()[0] == {"a": {"v": "y"}, "b": {"a": {"v": "y"}}}


def test_cycle_closed_through_a_helper_view_is_refused_55p03(db):
    """Beyond the API: a TVIEW reads a helper view; replacing that view so that it reads a
    TVIEW built on the first one closes a cycle (tv_a -> h -> tv_b -> tv_a). The engine must
    not accept it silently (tv_a could then never equal its definition): 55P03, nothing changed."""
    db.execute("""CREATE TABLE tb_a (pk_a integer PRIMARY KEY, v text); INSERT INTO tb_a VALUES (1, 'x');
                  CREATE VIEW h AS SELECT pk_a, v FROM tb_a""")
    create(db, "a", "SELECT pk_a, jsonb_build_object('v', v) AS data FROM h")
    create(db, "b", "SELECT pk_a AS pk_b, jsonb_build_object('a', data) AS data FROM tv_a")
    refused(db, "CREATE OR REPLACE VIEW h AS SELECT a.pk_a, coalesce(b.data::text, a.v) AS v"
                " FROM tb_a a LEFT JOIN tv_b b ON b.pk_b = a.pk_a", None, "55P03", "tv_a")
    db.execute("UPDATE tb_a SET v = 'y'")
    assert_oracle(db)


def test_cascade_deeper_than_the_cap_fails_54001(db):
    db.execute("CREATE TABLE tb_l (pk_l integer PRIMARY KEY, v text); INSERT INTO tb_l VALUES (1, 'x')")
    create(db, "l0", "SELECT pk_l, jsonb_build_object('v', v) AS data FROM tb_l")
    for level in range(1, 4):
        create(db, f"l{level}", f"SELECT t.pk_l, jsonb_build_object('up', t.data) AS data FROM tv_l{level - 1} t")
    set_engine(db, max_cascade_depth="3")   # depths 0..3: allowed
    db.execute("UPDATE tb_l SET v = 'y'")
    assert_oracle(db)
    set_engine(db, max_cascade_depth="2")   # tv_l3 is at depth 3
    exc = refused(db, "UPDATE tb_l SET v = 'z'", None, "54001", "tv_l")
    assert "l3" in exc.diag.message_primary
    assert db.execute("SELECT v FROM tb_l").fetchone()[0] == "y", "the failing statement must roll back"
    assert_oracle(db)


# =========================================================================== 36. round trips

BIG_TEXT = ("ünïcødé 😀 \\ \" ' \n\t" + "x" * 97) * 11000     # ~1.3 MB
NASTY = [
    None,
    "",
    "héllo wörld ✓ 😀 𝄞 中文 עברית",
    "line1\nline2\r\nline3\n",
    "\ttabbed\tvalue\t",
    "it's \"quoted\" `back`",
    "C:\\path\\to\\file \\\\ \\n \\u0041 \\",
    "'); DROP TABLE tb_note; --",
    "{\"looks\": \"like json\"}",
]


def test_values_round_trip(db):
    db.execute("""CREATE TABLE tb_note (pk_note integer PRIMARY KEY, title text, body text, n numeric,
                  flag boolean, extra jsonb)""")
    create(db, "note", "SELECT pk_note, title, jsonb_build_object('title', title, 'body', body, 'n', n,"
                       " 'flag', flag, 'extra', extra) AS data FROM tb_note")
    for i, value in enumerate(NASTY):
        db.execute("INSERT INTO tb_note VALUES (%s, %s, %s, %s, %s, %s)",
                   (i, value, value, None if value is None else "1.10", None, None))
    db.execute("INSERT INTO tb_note VALUES (100, 'big', %s, 123456789012345678901234567890.123456789, true,"
               " (SELECT jsonb_agg(jsonb_build_object('i', g, 's', repeat('é', 20))) FROM generate_series(1, 20000) g))",
               (BIG_TEXT,))
    assert_oracle(db)
    for i, value in enumerate(NASTY):
        title, data = db.execute("SELECT title, data FROM tv_note WHERE pk_note = %s", (i,)).fetchone()
        assert title == value
        assert data["body"] == value and data["title"] == value
    data = db.execute("SELECT data FROM tv_note WHERE pk_note = 100").fetchone()[0]
    assert data["body"] == BIG_TEXT and len(data["extra"]) == 20000
    assert db.execute("SELECT data->>'n' FROM tv_note WHERE pk_note = 100").fetchone()[0] == \
        "123456789012345678901234567890.123456789"
    assert db.execute("SELECT octet_length(data::text) > 1048576 FROM tv_note WHERE pk_note = 100").fetchone()[0]

    # Updates: every value moves to another row, the big document grows, NULLs come and go.
    db.execute("UPDATE tb_note t SET body = s.body, title = s.title FROM tb_note s"
               " WHERE t.pk_note < 100 AND s.pk_note = (t.pk_note + 1) %% %s", (len(NASTY),))
    db.execute("UPDATE tb_note SET body = body || body, flag = NULL, extra = NULL WHERE pk_note = 100")
    db.execute("UPDATE tb_note SET body = NULL, n = NULL WHERE pk_note = 2")
    assert_oracle(db)
    assert db.execute("SELECT data->'body' FROM tv_note WHERE pk_note = 2").fetchone()[0] is None
    assert db.execute("SELECT data ? 'body' FROM tv_note WHERE pk_note = 2").fetchone()[0], "NULL must be JSON null"
    assert db.execute("SELECT length(data->>'body') FROM tv_note WHERE pk_note = 100").fetchone()[0] == \
        2 * len(BIG_TEXT)
    assert db.execute("SELECT * FROM tview.verify('note')").fetchall() == []


# =========================================================================== 37. self-referencing tree

CATEGORY_SQL = """SELECT c.pk_category, c.fk_parent,
    jsonb_build_object(
        'name', c.name,
        'parent', (SELECT jsonb_build_object('name', p.name) FROM tb_category p WHERE p.pk_category = c.fk_parent),
        'grandparent', (SELECT g.name FROM tb_category p JOIN tb_category g ON g.pk_category = p.fk_parent
                        WHERE p.pk_category = c.fk_parent),
        'children', coalesce((SELECT jsonb_agg(jsonb_build_object('name', k.name) ORDER BY k.pk_category)
                              FROM tb_category k WHERE k.fk_parent = c.pk_category), '[]'::jsonb)) AS data
FROM tb_category c"""


def test_self_referencing_tree(db):
    db.execute("""
        CREATE TABLE tb_category (pk_category integer PRIMARY KEY,
                                  fk_parent integer REFERENCES tb_category, name text NOT NULL);
        INSERT INTO tb_category VALUES (1, NULL, 'root'), (2, 1, 'books'), (3, 1, 'music'),
                                       (4, 2, 'novels'), (5, 2, 'poetry'), (6, 4, 'crime')""")
    create(db, "category", CATEGORY_SQL)
    assert_oracle(db)
    steps = [
        "UPDATE tb_category SET name = 'ROOT' WHERE pk_category = 1",        # parent of 2,3; grandparent of 4,5
        "UPDATE tb_category SET name = 'Books' WHERE pk_category = 2",
        "UPDATE tb_category SET fk_parent = 3 WHERE pk_category = 4",        # move a subtree
        "INSERT INTO tb_category VALUES (7, 6, 'noir'), (8, 3, 'jazz')",
        "DELETE FROM tb_category WHERE pk_category = 5",
        "UPDATE tb_category SET fk_parent = NULL WHERE pk_category = 3",     # a new root
        "UPDATE tb_category SET pk_category = 60 WHERE pk_category = 7",
        "DELETE FROM tb_category WHERE pk_category IN (60, 8)",
    ]
    for step in steps:
        db.execute(step)
        assert_oracle(db)
    assert db.execute("SELECT data FROM tv_category WHERE pk_category = 6").fetchone()[0] == \
        {"name": "crime", "parent": {"name": "novels"}, "grandparent": "music", "children": []}


# =========================================================================== 38. names

@pytest.mark.parametrize("name", [
    "", "a b", "x;drop table t", "x" * 61, "tv_" + "x" * 61, "é" * 31, "Post\"", "1abc", "v-x",
], ids=["empty", "space", "semicolon", "61-bytes", "61-bytes-prefixed", "multibyte-62-bytes", "quote",
        "digit-first", "dash"])
def test_bad_names_refused_42602(db, name):
    setup_blog(db)
    db.execute("CREATE TABLE t (x int)")
    refused(db, "SELECT tview.create(%s, %s)", (name, USER_SQL), "42602", name.removeprefix("tv_"))
    assert_engine_empty(db)
    assert db.execute("SELECT to_regclass('t')").fetchone()[0] == "t"


@pytest.mark.parametrize("table", ["tv_a b", "tv_x;drop table t", 'tv_Po"st', "tv_a(b", "tv_", "tv_1abc"],
                         ids=["space", "semicolon", "quote", "parenthesis", "prefix-only", "digit-first"])
def test_bad_names_refused_42602_by_ddl(db, table):
    setup_blog(db)
    db.execute("CREATE TABLE t (x int)")
    statement = sql.SQL("CREATE TABLE {} AS ").format(sql.Identifier(table)).as_string(db) + USER_SQL
    refused(db, statement, None, "42602", table.removeprefix("tv_"))
    assert_engine_empty(db)
    assert db.execute("SELECT to_regclass('t')").fetchone()[0] == "t"


@pytest.mark.parametrize("path", ["function", "ddl"])
def test_longest_name_works(db, path):
    setup_blog(db)
    name = "n" * 60
    assert len(("tv_" + name).encode()) == 63
    if path == "function":
        assert create(db, name, POST_SQL) == "public.tv_" + name
    else:
        ctas(db, "tv_" + name, POST_SQL)
    assert tview_relations(db) == {("public", "tv_" + name, "r"), ("public", "v_" + name, "v")}
    assert db.execute("SELECT name FROM tview.tviews").fetchall() == [(name,)]
    db.execute("UPDATE tb_user SET name = 'ann2' WHERE pk_user = 1")
    assert_oracle(db)
    db.execute("SELECT tview.drop(%s)", (name,))
    assert_engine_empty(db)


# =========================================================================== 41 / errors: definitions

@pytest.mark.parametrize("definition", [
    "SELECT u.pk_user, to_jsonb(u) AS data FROM tb_user u; DROP TABLE tb_user",
    "SELECT u.pk_user, to_jsonb(u) AS data FROM tb_user u; DELETE FROM tb_user",
    "SELECT u.pk_user, to_jsonb(u) AS data FROM tb_user u; COMMIT; DROP TABLE tb_user",
    "SELECT 1 AS pk_user, '{}'::jsonb AS data; SELECT 2",
    "DROP TABLE tb_user",
    "DELETE FROM tb_user",
    "CREATE TABLE tb_evil (x int)",
    "INSERT INTO tb_user (pk_user, name) VALUES (99, 'evil') RETURNING pk_user, to_jsonb(name) AS data",
    "UPDATE tb_user SET name = 'evil' RETURNING pk_user, to_jsonb(name) AS data",
    "WITH d AS (DELETE FROM tb_user RETURNING *) SELECT d.pk_user, to_jsonb(d.name) AS data FROM d",
    "SELECT u.pk_user, to_jsonb(u) AS data INTO tb_evil FROM tb_user u",
    "SELEC u.pk_user FROM tb_user u",
    "SELECT u.pk_user, to_jsonb(u) AS data FROM tb_user u WHERE",
    "",
    "  ;  ",
], ids=["then-drop", "then-delete", "commit-then-drop", "two-selects", "drop", "delete", "create-table",
        "insert-returning", "update-returning", "with-delete", "select-into", "typo", "truncated", "empty",
        "semicolon-only"])
def test_definition_not_a_single_select_refused_42601(db, definition):
    setup_blog(db)
    users = rows(db, "tb_user")
    refused(db, "SELECT tview.create('x', %s)", (definition,), "42601", "tv_x")
    assert_engine_empty(db)
    assert rows(db, "tb_user") == users, "part of the definition ran"
    assert db.execute("SELECT to_regclass('tb_evil')").fetchone()[0] is None


@pytest.mark.parametrize("definition, sqlstate", [
    ("SELECT u.name, to_jsonb(u) AS data FROM tb_user u", "42703"),
    ("SELECT u.id, u.pk_user AS user_key, to_jsonb(u) AS data FROM tb_user u", "42703"),
    ("SELECT u.pk_user, to_jsonb(u) AS doc FROM tb_user u", "42703"),
    ("SELECT u.pk_user, to_json(u) AS data FROM tb_user u", "42804"),
    ("SELECT u.pk_user, u.name AS data FROM tb_user u", "42804"),
    ("SELECT u.pk_user::text AS pk_user, to_jsonb(u) AS data FROM tb_user u", "42804"),
    ("SELECT u.pk_user, to_jsonb(p) AS data FROM tb_user u JOIN tb_post p ON p.fk_user = u.pk_user", "23505"),
    ("SELECT nullif(u.pk_user, 2) AS pk_user, to_jsonb(u) AS data FROM tb_user u", "23502"),
], ids=["no-key", "no-pk-column", "no-data", "data-json", "data-text", "key-text", "duplicate-key", "null-key"])
@pytest.mark.parametrize("path", ["function", "ddl"])
def test_bad_definition_columns_refused_atomically(db, definition, sqlstate, path):
    setup_blog(db)
    create(db, "other", POST_CARD_SQL)     # something already there, untouched by the failure
    if path == "function":
        refused(db, "SELECT tview.create('x', %s)", (definition,), sqlstate, "tv_x")
    else:
        refused(db, f"CREATE TABLE tv_x AS {definition}", None, sqlstate, "tv_x")
    assert_no_tview(db, "x")
    assert db.execute("SELECT name FROM tview.tviews").fetchall() == [("other",)]
    db.execute("UPDATE tb_user SET name = 'ann2' WHERE pk_user = 1")
    assert_oracle(db)


def test_refused_create_leaves_no_trigger_on_base_tables(db):
    """The null key is only found when filling the table, after view, table, catalog rows and
    triggers were made: all of it must go."""
    setup_blog(db)
    refused(db, "SELECT tview.create('x', %s)",
            ("SELECT nullif(p.pk_post, 3) AS pk_post, jsonb_build_object('c', c.body) AS data"
             " FROM tb_post p LEFT JOIN tb_comment c ON c.pk_comment = p.pk_post",), "23502", "tv_x")
    assert_engine_empty(db)
    assert triggers_on(db, "tb_post") == set() and triggers_on(db, "tb_comment") == set()


# =========================================================================== 39. composite keys

def test_composite_key_tables(db):
    db.execute("""
        CREATE TABLE tb_student (pk_student integer PRIMARY KEY, name text);
        CREATE TABLE tb_course (pk_course integer PRIMARY KEY, title text);
        CREATE TABLE tb_enrollment (fk_student integer REFERENCES tb_student, fk_course integer REFERENCES tb_course,
                                    grade text, PRIMARY KEY (fk_student, fk_course));
        INSERT INTO tb_student VALUES (1, 'ann'), (2, 'bob');
        INSERT INTO tb_course VALUES (10, 'math'), (20, 'art');
        INSERT INTO tb_enrollment VALUES (1, 10, 'A'), (1, 20, 'B'), (2, 10, 'C')""")
    # A composite-key table aggregated as children of an entity with an integer key: works.
    create(db, "student", """SELECT s.pk_student, jsonb_build_object('name', s.name, 'courses',
        coalesce((SELECT jsonb_agg(jsonb_build_object('course', c.title, 'grade', e.grade) ORDER BY c.pk_course)
                  FROM tb_enrollment e JOIN tb_course c ON c.pk_course = e.fk_course
                  WHERE e.fk_student = s.pk_student), '[]'::jsonb)) AS data FROM tb_student s""")
    for step in [
        "UPDATE tb_enrollment SET grade = 'A+' WHERE fk_student = 1 AND fk_course = 20",
        "UPDATE tb_enrollment SET fk_student = 2 WHERE fk_student = 1 AND fk_course = 20",   # moves between keys
        "UPDATE tb_course SET title = 'maths' WHERE pk_course = 10",
        "DELETE FROM tb_enrollment WHERE fk_student = 2 AND fk_course = 10",
        "INSERT INTO tb_enrollment VALUES (1, 20, 'D')",
    ]:
        db.execute(step)
        assert_oracle(db)
    # The composite-key table itself as the TVIEW's root has no single integer key: refused cleanly.
    refused(db, "SELECT tview.create('enrollment', %s)",
            ("SELECT e.fk_student, e.fk_course, to_jsonb(e) AS data FROM tb_enrollment e",), "42703", "tv_enrollment")
    refused(db, "SELECT tview.create('enrollment', %s)",
            ("SELECT e.fk_student AS pk_student, to_jsonb(e) AS data FROM tb_enrollment e",), "23505",
            "tv_enrollment")
    assert_no_tview(db, "enrollment")


# =========================================================================== 40. identifiers

ODD_SCHEMA = 'we;ird "schema"'
ODD_SCHEMA_SQL = '"we;ird ""schema"""'   # the same, quoted

ODD_DDL = f"""
CREATE SCHEMA {ODD_SCHEMA_SQL};
CREATE TABLE tb_canary (pk_canary integer PRIMARY KEY);
CREATE TABLE "Owner; DROP TABLE tb_canary; --" (pk_owner integer PRIMARY KEY, "name'""--" text);
CREATE TABLE "select" (pk_select integer PRIMARY KEY,
                       fk_owner integer REFERENCES "Owner; DROP TABLE tb_canary; --",
                       "a;b" text, "it's" text, "q""uote" text, "--c" integer, "order" integer);
CREATE TABLE "child table" (pk_child integer PRIMARY KEY, fk_select integer REFERENCES "select", "group" text);
INSERT INTO "Owner; DROP TABLE tb_canary; --" VALUES (1, 'o''ne'), (2, 'two"');
INSERT INTO "select" VALUES (1, 1, 'a;b', 'it''s', 'q"', 1, 10), (2, 2, '--', '/*', '*/', 2, 20);
INSERT INTO "child table" VALUES (1, 1, 'g1'), (2, 1, 'g2'), (3, 2, 'g3');
"""

ODD_SQL = """SELECT s.pk_select, s.fk_owner, s."order", s."a;b",
    jsonb_build_object('a;b', s."a;b", 'it''s', s."it's", 'q"uote', s."q""uote", '--c', s."--c",
        'owner', jsonb_build_object('name', o."name'""--"),
        'children', coalesce((SELECT jsonb_agg(c."group" ORDER BY c.pk_child) FROM "child table" c
                              WHERE c.fk_select = s.pk_select), '[]'::jsonb)) AS data
FROM "select" s JOIN "Owner; DROP TABLE tb_canary; --" o ON o.pk_owner = s.fk_owner -- a ; comment
/* and ; a block */"""


@pytest.mark.parametrize("path", ["function", "ddl"])
def test_odd_identifiers_are_quoted(db, path):
    db.execute(ODD_DDL)
    if path == "function":
        create(db, "odd", ODD_SQL, schema_name=ODD_SCHEMA)
    else:
        ctas(db, f"{ODD_SCHEMA_SQL}.tv_odd", ODD_SQL)
    name = f"{ODD_SCHEMA}.odd"
    assert_oracle(db, name)
    assert columns(db, f"{ODD_SCHEMA_SQL}.tv_odd")[:4] == [
        ("pk_select", "integer"), ("fk_owner", "integer"), ("order", "integer"), ("a;b", "text")]
    for step in [
        """UPDATE "Owner; DROP TABLE tb_canary; --" SET "name'""--" = '''); DROP TABLE tb_canary; --'
           WHERE pk_owner = 1""",
        """UPDATE "select" SET "a;b" = 'x'';--', "it's" = E'\\\\', "order" = 11 WHERE pk_select = 1""",
        """UPDATE "select" SET fk_owner = 1 WHERE pk_select = 2""",
        """INSERT INTO "child table" VALUES (4, 2, '"; DROP TABLE tb_canary; --')""",
        """DELETE FROM "child table" WHERE pk_child = 1""",
        """INSERT INTO "select" VALUES (3, 2, NULL, NULL, NULL, NULL, NULL)""",
        """DELETE FROM "select" WHERE pk_select = 3""",
        'TRUNCATE "child table"',
    ]:
        db.execute(step)
        assert_oracle(db, name)
    assert db.execute("SELECT to_regclass('tb_canary')").fetchone()[0] == "tb_canary"
    assert db.execute(f"SELECT data->'owner'->>'name' FROM {ODD_SCHEMA_SQL}.tv_odd WHERE pk_select = 2"
                      ).fetchone()[0] == "'); DROP TABLE tb_canary; --"
    db.execute("SELECT tview.drop(%s)", (f"{ODD_SCHEMA_SQL}.odd",))
    assert_engine_empty(db)


def test_definition_with_comments_and_literal_semicolons(db):
    setup_blog(db)
    definition = ("SELECT u.pk_user, jsonb_build_object('name', u.name, 'x', 'a;b -- c /* d */', 'y', $q$;$q$)"
                  " AS data FROM tb_user u -- trailing comment; with a semicolon")
    create(db, "user", definition)
    db.execute("UPDATE tb_user SET name = 'ann2' WHERE pk_user = 1")
    assert_oracle(db)
    ctas(db, "tv_user2", definition.replace("u.pk_user,", "u.pk_user, 2 AS two,"))
    db.execute("UPDATE tb_user SET name = 'ann3' WHERE pk_user = 1")
    assert_oracle(db)
    assert db.execute("SELECT data->>'x', data->>'y' FROM tv_user2 WHERE pk_user = 1").fetchone() == \
        ("a;b -- c /* d */", ";")
