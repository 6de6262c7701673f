"""The oracle: every TVIEW equals its definition, compared both ways, row text for row text."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import psycopg
from psycopg import sql


def tview_names(conn: psycopg.Connection) -> list[str]:
    """Every TVIEW as 'schema.name' (name without tv_), in dependency order."""
    return [f"{s}.{n}" for s, n in conn.execute(
        "SELECT schema_name, name FROM tview.tviews ORDER BY topo_level, id")]


def _differences(name: str) -> sql.Composed:
    """The rows (name, 'extra' | 'missing', row text) of tv_<name> not in v_<name> and the reverse."""
    schema, _, bare = name.rpartition(".")
    schema = schema or "public"
    bare = bare.removeprefix("tv_")
    # each side read once (a CTE used twice is materialized), both differences in one query
    return sql.SQL("""(
        WITH tv AS (SELECT t::text AS r FROM {tv} t), v AS (SELECT t::text AS r FROM {v} t)
        SELECT {name}::text, 'extra', r FROM (SELECT r FROM tv EXCEPT ALL SELECT r FROM v) d
        UNION ALL
        SELECT {name}::text, 'missing', r FROM (SELECT r FROM v EXCEPT ALL SELECT r FROM tv) d)""").format(
        tv=sql.Identifier(schema, "tv_" + bare), v=sql.Identifier(schema, "v_" + bare), name=sql.Literal(name))


@functools.cache
def _query(names: tuple[str, ...]) -> sql.Composed:
    """The differences of every name in one query (built once: the random workloads check after every step)."""
    return sql.SQL(" UNION ALL ").join(_differences(name) for name in names) + sql.SQL(" ORDER BY 1, 2, 3")


def _drifts(conn: psycopg.Connection, names: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """drift() of each name, all in one round trip."""
    found: dict[str, dict[str, list[str]]] = {name: {"extra": [], "missing": []} for name in names}
    if found:
        for name, side, row in conn.execute(_query(tuple(found))):
            found[name][side].append(row)
    return found


def drift(conn: psycopg.Connection, name: str) -> dict[str, list[str]]:
    """Rows of tv_<name> not in v_<name> ('extra') and the reverse ('missing').

    name is 'schema.name' or 'name' (public), without quotes, with or without tv_."""
    return _drifts(conn, [name])[name]


def assert_oracle(conn: psycopg.Connection, *names: str) -> None:
    """Fail with the differing rows if any TVIEW (default: all) differs from its definition."""
    problems = {name: result for name, result in _drifts(conn, names or tview_names(conn)).items()
                if result["extra"] or result["missing"]}
    assert not problems, f"TVIEW drift: {problems}"
