"""tview.alter: a TVIEW's definition replaced in place, its table and its readers kept, exact after."""

from __future__ import annotations

import random
import threading

import psycopg
import pytest
from psycopg import sql

from engine_helpers import refused
from oracle import assert_oracle

pytestmark = pytest.mark.engine

SCHEMA = """
CREATE TABLE tb_company (pk_company int PRIMARY KEY, name text);
CREATE TABLE tb_user (pk_user int PRIMARY KEY, fk_company int REFERENCES tb_company, name text, email text);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int REFERENCES tb_user, title text);
INSERT INTO tb_company SELECT g, 'company ' || g FROM generate_series(1, 3) g;
INSERT INTO tb_user SELECT g, 1 + g % 3, 'user ' || g, 'u' || g || '@example.com' FROM generate_series(1, 8) g;
INSERT INTO tb_post SELECT g, 1 + g % 8, 'post ' || g FROM generate_series(1, 20) g;
SELECT tview.create('user', $$SELECT u.pk_user, u.email, jsonb_build_object('name', u.name) AS data
                             FROM tb_user u$$);
SELECT tview.create('post', $$SELECT p.pk_post, p.fk_user, jsonb_build_object('title', p.title, 'author', u.data)
                             AS data FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user$$);
"""

# user, with the company's name in the document (a table it did not read before)
USER_WITH_COMPANY = """SELECT u.pk_user, u.email, jsonb_build_object('name', u.name, 'company', c.name) AS data
                       FROM tb_user u JOIN tb_company c ON c.pk_company = u.fk_company"""


@pytest.fixture
def blog(db):
    db.execute(SCHEMA)
    return db


