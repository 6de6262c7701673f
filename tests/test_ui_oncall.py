"""The app as an on-call engineer uses it: read-only sessions, screens closed while their data
loads, the palette, honest numbers, full text of every row, dead ends that say what to do.

Pilot drives the real app against a real database holding the demo schema.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from test_ui import COLUMN, SIZE, loaded, make_app, notifications, palette_search, wait_for  # noqa: F401
from textual.widgets import Label

from tview_tui import demo
from tview_tui.connection import Target

from engine_helpers import damage, prepared_database

pytestmark = pytest.mark.ui

demo_db = prepared_database(demo.setup, name="demo_db", gives="dsn")


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

        def app_sessions_idle() -> bool:
            with psycopg.connect(dsn, autocommit=True) as conn:
                return not conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                        " AND application_name = 'tview-tui' AND state <> 'idle'").fetchone()[0]
        await wait_for(pilot, app_sessions_idle)          # the load finishes now, its result comes too late
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
        await pilot.press("ctrl+p")
        await palette_search(pilot, app, "filt")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("escape", "2")
        await wait_for(pilot, lambda: app.screen.SCOPE == "tail")
        await pilot.press("ctrl+p")
        await palette_search(pilot, app, "pause")
        await pilot.press("enter")
        await wait_for(pilot, lambda: getattr(app.screen, "paused", False))
        await pilot.press("ctrl+p")
        await palette_search(pilot, app, "quit")
        assert isinstance(app.screen, CommandPalette)
        options = app.screen.query_one("CommandList").options
        assert sum("Quit" in str(option.prompt) for option in options) == 1


async def test_read_only_footer_hides_writing_commands(demo_db):
    app = make_app(demo_db, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        shown = {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show}
        assert "r" not in shown and "k" not in shown and "slash" in shown


async def test_enter_on_a_tail_event_opens_its_cascade_trace(demo_db, dsn):
    from tview_tui.ui.widgets import TextScreen

    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.stream is not None and app.stream.connected)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE tb_user SET name = 'Traced' WHERE pk_user = 7")
        await wait_for(pilot, lambda: app.screen.shown >= 4)
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen))
        text = str(app.screen.body)
        lines = text.splitlines()
        assert lines[0].startswith("  transaction ") and "4 refresh(es)" in lines[0] and "slowest" in lines[0]
        assert lines[1].startswith("  UPDATE tb_user")
        order = [name for name in ("tv_user", "tv_comment", "tv_post", "tv_post_card")]
        positions = [next(n for n, line in enumerate(lines[2:]) if f"public.{name} " in line) for name in order]
        assert positions == sorted(positions)
        assert "└─ public.tv_user  d0" in text and "keys [7]" in text
        assert sum(line.startswith("▶ ") for line in lines) == 1
        await pilot.press("escape")
        assert app.screen.SCOPE == "tail"


async def test_pausing_the_tail_marks_what_arrived_meanwhile(demo_db, dsn):
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.stream is not None and app.stream.connected)
        await pilot.press("space")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE tb_post SET title = 'while paused' WHERE pk_post = 9")
        await wait_for(pilot, lambda: app.event_seq >= 2)
        await pilot.pause(0.5)
        assert app.screen.shown == 0
        await pilot.press("space")
        await wait_for(pilot, lambda: app.screen.shown == 2)
        rows = app.screen.event_log.texts()
        assert any(row.startswith("-- ") and "2 event(s) arrived meanwhile" in row for row in rows)


async def test_event_rates_count_every_event_not_a_window(demo_db, dsn):
    """2,100 statements in one transaction: ev/min says 2100, not the 2000 the timing window holds."""
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await wait_for(pilot, lambda: app.stream is not None and app.stream.connected)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DO $$ BEGIN FOR i IN 1..2100 LOOP"
                         " UPDATE tb_post SET title = 'rate ' || i WHERE pk_post = 1 + i % 300; END LOOP; END $$")
        await wait_for(pilot, lambda: app.stats.get("public.tv_post_card") is not None
                       and app.stats.get("public.tv_post_card").count >= 2100, timeout=60)
        rate = COLUMN["rate"]

        def listed() -> dict:
            return {str(r[0]): [str(c) for c in r] for r in (app.screen.query_one("#tviews").get_row_at(i)
                                                             for i in range(5))}
        # the list (redrawn each second) shows the rates the app counted
        await wait_for(pilot, lambda: all(listed()[name][rate] == f"{app.stats.get(name).per_minute:.0f}"
                                          for name in ("public.tv_post", "public.tv_post_card")))
        rows = listed()
        assert rows["public.tv_post"][rate] == "2100" and rows["public.tv_post_card"][rate] == "2100"


async def test_writer_label_shows_the_rate_achieved_and_the_rate_asked(demo_db):
    writer = demo.DemoWriter(Target(demo_db), rate=1000)
    writer.start()
    started = time.monotonic()
    try:
        app = make_app(demo_db, writer=writer)
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot, app)
            # the label averages the last 5 whole seconds: they must all lie after the start
            await wait_for(pilot, lambda: time.monotonic() - started >= 6.5)
            before, measured_from = writer.writes, asyncio.get_running_loop().time()
            await pilot.pause(3.0)
            achieved = (writer.writes - before) / (asyncio.get_running_loop().time() - measured_from)
            label = re.search(r"demo writer ([\d.]+)/s \(asked 1000/s, \d+ writes\)", app.status)
            assert label, app.status
            assert abs(float(label.group(1)) - achieved) <= max(0.5 * achieved, 5)
            writer.set_rate(1)
            await pilot.press("minus", "minus")
            assert "demo writer asked for 0.5 writes/s" in notifications(app)
    finally:
        writer.stop()


async def test_refresh_result_names_the_rows_of_each_tview_and_opens_whole(demo_db, db):
    from tview_tui.ui.detail import DetailScreen
    from tview_tui.ui.widgets import TextScreen

    damage(db, "UPDATE tv_company SET data = '{}'::jsonb WHERE pk_company = 1")
    damage(db, "UPDATE tv_user SET data = '{}'::jsonb WHERE fk_company = 1")      # 10 users
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await wait_for(pilot, lambda: app.stream is not None and app.stream.connected)
        await pilot.press("slash", *"company", "enter")
        await wait_for(pilot, lambda: app.screen.query_one("#tviews").row_count == 1)
        await pilot.press("r", "y")
        await wait_for(pilot, lambda: "then the TVIEWs that read it" in str(
            app.screen.query_one("#last-action", Label).render()))
        line = str(app.screen.query_one("#last-action", Label).render())
        assert re.search(r"refreshed public\.tv_company \(whole TVIEW\): 1 row\(s\) written in [\d.]+ ms;"
                         r" then the TVIEWs that read it: public\.tv_user 10", line), line
        await pilot.press("d")                           # the row whole, with that refresh split per TVIEW
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen))
        body = str(app.screen.body)
        assert "lineage    incremental" in body and "health" in body
        assert re.search(r"rows written per TVIEW, in cascade order:\n  public\.tv_company  1\n"
                         r"  public\.tv_user  10\n", body), body
        assert "cascade trace (the slowest step marked)" in body and "└─ public.tv_user" in body
        await pilot.press("escape", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        await pilot.press("k", *"1-3 5", "enter")       # the detail's d: its last refresh, every key
        await wait_for(pilot, lambda: app.refreshes["public.tv_company"][0].keys == (1, 2, 3, 5))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen))
        assert "what       4 key(s): 1-3, 5" in str(app.screen.body)


def laid_out(screen, *selectors: str) -> bool:
    """The screen shows every widget of selectors, with a place on it."""
    return all(screen.query(selector) and screen.query_one(selector).region.area for selector in selectors)


async def test_narrow_terminal_keeps_health_timings_help_and_the_tail_readable(demo_db, dsn):
    """80x24: the list keeps health and ev/min on screen, the footer keeps ? and q, the tail puts
    its sparklines below and the refresh time in its second column."""
    from test_ui import settled_screen_text

    app = make_app(demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        text = await settled_screen_text(pilot, app)
        header = next(line for line in text.splitlines() if line.lstrip().startswith("TVIEW"))
        assert "health" in header and "ev/min" in header
        assert "? Help" in text and "q Quit" in text
        await pilot.press("2")
        await wait_for(pilot, lambda: laid_out(app.screen, "#tail-log", "#sparklines"))
        tail, panel = app.screen.query_one("#tail-log"), app.screen.query_one("#sparklines")
        assert panel.region.y >= tail.region.bottom and tail.region.width >= 76
        assert tail.header.split()[:3] == ["time", "ms", "rows"]
    async with make_app(demo_db).run_test(size=(160, 45)) as pilot:
        await loaded(pilot, pilot.app)
        await pilot.press("2")
        await wait_for(pilot, lambda: laid_out(pilot.app.screen, "#tail-log", "#sparklines"))
        tail, panel = pilot.app.screen.query_one("#tail-log"), pilot.app.screen.query_one("#sparklines")
        assert panel.region.x >= tail.region.right                    # wide: side by side


async def test_every_finding_opens_whole_and_a_fix_needing_a_person_says_what_to_do(demo_db, db):
    from tview_tui.ui.widgets import ConfirmScreen, TextScreen

    db.execute("DROP INDEX tb_comment_fk_user_idx")                  # unindexed_fk: no automatic fix
    db.execute("ALTER TABLE tb_post DISABLE TRIGGER tview_after_update")
    app = make_app(demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, app)
        await pilot.press("3")
        await wait_for(pilot, lambda: app.screen.query_one("#findings").row_count == 2)
        assert "quick check" in str(app.screen.query_one("#diag-info", Label).render())
        await pilot.press("x")                                        # the trigger: asks, SQL whole
        assert isinstance(app.screen, ConfirmScreen)
        question = app.screen.query_one("#question")
        assert "tview.refresh('public.tv_post')" in str(question.render()).replace("\n", " ")
        assert question.region.right <= 80
        await pilot.press("n", "down", "enter")                       # the index: the whole finding
        assert isinstance(app.screen, TextScreen)
        body = str(app.screen.body)
        assert "unindexed_fk" in body and "CREATE INDEX" in body and "tb_comment" in body
        await pilot.press("escape", "x")
        assert isinstance(app.screen, TextScreen) and "what to do" in app.screen.title_text
        await pilot.press("escape", "d")
        await wait_for(pilot, lambda: "deep check: every row of 5 TVIEW(s)" in str(
            app.screen.query_one("#diag-info", Label).render()) and " in " in str(
            app.screen.query_one("#diag-info", Label).render()))


async def test_a_huge_key_range_is_refused_before_it_is_built(demo_db):
    import resource
    import time

    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        await pilot.press("k", *"1-100000000")
        started = time.perf_counter()
        await pilot.press("enter")
        await wait_for(pilot, lambda: "at most 100,000 keys at a time" in notifications(app))
        # built, 100 million keys would take gigabytes and many seconds; the bound on time leaves
        # room for a loaded machine (a second and more under the suite's four workers on two cores)
        assert time.perf_counter() - started < 5.0
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100_000     # kB


async def test_engine_uninstalled_elsewhere_empties_the_list_and_the_install_screen_says_so(demo_db, db):
    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        from tview_tui import installer
        from tview_tui.connection import TviewError

        for attempt in range(5):        # the app's own reads may make the DROP SCHEMA deadlock: retry
            try:
                await asyncio.to_thread(installer.uninstall, db, cascade=True)
                break
            except TviewError as exc:
                if exc.sqlstate != "40P01" or attempt == 4:
                    raise
        await wait_for(pilot, lambda: app.screen.query_one("#tviews").row_count == 0)
        info = str(app.screen.query_one("#list-info", Label).render())
        assert "no engine in this database" in info
        await pilot.press("4")
        await wait_for(pilot, lambda: "not installed" in str(app.screen.query_one("#install-status").render()))


async def test_no_tviews_says_how_to_create_one(dsn):
    app = make_app(dsn)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: "0 TVIEWs: create one with SELECT tview.create(" in str(
            app.screen.query_one("#list-info", Label).render()))


async def test_detail_titles_its_trees_aligns_the_definition_and_explains_a_refresh(demo_db):
    from tview_tui.ui.detail import DetailScreen
    from tview_tui.ui.widgets import PromptScreen, TextScreen

    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("slash", *"tv_post_card", "enter")
        await wait_for(pilot, lambda: app.screen.query_one("#tviews").row_count == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen)
                       and app.screen.query_one("#columns").row_count > 0)
        detail = app.screen
        assert detail.query_one("#upstream").border_title.startswith("reads")
        assert detail.query_one("#downstream").border_title.startswith("read by")
        lines = detail.query_one("#definition").content.code.splitlines()
        assert lines[0].startswith("SELECT") and lines[-1].startswith("FROM tv_post p")
        await pilot.press("e")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"1-2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen))
        body = str(app.screen.body)
        assert "of the refresh of public.tv_post_card for key(s) [1,2]" in body and "cost=" in body
        await pilot.press("escape", "a", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen) and "actual time" in str(app.screen.body))


async def test_graph_screen_shows_levels_lineage_rates_and_the_last_trace(demo_db, dsn):
    from test_ui import settled_screen_text

    from tview_tui.ui.detail import DetailScreen
    from tview_tui.ui.widgets import TextScreen

    app = make_app(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.stream is not None and app.stream.connected)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE tb_comment SET body = 'graph' WHERE pk_comment = 5")
        await wait_for(pilot, lambda: app.screen.shown >= 3)
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TextScreen))
        await pilot.press("escape", "5")
        await wait_for(pilot, lambda: app.screen.SCOPE == "graph" and app.screen.query_one("#graph-table").row_count)
        await wait_for(pilot, lambda: laid_out(app.screen, "#graph-view"))
        view = app.screen.query_one("#graph-view")                    # drawn first: boxes by level
        assert app.focused is view and view.region.height > 20
        lit = {name for name, box in view.drawing.boxes.items() if box.lit}
        assert lit == {"public.tb_comment", "public.tv_comment", "public.tv_post", "public.tv_post_card"}
        picture = await settled_screen_text(pilot, app)
        assert "┌ TVIEW ─" in picture and "┌ table ─" in picture and " fk▶│" in picture
        assert re.search(r"│ tv_comment +│", picture) and re.search(r"│ 1/min +│", picture)
        await pilot.press("right", "right", "right", "right", "enter")   # level 4 holds tv_post alone
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.info.name == "post")
        await pilot.press("escape", "t")
        table = app.screen.query_one("#graph-table")
        assert app.focused is table
        rows = {str(r[0]).strip(" ●"): [str(c) for c in r] for r in (table.get_row_at(i) for i in range(table.row_count))}
        assert rows["public.tb_company"][1] == "L0 table" and rows["public.tv_post_card"][1].endswith("tview")
        levels = [int(rows[n][1][1]) for n in ("public.tv_company", "public.tv_user", "public.tv_comment",
                                                "public.tv_post", "public.tv_post_card")]
        assert levels == sorted(levels) and levels[0] >= 1
        assert "tv_user (" in rows["public.tv_post"][4] and "tb_comment" in rows["public.tv_post"][4]
        lit = {name for name, r in rows.items() if "●" in r[0]}
        assert lit == {"public.tb_comment", "public.tv_comment", "public.tv_post", "public.tv_post_card"}
        assert rows["public.tv_comment"][2] == "1" and rows["public.tb_comment"][2] == "1"
        table.move_cursor(row=[str(r[0]).strip(" ●") for r in (table.get_row_at(i) for i in range(table.row_count))]
                          .index("public.tv_post"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.info.name == "post")


def normalized(text: str) -> str:
    """What varies between runs (ports, names, times, costs, ids) replaced by placeholders."""
    for pattern, placeholder in [
        (r"port=\d+", "port=N"), (r"dbname=tview_test_\w+", "dbname=DB"), (r"events: \w+", "events: STATE"),
        (r"PostgreSQL [\d.]+( \([^)]*\))?", "PostgreSQL N"), (r"\d+:\d+:\d+(\.\d+)?", "HH:MM:SS"),
        (r"transaction \d+ \(pid \d+\)", "transaction X (pid P)"), (r"\d+\.\d+ ms", "N ms"),
        (r"cost=[\d.]+\.\.[\d.]+", "cost=N"), (r"rows=\d+", "rows=N"), (r"width=\d+", "width=N"),
        (r"\d+(\.\d)? kB", "N kB"), (r"\d+\.\d+", "N"), (r"\b\d\d:", "HH:"),
        (r"slowest public\.\w+", "slowest T"), ("▶", " "),
        (r"[ ─]{2,}", " "),
    ]:
        text = re.sub(pattern, placeholder, text)
    return text


@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
@pytest.mark.parametrize("view", ["graph", "trace", "explain"])
async def test_snapshots_of_the_new_views(demo_db, dsn, view, size, request):
    from test_ui import SNAPSHOTS, settled_screen_text
    from textual.widgets import TabbedContent

    from tview_tui.ui.detail import DetailScreen
    from tview_tui.ui.widgets import TextScreen

    app = make_app(demo_db)
    async with app.run_test(size=size) as pilot:
        await loaded(pilot, app)
        await wait_for(pilot, lambda: app.stream is not None and app.stream.connected)
        if view == "graph":
            await pilot.press("5")
            await wait_for(pilot, lambda: app.screen.query_one("#graph-table").row_count == 9)
        elif view == "trace":                  # from the detail's events (the tail's sparklines vary)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("UPDATE tb_company SET name = 'snapshot' WHERE pk_company = 2")
            await wait_for(pilot, lambda: len(app.buffered_events()) >= 5)
            await pilot.press("slash", *"tv_company", "enter")
            await wait_for(pilot, lambda: app.screen.query_one("#tviews").row_count == 1)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
            app.screen.query_one(TabbedContent).active = "tab-events"
            await wait_for(pilot, lambda: app.screen.query_one("#events").row_count == 1)
            app.screen.query_one("#events").focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, TextScreen))
        else:
            await pilot.press("slash", *"tv_post_card", "enter")
            await wait_for(pilot, lambda: app.screen.query_one("#tviews").row_count == 1)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
            await pilot.press("e", *"1-3", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, TextScreen))
        text = normalized(await settled_screen_text(pilot, app))
    expected = SNAPSHOTS / f"{view}-{size[0]}x{size[1]}.txt"
    if request.config.getoption("--update-snapshots") or not expected.exists():
        expected.write_text(text)
        if not request.config.getoption("--update-snapshots"):
            pytest.fail(f"snapshot {expected.name} was missing and has been written; run again")
    assert text == expected.read_text()


def test_event_stream_process_ends_when_the_app_is_killed(demo_db):
    """The app's event stream runs in a child process, which does not outlive a killed app."""
    def alive(pid: int) -> bool:
        try:
            return "zombie" not in Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return False

    app = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from tview_tui.connection import Target\n"
         "from tview_tui.eventproc import EventProcess\n"
         "stream = EventProcess(Target(sys.argv[1]))\n"
         "while stream.receive(1.0) is None or not stream.connected:\n"
         "    pass\n"
         "print(stream.process.pid, flush=True)\n"
         "time.sleep(60)\n", demo_db],
        stdout=subprocess.PIPE, text=True)
    try:
        assert app.stdout is not None
        child = int(app.stdout.readline())
        assert alive(child)                                    # listening
        app.send_signal(signal.SIGKILL)
        app.wait(10)
        deadline = time.monotonic() + 10
        while alive(child):
            assert time.monotonic() < deadline, "the event stream process outlived the app"
            time.sleep(0.1)
    finally:
        app.kill()
        app.wait()
