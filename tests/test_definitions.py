"""Definitions the engine keeps exact or refuses, whatever their shape, names and text.

A NULL key written to a base table fails the write (23502); comparisons work for types whose
equality is not pg_catalog's; system columns, reserved names, hostile names and text, overlong
schema and table names, scalar subqueries returning two rows and direct writes to tv_* all
give a clear error (SQLSTATE, message naming the object, HINT) and leave nothing half-made,
or work and stay equal to the definition (the oracle).
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql
from test_engine_create import POST_SQL, create, ctas, rows, setup_blog

from engine_helpers import refused
from oracle import assert_oracle

pytestmark = pytest.mark.engine


# =========================================================================== NULL keys

NULLABLE_KEY_SQL = "SELECT b.i AS pk_n1, to_jsonb(b.v) AS data FROM base_n b"


@pytest.mark.parametrize("mode", ["immediate", "deferred"])
@pytest.mark.parametrize("write", [
    "INSERT INTO base_n VALUES (NULL, 'c')",
    "UPDATE base_n SET i = NULL WHERE i = 1",
    "INSERT INTO base_n VALUES (3, 'x'), (NULL, 'y'), (4, 'z')",
])
def test_null_key_written_to_a_base_table_fails_the_write(db, mode, write):
    db.execute("CREATE TABLE base_n (i int, v text); INSERT INTO base_n VALUES (1, 'a'), (2, 'b')")
    db.execute("SELECT tview.create('n1', %s, %s)", (NULLABLE_KEY_SQL, mode))
    before = rows(db, "tv_n1")
    with pytest.raises(psycopg.errors.NotNullViolation) as info, db.transaction():
        db.execute(write)
    message = info.value.diag.message_primary
    assert "tv_n1" in message and "pk_n1" in message, message
    assert info.value.diag.message_hint
    assert rows(db, "tv_n1") == before
    assert_oracle(db)


def test_null_in_the_key_column_filtered_by_the_definition_is_accepted(db):
    """A NULL the definition filters out is no NULL key: the write goes through."""
    db.execute("CREATE TABLE base_n (i int, v text); INSERT INTO base_n VALUES (1, 'a'), (2, 'b')")
    create(db, "n2", NULLABLE_KEY_SQL + " WHERE b.i IS NOT NULL")
    db.execute("INSERT INTO base_n VALUES (NULL, 'c')")
    db.execute("UPDATE base_n SET i = NULL WHERE i = 1")
    db.execute("UPDATE base_n SET i = 5 WHERE v = 'c'")
    assert [r[0] for r in db.execute("SELECT pk_n1 FROM tv_n2 ORDER BY 1")] == [2, 5]
    assert_oracle(db)


@pytest.mark.parametrize("write", [
    "INSERT INTO tb_kind VALUES (7, 'new kind')",                   # the NULL-key row joins a kind now
    "UPDATE tb_kind SET pk_kind = 7 WHERE pk_kind = 1",
    "DELETE FROM tb_block WHERE pk_block = 1",                       # the NULL-key row is blocked no more
])
def test_null_key_reached_through_another_table_fails_the_write(db, write):
    """A row whose key is NULL already, kept out of the definition by a join or a NOT EXISTS, that a
    write to another table lets in."""
    db.execute("""CREATE TABLE tb_kind (pk_kind int PRIMARY KEY, label text);
                  CREATE TABLE base_n (i int, fk_kind int, v text);
                  CREATE TABLE tb_block (pk_block int PRIMARY KEY, fk_kind int);
                  INSERT INTO tb_kind VALUES (1, 'one');
                  INSERT INTO base_n VALUES (1, 1, 'a'), (NULL, 7, 'b'), (NULL, 1, 'c');
                  INSERT INTO tb_block VALUES (1, 1)""")
    create(db, "n3", "SELECT b.i AS pk_n, jsonb_build_object('v', b.v, 'kind', k.label) AS data "
                     "FROM base_n b JOIN tb_kind k ON k.pk_kind = b.fk_kind "
                     "WHERE b.i IS NOT NULL OR b.fk_kind = 1 AND NOT EXISTS "
                     "(SELECT FROM tb_block x WHERE x.fk_kind = b.fk_kind) OR b.fk_kind = 7")
    assert dict(db.execute("SELECT source, lineage FROM tview.graph")) == \
        {"base_n": "root", "tb_kind": "fk", "tb_block": "fk"}          # keyed refreshes, not whole ones
    before = rows(db, "tv_n3")
    refused(db, write, None, "23502", "tv_n3", "pk_n")
    assert rows(db, "tv_n3") == before
    assert_oracle(db)


def test_null_key_through_a_tview_read_by_another(db):
    """The key of a TVIEW taken from a nullable column of a TVIEW it reads."""
    db.execute("""CREATE TABLE tb_item (pk_item int PRIMARY KEY, fk_group int, v text);
                  INSERT INTO tb_item VALUES (1, 10, 'a'), (2, 20, 'b')""")
    create(db, "item", "SELECT i.pk_item, i.fk_group, to_jsonb(i.v) AS data FROM tb_item i")
    create(db, "grp", "SELECT t.fk_group AS pk_group, t.data FROM tv_item t")
    with pytest.raises(psycopg.errors.NotNullViolation) as info:
        db.execute("UPDATE tb_item SET fk_group = NULL WHERE pk_item = 1")
    assert "tv_grp" in info.value.diag.message_primary
    assert_oracle(db)


# =========================================================================== types

LTREE_LIKE = """
CREATE SCHEMA ext;
CREATE TYPE ext.label;
CREATE FUNCTION ext.label_in(cstring) RETURNS ext.label LANGUAGE internal IMMUTABLE STRICT AS 'textin';
CREATE FUNCTION ext.label_out(ext.label) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'textout';
CREATE TYPE ext.label (INPUT = ext.label_in, OUTPUT = ext.label_out, LIKE = text);
CREATE FUNCTION ext.label_eq(ext.label, ext.label) RETURNS boolean LANGUAGE sql IMMUTABLE STRICT
    AS 'SELECT lower($1::text) = lower($2::text)';
