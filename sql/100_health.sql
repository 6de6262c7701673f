-- On-call diagnostics: tview.health() returns one row per finding.
--
--   check_name  what was checked (see below); severity: error (the read model is wrong or
--               writes fail), warning (slow, or a risk of going wrong), info (worth knowing,
--               and checks that could not run: "skipped (privilege)", "skipped (timeout)")
--   tview       the TVIEW concerned ('schema.tv_name'; several separated by ', ' when one
--               problem of a shared relation concerns several; NULL: the whole database)
--   detail      what is wrong; fix: the statement that fixes it, or what to do
--
-- Checks, cheap ones first, drift last (it is the one that can take time):
--   catalog_moved                     the catalog's oids are not the database's (a restore):
--                                     the only finding until tview.relink() ran
--   restored_tview                    a TVIEW's table and view restored without the catalog
--                                     (a dump of one schema): fix tview.adopt()
--   catalog_orphan, untracked_tview   catalog entry without its table/view; tv_/v_ pair
--                                     (or engine-made tv_ table) the catalog does not know
--   missing_trigger, disabled_trigger, foreign_trigger
--                                     the four statement triggers on every table TVIEWs read,
--                                     its partitions, inheritance children and ancestors
--   unfollowed_replication            a subscribed table TVIEWs read without the engine's row
--                                     trigger (replicated rows fire no statement trigger)
--   detach_pending                    a partition of a table TVIEWs read left "detach pending" by
--                                     an interrupted DETACH PARTITION ... CONCURRENTLY: its parent
--                                     leaves its rows out already, the TVIEWs still have them
--   missing_privilege                 SELECT, TRIGGER or UPDATE the engine owner lacks on a
--                                     table TVIEWs read (fix: the GRANT)
--   full_lineage                      relations whose changes refresh a TVIEW whole
--   unindexed_fk                      fk_* columns of relations TVIEWs read, without an index;
--                                     expressions keys are looked up by (an equality on an
--                                     expression, a key that is one), without an index on them
--   notify_queue                      pg_notification_queue_usage() above tview.notify_queue_pct
--   blocked_session                   sessions waiting longer than tview.lock_wait_ms for a
--                                     lock on a TVIEW (its table, a row, the engine's key lock)
--   slow_tview                        p95 refresh time of the last hour of tview.events (writes
--                                     only) above tview.slow_ms
--   deferred_backlog                  tview.queue rows of transactions that are not running
--   events_off, triggers_off, row_locks_off
--                                     settings in force that turn events, the engine's
--                                     triggers or its row locks off (tview.*: the database's
--                                     or the engine owner's role's, see tview.setting)
--   setting_ignored                   tview.* stored for another role: the engine ignores it
--   drift                             rows that differ from the definition (tview.verify):
--                                     whole when deep, else whole for TVIEWs of at most
--                                     tview.health_sample_rows rows and a sample of that many
--                                     keys of the others
-- A check the caller lacks privileges for gives one 'skipped (privilege)' info row (named
-- after the check, or after its group: catalog, triggers, settings).
--
-- Time: lock waits are cut at time_budget_ms (lock_timeout); drift stops verifying once
-- time_budget_ms is used up. A function cannot arm statement_timeout for itself, so the
-- caller sets it (tview-tui sets time_budget_ms + 500 ms): a verification it cancels is
-- reported as 'skipped (timeout)' and health() still returns every other finding.
--
-- Fix functions: tview.repair_triggers(name), tview.clean_queue(); full refresh is
-- tview.refresh(name).

-- An older health() with other result columns cannot be replaced in place.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_proc p
               WHERE p.oid = to_regprocedure('tview.health(boolean, integer)')
                 AND p.proargnames IS DISTINCT FROM
                     ARRAY['deep', 'time_budget_ms', 'check_name', 'severity', 'tview', 'detail', 'fix']) THEN
        DROP FUNCTION tview.health(boolean, integer);
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------------------
-- Fixes

CREATE OR REPLACE FUNCTION tview._repair_triggers(p_name text, schemas name[]) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    only_id   int;
    rel       oid;
    st        record;
    recreated int := 0;
    enabled   int := 0;
    bad       int;
    tables    text[] := '{}';
BEGIN
    PERFORM tview._require_engine_owner('repair the triggers of', coalesce(p_name, 'every TVIEW'));
    IF p_name IS NOT NULL THEN
        only_id := (tview._get(p_name, schemas)).id;
    END IF;
    PERFORM tview._sync_members();   -- partitions and children that came and went unseen
    FOR rel IN
        SELECT unnest(tview._capture_tables(ARRAY(SELECT d.source_oid FROM tview.dependencies d
                                                  WHERE only_id IS NULL OR d.tview_id = only_id)))
    LOOP
        SELECT count(*) FILTER (WHERE s.state IN ('missing', 'foreign')) INTO bad FROM tview._trigger_state(rel) s;
        IF bad > 0 THEN
            -- made beside any trigger that holds the engine's name (never dropped: it is not ours)
            PERFORM tview._install_table_capture(rel, false);
            recreated := recreated + bad;
            tables := tables || tview._qname(rel);
        END IF;
        IF bad = 0 AND tview._subscribed(rel) AND NOT tview._follows_replication(rel) THEN
            PERFORM tview._install_table_capture(rel, false);
            recreated := recreated + 1;
            tables := tables || tview._qname(rel);
        END IF;
        FOR st IN SELECT * FROM tview._trigger_state(rel) s WHERE s.state IN ('disabled', 'replica') LOOP
            BEGIN
                EXECUTE format('ALTER TABLE %s ENABLE TRIGGER %I', tview._qname(rel), st.tgname);
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'cannot re-enable trigger % on %: only the table''s owner may', st.tgname, rel::regclass
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = format('As the owner of %s, run: ALTER TABLE %s ENABLE TRIGGER %I; then SELECT tview.refresh(...) '
                                        'for the TVIEWs that read it.', rel::regclass, tview._qname(rel), st.tgname);
            END;
            enabled := enabled + 1;
            IF NOT tview._qname(rel) = ANY (tables) THEN
                tables := tables || tview._qname(rel);
            END IF;
        END LOOP;
    END LOOP;
    RETURN format('%s: re-created %s trigger(s), re-enabled %s trigger(s)%s',
                  CASE WHEN only_id IS NULL THEN 'all TVIEWs'
                       ELSE (SELECT tview._label(x.schema_name, x.name) FROM tview.tviews x WHERE x.id = only_id) END,
                  recreated, enabled,
                  CASE WHEN cardinality(tables) = 0 THEN ': nothing to repair'
                       ELSE ' on ' || array_to_string(tables, ', ') END);
