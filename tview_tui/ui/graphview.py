"""The dependency graph drawn with box-drawing characters: one box per base table and TVIEW,
levels left to right, lines labelled with their lineage. Rendered a visible line at a time
(Textual's line API) from a :class:`tview_tui.graph.Drawing`; the live figures in the boxes
are overlaid at render time, so updating them never lays the graph out again.

Arrows move between boxes (up/down within a level, left/right to the nearest box of the
next level); enter posts :class:`GraphView.Selected`."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..graph import Box, Drawing


class GraphView(ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"graph--line", "graph--lit", "graph--full", "graph--box", "graph--selected"}
    DEFAULT_CSS = """
    GraphView > .graph--line { color: $text-muted; }
    GraphView > .graph--lit { color: $warning; text-style: bold; }
    GraphView > .graph--full { color: $error; text-style: bold; }
    GraphView > .graph--box { color: $text; }
    GraphView > .graph--selected { background: $accent 50%; }
    """
    BINDINGS = [
        Binding("up", "move(0, -1)", "Up", show=False),
        Binding("down", "move(0, 1)", "Down", show=False),
        Binding("left", "move(-1, 0)", "Left", show=False),
        Binding("right", "move(1, 0)", "Right", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    class Selected(Message):
        """Enter on a box."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.drawing = Drawing(0, 0, {}, [], [])
        self.figures: dict[str, tuple[str, str]] = {}   # node -> the two lines under its name
        self.selected: str | None = None

    def show(self, drawing: Drawing) -> None:
        """A new layout; the selection stays on its node when it is still there."""
        self.drawing = drawing
        if self.selected not in drawing.boxes:
            first = drawing.levels()
            self.selected = first[0][0] if first else None
        self.virtual_size = Size(drawing.width, drawing.height)
        self.refresh()

    def set_figures(self, figures: dict[str, tuple[str, str]]) -> None:
        if figures != self.figures:
            self.figures = figures
            self.refresh()

    # -- moving -------------------------------------------------------------------------
    def action_move(self, dx: int, dy: int) -> None:
        box = self.drawing.boxes.get(self.selected or "")
        levels = self.drawing.levels()
        if box is None or not levels:
            return
        index = next(n for n, names in enumerate(levels) if box.name in names)
        if dy:
            names = levels[index]
            chosen = names[max(0, min(len(names) - 1, names.index(box.name) + dy))]
        else:
            names = levels[max(0, min(len(levels) - 1, index + dx))]
            middle = box.y + box.height / 2
            chosen = min(names, key=lambda n: abs(self.drawing.boxes[n].y + self.drawing.boxes[n].height / 2 - middle))
        self.select(chosen)

    def select(self, name: str) -> None:
        self.selected = name
        box = self.drawing.boxes[name]
        self.scroll_to_region(Region(box.x, box.y, box.width, box.height), animate=False, immediate=True)
        self.refresh()

    def action_select(self) -> None:
        if self.selected is not None:
            self.post_message(self.Selected(self.selected))

    def on_click(self, event: events.Click) -> None:
        x, y = event.x + int(self.scroll_x), event.y + int(self.scroll_y)
        hit = next((b for b in self.drawing.boxes.values() if b.contains(x, y)), None)
        if hit is not None:
            self.select(hit.name)
            if event.chain == 2:
                self.action_select()

    # -- rendering ----------------------------------------------------------------------
    def _styles(self) -> dict[str, Style]:
        base = self.rich_style
        styles = {flag: base + self.get_component_rich_style(f"graph--{flag}")
                  for flag in ("line", "lit", "full", "box")}
        styles[""] = base
        styles["full lit"] = styles["full"] + self.get_component_rich_style("graph--lit")
        return styles

    def _row(self, y: int) -> tuple[list[str], list[str]]:
        """Characters and style flags of one row, the live figures written into the boxes."""
        chars, flags = list(self.drawing.rows[y]), list(self.drawing.flags[y])
        for box in self.drawing.boxes.values():
            line = y - box.y - 2
            if 0 <= line < 2 and box.x < len(chars):
                text = self.figures.get(box.name, ("", ""))[line][:box.width - 4]
                chars[box.x + 2:box.x + 2 + len(text)] = text
            if box.lit and box.y <= y < box.y + box.height:
                flags[box.x:box.x + box.width] = ["lit"] * box.width
        return chars, flags

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        base = self.rich_style
        if row >= self.drawing.height:
            return Strip.blank(width, base)
        chars, flags = self._row(row)
        styles = self._styles()
        selected = self.drawing.boxes.get(self.selected or "")
        chosen = self.get_component_rich_style("graph--selected")
        segments: list[Segment] = []
        start = 0
        for x in range(1, len(chars) + 1):
            if (x == len(chars) or flags[x] != flags[start]
                    or self._in(selected, x, row) != self._in(selected, start, row)):
                style = styles.get(flags[start], base)
                if self._in(selected, start, row):
                    style = style + chosen
                segments.append(Segment("".join(chars[start:x]), style))
                start = x
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, base)

    @staticmethod
    def _in(box: Box | None, x: int, y: int) -> bool:
        return box is not None and box.contains(x, y)
