"""`tview-tui bench`: measure the engine against what users would otherwise do.

Every workload is built in its own schemas of a fresh database (on a temporary embedded
server by default), one schema per *variant* of the same tables and rows:

* ``bare``      the write tables only: the floor any maintenance is compared with;
* ``composed``  TVIEWs user, comment (embeds its author) and post (embeds its author and the
                ordered array of its comments' documents): what smart patching is for;
* ``flat``      one TVIEW post whose definition reads the base tables only;
* ``hand``      the same single definition kept by a hand-written statement trigger
                (what users write today without the engine);
* ``mv``        the same single definition as a materialized view.

Because the variants use the same table names in different schemas, an arm is "a schema,
some settings, and the SQL to time", and the SQL text is identical across the arms it is
compared between. Arms run alternately (A1 B1 C1 A2 B2 C2 ...) so that drift of the
machine (caches, autovacuum, other load) spreads over all of them. Every timed operation
runs in its own transaction, with its settings set in it (the engine's with ALTER DATABASE, the
only place it reads them from), and is rolled back (or, when
the commit itself is what is measured, committed and then reverted) so that each run
starts from the same data. Timing is time.perf_counter around the client calls.

Each variant commits one change and its undo after it is built (the engine creates some
per-TVIEW functions lazily, at the first write), so runs measure the steady state of a
database in use. Before the timed runs each arm runs once untimed as a check: inside that
transaction the engine's event log says how each TVIEW was maintained (recompute, patch,
...) and tview.verify() says whether the written state is right; then a few untimed runs
let PostgreSQL's plan caches settle. After the runs the
oracle is checked again on the committed state. Nothing is ever estimated: an arm the
engine cannot run (smart patching before it exists) is reported as such, with no number.

Data shape (deterministic, no random()): users 1..U/2 write the comments, users U/2+1..U
the posts (so renaming a poster touches exactly the documents that embed them as author);
comments are spread evenly over posts; the large cascade gives one author its own block of
posts.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from . import installer
from .connection import Target, TviewError, error_from_db, one

WORKLOADS = ["medium", "single_row", "large_cascade", "bulk", "full_refresh", "locking", "events", "alter",
             "scale_m"]
DEFAULT_WORKLOADS = [w for w in WORKLOADS if w != "scale_m"]   # scale_m takes minutes: only on request
CLIENT_COUNTS = (1, 2, 4)
WARM_UP_RUNS, WARM_UP_SECONDS = 5, 1.0
NOT_IMPLEMENTED = "not implemented (the engine has no smart patching yet: no tview.patching)"


# -- sizes -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sizes:
    """Row counts of one data set; big_posts > 0 gives the last user that many posts."""

    users: int
    posts: int
    comments: int
    big_posts: int = 0

    def scaled(self, factor: float) -> Sizes:
        """Multiply every count, keeping the minimum the data shape needs (2 commenters, 2 posters)."""
        def times(n: int, least: int) -> int:
            return max(least, round(n * factor)) if n else 0
        posts = times(self.posts, 4)
        big = min(times(self.big_posts, 1), posts // 2)
        return Sizes(times(self.users, 4), posts, times(self.comments, 4), big)

    @property
    def commenters(self) -> int:
        return self.users // 2

    @property
    def poster(self) -> int:
        """A typical poster (writes posts, no comments): the author renamed by the cascades."""
        return self.commenters + 1

    @property
    def posts_per_poster(self) -> int:
        return (self.posts - self.big_posts) // (self.users - self.commenters - (1 if self.big_posts else 0))

    @property
    def big_author(self) -> int:
        return self.users

    @property
    def comment(self) -> int:
        """The comment edited by the single-row and leaf workloads."""
        return max(1, self.comments // 2)

    @property
    def post(self) -> int:
        return max(1, self.posts // 2)

    def describe(self) -> str:
        return f"{self.users:,} users, {self.posts:,} posts, {self.comments:,} comments"


FULL_SIZES = {
    "blog": Sizes(100, 1_000, 5_000),                  # the prior art's medium cascade
    "large": Sizes(100, 2_000, 5_000, big_posts=1_000),
    "refresh": Sizes(10_000, 100_000, 200_000),
    "scale_m": Sizes(10_000, 100_000, 1_000_000),
}
QUICK_SIZES = {
    "blog": Sizes(10, 40, 120),
    "large": Sizes(10, 60, 120, big_posts=30),
    "refresh": Sizes(20, 200, 400),
    "scale_m": Sizes(20, 200, 1_000),
}
BULK_ROWS = {"full": 10_000, "quick": 200}


# -- SQL: tables, data, definitions --------------------------------------------------------

TABLES_SQL = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text NOT NULL, email text NOT NULL);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int NOT NULL REFERENCES tb_user, title text NOT NULL);
CREATE TABLE tb_comment (pk_comment int PRIMARY KEY, fk_post int NOT NULL REFERENCES tb_post,
                         fk_user int NOT NULL REFERENCES tb_user, body text NOT NULL);
CREATE INDEX ON tb_post (fk_user);
CREATE INDEX ON tb_comment (fk_post);
CREATE INDEX ON tb_comment (fk_user);
"""

USER_DEF = """SELECT u.pk_user, jsonb_build_object('id', u.pk_user, 'name', u.name, 'email', u.email) AS data
FROM tb_user u"""

COMMENT_DEF = """SELECT c.pk_comment, c.fk_post, c.fk_user,
       jsonb_build_object('id', c.pk_comment, 'body', c.body, 'author', u.data) AS data
FROM tb_comment c JOIN tv_user u ON u.pk_user = c.fk_user"""

POST_DEF = """SELECT p.pk_post, p.fk_user,
       jsonb_build_object('id', p.pk_post, 'title', p.title, 'author', u.data,
                          'comments', coalesce((SELECT jsonb_agg(c.data ORDER BY c.pk_comment)
                                                FROM tv_comment c WHERE c.fk_post = p.pk_post),
                                               '[]'::jsonb)) AS data
FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user"""

# Comment's definition spelled differently (the same rows) and with one more key (every row differs).
COMMENT_DEF_RESPELLED = COMMENT_DEF.replace(" AS data", "  AS data")
COMMENT_DEF_WIDER = COMMENT_DEF.replace("'author', u.data)", "'author', u.data, 'v', 2)")

