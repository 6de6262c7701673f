"""Lineage rules for equalities that are not plain column = column, proven by the oracle.

`x IN (SELECT ...)` in WHERE, joins on expressions of one relation's columns (a JSON document's
field cast to a key, a uuid written as text, `coalesce`, a cast), `= ANY(array of keys)`, a key
that is itself such an expression, and tables read only in a WITH query nothing reads get
keyed rules instead of `full`; the shapes
that would be unsound keyed stay `full`. Random writes (single and bulk inserts, updates of the
joined columns and of the expressions' inputs, NULLs, deletes, key moves, rolled-back
transactions) against every shape, in both directions, leave every TVIEW equal to its
definition.
"""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle import assert_oracle

pytestmark = pytest.mark.engine

TABLES = """
CREATE TABLE tb_user (pk_user bigint PRIMARY KEY, id uuid UNIQUE, name text, post_ids int[], born date);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, i int, data jsonb);
CREATE TABLE tb_b (pk_b int PRIMARY KEY, i int, flag boolean);
CREATE INDEX ON tb_post (((data ->> 'fk_user')::bigint));
"""

# name -> (definition, {source: lineage}); every one is created over TABLES.
KEYED = {
    "in_subquery": (
        "SELECT p.pk_post, p.data FROM tb_post p WHERE p.i IN (SELECT b.i FROM tb_b b WHERE b.flag)",
        {"tb_post": "root", "tb_b": "fk"}),
    "in_subquery_correlated": (
        "SELECT u.pk_user, jsonb_build_object('posts', (SELECT count(*) FROM tb_post p WHERE p.i = u.pk_user "
        "AND p.pk_post IN (SELECT b.pk_b FROM tb_b b WHERE b.flag IS NOT TRUE))) AS data FROM tb_user u",
        {"tb_user": "root", "tb_post": "child", "tb_b": "path"}),
    "json_field_cast": (
        "SELECT p.pk_post, jsonb_build_object('author', u.name) AS data "
        "FROM tb_post p JOIN tb_user u ON (p.data ->> 'fk_user')::bigint = u.pk_user",
        {"tb_post": "root", "tb_user": "fk"}),
    "json_field_text": (
        "SELECT p.pk_post, jsonb_build_object('author', u.name, 'user', u.pk_user) AS data "
        "FROM tb_post p LEFT JOIN tb_user u ON p.data ->> 'authorId' = u.id::text",
        {"tb_post": "root", "tb_user": "fk"}),
    "json_field_children": (
        "SELECT u.pk_user, jsonb_build_object('name', u.name, 'posts', "
        "(SELECT jsonb_agg(p.pk_post ORDER BY p.pk_post) FROM tb_post p "
        "WHERE (p.data ->> 'fk_user')::bigint = u.pk_user)) AS data FROM tb_user u",
        {"tb_user": "root", "tb_post": "fk"}),
    "any_array": (
        "SELECT p.pk_post, jsonb_build_object('listed_by', (SELECT jsonb_agg(u.name ORDER BY u.pk_user) "
        "FROM tb_user u WHERE p.pk_post = ANY (u.post_ids))) AS data FROM tb_post p",
        {"tb_post": "root", "tb_user": "fk"}),
    "any_array_children": (
        "SELECT u.pk_user, jsonb_build_object('posts', coalesce((SELECT jsonb_agg(p.data ORDER BY p.pk_post) "
        "FROM tb_post p WHERE p.pk_post = ANY (u.post_ids)), '[]')) AS data FROM tb_user u",
        {"tb_user": "root", "tb_post": "fk"}),
    "coalesce_join": (
        "SELECT p.pk_post, jsonb_build_object('user', u.name) AS data "
        "FROM tb_post p LEFT JOIN tb_user u ON coalesce(p.i, -1) = u.pk_user",
        {"tb_post": "root", "tb_user": "fk"}),
    "cast_join": (
        "SELECT b.pk_b, jsonb_build_object('user', u.name) AS data "
        "FROM tb_b b JOIN tb_user u ON u.pk_user::int = b.i",
        {"tb_b": "root", "tb_user": "fk"}),
    "unread_cte": (
        "WITH never AS (SELECT * FROM tb_b) SELECT p.pk_post, p.data FROM tb_post p",
        {"tb_post": "root", "tb_b": "none"}),
    # the key an expression of the root's columns: its changed rows' keys are the expression over them
    "cast_key": ("SELECT b.pk_b::bigint AS pk_x, to_jsonb(b.flag) AS data FROM tb_b b", {"tb_b": "root"}),
    "coalesce_key": (
        "SELECT coalesce(b.i, -1) AS pk_x, jsonb_build_object('flags', jsonb_agg(b.flag ORDER BY b.pk_b)) AS data "
        "FROM tb_b b GROUP BY 1",
        {"tb_b": "root"}),
    "json_key": (
        "SELECT (p.data ->> 'fk_user')::bigint AS pk_x, jsonb_build_object('posts', jsonb_agg(p.pk_post ORDER BY "
        "p.pk_post), 'author', min(u.name)) AS data FROM tb_post p LEFT JOIN tb_user u ON p.data ->> 'authorId' = "
        "u.id::text WHERE p.data ->> 'fk_user' IS NOT NULL GROUP BY 1",
        {"tb_post": "root", "tb_user": "fk"}),
    "expression_key_children": (
        "SELECT b.pk_b::bigint AS pk_x, jsonb_build_object('users', (SELECT jsonb_agg(u.name ORDER BY u.pk_user) "
        "FROM tb_user u WHERE u.pk_user = b.pk_b::bigint)) AS data FROM tb_b b",
        {"tb_b": "root", "tb_user": "fk"}),
}

