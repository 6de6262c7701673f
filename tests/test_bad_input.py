"""Bad and hostile input to tview.create and CREATE TABLE tv_x AS (issue 9).

Complements the error cases of test_engine_create.py (not repeated here). Every refusal is
checked for its specific SQLSTATE, a distinctive part of its message, a HINT, and for leaving
every object and catalog row as it was (engine_helpers.snapshot) and every base table's rows
untouched: nothing of a refused definition may have run. Hostile input that is legitimately
accepted (odd but valid names, column names full of SQL) must give a TVIEW that follows
writes, drops cleanly, and never executes SQL smuggled into a name.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from conftest import _create_database, _drop_database
from psycopg import sql
from test_engine_create import USER_SQL, assert_engine_empty, create, ctas, setup_blog

from engine_helpers import refused, snapshot
from oracle import assert_oracle

pytestmark = pytest.mark.engine

VICTIM_DDL = "CREATE TABLE victim (x integer); INSERT INTO victim VALUES (1), (2)"
BASE_TABLES = ("tb_user", "tb_post", "tb_comment", "victim")


def contents(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Rows of every base table (and whether victim still exists)."""
    return {t: sorted(r[0] for r in conn.execute(sql.SQL("SELECT x::text FROM {} x").format(sql.Identifier("public", t))))
            for t in BASE_TABLES}


@pytest.fixture(scope="module")
def shared(server_dsn, engine_template):
    """One database for the module (a database per case would be most of the run time)."""
    name = f"tview_test_{uuid.uuid4().hex[:12]}"
    dsn = _create_database(server_dsn, name, template=engine_template)
    with psycopg.connect(dsn, autocommit=True) as conn:
        setup_blog(conn)
        conn.execute(VICTIM_DDL)
        yield conn
    _drop_database(server_dsn, name)


@pytest.fixture
def blog(shared):
    """The blog tables plus a table named victim that hostile input tries to drop; everything a
    test does is rolled back."""
    with shared.transaction(force_rollback=True):
        yield shared
    shared.execute("DEALLOCATE ALL")   # prepared statements outlive transactions


def assert_refused_cleanly(conn, statement, params, sqlstate, *mentions):
    """refused() plus: no base table row changed, so no part of the input ran."""
    rows_before = contents(conn)
    exc = refused(conn, statement, params, sqlstate, *mentions)
    assert contents(conn) == rows_before, "part of a refused statement ran"
    return exc


# =========================================================================== definitions (tview.create)

