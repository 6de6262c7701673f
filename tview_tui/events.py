"""Cascade events: parsing protocol v1, a reconnecting stream, and rolling statistics.

The engine publishes one JSON event per TVIEW refresh on channel ``tview_events`` and, when
``tview.log = on``, in the table ``tview.events``. :class:`EventStream` listens on its own
autocommit connection (or polls the log where LISTEN cannot work: behind a transaction-pooling
proxy, or on a hot standby, which it finds by itself), hands events to consumers in batches,
reconnects with backoff and reports the time it was away as a :class:`Gap`. With the log on, a
listening stream reads the events it missed while away from the log when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec
import psycopg

from .connection import Target, TviewError, connect_async, first_line, in_recovery_async

CHANNEL = "tview_events"
PROTOCOL_VERSION = 1     # also the type of Event.v, which a payload must carry
EVENT_BUFFER = 5000   # recent events a consumer keeps in memory (the app's tail and detail screens)
SPARK_POINTS = 60     # refresh times of a TVIEW a summary carries (the tail's sparklines)


class MalformedEvent(ValueError):
    """A payload that is not a protocol-v1 event."""


class Event(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One refresh of one TVIEW, as published (protocol v1). Tens of thousands a second: a
    notification's payload is parsed, checked and built into an Event in one call of msgspec's
    typed decoder, 3.5 times faster than parsing to a dict and checking each field in Python
    (which was half of the stream's CPU). Not tracked by the garbage collector (gc=False): an
    event holds no references that could form a cycle."""

    v: Literal[1]
    ts: datetime
    pid: int
    xid: str
    schema: str = "public"
    tview: str
    source: str | None = None
    op: str
    depth: int
    mode: str
    rows: int
    upserted: int
    patched: int = 0
    deleted: int
    us: int
    keys: tuple[int, ...] = ()
    keys_more: int = 0
    log_id: int | None = None      # the event's row in tview.events, when read from there

    @property
    def name(self) -> str:
        """schema-qualified TVIEW table name."""
        return f"{self.schema}.{self.tview}"

    @property
    def ms(self) -> float:
        return self.us / 1000.0

    @classmethod
    def from_payload(cls, payload: str | bytes | dict, log_id: int | None = None) -> Event:
        """An event from a notification's payload (text or bytes) or a logged one (a dict)."""
        try:
            event = _decode_event(payload) if isinstance(payload, str | bytes) else msgspec.convert(payload, cls)
        except msgspec.MsgspecError as exc:
            raise MalformedEvent(str(exc)) from None
        if event.log_id != log_id:       # only the log says where an event is in it, never a payload
            event = msgspec.structs.replace(event, log_id=log_id)
        return event

    def as_dict(self) -> dict:
        return {
            "v": PROTOCOL_VERSION, "ts": self.ts.isoformat(), "pid": self.pid, "xid": self.xid,
            "schema": self.schema, "tview": self.tview, "source": self.source, "op": self.op,
            "depth": self.depth, "mode": self.mode, "rows": self.rows, "upserted": self.upserted,
            "patched": self.patched, "deleted": self.deleted, "us": self.us,
            "keys": list(self.keys), "keys_more": self.keys_more,
        }


_decode_event = msgspec.json.Decoder(Event).decode


@dataclass(frozen=True)
class Gap:
    """The stream was disconnected from ``started`` to ``ended``. ``from_log``: the events of
    that time follow, read from the log; otherwise some may be missing."""

    started: datetime
    ended: datetime
    reason: str
    from_log: bool = False
    why_missing: str = "no event log to read them from: tview.log is off"

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds()

    def describe(self) -> str:
        missed = "the events in between follow, from the log" if self.from_log else \
            f"events in between may be missing ({self.why_missing})"
        return f"disconnected {self.seconds:.1f}s ({self.reason}); {missed}"


Item = Event | Gap


