"""Trust (SPEC section 3, issue 14): writers' sessions, listeners, table owners and strangers
cannot steer the engine, block it, or be blocked by it.

Roles: the engine owner (the superuser that installed it, or a non-superuser database owner),
`app` (owns schema app and its tables, writes them, has no rights on schema tview) and
`stranger` (its own schema, nothing else). Every test runs with both installs.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tview_tui import installer
from tview_tui.embedded import TemporaryServer

from engine_helpers import refused, set_engine
from oracle import assert_oracle

pytestmark = pytest.mark.engine

APP_SCHEMA = """
CREATE TABLE app.tb_user (pk_user int PRIMARY KEY, name text NOT NULL);
CREATE TABLE app.tb_post (pk_post int PRIMARY KEY, fk_user int NOT NULL REFERENCES app.tb_user, title text NOT NULL);
INSERT INTO app.tb_user SELECT g, 'u' || g FROM generate_series(1, 4) g;
INSERT INTO app.tb_post SELECT g, 1 + g % 4, 'p' || g FROM generate_series(1, 8) g;
"""
USER_DEF = "SELECT u.pk_user, jsonb_build_object('name', u.name) AS data FROM app.tb_user u"
POST_DEF = ("SELECT p.pk_post, p.fk_user, jsonb_build_object('title', p.title, 'author', u.data) AS data"
            " FROM app.tb_post p JOIN public.tv_user u ON u.pk_user = p.fk_user")
CARD_DEF = ("SELECT p.pk_post, jsonb_build_object('title', p.title, 'by', u.name) AS data"
            " FROM app.tb_post p JOIN app.tb_user u ON u.pk_user = p.fk_user")


@dataclass
class Trust:
    dsn: str
    admin: psycopg.Connection      # superuser
    owner: psycopg.Connection      # the engine owner (the admin itself when installed by a superuser)
    owner_role: str
    app: str
    stranger: str
    superuser_install: bool

    def connect(self, role: str, **kwargs) -> psycopg.Connection:
        return psycopg.connect(make_conninfo(self.dsn, options=f"-c role={role}"), autocommit=True, **kwargs)

    def grant_owner(self, privileges: str = "SELECT, TRIGGER, UPDATE") -> None:
        with self.connect(self.app) as app:
            app.execute(sql.SQL("GRANT USAGE ON SCHEMA app TO {}").format(sql.Identifier(self.owner_role)))
            app.execute(sql.SQL("GRANT {} ON app.tb_user, app.tb_post TO {}").format(
                sql.SQL(privileges), sql.Identifier(self.owner_role)))


@pytest.fixture(params=["superuser", "db_owner"])
def trust(request, empty_dsn: str) -> Iterator[Trust]:
    suffix = uuid.uuid4().hex[:8]
    owner_role, app, stranger = f"tv_eng_{suffix}", f"tv_app_{suffix}", f"tv_stranger_{suffix}"
    with psycopg.connect(empty_dsn, autocommit=True) as admin:
        try:
            for role in (owner_role, app, stranger):
                admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            admin.execute(sql.SQL("CREATE SCHEMA app AUTHORIZATION {}").format(sql.Identifier(app)))
            admin.execute(sql.SQL("CREATE SCHEMA s AUTHORIZATION {}").format(sql.Identifier(stranger)))
            with contextlib.ExitStack() as stack:
                if request.param == "superuser":
                    installer.install(admin)
                    owner, owner_name = admin, admin.execute("SELECT current_user").fetchone()[0]
                else:
                    admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                        sql.Identifier(admin.info.dbname), sql.Identifier(owner_role)))
                    owner = stack.enter_context(psycopg.connect(
                        make_conninfo(empty_dsn, options=f"-c role={owner_role}"), autocommit=True))
                    installer.install(owner)
                    owner_name = owner_role
                setup = Trust(empty_dsn, admin, owner, owner_name, app, stranger, request.param == "superuser")
                with setup.connect(app) as conn:
                    conn.execute(APP_SCHEMA)
                setup.grant_owner()
                yield setup
        finally:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = current_database() AND pid <> pg_backend_pid()")
            for role in (owner_role, app, stranger):
                admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
            admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER").format(sql.Identifier(admin.info.dbname)))
            for role in (owner_role, app, stranger):
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def create_blog(t: Trust) -> None:
    t.owner.execute("SELECT tview.create('user', %s, schema_name => 'public')", (USER_DEF,))
    t.owner.execute("SELECT tview.create('post', %s, schema_name => 'public')", (POST_DEF,))


# --------------------------------------------------------------------------- (3) settings

def test_a_writers_set_cannot_purge_hide_or_reconfigure_the_engine(trust: Trust):
    """SET tview.log_max = 1 / log = off / notify = on / patching = off / row_locks = off in a writer's
    session change nothing for the engine: every event is logged and kept, patching still patches, and
    the settings in force are the database's."""
    create_blog(trust)
    set_engine(trust.admin, log="on", log_max="100000", notify="off")
    with trust.connect(trust.app) as app, trust.connect(trust.stranger) as listener:
        listener.execute("LISTEN tview_events")        # hears anything sent; nothing may be sent
        for setting in ("log_max = 1", "log = off", "notify = on", "patching = off", "row_locks = off",
                        "batch_threshold = 100000000", "max_cascade_depth = 0"):
            app.execute(f"SET tview.{setting}")
        app.execute("""DO $$ BEGIN FOR i IN 1 .. 520 LOOP
                           UPDATE app.tb_user SET name = 'n' || i WHERE pk_user = 1 + i % 4;
                       END LOOP; END $$""")
        assert list(listener.notifies(timeout=0.5)) == []
    ids = trust.owner.execute("SELECT min(id), max(id), count(*) FROM tview.events").fetchone()
    assert ids[1] >= 1000, "the log crossed a pruning point"
    assert ids == (1, ids[1], ids[1]), "no event was purged"
    modes = {m for (m,) in trust.owner.execute(
        "SELECT DISTINCT payload ->> 'mode' FROM tview.events WHERE payload ->> 'tview' = 'tv_post'")}
    assert modes == {"patch"}, "the writer's SET tview.patching = off was ignored"
    # the engine owner's own session is no different: what counts is stored
    trust.owner.execute("SET tview.row_locks = off")
    trust.owner.execute("SET tview.log_max = 1")
    assert trust.owner.execute("SELECT tview.enabled('row_locks', true), tview.setting('log_max', '0')"
                               ).fetchone() == (True, "100000")
    assert [f for f in trust.owner.execute("SELECT check_name FROM tview.health()").fetchall()
            if f[0] == "row_locks_off"] == []
    trust.owner.execute("RESET tview.row_locks; RESET tview.log_max")
    assert_oracle(trust.owner)


