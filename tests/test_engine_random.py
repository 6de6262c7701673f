"""Random workloads over a 4-level schema: every TVIEW equals its definition after every step.

tb_company -> tb_user (fk_company) -> tb_post (fk_user) -> tb_comment (fk_post, fk_user = author),
read by five TVIEWs that embed each other (objects, ordered arrays, counts, a column read
straight from a base table). A hypothesis state machine runs single statements, bulk
statements, FK moves, key changes, cascading deletes, TRUNCATE ... CASCADE, and transactions
with savepoints that commit or roll back, on a real PostgreSQL. After every step the text-exact
oracle compares every TVIEW with its backing view (inside the writing transaction as well, in
immediate mode). The schema is created once per test function; each example starts from
TRUNCATE + refresh + a small seed. A failure reports a standalone SQL script reproducing it
(and hypothesis prints the seed).
"""

from __future__ import annotations

import os

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test
from psycopg import errors, sql

from engine_helpers import set_engine
from oracle import assert_oracle, tview_names

pytestmark = [pytest.mark.engine, pytest.mark.slow]

# TVIEW_RANDOM_SCALE=20 multiplies the examples for a soak run (default budget: about a minute).
SCALE = float(os.environ.get("TVIEW_RANDOM_SCALE", "1"))

TABLES = ("tb_company", "tb_user", "tb_post", "tb_comment")
KEY = {t: "pk_" + t.removeprefix("tb_") for t in TABLES}
# Small key spaces: keys get reused after deletes, parents collide, moves hit real rows.
KEY_MAX = {"tb_company": 5, "tb_user": 12, "tb_post": 25, "tb_comment": 50}
TEXT_COLUMNS = {
    "tb_company": ("name", "city"),
    "tb_user": ("name", "email"),
    "tb_post": ("title", "body"),
    "tb_comment": ("body",),
}
TVIEWS = ("company", "user", "comment", "post", "post_card")

SCHEMA = """
CREATE TABLE tb_company (pk_company int PRIMARY KEY, name text, city text);
CREATE TABLE tb_user (
    pk_user int PRIMARY KEY,
    fk_company int NOT NULL REFERENCES tb_company ON DELETE CASCADE ON UPDATE CASCADE,
    name text, email text);
CREATE TABLE tb_post (
    pk_post int PRIMARY KEY,
    fk_user int NOT NULL REFERENCES tb_user ON DELETE CASCADE ON UPDATE CASCADE,
    title text, body text);
CREATE TABLE tb_comment (
    pk_comment int PRIMARY KEY,
    fk_post int NOT NULL REFERENCES tb_post ON DELETE CASCADE ON UPDATE CASCADE,
    fk_user int REFERENCES tb_user ON DELETE CASCADE ON UPDATE CASCADE,
    body text);
-- A comment's author may be NULL (anonymous) but is not SET NULL on delete: deleting a user
-- would then both delete (through its posts) and update a comment, and PostgreSQL re-checks
-- fk_post on the update of a row inserted in the same transaction, after the post is gone.
-- (DEFERRABLE fk_post avoids that but makes TRUNCATE fail with pending trigger events.)
SELECT tview.create('company', $$
    SELECT c.pk_company, jsonb_build_object('id', c.pk_company, 'name', c.name, 'city', c.city) AS data
    FROM tb_company c $$, {mode});
SELECT tview.create('user', $$
    SELECT u.pk_user, u.fk_company,
           jsonb_build_object(
               'id', u.pk_user, 'name', u.name, 'email', u.email,
               'company', co.data,
               'post_titles', coalesce((SELECT jsonb_agg(p.title ORDER BY p.pk_post)
                                        FROM tb_post p WHERE p.fk_user = u.pk_user), '[]'::jsonb)) AS data
    FROM tb_user u JOIN tv_company co ON co.pk_company = u.fk_company $$, {mode});
SELECT tview.create('comment', $$
    SELECT c.pk_comment, c.fk_post, c.fk_user,
           jsonb_build_object('id', c.pk_comment, 'body', c.body, 'author_name', u.name) AS data
    FROM tb_comment c LEFT JOIN tb_user u ON u.pk_user = c.fk_user $$, {mode});
SELECT tview.create('post', $$
    SELECT p.pk_post, p.fk_user,
           jsonb_build_object(
               'id', p.pk_post, 'title', p.title, 'body', p.body,
               'author', au.data,
               'comments', coalesce((SELECT jsonb_agg(c.data ORDER BY c.pk_comment {order})
                                     FROM tv_comment c WHERE c.fk_post = p.pk_post), '[]'::jsonb),
               'comment_count', (SELECT count(*) FROM tb_comment n WHERE n.fk_post = p.pk_post)) AS data
    FROM tb_post p JOIN tv_user au ON au.pk_user = p.fk_user $$, {mode});
-- tv_post recomputes a post whenever tb_comment changes (its count reads tb_comment), so the
-- comments array is patched there only for updated comments; tv_post_card reads comments only
-- through tv_comment, so inserted, deleted and moved comments are patched into its array.
SELECT tview.create('post_card', $$
    SELECT p.pk_post, p.fk_user,
           jsonb_build_object(
               'title', p.title, 'author', au.data,
               'comments', coalesce((SELECT jsonb_agg(c.data ORDER BY c.pk_comment {order})
                                     FROM tv_comment c WHERE c.fk_post = p.pk_post), '[]'::jsonb)) AS data
    FROM tb_post p JOIN tv_user au ON au.pk_user = p.fk_user $$, {mode});
"""

