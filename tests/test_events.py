"""Cascade events: the engine's NOTIFY/log protocol and the Python event stream."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest

from tview_tui.events import Event, EventStream, Gap, MalformedEvent, StatsBook, TviewStats, format_event

from engine_helpers import set_engine

SCHEMA = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int, title text);
INSERT INTO tb_user SELECT g, 'u' || g FROM generate_series(1, 3) g;
INSERT INTO tb_post SELECT g, 1 + g % 3, 'p' || g FROM generate_series(1, 6) g;
SELECT tview.create('user', $$SELECT u.pk_user, jsonb_build_object('name', u.name) AS data FROM tb_user u$$);
SELECT tview.create('post', $$SELECT p.pk_post, p.fk_user, jsonb_build_object('title', p.title, 'author', u.data)
                              AS data FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user$$);
"""


@pytest.fixture
def blog(db):
    db.execute(SCHEMA)
    return db


def collect(listener: psycopg.Connection, expect: int | None = None, timeout: float = 2.0) -> list[dict]:
    """Payloads received on the listening connection (until timeout or `expect` of them)."""
    found = []
    for notify in listener.notifies(timeout=timeout, stop_after=expect):
        found.append(json.loads(notify.payload))
    return found


@pytest.fixture
def listener(dsn):
    """A listener registered with tview.listen(): writers (tview.notify = auto, the default) send to it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT tview.listen()")
        yield conn


@pytest.fixture
def plain_listener(dsn):
    """A plain LISTEN: hears what is sent, makes no one send."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("LISTEN tview_events")
        yield conn


@pytest.mark.engine
def test_one_event_per_tview_per_statement_with_depth_and_counts(blog, listener):
    blog.execute("UPDATE tb_user SET name = 'renamed' WHERE pk_user = 1")
    events = collect(listener, expect=2)
    assert [(e["tview"], e["source"], e["op"], e["depth"]) for e in events] == [
        ("tv_user", "tb_user", "UPDATE", 0), ("tv_post", "tb_user", "UPDATE", 1)]
    user, post = events
    assert user["keys"] == [1] and user["rows"] == 1 and user["upserted"] == 1
    assert sorted(post["keys"]) == [3, 6] and post["rows"] == 2
    for e in events:
        assert e["v"] == 1 and e["us"] >= 0 and e["pid"] > 0 and e["xid"]
        assert len(json.dumps(e)) < 8000


@pytest.mark.engine
def test_insert_delete_and_bulk_events(blog, listener):
    blog.execute("INSERT INTO tb_post VALUES (100, 2, 'new')")
    (insert,) = collect(listener, expect=1)
    assert (insert["tview"], insert["op"], insert["keys"], insert["upserted"]) == ("tv_post", "INSERT", [100], 1)
    blog.execute("DELETE FROM tb_post WHERE pk_post = 100")
    (delete,) = collect(listener, expect=1)
    assert (delete["op"], delete["deleted"], delete["rows"]) == ("DELETE", 1, 1)
    blog.execute("INSERT INTO tb_post SELECT g, 1, 'bulk' FROM generate_series(1000, 1999) g")
    events = collect(listener, timeout=1.0)
    assert len(events) == 1, "one event per TVIEW per statement, not per row"
    assert events[0]["upserted"] == 1000 and len(events[0]["keys"]) + events[0]["keys_more"] == 1000


@pytest.mark.engine
def test_nothing_is_published_for_a_rolled_back_transaction(blog, listener, dsn):
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE tb_user SET name = 'x'")
        conn.rollback()
    assert collect(listener, timeout=0.5) == []