U = "FROM tb_user u"
# (id, setup SQL run first, definition, SQLSTATE, distinctive part of the message)
DEFINITIONS = [
    # not one read-only SELECT
    ("for-update", None, f"SELECT u.pk_user, to_jsonb(u) AS data {U} FOR UPDATE", "42601", "locks rows"),
    ("for-share-in-subquery", None,
     f"SELECT u.pk_user, to_jsonb(u) AS data {U} WHERE EXISTS (SELECT FROM tb_post p WHERE p.fk_user = u.pk_user"
     " FOR SHARE SKIP LOCKED)", "42601", "locks rows"),
    ("explain", None, f"EXPLAIN SELECT u.pk_user, to_jsonb(u) AS data {U}", "42601", "not a plain SELECT"),
    ("do-block", None, "DO $$ BEGIN DROP TABLE victim; END $$", "42601", "exactly one SELECT"),
    ("copy", None, "COPY victim TO STDOUT", "42601", "exactly one SELECT"),
    ("set", None, "SET search_path = victim", "42601", "exactly one SELECT"),
    ("show", None, "SHOW search_path", "42601", "not a plain SELECT"),
    ("lock", None, "LOCK victim", "42601", "exactly one SELECT"),
    ("notify", None, "NOTIFY victim", "42601", "exactly one SELECT"),
    ("truncate", None, "TRUNCATE victim", "42601", "exactly one SELECT"),
    ("call", "CREATE PROCEDURE p() LANGUAGE sql AS 'DELETE FROM victim'", "CALL p()", "42601", "exactly one SELECT"),
    ("unterminated-comment", None, f"SELECT u.pk_user, to_jsonb(u) AS data {U} /* DROP TABLE victim",
     "42601", "does not parse"),
    ("line-comment-then-statement", None, f"SELECT u.pk_user, to_jsonb(u) AS data {U} -- x\n; DROP TABLE victim",
     "42601", "exactly one SELECT"),
    ("null", None, None, "42601", "is empty"),
    # key and data columns
    ("values", None, "VALUES (1, '{}'::jsonb)", "42703", "no key column"),
    ("table-command", None, "TABLE tb_user", "42703", "no data column"),
    ("key-numeric", None, f"SELECT u.pk_user::numeric AS pk_user, to_jsonb(u) AS data {U}", "42804", "numeric"),
    ("first-pk-column-is-the-key", None, f"SELECT u.name AS pk_name, u.pk_user, to_jsonb(u) AS data {U}",
     "42804", "pk_name"),
    ("data-jsonb-array", None, f"SELECT u.pk_user, ARRAY[to_jsonb(u)] AS data {U}", "42804", "jsonb[]"),
    ("data-domain", "CREATE DOMAIN jdoc AS jsonb", f"SELECT u.pk_user, to_jsonb(u)::jdoc AS data {U}",
     "42804", "jdoc"),
    ("key-column-twice", None, f"SELECT u.pk_user, u.pk_user, to_jsonb(u) AS data {U}", "42701",
     'column "pk_user" specified more than once'),
    ("data-column-twice", None, f"SELECT u.pk_user, to_jsonb(u) AS data, to_jsonb(u.name) AS data {U}", "42701",
     'column "data" specified more than once'),
    ("system-column-name", None, f"SELECT u.pk_user, to_jsonb(u) AS data, u.xmin {U}", "42701",
     "xmin of public.tv_x has the name of a system column"),
    ("record-column", None, f"SELECT u.pk_user, to_jsonb(u) AS data, ROW(1, 2) AS r {U}", "42P16", "pseudo-type record"),
    # what it reads must exist, be permanent and fire triggers
    ("reads-missing-tview", None, "SELECT t.pk_missing, t.data FROM tv_missing t", "42P01",
     'relation "tv_missing" does not exist'),
    ("missing-column", None, f"SELECT u.nope AS pk_user, to_jsonb(u) AS data {U}", "42703", "u.nope does not exist"),
    ("missing-function", None, f"SELECT u.pk_user, no_such_fn(u.name) AS data {U}", "42883", "no_such_fn(text)"),
    ("temporary-table", "CREATE TEMPORARY TABLE tmp AS SELECT * FROM tb_user",
     "SELECT t.pk_user, to_jsonb(t) AS data FROM tmp t", "0A000", "reads a temporary table"),
    ("system-catalog", None, "SELECT c.oid::int AS pk_class, to_jsonb(c.relname) AS data FROM pg_class c",
     "0A000", "reads pg_class, a system or engine catalog"),
    ("engine-catalog", None, "SELECT t.id AS pk_t, to_jsonb(t.name) AS data FROM tview.tviews t",
     "0A000", "reads tview.tviews"),
    ("information-schema", None,
     "SELECT row_number() OVER ()::int AS pk_t, to_jsonb(t.table_name) AS data FROM information_schema.tables t",
     "0A000", "reads information_schema.tables"),
    ("catalog-through-helper-view", "CREATE VIEW h AS SELECT n.oid::int AS pk_ns, n.nspname FROM pg_namespace n",
     "SELECT h.pk_ns, to_jsonb(h) AS data FROM h", "0A000", "reads pg_namespace"),
    # results that change from one run to the next: the TVIEW could never equal its definition
    ("random", None, f"SELECT u.pk_user, to_jsonb(u) AS data {U} WHERE random() < 2", "42P17", "calls random()"),
    ("order-by-random", None, f"SELECT u.pk_user, to_jsonb(u) AS data {U} ORDER BY random() LIMIT 2",
     "42P17", "calls random()"),
    ("clock-timestamp", None, f"SELECT u.pk_user, jsonb_build_object('t', clock_timestamp()) AS data {U}",
     "42P17", "calls clock_timestamp()"),
    ("now", None, f"SELECT u.pk_user, jsonb_build_object('t', now()) AS data {U}", "42P17", "calls now()"),
    ("current-timestamp", None, f"SELECT u.pk_user, jsonb_build_object('t', current_timestamp) AS data {U}",
     "42P17", "reads the clock"),
    ("current-date", None, f"SELECT u.pk_user, to_jsonb(u) AS data {U} WHERE current_date > '2000-01-01'",
     "42P17", "reads the clock"),
    ("age-of-now", None, f"SELECT u.pk_user, jsonb_build_object('a', age(timestamp '2020-01-01')) AS data {U}",
     "42P17", "calls age("),
    ("transaction-id", None, f"SELECT u.pk_user, jsonb_build_object('x', txid_current()) AS data {U}",
     "42P17", "calls txid_current()"),
    ("nextval", "CREATE SEQUENCE s", f"SELECT u.pk_user, jsonb_build_object('n', nextval('s')) AS data {U}",
     "42P17", "calls nextval(regclass)"),
    ("gen-random-uuid", None, f"SELECT u.pk_user, jsonb_build_object('id', gen_random_uuid()) AS data {U}",
     "42P17", "calls gen_random_uuid()"),
    ("set-config", None,
     f"SELECT u.pk_user, jsonb_build_object('p', set_config('search_path', 'victim', false)) AS data {U}",
     "42P17", "calls set_config("),
    ("advisory-lock", None, f"SELECT u.pk_user, jsonb_build_object('l', pg_advisory_lock(1)) AS data {U}",
     "42P17", "calls pg_advisory_lock("),
    ("own-volatile-function", "CREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS 'SELECT $1'",
     f"SELECT f(u.pk_user) AS pk_user, to_jsonb(u) AS data {U}", "42P17", "calls public.f(integer)"),
    ("volatile-in-helper-view", "CREATE VIEW h AS SELECT pk_user, random() AS r FROM tb_user",
     "SELECT h.pk_user, to_jsonb(h) AS data FROM h", "42P17", "calls random()"),
    # results that depend on the session that writes: each writer would leave its own view
    ("current-user", None, f"SELECT u.pk_user, jsonb_build_object('by', current_user) AS data {U}",
     "42P17", "reads current_user, which depends on the session"),
    ("session-user", None, f"SELECT u.pk_user, to_jsonb(u) AS data {U} WHERE u.name <> session_user",
     "42P17", "reads session_user"),
    ("current-schema", None, f"SELECT u.pk_user, jsonb_build_object('s', current_schema) AS data {U}",
     "42P17", "reads current_schema"),
    ("current-setting", None,
     f"SELECT u.pk_user, jsonb_build_object('tz', current_setting('TimeZone')) AS data {U}",
     "42P17", "reads current_setting"),
    ("backend-pid", None, f"SELECT u.pk_user, jsonb_build_object('p', pg_backend_pid()) AS data {U}",
     "42P17", "reads pg_backend_pid"),
    ("tablesample", None, f"SELECT u.pk_user, to_jsonb(u) AS data {U} TABLESAMPLE BERNOULLI (100) REPEATABLE (1)",
     "42P17", "TABLESAMPLE"),
    # errors found when filling the table
    ("division-by-zero", None, f"SELECT u.pk_user, jsonb_build_object('x', 1 / (u.pk_user - 1)) AS data {U}",
     "22012", "division by zero"),
    ("bad-cast", None, f"SELECT u.pk_user, jsonb_build_object('x', u.name::int) AS data {U}", "22P02",
     "invalid input syntax for type integer"),
]


