"""Maintenance (ACCEPTANCE 9-29): every write keeps every TVIEW equal to its definition.

Each write is followed by the oracle (every TVIEW equals its definition, both ways). Exact
effects are checked with xmin: a tv row whose xmin changed was rewritten by the statement.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from engine_helpers import ORDER_BY_LINE, ORDER_TABLES, damage, prepared_database, set_engine
from oracle import assert_oracle, drift

pytestmark = pytest.mark.engine


# --------------------------------------------------------------------------- helpers

def create(conn: psycopg.Connection, name: str, definition: str) -> None:
    conn.execute("SELECT tview.create(%s, %s)", (name, definition))


def write(conn: psycopg.Connection, statement: str, params=None) -> None:
    """Run one write (autocommit: its own transaction), then the oracle over every TVIEW."""
    conn.execute(statement, params)
    assert_oracle(conn)


def xmins(conn: psycopg.Connection) -> dict[str, dict[int, str]]:
    """xmin of every row of every TVIEW: {name without tv_: {key: xmin}}."""
    out = {}
    for name, key in conn.execute(
            "SELECT name, key_column FROM tview.tviews WHERE schema_name = 'public' ORDER BY id").fetchall():
        out[name] = dict(conn.execute(sql.SQL("SELECT {}, xmin::text FROM {}").format(
            sql.Identifier(key), sql.Identifier("tv_" + name))).fetchall())
    return out


def rewritten(before: dict, after: dict) -> dict[str, set[int]]:
    """Keys written (updated, inserted or deleted) per TVIEW, TVIEWs with none left out."""
    out = {}
    for name in before.keys() | after.keys():
        b, a = before.get(name, {}), after.get(name, {})
        keys = {k for k in b.keys() | a.keys() if b.get(k) != a.get(k)}
        if keys:
            out[name] = keys
    return out


def effects(conn: psycopg.Connection, statement: str, params=None) -> dict[str, set[int]]:
    """Run one write, check the oracle, return the tv rows it rewrote."""
    before = xmins(conn)
    conn.execute(statement, params)
    after = xmins(conn)
    assert_oracle(conn)
    return rewritten(before, after)


def doc(conn: psycopg.Connection, tv: str, key: int):
    """data of one tv row (None when the row is absent)."""
    name = tv.removeprefix("tv_")
    key_column = conn.execute("SELECT key_column FROM tview.tviews WHERE name = %s", (name,)).fetchone()[0]
    row = conn.execute(sql.SQL("SELECT data FROM {} WHERE {} = %s").format(
        sql.Identifier("tv_" + name), sql.Identifier(key_column)), (key,)).fetchone()
    return None if row is None else row[0]


def keys(conn: psycopg.Connection, tv: str) -> set[int]:
    name = tv.removeprefix("tv_")
    key_column = conn.execute("SELECT key_column FROM tview.tviews WHERE name = %s", (name,)).fetchone()[0]
    return {r[0] for r in conn.execute(sql.SQL("SELECT {} FROM {}").format(
        sql.Identifier(key_column), sql.Identifier("tv_" + name)))}


def lineage(conn: psycopg.Connection, tview: str, source: str) -> str:
    row = conn.execute("SELECT lineage FROM tview.graph WHERE tview = %s AND source = %s",
                       (f"public.tv_{tview}", source)).fetchone()
    assert row is not None, f"tview.graph has no edge tv_{tview} <- {source}"
    return row[0]


# --------------------------------------------------------------------------- the blog
#
# company(0) -> user(1) -> comment(2) -> post(3) -> user_posts(4); user_stats(0) groups.
#   companies: 1 acme, 2 globex, 3 initech
#   users:     1 ann(c1), 2 bob(c1), 3 cid(c2), 4 dan(c3), 5 eve(c2; no post, no comment)
#   posts:     1 ann 'hello', 2 ann 'tips', 3 bob, 4 cid (no category), 5 dan
#   comments:  1 p1 by bob, 2 p1 by cid, 3 p1 by dan, 4 p3 by ann, 5 p4 by dan, 6 p5 by dan

BLOG_SCHEMA = """
CREATE TABLE tb_company (pk_company int PRIMARY KEY, name text);
CREATE TABLE tb_user (pk_user int PRIMARY KEY, fk_company int, name text, email text);
CREATE TABLE tb_category (pk_category int PRIMARY KEY, label text);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int, fk_category int, title text);
CREATE TABLE tb_comment (pk_comment int PRIMARY KEY, fk_post int, fk_user int, body text);
INSERT INTO tb_company VALUES (1, 'acme'), (2, 'globex'), (3, 'initech');
INSERT INTO tb_user VALUES (1, 1, 'ann', 'ann@x'), (2, 1, 'bob', 'bob@x'), (3, 2, 'cid', NULL),
                           (4, 3, 'dan', 'dan@x'), (5, 2, 'eve', 'eve@x');
INSERT INTO tb_category VALUES (1, 'news'), (2, 'howto');
INSERT INTO tb_post VALUES (1, 1, 1, 'hello'), (2, 1, 2, 'tips'), (3, 2, 1, 'bob here'),
                           (4, 3, NULL, 'cid post'), (5, 4, 2, 'dan post');
INSERT INTO tb_comment VALUES (1, 1, 2, 'nice'), (2, 1, 3, 'agree'), (3, 1, 4, 'meh'),
                              (4, 3, 1, 'hi bob'), (5, 4, 4, 'ok'), (6, 5, 4, 'self');
"""

BLOG_TVIEWS = [
    ("company", """
        SELECT c.pk_company, jsonb_build_object('name', c.name) AS data FROM tb_company c"""),
    ("user", """
        SELECT u.pk_user, u.fk_company,
               jsonb_build_object('pk', u.pk_user, 'name', u.name, 'email', u.email, 'company', c.data) AS data
        FROM tb_user u JOIN tv_company c ON c.pk_company = u.fk_company"""),
    ("user_stats", """
        SELECT u.pk_user,
               jsonb_build_object('name', u.name, 'posts', count(p.pk_post),
                                  'comments', (SELECT count(*) FROM tb_comment c WHERE c.fk_user = u.pk_user)) AS data
        FROM tb_user u LEFT JOIN tb_post p ON p.fk_user = u.pk_user
        GROUP BY u.pk_user"""),
    ("comment", """
        SELECT c.pk_comment, c.fk_post, c.fk_user,
               jsonb_build_object('pk', c.pk_comment, 'body', c.body, 'author', u.data) AS data
        FROM tb_comment c JOIN tv_user u ON u.pk_user = c.fk_user"""),
    ("post", """
        SELECT p.pk_post, p.fk_user, p.fk_category,
               jsonb_build_object(
                   'pk', p.pk_post, 'title', p.title, 'author', u.data, 'category', cat.label,
                   'comments', coalesce((SELECT jsonb_agg(c.data ORDER BY c.pk_comment)
                                         FROM tv_comment c WHERE c.fk_post = p.pk_post), '[]'::jsonb)) AS data
        FROM tb_post p
        JOIN tv_user u ON u.pk_user = p.fk_user
        LEFT JOIN tb_category cat ON cat.pk_category = p.fk_category"""),
    ("user_posts", """
        SELECT u.pk_user,
               jsonb_build_object(
                   'name', u.name,
                   'posts', coalesce((SELECT jsonb_agg(p.data ORDER BY p.pk_post)
                                      FROM tv_post p WHERE p.fk_user = u.pk_user), '[]'::jsonb)) AS data
        FROM tb_user u"""),
]


def build_blog(db):
    """The blog schema and its six TVIEWs."""
    db.execute(BLOG_SCHEMA)
    for name, definition in BLOG_TVIEWS:
        create(db, name, definition)
    assert keys(db, "post") == {1, 2, 3, 4, 5}
    assert_oracle(db)


blog = prepared_database(build_blog, name="blog")


# Every write kind: each statement is followed by the oracle over all six TVIEWs.
WRITES = {
    "insert_company": ["INSERT INTO tb_company VALUES (4, 'umbrella')",
                       "INSERT INTO tb_user VALUES (6, 4, 'fay', NULL)"],
    "insert_user": ["INSERT INTO tb_user VALUES (6, 3, 'fay', 'fay@x')"],
    "insert_post": ["INSERT INTO tb_post VALUES (6, 5, 1, 'eve writes')"],
    "insert_comment": ["INSERT INTO tb_comment VALUES (7, 2, 5, 'eve says')",
                       "INSERT INTO tb_comment VALUES (0, 1, 5, 'sorts first')"],
    "insert_before_parent": ["INSERT INTO tb_post VALUES (7, 9, 1, 'orphan')",
                             "INSERT INTO tb_comment VALUES (8, 7, 9, 'orphan comment')",
                             "INSERT INTO tb_user VALUES (9, 1, 'late', NULL)"],
    "update_company": ["UPDATE tb_company SET name = 'GLOBEX' WHERE pk_company = 2"],
    "update_user_columns": ["UPDATE tb_user SET name = 'Ann', email = NULL WHERE pk_user = 1",
                            "UPDATE tb_user SET email = 'cid@x' WHERE pk_user = 3"],
    "update_category": ["UPDATE tb_category SET label = 'breaking' WHERE pk_category = 1"],
    "update_post": ["UPDATE tb_post SET title = 'hello, world' WHERE pk_post = 1"],
    "update_comment": ["UPDATE tb_comment SET body = NULL WHERE pk_comment = 2"],
    "delete_company": ["DELETE FROM tb_company WHERE pk_company = 1"],
    "delete_user": ["DELETE FROM tb_user WHERE pk_user = 4"],
    "delete_post": ["DELETE FROM tb_post WHERE pk_post = 1"],
    "delete_comment": ["DELETE FROM tb_comment WHERE pk_comment = 2"],
    "delete_category": ["DELETE FROM tb_category WHERE pk_category = 2"],
    "truncate_comment": ["TRUNCATE tb_comment"],
    "truncate_post": ["TRUNCATE tb_post"],
    "truncate_user": ["TRUNCATE tb_user"],
    "truncate_company": ["TRUNCATE tb_company"],
    "truncate_category": ["TRUNCATE tb_category"],
    "truncate_several": ["TRUNCATE tb_comment, tb_post, tb_category"],
    "truncate_then_refill": ["TRUNCATE tb_comment",
                             "INSERT INTO tb_comment VALUES (1, 2, 1, 'again'), (2, 2, 2, 'and again')"],
    "multi_insert": ["INSERT INTO tb_comment SELECT 100 + g, 1 + g % 5, 1 + g % 5, 'bulk ' || g "
                     "FROM generate_series(1, 40) g"],
    "multi_update": ["UPDATE tb_comment SET body = upper(body)",
                     "UPDATE tb_user SET name = name || '!' WHERE pk_user IN (1, 3, 4)"],
    "multi_delete": ["DELETE FROM tb_comment WHERE pk_comment % 2 = 0"],
    "multi_swap_companies": ["UPDATE tb_user SET fk_company = CASE fk_company WHEN 1 THEN 2 WHEN 2 THEN 1 "
                             "ELSE fk_company END"],
    "move_comment": ["UPDATE tb_comment SET fk_post = 3 WHERE pk_comment = 1"],
    "move_comment_author": ["UPDATE tb_comment SET fk_user = 5 WHERE pk_comment = 1"],
    "move_post": ["UPDATE tb_post SET fk_user = 3 WHERE pk_post = 1"],
    "move_user": ["UPDATE tb_user SET fk_company = 3 WHERE pk_user = 1"],
    "move_all_comments": ["UPDATE tb_comment SET fk_post = 5"],
    "move_to_missing_parent": ["UPDATE tb_post SET fk_user = 99 WHERE pk_post = 1",
                               "UPDATE tb_post SET fk_user = 2 WHERE pk_post = 1"],
    "update_key_post": ["UPDATE tb_post SET pk_post = 100 WHERE pk_post = 1",
                        "UPDATE tb_comment SET fk_post = 100 WHERE fk_post = 1"],
    "update_key_user": ["UPDATE tb_user SET pk_user = 100 WHERE pk_user = 1",
                        "UPDATE tb_post SET fk_user = 100 WHERE fk_user = 1"],
    "update_key_comment": ["UPDATE tb_comment SET pk_comment = 100 WHERE pk_comment = 1"],
    "update_key_company": ["UPDATE tb_company SET pk_company = pk_company + 10"],
    "update_key_all_posts": ["UPDATE tb_post SET pk_post = pk_post + 1000"],
    "update_from_join": ["UPDATE tb_post p SET title = p.title || ' by ' || u.name FROM tb_user u "
                         "WHERE u.pk_user = p.fk_user"],
    "upsert": ["INSERT INTO tb_user VALUES (1, 1, 'ANN', 'ann@x'), (7, 2, 'gus', NULL) "
               "ON CONFLICT (pk_user) DO UPDATE SET name = EXCLUDED.name"],
    "merge": ["MERGE INTO tb_comment t USING (VALUES (1, 'merged'), (3, NULL), (50, 'new')) s(k, b) "
              "ON t.pk_comment = s.k "
              "WHEN MATCHED AND s.b IS NULL THEN DELETE "
              "WHEN MATCHED THEN UPDATE SET body = s.b "
              "WHEN NOT MATCHED THEN INSERT VALUES (s.k, 2, 3, s.b)"],
    "cte_two_tables": ["WITH p AS (INSERT INTO tb_post VALUES (7, 5, 1, 'cte post') RETURNING pk_post) "
                       "INSERT INTO tb_comment SELECT 60, pk_post, 1, 'first!' FROM p"],
    "cte_two_updates_same_table": ["WITH a AS (UPDATE tb_user SET name = 'A' WHERE pk_user = 1 RETURNING 1) "
                                   "UPDATE tb_user SET name = 'B' WHERE pk_user = 2"],
    "move_everything_at_once": ["UPDATE tb_comment SET fk_post = fk_post % 5 + 1, fk_user = fk_user % 5 + 1, "
                                "body = body || '*'"],
    "null_foreign_keys": ["UPDATE tb_post SET fk_user = NULL WHERE pk_post = 1",
                          "UPDATE tb_comment SET fk_post = NULL, fk_user = NULL WHERE pk_comment = 4",
                          "UPDATE tb_post SET fk_user = 5 WHERE pk_post = 1",
                          "UPDATE tb_comment SET fk_post = 1, fk_user = 5 WHERE pk_comment = 4"],
    "swap_company_keys": ["ALTER TABLE tb_company DROP CONSTRAINT tb_company_pkey",
                          "UPDATE tb_company SET pk_company = 3 - pk_company WHERE pk_company IN (1, 2)"],
    "cte_delete_insert_same_table": ["WITH d AS (DELETE FROM tb_comment WHERE fk_post = 1 RETURNING *) "
                                     "INSERT INTO tb_comment SELECT pk_comment + 500, 2, fk_user, body FROM d"],
}


def snapshot(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every row of every TVIEW as text."""
    return {name: [r[0] for r in conn.execute(sql.SQL("SELECT t::text FROM {} t ORDER BY 1").format(
        sql.Identifier("tv_" + name)))] for name, _ in BLOG_TVIEWS}


