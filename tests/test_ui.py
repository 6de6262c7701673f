"""The Textual app driven with Pilot against a real database holding the demo schema."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from rich.text import Text
from textual.widgets import DataTable, Label, Tree

from tview_tui import demo
from tview_tui.config import Config
from tview_tui.connection import Target
from tview_tui.ui.app import TviewApp
from tview_tui.ui.detail import DetailScreen
from tview_tui.ui.tail import TICK
from tview_tui.ui.tviews import COLUMNS
from tview_tui.ui.widgets import ConfirmScreen, HelpScreen, PromptScreen

from engine_helpers import damage, prepared_database
from oracle import assert_oracle

pytestmark = pytest.mark.ui

SIZE = (150, 40)
COLUMN = {key: n for n, (key, _) in enumerate(COLUMNS)}     # the list's column positions
SNAPSHOTS = Path(__file__).parent / "snapshots"


demo_db = prepared_database(demo.setup, name="demo_db", gives="dsn")


def make_app(dsn: str, **kwargs) -> TviewApp:
    return TviewApp(Target(dsn, read_only=kwargs.pop("read_only", False)),
                    config=Config(path=None, refresh_interval=0.5), **kwargs)


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    """Let the app run until condition() holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.1)


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]


def table_rows(app, selector: str) -> list[list[str]]:
    table = app.screen.query_one(selector, DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def loaded(pilot, app) -> None:
    await wait_for(pilot, lambda: app.screen.query("#tviews") and app.screen.query_one("#tviews").row_count == 5)


async def palette_search(pilot, app, text: str) -> None:
    """Type text into the open command palette and wait until its search has ended with a command
    of that text among the results (enter before then picks whatever was found so far)."""
    from textual.command import CommandList, CommandPalette

    await pilot.press(*text)
    palette = app.screen
    assert isinstance(palette, CommandPalette)

    def found() -> bool:
        searching = any(worker.node is palette and worker.group == palette._GATHER_COMMANDS_GROUP
                        and not worker.is_finished for worker in app.workers)
        options = palette.query_one(CommandList).options
        return not searching and any(text in str(option.prompt).lower() for option in options)
    await wait_for(pilot, found)


async def test_list_shows_every_tview_with_rows_and_lineage(demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        rows = {r[0]: r for r in table_rows(app, "#tviews")}
        assert set(rows) == {f"public.tv_{n}" for n in ("company", "user", "comment", "post", "post_card")}
        assert rows["public.tv_post"][COLUMN["rows"]] == "300"
        assert rows["public.tv_post"][COLUMN["lineage"]] == "incremental"
        assert "connected" in app.status


async def test_cursor_stays_on_its_tview_across_updates_and_sorting(demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        screen = app.screen
        table = screen.query_one("#tviews", DataTable)
        table.move_cursor(row=[r[0] for r in table_rows(app, "#tviews")].index("public.tv_user"))
        await pilot.press("s")                      # sort by rows: tv_user moves
        before = app.tviews
        await wait_for(pilot, lambda: app.tviews is not before)     # and a reload happens meanwhile
        assert screen.selected == "public.tv_user"
        assert table_rows(app, "#tviews")[0][0] == "public.tv_comment"   # most rows first


async def test_list_columns_fit_their_cells_as_values_grow_and_shrink(demo_db):
    """Only the widest changed cell of a column is measured against it; the widths come out as
    if every cell had been."""
    app = TviewApp(Target(demo_db), config=Config(path=None, refresh_interval=3600))   # no reload meanwhile
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        screen = app.screen
        table = screen.query_one("#tviews", DataTable)
        infos = list(screen.rows_by_key.values())

        def fitted() -> bool:
            return all(column.content_width == max(
                [Text.from_markup(str(column.label)).cell_len,
                 *(Text(str(cell)).cell_len for cell in table.get_column(column.key))])   # cells are plain
                for column in table.columns.values())

        for rows, shown in ((123_456_789_012, "123,456,789,012"), (7, "7"), (None, "?")):
            app.tviews = [dataclasses.replace(info, rows=rows, rows_exact=True) for info in infos]  # as a reload would
            screen._update_table(app.tviews)
            await wait_for(pilot, lambda: fitted() and {str(c) for c in table.get_column("rows")} == {shown})  # noqa: B023


async def test_filter_and_detail_navigation(demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("slash")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"post", "enter")
        await wait_for(pilot, lambda: app.screen.query_one("#tviews").row_count == 2)
        assert [r[0] for r in table_rows(app, "#tviews")] == ["public.tv_post", "public.tv_post_card"]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        detail = app.screen
        await wait_for(pilot, lambda: detail.query_one("#columns", DataTable).row_count > 0)
        assert ["pk_post", "integer", "key"] in table_rows(app, "#columns")
        upstream = detail.query_one("#upstream", Tree)
        labels = [str(n.label) for n in upstream.root.children]
        assert any("public.tv_user" in label and "fk" in label for label in labels)
        assert any("public.tb_comment" in label for label in labels)
        analysis = str(detail.query_one("#analysis").render())
        assert "author: object of tv_user documents, matched on fk_user = pk_user" in analysis
        assert "comments: array of tv_comment documents, elements of fk_post = key, ordered by pk_comment" in analysis
        downstream = detail.query_one("#downstream", Tree)
        assert any("tv_post_card" in str(n.label) for n in downstream.root.children)
        await pilot.press("escape")
        assert app.screen.SCOPE == "tviews"


async def test_refresh_asks_first_and_reports_rows_and_time(demo_db, db):
    damage(db, "UPDATE tv_company SET data = '{}'::jsonb WHERE pk_company = 1")   # damage it by hand
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("slash", *"company", "enter")
        await wait_for(pilot, lambda: app.screen.query_one("#tviews").row_count == 1)
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause(0.3)
        assert not any("refreshed" in m for m in notifications(app))
        await pilot.press("r", "y")
        await wait_for(pilot, lambda: any("refreshed" in m for m in notifications(app)))
        result = str(app.screen.query_one("#last-action", Label).render())
        assert re.search(r"refreshed public\.tv_company \(whole TVIEW\): 1 row\(s\) written in [\d.]+ ms", result)
    assert_oracle(db)


async def test_refresh_selected_keys(demo_db, db):
    damage(db, "DELETE FROM tv_user WHERE pk_user IN (3, 4)")
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("slash", *"tv_user", "enter")
        await wait_for(pilot, lambda: app.screen.query_one("#tviews").row_count == 1)
        await pilot.press("k")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"3-4", "enter")
        await wait_for(pilot, lambda: any("2 key(s)" in m for m in notifications(app)))
    assert_oracle(db)


async def test_read_only_refuses_writing_actions_with_a_message(demo_db):
    app = make_app(demo_db, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("r")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("read-only" in m for m in notifications(app))
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        commands = [r[1] for r in table_rows(app, "#help-table")]
        assert "Refresh" not in commands and "Live tail" in commands


@pytest.fixture
def reader_dsn(demo_db, db):
    """A login role that may read the TVIEWs and the catalog, and nothing more."""
    role = f"tv_ui_reader_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier(role)
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
    db.execute(sql.SQL("GRANT USAGE ON SCHEMA tview TO {0};"
                       " GRANT SELECT ON tview.tviews, tview.dependencies, tview.graph, tview.events, tview.meta TO {0};"
                       " GRANT SELECT ON ALL TABLES IN SCHEMA public TO {0}").format(ident))
    yield make_conninfo(demo_db, user=role)
    db.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(ident))


async def test_read_only_role_browses_and_tails_but_cannot_refresh(reader_dsn, dsn):
    """No read-only flag: the role's own rights make the app read-only, and the tail still moves."""
    app = make_app(reader_dsn)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await wait_for(pilot, lambda: app.stream is not None and app.stream.connected and not app.can_write)
        await pilot.press("r")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("read-only: refresh" in m for m in notifications(app))
        await pilot.press("2")
        with psycopg.connect(dsn, autocommit=True) as writer:            # another role writes
            writer.execute("UPDATE tb_user SET name = 'Seen by a reader' WHERE pk_user = 7")
        await wait_for(pilot, lambda: app.screen.shown >= 1)


async def test_tail_shows_events_written_during_the_test(demo_db, dsn):
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.stream is not None and app.stream.connected)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE tb_user SET name = 'Tail Test' WHERE pk_user = 7")
        await wait_for(pilot, lambda: app.screen.shown >= 4)
        text = "\n".join(app.screen.event_log.texts())
        for name in ("tv_user", "tv_comment", "tv_post", "tv_post_card"):
            assert f"public.{name}" in text
        await pilot.press("space")              # pause: nothing more is shown
        shown, seq = app.screen.shown, app.event_seq
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE tb_user SET name = 'Paused' WHERE pk_user = 8")
        await wait_for(pilot, lambda: app.event_seq >= seq + 4)     # the events reached the app
        await pilot.pause(3 * TICK)                                  # ticks that would have shown them
        assert app.screen.shown == shown
        await pilot.press("space")
        await wait_for(pilot, lambda: app.screen.shown > shown)


async def test_app_survives_killed_connections_and_reconnects(demo_db, dsn):
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await wait_for(pilot, lambda: app.stream is not None and app.stream.connected)
        with psycopg.connect(dsn, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'tview-tui'"
                " AND pid <> pg_backend_pid()").fetchone()[0]
        assert killed >= 1
        await wait_for(pilot, lambda: app.stream.reconnects >= 1, timeout=15)
        await wait_for(pilot, lambda: app.connected and "connected" in app.status, timeout=15)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE tb_company SET name = 'after kill' WHERE pk_company = 2")
        await wait_for(pilot, lambda: app.stats.get("public.tv_company") is not None)


async def test_palette_offers_registry_commands(demo_db):
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("ctrl+p")
        await palette_search(pilot, app, "live tail")
        await pilot.press("enter")
        await wait_for(pilot, lambda: getattr(app.screen, "SCOPE", "") == "tail")


async def settled_screen_text(pilot, app, timeout: float = 10.0) -> str:
    """The screen as text once two renders 0.3 s apart agree (a loaded machine can catch a frame
    mid-layout, without its footer)."""
    deadline = asyncio.get_running_loop().time() + timeout
    text = screen_text(app)
    while True:
        await pilot.pause(0.3)
        again = screen_text(app)
        if again == text or asyncio.get_running_loop().time() > deadline:
            return again
        text = again


def screen_text(app) -> str:
    """The visible screen as plain text (from the SVG export), for snapshot comparison."""
    svg = app.export_screenshot(simplify=True)
    lines: dict[str, list[tuple[float, str]]] = {}
    for y, x, text in re.findall(r'<text[^>]*?x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>', svg):
        lines.setdefault(x, []).append((float(y), text))
    rendered = []
    for key in sorted(lines, key=float):
        row = "".join(t for _, t in sorted(lines[key]))
        rendered.append(row.replace("&#160;", " ").rstrip())
    return "\n".join(rendered)


@pytest.mark.parametrize("screen_key", ["tviews", "install", "help"])
async def test_snapshots_of_main_screens_from_fixed_data(demo_db, screen_key, request):
    """Fixed data (the demo schema, no writes) renders the same screen every time."""
    app = make_app(demo_db)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot, app)
        await wait_for(pilot, lambda: app.findings is not None)
        await wait_for(pilot, lambda: app.stream is not None and app.stream.connected)   # the status names it
        health = COLUMN["health"]
        await wait_for(pilot, lambda: all(r[health] != "-" for r in table_rows(app, "#tviews")))
        if screen_key == "install":
            await pilot.press("4")
            await wait_for(pilot, lambda: "engine bundled" in str(app.screen.query_one("#install-status").render()))
        elif screen_key == "help":
            await pilot.press("question_mark")
        text = await settled_screen_text(pilot, app)
    text = re.sub(r"port=\d+", "port=N", text)
    text = re.sub(r"events: \w+", "events: STATE", text)
    text = re.sub(r"dbname=tview_test_\w+", "dbname=DB", text)
    text = re.sub(r"PostgreSQL [\d.]+( \([^)]*\))?", "PostgreSQL N", text)   # distributions add their build
    text = re.sub(r"\d+(\.\d)? kB", "N kB", text)
    text = re.sub(r" {2,}", "  ", text)   # column widths follow the sizes
    expected_file = SNAPSHOTS / f"{screen_key}.txt"
    if request.config.getoption("--update-snapshots") or not expected_file.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        expected_file.write_text(text)
        if not request.config.getoption("--update-snapshots"):
            pytest.fail(f"snapshot {expected_file.name} was missing and has been written; run again")
    assert text == expected_file.read_text()