@pytest.mark.engine
def test_payload_stays_under_8000_bytes_with_100000_keys(db, listener):
    db.execute("""
        CREATE TABLE tb_item (pk_item int PRIMARY KEY, label text);
        SELECT tview.create('item', $$SELECT i.pk_item, jsonb_build_object('l', i.label) AS data FROM tb_item i$$);
    """)
    db.execute("INSERT INTO tb_item SELECT g, 'x' FROM generate_series(1, 100000) g")
    (event,) = collect(listener, expect=1, timeout=30)
    assert len(json.dumps(event).encode()) < 8000
    assert len(event["keys"]) + event["keys_more"] == 100000


@pytest.mark.engine
def test_event_log_and_settings(blog, dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET tview.notify = off")
        set_engine(conn, log="on")
        conn.execute("UPDATE tb_user SET name = 'logged' WHERE pk_user = 2")
        logged = conn.execute("SELECT payload FROM tview.events ORDER BY id").fetchall()
        assert [p["tview"] for (p,) in logged] == ["tv_user", "tv_post"]
        set_engine(conn, log="off")
        conn.execute("UPDATE tb_user SET name = 'not logged' WHERE pk_user = 2")
        assert conn.execute("SELECT count(*) FROM tview.events").fetchone()[0] == 2


def test_parsing_rejects_malformed_and_unknown_versions():
    good = {"v": 1, "ts": "2026-11-24T10:00:00.123456Z", "pid": 1, "xid": "5", "tview": "tv_post",
            "source": "tb_user", "op": "UPDATE", "depth": 1, "mode": "recompute", "rows": 2, "upserted": 2,
            "patched": 0, "deleted": 0, "us": 812, "keys": [1, 2], "keys_more": 0}
    event = Event.from_payload(json.dumps(good))
    assert event.name == "public.tv_post" and event.ms == 0.812 and event.keys == (1, 2)
    assert "tv_post" in format_event(event) and "0.812 ms" in format_event(event)
    for bad in ["garbage", "[]", json.dumps({**good, "v": 2}), json.dumps({**good, "us": "x"}),
                json.dumps({k: v for k, v in good.items() if k != "tview"}),
                json.dumps({k: v for k, v in good.items() if k != "v"}), json.dumps({**good, "keys": None})]:
        with pytest.raises(MalformedEvent):
            Event.from_payload(bad)
    assert Event.from_payload(json.dumps({**good, "log_id": 7})).log_id is None    # only the log says that
    assert Event.from_payload(good, log_id=7).log_id == 7


def test_rolling_stats_percentiles_and_bounded_window():
    stats = TviewStats(window=100)
    base = {"v": 1, "ts": "2026-11-24T10:00:00Z", "pid": 1, "xid": "1", "tview": "tv_a", "source": None,
            "op": "UPDATE", "depth": 0, "mode": "recompute", "rows": 1, "upserted": 1, "deleted": 0}
    for us in range(1, 1001):
        stats.add([Event.from_payload({**base, "us": us * 1000})])
    assert stats.count == 1000 and len(stats.recent_us) == 100       # bounded
    assert stats.percentile(50) == pytest.approx(950, abs=1)           # last 100: 901..1000 ms
    assert stats.percentile(95) == pytest.approx(995, abs=1)
    assert stats.max_ms() == 1000
    assert stats.per_minute() == 1000     # every event of the last minute, not only the timing window's
    book = StatsBook()
    book.add([Event.from_payload({**base, "us": 5})])
    assert book.get("public.tv_a").count == 1


async def drain(stream: EventStream, want, timeout: float = 10.0) -> list:
    """Items from the stream until `want(items)` is true."""
    items: list = []

    async def run() -> None:
        async for batch in stream.batches():
            items.extend(batch)
            if want(items):
                return

    await asyncio.wait_for(run(), timeout)
    return items


async def eventually(condition, what: str, timeout: float = 10.0) -> None:
    """Wait (letting the event loop run) until condition() holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout:g} s"
        await asyncio.sleep(0.02)


def events_only(items) -> list[Event]:
    return [i for i in items if isinstance(i, Event)]


@pytest.mark.engine
async def test_a_burst_of_notifications_arrives_whole_in_order_and_in_bounded_batches(dsn):
    """5,000 events committed at once fill the stream's socket: they come in order, each once,
    in batches of at most ``batch_max`` (a read never takes all the socket holds), and the
    event loop's other tasks run between two batches (the stream process sends its updates)."""
    stream = EventStream(dsn, batch_max=200)
    batches: list[list] = []
    ticks = [0]
    ticks_at_batch: list[int] = []

    async def consume() -> None:
        async for batch in stream.batches():
            batches.append(batch)
            ticks_at_batch.append(ticks[0])
            if sum(map(len, batches)) >= 5000:
                return

    async def other_task() -> None:
        while True:
            ticks[0] += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_task())
    task = asyncio.create_task(consume())
    await eventually(lambda: stream.connected, "stream listening")
    payload = ('{"v":1,"ts":"2026-11-24T10:00:00Z","pid":1,"xid":"%s","schema":"public","tview":"tv_burst",'
               '"source":"tb_burst","op":"UPDATE","depth":0,"mode":"recompute","rows":1,"upserted":1,'
               '"patched":0,"deleted":0,"us":5,"keys":[1],"keys_more":0}')
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT count(pg_notify('tview_events', format(%s, g))) FROM generate_series(1, 5000) g",
                     (payload,))
    await asyncio.wait_for(task, 20)
    ticker.cancel()
    await stream.close()
    assert [int(e.xid) for batch in batches for e in events_only(batch)] == list(range(1, 5001))
    assert max(map(len, batches)) <= 200
    assert all(later > earlier for earlier, later in itertools.pairwise(ticks_at_batch))


