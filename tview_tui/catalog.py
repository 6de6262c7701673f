"""Every catalog query and engine call the app and the CLI make, in one place.

Probes run under a short statement_timeout so a busy server slows the screen down
instead of freezing it; nothing here keeps a transaction open.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from .connection import TviewError, error_from_db, one
from .keys import format_keys

PROBE_TIMEOUT_MS = 2000
EXACT_COUNT_MAX_BYTES = 16 * 1024 * 1024  # count rows exactly below this size, else estimate


@dataclass(frozen=True)
class TviewInfo:
    """One TVIEW as the list screen shows it. ``id`` is its catalog entry; ``label`` its name as
    the server spells it (tview._label: schema.tv_name, quoted where needed), which is how
    findings, the graph and every screen name it."""

    id: int
    label: str
    schema: str
    name: str            # without tv_
    mode: str
    topo_level: int
    key_column: str
    rows: int | None
    rows_exact: bool
    bytes: int
    lineage: str         # 'incremental', or 'full (tb_x, ...)'
    full_sources: tuple[str, ...]

    @property
    def event_name(self) -> str:
        """How its events name it (:attr:`events.Event.name`): the protocol carries the schema
        and the table apart, unquoted."""
        return f"{self.schema}.tv_{self.name}"


@dataclass(frozen=True)
class Dependency:
    tview: str           # the label of the TVIEW reading the source
    source: str          # the relation read, schema-qualified as the server spells it
    source_kind: str     # table | tview
    lineage: str


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class PatchPath:
    """A place in the document patched in place when an embedded TVIEW changes."""

    path: str          # e.g. comments
    kind: str          # object | array
    source: str        # the embedded TVIEW
    detail: str        # how rows are matched (link column, or parent column and order)


@dataclass
class TviewDetail:
    info: TviewInfo
    definition: str
    columns: list[Column] = field(default_factory=list)
    reads: list[Dependency] = field(default_factory=list)
    analysis: str | None = None
    patch_paths: list[PatchPath] = field(default_factory=list)


@dataclass(frozen=True)
class RefreshResult:
    tview: str                     # its label
    event_name: str                # and how its events name it (the split's keys)
    keys: tuple[int, ...] | None   # None: whole TVIEW
    rows_written: int              # in this TVIEW and every TVIEW the cascade reached
    ms: float
    xid: str | None = None         # the transaction: its events split the rows per TVIEW

    def describe(self, split: dict[str, int] | None = None) -> str:
        """One line; ``split`` (rows per TVIEW, from the transaction's events) names each TVIEW's share."""
        what = "whole TVIEW" if self.keys is None else f"{len(self.keys)} key(s)"
        head = f"refreshed {self.tview} ({what}): "
        if not split or self.event_name not in split:
            return f"{head}{self.rows_written} row(s) written in {self.ms:.1f} ms, counting the TVIEWs that read it"
        others = ", ".join(f"{name} {rows}" for name, rows in split.items() if name != self.event_name)
        return (f"{head}{split[self.event_name]} row(s) written in {self.ms:.1f} ms"
                + (f"; then the TVIEWs that read it: {others}" if others else ""))


    def text(self, split: dict[str, int] | None = None) -> str:
        """The whole result: every key, and the rows each TVIEW got (once the events told)."""
        keys = "whole TVIEW" if self.keys is None else f"{len(self.keys)} key(s): {format_keys(self.keys)}"
        lines = [f"refreshed  {self.tview}", f"what       {keys}", f"took       {self.ms:.1f} ms",
                 f"written    {self.rows_written} row(s), counting the TVIEWs that read it",
                 f"transaction {self.xid or '- (nothing written)'}"]
        if split:
            lines += ["", "rows written per TVIEW, in cascade order:"]
            lines += [f"  {name}  {rows}" for name, rows in split.items()]
        return "\n".join(lines)


def _probe(conn: psycopg.Connection) -> None:
    conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(PROBE_TIMEOUT_MS)))


LIST_QUERY = """
SELECT t.id, tview._label(t.schema_name, t.name), t.schema_name, t.name, t.mode, t.topo_level, t.key_column,
       c.reltuples::bigint, pg_total_relation_size(t.table_oid),
       coalesce(array_agg(d.source_oid::regclass::text ORDER BY d.source_oid)
                FILTER (WHERE d.lineage = 'full'), '{}')
FROM tview.tviews t
JOIN pg_class c ON c.oid = t.table_oid
LEFT JOIN tview.dependencies d ON d.tview_id = t.id
GROUP BY t.id, c.reltuples
ORDER BY t.schema_name, t.name
"""


def list_tviews(conn: psycopg.Connection) -> list[TviewInfo]:
    """All TVIEWs with size and lineage; rows exact for small tables, estimated otherwise."""
    with conn.transaction():
        _probe(conn)
        rows = conn.execute(LIST_QUERY).fetchall()
        small = [(r[0], r[2], r[3]) for r in rows if r[8] <= EXACT_COUNT_MAX_BYTES]
        exact: dict[int, int] = {}
        if small:
            union = sql.SQL(" UNION ALL ").join(
                sql.SQL("SELECT {}::int, count(*) FROM {}").format(
                    sql.Literal(tid), sql.Identifier(schema, f"tv_{name}"))
                for tid, schema, name in small)
            exact = dict(conn.execute(union).fetchall())
    result = []
    for tid, label, schema, name, mode, level, key, estimate, size, full in rows:
        count = exact.get(tid, estimate if estimate >= 0 else None)
        result.append(TviewInfo(
            id=tid, label=label, schema=schema, name=name, mode=mode, topo_level=level, key_column=key,
            rows=count, rows_exact=tid in exact, bytes=size,
            lineage=("full (" + ", ".join(full) + ")") if full else "incremental",
            full_sources=tuple(full)))
    return result


GRAPH_QUERY = "SELECT tview, source, source_kind, lineage FROM tview.graph ORDER BY 1, 2"


def dependencies(conn: psycopg.Connection) -> list[Dependency]:
    """Every edge TVIEW -> relation it reads (the graph of the whole database), from the engine's
    tview.graph. Its relations are spelled by regclass, which leaves out a schema on the
    search_path: under the engine's own search_path every name is schema-qualified, as labels are."""
    with conn.transaction():
        _probe(conn)
        conn.execute("SET LOCAL search_path = pg_catalog, pg_temp")
        return [Dependency(*row) for row in conn.execute(GRAPH_QUERY).fetchall()]


def detail(conn: psycopg.Connection, info: TviewInfo) -> TviewDetail:
    """Definition, columns, what it reads and why lineage may be full."""
    with conn.transaction():
        _probe(conn)
        found = conn.execute(
            "SELECT definition, analysis, table_oid FROM tview.tviews WHERE id = %s", (info.id,)).fetchone()
        if found is None:
            raise TviewError(f"TVIEW {info.label} no longer exists", sqlstate="42P01")
        definition, analysis, table_oid = found
        patches = [PatchPath(*r) for r in conn.execute(PATCH_QUERY, (info.id,))] if _has_patching(conn) else []
        columns = [Column(*r) for r in conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table_oid,))]
    reads = [d for d in dependencies(conn) if d.tview == info.label]
    return TviewDetail(info=info, definition=definition, columns=columns, reads=reads, analysis=analysis,
                       patch_paths=patches)