# Shapes that stay `full`: keyed, they would miss rows.
FULL = {
    # a NULL among the subquery's values turns NOT IN into NULL for every row
    "not_in": ("SELECT p.pk_post, p.data FROM tb_post p WHERE p.i NOT IN (SELECT b.i FROM tb_b b)",
               {"tb_post": "root", "tb_b": "full"}),
    # in the target list IN is true, false or NULL: a NULL in the subquery changes every row
    "in_target_list": ("SELECT p.pk_post, jsonb_build_object('in', p.i IN (SELECT b.i FROM tb_b b)) AS data "
                       "FROM tb_post p", {"tb_post": "root", "tb_b": "full"}),
    # a WITH query that is read is a read like any other: here it has no equality to the key
    "read_cte": ("WITH bs AS (SELECT count(*) AS n FROM tb_b) SELECT p.pk_post, jsonb_build_object('n', bs.n) AS data "
                 "FROM tb_post p, bs", {"tb_post": "root", "tb_b": "full"}),
    # the key an expression of two relations' columns: no one relation's changed rows give it
    "two_table_key": ("SELECT p.pk_post * 100 + b.pk_b AS pk_x, to_jsonb(b.flag) AS data "
                      "FROM tb_post p JOIN tb_b b ON b.i = p.i", {"tb_post": "full", "tb_b": "full"}),
    # a date's text depends on the session's DateStyle: a keys query could compute another one
    "stable_cast": ("SELECT p.pk_post, jsonb_build_object('u', (SELECT jsonb_agg(u.name ORDER BY u.pk_user) "
                    "FROM tb_user u WHERE p.data ->> 'born' = u.born::text)) AS data FROM tb_post p",
                    {"tb_post": "root", "tb_user": "full"}),
}

SHAPES = KEYED | FULL


def graph(db: psycopg.Connection, name: str) -> dict[str, str]:
    return dict(db.execute("SELECT source, lineage FROM tview.graph WHERE tview = %s", (f"public.tv_{name}",)))


def create_all(db: psycopg.Connection, shapes: dict, mode: str = "immediate") -> None:
    db.execute(TABLES)
    for name, (definition, _) in shapes.items():
        db.execute("SELECT tview.create(%s, %s, %s)", (name, definition, mode))


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_shape_gets_its_rule(db, name):
    create_all(db, {name: SHAPES[name]})
    assert graph(db, name) == SHAPES[name][1]


