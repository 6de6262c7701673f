"""Compiled change capture (sql/058_capture.sql): one generated trigger function per base table
reads the transition tables in place.

What that removes, each tried as the role that would exploit or suffer it, with the engine
installed by a superuser and by a non-superuser database owner:
- a table owner's domain CHECK or DEFAULT running with the engine owner's rights (row images
  re-typed into the table's row type did that);
- bulk statements failing because every changed row was put in one jsonb value;
- sessions that wrote before harmless DDL on a read table failing afterwards (a cached row type).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tview_tui import installer

from engine_helpers import ORDER_BY_LINE, ORDER_TABLES, refused, set_engine, two_writers
from oracle import assert_oracle

pytestmark = pytest.mark.engine


@dataclass
class Site:
    dsn: str
    admin: psycopg.Connection
    engine: psycopg.Connection   # the engine owner: installs the engine and creates the TVIEWs
    app: psycopg.Connection      # owns schema app and its tables, writes them; no rights on tview
    engine_role: str
    app_role: str


def connect_as(dsn: str, role: str | None) -> psycopg.Connection:
    return psycopg.connect(make_conninfo(dsn, options=f"-c role={role}") if role else dsn, autocommit=True)


# app's tables: members (with a domain-typed column) and the groups they lead; the TVIEW reads
# members with fk lineage (a TVIEW row carries fk_member), the rule that went through row images.
APP_SCHEMA = """
CREATE SCHEMA app;
CREATE TABLE app.calls (who text, via text);
GRANT INSERT ON app.calls TO PUBLIC;
CREATE FUNCTION app.f(v text) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO app.calls VALUES (current_user, 'check'); RETURN true; END $$;
CREATE FUNCTION app.d() RETURNS text LANGUAGE plpgsql AS
    $$ BEGIN INSERT INTO app.calls VALUES (current_user, 'default'); RETURN 'x@example.com'; END $$;
CREATE DOMAIN app.email AS text;
CREATE TABLE app.tb_member (pk_member int PRIMARY KEY, name text NOT NULL, email app.email,
                            pad text NOT NULL DEFAULT '', unused int);
