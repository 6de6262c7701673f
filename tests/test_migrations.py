"""TVIEWs in application migrations: real Alembic (upgrade, downgrade, autogenerate, offline SQL)
and real Django migrations (migrate, migrate back, the engine check), on the test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tview_tui.migrations import Change, Tview, plan

from oracle import assert_oracle

pytestmark = pytest.mark.engine

TABLES = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text, email text);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int REFERENCES tb_user, title text);
INSERT INTO tb_user SELECT g, 'user ' || g, 'u' || g || '@example.com' FROM generate_series(1, 5) g;
INSERT INTO tb_post SELECT g, 1 + g % 5, 'post ' || g FROM generate_series(1, 12) g;
"""
USER = "SELECT u.pk_user, jsonb_build_object('name', u.name) AS data FROM tb_user u"
USER_WITH_EMAIL = "SELECT u.pk_user, jsonb_build_object('name', u.name, 'email', u.email) AS data FROM tb_user u"
POST = """SELECT p.pk_post, p.fk_user, jsonb_build_object('title', p.title, 'author', u.data) AS data
FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user"""
CARD = "SELECT p.pk_post, jsonb_build_object('title', p.data->>'title') AS data FROM tv_post p"
# a definition with what trips naive quoting: a quote, a colon bind look-alike, a dollar tag
ODD = "SELECT u.pk_user, jsonb_build_object('say', 'it''s :name $$ %s') AS data FROM tb_user u"
# a TVIEW in a schema whose name needs quoting
SHOP = """
CREATE SCHEMA "Shop";
CREATE TABLE "Shop".tb_item (pk_item int PRIMARY KEY, label text);
INSERT INTO "Shop".tb_item SELECT g, 'item ' || g FROM generate_series(1, 6) g;
"""
ITEM = """SELECT i.pk_item, jsonb_build_object('label', i.label) AS data FROM "Shop".tb_item i"""
ITEM_RENAMED = ITEM.replace("'label'", "'name'")


def definitions(conn: psycopg.Connection, schema: str = "public") -> dict[str, str]:
    return dict(conn.execute("SELECT name::text, definition FROM tview.tviews WHERE schema_name = %s",
                             (schema,)).fetchall())


def test_plan_orders_creates_alters_and_drops_by_what_reads_what():
    current = {t.key: t for t in [Tview("user", USER), Tview("post", POST), Tview("gone", "SELECT 1"),
                                  Tview("old_card", "SELECT x FROM tv_user")]}
    declared = [Tview("card", CARD), Tview("post", POST + " ;"), Tview("user", USER_WITH_EMAIL)]
    steps = plan(declared, current)
    assert [(s.action, s.tview.name) for s in steps] == [
        ("drop", "old_card"), ("drop", "gone"), ("alter", "user"), ("create", "card")]
    assert steps[2] == Change("alter", Tview("user", USER_WITH_EMAIL), Tview("user", USER))
    # a TVIEW a kept one reads until its alter is dropped after that alter
    current = {t.key: t for t in [Tview("base", USER), Tview("reader", "SELECT k FROM tv_base b")]}
    steps = plan([Tview("reader", USER)], current)
    assert [(s.action, s.tview.name) for s in steps] == [("alter", "reader"), ("drop", "base")]
    with pytest.raises(ValueError, match="cycle"):
        plan([Tview("a", "SELECT 1 FROM tv_b"), Tview("b", "SELECT 1 FROM tv_a")], {})


# -- Alembic --------------------------------------------------------------------------------

ENV_PY = """
from alembic import context
from sqlalchemy import MetaData

from tview_tui.alembic import register_tviews

register_tviews(context.config.attributes.get("tviews", []))
if context.is_offline_mode():        # as Alembic's own template does it
    context.configure(url="postgresql+psycopg://", literal_binds=True, dialect_opts={"paramstyle": "named"})
else:
    context.configure(connection=context.config.attributes["connection"], target_metadata=MetaData(),
                      include_object=lambda *args: False)      # the tables are not this test's business
with context.begin_transaction():
    context.run_migrations()
"""

FIRST_MIGRATION = '''
"""TVIEWs user, post and gone"""
from alembic import op
import tview_tui.alembic  # noqa: F401

revision = "0001"
down_revision = None


def upgrade():
    op.create_tview("user", {user!r})
    op.create_tview("post", {post!r})
    op.create_tview("gone", {odd!r}, mode="deferred")


def downgrade():
    op.drop_tview("gone")
    op.drop_tview("post")
    op.drop_tview("user")
'''


