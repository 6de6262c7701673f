"""Connections to PostgreSQL: one place that decides how the tool identifies itself.

The DSN is handed to libpq untouched (URI, key=value, ``service=``, PG* variables and
``~/.pgpass`` are all libpq's business); we only add what the tool needs on top:
``application_name``, a connect timeout and an optional read-only session.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo

APPLICATION_NAME = "tview-tui"
DEFAULT_CONNECT_TIMEOUT = 5


class TviewError(Exception):
    """An error meant for the user: one line, no traceback, optional hint."""

    def __init__(self, message: str, *, hint: str | None = None, sqlstate: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.sqlstate = sqlstate

    def __str__(self) -> str:
        text = self.message
        if self.sqlstate:
            text = f"{text} [SQLSTATE {self.sqlstate}]"
        if self.hint:
            text = f"{text}\nhint: {self.hint}"
        return text


@dataclass(frozen=True)
class Target:
    """Where to connect and how: a DSN (may be empty: libpq then uses PG* variables)."""

    dsn: str = ""
    read_only: bool = False
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    application_name: str = APPLICATION_NAME

    def conninfo(self, **overrides: str | int) -> str:
        """The DSN with our defaults added only where neither it nor the environment sets them."""
        given = _explicit_params(self.dsn)
        extra: dict[str, str | int] = {}
        if "application_name" not in given and "PGAPPNAME" not in os.environ:
            extra["application_name"] = self.application_name
        if "connect_timeout" not in given and "PGCONNECT_TIMEOUT" not in os.environ:
            extra["connect_timeout"] = self.connect_timeout
        extra.update(overrides)
        return pg_conninfo.make_conninfo(self.dsn, **extra)

    def describe(self) -> str:
        """A safe one-line description of the target (never shows a password)."""
        try:
            params = _explicit_params(self.dsn)
        except TviewError:
            return "(invalid DSN)"
        params.pop("password", None)
        if not params:
            return "(libpq defaults / PG* environment)"
        return " ".join(f"{k}={v}" for k, v in sorted(params.items()))


def _explicit_params(dsn: str) -> dict[str, str]:
    """Parse a DSN with libpq's own parser (no service-file expansion, no guessing)."""
    try:
        return {k: str(v) for k, v in pg_conninfo.conninfo_to_dict(dsn).items() if v is not None}
    except psycopg.ProgrammingError as exc:
        raise TviewError(f"invalid connection string: {exc}") from None


def connect(target: Target | str, *, autocommit: bool = False, prepare: bool = True) -> psycopg.Connection:
    """Open a connection, turning connection failures into a one-line TviewError.

    prepare=False: no client-side statement preparation, so that every execution of a
    statement runs the same way (the bench times the first runs and the later ones alike)."""
    if isinstance(target, str):
        target = Target(dsn=target)
    options: dict[str, Any] = {} if prepare else {"prepare_threshold": None}
    try:
        conn = psycopg.connect(target.conninfo(), autocommit=autocommit, **options)
    except psycopg.OperationalError as exc:
        raise connection_error(target, exc) from None
    if target.read_only:
        conn.execute("SET default_transaction_read_only = on")
        if not autocommit:
            conn.commit()
    return conn


async def connect_async(target: Target | str, *, autocommit: bool = True) -> psycopg.AsyncConnection:
    """The asyncio twin of :func:`connect`, for the event stream and the app's workers."""
    if isinstance(target, str):
        target = Target(dsn=target)
    try:
        conn = await psycopg.AsyncConnection.connect(target.conninfo(), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise connection_error(target, exc) from None
    if target.read_only:
        await conn.execute("SET default_transaction_read_only = on")
    return conn


# A hot standby (a server in recovery) refuses LISTEN and every write: clients read it
# read-only and take events from the log, replicated from the primary.
RECOVERY_QUERY = "SELECT pg_is_in_recovery()"


def in_recovery(conn: psycopg.Connection) -> bool:
    """Whether the server is a hot standby."""
    return bool(one(conn.execute(RECOVERY_QUERY))[0])


async def in_recovery_async(conn: psycopg.AsyncConnection) -> bool:
    """The asyncio twin of :func:`in_recovery`."""
    row = await (await conn.execute(RECOVERY_QUERY)).fetchone()
    return bool(row and row[0])


# SQLSTATE of a connection that could not be made at all (no server answer to carry one):
# sqlclient_unable_to_establish_sqlconnection.
NO_CONNECTION = "08001"


def connection_error(target: Target, exc: psycopg.OperationalError) -> TviewError:
    """A failed connection as one line with its SQLSTATE: the server's (bad password 28P01, no
    such database 3D000, ...) or 08001 when no server answered."""
    return TviewError(
        f"cannot connect to {target.describe()}: {first_line(exc)}",
        hint="check the DSN, PG* variables, ~/.pgpass and that the server is running",
        sqlstate=getattr(exc, "sqlstate", None) or NO_CONNECTION,
    )


def one(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The row of a query that always returns one (SELECT count(*), SHOW ...)."""
    row = cursor.fetchone()
    assert row is not None, "a one-row query returned no row"
    return row


def error_from_db(exc: psycopg.Error, context: str) -> TviewError:
    """Turn a server error into a TviewError that keeps SQLSTATE, message and hint."""
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag and diag.message_primary else first_line(exc))
    return TviewError(
        f"{context}: {message}",
        hint=diag.message_hint if diag else None,
        sqlstate=getattr(exc, "sqlstate", None),
    )


def first_line(exc: BaseException) -> str:
    """An exception as one line for a status bar or a log: the first line of its message, or
    its class when it has none (server errors add DETAIL and HINT lines below)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