# The same post documents from the base tables only: one view, as a user would write it.
FLAT_POST_DEF = """SELECT p.pk_post, p.fk_user,
       jsonb_build_object(
           'id', p.pk_post, 'title', p.title,
           'author', jsonb_build_object('id', u.pk_user, 'name', u.name, 'email', u.email),
           'comments', coalesce((
               SELECT jsonb_agg(jsonb_build_object(
                          'id', c.pk_comment, 'body', c.body,
                          'author', jsonb_build_object('id', cu.pk_user, 'name', cu.name, 'email', cu.email))
                      ORDER BY c.pk_comment)
               FROM tb_comment c JOIN tb_user cu ON cu.pk_user = c.fk_user
               WHERE c.fk_post = p.pk_post), '[]'::jsonb)) AS data
FROM tb_post p JOIN tb_user u ON u.pk_user = p.fk_user"""

# Which post documents a change of each base table touches, over transition table {rows}:
# the lineage a careful user works out by hand for FLAT_POST_DEF.
HAND_KEYS = {
    "tb_post": "SELECT r.pk_post FROM {rows} r",
    "tb_comment": "SELECT r.fk_post FROM {rows} r",
    "tb_user": ("SELECT p.pk_post FROM tb_post p JOIN {rows} r ON p.fk_user = r.pk_user"
                " UNION SELECT c.fk_post FROM tb_comment c JOIN {rows} r ON c.fk_user = r.pk_user"),
}

HAND_SETUP_SQL = f"""
CREATE VIEW v_hand_post AS {FLAT_POST_DEF};
CREATE TABLE hand_post AS SELECT * FROM v_hand_post;
ALTER TABLE hand_post ADD PRIMARY KEY (pk_post);
CREATE INDEX ON hand_post (fk_user);
CREATE FUNCTION hand_refresh(keys int[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hand_post AS t SELECT * FROM v_hand_post v WHERE v.pk_post = ANY (keys)
    ON CONFLICT (pk_post) DO UPDATE SET fk_user = EXCLUDED.fk_user, data = EXCLUDED.data
    WHERE t.fk_user IS DISTINCT FROM EXCLUDED.fk_user OR t.data IS DISTINCT FROM EXCLUDED.data;
    DELETE FROM hand_post t
    WHERE t.pk_post = ANY (keys) AND NOT EXISTS (SELECT 1 FROM v_hand_post v WHERE v.pk_post = t.pk_post);
END $$;
"""

HAND_TRIGGER_SQL = """
CREATE FUNCTION hand_on_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM hand_refresh(ARRAY({new}));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM hand_refresh(ARRAY({old}));
    ELSE
        PERFORM hand_refresh(ARRAY({new} UNION {old}));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER hand_ins AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hand_on_{table}();
CREATE TRIGGER hand_upd AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hand_on_{table}();
CREATE TRIGGER hand_del AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hand_on_{table}();
"""


# Column values of the initial rows, as SQL over the row's key {k}: shared by fill_sql and the
# statements that put a row back as it was.
USER_NAME, USER_EMAIL, COMMENT_BODY = "'user ' || {k}", "'user' || {k} || '@example.com'", "'comment ' || {k}"


def comment_rows_sql(first: int, count: int, sizes: Sizes, body: str) -> str:
    """INSERT of comments first+1 .. first+count: spread evenly over posts, written by commenters.

    Shared by the initial data and the bulk workload so that both have the same shape."""
    return (f"INSERT INTO tb_comment (pk_comment, fk_post, fk_user, body)"
            f" SELECT {first} + g, 1 + ({first} + g - 1) % {sizes.posts},"
            f" 1 + (({first} + g - 1)::bigint * 7919) % {sizes.commenters}, {body}"
            f" FROM generate_series(1, {count}) g")


def fill_sql(sizes: Sizes) -> list[str]:
    """Deterministic rows: the same in every variant schema of a workload."""
    posters = sizes.users - sizes.commenters - (1 if sizes.big_posts else 0)
    author = f"{sizes.commenters} + 1 + (g - 1) % {posters}"
    if sizes.big_posts:
        author = f"CASE WHEN g <= {sizes.big_posts} THEN {sizes.big_author} ELSE {author} END"
    return [
        f"INSERT INTO tb_user SELECT g, {USER_NAME.format(k='g')}, {USER_EMAIL.format(k='g')}"
        f" FROM generate_series(1, {sizes.users}) g",
        f"INSERT INTO tb_post SELECT g, {author}, 'post ' || g FROM generate_series(1, {sizes.posts}) g",
        comment_rows_sql(0, sizes.comments, sizes, COMMENT_BODY.format(k="g")),
    ]


# The operations that are timed. Same text in every arm that compares them.
def rename_user(pk: int) -> str:
    return f"UPDATE tb_user SET name = name || ' (renamed)', email = 'renamed.' || email WHERE pk_user = {pk}"


def edit_comment(pk: int) -> str:
    return f"UPDATE tb_comment SET body = body || ' (edited)' WHERE pk_comment = {pk}"


def restore_user(pk: int) -> str:
    """Undo rename_user (the values fill_sql gave the row)."""
    name, email = USER_NAME.format(k="pk_user"), USER_EMAIL.format(k="pk_user")
    return f"UPDATE tb_user SET name = {name}, email = {email} WHERE pk_user = {pk}"


def restore_comment(pk: int) -> str:
    """Undo edit_comment (the body fill_sql gave it), for arms that must commit."""
    return f"UPDATE tb_comment SET body = {COMMENT_BODY.format(k='pk_comment')} WHERE pk_comment = {pk}"


def edit_post(pk: int) -> str:
    return f"UPDATE tb_post SET title = title || ' (edited)' WHERE pk_post = {pk}"


# -- plans and results ---------------------------------------------------------------------