def test_settings_of_the_engine_owners_role_count_those_of_other_roles_do_not(trust: Trust):
    """ALTER ROLE <owner> [IN DATABASE] SET is read (over the database's); another role's is ignored, and
    health() says so."""
    create_blog(trust)
    db = sql.Identifier(trust.admin.info.dbname)
    set_engine(trust.admin, log="off")
    trust.admin.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} SET tview.log = on").format(
        sql.Identifier(trust.app), db))
    with trust.connect(trust.app) as app:
        app.execute("UPDATE app.tb_user SET name = 'x' WHERE pk_user = 1")
    assert trust.owner.execute("SELECT count(*) FROM tview.events").fetchone()[0] == 0
    found = trust.owner.execute("SELECT check_name, detail, fix FROM tview.health()"
                                " WHERE check_name = 'setting_ignored'").fetchall()
    assert len(found) == 1 and trust.app in found[0][1] and found[0][2].startswith(
        f"ALTER ROLE {trust.app} IN DATABASE")
    trust.admin.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} SET tview.log = on").format(
        sql.Identifier(trust.owner_role), db))
    with trust.connect(trust.app) as app:
        app.execute("UPDATE app.tb_user SET name = 'y' WHERE pk_user = 1")
    assert trust.owner.execute("SELECT count(*) FROM tview.events").fetchone()[0] == 2
    trust.admin.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(sql.Identifier(trust.owner_role), db))
    trust.admin.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(sql.Identifier(trust.app), db))


