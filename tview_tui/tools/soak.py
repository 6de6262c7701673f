"""`tview-tui soak`: a bounded concurrent random write load, tailed like the app tails it.

Writers run random transactions on the demo blog (inserts, updates and deletes at every
level, company renames that cascade through four levels, savepoints rolled back or released,
whole transactions rolled back), all under one isolation level or the writers spread over the
three (--isolation mixed), retrying serialization failures and deadlocks. Two TVIEWs
(comment, post_card) are deferred, so commit-time flushes run too. Meanwhile an EventStream
tails the events in its own thread and event loop, keeping rolling statistics and a bounded
buffer as the app does.

At the end: the oracle (tview.verify) over every row of every TVIEW, the events received
against the events logged, and the memory of this process (writers and tail) over the run.
Exit status: 0 when nothing drifted, something committed, no writer failed unexpectedly and
no event was lost; 1 otherwise; 2 when the soak cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import IsolationLevel, sql

from .. import catalog, demo, events, scratch
from ..connection import Target, TviewError, connect, error_from_db, one
from .memory import memory_kb

DEADLOCK = "40P01"
RETRYABLE = {"40001", DEADLOCK}      # serialization failure, deadlock: the transaction is retried
CONFLICTS = {"23503"}                # a row a random write picked was deleted meanwhile by another writer
# The isolation level of each writer, round robin.
ISOLATION_LEVELS = {
    "read-committed": (IsolationLevel.READ_COMMITTED,),
    "repeatable-read": (IsolationLevel.REPEATABLE_READ,),
    "serializable": (IsolationLevel.SERIALIZABLE,),
    "mixed": (IsolationLevel.READ_COMMITTED, IsolationLevel.REPEATABLE_READ, IsolationLevel.SERIALIZABLE),
}
MAX_ERROR_SAMPLES = 20
RETRY_PAUSE_MAX = 0.05               # seconds
# Deferred TVIEWs: comment (flushed at commit into post, which patches it in) and post_card.
DEFERRED_TVIEWS = ("comment", "post_card")
# Every event of the run is kept in the log so that received can be compared with logged: set for the
# scratch database (the engine reads its settings there, not from the writers' sessions).
DATABASE_SETTINGS = {"log": "on", "log_max": "1000000000"}
SESSION_SETTINGS: tuple[str, ...] = ()

Transaction = Callable[[psycopg.Connection, random.Random], bool]


# -- the write load ---------------------------------------------------------------------

@dataclass
class LoadStats:
    commits: int = 0
    rollbacks: int = 0            # transactions the load chose to roll back
    retries: int = 0              # serialization failures and deadlocks
    deadlocks: int = 0            # of which deadlocks (each costs its writers deadlock_timeout)
    conflicts: int = 0            # foreign-key races between writers
    connection_errors: int = 0    # connections lost (server restarts, terminated backends)
    errors: int = 0               # anything else: a bug somewhere
    error_samples: list[str] = field(default_factory=list)


def retry_pause(failed_in_a_row: int, rng: random.Random) -> float:
    """Seconds to wait before retrying a transaction, as an application would: random (so the
    writers that collided do not collide again) and growing with each failure in a row, to
    RETRY_PAUSE_MAX."""
    return rng.uniform(0, min(RETRY_PAUSE_MAX, 0.001 * 2 ** failed_in_a_row))


class WriteLoad:
    """``writers`` threads, each on its own connection, running ``transaction(conn, rng)`` in a
    loop until :meth:`stop`; it returns whether to commit, at the writer's isolation level.
    Lost connections are counted and reopened (with a short pause), so the load rides out
    server restarts."""

    def __init__(self, target: Target | str, writers: int, transaction: Transaction = demo.random_transaction,
                 session_sql: Iterable[str] = SESSION_SETTINGS, seed: int | None = None,
                 isolation: str = "read-committed"):
        target = Target(target) if isinstance(target, str) else target
        self.target = Target(target.dsn, application_name="tview-tui soak writer")
        self.writers = writers
        self.transaction = transaction
        self.session_sql = tuple(session_sql)
        self.seed = random.randrange(1 << 30) if seed is None else seed
        self.levels = ISOLATION_LEVELS[isolation]
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._writer, args=(i,), name=f"soak-writer-{i}", daemon=True)
                         for i in range(self.writers)]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)

    def _count(self, name: str, detail: str | None = None) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)
            if detail and len(self.stats.error_samples) < MAX_ERROR_SAMPLES:
                self.stats.error_samples.append(detail)

    def _open(self, index: int) -> psycopg.Connection:
        conn = connect(self.target)
        conn.isolation_level = self.levels[index % len(self.levels)]   # every transaction of this writer
        for statement in self.session_sql:
            conn.execute(statement)
        conn.commit()
        return conn

    def _writer(self, index: int) -> None:
        rng = random.Random(self.seed + index)
        conn: psycopg.Connection | None = None
        failed_in_a_row = 0
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = self._open(index)
                if self.transaction(conn, rng):
                    conn.commit()
                    self._count("commits")
                else:
                    conn.rollback()
                    self._count("rollbacks")
                failed_in_a_row = 0
            except TviewError:                     # cannot connect (yet): the server may be restarting
                self._count("connection_errors")
                self._stop.wait(0.2)
            except psycopg.Error as exc:
                if conn is None or conn.closed or conn.broken:
                    self._count("connection_errors")
                    conn = None
                    self._stop.wait(0.2)
                    continue
                conn.rollback()
                if exc.sqlstate in RETRYABLE:
                    self._count("retries")
                    if exc.sqlstate == DEADLOCK:
                        self._count("deadlocks")
                    failed_in_a_row += 1
                    self._stop.wait(retry_pause(failed_in_a_row, rng))
                elif exc.sqlstate in CONFLICTS:
                    self._count("conflicts")
                else:
                    self._count("errors", str(error_from_db(exc, f"writer {index}")))
        if conn is not None:
            conn.close()


# -- the tail ---------------------------------------------------------------------------

class Tail:
    """An EventStream consumed in its own thread and event loop, into rolling statistics and a
    bounded buffer, the way the app consumes it."""

    def __init__(self, target: Target | str, poll: bool = False):
        self.stream = events.EventStream(target, poll=poll)
        self.stats = events.StatsBook()
        self.buffer: deque[events.Item] = deque(maxlen=events.EVENT_BUFFER)
        self.gaps = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._consume()), name="soak-tail", daemon=True)

    @property
    def received(self) -> int:
        return self.stream.received

    def start(self, timeout: float = 10.0) -> None:
        """Start tailing; return once LISTEN is in place (so no event of the load is missed)."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.stream.connected:
            if time.monotonic() > deadline:
                raise TviewError("the event stream did not connect")
            time.sleep(0.05)

    def stop(self) -> None:
        self.stream.stop()
        self._thread.join(10)

    async def _consume(self) -> None:
        try:
            async for batch in self.stream.batches():
                self.stats.add(batch)
                self.buffer.extend(batch)
                self.gaps += sum(isinstance(item, events.Gap) for item in batch)
        finally:
            await self.stream.close()