class RateMeter:
    """Counts per second of monotonic time over the last minute: rates measured over time,
    whatever the number of events (bounded memory: one counter per second)."""

    SPAN = 60

    def __init__(self) -> None:
        self._seconds: deque[list[int]] = deque()     # [second, count], oldest first

    def add(self, count: int = 1, now: float | None = None) -> None:
        second = int(time.monotonic() if now is None else now)
        if self._seconds and self._seconds[-1][0] == second:
            self._seconds[-1][1] += count
        else:
            self._seconds.append([second, count])
            while self._seconds[0][0] <= second - self.SPAN:
                self._seconds.popleft()

    def total(self, seconds: float, now: float | None = None) -> int:
        """Counted during the last ``seconds`` (whole seconds, the current one included)."""
        current = int(time.monotonic() if now is None else now)
        return sum(c for s, c in list(self._seconds) if s > current - seconds)   # list(): another thread adds

    def per_minute(self, now: float | None = None) -> float:
        return float(self.total(self.SPAN, now))

    def per_second(self, seconds: int = 5, now: float | None = None) -> float:
        """Average over the last ``seconds`` complete seconds."""
        current = int(time.monotonic() if now is None else now)
        return sum(c for s, c in list(self._seconds) if current - seconds <= s < current) / seconds


def format_rate(value: float) -> str:
    """A rate for people: 140, 12.5, 0.5 (never 0.976562)."""
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


@dataclass
class TviewStats:
    """Rolling statistics of one TVIEW's refreshes (bounded memory): timings of the last
    ``window`` refreshes, and the event rate over the last minute."""

    window: int = 2000
    count: int = 0
    last: Event | None = None
    recent_us: deque = field(default_factory=deque)
    rate: RateMeter = field(default_factory=RateMeter)

    def __post_init__(self) -> None:
        self.recent_us = deque(self.recent_us, maxlen=self.window)

    def add(self, events: list[Event], now: float | None = None) -> None:
        """Events of one TVIEW that came in at once (one batch), oldest first."""
        self.count += len(events)
        self.last = events[-1]
        self.recent_us.extend([event.us for event in events])
        self.rate.add(len(events), now)

    def percentile(self, q: float) -> float | None:
        """q-th percentile (0..100) of recent refresh times, in milliseconds."""
        return _ms_percentile(sorted(self.recent_us), q)

    def max_ms(self) -> float | None:
        return max(self.recent_us) / 1000.0 if self.recent_us else None

    def per_minute(self, now: float | None = None) -> float:
        """Events in the last 60 seconds (all of them, not only those in the timing window)."""
        return self.rate.per_minute(now)

    def summary(self, now: float | None = None) -> TviewSummary:
        """The figures the screens show, taken now (one sort for both percentiles)."""
        ordered = sorted(self.recent_us)
        return TviewSummary(count=self.count, last=self.last, p50=_ms_percentile(ordered, 50),
                            p95=_ms_percentile(ordered, 95), per_minute=self.per_minute(now),
                            recent_us=tuple(itertools.islice(reversed(self.recent_us), SPARK_POINTS))[::-1])


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank q-th percentile (0..100) of sorted values: always a value that occurred (a p95
    over a few runs is the slowest or the one before, not a figure between them); None when empty."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _ms_percentile(ordered_us: list[int], q: float) -> float | None:
    """q-th percentile of sorted microseconds, in milliseconds."""
    found = percentile(ordered_us, q)
    return None if found is None else found / 1000.0


@dataclass(frozen=True)
class TviewSummary:
    """One TVIEW's statistics as the screens show them: a small copy of :class:`TviewStats`,
    sent from the process that counts the events to the app."""

    count: int
    last: Event | None
    p50: float | None              # milliseconds, over the timing window
    p95: float | None
    per_minute: float              # events in the last 60 seconds when taken
    recent_us: tuple[int, ...]     # the newest SPARK_POINTS refresh times, oldest first


class StatsBook:
    """Statistics for every TVIEW seen on the stream."""

    def __init__(self) -> None:
        self.by_tview: dict[str, TviewStats] = {}
        self.sources: dict[str, RateMeter] = {}    # written table -> cascades it started (depth-0 events)

    def add(self, items: Iterable[Item]) -> None:
        by_tview, sources = self.by_tview, self.sources
        now = time.monotonic()   # one reading for the batch: it came in at once
        events_of: dict[str, list[Event]] = {}
        started: dict[str, int] = {}
        for item in items:       # thousands a second: each event is only sorted to its TVIEW here
            if isinstance(item, Event):
                events_of.setdefault(item.name, []).append(item)
                if item.depth == 0 and item.source:
                    started[item.source] = started.get(item.source, 0) + 1
        for name, events in events_of.items():
            stats = by_tview.get(name)
            if stats is None:
                stats = by_tview[name] = TviewStats()
            stats.add(events, now)
        for source, count in started.items():
            meter = sources.get(source)
            if meter is None:
                meter = sources[source] = RateMeter()
            meter.add(count, now)

    def get(self, name: str) -> TviewStats | None:
        return self.by_tview.get(name)