@pytest.mark.parametrize("setup, definition, sqlstate, message", [c[1:] for c in DEFINITIONS],
                         ids=[c[0] for c in DEFINITIONS])
def test_definition_refused(blog, setup, definition, sqlstate, message):
    if setup:
        blog.execute(setup)
    sequence = blog.execute("SELECT to_regclass('s') IS NOT NULL").fetchone()[0]
    before = blog.execute("SELECT last_value, is_called FROM s").fetchone() if sequence else None
    assert_refused_cleanly(blog, "SELECT tview.create('x', %s)", (definition,), sqlstate, "tv_x", message)
    if sequence:
        assert blog.execute("SELECT last_value, is_called FROM s").fetchone() == before, "the definition ran"


# =========================================================================== names and arguments

# (id, setup SQL, tview.create call, its parameters, SQLSTATE, distinctive part of the message)
CALLS = [
    ("name-null", None, "tview.create(%s, %s)", (None, USER_SQL), "42602", 'invalid TVIEW name ""'),
    ("name-prefix-only", None, "tview.create(%s, %s)", ("tv_", USER_SQL), "42602", '"tv_"'),
    ("name-schema-qualified", None, "tview.create(%s, %s)", ("public.x", USER_SQL), "42602", '"public.x"'),
    ("name-newline", None, "tview.create(%s, %s)", ("x\n", USER_SQL), "42602", "invalid TVIEW name"),
    ("name-upper-case", None, "tview.create(%s, %s)", ("Post", USER_SQL), "42602", '"Post"'),
    ("name-line-comment", None, "tview.create(%s, %s)", ("x--", USER_SQL), "42602", '"x--"'),
    ("name-block-comment", None, "tview.create(%s, %s)", ("x/**/", USER_SQL), "42602", '"x/**/"'),
    ("name-drop-statement", None, "tview.create(%s, %s)", ("x; DROP TABLE victim; --", USER_SQL), "42602",
     "DROP TABLE victim"),
    ("name-unicode", None, "tview.create(%s, %s)", ("café", USER_SQL), "42602", '"café"'),
    ("mode-null", None, "tview.create(%s, %s, %s)", ("x", USER_SQL, None), "22023", "unknown TVIEW mode"),
    ("mode-upper-case", None, "tview.create(%s, %s, %s)", ("x", USER_SQL, "DEFERRED"), "22023", '"DEFERRED"'),
    ("mode-injection", None, "tview.create(%s, %s, %s)", ("x", USER_SQL, "immediate; DROP TABLE victim"),
     "22023", "unknown TVIEW mode"),
    ("schema-missing-injection", None, "tview.create(%s, %s, schema_name => %s)",
     ("x", USER_SQL, "s; DROP TABLE victim; --"), "3F000", 'no schema to create TVIEW "x" in'),
    ("schema-pg-catalog", None, "tview.create(%s, %s, schema_name => %s)", ("x", USER_SQL, "pg_catalog"),
     "42939", "in schema pg_catalog"),
    ("schema-pg-toast", None, "tview.create(%s, %s, schema_name => %s)", ("x", USER_SQL, "pg_toast"),
     "42939", "in schema pg_toast"),
    ("schema-information-schema", None, "tview.create(%s, %s, schema_name => %s)",
     ("x", USER_SQL, "information_schema"), "42939", "in schema information_schema"),
    ("schema-engine", None, "tview.create(%s, %s, schema_name => %s)", ("x", USER_SQL, "tview"),
     "42939", "in schema tview"),
    ("schema-temporary", "CREATE TEMPORARY TABLE tmp (a int)",
     "tview.create(%s, %s, schema_name => pg_my_temp_schema()::regnamespace::name)", ("x", USER_SQL),
     "42939", "in schema pg_temp_"),
    ("search-path-pg-catalog", "SET search_path = pg_catalog", "tview.create(%s, %s)",
     ("x", USER_SQL.replace("tb_user", "public.tb_user")), "42939", "in schema pg_catalog"),
    # the name is taken by something that is not a TVIEW
    ("taken-by-view", "CREATE VIEW v_x AS SELECT 1 AS one", "tview.create(%s, %s)", ("x", USER_SQL),
     "42710", "public.tv_x or public.v_x already exists"),
    ("taken-by-composite-type", "CREATE TYPE tv_x AS (a int)", "tview.create(%s, %s)", ("x", USER_SQL),
     "42710", "relation or type"),
    ("taken-by-enum", "CREATE TYPE v_x AS ENUM ('a')", "tview.create(%s, %s)", ("x", USER_SQL),
     "42710", "relation or type"),
    ("taken-by-index", "CREATE INDEX tv_x ON tb_user (name)", "tview.create(%s, %s)", ("x", USER_SQL),
     "42710", "already exists"),
    ("taken-by-sequence", "CREATE SEQUENCE v_x", "tview.create(%s, %s)", ("x", USER_SQL),
     "42710", "already exists"),
]