@pytest.mark.parametrize("statements", WRITES.values(), ids=WRITES.keys())
def test_every_write_kind_keeps_every_tview_exact(blog, statements):
    before = snapshot(blog)
    for statement in statements:
        write(blog, statement)
    # every case changes something visible, so the oracle did not compare stale with stale
    assert snapshot(blog) != before


# --------------------------------------------------------------------------- exact effects (blog)

def test_one_row_update_rewrites_exactly_the_dependent_rows(blog):  # 9, 13
    # ann authored posts 1 and 2 and commented on post 3 (comment 4)
    assert effects(blog, "UPDATE tb_user SET name = 'Ann' WHERE pk_user = 1") == {
        "user": {1}, "user_stats": {1}, "comment": {4}, "post": {1, 2, 3}, "user_posts": {1, 2}}
    assert doc(blog, "post", 1)["author"]["name"] == "Ann"
    assert doc(blog, "post", 2)["author"]["name"] == "Ann"
    assert doc(blog, "post", 3)["comments"][0]["author"]["name"] == "Ann"
    assert doc(blog, "post", 5)["author"]["name"] == "dan"
    # a comment edit: the comment, its post, the post's owner's list
    assert effects(blog, "UPDATE tb_comment SET body = 'meh!' WHERE pk_comment = 3") == {
        "comment": {3}, "post": {1}, "user_posts": {1}}


def test_insert_update_multi_column_and_null(blog):  # 10
    assert effects(blog, "INSERT INTO tb_user VALUES (6, 3, 'fay', 'fay@x')") == {
        "user": {6}, "user_stats": {6}, "user_posts": {6}}
    assert doc(blog, "user", 6) == {"pk": 6, "name": "fay", "email": "fay@x", "company": {"name": "initech"}}
    assert doc(blog, "user_stats", 6) == {"name": "fay", "posts": 0, "comments": 0}
    assert doc(blog, "user_posts", 6) == {"name": "fay", "posts": []}
    write(blog, "UPDATE tb_user SET name = 'Fay', email = NULL, fk_company = 1 WHERE pk_user = 6")
    user = doc(blog, "user", 6)
    assert user == {"pk": 6, "name": "Fay", "email": None, "company": {"name": "acme"}}
    assert "email" in user      # SQL NULL became JSON null, the key is kept
    assert blog.execute("SELECT fk_company FROM tv_user WHERE pk_user = 6").fetchone()[0] == 1
    write(blog, "UPDATE tb_post SET fk_category = NULL, title = NULL WHERE pk_post = 1")
    post = doc(blog, "post", 1)
    assert post["title"] is None and post["category"] is None and "title" in post
    assert blog.execute("SELECT fk_category FROM tv_post WHERE pk_post = 1").fetchone()[0] is None


def test_delete_removes_the_tv_row(blog):  # 11
    assert effects(blog, "DELETE FROM tb_comment WHERE pk_comment = 5") == {
        "comment": {5}, "post": {4}, "user_posts": {3}, "user_stats": {4}}
    assert 5 not in keys(blog, "comment")
    assert doc(blog, "post", 4)["comments"] == []
    write(blog, "DELETE FROM tb_user WHERE pk_user = 5")
    for name in ("user", "user_stats", "user_posts"):
        assert 5 not in keys(blog, name)
    write(blog, "DELETE FROM tb_company WHERE pk_company = 3")     # dan's company: dan, his post and comments go
    assert 4 not in keys(blog, "user")
    assert 5 not in keys(blog, "post")
    assert keys(blog, "comment") == {1, 2, 4}


def test_post_edit_does_not_rewrite_the_user_row(blog):  # 14
    changed = effects(blog, "UPDATE tb_post SET title = 'hello again' WHERE pk_post = 1")
    # user_stats aggregates posts (a count that did not change): recomputed, not rewritten
    assert changed == {"post": {1}, "user_posts": {1}}
    assert doc(blog, "user_posts", 1)["posts"][0]["title"] == "hello again"


def test_moving_a_post_to_another_user(blog):  # 15
    assert effects(blog, "UPDATE tb_post SET fk_user = 5 WHERE pk_post = 1") == {
        "post": {1}, "user_stats": {1, 5}, "user_posts": {1, 5}}
    assert blog.execute("SELECT fk_user FROM tv_post WHERE pk_post = 1").fetchone()[0] == 5
    assert doc(blog, "post", 1)["author"]["name"] == "eve"
    assert doc(blog, "user_stats", 1)["posts"] == 1
    assert doc(blog, "user_stats", 5)["posts"] == 1
    assert [p["pk"] for p in doc(blog, "user_posts", 1)["posts"]] == [2]
    assert [p["pk"] for p in doc(blog, "user_posts", 5)["posts"]] == [1]


def test_deleting_a_post_updates_its_users_aggregates(blog):  # 16
    assert effects(blog, "DELETE FROM tb_post WHERE pk_post = 1") == {
        "post": {1}, "user_stats": {1}, "user_posts": {1}}
    assert 1 in keys(blog, "user")
    assert doc(blog, "user_stats", 1)["posts"] == 1
    assert [p["pk"] for p in doc(blog, "user_posts", 1)["posts"]] == [2]
    write(blog, "DELETE FROM tb_post WHERE pk_post = 2")
    assert doc(blog, "user_stats", 1)["posts"] == 0
    assert doc(blog, "user_posts", 1)["posts"] == []