END;
$$;

CREATE OR REPLACE FUNCTION tview.repair_triggers(name text DEFAULT NULL) RETURNS text
LANGUAGE sql
AS $$ SELECT tview._repair_triggers($1, pg_catalog.current_schemas(false)) $$;
COMMENT ON FUNCTION tview.repair_triggers(text) IS
    'Re-create missing (or foreign) and re-enable disabled engine triggers on the tables one TVIEW (or every TVIEW) reads; '
    'changes made meanwhile were missed: refresh the TVIEW afterwards';

-- Queue rows of transactions that ended without flushing them (never expected): refresh
-- their keys (harmless if the transaction rolled back), then remove them.
CREATE OR REPLACE FUNCTION tview.clean_queue() RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    work    jsonb := '{}';
    item    record;
    keys    bigint := 0;
    removed bigint;
    written bigint := 0;
BEGIN
    PERFORM tview._require_engine_owner('clean the deferred queue', NULL);
    FOR item IN
        SELECT q.tview_id, bool_or(q.key IS NULL) AS whole,
               array_agg(DISTINCT q.key) FILTER (WHERE q.key IS NOT NULL) AS keys
        FROM tview.queue q JOIN tview.tviews x ON x.id = q.tview_id
        WHERE pg_xact_status(q.txid) IS DISTINCT FROM 'in progress'
        GROUP BY q.tview_id
    LOOP
        work := tview._add_work(work, item.tview_id, coalesce(item.keys, '{}'), item.whole, 0);
        keys := keys + coalesce(cardinality(item.keys), 0);
    END LOOP;
    WITH gone AS (DELETE FROM tview.queue q WHERE pg_xact_status(q.txid) IS DISTINCT FROM 'in progress' RETURNING 1)
    SELECT count(*) INTO removed FROM gone;
    DELETE FROM tview.pending p WHERE pg_xact_status(p.txid) IS DISTINCT FROM 'in progress';
    IF work <> '{}' THEN
        written := tview._cascade(work, NULL, 'REFRESH', true);
    END IF;
    RETURN format('removed %s stale queue row(s); refreshed %s key(s) of %s TVIEW(s): %s row(s) written',
                  removed, keys, (SELECT count(*) FROM jsonb_object_keys(work)), written);
END;
$$;
COMMENT ON FUNCTION tview.clean_queue() IS
    'Refresh and remove deferred-queue rows of transactions that are no longer running';

-- ---------------------------------------------------------------------------------------
-- Checks. Each returns findings; health() runs each under its own exception handler.

CREATE OR REPLACE FUNCTION tview._health_catalog()
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'catalog_orphan', 'error', tview._label(x.schema_name, x.name),
           format('catalog entry %s has no %s any more: writes that reach this TVIEW fail', x.id,
                  concat_ws(' and ', CASE WHEN tab.oid IS NULL THEN 'table' END, CASE WHEN v.oid IS NULL THEN 'view' END)),
           format('SELECT tview.drop(%L)  -- then create it again from its definition (tview.tviews id %s)',
                  x.schema_name || '.' || x.name, x.id)
    FROM tview.tviews x
    LEFT JOIN pg_class tab ON tab.oid = x.table_oid
    LEFT JOIN pg_class v ON v.oid = x.view_oid
    WHERE tab.oid IS NULL OR v.oid IS NULL
    UNION ALL
    SELECT 'restored_tview', 'error', tview._label(r.schema_name, r.name),
           format('%s and its view were restored without the engine''s catalog (a dump of their schema alone?): '
                  'nothing keeps it current', tview._label(r.schema_name, r.name)),
           'SELECT tview.adopt()'
    FROM tview._restored_pairs() r
    UNION ALL
    SELECT 'untracked_tview', 'warning', format('%I.%I', n.nspname, c.relname),
           format('%s looks like a TVIEW (%s) but the catalog does not know it: nothing keeps it current',
                  format('%I.%I', n.nspname, c.relname),
                  CASE WHEN v.oid IS NOT NULL THEN format('with its view %I.%I', n.nspname, v.relname)
                       ELSE 'made by the engine' END),
           format('if it should be a TVIEW: drop it (and its view) and create it again with tview.create(%L, <definition>); '
                  'else rename it', substr(c.relname, 4))
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_class v ON v.relnamespace = c.relnamespace AND v.relname = 'v_' || substr(c.relname, 4)
                        AND v.relkind = 'v'
    WHERE c.relkind IN ('r', 'p') AND c.relname LIKE 'tv\_%'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tview') AND n.nspname NOT LIKE 'pg\_%'
      AND (v.oid IS NOT NULL OR obj_description(c.oid, 'pg_class') LIKE 'TVIEW maintained by the tview engine%')
      AND NOT EXISTS (SELECT 1 FROM tview.tviews x WHERE x.table_oid = c.oid)
      AND NOT EXISTS (SELECT 1 FROM tview._restored_pairs() r WHERE r.table_oid = c.oid)
    ORDER BY 1, 3
