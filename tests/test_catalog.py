"""The catalog functions the app and the CLI read TVIEWs through (tview_tui/catalog.py), against a
real database: one identity per TVIEW, the catalog id and the server's label, from SQL to screen."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tview_tui import catalog, diagnostics, graph, trace
from tview_tui.config import Config
from tview_tui.connection import Target
from tview_tui.events import Event
from tview_tui.ui.app import TviewApp

from engine_helpers import damage

# A schema named by a reserved word and a mixed-case one: the server quotes both in its labels.
# "order".tv_line embeds "Shop".tv_item and nothing reads it.
ODD_SCHEMAS = """
CREATE SCHEMA "order";
CREATE SCHEMA "Shop";
CREATE TABLE "Shop".tb_item (pk_item int PRIMARY KEY, name text NOT NULL);
CREATE TABLE "order".tb_line (pk_line int PRIMARY KEY, fk_item int NOT NULL REFERENCES "Shop".tb_item, qty int);
CREATE INDEX ON "order".tb_line (fk_item);
INSERT INTO "Shop".tb_item SELECT g, 'item ' || g FROM generate_series(1, 3) g;
INSERT INTO "order".tb_line SELECT g, 1 + g % 3, g FROM generate_series(1, 6) g;
"""
ITEM = """SELECT i.pk_item, jsonb_build_object('name', i.name) AS data FROM "Shop".tb_item i"""
LINE = """SELECT l.pk_line, l.fk_item, jsonb_build_object('qty', l.qty, 'item', i.data) AS data
FROM "order".tb_line l JOIN "Shop".tv_item i ON i.pk_item = l.fk_item"""


@pytest.fixture
def odd(db):
    db.execute(ODD_SCHEMAS)
    db.execute("SELECT tview.create('item', %s, schema_name => 'Shop')", (ITEM,))
    db.execute("SELECT tview.create('line', %s, schema_name => 'order')", (LINE,))
    return db


def test_tviews_in_schemas_that_need_quoting_carry_the_servers_label(odd):
    by_label = {info.label: info for info in catalog.list_tviews(odd)}
    assert set(by_label) == {'"order".tv_line', '"Shop".tv_item'}
    line, item = by_label['"order".tv_line'], by_label['"Shop".tv_item']
    assert (line.schema, line.name, line.rows) == ("order", "line", 6)
    assert item.event_name == "Shop.tv_item"                     # as the event protocol names it

    reads = catalog.detail(odd, line).reads
    assert {(d.source, d.source_kind) for d in reads} == {('"order".tb_line', "table"), ('"Shop".tv_item', "tview")}
    edges = graph.build(catalog.dependencies(odd))
    assert [c.name for c in graph.upstream(edges, line.label).children] == ['"Shop".tv_item', '"order".tb_line']
    assert [c.name for c in graph.downstream(edges, item.label).children] == ['"order".tv_line']

    assert catalog.find_tview(odd, '"order".tv_line') == line == catalog.find_tview(odd, "order.line")
    assert catalog.refresh(odd, line, [1]).tview == '"order".tv_line'
    assert catalog.explain(odd, line).tview == '"order".tv_line'
    assert set(catalog.verify_all(odd)) == {'"order".tv_line', '"Shop".tv_item'}


async def test_health_and_dependencies_of_those_tviews_show_in_the_app(odd, dsn):
    damage(odd, """UPDATE "order".tv_line SET data = '{}'::jsonb WHERE pk_line = 2""")
    drift = [f for f in diagnostics.run_checks(odd, deep=True) if f.check_name == "drift"]
    assert [f.tview for f in drift] == ['"order".tv_line']
    app = TviewApp(Target(dsn), config=Config(path=None, refresh_interval=0.5))
    async with app.run_test(size=(150, 40)) as pilot:
        while not (len(app.tviews) == 2 and app.findings is not None):
            await pilot.pause(0.1)
        assert app.health_of('"order".tv_line') == "error"
        assert app.health_of('"Shop".tv_item') == "ok"
        assert app.tview_labelled('"order".tv_line').name == "line"
        written = Event(v=1, ts=datetime.now(UTC), pid=1, xid="7", schema="order", tview="tv_line", source="tb_line",
                        op="UPDATE", depth=0, mode="recompute", rows=1, upserted=1, patched=0, deleted=0, us=90,
                        keys=(2,), keys_more=0)
        app.light_trace(trace.build([written]))               # the graph lights it by its label
        assert '"order".tv_line' in app.last_trace_nodes


async def test_names_and_values_that_look_like_markup_are_shown_as_written(db, dsn):
    """A schema may be named "[/x]" and a finding may quote "[@click=app.quit]": the screens show
    such text as it is, never as markup (which stopped the app with MarkupError, or made a link)."""
    db.execute("""CREATE SCHEMA "[/x]";
                  CREATE TABLE "[/x]".tb_a (pk_a int PRIMARY KEY, v text);
                  INSERT INTO "[/x]".tb_a VALUES (1, '[@click=app.quit]q[/]')""")
    db.execute("""SELECT tview.create('a', 'SELECT pk_a, jsonb_build_object(''v'', v) AS data FROM "[/x]".tb_a',
                                      schema_name => '[/x]')""")
    damage(db, """UPDATE "[/x]".tv_a SET data = '{}'::jsonb""")                  # a finding that names it
    label = '"[/x]".tv_a'
    app = TviewApp(Target(dsn), config=Config(path=None, refresh_interval=0.5))
    async with app.run_test(size=(150, 40)) as pilot:
        while not (app.tviews and app.findings is not None):
            await pilot.pause(0.1)
        await pilot.pause(0.2)
        table = app.screen.query_one("#tviews")
        assert str(table.get_row_at(0)[0]) == label
        await pilot.press("enter")                                       # the detail screen
        await pilot.pause(0.5)
        assert label in str(app.screen.query_one("#detail-title").render())
        await pilot.press("escape", "slash", *"[/x]", "enter")          # a filter that looks like markup
        await pilot.pause(0.2)
        assert "filter: '[/x]'" in str(app.screen.query_one("#list-info").render())
        for screen in "2345":
            await pilot.press(screen)
            await pilot.pause(0.5)
        await pilot.press("3")
        while not app.screen.query_one("#findings").row_count:
            await pilot.pause(0.1)
        rows = [[str(cell) for cell in app.screen.query_one("#findings").get_row_at(i)]
                for i in range(app.screen.query_one("#findings").row_count)]
        assert any(label in row[2] for row in rows), rows
        assert app.is_running
