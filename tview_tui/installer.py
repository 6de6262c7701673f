"""Install, upgrade and uninstall the SQL engine (the ordered files of ``sql/``).

Everything happens in one transaction under an advisory lock, so two installers never
interleave and a failure leaves the database as it was. Installing the bundled version
over itself is a no-op; an older installation is upgraded in place (see ``install``); a
newer one is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import psycopg
from psycopg import sql

from .connection import TviewError, error_from_db, one

INSTALL_LOCK_KEY = "tview-tui installer"


def _sql_dir():
    """``sql/`` of a source checkout, else the copy packaged into the wheel."""
    checkout = Path(__file__).resolve().parent.parent / "sql"
    if (checkout / "VERSION").is_file():
        return checkout
    return resources.files("tview_tui.sql")


def bundled_version() -> str:
    return _sql_dir().joinpath("VERSION").read_text().strip()


def sql_files() -> list[tuple[str, str]]:
    """The engine's SQL files as (name, text), in the order they are applied."""
    entries = [e for e in _sql_dir().iterdir() if e.name.endswith(".sql")]
    return [(e.name, e.read_text()) for e in sorted(entries, key=lambda e: e.name)]


@dataclass(frozen=True)
class Release:
    """An engine version and its SQL files as (name, text), applied in that order.

    The bundled one is what this tool installs; tests build older ones from git history
    to upgrade from them with the same code path."""

    version: str
    files: tuple[tuple[str, str], ...]


def bundled_release() -> Release:
    return Release(bundled_version(), tuple(sql_files()))


def parse_version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        raise TviewError(f"unrecognised engine version {text!r}") from None


@dataclass
class Status:
    installed: str | None
    bundled: str
    ddl_interception: bool
    can_intercept: bool
    tview_count: int
    server_version: str

    @property
    def state(self) -> str:
        if self.installed is None:
            return "not installed"
        if self.installed == self.bundled:
            return "up to date"
        newer = parse_version(self.installed) > parse_version(self.bundled)
        return "newer than this tool" if newer else "upgrade available"

    def as_dict(self) -> dict:
        return dict(asdict(self), state=self.state)


@dataclass
class Outcome:
    action: str  # installed | upgraded | unchanged | uninstalled | absent
    before: str | None
    after: str | None

    def describe(self) -> str:
        return {
            "installed": f"installed engine {self.after}",
            "upgraded": f"upgraded engine {self.before} -> {self.after}",
            "unchanged": f"engine {self.after} already installed; nothing to do",
            "uninstalled": f"uninstalled engine {self.before}",
            "absent": "engine not installed; nothing to do",
        }[self.action]


def installed_version(conn: psycopg.Connection) -> str | None:
    if not _exists(conn, "tview.meta"):
        return None
    row = conn.execute("SELECT version FROM tview.meta").fetchone()
    return row[0] if row else None


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    return one(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)))[0]


def _tview_count(conn: psycopg.Connection) -> int:
    if not _exists(conn, "tview.tviews"):
        return 0
    return int(one(conn.execute("SELECT count(*) FROM tview.tviews"))[0])


def status(conn: psycopg.Connection) -> Status:
    """Installed vs bundled version and whether CREATE TABLE tv_x AS ... is intercepted."""
    with conn.transaction():
        installed = installed_version(conn)
        intercept = one(conn.execute(
            "SELECT count(*) > 0 FROM pg_event_trigger WHERE evtname LIKE 'tview\\_%'"
        ))[0]
        can = one(conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))[0]
        server = one(conn.execute("SHOW server_version"))[0]
        count = _tview_count(conn)
    return Status(installed, bundled_version(), bool(intercept), bool(can), count, server)


def _locked(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (INSTALL_LOCK_KEY,))


def _privilege_error(exc: psycopg.Error, what: str) -> TviewError:
    error = error_from_db(exc, f"insufficient privilege to {what}")
    error.hint = error.hint or (
        "connect as the database owner or a role with CREATE on the database"
        " (a superuser also enables CREATE TABLE tv_x AS ... interception)")
    return error