$$;

-- One row per (TVIEW, table it reads, kind of problem), naming the triggers.
CREATE OR REPLACE FUNCTION tview._health_triggers()
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.kind || '_trigger', 'error', tview._label(x.schema_name, x.name),
           format(CASE s.kind
                      WHEN 'missing' THEN '%s has no %s: %s on it do not reach this TVIEW'
                      WHEN 'disabled' THEN '%s has %s: %s on it do not reach this TVIEW'
                      ELSE '%s has %s not made by the engine (it must run the table''s capture function once per'
                           ' statement with its transition tables): %s on it may not reach this TVIEW' END,
                  m.relid::regclass,
                  string_agg(s.tgname || CASE s.state WHEN 'disabled' THEN ' disabled'
                                                      WHEN 'replica' THEN ' enabled for replica sessions only' ELSE '' END,
                             ', ' ORDER BY s.event),
                  string_agg(s.event || 's', ', ' ORDER BY s.event)),
           format('SELECT tview.repair_triggers(%1$L); SELECT tview.refresh(%1$L)', tview._label(x.schema_name, x.name))
    FROM tview.tviews x
    JOIN tview.dependencies d ON d.tview_id = x.id AND d.source_kind = 'table'
    JOIN pg_class c ON c.oid = d.source_oid
    CROSS JOIN LATERAL unnest(tview._capture_tables(ARRAY[d.source_oid])) m(relid)   -- its partitions and children too
    CROSS JOIN LATERAL (SELECT t.*, CASE WHEN t.state = 'replica' THEN 'disabled' ELSE t.state END AS kind
                        FROM tview._trigger_state(m.relid) t) s
    WHERE s.state <> 'ok'
    GROUP BY x.id, x.schema_name, x.name, m.relid, s.kind
    ORDER BY x.id, m.relid::regclass::text, s.kind
$$;

-- A subscribed table without the row trigger that follows replicated rows (a subscription made
-- while the engine had no event triggers, or the trigger dropped).
CREATE OR REPLACE FUNCTION tview._health_replication()
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'unfollowed_replication', 'error', tview._label(x.schema_name, x.name),
           format('%s receives rows from a subscription, whose apply worker fires no statement trigger, and it has no '
                  'engine row trigger: replicated changes do not reach this TVIEW', m.relid::regclass),
           format('SELECT tview.repair_triggers(%1$L); SELECT tview.refresh(%1$L)', tview._label(x.schema_name, x.name))
    FROM tview.tviews x
    JOIN tview.dependencies d ON d.tview_id = x.id AND d.source_kind = 'table'
    CROSS JOIN LATERAL unnest(tview._capture_tables(ARRAY[d.source_oid])) m(relid)
    WHERE tview._subscribed(m.relid) AND NOT tview._follows_replication(m.relid)
    ORDER BY x.id, m.relid::regclass::text
$$;

-- The first transaction of DETACH PARTITION ... CONCURRENTLY takes the partition out of its
-- parent's queries; the engine follows at the end of the command (or of its FINALIZE), which
-- an interrupted command never reaches. One row per pending partition.
CREATE OR REPLACE FUNCTION tview._health_detach_pending()
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'detach_pending', 'error',
           string_agg(DISTINCT tview._label(x.schema_name, x.name), ', '),
           format('%s is being detached from %s by a DETACH PARTITION ... CONCURRENTLY that did not finish: '
                  'queries of %2$s leave its rows out already, these TVIEWs still have them',
                  i.inhrelid::regclass, i.inhparent::regclass),
           format('ALTER TABLE %s DETACH PARTITION %s FINALIZE  -- outside a transaction block; '
                  'it waits for older transactions, then the TVIEWs follow', tview._qname(i.inhparent),
                  tview._qname(i.inhrelid))
    FROM pg_inherits i
    CROSS JOIN LATERAL pg_partition_ancestors(i.inhparent) a(relid)
    JOIN tview.dependencies d ON d.source_oid = a.relid AND d.source_kind = 'table'
    JOIN tview.tviews x ON x.id = d.tview_id
    WHERE i.inhdetachpending
    GROUP BY i.inhparent, i.inhrelid
    ORDER BY i.inhrelid::regclass::text
$$;

CREATE OR REPLACE FUNCTION tview._health_full_lineage()
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'full_lineage', 'info', tview._label(x.schema_name, x.name),
           format('any change of %s refreshes the whole TVIEW: %s',
                  string_agg(d.source_oid::regclass::text, ', ' ORDER BY d.source_oid::regclass::text),
                  coalesce((SELECT string_agg(DISTINCT r ->> 'reason', '; ')
                            FROM tview.dependencies d2 CROSS JOIN jsonb_array_elements(d2.roles) r
                            WHERE d2.tview_id = x.id AND d2.lineage = 'full'), x.analysis, 'lineage not provable')),
           format('join each of those relations by equality to %I in the definition (docs/engine.md, Lineage), '
                  'or accept a whole refresh per change', x.key_column)
    FROM tview.tviews x JOIN tview.dependencies d ON d.tview_id = x.id
    WHERE d.lineage = 'full'
    GROUP BY x.id
    ORDER BY x.id
$$;