CREATE FUNCTION ext.label_lt(ext.label, ext.label) RETURNS boolean LANGUAGE sql IMMUTABLE STRICT
    AS 'SELECT lower($1::text) < lower($2::text)';
CREATE FUNCTION ext.label_cmp(ext.label, ext.label) RETURNS int LANGUAGE sql IMMUTABLE STRICT
    AS 'SELECT CASE WHEN lower($1::text) < lower($2::text) THEN -1 WHEN lower($1::text) = lower($2::text) THEN 0 ELSE 1 END';
CREATE OPERATOR ext.= (LEFTARG = ext.label, RIGHTARG = ext.label, FUNCTION = ext.label_eq, COMMUTATOR = OPERATOR(ext.=));
CREATE OPERATOR ext.< (LEFTARG = ext.label, RIGHTARG = ext.label, FUNCTION = ext.label_lt);
CREATE OPERATOR CLASS ext.label_ops DEFAULT FOR TYPE ext.label USING btree AS
    OPERATOR 1 ext.<, OPERATOR 3 ext.=, FUNCTION 1 ext.label_cmp(ext.label, ext.label);
"""


def test_types_whose_equality_is_outside_pg_catalog(db):
    """A column (and an array of it) of a type whose = lives in another schema, like an extension's
    ltree: every write works, and a change its = calls equal (case only) still reaches the TVIEW.
    A join on such columns gets its keys through the type's own operator."""
    db.execute(LTREE_LIKE)
    db.execute("""CREATE TABLE tb_node (pk_node int PRIMARY KEY, path ext.label, tags ext.label[], amount numeric);
                  CREATE TABLE tb_note (pk_note int PRIMARY KEY, path ext.label, body text);
                  INSERT INTO tb_node VALUES (1, 'a.b', '{x,y}', 1.0), (2, 'a.c', '{}', 2);
                  INSERT INTO tb_note VALUES (1, 'a.b', 'one'), (2, 'a.c', 'two')""")
    db.execute("SET search_path = public, ext")
    create(db, "node", "SELECT n.pk_node, n.path, n.tags, n.amount, to_jsonb(n.pk_node) AS data FROM tb_node n")
    create(db, "node_note", "SELECT n.pk_node, jsonb_build_object('note', t.body) AS data "
                            "FROM tb_node n JOIN tb_note t ON t.path = n.path")
    db.execute("SET search_path = public")
    db.execute("UPDATE tb_node SET path = 'A.B' WHERE pk_node = 1")     # equal to its =, not the same
    db.execute("UPDATE tb_node SET tags = '{X,y}', amount = 1.00 WHERE pk_node = 1")
    db.execute("INSERT INTO tb_node VALUES (3, 'a.d', '{z}', 3)")
    db.execute("UPDATE tb_note SET body = 'uno' WHERE pk_note = 1")
    db.execute("INSERT INTO tb_note VALUES (3, 'a.d', 'three')")
    db.execute("DELETE FROM tb_node WHERE pk_node = 2")
    assert db.execute("SELECT path::text, tags::text, amount::text FROM tv_node WHERE pk_node = 1").fetchone() == \
        ("A.B", "{X,y}", "1.00")
    assert db.execute("SELECT data->>'note' FROM tv_node_note WHERE pk_node = 1").fetchone() == ("uno",)
    assert db.execute("SELECT lineage FROM tview.graph WHERE tview = 'public.tv_node_note'"
                      " AND source = 'tb_note'").fetchone() != ("full",)
    assert_oracle(db)


