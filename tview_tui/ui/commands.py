"""One registry of user commands: it feeds the key bindings, the `?` help and the palette."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class Command:
    key: str
    action: str          # a Textual action string, run on the app or the screen
    title: str
    help: str
    scope: str = "app"   # "app" or a screen name (tviews, detail, tail, diagnostics, install)
    writes: bool = False  # refused in read-only mode
    show: bool = True     # shown in the footer


REGISTRY: tuple[Command, ...] = (
    # help and quit first: a narrow footer cuts from the end
    Command("question_mark", "app.help", "Help", "Show every key and command"),
    Command("q", "app.quit", "Quit", "Leave tview-tui"),
    Command("1", "app.switch_mode('tviews')", "TVIEWs", "List every TVIEW with size, lineage and timings"),
    Command("2", "app.switch_mode('tail')", "Live tail", "Stream cascade events as they happen"),
    Command("3", "app.switch_mode('diagnostics')", "Diagnostics", "Health checks and drift, with fixes"),
    Command("4", "app.switch_mode('install')", "Install", "Installed vs bundled engine; install/upgrade"),
    Command("5", "app.switch_mode('graph')", "Graph", "The whole dependency graph: rates, p95, lineage"),
    Command("plus", "app.writer_rate(2.0)", "Writer faster", "Demo: double the background writer's rate",
            show=False),
    Command("minus", "app.writer_rate(0.5)", "Writer slower", "Demo: halve the background writer's rate",
            show=False),
    Command("enter", "open_detail", "Detail", "Definition, columns, dependency trees, recent events",
            scope="tviews"),
    Command("slash", "filter", "Filter", "Show only TVIEWs whose name contains a text", scope="tviews"),
    Command("d", "describe", "Describe", "The selected row whole: every column, and the last refresh of the"
            " TVIEW made here (every key, rows per TVIEW, its cascade trace)", scope="tviews", show=False),
    Command("s", "cycle_sort", "Sort", "Sort by the next column", scope="tviews"),
    Command("r", "refresh_whole", "Refresh", "Recompute the selected TVIEW whole (asks first)",
            scope="tviews", writes=True),
    Command("k", "refresh_keys", "Refresh keys", "Recompute some keys of the selected TVIEW",
            scope="tviews", writes=True),
    Command("r", "refresh_whole", "Refresh", "Recompute this TVIEW whole (asks first)",
            scope="detail", writes=True),
    Command("k", "refresh_keys", "Refresh keys", "Recompute some keys of this TVIEW",
            scope="detail", writes=True),
    Command("e", "explain(False)", "Explain", "The plan of this TVIEW's refresh for some keys (a full scan"
            " or a missing index shows here)", scope="detail"),
    Command("a", "explain(True)", "Explain analyze", "The same plan run for real times and rows (EXPLAIN"
            " ANALYZE of a SELECT, rolled back)", scope="detail", show=False),
    Command("d", "describe", "Last refresh", "The last refresh of this TVIEW made here, whole: every key,"
            " rows per TVIEW, its cascade trace", scope="detail", show=False),
    Command("escape", "back", "Back", "Back to the list", scope="detail"),
    Command("enter", "trace", "Trace", "The selected event's transaction as a tree: each TVIEW refreshed, in"
            " order, with mode, rows and time; the slowest step marked", scope="tail"),
    Command("enter", "open_detail", "Detail", "Detail of the selected TVIEW", scope="graph"),
    Command("t", "toggle_view", "Picture/table", "The graph drawn, or the same as a table (one row per node)",
            scope="graph"),
    Command("space", "toggle_pause", "Pause", "Pause or resume the live tail", scope="tail"),
    Command("f", "toggle_follow", "Follow", "Keep the newest event in view", scope="tail"),
    Command("slash", "filter", "Filter", "Only events whose TVIEW, source or op contains a text",
            scope="tail"),
    Command("c", "clear", "Clear", "Clear the tail", scope="tail"),
    Command("r", "rerun", "Re-run", "Run the health checks again", scope="diagnostics"),
    Command("d", "deep", "Deep check", "Verify every row of every TVIEW (slower)", scope="diagnostics"),
    Command("enter", "describe", "Describe", "The whole finding: detail and fix", scope="diagnostics"),
    Command("x", "fix", "Fix", "Apply the selected finding's fix (asks first)", scope="diagnostics",
            writes=True),
    Command("i", "install", "Install/upgrade", "Install or upgrade the engine (asks first)",
            scope="install", writes=True),
    Command("u", "uninstall", "Uninstall", "Remove the engine (asks first)", scope="install", writes=True),
)


def bindings(scope: str) -> list[BindingType]:
    return [Binding(c.key, c.action, c.title, show=c.show) for c in REGISTRY if c.scope == scope]


def for_screen(scope: str, read_only: bool) -> list[Command]:
    """Commands usable now: the app's and the current screen's, minus writes when read-only."""
    return [c for c in REGISTRY if c.scope in ("app", scope) and not (read_only and c.writes)]


class RegistryCommands(Provider):
    """The command palette's view of the registry."""

    def _commands(self) -> list[Command]:
        # self.screen is the screen the palette was opened from (app.screen is the palette)
        return for_screen(getattr(self.screen, "SCOPE", ""), getattr(self.app, "read_only", False))

    async def _run(self, command: Command) -> None:
        target = self.app if command.action.startswith("app.") or command.scope == "app" else self.screen
        await target.run_action(command.action.removeprefix("app."))

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(command.title, partial(self._run, command), help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(f"{command.title} {command.help}")
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), partial(self._run, command), help=command.help)