PATCH_QUERY = """
SELECT array_to_string(ARRAY(SELECT jsonb_array_elements_text(s -> 'path')), '.'),
       s ->> 'kind',
       (s ->> 'source_oid')::oid::regclass::text,
       CASE s ->> 'kind'
           WHEN 'object' THEN format('matched on %%s = %%s', s ->> 'link_column', s ->> 'source_key')
           ELSE format('elements of %%s = key, ordered by %%s%%s', s ->> 'parent_column', s ->> 'source_key',
                       CASE WHEN (s ->> 'descending')::boolean THEN ' DESC' ELSE '' END) END
FROM tview.tviews t, jsonb_array_elements(t.patch_specs) s
WHERE t.id = %s
"""


def _has_patching(conn: psycopg.Connection) -> bool:
    """Engines before smart patching have no patch_specs column."""
    return one(conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'tview.tviews'::regclass"
        " AND attname = 'patch_specs' AND NOT attisdropped)"))[0]


def refresh(conn: psycopg.Connection, info: TviewInfo, keys: list[int] | None = None) -> RefreshResult:
    """Recompute a whole TVIEW (keys None) or some keys, cascading; timed on the client."""
    started = time.perf_counter()
    try:
        with conn.transaction():
            if keys is None:
                written = one(conn.execute("SELECT tview.refresh(%s)", (info.label,)))[0]
            else:
                written = one(conn.execute("SELECT tview.refresh(%s, %s::bigint[])", (info.label, keys)))[0]
            xid = one(conn.execute("SELECT pg_current_xact_id_if_assigned()::text"))[0]
    except psycopg.Error as exc:
        raise error_from_db(exc, f"cannot refresh {info.label}") from None
    return RefreshResult(info.label, info.event_name, tuple(keys) if keys is not None else None, int(written),
                         (time.perf_counter() - started) * 1000, xid)