# =========================================================================== system columns

@pytest.mark.parametrize("column", ["ctid", "xmin", "xmax", "cmin", "cmax", "tableoid"])
@pytest.mark.parametrize("where", ["select", "where"])
def test_definition_reading_a_system_column_is_refused(db, column, where):
    setup_blog(db)
    definition = (f"SELECT u.pk_user, jsonb_build_object('r', u.{column}::text) AS data FROM tb_user u"
                  if where == "select" else
                  f"SELECT u.pk_user, to_jsonb(u.name) AS data FROM tb_user u WHERE u.{column}::text <> ''")
    refused(db, "SELECT tview.create('x', %s)", (definition,), "42P17", "public.tv_x", f"system column {column}")


def test_system_column_read_by_a_helper_view_is_refused(db):
    setup_blog(db)
    db.execute("CREATE VIEW h AS SELECT u.pk_user, u.ctid AS at FROM tb_user u")
    refused(db, "SELECT tview.create('x', %s)", ("SELECT h.pk_user, to_jsonb(h.at::text) AS data FROM h",),
            "42P17", "system column ctid")


# =========================================================================== reserved names

# Output columns named like what the generated SQL introduces (CTEs, aliases, variables).
RESERVED = ["_tview_placeholder", "_tview_locked", "m", "k", "s", "c", "d", "v", "t", "x", "r", "j0", "src", "cur",
            "del", "ups", "new_key", "old_key", "old_img", "new_img", "null_keys", "keys", "placeholders", "missing",
            "skey", "exclude", "kept", "entry", "batch", "op", "idx", "sdata", "arr", "n", "more", "images", "tkey",
            "work", "cfg", "source", "old_rows", "new_rows"]


