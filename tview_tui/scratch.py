"""Throwaway servers and databases for the tools that measure the engine (bench, soak, ui-bench).

A run needs a database of its own with the engine installed, on the server it was given or
on a temporary embedded one, and must leave nothing behind either way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from . import installer
from .connection import Target, connect, error_from_db


@contextmanager
def server(dsn: str | None, progress: Callable[[str], None]) -> Iterator[str]:
    """The given server, or a temporary embedded one that is removed afterwards."""
    if dsn:
        yield dsn
        return
    from .embedded import TemporaryServer

    temporary = TemporaryServer()
    try:
        progress("starting a temporary embedded PostgreSQL")
        yield temporary.start()
    finally:
        temporary.cleanup()


@contextmanager
def database(admin: str, progress: Callable[[str], None], prefix: str = "tview_bench") -> Iterator[str]:
    """A fresh database with the engine installed, dropped (with its sessions) at the end."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with connect(Target(admin), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise error_from_db(exc, "cannot create the benchmark database") from None
    dsn = make_conninfo(admin, dbname=name)
    try:
        progress(f"database {name}: installing the engine")
        with connect(Target(dsn)) as conn:
            installer.install(conn)
            conn.commit()
        yield dsn
    finally:
        with connect(Target(admin), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