@pytest.mark.engine
async def test_stream_skips_and_counts_malformed_payloads(blog, dsn):
    stream = EventStream(dsn)
    task = asyncio.create_task(drain(stream, lambda items: len(events_only(items)) >= 2))
    await eventually(lambda: stream.connected, "stream listening")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_notify('tview_events', 'not json')")
        conn.execute("""SELECT pg_notify('tview_events', '{"v": 99}')""")
        conn.execute("UPDATE tb_user SET name = 'after garbage' WHERE pk_user = 1")
    items = await task
    await stream.close()
    assert stream.malformed == 2
    assert [e.tview for e in events_only(items)] == ["tv_user", "tv_post"]


@pytest.mark.engine
async def test_stream_survives_terminated_backend_and_reports_the_gap(blog, dsn):
    stream = EventStream(dsn)
    task = asyncio.create_task(drain(
        stream, lambda items: any(isinstance(i, Gap) for i in items) and len(events_only(items)) >= 2,
        timeout=20))
    await eventually(lambda: stream.connected, "stream listening")
    with psycopg.connect(dsn, autocommit=True) as conn:
        killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM tview.listeners").fetchone()[0]
        assert killed == 1
        await eventually(lambda: stream.reconnects == 1 and stream.connected, "stream reconnected")
        conn.execute("UPDATE tb_user SET name = 'after restart' WHERE pk_user = 2")
    items = await task
    await stream.close()
    gaps = [i for i in items if isinstance(i, Gap)]
    assert len(gaps) == 1 and gaps[0].seconds >= 0 and stream.reconnects == 1
    assert [e.tview for e in events_only(items)][-2:] == ["tv_user", "tv_post"]


@contextlib.contextmanager
def connections_refused(server_dsn: str, dsn: str) -> Iterator[None]:
    """The database of ``dsn`` refuses new connections (those open stay)."""
    dbname = psycopg.sql.Identifier(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])
    allow = psycopg.sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}")
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(allow.format(dbname, psycopg.sql.SQL("false")))
        try:
            yield
        finally:
            admin.execute(allow.format(dbname, psycopg.sql.SQL("true")))