def test_output_columns_named_like_engine_internals(db):
    """Every write (single and batched, patched documents and arrays included) stays exact."""
    cols = ", ".join(f"c.pk_comment + {i} AS {sql.Identifier(n).as_string(db)}" for i, n in enumerate(RESERVED))
    setup_blog(db)
    create(db, "comment", f"SELECT c.pk_comment, c.fk_post, {cols}, jsonb_build_object('body', c.body) AS data "
                          "FROM tb_comment c")
    pcols = ", ".join(f"p.pk_post AS {sql.Identifier(n).as_string(db)}" for n in RESERVED)
    create(db, "post", f"SELECT p.pk_post, {pcols}, jsonb_build_object('title', p.title, 'comments', "
                       "coalesce((SELECT jsonb_agg(c.data ORDER BY c.pk_comment) FROM tv_comment c "
                       "WHERE c.fk_post = p.pk_post), '[]')) AS data FROM tb_post p")
    # share-locks at the top level (a join), and an embedded document patched in place
    ucols = ", ".join(f"u.pk_user AS {sql.Identifier(n).as_string(db)}" for n in RESERVED)
    db.execute('ALTER TABLE tb_user ADD COLUMN "PERFORM" text')     # a name the engine's own SQL holds
    create(db, "by", f"SELECT c.pk_comment, {ucols}, jsonb_build_object('by', u.name || '($1);', 'p', u.\"PERFORM\", "
                     "'c', tc.data) AS data "
                     "FROM tb_comment c JOIN tb_user u ON u.pk_user = c.fk_user "
                     "JOIN tv_comment tc ON tc.pk_comment = c.pk_comment")
    assert db.execute("SELECT patch_specs <> '[]' FROM tview.tviews WHERE name = 'by'").fetchone() == (True,)
    assert db.execute("SELECT p.prosrc LIKE '%FOR SHARE OF%' FROM tview.tviews t JOIN pg_proc p"
                      " ON p.proname = '_refresh_' || t.id WHERE t.name = 'by'").fetchone() == (True,)
    db.execute("UPDATE tb_comment SET body = body || '!' WHERE pk_comment = 1")
    db.execute("UPDATE tb_user SET name = name || '!'")
    db.execute("UPDATE tb_comment SET body = body || '?'")
    db.execute("INSERT INTO tb_comment VALUES (4, 1, 1, 'new'), (5, 2, 1, 'other')")
    db.execute("INSERT INTO tb_post VALUES (4, DEFAULT, 1, 'fourth')")
    db.execute("INSERT INTO tb_comment VALUES (6, 4, 1, 'x')")
    db.execute("DELETE FROM tb_comment WHERE pk_comment = 2")
    db.execute("UPDATE tb_post SET title = 'renamed'")
    db.execute("SELECT tview.refresh('post')")
    db.execute("SELECT tview.refresh('by', ARRAY[1, 3]::bigint[])")
    assert_oracle(db)


# =========================================================================== names and text

ODD = 'a%s%1$s%%b"$body$[x]'


def test_percent_and_dollar_tags_in_names_and_text(db):
    """% and $body$ in schema, table and column names, and $body$, $f$, $b$, $capture$ in string
    constants of a definition: created, maintained, exact."""
    schema, table, column = (sql.Identifier(ODD + x) for x in ("s", "t", "c"))
    db.execute(sql.SQL("CREATE SCHEMA {s}; CREATE TABLE {s}.{t} (pk_x int PRIMARY KEY, {c} text, fk_y int);"
                       "CREATE TABLE {s}.{y} (pk_y int PRIMARY KEY, {c} text);"
                       "INSERT INTO {s}.{y} VALUES (1, 'y1'), (2, 'y2');"
                       "INSERT INTO {s}.{t} VALUES (1, 'one', 1), (2, 'two', 2)").format(
        s=schema, t=table, c=column, y=sql.Identifier(ODD + "y")))
    text = "'$body$ $f$ $b$ $capture$ $$ %s %1$s'"
    definition = sql.SQL("SELECT x.pk_x, x.fk_y, x.{c} AS {c}, jsonb_build_object('v', x.{c}, 'k', {text}::text, "
                         "'y', y.{c}) AS data FROM {s}.{t} x JOIN {s}.{y} y ON y.pk_y = x.fk_y "
                         "WHERE x.{c} <> {text}").format(
        s=schema, t=table, c=column, y=sql.Identifier(ODD + "y"), text=sql.SQL(text)).as_string(db)
    create(db, "odd", definition, schema_name=ODD + "s")
    db.execute(sql.SQL("UPDATE {s}.{t} SET {c} = {c} || '%' WHERE pk_x = 1").format(s=schema, t=table, c=column))
    db.execute(sql.SQL("INSERT INTO {s}.{t} VALUES (3, 'three', 1), (4, 'four', 2)").format(s=schema, t=table))
    db.execute(sql.SQL("UPDATE {s}.{y} SET {c} = 'y1%' WHERE pk_y = 1").format(
        s=schema, y=sql.Identifier(ODD + "y"), c=column))
    db.execute(sql.SQL("DELETE FROM {s}.{t} WHERE pk_x = 2").format(s=schema, t=table))
    assert db.execute(sql.SQL("SELECT count(*) FROM {s}.tv_odd").format(s=schema)).fetchone() == (3,)
    assert_oracle(db, f"{ODD}s.odd")
    db.execute("SELECT tview.drop(%s)", (sql.Identifier(ODD + "s", "tv_odd").as_string(db),))


