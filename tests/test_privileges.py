"""The privilege model (docs/engine.md "Privileges"), with real roles.

The engine is installed by a non-superuser owner; an application role writes base tables
with no right on tv_* or schema tview; a read-only role browses and tails; a low role tries
to use the engine to reach what it may not. Roles are cluster-wide, so each test makes its
own (unique suffix) and drops them afterwards. Sessions take a role with `-c role=...`,
which works whatever the server's authentication.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from test_events import eventually

from tview_tui import catalog, installer
from tview_tui.connection import TviewError
from tview_tui.events import Event, EventStream

from engine_helpers import listeners, set_engine
from oracle import assert_oracle

pytestmark = pytest.mark.engine

BLOG = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text NOT NULL);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int NOT NULL REFERENCES tb_user, title text NOT NULL);
CREATE TABLE tb_comment (pk_comment int PRIMARY KEY, fk_post int NOT NULL REFERENCES tb_post ON DELETE CASCADE,
                         body text NOT NULL);
INSERT INTO tb_user SELECT g, 'u' || g FROM generate_series(1, 4) g;
INSERT INTO tb_post SELECT g, 1 + g % 4, 'p' || g FROM generate_series(1, 8) g;
INSERT INTO tb_comment SELECT g, 1 + g % 8, 'c' || g FROM generate_series(1, 16) g;
SELECT tview.create('user', $$SELECT u.pk_user, jsonb_build_object('name', u.name) AS data FROM tb_user u$$);
SELECT tview.create('comment', $$SELECT c.pk_comment, c.fk_post, jsonb_build_object('body', c.body) AS data
                                 FROM tb_comment c$$);
SELECT tview.create('post', $$SELECT p.pk_post, p.fk_user, jsonb_build_object('title', p.title, 'author', u.data,
    'comments', coalesce((SELECT jsonb_agg(c.data ORDER BY c.pk_comment) FROM tv_comment c
                          WHERE c.fk_post = p.pk_post), '[]'::jsonb)) AS data
    FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user$$);
"""

# A mix of statements whose effects cascade through every TVIEW.
WRITES = [
    "UPDATE tb_user SET name = name || '!' WHERE pk_user IN (1, 2)",
    "INSERT INTO tb_post VALUES (100, 3, 'new')",
    "INSERT INTO tb_comment VALUES (100, 100, 'first'), (101, 1, 'late')",
    "UPDATE tb_comment SET fk_post = 2 WHERE pk_comment = 3",
    "DELETE FROM tb_post WHERE pk_post = 5",
    "UPDATE tb_post SET fk_user = 4, title = 'moved' WHERE pk_post = 100",
]


def role_conninfo(dsn: str, role: str) -> str:
    """The DSN, with the session taking `role` (the admin stays session_user)."""
    return make_conninfo(dsn, options=f"-c role={role}")


def connect_as(dsn: str, role: str) -> psycopg.Connection:
    return psycopg.connect(role_conninfo(dsn, role), autocommit=True)


@dataclass
class Roles:
    owner: str      # installs the engine and creates the TVIEWs
    app: str        # writes base tables, nothing else
    reader: str     # SELECT on tv_* and the catalog
    low: str        # CREATE on its own schema, USAGE on tview; tries to escalate

    def all(self) -> list[str]:
        return [self.owner, self.app, self.reader, self.low]


def make_roles(admin: psycopg.Connection) -> Roles:
    suffix = uuid.uuid4().hex[:8]
    roles = Roles(f"tv_owner_{suffix}", f"tv_app_{suffix}", f"tv_reader_{suffix}", f"tv_low_{suffix}")
    for role in roles.all():
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    return roles


def drop_roles(admin: psycopg.Connection, roles: Roles) -> None:
    for role in roles.all():
        admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


READER_GRANTS = """
GRANT USAGE ON SCHEMA tview TO {r};
GRANT SELECT ON tview.tviews, tview.dependencies, tview.graph, tview.events, tview.meta TO {r};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {r};
"""