@pytest.mark.parametrize("setup, call, params, sqlstate, message", [c[1:] for c in CALLS],
                         ids=[c[0] for c in CALLS])
def test_name_or_argument_refused(blog, setup, call, params, sqlstate, message):
    if setup:
        blog.execute(setup)
    assert_refused_cleanly(blog, f"SELECT {call}", params, sqlstate, message)


def test_schema_qualified_name_hint_points_to_schema_name(blog):
    exc = refused(blog, "SELECT tview.create('public.x', %s)", (USER_SQL,), "42602", "public.x")
    assert "schema_name" in exc.diag.message_hint


def test_a_tview_closing_a_cycle_through_a_helper_view_onto_itself_is_refused(blog):
    """The shortest cycle: tv_a reads h, and h is replaced to read tv_a."""
    blog.execute("CREATE VIEW h AS SELECT pk_user, name FROM tb_user")
    create(blog, "a", "SELECT pk_user, jsonb_build_object('n', name) AS data FROM h")
    assert_refused_cleanly(blog, "CREATE OR REPLACE VIEW h AS SELECT u.pk_user, coalesce(a.data->>'n', u.name) AS name"
                                 " FROM tb_user u LEFT JOIN tv_a a ON a.pk_user = u.pk_user", None, "55P03", "tv_a")
    blog.execute("UPDATE tb_user SET name = 'ann2' WHERE pk_user = 1")
    assert_oracle(blog)


