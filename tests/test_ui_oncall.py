"""The app as an on-call engineer uses it: read-only sessions, screens closed while their data
loads, the palette, honest numbers, full text of every row, dead ends that say what to do.

Pilot drives the real app against a real database holding the demo schema.
"""

from __future__ import annotations

import psycopg
import pytest
from test_ui import SIZE, loaded, make_app, notifications, wait_for  # noqa: F401

from tview_tui import demo


@pytest.fixture
def demo_db(db, dsn):
    demo.setup(db)
    return dsn


async def test_read_only_session_registers_and_tails_events(demo_db, dsn):
    """--read-only makes every session read-only; registering as a listener still works, so
    writers notify (tview.notify = auto) and the tail moves."""
    app = make_app(demo_db, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await wait_for(pilot, lambda: app.stream is not None and app.stream.connected)
        with psycopg.connect(dsn, autocommit=True) as conn:
            listeners = conn.execute("SELECT count(*) FROM tview.listeners").fetchone()[0]
        assert listeners == 1
        await pilot.press("2")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE tb_company SET name = 'read-only sees it' WHERE pk_company = 3")
        await wait_for(pilot, lambda: app.screen.shown >= 1)
        assert app.stream.reconnects == 0 and "events: live" in app.status
        assert not any("read-only" in m for m in notifications(app))


async def test_detail_closed_before_its_data_arrives_drops_the_result(demo_db, dsn):
    """Esc on a detail screen whose load is still running: the late result is dropped, no crash."""
    from tview_tui.ui.detail import DetailScreen

    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        with psycopg.connect(dsn) as blocker:               # the catalog is locked: the load waits
            blocker.execute("LOCK TABLE tview.tviews IN ACCESS EXCLUSIVE MODE")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
            await pilot.pause(0.3)
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen.SCOPE == "tviews")
        await pilot.pause(2.5)                              # the load finishes (or times out) now
        assert app.return_code is None and app.is_running
        await pilot.press("enter")                          # and the next detail loads as usual
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen)
                       and app.screen.query_one("#columns").row_count > 0)


async def test_palette_offers_the_screens_commands_and_one_quit(demo_db):
    from textual.command import CommandPalette

    from tview_tui.ui.widgets import PromptScreen

    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("ctrl+p", *"filt")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("escape", "2")
        await wait_for(pilot, lambda: app.screen.SCOPE == "tail")
        await pilot.press("ctrl+p", *"pause")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: getattr(app.screen, "paused", False))
        await pilot.press("ctrl+p", *"quit")
        await pilot.pause(0.5)
        assert isinstance(app.screen, CommandPalette)
        options = app.screen.query_one("CommandList").options
        assert sum("Quit" in str(option.prompt) for option in options) == 1


async def test_read_only_footer_hides_writing_commands(demo_db):
    app = make_app(demo_db, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        shown = {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show}
        assert "r" not in shown and "k" not in shown and "slash" in shown
