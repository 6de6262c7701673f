"""Cascade traces: the events of one transaction (same xid) as a tree, to answer "why was
this write slow": the written table, then each TVIEW refreshed in order, indented by its
depth in the cascade, with mode, rows and time, and the slowest step marked.

Events carry the statement's written table as ``source`` and their cascade ``depth``; the
engine refreshes level by level, so the events of one statement arrive depth 0 first. A new
statement starts where the written table or operation changes, or where depth falls back to 0
after deeper steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .events import Event


@dataclass
class Statement:
    """One written table's cascade inside the transaction."""

    source: str | None
    op: str
    steps: list[Event] = field(default_factory=list)

    @property
    def us(self) -> int:
        return sum(e.us for e in self.steps)


@dataclass
class Trace:
    xid: str
    pid: int
    statements: list[Statement] = field(default_factory=list)

    @property
    def events(self) -> list[Event]:
        return [e for s in self.statements for e in s.steps]

    @property
    def us(self) -> int:
        return sum(s.us for s in self.statements)

    @property
    def rows(self) -> int:
        return sum(e.rows for e in self.events)

    @property
    def slowest(self) -> Event | None:
        return max(self.events, key=lambda e: e.us, default=None)

    def nodes(self) -> set[str]:
        """The written tables and TVIEWs of the trace (the path to light in the graph)."""
        return {e.name for e in self.events} | {s.source for s in self.statements if s.source}

    def rows_per_tview(self) -> dict[str, int]:
        """Rows written per TVIEW, in cascade order."""
        split: dict[str, int] = {}
        for event in self.events:
            split[event.name] = split.get(event.name, 0) + event.rows
        return split

    def summary(self) -> str:
        slowest = self.slowest
        worst = f" · slowest {slowest.name} {slowest.ms:.3f} ms" if slowest else ""
        return (f"transaction {self.xid} (pid {self.pid}): {len(self.statements)} statement(s),"
                f" {len(self.events)} refresh(es), {self.rows} row(s), {self.us / 1000:.3f} ms{worst}")

    def lines(self) -> list[tuple[str, bool]]:
        """The tree as text lines, each with whether it is the slowest step."""
        slowest = self.slowest
        out: list[tuple[str, bool]] = [(self.summary(), False)]
        for statement in self.statements:
            out.append((f"{statement.op} {statement.source or '(refresh)'}  {statement.us / 1000:.3f} ms", False))
            for event in statement.steps:
                indent = "   " * event.depth
                keys = ",".join(map(str, event.keys[:10]))
                more = len(event.keys) - min(len(event.keys), 10) + event.keys_more
                keys += f",+{more}" if more else ""
                out.append((f"{indent}└─ {event.name}  d{event.depth} {event.mode}  rows {event.rows}"
                            f" (upserted {event.upserted}, patched {event.patched}, deleted {event.deleted})"
                            f"  {event.ms:.3f} ms  keys [{keys}]", event is slowest))
        return out

    def text(self) -> str:
        return "\n".join(line + ("   <- slowest" if slow else "") for line, slow in self.lines())


def build(events: Iterable[Event]) -> Trace | None:
    """The trace of the given events of one transaction, in arrival order."""
    trace: Trace | None = None
    current: Statement | None = None
    for event in events:
        if trace is None:
            trace = Trace(event.xid, event.pid)
        new_statement = (current is None or (event.source, event.op) != (current.source, current.op)
                         or (event.depth == 0 and current.steps[-1].depth > 0))
        if new_statement:
            current = Statement(event.source, event.op)
            trace.statements.append(current)
        assert current is not None
        current.steps.append(event)
    return trace


def of_transaction(events: Iterable[Event], xid: str, pid: int | None = None) -> Trace | None:
    """The trace of one transaction among other events (``pid`` tells apart equal xids of
    different databases)."""
    return build(e for e in events if e.xid == xid and (pid is None or e.pid == pid))


class Grouper:
    """Groups a stream of events into traces: events of one transaction are notified together
    at its commit, so a trace ends where another transaction's events begin, or on flush()."""

    def __init__(self) -> None:
        self._pending: list[Event] = []

    def add(self, event: Event) -> Trace | None:
        """Add one event; returns the previous transaction's trace when this one starts another."""
        done = None
        if self._pending and (event.xid, event.pid) != (self._pending[0].xid, self._pending[0].pid):
            done = self.flush()
        self._pending.append(event)
        return done

    def flush(self) -> Trace | None:
        pending, self._pending = self._pending, []
        return build(pending)