-- Whether a relation has a valid, whole-table index whose first column is expr (a template
-- over %1$s, as the lineage analysis writes expressions): the index's expression is read
-- from its tree and written the same way, so the two compare as text.
CREATE OR REPLACE FUNCTION tview._expression_indexed(relid oid, expr text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_index i
                   WHERE i.indrelid = relid AND i.indkey[0] = 0 AND i.indisvalid AND i.indpred IS NULL
                     AND tview._expr_side(tview._nodetree_to_jsonb(i.indexprs::text) -> 0,
                                          '[{"rtes": [{"k": "base", "occ": 0}]}]',
                                          jsonb_build_array(jsonb_build_object('relid', relid))) ->> 'sql' = expr)
$$;

-- Columns fk_* without an index, and expressions keys are looked up by without an index of
-- their own: those of equalities keys queries join on, and a key that is an expression (a
-- keyed refresh finds its rows by it). Without JIT: the row estimates of the jsonb functions
-- (100 each) make the plan look big enough to compile, which takes seconds.
CREATE OR REPLACE FUNCTION tview._health_unindexed_fk()
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
    SELECT 'unindexed_fk', 'warning', r.readers,
           format('%s.%I has no index: keys that follow it scan the table', r.source_oid::regclass, a.attname),
           format('CREATE INDEX CONCURRENTLY ON %s (%I)', tview._qname(r.source_oid), a.attname)
    FROM (SELECT d.source_oid,
                 string_agg(DISTINCT tview._label(x.schema_name, x.name), ', ') AS readers
          FROM tview.dependencies d JOIN tview.tviews x ON x.id = d.tview_id
          GROUP BY d.source_oid) r
    JOIN pg_class c ON c.oid = r.source_oid
    JOIN pg_attribute a ON a.attrelid = r.source_oid AND a.attnum > 0 AND NOT a.attisdropped
                       AND a.attname LIKE 'fk\_%'
    WHERE NOT EXISTS (SELECT 1 FROM pg_index i
                      WHERE i.indrelid = r.source_oid AND i.indkey[0] = a.attnum
                        AND i.indisvalid AND i.indpred IS NULL)
    UNION ALL
    SELECT 'unindexed_fk', 'warning', string_agg(DISTINCT e.reader, ', '),
           format('%s has no index on %s: %s', e.relid::regclass, format(e.expr, quote_ident(c.relname)),
                  CASE WHEN bool_or(e.is_key) THEN 'keyed refreshes find their rows by it, scanning the table'
                       ELSE 'keys that follow it scan the table' END),
           format('CREATE INDEX CONCURRENTLY ON %s ((%s))', tview._qname(e.relid), format(e.expr, quote_ident(c.relname)))
    FROM (SELECT (l ->> 'relid')::oid AS relid, l ->> 'expr' AS expr, tview._label(x.schema_name, x.name) AS reader,
                 false AS is_key
          FROM tview.dependencies d JOIN tview.tviews x ON x.id = d.tview_id
          CROSS JOIN jsonb_array_elements(d.roles) o CROSS JOIN jsonb_array_elements(tview._list(o -> 'lookups')) l
          UNION ALL
          SELECT x.root_oid, x.root_key, tview._label(x.schema_name, x.name), true
          FROM tview.tviews x WHERE x.root_column IS NULL AND x.root_key IS NOT NULL) e
    JOIN pg_class c ON c.oid = e.relid
    WHERE NOT tview._expression_indexed(e.relid, e.expr)
    GROUP BY e.relid, e.expr, c.relname
    ORDER BY 4
$$;

CREATE OR REPLACE FUNCTION tview._health_notify_queue()
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'notify_queue', CASE WHEN q.pct >= 90 THEN 'error' ELSE 'warning' END, NULL::text,
           format('the NOTIFY queue is %s%% full (above tview.notify_queue_pct = %s): the engine''s writers send no '
                  'NOTIFY until it drains (their events reach only the log, when tview.log is on); other '
                  'notifying transactions fail at commit once it is full', round(q.pct, 4), q.threshold),
           'end the LISTENing session that sits in a long transaction (pg_stat_activity: idle in transaction)'
    FROM (SELECT (pg_notification_queue_usage() * 100)::numeric AS pct,
                 tview._queue_pct_setting(tview._settings()) AS threshold) q
    WHERE q.pct > q.threshold
$$;

