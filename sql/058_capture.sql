-- Compiled change capture: one trigger function generated per base table
-- (tview._capture_<table oid>), fired by the four statement triggers tview_after_insert,
-- _update, _delete and _truncate. Its SQL is static: for every TVIEW that reads the table
-- it reads the transition tables in place and selects the TVIEW keys the change touches
-- (the dependency's keys query), then hands the keys to the cascade. No row of the table
-- is ever turned into jsonb or re-typed into its row type (which would evaluate the
-- defaults and checks of a writer's domains with the engine owner's rights), nothing
-- grows with the statement's row count but the key arrays (a TVIEW refreshed here hands
-- those that read it images of a few changed rows, keys of many: see docs/engine.md), and the
-- plans are PL/pgSQL's own, invalidated by DDL on the tables they read, not a per-session
-- cache of a row type.
-- The function is regenerated whenever the TVIEWs reading the table change (create,
-- drop, rebuild after DDL, upgrade); tview.capture shows each one and its code.

-- The four engine triggers: name, event, transition tables (old, new) and tgtype bits.
CREATE OR REPLACE FUNCTION tview._capture_triggers()
RETURNS TABLE (tgname name, event text, old_table name, new_table name, tgtype int2)
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    VALUES ('tview_after_insert'::name, 'INSERT', NULL::name, 'tview_new'::name, 4::int2),
           ('tview_after_update', 'UPDATE', 'tview_old', 'tview_new', 16),
           ('tview_after_delete', 'DELETE', 'tview_old', NULL, 8),
           ('tview_after_truncate', 'TRUNCATE', NULL, NULL, 32)
$$;

-- The name (unqualified) of a table's generated capture function.
CREATE OR REPLACE FUNCTION tview._capture_name(relid oid) RETURNS name
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ('_capture_' || relid)::name $$;

-- A table's generated capture function, NULL while it does not exist.
CREATE OR REPLACE FUNCTION tview._capture_function(relid oid) RETURNS regprocedure
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT to_regprocedure(format('tview.%I()', tview._capture_name(relid))) $$;

-- Is a trigger function one of the engine's capture functions (of any table)?
CREATE OR REPLACE FUNCTION tview._is_capture_function(fn oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = fn AND p.pronamespace = 'tview'::regnamespace
                   AND p.proname ~ '^_capture_[0-9]+$')
$$;

