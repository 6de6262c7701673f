"""Measure the app under load: startup with many TVIEWs, tail throughput, key latency, memory.

`tview-tui ui-bench` runs it against a temporary embedded server (or a DSN): it creates the
TVIEWs, starts the app headless, floods the event channel from a second connection at a
target rate, presses keys meanwhile and prints what it measured.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from dataclasses import dataclass

from textual.widgets import DataTable

from .. import scratch
from ..config import Config
from ..connection import Target, connect, one
from ..events import percentile
from ..ui.app import TviewApp
from ..ui.tail import TailScreen
from .memory import memory_kb

SIZE = (140, 40)


@dataclass
class UiBenchResult:
    tviews: int
    startup_ms: float
    target_rate: int
    seconds: float
    produced: int
    consumed: int                # received by the app's event stream process
    not_sent: int                # of those, counted there but not sent to the app (too many to show)
    key_latency_ms: list[float]
    rss_mb: list[float]          # resident memory of the app sampled along the run
    stream_rss_mb: list[float]   # and of its event stream process
    buffer_len: int

    def report(self) -> str:
        keys = sorted(self.key_latency_ms)
        p95 = percentile(keys, 95) if keys else float("nan")
        return "\n".join([
            f"startup to first screen with {self.tviews} TVIEWs: {self.startup_ms:.0f} ms (target < 1000 ms)",
            f"events produced {self.produced} in {self.seconds:.0f} s ({self.produced / self.seconds:.0f}/s,"
            f" target {self.target_rate}/s); received by the app's event stream {self.consumed}"
            f" ({100 * self.consumed / max(self.produced, 1):.1f}%), of which sent to the screens"
            f" {self.consumed - self.not_sent} (the newest of each update)",
            f"key press handled: median {statistics.median(keys) if keys else float('nan'):.1f} ms,"
            f" p95 {p95:.1f} ms, max {max(keys) if keys else float('nan'):.1f} ms over {len(keys)} presses"
            " (target < 50 ms)",
            f"memory (RSS): app {memory(self.rss_mb)}; event stream process {memory(self.stream_rss_mb)};"
            f" event buffer {self.buffer_len} items (bounded)",
        ])


def memory(samples: list[float]) -> str:
    return f"{samples[0]:.0f} MB at start, {max(samples):.0f} MB peak, {samples[-1]:.0f} MB at the end"


def rss_mb(pid: int | str = "self") -> float:
    return memory_kb(pid)[0] / 1024


def create_tviews(dsn: str, count: int) -> None:
    """One small base table and `count` TVIEWs over it (the startup case)."""
    with connect(Target(dsn, application_name="tview-tui ui-bench"), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS tb_item (pk_item int PRIMARY KEY, label text)")
        conn.execute("INSERT INTO tb_item SELECT g, 'item ' || g FROM generate_series(1, 100) g ON CONFLICT DO NOTHING")
        existing = one(conn.execute("SELECT count(*) FROM tview.tviews"))[0]
        for n in range(existing, count):
            conn.execute("SELECT tview.create(%s, %s)", (
                f"item_{n:04d}",
                f"SELECT i.pk_item, jsonb_build_object('label', i.label, 'n', {n}) AS data FROM tb_item i"))


def flood(dsn: str, rate: int, seconds: float, stop: threading.Event, counter: list[int]) -> None:
    """Send protocol-v1 events at `rate` per second (in 10 ms batches) from one connection."""
    payload = ('{"v":1,"ts":"2026-11-24T10:00:00Z","pid":1,"xid":"%s","schema":"public","tview":"tv_item_'
               '%s","source":"tb_item","op":"UPDATE","depth":0,"mode":"recompute","rows":1,"upserted":1,'
               '"patched":0,"deleted":0,"us":%s,"keys":[1],"keys_more":0}')
    per_batch = max(1, rate // 100)
    with connect(Target(dsn, application_name="tview-tui ui-bench flood"), autocommit=True) as conn:
        started = time.monotonic()
        sent = 0
        while not stop.is_set() and time.monotonic() - started < seconds:
            conn.execute(     # each event its own transaction id: none is a repeat the stream drops
                "SELECT count(pg_notify('tview_events', format(%s, %s + g, lpad((g %% 200)::text, 4, '0'),"
                " 100 + g %% 900))) FROM generate_series(1, %s) g", (payload, sent, per_batch))
            sent += per_batch
            counter[0] = sent
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


async def run(dsn: str, tviews: int = 200, rate: int = 50_000, seconds: float = 30.0) -> UiBenchResult:
    create_tviews(dsn, tviews)
    app = TviewApp(Target(dsn), config=Config(path=None, refresh_interval=2.0))
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        while not (app.screen.query("#tviews") and app.screen.query_one("#tviews", DataTable).row_count >= tviews):
            await pilot.pause(0.01)
        startup_ms = (time.perf_counter() - started) * 1000
        await pilot.press("2")                   # the live tail, the busiest screen
        while not (app.stream and app.stream.connected):
            await pilot.pause(0.05)
        stop, counter = threading.Event(), [0]
        writer = threading.Thread(target=flood, args=(dsn, rate, seconds, stop, counter), daemon=True)
        seq_before, not_sent_before = app.event_seq, app.events_not_sent
        writer.start()
        latencies: list[float] = []
        rss_samples: list[float] = [rss_mb()]
        stream_pid = app.stream.process.pid
        assert stream_pid is not None
        stream_rss = [rss_mb(stream_pid)]
        t0 = time.monotonic()
        while writer.is_alive() and time.monotonic() - t0 < seconds + 5:
            screen = app.screen
            assert isinstance(screen, TailScreen)
            before = screen.paused
            pressed = time.perf_counter()
            app.simulate_key("space")            # queued like a real key: pause/resume the tail
            while screen.paused == before:
                # a plain sleep: Pilot.pause would make every widget process a message and
                # repaint the screen on each poll, work the app does not do for a real key
                await asyncio.sleep(0.001)
            latencies.append((time.perf_counter() - pressed) * 1000)
            rss_samples.append(rss_mb())
            stream_rss.append(rss_mb(stream_pid))
            await pilot.pause(0.5)
        stop.set()
        writer.join(10)
        await pilot.pause(1.0)                   # let the stream drain
        consumed, not_sent = app.event_seq - seq_before, app.events_not_sent - not_sent_before
        buffer_len = len(app.event_buffer)
    return UiBenchResult(tviews, startup_ms, rate, seconds, counter[0], consumed, not_sent, latencies, rss_samples,
                         stream_rss, buffer_len)


def main(dsn: str | None, tviews: int, rate: int, seconds: float) -> str:
    """The `ui-bench` subcommand's report: on the given database, or on a scratch one."""
    if dsn is not None:
        return asyncio.run(run(dsn, tviews, rate, seconds)).report()
    with (scratch.server(None, lambda _: None) as admin,
          scratch.database(admin, lambda _: None, prefix="tview_ui_bench") as scratch_dsn):
        return asyncio.run(run(scratch_dsn, tviews, rate, seconds)).report()
