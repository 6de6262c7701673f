"""The Django app: registers the engine check."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class TviewConfig(AppConfig):
    name = "tview_tui.django"
    label = "tview_tui"
    verbose_name = "tview-tui TVIEWs"

    def ready(self) -> None:
        from .checks import engine_installed

        checks.register(engine_installed, checks.Tags.database)