@dataclass
class Setup:
    dsn: str
    admin: psycopg.Connection
    owner: psycopg.Connection
    roles: Roles


@pytest.fixture
def setup(empty_dsn: str) -> Iterator[Setup]:
    """Engine installed by a non-superuser owner, who also owns the blog and its TVIEWs."""
    with psycopg.connect(empty_dsn, autocommit=True) as admin:
        roles = make_roles(admin)
        try:
            owner_id = sql.Identifier(roles.owner)
            admin.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(admin.info.dbname), owner_id))
            admin.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner_id))
            with connect_as(empty_dsn, roles.owner) as owner:
                installer.install(owner)
                owner.execute(BLOG)
                owner.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON tb_user, tb_post, tb_comment TO {}")
                              .format(sql.Identifier(roles.app)))
                owner.execute(sql.SQL(READER_GRANTS.format(r="{r}")).format(r=sql.Identifier(roles.reader)))
                low_id = sql.Identifier(roles.low)
                admin.execute(sql.SQL("CREATE SCHEMA low AUTHORIZATION {}").format(low_id))
                owner.execute(sql.SQL("GRANT USAGE ON SCHEMA tview TO {}").format(low_id))
                owner.execute(sql.SQL("GRANT SELECT ON tb_user TO {}").format(low_id))
                owner.execute("CREATE TABLE secret (s text); INSERT INTO secret VALUES ('the secret')")
                yield Setup(empty_dsn, admin, owner, roles)
        finally:
            drop_roles(admin, roles)


def tview_state(conn: psycopg.Connection) -> list:
    """Catalog rows, engine relations, generated functions and every TVIEW's rows."""
    state = [conn.execute("SELECT id, schema_name, name, mode, patching FROM tview.tviews ORDER BY id").fetchall(),
             conn.execute("SELECT tview_id, source_oid, lineage FROM tview.dependencies ORDER BY 1, 2").fetchall(),
             conn.execute("SELECT relname FROM pg_class WHERE relname ~ '^(tv|v)_' ORDER BY 1").fetchall(),
             conn.execute("SELECT proname FROM pg_proc WHERE pronamespace = 'tview'::regnamespace"
                          " ORDER BY 1").fetchall()]
    for schema, name in conn.execute("SELECT schema_name, name FROM tview.tviews ORDER BY id").fetchall():
        state.append(conn.execute(sql.SQL("SELECT t::text FROM {} t ORDER BY 1").format(
            sql.Identifier(schema, "tv_" + name))).fetchall())
    return state


def refused(conn: psycopg.Connection, statement: str, *args) -> psycopg.errors.InsufficientPrivilege:
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        conn.execute(statement, args or None)
    return caught.value


def collect(listener: psycopg.Connection, timeout: float = 1.0) -> list[dict]:
    return [json.loads(n.payload) for n in listener.notifies(timeout=timeout)]


# --------------------------------------------------------------------------- writers

def test_writer_without_rights_keeps_every_tview_correct(setup: Setup):
    """Writes by a role with no right on tv_* or schema tview cascade through every TVIEW, with events."""
    app = setup.roles.app
    privileges = setup.admin.execute(
        "SELECT has_schema_privilege(%(r)s, 'tview', 'USAGE'), has_table_privilege(%(r)s, 'tv_post', 'SELECT')",
        {"r": app}).fetchone()
    assert privileges == (False, False)
    setup.owner.execute("SELECT tview.listen()")
    with connect_as(setup.dsn, app) as conn:
        for statement in WRITES:
            conn.execute(statement)
    events = collect(setup.owner)
    assert {e["tview"] for e in events} == {"tv_user", "tv_comment", "tv_post"}
    assert any(e["depth"] > 0 for e in events), "cascades reached the dependent TVIEWs"
    assert_oracle(setup.owner)


