"""TVIEWs declared in application code, and the engine calls that migrations make of them.

Shared by the Alembic and Django integrations (``tview_tui.alembic``, ``tview_tui.django``),
which only add their frameworks' shapes around it. Definitions are compared as the engine
keeps them (``tview.tviews.definition``): the declared text, without trailing blanks and
semicolons. Nothing is built to compare: a scratch TVIEW would fill a table.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import networkx as nx

# The engine calls, with their parameters named (see statement()).
CREATE = "SELECT tview.create({name}, {definition}, {mode}, {schema})"
ALTER = "SELECT tview.alter({name}, {definition}, schema_name => {schema})"
DROP = "SELECT tview.drop({name}, cascade => false, schema_name => {schema})"
# Every TVIEW as the engine keeps it, in dependency order.
DECLARED_QUERY = """
SELECT schema_name::text, name::text, definition, mode FROM tview.tviews ORDER BY topo_level, id
"""
# An engine that takes the schema apart in every call above.
ENGINE_INSTALLED_QUERY = "SELECT to_regprocedure('tview.alter(text, text, text)') IS NOT NULL"

_TVIEW_REFERENCE = re.compile(r'(?:"?(\w+)"?\s*\.\s*)?"?tv_(\w+)"?', re.IGNORECASE)


def clean(definition: str) -> str:
    """A definition as the engine keeps it (see tview._clean_definition)."""
    return re.sub(r"[\s;]+$", "", definition)


@dataclass(frozen=True)
class Tview:
    """A TVIEW as an application declares it: ``name`` without ``tv_``, its SELECT, its mode."""

    name: str
    definition: str
    mode: str = "immediate"
    schema: str = "public"

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name.removeprefix("tv_"))
        object.__setattr__(self, "definition", clean(self.definition))

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema, self.name)

    @property
    def label(self) -> str:
        """schema.tv_name, for people (the engine calls take name and schema apart)."""
        return f"{self.schema}.tv_{self.name}"

    def params(self) -> dict[str, str]:
        return {"name": self.name, "definition": self.definition, "mode": self.mode, "schema": self.schema}

    def reads(self) -> set[tuple[str, str]]:
        """TVIEWs its definition names (schema, name); unqualified ones taken as this TVIEW's schema."""
        return {((schema or self.schema).lower(), name.lower()) for schema, name in
                _TVIEW_REFERENCE.findall(self.definition)}


def statement(template: str, placeholder: str, tview: Tview) -> tuple[str, list[tuple[str, str]]]:
    """An engine call with its parameters as the driver wants them (``:{}`` names them, ``%s`` does
    not), and the (name, value) pairs they stand for, in order."""
    names = [field for _, field, _, _ in string.Formatter().parse(template) if field]
    values = tview.params()
    return template.format(**{key: placeholder.format(key) for key in names}), [(key, values[key]) for key in names]


@dataclass(frozen=True)
class Change:
    """One step of a migration: create, alter or drop ``tview`` (``before``: what alter or drop
    replace, so that the step can be reversed)."""

    action: str                 # create | alter | drop
    tview: Tview
    before: Tview | None = None


def from_rows(rows: Iterable[tuple[str, str, str, str]]) -> dict[tuple[str, str], Tview]:
    """The catalog's TVIEWs (rows of DECLARED_QUERY), by (schema, name), in dependency order."""
    return {(schema, name): Tview(name, definition, mode, schema) for schema, name, definition, mode in rows}


def plan(declared: Iterable[Tview], current: Mapping[tuple[str, str], Tview]) -> list[Change]:
    """The steps from the catalog's TVIEWs (``current``, in dependency order) to the declared
    ones: creates and alters in the order the declared definitions read each other, drops of
    TVIEWs only other dropped ones read first (deepest first), the other drops last (after
    the alters that stop reading them)."""
    wanted = {t.key: t for t in declared}
    graph: nx.DiGraph = nx.DiGraph()
    for tview in wanted.values():
        graph.add_node(tview.key)
        graph.add_edges_from((read, tview.key) for read in tview.reads() if read in wanted and read != tview.key)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = " -> ".join(wanted[key].label for key, _ in nx.find_cycle(graph))
        raise ValueError(f"the declared TVIEWs read each other in a cycle: {cycle}")
    steps: list[Change] = []
    for key in nx.lexicographical_topological_sort(graph):
        tview, before = wanted[key], current.get(key)
        if before is None:
            steps.append(Change("create", tview))
        elif before.definition != tview.definition:
            steps.append(Change("alter", tview, before))
    gone = [t for key, t in reversed(list(current.items())) if key not in wanted]
    kept_readers = {read for t in wanted.values() if t.key in current for read in current[t.key].reads()}
    first = [Change("drop", t, t) for t in gone if t.key not in kept_readers]
    last = [Change("drop", t, t) for t in gone if t.key in kept_readers]
    return first + steps + last