@dataclass
class Arm:
    """One way of doing an operation: where (schema), how (settings), what is timed.

    revert: when set, the commit is timed too (e.g. NOTIFY costs only at commit) and these
    statements undo the change afterwards, untimed; otherwise the run is rolled back."""

    name: str
    schema: str
    timed: tuple[str, ...]
    settings: dict[str, str] = field(default_factory=dict)
    vs: str | None = None
    setup: tuple[str, ...] = ()
    revert: tuple[str, ...] | None = None
    needs_patching: bool = False
    unavailable: str | None = None          # cannot run here, by design (e.g. no smart patching yet)
    error: str | None = None                # could not run: the server's error
    samples_ms: list[float] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)
    drift: int | None = None
    ratio: float | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None

    @property
    def p90(self) -> float | None:
        """Nearest-rank 90th percentile (with few runs, the worst but one or the worst)."""
        if not self.samples_ms:
            return None
        ordered = sorted(self.samples_ms)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


@dataclass
class Throughput:
    """Commits per second of `clients` connections doing leaf updates for a fixed time."""

    name: str
    schema: str
    clients: int
    settings: dict[str, str] = field(default_factory=dict)
    vs: str | None = None
    commits: int = 0
    errors: int = 0
    seconds: float = 0.0
    per_second: float | None = None
    ratio: float | None = None


@dataclass
class Plan:
    """A workload: the variant schemas to build, the arms to time, what to tell the reader."""

    name: str
    title: str
    sizes: Sizes
    builds: dict[str, str]                  # schema -> variant
    arms: list[Arm]
    note: str = ""
    throughput: list[Throughput] = field(default_factory=list)
    check_in_arms: bool = True              # verify inside each arm's transaction (skipped at scale M)
    oracle: dict[str, int] = field(default_factory=dict)         # engine TVIEWs after the runs
    hand_oracle: dict[str, int] = field(default_factory=dict)    # the hand-kept table after the runs
    error: str | None = None
    seconds: float = 0.0

    def values(self) -> dict[str, float | None]:
        """Arm medians (ms) and throughputs (commits/s) by name, for the targets."""
        return {a.name: a.median for a in self.arms} | {t.name: t.per_second for t in self.throughput}


@dataclass
class Options:
    scale: float
    repeat: int
    quick: bool
    seconds: float
    patching: bool          # the engine has smart patching (tview.patching)
    event_log: bool         # the engine can log events to tview.events (used to report modes)

    def sizes(self, key: str) -> Sizes:
        return (QUICK_SIZES if self.quick else FULL_SIZES)[key].scaled(self.scale)

    @property
    def bulk_rows(self) -> int:
        return max(1, round(BULK_ROWS["quick" if self.quick else "full"] * self.scale))


# -- workloads -----------------------------------------------------------------------------

def patch_arm(arm: Arm, opts: Options) -> Arm:
    """Mark an arm that needs smart patching; without it in the engine it is reported, never timed."""
    arm.needs_patching = True
    if not opts.patching:
        arm.unavailable = NOT_IMPLEMENTED
    return arm


def maintenance_arms(prefix: str, op: str, opts: Options) -> list[Arm]:
    """Bare write (the floor), TVIEW recompute and TVIEW patch of one operation."""
    composed = f"{prefix}_composed"
    return [
        Arm("bare write", f"{prefix}_bare", (op,)),
        Arm("TVIEW recompute", composed, (op,), {"tview.patching": "off"}, vs="bare write"),
        patch_arm(Arm("TVIEW patch", composed, (op,), {"tview.patching": "on"}, vs="bare write"), opts),
    ]


def plan_medium(opts: Options) -> Plan:
    sizes = opts.sizes("blog")
    return Plan("medium", "medium cascade: rename one author (name and email)", sizes,
                {"medium_bare": "bare", "medium_composed": "composed"},
                maintenance_arms("medium", rename_user(sizes.poster), opts),
                note=f"user {sizes.poster} is the author of {sizes.posts_per_poster} posts;"
                     " composed TVIEWs user, comment, post")


def plan_single_row(opts: Options) -> Plan:
    sizes = opts.sizes("blog")
    return Plan("single_row", "single row: edit one comment's text", sizes,
                {"single_row_bare": "bare", "single_row_composed": "composed"},
                maintenance_arms("single_row", edit_comment(sizes.comment), opts),
                note="composed TVIEWs user, comment, post")


def plan_large_cascade(opts: Options) -> Plan:
    sizes = opts.sizes("large")
    op = rename_user(sizes.big_author)
    return Plan("large_cascade", f"large cascade: rename the author of {sizes.big_posts:,} posts", sizes,
                {"large_bare": "bare", "large_flat": "flat"},
                [Arm("bare write", "large_bare", (op,)),
                 Arm("set-based", "large_flat", (op,), {"tview.batch_threshold": "0"}, vs="bare write"),
                 Arm("per-key", "large_flat", (op,), {"tview.batch_threshold": "100000000"}, vs="set-based")],
                note="one TVIEW post over the base tables; the same UPDATE with tview.batch_threshold"
                     " 0 (every key in one statement) and 1e8 (one key at a time)")


def plan_bulk(opts: Options) -> Plan:
    sizes = opts.sizes("blog")
    insert = comment_rows_sql(sizes.comments, opts.bulk_rows, sizes, "'bulk ' || g")
    delete = f"DELETE FROM tb_comment WHERE pk_comment > {sizes.comments}"
    return Plan("bulk", f"bulk: insert {opts.bulk_rows:,} comments in one statement, then delete them", sizes,
                {"bulk_bare": "bare", "bulk_composed": "composed"},
                [Arm("bare insert", "bulk_bare", (insert,)),
                 Arm("TVIEW insert", "bulk_composed", (insert,), vs="bare insert"),
                 Arm("bare delete", "bulk_bare", (delete,), setup=(insert,)),
                 Arm("TVIEW delete", "bulk_composed", (delete,), setup=(insert,), vs="bare delete")],
                note="composed TVIEWs user, comment, post with the engine's default settings;"
                     " the delete arms insert first, untimed")


def plan_full_refresh(opts: Options) -> Plan:
    sizes = opts.sizes("refresh")
    op = edit_post(sizes.post)
    return Plan("full_refresh", f"full refresh after one change, at {sizes.posts:,} posts", sizes,
                {"refresh_flat": "flat", "refresh_mv": "mv"},
                [Arm("engine single-row", "refresh_flat", (op,)),
                 Arm("REFRESH MATERIALIZED VIEW", "refresh_mv", (op, "REFRESH MATERIALIZED VIEW mv_post"),
                     vs="engine single-row")],
                note="the same single definition as TVIEW post and as materialized view mv_post;"
                     " both arms time the UPDATE of one post title")