def test_company_rename_reaches_users_and_their_posts(blog):  # 17
    # globex: cid (post 4, comment 2 on post 1) and eve
    assert effects(blog, "UPDATE tb_company SET name = 'Globex Corp' WHERE pk_company = 2") == {
        "company": {2}, "user": {3, 5}, "comment": {2}, "post": {1, 4}, "user_posts": {1, 3}}
    assert doc(blog, "user", 3)["company"]["name"] == "Globex Corp"
    assert doc(blog, "post", 4)["author"]["company"]["name"] == "Globex Corp"
    assert doc(blog, "post", 1)["comments"][1]["author"]["company"]["name"] == "Globex Corp"
    assert doc(blog, "user_posts", 3)["posts"][0]["author"]["company"]["name"] == "Globex Corp"
    assert doc(blog, "post", 3)["author"]["company"]["name"] == "acme"


def test_moving_a_user_to_another_company(blog):  # 18
    assert effects(blog, "UPDATE tb_user SET fk_company = 3 WHERE pk_user = 1") == {
        "user": {1}, "comment": {4}, "post": {1, 2, 3}, "user_posts": {1, 2}}
    assert blog.execute("SELECT fk_company FROM tv_user WHERE pk_user = 1").fetchone()[0] == 3
    for post in (1, 2):
        assert doc(blog, "post", post)["author"]["company"]["name"] == "initech"
    assert doc(blog, "post", 3)["comments"][0]["author"]["company"]["name"] == "initech"
    # and the new company's rename now reaches ann, the old one's no longer does
    assert effects(blog, "UPDATE tb_company SET name = 'acme2' WHERE pk_company = 1")["user"] == {2}
    write(blog, "UPDATE tb_company SET name = 'Initech' WHERE pk_company = 3")
    assert doc(blog, "post", 2)["author"]["company"]["name"] == "Initech"


def test_update_that_changes_nothing_rewrites_no_row(blog):  # 29
    for statement in ("UPDATE tb_user SET name = name",
                      "UPDATE tb_company SET name = name WHERE pk_company = 1",
                      "UPDATE tb_post SET fk_user = fk_user, title = title",
                      "UPDATE tb_comment SET body = body WHERE pk_comment = 1",
                      "UPDATE tb_category SET label = label",
                      "UPDATE tb_comment SET fk_post = fk_post",
                      "DELETE FROM tb_comment WHERE pk_comment = 999",
                      "INSERT INTO tb_category VALUES (3, 'unused')"):
        assert effects(blog, statement) == {}, statement


def test_truncate_empties_and_updates_dependents(blog):  # 27
    assert len(doc(blog, "post", 1)["comments"]) == 3
    write(blog, "TRUNCATE tb_comment")
    assert keys(blog, "comment") == set()
    assert all(doc(blog, "post", p)["comments"] == [] for p in range(1, 6))
    assert doc(blog, "user_stats", 4)["comments"] == 0
    write(blog, "TRUNCATE tb_category")
    assert all(doc(blog, "post", p)["category"] is None for p in range(1, 6))
    write(blog, "TRUNCATE tb_post")
    assert keys(blog, "post") == set()
    assert doc(blog, "user_stats", 1)["posts"] == 0
    assert doc(blog, "user_posts", 1)["posts"] == []
    write(blog, "INSERT INTO tb_post VALUES (1, 2, NULL, 'back')")
    assert doc(blog, "user_posts", 2)["posts"][0]["title"] == "back"
    write(blog, "TRUNCATE tb_company")
    assert keys(blog, "user") == set() and keys(blog, "post") == set()
    assert keys(blog, "user_stats") == {1, 2, 3, 4, 5}


# --------------------------------------------------------------------------- arrays of children

ARRAY_SCHEMA = """
CREATE TABLE tb_post (pk_post int PRIMARY KEY, title text);
CREATE TABLE tb_comment (pk_comment int PRIMARY KEY, fk_post int, body text);
INSERT INTO tb_post VALUES (1, 'one'), (2, 'two');
SELECT tview.create('comment', $$SELECT c.pk_comment, c.fk_post,
                                        jsonb_build_object('pk', c.pk_comment, 'body', c.body) AS data
                                 FROM tb_comment c$$);
"""

ARRAY_POST = """
SELECT p.pk_post,
       jsonb_build_object('title', p.title,
                          'comments', coalesce((SELECT jsonb_agg(c.data ORDER BY c.pk_comment)
                                                FROM tv_comment c WHERE c.fk_post = p.pk_post), '[]'::jsonb)) AS data
FROM tb_post p
"""


@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("patching", [True, False], ids=["patched", "recomputed"])
def test_array_sequence_empty_one_two_and_back(db, patching, descending):  # 20
    db.execute(ARRAY_SCHEMA)
    create(db, "post", ARRAY_POST.replace("ORDER BY c.pk_comment", "ORDER BY c.pk_comment DESC")
           if descending else ARRAY_POST)
    db.execute("SELECT tview.set_patching('post', %s)", (patching,))

    def pks() -> list[int]:
        return [c["pk"] for c in doc(db, "post", 1)["comments"]]

    def step(statement: str, expected: list[int]) -> None:
        changed = effects(db, statement)
        assert pks() == (expected[::-1] if descending else expected), statement
        assert 2 not in changed.get("post", set()), f"post 2 rewritten by {statement}"

    assert pks() == []
    step("INSERT INTO tb_comment VALUES (20, 1, 'b')", [20])
    step("INSERT INTO tb_comment VALUES (10, 1, 'a')", [10, 20])          # ascending: goes first
    step("DELETE FROM tb_comment WHERE pk_comment = 10", [20])           # ascending: delete the first
    step("INSERT INTO tb_comment VALUES (30, 1, 'c')", [20, 30])
    step("DELETE FROM tb_comment WHERE pk_comment = 30", [20])           # ascending: delete the last
    step("DELETE FROM tb_comment WHERE pk_comment = 20", [])
    assert doc(db, "post", 1)["comments"] == []
    step("INSERT INTO tb_comment VALUES (5, 1, 'x'), (7, 1, 'y'), (6, 1, 'z')", [5, 6, 7])
    step("DELETE FROM tb_comment WHERE pk_comment = 6", [5, 7])          # a middle one
    assert doc(db, "post", 2)["comments"] == []


def test_editing_one_child_changes_only_its_element(db):  # 21
    db.execute(ARRAY_SCHEMA)
    create(db, "post", ARRAY_POST)
    write(db, "INSERT INTO tb_comment VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 1, 'c'), (4, 2, 'd')")
    before = doc(db, "post", 1)["comments"]
    assert effects(db, "UPDATE tb_comment SET body = 'B' WHERE pk_comment = 2") == {"comment": {2}, "post": {1}}
    after = doc(db, "post", 1)["comments"]
    assert len(after) == 3
    assert after[0] == before[0] and after[2] == before[2]
    assert after[1] == {"pk": 2, "body": "B"}
    assert doc(db, "post", 1)["title"] == "one"


def test_parent_with_fifty_children_and_parent_with_three(db):  # 22
    db.execute(ARRAY_SCHEMA)
    create(db, "post", ARRAY_POST)
    create(db, "post_plain", ARRAY_POST)        # same definition, never patched
    db.execute("SELECT tview.set_patching('post_plain', false)")
    write(db, "INSERT INTO tb_comment SELECT 2 * g, 1, 'c' || g FROM generate_series(1, 50) g")
    write(db, "INSERT INTO tb_comment VALUES (1001, 2, 'x'), (1002, 2, 'y'), (1003, 2, 'z')")

    def check() -> None:
        patched = dict(db.execute("SELECT pk_post, data FROM tv_post").fetchall())
        plain = dict(db.execute("SELECT pk_post, data FROM tv_post_plain").fetchall())
        assert patched == plain
        for post, data in patched.items():
            expected = [r[0] for r in db.execute(
                "SELECT pk_comment FROM tb_comment WHERE fk_post = %s ORDER BY pk_comment", (post,))]
            assert [c["pk"] for c in data["comments"]] == expected

    check()
    assert len(doc(db, "post", 1)["comments"]) == 50
    for statement in (
            "UPDATE tb_comment SET body = 'single' WHERE pk_comment = 50",          # single key
            "UPDATE tb_comment SET body = body || '+'",                             # all 53, both parents
            "INSERT INTO tb_comment VALUES (51, 1, 'middle')",                      # into the middle
            "INSERT INTO tb_comment VALUES (0, 1, 'first'), (999, 2, 'before x'), (2000, 2, 'last')",
            "UPDATE tb_comment SET fk_post = 2 WHERE pk_comment = 26",              # move one
            "UPDATE tb_comment SET fk_post = 3 - fk_post WHERE pk_comment IN (2, 1001)",  # swap two
            "DELETE FROM tb_comment WHERE pk_comment % 4 = 0",                      # many, both parents
            "UPDATE tb_post SET title = 'ONE' WHERE pk_post = 1"):
        write(db, statement)
        check()
    # a whole recomputation finds nothing left to write
    assert db.execute("SELECT tview.refresh('post')").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM tview.verify('post')").fetchone()[0] == 0


def test_nested_field_inside_array_elements_follows_user_rename(db):  # 23
    db.execute("""
        CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text);
        CREATE TABLE tb_post (pk_post int PRIMARY KEY, title text);
        CREATE TABLE tb_comment (pk_comment int PRIMARY KEY, fk_post int, fk_user int, body text);
        INSERT INTO tb_user VALUES (1, 'ann'), (2, 'bob'), (3, 'cid');
        INSERT INTO tb_post VALUES (1, 'p1'), (2, 'p2'), (3, 'p3'), (4, 'p4');
        INSERT INTO tb_comment VALUES (1, 1, 1, 'a'), (2, 1, 2, 'b'), (3, 2, 1, 'c'), (4, 3, 2, 'd'),
                                      (5, 3, 2, 'e'), (6, 4, 3, 'f');
    """)
    create(db, "user", "SELECT u.pk_user, jsonb_build_object('name', u.name) AS data FROM tb_user u")
    create(db, "comment", """
        SELECT c.pk_comment, c.fk_post, c.fk_user,
               jsonb_build_object('pk', c.pk_comment, 'body', c.body, 'author', u.data) AS data
        FROM tb_comment c JOIN tv_user u ON u.pk_user = c.fk_user""")
    create(db, "post", ARRAY_POST)
    assert effects(db, "UPDATE tb_user SET name = 'Bob' WHERE pk_user = 2") == {
        "user": {2}, "comment": {2, 4, 5}, "post": {1, 3}}
    names = {(r[0], r[1]): r[2] for r in db.execute("""
        SELECT p.pk_post, (c ->> 'pk')::int, c #>> '{author,name}'
        FROM tv_post p, jsonb_array_elements(p.data -> 'comments') c""")}
    assert names == {(1, 1): "ann", (1, 2): "Bob", (2, 3): "ann", (3, 4): "Bob", (3, 5): "Bob", (4, 6): "cid"}
    write(db, "UPDATE tb_comment SET fk_user = 2 WHERE pk_comment = 6")
    write(db, "UPDATE tb_user SET name = 'BOB' WHERE pk_user = 2")
    assert doc(db, "post", 4)["comments"][0]["author"]["name"] == "BOB"
    write(db, "DELETE FROM tb_user WHERE pk_user = 2")
    assert [c["pk"] for c in doc(db, "post", 3)["comments"]] == []


