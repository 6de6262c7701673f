"""The bench's workloads: the data set, the variant schemas that keep it, and the arms that time
one operation in each; nothing here touches a database."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from ...events import percentile

WORKLOADS = ["medium", "single_row", "large_cascade", "bulk", "full_refresh", "locking", "events", "alter",
             "versus_hand", "scale_m"]
DEFAULT_WORKLOADS = [w for w in WORKLOADS if w != "scale_m"]   # scale_m takes minutes: only on request
CLIENT_COUNTS = (1, 2, 4)
NOT_IMPLEMENTED = "not implemented (the engine has no smart patching yet: no tview.patching)"


# -- sizes -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sizes:
    """Row counts of one data set; big_posts > 0 gives the last user that many posts."""

    users: int
    posts: int
    comments: int
    big_posts: int = 0

    def scaled(self, factor: float) -> Sizes:
        """Multiply every count, keeping the minimum the data shape needs (2 commenters, 2 posters)."""
        def times(n: int, least: int) -> int:
            return max(least, round(n * factor)) if n else 0
        posts = times(self.posts, 4)
        big = min(times(self.big_posts, 1), posts // 2)
        return Sizes(times(self.users, 4), posts, times(self.comments, 4), big)

    @property
    def commenters(self) -> int:
        return self.users // 2

    @property
    def poster(self) -> int:
        """A typical poster (writes posts, no comments): the author renamed by the cascades."""
        return self.commenters + 1

    @property
    def posts_per_poster(self) -> int:
        return (self.posts - self.big_posts) // (self.users - self.commenters - (1 if self.big_posts else 0))

    @property
    def big_author(self) -> int:
        return self.users

    @property
    def comment(self) -> int:
        """The comment edited by the single-row and leaf workloads."""
        return max(1, self.comments // 2)

    @property
    def post(self) -> int:
        return max(1, self.posts // 2)

    def describe(self) -> str:
        return f"{self.users:,} users, {self.posts:,} posts, {self.comments:,} comments"


FULL_SIZES = {
    "blog": Sizes(100, 1_000, 5_000),                  # the prior art's medium cascade
    "large": Sizes(100, 2_000, 5_000, big_posts=1_000),
    "refresh": Sizes(10_000, 100_000, 200_000),
    "versus_hand": Sizes(1_000, 10_000, 100_000),
    "scale_m": Sizes(10_000, 100_000, 1_000_000),
}
QUICK_SIZES = {
    "blog": Sizes(10, 40, 120),
    "large": Sizes(10, 60, 120, big_posts=30),
    "refresh": Sizes(20, 200, 400),
    "versus_hand": Sizes(20, 200, 1_000),
    "scale_m": Sizes(20, 200, 1_000),
}
BULK_ROWS = {"full": 10_000, "quick": 200}


# -- SQL: tables, data, definitions --------------------------------------------------------

TABLES_SQL = """
CREATE TABLE tb_user (pk_user int PRIMARY KEY, name text NOT NULL, email text NOT NULL);
CREATE TABLE tb_post (pk_post int PRIMARY KEY, fk_user int NOT NULL REFERENCES tb_user, title text NOT NULL);
CREATE TABLE tb_comment (pk_comment int PRIMARY KEY, fk_post int NOT NULL REFERENCES tb_post,
                         fk_user int NOT NULL REFERENCES tb_user, body text NOT NULL);
CREATE INDEX ON tb_post (fk_user);
CREATE INDEX ON tb_comment (fk_post);
CREATE INDEX ON tb_comment (fk_user);
"""

USER_DEF = """SELECT u.pk_user, jsonb_build_object('id', u.pk_user, 'name', u.name, 'email', u.email) AS data
FROM tb_user u"""

COMMENT_DEF = """SELECT c.pk_comment, c.fk_post, c.fk_user,
       jsonb_build_object('id', c.pk_comment, 'body', c.body, 'author', u.data) AS data