# Polling: log ids come from a sequence, so a transaction holding a smaller id can commit after
# a bigger id was read. Ids skipped over are kept as holes and asked for again, until they show
# up or no transaction that could still commit them is running: a hole remembers the snapshot
# xmax of the read that found it, and once the xmin of a read's snapshot passes that, the read
# saw every such transaction finished (a rolled-back one leaves its hole empty for good).
# Snapshot and rows come from one statement, so nothing commits between the two.
LOG_QUERY = """
SELECT e.id, e.payload, pg_snapshot_xmin(s.snap)::text::bigint, pg_snapshot_xmax(s.snap)::text::bigint
FROM (SELECT pg_current_snapshot() AS snap) s
LEFT JOIN LATERAL (SELECT id, payload FROM tview.events WHERE id > %s OR id = ANY (%s::bigint[])
                   ORDER BY id LIMIT %s) e ON true
ORDER BY e.id
"""
MAX_HOLES = 100_000
# A listening stream back from a gap reads the log from this long before the gap began: events
# published then and committed (so notified) while it was away. Events it has already seen are
# recognised by their identity (pid, xid, TVIEW, ts) and not handed out twice.
BACKFILL_MARGIN = timedelta(seconds=60)
BACKFILL_QUERY = "SELECT id, payload FROM tview.events WHERE ts >= %s AND id <> ALL (%s) ORDER BY id LIMIT %s"
# A writer decides whether to notify when it publishes, and a writer that looked before the
# stream's registration committed does not notify it, though it may commit after the backfill
# read the log. So after a reconnect the stream goes on reading the log until every transaction
# that could have looked before has ended: no other client backend of the database holds an
# xid or a snapshot from before the registration (both are shown to every role).
HORIZON_QUERY = "SELECT xid(pg_snapshot_xmax(pg_current_snapshot()))"
HORIZON_PASSED_QUERY = """
SELECT NOT EXISTS (
    SELECT 1 FROM pg_stat_activity
    WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
      AND (age(backend_xid) >= age(%(h)s::xid) OR age(backend_xmin) >= age(%(h)s::xid)))
"""
CATCH_UP_INTERVAL = 0.1       # seconds between the log reads of a catch-up
CATCH_UP_MAX = 30.0           # default seconds after which the events of transactions still running are given up
# What a role without the engine's log or functions meets: no such object, or no rights to it.
NO_ENGINE = (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction,
             psycopg.errors.InvalidSchemaName)
SEEN_MAX = 20_000
READ_PAUSE = 0.01    # seconds between two reads of a batch while more come: one read then takes many (a wake-up
                     # per socket packet, some 20 notifications, cost more CPU than the notifications' parsing)


@dataclass
class _CatchUp:
    """A listening stream back from a gap, reading the log until ``horizon`` has passed."""

    since: datetime                  # read events logged from then on
    horizon: str                     # the next xid when the stream registered again
    gap_started: datetime
    reason: str
    give_up_at: float                # monotonic
    next_read: float = 0.0
    interval: float = CATCH_UP_INTERVAL
    read_ids: set[int] = field(default_factory=set)