@pytest.fixture
def alembic_env(tmp_path: Path, db, dsn):
    alembic = pytest.importorskip("alembic.command")
    from alembic.config import Config
    from sqlalchemy import create_engine

    db.execute(TABLES)
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(ENV_PY)
    (tmp_path / "script.py.mako").write_text(
        (Path(alembic.__file__).parent / "templates" / "generic" / "script.py.mako").read_text())
    (tmp_path / "versions" / "0001_first.py").write_text(FIRST_MIGRATION.format(user=USER, post=POST, odd=ODD))
    config = Config()
    config.set_main_option("script_location", str(tmp_path))
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn))

    def run(command: str, *args, tviews=(), **kwargs):
        with engine.begin() as connection:
            config.attributes.update(connection=connection, tviews=list(tviews))
            return getattr(alembic, command)(config, *args, **kwargs)

    yield run
    engine.dispose()


def test_alembic_upgrade_autogenerate_and_downgrade(alembic_env, db, tmp_path):
    alembic_env("upgrade", "head")
    assert definitions(db) == {"user": USER, "post": POST, "gone": ODD}
    assert db.execute("SELECT mode FROM tview.tviews WHERE name = 'gone'").fetchone()[0] == "deferred"
    assert_oracle(db)

    declared = [Tview("card", CARD), Tview("post", POST), Tview("user", USER_WITH_EMAIL)]
    alembic_env("revision", message="second", autogenerate=True, rev_id="0002", tviews=declared)
    (script,) = (tmp_path / "versions").glob("0002_*.py")
    code = script.read_text()
    upgrade_part, downgrade_part = code.split("def downgrade")
    calls = [line.strip().split("(")[0] for line in upgrade_part.splitlines() if line.strip().startswith("op.")]
    assert calls == ["op.drop_tview", "op.alter_tview", "op.create_tview"]
    assert "import tview_tui.alembic" in code and "op.create_tview('gone'" in downgrade_part

    alembic_env("upgrade", "head")
    assert definitions(db) == {"user": USER_WITH_EMAIL, "post": POST, "card": CARD}
    db.execute("UPDATE tb_user SET email = 'changed@example.com' WHERE pk_user = 2")
    assert db.execute("SELECT data->'author'->>'email' FROM tv_post WHERE pk_post = 1").fetchone()[0] == \
        "changed@example.com"
    assert_oracle(db)
    # nothing left to do: autogenerate against the same declarations is empty
    alembic_env("revision", message="nothing", autogenerate=True, rev_id="0003", tviews=declared)
    (empty,) = (tmp_path / "versions").glob("0003_*.py")
    assert "op." not in empty.read_text().replace("op.f(", "")

    alembic_env("downgrade", "0001")
    assert definitions(db) == {"user": USER, "post": POST, "gone": ODD}
    assert_oracle(db)
    alembic_env("downgrade", "base")
    assert definitions(db) == {}


SHOP_MIGRATION = '''
"""TVIEW item in schema Shop"""
from alembic import op
import tview_tui.alembic  # noqa: F401

revision = "0002"
down_revision = "0001"


def upgrade():
    op.create_tview("item", {item!r}, schema="Shop")
    op.alter_tview("item", {renamed!r}, previous_definition={item!r}, schema="Shop")


def downgrade():
    op.drop_tview("item", schema="Shop")
'''


def test_alembic_operations_in_a_schema_that_needs_quoting(alembic_env, db, tmp_path, capsys):
    db.execute(SHOP)
    (tmp_path / "versions" / "0002_shop.py").write_text(SHOP_MIGRATION.format(item=ITEM, renamed=ITEM_RENAMED))
    alembic_env("upgrade", "0001:0002", sql=True)
    out = capsys.readouterr().out
    assert "SELECT tview.create('item', 'SELECT i.pk_item, jsonb_build_object(''label''" in out
    assert "SELECT tview.alter('item', 'SELECT i.pk_item, jsonb_build_object(''name''" in out
    assert "FROM \"Shop\".tb_item i', schema_name => 'Shop')" in out
    alembic_env("upgrade", "head")
    assert definitions(db, "Shop") == {"item": ITEM_RENAMED}
    assert_oracle(db)
    alembic_env("downgrade", "0001")
    assert definitions(db, "Shop") == {}
    assert definitions(db) == {"user": USER, "post": POST, "gone": ODD}


def test_alembic_offline_sql_binds_definitions_as_literals(alembic_env, capsys):
    alembic_env("upgrade", "0001", sql=True)
    out = capsys.readouterr().out
    assert "SELECT tview.create('user', 'SELECT u.pk_user, jsonb_build_object(''name'', u.name)" in out
    assert "'it''''s :name $$ %s'" in out


# -- Django ---------------------------------------------------------------------------------

DJANGO_MIGRATION = '''
from django.db import migrations
from tview_tui.django import AlterTview, CreateTview, DropTview


class Migration(migrations.Migration):
    dependencies = {dependencies!r}
    operations = {operations}
'''

