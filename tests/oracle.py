"""The oracle: every TVIEW equals its definition, compared both ways, row text for row text."""

from __future__ import annotations

import psycopg
from psycopg import sql


def tview_names(conn: psycopg.Connection) -> list[str]:
    """Every TVIEW as 'schema.name' (name without tv_), in dependency order."""
    return [f"{s}.{n}" for s, n in conn.execute(
        "SELECT schema_name, name FROM tview.tviews ORDER BY topo_level, id")]


def drift(conn: psycopg.Connection, name: str) -> dict[str, list[str]]:
    """Rows of tv_<name> not in v_<name> ('extra') and the reverse ('missing').

    name is 'schema.name' or 'name' (public), without quotes, with or without tv_."""
    schema, _, bare = name.rpartition(".")
    schema = schema or "public"
    bare = bare.removeprefix("tv_")
    tv = sql.Identifier(schema, "tv_" + bare)
    v = sql.Identifier(schema, "v_" + bare)
    # each side read once (a CTE used twice is materialized), both differences in one round trip
    query = sql.SQL("""
        WITH tv AS (SELECT t::text AS r FROM {tv} t), v AS (SELECT t::text AS r FROM {v} t)
        SELECT 'extra', r FROM (SELECT r FROM tv EXCEPT ALL SELECT r FROM v) d
        UNION ALL
        SELECT 'missing', r FROM (SELECT r FROM v EXCEPT ALL SELECT r FROM tv) d
        ORDER BY 1, 2""").format(tv=tv, v=v)
    found: dict[str, list[str]] = {"extra": [], "missing": []}
    for side, row in conn.execute(query):
        found[side].append(row)
    return found


def assert_oracle(conn: psycopg.Connection, *names: str) -> None:
    """Fail with the differing rows if any TVIEW (default: all) differs from its definition."""
    problems = {}
    for name in names or tview_names(conn):
        result = drift(conn, name)
        if result["extra"] or result["missing"]:
            problems[name] = result
    assert not problems, f"TVIEW drift: {problems}"