def test_writer_without_rights_in_deferred_mode(setup: Setup):
    """Commit-time refresh works for the writer too: the queue and the flush need no right of its own."""
    for name in ("user", "comment", "post"):
        setup.owner.execute("SELECT tview.set_mode(%s, 'deferred')", (name,))
    setup.owner.execute("SELECT tview.listen()")
    with connect_as(setup.dsn, setup.roles.app) as conn, conn.transaction():
        for statement in WRITES:
            conn.execute(statement)
    events = collect(setup.owner)
    assert {e["tview"] for e in events} == {"tv_user", "tv_comment", "tv_post"}
    assert {e["op"] for e in events} == {"COMMIT"}, "refreshed once, at commit"
    assert setup.owner.execute("SELECT count(*) FROM tview.queue").fetchone()[0] == 0
    assert_oracle(setup.owner)


def test_writer_cannot_write_tviews_or_use_the_engine(setup: Setup):
    """Without grants the writer gets 42501 for tv_* and for every engine function, and changes nothing."""
    before = tview_state(setup.owner)
    with connect_as(setup.dsn, setup.roles.app) as conn:
        refused(conn, "INSERT INTO tv_user VALUES (99, '{}')")
        refused(conn, "UPDATE tv_post SET data = '{}'")
        refused(conn, "DELETE FROM tv_comment")
        for call in ("SELECT tview.refresh('post')", "SELECT tview.drop('post')",
                     "SELECT tview.set_mode('post', 'deferred')",
                     "SELECT tview.create('mine', 'SELECT pk_user, ''{}''::jsonb AS data FROM tb_user')"):
            refused(conn, call)
    assert tview_state(setup.owner) == before


# (function call, what the refusal must name)
OWNER_ONLY_CALLS = [
    ("SELECT tview.create('mine', $$SELECT u.pk_user, jsonb_build_object('n', u.name) AS data FROM tb_user u$$,"
     " schema_name => 'low')", "create TVIEW"),
    ("SELECT tview.drop('post', cascade => true)", "drop TVIEW"),
    ("SELECT tview.drop_all()", "drop every TVIEW"),
    ("SELECT tview.set_mode('post', 'deferred')", "change the mode"),
    ("SELECT tview.repair_triggers()", "repair the triggers"),
    ("SELECT tview.clean_queue()", "clean the deferred queue"),
]


@pytest.mark.parametrize("who", ["reader", "low"])
def test_roles_with_usage_cannot_manage_tviews(setup: Setup, who: str):
    """USAGE on schema tview (all a reader needs) gives no way to create, drop, refresh or reconfigure."""
    before = tview_state(setup.owner)
    owner = setup.roles.owner
    with connect_as(setup.dsn, getattr(setup.roles, who)) as conn:
        for call, what in OWNER_ONLY_CALLS:
            error = refused(conn, call)
            assert what in error.diag.message_primary and owner in error.diag.message_primary
            assert f"GRANT {owner} TO" in error.diag.message_hint
        error = refused(conn, "SELECT tview.refresh('post', '{1}')")
        if who == "reader":    # the other cannot even read the catalog to find the TVIEW
            assert "tv_post" in error.diag.message_primary and owner in error.diag.message_hint
        refused(conn, "SELECT tview.set_patching('post', false)")
    assert tview_state(setup.owner) == before


# --------------------------------------------------------------------------- the read-only app

