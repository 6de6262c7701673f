"""The command line (tview_tui/cli.py) as a user meets it, in a subprocess against real servers: every
command explains itself, errors are one line with no traceback, and the commands that are not the
app (install, status, explain, tail)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tview_tui import demo

from engine_helpers import listeners, wait_until


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tview_tui", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TVIEW_TUI_CONFIG": "/nonexistent/config.toml"})


@pytest.fixture
def demo_dsn(db, dsn):
    demo.setup(db)
    return dsn


def one_line_error(done: subprocess.CompletedProcess, *mentions: str) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    first = done.stderr.splitlines()[0]
    assert first.startswith("error: ") and "Traceback" not in done.stderr
    for mention in mentions:
        assert mention in first, first
    return first


def test_every_command_explains_itself_and_config_path_exists(tmp_path):
    from tview_tui.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        assert sub.description and len(sub.description) > 40, name
        assert "issue" not in sub.format_help().lower(), name
    config = tmp_path / "config.toml"
    config.write_text('[profiles.demo]\ndsn = "host=elsewhere"\n')
    env = {**os.environ, "TVIEW_TUI_CONFIG": str(config)}
    done = subprocess.run([sys.executable, "-m", "tview_tui", "config-path"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == str(config)
    shadowed = subprocess.run([sys.executable, "-m", "tview_tui", "demo", "--help"], capture_output=True,
                              text=True, env=env, timeout=60)
    assert "to open the profile 'demo' use: tview-tui open demo" in shadowed.stderr
def test_open_with_a_mistyped_profile_or_dsn_is_one_line_not_a_screen(server_dsn):
    one_line_error(cli("prdo"), "'prdo' is neither a profile of", "nor a connection string")
    one_line_error(cli("host=127.0.0.1 port=1 dbname=shop", timeout=30), "cannot connect", "[SQLSTATE 08001]")
    from psycopg.conninfo import make_conninfo

    one_line_error(cli("status", make_conninfo(server_dsn, dbname="no_such_db")), "cannot connect", "[SQLSTATE ")


def test_cli_install_status_uninstall(empty_dsn):
    result = cli("status", empty_dsn, "--json")
    assert result.returncode == 0, result.stderr
    assert '"installed": null' in result.stdout
    result = cli("install", empty_dsn)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("installed engine")
    result = cli("status", empty_dsn)
    assert "up to date" in result.stdout
    result = cli("uninstall", empty_dsn, "--json")
    assert result.returncode == 0 and '"uninstalled"' in result.stdout


def test_cli_errors_have_no_traceback():
    result = cli("status", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot connect")
    assert "Traceback" not in result.stderr
    result = cli("status", "this is not a dsn")
    assert result.returncode == 2 and "Traceback" not in result.stderr
def test_explain_shows_the_plan_of_a_keyed_refresh(demo_dsn):
    import json

    done = cli("explain", demo_dsn, "post", "--keys", "1,2-3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("EXPLAIN (not run) of the refresh of public.tv_post for key(s) [1,2,3]:")
    assert 'FROM "public"."v_post" WHERE "pk_post" = ANY(ARRAY[keys])' in done.stdout
    assert "Index" in done.stdout and "cost=" in done.stdout
    analyzed = cli("explain", demo_dsn, "public.tv_comment", "--analyze", "--json")
    assert analyzed.returncode == 0, analyzed.stderr
    result = json.loads(analyzed.stdout)
    assert result["analyzed"] and len(result["keys"]) == 1 and any("actual time" in p for p in result["plan"])
    one_line_error(cli("explain", demo_dsn, "nosuch"), "no TVIEW nosuch", "[SQLSTATE 42P01]")


def test_tail_refuses_an_unknown_tview_and_a_log_that_is_off(demo_dsn):
    one_line_error(cli("tail", demo_dsn, "--tview", "tv_nosuch", timeout=30), "no TVIEW tv_nosuch",
                   "[SQLSTATE 42P01]")
    one_line_error(cli("tail", demo_dsn, "--poll", timeout=30), "the event log is off (tview.log)")
    tail = subprocess.Popen([sys.executable, "-m", "tview_tui", "tail", demo_dsn, "--since", "10m"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tail.stderr is not None
        said = []
        for line in tail.stderr:                             # until it starts tailing, past --since
            said.append(line)
            if line.startswith("tailing"):
                break
        with pytest.raises(subprocess.TimeoutExpired):       # and it keeps tailing (its stream connects at once)
            tail.wait(1)
    finally:
        tail.terminate()
        tail.communicate(timeout=10)
    assert "note: the event log is off (tview.log), so --since has nothing to read" in "".join(said)


def test_tail_trace_prints_each_transaction_as_a_tree(demo_dsn):
    import psycopg

    tail = subprocess.Popen([sys.executable, "-m", "tview_tui", "tail", demo_dsn, "--trace"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "tailing" in tail.stderr.readline()
        with psycopg.connect(demo_dsn, autocommit=True) as conn:
            wait_until(lambda: listeners(conn))
            with conn.transaction():
                conn.execute("UPDATE tb_user SET name = 'traced' WHERE pk_user = 4")
                conn.execute("UPDATE tb_comment SET body = 'traced' WHERE pk_comment = 8")
        lines = []
        while not lines or lines[-1].strip():
            lines.append(tail.stdout.readline())
    finally:
        tail.terminate()
        tail.communicate(timeout=10)
    text = "".join(lines)
    assert lines[0].startswith("transaction ") and "2 statement(s)" in lines[0] and "slowest" in lines[0]
    assert lines[1].startswith("UPDATE tb_user") and "UPDATE tb_comment" in text
    assert "└─ public.tv_user  d0" in text and "      └─ public.tv_post" in text
    assert text.count("<- slowest") == 1