@pytest.mark.parametrize("replacement, message", [
    ("SELECT pk_user, name || random()::text AS name FROM tb_user", "calls random()"),
    ("SELECT pk_user, name, current_user AS who FROM tb_user", "reads current_user"),
])
def test_a_helper_view_replaced_by_one_no_tview_could_follow_is_refused(blog, replacement, message):
    """The definition is checked again when a view it reads is replaced, not only at create."""
    blog.execute("CREATE VIEW h AS SELECT pk_user, name FROM tb_user")
    create(blog, "a", "SELECT pk_user, jsonb_build_object('n', name) AS data FROM h")
    viewdef = "SELECT pg_get_viewdef('h'::regclass)"
    before = blog.execute(viewdef).fetchone()
    assert_refused_cleanly(blog, f"CREATE OR REPLACE VIEW h AS {replacement}", None, "42P17", message)
    assert blog.execute(viewdef).fetchone() == before
    blog.execute("UPDATE tb_user SET name = 'ann2' WHERE pk_user = 1")
    assert_oracle(blog)


# =========================================================================== CREATE TABLE tv_x AS

R = f"SELECT u.pk_user, to_jsonb(u) AS data {U}"
# (id, setup SQL, statement, SQLSTATE, distinctive part of the message)
STATEMENTS = [
    ("for-update", None, f"CREATE TABLE tv_x AS {R} FOR UPDATE", "42601", "locks rows"),
    ("with-delete-ran-then-refused", None,
     "CREATE TABLE tv_x AS WITH d AS (DELETE FROM tb_comment RETURNING *) SELECT d.pk_comment, to_jsonb(d) AS data"
     " FROM d", "42601", "not a plain SELECT"),
    ("execute-prepared", "PREPARE q AS " + R, "CREATE TABLE tv_x AS EXECUTE q", "42601", "not a plain SELECT"),
    ("table-command", None, "CREATE TABLE tv_x AS TABLE tb_user", "42703", "no data column"),
    ("random", None, f"CREATE TABLE tv_x AS SELECT u.pk_user, jsonb_build_object('r', random()) AS data {U}",
     "42P17", "calls random()"),
    ("temporary-source", "CREATE TEMPORARY TABLE tmp AS SELECT * FROM tb_user",
     "CREATE TABLE tv_x AS SELECT t.pk_user, to_jsonb(t) AS data FROM tmp t", "0A000", "reads a temporary table"),
    ("system-catalog", None, "CREATE TABLE tv_x AS SELECT c.oid::int AS pk_c, to_jsonb(c.relname) AS data"
     " FROM pg_class c", "0A000", "reads pg_class"),
    ("engine-schema", None, f"CREATE TABLE tview.tv_x AS {R}", "42939", "in schema tview"),
    ("select-into", None, "SELECT u.pk_user, to_jsonb(u) AS data INTO tv_x FROM tb_user u", "0A000",
     "statement was not recognised"),
    ("column-list", None, f"CREATE TABLE tv_x (a, b) AS {R}", "0A000", "statement was not recognised"),
    ("same-name-twice-in-one-string", None,
     f"CREATE TABLE tv_x AS SELECT 1 AS pk_a, '{{}}'::jsonb AS data; DROP TABLE tv_x; CREATE TABLE tv_x AS {R}",
     "0A000", "query after AS was not recognised"),
    ("unicode-name", None, f"CREATE TABLE tv_é AS {R}", "42602", "tv_é"),
]