-- A dollar-quote tag that does not occur in body, so generated code can hold any text.
CREATE OR REPLACE FUNCTION tview._dollar_tag(body text, base text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tag text := '$' || base || '$';
    n   int := 0;
BEGIN
    WHILE strpos(body, tag) > 0 LOOP
        n := n + 1;
        tag := '$' || base || n || '$';
    END LOOP;
    RETURN tag;
END;
$$;

-- Partitions and inheritance children. A statement fires the statement triggers of the table
-- it names only, and their transition tables hold the rows of every partition or child it
-- reached (PostgreSQL allows transition tables on statement triggers of partitions and
-- children, not on their row triggers). So the engine's four triggers sit on every table
-- whose writes can change a table TVIEWs read: that table, its partitions and inheritance
-- children at every level (a write straight into one fires theirs), and its ancestors (a
-- write through one may land in it). A table's capture function serves the TVIEWs reading
-- it, its ancestors and its descendants; its transition tables have its own columns, named
-- as its ancestors' are (a child may have more), so the same keys queries read them. Keys of
-- a TVIEW that reads a descendant, from rows that went to another one (or of a TVIEW that
-- reads an ancestor with ONLY), are refreshed for nothing: more work, never a wrong row.

-- Every (relid, ancestor) pair, at any depth, among the given tables, their ancestors and
-- their descendants (partitions and inheritance children). Foreign tables are left out:
-- they take no transition tables.
CREATE OR REPLACE FUNCTION tview._inheritance(relids oid[])
RETURNS TABLE (relid oid, ancestor oid)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE up(oid) AS (
        SELECT unnest(relids)
        UNION SELECT i.inhparent FROM up JOIN pg_inherits i ON i.inhrelid = up.oid),
    down(oid) AS (
        SELECT unnest(relids)
        UNION SELECT i.inhrelid FROM down JOIN pg_inherits i ON i.inhparent = down.oid),
    pairs(relid, ancestor) AS (
        SELECT i.inhrelid, i.inhparent FROM pg_inherits i
        WHERE i.inhrelid IN (SELECT up.oid FROM up UNION SELECT down.oid FROM down)
        UNION SELECT p.relid, i.inhparent FROM pairs p JOIN pg_inherits i ON i.inhrelid = p.ancestor)
    SELECT p.relid, p.ancestor FROM pairs p JOIN pg_class c ON c.oid = p.relid WHERE c.relkind IN ('r', 'p')
$$;

-- A table with its ancestors and descendants: the relations a write to it changes.
CREATE OR REPLACE FUNCTION tview._relatives(relid oid) RETURNS oid[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT relid || ARRAY(SELECT CASE WHEN f.relid = _relatives.relid THEN f.ancestor ELSE f.relid END
                          FROM tview._inheritance(ARRAY[relid]) f
                          WHERE _relatives.relid IN (f.relid, f.ancestor))
$$;

-- The given tables that TVIEWs read, with their families (ancestors and descendants): the
-- tables whose capture code serves those TVIEWs, each with its ancestors.
CREATE OR REPLACE FUNCTION tview._family(relids oid[]) RETURNS TABLE (relid oid, ancestors oid[])
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH read AS (SELECT DISTINCT d.source_oid FROM tview.dependencies d JOIN pg_class c ON c.oid = d.source_oid
                  WHERE d.source_oid = ANY (relids) AND d.source_kind = 'table'),
    pairs AS (SELECT * FROM tview._inheritance(ARRAY(SELECT read.source_oid FROM read)))
    SELECT t.relid, ARRAY(SELECT p.ancestor FROM pairs p WHERE p.relid = t.relid ORDER BY 1)
    FROM (SELECT read.source_oid FROM read UNION SELECT pairs.relid FROM pairs
          UNION SELECT pairs.ancestor FROM pairs) t(relid)
    ORDER BY 1
$$;

-- The tables the capture code of the given tables' TVIEWs sits on.
CREATE OR REPLACE FUNCTION tview._capture_tables(relids oid[]) RETURNS oid[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ARRAY(SELECT f.relid FROM tview._family(relids) f) $$;

-- Every table the engine's triggers sit on, with its ancestors, as of the last time the
-- TVIEWs were brought up to date with them (tview._sync_members).
DO $$
BEGIN
    IF to_regclass('tview.members') IS NULL THEN
        CREATE TABLE tview.members (
            relid     oid PRIMARY KEY,
            ancestors oid[] NOT NULL
        );
        COMMENT ON TABLE tview.members IS
            'Tables the engine''s capture triggers sit on, with the ancestors (partitioned or inheritance parents) '
            'whose TVIEWs their rows were last accounted for in';
        -- installing over an engine that did not follow partitions: taken as they are
        INSERT INTO tview.members
        SELECT * FROM tview._family(ARRAY(SELECT d.source_oid FROM tview.dependencies d));
    END IF;
END;
$$;

-- Bring the TVIEWs up to date with the partitions and inheritance children that joined or
-- left a table they read (CREATE TABLE ... PARTITION OF / INHERITS, ATTACH, DETACH, INHERIT,
-- NO INHERIT, DROP) since the last call: the rows of a table that joined an ancestor that
-- was already followed, or left one, are run through the keys queries of the TVIEWs reading
-- that ancestor (read in place, like transition tables) and those keys refreshed; a table
-- dropped with its rows, or a full lineage, refreshes those TVIEWs whole. Then records the
-- tables as they are. Returns the tables whose links changed (and their ancestors).
CREATE OR REPLACE FUNCTION tview._sync_members() RETURNS oid[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
    now_rows jsonb;
    diffs    jsonb;
    change   record;
    dep      record;
    keys     bigint[];
    work     jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(jsonb_build_object('relid', f.relid, 'ancestors', f.ancestors)), '[]') INTO now_rows
    FROM tview._family(ARRAY(SELECT d.source_oid FROM tview.dependencies d)) f;
    SELECT jsonb_agg(jsonb_build_object('relid', coalesce(n.relid, m.relid), 'now', coalesce(n.ancestors, '{}'),
                                        'before', coalesce(m.ancestors, '{}')) ORDER BY coalesce(n.relid, m.relid))
    INTO diffs
    FROM jsonb_to_recordset(now_rows) n(relid oid, ancestors oid[]) FULL JOIN tview.members m ON m.relid = n.relid
    WHERE n.ancestors IS DISTINCT FROM m.ancestors;
    IF diffs IS NULL THEN
        RETURN '{}';
    END IF;
    FOR change IN
        SELECT x.relid, x.joined, array_agg(x.ancestor ORDER BY x.ancestor) AS ancestors
        FROM (SELECT d.relid, a AS ancestor, true AS joined
              FROM jsonb_to_recordset(diffs) d(relid oid, now oid[], before oid[]) CROSS JOIN unnest(d.now) a
              WHERE a <> ALL (d.before)
                AND EXISTS (SELECT FROM tview.members f WHERE f.relid = a)   -- followed before: its TVIEWs lack the rows
              UNION ALL
              SELECT d.relid, a, false
              FROM jsonb_to_recordset(diffs) d(relid oid, now oid[], before oid[]) CROSS JOIN unnest(d.before) a
              WHERE a <> ALL (d.now)) x
        GROUP BY x.relid, x.joined ORDER BY x.relid, x.joined
    LOOP
        work := '{}';
        FOR dep IN SELECT d.tview_id, d.key_sql FROM tview.dependencies d
                   WHERE d.source_oid = ANY (change.ancestors) ORDER BY d.tview_id, d.source_oid LOOP
            IF dep.key_sql IS NULL OR NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = change.relid) THEN
                work := tview._add_work(work, dep.tview_id, NULL, true, 0);
            ELSE
                -- NULL sorts last: a row that joined reaching a row whose key is NULL fails as a write would
                EXECUTE format('SELECT ARRAY(%s)',
                               tview._keys_sql_with_nulls(dep.key_sql, NULL, 'ONLY ' || tview._qname(change.relid)))
                INTO keys;
                IF cardinality(keys) > 0 AND keys[cardinality(keys)] IS NULL THEN
                    keys := keys[1:cardinality(keys) - 1];
                    IF change.joined THEN
                        PERFORM tview._check_null_keys(t) FROM tview.tviews t WHERE t.id = dep.tview_id;
                    END IF;
                END IF;
                work := tview._add_work(work, dep.tview_id, keys, false, 0);
            END IF;
        END LOOP;
        IF work <> '{}' THEN
            PERFORM tview._cascade(work, coalesce((SELECT c.relname::text FROM pg_class c WHERE c.oid = change.relid),
                                                  change.relid::text),
                                   CASE WHEN change.joined THEN 'ATTACH' ELSE 'DETACH' END);
        END IF;
    END LOOP;
    DELETE FROM tview.members m WHERE NOT EXISTS (SELECT FROM jsonb_to_recordset(now_rows) n(relid oid, ancestors oid[])
                                                  WHERE n.relid = m.relid);
    INSERT INTO tview.members AS m
    SELECT * FROM jsonb_to_recordset(now_rows) n(relid oid, ancestors oid[])
    ON CONFLICT (relid) DO UPDATE SET ancestors = excluded.ancestors WHERE m.ancestors IS DISTINCT FROM excluded.ancestors;
    RETURN ARRAY(SELECT DISTINCT x FROM jsonb_to_recordset(diffs) d(relid oid, now oid[], before oid[])
                 CROSS JOIN unnest(d.relid || d.now || d.before) x ORDER BY 1);
END;
$$;

-- The TVIEWs whose rows a refresh of the given ones can read or write: those reading them,
-- transitively, and everything those read, transitively.
CREATE OR REPLACE FUNCTION tview._snapshot_scope(tview_ids int[]) RETURNS int[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE downstream(id) AS (
        SELECT unnest(tview_ids)
        UNION
        SELECT d.tview_id FROM downstream w JOIN tview.tviews t ON t.id = w.id
                                            JOIN tview.dependencies d ON d.source_oid = t.table_oid
    ), upstream(id) AS (
        SELECT id FROM downstream
        UNION
        SELECT x.id FROM upstream w JOIN tview.dependencies d ON d.tview_id = w.id
                                    JOIN tview.tviews x ON x.table_oid = d.source_oid
    )
    SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM upstream
$$;

-- A REPEATABLE READ or SERIALIZABLE transaction refreshes from its snapshot: it must not
-- miss what another transaction wrote to what these TVIEWs read. It locks their stamps with
-- the lock the stamp's UPDATE takes, so later maintainers wait for this commit. It does not
-- wait itself: a stamp held by another transaction belongs to a maintainer still running
-- (or to a writer like this one, which also marks its own stamp), so once that commits this
-- snapshot misses its work and 40001 is certain; failing at once spares the wait and the
-- deadlocks of two writers each holding stamps the other needs. A stamp whose newer version
-- committed unseen fails the same way.
CREATE OR REPLACE FUNCTION tview._check_snapshot(tview_ids int[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM FROM tview.stamps s WHERE s.tview_id = ANY (tview._snapshot_scope(tview_ids))
    ORDER BY s.tview_id, s.slot FOR NO KEY UPDATE NOWAIT;
EXCEPTION WHEN serialization_failure OR lock_not_available THEN
    RAISE EXCEPTION 'could not serialize access: a TVIEW this write refreshes %',
          CASE SQLSTATE WHEN '55P03' THEN 'is being maintained by another transaction, whose work this transaction''s snapshot will not see'
                        ELSE 'was maintained by a transaction this transaction''s snapshot does not see' END
        USING ERRCODE = 'serialization_failure',
              DETAIL = current_setting('transaction_isolation') || ' refreshes TVIEWs from the snapshot taken at the transaction''s first statement.',
              HINT = 'Retry the transaction, as for any serialization failure; under READ COMMITTED the engine waits instead.';
END;
$$;

-- The body of a table's capture function: per event, the keys of every TVIEW that reads the
-- table, then the cascade. A TVIEW whose lineage for the table is full (no keys query) is
-- refreshed whole; so is every TVIEW on TRUNCATE. A TVIEW that reads no other TVIEW and is
-- refreshed immediately is refreshed right here, by a static call of its generated refresh
-- function (one layer instead of the cascade's four); when TVIEWs read it, what it hands them
-- (images of its changed rows, or keys) then goes to tview._queue_readers, which starts the
-- cascade for them. The capture functions are regenerated when any of that changes
-- (tview._install_captures_reading).
CREATE OR REPLACE FUNCTION tview._capture_body(relid oid) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev     record;
    dep    record;
    parts  jsonb;
    blocks text := '';
    row_blocks text := '';
    work   text;
    relatives oid[] := tview._relatives(relid);
    readers text;
BEGIN
    -- each event twice: for the statement triggers, over the transition tables, and for the row
    -- trigger of a subscribed table (replicated rows), over the row's OLD and NEW, its keys queued
    FOR ev IN SELECT w.event, w.tgtype, r.replicated,
                     CASE WHEN NOT r.replicated THEN w.old_table WHEN w.old_table IS NOT NULL THEN '(SELECT OLD.*)' END AS old_table,
                     CASE WHEN NOT r.replicated THEN w.new_table WHEN w.new_table IS NOT NULL THEN '(SELECT NEW.*)' END AS new_table
              FROM tview._capture_triggers() w, (VALUES (false), (true)) r(replicated)
              WHERE w.event <> 'TRUNCATE' ORDER BY r.replicated, w.tgtype LOOP
        work := '';
        FOR dep IN SELECT d.tview_id, d.key_sql,
                          x.mode = 'immediate' AND x.topo_level = 0 AS direct,
                          EXISTS (SELECT 1 FROM tview.dependencies r WHERE r.source_oid = x.table_oid) AS read,
                          d.key_sql IS NOT NULL AND d.lineage ~ '(root|fk|path)' AND tview._key_may_be_null(x) AS null_check
                   FROM tview.dependencies d JOIN tview.tviews x ON x.id = d.tview_id
                   WHERE d.source_oid = ANY (relatives) ORDER BY d.tview_id, d.source_oid LOOP
            -- The key's column may be NULL: the keys come with a NULL (sorted last) when a changed row
            -- reaches a row of the key's table whose key is NULL; then a not-null violation if the definition has
            -- such a row (a keyed refresh looks rows up by key and would never see it).
            parts := jsonb_build_object(
                'id', dep.tview_id, 'refresh', quote_ident('_refresh_' || dep.tview_id),
                'threshold', CASE WHEN dep.read THEN $t$
            patch_threshold := tview._cfg_count(cfg, 'patch_threshold', 100);$t$ ELSE '' END,
                -- TVIEWs read it: what its changed rows mean for them joins the work list
                'queue', CASE WHEN dep.read THEN tview._fill($q$
                    IF upserted + deleted > 0 THEN
                        work := tview._queue_readers(work, (SELECT t FROM tview.tviews t WHERE t.id = {id}),
                                                     coalesce(old_images, '[]'), coalesce(new_images, '[]'), readers_keys,
                                                     coalesce(changed, '{}'), 0, cfg, patch_threshold, false);
                    END IF;$q$,
                                                 jsonb_build_object('id', dep.tview_id)) ELSE '' END,
                -- images for a few rows, keys for many (tview._build_refresh_sql)
                'readers', CASE WHEN dep.read THEN $r$CASE WHEN cardinality(keys) <= patch_threshold THEN 'images' ELSE 'keys' END$r$
                                ELSE 'NULL' END,
                'signature', quote_literal(tview._generated_signature(dep.tview_id, 'refresh')),
                'keys', CASE WHEN dep.null_check THEN 'keys'
                             ELSE format('ARRAY(%s)', tview._keys_sql(dep.key_sql, ev.old_table, ev.new_table)) END,
                'keys_with_nulls', CASE WHEN dep.null_check
                                        THEN tview._keys_sql_with_nulls(dep.key_sql, ev.old_table, ev.new_table) END);
            work := work || CASE WHEN dep.null_check THEN tview._fill($n$
        keys := ARRAY({keys_with_nulls});
        IF keys[cardinality(keys)] IS NULL AND cardinality(keys) > 0 THEN
            keys := keys[1:cardinality(keys) - 1];
            PERFORM tview._check_null_keys(t) FROM tview.tviews t WHERE t.id = {id};
        END IF;$n$, parts) ELSE '' END;
            parts := parts || jsonb_build_object('queued', CASE WHEN dep.key_sql IS NULL THEN 'NULL' ELSE parts ->> 'keys' END);
            work := work || tview._fill(CASE
                WHEN ev.replicated THEN $q$
        PERFORM tview._enqueue({id}, {queued});$q$
                WHEN dep.key_sql IS NULL THEN $w$
        work := tview._add_work(work, {id}, NULL, true, 0);$w$
                WHEN dep.direct THEN $b$
        keys := {keys};
        IF cardinality(keys) > 0 THEN
            cfg := coalesce(cfg, tview._settings());{threshold}
            IF (cardinality(keys) > 1 AND cardinality(keys) < tview._cfg_count(cfg, 'batch_threshold', 2))
               OR to_regprocedure({signature}) IS NULL THEN   -- or dropped by hand: the cascade makes it again
                work := tview._add_work(work, {id}, keys, false, 0);   -- one key at a time: the cascade's way
            ELSE
                -- no exception block here: it would cost a subtransaction at every write (the
                -- refresh function names the TVIEW in its errors itself)
                started := clock_timestamp();
                SELECT r.o_upserted, r.o_deleted, r.o_null_keys, r.o_old, r.o_new, r.o_readers, r.o_changed
                INTO upserted, deleted, null_keys, old_images, new_images, readers_keys, changed
                FROM tview.{refresh}(keys, NULL, tview._cfg_enabled(cfg, 'row_locks', true), {readers}) r;
                IF null_keys > 0 THEN
                    PERFORM tview._raise_null_keys(t, null_keys) FROM tview.tviews t WHERE t.id = {id};
                ELSE
                    PERFORM tview._publish({id}, TG_TABLE_NAME, TG_OP, 0, false, cardinality(keys), keys,
                                           jsonb_build_object('upserted', upserted, 'deleted', deleted),
                                           (extract(epoch FROM clock_timestamp() - started) * 1000000)::bigint, cfg);{queue}
                END IF;
            END IF;
        END IF;$b$
                ELSE $k$
        work := tview._add_work(work, {id}, {keys}, false, 0);$k$ END, parts);
        END LOOP;
        parts := jsonb_build_object('event', quote_literal(ev.event), 'work', work);
        IF ev.replicated THEN
            row_blocks := row_blocks || tview._fill($e$
        {if} TG_OP = {event} THEN{work}$e$, parts || jsonb_build_object('if', CASE WHEN row_blocks = '' THEN 'IF' ELSE 'ELSIF' END));
        ELSE
            blocks := blocks || tview._fill($e$
    {if} TG_OP = {event} THEN{work}$e$, parts || jsonb_build_object('if', CASE WHEN blocks = '' THEN 'IF' ELSE 'ELSIF' END));
        END IF;
    END LOOP;
    SELECT string_agg(tview._fill($w$
        work := tview._add_work(work, {id}, NULL, true, 0);$w$, jsonb_build_object('id', d.tview_id)), ''
                      ORDER BY d.tview_id),
           array_agg(d.tview_id ORDER BY d.tview_id)::text
    INTO work, readers
    FROM (SELECT DISTINCT d.tview_id FROM tview.dependencies d WHERE d.source_oid = ANY (relatives)) d;
    -- TG_RELID: code made for another table, in a database restored from a dump (new oids)
    RETURN tview._fill($c$
DECLARE
    work jsonb := '{}';
    cfg jsonb;
    keys bigint[];
    started timestamptz;
    upserted bigint;
    deleted bigint;
    null_keys bigint;
    old_images jsonb;
    new_images jsonb;
    readers_keys jsonb;
    changed bigint[];
    patch_threshold int;
BEGIN
    IF TG_RELID OPERATOR(pg_catalog.<>) {relid} THEN
        PERFORM tview._refuse_moved_catalog();
    END IF;{stamp}
    IF TG_LEVEL = 'ROW' THEN   -- a replicated row: a subscription's apply worker fires row triggers only{row_events}
        END IF;
        RETURN NULL;
    END IF;{events}
    ELSE{truncate}
    END IF;
    IF work <> '{}' THEN
        PERFORM tview._cascade(work, TG_TABLE_NAME, TG_OP, false, cfg);
    END IF;
    RETURN NULL;
END;
$c$, jsonb_build_object('relid', relid, 'events', blocks, 'row_events', row_blocks, 'truncate', coalesce(work, $n$
        NULL;$n$), 'stamp', CASE WHEN readers IS NOT NULL THEN tview._fill($s$
    IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
        PERFORM tview._check_snapshot({readers});
    END IF;
    UPDATE tview.stamps SET xid = pg_current_xact_id()      -- this transaction's mark (tview.stamps)
    WHERE tview_id = ANY ({readers}) AND slot = pg_current_xact_id()::text::bigint % {slots}
      AND xid IS DISTINCT FROM pg_current_xact_id();$s$,
            jsonb_build_object('readers', quote_literal(readers), 'slots', tview._stamp_slots())) END));
END;
$$;

-- The state of the four engine triggers on one table, recognised by their function (the
-- table's capture function, once per statement of the event, with its transition tables),
-- whatever their name: ok, disabled ('D'), replica (fires only when session_replication_role
-- = replica), missing, or foreign (missing, and a trigger the engine did not make holds the
-- engine's name for it). tgname: the engine trigger's name, else the engine's name.
CREATE OR REPLACE FUNCTION tview._trigger_state(relid oid)
RETURNS TABLE (tgname name, event text, state text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(ours.tgname, w.tgname), w.event,
           CASE WHEN ours.oid IS NOT NULL THEN CASE ours.tgenabled WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'replica'
                                                                   ELSE 'ok' END
                WHEN EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = relid AND g.tgname = w.tgname) THEN 'foreign'
                ELSE 'missing' END
    FROM tview._capture_triggers() w
    LEFT JOIN LATERAL (
        SELECT g.oid, g.tgname, g.tgenabled FROM pg_trigger g
        WHERE g.tgrelid = relid AND g.tgfoid = tview._capture_function(relid)
          AND g.tgtype = w.tgtype AND g.tgoldtable IS NOT DISTINCT FROM w.old_table
          AND g.tgnewtable IS NOT DISTINCT FROM w.new_table AND cardinality(g.tgattr::int2[]) = 0 AND g.tgqual IS NULL
        ORDER BY g.tgname = w.tgname DESC, g.tgname LIMIT 1) ours ON true
    ORDER BY w.tgtype
$$;

-- (Re)generate one table's capture function from the dependency rows, and put the engine's
-- triggers on the table where they are missing. A trigger of an older engine under the
-- engine's name (0.2.0's shared function) is replaced. A trigger the engine did not make
-- that holds the engine's name is never touched: with strict (tview.create) that is refused
-- (42710); otherwise the engine's trigger takes a free name beside it (tview_after_insert_1).
CREATE OR REPLACE FUNCTION tview._install_table_capture(relid oid, strict boolean DEFAULT true) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn    name := tview._capture_name(relid);
    body  text := tview._capture_body(relid);
    tag   text := tview._dollar_tag(body, 'capture');
    trg   record;
    taken oid;
    name  text;
    n     int;
BEGIN
    -- row_security off: a policy on a table it reads raises instead of running as the owner
    EXECUTE format(E'CREATE OR REPLACE FUNCTION tview.%I() RETURNS trigger\nLANGUAGE plpgsql SECURITY DEFINER\n'
                   || E'SET search_path = pg_catalog, pg_temp\nSET row_security = off\nAS %s%s%s',
                   fn, tag, body, tag);
    EXECUTE format('COMMENT ON FUNCTION tview.%I() IS %L', fn,
                   format('Change capture of %s for the TVIEWs that read it (generated)', tview._qname(relid)));
    -- callable by nobody directly (PostgreSQL does not check EXECUTE when a trigger fires)
    EXECUTE format('REVOKE EXECUTE ON FUNCTION tview.%I() FROM PUBLIC', fn);
    FOR trg IN
        SELECT w.* FROM tview._capture_triggers() w JOIN tview._trigger_state(relid) s ON s.event = w.event
        WHERE s.state IN ('missing', 'foreign') ORDER BY w.tgtype
    LOOP
        name := trg.tgname;
        SELECT g.tgfoid INTO taken FROM pg_trigger g WHERE g.tgrelid = relid AND g.tgname = name;
        IF FOUND AND NOT (tview._is_capture_function(taken)
                          OR taken IS NOT DISTINCT FROM to_regprocedure('tview._on_change()')) THEN
            IF strict THEN
                RAISE EXCEPTION 'table % already has a trigger named % that the engine did not make', relid::regclass, name
                    USING ERRCODE = 'duplicate_object',
                          HINT = format('Rename or drop that trigger (ALTER TRIGGER %I ON %s RENAME TO ...), then try again.',
                                        name, tview._qname(relid));
            END IF;
            n := 1;
            WHILE EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = relid AND g.tgname = trg.tgname || '_' || n) LOOP
                n := n + 1;
            END LOOP;
            name := trg.tgname || '_' || n;
        END IF;
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %s%s FOR EACH STATEMENT EXECUTE FUNCTION tview.%I()',
                       name, trg.event, tview._qname(relid),
                       CASE WHEN trg.old_table IS NULL AND trg.new_table IS NULL THEN ''
                            ELSE ' REFERENCING' || coalesce(' OLD TABLE AS ' || trg.old_table, '')
                                 || coalesce(' NEW TABLE AS ' || trg.new_table, '') END,
                       fn);
    END LOOP;
    IF tview._subscribed(relid) THEN
        PERFORM tview._follow_replication(relid);
    END IF;
END;
$$;

-- Is the table, or one of its relatives (an ancestor, a partition or child: rows are applied
-- into partitions, and a subscription may name either), in a subscription of this database? The apply worker of a subscription runs with session_replication_role = replica and
-- fires row triggers (enabled REPLICA or ALWAYS) only, never the engine's statement triggers.
CREATE OR REPLACE FUNCTION tview._subscribed(relid oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT 1 FROM pg_subscription_rel s WHERE s.srrelid = ANY (tview._relatives(relid))) $$;

-- Does the table follow replicated rows (it has the row trigger, or it is partitioned)?
CREATE OR REPLACE FUNCTION tview._follows_replication(relid oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (SELECT c.relkind = 'p' FROM pg_class c WHERE c.oid = relid)
        OR EXISTS (SELECT 1 FROM pg_trigger g
                   WHERE g.tgrelid = relid AND g.tgfoid = tview._capture_function(relid)
                     AND g.tgtype = 29 AND g.tgenabled IN ('R', 'A'))   -- AFTER INSERT OR UPDATE OR DELETE, each row
$$;

-- Replicated rows reach the TVIEWs: a row trigger fired in replica sessions only queues each
-- row's keys for the commit-time flush (which fires there too), and the TRUNCATE trigger fires
-- always. A partitioned table gets no row trigger: rows land in its partitions, which have theirs.
-- Only what is not so already is altered (an ALTER TABLE brings the engine's DDL hook back here).
CREATE OR REPLACE FUNCTION tview._follow_replication(relid oid) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    truncate_trigger record;
BEGIN
    IF NOT tview._follows_replication(relid) THEN
        -- a trigger of someone else's under that name stays as it is (health() reports the table)
        IF NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = relid AND g.tgname = 'tview_replicated') THEN
            EXECUTE format('CREATE TRIGGER tview_replicated AFTER INSERT OR UPDATE OR DELETE ON %s'
                           ' FOR EACH ROW EXECUTE FUNCTION %s', tview._qname(relid), tview._capture_function(relid));
        END IF;
        IF EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = relid AND g.tgname = 'tview_replicated'
                   AND g.tgfoid = tview._capture_function(relid)) THEN
            EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER tview_replicated', tview._qname(relid));
        END IF;
    END IF;
    SELECT g.tgname, g.tgenabled INTO truncate_trigger FROM pg_trigger g
    WHERE g.tgrelid = relid AND g.tgfoid = tview._capture_function(relid) AND g.tgtype = 32
    ORDER BY g.tgname = 'tview_after_truncate' DESC LIMIT 1;
    IF FOUND AND truncate_trigger.tgenabled <> 'A' THEN
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', tview._qname(relid), truncate_trigger.tgname);
    END IF;
END;
$$;

-- (Re)generate the capture code of the given tables that TVIEWs read (others are skipped)
-- and of their families, once the TVIEWs are up to date with the partitions and children
-- that came and went. On the tables of strict_relids and their families (those a new TVIEW
-- reads), a trigger the engine did not make under the engine's name is refused; elsewhere the
-- engine's trigger takes a free name beside it (tview._install_table_capture).
CREATE OR REPLACE FUNCTION tview._install_captures(relids oid[], strict_relids oid[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    relid oid;
    strict_tables oid[] := tview._capture_tables(strict_relids);
BEGIN
    PERFORM tview._sync_members();
    FOR relid IN SELECT unnest(tview._capture_tables(relids)) LOOP
        PERFORM tview._install_table_capture(relid, relid = ANY (strict_tables));
    END LOOP;
END;
$$;

-- Regenerate the capture functions of every table the given TVIEWs read (after one of them
-- gained or lost a reader, or changed mode: which of them are refreshed directly changes).
CREATE OR REPLACE FUNCTION tview._install_captures_reading(tview_ids int[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT tview._install_captures(ARRAY(SELECT d.source_oid FROM tview.dependencies d
                                         WHERE d.tview_id = ANY (tview_ids)), '{}')
$$;

-- The base tables a TVIEW reads.
CREATE OR REPLACE FUNCTION tview._tables_read(tview_id int) RETURNS oid[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(d.source_oid ORDER BY d.source_oid), '{}')
    FROM tview.dependencies d
    WHERE d.tview_id = _tables_read.tview_id AND d.source_kind = 'table'
$$;

-- The TVIEWs a TVIEW reads.
CREATE OR REPLACE FUNCTION tview._tviews_read(tview_id int) RETURNS int[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(x.id ORDER BY x.id), '{}')
    FROM tview.dependencies d JOIN tview.tviews x ON x.table_oid = d.source_oid
    WHERE d.tview_id = _tviews_read.tview_id
$$;

-- After TVIEWs were dropped or rebuilt: (re)generate the capture code of the given tables
-- that TVIEWs read (tables read for the first time included); remove the triggers and
-- capture functions of tables no TVIEW reads any more (nor one of their family), and
-- capture functions left by tables that were dropped.
CREATE OR REPLACE FUNCTION tview._sync_captures(relids oid[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel record;
    trg record;
    captured oid[];
BEGIN
    PERFORM tview._install_captures(relids, '{}');
    captured := tview._capture_tables(ARRAY(SELECT d.source_oid FROM tview.dependencies d));
    FOR rel IN
        SELECT p.oid AS fn, p.proname, c.oid AS relid
        FROM pg_proc p
        LEFT JOIN pg_class c ON c.oid = substr(p.proname, length('_capture_') + 1)::oid
        WHERE p.pronamespace = 'tview'::regnamespace AND p.proname ~ '^_capture_[0-9]+$'
          AND NOT coalesce(c.oid = ANY (captured), false)
        ORDER BY p.proname
    LOOP
        BEGIN
            FOR trg IN SELECT g.tgname, g.tgrelid FROM pg_trigger g WHERE g.tgfoid = rel.fn LOOP
                EXECUTE format('DROP TRIGGER %I ON %s', trg.tgname, tview._qname(trg.tgrelid));
            END LOOP;
            EXECUTE format('DROP FUNCTION tview.%I()', rel.proname);
        EXCEPTION WHEN insufficient_privilege THEN
            -- only the table's owner may drop its triggers: they stay, and do nothing
            PERFORM tview._install_table_capture(rel.relid, false);
            RAISE NOTICE 'no TVIEW reads % any more; its engine triggers stay, doing nothing, until its owner drops them',
                         rel.relid::regclass
                USING HINT = format('As the owner of %s: %s', rel.relid::regclass,
                                    (SELECT string_agg(format('DROP TRIGGER %I ON %s;', g.tgname, tview._qname(rel.relid)), ' ')
                                     FROM pg_trigger g WHERE g.tgfoid = rel.fn));
        END;
    END LOOP;
END;
$$;

-- The generated capture code, readable by people and by the app: one row per table that
-- TVIEWs read, with the TVIEWs, its capture function and that function's source.
CREATE OR REPLACE VIEW tview.capture AS
SELECT d.source_oid::regclass::text AS source,
       array_agg(tview._label(t.schema_name, t.name) ORDER BY t.id) AS tviews,
       format('tview.%I()', tview._capture_name(d.source_oid)) AS function,
       (SELECT p.prosrc FROM pg_proc p
        WHERE p.oid = tview._capture_function(d.source_oid)) AS code,
       d.source_oid
FROM tview.dependencies d
JOIN tview.tviews t ON t.id = d.tview_id
WHERE d.source_kind = 'table'
GROUP BY d.source_oid;
COMMENT ON VIEW tview.capture IS 'Generated change capture per table TVIEWs read: its function and code';

-- Installing over an older engine: re-point every engine trigger to its table's capture
-- function now, so no trigger still runs code this version removes (the installer then
-- drops that code and regenerates every TVIEW). Nothing to do on a new install.
SELECT tview._install_captures(ARRAY(SELECT d.source_oid FROM tview.dependencies d), '{}');