def test_dollar_tags_and_percent_in_a_ctas_definition(db):
    setup_blog(db)
    ctas(db, "tv_dollar", "SELECT u.pk_user, jsonb_build_object('t', '$body$ $f$ $b$ $capture$ %s %1$s'::text || u.name)"
                          " AS data FROM tb_user u WHERE u.name <> $body$x$body$")
    db.execute("UPDATE tb_user SET name = name || '%'")
    db.execute("INSERT INTO tb_user (pk_user, name) VALUES (9, '$body$')")
    assert db.execute("SELECT data->>'t' FROM tv_dollar WHERE pk_user = 9").fetchone() == \
        ("$body$ $f$ $b$ $capture$ %s %1$s$body$",)
    assert_oracle(db)


def test_schema_name_longer_than_63_bytes_is_refused(db):
    setup_blog(db)
    long_schema = "s" * 63
    db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(long_schema)))
    refused(db, "SELECT tview.create('x', %s, schema_name => %s)", (POST_SQL, long_schema + "extra"),
            "42602", "too long", long_schema + "extra")
    assert create(db, "x", POST_SQL, schema_name=long_schema) == f"{long_schema}.tv_x"


@pytest.mark.parametrize("length", [61, 70])
def test_ctas_with_a_name_longer_than_63_bytes_is_refused_like_create(db, length):
    setup_blog(db)
    name = "tv_" + "a" * length
    exc = refused(db, f"CREATE TABLE {name} AS {POST_SQL}", None, "42602", "too long", name)
    same = refused(db, "SELECT tview.create(%s, %s)", (name, POST_SQL), "42602", "too long")
    assert exc.diag.message_primary == same.diag.message_primary
    assert exc.diag.message_hint == same.diag.message_hint


def test_ctas_with_the_longest_name_still_works(db):
    setup_blog(db)
    name = "tv_" + "a" * 60
    ctas(db, name, POST_SQL)
    assert db.execute("SELECT count(*) FROM tview.tviews WHERE name = %s", ("a" * 60,)).fetchone() == (1,)


# =========================================================================== scalar subquery

def test_correlated_scalar_subquery_returning_two_rows_gives_21000(db):
    setup_blog(db)
    db.execute("DELETE FROM tb_comment WHERE pk_comment = 2")
    create(db, "post_one", "SELECT p.pk_post, jsonb_build_object('c', (SELECT c.body FROM tb_comment c "
                           "WHERE c.fk_post = p.pk_post)) AS data FROM tb_post p")
    for write in ["INSERT INTO tb_comment VALUES (9, 3, 1, 'second')",      # direct path, one key
                  "UPDATE tb_comment SET fk_post = 1 WHERE pk_comment = 3",
                  "INSERT INTO tb_comment VALUES (9, 3, 1, 'a'), (10, 2, 1, 'b'), (11, 2, 1, 'c')"]:
        exc = refused(db, write, None, "21000", "public.tv_post_one")
        assert "more than one row" in exc.diag.message_primary
    assert_oracle(db)
    db.execute("SET session_replication_role = replica")   # behind the engine's back: only a refresh sees it
    db.execute("INSERT INTO tb_comment VALUES (9, 3, 1, 'second')")
    db.execute("RESET session_replication_role")
    exc = refused(db, "SELECT tview.refresh('post_one')", None, "21000", "public.tv_post_one", "more than one row")
    assert exc.diag.message_primary.count("public.tv_post_one") == 1      # named once
    refused(db, "SELECT tview.refresh('post_one', ARRAY[3]::bigint[])", None, "21000", "public.tv_post_one")