def plan_locking(opts: Options) -> Plan:
    sizes = opts.sizes("blog")
    op = edit_comment(sizes.comment)
    return Plan("locking", "row locking: single-row write with tview.row_locks off vs on", sizes,
                {"locking_composed": "composed"},
                [Arm("row_locks off", "locking_composed", (op,), {"tview.row_locks": "off"}),
                 Arm("row_locks on", "locking_composed", (op,), {"tview.row_locks": "on"},
                     vs="row_locks off")],
                note="edit one comment; composed TVIEWs user, comment, post")


def plan_events(opts: Options) -> Plan:
    sizes = opts.sizes("blog")
    op, undo = edit_comment(sizes.comment), restore_comment(sizes.comment)
    return Plan("events", "events: single-row write with tview.notify off vs on (commit timed)", sizes,
                {"events_composed": "composed"},
                [Arm("notify off", "events_composed", (op,), {"tview.notify": "off"}, revert=(undo,)),
                 Arm("notify on", "events_composed", (op,), {"tview.notify": "on"}, vs="notify off",
                     revert=(undo,))],
                note="NOTIFY is queued at commit, so these runs commit (timed)"
                     " and revert afterwards (untimed)")


def plan_scale_m(opts: Options) -> Plan:
    sizes = opts.sizes("scale_m")
    leaf, parent = edit_comment(sizes.comment), rename_user(sizes.poster)
    schemas = {"hand trigger": ("m_hand", {}), "engine": ("m_flat", {}),
               "composed patch": ("m_composed", {"tview.patching": "on"}),
               "composed recompute": ("m_composed", {"tview.patching": "off"})}
    arms = []
    for op_name, op in (("leaf", leaf), ("parent", parent)):
        for arm_name, (schema, settings) in schemas.items():
            arm = Arm(f"{arm_name} {op_name}", schema, (op,), settings,
                      vs=None if arm_name == "hand trigger" else f"hand trigger {op_name}")
            arms.append(patch_arm(arm, opts) if arm_name == "composed patch" else arm)
    def clients(n: int) -> str:
        return f"{n} client{'s' if n > 1 else ''}"
    # NOTIFY takes a database-wide lock until commit: notifying writers commit one at a time.
    # With tview.notify = auto they notify only while a listener is registered (none here).
    schemas["engine, events off"] = ("m_flat", {"tview.notify": "off"})
    schemas["engine, notify auto"] = ("m_flat", {"tview.notify": "auto"})
    names = ("hand trigger", "engine", "engine, events off", "engine, notify auto", "composed patch")
    throughput = [Throughput(f"{name}, {clients(n)}", schemas[name][0], n, schemas[name][1],
                             vs=None if name == "hand trigger" else f"hand trigger, {clients(n)}")
                  for n in CLIENT_COUNTS for name in names
                  if name != "composed patch" or opts.patching]
    return Plan("scale_m", "scale M: leaf update, parent rename, concurrent leaf updates", sizes,
                {"m_hand": "hand", "m_flat": "flat", "m_composed": "composed"}, arms,
                note=f"leaf = one comment body; parent = rename user {sizes.poster}"
                     f" ({sizes.posts_per_poster} posts); hand trigger and engine"
                     " share one definition; composed = TVIEWs user, comment, post",
                throughput=throughput, check_in_arms=False)


def plan_alter(opts: Options) -> Plan:
    sizes = opts.sizes("blog")

    def alter(definition: str) -> tuple[str]:
        return (f"SELECT tview.alter('comment', $def${definition}$def$)",)
    return Plan("alter", "tview.alter of comment (its transaction: how long writers wait), against a whole refresh",
                sizes, {"alter_composed": "composed"},
                [Arm("refresh comment", "alter_composed", ("SELECT tview.refresh('comment')",)),
                 Arm("alter, same rows", "alter_composed", alter(COMMENT_DEF_RESPELLED), vs="refresh comment"),
                 Arm("alter, every row", "alter_composed", alter(COMMENT_DEF_WIDER), vs="refresh comment")],
                note=f"composed TVIEWs user, comment, post; {sizes.comments:,} comments, embedded in"
                     f" {sizes.posts:,} posts; writers of the tables comment reads wait for the alter's transaction,"
                     " readers of tv_comment do not")


PLANS: dict[str, Callable[[Options], Plan]] = {
    "medium": plan_medium, "single_row": plan_single_row, "large_cascade": plan_large_cascade,
    "bulk": plan_bulk, "full_refresh": plan_full_refresh, "locking": plan_locking, "events": plan_events,
    "alter": plan_alter, "scale_m": plan_scale_m,
}


# -- building --------------------------------------------------------------------------------

def set_search_path(conn: psycopg.Connection, schema: str | None, local: bool) -> None:
    """Point unqualified names (tables, tview.create names) at one variant schema."""
    value = sql.Identifier(schema).as_string(conn) if schema else '"$user", public'
    conn.execute("SELECT set_config('search_path', %s, %s)", (value, local))


def build_variant(conn: psycopg.Connection, schema: str, variant: str, sizes: Sizes) -> None:
    """Create one schema with the tables, the rows and the variant's way of keeping posts."""
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    set_search_path(conn, schema, local=False)
    try:
        conn.execute(TABLES_SQL)
        for statement in fill_sql(sizes):
            conn.execute(statement)
        if variant == "composed":
            for name, definition in (("user", USER_DEF), ("comment", COMMENT_DEF), ("post", POST_DEF)):
                conn.execute("SELECT tview.create(%s, %s)", (name, definition))
        elif variant == "flat":
            conn.execute("SELECT tview.create('post', %s)", (FLAT_POST_DEF,))
        elif variant == "hand":
            conn.execute(HAND_SETUP_SQL)
            for table, keys in HAND_KEYS.items():
                conn.execute(HAND_TRIGGER_SQL.format(table=table, new=keys.format(rows="new_rows"),
                                                     old=keys.format(rows="old_rows")))
        elif variant == "mv":
            conn.execute(f"CREATE MATERIALIZED VIEW mv_post AS {FLAT_POST_DEF}")
        conn.commit()
        settle(conn)
    finally:
        conn.rollback()
        set_search_path(conn, None, local=False)
        conn.commit()
    vacuum_schema(conn, schema)


