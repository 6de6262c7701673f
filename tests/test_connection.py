"""Connections (tview_tui/connection.py): how the tool identifies itself, one-line failures,
read-only sessions."""

from __future__ import annotations

import psycopg
import pytest

from tview_tui.connection import Target, TviewError, connect, first_line


def test_connect_failure_is_one_line_error():
    with pytest.raises(TviewError) as err:
        connect(Target("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2))
    assert "cannot connect" in err.value.message


def test_application_name_identifies_the_tool(empty_dsn):
    with connect(Target(empty_dsn)) as conn:
        name = conn.execute("SHOW application_name").fetchone()[0]
    assert name == "tview-tui"


def test_read_only_target_refuses_writes(empty_dsn):
    with connect(Target(empty_dsn, read_only=True)) as conn, pytest.raises(
            psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("CREATE TABLE t (x int)")


def test_an_error_is_told_in_its_first_line_or_by_its_class():
    assert first_line(psycopg.OperationalError("server closed the connection\nDETAIL: more")) == \
        "server closed the connection"
    assert first_line(TviewError("no TVIEW x", hint="qualify it")) == "no TVIEW x"
    assert first_line(TimeoutError()) == "TimeoutError"
