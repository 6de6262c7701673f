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