FROM tb_comment c JOIN tv_user u ON u.pk_user = c.fk_user"""

POST_DEF = """SELECT p.pk_post, p.fk_user,
       jsonb_build_object('id', p.pk_post, 'title', p.title, 'author', u.data,
                          'comments', coalesce((SELECT jsonb_agg(c.data ORDER BY c.pk_comment)
                                                FROM tv_comment c WHERE c.fk_post = p.pk_post),
                                               '[]'::jsonb)) AS data
FROM tb_post p JOIN tv_user u ON u.pk_user = p.fk_user"""

# Comment's definition spelled differently (the same rows) and with one more key (every row differs).
COMMENT_DEF_RESPELLED = COMMENT_DEF.replace(" AS data", "  AS data")
COMMENT_DEF_WIDER = COMMENT_DEF.replace("'author', u.data)", "'author', u.data, 'v', 2)")

# The same post documents from the base tables only: one view, as a user would write it.
FLAT_POST_DEF = """SELECT p.pk_post, p.fk_user,
       jsonb_build_object(
           'id', p.pk_post, 'title', p.title,
           'author', jsonb_build_object('id', u.pk_user, 'name', u.name, 'email', u.email),
           'comments', coalesce((
               SELECT jsonb_agg(jsonb_build_object(
                          'id', c.pk_comment, 'body', c.body,
                          'author', jsonb_build_object('id', cu.pk_user, 'name', cu.name, 'email', cu.email))
                      ORDER BY c.pk_comment)
               FROM tb_comment c JOIN tb_user cu ON cu.pk_user = c.fk_user
               WHERE c.fk_post = p.pk_post), '[]'::jsonb)) AS data