SEED = [
    "INSERT INTO tb_company SELECT g, 'company ' || g, CASE WHEN g % 2 = 1 THEN 'Paris' END "
    "FROM generate_series(1, 3) g;",
    "INSERT INTO tb_user SELECT g, 1 + g % 3, CASE WHEN g = 3 THEN 'zoë' ELSE 'user ' || g END, NULL "
    "FROM generate_series(1, 8) g;",
    "INSERT INTO tb_post SELECT g, 1 + g % 8, 'post ' || g, CASE WHEN g % 4 <> 0 THEN 'body' END "
    "FROM generate_series(1, 14) g;",
    "INSERT INTO tb_comment SELECT g, 1 + g % 14, CASE WHEN g % 5 <> 0 THEN 1 + g % 8 END, 'comment ' || g "
    "FROM generate_series(1, 30) g;",
]

SPECIAL_TEXT = ["", " ", "O'Brien", 'say "hi"', "back\\slash", "tab\there", "line\nbreak", "zoë",
                "日本語", "😀 emoji", "\u200b", "$$", "%s", "{}", "[1,2]", "null", "a" * 200]
TEXT = st.one_of(
    st.none(),
    st.sampled_from(SPECIAL_TEXT),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
)


def render(conn: psycopg.Connection, template: str, *args) -> str:
    """SQL text with the arguments inlined as literals (so the log replays as a script)."""
    return sql.SQL(template).format(*(sql.Literal(a) for a in args)).as_string(conn)


def keys(conn: psycopg.Connection) -> dict[str, list[int]]:
    """The keys of every table, ascending, read in one round trip."""
    query = sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("ARRAY(SELECT {} FROM {} ORDER BY 1)").format(sql.Identifier(KEY[table]), sql.Identifier(table))
        for table in TABLES))
    return dict(zip(TABLES, conn.execute(query).fetchone(), strict=True))