-- Waits of at least tview.lock_wait_ms for: a lock on a TVIEW table (a full refresh holds it
-- EXCLUSIVE; a queue of waiters for one row wait on its tuple lock); the engine's advisory
-- locks (pg_advisory_xact_lock(1953914229, id) for new keys, (1953914229, -id) while it
-- creates a TVIEW's generated functions; (1953914229, 0), replica sessions' flushes taking
-- turns, names no TVIEW and is left out); a row of a TVIEW locked by
-- another transaction (the waiter holds the row's tuple lock and waits for that
-- transaction); another transaction that writes the same TVIEW, without a tuple lock (a key
-- both insert, or an engine function both create).
CREATE OR REPLACE FUNCTION tview._health_blocked_session()
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH db AS (SELECT oid FROM pg_database WHERE datname = current_database()),
    tv AS (SELECT x.id, x.table_oid, tview._label(x.schema_name, x.name) AS label FROM tview.tviews x),
    locks AS MATERIALIZED (SELECT * FROM pg_locks),
    waits AS (
        SELECT w.pid, tv.label, w.waitstart,
               CASE WHEN w.locktype = 'relation' THEN format('a lock (%s) on this TVIEW''s table', w.mode)
                    ELSE 'a row of this TVIEW' END AS what
        FROM locks w JOIN db ON w.database = db.oid JOIN tv ON tv.table_oid = w.relation
        WHERE NOT w.granted AND w.locktype IN ('relation', 'tuple', 'page')
        UNION ALL
        SELECT w.pid, tv.label, w.waitstart,
               CASE WHEN a.key > 0 THEN 'the engine''s lock for new keys of this TVIEW'
                    ELSE 'the engine''s lock for creating this TVIEW''s functions' END
        FROM locks w
        CROSS JOIN LATERAL (SELECT w.objid::bigint - CASE WHEN w.objid::bigint >= 2147483648 THEN 4294967296
                                                          ELSE 0 END AS key) a    -- the int4 key, signed
        JOIN db ON w.database = db.oid JOIN tv ON tv.id = abs(a.key)
        WHERE NOT w.granted AND w.locktype = 'advisory' AND w.classid = 1953914229 AND w.objsubid = 2
        UNION ALL
        SELECT w.pid, tv.label, w.waitstart, 'a row of this TVIEW'
        FROM locks w
        JOIN locks h ON h.pid = w.pid AND h.granted AND h.locktype = 'tuple'
        JOIN db ON h.database = db.oid JOIN tv ON tv.table_oid = h.relation
        WHERE NOT w.granted AND w.locktype = 'transactionid'
        UNION ALL
        SELECT w.pid, tv.label, w.waitstart, 'the transaction of another writer of this TVIEW'
        FROM locks w
        JOIN locks o ON o.locktype = 'transactionid' AND o.transactionid = w.transactionid AND o.granted
        JOIN locks hw ON hw.pid = w.pid AND hw.granted AND hw.locktype = 'relation' AND hw.mode = 'RowExclusiveLock'
        JOIN locks ho ON ho.pid = o.pid AND ho.granted AND ho.locktype = 'relation' AND ho.mode = 'RowExclusiveLock'
                     AND ho.relation = hw.relation
        JOIN db ON hw.database = db.oid JOIN tv ON tv.table_oid = hw.relation
        WHERE NOT w.granted AND w.locktype = 'transactionid'
          AND NOT EXISTS (SELECT 1 FROM locks t WHERE t.pid = w.pid AND t.granted AND t.locktype = 'tuple')
    )
    SELECT 'blocked_session', 'warning', w.label,
           format('backend %s%s has waited %s s for %s, held by backend %s (%s)',
                  w.pid, coalesce(' (' || nullif(wa.application_name, '') || ')', ''),
                  round(extract(epoch FROM clock_timestamp() - w.waitstart)::numeric, 1), w.what, b.pid,
                  coalesce(concat_ws(', ', nullif(ba.application_name, ''),
                                     ba.state || ' for ' || round(extract(epoch FROM clock_timestamp()
                                         - coalesce(ba.xact_start, ba.state_change))::numeric, 1) || ' s',
                                     'last statement: ' || left(regexp_replace(ba.query, '\s+', ' ', 'g'), 80)),
                           'no details: not allowed to see that session')),
           format('SELECT pg_terminate_backend(%s)  -- if that transaction is stuck; else let it commit', b.pid)
    FROM (SELECT DISTINCT ON (pid, label) * FROM waits ORDER BY pid, label) w
    CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS b(pid)
    LEFT JOIN pg_stat_activity wa ON wa.pid = w.pid
    LEFT JOIN pg_stat_activity ba ON ba.pid = b.pid
    WHERE w.waitstart IS NOT NULL
      AND clock_timestamp() - w.waitstart >= make_interval(secs => tview.setting('lock_wait_ms', '1000')::numeric / 1000)
    ORDER BY w.label, w.pid, b.pid
$$;

CREATE OR REPLACE FUNCTION tview._health_slow_tview()
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'slow_tview', 'warning', format('%I.%I', s.schema_name, s.table_name),
           format('p95 refresh time %s ms over %s refresh(es) after writes in the last hour (max %s ms), above '
                  'tview.slow_ms = %s%s', round(s.p95 / 1000, 1), s.n, round(s.max_us / 1000, 1), s.threshold,
                  CASE WHEN x.analysis IS NOT NULL OR EXISTS (SELECT 1 FROM tview.dependencies d
                                                              WHERE d.tview_id = x.id AND d.lineage = 'full')
                       THEN '; its lineage is full for some relations (whole refreshes)' ELSE '' END),
           format('EXPLAIN ANALYZE SELECT * FROM %I.%I WHERE %I = <a key>  -- then look at its indexes and '
                  'lineage, or use deferred mode', s.schema_name, 'v_' || substr(s.table_name, 4),
                  coalesce(x.key_column, 'pk_...'))
    FROM (SELECT e.payload ->> 'schema' AS schema_name, e.payload ->> 'tview' AS table_name,
                 percentile_cont(0.95) WITHIN GROUP (ORDER BY (e.payload ->> 'us')::numeric)::numeric AS p95,
                 max((e.payload ->> 'us')::numeric) AS max_us, count(*) AS n,
                 tview.setting('slow_ms', '100')::numeric AS threshold
          FROM tview.events e
          WHERE e.ts > now() - interval '1 hour' AND e.payload ->> 'op' IS DISTINCT FROM 'REFRESH'
          GROUP BY 1, 2) s
    LEFT JOIN tview.tviews x ON x.schema_name = s.schema_name AND 'tv_' || x.name = s.table_name
    WHERE s.p95 > s.threshold * 1000
    ORDER BY s.p95 DESC
$$;