def test_duplicate_keys_still_give_23505(db):
    setup_blog(db)
    create(db, "dup", "SELECT c.fk_post AS pk_post, to_jsonb(c.body) AS data FROM tb_comment c WHERE c.pk_comment <> 2")
    refused(db, "UPDATE tb_comment SET fk_post = 3 WHERE pk_comment = 1", None, "23505", "duplicate keys")


# =========================================================================== direct writes

@pytest.mark.parametrize("write", [
    "INSERT INTO tv_post SELECT 99, id, fk_user, data FROM tv_post WHERE pk_post = 2",
    "UPDATE tv_post SET data = '{}' WHERE pk_post = 1",
    "DELETE FROM tv_post",
    "TRUNCATE tv_post",
])
def test_direct_writes_to_a_tview_are_refused(db, write):
    setup_blog(db)
    create(db, "post", POST_SQL)
    before = rows(db, "tv_post")
    exc = refused(db, write, None, "42809", "public.tv_post")
    assert "tview.refresh" in exc.diag.message_hint
    assert rows(db, "tv_post") == before


def test_copy_into_a_tview_is_refused(db):
    setup_blog(db)
    create(db, "post", POST_SQL)
    before = rows(db, "tv_post")
    with (pytest.raises(psycopg.errors.WrongObjectType) as info,
          db.cursor().copy("COPY tv_post (pk_post, data) FROM STDIN") as copy):
        copy.write_row((42, "{}"))
    assert "public.tv_post" in info.value.diag.message_primary
    assert rows(db, "tv_post") == before


def test_direct_write_from_a_function_of_ones_own_is_refused(db):
    setup_blog(db)
    create(db, "post", POST_SQL)
    db.execute("CREATE FUNCTION wipe() RETURNS void LANGUAGE plpgsql AS 'BEGIN DELETE FROM tv_post; END'")
    db.execute('CREATE FUNCTION "tview.wipe"() RETURNS void LANGUAGE plpgsql AS \'BEGIN DELETE FROM tv_post; END\'')
    refused(db, "SELECT wipe()", None, "42809", "public.tv_post")
    refused(db, 'SELECT "tview.wipe"()', None, "42809", "public.tv_post")
    db.execute("DO 'BEGIN PERFORM 1; END'")


def test_engine_writes_and_refresh_still_work_and_health_finds_bypassed_damage(db):
    setup_blog(db)
    create(db, "post", POST_SQL)
    db.execute("UPDATE tb_user SET name = 'ann2' WHERE pk_user = 1")
    db.execute("DELETE FROM tb_comment")
    db.execute("TRUNCATE tb_comment")
    assert_oracle(db)
    db.execute("SET session_replication_role = replica")      # a superuser bypassing the engine
    db.execute("DELETE FROM tv_post WHERE pk_post = 1")
    db.execute("RESET session_replication_role")
    assert db.execute("SELECT * FROM tview.verify('post')").fetchall() == [(1, "missing")]
    assert any(r[0] == "drift" for r in db.execute("SELECT check_name FROM tview.health(deep => true)"))
    assert db.execute("SELECT tview.refresh('post')").fetchone()[0] == 1
    assert db.execute("SELECT tview.refresh('post', ARRAY[2]::bigint[])").fetchone()[0] == 0
    assert_oracle(db)
