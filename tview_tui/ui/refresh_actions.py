"""Keyboard refresh, shared by the list and the detail screens."""

from __future__ import annotations

from .. import catalog
from ..catalog import TviewInfo
from .base import BaseScreen
from .widgets import ConfirmScreen, PromptScreen


def refresh_whole(screen: BaseScreen, info: TviewInfo | None) -> None:
    """Full recompute of one TVIEW, after a confirmation that says how big it is."""
    app = screen.tapp
    if info is None or app.refuse_if_read_only("refresh"):
        return
    rows = "?" if info.rows is None else f"{info.rows:,}"

    def answered(yes: bool | None) -> None:
        if yes:
            app.notify(f"refreshing {info.table} ...")
            screen.run_db(catalog.refresh, info, None, done=lambda result: _done(screen, result))

    app.push_screen(ConfirmScreen(f"Recompute [b]{info.table}[/b] whole ({rows} rows) and what reads it?"),
                    answered)


def parse_keys(text: str) -> list[int]:
    """'1, 2 5-7' -> [1, 2, 5, 6, 7]."""
    keys: list[int] = []
    for part in text.replace(",", " ").split():
        low, dash, high = part.partition("-")
        if dash and low and high:
            keys.extend(range(int(low), int(high) + 1))
        else:
            keys.append(int(part))
    return keys


def refresh_keys(screen: BaseScreen, info: TviewInfo | None) -> None:
    """Recompute the keys typed by the user (no confirmation: it only touches those rows)."""
    app = screen.tapp
    if info is None or app.refuse_if_read_only("refresh"):
        return

    def answered(text: str | None) -> None:
        if not text:
            return
        try:
            keys = parse_keys(text)
        except ValueError:
            app.notify(f"not a list of integer keys: {text!r}", severity="error")
            return
        if len(keys) > 100_000:
            app.notify("at most 100,000 keys at a time", severity="error")
            return
        screen.run_db(catalog.refresh, info, keys, done=lambda result: _done(screen, result))

    app.push_screen(PromptScreen(f"Keys of {info.table} to recompute ({info.key_column}):", "e.g. 1, 5-9"),
                    answered)


def _done(screen: BaseScreen, result: catalog.RefreshResult) -> None:
    screen.app.notify(result.describe())
    if hasattr(screen, "show_result"):
        screen.show_result(result)
    screen.app.reload()