# -- the soak -----------------------------------------------------------------------------

@dataclass
class SoakResult:
    seconds: float
    writers: int
    commits: int
    rollbacks: int
    retries: int
    deadlocks: int
    conflicts: int
    connection_errors: int
    errors: int
    error_samples: list[str]
    writes_per_second: float
    events_received: int
    events_logged: int
    event_gaps: int
    drift_rows: int
    drift: dict[str, list[tuple[int, str]]]
    queue_rows_left: int
    rss_start_kb: int
    rss_end_kb: int
    rss_peak_kb: int

    @property
    def events_lost(self) -> int:
        return max(0, self.events_logged - self.events_received)

    @property
    def ok(self) -> bool:
        return (self.drift_rows == 0 and self.commits > 0 and self.errors == 0 and self.queue_rows_left == 0
                and self.events_lost == 0)

    def as_dict(self) -> dict:
        return asdict(self) | {"events_lost": self.events_lost, "ok": self.ok}

    def describe(self) -> str:
        def mb(kb: int) -> str:
            return f"{kb / 1024:.1f} MB"
        drifted = {name: rows for name, rows in self.drift.items() if rows}
        lines = [
            f"duration:      {self.seconds:.1f} s, {self.writers} writers",
            f"commits:       {self.commits} ({self.writes_per_second:.1f} committed transactions/s);"
            f" {self.rollbacks} rolled back on purpose",
            f"retries:       {self.retries} ({self.deadlocks} deadlocks, the rest serialization failures);"
            f" {self.conflicts} foreign-key races; {self.connection_errors} lost connections",
            f"writer errors: {self.errors}" + "".join(f"\n  {s}" for s in self.error_samples),
            f"drift rows:    {self.drift_rows}" + "".join(
                f"\n  {name}: {rows[:10]}{' ...' if len(rows) > 10 else ''}" for name, rows in drifted.items()),
            f"queue left:    {self.queue_rows_left} deferred-queue rows",
            f"events:        {self.events_received} received of {self.events_logged} logged"
            f" ({self.events_lost} lost, {self.event_gaps} stream gaps)",
            f"memory (RSS):  start {mb(self.rss_start_kb)}, end {mb(self.rss_end_kb)}, peak {mb(self.rss_peak_kb)}",
            "result:        " + ("OK" if self.ok else "FAILED"),
        ]
        return "\n".join(lines)