# --------------------------------------------------------------------------- (4) listeners

def idle_listener_and_writes(t: Trust, commits: int) -> tuple[int, int]:
    """A role with no rights LISTENs and idles in an open transaction while `app` commits `commits`
    single-row writes (a registered listener elsewhere makes tview.notify = auto send). Returns the
    writer failures and the events logged."""
    failures = 0
    with t.connect(t.stranger) as idle, psycopg.connect(t.dsn, autocommit=True) as registered:
        registered.execute("SELECT tview.listen()")
        idle.execute("LISTEN tview_events")
        idle.execute("BEGIN")
        idle.execute("SELECT 1")                      # idle in transaction: the queue cannot drain past it
        with t.connect(t.app) as app:
            for i in range(commits):
                try:
                    app.execute("UPDATE app.tb_user SET name = %s WHERE pk_user = %s", (f"w{i}", 1 + i % 4))
                except psycopg.Error:
                    failures += 1
        idle.execute("ROLLBACK")
    return failures, t.owner.execute("SELECT count(*) FROM tview.events").fetchone()[0]


def test_a_listener_idling_in_a_transaction_never_fails_a_writer(trust: Trust):
    """Above tview.notify_queue_pct writers stop sending NOTIFY (log only); none fails, every event is logged."""
    create_blog(trust)
    set_engine(trust.admin, log="on", notify_queue_pct="0")   # any page held is over the threshold
    failures, logged = idle_listener_and_writes(trust, 300)
    assert failures == 0
    assert logged == 600                                       # tv_user and tv_post, every commit
    assert trust.owner.execute("SELECT pg_notification_queue_usage()").fetchone()[0] < 0.001
    assert_oracle(trust.owner)


@pytest.fixture(scope="module")
def small_queue_dsn() -> Iterator[str]:
    """A server of its own (the embedded one) whose notification queue holds 64 pages (PostgreSQL 17+):
    a listener idling in a transaction fills it within a few hundred commits."""
    server = TemporaryServer()
    try:
        dsn = server.start()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET max_notify_queue_pages = 64")
        server.stop()
        yield server.start()
    finally:
        server.cleanup()