def test_price_change_reaches_every_order_line(db):  # 24
    db.execute("""
        CREATE TABLE tb_product (pk_product int PRIMARY KEY, name text, price numeric(10, 2));
        CREATE TABLE tb_order (pk_order int PRIMARY KEY, customer text);
        CREATE TABLE tb_order_line (pk_order_line int PRIMARY KEY, fk_order int, fk_product int, qty int);
        INSERT INTO tb_product VALUES (1, 'pen', 1.50), (2, 'ink', 4.00), (3, 'pad', 2.25);
        INSERT INTO tb_order VALUES (1, 'x'), (2, 'y'), (3, 'z'), (4, 'w');
        INSERT INTO tb_order_line VALUES (1, 1, 1, 2), (2, 1, 2, 1), (3, 2, 1, 10), (4, 2, 1, 1),
                                         (5, 3, 3, 4), (6, 4, 1, 3), (7, 4, 3, 1);
    """)
    create(db, "product", "SELECT p.pk_product, jsonb_build_object('name', p.name, 'price', p.price) AS data "
                          "FROM tb_product p")
    create(db, "order_line", """
        SELECT l.pk_order_line, l.fk_order, l.fk_product,
               jsonb_build_object('pk', l.pk_order_line, 'qty', l.qty, 'product', pr.data,
                                  'amount', l.qty * bp.price) AS data
        FROM tb_order_line l
        JOIN tv_product pr ON pr.pk_product = l.fk_product
        JOIN tb_product bp ON bp.pk_product = l.fk_product""")
    create(db, "order", """
        SELECT o.pk_order,
               jsonb_build_object(
                   'customer', o.customer,
                   'lines', coalesce((SELECT jsonb_agg(l.data ORDER BY l.pk_order_line)
                                      FROM tv_order_line l WHERE l.fk_order = o.pk_order), '[]'::jsonb),
                   'total', (SELECT sum(l.qty * p.price) FROM tb_order_line l
                             JOIN tb_product p ON p.pk_product = l.fk_product
                             WHERE l.fk_order = o.pk_order)) AS data
        FROM tb_order o""")
    assert effects(db, "UPDATE tb_product SET price = 12.50 WHERE pk_product = 1") == {
        "product": {1}, "order_line": {1, 3, 4, 6}, "order": {1, 2, 4}}
    prices = db.execute("""
        SELECT (l -> 'product' ->> 'price')::numeric, (l ->> 'amount')::numeric, (l ->> 'qty')::int
        FROM tv_order o, jsonb_array_elements(o.data -> 'lines') l
        WHERE l -> 'product' ->> 'name' = 'pen'""").fetchall()
    assert len(prices) == 4
    assert all(price == 12.5 and amount == 12.5 * qty for price, amount, qty in prices)
    assert doc(db, "order", 2)["total"] == 137.5
    assert doc(db, "order", 3)["total"] == 9
    write(db, "UPDATE tb_order_line SET fk_product = 2 WHERE pk_order_line = 4")
    assert doc(db, "order", 2)["total"] == 129
    write(db, "UPDATE tb_product SET price = NULL, name = 'Pen' WHERE pk_product = 1")
    assert all(doc(db, "order_line", k)["product"] == {"name": "Pen", "price": None} for k in (1, 3, 6))


def test_inline_nested_objects_from_base_tables_follow_author_rename(db):  # 25
    db.execute("""
        CREATE TABLE tb_author (pk_author int PRIMARY KEY, name text);
        CREATE TABLE tb_book (pk_book int PRIMARY KEY, fk_author int, title text);
        CREATE TABLE tb_review (pk_review int PRIMARY KEY, fk_book int, stars int);
        INSERT INTO tb_author VALUES (1, 'austen'), (2, 'bronte');
        INSERT INTO tb_book VALUES (1, 1, 'emma'), (2, 1, 'persuasion'), (3, 2, 'jane eyre');
        INSERT INTO tb_review VALUES (1, 1, 5), (2, 2, 4), (3, 2, 3), (4, 3, 5), (5, 3, 2);
    """)
    create(db, "review", """
        SELECT r.pk_review, r.fk_book,
               jsonb_build_object('stars', r.stars,
                                  'book', jsonb_build_object('title', b.title,
                                                             'author', jsonb_build_object('name', a.name))) AS data
        FROM tb_review r
        JOIN tb_book b ON b.pk_book = r.fk_book
        JOIN tb_author a ON a.pk_author = b.fk_author""")
    assert effects(db, "UPDATE tb_author SET name = 'Austen' WHERE pk_author = 1") == {"review": {1, 2, 3}}
    assert [doc(db, "review", k)["book"]["author"]["name"] for k in range(1, 6)] == \
        ["Austen", "Austen", "Austen", "bronte", "bronte"]
    assert effects(db, "UPDATE tb_book SET fk_author = 2 WHERE pk_book = 2") == {"review": {2, 3}}
    assert effects(db, "UPDATE tb_author SET name = 'Bronte' WHERE pk_author = 2") == {"review": {2, 3, 4, 5}}
    assert doc(db, "review", 3)["book"] == {"title": "persuasion", "author": {"name": "Bronte"}}
    assert effects(db, "UPDATE tb_book SET title = 'Emma' WHERE pk_book = 1") == {"review": {1}}
    assert effects(db, "DELETE FROM tb_author WHERE pk_author = 2") == {"review": {2, 3, 4, 5}}
    assert keys(db, "review") == {1}
    write(db, "INSERT INTO tb_author VALUES (2, 'C. Bronte')")
    assert keys(db, "review") == {1, 2, 3, 4, 5}


# --------------------------------------------------------------------------- chains

def test_six_level_chain(db):  # 19
    for level in range(1, 7):
        parent = f", fk_l{level - 1} int" if level > 1 else ""
        db.execute(f"CREATE TABLE tb_l{level} (pk_l{level} int PRIMARY KEY{parent}, name text)")
        values = "(1, 'a1'), (2, 'a2')" if level == 1 else f"(1, 1, 'l{level}a'), (2, 2, 'l{level}b')"
        db.execute(f"INSERT INTO tb_l{level} VALUES {values}")
    create(db, "l1", "SELECT x.pk_l1, jsonb_build_object('name', x.name) AS data FROM tb_l1 x")
    for level in range(2, 7):
        up = level - 1
        create(db, f"l{level}", f"""
            SELECT x.pk_l{level}, x.fk_l{up}, jsonb_build_object('name', x.name, 'parent', p.data) AS data
            FROM tb_l{level} x JOIN tv_l{up} p ON p.pk_l{up} = x.fk_l{up}""")
    assert db.execute("SELECT array_agg(topo_level ORDER BY name) FROM tview.tviews").fetchone()[0] == \
        [0, 1, 2, 3, 4, 5]
    root_path = "{" + ",".join(["parent"] * 5) + ",name}"

    # an update at the root's base reaches level 6, on the dependent row only
    assert effects(db, "UPDATE tb_l1 SET name = 'A1' WHERE pk_l1 = 1") == {f"l{n}": {1} for n in range(1, 7)}
    assert db.execute("SELECT data #>> %s FROM tv_l6 WHERE pk_l6 = 1", (root_path,)).fetchone()[0] == "A1"
    assert db.execute("SELECT data #>> %s FROM tv_l6 WHERE pk_l6 = 2", (root_path,)).fetchone()[0] == "a2"

    # an update of level 2's own table reaches levels 3-6 only; level 1 untouched
    assert effects(db, "UPDATE tb_l2 SET name = 'L2A' WHERE pk_l2 = 1") == {f"l{n}": {1} for n in range(2, 7)}
    assert db.execute("SELECT data #>> '{parent,parent,parent,parent,name}' FROM tv_l6 WHERE pk_l6 = 1"
                      ).fetchone()[0] == "L2A"

    # re-parenting in the middle of the chain
    assert effects(db, "UPDATE tb_l3 SET fk_l2 = 2 WHERE pk_l3 = 1") == {f"l{n}": {1} for n in range(3, 7)}
    assert db.execute("SELECT data #>> %s FROM tv_l6 WHERE pk_l6 = 1", (root_path,)).fetchone()[0] == "a2"
    write(db, "UPDATE tb_l1 SET name = 'A2' WHERE pk_l1 = 2")
    assert {r[0] for r in db.execute("SELECT data #>> %s FROM tv_l6", (root_path,))} == {"A2"}
    write(db, "DELETE FROM tb_l1 WHERE pk_l1 = 2")     # every row from level 3 down hangs under it now
    assert keys(db, "l1") == keys(db, "l2") == {1}
    for level in range(3, 7):
        assert keys(db, f"l{level}") == set(), level


