"""The demo: a blog schema with four levels of TVIEWs and a writer that keeps it moving.

Levels: companies -> users (embed their company TVIEW) -> comments (embed their author)
-> posts (embed the author, an ordered array of comment documents, and counts from a
helper view) -> post cards (a second read model of posts, reading tv_post).
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from . import installer
from .connection import Target, connect, first_line, one
from .embedded import ROOT_TOOL_DIR, LocalServer
from .events import RateMeter, format_rate

DEMO_DATABASE = "tview_demo"

SCHEMA = """
CREATE TABLE tb_company (pk_company int PRIMARY KEY, name text NOT NULL, country text NOT NULL);
CREATE TABLE tb_user (pk_user int PRIMARY KEY, fk_company int NOT NULL REFERENCES tb_company,
                      name text NOT NULL, email text NOT NULL);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int NOT NULL REFERENCES tb_user,
                      title text NOT NULL, published_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE tb_comment (pk_comment int PRIMARY KEY,
                         fk_post int NOT NULL REFERENCES tb_post ON DELETE CASCADE,
                         fk_user int NOT NULL REFERENCES tb_user, body text NOT NULL,
                         created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON tb_user (fk_company);
CREATE INDEX ON tb_post (fk_user);
CREATE INDEX ON tb_comment (fk_post);
CREATE INDEX ON tb_comment (fk_user);

-- a helper view: TVIEWs may read views; the engine follows them down to the tables
CREATE VIEW v_post_stats AS
SELECT fk_post, count(*) AS comments, max(created_at) AS last_comment_at
FROM tb_comment GROUP BY fk_post;

INSERT INTO tb_company SELECT g, 'Company ' || g, (ARRAY['FR','DE','US','JP','BR'])[1 + g % 5]
FROM generate_series(1, 5) g;
INSERT INTO tb_user SELECT g, 1 + g % 5, 'User ' || g, 'user' || g || '@example.com'
FROM generate_series(1, 50) g;
INSERT INTO tb_post SELECT g, 1 + g % 50, 'Post number ' || g, now() - g * interval '1 hour'
FROM generate_series(1, 300) g;
INSERT INTO tb_comment SELECT g, 1 + g % 300, 1 + (g * 7) % 50, 'Comment ' || g, now() - g * interval '1 minute'
FROM generate_series(1, 1500) g;
"""

# New rows take keys right after the seed data's, one sequence per table, so keys stay dense
# and a random point in a table's key range picks its rows evenly (see any_row).
SEQUENCES = """
CREATE SEQUENCE IF NOT EXISTS demo_company_ids START 6;
CREATE SEQUENCE IF NOT EXISTS demo_user_ids START 51;
CREATE SEQUENCE IF NOT EXISTS demo_post_ids START 301;
CREATE SEQUENCE IF NOT EXISTS demo_comment_ids START 1501;
"""

TVIEWS = [
    ("company", """
        SELECT c.pk_company, jsonb_build_object('name', c.name, 'country', c.country) AS data
        FROM tb_company c"""),
    ("user", """
        SELECT u.pk_user, u.fk_company,
               jsonb_build_object('name', u.name, 'email', u.email, 'company', c.data) AS data
        FROM tb_user u JOIN tv_company c ON c.pk_company = u.fk_company"""),
    ("comment", """
        SELECT c.pk_comment, c.fk_post, c.fk_user,
               jsonb_build_object('body', c.body, 'at', c.created_at, 'author', u.data -> 'name') AS data
        FROM tb_comment c JOIN tv_user u ON u.pk_user = c.fk_user"""),
    ("post", """
        SELECT p.pk_post, p.fk_user,
               jsonb_build_object(
                   'title', p.title,
                   'author', u.data,
                   'comment_count', coalesce(s.comments, 0),
                   'comments', coalesce((SELECT jsonb_agg(c.data ORDER BY c.pk_comment)
                                         FROM tv_comment c WHERE c.fk_post = p.pk_post), '[]')) AS data
        FROM tb_post p
        JOIN tv_user u ON u.pk_user = p.fk_user
        LEFT JOIN v_post_stats s ON s.fk_post = p.pk_post"""),
    ("post_card", """
        SELECT p.pk_post, jsonb_build_object('title', p.data -> 'title',
                                             'author', p.data -> 'author' -> 'name',
                                             'comments', p.data -> 'comment_count') AS data
        FROM tv_post p"""),
]


def setup(conn: psycopg.Connection) -> bool:
    """Create the demo schema and TVIEWs unless they exist; True when it created them."""
    if one(conn.execute("SELECT to_regclass('public.tb_company') IS NOT NULL"))[0]:
        with conn.transaction():
            conn.execute(SEQUENCES)     # demo databases made before the per-table sequences
        return False
    with conn.transaction():
        conn.execute(SCHEMA + SEQUENCES)
        for name, definition in TVIEWS:
            conn.execute("SELECT tview.create(%s, %s)", (name, definition))
        conn.execute("ANALYZE")
    return True


def ensure_database(admin_dsn: str, name: str = DEMO_DATABASE) -> str:
    """Create the demo database on the local server if needed; return its DSN."""
    with connect(Target(admin_dsn), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(admin_dsn, dbname=name)


def any_row(table: str, key: str) -> str:
    """A subquery picking one existing key of ``table`` at random (index probe, any table size)."""
    return (f"(SELECT {key} FROM {table} WHERE {key} >= (SELECT floor(random() * max({key}))::int FROM {table})"
            f" ORDER BY {key} LIMIT 1)")


ANY_COMPANY = any_row("tb_company", "pk_company")
ANY_USER = any_row("tb_user", "pk_user")
ANY_POST = any_row("tb_post", "pk_post")
ANY_COMMENT = any_row("tb_comment", "pk_comment")

WRITES = [
    # (weight, statement) — each a realistic small write of a blog
    (30, "INSERT INTO tb_comment (pk_comment, fk_post, fk_user, body) "
         f"SELECT nextval('demo_comment_ids'), {ANY_POST}, {ANY_USER}, 'New comment ' || currval('demo_comment_ids')"),
    (20, f"UPDATE tb_comment SET body = body || '!' WHERE pk_comment = {ANY_COMMENT}"),
    (15, f"DELETE FROM tb_comment WHERE pk_comment = {ANY_COMMENT}"),
    (15, "UPDATE tb_user SET name = 'User ' || pk_user || ' v' || floor(random() * 100)::int "
         f"WHERE pk_user = {ANY_USER}"),
    (10, f"UPDATE tb_post SET fk_user = {ANY_USER} WHERE pk_post = {ANY_POST}"),
    (7, f"UPDATE tb_post SET title = 'Post ' || pk_post || ' (edited)' WHERE pk_post = {ANY_POST}"),
    (3, "UPDATE tb_company SET name = 'Company ' || pk_company || ' ' || floor(random() * 10)::int "
        f"WHERE pk_company = {ANY_COMPANY}"),
]

def _delete_a_user(conn: psycopg.Connection) -> None:
    """Delete one user the load created, with everything they wrote (three levels in one transaction)."""
    row = conn.execute(f"SELECT pk_user FROM tb_user WHERE pk_user = {ANY_USER} AND pk_user > 50").fetchone()
    if row:
        conn.execute("DELETE FROM tb_comment WHERE fk_user = %s", row)
        conn.execute("DELETE FROM tb_post WHERE fk_user = %s", row)
        conn.execute("DELETE FROM tb_user WHERE pk_user = %s", row)


# Writes the random load adds to WRITES: rows created and deleted at every level. Only rows the
# load created are deleted (keys above the seed data's), so the blog never runs dry.
LOAD_WRITES: list[tuple[int, str | Callable[[psycopg.Connection], None]]] = [*WRITES,
    (2, "INSERT INTO tb_company SELECT nextval('demo_company_ids'), 'Company ' || currval('demo_company_ids'), 'NZ'"),
    (1, "DELETE FROM tb_company c WHERE pk_company = (SELECT max(pk_company) FROM tb_company) AND pk_company > 5"
        " AND NOT EXISTS (SELECT FROM tb_user u WHERE u.fk_company = c.pk_company)"),
    (4, "INSERT INTO tb_user SELECT nextval('demo_user_ids'), "
        f"{ANY_COMPANY}, 'User ' || currval('demo_user_ids'), 'u' || currval('demo_user_ids') || '@example.com'"),
    (6, f"INSERT INTO tb_post (pk_post, fk_user, title) SELECT nextval('demo_post_ids'), {ANY_USER}, 'Fresh post'"),
    (4, f"DELETE FROM tb_post WHERE pk_post = {ANY_POST} AND pk_post > 300"),   # its comments go with it
    (2, _delete_a_user),
]


def random_write(conn: psycopg.Connection, rng: random.Random) -> None:
    """One write of the random load."""
    write = rng.choices([s for _, s in LOAD_WRITES], [w for w, _ in LOAD_WRITES])[0]
    if isinstance(write, str):
        conn.execute(write)
    else:
        write(conn)


def random_transaction(conn: psycopg.Connection, rng: random.Random) -> bool:
    """1-4 random writes in the open transaction, some inside a savepoint that is rolled back
    or released; returns False (about one time in 20) when the caller should roll back instead."""
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.15:
            conn.execute("SAVEPOINT load")
            random_write(conn, rng)
            conn.execute("ROLLBACK TO SAVEPOINT load" if rng.random() < 0.5 else "RELEASE SAVEPOINT load")
        else:
            random_write(conn, rng)
    return rng.random() >= 0.05


@dataclass
class DemoWriter:
    """A background thread writing to the demo tables at `rate` statements per second."""

    target: Target
    rate: float = 5.0
    writes: int = 0
    errors: int = 0
    achieved: RateMeter = field(default_factory=RateMeter)
    last_error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tview-demo-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def set_rate(self, rate: float) -> None:
        self.rate = max(0.0, min(rate, 1000.0))

    def describe(self) -> str:
        """What it does, measured, next to what it was asked: 'demo writer 140/s (asked 1000/s)'."""
        done = self.achieved.per_second(5)
        asked = format_rate(self.rate)
        return f"demo writer {format_rate(done)}/s (asked {asked}/s, {self.writes} writes)"

    def _run(self) -> None:
        rng = random.Random()
        statements = [s for _, s in WRITES]
        weights = [w for w, _ in WRITES]
        conn = None
        while not self._stop.is_set():
            if self.rate <= 0:
                self._stop.wait(0.2)
                continue
            try:
                if conn is None or conn.closed:
                    conn = connect(Target(self.target.dsn, application_name="tview-tui demo writer"),
                                   autocommit=True)
                conn.execute(rng.choices(statements, weights)[0])
                self.writes += 1
                self.achieved.add()
            except Exception as exc:  # noqa: BLE001 - the writer must never die; it reports instead
                self.errors += 1
                self.last_error = first_line(exc)
                if conn is not None and conn.broken:
                    conn = None
                self._stop.wait(1.0)
            self._stop.wait(1.0 / self.rate if self.rate > 0 else 0.2)
        if conn is not None:
            conn.close()


@dataclass
class DemoSession:
    """A running demo: local server, demo database, background writer."""

    server: LocalServer
    target: Target
    writer: DemoWriter

    def stop(self, stop_server: bool = True) -> bool:
        """Stop the writer, and the server when this session started it (a server that was
        already running belongs to whoever started it). True when the server was stopped."""
        self.writer.stop()
        if stop_server and self.server.started_here:
            self.server.stop()
            return True
        return False

    def left_running(self) -> str:
        """One line for the user: the server is still up, and how to stop it."""
        whose = "" if self.server.started_here else " (started by another process)"
        return f"the demo server{whose} is still running; stop it with: {self.server.stop_command()}"


def default_data_dir() -> Path:
    if os.geteuid() == 0:           # the server runs as a service user, who cannot enter /root
        return ROOT_TOOL_DIR / "demo-pg"
    return Path(platformdirs.user_data_dir("tview-tui")) / "demo-pg"


def start(data_dir: Path | None = None, rate: float = 5.0, progress=print) -> DemoSession:
    """Start (or reuse) the local server, set up the demo database and start the writer."""
    server = LocalServer(data_dir=data_dir or default_data_dir())
    if server.running():
        progress(f"using the local PostgreSQL already running in {server.data_dir}")
    else:
        progress(f"starting local PostgreSQL in {server.data_dir} ...")
    admin = server.start()
    dsn = ensure_database(admin)
    with connect(Target(dsn)) as conn:
        outcome = installer.install(conn)
        progress(outcome.describe())
        if setup(conn):
            progress("created the demo schema and its TVIEWs")
    target = Target(dsn)
    writer = DemoWriter(target, rate=rate)
    writer.start()
    return DemoSession(server, target, writer)
