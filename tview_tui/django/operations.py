"""CreateTview, AlterTview, DropTview: engine calls in Django migrations, reversible."""

from __future__ import annotations

from typing import Any

from django.db import router
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.operations.base import Operation

from ..migrations import ALTER, CREATE, DROP, ENGINE_INSTALLED_QUERY, Tview, statement


class _TviewOperation(Operation):
    """Runs engine calls through the schema editor (so ``sqlmigrate`` shows them) on the databases the
    routers allow; the models' state is left alone."""

    reduces_to_sql = True
    reversible = True
    hints: dict[str, Any] = {}

    def state_forwards(self, app_label: str, state: Any) -> None:
        """TVIEWs are not models: nothing changes in Django's state."""

    def _run(self, app_label: str, schema_editor: Any, template: str, tview: Tview) -> None:
        if not router.allow_migrate(schema_editor.connection.alias, app_label, **self.hints):
            return
        if not schema_editor.collect_sql:
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(ENGINE_INSTALLED_QUERY)
                if not cursor.fetchone()[0]:
                    raise RuntimeError(f"the tview engine is not installed in database "
                                       f"{schema_editor.connection.alias!r}: run `tview-tui install DSN` first")
        query, params = statement(template, "%s", tview)
        schema_editor.execute(query, [value for _, value in params])


class CreateTview(_TviewOperation):
    """Create a TVIEW; reversed by dropping it."""

    def __init__(self, name: str, definition: str, mode: str = "immediate", schema: str = "public") -> None:
        self.tview = Tview(name, definition, mode, schema)

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        self._run(app_label, schema_editor, CREATE, self.tview)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        self._run(app_label, schema_editor, DROP, self.tview)

    def describe(self) -> str:
        return f"Create TVIEW {self.tview.label}"

    @property
    def migration_name_fragment(self) -> str:
        return f"create_tview_{self.tview.name}"


class AlterTview(_TviewOperation):
    """Replace a TVIEW's definition; reversible when ``previous_definition`` is given."""

    def __init__(self, name: str, definition: str, previous_definition: str | None = None,
                 schema: str = "public") -> None:
        self.tview = Tview(name, definition, schema=schema)
        self.previous = Tview(name, previous_definition, schema=schema) if previous_definition is not None else None
        self.reversible = previous_definition is not None

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        self._run(app_label, schema_editor, ALTER, self.tview)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if self.previous is None:
            raise IrreversibleError(f"AlterTview({self.tview.name!r}) has no previous_definition to go back to")
        self._run(app_label, schema_editor, ALTER, self.previous)

    def describe(self) -> str:
        return f"Alter TVIEW {self.tview.label}"

    @property
    def migration_name_fragment(self) -> str:
        return f"alter_tview_{self.tview.name}"


class DropTview(_TviewOperation):
    """Drop a TVIEW (never cascading); reversible when its ``definition`` is given."""

    def __init__(self, name: str, definition: str | None = None, mode: str = "immediate",
                 schema: str = "public") -> None:
        self.tview = Tview(name, definition or "", mode, schema)
        self.reversible = definition is not None

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        self._run(app_label, schema_editor, DROP, self.tview)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if not self.reversible:
            raise IrreversibleError(f"DropTview({self.tview.name!r}) has no definition to create it again from")
        self._run(app_label, schema_editor, CREATE, self.tview)

    def describe(self) -> str:
        return f"Drop TVIEW {self.tview.label}"

    @property
    def migration_name_fragment(self) -> str:
        return f"drop_tview_{self.tview.name}"
