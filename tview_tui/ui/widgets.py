"""Small widgets and modal screens shared by the screens."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Static
from textual.widgets.data_table import CellType, ColumnKey, RowKey


class PlainTable(DataTable[CellType]):
    """A DataTable that shows text cells as they are. Names, values and errors come from the
    database, where "[" is an ordinary character; the stock table reads text cells as markup, so a
    schema named "[/x]" stopped the app (MarkupError) and "[@click=...]" made a live link."""

    def add_row(self, *cells: CellType, **options: Any) -> RowKey:
        return super().add_row(*(plain(cell) for cell in cells), **options)

    def update_cell(self, row_key: RowKey | str, column_key: ColumnKey | str, value: CellType, *,
                    update_width: bool = False) -> None:
        super().update_cell(row_key, column_key, plain(value), update_width=update_width)


def plain(cell: Any) -> Any:
    """Text shown as written, never read as markup."""
    return Text(cell) if isinstance(cell, str) else cell


class StatusBar(Static):
    """One line under the header: connection, event stream, writer, read-only."""

    def on_mount(self) -> None:
        self.watch(self.app, "status", self._show, init=True)

    def _show(self, status: str) -> None:
        self.update(Text(status))          # it carries server errors and names
        self.set_class(status.startswith("disconnected"), "-disconnected")


class ConfirmScreen(ModalScreen[bool]):
    """Ask yes/no before anything that rewrites a whole TVIEW or changes the engine."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "Cancel")]

    def __init__(self, question: str):
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide"):
            yield Static(self.question, id="question")      # wraps: the SQL agreed to is never cut
            yield Label("[b]y[/b] yes   [b]n[/b] no", id="choices")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text (keys to refresh, a filter)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, placeholder: str = "", value: str = ""):
        super().__init__()
        self.question = question
        self.placeholder = placeholder
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="wide"):
            yield Static(self.question, id="question")
            yield Input(value=self.value, placeholder=self.placeholder, id="answer")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TextScreen(ModalScreen[None]):
    """The whole text of a row (a finding with its fix, an event with all its keys, a trace),
    scrollable, never cut."""

    BINDINGS = [Binding("escape,q,enter", "close", "Close")]

    def __init__(self, title: str, text: str | Text):
        super().__init__()
        self.title_text = title
        self.body = text

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="describe"):
            yield Label(f"[b]{escape(self.title_text)}[/b]  (esc to close)")
            with VerticalScroll(id="describe-scroll"):
                yield Static(plain(self.body), id="describe-text")

    def action_close(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key and command available here, from the same registry as the bindings."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, rows: list[tuple[str, str, str]]):
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="help"):
            yield Label("[b]Keys[/b]  (ctrl+p opens the command palette with the same commands)")
            table: PlainTable[str] = PlainTable(cursor_type="none", id="help-table")
            table.add_columns("key", "command", "what it does")
            for row in self.rows:
                table.add_row(*row)
            yield table

    def action_close(self) -> None:
        self.dismiss(None)


class OfferDemoScreen(ModalScreen[bool]):
    """Nothing configured: offer the demo database instead of failing."""

    BINDINGS = [Binding("d,y", "answer(True)", "Start demo"), Binding("q,n,escape", "answer(False)", "Quit")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("[b]No database configured.[/b]", id="question")
            yield Label("Pass a DSN or a profile, or set PG* variables.\n\n"
                        "Start the demo? It runs a local PostgreSQL (no system install), creates a blog\n"
                        "schema with four levels of TVIEWs and a writer so the live tail moves.")
            yield Label("[b]d[/b] start the demo   [b]q[/b] quit", id="choices")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