def test_helper_views_between_definition_and_tables(db):  # 26
    db.execute("""
        CREATE TABLE tb_author (pk_author int PRIMARY KEY, name text);
        CREATE TABLE tb_book (pk_book int PRIMARY KEY, fk_author int, title text);
        CREATE TABLE tb_sale (pk_sale int PRIMARY KEY, fk_book int, qty int);
        INSERT INTO tb_author VALUES (1, 'austen'), (2, 'bronte');
        INSERT INTO tb_book VALUES (1, 1, 'emma'), (2, 1, 'persuasion'), (3, 2, 'jane eyre');
        INSERT INTO tb_sale VALUES (1, 1, 3), (2, 1, 4), (3, 3, 1);
        CREATE VIEW book_info AS
            SELECT b.pk_book, b.fk_author, b.title, a.name AS author_name
            FROM tb_book b JOIN tb_author a ON a.pk_author = b.fk_author;
        CREATE VIEW book_sales AS SELECT s.fk_book, sum(s.qty) AS sold FROM tb_sale s GROUP BY s.fk_book;
        CREATE VIEW book_full AS
            SELECT i.pk_book, i.fk_author, i.title, i.author_name, coalesce(bs.sold, 0) AS sold
            FROM book_info i LEFT JOIN book_sales bs ON bs.fk_book = i.pk_book;
    """)
    create(db, "book_card", """
        SELECT f.pk_book, f.fk_author,
               jsonb_build_object('title', f.title, 'author', f.author_name, 'sold', f.sold) AS data
        FROM book_full f""")
    sources = {r[0] for r in db.execute("SELECT source FROM tview.graph WHERE tview = 'public.tv_book_card'")}
    assert {"tb_author", "tb_book", "tb_sale"} <= sources
    assert effects(db, "UPDATE tb_author SET name = 'Austen' WHERE pk_author = 1") == {"book_card": {1, 2}}
    assert doc(db, "book_card", 2) == {"title": "persuasion", "author": "Austen", "sold": 0}
    assert effects(db, "INSERT INTO tb_sale VALUES (4, 2, 5)") == {"book_card": {2}}
    assert doc(db, "book_card", 2)["sold"] == 5
    assert effects(db, "UPDATE tb_sale SET fk_book = 3 WHERE pk_sale = 1") == {"book_card": {1, 3}}
    assert [doc(db, "book_card", k)["sold"] for k in (1, 2, 3)] == [4, 5, 4]
    write(db, "UPDATE tb_sale SET qty = qty * 10")
    write(db, "DELETE FROM tb_sale WHERE pk_sale = 2")
    write(db, "UPDATE tb_book SET title = 'Emma', fk_author = 2 WHERE pk_book = 1")
    assert doc(db, "book_card", 1)["author"] == "bronte"
    write(db, "INSERT INTO tb_book VALUES (4, 2, 'shirley')")
    write(db, "DELETE FROM tb_author WHERE pk_author = 2")
    assert keys(db, "book_card") == {2}
    write(db, "TRUNCATE tb_sale")
    assert doc(db, "book_card", 2)["sold"] == 0


# --------------------------------------------------------------------------- lineage soundness

SOUND_SCHEMA = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int, title text);
CREATE TABLE tb_comment (pk_comment int PRIMARY KEY, fk_post int, fk_user int, body text);
-- ann authored 1 and 2, bob authored 3; cid only comments (on 1 and 3); dan does nothing
INSERT INTO tb_user VALUES (1, 'ann'), (2, 'bob'), (3, 'cid'), (4, 'dan');
INSERT INTO tb_post VALUES (1, 1, 'p1'), (2, 1, 'p2'), (3, 2, 'p3');
INSERT INTO tb_comment VALUES (1, 1, 3, 'c1'), (2, 1, 2, 'c2'), (3, 3, 3, 'c3'), (4, 2, 1, 'c4');
"""

SOUND_DEFINITIONS = {
    # users read twice: the post's author (join) and each comment's author (join in a subquery)
    "join_in_subquery": """
        SELECT p.pk_post, p.fk_user,
               jsonb_build_object(
                   'title', p.title,
                   'author', jsonb_build_object('pk', u.pk_user, 'name', u.name),
                   'comments', coalesce((
                       SELECT jsonb_agg(jsonb_build_object('pk', c.pk_comment, 'body', c.body,
                                                           'author', jsonb_build_object('name', cu.name))
                                        ORDER BY c.pk_comment)
                       FROM tb_comment c JOIN tb_user cu ON cu.pk_user = c.fk_user
                       WHERE c.fk_post = p.pk_post), '[]'::jsonb)) AS data
        FROM tb_post p JOIN tb_user u ON u.pk_user = p.fk_user""",
    # the comment's author in a scalar subquery nested inside the aggregate's subquery
    "scalar_subquery": """
        SELECT p.pk_post, p.fk_user,
               jsonb_build_object(
                   'title', p.title,
                   'author', jsonb_build_object('pk', u.pk_user, 'name', u.name),
                   'comments', coalesce((
                       SELECT jsonb_agg(jsonb_build_object(
                                  'pk', c.pk_comment, 'body', c.body,
                                  'author', (SELECT jsonb_build_object('name', cu.name)
                                             FROM tb_user cu WHERE cu.pk_user = c.fk_user))
                              ORDER BY c.pk_comment)
                       FROM tb_comment c WHERE c.fk_post = p.pk_post), '[]'::jsonb)) AS data
        FROM tb_post p JOIN tb_user u ON u.pk_user = p.fk_user""",
    # old-style joins in WHERE, the author itself from a scalar subquery
    "where_joins": """
        SELECT p.pk_post, p.fk_user,
               jsonb_build_object(
                   'title', p.title,
                   'author', (SELECT jsonb_build_object('pk', u.pk_user, 'name', u.name)
                              FROM tb_user u WHERE u.pk_user = p.fk_user),
                   'comments', coalesce((
                       SELECT jsonb_agg(jsonb_build_object('pk', c.pk_comment, 'body', c.body,
                                                           'author', jsonb_build_object('name', cu.name))
                                        ORDER BY c.pk_comment)
                       FROM tb_comment c, tb_user cu
                       WHERE cu.pk_user = c.fk_user AND c.fk_post = p.pk_post), '[]'::jsonb)) AS data
        FROM tb_post p""",
}


@pytest.mark.parametrize("definition", SOUND_DEFINITIONS.values(), ids=SOUND_DEFINITIONS.keys())
def test_lineage_covers_every_role_of_a_relation_read_twice(db, definition):
    db.execute(SOUND_SCHEMA)
    create(db, "post", definition)
    assert_oracle(db)
    rule = lineage(db, "post", "tb_user")
    assert rule == "full" or set(rule.split("+")) == {"fk", "path"}, rule

    def commenters(post: int) -> list:
        return [c["author"]["name"] if c["author"] else None for c in doc(db, "post", post)["comments"]]

    # cid only commented (posts 1 and 3): both must follow, post 2 must not be rewritten
    assert effects(db, "UPDATE tb_user SET name = 'Cid' WHERE pk_user = 3") == {"post": {1, 3}}
    assert commenters(1) == ["Cid", "bob"] and commenters(3) == ["Cid"]
    # ann authored 1 and 2 and commented on 2
    assert effects(db, "UPDATE tb_user SET name = 'Ann' WHERE pk_user = 1") == {"post": {1, 2}}
    assert doc(db, "post", 1)["author"]["name"] == "Ann" and commenters(2) == ["Ann"]
    # bob authored 3 and commented on 1
    assert effects(db, "UPDATE tb_user SET name = 'Bob' WHERE pk_user = 2") == {"post": {1, 3}}
    # dan is nowhere
    assert effects(db, "UPDATE tb_user SET name = 'Dan' WHERE pk_user = 4") == {}
    # moving a comment updates both posts
    assert effects(db, "UPDATE tb_comment SET fk_post = 2 WHERE pk_comment = 1") == {"post": {1, 2}}
    assert commenters(1) == ["Bob"] and commenters(2) == ["Cid", "Ann"]
    # changing a comment's author, then renaming the old and the new author
    assert effects(db, "UPDATE tb_comment SET fk_user = 4 WHERE pk_comment = 2") == {"post": {1}}
    assert effects(db, "UPDATE tb_user SET name = 'BOB' WHERE pk_user = 2") == {"post": {3}}
    assert effects(db, "UPDATE tb_user SET name = 'DAN' WHERE pk_user = 4") == {"post": {1}}
    assert commenters(1) == ["DAN"]
    # moving a post to another author
    assert effects(db, "UPDATE tb_post SET fk_user = 3 WHERE pk_post = 3") == {"post": {3}}
    assert effects(db, "UPDATE tb_user SET name = 'CID' WHERE pk_user = 3") == {"post": {2, 3}}
    assert doc(db, "post", 3)["author"]["name"] == "CID"
    # a user key change and a delete, several users at once, a truncate
    write(db, "UPDATE tb_user SET pk_user = 30 WHERE pk_user = 3")
    write(db, "UPDATE tb_comment SET fk_user = 30 WHERE fk_user = 3")
    write(db, "UPDATE tb_user SET name = upper(name) || '!'")
    write(db, "DELETE FROM tb_user WHERE pk_user = 1")
    write(db, "INSERT INTO tb_user VALUES (1, 'ann again'), (3, 'cid again')")
    write(db, "TRUNCATE tb_comment")
    assert all(doc(db, "post", p)["comments"] == [] for p in keys(db, "post"))


TRAP_SCHEMA = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int, title text, score int);
CREATE TABLE tb_comment (pk_comment int PRIMARY KEY, fk_post int, fk_user int, body text);
CREATE TABLE tb_settings (pk_settings int PRIMARY KEY, featured_post int, min_score int);
CREATE TABLE tb_level (pk_level int PRIMARY KEY, lo int, hi int, label text);
CREATE TABLE tb_ban (pk_ban int PRIMARY KEY, fk_user int);
INSERT INTO tb_user VALUES (1, 'ann'), (2, 'bob'), (3, 'cid');
INSERT INTO tb_post VALUES (1, 1, 'p1', 5), (2, 1, 'p2', 10), (3, 2, 'p3', 15);
INSERT INTO tb_comment VALUES (1, 1, 2, 'a'), (2, 1, 3, 'b'), (3, 2, 1, 'c'), (4, 3, 3, 'd'), (5, 3, 1, 'e');
INSERT INTO tb_settings VALUES (1, 1, 6);
INSERT INTO tb_level VALUES (1, 0, 9, 'low'), (2, 10, 19, 'mid');
"""