@pytest.mark.engine
@pytest.mark.parametrize("log", ["on", "off"])
async def test_a_listening_stream_reads_what_it_missed_from_the_log(blog, dsn, server_dsn, log):
    """Writes made while the stream cannot reconnect (the database refuses connections) come
    from the log once it is back, each once, after a Gap that says so; without the log, the
    Gap says that events may be missing."""
    with psycopg.connect(dsn, autocommit=True) as writer:
        set_engine(writer, log=log)
        stream = EventStream(dsn, max_backoff=0.2)
        items: list = []

        async def consume() -> None:
            async for batch in stream.batches():
                items.extend(batch)

        async def until(condition, what: str) -> None:
            deadline = time.monotonic() + 15
            while not condition():
                assert time.monotonic() < deadline, f"{what} not reached"
                await asyncio.sleep(0.05)

        def rename(pk: int, name: str) -> str:
            """The xid of an UPDATE (its own transaction) that refreshes tv_user and tv_post."""
            return writer.execute("UPDATE tb_user SET name = %s WHERE pk_user = %s"
                                  " RETURNING pg_current_xact_id()::text", (name, pk)).fetchone()[0]

        task = asyncio.create_task(consume())
        try:
            await until(lambda: stream.connected, "stream connected")
            before = rename(1, "before")
            await until(lambda: before in {e.xid for e in events_only(items)}, "event before the gap")
            with connections_refused(server_dsn, dsn):
                assert writer.execute("SELECT count(pg_terminate_backend(pid)) FROM tview.listeners").fetchone()[0] == 1
                await until(lambda: not stream.connected, "stream cut off")
                missed = [rename(2, f"away {n}") for n in range(3)]
                await asyncio.sleep(0.5)                    # the stream tries and is refused
                assert not stream.connected
            await until(lambda: stream.reconnects == 1, "stream back")
            after = rename(3, "after")
            await until(lambda: after in {e.xid for e in events_only(items)}, "event after the gap")
        finally:
            stream.stop()
            await task
    (gap,) = [i for i in items if isinstance(i, Gap)]
    assert gap.from_log == (log == "on")
    assert ("from the log" if log == "on" else "may be missing") in gap.describe()
    xids = [e.xid for e in events_only(items)]
    expected = [before] + (missed if log == "on" else []) + [after]
    assert xids == [x for x in expected for _ in ("tv_user", "tv_post")]   # both TVIEWs, each once, in order
    assert items.index(gap) == 2                                             # the missed ones come after it


async def straddle_a_gap(stream: EventStream, writer: psycopg.Connection, server_dsn: str, dsn: str) -> str:
    """Cut the stream off, and while it cannot come back, let ``writer`` rename user 1 in a
    transaction left open; return its xid once the stream is back."""
    await eventually(lambda: stream.connected, "stream listening")
    with connections_refused(server_dsn, dsn):
        assert writer.execute("SELECT count(pg_terminate_backend(pid)) FROM tview.listeners").fetchone()[0] == 1
        await eventually(lambda: not stream.connected, "stream cut off")
        xid = writer.execute("UPDATE tb_user SET name = 'straddling' WHERE pk_user = 1"
                             " RETURNING pg_current_xact_id()::text").fetchone()[0]
    await eventually(lambda: stream.reconnects == 1, "stream back")
    return xid


def clear_of(conn: psycopg.Connection, *holders: str) -> str:
    """Begin a transaction on conn (not autocommit) whose id picks another stamp slot than each
    of holders' (transactions left open on the same TVIEWs), so that its writes never wait for
    them; returns that id. Tests running beside take ids in between: consecutive ids alone do
    not keep clear of a slot."""
    slots = conn.execute("SELECT tview._stamp_slots()").fetchone()[0]
    conn.rollback()
    while True:
        xid = conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0]
        if all(int(xid) % slots != int(holder) % slots for holder in holders):
            return xid
        conn.rollback()