CREATE TABLE app.tb_group (pk_group int PRIMARY KEY, fk_member int REFERENCES app.tb_member, name text NOT NULL);
INSERT INTO app.tb_member SELECT g, 'm' || g, 'm' || g || '@example.com' FROM generate_series(1, 20) g;
INSERT INTO app.tb_group SELECT g, 1 + g % 20, 'g' || g FROM generate_series(1, 40) g;
GRANT USAGE ON SCHEMA app TO {engine};
GRANT SELECT, TRIGGER, UPDATE ON app.tb_member, app.tb_group TO {engine};
"""

GROUP_TVIEW = """SELECT tview.create('group', $$
    SELECT g.pk_group, g.fk_member, jsonb_build_object('name', g.name, 'leader', m.name, 'email', m.email) AS data
    FROM app.tb_group g JOIN app.tb_member m ON m.pk_member = g.fk_member $$)"""


@pytest.fixture(params=["superuser", "owner"])
def site(request, empty_dsn: str) -> Iterator[Site]:
    """app's schema and a TVIEW over it, with the engine installed by a superuser or by a
    non-superuser role that may create in the database."""
    suffix = uuid.uuid4().hex[:8]
    app_role = f"tv_app_{suffix}"
    engine_role = f"tv_eng_{suffix}" if request.param == "owner" else None
    with psycopg.connect(empty_dsn, autocommit=True) as admin:
        admin_role = admin.execute("SELECT current_user").fetchone()[0]
        roles = [r for r in (app_role, engine_role) if r]
        for role in roles:
            admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        db = sql.Identifier(admin.info.dbname)
        admin.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(db, sql.Identifier(app_role)))
        if engine_role:
            admin.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(db, sql.Identifier(engine_role)))
            admin.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(engine_role)))
        try:
            with connect_as(empty_dsn, engine_role) as engine, connect_as(empty_dsn, app_role) as app:
                installer.install(engine)
                app.execute(APP_SCHEMA.replace("{engine}", sql.Identifier(engine_role or admin_role).as_string(app)))
                engine.execute(GROUP_TVIEW)
                yield Site(empty_dsn, admin, engine, app, engine_role or admin_role, app_role)
        finally:
            for role in roles:
                admin.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
            for role in roles:
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def calls(site: Site) -> list[tuple[str, str]]:
    return site.admin.execute("SELECT who, via FROM app.calls ORDER BY 1, 2").fetchall()


def test_a_table_owners_domain_never_runs_with_the_engine_owners_rights(site):
    """app adds a CHECK (NOT VALID: nothing is checked now) and a DEFAULT to the domain of a column
    the TVIEW reads, then writes: the engine reads its rows in place, so neither runs as anyone
    but app (they run as app for the values app's own statement assigns)."""
    site.app.execute("ALTER DOMAIN app.email ADD CONSTRAINT sneaky CHECK (app.f(VALUE)) NOT VALID")
    site.app.execute("ALTER DOMAIN app.email SET DEFAULT app.d()")
    site.app.execute("UPDATE app.tb_member SET name = 'Ann' WHERE pk_member = 1")
    site.app.execute("UPDATE app.tb_member SET name = name || '!', email = 'new@example.com' WHERE pk_member <= 3")
    site.app.execute("INSERT INTO app.tb_member (pk_member, name) VALUES (100, 'new')")
    site.app.execute("UPDATE app.tb_group SET fk_member = 100 WHERE pk_group = 1")
    site.app.execute("DELETE FROM app.tb_group WHERE pk_group = 2")

    assert {who for who, _ in calls(site)} == {site.app_role}
    assert ("check" in {via for _, via in calls(site)}) and ("default" in {via for _, via in calls(site)})
    assert site.engine.execute("SELECT data->>'leader' FROM tv_group WHERE pk_group = 20").fetchone() == ("Ann!",)
    assert site.engine.execute("SELECT data->>'email' FROM tv_group WHERE pk_group = 1").fetchone() == ("x@example.com",)
    assert_oracle(site.engine)


def test_the_capture_code_is_in_the_catalog(site):
    """tview.capture: one row per table read, naming the TVIEWs and showing the generated code,
    which reads the transition tables and never re-types a row."""
    rows = site.engine.execute("SELECT source, tviews, function, code FROM tview.capture ORDER BY source").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("app.tb_group", ["public.tv_group"]), ("app.tb_member", ["public.tv_group"])]
    for _, _, function, code in rows:
        assert function.startswith("tview._capture_")
        assert "tview_new" in code and "tview_old" in code
        assert "jsonb_populate" not in code and "_rows(" not in code and "jsonb_agg" not in code


def test_harmless_ddl_does_not_break_sessions_that_already_wrote(site):
    """Sessions that wrote to a read table keep writing after columns no TVIEW reads are dropped or
    retyped (a pool's connections live on). The DDL is the table owner's, who has no rights on tview."""
    writers = [connect_as(site.dsn, site.app_role) for _ in range(2)]
    try:
        for i, conn in enumerate(writers):
            conn.execute("UPDATE app.tb_member SET name = %s WHERE pk_member = %s", (f"w{i}", i + 1))
            conn.execute("UPDATE app.tb_group SET name = name || '.' WHERE pk_group = %s", (i + 1,))
        site.app.execute("ALTER TABLE app.tb_member ALTER COLUMN unused TYPE bigint")
        for i, conn in enumerate(writers):
            conn.execute("UPDATE app.tb_member SET name = %s, unused = 7 WHERE pk_member = %s", (f"x{i}", i + 1))
        assert_oracle(site.engine)
        site.app.execute("ALTER TABLE app.tb_member DROP COLUMN unused")
        site.app.execute("ALTER TABLE app.tb_member ADD COLUMN extra text DEFAULT 'e'")
        for i, conn in enumerate(writers):
            conn.execute("UPDATE app.tb_member SET name = %s WHERE pk_member = %s", (f"y{i}", i + 1))
            conn.execute("INSERT INTO app.tb_member (pk_member, name) VALUES (%s, 'z')", (200 + i,))
            conn.execute("UPDATE app.tb_group SET fk_member = %s WHERE pk_group = %s", (200 + i, 10 + i))
        assert site.engine.execute("SELECT data->>'leader' FROM tv_group WHERE pk_group = 10").fetchone() == ("z",)
        assert_oracle(site.engine)
    finally:
        for conn in writers:
            conn.close()