FROM tb_post p JOIN tb_user u ON u.pk_user = p.fk_user"""

# Which post documents a change of each base table touches, over transition table {rows}:
# the lineage a careful user works out by hand for FLAT_POST_DEF.
HAND_KEYS = {
    "tb_post": "SELECT r.pk_post FROM {rows} r",
    "tb_comment": "SELECT r.fk_post FROM {rows} r",
    "tb_user": ("SELECT p.pk_post FROM tb_post p JOIN {rows} r ON p.fk_user = r.pk_user"
                " UNION SELECT c.fk_post FROM tb_comment c JOIN {rows} r ON c.fk_user = r.pk_user"),
}

HAND_SETUP_SQL = f"""
CREATE VIEW v_hand_post AS {FLAT_POST_DEF};
CREATE TABLE hand_post AS SELECT * FROM v_hand_post;
ALTER TABLE hand_post ADD PRIMARY KEY (pk_post);
CREATE INDEX ON hand_post (fk_user);
CREATE FUNCTION hand_refresh(keys int[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO hand_post AS t SELECT * FROM v_hand_post v WHERE v.pk_post = ANY (keys)
    ON CONFLICT (pk_post) DO UPDATE SET fk_user = EXCLUDED.fk_user, data = EXCLUDED.data
    WHERE t.fk_user IS DISTINCT FROM EXCLUDED.fk_user OR t.data IS DISTINCT FROM EXCLUDED.data;
    DELETE FROM hand_post t
    WHERE t.pk_post = ANY (keys) AND NOT EXISTS (SELECT 1 FROM v_hand_post v WHERE v.pk_post = t.pk_post);
END $$;
"""

HAND_TRIGGER_SQL = """
CREATE FUNCTION hand_on_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM hand_refresh(ARRAY({new}));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM hand_refresh(ARRAY({old}));
    ELSE
        PERFORM hand_refresh(ARRAY({new} UNION {old}));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER hand_ins AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hand_on_{table}();
CREATE TRIGGER hand_upd AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hand_on_{table}();
CREATE TRIGGER hand_del AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hand_on_{table}();
"""


# Column values of the initial rows, as SQL over the row's key {k}: shared by fill_sql and the
# statements that put a row back as it was.
USER_NAME, USER_EMAIL, COMMENT_BODY = "'user ' || {k}", "'user' || {k} || '@example.com'", "'comment ' || {k}"


def comment_rows_sql(first: int, count: int, sizes: Sizes, body: str) -> str:
    """INSERT of comments first+1 .. first+count: spread evenly over posts, written by commenters.

    Shared by the initial data and the bulk workload so that both have the same shape."""
    return (f"INSERT INTO tb_comment (pk_comment, fk_post, fk_user, body)"
            f" SELECT {first} + g, 1 + ({first} + g - 1) % {sizes.posts},"
            f" 1 + (({first} + g - 1)::bigint * 7919) % {sizes.commenters}, {body}"
            f" FROM generate_series(1, {count}) g")


def fill_sql(sizes: Sizes) -> list[str]:
    """Deterministic rows: the same in every variant schema of a workload."""
    posters = sizes.users - sizes.commenters - (1 if sizes.big_posts else 0)
    author = f"{sizes.commenters} + 1 + (g - 1) % {posters}"
    if sizes.big_posts:
        author = f"CASE WHEN g <= {sizes.big_posts} THEN {sizes.big_author} ELSE {author} END"
    return [
        f"INSERT INTO tb_user SELECT g, {USER_NAME.format(k='g')}, {USER_EMAIL.format(k='g')}"
        f" FROM generate_series(1, {sizes.users}) g",
        f"INSERT INTO tb_post SELECT g, {author}, 'post ' || g FROM generate_series(1, {sizes.posts}) g",
        comment_rows_sql(0, sizes.comments, sizes, COMMENT_BODY.format(k="g")),
    ]


# The operations that are timed. Same text in every arm that compares them.
def rename_user(pk: int) -> str:
    return f"UPDATE tb_user SET name = name || ' (renamed)', email = 'renamed.' || email WHERE pk_user = {pk}"


def edit_comment(pk: int) -> str:
    return f"UPDATE tb_comment SET body = body || ' (edited)' WHERE pk_comment = {pk}"


def restore_user(pk: int) -> str:
    """Undo rename_user (the values fill_sql gave the row)."""
    name, email = USER_NAME.format(k="pk_user"), USER_EMAIL.format(k="pk_user")
    return f"UPDATE tb_user SET name = {name}, email = {email} WHERE pk_user = {pk}"


def restore_comment(pk: int) -> str:
    """Undo edit_comment (the body fill_sql gave it), for arms that must commit."""
    return f"UPDATE tb_comment SET body = {COMMENT_BODY.format(k='pk_comment')} WHERE pk_comment = {pk}"


def edit_post(pk: int) -> str:
    return f"UPDATE tb_post SET title = title || ' (edited)' WHERE pk_post = {pk}"


# -- plans and results ---------------------------------------------------------------------

@dataclass
class Arm:
    """One way of doing an operation: where (schema), how (settings), what is timed.

    revert: when set, the commit is timed too (e.g. NOTIFY costs only at commit) and these
    statements undo the change afterwards, untimed; otherwise the run is rolled back."""

    name: str
    schema: str
    timed: tuple[str, ...]
    settings: dict[str, str] = field(default_factory=dict)
    vs: str | None = None
    setup: tuple[str, ...] = ()
    revert: tuple[str, ...] | None = None
    needs_patching: bool = False
    unavailable: str | None = None          # cannot run here, by design (e.g. no smart patching yet)
    error: str | None = None                # could not run: the server's error
    samples_ms: list[float] = field(default_factory=list)
    modes: dict[str, str] = field(default_factory=dict)
    drift: int | None = None
    ratio: float | None = None

    @property
    def own_session(self) -> bool:
        """Run on a connection of its own: setting session_replication_role (even SET LOCAL, and
        again at its rollback) discards every cached plan of the session, so on the shared
        connection each arm after it would replan every statement it runs, the engine's most."""
        return "session_replication_role" in self.settings

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None

    @property
    def p90(self) -> float | None:
        """With few runs, the worst but one or the worst."""
        return percentile(sorted(self.samples_ms), 90)


@dataclass
class Throughput:
    """Commits per second of `clients` connections doing leaf updates for a fixed time."""

    name: str
    schema: str
    clients: int
    settings: dict[str, str] = field(default_factory=dict)
    vs: str | None = None
    commits: int = 0
    errors: int = 0
    seconds: float = 0.0
    per_second: float | None = None
    ratio: float | None = None


@dataclass
class Plan:
    """A workload: the variant schemas to build, the arms to time, what to tell the reader."""

    name: str
    title: str
    sizes: Sizes
    builds: dict[str, str]                  # schema -> variant
    arms: list[Arm]
    note: str = ""
    throughput: list[Throughput] = field(default_factory=list)
    check_in_arms: bool = True              # verify inside each arm's transaction (skipped at scale M)
    oracle: dict[str, int] = field(default_factory=dict)         # engine TVIEWs after the runs
    hand_oracle: dict[str, int] = field(default_factory=dict)    # the hand-kept table after the runs
    error: str | None = None
    seconds: float = 0.0

    def values(self) -> dict[str, float | None]:
        """Arm medians (ms) and throughputs (commits/s) by name, for the targets."""
        return {a.name: a.median for a in self.arms} | {t.name: t.per_second for t in self.throughput}


@dataclass
class Options:
    scale: float
    repeat: int
    quick: bool
    seconds: float
    patching: bool          # the engine has smart patching (tview.patching)
    event_log: bool         # the engine can log events to tview.events (used to report modes)

    def sizes(self, key: str) -> Sizes:
        return (QUICK_SIZES if self.quick else FULL_SIZES)[key].scaled(self.scale)

    @property
    def bulk_rows(self) -> int:
        return max(1, round(BULK_ROWS["quick" if self.quick else "full"] * self.scale))


# -- workloads -----------------------------------------------------------------------------

def patch_arm(arm: Arm, opts: Options) -> Arm:
    """Mark an arm that needs smart patching; without it in the engine it is reported, never timed."""
    arm.needs_patching = True
    if not opts.patching:
        arm.unavailable = NOT_IMPLEMENTED
    return arm


def maintenance_arms(prefix: str, op: str, opts: Options) -> list[Arm]:
    """Bare write (the floor), TVIEW recompute and TVIEW patch of one operation."""
    composed = f"{prefix}_composed"
    return [
        Arm("bare write", f"{prefix}_bare", (op,)),
        Arm("TVIEW recompute", composed, (op,), {"tview.patching": "off"}, vs="bare write"),
        patch_arm(Arm("TVIEW patch", composed, (op,), {"tview.patching": "on"}, vs="bare write"), opts),
    ]


def plan_medium(opts: Options) -> Plan:
    sizes = opts.sizes("blog")
    return Plan("medium", "medium cascade: rename one author (name and email)", sizes,
                {"medium_bare": "bare", "medium_composed": "composed"},
                maintenance_arms("medium", rename_user(sizes.poster), opts),
                note=f"user {sizes.poster} is the author of {sizes.posts_per_poster} posts;"
                     " composed TVIEWs user, comment, post")


def plan_single_row(opts: Options) -> Plan:
    sizes = opts.sizes("blog")
    return Plan("single_row", "single row: edit one comment's text", sizes,
                {"single_row_bare": "bare", "single_row_composed": "composed"},
                maintenance_arms("single_row", edit_comment(sizes.comment), opts),
                note="composed TVIEWs user, comment, post")


def plan_large_cascade(opts: Options) -> Plan:
    sizes = opts.sizes("large")
    op = rename_user(sizes.big_author)
    return Plan("large_cascade", f"large cascade: rename the author of {sizes.big_posts:,} posts", sizes,
                {"large_bare": "bare", "large_flat": "flat"},
                [Arm("bare write", "large_bare", (op,)),
                 Arm("set-based", "large_flat", (op,), {"tview.batch_threshold": "0"}, vs="bare write"),
                 Arm("per-key", "large_flat", (op,), {"tview.batch_threshold": "100000000"}, vs="set-based")],
                note="one TVIEW post over the base tables; the same UPDATE with tview.batch_threshold"
                     " 0 (every key in one statement) and 1e8 (one key at a time)")


def plan_bulk(opts: Options) -> Plan:
    sizes = opts.sizes("blog")
    insert = comment_rows_sql(sizes.comments, opts.bulk_rows, sizes, "'bulk ' || g")
    delete = f"DELETE FROM tb_comment WHERE pk_comment > {sizes.comments}"
    return Plan("bulk", f"bulk: insert {opts.bulk_rows:,} comments in one statement, then delete them", sizes,
                {"bulk_bare": "bare", "bulk_composed": "composed"},
                [Arm("bare insert", "bulk_bare", (insert,)),
                 Arm("TVIEW insert", "bulk_composed", (insert,), vs="bare insert"),
                 Arm("bare delete", "bulk_bare", (delete,), setup=(insert,)),
                 Arm("TVIEW delete", "bulk_composed", (delete,), setup=(insert,), vs="bare delete")],
                note="composed TVIEWs user, comment, post with the engine's default settings;"
                     " the delete arms insert first, untimed")


def plan_full_refresh(opts: Options) -> Plan:
    sizes = opts.sizes("refresh")
    op = edit_post(sizes.post)
    return Plan("full_refresh", f"full refresh after one change, at {sizes.posts:,} posts", sizes,
                {"refresh_flat": "flat", "refresh_mv": "mv"},
                [Arm("engine single-row", "refresh_flat", (op,)),
                 Arm("REFRESH MATERIALIZED VIEW", "refresh_mv", (op, "REFRESH MATERIALIZED VIEW mv_post"),
                     vs="engine single-row")],
                note="the same single definition as TVIEW post and as materialized view mv_post;"
                     " both arms time the UPDATE of one post title")


def plan_locking(opts: Options) -> Plan:
    sizes = opts.sizes("blog")
    op = edit_comment(sizes.comment)
    return Plan("locking", "row locking: single-row write with tview.row_locks off vs on", sizes,
                {"locking_composed": "composed"},
                [Arm("row_locks off", "locking_composed", (op,), {"tview.row_locks": "off"}),
                 Arm("row_locks on", "locking_composed", (op,), {"tview.row_locks": "on"},
                     vs="row_locks off")],
                note="edit one comment; composed TVIEWs user, comment, post")


def plan_events(opts: Options) -> Plan:
    sizes = opts.sizes("blog")
    op, undo = edit_comment(sizes.comment), restore_comment(sizes.comment)
    return Plan("events", "events: single-row write with tview.notify off vs on (commit timed)", sizes,
                {"events_composed": "composed"},
                [Arm("notify off", "events_composed", (op,), {"tview.notify": "off"}, revert=(undo,)),
                 Arm("notify on", "events_composed", (op,), {"tview.notify": "on"}, vs="notify off",
                     revert=(undo,))],
                note="NOTIFY is queued at commit, so these runs commit (timed)"
                     " and revert afterwards (untimed)")


def versus_hand_arms(sizes: Sizes, opts: Options) -> list[Arm]:
    """A leaf edit and a parent rename: bare (no trigger fires), the hand trigger, the engine with
    the hand trigger's own definition, and the composed TVIEWs, patching and recomputing."""
    schemas = {"hand trigger": ("m_hand", {}), "engine": ("m_flat", {}),
               "composed patch": ("m_composed", {"tview.patching": "on"}),
               "composed recompute": ("m_composed", {"tview.patching": "off"}),
               "bare": ("m_hand", {"session_replication_role": "replica"})}   # no ordinary trigger fires
    arms = []
    for op_name, op in (("leaf", edit_comment(sizes.comment)), ("parent", rename_user(sizes.poster))):
        for arm_name, (schema, settings) in schemas.items():
            arm = Arm(f"{arm_name} {op_name}", schema, (op,), settings,
                      vs=None if arm_name == "hand trigger" else f"hand trigger {op_name}")
            arms.append(patch_arm(arm, opts) if arm_name == "composed patch" else arm)
    return arms


VERSUS_HAND_BUILDS = {"m_hand": "hand", "m_flat": "flat", "m_composed": "composed"}


def versus_hand_note(sizes: Sizes) -> str:
    return (f"leaf = one comment body; parent = rename user {sizes.poster} ({sizes.posts_per_poster} posts);"
            " hand trigger and engine share one definition; composed = TVIEWs user, comment, post;"
            " bare = the same write with no trigger firing")


def plan_versus_hand(opts: Options) -> Plan:
    sizes = opts.sizes("versus_hand")
    return Plan("versus_hand", "versus a hand trigger: leaf update, parent rename", sizes, VERSUS_HAND_BUILDS,
                versus_hand_arms(sizes, opts), note=versus_hand_note(sizes), check_in_arms=False)


def plan_scale_m(opts: Options) -> Plan:
    sizes = opts.sizes("scale_m")

    def clients(n: int) -> str:
        return f"{n} client{'s' if n > 1 else ''}"
    # NOTIFY takes a database-wide lock until commit: notifying writers commit one at a time.
    # With tview.notify = auto they notify only while a listener is registered (none here).
    schemas = {"hand trigger": ("m_hand", {}), "engine": ("m_flat", {}),
               "engine, events off": ("m_flat", {"tview.notify": "off"}),
               "engine, notify auto": ("m_flat", {"tview.notify": "auto"}),
               "composed patch": ("m_composed", {"tview.patching": "on"})}
    throughput = [Throughput(f"{name}, {clients(n)}", schema, n, settings,
                             vs=None if name == "hand trigger" else f"hand trigger, {clients(n)}")
                  for n in CLIENT_COUNTS for name, (schema, settings) in schemas.items()
                  if name != "composed patch" or opts.patching]
    return Plan("scale_m", "scale M: leaf update, parent rename, concurrent leaf updates", sizes,
                VERSUS_HAND_BUILDS, versus_hand_arms(sizes, opts), note=versus_hand_note(sizes),
                throughput=throughput, check_in_arms=False)


def plan_alter(opts: Options) -> Plan:
    sizes = opts.sizes("blog")

    def alter(definition: str) -> tuple[str]:
        return (f"SELECT tview.alter('comment', $def${definition}$def$)",)
    return Plan("alter", "tview.alter of comment (its transaction: how long writers wait), against a whole refresh",
                sizes, {"alter_composed": "composed"},
                [Arm("refresh comment", "alter_composed", ("SELECT tview.refresh('comment')",)),
                 Arm("alter, same rows", "alter_composed", alter(COMMENT_DEF_RESPELLED), vs="refresh comment"),
                 Arm("alter, every row", "alter_composed", alter(COMMENT_DEF_WIDER), vs="refresh comment")],
                note=f"composed TVIEWs user, comment, post; {sizes.comments:,} comments, embedded in"
                     f" {sizes.posts:,} posts; writers of the tables comment reads wait for the alter's transaction,"
                     " readers of tv_comment do not")


PLANS: dict[str, Callable[[Options], Plan]] = {
    "medium": plan_medium, "single_row": plan_single_row, "large_cascade": plan_large_cascade,
    "bulk": plan_bulk, "full_refresh": plan_full_refresh, "locking": plan_locking, "events": plan_events,
    "alter": plan_alter, "versus_hand": plan_versus_hand, "scale_m": plan_scale_m,
}