@pytest.mark.parametrize("setup, statement, sqlstate, message", [c[1:] for c in STATEMENTS],
                         ids=[c[0] for c in STATEMENTS])
def test_ddl_refused(blog, setup, statement, sqlstate, message):
    if setup:
        blog.execute(setup)
    assert_refused_cleanly(blog, statement, None, sqlstate, message)
    assert blog.execute("SELECT to_regclass('tv_x')").fetchone()[0] is None


def test_ddl_temporary_table_is_left_a_plain_table(blog):
    """CREATE TEMPORARY TABLE tv_x AS is the user's scratch table, not a TVIEW: nothing of the engine's."""
    before = snapshot(blog)
    blog.execute(f"CREATE TEMPORARY TABLE tv_x AS {R}")
    assert blog.execute("SELECT count(*) FROM tv_x").fetchone()[0] == 3
    assert snapshot(blog) == before
    assert_engine_empty(blog)


# =========================================================================== hostile but accepted

def check_lifecycle(conn: psycopg.Connection, name: str) -> None:
    """The TVIEW follows writes (oracle), drops completely, and victim was never touched."""
    for step in ["UPDATE tb_user SET name = 'ann2' WHERE pk_user = 1",
                 "INSERT INTO tb_user (pk_user, name) VALUES (9, 'new')",
                 "DELETE FROM tb_user WHERE pk_user = 9"]:
        conn.execute(step)
        assert_oracle(conn)
    conn.execute("SELECT tview.drop(%s)", (name,))
    assert_engine_empty(conn)
    assert conn.execute("SELECT count(*) FROM victim").fetchone()[0] == 2


