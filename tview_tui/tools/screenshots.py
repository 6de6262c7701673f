"""SVG screenshots of every screen, taken headless from the running demo (for the README)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import TabbedContent

from ..config import Config
from ..connection import Target
from ..demo import DemoWriter
from ..ui.app import TviewApp
from ..ui.widgets import TextScreen

SIZE = (140, 38)


async def _until(pilot, condition, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition() and loop.time() < deadline:
        await pilot.pause(0.2)


async def capture(target: Target, writer: DemoWriter | None, out_dir: Path, theme: str | None = None) -> list[Path]:
    """Walk through the screens and save one SVG each; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    app = TviewApp(target, writer=writer, config=Config(path=None, refresh_interval=1.0), theme=theme)
    written: list[Path] = []

    def save(name: str) -> None:
        written.append(Path(app.save_screenshot(filename=f"{name}.svg", path=str(out_dir))))

    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: app.tviews and app.stats.by_tview)
        await pilot.pause(4.0)                          # a few seconds of events for the timings
        save("tviews")
        await pilot.press("slash", *"post", "enter")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(1.5)
        save("detail")
        app.screen.query_one(TabbedContent).active = "tab-dependencies"
        await pilot.pause(0.5)
        save("detail-dependencies")
        await pilot.press("e", "enter")                  # the plan of a keyed refresh (one existing key)
        await _until(pilot, lambda: isinstance(app.screen, TextScreen))
        await pilot.pause(0.3)
        save("explain")
        await pilot.press("escape", "escape", "2")
        await pilot.pause(4.0)
        save("tail")
        await pilot.press("f", "up", "enter")             # the trace of a recent event's transaction
        await _until(pilot, lambda: isinstance(app.screen, TextScreen))
        await pilot.pause(0.3)
        save("trace")
        await pilot.press("escape", "5")
        await pilot.pause(2.0)
        save("graph")
        await pilot.press("3")
        await pilot.pause(3.0)
        save("diagnostics")
        await pilot.press("4")
        await pilot.pause(1.0)
        save("install")
        await pilot.press("1", "question_mark")
        await pilot.pause(0.5)
        save("help")
    return written