def test_ddl_while_other_sessions_keep_writing(site):
    """Writers loop while the table they write is altered under them: every statement either
    waits for the DDL or succeeds; none fails, and the TVIEW is exact afterwards."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(n: int) -> None:
        try:
            with connect_as(site.dsn, site.app_role) as conn:
                i = 0
                while not stop.is_set() and i < 400:
                    i += 1
                    conn.execute("UPDATE app.tb_member SET name = %s WHERE pk_member = %s", (f"n{n}-{i}", 1 + (i + n) % 20))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    try:
        for statement in ["ALTER TABLE app.tb_member ADD COLUMN a int", "ALTER TABLE app.tb_member ALTER COLUMN a TYPE text",
                          "ALTER TABLE app.tb_member DROP COLUMN a", "ALTER TABLE app.tb_member DROP COLUMN unused"]:
            site.app.execute(statement)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not errors, errors
    assert_oracle(site.engine)


@pytest.mark.slow
@pytest.mark.parametrize("site", ["superuser"], indirect=True)
def test_a_bulk_update_of_an_fk_table_with_large_rows_works(site):
    """300,000 rows of ~1 kB updated in one statement (over 256 MB of row data: more than one
    jsonb value may hold), on a table the TVIEW reads with fk lineage."""
    n = 300_000
    site.app.execute("INSERT INTO app.tb_member (pk_member, name, pad) SELECT g, 'b' || g, repeat('p', 1000)"
                     " FROM generate_series(1000, 1000 + %s - 1) g", (n,))
    site.app.execute("INSERT INTO app.tb_group VALUES (1000, 1500, 'bulk'), (1001, 1000 + %s - 1, 'last')", (n,))
    updated = site.app.execute("UPDATE app.tb_member SET name = name || '!' WHERE pk_member >= 1000").rowcount
    assert updated == n
    assert site.engine.execute("SELECT data->>'leader' FROM tv_group WHERE pk_group = 1000").fetchone() == ("b1500!",)
    assert_oracle(site.engine)


def test_a_foreign_trigger_with_an_engine_triggers_name_is_refused_at_create(db):
    """A table owner planted a no-op trigger named like the engine's before the TVIEW was created:
    create refuses (42710) naming the table and the trigger, and makes nothing."""
    db.execute("CREATE TABLE tb_item (pk_item int PRIMARY KEY, name text)")
    db.execute("CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'")
    db.execute("CREATE TRIGGER tview_after_insert AFTER INSERT ON tb_item FOR EACH STATEMENT EXECUTE FUNCTION noop()")
    refused(db, "SELECT tview.create('item', 'SELECT pk_item, jsonb_build_object(''n'', name) AS data FROM tb_item')",
            None, "42710", "tb_item", "tview_after_insert")
    db.execute("ALTER TRIGGER tview_after_insert ON tb_item RENAME TO mine")
    db.execute("SELECT tview.create('item', 'SELECT pk_item, jsonb_build_object(''n'', name) AS data FROM tb_item')")
    db.execute("INSERT INTO tb_item VALUES (1, 'a')")
    assert db.execute("SELECT count(*) FROM tv_item").fetchone() == (1,)
    assert_oracle(db)


FLAT = """SELECT p.pk_post, p.fk_user, jsonb_build_object('title', p.title, 'author', u.name) AS data
          FROM tb_post p JOIN tb_user u ON u.pk_user = p.fk_user"""


def capture_code(db, table: str) -> str:
    return db.execute("SELECT code FROM tview.capture WHERE source = %s", (table,)).fetchone()[0]


def test_a_tview_over_base_tables_is_refreshed_by_the_capture_itself_while_immediate(db):
    """tv_post reads base tables only: its refresh is called from the capture function directly.
    A TVIEW made over it makes the capture hand tv_post's changed rows to the cascade; deferred
    mode sends tv_post through the cascade; each regenerates the capture code, and every step
    stays exact."""
    db.execute("""CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text);
                  CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int REFERENCES tb_user, title text);
                  INSERT INTO tb_user SELECT g, 'u' || g FROM generate_series(1, 5) g;
                  INSERT INTO tb_post SELECT g, 1 + g % 5, 't' || g FROM generate_series(1, 20) g""")
    db.execute("SELECT tview.create('post', %s)", (FLAT,))
    assert "tview._refresh_" in capture_code(db, "tb_post") and "_queue_readers" not in capture_code(db, "tb_post")

    def writes(n: int) -> None:
        db.execute("UPDATE tb_post SET title = title || '.' WHERE pk_post IN (1, 2, 3)")
        db.execute("UPDATE tb_user SET name = name || '!' WHERE pk_user = %s", (1 + n % 5,))
        db.execute("INSERT INTO tb_post VALUES (%s, 2, 'new')", (100 + n,))
        db.execute("DELETE FROM tb_post WHERE pk_post = %s", (4 + n,))
        assert_oracle(db)

    writes(0)
    db.execute("""SELECT tview.create('user_posts', $$SELECT u.pk_user, jsonb_build_object('posts',
                  coalesce((SELECT jsonb_agg(p.data ORDER BY p.pk_post) FROM tv_post p WHERE p.fk_user = u.pk_user),
                  '[]')) AS data FROM tb_user u$$)""")
    direct, readers = "FROM tview._refresh_", "_queue_readers"
    assert direct in capture_code(db, "tb_post") and readers in capture_code(db, "tb_post")
    writes(1)
    db.execute("SELECT tview.drop('user_posts')")
    assert direct in capture_code(db, "tb_post") and readers not in capture_code(db, "tb_post")
    db.execute("SELECT tview.set_mode('post', 'deferred')")
    assert direct not in capture_code(db, "tb_post")
    with db.transaction():
        db.execute("UPDATE tb_post SET title = 'queued' WHERE pk_post = 1")
        assert db.execute("SELECT data->>'title' FROM tv_post WHERE pk_post = 1").fetchone() != ("queued",)
    assert db.execute("SELECT data->>'title' FROM tv_post WHERE pk_post = 1").fetchone() == ("queued",)
    writes(2)
    db.execute("SELECT tview.set_mode('post', 'immediate')")
    assert direct in capture_code(db, "tb_post")
    writes(3)


def test_errors_and_events_of_a_refresh_made_by_the_capture_itself(db):
    """The direct refresh gives the cascade's error for a duplicate key (23505: the write fails and
    changes nothing) and the same event."""
    db.execute(ORDER_TABLES)
    db.execute("INSERT INTO tb_order VALUES (1, 'a'), (2, 'b'); INSERT INTO tb_line VALUES (1, 1)")
    db.execute("SELECT tview.create('order', %s)", (ORDER_BY_LINE,))
    refused(db, "INSERT INTO tb_line VALUES (2, 1)", None, "23505", "tv_order")
    set_engine(db, log="on")
    db.execute("UPDATE tb_order SET ref = 'c' WHERE pk_order = 2")
    event = db.execute("SELECT payload FROM tview.events ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert {k: event[k] for k in ("tview", "source", "op", "depth", "mode", "rows", "upserted", "keys")} == {
        "tview": "tv_order", "source": "tb_order", "op": "UPDATE", "depth": 0, "mode": "recompute", "rows": 1,
        "upserted": 1, "keys": [2]}
    assert_oracle(db)


def test_a_helper_view_replaced_to_read_another_table_puts_capture_on_it(db):
    """The event trigger rebuilds the TVIEW when its helper view is replaced; a table the new view reads
    for the first time gets the engine's triggers and capture code, a table it no longer reads loses them."""
    db.execute("""CREATE TABLE tb_a (pk_a int PRIMARY KEY, name text);
                  CREATE TABLE tb_b (pk_b int PRIMARY KEY, fk_a int, note text);
                  CREATE TABLE tb_c (pk_c int PRIMARY KEY, fk_a int, note text);
                  INSERT INTO tb_a VALUES (1, 'one'), (2, 'two');
                  INSERT INTO tb_b VALUES (1, 1, 'b1'); INSERT INTO tb_c VALUES (1, 2, 'c1');
                  CREATE VIEW v_helper AS SELECT a.pk_a, a.name,
                      (SELECT string_agg(c.note, ',' ORDER BY c.pk_c) FROM tb_c c WHERE c.fk_a = a.pk_a) AS notes
                      FROM tb_a a""")
    db.execute("SELECT tview.create('a', 'SELECT h.pk_a, jsonb_build_object(''n'', h.name, ''notes'', h.notes) AS data"
               " FROM v_helper h')")
    assert [r[0] for r in db.execute("SELECT source FROM tview.capture ORDER BY 1")] == ["tb_a", "tb_c"]
    db.execute("""CREATE OR REPLACE VIEW v_helper AS SELECT a.pk_a, a.name,
                      (SELECT string_agg(b.note, ',' ORDER BY b.pk_b) FROM tb_b b WHERE b.fk_a = a.pk_a) AS notes
                      FROM tb_a a""")
    assert [r[0] for r in db.execute("SELECT source FROM tview.capture ORDER BY 1")] == ["tb_a", "tb_b"]
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tb_c'::regclass").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tb_b'::regclass").fetchone() == (4,)
    db.execute("INSERT INTO tb_b VALUES (2, 2, 'b2'); UPDATE tb_b SET note = 'B1' WHERE pk_b = 1")
    assert db.execute("SELECT data->>'notes' FROM tv_a ORDER BY pk_a").fetchall() == [("B1",), ("b2",)]
    assert_oracle(db)