def install(conn: psycopg.Connection, *, upgrade_only: bool = False, release: Release | None = None,
            lock_timeout_ms: int = 10000) -> Outcome:
    """Install the engine (the bundled release unless one is given), or upgrade an older one in place.

    An upgrade must leave nothing of the old version's code behind, in the same transaction:
    1. apply the files (catalog tables are kept: the files alter them idempotently);
    2. drop every function in schema tview that the files did not (re)create - overloads
       whose signature changed, functions that were removed, and the per-TVIEW generated
       ones - before anything runs that could resolve a call to them (an old overload with
       other defaults would make calls ambiguous);
    3. regenerate every TVIEW with the engine's own tview._rebuild (refresh, patch and other
       generated functions, refresh_sql, patch_specs, lineage rows), lowest level first, so
       no generated code of the old version runs; tables, rows, ids and modes stay.
    "Not (re)created" is read from pg_proc: CREATE OR REPLACE writes a new row version, so a
    function whose row version (xmin) is the one it had before the files ran was not defined
    by them. This holds whatever the files' syntax, in subtransactions too, and needs every
    engine function to be created unconditionally (CREATE OR REPLACE, never IF NOT EXISTS)
    and no file to rewrite functions in bulk (GRANT ... ON ALL FUNCTIONS IN SCHEMA tview).
    The drops are RESTRICT: if a user object depends on a removed function, the upgrade
    fails and rolls back instead of dropping the user's object.

    Lock waits are capped at lock_timeout_ms (after the installer lock is taken): an upgrade
    queued behind a long transaction would otherwise block every writer of every TVIEW
    until that transaction ends; failing fast leaves the old engine working.
    """
    release = release or bundled_release()
    target = release.version
    try:
        with conn.transaction():
            _locked(conn)
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{lock_timeout_ms}ms",))
            before = installed_version(conn)
            if before is not None:
                if parse_version(before) > parse_version(target):
                    raise TviewError(
                        f"engine {before} is installed, newer than this tool's {target}",
                        hint="upgrade tview-tui instead of downgrading the engine",
                    )
                if before == target:
                    return Outcome("unchanged", before, before)
            elif upgrade_only:
                raise TviewError("the engine is not installed", hint="run `tview-tui install`")
            old_routines = _routine_versions(conn)
            for name, text in release.files:
                try:
                    conn.execute(text)
                except psycopg.errors.InsufficientPrivilege as exc:
                    raise _privilege_error(exc, f"install the engine ({name})") from None
                except psycopg.Error as exc:
                    raise _step_error(exc, f"installing {name} failed") from None
            if old_routines:
                _drop_untouched_routines(conn, old_routines, target)
                _regenerate_tviews(conn)
            conn.execute(
                "INSERT INTO tview.meta (version) VALUES (%s) ON CONFLICT (singleton)"
                " DO UPDATE SET version = EXCLUDED.version, upgraded_at = now()",
                (target,),
            )
    except psycopg.errors.InsufficientPrivilege as exc:
        raise _privilege_error(exc, "install the engine") from None
    except psycopg.Error as exc:
        raise error_from_db(exc, "install failed") from None
    return Outcome("installed" if before is None else "upgraded", before, target)


def _step_error(exc: psycopg.Error, context: str) -> TviewError:
    error = error_from_db(exc, context)
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        error.hint = ("another transaction holds a lock the engine needs (see pg_locks);"
                      " nothing was changed: retry when it has ended")
    return error


def _routine_versions(conn: psycopg.Connection) -> dict[int, str]:
    """Every routine in schema tview: oid -> the xmin of its pg_proc row."""
    return dict(conn.execute(
        "SELECT p.oid, p.xmin::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'tview'").fetchall())


def _drop_untouched_routines(conn: psycopg.Connection, old: dict[int, str], version: str) -> None:
    """Drop the routines whose pg_proc row is still the one in ``old`` (see ``install``)."""
    stale = [oid for oid, xmin in _routine_versions(conn).items() if old.get(oid) == xmin]
    if not stale:
        return
    for kind, signature in conn.execute(
        "SELECT CASE p.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'ROUTINE' END,"
        " format('tview.%%I(%%s)', p.proname, pg_get_function_identity_arguments(p.oid))"
        " FROM pg_proc p WHERE p.oid = ANY (%s) ORDER BY p.oid", (stale,)
    ).fetchall():
        try:
            conn.execute(sql.SQL("DROP {} {}").format(sql.SQL(kind), sql.SQL(signature)))
        except psycopg.errors.DependentObjectsStillExist as exc:
            raise TviewError(
                f"cannot remove {signature}, which engine {version} no longer has: {exc.diag.message_detail}",
                hint="change or drop the objects that use it, then upgrade again",
                sqlstate=exc.sqlstate) from None


def _regenerate_tviews(conn: psycopg.Connection) -> None:
    """Rebuild every TVIEW's generated code with the engine just installed (tview._rebuild)."""
    for tview_id, label in conn.execute(
        "SELECT id, tview._label(schema_name, name) FROM tview.tviews ORDER BY topo_level, id"
    ).fetchall():
        try:
            conn.execute("SELECT tview._rebuild(t) FROM tview.tviews t WHERE t.id = %s", (tview_id,))
        except psycopg.Error as exc:
            raise _step_error(exc, f"regenerating TVIEW {label} failed") from None


def uninstall(conn: psycopg.Connection, *, cascade: bool = False) -> Outcome:
    """Remove every engine object; user tables stay. TVIEWs are dropped only with cascade."""
    try:
        with conn.transaction():
            _locked(conn)
            before = installed_version(conn)
            if before is None:
                return Outcome("absent", None, None)
            count = _tview_count(conn)
            if count and not cascade:
                raise TviewError(
                    f"{count} TVIEW(s) exist; uninstalling would drop them",
                    hint="drop them first, or pass --cascade to drop them with the engine",
                    sqlstate="2BP01",
                )
            if count:
                conn.execute("SELECT tview.drop_all()")
            for (name,) in conn.execute(
                "SELECT evtname FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid"
                " WHERE p.pronamespace = 'tview'::regnamespace"
            ).fetchall():
                conn.execute(sql.SQL("DROP EVENT TRIGGER {}").format(sql.Identifier(name)))
            conn.execute("DROP SCHEMA tview CASCADE")
    except psycopg.errors.InsufficientPrivilege as exc:
        raise _privilege_error(exc, "uninstall the engine") from None
    except psycopg.Error as exc:
        raise error_from_db(exc, "uninstall failed") from None
    return Outcome("uninstalled", before, None)
