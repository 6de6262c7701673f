"""A hot standby (SPEC section 3, Lifecycle): tv_* tables reach a physical replica like any table,
and the app and `tview-tui tail` work there, read-only, taking events from the replicated log
(a standby refuses LISTEN and every write).

The standby is real: pg_basebackup of this module's own server, started on another port with
standby.signal, streaming from it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from test_events import eventually

from tview_tui import events, installer
from tview_tui.config import Config
from tview_tui.connection import Target
from tview_tui.embedded import TemporaryServer, free_port
from tview_tui.ui.app import TviewApp

pytestmark = pytest.mark.slow

SCHEMA = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text NOT NULL);
INSERT INTO tb_user SELECT g, 'u' || g FROM generate_series(1, 5) g;
SELECT tview.create('user', $$ SELECT u.pk_user, jsonb_build_object('name', u.name) AS data FROM tb_user u $$);
"""


@dataclass
class Pair:
    primary: str      # DSNs of the two servers' database with the engine (and the log on)
    standby: str
    quiet_standby: str  # the same on a database whose log is off


def wait_until(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout:g} s")
        time.sleep(0.1)


def database(admin: str, log: bool) -> str:
    name = f"tview_standby_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(admin, dbname=name)
    with psycopg.connect(dsn) as conn:
        installer.install(conn)
        conn.execute(SCHEMA)
        if log:
            conn.execute(sql.SQL("ALTER DATABASE {} SET tview.log = on").format(sql.Identifier(name)))
    return dsn


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    primary = TemporaryServer()
    standby = TemporaryServer()
    try:
        primary.start()
        logged, quiet = database(primary.dsn(), log=True), database(primary.dsn(), log=False)
        standby._make_data_dir()
        standby.data_dir.chmod(0o700)                # as initdb makes it; pg_basebackup keeps what it finds
        standby.run_program("pg_basebackup", "-D", str(standby.data_dir), "-d", primary.dsn(),
                     "--write-recovery-conf", "--wal-method=stream", "--checkpoint=fast")
        standby.port = free_port()
        standby.start()
        on_standby = [make_conninfo(dsn, port=standby.port) for dsn in (logged, quiet)]
        with psycopg.connect(on_standby[0], autocommit=True) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        yield Pair(logged, *on_standby)
    finally:
        standby.cleanup()
        primary.cleanup()


def replayed(pair: Pair, name: str) -> bool:
    with psycopg.connect(pair.standby, autocommit=True) as conn:
        return conn.execute("SELECT data->>'name' FROM tv_user WHERE pk_user = 1").fetchone() == (name,)


def rename(pair: Pair, name: str) -> None:
    with psycopg.connect(pair.primary, autocommit=True) as conn:
        conn.execute("UPDATE tb_user SET name = %s WHERE pk_user = 1", (name,))


def test_tviews_reach_the_standby_and_its_stream_polls_the_log(pair):
    """The stream sees a standby, polls the replicated log instead of retrying LISTEN, and hands
    out the events of writes on the primary."""
    stream = events.EventStream(pair.standby, poll_interval=0.1)

    async def run() -> list[events.Event]:
        found: list[events.Event] = []
        try:
            async with asyncio.timeout(30):
                async for batch in stream.batches():
                    assert stream.standby and stream.polling and stream.connected
                    found += [item for item in batch if isinstance(item, events.Event)]
                    if any(e.source == "tb_user" for e in found):
                        return found
                    raise AssertionError(f"not an event of the write: {batch}")
        finally:
            await stream.close()
        return found

    async def write_soon() -> None:
        await eventually(lambda: stream.connected, "the stream polling")   # it has read where the log ends
        await asyncio.to_thread(rename, pair, "from the primary")

    async def both() -> list[events.Event]:
        found, _ = await asyncio.gather(run(), write_soon())
        return found

    found = asyncio.run(both())
    assert [(e.name, e.op, e.rows) for e in found] == [("public.tv_user", "UPDATE", 1)]
    wait_until(lambda: replayed(pair, "from the primary"), what="the rename replayed")


def tail(dsn: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tview_tui", "tail", dsn, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_tail_on_a_standby_prints_the_primarys_events(pair):
    proc = tail(pair.standby, "--json")
    try:
        assert proc.stderr is not None and proc.stdout is not None
        assert "a hot standby: polling the log" in proc.stderr.readline()
        rename(pair, "tailed")
        line = proc.stdout.readline()
        assert '"tview": "tv_user"' in line and '"source": "tb_user"' in line
    finally:
        proc.kill()
        proc.wait()


def test_tail_on_a_standby_whose_log_is_off_says_so_at_once(pair):
    result = subprocess.run([sys.executable, "-m", "tview_tui", "tail", pair.quiet_standby],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "the event log is off" in result.stderr and "standby refuses LISTEN" in result.stderr
    assert "Traceback" not in result.stderr


async def test_the_app_opens_a_standby_read_only_with_events_from_the_log(pair):
    app = TviewApp(Target(pair.standby), config=Config(path=None, refresh_interval=0.5))
    async with app.run_test(size=(150, 40)) as pilot:
        deadline = time.monotonic() + 30
        while not (app.standby and app.tviews and app.stream is not None and app.stream.connected):
            assert time.monotonic() < deadline, app.status
            await pilot.pause(0.1)
        assert app.read_only and not app.can_write
        assert "[standby, read-only]" in app.sub_title
        seq = app.event_seq
        await asyncio.to_thread(rename, pair, "seen by the app")
        while not any(isinstance(i, events.Event) and i.source == "tb_user" for _, i in app.events_since(seq)):
            assert time.monotonic() < deadline + 30, app.status
            await pilot.pause(0.1)
        assert "events: from the log (standby)" in app.status and "standby, read-only" in app.status
        await pilot.press("r")                       # refresh: refused, the app is read-only
        await pilot.pause(0.2)
        assert any("read-only" in n.message for n in app._notifications)