class Workload:
    """Draws one write statement that is valid against the current state seen by conn."""

    KINDS = (["insert"] * 8 + ["update_text"] * 6 + ["move"] * 6 + ["delete"] * 3 + ["upsert"] * 2
             + ["bulk_insert"] * 3 + ["rekey", "bulk_update", "bulk_move", "delete_many", "noop_update",
                                      "cte_move", "swap_parents", "cte_two_tables"])
    # deletes of a company or user cascade far: children are picked more often
    TABLE_WEIGHTS = ["tb_comment"] * 3 + ["tb_post"] * 3 + ["tb_user"] * 2 + ["tb_company"]

    def __init__(self, data, conn: psycopg.Connection):
        self.data = data
        self.conn = conn
        self.keys: dict[str, list[int]] | None = None     # read once: drawing a statement writes nothing

    def draw(self, strategy, label: str):
        return self.data.draw(strategy, label=label)

    def existing(self, table: str) -> list[int]:
        if self.keys is None:
            self.keys = keys(self.conn)
        return self.keys[table]

    def pick(self, table: str, label: str) -> int | None:
        found = self.existing(table)
        return self.draw(st.sampled_from(found), label) if found else None

    def new_key(self, table: str) -> int:
        return self.draw(st.integers(1, KEY_MAX[table]), f"new {KEY[table]}")

    def statement(self) -> str:
        while True:
            kind = self.draw(st.sampled_from(self.KINDS), "kind")
            table = self.draw(st.sampled_from(self.TABLE_WEIGHTS), "table")
            stmt = getattr(self, kind)(table)
            if stmt is not None:
                return stmt

    # -- statements (None when not possible in the current state) ---------------------------

    def row_values(self, table: str, pk: int) -> list | None:
        """Values of a new row of table with key pk, parents chosen among existing rows."""
        if table == "tb_company":
            return [pk, self.draw(TEXT, "name"), self.draw(TEXT, "city")]
        if table == "tb_user":
            company = self.pick("tb_company", "fk_company")
            if company is None:
                return None
            return [pk, company, self.draw(TEXT, "name"), self.draw(TEXT, "email")]
        if table == "tb_post":
            user = self.pick("tb_user", "fk_user")
            return None if user is None else [pk, user, self.draw(TEXT, "title"), self.draw(TEXT, "body")]
        post = self.pick("tb_post", "fk_post")
        if post is None:
            return None
        users = self.existing("tb_user")
        author = self.draw(st.sampled_from([None, *users]), "author")
        return [pk, post, author, self.draw(TEXT, "body")]

    def insert(self, table: str) -> str | None:
        values = self.row_values(table, self.new_key(table))
        if values is None:
            return None
        holes = ", ".join(["{}"] * len(values))
        return render(self.conn, f"INSERT INTO {table} VALUES ({holes}) ON CONFLICT DO NOTHING", *values)

    def upsert(self, table: str) -> str | None:
        """One statement that inserts some rows and updates others (INSERT and UPDATE triggers)."""
        rows = []
        for _ in range(self.draw(st.integers(1, 4), "upsert rows")):
            values = self.row_values(table, self.new_key(table))
            if values is None:
                return None
            if all(r[0] != values[0] for r in rows):
                rows.append(values)
        column = TEXT_COLUMNS[table][-1]
        tuples = ", ".join("(" + ", ".join(["{}"] * len(r)) + ")" for r in rows)
        return render(self.conn, f"INSERT INTO {table} VALUES {tuples} ON CONFLICT ({KEY[table]}) "
                                 f"DO UPDATE SET {column} = EXCLUDED.{column}", *[v for r in rows for v in r])

    def update_text(self, table: str) -> str | None:
        pk = self.pick(table, KEY[table])
        if pk is None:
            return None
        column = self.draw(st.sampled_from(TEXT_COLUMNS[table]), "column")
        return render(self.conn, f"UPDATE {table} SET {column} = {{}} WHERE {KEY[table]} = {{}}",
                      self.draw(TEXT, "value"), pk)

    def noop_update(self, table: str) -> str | None:
        pk = self.pick(table, KEY[table])
        if pk is None:
            return None
        column = TEXT_COLUMNS[table][0]
        return render(self.conn, f"UPDATE {table} SET {column} = {column} WHERE {KEY[table]} <= {{}}", pk)

    MOVES = {  # table -> (fk column, parent table, nullable)
        "tb_user": ("fk_company", "tb_company", False),
        "tb_post": ("fk_user", "tb_user", False),
        "tb_comment": ("fk_post", "tb_post", False),
        "tb_company": ("fk_user", "tb_user", True),   # (company has no fk: move a comment's author)
    }

    def move(self, table: str) -> str | None:
        fk, parent, nullable = self.MOVES[table]
        child_table = "tb_comment" if table == "tb_company" else table
        child = self.pick(child_table, KEY[child_table])
        parents = self.existing(parent)
        if child is None or not parents:
            return None
        target = self.draw(st.sampled_from(([None] if nullable else []) + parents), "new parent")
        if self.draw(st.booleans(), "and a text column"):   # moved and changed in one row update
            column = TEXT_COLUMNS[child_table][-1]
            return render(self.conn, f"UPDATE {child_table} SET {fk} = {{}}, {column} = {{}} "
                                     f"WHERE {KEY[child_table]} = {{}}",
                          target, self.draw(TEXT, "value"), child)
        return render(self.conn, f"UPDATE {child_table} SET {fk} = {{}} WHERE {KEY[child_table]} = {{}}",
                      target, child)

    def swap_parents(self, table: str) -> str | None:
        """The children of two parents trade places in one statement."""
        fk, parent, _ = self.MOVES[table]
        child_table = "tb_comment" if table == "tb_company" else table
        parents = self.existing(parent)
        if len(parents) < 2:
            return None
        a, b = self.draw(st.lists(st.sampled_from(parents), min_size=2, max_size=2, unique=True), "parents")
        return render(self.conn, f"UPDATE {child_table} "
                                 f"SET {fk} = CASE WHEN {fk} = {{}} THEN {{}} ELSE {{}} END "
                                 f"WHERE {fk} IN ({{}}, {{}})", a, b, a, a, b)

    def cte_two_tables(self, table: str) -> str | None:
        """One query writing two tables: rename a user and give them a new post."""
        user = self.pick("tb_user", "pk_user")
        if user is None:
            return None
        return render(self.conn,
                      "WITH u AS (UPDATE tb_user SET name = {} WHERE pk_user = {} RETURNING pk_user) "
                      "INSERT INTO tb_post SELECT {}, pk_user, {}, NULL FROM u ON CONFLICT DO NOTHING",
                      self.draw(TEXT, "name"), user, self.new_key("tb_post"), self.draw(TEXT, "title"))

    def rekey(self, table: str) -> str | None:
        """Change a primary key (children follow with ON UPDATE CASCADE)."""
        old = self.pick(table, "old key")
        free = sorted(set(range(1, KEY_MAX[table] + 1)) - set(self.existing(table)))
        if old is None or not free:
            return None
        new = self.draw(st.sampled_from(free), "new key")
        return render(self.conn, f"UPDATE {table} SET {KEY[table]} = {{}} WHERE {KEY[table]} = {{}}",
                      new, old)

    def bulk_insert(self, table: str) -> str | None:
        """INSERT ... SELECT generate_series, children spread over several parents."""
        low = self.draw(st.integers(1, KEY_MAX[table]), "from")
        high = min(KEY_MAX[table], low + self.draw(st.integers(1, 8), "rows"))
        text = self.draw(TEXT, "text")
        if table == "tb_company":
            return render(self.conn, "INSERT INTO tb_company SELECT g, {} || g, NULL "
                                     "FROM generate_series({}, {}) g ON CONFLICT DO NOTHING", text, low, high)
        parent = {"tb_user": "tb_company", "tb_post": "tb_user", "tb_comment": "tb_post"}[table]
        parents = self.existing(parent)
        if not parents:
            return None
        chosen = self.draw(st.lists(st.sampled_from(parents), min_size=1, max_size=3, unique=True), "parents")
        pick = "({}::int[])[1 + g % {}]"
        if table == "tb_comment":
            users = self.existing("tb_user")
            author = self.draw(st.sampled_from([None, *users]), "author")
            return render(self.conn, f"INSERT INTO tb_comment SELECT g, {pick}, {{}}, {{}} || g "
                                     "FROM generate_series({}, {}) g ON CONFLICT DO NOTHING",
                          chosen, len(chosen), author, text, low, high)
        return render(self.conn, f"INSERT INTO {table} SELECT g, {pick}, {{}} || g, {{}} "
                                 "FROM generate_series({}, {}) g ON CONFLICT DO NOTHING",
                      chosen, len(chosen), text, self.draw(TEXT, "text2"), low, high)

    def bulk_update(self, table: str) -> str | None:
        column = self.draw(st.sampled_from(TEXT_COLUMNS[table]), "column")
        rest = self.draw(st.integers(0, 2), "remainder")
        how = self.draw(st.sampled_from(["append", "set", "null"]), "how")
        value = {"append": f"{column} || '!'", "set": "{}", "null": "NULL"}[how]
        args = [self.draw(TEXT, "value")] if how == "set" else []
        return render(self.conn, f"UPDATE {table} SET {column} = {value} WHERE {KEY[table]} % 3 = {{}}",
                      *args, rest)

    def bulk_move(self, table: str) -> str | None:
        """Several children move to one parent in one statement."""
        fk, parent, nullable = self.MOVES[table]
        child_table = "tb_comment" if table == "tb_company" else table
        parents = self.existing(parent)
        if not parents:
            return None
        target = self.draw(st.sampled_from(([None] if nullable else []) + parents), "new parent")
        rest = self.draw(st.integers(0, 2), "remainder")
        return render(self.conn, f"UPDATE {child_table} SET {fk} = {{}} WHERE {KEY[child_table]} % 3 = {{}}",
                      target, rest)

    def delete(self, table: str) -> str | None:
        pk = self.pick(table, KEY[table])
        if pk is None:
            return None
        return render(self.conn, f"DELETE FROM {table} WHERE {KEY[table]} = {{}}", pk)

    def delete_many(self, table: str) -> str | None:
        found = self.existing(table)
        if not found:
            return None
        if self.draw(st.booleans(), "by list"):
            chosen = self.draw(st.lists(st.sampled_from(found), min_size=1, max_size=4, unique=True), "keys")
            return render(self.conn, f"DELETE FROM {table} WHERE {KEY[table]} = ANY({{}}::int[])",
                          sorted(chosen))
        modulus = self.draw(st.integers(2, 4), "modulus")
        return render(self.conn, f"DELETE FROM {table} WHERE {KEY[table]} % {{}} = {{}}",
                      modulus, self.draw(st.integers(0, modulus - 1), "remainder"))

    def cte_move(self, table: str) -> str | None:
        """Writable CTE: delete a comment and re-insert it under a new key and post, in one query."""
        comment = self.pick("tb_comment", "pk_comment")
        post = self.pick("tb_post", "fk_post")
        free = sorted(set(range(1, KEY_MAX["tb_comment"] + 1)) - set(self.existing("tb_comment")))
        if comment is None or post is None or not free:
            return None
        new = self.draw(st.sampled_from(free), "new key")
        return render(self.conn, "WITH gone AS (DELETE FROM tb_comment WHERE pk_comment = {} RETURNING *) "
                                 "INSERT INTO tb_comment SELECT {}, {}, fk_user, body FROM gone",
                      comment, new, post)


