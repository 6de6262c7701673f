"""Faults: a server restart under load, writers killed mid-transaction, event consumers cut off.

These tests stop and start their own embedded server (never the session's), so they run
the same with or without TVIEW_TEST_DSN.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from tview_tui import catalog, scratch
from tview_tui.config import Config
from tview_tui.connection import Target
from tview_tui.embedded import TemporaryServer
from tview_tui.events import Event, EventStream, Gap
from tview_tui.tools import soak
from tview_tui.ui.app import TviewApp

# One worker runs them all, one after the other, on the module's server (which they stop and restart).
pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("faults")]

# A deferred TVIEW next to the blog: every committed entry must be in it after a crash.
LEDGER = """
CREATE TABLE tb_ledger (pk_ledger bigint PRIMARY KEY, note text NOT NULL);
SELECT tview.create('ledger', 'SELECT pk_ledger, jsonb_build_object(''note'', note) AS data FROM tb_ledger',
                    'deferred');
"""

# A transaction writing at every level: a company rename cascading through four immediate
# levels, rows queued for the deferred comment, post_card and ledger TVIEWs, a post edit.
VICTIM_WRITES = [
    "UPDATE tb_company SET name = 'victim' WHERE pk_company = 1",
    "INSERT INTO tb_comment (pk_comment, fk_post, fk_user, body) VALUES (99001, 1, 1, 'victim')",
    "INSERT INTO tb_ledger VALUES (99001, 'victim')",
    "UPDATE tb_post SET title = 'victim' WHERE pk_post = 1",
]

VICTIM_CLIENT = """
import json, sys, time
import psycopg
conn = psycopg.connect(sys.argv[1], application_name="fault victim")
for statement in json.loads(sys.argv[2]):
    conn.execute(statement)
print(conn.info.backend_pid, flush=True)
time.sleep(120)
"""


@pytest.fixture(scope="module")
def server() -> Iterator[TemporaryServer]:
    """This module's own server, restarted by its tests."""
    own = TemporaryServer()
    own.start()
    try:
        yield own
    finally:
        own.cleanup()


@pytest.fixture
def blog_dsn(server) -> Iterator[str]:
    """A database on the module's server with the soak's blog (two deferred TVIEWs) and the ledger."""
    server.start()                                     # a failed test may have left it stopped
    with scratch.database(server.dsn(), lambda _: None) as dsn:
        with psycopg.connect(dsn) as conn:
            soak.prepare(conn)
            conn.execute(LEDGER)
            conn.execute(sql.SQL("ALTER DATABASE {} SET tview.log = on").format(sql.Identifier(conn.info.dbname)))
        yield dsn


def wait_until(condition: Callable[[], object], timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout:g} s")
        time.sleep(0.05)
    return result


def scalar(dsn: str, query: str, params=()) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchone()[0]


def assert_consistent(dsn: str) -> None:
    """The oracle over every TVIEW, and nothing left in the deferred queue."""
    with psycopg.connect(dsn) as conn:
        drift = {name: rows for name, rows in catalog.verify_all(conn).items() if rows}
        assert drift == {}
        assert conn.execute("SELECT (SELECT count(*) FROM tview.queue) + (SELECT count(*) FROM tview.pending)"
                            ).fetchone()[0] == 0


def write(dsn: str, statement: str) -> str:
    """Commit one statement; return its transaction id (as events carry it)."""
    with psycopg.connect(dsn) as conn:
        conn.execute(statement)
        return conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0]


def terminate(dsn: str, application_name: str) -> int:
    return scalar(dsn, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                       " WHERE datname = current_database() AND application_name = %s", (application_name,))


# -- a: restart under load ------------------------------------------------------------------