def test_a_table_read_in_a_cte_that_is_read_elsewhere_keeps_that_reads_rule(db):
    """A WITH query nobody reads leaves only the other reads of its table to count."""
    create_all(db, {"cte_and_join": (
        "WITH never AS (SELECT * FROM tb_user) SELECT p.pk_post, jsonb_build_object('u', u.name) AS data "
        "FROM tb_post p JOIN tb_user u ON u.pk_user = p.i", None)})
    assert graph(db, "cte_and_join") == {"tb_post": "root", "tb_user": "fk"}


def test_a_read_hidden_from_the_walk_next_to_an_unread_cte_stays_full(db):
    """tb_b read in a function's argument (a place the analysis does not walk) besides an unread WITH
    query: not `none`."""
    create_all(db, {"hidden": (
        "WITH never AS (SELECT * FROM tb_b) SELECT p.pk_post, jsonb_build_object('g', g) AS data "
        "FROM tb_post p, generate_series(1, (SELECT count(*) FROM tb_b)::int) g WHERE g = 1", None)})
    assert graph(db, "hidden")["tb_b"] == "full"


def test_an_equality_or_a_key_on_a_tview_document_stays_full(db):
    """Changed TVIEW rows reach the TVIEWs reading them without their data: an equality on a field of
    data, or a key computed from it, cannot be evaluated over them."""
    create_all(db, {"json_field_cast": KEYED["json_field_cast"]})
    definition = ("SELECT u.pk_user, jsonb_build_object('posts', (SELECT count(*) FROM tv_json_field_cast t "
                      "WHERE (t.data ->> 'author') = u.name)) AS data FROM tb_user u")
    db.execute("SELECT tview.create('reader', %s)", (definition,))
    assert graph(db, "reader") == {"tb_user": "root", "tv_json_field_cast": "full"}
    db.execute("SELECT tview.create('keyed_by_data', $$SELECT (t.data ->> 'author')::bigint AS pk_x, t.data"
               " FROM tv_json_field_cast t$$)")
    assert graph(db, "keyed_by_data") == {"tv_json_field_cast": "full"}


def test_a_key_computed_from_a_tview_s_columns_follows_its_changed_rows(db):
    """Changed TVIEW rows reach readers with every column but data: a key computed from those is
    `root`, evaluated over them, and NULL where they make it NULL."""
    db.execute(TABLES)
    db.execute("SELECT tview.create('base', 'SELECT b.pk_b, b.i AS n, to_jsonb(b.flag) AS data FROM tb_b b')")
    db.execute("SELECT tview.create('reader', 'SELECT t.n::bigint * 10 AS pk_y, t.data FROM tv_base t')")
    assert graph(db, "reader") == {"tv_base": "root"}
    db.execute("INSERT INTO tb_b VALUES (1, 1, true), (2, 2, false); UPDATE tb_b SET i = 3 WHERE pk_b = 2")
    assert db.execute("SELECT pk_y, data FROM tv_reader ORDER BY 1").fetchall() == [(10, True), (30, False)]
    with pytest.raises(psycopg.errors.NotNullViolation) as failed:
        db.execute("UPDATE tb_b SET i = NULL WHERE pk_b = 1")
    assert failed.value.diag.message_primary == "TVIEW public.tv_reader has 1 row(s) with a NULL key pk_y"
    db.execute("DELETE FROM tb_b WHERE pk_b = 2")
    assert_oracle(db)