CREATE OR REPLACE FUNCTION tview._health_deferred_backlog()
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'deferred_backlog', 'warning', tview._label(x.schema_name, x.name),
           format('%s queued key(s)%s of %s transaction(s) that ended without refreshing them%s',
                  count(q.key), CASE WHEN bool_or(q.key IS NULL) THEN ' and a whole refresh' ELSE '' END,
                  count(DISTINCT q.txid),
                  CASE WHEN x.id IS NULL THEN format(' (TVIEW id %s, which no longer exists)', q.tview_id) ELSE '' END),
           'SELECT tview.clean_queue()'
    FROM tview.queue q LEFT JOIN tview.tviews x ON x.id = q.tview_id
    WHERE pg_xact_status(q.txid) IS DISTINCT FROM 'in progress'
    GROUP BY q.tview_id, x.id, x.schema_name, x.name
    ORDER BY q.tview_id
$$;

-- Tables TVIEWs read on which the engine owner lacks SELECT, TRIGGER or UPDATE (a grant
-- revoked after create): every write to them, or to tables joined with them, fails.
CREATE OR REPLACE FUNCTION tview._health_privileges()
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$   -- plpgsql: the privilege helpers are defined later, in sql/110_privileges.sql
BEGIN
    RETURN QUERY
    SELECT 'missing_privilege'::text, 'error'::text,
           string_agg(tview._label(t.schema_name, t.name), ', ' ORDER BY t.schema_name, t.name),
           format('the engine owner (role %I) lacks %s on %s, which these TVIEWs read: writes that refresh them fail'
                  ' with "permission denied"', tview._engine_owner(),
                  array_to_string(tview._missing_grants(d.source_oid), ', '), d.source_oid::regclass),
           tview._grant_fix(d.source_oid) || ' (run by the table''s owner)'
    FROM tview.dependencies d
    JOIN tview.tviews t ON t.id = d.tview_id
    JOIN pg_class c ON c.oid = d.source_oid
    WHERE d.source_kind = 'table' AND cardinality(tview._missing_grants(d.source_oid)) > 0
    GROUP BY d.source_oid
    ORDER BY d.source_oid::regclass::text;
END;
$$;

-- Settings in force. The engine's (tview.*) come from the engine owner's role or the
-- database only (tview.setting): those in force are reported, and tview.* stored for other
-- roles, which the engine ignores, are pointed out. session_replication_role is PostgreSQL's:
-- stored for any role here, or, when none of those explains a value this session has, the
-- server's (postgresql.conf, ALTER SYSTEM) or the connection's options; the same for
-- tview.notify, which sessions may turn down (tview.setting).
CREATE OR REPLACE FUNCTION tview._health_settings()
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH rules(setting, good, check_name, severity, consequence) AS (VALUES
        ('tview.notify', 'on', 'events_off', 'info',
         'no NOTIFY events are sent: live tails see nothing (polling works only where tview.log = on)'),
        ('session_replication_role', NULL, 'triggers_off', 'error',
         'the engine''s triggers do not fire: writes do not reach any TVIEW'),
        ('tview.row_locks', 'on', 'row_locks_off', 'warning',
         'refreshes skip their row locks: concurrent writes can lose updates in TVIEWs')),
    stored AS (
        SELECT split_part(cfg, '=', 1) AS setting, substr(cfg, strpos(cfg, '=') + 1) AS value, s.setrole,
               s.setdatabase,
               CASE WHEN s.setrole = 0 AND s.setdatabase = 0 THEN 'every database and role'
                    WHEN s.setrole = 0 THEN format('database %I', current_database())
                    WHEN s.setdatabase = 0 THEN format('role %I', r.rolname)
                    ELSE format('role %I in database %I', r.rolname, current_database()) END AS scope,
               CASE WHEN s.setrole = 0 AND s.setdatabase = 0 THEN 'ALTER ROLE ALL'
                    WHEN s.setrole = 0 THEN format('ALTER DATABASE %I', current_database())
                    WHEN s.setdatabase = 0 THEN format('ALTER ROLE %I', r.rolname)
                    ELSE format('ALTER ROLE %I IN DATABASE %I', r.rolname, current_database()) END AS alter_cmd
        FROM pg_db_role_setting s
        LEFT JOIN pg_roles r ON r.oid = s.setrole
        CROSS JOIN unnest(s.setconfig) cfg
        WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))),
    owner AS (SELECT n.nspowner AS oid FROM pg_namespace n WHERE n.nspname = 'tview'),
    in_force AS (   -- tview.*: the engine owner's or the database's, highest precedence first
        SELECT DISTINCT ON (s.setting) s.setting, s.value, s.setrole, s.scope, s.alter_cmd
        FROM stored s
        WHERE s.setting LIKE 'tview.%' AND s.setrole IN (0, (SELECT oid FROM owner))
        ORDER BY s.setting, s.setrole <> 0 DESC, s.setdatabase <> 0 DESC),
    session AS (
        SELECT u.setting, nullif(current_setting(u.setting, true), '') AS value, NULL::oid AS setrole,
               format('new sessions of role %I (server configuration, ALTER SYSTEM or connection options)',
                      session_user) AS scope,
               NULL::text AS alter_cmd
        FROM rules u
        WHERE CASE WHEN u.setting = 'tview.notify'   -- the one a session may turn down: not the one in force?
                   THEN NOT EXISTS (SELECT 1 FROM in_force f WHERE f.setting = u.setting
                                    AND lower(f.value) = lower(current_setting(u.setting, true)))
                   WHEN u.setting LIKE 'tview.%' THEN false
                   ELSE NOT EXISTS (SELECT 1 FROM stored s WHERE s.setting = u.setting
                                    AND (s.setrole = 0
                                         OR s.setrole = (SELECT oid FROM pg_roles WHERE rolname = session_user))) END)
    SELECT u.check_name, u.severity, NULL::text,
           format('%s = %s for %s: %s', u.setting, v.value, v.scope, u.consequence),
           CASE WHEN v.alter_cmd IS NOT NULL THEN format('%s RESET %s', v.alter_cmd, u.setting)
                ELSE format('ALTER SYSTEM RESET %s (then SELECT pg_reload_conf()), or remove it from the connection'
                            ' options', u.setting) END
    FROM rules u
    JOIN (SELECT x.setting, x.value, x.setrole, x.scope, x.alter_cmd FROM in_force x
          UNION ALL
          SELECT x.setting, x.value, x.setrole, x.scope, x.alter_cmd FROM stored x WHERE x.setting NOT LIKE 'tview.%'
          UNION ALL
          SELECT * FROM session) v ON v.setting = u.setting
    WHERE v.value IS NOT NULL
      AND CASE WHEN u.good IS NULL THEN lower(v.value) = 'replica'
               WHEN u.setting = 'tview.notify' THEN tview._truthy(v.value) IS FALSE
               ELSE tview._truthy(v.value) IS DISTINCT FROM tview._truthy(u.good) END
    UNION ALL
    SELECT 'setting_ignored', 'info', NULL::text,
           format('%s = %s for %s is ignored: the engine reads its settings from the database and its owner''s '
                  'role (%I) only', s.setting, s.value, s.scope, (SELECT rolname FROM pg_roles WHERE oid = (SELECT oid FROM owner))),
           format('%s RESET %s; then, if it was meant for everyone, ALTER DATABASE %I SET %s = %s',
                  s.alter_cmd, s.setting, current_database(), s.setting, s.value)
    FROM stored s
    WHERE s.setting LIKE 'tview.%' AND s.setrole NOT IN (0, (SELECT oid FROM owner))
    ORDER BY 1, 4
