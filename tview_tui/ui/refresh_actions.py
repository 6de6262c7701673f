"""Keyboard refresh, shared by the list and the detail screens."""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text

from .. import catalog, trace
from ..catalog import TviewInfo
from ..keys import MAX_KEYS, TooManyKeys, parse_keys
from .base import BaseScreen
from .tail import trace_text
from .widgets import ConfirmScreen, PromptScreen


def refresh_whole(screen: BaseScreen, info: TviewInfo | None) -> None:
    """Full recompute of one TVIEW, after a confirmation that says how big it is."""
    app = screen.tapp
    if info is None or app.refuse_if_read_only("refresh"):
        return
    rows = "?" if info.rows is None else f"{info.rows:,}"

    def answered(yes: bool | None) -> None:
        if yes:
            app.notify(f"refreshing {info.label} ...")
            screen.run_db(catalog.refresh, info, None, done=lambda result: _done(screen, result))

    app.push_screen(ConfirmScreen(f"Recompute [b]{escape(info.label)}[/b] whole ({rows} rows) and what reads it?"),
                    answered)


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
        except TooManyKeys:
            app.notify(f"at most {MAX_KEYS:,} keys at a time", severity="error")
            return
        except ValueError:
            app.notify(f"not a list of integer keys: {text!r}", severity="error")
            return
        screen.run_db(catalog.refresh, info, keys, done=lambda result: _done(screen, result))

    app.push_screen(PromptScreen(f"Keys of {info.label} to recompute ({info.key_column}):", "e.g. 1, 5-9"),
                    answered)


SPLIT_WAIT = 3.0   # seconds to wait for the refresh's events, which name each TVIEW's rows


def last_refresh_text(screen: BaseScreen, label: str) -> Text | None:
    """The whole result of the last refresh of a TVIEW made here, with its cascade trace."""
    found = screen.tapp.refreshes.get(label)
    if found is None:
        return None
    result, cascade = found
    text = Text(result.text(cascade.rows_per_tview() if cascade else None))
    if cascade is not None:
        text.append("\n\ncascade trace (the slowest step marked):\n")
        text.append_text(trace_text(cascade))
    return text


def _done(screen: BaseScreen, result: catalog.RefreshResult) -> None:
    screen.app.notify(result.describe())
    screen.show_result(result)
    screen.tapp.refreshes[result.tview] = (result, None)
    screen.tapp.reload()
    xid = result.xid
    if xid is None:
        return
    waited = 0.0

    def split() -> None:
        """Once the transaction's events arrived, say how many rows each TVIEW got."""
        nonlocal waited
        found = trace.of_transaction(screen.tapp.buffered_events(), xid)
        if found is not None and result.event_name in found.rows_per_tview():
            screen.show_result(result, found.rows_per_tview())
            screen.tapp.refreshes[result.tview] = (result, found)
            return
        waited += 0.2
        if waited < SPLIT_WAIT:
            screen.set_timer(0.2, split)

    screen.set_timer(0.2, split)