def test_read_only_role_browses_and_tails_but_cannot_refresh_or_install(setup: Setup):
    """The app's library calls work for a reader; refresh and install refuse with 42501 and a hint."""
    reader_dsn = role_conninfo(setup.dsn, setup.roles.reader)
    with psycopg.connect(reader_dsn) as conn:
        tviews = catalog.list_tviews(conn)
        assert [t.name for t in tviews] == ["comment", "post", "user"]
        post = next(t for t in tviews if t.name == "post")
        assert post.rows == 8 and post.rows_exact
        detail = catalog.detail(conn, post)
        assert {d.source for d in detail.reads} == {"public.tb_post", "public.tv_user", "public.tv_comment"}
        assert [c.name for c in detail.columns] == ["pk_post", "fk_user", "data"]
        assert len(catalog.dependencies(conn)) >= 5
        assert catalog.can_write(conn) is False
        health = conn.execute("SELECT severity, check_name FROM tview.health()").fetchall()
        assert all(severity != "error" for severity, _ in health), health
        with pytest.raises(TviewError) as caught:
            catalog.refresh(conn, post)
        assert caught.value.sqlstate == "42501" and caught.value.hint and "tv_post" in str(caught.value)
        with pytest.raises(TviewError) as caught:
            catalog.refresh(conn, post, [1, 2])
        assert caught.value.sqlstate == "42501"

        setup.owner.execute("UPDATE tview.meta SET version = '0.0.1'")   # an upgrade is due
        with pytest.raises(TviewError) as caught:
            installer.install(conn)
        assert caught.value.sqlstate == "42501" and caught.value.hint
        with pytest.raises(TviewError) as caught:
            installer.uninstall(conn, cascade=True)
        assert caught.value.sqlstate == "42501" and caught.value.hint
    assert installer.installed_version(setup.owner) == "0.0.1"
    assert_oracle(setup.owner)

    async def tail() -> list[Event]:
        stream = EventStream(reader_dsn)
        received: list[Event] = []
        batches = stream.batches()
        first = asyncio.ensure_future(batches.__anext__())
        # the stream is listening, registered for tview.notify = auto
        await eventually(lambda: listeners(setup.owner), "the stream registered")
        assert listeners(setup.owner) == 1
        with connect_as(setup.dsn, setup.roles.app) as app:
            app.execute("SET tview.notify = auto")
            app.execute("UPDATE tb_user SET name = 'tailed' WHERE pk_user = 1")
        batch = await asyncio.wait_for(first, timeout=10)
        received.extend(i for i in batch if isinstance(i, Event))
        await stream.close()
        return received

    events = asyncio.run(tail())
    assert any(e.tview == "tv_user" and e.op == "UPDATE" for e in events)
    with psycopg.connect(reader_dsn, autocommit=True) as conn:   # the registry itself is the engine's
        refused(conn, "INSERT INTO tview.listeners (pid) VALUES (1)")
        refused(conn, "DELETE FROM tview.listeners")


# --------------------------------------------------------------------------- escalation

def test_low_role_cannot_create_a_tview_over_what_it_may_not_read(setup: Setup):
    """tview.create over `secret` (no SELECT) and over a readable table both refuse, leaving nothing."""
    before = tview_state(setup.owner)
    with connect_as(setup.dsn, setup.roles.low) as conn:
        for source in ("secret", "tb_user"):
            error = refused(conn, "SELECT tview.create('peek', %s, schema_name => 'low')",
                            f"SELECT 1 AS pk_peek, to_jsonb(x) AS data FROM public.{source} x")
            assert setup.roles.owner in error.diag.message_hint
    assert tview_state(setup.owner) == before


def test_catalog_rights_do_not_let_a_definition_run_with_the_owners_rights(setup: Setup):
    """Before, a role given rights on the catalog could create a TVIEW calling its own function, which the
    owner's triggers then ran with the owner's rights, copying `secret` out. Creation now needs the owner."""
    low = sql.Identifier(setup.roles.low)
    setup.owner.execute(sql.SQL("GRANT CREATE ON SCHEMA tview TO {r};"
                                " GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tview TO {r};"
                                " GRANT USAGE ON ALL SEQUENCES IN SCHEMA tview TO {r}").format(r=low))
    with connect_as(setup.dsn, setup.roles.low) as conn:
        conn.execute("CREATE TABLE low.loot (s text)")
        conn.execute("""CREATE FUNCTION low.grab(k int) RETURNS int LANGUAGE plpgsql AS $$
                        BEGIN INSERT INTO low.loot SELECT s FROM public.secret; RETURN k;
                        EXCEPTION WHEN insufficient_privilege THEN RETURN k; END $$""")
        refused(conn, "SELECT tview.create('grab', $$SELECT u.pk_user, jsonb_build_object('k', low.grab(u.pk_user))"
                      " AS data FROM public.tb_user u$$, schema_name => 'low')")
        with connect_as(setup.dsn, setup.roles.app) as app:
            app.execute("UPDATE tb_user SET name = name || '?'")
        assert conn.execute("SELECT count(*) FROM low.loot").fetchone()[0] == 0
    assert setup.owner.execute("SELECT count(*) FROM tview.tviews WHERE schema_name = 'low'").fetchone()[0] == 0