def settle(conn: psycopg.Connection) -> None:
    """Commit one real change and its undo, as any database has seen after its first writes.

    The engine creates some of its per-TVIEW functions lazily, in the first transaction
    that needs them; the timed runs are rolled back, so without this every run would pay
    for that creation again and measure a state no production database is in."""
    for statement in (rename_user(1), restore_user(1)):
        conn.execute(statement)
        conn.commit()


def vacuum_schema(conn: psycopg.Connection, schema: str) -> None:
    """VACUUM ANALYZE the new tables, so every variant starts with statistics and visibility maps."""
    tables = [r[0] for r in conn.execute(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'm')", (schema,))]
    conn.commit()
    conn.autocommit = True
    try:
        for table in tables:
            conn.execute(f"VACUUM (ANALYZE) {table}")
    finally:
        conn.autocommit = False


def drop_variants(conn: psycopg.Connection, schemas: list[str]) -> None:
    """Drop a workload's TVIEWs through the engine (dependents first), then its schemas."""
    conn.rollback()
    for schema, name in conn.execute(
            "SELECT schema_name, name FROM tview.tviews WHERE schema_name = ANY (%s)"
            " ORDER BY topo_level DESC, id DESC", (schemas,)).fetchall():
        conn.execute("SELECT tview.drop(%s)", (f"{schema}.{name}",))
    for schema in schemas:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    conn.commit()


def has_patch_specs(conn: psycopg.Connection, schema: str) -> bool:
    """Did the engine recognise any patchable shape in this schema's TVIEWs?"""
    found = one(conn.execute("SELECT EXISTS (SELECT 1 FROM tview.tviews WHERE schema_name = %s"
                         " AND jsonb_array_length(patch_specs) > 0)", (schema,)))[0]
    conn.rollback()
    return bool(found)


# -- measuring -------------------------------------------------------------------------------

def apply_settings(conn: psycopg.Connection, settings: dict[str, str], local: bool) -> None:
    """The engine's settings (tview.*) for the benchmark database (the engine ignores a session's SET):
    inside the current transaction, so that its rollback undoes them; any other with set_config."""
    for name, value in settings.items():
        if name.startswith("tview."):
            conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(conn.info.dbname), sql.Identifier(*name.split(".")), sql.Literal(value)))
        else:
            conn.execute("SELECT set_config(%s, %s, %s)", (name, value, local))


def reset_settings(conn: psycopg.Connection, settings: dict[str, str]) -> None:
    """Undo apply_settings for the engine's settings that a committed run left in the database."""
    for name in settings:
        if name.startswith("tview."):
            conn.execute(sql.SQL("ALTER DATABASE {} RESET {}").format(
                sql.Identifier(conn.info.dbname), sql.Identifier(*name.split("."))))


def begin_arm(conn: psycopg.Connection, arm: Arm, extra: dict[str, str] | None = None) -> None:
    """Open the arm's transaction: settings local to it (nothing leaks into the next arm), then setup."""
    set_search_path(conn, arm.schema, local=True)
    apply_settings(conn, {**arm.settings, **(extra or {})}, local=True)
    for statement in arm.setup:
        conn.execute(statement)


def run_once(conn: psycopg.Connection, arm: Arm) -> float:
    """One timed run in its own transaction; returns milliseconds; leaves the data as it found it."""
    begin_arm(conn, arm)
    start = time.perf_counter()
    for statement in arm.timed:
        conn.execute(statement)
    if arm.revert is not None:
        conn.commit()
    elapsed = (time.perf_counter() - start) * 1000
    conn.rollback()
    if arm.revert is not None:
        set_search_path(conn, arm.schema, local=True)
        reset_settings(conn, arm.settings)
        for statement in arm.revert:
            conn.execute(statement)
        conn.commit()
    return elapsed


def check_arm(conn: psycopg.Connection, arm: Arm, opts: Options, verify: bool) -> None:
    """Untimed warm-up run that records how each TVIEW was maintained and whether it is right."""
    begin_arm(conn, arm, {"tview.log": "on", "tview.notify": "off"} if opts.event_log else None)
    for statement in arm.timed:
        conn.execute(statement)
    if opts.event_log:
        arm.modes = dict(conn.execute(
            "SELECT payload ->> 'tview', string_agg(DISTINCT payload ->> 'mode', '/')"
            " FROM tview.events WHERE payload ->> 'xid' = pg_current_xact_id()::text"
            " AND payload ->> 'schema' = %s GROUP BY 1 ORDER BY 1", (arm.schema,)).fetchall())
    if verify:
        found = oracle(conn, arm.schema)
        arm.drift = sum(found.values()) if found else None    # None: nothing to check (bare tables)
    conn.rollback()


def oracle(conn: psycopg.Connection, schema: str) -> dict[str, int]:
    """Rows of each TVIEW of a schema that differ from its definition (tview.verify)."""
    names = conn.execute("SELECT name FROM tview.tviews WHERE schema_name = %s ORDER BY topo_level, id",
                         (schema,)).fetchall()
    return {f"{schema}.tv_{name}": one(conn.execute("SELECT count(*) FROM tview.verify(%s)",
                                                (f"{schema}.{name}",)))[0]
            for (name,) in names}