@pytest.mark.parametrize("name, path", [("_", "function"), ("select", "function"), ("from", "ddl"),
                                        ("tv_x", "function"), ("x" + "_" * 59, "ddl")],
                         ids=["underscore", "reserved-word", "reserved-word-ddl", "prefix-twice", "underscores-60"])
def test_odd_valid_names_are_accepted(blog, name, path):
    bare = name.removeprefix("tv_") if path == "function" else name
    before = snapshot(blog)
    if path == "function":
        assert create(blog, name, USER_SQL) == f"public.tv_{bare}"
    else:
        ctas(blog, sql.Identifier("tv_" + name).as_string(blog), USER_SQL)
    added = {r for r in snapshot(blog)["relations"] if r not in before["relations"] and r[2] in "rv"}
    assert added == {("public", f"tv_{bare}", "r"), ("public", f"v_{bare}", "v")}
    check_lifecycle(blog, bare)


# Column names are identifiers the engine puts into generated SQL (primary key, indexes on
# fk_*/id, refresh and patch functions, lineage queries): full of SQL, they must stay names.
HOSTILE_COLUMNS_SQL = """SELECT u.pk_user AS "pk_a""; DROP TABLE victim; --",
    u.pk_user AS "fk_b'); DROP TABLE victim; --", u.id, u.name AS "$$; DROP TABLE victim; $$",
    jsonb_build_object('name', u.name, 'k', 'x'';DROP TABLE victim;--') AS data
FROM tb_user u"""


@pytest.mark.parametrize("path", ["function", "ddl"])
def test_column_names_full_of_sql_stay_names(blog, path):
    if path == "function":
        create(blog, "x", HOSTILE_COLUMNS_SQL)
    else:
        ctas(blog, "tv_x", HOSTILE_COLUMNS_SQL)
    key = 'pk_a"; DROP TABLE victim; --'
    assert blog.execute("SELECT key_column, entity FROM tview.tviews").fetchone() == (key, key.removeprefix("pk_"))
    indexed = {r[0] for r in blog.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
        " WHERE i.indrelid = 'tv_x'::regclass")}
    assert indexed == {key, "fk_b'); DROP TABLE victim; --", "id"}
    check_lifecycle(blog, "x")


REAL = f"SELECT u.pk_user, jsonb_build_object('name', u.name) AS data {U}"
DECOY = "CREATE TABLE tv_x AS SELECT 1 AS pk_a, '{}'::jsonb AS data;"


@pytest.mark.parametrize("statement", [
    f"/* {DECOY} */ CREATE TABLE tv_x AS {REAL}",
    f"-- {DECOY}\nCREATE TABLE tv_x AS {REAL}",
    f"SELECT '{DECOY.replace(chr(39), chr(39) * 2)}'; CREATE TABLE tv_x AS {REAL}",
    f"SELECT $q${DECOY}$q$; CREATE TABLE tv_x AS {REAL}",
    f"CREATE TABLE tv_x AS {REAL} -- ; DROP TABLE victim",
    f"CREATE TABLE tv_x AS {REAL} /* ; DROP TABLE victim */",
], ids=["block-comment", "line-comment", "string-literal", "dollar-quoted", "trailing-line-comment",
        "trailing-block-comment"])
def test_ddl_statement_is_found_outside_comments_and_literals(blog, statement):
    """A CREATE TABLE tv_x AS written in a comment or a literal before the real one must not
    become the definition; SQL after the definition in a comment must not run."""
    blog.execute(statement)
    definition = blog.execute("SELECT definition FROM tview.tviews WHERE name = 'x'").fetchone()[0]
    assert definition.startswith(REAL), definition
    assert [c for c, _ in blog.execute(
        "SELECT attname, 1 FROM pg_attribute WHERE attrelid = 'tv_x'::regclass AND attnum > 0 ORDER BY attnum")] == \
        ["pk_user", "data"]
    check_lifecycle(blog, "x")