@pytest.mark.parametrize("mode", ["immediate", "deferred"])
def test_a_cast_key_is_null_where_its_column_is_and_coalesce_never(db, mode):
    """A key that is an expression is NULL where the expression is: a write giving a row such a key
    fails (23502, naming the TVIEW and its key) as for a nullable key column; coalesce(i, -1) never is
    NULL."""
    db.execute(TABLES)
    db.execute("SELECT tview.create('nullable', 'SELECT b.i::bigint AS pk_x, to_jsonb(b.flag) AS data FROM tb_b b', %s)",
               (mode,))
    db.execute("SELECT tview.create('never_null', %s, %s)", (KEYED["coalesce_key"][0], mode))
    db.execute("INSERT INTO tb_b VALUES (1, 1, true), (2, 2, false)")
    for write in ["INSERT INTO tb_b VALUES (3, NULL, true)", "UPDATE tb_b SET i = NULL WHERE pk_b = 2"]:
        with pytest.raises(psycopg.errors.NotNullViolation) as failed:
            db.execute(write)
        assert failed.value.diag.message_primary == "TVIEW public.tv_nullable has 1 row(s) with a NULL key pk_x"
    assert_oracle(db)
    db.execute("SELECT tview.drop('nullable')")
    db.execute("INSERT INTO tb_b VALUES (3, NULL, true); UPDATE tb_b SET i = NULL WHERE pk_b = 2")
    assert db.execute("SELECT pk_x, data FROM tv_never_null ORDER BY 1").fetchall() == [
        (-1, {"flags": [False, True]}), (1, {"flags": [True]})]
    assert_oracle(db)


def test_keys_queries_quote_names_and_text(db):
    """Names and JSON field names with quotes, % and $ survive into the keys queries."""
    table = '"we%ird ""t"'
    db.execute(f"""CREATE TABLE {table} (pk_we int PRIMARY KEY, "d%$" jsonb);
                   CREATE TABLE tb_o (pk_o bigint PRIMARY KEY, "na'me" text)""")
    db.execute(f"""SELECT tview.create('weird', $q$SELECT w.pk_we, jsonb_build_object('o', o."na'me") AS data
                   FROM {table} w JOIN tb_o o ON (w."d%$" ->> 'f''%s$$"') :: bigint = o.pk_o$q$)""")
    assert graph(db, "weird") == {table: "root", "tb_o": "fk"}
    db.execute(f"""INSERT INTO tb_o VALUES (1, 'a'), (2, 'b');
                   INSERT INTO {table} VALUES (1, '{{"f''%s$$\\"": 1}}'), (2, '{{"f''%s$$\\"": 2}}')""")
    db.execute("""UPDATE tb_o SET "na'me" = 'c' WHERE pk_o = 2""")
    assert db.execute("SELECT data->>'o' FROM tv_weird WHERE pk_we = 2").fetchone() == ("c",)
    assert_oracle(db)


# =========================================================================== random writes

USERS, POSTS, BS = 6, 8, 5
UUIDS = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(1, USERS + 1)]

user_key = st.sampled_from([-1, *range(1, USERS + 1)])     # -1: what coalesce(i, -1) gives NULL
post_key = st.integers(1, POSTS)
b_key = st.integers(1, BS)
small_int = st.one_of(st.none(), st.integers(-1, USERS))
uuid_text = st.one_of(st.none(), st.sampled_from(UUIDS))
post_ids = st.one_of(st.none(), st.lists(st.one_of(st.none(), post_key), max_size=4))


def literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(literal(v) for v in value) + "]::int[]"
    return "'" + str(value).replace("'", "''") + "'"


@st.composite
def post_data(draw) -> str:
    fields = []
    if draw(st.booleans()):
        fields.append(f"'fk_user', {literal(draw(small_int))}")
    if draw(st.booleans()):
        fields.append(f"'authorId', {literal(draw(uuid_text))}")
    if draw(st.booleans()):
        fields.append("'born', " + draw(st.sampled_from(["'2024-01-02'", "'1999-12-31'", "NULL"])))
    return f"jsonb_build_object({', '.join(fields)})"


