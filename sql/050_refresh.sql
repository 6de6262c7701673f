-- Settings, set-based refresh and cascades.

-- Every engine setting in force, as one object {name: value}, in one query: the write path
-- reads it once per statement and passes it along (each lookup is a catalog query).
-- tview.notify is always there ('auto' unless stored), after the session's turn-down.
CREATE OR REPLACE FUNCTION tview._settings() RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stored  jsonb;
    notify  text;
    session text;
BEGIN
    -- one query with a plan cached per session (a SQL function would be planned at every call)
    SELECT coalesce(jsonb_object_agg(k, v) FILTER (WHERE v <> ''), '{}') INTO stored
    FROM (SELECT DISTINCT ON (k) k, v
          FROM pg_db_role_setting s
          CROSS JOIN LATERAL unnest(s.setconfig) cfg
          CROSS JOIN LATERAL (SELECT split_part(substr(cfg, 7), '=', 1) AS k,
                                     substr(cfg, strpos(cfg, '=') + 1) AS v) kv
          WHERE s.setdatabase IN (0, (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()))
            AND s.setrole IN (0, (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'tview'))
            AND starts_with(cfg, 'tview.')
          ORDER BY k, s.setrole <> 0 DESC, s.setdatabase <> 0 DESC) chosen;
    notify := coalesce(stored ->> 'notify', 'auto');
    session := lower(btrim(nullif(current_setting('tview.notify', true), '')));
    IF session IS NOT NULL AND session <> lower(btrim(notify)) THEN
        IF session <> 'auto' AND tview._truthy(session) IS NULL THEN
            RAISE EXCEPTION 'invalid value for tview.notify: "%"', session
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Use on, off or auto.';
        END IF;
        -- down only: off < auto < on
        IF tview._truthy(session) IS FALSE OR (session = 'auto' AND tview._truthy(notify) IS TRUE) THEN
            notify := session;
        END IF;
    END IF;
    RETURN stored || jsonb_build_object('notify', notify);
END;
$$;

-- The session settings a definition's output can depend on (text of timestamps, intervals,
-- bytea and floats, inside documents too). Each TVIEW pins the values of its creator's
-- session (tview.tviews.session_settings): its refreshes and tview.verify run with them, so
-- every writer leaves the same bytes whatever its own session says.
ALTER TABLE tview.tviews ADD COLUMN IF NOT EXISTS session_settings jsonb NOT NULL DEFAULT '{}';

CREATE OR REPLACE FUNCTION tview._session_settings() RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_object_agg(name, current_setting(name))
    FROM unnest(ARRAY['TimeZone', 'DateStyle', 'IntervalStyle', 'bytea_output', 'extra_float_digits']) name
$$;