def run_workload(db: psycopg.Connection, dsn: str, mode: str, order: str, max_examples: int, steps: int):
    schema = SCHEMA.format(mode=sql.Literal(mode).as_string(db), order=order)
    db.execute(schema)
    names = tview_names(db)
    assert len(names) == len(TVIEWS)
    deferred = mode == "deferred"

    with psycopg.connect(dsn) as tx:   # not autocommit: explicit transactions and savepoints

        class RandomWorkload(RuleBasedStateMachine):
            def __init__(self):
                super().__init__()
                self.script: list[str] = []
                if tx.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    tx.rollback()
                db.execute("TRUNCATE " + ", ".join(TABLES))
                for name in TVIEWS:
                    db.execute("SELECT tview.set_patching(%s, true)", (name,))
                    db.execute("SELECT tview.refresh(%s)", (name,))
                for stmt in SEED:
                    self.run(db, stmt)
                self.check(db, "seed")

            # -- helpers ------------------------------------------------------------------

            def fail(self, why: str) -> None:
                script = "\n".join(["-- reproduce on a database with the engine installed:",
                                    schema.strip(), *self.script])
                print(script)
                raise AssertionError(f"{why}\n\n{script}")

            def run(self, conn: psycopg.Connection, stmt: str) -> None:
                self.script.append(stmt if stmt.endswith(";") else stmt + ";")
                try:
                    conn.execute(stmt)
                except psycopg.Error as e:
                    self.fail(f"statement failed: {stmt}\n{type(e).__name__}: {e}")

            def check(self, conn: psycopg.Connection, where: str) -> None:
                try:
                    assert_oracle(conn, *names)
                except AssertionError as e:
                    self.fail(f"after {where} (the last statement of the script): {e}")

            def write(self, conn: psycopg.Connection, data, in_tx: bool) -> None:
                stmt = Workload(data, conn).statement()
                self.run(conn, stmt)
                if not (in_tx and deferred):
                    self.check(conn, "statement")

            # -- rules --------------------------------------------------------------------

            @rule(data=st.data())
            def statement(self, data):
                self.write(db, data, in_tx=False)

            @rule(data=st.data())
            def two_statements(self, data):
                self.write(db, data, in_tx=False)
                self.write(db, data, in_tx=False)

            @rule(data=st.data())
            def statement_or_maintenance(self, data):
                """Mostly a statement; sometimes TRUNCATE ... CASCADE or a patching switch."""
                choice = data.draw(st.integers(0, 7), "choice")
                if choice == 0:
                    self.run(db, f"TRUNCATE {data.draw(st.sampled_from(TABLES), 'table')} CASCADE")
                    self.check(db, "TRUNCATE")
                elif choice <= 2:
                    name = data.draw(st.sampled_from(TVIEWS), "tview")
                    enabled = data.draw(st.booleans(), "on")
                    self.run(db, render(db, "SELECT tview.set_patching({}, {})", name, enabled))
                else:
                    self.write(db, data, in_tx=False)

            @rule(data=st.data(), ending=st.sampled_from(["COMMIT", "ROLLBACK"]))
            def transaction(self, data, ending):
                self.script.append("BEGIN;")
                for _ in range(data.draw(st.integers(0, 3), "before savepoint")):
                    self.write(tx, data, in_tx=True)
                if data.draw(st.integers(0, 7), "truncate in transaction") == 0:
                    self.run(tx, f"TRUNCATE {data.draw(st.sampled_from(TABLES), 'table')} CASCADE")
                    if not deferred:
                        self.check(tx, "TRUNCATE in a transaction")
                if data.draw(st.booleans(), "savepoint"):
                    self.run(tx, "SAVEPOINT a")
                    for _ in range(data.draw(st.integers(1, 3), "in savepoint")):
                        self.write(tx, data, in_tx=True)
                    if data.draw(st.booleans(), "nested savepoint"):
                        self.run(tx, "SAVEPOINT b")
                        self.write(tx, data, in_tx=True)
                        self.run(tx, data.draw(st.sampled_from(["ROLLBACK TO SAVEPOINT b",
                                                                "RELEASE SAVEPOINT b"]), "end b"))
                    failed = False
                    if data.draw(st.booleans(), "fail in savepoint"):
                        # an error after the engine did work: the subtransaction aborts
                        found = keys(tx)["tb_company"]
                        if found:
                            failed = True
                            stmt = render(tx, "INSERT INTO tb_company VALUES ({}, 'dup', NULL)", found[0])
                            self.script.append(stmt + ";  -- fails: unique_violation")
                            try:
                                tx.execute(stmt)
                            except errors.UniqueViolation:
                                pass
                            else:
                                self.fail("duplicate key did not fail")
                    ends = ["ROLLBACK TO SAVEPOINT a"] + ([] if failed else ["RELEASE SAVEPOINT a"])
                    self.run(tx, data.draw(st.sampled_from(ends), "end a"))
                    if not deferred:
                        self.check(tx, "end of savepoint")
                if deferred and data.draw(st.integers(0, 3), "flush") == 0:
                    # deferred refreshes run when their constraint trigger is made immediate
                    self.run(tx, "SET CONSTRAINTS ALL IMMEDIATE")
                    self.check(tx, "SET CONSTRAINTS ALL IMMEDIATE")
                    self.run(tx, "SET CONSTRAINTS ALL DEFERRED")
                for _ in range(data.draw(st.integers(0, 2), "after savepoint")):
                    self.write(tx, data, in_tx=True)
                self.script.append(ending + ";")
                try:
                    tx.commit() if ending == "COMMIT" else tx.rollback()
                except psycopg.Error as e:
                    self.fail(f"{ending} failed: {type(e).__name__}: {e}")
                self.check(db, ending)

            def teardown(self):
                if tx.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    tx.rollback()

        run_state_machine_as_test(RandomWorkload, settings=settings(
            max_examples=max(1, round(max_examples * SCALE)), stateful_step_count=steps,
            deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                   HealthCheck.filter_too_much]))


@pytest.mark.parametrize(("mode", "order", "max_examples", "steps", "patch_threshold"), [
    ("immediate", "", 45, 30, None),
    ("immediate", "DESC", 20, 30, None),
    ("deferred", "", 40, 30, None),
    # a change of more than one row of a TVIEW hands its readers keys, not row images, as a
    # bulk change does
    ("immediate", "", 25, 30, "1"),
])
def test_random_workload_keeps_every_tview_equal_to_its_definition(db, dsn, mode, order, max_examples, steps,
                                                                   patch_threshold):
    if patch_threshold is not None:
        set_engine(db, patch_threshold=patch_threshold)
    run_workload(db, dsn, mode, order, max_examples, steps)