class Ledger(threading.Thread):
    """Commits ledger entries one per transaction (synchronous commit: a commit the client saw
    survives a crash) and records those whose COMMIT returned."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn, self.committed, self.lost_connections = dsn, [], 0
        self.stop = threading.Event()

    def run(self) -> None:
        keys, conn = itertools.count(1), None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.dsn, connect_timeout=2)
                    conn.execute("SET synchronous_commit = on")
                key = next(keys)
                conn.execute("INSERT INTO tb_ledger VALUES (%s, 'entry')", (key,))
                conn.commit()
                self.committed.append(key)
            except psycopg.OperationalError:
                self.lost_connections += 1
                conn = None
                self.stop.wait(0.2)


def test_server_crash_mid_load_keeps_every_tview_and_every_commit(server, blog_dsn):
    load = soak.WriteLoad(blog_dsn, writers=1, seed=11)     # one random writer: see test_soak's rename race
    ledger = Ledger(blog_dsn)
    load.start()
    ledger.start()
    try:
        wait_until(lambda: load.stats.commits >= 20 and len(ledger.committed) >= 20, what="commits before the crash")
        # the queue is transaction-local: another session never sees a row of it, even under load
        assert scalar(blog_dsn, "SELECT count(*) FROM tview.queue") == 0
        server.stop(mode="immediate")                          # a crash: recovery replays the WAL
        before = (load.stats.commits, len(ledger.committed))
        server.start()
        wait_until(lambda: load.stats.commits > before[0] + 10 and len(ledger.committed) > before[1] + 10,
                   what="commits after the restart")
    finally:
        load.stop()
        ledger.stop.set()
        ledger.join(10)
    assert load.stats.connection_errors > 0 and ledger.lost_connections > 0   # they did see the crash
    assert load.stats.errors == 0, load.stats.error_samples
    assert_consistent(blog_dsn)
    with psycopg.connect(blog_dsn) as conn:
        kept = {r[0] for r in conn.execute("SELECT pk_ledger FROM tv_ledger")}
    assert set(ledger.committed) <= kept


# -- b: a writer killed mid-transaction ---------------------------------------------------

def start_victim(dsn: str, how: str) -> tuple[int, Callable[[], None]]:
    """A client holding a transaction open after VICTIM_WRITES; returns its backend pid and a killer."""
    if how == "terminate":
        conn = psycopg.connect(dsn, application_name="fault victim")
        for statement in VICTIM_WRITES:
            conn.execute(statement)
        return conn.info.backend_pid, lambda: terminate(dsn, "fault victim") and conn.close()  # keeps conn open
    proc = subprocess.Popen([sys.executable, "-c", VICTIM_CLIENT, dsn, json.dumps(VICTIM_WRITES)],
                            stdout=subprocess.PIPE, text=True)
    pid = int(proc.stdout.readline())

    def kill() -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    return pid, kill


@pytest.mark.parametrize("how", ["terminate", "sigkill"])
def test_writer_killed_mid_transaction_leaves_nothing_behind(blog_dsn, how):
    pid, kill = start_victim(blog_dsn, how)
    assert scalar(blog_dsn, "SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'transactionid'", (pid,))
    kill()
    wait_until(lambda: not scalar(blog_dsn, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)),
               what="the victim's backend to end")
    assert scalar(blog_dsn, "SELECT count(*) FROM pg_locks WHERE pid = %s", (pid,)) == 0
    assert scalar(blog_dsn, "SELECT name FROM tb_company WHERE pk_company = 1") != "victim"
    assert_consistent(blog_dsn)
    with psycopg.connect(blog_dsn) as conn:                   # the same rows, written again, do not wait
        conn.execute("SET lock_timeout = '2s'")
        for statement in VICTIM_WRITES:
            conn.execute(statement)
    assert scalar(blog_dsn, "SELECT data->>'note' FROM tv_ledger WHERE pk_ledger = 99001") == "victim"
    assert_consistent(blog_dsn)


# -- c: event consumers cut off -----------------------------------------------------------

async def test_event_streams_reconnect_after_termination_and_restart(server, blog_dsn):
    """Both modes report each gap and recover the events committed while away from the log: polling
    resumes after the last log id it read, listening reads the log from before the gap began."""
    streams = {mode: EventStream(Target(blog_dsn, application_name=f"fault {mode}"), poll=mode == "poll",
                                 poll_interval=0.1, max_backoff=0.5) for mode in ("listen", "poll")}
    items: dict[str, list] = {mode: [] for mode in streams}

    async def consume(mode: str) -> None:
        async for batch in streams[mode].batches():
            items[mode].extend(batch)

    def xids(mode: str) -> set[str]:
        return {i.xid for i in items[mode] if isinstance(i, Event)}

    def state() -> str:
        """What each stream has, for a failure to say which one missed what."""
        return "; ".join(f"{mode}: connected={s.connected} reconnects={s.reconnects} xids={sorted(xids(mode))}"
                         for mode, s in streams.items())

    async def until(condition, what: str) -> None:
        deadline = time.monotonic() + 20
        while not condition():
            assert time.monotonic() < deadline, f"{what} not reached ({state()})"
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(consume(mode)) for mode in streams]
    try:
        await until(lambda: all(s.connected for s in streams.values()), "streams connected")
        first = write(blog_dsn, "UPDATE tb_company SET name = 'one' WHERE pk_company = 2")
        await until(lambda: all(first in xids(m) for m in streams), "first event")

        assert terminate(blog_dsn, "fault listen") == 1 and terminate(blog_dsn, "fault poll") == 1
        during_kill = write(blog_dsn, "UPDATE tb_company SET name = 'two' WHERE pk_company = 2")
        await until(lambda: all(s.reconnects >= 1 for s in streams.values()), "reconnected after termination")
        after_kill = write(blog_dsn, "UPDATE tb_company SET name = 'three' WHERE pk_company = 2")

        await asyncio.to_thread(server.stop, "fast")
        await asyncio.to_thread(server.start)
        during_restart = write(blog_dsn, "UPDATE tb_company SET name = 'four' WHERE pk_company = 2")
        await until(lambda: all(s.reconnects >= 2 for s in streams.values()), "reconnected after restart")
        after_restart = write(blog_dsn, "UPDATE tb_company SET name = 'five' WHERE pk_company = 2")
        await until(lambda: all({after_kill, after_restart} <= xids(m) for m in streams),
                    f"events after gaps {after_kill} {after_restart}")
        await until(lambda: all({during_kill, during_restart} <= xids(m) for m in streams),
                    f"events of the gaps {during_kill} {during_restart}")
    finally:
        for stream in streams.values():
            stream.stop()
        await asyncio.gather(*tasks)
    for mode in streams:
        assert sum(isinstance(i, Gap) for i in items[mode]) == streams[mode].reconnects >= 2
    with psycopg.connect(blog_dsn) as conn:
        logged = {r[0] for r in conn.execute("SELECT id FROM tview.events")}
    assert {i.log_id for i in items["poll"] if isinstance(i, Event)} == logged      # nothing lost, nothing twice
    assert len([i for i in items["poll"] if isinstance(i, Event)]) == len(logged)
    listened = [(i.pid, i.xid, i.tview, i.ts) for i in items["listen"] if isinstance(i, Event)]
    assert len(listened) == len(set(listened)) == len(logged)                     # the same, listening


def test_tail_cli_survives_a_terminated_backend(blog_dsn):
    proc = subprocess.Popen([sys.executable, "-m", "tview_tui", "tail", blog_dsn, "--json", "--tview", "company"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PGAPPNAME": "fault tail"})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    listening = "SELECT count(*) FROM tview.listeners WHERE application_name = 'fault tail'"
    try:
        wait_until(lambda: scalar(blog_dsn, listening), what="tail listening")
        first = write(blog_dsn, "UPDATE tb_company SET name = 'tailed' WHERE pk_company = 3")
        assert json.loads(lines.get(timeout=10))["xid"] == first
        assert terminate(blog_dsn, "fault tail") == 1
        # written while the tail may still be away: with the log on, it arrives either way
        second = write(blog_dsn, "UPDATE tb_company SET name = 'tailed again' WHERE pk_company = 3")
        assert json.loads(lines.get(timeout=10))["xid"] == second
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "-- disconnected" in err and "the events in between follow, from the log" in err
    assert "Traceback" not in err


async def test_app_shows_the_outage_and_recovers_after_a_restart(server, blog_dsn):
    app = TviewApp(Target(blog_dsn), config=Config(path=None, refresh_interval=0.3))
    async with app.run_test(size=(150, 40)) as pilot:
        async def until(condition, what: str) -> None:
            deadline = time.monotonic() + 20
            while not condition():
                assert time.monotonic() < deadline, f"{what} not reached: {app.status}"
                await pilot.pause(0.1)

        await until(lambda: app.connected and app.stream is not None and app.stream.connected, "connected")
        await asyncio.to_thread(server.stop, "fast")
        await until(lambda: app.status.startswith("disconnected:"), "the outage shown")
        assert not app.connected
        await asyncio.to_thread(server.start)
        await until(lambda: app.connected and app.stream.connected and "1 reconnect(s)" in app.status, "recovery")
        assert app.status.startswith("connected")
        seen = app.stats.get("public.tv_company").count if app.stats.get("public.tv_company") else 0
        await asyncio.to_thread(write, blog_dsn, "UPDATE tb_company SET name = 'after restart' WHERE pk_company = 4")
        await until(lambda: app.stats.get("public.tv_company") and app.stats.get("public.tv_company").count > seen,
                    "an event after the restart")