def test_a_full_notification_queue_never_fails_a_writer(small_queue_dsn: str):
    """With the default tview.notify_queue_pct (50) and a 64-page queue, an idle listener in a transaction
    once made every writer fail at commit (54000) after ~830 commits. Now: 1,500 commits, none fails,
    every event is logged, and the queue stays at about half full."""
    name = f"tview_q_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(small_queue_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(small_queue_dsn, dbname=name)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            installer.install(conn)
            conn.execute("CREATE SCHEMA app; CREATE ROLE tv_q_stranger NOLOGIN")
            conn.execute(APP_SCHEMA)
            conn.execute("SELECT tview.create('user', %s, schema_name => 'public')", (USER_DEF,))
            conn.execute("SELECT tview.create('post', %s, schema_name => 'public')", (POST_DEF,))
            set_engine(conn, log="on")
            usage = []
            with psycopg.connect(make_conninfo(dsn, options="-c role=tv_q_stranger"), autocommit=True) as idle, \
                    psycopg.connect(dsn, autocommit=True) as registered, \
                    psycopg.connect(dsn, autocommit=True) as writer:
                registered.execute("SELECT tview.listen()")
                idle.execute("LISTEN tview_events")
                idle.execute("BEGIN")
                idle.execute("SELECT 1")
                failures = []
                for i in range(1500):
                    try:
                        writer.execute("UPDATE app.tb_user SET name = %s WHERE pk_user = %s", (f"w{i}", 1 + i % 4))
                    except psycopg.Error as exc:
                        failures.append(exc.sqlstate)
                    if i % 100 == 0:
                        usage.append(conn.execute("SELECT pg_notification_queue_usage()").fetchone()[0])
                idle.execute("ROLLBACK")
            assert failures == []
            assert max(usage) > 0.4, "the queue did fill up to the threshold"
            assert max(usage) < 0.6, "and no further"
            assert conn.execute("SELECT count(*) FROM tview.events").fetchone()[0] == 3000
            assert_oracle(conn)
    finally:
        with psycopg.connect(small_queue_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute("DROP ROLE IF EXISTS tv_q_stranger")


def test_forged_events_are_only_hints(trust: Trust):
    """Any role can pg_notify on tview_events; the log (what tail --poll and gap backfills read) is written
    by the engine only."""
    create_blog(trust)
    set_engine(trust.admin, log="on")
    forged = {"v": 1, "ts": "2026-01-01T00:00:00Z", "pid": 1, "xid": "1", "schema": "public", "tview": "tv_user",
              "source": "tb_user", "op": "DELETE", "depth": 0, "mode": "recompute", "rows": 1, "upserted": 0,
              "patched": 0, "deleted": 1, "us": 1, "keys": [1], "keys_more": 0}
    with trust.connect(trust.stranger) as stranger:
        stranger.execute("SELECT pg_notify('tview_events', %s)", (json.dumps(forged),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            stranger.execute("INSERT INTO tview.events (payload) VALUES ('{}')")
    assert trust.owner.execute("SELECT count(*) FROM tview.events").fetchone()[0] == 0


# --------------------------------------------------------------------------- (5) event triggers

STRANGER_DDL = [
    "CREATE TABLE s.t (a int PRIMARY KEY, b text)",
    "ALTER TABLE s.t ADD COLUMN c int",
    "ALTER TABLE s.t RENAME COLUMN c TO d",
    "CREATE VIEW s.v AS SELECT a, b FROM s.t",
    "CREATE OR REPLACE VIEW s.v AS SELECT a, b, d FROM s.t",
    "ALTER VIEW s.v RENAME TO w",
    "CREATE TABLE s.copy AS SELECT * FROM s.t",
    "SELECT * INTO s.copy2 FROM s.t",
    "CREATE TABLE s.tv_report AS SELECT a AS pk_report, to_jsonb(t) AS data FROM s.t t",
    "CREATE TEMPORARY TABLE tmp AS SELECT 1 AS x",
    "DROP TABLE tmp",
    "DROP VIEW s.w",
    "DROP TABLE s.t, s.copy, s.copy2, s.tv_report",
]


def test_a_role_with_no_rights_on_tview_runs_its_own_ddl(trust: Trust):
    """ALTER, CREATE (VIEW, TABLE AS, SELECT INTO, a table named tv_*), DROP of its own objects, temporary
    ones too: the engine's event triggers (superuser install) return at once and refuse nothing."""
    create_blog(trust)
    assert trust.admin.execute("SELECT has_schema_privilege(%s, 'tview', 'USAGE')", (trust.stranger,)
                               ).fetchone()[0] is False
    with trust.connect(trust.stranger) as stranger:
        for statement in STRANGER_DDL:
            stranger.execute(statement)
    assert trust.owner.execute("SELECT count(*) FROM tview.tviews").fetchone()[0] == 2
    assert_oracle(trust.owner)


def test_a_table_owner_migrates_a_table_a_tview_reads(trust: Trust):
    """`app`, with no rights on schema tview, alters its tables (and, where the event triggers rebuild the
    engine's code, renames a column): no "permission denied", and writes still reach the TVIEWs."""
    create_blog(trust)
    with trust.connect(trust.app) as app:
        app.execute("ALTER TABLE app.tb_user ADD COLUMN email text")
        app.execute("ALTER TABLE app.tb_post ALTER COLUMN title SET DEFAULT 'untitled'")
        app.execute("CREATE INDEX ON app.tb_post (fk_user)")
        if trust.superuser_install:        # without event triggers a rename needs drop and create (docs)
            app.execute("ALTER TABLE app.tb_user RENAME COLUMN name TO full_name")
            app.execute("UPDATE app.tb_user SET full_name = 'renamed' WHERE pk_user = 2")
        else:
            app.execute("UPDATE app.tb_user SET name = 'renamed' WHERE pk_user = 2")
        app.execute("INSERT INTO app.tb_post (pk_post, fk_user) VALUES (100, 2)")
        app.execute("ALTER TABLE app.tb_user DROP COLUMN email")
    assert trust.owner.execute("SELECT data ->> 'title' FROM tv_post WHERE pk_post = 100").fetchone()[0] == "untitled"
    assert trust.owner.execute("SELECT data -> 'author' ->> 'name' FROM tv_post WHERE pk_post = 100"
                               ).fetchone()[0] == "renamed"
    assert_oracle(trust.owner)


def test_a_table_owners_bulk_delete_takes_the_vanished_keys_path_under_either_install(trust: Trust):
    """`app` deletes 100 of its posts in one statement: tv_post's rows go without a recompute where the
    root proves them gone (read as the engine owner, superuser or not), and tv_post stays exact."""
    create_blog(trust)
    with trust.connect(trust.app) as app:
        app.execute("INSERT INTO app.tb_post SELECT g, 1 + g % 4, 'p' || g FROM generate_series(9, 108) g")
        app.execute("DELETE FROM app.tb_post WHERE pk_post > 8")
    assert trust.owner.execute("SELECT tview._root_proves_absence('app.tb_post'::regclass, 'app.tb_post', 'pk_post')"
                               ).fetchone()[0] is True
    assert trust.owner.execute("SELECT count(*) FROM tv_post").fetchone()[0] == 8
    assert_oracle(trust.owner)


def test_create_table_as_by_a_role_without_the_owners_privileges_is_not_converted(trust: Trust):
    """Only the engine owner's CREATE TABLE tv_x AS becomes a TVIEW: another role's stays its plain table
    (it must not get a TVIEW, made with the owner's rights, out of it)."""
    with trust.connect(trust.stranger) as stranger:
        stranger.execute("CREATE TABLE s.tv_mine AS SELECT 1 AS pk_mine, '{}'::jsonb AS data")
        assert stranger.execute("SELECT count(*) FROM s.tv_mine").fetchone()[0] == 1
    assert trust.owner.execute("SELECT count(*) FROM tview.tviews").fetchone()[0] == 0
    assert trust.admin.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 's.tv_mine'::regclass"
                               ).fetchone()[0] == trust.stranger
    if trust.superuser_install:
        trust.owner.execute(f"CREATE TABLE public.tv_user AS {USER_DEF}")
        assert trust.owner.execute("SELECT count(*) FROM tview.tviews").fetchone()[0] == 1


# --------------------------------------------------------------------------- (7) grants

def test_create_checks_the_grants_the_engine_owner_needs(trust: Trust):
    """Without TRIGGER and UPDATE on a table read, create refuses (42501) naming them and the GRANT; with
    them it works. (A superuser owner has every right: nothing to refuse.)"""
    with trust.connect(trust.app) as app:
        app.execute(sql.SQL("REVOKE TRIGGER, UPDATE ON app.tb_user FROM {}").format(sql.Identifier(trust.owner_role)))
    if trust.superuser_install:
        create_blog(trust)
        return
    error = refused(trust.owner, "SELECT tview.create('user', %s, schema_name => 'public')", (USER_DEF,), "42501",
                    "app.tb_user", "TRIGGER, UPDATE", trust.owner_role)
    assert f"GRANT TRIGGER, UPDATE ON app.tb_user TO {trust.owner_role}" in error.diag.message_hint
    trust.grant_owner()
    create_blog(trust)
    assert_oracle(trust.owner)


def test_health_reports_a_grant_revoked_later_with_the_grant_that_fixes_it(trust: Trust):
    """app revokes UPDATE on tb_user from the engine owner: writes to tb_post fail (the refresh of tv_card
    share-locks the post's author); health() says missing_privilege with the GRANT; app runs it and all is
    well."""
    create_blog(trust)
    trust.owner.execute("SELECT tview.create('card', %s, schema_name => 'public')", (CARD_DEF,))
    with trust.connect(trust.app) as app:
        app.execute(sql.SQL("REVOKE UPDATE ON app.tb_user FROM {}").format(sql.Identifier(trust.owner_role)))
        found = trust.owner.execute("SELECT severity, tview, detail, fix FROM tview.health()"
                                    " WHERE check_name = 'missing_privilege'").fetchall()
        if trust.superuser_install:
            assert found == []
            return
        ((severity, tviews, detail, fix),) = found
        assert severity == "error" and tviews == "public.tv_card, public.tv_user"
        assert "lacks UPDATE on app.tb_user" in detail
        assert fix == f"GRANT UPDATE ON app.tb_user TO {trust.owner_role} (run by the table's owner)"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("UPDATE app.tb_post SET title = 'locked out' WHERE pk_post = 1")
        app.execute(fix.removesuffix(" (run by the table's owner)"))
        app.execute("UPDATE app.tb_post SET title = 'back' WHERE pk_post = 1")
    assert trust.owner.execute("SELECT count(*) FROM tview.health() WHERE check_name = 'missing_privilege'"
                               ).fetchone()[0] == 0
    assert_oracle(trust.owner)


# --------------------------------------------------------------------------- (8) privilege inspection

@pytest.mark.parametrize("call", [
    "has_table_privilege('app.tb_user', 'SELECT')",
    "has_column_privilege('app.tb_user', 'name', 'SELECT')",
    "has_schema_privilege('app', 'USAGE')",
    "has_function_privilege('now()', 'EXECUTE')",
    "pg_has_role('pg_monitor', 'MEMBER')",
    "row_security_active('app.tb_user')",
])
def test_privilege_and_role_inspection_in_a_definition_is_refused(trust: Trust, call: str):
    """Computed as the engine owner whoever writes, and changed by GRANTs that fire no trigger: 42P17."""
    definition = f"SELECT u.pk_user, jsonb_build_object('ok', {call}) AS data FROM app.tb_user u"
    function = call.split("(")[0]
    refused(trust.owner, "SELECT tview.create('peek', %s, schema_name => 'public')", (definition,), "42P17",
            "public.tv_peek", function)


def test_privilege_inspection_brought_in_by_a_replaced_helper_view_is_refused(trust: Trust):
    """The same check when a helper view the definition reads is replaced (event triggers: superuser install)."""
    if not trust.superuser_install:
        pytest.skip("helper views are re-checked by the event triggers, which need a superuser install")
    trust.owner.execute("CREATE VIEW public.v_helper AS SELECT u.pk_user, u.name FROM app.tb_user u")
    trust.owner.execute("SELECT tview.create('helped', $$SELECT h.pk_user, jsonb_build_object('n', h.name) AS data"
                        " FROM public.v_helper h$$, schema_name => 'public')")
    refused(trust.owner, "CREATE OR REPLACE VIEW public.v_helper AS SELECT u.pk_user,"
            " u.name || has_table_privilege('app.tb_user', 'SELECT')::text AS name FROM app.tb_user u",
            None, "42P17", "tv_helped", "has_table_privilege")


# --------------------------------------------------------------------------- (1, 2) other roles' code

RLS = """
CREATE TABLE app.calls (who text);
GRANT INSERT ON app.calls TO PUBLIC;
CREATE FUNCTION app.pwn() RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO app.calls VALUES (current_user); RETURN true; END $$;
ALTER TABLE app.tb_user ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON app.tb_user USING (app.pwn());
"""


def test_a_row_level_security_policy_never_runs_as_the_engine_owner(trust: Trust):
    """app enables RLS on a table a TVIEW reads, with a policy calling its own function, then writes: the
    policy never runs as the engine owner. A superuser owner bypasses policies; a non-superuser owner's
    triggers run with row_security off, so the write fails (42501) and changes nothing. Creating a TVIEW
    over such a table is refused up front."""
    create_blog(trust)
    with trust.connect(trust.app) as app:
        app.execute(RLS)
        if trust.superuser_install:
            app.execute("UPDATE app.tb_user SET name = 'Ann' WHERE pk_user = 1")
            assert trust.owner.execute("SELECT data ->> 'name' FROM tv_user WHERE pk_user = 1").fetchone() == ("Ann",)
        else:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                app.execute("UPDATE app.tb_user SET name = 'Ann' WHERE pk_user = 1")
            refused(trust.owner, "SELECT tview.create('card', %s, schema_name => 'public')", (CARD_DEF,), "42501",
                    "public.tv_card", "app.tb_user", "row-level security")
        assert app.execute("SELECT count(*) FROM app.calls WHERE who <> current_user").fetchone() == (0,)
    assert_oracle(trust.owner)


APP_CODE = """
CREATE FUNCTION app.shout(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(t) $$;
CREATE FUNCTION app.same(a text, b text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT a = b $$;
CREATE OPERATOR app.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = app.same);
CREATE TYPE app.mood AS ENUM ('ok', 'sad');
CREATE VIEW app.v_names AS SELECT u.pk_user, u.name FROM app.tb_user u;
"""


@pytest.mark.parametrize("expression, kind, name", [
    ("jsonb_build_object('n', app.shout(u.name))", "function", "app.shout(text)"),
    ("jsonb_build_object('n', u.name OPERATOR(app.===) 'x')", "operator", "app.==="),
    ("jsonb_build_object('m', 'ok'::app.mood)", "type", "app.mood"),
])
def test_another_roles_function_operator_or_type_in_a_definition_is_refused(trust: Trust, expression, kind, name):
    """app could replace its function at any time and it would run with the engine owner's rights on every
    write: create refuses (42501) naming the object and its owner, and makes nothing."""
    with trust.connect(trust.app) as app:
        app.execute(APP_CODE)
    definition = f"SELECT u.pk_user, {expression} AS data FROM app.tb_user u"
    error = refused(trust.owner, "SELECT tview.create('coded', %s, schema_name => 'public')", (definition,), "42501",
                    "public.tv_coded", kind, name, trust.app)
    assert "OWNER TO" in error.diag.message_hint
    # the same through a helper view the engine owner made
    trust.owner.execute(f"CREATE VIEW public.v_helper AS {definition}")
    refused(trust.owner, "SELECT tview.create('coded', 'SELECT * FROM public.v_helper', schema_name => 'public')",
            None, "42501", "public.tv_coded", name)


def test_a_helper_view_another_role_owns_is_refused(trust: Trust):
    """app owns a helper view and could replace it (where no event trigger re-checks it) with one that
    calls its own code: refused (42501) naming the view and its owner."""
    with trust.connect(trust.app) as app:
        app.execute(APP_CODE)
        app.execute(sql.SQL("GRANT SELECT ON app.v_names TO {}").format(sql.Identifier(trust.owner_role)))
    refused(trust.owner, "SELECT tview.create('named', $$SELECT n.pk_user, jsonb_build_object('n', n.name) AS data"
            " FROM app.v_names n$$, schema_name => 'public')", None, "42501", "view", "app.v_names", trust.app)


# --------------------------------------------------------------------------- (8) session-dependent output

STAMPED = """
CREATE TABLE app.tb_event (pk_event int PRIMARY KEY, at timestamptz NOT NULL, took interval NOT NULL,
                           raw bytea NOT NULL, ratio float8 NOT NULL);
INSERT INTO app.tb_event VALUES (1, '2024-01-01 00:00:00+00', '1 day 02:03:04', '\\x00ff', 0.1),
                                (2, '2024-06-30 23:30:00+00', '-3 hours', '\\x41', 1e-7);
"""
STAMPED_DEF = """SELECT e.pk_event, e.at, e.took, e.raw, e.ratio,
                        jsonb_build_object('at', e.at, 'took', e.took::text, 'raw', e.raw::text, 'ratio', e.ratio,
                                           'day', e.at::date::text) AS data
                 FROM app.tb_event e"""
ODD_SESSION = ("-c TimeZone=Asia/Tokyo -c DateStyle=SQL,DMY -c IntervalStyle=sql_standard"
               " -c bytea_output=escape -c extra_float_digits=0")


def test_a_writers_session_settings_never_change_a_tviews_bytes(trust: Trust):
    """The TVIEW pins its creator's TimeZone, DateStyle, IntervalStyle, bytea_output and extra_float_digits:
    a writer with other values leaves exactly the bytes the creator's session would (checked by the oracle
    from a session like the creator's), and verify() from the odd session finds nothing wrong either."""
    with trust.connect(trust.app) as app:
        app.execute(STAMPED)
        app.execute(sql.SQL("GRANT SELECT, TRIGGER, UPDATE ON app.tb_event TO {}").format(
            sql.Identifier(trust.owner_role)))
    trust.owner.execute("SELECT tview.create('event', %s, schema_name => 'public')", (STAMPED_DEF,))
    pinned = trust.owner.execute("SELECT session_settings FROM tview.tviews").fetchone()[0]
    assert pinned["TimeZone"] == trust.owner.execute("SHOW TimeZone").fetchone()[0]
    before = trust.owner.execute("SELECT data FROM tv_event WHERE pk_event = 1").fetchone()[0]
    odd = psycopg.connect(make_conninfo(trust.dsn, options=f"-c role={trust.app} {ODD_SESSION}"), autocommit=True)
    with odd:
        assert odd.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"
        odd.execute("UPDATE app.tb_event SET ratio = ratio, at = at WHERE pk_event = 1")   # recomputed, same values
        odd.execute("INSERT INTO app.tb_event VALUES (3, '2025-03-01 12:00:00+00', '90 minutes', '\\x0a', 2.5)")
        odd.execute("UPDATE app.tb_event SET took = took + interval '1 second' WHERE pk_event = 2")
    assert trust.owner.execute("SELECT data FROM tv_event WHERE pk_event = 1").fetchone()[0] == before
    assert_oracle(trust.owner)
    with psycopg.connect(make_conninfo(trust.dsn, options=f"-c role={trust.owner_role} {ODD_SESSION}")) as reader:
        assert reader.execute("SELECT count(*) FROM tview.verify('public.event')").fetchone() == (0,)
        assert reader.execute("SHOW TimeZone").fetchone()[0] == "Asia/Tokyo"     # put back after verify


# --------------------------------------------------------------------------- (6) trigger names

def test_a_trigger_planted_under_an_engine_triggers_name_is_repaired_around(trust: Trust):
    """app drops the engine's INSERT trigger on its table and plants its own under that name: health
    reports it, and repair_triggers() (no argument, run by the engine owner, superuser or not) makes the
    engine's trigger beside app's (never dropping app's), after which inserts reach the TVIEWs again."""
    create_blog(trust)
    with trust.connect(trust.app) as app:
        app.execute("DROP TRIGGER tview_after_insert ON app.tb_post")
        app.execute("CREATE FUNCTION app.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'")
        app.execute("CREATE TRIGGER tview_after_insert AFTER INSERT ON app.tb_post"
                    " FOR EACH STATEMENT EXECUTE FUNCTION app.noop()")
        found = trust.owner.execute("SELECT check_name, tview FROM tview.health() WHERE check_name LIKE '%trigger'"
                                    ).fetchall()
        assert found == [("foreign_trigger", "public.tv_post")]
        assert trust.owner.execute("SELECT tview.repair_triggers()").fetchone()[0] == (
            "all TVIEWs: re-created 1 trigger(s), re-enabled 0 trigger(s) on app.tb_post")
        names = app.execute("SELECT tgname, tgfoid::regproc::text FROM pg_trigger WHERE tgrelid = 'app.tb_post'::regclass"
                            " AND tgname LIKE 'tview_after_insert%' ORDER BY 1").fetchall()
        assert names[0] == ("tview_after_insert", "app.noop") and names[1][0] == "tview_after_insert_1"
        app.execute("INSERT INTO app.tb_post VALUES (100, 1, 'after repair')")
        trust.owner.execute("SELECT tview.refresh('public.post')")   # what was missed before the repair
    assert trust.owner.execute("SELECT count(*) FROM tview.health() WHERE check_name LIKE '%trigger'").fetchone() == (0,)
    assert trust.owner.execute("SELECT data ->> 'title' FROM tv_post WHERE pk_post = 100").fetchone() == ("after repair",)
    assert_oracle(trust.owner)
