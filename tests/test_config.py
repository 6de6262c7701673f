"""Config profiles, target choice and theme files: clear one-line errors, never a traceback."""

from __future__ import annotations

import pytest

from tview_tui.config import Config, choose_target, load
from tview_tui.connection import TviewError
from tview_tui.themes import ThemeError, load_themes, parse_theme


def write(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_profiles_and_ui_settings(tmp_path):
    config = load(write(tmp_path, """
[ui]
theme = "tview-light"
refresh_interval = 0.5

[profiles.prod]
service = "prod"
read_only = true
theme = "tview-oncall"

[profiles.local]
dsn = "postgresql://me@localhost/app"
"""))
    assert (config.theme, config.refresh_interval) == ("tview-light", 0.5)
    target, profile = choose_target("prod", config)
    assert target.dsn == "service=prod" and target.read_only and profile.theme == "tview-oncall"
    target, profile = choose_target("local", config, read_only=True)
    assert target.read_only and profile.name == "local"
    target, profile = choose_target("host=elsewhere", config)
    assert target.dsn == "host=elsewhere" and profile is None


def test_missing_file_is_an_empty_config(tmp_path):
    config = load(tmp_path / "none.toml")
    assert config.profiles == {} and config.theme == "tview-dark"


def test_nothing_configured_means_no_target(tmp_path, monkeypatch):
    for var in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE"):
        monkeypatch.delenv(var, raising=False)
    assert choose_target(None, Config(path=tmp_path)) == (None, None)
    monkeypatch.setenv("PGDATABASE", "app")
    target, _ = choose_target(None, Config(path=tmp_path))
    assert target is not None and target.dsn == ""


@pytest.mark.parametrize("text, message", [
    ("[ui\ntheme = 1", r"config\.toml:1"),
    ("[ui]\nrefresh_interval = 'fast'", "ui.refresh_interval must be a int or float"),
    ("[ui]\nrefresh_interval = -1", "must be positive"),
    ("[profiles.x]\ndsn = 'a'\npasword = 'typo'", "unknown key.*pasword"),
    ("[profiles.x]\nread_only = 'yes'", "read_only must be a bool"),
])
def test_bad_config_is_one_line_with_file_and_line(tmp_path, text, message):
    with pytest.raises(TviewError, match=message) as err:
        load(write(tmp_path, text))
    assert "\n" not in err.value.message and str(tmp_path) in err.value.message


def test_bundled_themes_load_including_a_light_one():
    themes, problems = load_themes()
    names = {t.name: t for t in themes}
    assert {"tview-dark", "tview-light", "tview-oncall"} <= set(names)
    assert names["tview-light"].dark is False
    assert problems == []


@pytest.mark.parametrize("text, message", [
    ("name = 'x'\nprimary = 'not-a-color'", "primary.*not a color"),
    ("primary = '#ffffff'", "needs a name"),
    ("name = 'x'", "needs a primary"),
    ("name = 'x'\nprimary = '#fff'\nsparkle = true", "unknown key"),
    ("name = 'x'\nprimary = '#fff'\ndark = 'yes'", "dark must be"),
    ("name = \"x", r"bad\.toml:1"),
])
def test_bad_theme_files_are_reported_and_skipped(tmp_path, text, message):
    with pytest.raises(ThemeError, match=message):
        parse_theme(text, "bad.toml")
    (tmp_path / "bad.toml").write_text(text)
    (tmp_path / "good.toml").write_text("name = 'good'\nprimary = '#123456'")
    themes, problems = load_themes([tmp_path])
    assert "good" in {t.name for t in themes}
    assert len(problems) == 1 and "bad.toml" in problems[0]