$$;

-- ---------------------------------------------------------------------------------------
-- Drift

-- Was the current statement cancelled by statement_timeout (or is the time budget gone)?
-- A cancel by the user is neither, and is passed on.
CREATE OR REPLACE FUNCTION tview._timed_out(deadline timestamptz) RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT clock_timestamp() >= deadline
           OR (s.setting::bigint > 0
               AND clock_timestamp() - statement_timestamp() >= make_interval(secs => (s.setting::bigint - 100) / 1000.0))
    FROM pg_settings s WHERE s.name = 'statement_timeout'
$$;

CREATE OR REPLACE FUNCTION tview._more_rows_than(relid oid, n int) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    more boolean;
BEGIN
    EXECUTE format('SELECT count(*) > $1 FROM (SELECT 1 FROM %s LIMIT $1 + 1) s', tview._qname(relid)) INTO more USING n;
    RETURN more;
END;
$$;

-- Up to n random keys of a relation (a TVIEW table or the relation its key comes from),
-- key_sql: the key over a row of it (%1$s its alias: a column, or an expression of columns).
CREATE OR REPLACE FUNCTION tview._sample_keys(relid oid, key_sql text, n int) RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pages    double precision;
    estimate double precision;
    seen     bigint;
    keys     bigint[];
BEGIN
    SELECT c.relpages, c.reltuples INTO pages, estimate FROM pg_class c WHERE c.oid = relid;
    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s LIMIT $1) s', tview._qname(relid)) INTO seen USING 20 * n;
    estimate := greatest(estimate, seen, 1);
    -- twice the rows wanted, rows picked at random (BERNOULLI), or whole pages on big tables
    EXECUTE format('SELECT coalesce(array_agg(k), ''{}'') FROM (SELECT (%s)::bigint AS k FROM %s x TABLESAMPLE %s ($1)'
                   ' ORDER BY random() LIMIT $2) s',
                   format(key_sql, 'x'), tview._qname(relid), CASE WHEN pages > 10000 THEN 'SYSTEM' ELSE 'BERNOULLI' END)
        INTO keys USING least(100, 200.0 * n / estimate), n;
    RETURN keys;
END;
$$;