class EventStream:
    """Events from a database, in batches, surviving disconnects.

    ``poll=True`` reads the log table instead of LISTEN (needs ``tview.log = on`` in the
    writers' sessions or database). On a hot standby, which refuses LISTEN, the stream polls
    the log (replicated from the primary) by itself: ``standby`` says so once connected."""

    def __init__(self, target: Target | str, *, poll: bool = False, poll_interval: float = 0.5,
                 batch_wait: float = 0.05, batch_max: int = 1000, max_backoff: float = 5.0,
                 since_log_id: int | None = None, catch_up_max: float = CATCH_UP_MAX):
        self.target = Target(target) if isinstance(target, str) else target
        self.poll = poll
        self.poll_interval = poll_interval
        self.batch_wait = batch_wait
        self.batch_max = batch_max
        self.max_backoff = max_backoff
        self.catch_up_max = catch_up_max
        self.received = 0
        self.malformed = 0
        self.reconnects = 0
        self.connected = False
        self.standby = False
        self._last_log_id = since_log_id
        self._holes: dict[int, int] = {}      # log id not seen yet -> snapshot xmax when it was skipped
        self._notified: deque[Event] = deque(maxlen=SEEN_MAX)    # the last events listened to
        self._logged: dict[tuple, None] = {}    # identities of the last events read by a backfill, oldest first
        self._logged_checks = 0                 # events still to listen to before those are forgotten
        self._conn: psycopg.AsyncConnection | None = None
        self._closing = asyncio.Lock()
        self._closed = False
        self._catch_up: _CatchUp | None = None
        self._during_queries: list[str] = []    # notifications psycopg read while the stream ran a query

    def _parse(self, payload: str | bytes | dict, log_id: int | None = None) -> Event | None:
        """A notified payload (text, or bytes read from libpq) or a logged one (jsonb, read as a
        dict); None if malformed."""
        try:
            event = Event.from_payload(payload, log_id)
        except MalformedEvent:
            self.malformed += 1
            return None
        self.received += 1
        return event

    def _first_notified(self, events: list[Event]) -> list[Event]:
        """The events listened to that a backfill has not handed out already. Cheap in bulk: an
        event's identity is compared only for a while after a backfill (until SEEN_MAX events
        were listened to); otherwise the events are only remembered, for the next backfill."""
        if self._logged_checks > 0:
            self._logged_checks -= len(events)
            events = [event for event in events if _identity(event) not in self._logged]
            if self._logged_checks <= 0:
                self._logged.clear()
        self._notified.extend(events)
        return events

    async def _backfill(self, since: datetime, read_ids: set[int]) -> list[Event] | None:
        """Events logged since ``since`` not seen yet, or None when the log is off or unreadable.
        ``read_ids``: log ids read before, not read again (and those read now are added)."""
        assert self._conn is not None
        try:
            rows = await (await self._conn.execute(BACKFILL_QUERY, (since, list(read_ids), MAX_HOLES))).fetchall()
        except NO_ENGINE:
            return None
        if not rows and not read_ids:
            on = await (await self._conn.execute("SELECT tview.enabled('log', false)")).fetchone()
            return [] if on and on[0] else None
        read_ids.update(log_id for log_id, _ in rows)
        notified = {_identity(event) for event in self._notified}
        fresh = []
        for log_id, payload in rows:
            event = self._parse(payload, log_id)
            if event is not None and (identity := _identity(event)) not in notified and identity not in self._logged:
                self._logged[identity] = None
                fresh.append(event)
        while len(self._logged) > SEEN_MAX:
            del self._logged[next(iter(self._logged))]
        self._logged_checks = SEEN_MAX
        return fresh

    async def _start_catch_up(self, down_since: datetime, reason: str) -> list[Event] | None:
        """The first read of the log after a gap (None: no log to read); later reads follow
        from :meth:`_catch_up_read` while listening."""
        assert self._conn is not None
        row = await (await self._conn.execute(HORIZON_QUERY)).fetchone()
        since = down_since - BACKFILL_MARGIN
        if self._catch_up is not None:             # cut off while catching up: that one goes on
            since = min(since, self._catch_up.since)
        catch_up = _CatchUp(since=since, horizon=str(row[0]) if row else "0", gap_started=down_since,
                            reason=reason, give_up_at=time.monotonic() + self.catch_up_max)
        missed = await self._backfill(catch_up.since, catch_up.read_ids)
        self._catch_up = catch_up if missed is not None else None
        catch_up.next_read = time.monotonic() + catch_up.interval
        return missed

    async def _catch_up_read(self, catch_up: _CatchUp) -> list[Item]:
        """Events of writers that looked for listeners before the stream registered again and
        committed after the last read; ends the catch-up once none can be left."""
        assert self._conn is not None
        row = await (await self._conn.execute(HORIZON_PASSED_QUERY, {"h": catch_up.horizon})).fetchone()
        passed = bool(row and row[0])
        found: list[Item] = list(await self._backfill(catch_up.since, catch_up.read_ids) or [])
        if passed:
            self._catch_up = None
        elif time.monotonic() >= catch_up.give_up_at:
            self._catch_up = None
            found.append(Gap(catch_up.gap_started, datetime.now(UTC), catch_up.reason, from_log=False,
                             why_missing="transactions that began before the reconnect were still running"
                                         f" after {self.catch_up_max:g} s"))
        else:
            catch_up.interval = min(catch_up.interval * 2, 2.0)
            catch_up.next_read = time.monotonic() + catch_up.interval
        return found

    @property
    def polling(self) -> bool:
        """Reading the log rather than listening: asked to, or connected to a standby."""
        return self.poll or self.standby

    async def _open(self) -> psycopg.AsyncConnection:
        conn = await connect_async(self.target, autocommit=True)
        self._during_queries = []
        conn.add_notify_handler(lambda notify: self._during_queries.append(notify.payload))
        if not self.poll:
            self.standby = await in_recovery_async(conn)
        if self.polling:
            if self._last_log_id is None:
                row = await (await conn.execute("SELECT coalesce(max(id), 0) FROM tview.events")).fetchone()
                self._last_log_id = row[0] if row else 0
        else:
            try:   # registered: writers with tview.notify = auto send events while we listen
                await _in_read_write(conn, "SELECT tview.listen()")
            except (*NO_ENGINE, psycopg.errors.ReadOnlySqlTransaction):
                # an engine older than tview.listen(), no USAGE on schema tview, or a server
                # that refuses every write (a standby): plain LISTEN, unregistered
                await conn.execute(f"LISTEN {CHANNEL}")
        return conn

    async def batches(self) -> AsyncIterator[list[Item]]:
        """Yield lists of events (and gaps) until :meth:`close` is called."""
        backoff = 0.2
        down_since: datetime | None = None
        reason = ""
        while not self._closed:
            try:
                self._conn = await self._open()
            except (TviewError, psycopg.Error) as exc:
                if down_since is None:
                    down_since = datetime.now(UTC)
                reason = first_line(exc)
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            self.connected = True
            backoff = 0.2
            try:
                if down_since is not None:
                    self.reconnects += 1
                    missed = None if self.polling else await self._start_catch_up(down_since, reason)
                    yield [Gap(down_since, datetime.now(UTC), reason, from_log=self.polling or missed is not None),
                           *(missed or [])]
                    down_since = None
                reader = self._poll_batches() if self.polling else self._listen_batches()
                async for batch in reader:
                    yield batch
            except psycopg.Error as exc:
                down_since = down_since or datetime.now(UTC)
                reason = first_line(exc)
                self.connected = False
            finally:
                await self._close_conn()

    async def _listen_batches(self) -> AsyncIterator[list[Item]]:
        """Notifications read straight from libpq: at tens of thousands a second, psycopg's
        ``notifies()`` (a Notify object, decoded twice, per notification) took half the CPU of
        receiving them. Those that arrive while the stream runs a query of its own come through
        ``_during_queries``."""
        assert self._conn is not None
        pgconn = self._conn.pgconn
        while not self._closed:
            payloads: list[str | bytes] = [*self._during_queries]
            self._during_queries.clear()
            deadline = time.monotonic() + self.batch_wait
            await asyncio.sleep(0)    # the loop's other tasks run even when every read fills a batch at once
            _read_notifications(pgconn, payloads, self.batch_max)
            while len(payloads) < self.batch_max and (remaining := deadline - time.monotonic()) > 0:
                if payloads:      # more are coming: let them gather, and read many at once
                    await asyncio.sleep(min(remaining, READ_PAUSE))
                else:
                    await _readable(pgconn.socket, remaining)
                _read_notifications(pgconn, payloads, self.batch_max)
            parsed = (self._parse(payload) for payload in payloads)
            batch: list[Item] = [*self._first_notified([event for event in parsed if event is not None])]
            catch_up = self._catch_up
            if catch_up is not None and time.monotonic() >= catch_up.next_read:
                batch.extend(await self._catch_up_read(catch_up))
            if batch:
                yield batch

    async def _poll_batches(self) -> AsyncIterator[list[Item]]:
        assert self._conn is not None and self._last_log_id is not None    # set by _open when polling
        while not self._closed:
            cur = await self._conn.execute(LOG_QUERY, (self._last_log_id, list(self._holes), self.batch_max))
            rows = await cur.fetchall()
            batch: list[Item] = []
            seen: set[int] = set()
            for log_id, payload, _, xmax in rows:
                if log_id is None:
                    continue
                seen.add(log_id)
                if log_id > self._last_log_id:
                    for hole in range(max(self._last_log_id + 1, log_id - MAX_HOLES), log_id):
                        self._holes[hole] = xmax
                    self._last_log_id = log_id
                self._holes.pop(log_id, None)
                event = self._parse(payload, log_id)
                if event is not None:
                    batch.append(event)
            complete = len(seen) < self.batch_max
            if complete and rows:
                xmin = rows[0][2]
                for hole in [h for h, horizon in self._holes.items() if horizon <= xmin and h not in seen]:
                    del self._holes[hole]
            if len(self._holes) > MAX_HOLES:
                for hole in sorted(self._holes)[:len(self._holes) - MAX_HOLES]:
                    del self._holes[hole]
            if batch:
                yield batch
            if complete:
                await asyncio.sleep(self.poll_interval)

    async def _close_conn(self) -> None:
        async with self._closing:                # close() returns only once the connection is closed,
            conn, self._conn = self._conn, None  # even when batches() ending is closing it too
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    if not self.polling and not conn.closed:
                        await _in_read_write(conn, "SELECT tview.unlisten()")
                with contextlib.suppress(psycopg.Error):
                    await conn.close()

    def stop(self) -> None:
        """Ask the stream to end (thread-safe); `batches()` returns within `batch_wait`."""
        self._closed = True

    async def close(self) -> None:
        self._closed = True
        await self._close_conn()


