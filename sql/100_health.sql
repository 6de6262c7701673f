-- On-call diagnostics: tview.health() returns one row per finding.
--   severity: error (the read model is wrong or will go wrong), warning (slow, or a risk),
--             info (worth knowing; also checks skipped for lack of time or privilege)
--   fix:      what to do; fix_sql: a statement that does it, when one can (the app and
--             `tview-tui check --fix` run it after asking)

CREATE OR REPLACE FUNCTION tview.repair_triggers(name text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel      oid;
    repaired int := 0;
    enabled  int := 0;
    trg      record;
    only_id  int := CASE WHEN name IS NULL THEN NULL
                         ELSE (tview._get(name, current_schemas(false))).id END;
BEGIN
    FOR rel IN
        SELECT DISTINCT d.source_oid FROM tview.dependencies d
        WHERE d.source_kind = 'table' AND (only_id IS NULL OR d.tview_id = only_id)
    LOOP
        FOR trg IN
            SELECT n AS tgname FROM unnest(ARRAY['tview_after_insert', 'tview_after_update',
                                                 'tview_after_delete', 'tview_after_truncate']) n
            WHERE NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = rel AND t.tgname = n)
        LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS tview_after_insert ON %1$s;'
                           'DROP TRIGGER IF EXISTS tview_after_update ON %1$s;'
                           'DROP TRIGGER IF EXISTS tview_after_delete ON %1$s;'
                           'DROP TRIGGER IF EXISTS tview_after_truncate ON %1$s', tview._qname(rel));
            PERFORM tview._ensure_triggers(rel);
            repaired := repaired + 1;
            EXIT;
        END LOOP;
        FOR trg IN SELECT t.tgname FROM pg_trigger t
                   WHERE t.tgrelid = rel AND t.tgname LIKE 'tview\_after\_%' AND t.tgenabled = 'D' LOOP
            EXECUTE format('ALTER TABLE %s ENABLE TRIGGER %I', tview._qname(rel), trg.tgname);
            enabled := enabled + 1;
        END LOOP;
    END LOOP;
    RETURN format('re-created the triggers of %s table(s), re-enabled %s trigger(s)', repaired, enabled);
END;
$$;
COMMENT ON FUNCTION tview.repair_triggers(text) IS
    'Re-create missing and re-enable disabled engine triggers on the tables TVIEWs read (one TVIEW or all)';

-- Remove queue rows left by transactions that are no longer running (should never happen).
CREATE OR REPLACE FUNCTION tview.clean_queue() RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed bigint;
BEGIN
    WITH gone AS (DELETE FROM tview.queue q WHERE pg_xact_status(q.txid) IS DISTINCT FROM 'in progress' RETURNING 1)
    SELECT count(*) INTO removed FROM gone;
    DELETE FROM tview.pending p WHERE pg_xact_status(p.txid) IS DISTINCT FROM 'in progress';
    RETURN format('removed %s stale queue row(s)', removed);
END;
$$;

