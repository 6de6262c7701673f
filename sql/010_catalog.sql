-- Catalog: which TVIEWs exist, what they read, and how changes reach them (lineage).

CREATE TABLE IF NOT EXISTS tview.tviews (
    id           serial PRIMARY KEY,
    schema_name  name NOT NULL,
    name         name NOT NULL,              -- without the tv_ prefix
    table_oid    oid  NOT NULL UNIQUE,       -- tv_<name>
    view_oid     oid  NOT NULL UNIQUE,       -- v_<name>, the definition
    entity       name NOT NULL,              -- <entity> of the key column pk_<entity>
    key_column   name NOT NULL,
    definition   text NOT NULL,
    mode         text NOT NULL DEFAULT 'immediate' CHECK (mode IN ('immediate', 'deferred')),
    patching     boolean NOT NULL DEFAULT true,
    topo_level   integer NOT NULL DEFAULT 0, -- 0: reads no TVIEW; else 1 + max over TVIEWs read
    root_oid     oid,                        -- relation the key comes from (NULL: not provable)
    root_column  name,                       -- the key's column there (NULL: not provable, or an expression)
    analysis     text,                       -- why lineage is full for everything, if it is
    refresh_sql  text NOT NULL,              -- generated set-based refresh statement
    owner_name   name NOT NULL DEFAULT current_user,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (schema_name, name)
);
COMMENT ON TABLE tview.tviews IS 'One row per TVIEW (tv_<name> maintained from v_<name>)';
-- The key over a row of root_oid (%1$s its alias, escaped for format()): root_column, or an
-- expression of its columns (root_column NULL).
ALTER TABLE tview.tviews ADD COLUMN IF NOT EXISTS root_key text;

-- One row per (TVIEW, relation it reads). lineage says how a change of that relation is
-- turned into TVIEW keys: root (the key itself), child (the relation carries the key as an
-- fk), fk (the TVIEW row carries the relation''s key), path (through other relations),
-- several roles joined by "+", or full (whole TVIEW refreshed: not provable).
CREATE TABLE IF NOT EXISTS tview.dependencies (
    tview_id     integer NOT NULL REFERENCES tview.tviews(id) ON DELETE CASCADE,
    source_oid   oid NOT NULL,
    source_kind  text NOT NULL CHECK (source_kind IN ('table', 'tview')),
    lineage      text NOT NULL,
    key_sql      text,        -- keys query over %1$s (the changed rows); NULL when full
    roles        jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (tview_id, source_oid)
);
CREATE INDEX IF NOT EXISTS dependencies_source_idx ON tview.dependencies (source_oid);

-- Snapshot guard: rows per TVIEW, one of which (picked by the transaction id) every transaction
-- maintaining the TVIEW updates in the capture code. A REPEATABLE READ or SERIALIZABLE writer
-- refreshes from its transaction's snapshot, which misses rows committed after it: it
-- locks the rows of every TVIEW its write can reach (tview._check_snapshot), so it gets
-- 40001 where another transaction maintained one of them unseen, and later maintainers wait
-- for its commit.
CREATE TABLE IF NOT EXISTS tview.stamps (
    tview_id integer NOT NULL REFERENCES tview.tviews(id) ON DELETE CASCADE,
    slot     integer NOT NULL,
    xid      xid8,                        -- the transaction that last maintained the TVIEW here
    PRIMARY KEY (tview_id, slot)
);

-- Slots per TVIEW: two transactions maintaining a TVIEW at once wait for each other only when
-- their ids pick the same one.
CREATE OR REPLACE FUNCTION tview._stamp_slots() RETURNS int
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 64 $$;

CREATE OR REPLACE FUNCTION tview._add_stamps(tview_ids int[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO tview.stamps (tview_id, slot)
    SELECT i, s FROM unnest(tview_ids) i, generate_series(0, tview._stamp_slots() - 1) s
    ON CONFLICT DO NOTHING
$$;
SELECT tview._add_stamps(ARRAY(SELECT id FROM tview.tviews));   -- TVIEWs of an older release

-- A TVIEW's name as the server spells it: schema.tv_<name>, quoted where needed.
CREATE OR REPLACE FUNCTION tview._label(schema_name name, name name) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT format('%I.%I', schema_name, 'tv_' || name) $$;

-- The table and the backing view a TVIEW's names (schema.tv_<name>, schema.v_<name>) resolve
-- to now, NULL where none: after a restore from a dump, not the oids the catalog keeps.
CREATE OR REPLACE FUNCTION tview._relations_named(schema_name name, name name, OUT table_oid oid, OUT view_oid oid)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT to_regclass(tview._label(schema_name, name))::oid, to_regclass(format('%I.%I', schema_name, 'v_' || name))::oid $$;

-- The dependency graph, readable by people and by the app.
CREATE OR REPLACE VIEW tview.graph AS
SELECT tview._label(t.schema_name, t.name) AS tview,
       d.source_oid::regclass::text AS source,
       d.source_kind,
       d.lineage,
       t.id AS tview_id,
       d.source_oid
FROM tview.dependencies d
JOIN tview.tviews t ON t.id = d.tview_id;
