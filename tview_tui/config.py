"""User configuration: a TOML file of profiles and UI settings, and choosing a target.

    [ui]
    theme = "tview-dark"          # any built-in or themes/*.toml theme
    refresh_interval = 2.0        # seconds between list refreshes

    [profiles.prod]
    dsn = "service=prod"          # anything libpq accepts
    read_only = true              # hide and refuse every writing action
    theme = "tview-light"

The file lives in the user config dir (``tview-tui config-path`` prints it) or where
``TVIEW_TUI_CONFIG`` points. A bad file is reported in one line with its path and line.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from .connection import Target, TviewError

PG_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


@dataclass(frozen=True)
class Profile:
    name: str
    dsn: str
    read_only: bool = False
    theme: str | None = None


@dataclass
class Config:
    path: Path | None           # None: no file (tests, screenshots)
    theme: str = "tview-dark"
    refresh_interval: float = 2.0
    profiles: dict[str, Profile] = field(default_factory=dict)


def config_path() -> Path:
    override = os.environ.get("TVIEW_TUI_CONFIG")
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir("tview-tui")) / "config.toml"


def load(path: Path | None = None) -> Config:
    """Read the config file (a missing file is an empty config)."""
    path = path or config_path()
    if not path.exists():
        return Config(path=path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where, message = toml_problem(exc, str(path), text)
        raise TviewError(f"bad config file {where}: {message}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TviewError(f"cannot read config file {path}: {exc}") from None
    return _parse(path, data)


# tomllib before Python 3.14 gives the place only inside its message:
# "... (at line 3, column 7)" or "... (at end of document)".
_TOML_PLACE = re.compile(r"^(?P<message>.*) \(at (line (?P<line>\d+), column \d+|end of document)\)$", re.S)


def toml_problem(exc: tomllib.TOMLDecodeError, origin: str, text: str) -> tuple[str, str]:
    """(origin:line, what is wrong) of the TOML error of ``text``, for a one-line message that
    names the file and the line."""
    line, message = getattr(exc, "lineno", None), getattr(exc, "msg", None)
    if line is None or message is None:
        found = _TOML_PLACE.match(str(exc))
        if found is None:
            return origin, str(exc)
        line, message = found["line"] or text.count("\n") + 1, found["message"]
    return f"{origin}:{line}", message


def _expect(path: Path, key: str, value, kinds: tuple[type, ...]):
    if not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds:
        expected = " or ".join(k.__name__ for k in kinds)
        raise TviewError(f"bad config file {path}: {key} must be a {expected}, not {value!r}")
    return value


def _parse(path: Path, data: dict) -> Config:
    config = Config(path=path)
    ui = _expect(path, "[ui]", data.get("ui", {}), (dict,))
    config.theme = _expect(path, "ui.theme", ui.get("theme", config.theme), (str,))
    interval = _expect(path, "ui.refresh_interval", ui.get("refresh_interval", config.refresh_interval),
                       (int, float))
    if interval <= 0:
        raise TviewError(f"bad config file {path}: ui.refresh_interval must be positive")
    config.refresh_interval = float(interval)
    for name, raw in _expect(path, "[profiles]", data.get("profiles", {}), (dict,)).items():
        raw = _expect(path, f"profiles.{name}", raw, (dict,))
        unknown = set(raw) - {"dsn", "service", "read_only", "theme"}
        if unknown:
            raise TviewError(f"bad config file {path}: unknown key(s) in profiles.{name}: "
                             + ", ".join(sorted(unknown)))
        dsn = _expect(path, f"profiles.{name}.dsn", raw.get("dsn", ""), (str,))
        if "service" in raw:
            dsn = f"service={_expect(path, f'profiles.{name}.service', raw['service'], (str,))} {dsn}".strip()
        config.profiles[name] = Profile(
            name=name, dsn=dsn,
            read_only=_expect(path, f"profiles.{name}.read_only", raw.get("read_only", False), (bool,)),
            theme=raw.get("theme"))
    return config


def choose_target(argument: str | None, config: Config,
                  read_only: bool = False) -> tuple[Target | None, Profile | None]:
    """A profile name, a DSN, the PG* environment, or nothing (the caller offers the demo)."""
    if argument and argument in config.profiles:
        profile = config.profiles[argument]
        return Target(profile.dsn, read_only=read_only or profile.read_only), profile
    if argument:
        return Target(argument, read_only=read_only), None
    if any(os.environ.get(var) for var in PG_ENV):
        return Target("", read_only=read_only), None
    if "default" in config.profiles:
        return choose_target("default", config, read_only)
    return None, None