-- Rows of a TVIEW that differ from its definition: all (tview.verify), or those of the keys.
CREATE OR REPLACE FUNCTION tview._drift_rows(t tview.tviews, keys bigint[])
RETURNS TABLE (key bigint, problem text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    saved jsonb;
BEGIN
    IF keys IS NULL THEN
        RETURN QUERY SELECT * FROM tview._verify(tview._label(t.schema_name, t.name), '{}');
        RETURN;
    END IF;
    saved := tview._apply_settings(t.session_settings);   -- compared as its refreshes write it
    RETURN QUERY EXECUTE format($q$
        SELECT coalesce(s.k, c.k)::bigint,
               CASE WHEN c.k IS NULL THEN 'missing' WHEN s.k IS NULL THEN 'extra' ELSE 'different' END
        FROM (SELECT x.%1$I AS k, x::text AS r FROM %2$s x WHERE x.%1$I = ANY ($1)) s
        FULL JOIN (SELECT x.%1$I AS k, x::text AS r FROM %3$s x WHERE x.%1$I = ANY ($1)) c ON c.k = s.k
        WHERE s.k IS NULL OR c.k IS NULL OR s.r IS DISTINCT FROM c.r
        ORDER BY 1$q$, t.key_column, tview._qname(t.view_oid), tview._qname(t.table_oid)) USING keys;
    PERFORM tview._apply_settings(saved);
END;
$$;

CREATE OR REPLACE FUNCTION tview._health_drift(deep boolean, deadline timestamptz)
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t        tview.tviews;
    label    text;
    n        int := greatest(tview.setting('health_sample_rows', '1000')::int, 1);
    sample   bigint[];
    diff     record;
    no_time  boolean := false;
    budget_fix text := 'run the check again with a larger time budget (tview-tui check --budget-ms N)';
BEGIN
    FOR t IN SELECT x.* FROM tview.tviews x
             WHERE EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = x.table_oid)
               AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = x.view_oid)
             ORDER BY x.topo_level, x.id
    LOOP
        label := tview._label(t.schema_name, t.name);
        IF no_time OR clock_timestamp() >= deadline THEN
            no_time := true;
            RETURN QUERY SELECT 'drift', 'info', label,
                'skipped (timeout): the time budget was used up before this TVIEW was verified', budget_fix;
            CONTINUE;
        END IF;
        BEGIN
            sample := NULL;
            IF NOT deep AND tview._more_rows_than(t.table_oid, n) THEN
                sample := ARRAY(SELECT DISTINCT k FROM unnest(
                    tview._sample_keys(t.table_oid, tview._column_template(t.key_column), n)
                    || CASE WHEN t.root_key IS NOT NULL
                                 AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.root_oid)
                            THEN tview._sample_keys(t.root_oid, t.root_key, n) ELSE '{}' END) k ORDER BY 1);
            END IF;
            SELECT count(*) AS total,
                   count(*) FILTER (WHERE v.problem = 'missing') AS missing,
                   count(*) FILTER (WHERE v.problem = 'extra') AS extra,
                   count(*) FILTER (WHERE v.problem = 'different') AS different,
                   (array_agg(v.key ORDER BY v.key))[1:10] AS keys
              INTO diff FROM tview._drift_rows(t, sample) v;
            IF diff.total > 0 THEN
                RETURN QUERY SELECT 'drift', 'error', label,
                    format('%s row(s) differ from the definition%s (%s): keys %s%s', diff.total,
                           CASE WHEN sample IS NULL THEN '' ELSE format(' in a sample of %s key(s)', cardinality(sample)) END,
                           concat_ws(', ', nullif(diff.missing, 0) || ' missing', nullif(diff.extra, 0) || ' extra',
                                     nullif(diff.different, 0) || ' different'),
                           array_to_string(diff.keys, ', '), CASE WHEN diff.total > 10 THEN ', ...' ELSE '' END),
                    format('SELECT tview.refresh(%L)', label);
            END IF;
        EXCEPTION
            WHEN query_canceled THEN
                IF NOT tview._timed_out(deadline) THEN
                    RAISE;
                END IF;
                no_time := true;
                RETURN QUERY SELECT 'drift', 'info', label,
                    'skipped (timeout): verifying it took longer than the time budget', budget_fix;
            WHEN lock_not_available THEN
                RETURN QUERY SELECT 'drift', 'info', label, 'skipped (timeout): ' || SQLERRM, budget_fix;
            WHEN insufficient_privilege THEN
                RETURN QUERY SELECT 'drift', 'info', label, 'skipped (privilege): ' || SQLERRM,
                    'run the check as a role that can read the TVIEW and its definition (e.g. their owner)';
        END;
    END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION tview.health(deep boolean DEFAULT false, time_budget_ms int DEFAULT 2000)
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET lock_timeout = 0              -- restored on exit; set to the budget below
AS $$
DECLARE
    budget   int := greatest(coalesce(time_budget_ms, 2000), 0);
    deadline timestamptz := clock_timestamp() + make_interval(secs => budget / 1000.0);
    part     text;
BEGIN
    PERFORM set_config('lock_timeout', greatest(budget, 1)::text, true);
    IF tview._catalog_moved() THEN            -- every other check would read the old oids
        RETURN QUERY SELECT 'catalog_moved', 'error', NULL::text,
            'the catalog names relations by oids this database does not have (restored from a dump?): '
            'writes to the tables TVIEWs read fail until it is relinked',
            'SELECT tview.relink()';
        RETURN;
    END IF;
    FOREACH part IN ARRAY ARRAY['catalog', 'triggers', 'replication', 'detach_pending', 'privileges', 'full_lineage', 'unindexed_fk', 'notify_queue',
                                'blocked_session', 'slow_tview', 'deferred_backlog', 'settings', 'drift'] LOOP
        BEGIN
            IF part = 'drift' THEN
                RETURN QUERY SELECT * FROM tview._health_drift(deep, deadline);
            ELSE
                RETURN QUERY EXECUTE format('SELECT * FROM tview.%I()', '_health_' || part);
            END IF;
        EXCEPTION
            WHEN insufficient_privilege THEN
                RETURN QUERY SELECT part, 'info', NULL::text, 'skipped (privilege): ' || SQLERRM,
                    'run the check as a role that can read the engine''s catalog (e.g. the engine''s owner)';
            WHEN query_canceled THEN
                IF NOT tview._timed_out(deadline) THEN
                    RAISE;
                END IF;
                RETURN QUERY SELECT part, 'info', NULL::text, 'skipped (timeout): ' || SQLERRM,
                    'run the check again when the database is less busy, or with a larger time budget';
            WHEN lock_not_available THEN
                RETURN QUERY SELECT part, 'info', NULL::text, 'skipped (timeout): ' || SQLERRM,
                    'run the check again when the database is less busy, or with a larger time budget';
            WHEN OTHERS THEN
                RETURN QUERY SELECT part, 'warning', NULL::text, format('check failed: %s [%s]', SQLERRM, SQLSTATE),
                    'report it with the detail (the other checks ran)';
        END;
    END LOOP;
END;
$$;
COMMENT ON FUNCTION tview.health(boolean, int) IS
    'One row per finding: check_name, severity (error/warning/info), tview, detail, fix. '
    'deep: verify every row of every TVIEW; time_budget_ms: lock waits and drift verification stop after it';