def test_engine_objects_are_owned_by_the_owner_and_pinned(setup: Setup):
    """Views, tables and generated functions belong to the owner; every engine function pins search_path
    except the few that must resolve the caller's definition; only the triggers and the listener
    registration are SECURITY DEFINER."""
    owner = setup.roles.owner
    owners = setup.owner.execute(
        "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM tview.tviews t JOIN pg_class c"
        " ON c.oid IN (t.table_oid, t.view_oid)").fetchall()
    assert owners == [(owner,)]
    functions = setup.owner.execute(
        "SELECT proname, pg_get_userbyid(proowner), prosecdef,"
        " coalesce('search_path=pg_catalog, pg_temp' = ANY (proconfig), false),"
        " has_function_privilege('public', oid, 'EXECUTE')"
        " FROM pg_proc WHERE pronamespace = 'tview'::regnamespace").fetchall()
    generated = [f for f in functions if f[0].startswith(("_refresh_", "_patch_")) and f[0][-1].isdigit()]
    assert len(generated) >= 3 and all(f[1] == owner and f[3] and not f[2] for f in generated)
    definers = {f[0]: f[4] for f in functions if f[2]}
    captures = {name: public for name, public in definers.items() if name.startswith("_capture_")}
    # the triggers (one generated capture function per base table) and event triggers (and what those
    # call), callable by nobody; listen/unlisten, for readers: no arguments, the caller's own pid only
    assert len(captures) >= 2 and not any(captures.values())
    assert all(f[1] == owner and f[3] for f in functions if f[0] in captures)
    assert {name: public for name, public in definers.items() if name not in captures} == {
        "_flush_deferred": False, "listen": True, "unlisten": True,
        "_on_ddl_end": False, "_on_ddl_start": False, "_on_ddl_alter": False, "_on_sql_drop": False,
        "_on_ddl_members": False, "_on_ddl_schema": False, "_on_ddl_subscription": False,
        "_convert_created_tables": False, "_check_created_name": False}
    # Unpinned: public wrappers (one qualified call each), what probes the caller's definition, and the two
    # event trigger wrappers that pass the session's search_path on (one qualified call each).
    unpinned = {f[0] for f in functions if not f[3]}
    assert unpinned <= {"create", "alter", "drop", "refresh", "verify", "set_mode", "set_patching", "repair_triggers",
                        "_check_single_query", "_reads_temporary", "_first_query", "_on_ddl_end",
                        "_on_ddl_start"}, unpinned


# --------------------------------------------------------------------------- search_path hijacking

# (name, argument types, return type): planted ahead of pg_catalog, each records that it ran.
PLANTED_FUNCTIONS = [
    ("format", "text, name, text, text", "text"), ("format", "text, text", "text"),
    ("format", "text, text, text", "text"), ("set_config", "text, text, boolean", "text"),
    ("current_schema", "", "name"), ("current_setting", "text", "text"),
    ("current_schemas", "boolean", "name[]"), ("jsonb_build_object", "text, text", "jsonb"),
    ("jsonb_build_object", "text, integer", "jsonb"), ("quote_ident", "text", "text"),
    ("pg_notify", "text, text", "void"), ("strpos", "text, text", "integer"), ("substr", "text, integer", "text"),
    ("left", "text, integer", "text"), ("regexp_replace", "text, text, text, text", "text"),
    ("unnest", "bigint[]", "SETOF bigint"), ("to_jsonb", "bigint[]", "jsonb"),
    ("array_to_string", "text[], text", "text"), ("to_regclass", "text", "regclass"),
    ("cardinality", "bigint[]", "integer"), ("jsonb_array_length", "jsonb", "integer"),
    ("pg_current_xact_id", "", "xid8"), ("parse_ident", "text, boolean", "text[]"),
]
# (operator, left, right, return type)
PLANTED_OPERATORS = [
    ("=", "integer", "integer", "boolean"), ("=", "bigint", "bigint", "boolean"), ("=", "oid", "oid", "boolean"),
    ("=", "text", "text", "boolean"), ("=", "jsonb", "jsonb", "boolean"), ("=", "name", "name", "boolean"),
    ("<>", "text", "text", "boolean"), ("||", "text", "text", "text"), ("+", "integer", "integer", "integer"),
    ("->", "jsonb", "text", "jsonb"), ("->>", "jsonb", "text", "text"), ("?", "jsonb", "text", "boolean"),
    ("-", "jsonb", "text", "jsonb"), ("~", "text", "text", "boolean"), ("||", "jsonb", "jsonb", "jsonb"),
]