DJANGO_RUN = """
import json, sys
import django
from django.conf import settings
from django.core.management import call_command

settings.configure(
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": sys.argv[1], "HOST": sys.argv[2],
                           "PORT": sys.argv[3], "USER": sys.argv[4]}},
    INSTALLED_APPS=["tview_tui.django", "blog"], USE_TZ=True)
django.setup()
for command in json.loads(sys.argv[5]):
    call_command(*command)
"""


@pytest.fixture
def django_project(tmp_path: Path, db, dsn):
    pytest.importorskip("django")
    db.execute(TABLES)
    migrations_dir = tmp_path / "blog" / "migrations"
    migrations_dir.mkdir(parents=True)
    (tmp_path / "blog" / "__init__.py").write_text("")
    (migrations_dir / "__init__.py").write_text("")
    migrations = {
        "0001_tviews": ([], f"[CreateTview('user', {USER!r}), CreateTview('post', {POST!r}),"
                            f" CreateTview('gone', {ODD!r}, mode='deferred')]"),
        "0002_change": ([("blog", "0001_tviews")],
                        f"[DropTview('gone', definition={ODD!r}, mode='deferred'),"
                        f" AlterTview('user', {USER_WITH_EMAIL!r}, previous_definition={USER!r}),"
                        f" CreateTview('card', {CARD!r})]"),
    }
    for name, (dependencies, operations) in migrations.items():
        (migrations_dir / f"{name}.py").write_text(
            DJANGO_MIGRATION.format(dependencies=dependencies, operations=operations))
    info = psycopg.conninfo.conninfo_to_dict(dsn)

    def run(*commands: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", DJANGO_RUN, str(info["dbname"]), str(info["host"]),
                               str(info["port"]), str(info["user"]), json.dumps(commands)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(tmp_path)})
    return run


def test_django_migrate_forwards_and_back(django_project, db):
    result = django_project(["migrate", "blog", "0001", "--verbosity", "0"])
    assert result.returncode == 0, result.stderr
    assert definitions(db) == {"user": USER, "post": POST, "gone": ODD}
    result = django_project(["migrate", "blog", "--verbosity", "0"], ["sqlmigrate", "blog", "0002"])
    assert result.returncode == 0, result.stderr
    assert "SELECT tview.alter('user', 'SELECT u.pk_user, jsonb_build_object(''name''" in result.stdout
    assert "FROM tb_user u', schema_name => 'public')" in result.stdout
    assert definitions(db) == {"user": USER_WITH_EMAIL, "post": POST, "card": CARD}
    assert_oracle(db)
    result = django_project(["migrate", "blog", "0001", "--verbosity", "0"])
    assert result.returncode == 0, result.stderr
    assert definitions(db) == {"user": USER, "post": POST, "gone": ODD}
    assert db.execute("SELECT mode FROM tview.tviews WHERE name = 'gone'").fetchone()[0] == "deferred"
    assert_oracle(db)
    result = django_project(["migrate", "blog", "zero", "--verbosity", "0"])
    assert result.returncode == 0, result.stderr
    assert definitions(db) == {}


def test_django_operations_in_a_schema_that_needs_quoting(django_project, db, tmp_path):
    db.execute(SHOP)
    (tmp_path / "blog" / "migrations" / "0003_shop.py").write_text(DJANGO_MIGRATION.format(
        dependencies=[("blog", "0002_change")],
        operations=f"[CreateTview('item', {ITEM!r}, schema='Shop'),"
                   f" AlterTview('item', {ITEM_RENAMED!r}, previous_definition={ITEM!r}, schema='Shop')]"))
    result = django_project(["migrate", "blog", "--verbosity", "0"], ["sqlmigrate", "blog", "0003"])
    assert result.returncode == 0, result.stderr
    assert "SELECT tview.alter('item', 'SELECT i.pk_item, jsonb_build_object(''name''" in result.stdout
    assert "FROM \"Shop\".tb_item i', schema_name => 'Shop')" in result.stdout
    assert definitions(db, "Shop") == {"item": ITEM_RENAMED}
    assert_oracle(db)
    # backwards: the alter reversed, then the TVIEW dropped
    result = django_project(["migrate", "blog", "0002", "--verbosity", "0"])
    assert result.returncode == 0, result.stderr
    assert definitions(db, "Shop") == {}
    assert definitions(db) == {"user": USER_WITH_EMAIL, "post": POST, "card": CARD}


def test_django_check_warns_when_the_engine_is_missing(django_project, db):
    db.execute("SELECT tview.drop_all()")
    db.execute("DROP SCHEMA tview CASCADE")
    result = django_project(["check", "--database", "default"])
    assert "tview_tui.W001" in result.stderr and "tview-tui install" in result.stderr
    result = django_project(["migrate", "blog", "--verbosity", "0"])
    assert result.returncode != 0
    assert "the tview engine is not installed in database 'default'" in result.stderr