def hand_oracle(conn: psycopg.Connection, schema: str) -> dict[str, int]:
    """The same check for the hand-kept table (no engine involved): rows differing from its view."""
    if not one(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.hand_post",)))[0]:
        return {}
    query = sql.SQL("SELECT count(*) FROM ((TABLE {t} EXCEPT ALL TABLE {v})"
                    " UNION ALL (TABLE {v} EXCEPT ALL TABLE {t})) d")
    table, view = sql.Identifier(schema, "hand_post"), sql.Identifier(schema, "v_hand_post")
    return {f"{schema}.hand_post": one(conn.execute(query.format(t=table, v=view)))[0]}


def warm_up(conn: psycopg.Connection, arm: Arm) -> None:
    """Untimed runs until PL/pgSQL's plan caches are in their steady state.

    PostgreSQL plans a cached statement afresh for its first WARM_UP_RUNS executions and only
    then settles on a plan; arms with more statements would otherwise pay that in their first
    timed runs. Slow arms (over WARM_UP_SECONDS) stop early: planning is noise for them."""
    started = time.perf_counter()
    for _ in range(WARM_UP_RUNS):
        if time.perf_counter() - started > WARM_UP_SECONDS:
            break
        run_once(conn, arm)


def prepare_arm(conn: psycopg.Connection, arm: Arm, opts: Options, plan: Plan) -> bool:
    """Check and warm up one arm; an arm the server refuses (e.g. a setting an older engine
    rejects) is reported with its error instead of sinking the other arms."""
    try:
        check_arm(conn, arm, opts, verify=plan.check_in_arms)
        warm_up(conn, arm)
    except psycopg.Error as exc:
        conn.rollback()
        arm.error = str(error_from_db(exc, "failed"))
        return False
    return True


def measure(conn: psycopg.Connection, plan: Plan, opts: Options) -> None:
    """Prepare each arm, then run the arms that work alternately, repeat times."""
    arms = [a for a in plan.arms if a.unavailable is None and prepare_arm(conn, a, opts, plan)]
    for _ in range(opts.repeat):
        for arm in arms:
            arm.samples_ms.append(run_once(conn, arm))
    medians = {a.name: a.median for a in arms}
    for arm in arms:
        base = medians.get(arm.vs) if arm.vs else None
        arm.ratio = arm.median / base if base and arm.median is not None else None


def client_loop(dsn: str, job: Throughput, seed: int, comments: int, seconds: float,
                ready: threading.Barrier) -> tuple[int, int, float]:
    """One client: leaf updates, each committed, for `seconds`; returns commits, errors, elapsed."""
    rnd = random.Random(seed)
    commits = errors = 0
    with connect(dsn) as conn:
        set_search_path(conn, job.schema, local=False)
        apply_settings(conn, {k: v for k, v in job.settings.items() if not k.startswith("tview.")}, local=False)
        conn.commit()
        ready.wait()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            pk = rnd.randint(1, comments)
            try:
                conn.execute("UPDATE tb_comment SET body = %s WHERE pk_comment = %s",
                             (f"edit {seed}.{commits}", pk))
                conn.commit()
                commits += 1
            except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected):
                conn.rollback()
                errors += 1
        return commits, errors, time.perf_counter() - start


def run_throughput(dsn: str, job: Throughput, sizes: Sizes, seconds: float) -> None:
    """job.clients connections at once; commits/s summed over the clients."""
    ready = threading.Barrier(job.clients)
    with connect(dsn) as conn:          # the engine's settings: the database's, for every client
        apply_settings(conn, job.settings, local=False)
        conn.commit()
    try:
        with ThreadPoolExecutor(job.clients) as pool:
            futures = [pool.submit(client_loop, dsn, job, 1000 + i, sizes.comments, seconds, ready)
                       for i in range(job.clients)]
            results = [f.result() for f in futures]
    finally:
        with connect(dsn) as conn:
            reset_settings(conn, job.settings)
            conn.commit()
    job.commits = sum(r[0] for r in results)
    job.errors = sum(r[1] for r in results)
    job.seconds = max(r[2] for r in results)
    job.per_second = sum(r[0] / r[2] for r in results)


def measure_throughput(dsn: str, plan: Plan, opts: Options) -> None:
    """For each client count, the arms one after the other (same random key streams)."""
    for job in plan.throughput:
        run_throughput(dsn, job, plan.sizes, opts.seconds)
    rates = {t.name: t.per_second for t in plan.throughput}
    for job in plan.throughput:
        base = rates.get(job.vs) if job.vs else None
        job.ratio = job.per_second / base if base and job.per_second is not None else None


def run_plan(conn: psycopg.Connection, dsn: str, plan: Plan, opts: Options,
             progress: Callable[[str], None]) -> None:
    """Build, measure, check the oracle and clean up one workload; an error is kept, not raised."""
    started = time.perf_counter()
    try:
        for schema, variant in plan.builds.items():
            progress(f"{plan.name}: building {schema} ({variant}, {plan.sizes.describe()})")
            build_variant(conn, schema, variant, plan.sizes)
        for arm in plan.arms:
            if arm.needs_patching and arm.unavailable is None and not has_patch_specs(conn, arm.schema):
                arm.unavailable = "not applicable (the engine recognised no patchable shape here)"
        progress(f"{plan.name}: measuring {len(plan.arms)} arms x {opts.repeat} runs")
        measure(conn, plan, opts)
        if plan.throughput:
            progress(f"{plan.name}: throughput, {opts.seconds:g} s per arm and client count")
            measure_throughput(dsn, plan, opts)
        for schema in plan.builds:
            plan.oracle.update(oracle(conn, schema))
            plan.hand_oracle.update(hand_oracle(conn, schema))
        conn.rollback()
    except psycopg.Error as exc:
        conn.rollback()
        plan.error = str(error_from_db(exc, f"{plan.name} failed"))
    finally:
        drop_variants(conn, list(plan.builds))
        plan.seconds = time.perf_counter() - started


# -- reporting -------------------------------------------------------------------------------

def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 100 else f"{value:.1f}"


def fmt_ratio(value: float | None, vs: str | None) -> str:
    if vs is None:
        return "baseline"
    return "-" if value is None else f"{value:.2f}x vs {vs}"