@dataclass(frozen=True)
class Explained:
    """The plan of a TVIEW's keyed refresh: its definition restricted to some keys."""

    tview: str
    keys: tuple[int, ...]
    analyzed: bool
    query: str
    plan: list[str]

    def text(self) -> str:
        how = "EXPLAIN ANALYZE (run, then rolled back)" if self.analyzed else "EXPLAIN (not run)"
        keys = ",".join(map(str, self.keys[:20])) + (f",+{len(self.keys) - 20}" if len(self.keys) > 20 else "")
        return (f"{how} of the refresh of {self.tview} for key(s) [{keys}]:\n{self.query}\n\n"
                + "\n".join(self.plan))


def find_tview(conn: psycopg.Connection, name: str) -> TviewInfo:
    """A TVIEW by name: 'post', 'tv_post', 'public.tv_post' (one schema's, else the only one)."""
    schema, _, bare = name.rpartition(".")
    bare = bare.strip('"').removeprefix("tv_")
    found = [i for i in list_tviews(conn) if i.name == bare and (not schema or i.schema == schema.strip('"'))]
    if len(found) == 1:
        return found[0]
    if found:
        raise TviewError(f"TVIEW {name} is ambiguous: {', '.join(i.label for i in found)}",
                         hint="qualify it with its schema", sqlstate="42P01")
    raise TviewError(f"no TVIEW {name} in this database", sqlstate="42P01",
                     hint="tview-tui status lists how many there are; the app's list shows them")


def explain(conn: psycopg.Connection, info: TviewInfo, keys: list[int] | None = None,
            analyze: bool = False) -> Explained:
    """EXPLAIN [ANALYZE] of ``SELECT * FROM v_<name> WHERE <key> = ANY(keys)``: what a refresh
    of those keys recomputes. Everything runs in a transaction that is rolled back; with no
    keys, one existing key is used."""
    view = sql.Identifier(info.schema, f"v_{info.name}")
    key = sql.Identifier(info.key_column)
    query = sql.SQL("SELECT * FROM {} WHERE {} = ANY(%s::bigint[])").format(view, key)
    options = sql.SQL("ANALYZE, BUFFERS" if analyze else "COSTS")
    try:
        with conn.transaction(force_rollback=True):
            if not keys:
                row = conn.execute(sql.SQL("SELECT {} FROM {} LIMIT 1").format(
                    key, sql.Identifier(info.schema, f"tv_{info.name}"))).fetchone()
                keys = [row[0]] if row else [0]
            plan = [r[0] for r in conn.execute(sql.SQL("EXPLAIN ({}) ").format(options) + query, (keys,))]
            text = query.as_string(conn).replace("%s::bigint[]", "ARRAY[keys]")
    except psycopg.Error as exc:
        raise error_from_db(exc, f"cannot explain {info.label}") from None
    return Explained(info.label, tuple(keys), analyze, text, plan)


def can_write(conn: psycopg.Connection) -> bool:
    """Whether this session may refresh (not read-only, and allowed to write a TVIEW)."""
    with conn.transaction():
        read_only = one(conn.execute("SHOW transaction_read_only"))[0] == "on"
        if read_only:
            return False
        row = one(conn.execute("SELECT bool_and(has_table_privilege(table_oid, 'UPDATE')) FROM tview.tviews"))
    return row[0] is not False


VERIFY_NAMES = "SELECT tview._label(schema_name, name) FROM tview.tviews ORDER BY topo_level, id"
VERIFY = "SELECT key, problem FROM tview.verify(%s)"


def verify_all(conn: psycopg.Connection) -> dict[str, list[tuple[int, str]]]:
    """The oracle over every TVIEW, every row (tview.verify): TVIEW -> (key, problem) rows that
    differ from its definition; empty lists when all is right. No timeout: it reads everything."""
    with conn.transaction():
        names = [r[0] for r in conn.execute(VERIFY_NAMES)]
        return {name: [tuple(r) for r in conn.execute(VERIFY, (name,))] for name in names}