def _identity(event: Event) -> tuple:
    """What an event notified and the same event read from the log have in common."""
    return event.pid, event.xid, event.schema, event.tview, event.ts


def _read_notifications(pgconn: psycopg.pq.abc.PGconn, payloads: list[str | bytes], limit: int) -> None:
    """Append the payloads of notifications until there are ``limit``: first those libpq has
    read already, then those the socket holds (libpq reads at most its buffer's size at a time,
    and the server may send on for ever). Raises OperationalError once the connection is lost."""
    queued = True
    while len(payloads) < limit:
        if (notify := pgconn.notifies()) is not None:
            payloads.append(notify.extra)
            queued = True
        elif queued:
            pgconn.consume_input()
            queued = False
        else:
            return


async def _readable(fd: int, timeout: float) -> None:
    """Wait until ``fd`` has something to read, at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready, timeout)
    finally:
        loop.remove_reader(fd)


async def _in_read_write(conn: psycopg.AsyncConnection, statement: str) -> None:
    """Run a listener (un)registration in its own read-write transaction: a read-only session
    (the app's read-only mode sets default_transaction_read_only) still registers as a listener,
    which writes only the engine's listener bookkeeping, never user data."""
    await conn.execute("BEGIN READ WRITE")
    try:
        await conn.execute(statement)
    except BaseException:
        with contextlib.suppress(psycopg.Error):
            await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


async def read_log_since(target: Target | str, seconds: float) -> list[Event]:
    """Events kept in the log table during the last ``seconds``."""
    conn = await connect_async(target, autocommit=True)
    try:
        cur = await conn.execute(
            "SELECT id, payload FROM tview.events WHERE ts >= now() - make_interval(secs => %s) ORDER BY id",
            (seconds,))
        events = []
        for log_id, payload in await cur.fetchall():
            try:
                events.append(Event.from_payload(payload, log_id))
            except MalformedEvent:
                continue
        return events
    finally:
        await conn.close()


def matches(event: Event, tviews: Iterable[str] = (), sources: Iterable[str] = (),
            ops: Iterable[str] = ()) -> bool:
    """Filter used by ``tail`` and the live view: empty filters let everything through."""
    tviews, sources, ops = list(tviews), list(sources), [o.upper() for o in ops]
    if tviews and not any(t in (event.tview, event.name, event.tview.removeprefix("tv_")) for t in tviews):
        return False
    if sources and (event.source or "") not in sources:
        return False
    return not ops or event.op in ops


def format_event(event: Event) -> str:
    """One human-readable line: time, tview, source, op, rows, mode, milliseconds."""
    local = event.ts.astimezone().strftime("%H:%M:%S.%f")[:-3]
    source = event.source or "-"
    shown = event.keys[:5]
    keys = ",".join(str(k) for k in shown)
    more = len(event.keys) - len(shown) + event.keys_more
    if more:
        keys += f",+{more}"
    return (f"{local}  {event.name:<28} {source:<20} {event.op:<8} d{event.depth} "
            f"rows={event.rows:<6} {event.mode:<9} {event.ms:9.3f} ms  [{keys}]")