def render_plan(plan: Plan) -> str:
    """The workload's table: arm, median ms, p90 ms, ratio vs its baseline, modes seen, oracle in-run."""
    lines = [f"== {plan.name}: {plan.title}", f"   {plan.sizes.describe()}; {plan.note}"]
    if plan.error:
        lines.append(f"   ERROR: {plan.error}")
    width = max(len(a.name) for a in plan.arms)
    header = f"{'arm':<{width}}  {'median ms':>10}  {'p90 ms':>10}  {'ratio':<34} {'oracle':>6}  modes"
    lines.append(f"   {header}")
    for arm in plan.arms:
        if arm.unavailable or arm.error:
            lines.append(f"   {arm.name:<{width}}  {arm.unavailable or 'ERROR: ' + str(arm.error)}")
            continue
        modes = " ".join(f"{k}={v}" for k, v in arm.modes.items()) or "-"
        drift = "-" if arm.drift is None else str(arm.drift)
        lines.append(f"   {arm.name:<{width}}  {fmt_ms(arm.median):>10}  {fmt_ms(arm.p90):>10}"
                     f"  {fmt_ratio(arm.ratio, arm.vs):<34} {drift:>6}  {modes}")
    if plan.throughput:
        width = max(len(t.name) for t in plan.throughput)
        lines.append(f"   {'throughput':<{width}}  {'commits/s':>10}  {'errors':>10}  ratio")
        for job in plan.throughput:
            rate = "-" if job.per_second is None else f"{job.per_second:.0f}"
            ratio = fmt_ratio(job.ratio, job.vs)
            lines.append(f"   {job.name:<{width}}  {rate:>10}  {job.errors:>10}  {ratio}")
    if plan.oracle:
        lines.append("   oracle after the runs (rows differing from the definition): "
                     + ", ".join(f"{k} {v}" for k, v in plan.oracle.items()))
    if plan.hand_oracle:
        lines.append("   hand-kept table after the runs (not the engine; rows differing from its view): "
                     + ", ".join(f"{k} {v}" for k, v in plan.hand_oracle.items()))
    lines.append(f"   ({plan.seconds:.1f} s including the build)")
    return "\n".join(lines)


@dataclass(frozen=True)
class Goal:
    """A target: value(numerator) / value(denominator) compared with a limit."""

    label: str
    workload: str
    numerator: str
    denominator: str
    op: str          # ">=" or "<="
    limit: float


GOALS = [
    Goal("medium cascade: TVIEW recompute / TVIEW patch", "medium", "TVIEW recompute", "TVIEW patch",
         ">=", 2.0),
    Goal("large cascade: per-key / set-based", "large_cascade", "per-key", "set-based", ">=", 5.0),
    Goal("bulk insert with TVIEWs / bare", "bulk", "TVIEW insert", "bare insert", "<=", 4.0),
    Goal("REFRESH MATERIALIZED VIEW / engine single-row", "full_refresh", "REFRESH MATERIALIZED VIEW",
         "engine single-row", ">=", 100.0),
    Goal("scale M leaf: engine / hand trigger", "scale_m", "engine leaf", "hand trigger leaf", "<=", 1.1),
    Goal("scale M parent: engine / hand trigger", "scale_m", "engine parent", "hand trigger parent",
         "<=", 1.1),
    Goal("scale M parent: composed with patching / hand trigger", "scale_m", "composed patch parent",
         "hand trigger parent", "<=", 1.0),
    Goal("scale M 4 clients: engine / hand trigger commits/s", "scale_m", "engine, 4 clients",
         "hand trigger, 4 clients", ">=", 1.0),
]
COSTS = [
    ("row locks: on / off", "locking", "row_locks on", "row_locks off"),
    ("events: notify on / off", "events", "notify on", "notify off"),
    ("single row: TVIEW patch / TVIEW recompute", "single_row", "TVIEW patch", "TVIEW recompute"),
    ("scale M 4 clients: engine with tview.notify = off / hand trigger commits/s", "scale_m",
     "engine, events off, 4 clients", "hand trigger, 4 clients"),
    ("scale M 4 clients: engine with tview.notify = auto, nobody listening / hand trigger commits/s", "scale_m",
     "engine, notify auto, 4 clients", "hand trigger, 4 clients"),
]


def engine_drift(plans: dict[str, Plan]) -> dict[str, int]:
    """Every non-zero oracle of the engine: after the runs, and inside each arm's transaction."""
    drift = {k: v for p in plans.values() for k, v in p.oracle.items() if v}
    return drift | {f"{p.name}/{a.name}": a.drift for p in plans.values() for a in p.arms if a.drift}


def oracle_line(plans: dict[str, Plan]) -> str:
    checked = sum(len(p.oracle) for p in plans.values())
    failed = [p.name for p in plans.values() if p.error]
    drift = engine_drift(plans)
    text = ("oracle: DRIFT " + ", ".join(f"{k}: {v}" for k, v in drift.items()) if drift
            else f"oracle: 0 rows differ from their definitions ({checked} TVIEWs checked after the runs)")
    return text + (f"; not checked: {', '.join(failed)} failed" if failed else "")


def unavailable_reason(plan: Plan, *names: str) -> str | None:
    for arm in plan.arms:
        if arm.name in names and (arm.unavailable or arm.error):
            return arm.unavailable or f"{arm.name} {arm.error}"
    return plan.error and "workload failed"


def summary_lines(plans: dict[str, Plan]) -> list[str]:
    """One line per target (and the measured costs), for the workloads that ran."""
    lines = []
    for goal in GOALS:
        plan = plans.get(goal.workload)
        if plan is None:
            continue
        values = plan.values()
        num, den = values.get(goal.numerator), values.get(goal.denominator)
        target = f"(target {goal.op} {goal.limit:g}x)"
        if not num or not den:
            reason = unavailable_reason(plan, goal.numerator, goal.denominator)
            lines.append(f"{goal.label} = n/a: {reason} {target}")
            continue
        ratio = num / den
        met = ratio >= goal.limit if goal.op == ">=" else ratio <= goal.limit
        lines.append(f"{goal.label} = {ratio:.2f}x {target} {'met' if met else 'MISSED'}")
    for label, workload, num_name, den_name in COSTS:
        plan = plans.get(workload)
        if plan is None:
            continue
        values = plan.values()
        num, den = values.get(num_name), values.get(den_name)
        text = f"{num / den:.2f}x" if num and den else f"n/a: {unavailable_reason(plan, num_name, den_name)}"
        lines.append(f"{label} = {text} (measured cost, no target)")
    lines.append(oracle_line(plans))
    hand = {k: v for p in plans.values() for k, v in p.hand_oracle.items()}
    if hand:
        lines.append("hand trigger (for comparison, not the engine): "
                     + ", ".join(f"{k} differs from its view in {v} row(s)" for k, v in hand.items()))
    return lines


# -- database and server ---------------------------------------------------------------------