@pytest.mark.slow
def test_a_bulk_update_of_a_tview_makes_no_row_images_whether_or_not_another_reads_it(db):
    """A TVIEW column besides data of 6 kB per row (compressed in the table: it costs little to
    store), 50,000 rows changed in one statement: their images would be over 256 MB, more than
    one jsonb value may hold. Nothing reads the TVIEW: no images are made and the update works.
    Once another TVIEW reads it, a small change hands it images, and a change of every row its
    keys: the update works as well, and the reader follows."""
    db.execute("""CREATE TABLE tb_item (pk_item int PRIMARY KEY, n int NOT NULL);
                  INSERT INTO tb_item SELECT g, 0 FROM generate_series(1, 50000) g""")
    db.execute("""SELECT tview.create('item', $$SELECT i.pk_item, repeat('w', 6000) || i.n AS wide,
                  jsonb_build_object('n', i.n) AS data FROM tb_item i$$)""")
    assert db.execute("UPDATE tb_item SET n = n + 1").rowcount == 50000
    assert db.execute("SELECT count(*) FROM tv_item WHERE (data->>'n')::int = 1").fetchone() == (50000,)
    db.execute("""SELECT tview.create('item_card', $$SELECT c.pk_item,
                  jsonb_build_object('wide', length(c.wide), 'n', c.data -> 'n') AS data FROM tv_item c$$)""")
    db.execute("UPDATE tb_item SET n = n + 1 WHERE pk_item <= 10")
    assert db.execute("SELECT count(*) FROM tv_item_card WHERE (data->>'n')::int = 2").fetchone() == (10,)
    assert db.execute("UPDATE tb_item SET n = n + 1").rowcount == 50000
    assert db.execute("SELECT count(*) FROM tv_item_card WHERE (data->>'n')::int = 2").fetchone() == (49990,)
    assert_oracle(db)


