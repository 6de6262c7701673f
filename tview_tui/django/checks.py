"""A database check: the databases migrations run against have the engine installed."""

from __future__ import annotations

from typing import Any

from django.core.checks import Warning
from django.db import DatabaseError, connections

from ..migrations import ENGINE_INSTALLED_QUERY


def engine_installed(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Warning]:
    """W001 for every PostgreSQL database checked (``--database``, or migrate's) without the engine."""
    found = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute(ENGINE_INSTALLED_QUERY)
                installed = cursor.fetchone()[0]
        except DatabaseError as exc:
            found.append(Warning(f"cannot tell whether the tview engine is installed in database {alias!r}: {exc}",
                                 id="tview_tui.W002"))
            continue
        if not installed:
            found.append(Warning(
                f"the tview engine is not installed in database {alias!r} (or is too old for migrations): "
                "migrations with CreateTview, AlterTview or DropTview will fail there",
                hint="Install it with `tview-tui install DSN` (DSN: that database's connection string).",
                id="tview_tui.W001"))
    return found