def oids(conn: psycopg.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT name::text, table_oid::int FROM tview.tviews").fetchall())


def test_alter_keeps_the_table_and_its_readers_and_recomputes_both(blog):
    blog.execute("CREATE INDEX users_by_email ON tv_user (email)")
    reader = f"tview_alter_reader_{blog.info.backend_pid}"
    blog.execute(f"CREATE ROLE {reader}")
    try:
        blog.execute(f"GRANT SELECT ON tv_user TO {reader}")
        alter_and_check(blog, reader)
    finally:
        blog.execute(f"DROP OWNED BY {reader}")
        blog.execute(f"DROP ROLE {reader}")


def alter_and_check(blog: psycopg.Connection, reader: str) -> None:
    before = oids(blog)
    assert blog.execute("SELECT tview.alter('user', %s)::text", (USER_WITH_COMPANY,)).fetchone()[0] == "tv_user"
    assert oids(blog) == before
    assert blog.execute("SELECT data->>'company' FROM tv_user WHERE pk_user = 1").fetchone()[0] == "company 2"
    assert blog.execute("SELECT data->'author'->>'company' FROM tv_post WHERE pk_post = 8").fetchone()[0] == "company 2"
    assert blog.execute("SELECT has_table_privilege(%s, 'tv_user', 'SELECT')", (reader,)).fetchone()[0]
    assert blog.execute("SELECT to_regclass('users_by_email') IS NOT NULL").fetchone()[0]
    assert blog.execute("SELECT definition FROM tview.tviews WHERE name = 'user'").fetchone()[0] == USER_WITH_COMPANY
    # the new lineage: a write to the table it now reads reaches both
    blog.execute("UPDATE tb_company SET name = 'renamed' WHERE pk_company = 2")
    assert blog.execute("SELECT data->'author'->>'company' FROM tv_post WHERE pk_post = 8").fetchone()[0] == "renamed"
    assert_oracle(blog)
    assert blog.execute("SELECT count(*) FROM pg_class WHERE relname LIKE 'v\\_user\\_replaced%'").fetchone()[0] == 0


def test_alter_writes_only_the_rows_whose_result_changed(blog):
    """Rows whose result is the same are not rewritten (their xmin stays), nor their readers."""
    xmins = dict(blog.execute("SELECT pk_user, xmin::text FROM tv_user").fetchall())
    post_xmins = dict(blog.execute("SELECT pk_post, xmin::text FROM tv_post").fetchall())
    blog.execute("""SELECT tview.alter('user', $$SELECT u.pk_user, u.email,
                        jsonb_build_object('name', CASE WHEN u.pk_user = 1 THEN upper(u.name) ELSE u.name END) AS data
                        FROM tb_user u$$)""")
    changed = {k for k, x in blog.execute("SELECT pk_user, xmin::text FROM tv_user").fetchall() if xmins[k] != x}
    assert changed == {1}
    changed_posts = {k for k, x in blog.execute("SELECT pk_post, xmin::text FROM tv_post").fetchall()
                     if post_xmins[k] != x}
    assert changed_posts == {k for (k,) in blog.execute("SELECT pk_post FROM tb_post WHERE fk_user = 1")}
    assert_oracle(blog)


def test_the_same_definition_changes_nothing(blog):
    xmins = blog.execute("SELECT array_agg(xmin::text ORDER BY pk_user) FROM tv_user").fetchone()[0]
    definition = blog.execute("SELECT definition FROM tview.tviews WHERE name = 'user'").fetchone()[0]
    blog.execute("SELECT tview.alter('user', %s)", (definition + " ;\n",))
    assert blog.execute("SELECT array_agg(xmin::text ORDER BY pk_user) FROM tv_user").fetchone()[0] == xmins


@pytest.mark.parametrize("schema", ["order", "Shop"])
def test_alter_and_drop_take_the_schema_apart_as_create_does(blog, schema):
    """Callers pass name and schema as values (no quoting to get right); a qualified name still works."""
    quoted = sql.Identifier(schema).as_string(blog)
    blog.execute(f"""CREATE SCHEMA {quoted}; CREATE TABLE {quoted}.tb_item (pk_item int PRIMARY KEY, label text);
                     INSERT INTO {quoted}.tb_item SELECT g, 'item ' || g FROM generate_series(1, 5) g""")
    item = "SELECT i.pk_item, jsonb_build_object('label', i.label) AS data FROM {}.tb_item i"
    blog.execute("SELECT tview.create('item', %s, schema_name => %s)", (item.format(quoted), schema))
    relabelled = item.format(quoted).replace("'label'", "'name'")
    assert blog.execute("SELECT tview.alter('item', %s, schema_name => %s)::text",
                        (relabelled, schema)).fetchone()[0] == f"{quoted}.tv_item"
    assert blog.execute("SELECT definition FROM tview.tviews WHERE schema_name = %s", (schema,)).fetchone()[0] == \
        relabelled
    assert_oracle(blog)
    # the same name in the caller's search path is not the one meant
    refused(blog, "SELECT tview.drop('user', schema_name => %s)", (schema,), "42P01", "user")
    blog.execute("SELECT tview.alter(%s, %s)", (f"{quoted}.tv_item", item.format(quoted)))
    assert_oracle(blog)
    blog.execute("SELECT tview.drop('item', schema_name => %s)", (schema,))
    assert blog.execute("SELECT count(*) FROM tview.tviews WHERE schema_name = %s", (schema,)).fetchone()[0] == 0
    assert oids(blog).keys() == {"user", "post"}


def test_new_columns_are_added_with_their_index_and_old_ones_dropped(blog):
    blog.execute("""SELECT tview.alter('user', $$SELECT u.pk_user, jsonb_build_object('name', u.name) AS data,
                                                u.fk_company FROM tb_user u$$)""")
    columns = [r[0] for r in blog.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'tv_user'::regclass AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum")]
    assert columns == ["pk_user", "data", "fk_company"]
    assert blog.execute("SELECT count(*) FROM pg_index WHERE indrelid = 'tv_user'::regclass"
                        " AND indkey::text = (SELECT attnum::text FROM pg_attribute"
                        "                     WHERE attrelid = 'tv_user'::regclass AND attname = 'fk_company')"
                        ).fetchone()[0] == 1
    blog.execute("UPDATE tb_user SET fk_company = 3 WHERE pk_user = 1")
    assert_oracle(blog)


def test_a_column_type_change_is_recomputed(blog):
    blog.execute("""SELECT tview.alter('user', $$SELECT u.pk_user, length(u.email) AS email,
                                                jsonb_build_object('name', u.name) AS data FROM tb_user u$$)""")
    assert blog.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                        " WHERE attrelid = 'tv_user'::regclass AND attname = 'email'").fetchone()[0] == "integer"
    # the key's own type (no TVIEW reads tv_post's key)
    blog.execute("""SELECT tview.alter('post', $$SELECT p.pk_post::bigint AS pk_post, p.fk_user,
                        jsonb_build_object('title', p.title, 'author', u.data) AS data
                        FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user$$)""")
    assert blog.execute("SELECT pg_typeof(pk_post)::text FROM tv_post LIMIT 1").fetchone()[0] == "bigint"
    blog.execute("UPDATE tb_user SET name = 'after the key type' WHERE pk_user = 1")
    assert_oracle(blog)


def test_deferred_readers_are_recomputed_in_the_altering_transaction(blog):
    blog.execute("SELECT tview.set_mode('post', 'deferred')")
    with blog.transaction():
        blog.execute("SELECT tview.alter('user', %s)", (USER_WITH_COMPANY,))
        assert_oracle(blog)
        assert blog.execute("SELECT count(*) FROM tview.queue").fetchone()[0] == 0
    blog.execute("UPDATE tb_company SET name = 'deferred' WHERE pk_company = 2")
    assert_oracle(blog)


def test_refused_alters_leave_everything_as_it_was(blog):
    # a column a reading TVIEW uses: named, with the reader
    refused(blog, "SELECT tview.alter('user', $$SELECT u.pk_user, u.email FROM tb_user u$$)", None, "42703", "data")
    blog.execute("""SELECT tview.alter('post', $$SELECT p.pk_post, p.fk_user,
                        jsonb_build_object('title', p.title, 'email', u.email) AS data
                        FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user$$)""")
    refused(blog, "SELECT tview.alter('user', $$SELECT u.pk_user, jsonb_build_object('name', u.name) AS data"
                  " FROM tb_user u$$)", None, "2BP01", "public.tv_post", "email", "drops")
    refused(blog, "SELECT tview.alter('user', $$SELECT u.pk_user, length(u.email) AS email,"
                  " jsonb_build_object('name', u.name) AS data FROM tb_user u$$)", None, "2BP01",
            "public.tv_post", "email", "changes from text to integer")
    refused(blog, "SELECT tview.alter('user', $$SELECT u.pk_user, jsonb_build_object('name', u.name) AS data, u.email"
                  " FROM tb_user u$$)", None, "0A000", "moves its columns")
    refused(blog, "SELECT tview.alter('user', $$SELECT u.fk_company AS pk_company, u.pk_user, u.email,"
                  " jsonb_build_object('name', u.name) AS data FROM tb_user u$$)", None, "0A000", "key column")
    refused(blog, "SELECT tview.alter('user', 'DELETE FROM tb_user')", None, "42601", "tv_user")
    refused(blog, "SELECT tview.alter('user', $$SELECT u.pk_user, u.email, jsonb_build_object('r', random()) AS data"
                  " FROM tb_user u$$)", None, "42P17", "random()")
    refused(blog, "SELECT tview.alter('nosuch', 'SELECT 1')", None, "42P01", "nosuch")
    # reading a TVIEW that reads it
    refused(blog, "SELECT tview.alter('user', $$SELECT u.pk_user, u.email, jsonb_build_object('posts', "
                  "(SELECT count(*) FROM tv_post p WHERE p.fk_user = u.pk_user)) AS data FROM tb_user u$$)",
            None, "55P03", "tv_user")
    assert_oracle(blog)


def test_alter_refuses_a_snapshot_older_than_its_locks(blog, dsn):
    with psycopg.connect(dsn) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        refused(conn, "SELECT tview.alter('user', %s)", (USER_WITH_COMPANY,), "25000", "REPEATABLE READ")


def test_readers_see_the_old_rows_until_commit_and_writers_wait(blog, dsn):
    """Readers of the TVIEW are never blocked nor see it empty; writers of the tables it reads
    wait for the alter's commit, then their change is captured with the new lineage."""
    count = blog.execute("SELECT count(*) FROM tv_user").fetchone()[0]
    with psycopg.connect(dsn) as alterer, psycopg.connect(dsn, autocommit=True) as reader:
        alterer.execute("SELECT tview.alter('user', %s)", (USER_WITH_COMPANY,))
        reader.execute("SET lock_timeout = '1s'")
        assert reader.execute("SELECT count(*), count(data->'company') FROM tv_user").fetchone() == (count, 0)
        done = threading.Event()

        def write() -> None:
            with psycopg.connect(dsn, autocommit=True) as writer:
                writer.execute("UPDATE tb_company SET name = 'during the alter' WHERE pk_company = 2")
            done.set()

        thread = threading.Thread(target=write)
        thread.start()
        assert not done.wait(0.5), "a writer of a table the new definition reads did not wait"
        alterer.commit()
        thread.join(10)
        assert done.is_set()
    assert blog.execute("SELECT data->>'company' FROM tv_user WHERE pk_user = 1").fetchone()[0] == "during the alter"
    assert_oracle(blog)


WRITES = [
    "UPDATE tb_user SET name = 'n' || floor(random() * 100) WHERE pk_user = {user}",
    "UPDATE tb_user SET fk_company = {company} WHERE pk_user = {user}",
    "UPDATE tb_company SET name = 'c' || floor(random() * 100) WHERE pk_company = {company}",
    "UPDATE tb_post SET fk_user = {author}, title = 't' || {post} WHERE pk_post = {post}",
    "INSERT INTO tb_user VALUES ({new}, {company}, 'new', NULL) ON CONFLICT DO NOTHING",
    "DELETE FROM tb_post WHERE pk_post = {post}",
    "UPDATE tb_user SET email = NULL WHERE pk_user % 3 = {company} % 3",
]
DEFINITIONS = [
    USER_WITH_COMPANY,
    """SELECT u.pk_user, u.email, jsonb_build_object('name', u.name) AS data FROM tb_user u""",
    """SELECT u.pk_user, u.email, jsonb_build_object('name', u.name, 'posts',
           (SELECT count(*) FROM tb_post p WHERE p.fk_user = u.pk_user)) AS data, u.fk_company
       FROM tb_user u""",
]


@pytest.mark.parametrize("seed", range(3))
def test_random_writes_around_alters_keep_every_tview_exact(blog, seed):
    """Random writes, an alter, random writes, in and out of transactions: the oracle after each."""
    rng = random.Random(seed)
    for definition in rng.sample(DEFINITIONS, len(DEFINITIONS)) + [DEFINITIONS[0]]:
        for _ in range(8):
            statement = rng.choice(WRITES).format(user=rng.randint(1, 10), author=rng.randint(1, 8), company=rng.randint(1, 3),
                                                  post=rng.randint(1, 22), new=rng.randint(9, 12))
            blog.execute(statement)
            assert_oracle(blog)
        with blog.transaction():
            blog.execute("SELECT tview.alter('user', %s)", (definition,))
            assert_oracle(blog)                                      # inside the altering transaction
        assert_oracle(blog)