-- Put settings in force for the rest of the transaction (or until put back); returns the
-- values they replace, to put back with the same function.
CREATE OR REPLACE FUNCTION tview._apply_settings(settings jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    item   record;
    before jsonb := '{}';
BEGIN
    FOR item IN SELECT * FROM jsonb_each_text(settings) LOOP
        before := before || jsonb_build_object(item.key, current_setting(item.key));
        PERFORM set_config(item.key, item.value, true);
    END LOOP;
    RETURN before;
END;
$$;

-- The SET clauses of a generated function that runs with a TVIEW's pinned settings.
CREATE OR REPLACE FUNCTION tview._settings_clauses(settings jsonb) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(string_agg(format(E'SET %s = %L\n', key, value), '' ORDER BY key), '')
    FROM jsonb_each_text(settings)
$$;

-- Settings in force: stored with ALTER ROLE <engine owner> IN DATABASE / ALTER ROLE <engine
-- owner> SET / ALTER DATABASE / ALTER ROLE ALL SET (that order, as PostgreSQL applies them),
-- else the default given here. Read from pg_db_role_setting, never from the session: a
-- writer's SET tview.x (or PGOPTIONS) would otherwise steer the engine's triggers for every
-- other writer (purge the log, hide events, turn locks off). The one exception is
-- tview.notify, which a session may turn down, never up (off < auto < on): SET LOCAL
-- tview.notify = off is how a transaction that will be PREPAREd avoids NOTIFY.
CREATE OR REPLACE FUNCTION tview.setting(setting_name text, default_value text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce(tview._settings() ->> setting_name, default_value);
END;
$$;
COMMENT ON FUNCTION tview.setting(text, text) IS
    'Engine setting tview.<name> in force: ALTER ROLE <engine owner> [IN DATABASE] SET, else ALTER DATABASE SET, '
    'else the default. A session''s SET is ignored, except that it may turn tview.notify down (off, or auto).';

-- A boolean setting's value as PostgreSQL reads booleans (on/off, true/false, yes/no, 1/0);
-- NULL when it is none of them.
CREATE OR REPLACE FUNCTION tview._truthy(value text) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN lower(btrim(value)) IN ('on', 'true', 'yes', '1', 't', 'y') THEN true
                WHEN lower(btrim(value)) IN ('off', 'false', 'no', '0', 'f', 'n') THEN false END
$$;

-- Is boolean setting tview.<name> on (in cfg, from tview._settings())? An unreadable value
-- is an error, not a silent off.
CREATE OR REPLACE FUNCTION tview._cfg_enabled(cfg jsonb, setting_name text, default_value boolean) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    raw text := cfg ->> setting_name;
BEGIN
    IF raw IS NULL THEN
        RETURN default_value;
    ELSIF tview._truthy(raw) IS NULL THEN
        RAISE EXCEPTION 'invalid value for tview.%: "%"', setting_name, raw
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use on or off.';
    END IF;
    RETURN tview._truthy(raw);
END;
$$;

CREATE OR REPLACE FUNCTION tview.enabled(setting_name text, default_value boolean) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN tview._cfg_enabled(tview._settings(), setting_name, default_value);
END;
$$;

-- A whole-number setting tview.<name> (>= 0) in cfg; an unreadable value is an error.
CREATE OR REPLACE FUNCTION tview._cfg_count(cfg jsonb, setting_name text, default_value bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    raw text := coalesce(cfg ->> setting_name, default_value::text);
BEGIN
    IF raw !~ '^\s*\d{1,18}\s*$' THEN
        RAISE EXCEPTION 'invalid value for tview.%: "%"', setting_name, raw
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use a whole number, e.g. ' || default_value || '.';
    END IF;
    RETURN raw::bigint;
END;
$$;

-- How generated SQL tells whether two values of a column differ (so a row is rewritten):
-- 'op' IS DISTINCT FROM, when the type's equality is pg_catalog's and equal values have the
-- same text; 'both' IS DISTINCT FROM, then the text when equal (numeric 1.0 = 1.00, jsonb,
-- intervals, floats, a nondeterministic collation: equal yet not the same bytes); 'text' the
-- text images only: a type whose = is not pg_catalog's (an extension's ltree, a type of your
-- own: not found under the pinned search_path, and not the engine owner's to run), json, a
-- type without a btree equality, and arrays or domains of those.
CREATE OR REPLACE FUNCTION tview._compare_kind(typid oid, collid oid) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    typ  record;
    kind text;
BEGIN
    SELECT t.oid, t.typtype, t.typbasetype, t.typelem, t.typcategory, t.typnamespace INTO typ FROM pg_type t WHERE t.oid = typid;
    IF typ.typtype = 'd' THEN
        RETURN tview._compare_kind(typ.typbasetype, collid);
    ELSIF typ.typcategory = 'A' AND typ.typelem <> 0 THEN
        kind := tview._compare_kind(typ.typelem, collid);
    ELSIF typ.typnamespace <> 'pg_catalog'::regnamespace OR typ.typtype <> 'b' OR typid = 'json'::regtype
          OR NOT EXISTS (SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod
                         WHERE am.amname = 'btree' AND oc.opcdefault AND oc.opcintype = typid
                           AND oc.opcnamespace = 'pg_catalog'::regnamespace) THEN
        RETURN 'text';
    ELSIF typid IN ('jsonb'::regtype, 'numeric'::regtype, 'float4'::regtype, 'float8'::regtype, 'interval'::regtype)
          OR EXISTS (SELECT 1 FROM pg_collation c WHERE c.oid = collid AND NOT c.collisdeterministic) THEN
        RETURN 'both';
    ELSE
        RETURN 'op';
    END IF;
    RETURN kind;
END;
$$;

-- In the refresh statement: the old versions of the rows that changed (of TVIEW key column
-- key), as a relation.
CREATE OR REPLACE FUNCTION tview._old_rows_relation(key_column name) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT format('(SELECT c.* FROM cur c WHERE c.%1$I IN (SELECT d.old_key FROM d WHERE d.old_key <> ALL ($2)))', key_column) $$;

-- The refresh statement of one TVIEW. %1$s is where the key filter goes ('' for a whole
-- refresh). $1 = keys (bigint[]), $2 = keys whose row is only a placeholder made by the
-- locking (tview._install_refresh_function): not a row that existed, so neither reported as
-- an old image nor counted as deleted; $4 = what the TVIEWs reading this one are handed
-- (text): NULL when nothing reads it; 'images' for a change of a few rows: the old and new
-- images (all columns but data) of the rows that changed, which keys queries and patches
-- read; 'keys' for a bulk change, in the variant made with readers_keys (an expression over
-- tview._old_rows_relation, giving the readers' keys the changed rows' old versions touch):
-- no images, but those keys, computed here from the old rows in place, and the keys of the
-- changed rows there now (whose readers' keys the cascade reads from the table next).
-- Nothing of a bulk change is then copied into one jsonb value, whose size would grow with
-- the rows changed (it holds at most 256 MB).
-- Returns upserted, deleted, null keys seen, old images, new images, readers' keys (jsonb),
-- changed keys there now (bigint[]).
-- A row of the definition with a NULL key matches no current row, so it is in d with
-- neither key; the three are counted in one pass over d (each subquery costs an executor
-- node set up at every refresh).
-- A definition giving a key twice fails with 23505 (tview._duplicate_keys) before the upsert
-- would change a row twice: checked in the statement itself, so a refresh needs no exception
-- block (a subtransaction, which would take a transaction id of its own at every write).
DROP FUNCTION IF EXISTS tview._build_refresh_sql(oid, oid, name);   -- 0.6.3 and older: no readers' keys
CREATE OR REPLACE FUNCTION tview._build_refresh_sql(view_oid oid, table_oid oid, key_column name,
                                                    readers_keys text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols     text;
    src_cols text;
    diff     text;
    sets     text;
    img_new  text;
    img_old  text;
    k        text := quote_ident(key_column);
BEGIN
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
           string_agg('s.' || quote_ident(a.attname), ', ' ORDER BY a.attnum),
           string_agg(
               CASE tview._compare_kind(a.atttypid, a.attcollation)   -- unequal is unequal text: text only if equal
                    WHEN 'both'
                    THEN format('(s.%1$I IS DISTINCT FROM c.%1$I OR s.%1$I::text IS DISTINCT FROM c.%1$I::text)', a.attname)
                    WHEN 'text'
                    THEN format('s.%1$I::text IS DISTINCT FROM c.%1$I::text', a.attname)
                    ELSE format('s.%1$I IS DISTINCT FROM c.%1$I', a.attname) END,
               ' OR ' ORDER BY a.attnum),
           string_agg(format('%1$I = EXCLUDED.%1$I', a.attname), ', ' ORDER BY a.attnum)
               FILTER (WHERE a.attname <> key_column),
           string_agg(format('%1$L, s.%1$I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.attname <> 'data'),
           string_agg(format('%1$L, c.%1$I', a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.attname <> 'data')
      INTO cols, src_cols, diff, sets, img_new, img_old
    FROM pg_attribute a
    WHERE a.attrelid = view_oid AND a.attnum > 0 AND NOT a.attisdropped;

    RETURN tview._fill($f$
WITH src AS MATERIALIZED (SELECT {cols} FROM {view} v %1$s),
cur AS MATERIALIZED (SELECT {cols} FROM {table} v %1$s),
d AS MATERIALIZED (
    SELECT s.{key} AS new_key, c.{key} AS old_key,
           CASE WHEN $4 = 'images' AND c.{key} IS NOT NULL AND c.{key} <> ALL ($2) THEN jsonb_build_object({old_image}) END AS old_img,
           CASE WHEN $4 = 'images' AND s.{key} IS NOT NULL THEN jsonb_build_object({new_image}) END AS new_img
    FROM src s FULL JOIN cur c ON c.{key} = s.{key}
    WHERE s.{key} IS NULL OR c.{key} IS NULL OR {differs}),
del AS (DELETE FROM {table} t USING d WHERE d.new_key IS NULL AND t.{key} = d.old_key RETURNING t.{key} AS k),
ups AS (INSERT INTO {table} AS t ({cols})
        SELECT {src_cols} FROM src s
        WHERE s.{key} IN (SELECT new_key FROM d)
          AND CASE WHEN (SELECT count(k.{key}) - count(DISTINCT k.{key}) FROM src k) > 0
                   THEN tview._duplicate_keys({table_name}) ELSE true END
        ON CONFLICT ({key}) DO UPDATE SET {sets}
        RETURNING 1)
SELECT (SELECT count(*) FROM ups), (SELECT count(*) FROM del WHERE k <> ALL ($2)), i.null_keys, {tail}
$f$, jsonb_build_object(
        'key', tview._pct(k), 'cols', tview._pct(cols), 'src_cols', tview._pct(src_cols),
        'view', tview._pct(tview._qname(view_oid)), 'table', tview._pct(tview._qname(table_oid)),
        'table_name', tview._pct(quote_literal(tview._qname(table_oid))),
        'differs', tview._pct(coalesce(diff, 'false')),
        'sets', tview._pct(coalesce(sets, format('%1$s = EXCLUDED.%1$s', k))),
        'old_image', tview._pct(img_old), 'new_image', tview._pct(img_new),
        'tail', CASE WHEN readers_keys IS NULL THEN $t$i.old_img, i.new_img, NULL::jsonb, NULL::bigint[]
FROM (SELECT count(*) FILTER (WHERE new_key IS NULL AND old_key IS NULL) AS null_keys,
             jsonb_agg(old_img) FILTER (WHERE old_img IS NOT NULL) AS old_img,
             jsonb_agg(new_img) FILTER (WHERE new_img IS NOT NULL) AS new_img
      FROM d) i$t$
             ELSE tview._fill($t$NULL::jsonb, NULL::jsonb, {readers_keys}, i.changed
FROM (SELECT count(*) FILTER (WHERE new_key IS NULL AND old_key IS NULL) AS null_keys,
             coalesce(array_agg(new_key) FILTER (WHERE new_key IS NOT NULL), '{}') AS changed
      FROM d) i$t$, jsonb_build_object('readers_keys', tview._pct(readers_keys)))
             END));
END;
$$;

-- Aliases of the relations a definition joins at its top level outside the nullable side of
-- an outer join (FOR SHARE OF cannot name the others): the rows a refresh share-locks. The
-- root table, when read once, is left out: a change of its rows refreshes the same keys, so
-- the own-row locks already serialize it (and a bulk write would lock every row twice).
CREATE OR REPLACE FUNCTION tview._lockable_aliases(q jsonb, root_oid oid) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE walk(node, nullable) AS (
        SELECT q -> 'jointree', false
        UNION ALL
        SELECT c.child, w.nullable OR c.nulls
        FROM walk w, LATERAL (
            SELECT w.node -> 'larg', (w.node ->> 'jointype')::int IN (2, 3)     -- FULL, RIGHT
            WHERE w.node ->> '_' = 'JOINEXPR'
            UNION ALL
            SELECT w.node -> 'rarg', (w.node ->> 'jointype')::int IN (1, 2)     -- LEFT, FULL
            WHERE w.node ->> '_' = 'JOINEXPR'
            UNION ALL
            SELECT e, false FROM jsonb_array_elements(tview._list(w.node -> 'fromlist')) e
            WHERE w.node ->> '_' = 'FROMEXPR'
        ) c(child, nulls)
    )
    , joined AS (
        SELECT quote_ident(coalesce(rte -> 'alias' ->> 'aliasname', rte -> 'eref' ->> 'aliasname')) AS alias,
               (rte ->> 'relid')::oid AS relid
        FROM walk w, LATERAL (SELECT q -> 'rtable' -> ((w.node ->> 'rtindex')::int - 1) AS rte) r
        WHERE w.node ->> '_' = 'RANGETBLREF' AND NOT w.nullable
          AND (rte ->> 'rtekind')::int = 0 AND rte ->> 'relkind' IN ('r', 'p', 'v')
    )
    SELECT coalesce(array_agg(DISTINCT alias), '{}')
    FROM joined
    WHERE relid IS DISTINCT FROM root_oid OR (SELECT count(*) FROM joined j WHERE j.relid = root_oid) > 1
$$;

-- Whether a definition may fail with 21000 because a scalar subquery (a row comparison with
-- one) returns more than one row: it has one that is not an aggregate without GROUP BY (always
-- one row), or it reads a view, whose subqueries its tree does not show. Only then does a
-- refresh catch that error to name the TVIEW: the exception block costs a subtransaction, with
-- a transaction id of its own, at every write (64 of them in one transaction overflow the
-- backend's cache of them, which slows every snapshot on the server).
CREATE OR REPLACE FUNCTION tview._may_fail_cardinality(q jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1
                   FROM jsonb_path_query(q, 'strict $.** ? (@."_" == "SUBLINK")') l
                   WHERE (l ->> 'subLinkType')::int IN (3, 4, 5)      -- ROWCOMPARE, EXPR, MULTIEXPR
                     AND NOT (coalesce((l -> 'subselect' ->> 'hasAggs')::boolean, false)
                              AND jsonb_array_length(tview._list(l -> 'subselect' -> 'groupClause')) = 0
                              AND jsonb_array_length(tview._list(l -> 'subselect' -> 'groupingSets')) = 0
                              AND NOT coalesce((l -> 'subselect' ->> 'hasTargetSRFs')::boolean, false)
                              AND tview._absent(l -> 'subselect' -> 'setOperations')))
        OR EXISTS (SELECT 1 FROM jsonb_path_query(q, 'strict $.** ? (@.rtekind == 0 && @.relkind == "v")'))
$$;

-- Whether a TVIEW's key that no row of its root relation holds (now, in this transaction) is
-- sure to be no key of its definition either, so that a bulk refresh can delete its row without
-- recomputing it (a bulk DELETE of the root table): the key is a plain column of root, so a row of
-- the definition comes with a row of root holding its value, and
--  * root is a table without inheritance children, or a partitioned table (its index covers the
--    partitions), still under the name the generated code uses;
--  * the column alone has a unique index (valid, immediate, without predicate, the type's
--    default operator class): a row that this transaction deleted or changed cannot come back
--    from another transaction before it ends, the unique check waits for it;
--  * the engine's owner sees every row of root: it may read it, without row-level security.
-- Checked at every bulk refresh, not once: the table's owner may change any of it later.
CREATE OR REPLACE FUNCTION tview._root_proves_absence(root regclass, root_name text, root_column name) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT to_regclass(root_name) = root
           AND has_table_privilege(root, 'SELECT')
           AND EXISTS (
               SELECT 1
               FROM pg_class c
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = root_column AND NOT a.attisdropped
               JOIN pg_index i ON i.indrelid = c.oid
               JOIN pg_opclass o ON o.oid = i.indclass[0]
               WHERE c.oid = root
                 AND (c.relkind = 'p' OR (c.relkind = 'r' AND NOT c.relhassubclass))
                 AND NOT c.relrowsecurity
                 AND i.indisunique AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL
                 AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum
                 AND o.opcdefault AND o.opcintype = a.atttypid)
$$;

-- Keyed refreshes run in a function generated per TVIEW (tview._refresh_<id>) whose SQL is
-- static, so PostgreSQL caches its plans instead of planning the view at every statement.
-- It first serialises concurrent refreshes of the same keys, so that none recomputes from a
-- snapshot that misses another's committed change (the READ COMMITTED lost update):
--  * keys without a row yet get a placeholder row (ON CONFLICT waits for a concurrent
--    creator to commit), or, when there are many, the TVIEW-wide advisory lock;
--  * then every key's row is locked FOR UPDATE, in key order (no deadlocks between
--    refreshes). The recomputation that follows is a new statement with a new snapshot.
--  * before all that, the rows the definition joins (its top-level FROM, through views,
--    but not the nullable side of an outer join) are share-locked: a transaction changing
--    one of them (renaming the author of a new comment) and this refresh serialize, so
--    neither keeps the other's old value (the write skew of two snapshots). Definitions
--    PostgreSQL cannot lock this way (top-level GROUP BY, DISTINCT, UNION) go without.
-- A bulk refresh first deletes, without the above, the rows of keys whose root row is gone (a
-- bulk DELETE of the root table): recomputing them found nothing, at several times the cost
-- (tview._root_proves_absence says when that is sure). The DELETE checks root again, in one
-- statement: a key whose root row another transaction committed meanwhile is refreshed as usual.
-- Row locks live in the rows, so a long transaction does not fill the lock table.
-- tview.row_locks = off skips the locking (only to measure what it costs).
-- Keys NULL: a whole refresh (the caller locks the table), with what a bulk change hands on.
-- readers: see tview._build_refresh_sql; 'keys' is honoured by the list and whole variants of a
-- function made while TVIEWs read this one, else taken as 'images'; the caller tells which it
-- got by o_readers (NULL: images).
-- q: the query tree of its backing view.
CREATE OR REPLACE FUNCTION tview._install_refresh_function(t tview.tviews, q jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tv  text := tview._qname(t.table_oid);
    k   text := quote_ident(t.key_column);
    aliases    text[] := tview._lockable_aliases(q, t.root_oid);
    read_locks text := '';
    vanished   text := '';
    catches    boolean := tview._may_fail_cardinality(q);
    -- what a bulk change hands the TVIEWs reading this one (see tview._build_refresh_sql); NULL
    -- when none does: the function is made again when they change (tview._derive)
    readers_keys text := tview._readers_keys_sql(t, tview._old_rows_relation(t.key_column));
    keys_sql   text := CASE WHEN readers_keys IS NOT NULL
                            THEN tview._build_refresh_sql(t.view_oid, t.table_oid, t.key_column, readers_keys) END;
BEGIN
    IF t.root_column IS NOT NULL AND (SELECT c.relkind IN ('r', 'p') FROM pg_class c WHERE c.oid = t.root_oid) THEN
        vanished := tview._fill($v$
    IF cardinality($1) > 64 AND tview._root_proves_absence({root_oid}, {root_name}, {root_column_literal}) THEN
        _tview_gone := ARRAY(SELECT m.m FROM unnest($1) m(m)
                             EXCEPT SELECT r.{root_column} FROM {root} r WHERE r.{root_column} = ANY ($1) ORDER BY 1);
        IF cardinality(_tview_gone) > 0 THEN
            WITH gone AS (DELETE FROM {table} t
                          WHERE t.{key} = ANY (_tview_gone)   -- checked again: one hashed scan, not a probe per row
                            AND t.{key} NOT IN (SELECT r.{root_column} FROM {root} r WHERE r.{root_column} = ANY (_tview_gone))
                          RETURNING {image_columns})
            SELECT coalesce(array_agg(g.{key}), '{}'), count(*),
                   CASE WHEN $4 = 'images' THEN to_jsonb(array_agg(g)) END,   -- $4: readers (a column may be named so)
                   CASE WHEN $4 = 'keys' THEN {gone_readers_keys} END
            INTO _tview_gone, _tview_gone_n, _tview_gone_old, _tview_gone_readers
            FROM gone g;
            keys := ARRAY(SELECT unnest(keys) EXCEPT SELECT unnest(_tview_gone) ORDER BY 1);
            IF cardinality(keys) = 0 THEN
                o_upserted := 0;
                o_deleted := _tview_gone_n;
                o_null_keys := 0;
                o_old := _tview_gone_old;
                o_readers := _tview_gone_readers;
                o_changed := CASE WHEN $4 = 'keys' THEN '{}' END;
                RETURN;
            END IF;
        END IF;
    END IF;$v$, jsonb_build_object(
            'root_oid', t.root_oid, 'root_name', quote_literal(tview._qname(t.root_oid)), 'root', tview._qname(t.root_oid),
            'root_column', quote_ident(t.root_column), 'root_column_literal', quote_literal(t.root_column),
            'table', tview._qname(t.table_oid), 'key', quote_ident(t.key_column),
            'image_columns', (SELECT string_agg(format('t.%I', c.attname), ', ' ORDER BY c.ord)
                              FROM tview._column_types(t.table_oid) c WHERE c.attname <> 'data'),
            'gone_readers_keys', coalesce(tview._readers_keys_sql(t, 'gone'), 'NULL::jsonb')));
    END IF;
    IF cardinality(aliases) > 0 THEN
        read_locks := format('PERFORM 1 FROM (%s FOR SHARE OF %s) _tview_locked WHERE _tview_locked.%s = ANY ($1);',
                             rtrim(btrim(pg_get_viewdef(t.view_oid)), ';'), array_to_string(aliases, ', '), k);
        BEGIN
            -- planned as it will run (a constant-false filter would skip the checks)
            EXECUTE 'EXPLAIN SELECT' || regexp_replace(substr(read_locks, length('PERFORM') + 1), '\(\$1\);$',
                                                        '(''{}''::bigint[])');
        EXCEPTION WHEN feature_not_supported OR wrong_object_type OR syntax_error OR undefined_table THEN
            read_locks := '';       -- not lockable: see above
        END;
        IF read_locks <> '' THEN
            read_locks := tview._fill($l$IF cardinality($1) = 1 THEN
            {one}
        ELSE
            {read_locks}
        END IF;$l$, jsonb_build_object('one', regexp_replace(read_locks, '= ANY \(\$1\);$', '= $1[array_lower($1, 1)];'),
                                       'read_locks', read_locks));
        END IF;
    END IF;
    EXECUTE tview._fill($f$
CREATE OR REPLACE FUNCTION tview.{name}(keys bigint[], placeholders bigint[], row_locks boolean, readers text,
                                     OUT o_upserted bigint, OUT o_deleted bigint, OUT o_null_keys bigint,
                                     OUT o_old jsonb, OUT o_new jsonb, OUT o_readers jsonb, OUT o_changed bigint[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan     -- plan once per session, not at every call
{settings}AS {tag}
#variable_conflict use_column
DECLARE
    missing bigint[];
    _tview_gone bigint[];
    _tview_gone_n bigint := 0;
    _tview_gone_old jsonb;
    _tview_gone_readers jsonb;
BEGIN
    placeholders := '{}';{no_readers}{vanished}
    IF row_locks THEN
        {read_locks}
        -- one index scan for all keys (a probe per key costs twice as much for a bulk write)
        missing := ARRAY(SELECT m.m FROM unnest($1) m(m) EXCEPT SELECT v.{key} FROM {table} v WHERE v.{key} = ANY ($1) ORDER BY 1);
        IF cardinality(missing) > 64 THEN
            PERFORM pg_advisory_xact_lock(1953914229, {id});
        ELSIF cardinality(missing) > 0 THEN
            PERFORM pg_advisory_xact_lock_shared(1953914229, {id});
            INSERT INTO {table} AS v ({key}) SELECT m FROM unnest(missing) m ORDER BY m ON CONFLICT DO NOTHING;
            placeholders := missing;
        END IF;
        PERFORM 1 FROM {table} v WHERE v.{key} = ANY ($1) ORDER BY v.{key} FOR UPDATE;
    END IF;
    {catch_begin}IF $1 IS NULL THEN   -- a whole refresh: the caller has locked the table
        {refresh_whole}
        INTO o_upserted, o_deleted, o_null_keys, o_old, o_new, o_readers, o_changed;{refresh_keys}
    ELSIF cardinality($1) = 1 THEN   -- planned for one row: index lookups where a list of keys may hash whole tables
        {refresh_one}
        INTO o_upserted, o_deleted, o_null_keys, o_old, o_new, o_readers, o_changed;
    ELSE{refresh}
        INTO o_upserted, o_deleted, o_null_keys, o_old, o_new, o_readers, o_changed;
    END IF;{catch_end}
    IF _tview_gone_n > 0 THEN
        o_deleted := o_deleted + _tview_gone_n;
        IF $4 = 'images' THEN
            o_old := coalesce(o_old, '[]') || coalesce(_tview_gone_old, '[]');
        ELSIF $4 = 'keys' THEN
            o_readers := coalesce(o_readers, '[]') || coalesce(_tview_gone_readers, '[]');
        END IF;
    END IF;
END;
{tag}
$f$, jsonb_build_object(
        'name', quote_ident('_refresh_' || t.id), 'id', t.id, 'table', tv, 'key', k,
        'settings', tview._settings_clauses(t.session_settings), 'read_locks', read_locks, 'vanished', vanished,
        'catch_begin', CASE WHEN catches THEN E'BEGIN\n    ' ELSE '' END,
        'catch_end', CASE WHEN catches THEN tview._fill($c$
    EXCEPTION WHEN cardinality_violation THEN
        PERFORM tview._raise_cardinality(t, $1, SQLERRM) FROM tview.tviews t WHERE t.id = {id};
    END;$c$, jsonb_build_object('id', t.id)) ELSE '' END,
        'refresh', format(t.refresh_sql, format('WHERE v.%s = ANY ($1)', k)),
        'refresh_one', format(t.refresh_sql, format('WHERE v.%s = $1[array_lower($1, 1)]', k)),
        'refresh_whole', format(coalesce(keys_sql, t.refresh_sql), ''),
        -- a bulk change hands the readers keys (also when the vanished rows left one key)
        'refresh_keys', CASE WHEN keys_sql IS NOT NULL THEN E'\n    ELSIF $4 = ''keys'' THEN'
                                 || format(keys_sql, format('WHERE v.%s = ANY ($1)', k))
                                 || E'\n        INTO o_upserted, o_deleted, o_null_keys, o_old, o_new, o_readers, o_changed;' END,
        -- keys are handed by the list and whole variants, when readers are known to this code;
        -- else images
        'no_readers', format($n$
    IF $4 = 'keys' AND %s THEN
        readers := 'images';
    END IF;$n$, CASE WHEN keys_sql IS NULL THEN 'true' ELSE 'cardinality($1) = 1' END),
        'tag', tview._dollar_tag(read_locks || vanished || t.refresh_sql || coalesce(keys_sql, '') || tv, 'body')));   -- the definition's text may hold $body$
END;
$$;

-- The signature of a TVIEW's generated function of one kind (refresh, patch, keys).
CREATE OR REPLACE FUNCTION tview._generated_signature(tview_id int, kind text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('tview.%I', '_' || kind || '_' || tview_id)
           || CASE kind WHEN 'refresh' THEN '(bigint[],bigint[],boolean,text)' WHEN 'patch' THEN '(jsonb,bigint[],integer,boolean)'
                        ELSE '(oid,jsonb,jsonb,bigint[])' END
$$;

-- The qualified name of a TVIEW's generated function of one kind (refresh, patch, keys),
-- made first when it is missing (dropped by hand: tview.health() reports it), once, by
-- whoever comes first.
CREATE OR REPLACE FUNCTION tview._generated(t tview.tviews, kind text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    signature text := tview._generated_signature(t.id, kind);
    name      text := split_part(signature, '(', 1);
BEGIN
    IF to_regprocedure(signature) IS NULL THEN
        PERFORM pg_advisory_xact_lock(1953914229, -t.id);
        IF to_regprocedure(signature) IS NULL THEN
            CASE kind
                WHEN 'refresh' THEN PERFORM tview._install_refresh_function(t, tview._view_query(t.view_oid));
                WHEN 'patch' THEN PERFORM tview._install_patch_function(t);
                ELSE PERFORM tview._install_keys_function(t);
            END CASE;
        END IF;
    END IF;
    RETURN name;
END;
$$;

-- The errors of a refresh whose definition gives a key twice, or a NULL key.
CREATE OR REPLACE FUNCTION tview._raise_duplicate_keys(t tview.tviews) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'TVIEW %.tv_% has duplicate keys: % is not unique in its definition',
                    t.schema_name, t.name, t.key_column
        USING ERRCODE = 'unique_violation',
              HINT = format('Make %I unique in the definition (v_%s), e.g. by grouping or a DISTINCT ON.',
                            t.key_column, t.name);
END;
$$;

-- Raises _raise_duplicate_keys for the TVIEW whose table is table_name (from the refresh statement).
CREATE OR REPLACE FUNCTION tview._duplicate_keys(table_name text) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tview._raise_duplicate_keys(t) FROM tview.tviews t WHERE t.table_oid = to_regclass(table_name);
    RAISE EXCEPTION 'the definition of % gives a key twice', table_name
        USING ERRCODE = 'unique_violation', HINT = 'Make its key unique in the definition.';
END;
$$;

-- A refresh failed with cardinality_violation (21000): the definition gives a key twice (the
-- upsert would change a row twice: 23505), or one of its scalar subqueries returned more than
-- one row (PostgreSQL's own 21000, naming the TVIEW). keys: those refreshed (NULL: all).
CREATE OR REPLACE FUNCTION tview._raise_cardinality(t tview.tviews, keys bigint[], message text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dups bigint := 0;
BEGIN
    BEGIN
        EXECUTE format('SELECT count(*) - count(DISTINCT v.%1$I) FROM %2$s v%3$s', t.key_column, tview._qname(t.view_oid),
                       CASE WHEN keys IS NOT NULL THEN format(' WHERE v.%I = ANY ($1)', t.key_column) ELSE '' END)
            INTO dups USING keys;
    EXCEPTION WHEN cardinality_violation THEN
        message := SQLERRM;
    END;
    IF dups > 0 THEN
        PERFORM tview._raise_duplicate_keys(t);
    END IF;
    RAISE EXCEPTION 'definition of % fails: %', tview._label(t.schema_name, t.name), message
        USING ERRCODE = 'cardinality_violation',
              HINT = format('A scalar subquery of the definition (v_%s) returns more than one row: make it return one '
                            '(aggregate it, or add a LIMIT 1 with an ORDER BY).', t.name);
END;
$$;

CREATE OR REPLACE FUNCTION tview._raise_null_keys(t tview.tviews, null_keys bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'TVIEW %.tv_% has % row(s) with a NULL key %', t.schema_name, t.name, null_keys, t.key_column
        USING ERRCODE = 'not_null_violation',
              HINT = format('Filter out rows where %I is NULL in the definition.', t.key_column);
END;
$$;

-- A NULL was written where a TVIEW's key comes from: fail (23502) if its definition now has
-- rows with a NULL key (a keyed refresh looks rows up by key and never sees them).
CREATE OR REPLACE FUNCTION tview._check_null_keys(t tview.tviews) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM %s v WHERE v.%I IS NULL', tview._qname(t.view_oid), t.key_column) INTO n;
    IF n > 0 THEN
        PERFORM tview._raise_null_keys(t, n);
    END IF;
END;
$$;

-- Refresh one TVIEW: the given keys, or everything when keys is NULL; cfg: tview._settings();
-- readers: what the TVIEWs reading it are to be handed ('images' or 'keys', see
-- tview._build_refresh_sql; NULL when none does). Gives the rows written and, for the
-- cascade, the images of the rows changed (old and new, jsonb arrays) or, when the refresh
-- function handed keys, the readers' keys of the old rows and the keys of the changed rows
-- there now. Separate values: a jsonb object holding them would copy every image once more.
DROP FUNCTION IF EXISTS tview._refresh_rows(tview.tviews, bigint[], jsonb);   -- 0.6.3 and older: images only
CREATE OR REPLACE FUNCTION tview._refresh_rows(t tview.tviews, keys bigint[], cfg jsonb, readers text,
                                               OUT upserted bigint, OUT deleted bigint,
                                               OUT old_images jsonb, OUT new_images jsonb,
                                               OUT readers_keys jsonb, OUT changed bigint[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    null_keys bigint;
    old_img   jsonb;
    new_img   jsonb;
BEGIN
    upserted := 0;
    deleted := 0;
    old_images := '[]';
    new_images := '[]';
    changed := '{}';
    IF keys IS NOT NULL AND cardinality(keys) = 0 THEN
        RETURN;
    END IF;
    IF keys IS NULL THEN
        -- a whole refresh (rare on the write path), by the same function: it names the TVIEW on 21000
        EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', tview._qname(t.table_oid));
        EXECUTE format('SELECT * FROM %s(NULL, NULL, false, $1)', tview._generated(t, 'refresh'))
            INTO upserted, deleted, null_keys, old_img, new_img, readers_keys, changed USING readers;
    ELSIF cardinality(keys) = 1 OR cardinality(keys) >= tview._cfg_count(cfg, 'batch_threshold', 2) THEN
        EXECUTE format('SELECT * FROM %s($1, NULL, $2, $3)', tview._generated(t, 'refresh'))
            INTO upserted, deleted, null_keys, old_img, new_img, readers_keys, changed
            USING keys, tview._cfg_enabled(cfg, 'row_locks', true), readers;
    ELSE
        -- below the batch threshold: one key at a time, in key order (row locks), handing images
        EXECUTE format('SELECT sum(r.o_upserted), sum(r.o_deleted), sum(r.o_null_keys),'
                       ' jsonb_agg(i.o) FILTER (WHERE i.o IS NOT NULL),'
                       ' jsonb_agg(j.n) FILTER (WHERE j.n IS NOT NULL)'
                       ' FROM unnest($1) k(key),'
                       ' LATERAL %s(ARRAY[k.key], NULL, $2, $3) r'
                       ' LEFT JOIN LATERAL jsonb_array_elements(r.o_old) i(o) ON true'
                       ' LEFT JOIN LATERAL jsonb_array_elements(r.o_new) j(n) ON true',
                       tview._generated(t, 'refresh'))
            INTO upserted, deleted, null_keys, old_img, new_img
            USING keys, tview._cfg_enabled(cfg, 'row_locks', true), CASE WHEN readers IS NOT NULL THEN 'images' END;
    END IF;
    IF null_keys > 0 THEN
        PERFORM tview._raise_null_keys(t, null_keys);
    END IF;
    old_images := coalesce(old_img, '[]');
    new_images := coalesce(new_img, '[]');
    changed := coalesce(changed, '{}');
END;
$$;

-- Changed rows (jsonb images) one by one, for keys queries and patches. Declared ROWS 1
-- (jsonb_array_elements says 100): the plans that read it are generic and cached, and must
-- look the few rows a write changes up by index in the tables they join, never scan those
-- tables whole; a bulk change pays an index lookup per row instead of a hash join.
CREATE OR REPLACE FUNCTION tview._image_rows(images jsonb) RETURNS SETOF jsonb
LANGUAGE sql STABLE ROWS 1
SET search_path = pg_catalog, pg_temp
AS $$ SELECT e FROM jsonb_array_elements(images) e $$;

-- A relation's columns in order, each with its type as ALTER TABLE spells it
-- (and a column definition list).
CREATE OR REPLACE FUNCTION tview._column_types(relid oid)
RETURNS TABLE (attname name, attnum int, type_sql text, ord int)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.attname, a.attnum,
           format_type(a.atttypid, a.atttypmod)
           || CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
                   THEN ' COLLATE ' || format('%I.%I', cn.nspname, co.collname) ELSE '' END,
           (row_number() OVER (ORDER BY a.attnum))::int
    FROM pg_attribute a
    JOIN pg_type ty ON ty.oid = a.atttypid
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
    LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
    WHERE a.attrelid = relid AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- Changed rows `images` of the TVIEW whose table is relid, as a relation of its columns. The
-- columns are spelled out (not its row type): the generated code that reads them is made
-- again when the table's columns change (tview.alter), and a plan cached in any session
-- holds no row type of the table. joined: the query reading them joins other tables, and
-- gets them one by one (tview._image_rows, estimated at 1 row, so that its plan looks the
-- joined rows up by index); otherwise in one call of jsonb_to_recordset, half the cost per
-- row (5 against 11 ms for 5,000 rows), whose estimate of 100 rows then changes no plan.
CREATE OR REPLACE FUNCTION tview._images_relation(relid oid, images text, joined boolean) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format(CASE WHEN joined THEN '(SELECT r.* FROM tview._image_rows(%s) e, pg_catalog.jsonb_to_record(e) AS r(%s))'
                       ELSE '(SELECT r.* FROM pg_catalog.jsonb_to_recordset(%s) AS r(%s))' END,
                  images, string_agg(format('%I %s', c.attname, c.type_sql), ', ' ORDER BY c.ord))
    FROM tview._column_types(relid) c
$$;

-- The keys query of one dependency over changed rows: key_sql applied to the relation of
-- the old rows, to that of the new rows and to more_rel (more new rows; any of the three NULL
-- when there are none), as one query of distinct keys without NULLs, in order. Shared by the
-- statement trigger, the generated keys functions, the generated refresh functions (their
-- readers' keys) and the generated patch functions.
DROP FUNCTION IF EXISTS tview._keys_sql(text, text, text);   -- 0.6.3 and older: two relations
CREATE OR REPLACE FUNCTION tview._keys_sql(key_sql text, old_rel text, new_rel text, more_rel text DEFAULT NULL)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('SELECT DISTINCT k FROM (%s) s(k) WHERE k IS NOT NULL ORDER BY 1',
                  array_to_string(ARRAY(SELECT format(key_sql, r) FROM unnest(ARRAY[old_rel, new_rel, more_rel]) r
                                        WHERE r IS NOT NULL),
                                  ' UNION ALL '))
$$;

-- The keys of its readers that rows of TVIEW t in relation rel touch, as one jsonb
-- expression ([{"id": reader, "keys": "{1,2}"}], a reader's keys possibly none), for its refresh
-- function: '[]' when no reader has a keys query (each is refreshed whole), NULL when
-- nothing reads t.
CREATE OR REPLACE FUNCTION tview._readers_keys_sql(t tview.tviews, rel text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN count(*) FILTER (WHERE d.key_sql IS NOT NULL) = 0 THEN '''[]''::jsonb'
                -- each keys query named once (a filter on its result would copy it into a second subplan)
                ELSE format('(SELECT jsonb_agg(jsonb_build_object(''id'', r.id, ''keys'', r.keys)) FROM (VALUES %s) r(id, keys))',
                            string_agg(format('(%s, ARRAY(%s)::text)', d.tview_id, tview._keys_sql(d.key_sql, rel, NULL)),
                                       ', ' ORDER BY d.tview_id) FILTER (WHERE d.key_sql IS NOT NULL)) END
    FROM tview.dependencies d
    WHERE d.source_oid = t.table_oid
    HAVING count(*) > 0
$$;

-- The same with NULLs kept (one, sorted last): for a TVIEW whose key's column may be NULL.
CREATE OR REPLACE FUNCTION tview._keys_sql_with_nulls(key_sql text, old_rel text, new_rel text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('SELECT DISTINCT k FROM (%s) s(k) ORDER BY 1 NULLS LAST',
                  array_to_string(ARRAY[CASE WHEN old_rel IS NOT NULL THEN format(key_sql, old_rel) END,
                                        CASE WHEN new_rel IS NOT NULL THEN format(key_sql, new_rel) END],
                                  ' UNION ALL '))
$$;

-- Whether rows of a TVIEW's root relation may give it a NULL key: its key's column there is
-- nullable, or the key is an expression of its columns (the check evaluates it:
-- coalesce(i, -1) never is NULL, i::bigint is when i is).
CREATE OR REPLACE FUNCTION tview._key_may_be_null(t tview.tviews) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN t.root_column IS NULL THEN t.root_key IS NOT NULL
                ELSE NOT coalesce((SELECT a.attnotnull FROM pg_attribute a
                                   WHERE a.attrelid = t.root_oid AND a.attname = t.root_column), true) END
$$;

-- Which keys of a TVIEW a change of another TVIEW it reads touches: its keys queries run in
-- a function generated per TVIEW (tview._keys_<id>), static SQL with cached plans (planned
-- at every statement, a keys query cost more than the refresh it leads to). The changed
-- rows come from the cascade as jsonb arrays of TVIEW rows (old and new images, without
-- data) for a change of a few rows, and as keys of rows in the source's table (source_keys,
-- read where they are) for a bulk change or rows patched. Changes of base tables never come
-- here: their capture functions (058_capture.sql) read the transition tables in place.
CREATE OR REPLACE FUNCTION tview._install_keys_function(t tview.tviews) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    blocks text;
BEGIN
    SELECT string_agg(tview._fill($b$
    IF source = {source} THEN{null_check}
        RETURN ARRAY({keys});
    END IF;$b$, jsonb_build_object(
                          'source', d.source_oid,
                          'keys', tview._keys_sql(d.key_sql, tview._images_relation(d.source_oid, 'old_rows', d.joined),
                                                  tview._images_relation(d.source_oid, 'new_rows', d.joined), d.stored),
                          'null_check', CASE WHEN d.source_oid = t.root_oid AND tview._key_may_be_null(t)
                                             THEN tview._fill($n$
        IF EXISTS (SELECT 1 FROM {new_rows} x WHERE {root_key} IS NULL)
           OR EXISTS (SELECT 1 FROM {stored} x WHERE {root_key} IS NULL) THEN
            PERFORM tview._check_null_keys(t) FROM tview.tviews t WHERE t.id = {id};
        END IF;$n$, jsonb_build_object('new_rows', tview._images_relation(d.source_oid, 'new_rows', true),
                                       'stored', d.stored, 'root_key', format(t.root_key, 'x'), 'id', t.id)) ELSE '' END)),
                      '' ORDER BY d.source_oid)
    INTO blocks
    FROM (SELECT d.*,   -- root and child lineage compute keys from the changed rows alone
                 d.lineage !~ '^(root|child)(\+(root|child))*$' AS joined,
                 -- $4: source_keys (a column may be named so)
                 format('(SELECT * FROM %s x WHERE x.%I = ANY ($4))', tview._qname(s.table_oid), s.key_column) AS stored
          FROM tview.dependencies d JOIN tview.tviews s ON s.table_oid = d.source_oid) d
    WHERE d.tview_id = t.id AND d.key_sql IS NOT NULL AND d.source_kind = 'tview';
    EXECUTE tview._fill($f$
CREATE OR REPLACE FUNCTION tview.{name}(source oid, old_rows jsonb, new_rows jsonb, source_keys bigint[]) RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan     -- lookups by the changed rows' values: plan once
AS {tag}
BEGIN{blocks}
    RAISE EXCEPTION 'TVIEW {id} has no keys query for relation %', source::regclass
        USING ERRCODE = 'internal_error', HINT = 'Run SELECT * FROM tview.health() and apply its fixes.';
END;
{tag}
$f$, jsonb_build_object('name', quote_ident('_keys_' || t.id), 'blocks', coalesce(blocks, ''), 'id', t.id,
                        'tag', tview._dollar_tag(coalesce(blocks, ''), 'body')));
END;
$$;

-- Keys of TVIEW t touched by rows of relation source changing from old_rows to new_rows
-- (jsonb arrays of rows) and by its rows of keys source_keys as they are now, sorted,
-- without NULLs.
DROP FUNCTION IF EXISTS tview._dependent_keys(tview.tviews, oid, jsonb, jsonb);   -- 0.6.3 and older: images only
CREATE OR REPLACE FUNCTION tview._dependent_keys(t tview.tviews, source oid, old_rows jsonb, new_rows jsonb,
                                                 source_keys bigint[])
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keys bigint[];
BEGIN
    EXECUTE format('SELECT %s($1, $2, $3, $4)', tview._generated(t, 'keys')) INTO keys
        USING source, old_rows, new_rows, source_keys;
    RETURN keys;
END;
$$;

-- Add keys (or a whole refresh) for a TVIEW to a work list. The keys are kept as array
-- literals, one per call ("{1,2,3}"), read back with one cast: a jsonb array of numbers
-- costs four times as much to write and read (17 against 4 ms for 10,000 keys).
CREATE OR REPLACE FUNCTION tview._add_work(work jsonb, tview_id int, keys bigint[], whole boolean, depth int)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN NOT whole AND cardinality(keys) = 0 THEN work
        ELSE jsonb_set(work, ARRAY[tview_id::text], jsonb_build_object(
            'patch', coalesce(work -> tview_id::text -> 'patch', '[]'::jsonb),
            'full', whole OR coalesce((work -> tview_id::text ->> 'full')::boolean, false),
            'keys', CASE WHEN whole THEN '[]'::jsonb
                         ELSE coalesce(work -> tview_id::text -> 'keys', '[]'::jsonb) || to_jsonb(keys::text) END,
            'depth', greatest(depth, coalesce((work -> tview_id::text ->> 'depth')::int, 0))))
    END
$$;

-- Queue a patch for a TVIEW: the changed rows (images) of a TVIEW it embeds.
CREATE OR REPLACE FUNCTION tview._add_patch(work jsonb, tview_id int, source_oid oid, old_images jsonb,
                                            new_images jsonb, depth int)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_set(work, ARRAY[tview_id::text], jsonb_build_object(
        'patch', coalesce(work -> tview_id::text -> 'patch', '[]'::jsonb)
                 || jsonb_build_array(jsonb_build_object('source_oid', source_oid, 'old', old_images, 'new', new_images)),
        'full', coalesce((work -> tview_id::text ->> 'full')::boolean, false),
        'keys', coalesce(work -> tview_id::text -> 'keys', '[]'::jsonb),
        'depth', greatest(depth, coalesce((work -> tview_id::text ->> 'depth')::int, 0))))
$$;

-- Add to a work list what the rows of TVIEW t that changed mean for the TVIEWs reading it:
-- patches, keys, or a whole refresh, at depth + 1. The changed rows come as images (old and
-- new), for a change of a few rows, or as the readers' keys their old versions touch
-- (readers_keys, from the refresh function) and the keys of the rows changed there now
-- (changed: their readers' keys are read from the table). Used by the cascade after each
-- refresh, and by the capture functions after refreshing a TVIEW directly, both only when
-- rows changed.
DROP FUNCTION IF EXISTS tview._queue_readers(jsonb, tview.tviews, jsonb, jsonb, int, jsonb, int, boolean);   -- 0.6.3 and older
CREATE OR REPLACE FUNCTION tview._queue_readers(work jsonb, t tview.tviews, old_images jsonb, new_images jsonb,
                                                readers_keys jsonb, changed bigint[],
                                                depth int, cfg jsonb, patch_threshold int, flushing boolean)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    imaged int := jsonb_array_length(old_images) + jsonb_array_length(new_images);
    -- patching gives up at tview.patch_threshold changed documents (its function recomputes
    -- every row they reach): that many go straight to the keys query, without being queued
    -- and read again as patches; so does a change that came as keys
    may_patch boolean := imaged < 2 * patch_threshold AND readers_keys IS NULL AND cardinality(changed) = 0;
    dep record;
    reader record;
BEGIN
    FOR dep IN
        SELECT d.tview_id, d.key_sql, x,
               -- a deferred TVIEW is sent keys to queue: a patch cannot wait for the commit
               d.key_sql IS NOT NULL AND tview._patching_on(x, cfg) AND (x.mode <> 'deferred' OR flushing)
               AND EXISTS (SELECT 1 FROM jsonb_array_elements(x.patch_specs) s
                           WHERE (s ->> 'source_oid')::oid = d.source_oid) AS patch
        FROM tview.dependencies d JOIN tview.tviews x ON x.id = d.tview_id
        WHERE d.source_oid = t.table_oid
    LOOP
        IF dep.patch AND may_patch THEN
            work := tview._add_patch(work, dep.tview_id, t.table_oid, old_images, new_images, depth + 1);
        ELSIF dep.key_sql IS NULL THEN
            work := tview._add_work(work, dep.tview_id, NULL, true, depth + 1);
        ELSIF imaged > 0 OR cardinality(changed) > 0 THEN
            work := tview._add_work(work, dep.tview_id,
                                    tview._dependent_keys(dep.x, t.table_oid, old_images, new_images, changed),
                                    false, depth + 1);
        END IF;
    END LOOP;
    FOR reader IN SELECT (e ->> 'id')::int AS id, (e ->> 'keys')::bigint[] AS keys
                  FROM jsonb_array_elements(readers_keys) e LOOP
        work := tview._add_work(work, reader.id, reader.keys, false, depth + 1);
    END LOOP;
    RETURN work;
END;
$$;

-- Run a cascade: refresh every TVIEW in the work list in topological order, each once,
-- adding the keys of dependents as rows change. Deferred TVIEWs are queued instead, unless
-- the queue is being flushed at commit. Publishes one event per TVIEW refreshed.
-- settings: tview._settings(), when the caller has read them already. Returns the number of
-- rows written.
DROP FUNCTION IF EXISTS tview._cascade(jsonb, text, text, boolean);   -- 0.6.2 and older: no settings
CREATE OR REPLACE FUNCTION tview._cascade(work jsonb, source text, op text, flushing boolean DEFAULT false,
                                          settings jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t        tview.tviews;
    item     jsonb;
    upserted bigint;
    deleted  bigint;
    patched  bigint;
    old_images jsonb;
    new_images jsonb;
    readers_keys jsonb;
    changed  bigint[];
    patched_keys bigint[];
    read     boolean;
    keys     bigint[];
    written  bigint := 0;
    depth    int;
    whole    boolean;
    started  timestamptz;
    patch    jsonb;
    cfg      jsonb := coalesce(settings, tview._settings());
    max_depth int := tview._cfg_count(cfg, 'max_cascade_depth', 32);
    patch_threshold int := tview._cfg_count(cfg, 'patch_threshold', 100);
    publishing boolean := tview._notify_wanted(cfg) OR tview._cfg_enabled(cfg, 'log', false);
BEGIN
    LOOP
        SELECT * INTO t FROM tview.tviews WHERE work ? id::text ORDER BY topo_level, id LIMIT 1;
        EXIT WHEN NOT FOUND;
        item := work -> t.id::text;
        work := work - t.id::text;
        depth := (item ->> 'depth')::int;
        whole := (item ->> 'full')::boolean;
        keys := CASE WHEN whole THEN NULL
                     ELSE ARRAY(SELECT DISTINCT k FROM jsonb_array_elements_text(item -> 'keys') p(part),
                                                       unnest(p.part::bigint[]) k ORDER BY 1) END;
        IF depth > max_depth THEN
            RAISE EXCEPTION 'TVIEW cascade deeper than % levels at %.tv_%', max_depth, t.schema_name, t.name
                USING ERRCODE = '54001',   -- statement_too_complex
                      HINT = 'Raise tview.max_cascade_depth, or flatten the chain of TVIEWs.';
        END IF;
        IF t.mode = 'deferred' AND NOT flushing THEN
            PERFORM tview._enqueue(t.id, keys);
            CONTINUE;
        END IF;
        started := clock_timestamp();
        patch := NULL;
        read := EXISTS (SELECT 1 FROM tview.dependencies d WHERE d.source_oid = t.table_oid);
        IF NOT whole AND jsonb_array_length(coalesce(item -> 'patch', '[]')) > 0 THEN
            patch := tview._apply_patches(t, item -> 'patch', keys, patch_threshold, read);
            IF jsonb_array_length(patch -> 'recompute') > 0 THEN
                keys := ARRAY(SELECT DISTINCT k FROM unnest(keys || ARRAY(
                            SELECT jsonb_array_elements_text(patch -> 'recompute')::bigint)) k ORDER BY 1);
            END IF;
            -- no embedding row referred to the changed documents: nothing to refresh, no event
            CONTINUE WHEN cardinality(keys) = 0 AND (patch ->> 'patched')::bigint = 0;
        END IF;
        SELECT * INTO upserted, deleted, old_images, new_images, readers_keys, changed
        FROM tview._refresh_rows(t, keys, cfg, CASE WHEN NOT read THEN NULL
                                                    WHEN cardinality(keys) <= patch_threshold THEN 'images'
                                                    ELSE 'keys' END);   -- whole (keys NULL): keys
        patched := coalesce((patch ->> 'patched')::bigint, 0);
        patched_keys := coalesce((patch ->> 'keys')::bigint[], '{}');
        IF patched > 0 AND read THEN
            -- a patch changes data only: a patched row's image is the same before and after
            IF readers_keys IS NULL AND patch ? 'images' THEN
                old_images := old_images || (patch -> 'images');
                new_images := new_images || (patch -> 'images');
            ELSE
                changed := changed || patched_keys;
            END IF;
        END IF;
        written := written + upserted + deleted + patched;
        IF publishing THEN
            PERFORM tview._publish(t.id, source, op, depth, whole, cardinality(keys),
                                   CASE WHEN whole THEN NULL
                                        ELSE ARRAY(SELECT DISTINCT k FROM unnest(keys || patched_keys) k ORDER BY 1) END,
                                   jsonb_build_object('upserted', upserted, 'deleted', deleted, 'patched', patched),
                                   (extract(epoch FROM clock_timestamp() - started) * 1000000)::bigint, cfg);
        END IF;
        IF read AND upserted + deleted + patched > 0 THEN
            work := tview._queue_readers(work, t, old_images, new_images, readers_keys, changed, depth, cfg,
                                         patch_threshold, flushing);
        END IF;
    END LOOP;
    RETURN written;
END;
$$;