# Definitions where a row of a relation influences tv rows that no column equality names.
# (definition, relations whose lineage can only be `full`)
TRAPS = {
    "derived_table_with_limit": ("""
        SELECT p.pk_post, jsonb_build_object('recent', coalesce(jsonb_agg(r.pk_comment ORDER BY r.pk_comment)
                                                                FILTER (WHERE r.pk_comment IS NOT NULL), '[]')) AS data
        FROM tb_post p
        LEFT JOIN (SELECT c.pk_comment, c.fk_post FROM tb_comment c ORDER BY c.pk_comment DESC LIMIT 3) r
               ON r.fk_post = p.pk_post
        GROUP BY p.pk_post""", ()),
    "window_in_derived_table": ("""
        SELECT p.pk_post, jsonb_build_object('numbers', coalesce((
            SELECT jsonb_agg(w.rn ORDER BY w.rn)
            FROM (SELECT c.fk_post, row_number() OVER (ORDER BY c.pk_comment) AS rn FROM tb_comment c) w
            WHERE w.fk_post = p.pk_post), '[]')) AS data
        FROM tb_post p""", ()),
    "window_at_top": ("""
        SELECT p.pk_post, jsonb_build_object('rank', rank() OVER (PARTITION BY p.fk_user ORDER BY p.pk_post),
                                             'of', count(*) OVER (PARTITION BY p.fk_user)) AS data
        FROM tb_post p""", ()),
    "correlated_limit": ("""
        SELECT p.pk_post, jsonb_build_object('latest', coalesce((
            SELECT jsonb_agg(x.body ORDER BY x.pk_comment DESC)
            FROM (SELECT c.pk_comment, c.body FROM tb_comment c WHERE c.fk_post = p.pk_post
                  ORDER BY c.pk_comment DESC LIMIT 2) x), '[]')) AS data
        FROM tb_post p""", ()),
    "cross_join_settings": ("""
        SELECT p.pk_post, jsonb_build_object('featured', p.pk_post = s.featured_post,
                                             'visible', p.score >= s.min_score) AS data
        FROM tb_post p CROSS JOIN tb_settings s""", ("tb_settings",)),
    "uncorrelated_total": ("""
        SELECT u.pk_user, jsonb_build_object('mine', (SELECT count(*) FROM tb_post p WHERE p.fk_user = u.pk_user),
                                             'all', (SELECT count(*) FROM tb_post)) AS data
        FROM tb_user u""", ("tb_post",)),
    "range_join": ("""
        SELECT p.pk_post, jsonb_build_object('level', l.label) AS data
        FROM tb_post p LEFT JOIN tb_level l ON p.score BETWEEN l.lo AND l.hi""", ("tb_level",)),
    "equality_under_or": ("""
        SELECT p.pk_post, jsonb_build_object('related', (SELECT count(*) FROM tb_comment c
                                                         WHERE c.fk_post = p.pk_post OR c.fk_user = p.fk_user)) AS data
        FROM tb_post p""", ()),
    "cte": ("""
        WITH counts AS (SELECT c.fk_post, count(*) AS n FROM tb_comment c GROUP BY c.fk_post)
        SELECT p.pk_post, jsonb_build_object('n', coalesce(n.n, 0)) AS data
        FROM tb_post p LEFT JOIN counts n ON n.fk_post = p.pk_post""", ()),
    "not_exists_filter": ("""
        SELECT u.pk_user, jsonb_build_object('name', u.name) AS data
        FROM tb_user u WHERE NOT EXISTS (SELECT 1 FROM tb_ban b WHERE b.fk_user = u.pk_user)""", ()),
    "union_all": ("""
        SELECT p.pk_post, jsonb_build_object('kind', 'post', 'text', p.title) AS data FROM tb_post p
        UNION ALL
        SELECT c.pk_comment + 1000, jsonb_build_object('kind', 'comment', 'text', c.body) FROM tb_comment c""", ()),
    "distinct_on": ("""
        SELECT DISTINCT ON (c.fk_post) c.fk_post AS pk_post, jsonb_build_object('latest', c.body) AS data
        FROM tb_comment c ORDER BY c.fk_post, c.pk_comment DESC""", ()),
    "filter_by_global_max": ("""
        SELECT p.pk_post, jsonb_build_object('title', p.title) AS data
        FROM tb_post p WHERE p.score = (SELECT max(q.score) FROM tb_post q)""", ("tb_post",)),
    "lateral_aggregate": ("""
        SELECT p.pk_post, jsonb_build_object('n', x.n, 'first', x.f) AS data
        FROM tb_post p CROSS JOIN LATERAL (SELECT count(*) AS n, min(c.body) AS f
                                           FROM tb_comment c WHERE c.fk_post = p.pk_post) x""", ()),
    "self_join_siblings": ("""
        SELECT p.pk_post, jsonb_build_object('siblings', coalesce((
            SELECT jsonb_agg(s.title ORDER BY s.pk_post) FROM tb_post s
            WHERE s.fk_user = p.fk_user AND s.pk_post <> p.pk_post), '[]')) AS data
        FROM tb_post p""", ()),
    "grouped_derived_on_non_key": ("""
        SELECT p.pk_post, jsonb_build_object('author_comments', coalesce(cc.n, 0)) AS data
        FROM tb_post p
        LEFT JOIN (SELECT c.fk_user, count(*) AS n FROM tb_comment c GROUP BY c.fk_user) cc
               ON cc.fk_user = p.fk_user""", ()),
}

TRAP_WRITES = [
    "INSERT INTO tb_comment VALUES (0, 2, 1, 'oldest')",
    "INSERT INTO tb_comment VALUES (100, 3, 2, 'newest')",
    "INSERT INTO tb_post VALUES (0, 1, 'p0', 12)",
    "UPDATE tb_settings SET featured_post = 2, min_score = 3",
    "UPDATE tb_post SET score = 20 WHERE pk_post = 1",
    "UPDATE tb_level SET lo = 11 WHERE pk_level = 2",
    "INSERT INTO tb_ban VALUES (1, 2)",
    "UPDATE tb_post SET fk_user = 2 WHERE pk_post = 2",
    "DELETE FROM tb_comment WHERE pk_comment = 100",
    "UPDATE tb_comment SET fk_post = 1 WHERE pk_comment = 0",
    "UPDATE tb_comment SET fk_user = 3 WHERE pk_comment = 3",
    "DELETE FROM tb_post WHERE pk_post = 0",
    "UPDATE tb_user SET name = 'X' WHERE pk_user = 1",
    "DELETE FROM tb_ban",
    "UPDATE tb_comment SET pk_comment = pk_comment + 50",
    "TRUNCATE tb_comment",
    "TRUNCATE tb_settings",
    "INSERT INTO tb_settings VALUES (1, 3, 0)",
]


@pytest.mark.parametrize("case", TRAPS.values(), ids=TRAPS.keys())
def test_lineage_is_sound_where_no_equality_proves_it(db, case):
    definition, only_full = case
    db.execute(TRAP_SCHEMA)
    create(db, "trap", definition)
    assert_oracle(db)
    for source in only_full:
        assert lineage(db, "trap", source) == "full", source
    start = db.execute("SELECT array_agg(t::text ORDER BY 1) FROM tv_trap t").fetchone()[0]
    seen = set()
    for statement in TRAP_WRITES:
        write(db, statement)
        seen.add(tuple(db.execute("SELECT array_agg(t::text ORDER BY 1) FROM tv_trap t").fetchone()[0] or ()))
    assert seen - {tuple(start)}, "the writes never changed this TVIEW"


# --------------------------------------------------------------------------- aggregates

def test_group_by_aggregates_over_a_child_table(db):
    db.execute("""
        CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text);
        CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int, title text);
        INSERT INTO tb_user VALUES (1, 'ann'), (2, 'bob'), (3, 'cid');
        INSERT INTO tb_post VALUES (1, 1, 'a'), (2, 1, 'bb'), (3, 2, 'ccc');
    """)
    create(db, "user_stats", """
        SELECT u.pk_user,
               jsonb_build_object('name', u.name, 'posts', count(p.pk_post),
                                  'chars', coalesce(sum(length(p.title)), 0),
                                  'titles', coalesce(jsonb_agg(p.title ORDER BY p.pk_post)
                                                     FILTER (WHERE p.pk_post IS NOT NULL), '[]'::jsonb)) AS data
        FROM tb_user u LEFT JOIN tb_post p ON p.fk_user = u.pk_user
        GROUP BY u.pk_user""")
    # keyed by the child's grouped column: rows come and go with the children
    create(db, "author_counts", """
        SELECT p.fk_user AS pk_user, jsonb_build_object('posts', count(*)) AS data
        FROM tb_post p GROUP BY p.fk_user""")
    create(db, "prolific", """
        SELECT p.fk_user AS pk_user, jsonb_build_object('posts', count(*), 'last', max(p.pk_post)) AS data
        FROM tb_post p GROUP BY p.fk_user HAVING count(*) >= 2""")
    assert_oracle(db)

    def stats(key: int):
        return doc(db, "user_stats", key)

    assert stats(3) == {"name": "cid", "posts": 0, "chars": 0, "titles": []}
    write(db, "INSERT INTO tb_post VALUES (4, 3, 'dddd')")
    assert stats(3)["posts"] == 1 and doc(db, "author_counts", 3) == {"posts": 1}
    write(db, "UPDATE tb_post SET fk_user = 2 WHERE pk_post = 2")        # 1 loses, 2 gains
    assert stats(1)["titles"] == ["a"] and stats(2)["titles"] == ["bb", "ccc"]
    assert keys(db, "prolific") == {2}
    write(db, "UPDATE tb_post SET title = 'aaaaa' WHERE pk_post = 1")
    assert stats(1)["chars"] == 5
    write(db, "DELETE FROM tb_post WHERE pk_post = 1")                   # user 1 has none left
    assert stats(1)["posts"] == 0 and 1 not in keys(db, "author_counts")
    write(db, "INSERT INTO tb_post SELECT 10 + g, 3, repeat('x', g) FROM generate_series(1, 5) g")
    assert keys(db, "prolific") == {2, 3} and doc(db, "prolific", 3)["last"] == 15
    write(db, "UPDATE tb_post SET fk_user = 1")                          # everything to one user
    assert keys(db, "author_counts") == {1} and stats(1)["posts"] == 8 and stats(3)["posts"] == 0
    write(db, "UPDATE tb_post SET pk_post = pk_post + 100 WHERE pk_post < 12")
    write(db, "UPDATE tb_user SET name = 'Ann' WHERE pk_user = 1")
    write(db, "DELETE FROM tb_user WHERE pk_user = 1")                   # the child-keyed TVIEWs keep it
    assert 1 not in keys(db, "user_stats") and keys(db, "author_counts") == {1}
    write(db, "TRUNCATE tb_post")
    assert keys(db, "author_counts") == set() and keys(db, "prolific") == set()
    assert stats(2)["posts"] == 0