def test_a_bulk_change_hands_keys_to_the_readers_a_tview_has_now(db):
    """A bulk change of a TVIEW computes its readers' keys in its own refresh, with their keys
    queries in its code: made again when a reader comes, changes or goes. After one reader and
    the table its keys query joins are dropped, a bulk change works and the other reader follows."""
    db.execute("""CREATE TABLE tb_group (pk_group int PRIMARY KEY, code int UNIQUE, name text);
                  CREATE TABLE tb_item (pk_item int PRIMARY KEY, group_code int, n int NOT NULL);
                  INSERT INTO tb_group SELECT g, 100 + g, 'g' || g FROM generate_series(1, 10) g;
                  INSERT INTO tb_item SELECT g, 101 + g % 10, 0 FROM generate_series(1, 300) g""")
    db.execute("""SELECT tview.create('item', $$SELECT i.pk_item, i.group_code,
                  jsonb_build_object('n', i.n) AS data FROM tb_item i$$)""")
    db.execute("UPDATE tb_item SET n = n + 1")
    db.execute("""SELECT tview.create('item_card', $$SELECT i.pk_item, jsonb_build_object('n', i.data -> 'n') AS data
                  FROM tv_item i$$)""")
    # fk lineage: the keys query looks each item's group up in tb_group
    db.execute("""SELECT tview.create('group_total', $$SELECT g.pk_group, jsonb_build_object('name', g.name,
                  'total', (SELECT sum((i.data ->> 'n')::int) FROM tv_item i WHERE i.group_code = g.code)) AS data
                  FROM tb_group g$$)""")
    assert "tb_group" in refresh_code(db, "item")
    db.execute("UPDATE tb_item SET n = n + 1, group_code = 101 + (group_code + 1) % 10 WHERE pk_item > 50")
    db.execute("DELETE FROM tb_item WHERE pk_item % 7 = 0")
    assert_oracle(db)
    db.execute("""SELECT tview.alter('group_total', $$SELECT g.pk_group, jsonb_build_object('name', g.name,
                  'items', (SELECT count(*) FROM tv_item i WHERE i.group_code = g.code)) AS data
                  FROM tb_group g$$)""")
    db.execute("UPDATE tb_item SET group_code = 101 WHERE pk_item > 100")
    assert db.execute("SELECT (data ->> 'items')::int FROM tv_group_total WHERE pk_group = 1").fetchone() \
        == db.execute("SELECT count(*) FROM tb_item WHERE group_code = 101").fetchone() == (181,)
    assert_oracle(db)
    db.execute("SELECT tview.drop('group_total')")
    assert "tb_group" not in refresh_code(db, "item")
    db.execute("DROP TABLE tb_group")
    db.execute("UPDATE tb_item SET n = n + 1")
    assert_oracle(db)