def connect(dsn: str) -> psycopg.Connection:
    """A benchmark connection: explicit transactions, no client-side statement preparation
    (so the first and the later runs of an arm are executed the same way)."""
    return psycopg.connect(Target(dsn, application_name="tview-tui bench").conninfo(),
                           autocommit=False, prepare_threshold=None)


@contextmanager
def admin_dsn(dsn: str | None, progress: Callable[[str], None]) -> Iterator[str]:
    """The given server, or a temporary embedded one that is removed afterwards."""
    if dsn:
        yield dsn
        return
    from .embedded import TemporaryServer

    server = TemporaryServer()
    try:
        progress("starting a temporary embedded PostgreSQL")
        yield server.start()
    finally:
        server.cleanup()


@contextmanager
def bench_database(admin: str, progress: Callable[[str], None]) -> Iterator[str]:
    """A fresh database with the engine installed, dropped at the end."""
    name = f"tview_bench_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(Target(admin).conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise error_from_db(exc, "cannot create the benchmark database") from None
    dsn = make_conninfo(admin, dbname=name)
    try:
        progress(f"database {name}: installing the engine")
        with connect(dsn) as conn:
            installer.install(conn)
            conn.commit()
        yield dsn
    finally:
        with psycopg.connect(Target(admin).conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def engine_features(conn: psycopg.Connection) -> tuple[bool, bool, str, str]:
    """(smart patching present, event log present, engine version, server version)."""
    row = one(conn.execute("""
        SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'tview.tviews'::regclass
                       AND attname = 'patch_specs' AND NOT attisdropped),
               to_regclass('tview.events') IS NOT NULL, tview.version(),
               current_setting('server_version')"""))
    conn.rollback()
    return bool(row[0]), bool(row[1]), row[2], row[3]


# -- command ---------------------------------------------------------------------------------

def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `bench` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "bench", help="benchmark the engine against bare writes, hand triggers and materialized views",
        description=__doc__.split("\n\n")[0] + "\n\nArms run alternately; each run is its own transaction,"
        " rolled back or reverted. Prints median and p90 ms, ratios and the oracle per workload.",
    )
    p.add_argument("dsn", nargs="?", default=None,
                   help="server to benchmark on (a fresh database is created and dropped there;"
                        " default: a temporary embedded PostgreSQL)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the row counts (default 1.0)")
    p.add_argument("--repeat", type=int, default=7, help="timed runs per arm (default 7)")
    p.add_argument("--workload", action="append", choices=WORKLOADS, metavar="NAME",
                   help=f"run only this workload (repeatable): {', '.join(WORKLOADS)};"
                        " default: all but scale_m, which runs only when named and with --scale >= 1")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--quick", action="store_true", help="tiny sizes (for tests): numbers mean little")
    p.add_argument("--seconds", type=float, default=None,
                   help="duration of each throughput measure at scale M (default 10, 0.5 with --quick)")
    return p


def chosen_workloads(args: argparse.Namespace, say: Callable[[str], None]) -> list[str]:
    """The workloads to run, in their canonical order; scale_m needs to be asked for (and scale >= 1)."""
    names = [w for w in WORKLOADS if w in (args.workload or DEFAULT_WORKLOADS)]
    if "scale_m" in names and args.scale < 1 and not args.quick:
        say("scale_m: skipped (it needs --scale >= 1; use --quick for a tiny smoke run)")
        names.remove("scale_m")
    return names


def results_json(plans: dict[str, Plan], meta: dict, summary: list[str]) -> dict:
    """Everything measured, raw samples included, for scripts and later comparison."""
    def arm_dict(arm: Arm) -> dict:
        return asdict(arm) | {"median_ms": arm.median, "p90_ms": arm.p90}
    return meta | {"summary": summary, "workloads": [
        {k: v for k, v in asdict(p).items() if k not in ("arms",)} | {"arms": [arm_dict(a) for a in p.arms]}
        for p in plans.values()]}


def print_header(args: argparse.Namespace, server: str, engine: str, patching: bool) -> None:
    """What was measured where, and how to read the tables, so a pasted table stands on its own."""
    print(f"tview-tui bench: PostgreSQL {server}, engine {engine}, scale {args.scale:g}"
          f"{' (quick sizes)' if args.quick else ''}, {args.repeat} runs per arm, arms alternate;"
          f" smart patching: {'present' if patching else 'not implemented'}")
    print("ratio: median / median of the named baseline; oracle: rows differing from the definition"
          " inside the arm's own transaction; modes: how each TVIEW was maintained\n", flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; 0 when every workload ran and every oracle is 0, else 1 (2: cannot start)."""
    def progress(text: str) -> None:
        print(f"[bench] {text}", file=sys.stderr, flush=True)

    if args.repeat < 1 or args.scale <= 0:
        print("error: --repeat must be >= 1 and --scale > 0", file=sys.stderr)
        return 2
    names = chosen_workloads(args, print)
    plans: dict[str, Plan] = {}
    try:
        with (admin_dsn(args.dsn, progress) as admin, bench_database(admin, progress) as dsn,
              connect(dsn) as conn):
            patching, event_log, engine, server = engine_features(conn)
            opts = Options(args.scale, args.repeat, args.quick,
                           args.seconds if args.seconds is not None else (0.5 if args.quick else 10.0),
                           patching, event_log)
            print_header(args, server, engine, patching)
            for name in names:
                plan = PLANS[name](opts)
                run_plan(conn, dsn, plan, opts, progress)
                plans[name] = plan
                print(render_plan(plan) + "\n", flush=True)
    except TviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except psycopg.Error as exc:
        print(f"error: {error_from_db(exc, 'benchmark failed')}", file=sys.stderr)
        return 2
    summary = summary_lines(plans)
    print("summary (targets: engine vs. the alternatives):")
    for line in summary:
        print(f"  {line}")
    if args.json:
        meta = {"server": server, "engine": engine, "scale": args.scale, "repeat": args.repeat,
                "quick": args.quick, "patching": patching}
        args.json.write_text(json.dumps(results_json(plans, meta, summary), indent=2, default=str))
    failed = any(p.error or any(a.error for a in p.arms) for p in plans.values())
    return 1 if engine_drift(plans) or failed else 0