# Per table: its key strategy, and per column the SQL of a random value.
COLUMNS = {
    "tb_user": ("pk_user", user_key, {
        "id": uuid_text.map(lambda v: literal(v) + "::uuid"),
        "name": st.sampled_from(["'ann'", "'bob'", "NULL", "'zoë'"]),
        "post_ids": post_ids.map(literal),
        "born": st.sampled_from(["NULL", "'2024-01-02'", "'1999-12-31'"])}),
    "tb_post": ("pk_post", post_key, {
        "i": small_int.map(literal),
        "data": post_data()}),
    "tb_b": ("pk_b", b_key, {
        "i": small_int.map(literal),
        "flag": st.one_of(st.none(), st.booleans()).map(literal)}),
}


@st.composite
def statement(draw) -> str:
    table = draw(st.sampled_from(sorted(COLUMNS)))
    key, keys, columns = COLUMNS[table]
    kind = draw(st.sampled_from(["insert", "insert_many", "update", "update_many", "move", "delete",
                                 "delete_many"]))
    column = draw(st.sampled_from(sorted(columns)))
    if kind in ("insert", "insert_many"):
        rows = draw(st.lists(keys, min_size=1, max_size=1 if kind == "insert" else 4, unique=True))
        values = ", ".join(
            "(" + ", ".join([str(k)] + [draw(columns[c]) for c in columns]) + ")" for k in rows)
        return f"INSERT INTO {table} ({key}, {', '.join(columns)}) VALUES {values} ON CONFLICT DO NOTHING"
    if kind == "update":
        return f"UPDATE {table} SET {column} = {draw(columns[column])} WHERE {key} = {draw(keys)}"
    if kind == "update_many":
        return f"UPDATE {table} SET {column} = {draw(columns[column])} WHERE {key} % 2 = {draw(st.integers(0, 1))}"
    if kind == "move":
        return f"UPDATE {table} SET {key} = {draw(keys)} WHERE {key} = {draw(keys)}"
    if kind == "delete":
        return f"DELETE FROM {table} WHERE {key} = {draw(keys)}"
    return f"DELETE FROM {table} WHERE {key} > {draw(keys)}"


step = st.one_of(statement().map(lambda s: [s]),
                 st.lists(statement(), min_size=1, max_size=3).map(lambda s: ["BEGIN", *s, "ROLLBACK"]),
                 st.lists(statement(), min_size=1, max_size=3).map(lambda s: ["BEGIN", *s, "COMMIT"]))

SEED = [
    "INSERT INTO tb_user SELECT g, CASE WHEN g < 5 THEN ('00000000-0000-0000-0000-00000000000' || g)::uuid END, "
    f"'user ' || g, ARRAY[g, g + 1], DATE '2024-01-01' + g FROM generate_series(1, {USERS}) g",
    "INSERT INTO tb_post SELECT g, 1 + g % 5, jsonb_build_object('fk_user', 1 + g % 4, "
    f"'authorId', '00000000-0000-0000-0000-00000000000' || (1 + g % 3)) FROM generate_series(1, {POSTS}) g",
    f"INSERT INTO tb_b SELECT g, g, g % 2 = 0 FROM generate_series(1, {BS}) g",
]


def run(db: psycopg.Connection, steps: list[list[str]], log: list[str]) -> None:
    db.execute("TRUNCATE tb_user, tb_post, tb_b")
    for s in SEED:
        db.execute(s)
    assert_oracle(db)
    for group in steps:
        for s in group:
            log.append(s)
            try:
                db.execute(s)
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name is None:        # the engine's: a TVIEW's key not unique
                    raise
                if db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    db.execute("ROLLBACK")
                break
        assert_oracle(db)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["immediate", "deferred"])
def test_random_writes_keep_every_shape_exact(db, mode):
    create_all(db, SHAPES, mode)
    for name, (_, lineage) in SHAPES.items():
        assert graph(db, name) == lineage, name

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(steps=st.lists(step, min_size=1, max_size=12))
    def check(steps):
        log: list[str] = []
        try:
            run(db, steps, log)
        except AssertionError as exc:
            raise AssertionError(";\n".join(log) + f"\n{exc}") from None
        finally:
            if db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                db.execute("ROLLBACK")      # a failed example leaves the next one a clean session

    check()