def refresh_code(db, name: str) -> str:
    """The code of a TVIEW's generated refresh function."""
    return db.execute("SELECT p.prosrc FROM pg_proc p JOIN tview.tviews t ON p.proname = '_refresh_' || t.id"
                      " WHERE t.name = %s", (name,)).fetchone()[0]


def test_a_bulk_change_whose_vanished_rows_leave_one_key_still_hands_it_on(db):
    """tv_item is deferred: one transaction deletes 100 of its root rows and updates another. At
    the commit its refresh gets 101 keys (a bulk change, handing keys on); the 100 vanished rows are
    deleted first, and the one key left is refreshed with the bulk statement, not the one-row one:
    its reader follows both."""
    db.execute("""CREATE TABLE tb_item (pk_item int PRIMARY KEY, n int NOT NULL);
                  INSERT INTO tb_item SELECT g, 0 FROM generate_series(1, 200) g""")
    db.execute("""SELECT tview.create('item', $$SELECT i.pk_item, jsonb_build_object('n', i.n) AS data
                  FROM tb_item i$$, 'deferred')""")
    db.execute("""SELECT tview.create('item_card', $$SELECT c.pk_item, jsonb_build_object('n', c.data -> 'n') AS data
                  FROM tv_item c$$)""")
    with db.transaction():
        db.execute("DELETE FROM tb_item WHERE pk_item <= 100")
        db.execute("UPDATE tb_item SET n = 5 WHERE pk_item = 150")
    assert db.execute("SELECT data ->> 'n' FROM tv_item_card WHERE pk_item = 150").fetchone() == ("5",)
    assert db.execute("SELECT count(*) FROM tv_item_card").fetchone() == (100,)
    assert_oracle(db)