@pytest.mark.engine
@pytest.mark.parametrize("commits", ["while catching up", "too late"])
async def test_a_writer_that_published_while_the_stream_was_away_and_commits_later(blog, dsn, server_dsn, commits):
    """A writer decides whether to notify when it publishes. One that published while the stream
    was away (so did not notify it) and commits after the stream's first read of the log comes
    from the log all the same: the stream reads the log until every transaction older than its
    return has ended. One still running when the catch-up gives up gets a Gap that says so."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        set_engine(conn, log="on")
    stream = EventStream(dsn, max_backoff=0.2, catch_up_max=1.5)
    items: list = []

    async def consume() -> None:
        async for batch in stream.batches():
            items.extend(batch)

    task = asyncio.create_task(consume())
    try:
        with psycopg.connect(dsn) as writer:                   # one transaction, open across the return
            xid = await straddle_a_gap(stream, writer, server_dsn, dsn)
            await asyncio.sleep(0.3)                            # the stream has read the log: nothing yet
            assert not events_only(items)
            if commits == "too late":
                await eventually(lambda: len([i for i in items if isinstance(i, Gap)]) == 2, "the catch-up given up")
            writer.commit()
            if commits == "while catching up":
                await eventually(lambda: len(events_only(items)) == 2, "the straddling writer's events")
    finally:
        stream.stop()
        await task
    gaps = [i for i in items if isinstance(i, Gap)]
    if commits == "while catching up":
        assert [(e.xid, e.tview) for e in events_only(items)] == [(xid, "tv_user"), (xid, "tv_post")]
        assert len(gaps) == 1 and gaps[0].from_log
    else:
        assert len(gaps) == 2 and gaps[0].from_log and not gaps[1].from_log
        assert "were still running after 1.5 s" in gaps[1].describe()


@pytest.mark.engine
async def test_events_notified_during_a_catch_up_are_handed_out_once(blog, dsn, server_dsn):
    """While a stream back from a gap reads the log (a writer from before its return keeps it
    reading), other writers' events reach it twice: notified, and read from the log, in either
    order, some while the stream runs its log query. Each is handed out once, none is lost."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        set_engine(conn, log="on")
    stream = EventStream(dsn, max_backoff=0.2)
    items: list = []

    async def consume() -> None:
        async for batch in stream.batches():
            items.extend(batch)

    def seen() -> list[tuple[str, str]]:
        return [(e.xid, e.tview) for e in events_only(items)]

    task = asyncio.create_task(consume())
    try:
        with psycopg.connect(dsn) as straddler, psycopg.connect(dsn) as writer:
            straddling = await straddle_a_gap(stream, straddler, server_dsn, dsn)
            xids = []
            for n in range(20):
                xids.append(clear_of(writer, straddling))
                writer.execute("UPDATE tb_user SET name = %s WHERE pk_user = 2", (f"during {n}",))
                writer.commit()
                await asyncio.sleep(0.03)      # spread over several of the catch-up's log reads
            expected = [(xid, tview) for xid in xids for tview in ("tv_user", "tv_post")]
            await eventually(lambda: set(expected) <= set(seen()), "the events of the writes during the catch-up")
            assert stream._catch_up is not None, "the catch-up was still reading the log"
            straddler.commit()
            await eventually(lambda: (straddling, "tv_post") in seen(), "the straddling writer's events")
            await asyncio.sleep(0.3)           # anything handed out twice would have come by now
    finally:
        stream.stop()
        await task
    assert sorted(seen()) == sorted(expected + [(straddling, "tv_user"), (straddling, "tv_post")])


