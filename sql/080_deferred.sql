-- Deferred mode: keys are queued per transaction, deduplicated, and refreshed once at
-- commit by a deferred constraint trigger. The queue is an ordinary (unlogged) table, not a
-- temporary one, so a deferred transaction can still be PREPAREd; rows of rolled-back
-- statements and savepoints vanish with them.

CREATE UNLOGGED TABLE IF NOT EXISTS tview.queue (
    txid      xid8 NOT NULL,
    tview_id  integer NOT NULL,     -- no FK: a per-row check would cost more than the queue
    key       bigint              -- NULL: refresh the whole TVIEW
);
CREATE UNIQUE INDEX IF NOT EXISTS queue_entry_idx ON tview.queue (txid, tview_id, key) NULLS NOT DISTINCT;
COMMENT ON TABLE tview.queue IS 'Keys of deferred TVIEWs waiting for their transaction to commit';

-- One row per transaction with queued work; inserting it arms the commit-time flush.
CREATE UNLOGGED TABLE IF NOT EXISTS tview.pending (
    txid xid8 PRIMARY KEY
);

-- The keys first, then the pending row: under SET CONSTRAINTS ALL IMMEDIATE (or ... tview.
-- tview_flush_at_commit IMMEDIATE) the flush runs at the end of the pending row's INSERT,
-- and must find every key; it deletes the pending row, so the next write arms it again.
CREATE OR REPLACE FUNCTION tview._enqueue(tview_id int, keys bigint[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me xid8 := pg_current_xact_id();
BEGIN
    IF keys IS NULL THEN
        INSERT INTO tview.queue (txid, tview_id, key) VALUES (me, tview_id, NULL) ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO tview.queue (txid, tview_id, key)
        SELECT me, tview_id, k FROM unnest(keys) k ON CONFLICT DO NOTHING;
    END IF;
    INSERT INTO tview.pending (txid) VALUES (me) ON CONFLICT DO NOTHING;
END;
$$;

-- At commit (or SET CONSTRAINTS ... IMMEDIATE): refresh everything queued, once.
CREATE OR REPLACE FUNCTION tview._flush_deferred() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off     -- a policy raises instead of running as the owner
AS $$
DECLARE
    me   xid8 := pg_current_xact_id();
    work jsonb := '{}';
    item record;
BEGIN
    -- Replica sessions (a subscription's workers, several at once while tables are first
    -- copied) write without the foreign key checks that order writers elsewhere: their flushes
    -- take turns, so that each computes after the commits of those before it, never from a
    -- state that lacks another's rows (a post copied while its author was being copied).
    IF current_setting('session_replication_role') = 'replica' THEN
        PERFORM pg_advisory_xact_lock(1953914229, 0);
    END IF;
    FOR item IN
        WITH drained AS (DELETE FROM tview.queue q WHERE q.txid = me RETURNING q.tview_id, q.key)
        SELECT tview_id, bool_or(key IS NULL) AS whole, array_agg(key) FILTER (WHERE key IS NOT NULL) AS keys
        FROM drained GROUP BY tview_id
    LOOP
        work := tview._add_work(work, item.tview_id, coalesce(item.keys, '{}'), item.whole, 0);
    END LOOP;
    DELETE FROM tview.pending WHERE txid = me;
    IF work <> '{}' THEN
        PERFORM tview._cascade(work, NULL, 'COMMIT', true);
    END IF;
    RETURN NULL;
END;
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'tview.pending'::regclass
                   AND tgname = 'tview_flush_at_commit') THEN
        CREATE CONSTRAINT TRIGGER tview_flush_at_commit AFTER INSERT ON tview.pending
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tview._flush_deferred();
    END IF;
END;
$$;
-- also in replica sessions: a subscription's apply worker queues replicated rows' keys
ALTER TABLE tview.pending ENABLE ALWAYS TRIGGER tview_flush_at_commit;

CREATE OR REPLACE FUNCTION tview._set_mode(p_name text, p_mode text, schemas name[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tview.tviews;
BEGIN
    PERFORM tview._require_engine_owner('change the mode of TVIEW', p_name);
    t := tview._get(p_name, schemas);
    PERFORM tview._check_mode(p_mode);
    UPDATE tview.tviews SET mode = p_mode WHERE id = t.id;
    PERFORM tview._install_captures_reading(ARRAY[t.id]);   -- refreshed directly or not
END;
$$;

CREATE OR REPLACE FUNCTION tview.set_mode(name text, mode text) RETURNS void
LANGUAGE sql
AS $$ SELECT tview._set_mode($1, $2, pg_catalog.current_schemas(false)) $$;
COMMENT ON FUNCTION tview.set_mode(text, text) IS
    'immediate: refreshed at the end of each statement; deferred: queued and refreshed once at commit';
