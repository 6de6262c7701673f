"""Alembic operations and autogenerate for TVIEWs (the ``alembic`` extra).

In a migration script, after ``import tview_tui.alembic``::

    op.create_tview("post", "SELECT p.pk_post, ... AS data FROM tb_post p")
    op.alter_tview("post", "SELECT ...", previous_definition="SELECT ...")
    op.drop_tview("post", definition="SELECT ...")

each reversible in ``downgrade``. In ``env.py``, ``register_tviews([Tview(...), ...])`` declares
the application's TVIEWs: autogenerate then compares them with the catalog's stored definitions
(in the schemas they are declared in) and emits create, alter and drop in dependency order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alembic.autogenerate import comparators, renderers
from alembic.operations import MigrateOperation, Operations
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.sql.elements import TextClause

from .migrations import (
    ALTER,
    CREATE,
    DECLARED_QUERY,
    DROP,
    ENGINE_INSTALLED_QUERY,
    Change,
    Tview,
    from_rows,
    plan,
    statement,
)

__all__ = ["AlterTviewOp", "CreateTviewOp", "DropTviewOp", "Tview", "register_tviews"]

_declared: dict[tuple[str, str], Tview] = {}


def register_tviews(tviews: Iterable[Tview]) -> None:
    """Declare the application's TVIEWs for autogenerate (call it in env.py; a second call replaces them)."""
    _declared.clear()
    _declared.update({tview.key: tview for tview in tviews})


def _call(template: str, tview: Tview) -> TextClause:
    """An engine call with the TVIEW's values bound (rendered as literals in offline mode)."""
    query, params = statement(template, ":{}", tview)
    return text(query).bindparams(**dict(params))


@Operations.register_operation("create_tview")
class CreateTviewOp(MigrateOperation):
    """Create a TVIEW (tview.create); reversed by dropping it."""

    def __init__(self, name: str, definition: str, *, mode: str = "immediate", schema: str = "public") -> None:
        self.tview = Tview(name, definition, mode, schema)

    @classmethod
    def create_tview(cls, operations: Operations, name: str, definition: str, *, mode: str = "immediate",
                     schema: str = "public") -> Any:
        return operations.invoke(cls(name, definition, mode=mode, schema=schema))

    def reverse(self) -> DropTviewOp:
        t = self.tview
        return DropTviewOp(t.name, schema=t.schema, definition=t.definition, mode=t.mode)


@Operations.register_operation("alter_tview")
class AlterTviewOp(MigrateOperation):
    """Replace a TVIEW's definition (tview.alter); reversible when the previous one is given."""

    def __init__(self, name: str, definition: str, *, previous_definition: str | None = None,
                 schema: str = "public") -> None:
        self.tview = Tview(name, definition, schema=schema)
        self.previous_definition = previous_definition

    @classmethod
    def alter_tview(cls, operations: Operations, name: str, definition: str, *,
                    previous_definition: str | None = None, schema: str = "public") -> Any:
        return operations.invoke(cls(name, definition, previous_definition=previous_definition, schema=schema))

    def reverse(self) -> AlterTviewOp:
        t = self.tview
        if self.previous_definition is None:
            raise ValueError(f"alter_tview({t.name!r}) cannot be reversed: pass previous_definition")
        return AlterTviewOp(t.name, self.previous_definition, previous_definition=t.definition, schema=t.schema)


@Operations.register_operation("drop_tview")
class DropTviewOp(MigrateOperation):
    """Drop a TVIEW (tview.drop, never cascading); reversible when its definition is given."""

    def __init__(self, name: str, *, schema: str = "public", definition: str | None = None,
                 mode: str = "immediate") -> None:
        self.tview = Tview(name, definition or "", mode, schema)
        self.definition = definition

    @classmethod
    def drop_tview(cls, operations: Operations, name: str, *, schema: str = "public",
                   definition: str | None = None, mode: str = "immediate") -> Any:
        return operations.invoke(cls(name, schema=schema, definition=definition, mode=mode))

    def reverse(self) -> CreateTviewOp:
        t = self.tview
        if self.definition is None:
            raise ValueError(f"drop_tview({t.name!r}) cannot be reversed: pass definition")
        return CreateTviewOp(t.name, self.definition, mode=t.mode, schema=t.schema)


@Operations.implementation_for(CreateTviewOp)
def _create_tview(operations: Operations, operation: CreateTviewOp) -> None:
    operations.execute(_call(CREATE, operation.tview))


@Operations.implementation_for(AlterTviewOp)
def _alter_tview(operations: Operations, operation: AlterTviewOp) -> None:
    operations.execute(_call(ALTER, operation.tview))


@Operations.implementation_for(DropTviewOp)
def _drop_tview(operations: Operations, operation: DropTviewOp) -> None:
    operations.execute(_call(DROP, operation.tview))


def _op_for(change: Change) -> MigrateOperation:
    t, before = change.tview, change.before
    if change.action == "create":
        return CreateTviewOp(t.name, t.definition, mode=t.mode, schema=t.schema)
    if change.action == "alter":
        return AlterTviewOp(t.name, t.definition, previous_definition=before.definition if before else None,
                            schema=t.schema)
    return DropTviewOp(t.name, schema=t.schema, definition=t.definition, mode=t.mode)


@comparators.dispatch_for("schema")
def _compare_tviews(autogen_context: Any, upgrade_ops: Any, schemas: Any) -> None:
    """Autogenerate: the steps from the catalog's TVIEWs to the registered ones."""
    if not _declared:
        return
    connection = autogen_context.connection
    if not connection.execute(text(ENGINE_INSTALLED_QUERY)).scalar():
        raise CommandError("the tview engine is not installed in this database (or is too old for "
                           "migrations): run `tview-tui install DSN` first")
    managed = {schema for schema, _ in _declared}
    current = {key: t for key, t in from_rows(connection.execute(text(DECLARED_QUERY)).all()).items()
               if key[0] in managed}
    upgrade_ops.ops.extend(_op_for(change) for change in plan(_declared.values(), current))


def _render(autogen_context: Any, call: str, *args: Any, **kwargs: Any) -> str:
    autogen_context.imports.add("import tview_tui.alembic  # noqa: F401  (op.create_tview, op.alter_tview, ...)")
    arguments = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"op.{call}({', '.join(arguments)})"


@renderers.dispatch_for(CreateTviewOp)
def _render_create(autogen_context: Any, op: CreateTviewOp) -> str:
    t = op.tview
    return _render(autogen_context, "create_tview", t.name, t.definition, mode=t.mode, schema=t.schema)


@renderers.dispatch_for(AlterTviewOp)
def _render_alter(autogen_context: Any, op: AlterTviewOp) -> str:
    t = op.tview
    return _render(autogen_context, "alter_tview", t.name, t.definition,
                   previous_definition=op.previous_definition, schema=t.schema)


@renderers.dispatch_for(DropTviewOp)
def _render_drop(autogen_context: Any, op: DropTviewOp) -> str:
    t = op.tview
    return _render(autogen_context, "drop_tview", t.name, schema=t.schema, definition=op.definition, mode=t.mode)
