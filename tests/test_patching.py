"""Smart patching: embedded TVIEW documents patched in place must equal recomputation."""

from __future__ import annotations

import json

import psycopg
import pytest

from engine_helpers import set_engine, two_writers
from oracle import assert_oracle

pytestmark = pytest.mark.engine

SCHEMA = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text, score numeric);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int, title text);
CREATE TABLE tb_comment (pk_comment int PRIMARY KEY, fk_post int, body text);
INSERT INTO tb_user VALUES (1, 'ann', 1.10), (2, 'bob', 2);
INSERT INTO tb_post VALUES (1, 1, 'first'), (2, 1, 'second'), (3, 2, 'third');
SELECT tview.create('user', $$SELECT u.pk_user, jsonb_build_object('name', u.name, 'score', u.score) AS data
                              FROM tb_user u$$);
SELECT tview.create('comment', $$SELECT c.pk_comment, c.fk_post, jsonb_build_object('body', c.body) AS data
                                 FROM tb_comment c$$);
"""

POST = """
SELECT p.pk_post, p.fk_user,
       jsonb_build_object(
           'title', p.title,
           'author', u.data,
           'comments', coalesce((SELECT jsonb_agg(c.data ORDER BY c.pk_comment {order})
                                 FROM tv_comment c WHERE c.fk_post = p.pk_post), '[]'::jsonb)) AS data
FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user
"""


@pytest.fixture
def blog(db):
    db.execute(SCHEMA)
    return db


def create_post(conn, order: str = "") -> None:
    conn.execute("SELECT tview.create('post', %s)", (POST.format(order=order),))


def listen(dsn):
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SELECT tview.listen()")
    return conn


def post_event(listener) -> dict:
    for notify in listener.notifies(timeout=2):
        event = json.loads(notify.payload)
        if event["tview"] == "tv_post":
            return event
    raise AssertionError("no tv_post event")


def comments(conn, post: int) -> list:
    return [c["body"] for c in conn.execute("SELECT data->'comments' FROM tv_post WHERE pk_post = %s",
                                            (post,)).fetchone()[0]]


def test_shapes_are_recognised_and_recorded(blog):
    create_post(blog)
    specs = blog.execute("SELECT patch_specs FROM tview.tviews WHERE name = 'post'").fetchone()[0]
    by_kind = {s["kind"]: s for s in specs}
    assert by_kind["object"]["path"] == ["author"] and by_kind["object"]["link_column"] == "fk_user"
    assert by_kind["array"]["path"] == ["comments"] and by_kind["array"]["parent_column"] == "fk_post"
    assert by_kind["array"]["descending"] is False


def test_embedded_tview_read_elsewhere_is_not_patched(blog):
    blog.execute("""SELECT tview.create('post', $$
        SELECT p.pk_post, p.fk_user, jsonb_build_object('author', u.data, 'name', u.data->'name') AS data
        FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user WHERE u.data->>'name' <> 'x' $$)""")
    assert blog.execute("SELECT patch_specs FROM tview.tviews WHERE name = 'post'").fetchone()[0] == []


def test_object_patch_equals_recompute_and_keeps_number_text(blog, dsn):
    create_post(blog)
    listener = listen(dsn)
    try:
        blog.execute("UPDATE tb_user SET name = 'Ann ✓', score = 3.500 WHERE pk_user = 1")
        event = post_event(listener)
    finally:
        listener.close()
    assert event["mode"] == "patch" and event["patched"] == 2 and sorted(event["keys"]) == [1, 2]
    text = blog.execute("SELECT data->'author'->>'score' FROM tv_post WHERE pk_post = 1").fetchone()[0]
    assert text == "3.500"
    assert_oracle(blog)


@pytest.mark.parametrize("order", ["", "DESC"])
def test_array_sequence_insert_middle_delete_first_last_only(blog, dsn, order):
    create_post(blog, order)
    listener = listen(dsn)
    steps = [
        ("INSERT INTO tb_comment VALUES (20, 1, 'b')", ["b"]),
        ("INSERT INTO tb_comment VALUES (30, 1, 'c')", ["b", "c"]),
        ("INSERT INTO tb_comment VALUES (10, 1, 'a')", ["a", "b", "c"]),
        ("INSERT INTO tb_comment VALUES (25, 1, 'm')", ["a", "b", "m", "c"]),   # the middle
        ("UPDATE tb_comment SET body = 'M' WHERE pk_comment = 25", ["a", "b", "M", "c"]),
        ("DELETE FROM tb_comment WHERE pk_comment = 10", ["b", "M", "c"]),        # the first
        ("DELETE FROM tb_comment WHERE pk_comment = 30", ["b", "M"]),             # the last
        ("DELETE FROM tb_comment WHERE pk_comment = 25", ["b"]),
        ("DELETE FROM tb_comment WHERE pk_comment = 20", []),                     # the only one
    ]
    try:
        for statement, expected in steps:
            blog.execute(statement)
            event = post_event(listener)
            assert event["mode"] == "patch", (statement, event)
            assert comments(blog, 1) == (list(reversed(expected)) if order else expected), statement
            assert_oracle(blog)
    finally:
        listener.close()


def test_moving_a_child_patches_both_parents(blog):
    create_post(blog)
    blog.execute("INSERT INTO tb_comment VALUES (1, 1, 'x'), (2, 2, 'y'), (3, 2, 'z')")
    blog.execute("UPDATE tb_comment SET fk_post = 2 WHERE pk_comment = 1")
    assert comments(blog, 1) == [] and comments(blog, 2) == ["x", "y", "z"]
    assert_oracle(blog)


@pytest.mark.parametrize("first, second", [(10, 20), (20, 10)], ids=["after", "before"])
def test_two_transactions_patching_the_same_array(blog, dsn, first, second):
    """The second patch waits for the first's row: its position and checks must see the first's element."""
    create_post(blog)
    blog.execute("INSERT INTO tb_comment VALUES (5, 1, 'a'), (30, 1, 'z')")
    two_writers(dsn, f"INSERT INTO tb_comment VALUES ({first}, 1, 'first')",
                f"INSERT INTO tb_comment VALUES ({second}, 1, 'second')")
    expected = {5: "a", first: "first", second: "second", 30: "z"}
    assert comments(blog, 1) == [expected[k] for k in sorted(expected)]
    assert_oracle(blog)


def test_several_children_of_one_parent_in_one_statement(blog):
    create_post(blog)
    blog.execute("INSERT INTO tb_comment SELECT g, 1 + g % 3, 'c' || g FROM generate_series(1, 60) g")
    blog.execute("UPDATE tb_comment SET body = body || '!' WHERE pk_comment % 7 = 0")
    blog.execute("DELETE FROM tb_comment WHERE pk_comment % 5 = 0")
    assert_oracle(blog)
    assert len(comments(blog, 1)) == 16


def test_patching_can_be_switched_off_globally_and_per_tview(blog, dsn):
    create_post(blog)
    listener = listen(dsn)
    try:
        set_engine(blog, patching="off")
        blog.execute("UPDATE tb_user SET name = 'off' WHERE pk_user = 2")
        assert post_event(listener)["mode"] == "recompute"
        set_engine(blog, patching=None)
        blog.execute("SELECT tview.set_patching('post', false)")
        blog.execute("UPDATE tb_user SET name = 'still off' WHERE pk_user = 2")
        assert post_event(listener)["mode"] == "recompute"
        blog.execute("SELECT tview.set_patching('post', true)")
        blog.execute("UPDATE tb_user SET name = 'on' WHERE pk_user = 2")
        assert post_event(listener)["mode"] == "patch"
    finally:
        listener.close()
    assert_oracle(blog)


def test_changes_at_the_patch_threshold_are_recomputed_set_based(blog, dsn):
    """tview.patch_threshold: below it each document is patched, from it on the rows are recomputed."""
    create_post(blog)
    blog.execute("INSERT INTO tb_comment SELECT g, 1 + g % 3, 'c' || g FROM generate_series(1, 9) g")
    listener = listen(dsn)
    try:
        set_engine(blog, patch_threshold="3")
        blog.execute("UPDATE tb_comment SET body = body || '!' WHERE pk_comment IN (1, 2)")   # 2 documents
        assert post_event(listener)["mode"] == "patch"
        blog.execute("UPDATE tb_comment SET body = body || '?' WHERE pk_comment IN (3, 4, 5)")   # 3 documents
        event = post_event(listener)
        assert event["mode"] == "recompute" and sorted(event["keys"]) == [1, 2, 3]
        set_engine(blog, patch_threshold="0")     # never patch
        blog.execute("UPDATE tb_user SET name = 'zero' WHERE pk_user = 1")
        assert post_event(listener)["mode"] == "recompute"
    finally:
        listener.close()
    assert_oracle(blog)


@pytest.mark.parametrize("threshold", ["0", "2", "1000"])
def test_batch_threshold_refreshes_key_by_key_or_set_based_with_the_same_result(blog, threshold):
    """Below tview.batch_threshold keys are refreshed one at a time: the result is the same."""
    create_post(blog)
    blog.execute("SELECT tview.set_patching('post', false)")
    set_engine(blog, batch_threshold=threshold)
    blog.execute("INSERT INTO tb_comment SELECT g, 1 + g % 3, 'c' || g FROM generate_series(1, 30) g")
    blog.execute("UPDATE tb_user SET name = name || '!'")
    blog.execute("DELETE FROM tb_post WHERE pk_post IN (1, 3)")
    blog.execute("UPDATE tb_comment SET fk_post = 2 WHERE pk_comment % 4 = 0")
    assert_oracle(blog)
    assert len(comments(blog, 2)) == 14


@pytest.mark.parametrize("setting", ["batch_threshold", "patch_threshold"])
@pytest.mark.parametrize("value", ["many", "-1", "1.5"])
def test_invalid_threshold_is_an_error_not_a_default(blog, setting, value):
    create_post(blog)
    set_engine(blog, **{setting: value})
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=f"tview.{setting}"):
        blog.execute("UPDATE tb_user SET name = 'x'")


def test_a_changed_author_appearing_or_vanishing_is_recomputed(blog):
    """Inner join: a post without its author is not in the TVIEW until the author exists."""
    create_post(blog)
    blog.execute("INSERT INTO tb_post VALUES (9, 7, 'orphan')")
    assert blog.execute("SELECT count(*) FROM tv_post WHERE pk_post = 9").fetchone()[0] == 0
    blog.execute("INSERT INTO tb_user VALUES (7, 'late', 0)")
    assert blog.execute("SELECT count(*) FROM tv_post WHERE pk_post = 9").fetchone()[0] == 1
    blog.execute("DELETE FROM tb_user WHERE pk_user = 7")
    assert blog.execute("SELECT count(*) FROM tv_post WHERE pk_post = 9").fetchone()[0] == 0
    assert_oracle(blog)


@pytest.mark.parametrize("patch_threshold", ["100", "3"])
def test_rows_patched_hand_the_tviews_reading_them_images_or_keys(blog, dsn, patch_threshold):
    """A rename patches the author into 22 posts. Two TVIEWs read tv_post: one embeds the posts,
    one takes a field of them. The patched rows' images are handed on while they are few; with
    patches of many rows (tview.patch_threshold = 3) their keys: both ways exact."""
    create_post(blog)
    blog.execute("INSERT INTO tb_post SELECT g, 1, 'p' || g FROM generate_series(10, 29) g")
    blog.execute("""SELECT tview.create('feed', $$SELECT u.pk_user, jsonb_build_object('posts',
                        coalesce((SELECT jsonb_agg(p.data ORDER BY p.pk_post) FROM tv_post p
                                  WHERE p.fk_user = u.pk_user), '[]'::jsonb)) AS data FROM tb_user u$$)""")
    blog.execute("""SELECT tview.create('byline', $$SELECT p.pk_post, p.fk_user,
                        jsonb_build_object('by', p.data -> 'author' -> 'name') AS data FROM tv_post p$$)""")
    set_engine(blog, patch_threshold=patch_threshold)
    listener = listen(dsn)
    try:
        blog.execute("UPDATE tb_user SET name = 'anna' WHERE pk_user = 1")
        modes = {}
        for notify in listener.notifies(timeout=2, stop_after=4):
            event = json.loads(notify.payload)
            modes[event["tview"]] = (event["mode"], len(event["keys"]))
    finally:
        listener.close()
    assert modes["tv_post"] == ("patch", 22)
    assert modes["tv_byline"] == ("recompute", 22)
    assert modes["tv_feed"] == ("recompute", 1)      # 22 changes of one array: recomputed
    assert blog.execute("SELECT count(*) FROM tv_byline WHERE data ->> 'by' = 'anna'").fetchone() == (22,)
    assert_oracle(blog)


PRIMITIVES = [
    ("SELECT tview.jsonb_patch_object('{\"a\": {\"b\": 1}, \"c\": 2}', '{a}', '{\"z\": 1.10}')",
     '{"a": {"z": 1.10}, "c": 2}'),
    ("SELECT tview.jsonb_patch_object('{\"c\": 2}', '{a,b}', '1')", '{"c": 2}'),        # no parent: not created
    ("SELECT tview.jsonb_patch_object('{\"c\": 2}', '{a}', NULL)", '{"a": null, "c": 2}'),
    ("SELECT tview.jsonb_array_update('{\"a\": [{\"k\": 1.0, \"v\": 1}, {\"k\": 3}]}', '{a}', 'k', '1', '{\"k\": 1.0, \"v\": 2}')",
     '{"a": [{"k": 1.0, "v": 2}, {"k": 3}]}'),                                          # 1.0 = 1, text kept
    ("SELECT tview.jsonb_array_update('{\"a\": [{\"k\": 1}]}', '{a}', 'k', '9', '{\"k\": 9}')", '{"a": [{"k": 1}]}'),
    ("SELECT tview.jsonb_array_update('{\"a\": [1, {\"k\": 1}]}', '{a}', 'k', '1', '{\"k\": 2}')",
     '{"a": [1, {"k": 2}]}'),                                                           # only objects match
    ("SELECT tview.jsonb_array_insert_sorted('{\"a\": []}', '{a}', '{\"k\": 2}', 'k')", '{"a": [{"k": 2}]}'),
    ("SELECT tview.jsonb_array_insert_sorted('{}', '{a}', '{\"k\": 2}', 'k')", '{"a": [{"k": 2}]}'),
    ("SELECT tview.jsonb_array_insert_sorted('{\"a\": [{\"k\": 2}]}', '{a}', '{\"k\": 1}', 'k')",
     '{"a": [{"k": 1}, {"k": 2}]}'),                                                    # first
    ("SELECT tview.jsonb_array_insert_sorted('{\"a\": [{\"k\": 1}, {\"k\": 3}]}', '{a}', '{\"k\": 2}', 'k')",
     '{"a": [{"k": 1}, {"k": 2}, {"k": 3}]}'),                                          # middle
    ("SELECT tview.jsonb_array_insert_sorted('{\"a\": [{\"k\": 1}]}', '{a}', '{\"k\": 2}', 'k')",
     '{"a": [{"k": 1}, {"k": 2}]}'),                                                    # last
    ("SELECT tview.jsonb_array_insert_sorted('{\"a\": [{\"k\": 2, \"n\": 1}]}', '{a}', '{\"k\": 2, \"n\": 2}', 'k')",
     '{"a": [{"k": 2, "n": 1}, {"k": 2, "n": 2}]}'),                                    # ties after equal keys
    ("SELECT tview.jsonb_array_insert_sorted('{\"a\": [{\"k\": 3}, {\"k\": 1}]}', '{a}', '{\"k\": 2}', 'k', true)",
     '{"a": [{"k": 3}, {"k": 2}, {"k": 1}]}'),                                          # descending
    ("SELECT tview.jsonb_array_delete('{\"a\": [{\"k\": 1}, {\"k\": 2}, {\"k\": 3}]}', '{a}', 'k', '1')",
     '{"a": [{"k": 2}, {"k": 3}]}'),
    ("SELECT tview.jsonb_array_delete('{\"a\": [{\"k\": 1}, {\"k\": 2}, {\"k\": 3}]}', '{a}', 'k', '2')",
     '{"a": [{"k": 1}, {"k": 3}]}'),
    ("SELECT tview.jsonb_array_delete('{\"a\": [{\"k\": 1}, {\"k\": 2}]}', '{a}', 'k', '2')", '{"a": [{"k": 1}]}'),
    ("SELECT tview.jsonb_array_delete('{\"a\": [{\"k\": 1}]}', '{a}', 'k', '1')", '{"a": []}'),
    ("SELECT tview.jsonb_array_delete('{\"a\": [{\"k\": 1}]}', '{a}', 'k', '5')", '{"a": [{"k": 1}]}'),
]


@pytest.mark.parametrize("query, expected", PRIMITIVES)
def test_patch_primitives(db, query, expected):
    assert db.execute(query.replace("%", "%%")).fetchone()[0] == json.loads(expected)
    assert db.execute(f"SELECT ({query.replace('%', '%%')})::text").fetchone()[0] == expected


def test_renamed_tables_and_columns_keep_being_maintained(blog):
    """The view follows renames by itself; the engine rebuilds what it generated."""
    create_post(blog)
    blog.execute("INSERT INTO tb_comment VALUES (1, 1, 'x')")
    blog.execute("ALTER TABLE tb_user RENAME TO tb_person")
    blog.execute("ALTER TABLE tb_person RENAME COLUMN pk_user TO pk_person")
    blog.execute("ALTER TABLE tb_post RENAME COLUMN fk_user TO fk_person")
    blog.execute("ALTER TABLE tb_comment RENAME COLUMN fk_post TO fk_article")
    blog.execute("UPDATE tb_person SET name = 'renamed' WHERE pk_person = 1")
    blog.execute("UPDATE tb_post SET fk_person = 2 WHERE pk_post = 2")
    blog.execute("INSERT INTO tb_comment VALUES (2, 1, 'y')")
    assert comments(blog, 1) == ["x", "y"]
    assert_oracle(blog)
