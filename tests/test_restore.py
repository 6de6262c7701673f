"""pg_dump and pg_restore (the server's own, of its major version) of a database with TVIEWs: the
restored database says loudly that it must be relinked (or, for one schema restored alone, that
its TVIEWs must be adopted), `check --fix` does it, and then every write reaches its TVIEWs again."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tview_tui import installer

from engine_helpers import USER_POST_TVIEWS, server_tools
from oracle import assert_oracle

pytestmark = pytest.mark.engine

BLOG = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int REFERENCES tb_user, title text);
INSERT INTO tb_user SELECT g, 'user ' || g FROM generate_series(1, 5) g;
INSERT INTO tb_post SELECT g, 1 + g % 5, 'post ' || g FROM generate_series(1, 12) g;
""" + USER_POST_TVIEWS


def tool(bin_dir: Path, name: str, *args: str) -> None:
    result = subprocess.run([str(bin_dir / name), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{name} failed: {result.stderr}"


@pytest.fixture
def blog(db):
    db.execute(BLOG)
    return db


def assert_relinked_and_followed(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        # before the relink: loud, never silently stale
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as info:
            conn.execute("UPDATE tb_user SET name = 'too early' WHERE pk_user = 1")
        assert "tview.relink()" in info.value.diag.message_hint
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            conn.execute("SELECT tview.refresh('post')")
        assert conn.execute("SELECT check_name, fix FROM tview.health()").fetchall() == [
            ("catalog_moved", "SELECT tview.relink()")]
        assert_oracle(conn)                                   # the rows came with the dump
    check = subprocess.run([sys.executable, "-m", "tview_tui", "check", dsn, "--fix", "--yes"],
                           capture_output=True, text=True, timeout=120)
    assert "relinked 3 TVIEW(s) by name" in check.stdout, check.stdout + check.stderr
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM tview.health() WHERE severity = 'error'").fetchone()[0] == 0
        assert conn.execute("SELECT tview.relink()").fetchone()[0].startswith("nothing to relink")
        conn.execute("UPDATE tb_user SET name = 'RENAMED' WHERE pk_user = 1")
        conn.execute("INSERT INTO tb_post VALUES (100, 1, 'after the restore')")
        with conn.transaction():
            conn.execute("DELETE FROM tb_post WHERE pk_post = 5")
        assert conn.execute("SELECT data->'author'->>'name' FROM tv_post WHERE pk_post = 100").fetchone()[0] == "RENAMED"
        assert conn.execute("SELECT count(*) FROM tview.verify('post')").fetchone()[0] == 0
        assert_oracle(conn)
        # nothing of the old oids is left: every engine trigger calls its own table's capture function
        stale = conn.execute(
            "SELECT count(*) FROM pg_trigger g JOIN pg_proc p ON p.oid = g.tgfoid"
            " WHERE p.pronamespace = 'tview'::regnamespace AND p.proname LIKE '\\_capture\\_%'"
            " AND p.proname <> '_capture_' || g.tgrelid::oid::text").fetchone()[0]
        assert stale == 0
        captures = conn.execute("SELECT proname, (SELECT count(*) FROM pg_class c WHERE c.oid = substr(proname, 10)::oid)"
                                " FROM pg_proc WHERE pronamespace = 'tview'::regnamespace AND proname ~ '^_capture_[0-9]+$'").fetchall()
        assert len(captures) == 2, (captures, conn.execute("SELECT source_oid FROM tview.dependencies").fetchall())


@pytest.mark.parametrize("how", ["custom", "schema then data"])
def test_a_restored_database_is_relinked_by_check_fix(blog, dsn, empty_dsn, tmp_path, how):
    tools = server_tools(blog)
    dump = tmp_path / "blog.dump"
    tool(tools, "pg_dump", "-Fc", "-f", str(dump), "-d", dsn)
    if how == "custom":
        tool(tools, "pg_restore", "-d", empty_dsn, str(dump))
    else:
        tool(tools, "pg_restore", "--schema-only", "-d", empty_dsn, str(dump))
        tool(tools, "pg_restore", "--data-only", "--disable-triggers", "-d", empty_dsn, str(dump))
    assert_relinked_and_followed(empty_dsn)


def test_a_plain_dump_through_psql_is_relinked_too(blog, dsn, empty_dsn, tmp_path):
    tools = server_tools(blog)
    psql = tools / "psql" if (tools / "psql").exists() else shutil.which("psql")
    if psql is None:
        pytest.skip("no psql here")
    dump = tmp_path / "blog.sql"
    tool(tools, "pg_dump", "-Fp", "-f", str(dump), "-d", dsn)
    result = subprocess.run([str(psql), "-v", "ON_ERROR_STOP=1", "-q", "-d", empty_dsn, "-f", str(dump)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert_relinked_and_followed(empty_dsn)


SHOP = """
CREATE SCHEMA shop;
CREATE TABLE shop.tb_customer (pk_customer int PRIMARY KEY, name text NOT NULL);
CREATE TABLE shop.tb_order (pk_order int PRIMARY KEY, fk_customer int NOT NULL REFERENCES shop.tb_customer, total int);
INSERT INTO shop.tb_customer SELECT g, 'customer ' || g FROM generate_series(1, 4) g;
INSERT INTO shop.tb_order SELECT g, 1 + g % 4, 10 * g FROM generate_series(1, 10) g;
SET search_path = shop;
SELECT tview.create('customer', $$SELECT c.pk_customer, jsonb_build_object('name', c.name) AS data
                                  FROM shop.tb_customer c$$);
SELECT tview.create('order', $$SELECT o.pk_order, o.fk_customer,
                                      jsonb_build_object('total', o.total, 'customer', c.data) AS data
                               FROM shop.tb_order o JOIN shop.tv_customer c ON c.pk_customer = o.fk_customer$$);
RESET search_path;
"""


def test_one_schema_restored_into_another_database_is_adopted_by_check_fix(blog, dsn, other_empty_dsn, tmp_path):
    """pg_dump -n of one schema carries its TVIEWs' tables and views, not the engine's catalog nor
    the capture code its triggers call: those triggers fail to restore, the restored TVIEWs are
    reported, and check --fix adopts them, bringing them up to date (customer 1 and its 2 orders,
    renamed after the restore)."""
    blog.execute(SHOP)
    tools = server_tools(blog)
    dump = tmp_path / "shop.dump"
    tool(tools, "pg_dump", "-Fc", "-n", "shop", "-f", str(dump), "-d", dsn)
    with psycopg.connect(other_empty_dsn, autocommit=True) as conn:
        installer.install(conn)
    restore = subprocess.run([str(tools / "pg_restore"), "-d", other_empty_dsn, str(dump)],
                             capture_output=True, text=True, timeout=120)
    failed = [line for line in restore.stderr.splitlines() if "ERROR:" in line]
    assert failed and all("function tview._capture_" in line and "does not exist" in line for line in failed), \
        restore.stderr
    with psycopg.connect(other_empty_dsn, autocommit=True) as conn:
        conn.execute("UPDATE shop.tb_customer SET name = 'renamed before adoption' WHERE pk_customer = 1")
        findings = conn.execute("SELECT check_name, tview, fix FROM tview.health() WHERE severity = 'error'").fetchall()
    assert sorted(findings) == [("restored_tview", "shop.tv_customer", "SELECT tview.adopt()"),
                                ("restored_tview", "shop.tv_order", "SELECT tview.adopt()")]
    check = subprocess.run([sys.executable, "-m", "tview_tui", "check", other_empty_dsn, "--fix", "--yes"],
                           capture_output=True, text=True, timeout=120)
    assert "adopted 2 TVIEW(s): shop.tv_customer, shop.tv_order; 3 row(s) brought up to date" in check.stdout, \
        check.stdout + check.stderr
    with psycopg.connect(other_empty_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM tview.health() WHERE severity = 'error'").fetchone()[0] == 0
        assert conn.execute("SELECT tview.adopt()").fetchone()[0].startswith("nothing to adopt")
        assert_oracle(conn)
        conn.execute("UPDATE shop.tb_customer SET name = 'renamed after' WHERE pk_customer = 2")
        conn.execute("INSERT INTO shop.tb_order VALUES (11, 2, 110)")
        assert conn.execute("SELECT data->'customer'->>'name' FROM shop.tv_order WHERE pk_order = 11"
                            ).fetchone() == ("renamed after",)
        assert_oracle(conn)