def test_foreign_key_cascades_are_maintained(db):
    db.execute("""
        CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text);
        CREATE TABLE tb_post (pk_post int PRIMARY KEY,
                              fk_user int REFERENCES tb_user ON DELETE CASCADE ON UPDATE CASCADE, title text);
        CREATE TABLE tb_comment (pk_comment int PRIMARY KEY,
                                 fk_post int REFERENCES tb_post ON DELETE CASCADE ON UPDATE CASCADE, body text);
        INSERT INTO tb_user VALUES (1, 'ann'), (2, 'bob');
        INSERT INTO tb_post VALUES (1, 1, 'p1'), (2, 1, 'p2'), (3, 2, 'p3');
        INSERT INTO tb_comment VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c'), (4, 3, 'd');
    """)
    create(db, "user", "SELECT u.pk_user, jsonb_build_object('name', u.name) AS data FROM tb_user u")
    create(db, "comment", "SELECT c.pk_comment, c.fk_post, jsonb_build_object('pk', c.pk_comment) AS data "
                          "FROM tb_comment c")
    create(db, "post", """
        SELECT p.pk_post, p.fk_user,
               jsonb_build_object('title', p.title, 'author', u.data,
                                  'comments', coalesce((SELECT jsonb_agg(c.data ORDER BY c.pk_comment)
                                                        FROM tv_comment c WHERE c.fk_post = p.pk_post),
                                                       '[]'::jsonb)) AS data
        FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user""")
    write(db, "UPDATE tb_post SET pk_post = 10 WHERE pk_post = 1")        # cascades to tb_comment.fk_post
    assert [c["pk"] for c in doc(db, "post", 10)["comments"]] == [1, 2]
    write(db, "UPDATE tb_user SET pk_user = 20 WHERE pk_user = 1")        # cascades to tb_post.fk_user
    assert keys(db, "post") == {10, 2, 3}
    write(db, "DELETE FROM tb_user WHERE pk_user = 20")                   # cascades to posts and comments
    assert keys(db, "post") == {3} and keys(db, "comment") == {4}
    write(db, "TRUNCATE tb_user CASCADE")                                 # truncates all three
    assert keys(db, "user") == keys(db, "post") == keys(db, "comment") == set()


# --------------------------------------------------------------------------- key shapes

def test_any_key_name_identity_and_bigserial_keys(db):  # 12
    db.execute("""
        CREATE TABLE tb_order_line (pk_order_line int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, sku text);
        CREATE TABLE inventory (pk_widget bigserial PRIMARY KEY, label text);
        SELECT setval('inventory_pk_widget_seq', 5000000000);
        CREATE TABLE tb_tiny (pk_tiny smallint PRIMARY KEY, v text);
    """)
    create(db, "order_line", "SELECT l.pk_order_line, jsonb_build_object('sku', l.sku) AS data FROM tb_order_line l")
    create(db, "widget", "SELECT w.pk_widget, jsonb_build_object('label', w.label) AS data FROM inventory w")
    create(db, "widget_card", "SELECT w.pk_widget, w.label, to_jsonb(w) AS data FROM inventory w")
    create(db, "tiny", "SELECT t.pk_tiny, jsonb_build_object('v', t.v) AS data FROM tb_tiny t")
    write(db, "INSERT INTO tb_order_line (sku) VALUES ('a'), ('b'), ('c')")
    write(db, "INSERT INTO inventory (label) VALUES ('x'), ('y')")
    write(db, "INSERT INTO tb_tiny VALUES (1, 'one'), (32767, 'max')")
    assert keys(db, "order_line") == {1, 2, 3}
    assert keys(db, "widget") == keys(db, "widget_card") == {5000000001, 5000000002}
    write(db, "UPDATE tb_order_line SET sku = upper(sku) WHERE pk_order_line = 2")
    write(db, "UPDATE inventory SET label = 'X' WHERE pk_widget = 5000000001")
    write(db, "UPDATE tb_tiny SET v = 'MAX' WHERE pk_tiny = 32767")
    assert doc(db, "order_line", 2) == {"sku": "B"}
    assert doc(db, "widget", 5000000001) == {"label": "X"}
    assert doc(db, "widget_card", 5000000001) == {"pk_widget": 5000000001, "label": "X"}
    assert doc(db, "tiny", 32767) == {"v": "MAX"}
    write(db, "DELETE FROM tb_order_line WHERE pk_order_line = 1")
    write(db, "DELETE FROM inventory WHERE pk_widget = 5000000002")
    write(db, "DELETE FROM tb_tiny WHERE pk_tiny = 1")
    assert keys(db, "order_line") == {2, 3}
    assert keys(db, "widget") == keys(db, "widget_card") == {5000000001}
    assert keys(db, "tiny") == {32767}


# --------------------------------------------------------------------------- bulk

BULK_SCHEMA = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int, title text);
INSERT INTO tb_user SELECT g, 'user ' || g FROM generate_series(1, 5) g;
SELECT tview.create('user', $$SELECT u.pk_user, jsonb_build_object('name', u.name) AS data FROM tb_user u$$);
SELECT tview.create('post', $$SELECT p.pk_post, p.fk_user, jsonb_build_object('title', p.title, 'author', u.data) AS data
                              FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user$$);
SELECT tview.create('user_card', $$
    SELECT u.pk_user, jsonb_build_object('name', u.name,
        'posts', coalesce((SELECT jsonb_agg(p.data ORDER BY p.pk_post) FROM tv_post p WHERE p.fk_user = u.pk_user),
                          '[]'::jsonb)) AS data
    FROM tb_user u$$);
SELECT tview.create('user_stats', $$
    SELECT u.pk_user, jsonb_build_object('posts', count(p.pk_post)) AS data
    FROM tb_user u LEFT JOIN tb_post p ON p.fk_user = u.pk_user GROUP BY u.pk_user$$);
"""


ENGINE_CALLS = ("SELECT funcname, sum(calls)::int FROM pg_stat_xact_user_functions "
                "WHERE schemaname = 'tview' GROUP BY funcname")


def engine_calls(conn: psycopg.Connection, statement: str) -> dict[str, int]:
    """Calls of functions in schema tview made by one statement.

    pg_stat_xact_user_functions shows this backend's calls not yet flushed to the shared
    statistics (since PostgreSQL 15 that may include earlier transactions), and nothing is
    flushed inside a transaction block: the difference around the statement is exact."""
    with conn.transaction():
        before = dict(conn.execute(ENGINE_CALLS).fetchall())
        conn.execute(statement)
        after = dict(conn.execute(ENGINE_CALLS).fetchall())
    return {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name, 0)}


def test_bulk_statements_cost_constant_engine_calls(db):  # 28
    db.execute(BULK_SCHEMA)
    db.execute("SET track_functions = 'all'")
    insert = "INSERT INTO tb_post SELECT g, 1 + g % 5, 'post ' || g FROM generate_series({}, {}) g"
    # warm-up: anything installed lazily on first use is not counted below
    engine_calls(db, insert.format(100001, 100010))
    engine_calls(db, "UPDATE tb_post SET title = title || '.' WHERE pk_post > 100000")
    engine_calls(db, "DELETE FROM tb_post WHERE pk_post > 100000")

    # the small statements are past every size threshold too (tview.patch_threshold, a bulk
    # delete's own path), so both take the same path: only the row count differs
    pairs = [
        (insert.format(1, 200), insert.format(201, 5200), 5200),
        ("UPDATE tb_post SET title = title || '!' WHERE pk_post <= 200",
         "UPDATE tb_post SET title = title || '?'", 5200),
        ("DELETE FROM tb_post WHERE pk_post <= 200", "DELETE FROM tb_post", 0),
    ]
    for small, big, rows_after in pairs:
        small_calls = engine_calls(db, small)
        assert_oracle(db)
        big_calls = engine_calls(db, big)
        assert_oracle(db)
        assert db.execute("SELECT count(*) FROM tv_post").fetchone()[0] == rows_after
        capture = db.execute("SELECT tview._capture_name('tb_post'::regclass)").fetchone()[0]
        assert small_calls.get(capture) == 1, small_calls     # one statement trigger, not one per row
        assert big_calls == small_calls, f"{big!r}: {big_calls} vs {small!r}: {small_calls}"
    assert doc(db, "user_card", 1)["posts"] == []
    assert doc(db, "user_stats", 1) == {"posts": 0}


ROOT_PROVES_ABSENCE = "SELECT tview._root_proves_absence('tb_comment'::regclass, 'public.tb_comment', 'pk_comment')"


@pytest.mark.parametrize("change, proves", [
    ("", True),
    ("ALTER TABLE tb_comment DROP CONSTRAINT tb_comment_pkey;"
     " ALTER TABLE tb_comment ADD PRIMARY KEY (pk_comment) DEFERRABLE INITIALLY DEFERRED", False),
    ("ALTER TABLE tb_comment ENABLE ROW LEVEL SECURITY", False),
    ("CREATE TABLE tb_comment_archive () INHERITS (tb_comment)", False),
], ids=["primary key", "deferrable key", "row level security", "inheritance child"])
@pytest.mark.parametrize("mode", ["immediate", "deferred"])
def test_a_bulk_delete_of_a_root_table_is_exact_whether_or_not_the_root_proves_the_rows_gone(
        blog, change, proves, mode):
    """A bulk refresh deletes the rows of keys whose root row is gone without recomputing them, where the
    root table proves them gone (a unique, immediate key, no inheritance child, no row-level security);
    the TVIEWs reading them follow as always. In deferred mode the commit refreshes vanished keys,
    keys put back and edited keys together."""
    blog.execute("INSERT INTO tb_comment SELECT 100 + g, 1 + g % 5, 1 + g % 5, 'bulk ' || g"
                 " FROM generate_series(1, 150) g")
    for statement in filter(None, change.split(";")):
        blog.execute(statement)
    assert blog.execute(ROOT_PROVES_ABSENCE).fetchone()[0] is proves
    blog.execute("SELECT tview.set_mode('comment', %s)", (mode,))
    with blog.transaction():
        blog.execute("DELETE FROM tb_comment WHERE pk_comment > 100")
        # back on the post they were on (2), so posts 1, 4 and 5 follow only the rows that vanished
        blog.execute("INSERT INTO tb_comment SELECT 100 + g, 2, 3, 'back ' || g FROM generate_series(1, 150, 5) g")
        blog.execute("UPDATE tb_comment SET body = body || '!' WHERE pk_comment = 4")
    assert_oracle(blog)
    assert keys(blog, "comment") == set(range(1, 7)) | {100 + g for g in range(1, 151, 5)}
    assert len(doc(blog, "post", 2)["comments"]) == 30
    assert doc(blog, "user_stats", 3)["comments"] == 31


def test_writes_take_no_subtransaction(blog):
    """The write path has no exception block where a definition cannot fail with 21000: a subtransaction
    at every write would take a transaction id of its own (twice the wraparound pace), and 64 of them in
    one transaction overflow the backend's cache, which slows every snapshot on the server."""
    if blog.info.server_version < 160000:
        pytest.skip("pg_stat_get_backend_subxact is new in PostgreSQL 16")
    writes = ["UPDATE tb_comment SET body = body || '!' WHERE pk_comment = {}",      # comment, post, user_stats
              "UPDATE tb_user SET name = name || '!' WHERE pk_user = {}",            # a cascade over five TVIEWs
              "INSERT INTO tb_comment VALUES (100 + {0}, 1 + {0} % 5, 1 + {0} % 5, 'new')",
              "DELETE FROM tb_comment WHERE pk_comment = 100 + {}"]
    with blog.transaction():
        for i in range(70):
            blog.execute(writes[i % 4].format(1 + i % 5))
        count, overflowed = blog.execute(
            "SELECT s.subxact_count, s.subxact_overflowed FROM pg_stat_get_backend_idset() b,"
            " LATERAL pg_stat_get_backend_subxact(b) s WHERE pg_stat_get_backend_pid(b) = pg_backend_pid()").fetchone()
    assert (count, overflowed) == (0, False)
    assert_oracle(blog)


