"""pg_upgrade from the distribution's PostgreSQL 15 to the embedded one: the TVIEWs keep working on
the new cluster (pg_upgrade keeps relation oids, which the catalog refers to)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tview_tui import demo, installer
from tview_tui.embedded import TemporaryServer, free_port

from oracle import assert_oracle

pytestmark = [pytest.mark.engine, pytest.mark.slow]

OLD_BIN = Path("/usr/lib/postgresql/15/bin")


def test_tviews_keep_working_after_pg_upgrade_from_15():
    if not (OLD_BIN / "postgres").exists():
        pytest.skip("no PostgreSQL 15 server binaries here")
    old, new = TemporaryServer(bin_dir=OLD_BIN), TemporaryServer()
    try:
        if old.version().split()[-1].split(".")[0] == new.version().split()[-1].split(".")[0]:
            pytest.skip("the embedded PostgreSQL is version 15 too")
        old.start()
        with psycopg.connect(old.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE blog")
        with psycopg.connect(old.dsn("blog"), autocommit=True) as conn:
            installer.install(conn)
            demo.setup(conn)
            conn.execute("SELECT tview.set_mode('comment', 'deferred')")
            conn.execute("UPDATE tb_company SET name = 'before the upgrade' WHERE pk_company = 1")
            before = {name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                      for (name,) in conn.execute("SELECT format('%I.%I', schema_name, 'tv_' || name)"
                                                  " FROM tview.tviews")}
        old.stop()
        new.init("--no-data-checksums")                 # as the old cluster (15's initdb default)
        new.run_program("pg_upgrade", "-b", str(old.bin_dir), "-B", str(new.bin_dir), "-d", str(old.data_dir),
                        "-D", str(new.data_dir), "-U", "postgres", "-p", str(old.port), "-P", str(free_port()))
        new.start()
        with psycopg.connect(new.dsn("blog"), autocommit=True) as conn:
            assert conn.info.server_version // 10000 > 15
            assert {name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0] for name in before} == before
            assert_oracle(conn)
            assert conn.execute("SELECT count(*) FROM tview.health() WHERE severity = 'error'").fetchone()[0] == 0
            conn.execute("UPDATE tb_company SET name = 'after the upgrade' WHERE pk_company = 1")
            conn.execute("UPDATE tb_user SET name = 'renamed after' WHERE pk_user = 1")
            conn.execute("DELETE FROM tb_comment WHERE pk_comment = 1")
            assert_oracle(conn)
            assert conn.execute("SELECT count(*) FROM tview.verify('post')").fetchone()[0] == 0
    finally:
        old.cleanup()
        new.cleanup()