CREATE OR REPLACE FUNCTION tview.health(deep boolean DEFAULT false, time_budget_ms int DEFAULT 2000)
RETURNS TABLE (check_name text, severity text, tview text, detail text, fix text, fix_sql text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t        tview.tviews;
    r        record;
    label    text;
    started  timestamptz := clock_timestamp();
    sample   bigint[];
    bad      bigint;
    usage    double precision;
BEGIN
    -- catalog entries whose table or view is gone
    FOR t IN SELECT * FROM tview.tviews ORDER BY id LOOP
        label := format('%I.%I', t.schema_name, 'tv_' || t.name);
        IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = t.table_oid)
           OR NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = t.view_oid) THEN
            RETURN QUERY SELECT 'catalog_orphan', 'error', label,
                format('catalog entry without its %s',
                       CASE WHEN NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = t.table_oid) THEN 'table' ELSE 'view' END),
                'drop the TVIEW and create it again', format('SELECT tview.drop(%L)', t.schema_name || '.' || t.name);
        END IF;
    END LOOP;

    -- tables that say they are TVIEWs but are not in the catalog
    RETURN QUERY
        SELECT 'untracked_tview', 'warning', format('%I.%I', n.nspname, c.relname),
               'a tv_ table made by the engine that the catalog no longer knows (nothing maintains it)',
               'drop it, or create the TVIEW again', NULL::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND c.relname LIKE 'tv\_%'
          AND obj_description(c.oid, 'pg_class') LIKE 'TVIEW maintained by the tview engine%'
          AND NOT EXISTS (SELECT 1 FROM tview.tviews x WHERE x.table_oid = c.oid);

    -- engine triggers missing or disabled on the tables TVIEWs read
    RETURN QUERY
        SELECT 'missing_trigger', 'error', string_agg(DISTINCT format('%I.%I', x.schema_name, 'tv_' || x.name), ', '),
               format('%s has no %s trigger: its changes do not reach the TVIEWs', d.source_oid::regclass, n.tgname),
               'repair the triggers, then refresh the TVIEWs', 'SELECT tview.repair_triggers()'
        FROM tview.dependencies d JOIN tview.tviews x ON x.id = d.tview_id
        CROSS JOIN unnest(ARRAY['tview_after_insert', 'tview_after_update', 'tview_after_delete',
                                'tview_after_truncate']) n(tgname)
        WHERE d.source_kind = 'table'
          AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = d.source_oid AND g.tgname = n.tgname)
        GROUP BY d.source_oid, n.tgname;
    RETURN QUERY
        SELECT 'disabled_trigger', 'error', string_agg(DISTINCT format('%I.%I', x.schema_name, 'tv_' || x.name), ', '),
               format('trigger %s on %s is disabled: its changes do not reach the TVIEWs', g.tgname, d.source_oid::regclass),
               'enable it again, then refresh the TVIEWs', 'SELECT tview.repair_triggers()'
        FROM tview.dependencies d JOIN tview.tviews x ON x.id = d.tview_id
        JOIN pg_trigger g ON g.tgrelid = d.source_oid AND g.tgname LIKE 'tview\_after\_%' AND g.tgenabled = 'D'
        WHERE d.source_kind = 'table'
        GROUP BY d.source_oid, g.tgname;

    -- lineage that could not be proved: correct but refreshed whole
    RETURN QUERY
        SELECT 'full_lineage', 'warning', format('%I.%I', x.schema_name, 'tv_' || x.name),
               format('any change of %s recomputes the whole TVIEW%s', d.source_oid::regclass,
                      coalesce(': ' || x.analysis, '')),
               'join that relation by equality to the key (see docs/engine.md, Lineage)', NULL::text
        FROM tview.dependencies d JOIN tview.tviews x ON x.id = d.tview_id
        WHERE d.lineage = 'full';

    -- fk_* columns of tables TVIEWs read, without an index: lineage lookups would scan
    RETURN QUERY
        SELECT DISTINCT 'unindexed_fk', 'warning', NULL::text,
               format('%s.%I has no index; changes that follow it scan the table', b.source_oid::regclass, a.attname),
               'create the index',
               format('CREATE INDEX ON %s (%I)', tview._qname(b.source_oid), a.attname)
        FROM (SELECT DISTINCT source_oid FROM tview.dependencies WHERE source_kind = 'table') b
        JOIN pg_attribute a ON a.attrelid = b.source_oid AND a.attnum > 0 AND NOT a.attisdropped
                           AND a.attname LIKE 'fk\_%'
        WHERE NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = b.source_oid AND i.indkey[0] = a.attnum);

    -- drift: rows that differ from the definition (whole when deep, else a sample)
    FOR t IN SELECT * FROM tview.tviews x
             WHERE EXISTS (SELECT 1 FROM pg_class WHERE oid = x.table_oid)
               AND EXISTS (SELECT 1 FROM pg_class WHERE oid = x.view_oid)
             ORDER BY x.topo_level, x.id LOOP
        label := format('%I.%I', t.schema_name, 'tv_' || t.name);
        IF clock_timestamp() - started > make_interval(secs => time_budget_ms / 1000.0) THEN
            RETURN QUERY SELECT 'drift', 'info', label, 'skipped (timeout): the time budget was used up',
                                'run the deep check with a larger budget', NULL::text;
            CONTINUE;
        END IF;
        IF deep OR (SELECT relpages < 128 FROM pg_class WHERE oid = t.table_oid) THEN   -- small: all of it
            SELECT count(*) INTO bad FROM tview._verify(label, current_schemas(false));
        ELSE
            EXECUTE format('SELECT array_agg(k) FROM ((SELECT v.%1$I AS k FROM %2$s v TABLESAMPLE SYSTEM (1) LIMIT 200)'
                           ' UNION (SELECT r.%3$I FROM %4$s r TABLESAMPLE SYSTEM (1) LIMIT 200)) s',
                           t.key_column, tview._qname(t.table_oid), coalesce(t.root_column, t.key_column),
                           CASE WHEN t.root_column IS NULL THEN tview._qname(t.table_oid) ELSE tview._qname(t.root_oid) END)
                INTO sample;
            EXECUTE format($q$
                SELECT count(*) FROM (
                    SELECT x::text FROM %1$s x WHERE x.%3$I = ANY ($1)
                    EXCEPT ALL SELECT x::text FROM %2$s x WHERE x.%3$I = ANY ($1)) a$q$,
                tview._qname(t.view_oid), tview._qname(t.table_oid), t.key_column) INTO bad USING coalesce(sample, '{}');
            EXECUTE format($q$
                SELECT $2 + count(*) FROM (
                    SELECT x::text FROM %2$s x WHERE x.%3$I = ANY ($1)
                    EXCEPT ALL SELECT x::text FROM %1$s x WHERE x.%3$I = ANY ($1)) a$q$,
                tview._qname(t.view_oid), tview._qname(t.table_oid), t.key_column) INTO bad USING coalesce(sample, '{}'), bad;
        END IF;
        IF bad > 0 THEN
            RETURN QUERY SELECT 'drift', 'error', label,
                format('%s row(s) differ from the definition%s', bad,
                       CASE WHEN deep OR (SELECT relpages < 128 FROM pg_class WHERE oid = t.table_oid) THEN ''
                            ELSE ' (in a sample)' END),
                'refresh it whole', format('SELECT tview.refresh(%L)', t.schema_name || '.' || t.name);
        END IF;
    END LOOP;

    -- the NOTIFY queue filling up: a listener is stuck in a transaction, or none drains it
    usage := pg_notification_queue_usage();
    IF usage > 0.5 THEN
        RETURN QUERY SELECT 'notify_queue', 'warning', NULL::text,
            format('the notification queue is %s%% full; when full, NOTIFY (and so every write) fails', round((usage * 100)::numeric, 1)),
            'find the session listening inside a long transaction, or turn tview.notify off', NULL::text;
    END IF;

    -- sessions waiting for TVIEW rows: the waiter and its blocker both have the TVIEW table
    -- open for writing (a row-lock wait shows as a wait for the blocker's transaction); or
    -- waiting for the engine's advisory locks
    BEGIN
        RETURN QUERY
            SELECT 'blocked_session', 'warning',
                   string_agg(DISTINCT format('%I.%I', x.schema_name, 'tv_' || x.name), ', '),
                   format('backend %s waits for a TVIEW row held by backend %s', w.pid, b.pid),
                   'look at what the blocking session is doing (a long transaction holds the rows until it ends)',
                   NULL::text
            FROM pg_locks w
            CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) b(pid)
            JOIN pg_locks wl ON wl.pid = w.pid AND wl.locktype = 'relation' AND wl.granted
                            AND wl.mode IN ('RowShareLock', 'RowExclusiveLock')           -- locking or writing rows
            JOIN pg_locks bl ON bl.pid = b.pid AND bl.locktype = 'relation' AND bl.granted AND bl.relation = wl.relation
                            AND bl.mode IN ('RowShareLock', 'RowExclusiveLock')
            JOIN tview.tviews x ON x.table_oid = wl.relation
            WHERE NOT w.granted
            GROUP BY w.pid, b.pid
            UNION ALL
            SELECT DISTINCT 'blocked_session', 'warning', NULL::text,
                   format('backend %s waits for an engine lock held by backend %s', w.pid,
                          array_to_string(pg_blocking_pids(w.pid), ', ')),
                   'look at what the blocking sessions are doing', NULL::text
            FROM pg_locks w
            WHERE NOT w.granted AND w.locktype = 'advisory' AND w.classid = 1953914229;
    EXCEPTION WHEN insufficient_privilege THEN
        RETURN QUERY SELECT 'blocked_session', 'info', NULL::text, 'skipped (privilege)', NULL::text, NULL::text;
    END;

    -- the slowest TVIEWs, from the event log
    RETURN QUERY
        SELECT 'slow_tview', 'warning', format('%I.%I', (e.payload ->> 'schema'), e.payload ->> 'tview'),
               format('p95 refresh time %s ms over the last hour (%s refreshes)',
                      round((percentile_cont(0.95) WITHIN GROUP (ORDER BY (e.payload ->> 'us')::bigint) / 1000.0)::numeric, 1),
                      count(*)),
               'look at the definition''s plan and the lineage; consider deferred mode', NULL::text
        FROM tview.events e
        WHERE e.ts > now() - interval '1 hour'
        GROUP BY e.payload ->> 'schema', e.payload ->> 'tview'
        HAVING percentile_cont(0.95) WITHIN GROUP (ORDER BY (e.payload ->> 'us')::bigint)
               > tview.setting('slow_ms', '100')::numeric * 1000;

    -- deferred queue rows of transactions that are not running any more
    SELECT count(*) INTO bad FROM tview.queue q WHERE pg_xact_status(q.txid) IS DISTINCT FROM 'in progress';
    IF bad > 0 THEN
        RETURN QUERY SELECT 'deferred_backlog', 'warning', NULL::text,
            format('%s queued key(s) belong to transactions that ended', bad),
            'remove them (the TVIEWs were refreshed at commit, or rolled back)', 'SELECT tview.clean_queue()';
    END IF;

    -- settings that turn events off for the whole database
    FOR r IN
        SELECT split_part(cfg, '=', 1) AS name, split_part(cfg, '=', 2) AS value
        FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase AND d.datname = current_database()
        CROSS JOIN unnest(s.setconfig) cfg
        WHERE s.setrole = 0 AND cfg = 'tview.notify=off'
    LOOP
        RETURN QUERY SELECT 'events_off', 'info', NULL::text,
            'tview.notify is off for this database: live tails see nothing unless tview.log is on (--poll)',
            'ALTER DATABASE ... RESET tview.notify, if that was not intended',
            format('ALTER DATABASE %I RESET tview.notify', current_database());
    END LOOP;
END;
$$;
COMMENT ON FUNCTION tview.health(boolean, int) IS
    'One row per finding: check_name, severity (error/warning/info), tview, detail, fix, fix_sql';