def test_tview_columns_named_like_the_refresh_functions_own_names_change_nothing(db):
    """A TVIEW's columns are columns of the statements its refresh function runs: one named like a
    parameter of that function (images, keys, placeholders) must not stand for it, on the one-row,
    the list and the bulk-delete paths."""
    db.execute("""CREATE TABLE tb_item (pk_item int PRIMARY KEY, images int, keys text, placeholders int);
                  INSERT INTO tb_item SELECT g, g, 'k' || g, g FROM generate_series(1, 200) g""")
    create(db, "item", """SELECT i.pk_item, i.images, i.keys, i.placeholders,
                          jsonb_build_object('n', i.images) AS data FROM tb_item i""")
    create(db, "item_card", "SELECT c.pk_item, jsonb_build_object('keys', c.keys) AS data FROM tv_item c")
    write(db, "UPDATE tb_item SET images = images + 1000 WHERE pk_item = 1")
    write(db, "UPDATE tb_item SET keys = keys || '!' WHERE pk_item IN (2, 3, 4)")
    write(db, "DELETE FROM tb_item WHERE pk_item > 100")      # more than 64 keys whose root row is gone
    assert keys(db, "item") == set(range(1, 101)) and keys(db, "item_card") == set(range(1, 101))


def test_a_one_row_write_looks_joined_rows_up_by_index(db):
    """A refresh plan is made once per session for any number of keys; planned for a list, it hashed
    the whole joined table (1,000 users read to find one). A one-key refresh has its own plan: its
    statements (the read locks and the recompute) look the post's author up by index."""
    db.execute("""CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text NOT NULL);
                  CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int NOT NULL REFERENCES tb_user, title text);
                  INSERT INTO tb_user SELECT g, 'u' || g FROM generate_series(1, 1000) g;
                  INSERT INTO tb_post SELECT g, 1 + g % 1000, 't' || g FROM generate_series(1, 2000) g;
                  ANALYZE tb_user; ANALYZE tb_post""")
    create(db, "post", """SELECT p.pk_post, p.fk_user, jsonb_build_object('title', p.title, 'author', u.name) AS data
                          FROM tb_post p JOIN tb_user u ON u.pk_user = p.fk_user""")
    seq_scans = "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'tb_user'"
    with db.transaction():    # counted in the transaction (what earlier ones counted may not be sent yet)
        before = db.execute(seq_scans).fetchone()
        for pk in (7, 8, 9):
            db.execute("UPDATE tb_post SET title = title || '!' WHERE pk_post = %s", (pk,))
        assert db.execute(seq_scans).fetchone() == before
        db.execute("UPDATE tb_post SET title = title || '?' WHERE pk_post IN (10, 11)")   # a list: still exact
    assert doc(db, "post", 9)["title"] == "t9!" and doc(db, "post", 11)["title"] == "t11?"
    assert_oracle(db)


def test_a_refresh_function_dropped_by_hand_is_made_again_by_the_next_write(blog):
    """user_stats is refreshed by the capture code directly; with its refresh function gone the write
    goes through the cascade, which makes the function again."""
    blog.execute("DO $$ BEGIN EXECUTE format('DROP FUNCTION tview.%I(bigint[], bigint[], boolean, text)', '_refresh_' ||"
                 " (SELECT id FROM tview.tviews WHERE name = 'user_stats')); END $$")
    write(blog, "INSERT INTO tb_comment VALUES (7, 2, 5, 'eve says')")
    assert doc(blog, "user_stats", 5)["comments"] == 1
    assert blog.execute("SELECT to_regprocedure(format('tview._refresh_%s(bigint[],bigint[],boolean,text)', id))"
                        " IS NOT NULL FROM tview.tviews WHERE name = 'user_stats'").fetchone() == (True,)


# =========================================================================== keys that stop being unique

def build_orders(db):
    """tv_order, whose key is unique only while an order has at most one line."""
    db.execute(ORDER_TABLES)
    db.execute("""
        INSERT INTO tb_order SELECT g, 'o' || g FROM generate_series(1, 4) g;
        INSERT INTO tb_line VALUES (1, 1), (2, 2);
    """)
    create(db, "order", ORDER_BY_LINE)


orders = prepared_database(build_orders, name="orders")


@pytest.mark.parametrize("statement, batch_threshold", [
    ("INSERT INTO tb_line VALUES (3, 1)", "2"),                            # one existing key
    ("INSERT INTO tb_line VALUES (3, 1), (4, 2), (5, 3), (6, 3)", "2"),    # set-based, a new row too
    ("INSERT INTO tb_line VALUES (3, 1), (4, 2), (5, 3), (6, 3)", "100"),  # one key at a time
    ("SELECT tview.refresh('order')", "2"),                               # whole
    ("SELECT tview.refresh('order', ARRAY[1, 3])", "2"),
], ids=["one-key", "set-based", "per-key", "whole", "keys"])
def test_a_write_that_makes_keys_duplicate_fails_23505_and_changes_nothing(orders, statement, batch_threshold):
    """Whichever refresh path meets the duplicate keys, the error is the engine's own (23505,
    naming the TVIEW and the key, with a hint), not the upsert's, and nothing is written."""
    refresh = statement.startswith("SELECT")
    if refresh:   # lines the TVIEW has not seen yet: its triggers are off for this insert
        orders.execute("ALTER TABLE tb_line DISABLE TRIGGER USER")
        orders.execute("INSERT INTO tb_line VALUES (3, 1), (4, 3), (5, 3)")
        orders.execute("ALTER TABLE tb_line ENABLE TRIGGER USER")
    lines = orders.execute("SELECT count(*) FROM tb_line").fetchone()
    before = orders.execute("SELECT pk_order, data::text FROM tv_order ORDER BY 1").fetchall()
    set_engine(orders, batch_threshold=batch_threshold)
    with pytest.raises(psycopg.errors.UniqueViolation) as err:
        orders.execute(statement)
    assert err.value.diag.message_primary == ("TVIEW public.tv_order has duplicate keys:"
                                              " pk_order is not unique in its definition")
    assert "unique in the definition (v_order)" in err.value.diag.message_hint
    assert orders.execute("SELECT pk_order, data::text FROM tv_order ORDER BY 1").fetchall() == before
    assert orders.execute("SELECT count(*) FROM tb_line").fetchone() == lines
    if not refresh:
        assert_oracle(orders)


def test_a_whole_refresh_that_finds_a_null_key_fails_23502_and_changes_nothing(orders):
    create(orders, "open_order", """SELECT CASE WHEN o.ref <> 'x' THEN o.pk_order END AS pk_order,
                                           jsonb_build_object('ref', o.ref) AS data FROM tb_order o""")
    orders.execute("ALTER TABLE tb_order DISABLE TRIGGER USER")   # a change the TVIEW has not seen
    orders.execute("UPDATE tb_order SET ref = 'x' WHERE pk_order = 2")
    orders.execute("ALTER TABLE tb_order ENABLE TRIGGER USER")
    before = orders.execute("SELECT pk_order, data::text FROM tv_open_order ORDER BY 1").fetchall()
    with pytest.raises(psycopg.errors.NotNullViolation) as err:
        orders.execute("SELECT tview.refresh('open_order')")
    assert err.value.diag.message_primary == "TVIEW public.tv_open_order has 1 row(s) with a NULL key pk_order"
    assert err.value.diag.message_hint
    assert orders.execute("SELECT pk_order, data::text FROM tv_open_order ORDER BY 1").fetchall() == before


def test_the_oracle_names_the_rows_each_side_lacks(db):
    """The oracle every test relies on: a row changed, added or removed behind the engine's back is
    reported as extra (in the TVIEW only) and missing (in the definition only)."""
    db.execute("CREATE TABLE tb_thing (pk_thing int PRIMARY KEY, label text)")
    db.execute("INSERT INTO tb_thing SELECT g, 'thing ' || g FROM generate_series(1, 4) g")
    db.execute("SELECT tview.create('thing', $$SELECT t.pk_thing, jsonb_build_object('label', t.label) AS data"
               " FROM tb_thing t$$)")
    assert drift(db, "thing") == {"extra": [], "missing": []}
    damage(db, "UPDATE tv_thing SET data = '{}' WHERE pk_thing = 1")
    damage(db, "DELETE FROM tv_thing WHERE pk_thing = 2")
    damage(db, "INSERT INTO tv_thing VALUES (9, '{}')")
    assert drift(db, "public.tv_thing") == {
        "extra": ['(1,{})', '(9,{})'],
        "missing": ['(1,"{""label"": ""thing 1""}")', '(2,"{""label"": ""thing 2""}")']}
    with pytest.raises(AssertionError, match="TVIEW drift"):
        assert_oracle(db)