def plant(conn: psycopg.Connection) -> None:
    """Functions, operators, aggregates and tables named like what the engine uses, in schema planted."""
    conn.execute("CREATE TABLE planted.fired (what text); GRANT INSERT, SELECT ON planted.fired TO PUBLIC;"
                 "GRANT USAGE ON SCHEMA planted TO PUBLIC")
    for name, args, returns in PLANTED_FUNCTIONS:
        params = ", ".join(f"a{n} {t}" for n, t in enumerate(args.split(", ")) if t)
        call = ", ".join(f"a{n}" for n, t in enumerate(args.split(", ")) if t)
        body = (f"RETURN QUERY SELECT pg_catalog.{name}({call})" if returns.startswith("SETOF")
                else f"RETURN pg_catalog.{name}({call})" if returns != "void"
                else f"PERFORM pg_catalog.{name}({call})")
        conn.execute(f"""CREATE FUNCTION planted.{name}({params}) RETURNS {returns} LANGUAGE plpgsql SET search_path = pg_catalog AS $$
            BEGIN INSERT INTO planted.fired VALUES ('{name}({args})'); {body}; END $$""")
    for i, (op, left, right, returns) in enumerate(PLANTED_OPERATORS):
        conn.execute(f"""CREATE FUNCTION planted.op{i}(a {left}, b {right}) RETURNS {returns} LANGUAGE plpgsql SET search_path = pg_catalog AS $$
            BEGIN INSERT INTO planted.fired VALUES ('{op}({left}, {right})');
            RETURN a OPERATOR(pg_catalog.{op}) b; END $$""")
        conn.execute(f"CREATE OPERATOR planted.{op} (LEFTARG = {left}, RIGHTARG = {right}, FUNCTION = planted.op{i})")
    for name, arg, state in (("array_agg", "bigint", "bigint[]"), ("jsonb_agg", "jsonb", "jsonb")):
        conn.execute(f"""CREATE FUNCTION planted.{name}_step(s {state}, v {arg}) RETURNS {state} LANGUAGE plpgsql SET search_path = pg_catalog AS $$
            BEGIN INSERT INTO planted.fired VALUES ('{name}'); RETURN s; END $$""")
        conn.execute(f"CREATE AGGREGATE planted.{name}({arg}) (SFUNC = planted.{name}_step, STYPE = {state})")
    for table in ("tviews", "dependencies", "queue", "pending", "events", "tb_post", "tv_post"):
        conn.execute(f"CREATE TABLE planted.{table} (x int)")


# Temporary relations a writer's session could create to steer engine SQL that names relations loosely.
TEMP_DECOYS = ("tview_new", "tview_old", "tviews", "dependencies", "queue", "tb_post", "tv_post", "v_post")

# A definition that only uses qualified names, so that nothing the caller wrote resolves to planted objects.
QUALIFIED = ("SELECT p.pk_post, p.fk_user, pg_catalog.jsonb_build_object('t'::text, p.title) AS data "
             "FROM public.tb_post p")


