"""`tview-tui soak`: the command runs, its oracle can fail, and the engine bugs it found."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import psycopg
import pytest

from tview_tui import catalog, demo
from tview_tui.tools import soak

from engine_helpers import damage, two_writers
from oracle import assert_oracle

pytestmark = pytest.mark.engine


@pytest.fixture
def blog(db):
    soak.prepare(db)
    return db


COMMENT_AS_40 = "INSERT INTO tb_comment (pk_comment, fk_post, fk_user, body) VALUES (9000, 2, 40, 'race')"
POST_AS_40 = "INSERT INTO tb_post (pk_post, fk_user, title) VALUES (9000, 40, 'race')"


def rename_race(dsn: str, insert: str = COMMENT_AS_40, tview: str = "public.tv_comment") -> list[tuple[int, str]]:
    """One transaction writes a row by user 40 (a comment) while another renames user 40; returns
    the drift of that row's TVIEW afterwards (it must carry the new name). Comments are made
    immediate: deferred, the window is only the commit-time flush (the soak still hits it)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT tview.set_mode('comment', 'immediate')")
    two_writers(dsn, insert, "UPDATE tb_user SET name = name || ' renamed' WHERE pk_user = 40")
    with psycopg.connect(dsn) as conn:
        return catalog.verify_all(conn)[tview]


@pytest.mark.slow
def test_soak_command_runs_writers_tail_and_oracle(server_dsn, blog, dsn, tmp_path):
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tview_tui", "soak", server_dsn, "--seconds", "8", "--writers", "4",
         "--interval", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("commits") >= 3, proc.stderr          # a progress line every 2 s
    result = json.loads(out.read_text())
    assert result["commits"] > 0 and result["rollbacks"] > 0
    assert result["errors"] == 0, result["error_samples"]
    assert result["queue_rows_left"] == 0
    assert result["events_received"] > 0
    assert result["events_received"] == result["events_logged"]
    assert 0 < result["rss_start_kb"] <= result["rss_peak_kb"]
    assert "drift rows:" in proc.stdout and "events:" in proc.stdout
    assert result["drift_rows"] == 0, result["drift"]
    assert proc.returncode == 0, proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("isolation", ["serializable", "repeatable-read", "mixed"])
def test_soak_at_other_isolation_levels_keeps_every_tview_exact(blog, dsn, isolation):
    """A snapshot older than the statement (REPEATABLE READ, SERIALIZABLE, or writers at all three
    levels at once): what it cannot see becomes a retried 40001, never a stale row."""
    result = soak.soak(dsn, seconds=4.0, writers=4, isolation=isolation, progress=lambda _: None)
    assert result.commits > 0 and result.errors == 0, result.error_samples
    assert result.retries > 0                  # the writers did meet each other
    assert result.drift_rows == 0, result.drift
    if isolation != "mixed":
        # Such a writer never waits for the engine's locks (it fails at once instead), so the
        # engine adds no deadlock; each would have cost its writers a second of deadlock_timeout.
        assert result.deadlocks == 0


def test_soak_oracle_covers_every_tview_and_fails_on_damage(blog, dsn):
    """A TVIEW the load never writes, damaged behind the engine's back, still fails the soak."""
    blog.execute("CREATE TABLE tb_tag (pk_tag int PRIMARY KEY, label text)")
    blog.execute("INSERT INTO tb_tag SELECT g, 'tag ' || g FROM generate_series(1, 20) g")
    blog.execute("SELECT tview.create('tag', 'SELECT pk_tag, jsonb_build_object(''label'', label) AS data FROM tb_tag')")
    damage(blog, """UPDATE tv_tag SET data = '{"label": "forged"}' WHERE pk_tag = 3""")
    damage(blog, "DELETE FROM tv_tag WHERE pk_tag = 7")
    result = soak.soak(dsn, seconds=1.0, writers=1, progress=lambda _: None)
    assert result.commits > 0
    assert result.drift["public.tv_tag"] == [(3, "different"), (7, "missing")]
    assert result.drift_rows == 2 and not result.ok
    assert "FAILED" in result.describe() and "public.tv_tag" in result.describe()


# -- engine bugs the soak found, fixed: regression tests --------------------------------------

def test_rename_race(blog, dsn):
    """A refresh share-locks the rows its definition joins, so the rename waits for the comment."""
    assert rename_race(dsn) == []


def test_rename_race_through_a_definition_with_an_outer_join(blog, dsn):
    """tv_post's top-level LEFT JOIN: the rows outside the nullable side are still share-locked."""
    assert rename_race(dsn, POST_AS_40, "public.tv_post") == []


def test_deferred_tview_embedding_an_immediate_one(blog, dsn):
    blog.execute("SELECT tview.set_mode('post', 'deferred')")
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE tb_user SET name = 'Renamed' WHERE pk_user = 22")
    assert sum(len(rows) for rows in catalog.verify_all(blog).values()) == 0


def test_random_transaction_writes_every_level(blog, dsn):
    """The load reaches every table: rows created and deleted at every level."""
    rng = random.Random(3)
    with psycopg.connect(dsn) as conn:
        before = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("tb_company", "tb_user", "tb_post", "tb_comment")}
        for _ in range(120):
            if demo.random_transaction(conn, rng):
                conn.commit()
            else:
                conn.rollback()
        after = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in before}
    assert all(after[t] != before[t] for t in before), (before, after)
    assert_oracle(blog)