@pytest.mark.engine
async def test_polling_the_log_yields_the_same_events_as_listen(blog, dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        set_engine(conn, log="on")
    listening = EventStream(dsn)
    polling = EventStream(dsn, poll=True, poll_interval=0.1)
    want = lambda items: len(events_only(items)) >= 4  # noqa: E731
    tasks = [asyncio.create_task(drain(s, want)) for s in (listening, polling)]
    await eventually(lambda: listening.connected and polling.connected, "both streams reading")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE tb_user SET name = 'a' WHERE pk_user = 1")
        conn.execute("DELETE FROM tb_post WHERE pk_post = 3")
        conn.execute("INSERT INTO tb_user VALUES (9, 'nine')")
    heard, polled = await asyncio.gather(*tasks)
    for s in (listening, polling):
        await s.close()

    def key(e: Event):
        return (e.tview, e.op, e.xid, e.keys, e.rows)

    assert [key(e) for e in events_only(heard)] == [key(e) for e in events_only(polled)]
    assert all(e.log_id is not None for e in events_only(polled))


@pytest.mark.engine
def test_tail_cli_prints_json_lines_and_stops_on_ctrl_c(blog, dsn):
    proc = subprocess.Popen([sys.executable, "-m", "tview_tui", "tail", dsn, "--json", "--tview", "post"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PGAPPNAME": "events tail"})
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            deadline = time.monotonic() + 20
            while not conn.execute("SELECT count(*) FROM tview.listeners WHERE application_name = 'events tail'"
                                   ).fetchone()[0]:
                assert proc.poll() is None and time.monotonic() < deadline, "the tail did not start listening"
                time.sleep(0.02)
            conn.execute("UPDATE tb_user SET name = 'tailed' WHERE pk_user = 3")
        line = proc.stdout.readline()
        event = json.loads(line)
        assert event["tview"] == "tv_post" and event["source"] == "tb_user"   # filtered: no tv_user
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Traceback" not in err


@pytest.mark.engine
def test_tail_since_reads_the_log(blog, dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        set_engine(conn, log="on")
        conn.execute("UPDATE tb_user SET name = 'old news' WHERE pk_user = 1")
    proc = subprocess.Popen([sys.executable, "-m", "tview_tui", "tail", dsn, "--since", "5m"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        first = proc.stdout.readline()
        second = proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert "public.tv_user" in first and "UPDATE" in first
    assert "public.tv_post" in second


@pytest.mark.engine
def test_boolean_settings_read_like_postgres_booleans(blog, plain_listener, dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        set_engine(conn, notify="true")                    # on, nobody registered: sent anyway
        conn.execute("UPDATE tb_user SET name = 'true is on' WHERE pk_user = 1")
        assert len(collect(plain_listener, expect=2)) == 2
        conn.execute("SET tview.notify = 'no'")            # a session may turn it down
        conn.execute("UPDATE tb_user SET name = 'no is off' WHERE pk_user = 1")
        assert collect(plain_listener, timeout=0.5) == []
        conn.execute("SET tview.notify = 'maybe'")
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute("UPDATE tb_user SET name = 'refused' WHERE pk_user = 1")
        conn.execute("RESET tview.notify")
        set_engine(conn, notify="maybe")
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            conn.execute("UPDATE tb_user SET name = 'refused' WHERE pk_user = 1")


@pytest.mark.engine
def test_notify_auto_sends_events_only_while_a_registered_listener_is_connected(blog, plain_listener, dsn):
    """`plain_listener` only runs LISTEN: it hears what is sent but does not make anyone send."""
    def rename(conn: psycopg.Connection, name: str) -> None:
        conn.execute("UPDATE tb_user SET name = %s WHERE pk_user = 1", (name,))

    with psycopg.connect(dsn, autocommit=True) as writer, psycopg.connect(dsn, autocommit=True) as registered:
        writer.execute("SET tview.notify = auto")
        rename(writer, "nobody registered")
        assert collect(plain_listener, timeout=0.5) == []

        registered.execute("SELECT tview.listen()")
        rename(writer, "one registered")
        assert [e["tview"] for e in collect(plain_listener, expect=2)] == ["tv_user", "tv_post"]
        assert [n.payload for n in registered.notifies(timeout=2, stop_after=2)] != []

        registered.execute("SELECT tview.unlisten()")
        rename(writer, "unregistered")
        assert collect(plain_listener, timeout=0.5) == []

        registered.execute("SELECT tview.listen()")
        pid = registered.info.backend_pid
    # `registered` is gone without unlisten: its row stays but no longer counts
    with psycopg.connect(dsn, autocommit=True) as writer:
        assert writer.execute("SELECT count(*) FROM tview.listeners WHERE pid = %s", (pid,)).fetchone()[0] == 1
        writer.execute("SET tview.notify = auto")
        deadline = time.monotonic() + 5
        while writer.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]:
            assert time.monotonic() < deadline, "the closed session is still there"
            time.sleep(0.05)
        rename(writer, "listener gone")
        assert collect(plain_listener, timeout=0.5) == []
        writer.execute("SELECT tview.listen()")                # clears what is left of the dead one
        assert writer.execute("SELECT array_agg(pid) FROM tview.listeners").fetchone()[0] == [writer.info.backend_pid]
        writer.execute("SET tview.notify = 'sometimes'")
        with pytest.raises(psycopg.errors.InvalidParameterValue) as err:
            rename(writer, "refused")
        assert err.value.diag.message_hint == "Use on, off or auto."


@pytest.mark.engine
async def test_an_event_stream_registers_itself_so_notify_auto_reaches_it(blog, dsn):
    stream = EventStream(dsn)
    task = asyncio.create_task(drain(stream, lambda items: len(events_only(items)) >= 2))
    with psycopg.connect(dsn, autocommit=True) as writer:
        deadline = time.monotonic() + 10
        while not writer.execute("SELECT count(*) FROM tview.listeners").fetchone()[0]:
            assert time.monotonic() < deadline, "the stream did not register"
            await asyncio.sleep(0.05)
        writer.execute("SET tview.notify = auto")
        writer.execute("UPDATE tb_user SET name = 'auto' WHERE pk_user = 1")
        items = await task
        await stream.close()
        assert [e.tview for e in events_only(items)] == ["tv_user", "tv_post"]
        assert writer.execute("SELECT array_agg(pid) FROM tview.listeners").fetchone()[0] is None   # unregistered on close


@pytest.mark.engine
async def test_polling_delivers_events_committed_out_of_log_order(blog, dsn):
    """A transaction holding a smaller log id commits after a bigger id was read: still delivered;
    the id of a rolled-back transaction is given up once no transaction can commit it."""
    stream = EventStream(dsn, poll=True, poll_interval=0.05)
    items: list = []

    async def consume() -> None:
        async for batch in stream.batches():
            items.extend(batch)

    def xids() -> list[str]:
        return [i.xid for i in items if isinstance(i, Event)]

    async def until(condition) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, items
            await asyncio.sleep(0.05)

    task = asyncio.create_task(consume())
    slow, aborted = psycopg.connect(dsn), psycopg.connect(dsn)
    try:
        await until(lambda: stream.connected)
        set_engine(slow, log="on")
        slow.execute("UPDATE tb_user SET name = 'slow' WHERE pk_user = 1")        # takes the smaller ids
        slow_xid = slow.execute("SELECT pg_current_xact_id()::text").fetchone()[0]
        aborted_xid = clear_of(aborted, slow_xid)
        aborted.execute("UPDATE tb_user SET name = 'aborted' WHERE pk_user = 2")
        with psycopg.connect(dsn) as fast:
            clear_of(fast, slow_xid, aborted_xid)
            fast.execute("UPDATE tb_post SET title = 'fast' WHERE pk_post = 2")   # user 3's
            fast.commit()
        await until(lambda: len(xids()) == 1)                                   # the fast one, read first
        slow.commit()
        aborted.rollback()
        await until(lambda: slow_xid in xids())
        await until(lambda: not stream._holes)                                 # the aborted ids given up
    finally:
        slow.close()
        aborted.close()
        stream.stop()
        await task
    assert xids().count(slow_xid) == 2                                         # tv_user and tv_post, once each