async def test_diagnostics_screen_lists_findings_and_fixes_with_one_key(demo_db, db):
    db.execute("ALTER TABLE tb_post DISABLE TRIGGER tview_after_update")
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("3")
        await wait_for(pilot, lambda: app.screen.query("#findings") and app.screen.query_one("#findings").row_count > 0)
        rows = table_rows(app, "#findings")
        assert rows[0][:2] == ["error", "disabled_trigger"]
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: any("re-enabled 1 trigger(s)" in m for m in notifications(app)))
        await wait_for(pilot, lambda: "healthy" in str(app.screen.query_one("#diag-info", Label).render()))
    assert db.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'tview_after_update'"
                      " AND tgrelid = 'tb_post'::regclass").fetchone()[0] == "O"


async def test_health_column_shows_findings_per_tview(demo_db, db):
    damage(db, "UPDATE tv_company SET data = '{}'::jsonb WHERE pk_company = 2")     # drift in tv_company
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await wait_for(pilot, lambda: app.findings is not None)
        await wait_for(pilot, lambda: app.stream is not None and app.stream.connected)   # the status names it
        health = COLUMN["health"]
        await wait_for(pilot, lambda: all(r[health] != "-" for r in table_rows(app, "#tviews")))   # refreshed each second
        rows = {r[0]: r[health] for r in table_rows(app, "#tviews")}
        assert rows["public.tv_company"] == "error"
        assert rows["public.tv_post"] == "ok"