def test_a_bulk_write_that_changes_no_row_of_a_tview_touches_none_of_its_readers(db):
    """200 rows updated in a column tv_item does not read: its refresh changes nothing, so the
    TVIEW reading it (refreshed whole on any change: no keys query) is not refreshed at all."""
    db.execute("""CREATE TABLE tb_item (pk_item int PRIMARY KEY, n int NOT NULL, other int);
                  INSERT INTO tb_item SELECT g, 0, 0 FROM generate_series(1, 200) g;
                  CREATE TABLE tb_one (pk_one int PRIMARY KEY); INSERT INTO tb_one VALUES (1)""")
    db.execute("""SELECT tview.create('item', $$SELECT i.pk_item, jsonb_build_object('n', i.n) AS data
                  FROM tb_item i$$)""")
    db.execute("""SELECT tview.create('total', $$SELECT o.pk_one, jsonb_build_object('s',
                  (SELECT sum((c.data ->> 'n')::int) FROM tv_item c)) AS data FROM tb_one o$$)""")
    set_engine(db, log="on")
    db.execute("UPDATE tb_item SET other = other + 1")
    db.execute("UPDATE tb_item SET other = other + 1 WHERE pk_item = 1")
    assert [r[0] for r in db.execute("SELECT payload ->> 'tview' FROM tview.events ORDER BY id")] == ["tv_item", "tv_item"]
    db.execute("UPDATE tb_item SET n = 1")
    assert db.execute("SELECT data ->> 's' FROM tv_total").fetchone() == ("200",)
    assert_oracle(db)


def test_creating_a_tview_waits_for_an_open_write_to_a_tview_it_reads(db, dsn):
    """A transaction has changed tv_item and not committed; a TVIEW made over tv_item meanwhile
    would fill from rows without that change, and the change's cascade, already run, did not know
    the new TVIEW. The create waits for the writer instead, and starts exact."""
    db.execute("""CREATE TABLE tb_item (pk_item int PRIMARY KEY, n int NOT NULL);
                  INSERT INTO tb_item SELECT g, 0 FROM generate_series(1, 10) g""")
    db.execute("""SELECT tview.create('item', $$SELECT i.pk_item, jsonb_build_object('n', i.n) AS data
                  FROM tb_item i$$)""")
    two_writers(dsn, "UPDATE tb_item SET n = 7 WHERE pk_item <= 3",
                """SELECT tview.create('item_card', $$SELECT c.pk_item, jsonb_build_object('n', c.data -> 'n') AS data
                   FROM tv_item c$$)""", must_wait=True)
    assert db.execute("SELECT count(*) FROM tv_item_card WHERE data ->> 'n' = '7'").fetchone() == (3,)
    assert_oracle(db)