@pytest.mark.parametrize("path", ["planted, public, pg_catalog", "planted, public"])
def test_objects_planted_on_search_path_never_run(dsn: str, db: psycopg.Connection, path: str):
    """Objects put first on the caller's search_path (pg_catalog last, or implicitly first) and temporary
    decoys never run or get read, whatever engine path the caller or a writer takes."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        roles = make_roles(admin)
        try:
            admin.execute(BLOG)
            admin.execute(sql.SQL("CREATE SCHEMA planted AUTHORIZATION {}").format(sql.Identifier(roles.low)))
            admin.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON tb_user, tb_post, tb_comment TO {}")
                          .format(sql.Identifier(roles.app)))
            with connect_as(dsn, roles.low) as low:
                plant(low)
            run_as_victims(dsn, roles, path)
            assert admin.execute("SELECT DISTINCT what FROM planted.fired ORDER BY 1").fetchall() == []
            assert_oracle(admin)
        finally:
            drop_roles(admin, roles)


def run_as_victims(dsn: str, roles: Roles, path: str) -> None:
    """The superuser manages TVIEWs and a writer writes, both with the planted path and temporary decoys."""
    with psycopg.connect(dsn, autocommit=True) as owner, connect_as(dsn, roles.app) as app:
        for conn in (owner, app):
            conn.execute(sql.SQL("SET search_path = {}").format(sql.SQL(path)))
            for table in TEMP_DECOYS:
                conn.execute(sql.SQL("CREATE TEMPORARY TABLE {} (x int)").format(sql.Identifier(table)))
        owner.execute("SELECT tview.create('card', %s, schema_name => 'public')", (QUALIFIED,))
        owner.execute(f"CREATE TABLE public.tv_ddl_card AS {QUALIFIED}")
        owner.execute("SELECT tview.refresh('post'), tview.refresh('post', '{1, 2}'), tview.refresh('card')")
        owner.execute("SELECT * FROM tview.verify('post')")
        owner.execute("SELECT tview.set_patching('post', false), tview.set_patching('post', true)")
        owner.execute("SELECT tview.repair_triggers(), tview.clean_queue()")
        owner.execute("SELECT * FROM tview.health()")
        set_engine(owner, log="on")
        for statement in QUALIFIED_WRITES[:3]:
            app.execute(statement)
        owner.execute("INSERT INTO public.tb_post VALUES (200, 2, 'by the owner')")
        owner.execute("SELECT tview.set_mode(n, 'deferred') FROM unnest('{user, comment, post}'::text[]) n")
        with app.transaction():
            for statement in QUALIFIED_WRITES[3:]:
                app.execute(statement)
        owner.execute("ALTER TABLE public.tb_comment RENAME COLUMN body TO text_body")
        owner.execute("UPDATE public.tb_comment SET text_body = 'renamed' WHERE pk_comment OPERATOR(pg_catalog.=) 1")
        owner.execute("SELECT tview.drop('ddl_card'), tview.drop('card')")


# The writers' own statements, qualified: only what the engine runs for them is under test.
QUALIFIED_WRITES = [
    "INSERT INTO public.tb_post VALUES (100, 3, 'new')",
    "INSERT INTO public.tb_comment VALUES (100, 100, 'first'), (101, 1, 'late')",
    "UPDATE public.tb_user SET name = 'renamed' WHERE pk_user OPERATOR(pg_catalog.=) 1",
    "UPDATE public.tb_comment SET fk_post = 2 WHERE pk_comment OPERATOR(pg_catalog.=) 3",
    "DELETE FROM public.tb_post WHERE pk_post OPERATOR(pg_catalog.=) 5",
    "UPDATE public.tb_post SET fk_user = 4, title = 'moved' WHERE pk_post OPERATOR(pg_catalog.=) 100",
]


def test_deferred_tview_embedding_an_immediate_one_follows_its_changes(db: psycopg.Connection):
    """Found here: tv_post deferred, tv_comment immediate; a comment's change must reach tv_post as keys to
    queue (a patch cannot wait for the commit)."""
    db.execute(BLOG)
    db.execute("SELECT tview.set_mode('post', 'deferred')")
    db.execute("UPDATE tb_comment SET body = 'changed' WHERE pk_comment = 1")
    assert_oracle(db)
