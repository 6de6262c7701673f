"""The app's event stream, in a process of its own.

Receiving and parsing thousands of notifications a second costs CPU and, in the app's own
process, the interpreter lock that key presses wait for. So the app runs an
:class:`~tview_tui.events.EventStream` in a child process (spawn), which keeps the rolling
statistics (:class:`~tview_tui.events.StatsBook`) there and sends the app, every
SEND_INTERVAL, one compact :class:`Update`: the statistics that changed, the newest events
(at most SEND_MAX, numbered, with a count of those not sent), every gap, and the
connection's state. The app applies an update with a few bulk operations, whatever the rate.

The child ends with the app: when asked (SIGTERM, after which it unregisters as a listener),
when the pipe to the app breaks, or when its parent process is gone (the app was killed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from .connection import Target
from .events import Event, EventStream, Gap, Item, StatsBook, TviewSummary

SEND_INTERVAL = 0.2     # seconds between updates (the tail reads the app's buffer every 0.2 s too)
SUMMARY_INTERVAL = 1.0  # seconds between two sendings of a TVIEW's figures (each takes a sort of its timings)
SEND_MAX = 500          # newest items per update; older ones are counted as not sent
GAPS_MAX = 100          # gaps kept for one update (they come one per reconnect)
STOP_TIMEOUT = 2.0      # seconds the child gets to unregister and end before it is killed
NICE = 5                # the child's lower scheduling priority: the app's own process runs first


@dataclass
class Update:
    """What the stream process sends the app a few times a second."""

    seq: int                                   # items received so far: the last one's number
    items: list[tuple[int, Item]]              # newest since the last update, numbered, oldest first
    not_sent: int                              # items received since the last update and not in ``items``
    stats: dict[str, TviewSummary]             # TVIEWs whose figures changed since the last update
    sources: dict[str, float]                  # written table -> cascades it started in the last minute
    connected: bool
    standby: bool                              # reading the log of a hot standby, not listening
    reconnects: int
    malformed: int


@dataclass
class LiveStats:
    """The app's copy of the statistics: read by the screens, replaced by updates."""

    by_tview: dict[str, TviewSummary] = field(default_factory=dict)
    sources: dict[str, float] = field(default_factory=dict)

    def get(self, name: str) -> TviewSummary | None:
        return self.by_tview.get(name)


class Collector:
    """The child's side: counts and keeps what the next update sends (bounded memory)."""

    def __init__(self, seq: int = 0) -> None:
        self.book = StatsBook()
        self.seq = seq
        self.newest: deque[tuple[int, Item]] = deque(maxlen=SEND_MAX)
        self.gaps: deque[tuple[int, Item]] = deque(maxlen=GAPS_MAX)
        self.sent_seq = seq
        self.sent: dict[str, TviewSummary] = {}
        self.sent_at: dict[str, float] = {}     # monotonic time each TVIEW's figures were last sent

    def add(self, batch: list[Item]) -> None:
        self.book.add(batch)
        kept = max(0, len(batch) - SEND_MAX)     # only the newest can be sent; every gap is
        self.newest.extend(zip(itertools.count(self.seq + 1 + kept), batch[kept:]))
        self.gaps.extend((self.seq + 1 + n, item) for n, item in enumerate(batch) if isinstance(item, Gap))
        self.seq += len(batch)

    def update(self, stream: EventStream) -> Update:
        items = whole_transactions(list(self.newest), cut=bool(self.newest) and self.newest[0][0] > self.sent_seq + 1)
        oldest = items[0][0] if items else self.seq + 1
        items = [gap for gap in self.gaps if gap[0] < oldest] + items    # a gap is never left out
        self.newest.clear()
        self.gaps.clear()
        changed = {}
        now = time.monotonic()
        for name, stats in self.book.by_tview.items():
            before = self.sent.get(name)
            if before is None or (now - self.sent_at[name] >= SUMMARY_INTERVAL and (
                    before.count != stats.count or before.per_minute != stats.per_minute(now))):
                changed[name] = self.sent[name] = stats.summary(now)
                self.sent_at[name] = now
        update = Update(seq=self.seq, items=items, not_sent=self.seq - self.sent_seq - len(items), stats=changed,
                        sources={s: meter.per_minute() for s, meter in self.book.sources.items()},
                        connected=stream.connected, standby=stream.standby,
                        reconnects=stream.reconnects, malformed=stream.malformed)
        self.sent_seq = self.seq
        return update


def whole_transactions(items: list[tuple[int, Item]], cut: bool) -> list[tuple[int, Item]]:
    """Without the leading events of the oldest transaction when older items were cut off
    (part of it may be missing, and a trace of it would be wrong), unless that is all there is."""
    if not cut or not items or not isinstance(first := items[0][1], Event):
        return items
    for n, (_, item) in enumerate(items):
        if not (isinstance(item, Event) and (item.pid, item.xid) == (first.pid, first.xid)):
            return items[n:]
    return items


async def _serve(target: Target, pipe: Connection, parent: int, seq: int) -> None:
    stream = EventStream(target)
    collector = Collector(seq)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)

    async def consume() -> None:
        async for batch in stream.batches():
            collector.add(batch)

    consumer = asyncio.create_task(consume())
    try:
        while not stop.is_set() and not consumer.done() and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SEND_INTERVAL)
            try:
                pipe.send(collector.update(stream))     # blocks while the app is behind: back-pressure
            except (BrokenPipeError, ConnectionResetError):
                break                                    # the app is gone
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await stream.close()


def serve(target: Target, pipe: Connection, parent: int, seq: int) -> None:
    """The child process: stream, count and send until the app is gone or asks it to end.
    Items are numbered from ``seq`` + 1 (the app's numbers go on across a new process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # ctrl+c is the app's to handle
    os.nice(NICE)                                       # on a busy machine, key presses come first
    devnull = os.open(os.devnull, os.O_WRONLY)          # nothing may write over the app's screen
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    asyncio.run(_serve(target, pipe, parent, seq))


class EventProcess:
    """The app's handle on the stream process: its state, its updates, and stopping it."""

    def __init__(self, target: Target, seq: int = 0) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe(duplex=False)
        self.process = context.Process(target=serve, args=(target, child_end, os.getpid(), seq),
                                       name="tview-tui events", daemon=True)
        # Starting it may start multiprocessing's resource tracker, which is handed stderr's file
        # descriptor: the real one, not the capture Textual puts in sys.stderr while the app runs.
        with contextlib.redirect_stderr(sys.__stderr__):
            self.process.start()
        child_end.close()
        self.connected = False
        self.standby = False
        self.reconnects = 0
        self.malformed = 0
        self.stopped = False
        self._lock = threading.Lock()

    def receive(self, timeout: float) -> Update | None:
        """The next update, None if none came within ``timeout``; EOFError once the child ended."""
        if not self._pipe.poll(timeout):
            return None
        update: Update = self._pipe.recv()
        self.connected, self.standby = update.connected, update.standby
        self.reconnects, self.malformed = update.reconnects, update.malformed
        return update

    def stop(self) -> None:
        """End the child (it unregisters as a listener first) and wait for it, briefly; any thread."""
        with self._lock:
            self.stopped = True
            self.connected = False
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(STOP_TIMEOUT)
                if self.process.is_alive():
                    self.process.kill()
                    self.process.join()

    def close(self) -> None:
        """Stop the child and close the pipe (by the thread that receives)."""
        self.stop()
        self._pipe.close()
