"""Themes from TOML files: the bundled ``themes/*.toml`` and the user's own.

A theme file holds the fields of a Textual theme::

    name = "tview-dark"
    dark = true
    primary = "#4fb0c6"
    [variables]
    footer-key-foreground = "#4fb0c6"

A bad file is reported (path and reason) and skipped; it never stops the app.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from importlib import resources
from pathlib import Path

import platformdirs
from textual.color import Color, ColorParseError
from textual.theme import Theme

from .config import toml_problem

COLOR_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground",
                "background", "surface", "panel", "boost")
ALLOWED = {f.name for f in fields(Theme)}


class ThemeError(ValueError):
    pass


def bundled_dir():
    checkout = Path(__file__).resolve().parent.parent / "themes"
    if checkout.is_dir():
        return checkout
    return resources.files("tview_tui.themes")


def user_dir() -> Path:
    return Path(platformdirs.user_config_dir("tview-tui")) / "themes"


def parse_theme(text: str, origin: str) -> Theme:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where, message = toml_problem(exc, origin, text)
        raise ThemeError(f"{where}: {message}") from None
    unknown = set(data) - ALLOWED
    if unknown:
        raise ThemeError(f"{origin}: unknown key(s) {', '.join(sorted(unknown))}")
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise ThemeError(f"{origin}: a theme needs a name")
    if not isinstance(data.get("primary"), str):
        raise ThemeError(f"{origin}: a theme needs a primary color")
    for key in COLOR_FIELDS:
        if key in data:
            try:
                Color.parse(data[key])
            except (ColorParseError, TypeError):
                raise ThemeError(f"{origin}: {key} = {data[key]!r} is not a color") from None
    if "dark" in data and not isinstance(data["dark"], bool):
        raise ThemeError(f"{origin}: dark must be true or false")
    if not isinstance(data.get("variables", {}), dict):
        raise ThemeError(f"{origin}: [variables] must be a table")
    return Theme(**data)


def load_themes(extra_dirs: list[Path] | None = None) -> tuple[list[Theme], list[str]]:
    """All themes found, and one message per file that could not be used."""
    themes, problems = [], []
    sources = [bundled_dir(), user_dir(), *(extra_dirs or [])]
    for directory in sources:
        try:
            entries = sorted((e for e in directory.iterdir() if e.name.endswith(".toml")), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                themes.append(parse_theme(entry.read_text(encoding="utf-8"), str(entry)))
            except (ThemeError, OSError, UnicodeDecodeError) as exc:
                problems.append(f"theme skipped: {exc}")
    return themes, problems