def prepare(conn: psycopg.Connection) -> None:
    """The demo schema and TVIEWs, with DEFERRED_TVIEWS switched to deferred mode."""
    demo.setup(conn)
    for name in DEFERRED_TVIEWS:
        conn.execute("SELECT tview.set_mode(%s, 'deferred')", (name,))
    conn.commit()


def drift_rows(drift: dict[str, list]) -> int:
    return sum(len(rows) for rows in drift.values())


def soak(dsn: str, seconds: float, writers: int, *, interval: float = 5.0, poll: bool = False,
         isolation: str = "read-committed", progress: Callable[[str], None] = print) -> SoakResult:
    """Run the soak on a database holding the demo schema (see :func:`prepare`)."""
    with connect(Target(dsn)) as conn:
        for name, value in DATABASE_SETTINGS.items():
            conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(conn.info.dbname), sql.Identifier("tview", name), sql.Literal(value)))
        start_id = one(conn.execute("SELECT coalesce(max(id), 0) FROM tview.events"))[0]
        conn.commit()
        rss_start, _ = memory_kb()
        peak = rss_start
        tail = Tail(Target(dsn, application_name="tview-tui soak tail"), poll=poll)
        tail.start()
        load = WriteLoad(dsn, writers, isolation=isolation)
        started = time.monotonic()
        load.start()
        next_report = started + interval
        try:
            while (now := time.monotonic()) < started + seconds:
                time.sleep(min(1.0, started + seconds - now))
                peak = max(peak, memory_kb()[0])
                if time.monotonic() >= next_report:
                    next_report += interval
                    s, elapsed = load.stats, time.monotonic() - started
                    progress(f"{elapsed:5.0f}s  commits {s.commits} ({s.commits / elapsed:.0f}/s)"
                             f"  retries {s.retries}  lost connections {s.connection_errors}"
                             f"  errors {s.errors}  events {tail.received}  RSS {memory_kb()[0] / 1024:.1f} MB")
        finally:
            load.stop()
            elapsed = time.monotonic() - started
        logged = one(conn.execute("SELECT count(*) FROM tview.events WHERE id > %s", (start_id,)))[0]
        conn.commit()
        _wait_for(lambda: tail.received >= logged, timeout=15.0, still_moving=lambda: tail.received)
        tail.stop()
        rss_end, hwm = memory_kb()
        progress("running the oracle over every TVIEW")
        drift = catalog.verify_all(conn)
        queue_left = one(conn.execute("SELECT count(*) FROM tview.queue"))[0]
        conn.commit()
    s = load.stats
    return SoakResult(
        seconds=round(elapsed, 2), writers=writers, commits=s.commits, rollbacks=s.rollbacks, retries=s.retries,
        deadlocks=s.deadlocks, conflicts=s.conflicts, connection_errors=s.connection_errors, errors=s.errors,
        error_samples=s.error_samples, writes_per_second=round(s.commits / elapsed, 1) if elapsed else 0.0,
        events_received=tail.received, events_logged=logged, event_gaps=tail.gaps,
        drift_rows=drift_rows(drift), drift=drift, queue_rows_left=queue_left,
        rss_start_kb=rss_start, rss_end_kb=rss_end, rss_peak_kb=max(peak, rss_end, hwm))


def _wait_for(condition: Callable[[], bool], timeout: float, still_moving: Callable[[], int]) -> None:
    """Wait until condition() holds, giving up after ``timeout`` seconds without progress."""
    last, since = still_moving(), time.monotonic()
    while not condition() and time.monotonic() - since < timeout:
        time.sleep(0.1)
        if still_moving() != last:
            last, since = still_moving(), time.monotonic()


# -- the command --------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    """The `soak` subcommand: 0 all right, 1 drift / lost events / writer errors."""
    def progress(text: str) -> None:
        print(f"[soak] {text}", file=sys.stderr, flush=True)

    if args.seconds <= 0 or args.writers < 1:
        raise TviewError("--seconds must be > 0 and --writers >= 1")
    with scratch.server(args.dsn, progress) as admin, scratch.database(admin, progress) as dsn:
        with connect(Target(dsn)) as conn:
            prepare(conn)
        progress(f"{args.writers} writers for {args.seconds:g} s; deferred: {', '.join(DEFERRED_TVIEWS)}")
        result = soak(dsn, args.seconds, args.writers, interval=args.interval, poll=args.poll,
                      isolation=args.isolation, progress=progress)
    print(result.describe())
    if args.json:
        args.json.write_text(json.dumps(result.as_dict(), indent=2))
    return 0 if result.ok else 1
