"""A bounded, scrollable list of one-line items with a cursor, rendered a visible line at a
time (Textual's line API): adding thousands of items a second costs a deque append each, and
the oldest items fall off the front for free. The live tail uses it; enter on an item posts
:class:`EventLog.Selected`."""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.segment import Segment
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip


class EventLog(ScrollView, can_focus=True):
    """Line 0 is a header that scrolls sideways with the items but never up."""

    COMPONENT_CLASSES = {"event-log--header", "event-log--cursor", "event-log--gap"}
    DEFAULT_CSS = """
    EventLog > .event-log--header { text-style: bold; color: $text-muted; }
    EventLog > .event-log--cursor { background: $accent 50%; }
    EventLog > .event-log--gap { color: $warning; }
    """
    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "ends(False)", "First", show=False),
        Binding("end", "ends(True)", "Last", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    class Selected(Message):
        """Enter on an item."""

        def __init__(self, payload: Any) -> None:
            super().__init__()
            self.payload = payload

    def __init__(self, header: str, max_items: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.header = header
        self.items: deque[tuple[str, Any, bool]] = deque(maxlen=max_items)   # text, payload, is a gap
        self.dropped = 0             # items that fell off the front since the start
        self.cursor = -1             # absolute position (dropped + index); -1: no item yet
        self._widest = len(header)

    # -- content ------------------------------------------------------------------------
    def add(self, entries: list[tuple[str, Any, bool]]) -> None:
        """Append items (text, payload, gap); the oldest fall off beyond ``max_items``."""
        full = self.items.maxlen or 0
        for entry in entries:
            if len(self.items) == full:
                self.dropped += 1
            self.items.append(entry)
            if len(entry[0]) > self._widest:
                self._widest = len(entry[0])
        if self.cursor < self.dropped and self.items:
            self.cursor = self.dropped
        self.virtual_size = Size(self._widest, len(self.items) + 1)
        self.refresh()

    def clear(self) -> None:
        self.dropped += len(self.items)
        self.items.clear()
        self.cursor = -1
        self.virtual_size = Size(self._widest, 1)
        self.refresh()

    def texts(self) -> list[str]:
        return [text for text, _, _ in self.items]

    @property
    def index(self) -> int | None:
        """Index of the cursor's item in ``items``."""
        index = self.cursor - self.dropped
        return index if 0 <= index < len(self.items) else None

    @property
    def at_end(self) -> bool:
        return not self.items or self.index == len(self.items) - 1

    def selected(self) -> Any:
        index = self.index
        return None if index is None else self.items[index][1]

    # -- cursor -------------------------------------------------------------------------
    def go_end(self) -> None:
        """Cursor on the newest item, scrolled to it."""
        if self.items:
            self.cursor = self.dropped + len(self.items) - 1
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        self.refresh()

    def _move(self, index: int) -> None:
        if not self.items:
            return
        index = max(0, min(len(self.items) - 1, index))
        self.cursor = self.dropped + index
        rows = max(1, self.size.height - 1)
        if index < self.scroll_y:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= self.scroll_y + rows:
            self.scroll_to(y=index - rows + 1, animate=False, immediate=True)
        self.refresh()

    def action_cursor(self, step: int) -> None:
        self._move((self.index if self.index is not None else len(self.items)) + step)

    def action_page(self, direction: int) -> None:
        self._move((self.index or 0) + direction * max(1, self.size.height - 2))

    def action_ends(self, last: bool) -> None:
        self._move(len(self.items) - 1 if last else 0)

    def action_select(self) -> None:
        payload = self.selected()
        if payload is not None:
            self.post_message(self.Selected(payload))

    # -- rendering ----------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("event-log--header")
            return Strip([Segment(self.header, style)]).crop_extend(scroll_x, scroll_x + width, style)
        index = scroll_y + y - 1
        if index >= len(self.items):
            return Strip.blank(width, base)
        text, _, gap = self.items[index]
        style = base + self.get_component_rich_style("event-log--gap") if gap else base
        if self.dropped + index == self.cursor:
            style = style + self.get_component_rich_style("event-log--cursor")
        return Strip([Segment(text, style)]).crop_extend(scroll_x, scroll_x + width, style)
