-- The public API: create, drop, refresh, verify.
--
-- Every internal function pins search_path. The public wrappers are one-line SQL
-- functions with fully qualified calls that hand over the caller's search path, because
-- the caller's definition and names must resolve the way the caller wrote them.

-- Find a TVIEW by 'name', 'tv_name', 'schema.name' or 'schema.tv_name'.
CREATE OR REPLACE FUNCTION tview._find(tview_name text, schemas name[]) RETURNS tview.tviews
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parts text[];
    bare  text;
    t     tview.tviews;
BEGIN
    BEGIN
        parts := parse_ident(tview_name);
    EXCEPTION WHEN OTHERS THEN
        RETURN NULL;
    END;
    bare := regexp_replace(parts[cardinality(parts)], '^tv_', '');
    SELECT * INTO t FROM tview.tviews v
    WHERE v.name = bare
      AND (cardinality(parts) = 1 AND v.schema_name = ANY (schemas)
           OR cardinality(parts) = 2 AND v.schema_name = parts[1])
    ORDER BY array_position(schemas, v.schema_name)
    LIMIT 1;
    RETURN CASE WHEN t.id IS NULL THEN NULL ELSE t END;
END;
$$;

CREATE OR REPLACE FUNCTION tview._get(tview_name text, schemas name[]) RETURNS tview.tviews
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tview.tviews := tview._find(tview_name, schemas);
BEGIN
    IF t.id IS NULL THEN
        RAISE EXCEPTION 'TVIEW "%" does not exist', tview_name
            USING ERRCODE = 'undefined_table',
                  HINT = 'List TVIEWs with SELECT * FROM tview.tviews; names are looked up along search_path.';
    END IF;
    IF (tview._relations_named(t.schema_name, t.name)).table_oid IS DISTINCT FROM t.table_oid
       AND tview._catalog_moved() THEN
        PERFORM tview._refuse_moved_catalog();
    END IF;
    RETURN t;
END;
$$;

-- Has the database been restored from a dump (or otherwise given its relations new oids)? The
-- catalog refers to relations by oid: then TVIEWs whose table and view exist by name under
-- other oids than the catalog's. tview.relink() finds them again.
CREATE OR REPLACE FUNCTION tview._catalog_moved() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM tview.tviews x, tview._relations_named(x.schema_name, x.name) n
                   WHERE n.table_oid IS NOT NULL AND n.view_oid IS NOT NULL
                     AND (n.table_oid <> x.table_oid OR n.view_oid <> x.view_oid))
$$;

-- The error of a write or an engine call that meets a catalog naming old oids.
CREATE OR REPLACE FUNCTION tview._refuse_moved_catalog() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'the TVIEW catalog names relations by oids this database does not have (was it restored from a dump?)'
        USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = 'As the engine owner, run SELECT tview.relink(); (or tview-tui check --fix): it finds every TVIEW '
                     'again by name and regenerates its code. Until then, writes to the tables TVIEWs read fail.';
END;
$$;

-- After a restore: find every TVIEW's table and view again by name, then derive again, in
-- dependency order, everything that names relations by oid (dependencies, generated and
-- capture code, triggers). The rows are kept; nothing is recomputed (the dump had them
-- current). Returns what it did.
CREATE OR REPLACE FUNCTION tview.relink() RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t       tview.tviews;
    moved   int;
    stale   oid[] := '{}';
BEGIN
    PERFORM tview._require_engine_owner('relink TVIEWs', NULL);
    IF NOT tview._catalog_moved() THEN
        RETURN 'nothing to relink: every TVIEW''s table and view are where the catalog says';
    END IF;
    PERFORM tview._drop_restored_capture_triggers();
    -- in two steps: a new oid may be another row's old one (table_oid and view_oid are unique)
    UPDATE tview.tviews x SET table_oid = (4294967295 - 2 * x.id)::oid, view_oid = (4294967294 - 2 * x.id)::oid;
    UPDATE tview.tviews x SET table_oid = n.table_oid, view_oid = n.view_oid
    FROM (SELECT y.id, r.* FROM tview.tviews y, tview._relations_named(y.schema_name, y.name) r) n
    WHERE n.id = x.id AND n.table_oid IS NOT NULL AND n.view_oid IS NOT NULL;
    GET DIAGNOSTICS moved = ROW_COUNT;
    DELETE FROM tview.dependencies;             -- derived again below, from each view
    DELETE FROM tview.members;
    FOR t IN SELECT * FROM tview.tviews x ORDER BY x.topo_level, x.id LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.table_oid) THEN
            CONTINUE;                           -- its relations are gone: health() reports catalog_orphan
        END IF;
        stale := stale || tview._derive(t);
    END LOOP;
    PERFORM tview._sync_captures(stale);        -- and the capture code of the old oids goes
    RETURN format('relinked %s TVIEW(s) by name', moved);
END;
$$;
COMMENT ON FUNCTION tview.relink() IS
    'After a restore from a dump: find every TVIEW again by name and regenerate what refers to relations by oid';

-- A TVIEW's catalog row (with the session's settings pinned) and its stamps, for create and
-- adopt; the refresh statement and the rest are derived next (tview._derive).
CREATE OR REPLACE FUNCTION tview._register(schema_name name, name name, table_oid oid, view_oid oid,
                                           key_column name, definition text, mode text) RETURNS tview.tviews
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tview.tviews;
BEGIN
    INSERT INTO tview.tviews (schema_name, name, table_oid, view_oid, entity, key_column, definition, mode,
                              session_settings, refresh_sql)
    VALUES (schema_name, name, table_oid, view_oid, substr(key_column, 4), key_column, definition, mode,
            tview._session_settings(), '')
    RETURNING * INTO t;
    PERFORM tview._add_stamps(ARRAY[t.id]);
    RETURN t;
END;
$$;

-- The engine's triggers as a restore made them call capture code made for the old oids (a
-- function of another table's, or none when the engine's schema was not restored with them).
CREATE OR REPLACE FUNCTION tview._drop_restored_capture_triggers() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    trg record;
BEGIN
    FOR trg IN SELECT g.tgname, g.tgrelid FROM pg_trigger g JOIN pg_proc p ON p.oid = g.tgfoid
               WHERE p.pronamespace = 'tview'::regnamespace AND p.proname ~ '^_capture_[0-9]+$'
                 AND p.proname <> tview._capture_name(g.tgrelid) LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', trg.tgname, tview._qname(trg.tgrelid));
    END LOOP;
END;
$$;

-- TVIEWs restored without the engine's catalog: a dump of their schema only (pg_dump -n), or
-- pg_restore -n of one schema, into a database with the engine. Their tables and views came
-- back, rows and all; the engine's triggers on the tables they read did not (they call capture
-- code the dump did not carry). Each tv_<name>/v_<name> pair the engine made (its table's
-- comment says so) that the catalog does not know is registered again from its view, in
-- dependency order, its code derived, and then recomputed, writing only the rows that differ
-- (the base tables may have moved on since the dump). Mode and pinned session settings are not
-- in the dump: adopted TVIEWs are immediate, with the adopting session's settings.
CREATE OR REPLACE FUNCTION tview.adopt() RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pair    record;
    t       tview.tviews;
    stale   oid[] := '{}';
    work    jsonb := '{}';
    found_one boolean;
    written bigint := 0;
BEGIN
    PERFORM tview._require_engine_owner('adopt restored TVIEWs', NULL);
    PERFORM tview._drop_restored_capture_triggers();
    LOOP
        found_one := false;
        FOR pair IN SELECT * FROM tview._restored_pairs() r
                    -- the TVIEWs it reads first
                    WHERE NOT EXISTS (SELECT 1 FROM tview._restored_pairs() o
                                      WHERE o.table_oid <> r.table_oid
                                        AND EXISTS (SELECT 1 FROM tview._base_relations(r.view_oid) b
                                                    WHERE b.relid = o.table_oid))
                    ORDER BY r.schema_name, r.name LOOP
            t := tview._register(pair.schema_name, pair.name, pair.table_oid, pair.view_oid, pair.key_column,
                                 pair.definition, 'immediate');
            stale := stale || tview._derive(t);
            PERFORM tview._grant_engine_owner(t.view_oid, t.table_oid);
            work := tview._add_work(work, t.id, '{}', true, 0);
            found_one := true;
        END LOOP;
        EXIT WHEN NOT found_one;
    END LOOP;
    IF work = '{}' THEN
        RETURN 'nothing to adopt: the catalog knows every TVIEW the engine made';
    END IF;
    PERFORM tview._sync_captures(stale);
    written := tview._cascade(work, NULL, 'ADOPT', true);
    RETURN format('adopted %s TVIEW(s): %s', (SELECT count(*) FROM jsonb_object_keys(work)),
                  (SELECT string_agg(tview._label(x.schema_name, x.name), ', ' ORDER BY x.topo_level, x.id)
                   FROM tview.tviews x WHERE work ? x.id::text))
           || format('; %s row(s) brought up to date', written);
END;
$$;
COMMENT ON FUNCTION tview.adopt() IS
    'After restoring one schema without the engine''s catalog: register its TVIEWs again from their views and bring them up to date';

-- tv_<name>/v_<name> pairs the engine made (by the table's comment) that the catalog does not
-- know, with the table's key column and the view's query.
CREATE OR REPLACE FUNCTION tview._restored_pairs()
RETURNS TABLE (schema_name name, name name, table_oid oid, view_oid oid, key_column name, definition text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.nspname, substr(c.relname, 4)::name, c.oid, v.oid, a.attname,
           rtrim(btrim(pg_get_viewdef(v.oid)), ';')
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_class v ON v.relnamespace = c.relnamespace AND v.relname = 'v_' || substr(c.relname, 4) AND v.relkind = 'v'
    JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary AND i.indnatts = 1
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
    WHERE c.relkind = 'r' AND c.relname LIKE 'tv\_%' AND a.attname LIKE 'pk\_%'
      AND obj_description(c.oid, 'pg_class') LIKE 'TVIEW maintained by the tview engine%'
      AND NOT EXISTS (SELECT 1 FROM tview.tviews x WHERE x.table_oid = c.oid)
$$;

-- Check that a definition is exactly one query, without running any of it: a cursor can
-- only be opened over a single statement, and opening one does not execute it.
CREATE OR REPLACE FUNCTION tview._check_single_query(definition text, label text) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    probe refcursor;
BEGIN
    BEGIN
        OPEN probe NO SCROLL FOR EXECUTE definition;
        CLOSE probe;
    EXCEPTION
        WHEN invalid_cursor_definition THEN
            RAISE EXCEPTION 'definition of % must be exactly one SELECT', label
                USING ERRCODE = 'syntax_error',
                      DETAIL = SQLERRM,
                      HINT = 'Remove every statement but the SELECT (no ";" followed by more SQL).';
        WHEN syntax_error THEN
            RAISE EXCEPTION 'definition of % does not parse: %', label, SQLERRM
                USING ERRCODE = 'syntax_error',
                      HINT = 'The definition must be a single SELECT statement.';
        WHEN OTHERS THEN
            -- e.g. a relation, column or function that does not exist: PostgreSQL's error,
            -- its SQLSTATE kept, naming the TVIEW
            PERFORM tview._raise_definition_error(label, SQLSTATE, SQLERRM);
    END;
END;
$$;

-- Does a definition that cannot be a permanent view read a temporary relation? It then
-- can be a temporary view: tried in a subtransaction that is always rolled back.
CREATE OR REPLACE FUNCTION tview._reads_temporary(definition text) RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    can_be_temporary boolean := false;
BEGIN
    BEGIN
        EXECUTE pg_catalog.format('CREATE TEMPORARY VIEW tview_temporary_probe AS %s', definition);
        can_be_temporary := true;
        RAISE EXCEPTION 'undo the probe';
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
    RETURN can_be_temporary;
END;
$$;
-- (no pinned search_path: the definition resolves along the caller's path, set by _create)

-- Re-raise an error PostgreSQL gave for a definition: same SQLSTATE, with the TVIEW's name
-- and a HINT.
CREATE OR REPLACE FUNCTION tview._raise_definition_error(label text, state text, message text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'definition of % fails: %', label, message
        USING ERRCODE = state,
              HINT = CASE state
                  WHEN '42P01' THEN 'Create the relations it reads first; another TVIEW is read as tv_<name> once it exists.'
                  WHEN '42703' THEN 'Check the column names against the tables it reads.'
                  WHEN '42883' THEN 'Check the function''s name, its argument types (add casts) and that it is on search_path.'
                  WHEN '42701' THEN 'Give every output column its own name with AS.'
                  WHEN '42P16' THEN 'Give every output column a concrete type (no record), e.g. with a cast.'
                  ELSE 'Run the SELECT on its own to see what is wrong with it.' END;
END;
$$;
-- (no pinned search_path: the definition resolves along the caller's path, set by _create)

-- What a definition's backing view must not do, found in its query tree (and those of the
-- views it reads): lock rows, read catalogs (their changes fire no triggers), or give
-- results that change between two runs over the same rows (volatile functions, the clock,
-- TABLESAMPLE, the session's user and settings) - a TVIEW could never equal such a
-- definition. Nor may an output column carry a system column's name (the table could not
-- have it).
CREATE OR REPLACE FUNCTION tview._check_definition_tree(view_oid oid, label text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    refs    jsonb := (SELECT coalesce(jsonb_agg(jsonb_build_array(r.field, r.value)), '[]')
                      FROM tview._tree_references(view_oid) r);
    bad     text;
BEGIN
    IF refs @> '[["ROWMARKCLAUSE", 0]]' THEN
        RAISE EXCEPTION 'definition of % locks rows (FOR UPDATE / FOR SHARE)', label
            USING ERRCODE = 'syntax_error', HINT = 'Remove the locking clause: a definition only reads.';
    END IF;

    SELECT c.oid::regclass::text INTO bad
    FROM jsonb_array_elements(refs) e
    JOIN pg_class c ON c.oid = (e ->> 1)::oid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE e ->> 0 = 'relid' AND (n.nspname ~ '^pg_' OR n.nspname IN ('information_schema', 'tview'))
    ORDER BY 1 LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'definition of % reads %, a system or engine catalog', label, bad
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Catalog changes fire no triggers the TVIEW could follow: read your own tables.';
    END IF;

    SELECT p.oid::regprocedure::text INTO bad
    FROM jsonb_array_elements(refs) e
    JOIN pg_proc p ON p.oid = (e ->> 1)::oid
    WHERE e ->> 0 IN ('funcid', 'opfuncid', 'aggfnoid', 'winfnoid')
      AND (p.provolatile = 'v'
           OR p.pronamespace = 'pg_catalog'::regnamespace
              AND (p.proname IN ('now', 'transaction_timestamp', 'statement_timestamp', 'txid_current',
                                 'pg_current_xact_id', 'txid_current_if_assigned', 'pg_current_xact_id_if_assigned')
                   OR p.proname = 'age' AND p.pronargs = 1))
    ORDER BY 1 LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'definition of % calls %, whose result changes from one run to the next', label, bad
            USING ERRCODE = 'invalid_object_definition',
                  HINT = 'A TVIEW must equal its definition at any time: remove volatile and clock functions '
                         '(random(), now(), nextval(), ...); mark a function of your own STABLE or IMMUTABLE '
                         'if its result depends only on its arguments and the tables it reads.';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(refs) e
               WHERE e ->> 0 = 'SQLVALUEFUNCTION' AND (e ->> 1)::int BETWEEN 0 AND 8) THEN   -- CURRENT_DATE .. LOCALTIMESTAMP
        RAISE EXCEPTION 'definition of % reads the clock (CURRENT_DATE, CURRENT_TIMESTAMP, LOCALTIME, ...)', label
            USING ERRCODE = 'invalid_object_definition',
                  HINT = 'A TVIEW must equal its definition at any time: store the time in a table column instead.';
    END IF;
    -- who writes, and that session's settings: each writer would leave its own view of the rows
    SELECT x.name INTO bad FROM (
        SELECT p.proname::text AS name
        FROM jsonb_array_elements(refs) e JOIN pg_proc p ON p.oid = (e ->> 1)::oid
        WHERE e ->> 0 IN ('funcid', 'opfuncid') AND p.pronamespace = 'pg_catalog'::regnamespace
          AND p.proname IN ('current_user', 'session_user', 'system_user', 'current_schema', 'current_schemas',
                            'current_setting', 'pg_backend_pid', 'inet_client_addr', 'inet_client_port',
                            'pg_my_temp_schema', 'pg_trigger_depth')
        UNION ALL   -- PostgreSQL 15 parses these keywords as SQL value functions 9 .. 12 and 14
        SELECT (ARRAY['current_role', 'current_user', 'user', 'session_user', NULL, 'current_schema'])[(e ->> 1)::int - 8]
        FROM jsonb_array_elements(refs) e
        WHERE e ->> 0 = 'SQLVALUEFUNCTION' AND (e ->> 1)::int IN (9, 10, 11, 12, 14)) x
    ORDER BY 1 LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'definition of % reads %, which depends on the session that writes', label, bad
            USING ERRCODE = 'invalid_object_definition',
                  HINT = 'Every writer''s session would leave the TVIEW as it sees it (its user, settings, '
                         'connection): store such values in a table column instead.';
    END IF;
    -- whose privileges: computed as the engine owner, whoever writes, and changed by a GRANT
    -- that fires no trigger
    SELECT p.proname::text INTO bad
    FROM jsonb_array_elements(refs) e JOIN pg_proc p ON p.oid = (e ->> 1)::oid
    WHERE e ->> 0 IN ('funcid', 'opfuncid') AND p.pronamespace = 'pg_catalog'::regnamespace
      AND (p.proname ~ '^has_[a-z_]+_privilege$'
           OR p.proname IN ('pg_has_role', 'row_security_active', 'pg_is_other_temp_schema'))
    ORDER BY 1 LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'definition of % calls %, which inspects privileges or roles', label, bad
            USING ERRCODE = 'invalid_object_definition',
                  HINT = 'TVIEWs are refreshed with the engine owner''s rights whoever writes, and a GRANT or '
                         'REVOKE fires no trigger: keep privilege checks in the queries that read the TVIEW.';
    END IF;
    IF refs @> '[["TABLESAMPLECLAUSE", 0]]' THEN
        RAISE EXCEPTION 'definition of % samples a table (TABLESAMPLE)', label
            USING ERRCODE = 'invalid_object_definition',
                  HINT = 'A sample changes from one run to the next: remove TABLESAMPLE.';
    END IF;

    SELECT a.attname INTO bad FROM pg_attribute a
    WHERE a.attrelid = view_oid AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname IN ('tableoid', 'xmin', 'cmin', 'xmax', 'cmax', 'ctid')
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'column % of % has the name of a system column', bad, label
            USING ERRCODE = 'duplicate_column', HINT = format('Rename it with AS, e.g. %s AS row_%s.', bad, bad);
    END IF;
    -- a row's physical address, transaction ids or table oid change without a write (VACUUM
    -- FULL, a restore): the TVIEW would drift from its definition unseen
    SELECT (ARRAY['ctid', 'xmin', 'cmin', 'xmax', 'cmax', 'tableoid'])[-(e ->> 1)::int] INTO bad
    FROM jsonb_array_elements(refs) e
    WHERE e ->> 0 = 'SYSCOLUMN'
    ORDER BY (e ->> 1)::int DESC LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'definition of % reads system column %, which changes without a write', label, bad
            USING ERRCODE = 'invalid_object_definition',
                  HINT = 'ctid, xmin, xmax, cmin, cmax and tableoid change with VACUUM FULL, locks or a restore, which '
                         'fire no trigger: select the table''s own key columns instead.';
    END IF;
    -- the rights the engine owner needs on every table read (docs/engine.md "Privileges")
    PERFORM tview._check_source_grants(view_oid, label);
    PERFORM tview._check_trusted_code(view_oid, label);
END;
$$;

-- A definition as it is kept: without trailing blanks and semicolons.
CREATE OR REPLACE FUNCTION tview._clean_definition(definition text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT regexp_replace(coalesce(definition, ''), '[[:space:];]+$', '') $$;

-- Create a TVIEW's backing view v_<name> from the caller's definition (resolved along the
-- caller's path) and refuse what a TVIEW cannot be: not a single SELECT, no integer key
-- pk_<entity>, no jsonb data, code that is not exact or not trusted, relations whose changes
-- cannot be observed. For tview.create and tview.alter.
CREATE OR REPLACE FUNCTION tview._make_view(target_schema name, bare text, p_definition text, p_search_path text,
                                            label text, OUT view_oid oid, OUT key_col name, OUT definition text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key_type    regtype;
    data_type   regtype;
    bad         record;
    create_view text;
BEGIN
    definition := tview._clean_definition(p_definition);
    IF definition !~ '\S' THEN
        RAISE EXCEPTION 'definition of % is empty', label
            USING ERRCODE = 'syntax_error', HINT = 'Pass a SELECT statement.';
    END IF;

    -- The caller's definition, resolved along the caller's path.
    create_view := format('CREATE VIEW %I.%I AS %s', target_schema, 'v_' || bare, definition);
    PERFORM pg_catalog.set_config('search_path', p_search_path, true);
    PERFORM tview._check_single_query(definition, label);
    BEGIN
        EXECUTE create_view;
    EXCEPTION
        WHEN syntax_error OR feature_not_supported THEN
            -- e.g. DML, or a data-modifying WITH (views refuse those)
            RAISE EXCEPTION 'definition of % is not a plain SELECT: %', label, SQLERRM
                USING ERRCODE = 'syntax_error', HINT = 'The definition must be a single SELECT statement that only reads.';
        WHEN invalid_table_definition THEN
            IF tview._reads_temporary(definition) THEN
                RAISE EXCEPTION 'definition of % reads a temporary table', label
                    USING ERRCODE = 'feature_not_supported',
                          HINT = 'A TVIEW outlives the session: read permanent (or unlogged) tables only.';
            END IF;
            PERFORM tview._raise_definition_error(label, SQLSTATE, SQLERRM);
        WHEN OTHERS THEN
            PERFORM tview._raise_definition_error(label, SQLSTATE, SQLERRM);
    END;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    view_oid := format('%I.%I', target_schema, 'v_' || bare)::regclass;

    SELECT a.attname, a.atttypid::regtype INTO key_col, key_type
    FROM pg_attribute a
    WHERE a.attrelid = view_oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname LIKE 'pk\_%'
    ORDER BY a.attnum LIMIT 1;
    IF key_col IS NULL THEN
        RAISE EXCEPTION 'definition of % has no key column pk_<entity>', label
            USING ERRCODE = 'undefined_column',
                  HINT = 'Select the integer primary key of the entity as pk_<entity>, e.g. p.pk_post.';
    END IF;
    IF key_type NOT IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype) THEN
        RAISE EXCEPTION 'key column % of % is %, not an integer', key_col, label, key_type
            USING ERRCODE = 'datatype_mismatch', HINT = 'The key must be smallint, integer or bigint.';
    END IF;
    SELECT a.atttypid::regtype INTO data_type
    FROM pg_attribute a WHERE a.attrelid = view_oid AND a.attname = 'data' AND NOT a.attisdropped;
    IF data_type IS NULL THEN
        RAISE EXCEPTION 'definition of % has no data column', label
            USING ERRCODE = 'undefined_column', HINT = 'Select the document as a jsonb column named data.';
    END IF;
    IF data_type <> 'jsonb'::regtype THEN
        RAISE EXCEPTION 'column data of % is %, not jsonb', label, data_type
            USING ERRCODE = 'datatype_mismatch', HINT = 'Build the document with jsonb_build_object(...) or cast it ::jsonb.';
    END IF;
    PERFORM tview._check_definition_tree(view_oid, label);
    SELECT b.relid, b.relkind INTO bad FROM tview._base_relations(view_oid) b WHERE b.relkind NOT IN ('r', 'p') LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'definition of % reads %, a %', label, bad.relid::regclass,
                        CASE bad.relkind WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table'
                                         ELSE 'relation whose changes cannot be observed' END
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'TVIEWs can only read tables (and views over tables), whose changes fire triggers.';
    END IF;

END;
$$;

-- An index on each key-like column (id, fk_*) of a TVIEW's table, as dependents and
-- lineage look rows up by them; columns: just these (NULL: all of the view's).
CREATE OR REPLACE FUNCTION tview._index_reference_columns(table_oid oid, view_oid oid, columns name[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col record;
BEGIN
    FOR col IN
        SELECT a.attname FROM pg_attribute a
        WHERE a.attrelid = view_oid AND a.attnum > 0 AND NOT a.attisdropped
          AND (a.attname = 'id' OR a.attname LIKE 'fk\_%') AND (columns IS NULL OR a.attname = ANY (columns))
        ORDER BY a.attnum
    LOOP
        EXECUTE format('CREATE INDEX ON %s (%I)', tview._qname(table_oid), col.attname);
    END LOOP;
END;
$$;

-- The engine's owner runs refreshes for writers: let it read the view and write the table.
CREATE OR REPLACE FUNCTION tview._grant_engine_owner(view_oid oid, table_oid oid) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    engine_owner name := tview._engine_owner();
BEGIN
    IF engine_owner <> current_user THEN
        EXECUTE format('GRANT SELECT ON %s TO %I', tview._qname(view_oid), engine_owner);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %I', tview._qname(table_oid), engine_owner);
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION tview._create(p_name text, p_definition text, p_mode text, p_schema text,
                                         p_search_path text)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bare        text;
    target_schema name;
    definition  text;
    label       text;
    view_oid    oid;
    table_oid   oid;
    key_col     name;
    t           tview.tviews;
    stale       oid[];
BEGIN
    PERFORM tview._require_engine_owner('create TVIEW', p_name);
    PERFORM tview._check_mode(p_mode);
    bare := regexp_replace(coalesce(p_name, ''), '^tv_', '');
    IF bare !~ '^[a-z_][a-z0-9_]*$' THEN
        RAISE EXCEPTION 'invalid TVIEW name "%"', coalesce(p_name, '')
            USING ERRCODE = 'invalid_name',
                  HINT = CASE WHEN p_name LIKE '%.%' THEN 'Pass the schema apart: tview.create(name, definition, schema_name => ...).'
                              ELSE 'Use a lower-case identifier: letters, digits and underscores, not starting with a digit.' END;
    END IF;
    IF octet_length('tv_' || bare) > 63 THEN
        RAISE EXCEPTION 'TVIEW name "%" is too long: "tv_%" exceeds 63 bytes', bare, bare
            USING ERRCODE = 'invalid_name', HINT = 'Use a name of at most 60 bytes.';
    END IF;

    -- a longer name would be cut to 63 bytes by the name type: another schema
    IF octet_length(p_schema) > 63 THEN
        RAISE EXCEPTION 'schema name "%" for TVIEW "%" is too long: it exceeds 63 bytes', p_schema, bare
            USING ERRCODE = 'invalid_name', HINT = 'Pass the name of an existing schema (at most 63 bytes).';
    END IF;
    -- Under the caller's path every call is qualified: objects put first on it must not run.
    PERFORM pg_catalog.set_config('search_path', p_search_path, true);
    target_schema := coalesce(p_schema, pg_catalog.current_schema());
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF target_schema IS NULL OR NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = target_schema) THEN
        RAISE EXCEPTION 'no schema to create TVIEW "%" in', bare
            USING ERRCODE = 'invalid_schema_name', HINT = 'Pass schema_name, or set search_path to an existing schema.';
    END IF;
    IF target_schema ~ '^pg_' OR target_schema IN ('information_schema', 'tview') THEN
        RAISE EXCEPTION 'cannot create TVIEW "%" in schema %: it belongs to the system or the engine',
                        bare, quote_ident(target_schema)
            USING ERRCODE = 'reserved_name',
                  HINT = 'Pass schema_name of an ordinary schema, or put one first on search_path.';
    END IF;
    label := tview._label(target_schema, bare);
    PERFORM tview._require_read_committed('create', label);

    IF EXISTS (SELECT 1 FROM tview.tviews x WHERE x.schema_name = target_schema AND x.name = bare) THEN
        RAISE EXCEPTION 'TVIEW % already exists', label
            USING ERRCODE = 'duplicate_object',
                  HINT = format('Drop it first with tview.drop(%L), or choose another name.', bare);
    END IF;
    IF (SELECT n.table_oid IS NOT NULL OR n.view_oid IS NOT NULL FROM tview._relations_named(target_schema, bare) n)
       OR to_regtype(label) IS NOT NULL                                           -- a table and a view
       OR to_regtype(format('%I.%I', target_schema, 'v_' || bare)) IS NOT NULL THEN -- each make a type
        RAISE EXCEPTION 'cannot create TVIEW %: a relation or type named %.tv_% or %.v_% already exists',
                        label, target_schema, bare, target_schema, bare
            USING ERRCODE = 'duplicate_object', HINT = 'Rename or drop that relation or type, or choose another name.';
    END IF;

    SELECT m.view_oid, m.key_col, m.definition INTO view_oid, key_col, definition
    FROM tview._make_view(target_schema, bare, p_definition, p_search_path, label) m;
    -- writers of what it reads finish first or wait: a TVIEW it reads changed by a transaction
    -- still open would be missing from its fill, and that transaction's cascade does not know it
    PERFORM tview._lock_read_relations(view_oid);

    EXECUTE format('CREATE TABLE %s (LIKE %s)', label, tview._qname(view_oid));
    table_oid := label::regclass;
    EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY (%I)', tview._qname(table_oid), key_col);
    PERFORM tview._index_reference_columns(table_oid, view_oid, NULL);
    EXECUTE format('COMMENT ON TABLE %s IS %L', tview._qname(table_oid),
                   format('TVIEW maintained by the tview engine from %s; do not write to it', tview._qname(view_oid)));

    t := tview._register(target_schema, bare, table_oid, view_oid, key_col, definition, p_mode);
    -- the generated and capture code made now, not by the first writer; a trigger of someone
    -- else's under the engine's name on a table it reads is refused
    stale := tview._derive(t);
    PERFORM tview._install_captures(stale, tview._tables_read(t.id));
    PERFORM tview._grant_engine_owner(view_oid, table_oid);

    BEGIN
        EXECUTE format('INSERT INTO %s SELECT * FROM %s', tview._qname(table_oid), tview._qname(view_oid));
    EXCEPTION
        WHEN unique_violation THEN
            RAISE EXCEPTION 'key % of % is not unique in its definition', key_col, label
                USING ERRCODE = 'unique_violation', DETAIL = SQLERRM,
                      HINT = format('Make %I unique, e.g. select it from the entity''s own table and aggregate children.', key_col);
        WHEN not_null_violation THEN
            RAISE EXCEPTION 'key % of % is NULL for some rows of its definition', key_col, label
                USING ERRCODE = 'not_null_violation',
                      HINT = format('Filter out rows where %I IS NULL, or use an inner join.', key_col);
        WHEN OTHERS THEN
            -- e.g. a division by zero or a failing cast in some row
            PERFORM tview._raise_definition_error(label, SQLSTATE, SQLERRM);
    END;
    RETURN table_oid;
END;
$$;

CREATE OR REPLACE FUNCTION tview._check_mode(mode text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF mode IS NULL OR mode NOT IN ('immediate', 'deferred') THEN
        RAISE EXCEPTION 'unknown TVIEW mode "%"', mode
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ''immediate'' or ''deferred''.';
    END IF;
END;
$$;

-- The refresh, patch and keys functions generated for one TVIEW, those that exist (a new
-- TVIEW has none).
CREATE OR REPLACE FUNCTION tview._drop_generated_functions(tview_id int) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN SELECT to_regprocedure(tview._generated_signature(tview_id, k.kind))
              FROM unnest(ARRAY['refresh', 'patch', 'keys']) k(kind) LOOP
        IF fn IS NOT NULL THEN
            EXECUTE format('DROP FUNCTION %s', fn);
        END IF;
    END LOOP;
END;
$$;

-- Writes to a TVIEW's table by anyone but the engine are refused: INSERT, UPDATE, DELETE,
-- TRUNCATE (and COPY into it) would leave it wrong until a refresh. The engine writes it from
-- its own functions (schema tview, which only its owner can create functions in): the
-- statement's caller, as PostgreSQL's error context names it, is one of them. Not SECURITY
-- DEFINER: it runs as the writer. The trigger's WHEN skips the check for the engine's
-- refreshes inside triggers (run as its owner), so base-table writes pay a WHEN, not a
-- function call. It is a guard against mistakes: a superuser can bypass it
-- (session_replication_role = replica), the table's owner can disable it, and a role with
-- write rights on the table could fake the engine's frame in a dynamic statement's text;
-- tview.health() finds the rows such writes damage.
CREATE OR REPLACE FUNCTION tview._refuse_direct_write() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    stack text;
BEGIN
    GET DIAGNOSTICS stack = PG_CONTEXT;
    -- line 1: this function; then the statement ("SQL statement ..."), then the function that
    -- ran it, if any: one of the engine's (schema-qualified: its path is pinned to pg_catalog)
    IF pg_catalog.starts_with((pg_catalog.regexp_match(stack, E'\n((?:PL/pgSQL|SQL) function [^\n]*)'))[1],
                              'PL/pgSQL function tview.') THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'cannot % TVIEW %.%: it is maintained by the engine', TG_OP,
                    pg_catalog.quote_ident(TG_TABLE_SCHEMA), pg_catalog.quote_ident(TG_TABLE_NAME)
        USING ERRCODE = 'wrong_object_type',
              HINT = pg_catalog.format('Write to the tables it reads; to recompute it (e.g. after hand-made damage), '
                                       'run SELECT tview.refresh(%L).',
                                       pg_catalog.format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME));
END;
$$;

CREATE OR REPLACE FUNCTION tview._install_generated_functions(tview_id int, q jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tview.tviews;
BEGIN
    SELECT * INTO STRICT t FROM tview.tviews x WHERE x.id = tview_id;
    PERFORM tview._install_refresh_function(t, q);
    PERFORM tview._install_patch_function(t);
    PERFORM tview._install_keys_function(t);
    EXECUTE format('CREATE OR REPLACE TRIGGER tview_refuse_writes BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
                   ' FOR EACH STATEMENT WHEN (pg_catalog.pg_trigger_depth() OPERATOR(pg_catalog.<) 1'
                   ' OR CURRENT_USER OPERATOR(pg_catalog.<>) %L::pg_catalog.name)'
                   ' EXECUTE FUNCTION tview._refuse_direct_write()', tview._qname(t.table_oid), tview._engine_owner());
END;
$$;

-- Make the refresh functions of TVIEWs tview_ids again after the TVIEWs reading them changed:
-- a bulk refresh hands its readers their keys, with their keys queries in its code
-- (tview._build_refresh_sql).
CREATE OR REPLACE FUNCTION tview._reinstall_refresh_functions(tview_ids int[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s tview.tviews;
BEGIN
    FOR s IN SELECT * FROM tview.tviews x
             WHERE x.id = ANY (tview_ids) AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = x.view_oid)
             ORDER BY x.id LOOP
        PERFORM tview._install_refresh_function(s, tview._view_query(s.view_oid));
    END LOOP;
END;
$$;

-- (Re)write a TVIEW's dependency rows from its analysis (for tview._derive).
CREATE OR REPLACE FUNCTION tview._record_dependencies(tview_id int, view_oid oid, q jsonb, analysis jsonb) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM tview.dependencies d WHERE d.tview_id = _record_dependencies.tview_id;
    INSERT INTO tview.dependencies (tview_id, source_oid, source_kind, lineage, key_sql, roles)
    SELECT _record_dependencies.tview_id, r.source_oid,
           CASE WHEN EXISTS (SELECT 1 FROM tview.tviews t WHERE t.table_oid = r.source_oid)
                THEN 'tview' ELSE 'table' END,
           r.lineage, r.key_sql, r.roles
    FROM tview._lineage_rules(view_oid, q, analysis) r;
END;
$$;

-- A TVIEW may never (transitively) read itself.
CREATE OR REPLACE FUNCTION tview._check_cycle(tview_id int, label text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (
        WITH RECURSIVE up(id) AS (
            SELECT t.id FROM tview.dependencies d JOIN tview.tviews t ON t.table_oid = d.source_oid
            WHERE d.tview_id = _check_cycle.tview_id
            UNION
            SELECT t.id FROM up JOIN tview.dependencies d ON d.tview_id = up.id
            JOIN tview.tviews t ON t.table_oid = d.source_oid)
        SELECT 1 FROM up WHERE id = _check_cycle.tview_id) THEN
        RAISE EXCEPTION 'TVIEW % would read itself through other TVIEWs', label
            USING ERRCODE = 'lock_not_available',    -- 55P03, as the spec of the engine says
                  HINT = 'Remove the cycle: a TVIEW cannot depend on a TVIEW that reads it.';
    END IF;
END;
$$;

-- Derive everything the engine keeps about a TVIEW from its backing view as it is now, for
-- create, alter, rebuild (after DDL, an upgrade) and relink: the lineage analysis, the refresh
-- statement and patch specs (its catalog row), the dependency rows (refusing a cycle), its
-- level, its generated refresh, patch and keys functions, and the refresh functions of the
-- TVIEWs it reads before and after (they hand it keys). Not the capture code of the
-- tables involved, so that a caller deriving several TVIEWs regenerates each table's once
-- (tview._sync_captures): returns those tables, the ones it reads before and after, and
-- those read by the TVIEWs it reads before and after (refreshed directly only while no
-- TVIEW reads them).
CREATE OR REPLACE FUNCTION tview._derive(t tview.tviews) RETURNS oid[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q             jsonb := tview._view_query(t.view_oid);   -- its query tree, parsed once for all below
    found_lineage jsonb := tview._analyze(q, t.key_column);
    tables_before oid[] := tview._tables_read(t.id);
    read_before   int[] := tview._tviews_read(t.id);
BEGIN
    UPDATE tview.tviews x
    SET refresh_sql = tview._build_refresh_sql(t.view_oid, t.table_oid, t.key_column),
        patch_specs = tview._patch_specs(t.view_oid, q, found_lineage),
        -- pinned at create; a TVIEW of an engine that did not pin them takes the deriving session's
        session_settings = CASE WHEN x.session_settings = '{}' THEN tview._session_settings() ELSE x.session_settings END,
        analysis = found_lineage ->> 'reason',
        root_oid = tview._root_relid(found_lineage),
        root_column = CASE WHEN jsonb_typeof(found_lineage -> 'root' -> 1) = 'number'
                           THEN tview._colname(tview._root_relid(found_lineage), (found_lineage -> 'root' ->> 1)::int) END,
        root_key = tview._side_template(found_lineage -> 'root' -> 1, tview._root_relid(found_lineage))
    WHERE x.id = t.id;
    PERFORM tview._record_dependencies(t.id, t.view_oid, q, found_lineage);
    PERFORM tview._check_cycle(t.id, tview._label(t.schema_name, t.name));
    UPDATE tview.tviews x
    SET topo_level = (SELECT coalesce(max(s.topo_level) + 1, 0) FROM tview.dependencies d
                      JOIN tview.tviews s ON s.table_oid = d.source_oid WHERE d.tview_id = t.id)
    WHERE x.id = t.id;
    PERFORM tview._drop_generated_functions(t.id);
    PERFORM tview._install_generated_functions(t.id, q);
    PERFORM tview._reinstall_refresh_functions(read_before || tview._tviews_read(t.id));
    RETURN tables_before || tview._tables_read(t.id)
           || ARRAY(SELECT d.source_oid FROM tview.dependencies d
                    WHERE d.tview_id = ANY (read_before || tview._tviews_read(t.id)));
END;
$$;

-- Derive a TVIEW again, with the capture code of the tables involved: after a table or column
-- it reads was renamed (the view follows renames by itself, the generated SQL does not), or
-- by the installer after an upgrade.
CREATE OR REPLACE FUNCTION tview._rebuild(t tview.tviews) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT tview._sync_captures(tview._derive(t)) $$;

CREATE OR REPLACE FUNCTION tview.create(name text, definition text, mode text DEFAULT 'immediate',
                                        schema_name text DEFAULT NULL)
RETURNS regclass
LANGUAGE sql
AS $$ SELECT tview._create($1, $2, $3, $4, pg_catalog.current_setting('search_path')) $$;
COMMENT ON FUNCTION tview.create(text, text, text, text) IS
    'Create TVIEW tv_<name> maintained from the SELECT definition (kept as view v_<name>)';

-- Make a TVIEW's table fit the columns of its new backing view: columns the view no longer has
-- are dropped, new ones (at the end of its select list) added, changed types changed (the rows
-- are recomputed next). Refused, with what stands in the way, when the kept columns change
-- order (verify and the refresh compare whole rows) or a view reads a column that would be
-- dropped or retyped.
CREATE OR REPLACE FUNCTION tview._align_table(t tview.tviews, new_view oid, label text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old_cols jsonb := (SELECT jsonb_agg(to_jsonb(c) ORDER BY c.ord) FROM tview._column_types(t.table_oid) c);
    new_cols jsonb := (SELECT jsonb_agg(to_jsonb(c) ORDER BY c.ord) FROM tview._column_types(new_view) c);
    kept     text[] := ARRAY(SELECT o ->> 'attname' FROM jsonb_array_elements(old_cols) o
                             WHERE new_cols @> jsonb_build_array(jsonb_build_object('attname', o ->> 'attname')));
    added    name[] := ARRAY(SELECT n ->> 'attname' FROM jsonb_array_elements(new_cols) n
                             WHERE NOT old_cols @> jsonb_build_array(jsonb_build_object('attname', n ->> 'attname')));
    -- the columns it has that the new definition drops (new_type NULL) or retypes
    changed  jsonb := (SELECT coalesce(jsonb_agg(jsonb_build_object('attname', o.attname, 'attnum', o.attnum,
                                                                    'old_type', o.type_sql, 'new_type', n.type_sql)
                                                 ORDER BY o.attnum), '[]')
                       FROM jsonb_to_recordset(old_cols) o(attname name, attnum int, type_sql text)
                       LEFT JOIN jsonb_to_recordset(new_cols) n(attname name, type_sql text) ON n.attname = o.attname
                       WHERE n.attname IS NULL OR n.type_sql <> o.type_sql);
    actions  text[];
    blocker  record;
BEGIN
    -- the columns both have, in the same order in both, and the new ones after all of them
    IF ARRAY(SELECT n ->> 'attname' FROM jsonb_array_elements(new_cols) n) IS DISTINCT FROM kept || added::text[] THEN
        RAISE EXCEPTION 'cannot alter TVIEW %: the new definition moves its columns', label
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('Columns now: %s; in the new definition: %s.',
                                  (SELECT string_agg(quote_ident(o ->> 'attname'), ', ') FROM jsonb_array_elements(old_cols) o),
                                  (SELECT string_agg(quote_ident(n ->> 'attname'), ', ') FROM jsonb_array_elements(new_cols) n)),
                  HINT = 'Keep the columns it has in their order and add new ones at the end of the select list '
                         '(or drop the TVIEW and create it again).';
    END IF;

    -- a view (a reading TVIEW's definition, or anyone's) that reads a column which goes or changes
    SELECT c.attname, r.ev_class::regclass AS reader, x.schema_name, x.name, c.new_type IS NULL AS dropped,
           c.old_type, c.new_type
      INTO blocker
    FROM jsonb_to_recordset(changed) c(attname name, attnum int, old_type text, new_type text)
    JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = t.table_oid AND d.refobjsubid = c.attnum
                    AND d.classid = 'pg_rewrite'::regclass
    JOIN pg_rewrite r ON r.oid = d.objid
    LEFT JOIN tview.tviews x ON x.view_oid = r.ev_class
    ORDER BY x.id NULLS LAST, c.attnum
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'cannot alter TVIEW %: % reads its column %, which the new definition %', label,
                        CASE WHEN blocker.name IS NOT NULL THEN 'TVIEW ' || tview._label(blocker.schema_name, blocker.name)
                             ELSE format('view %s', blocker.reader) END,
                        quote_ident(blocker.attname),
                        CASE WHEN blocker.dropped THEN 'drops'
                             ELSE format('changes from %s to %s', blocker.old_type, blocker.new_type) END
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = CASE WHEN blocker.name IS NOT NULL
                              THEN format('Alter %s first so that it no longer reads the column, or keep the column.',
                                          tview._label(blocker.schema_name, blocker.name))
                              ELSE 'Change that view first so that it no longer reads the column, or keep the column.' END;
    END IF;

    actions := ARRAY(
        SELECT CASE WHEN c.new_type IS NULL THEN format('DROP COLUMN %I', c.attname)
                    ELSE format('ALTER COLUMN %1$I TYPE %2$s USING %3$s', c.attname, c.new_type,
                                CASE WHEN c.attname = t.key_column THEN format('%I::%s', c.attname, c.new_type)
                                     ELSE 'NULL' END) END
        FROM jsonb_to_recordset(changed) c(attname name, attnum int, old_type text, new_type text)
        ORDER BY c.attnum)
     || ARRAY(SELECT format('ADD COLUMN %I %s', n.attname, n.type_sql)
              FROM jsonb_to_recordset(new_cols) n(attname name, type_sql text, ord int)
              WHERE n.attname = ANY (added) ORDER BY n.ord);
    IF cardinality(actions) > 0 THEN
        EXECUTE format('ALTER TABLE %s %s', tview._qname(t.table_oid), array_to_string(actions, ', '));
        PERFORM tview._index_reference_columns(t.table_oid, new_view, added);
    END IF;
END;
$$;

-- Share-lock relations (writers wait, readers do not): those a TVIEW reads, at create and
-- before and after an alter, so that no writer's change capture or cascade computes keys from
-- the lineage being replaced, or misses the new TVIEW.
CREATE OR REPLACE FUNCTION tview._lock_read_relations(view_oid oid) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    relations text;
BEGIN
    SELECT string_agg(tview._qname(b.relid), ', ' ORDER BY b.relid) INTO relations FROM tview._base_relations(view_oid) b;
    IF relations IS NOT NULL THEN
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', relations);
    END IF;
END;
$$;

-- tview.create and tview.alter fill a TVIEW from a snapshot taken after their locks (and the
-- triggers they create) made every writer either finish first or wait: at REPEATABLE READ or
-- SERIALIZABLE the transaction's snapshot is older than that, and a row committed in between
-- would be missing for good. Refused there.
CREATE OR REPLACE FUNCTION tview._require_read_committed(action text, label text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'cannot % TVIEW % in a % transaction', action, label,
                        upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = format('Run tview.%s in a READ COMMITTED transaction (the default): a snapshot taken before '
                                'its locks would miss writes committed while it waits for them.', action);
    END IF;
END;
$$;

-- Replace a TVIEW's definition in one transaction: the table stays (with its grants and the
-- indexes users added), and so do the TVIEWs that read it; lineage, patch specs and generated
-- code are derived again for it and for them; then the TVIEW is recomputed, writing only the
-- rows that differ, and its readers the keys that changed. See docs/migrations.md for locks.
CREATE OR REPLACE FUNCTION tview._alter(p_name text, p_definition text, p_search_path text, schemas name[])
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t        tview.tviews;
    label    text;
    replaced name;
    made     record;
    dep      tview.tviews;
    stale    oid[];
BEGIN
    PERFORM tview._require_engine_owner('alter TVIEW', p_name);
    t := tview._get(p_name, schemas);
    label := tview._label(t.schema_name, t.name);
    IF tview._clean_definition(p_definition) = t.definition THEN
        RAISE NOTICE 'TVIEW % already has this definition, skipping', label;
        RETURN t.table_oid;
    END IF;
    PERFORM tview._require_read_committed('alter', label);
    EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', tview._qname(t.table_oid));
    PERFORM tview._lock_read_relations(t.view_oid);

    replaced := left(format('v_%s_replaced_%s', t.name, t.id), 63);
    EXECUTE format('ALTER VIEW %s RENAME TO %I', tview._qname(t.view_oid), replaced);
    SELECT * INTO made FROM tview._make_view(t.schema_name, t.name, p_definition, p_search_path, label);
    IF made.key_col <> t.key_column THEN
        RAISE EXCEPTION 'cannot alter TVIEW %: its key column is %, the new definition''s is %', label,
                        t.key_column, made.key_col
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'A TVIEW keeps its key: select it first as before, or drop the TVIEW and create it again.';
    END IF;
    PERFORM tview._lock_read_relations(made.view_oid);
    PERFORM tview._align_table(t, made.view_oid, label);

    UPDATE tview.tviews x
    SET view_oid = made.view_oid, definition = made.definition, session_settings = tview._session_settings()
    WHERE x.id = t.id
    RETURNING * INTO t;
    PERFORM tview._grant_engine_owner(t.view_oid, t.table_oid);
    stale := tview._derive(t);
    -- its readers, in order (a level may change): the columns they read may have changed type
    FOR dep IN SELECT * FROM tview._dependents(t) x ORDER BY x.topo_level, x.id LOOP
        stale := stale || tview._derive(dep);
    END LOOP;
    PERFORM tview._sync_captures(stale);   -- each table's capture code once
    EXECUTE format('DROP VIEW %I.%I', t.schema_name, replaced);
    PERFORM tview._cascade(tview._add_work('{}', t.id, '{}', true, 0), NULL, 'ALTER', true);
    RETURN t.table_oid;
END;
$$;

-- The name tview.alter and tview.drop look up: as given (name, or schema.name, along search_path),
-- or in schema_name when the caller passes the schema apart, as tview.create takes it.
CREATE OR REPLACE FUNCTION tview._in_schema(tview_name text, schema_name text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN schema_name IS NULL THEN tview_name ELSE format('%I.%I', schema_name, tview_name) END $$;

CREATE OR REPLACE FUNCTION tview.alter(name text, definition text, schema_name text DEFAULT NULL)
RETURNS regclass
LANGUAGE sql
AS $$ SELECT tview._alter(tview._in_schema($1, $3), $2, pg_catalog.current_setting('search_path'),
                          pg_catalog.current_schemas(false)) $$;
COMMENT ON FUNCTION tview.alter(text, text, text) IS
    'Replace a TVIEW''s definition in place, keeping its table and the TVIEWs that read it; recomputes what changed';

-- Remove a TVIEW's objects and catalog rows (the catalog first, so the drop event trigger
-- has nothing left to do).
CREATE OR REPLACE FUNCTION tview._drop_objects(t tview.tviews) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tv text := tview._label(t.schema_name, t.name);
    v  text := format('%I.%I', t.schema_name, 'v_' || t.name);
    tables oid[] := tview._tables_read(t.id);
    read   int[] := tview._tviews_read(t.id);
BEGIN
    DELETE FROM tview.tviews WHERE id = t.id;
    PERFORM tview._drop_generated_functions(t.id);
    IF EXISTS (SELECT 1 FROM pg_class WHERE oid = t.view_oid) THEN
        EXECUTE format('DROP VIEW %s', v);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class WHERE oid = t.table_oid) THEN
        EXECUTE format('DROP TABLE %s', tv);
    END IF;
    PERFORM tview._sync_captures(tables);
    PERFORM tview._install_captures_reading(read);   -- they may have lost their last reader
    PERFORM tview._reinstall_refresh_functions(read);
END;
$$;

-- TVIEWs that read t, directly or through others, deepest first.
CREATE OR REPLACE FUNCTION tview._dependents(t tview.tviews) RETURNS SETOF tview.tviews
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE down(id) AS (
        SELECT d.tview_id FROM tview.dependencies d WHERE d.source_oid = t.table_oid
        UNION
        SELECT d.tview_id FROM down JOIN tview.tviews x ON x.id = down.id
        JOIN tview.dependencies d ON d.source_oid = x.table_oid)
    SELECT x.* FROM tview.tviews x JOIN down USING (id) ORDER BY x.topo_level DESC, x.id DESC
$$;

CREATE OR REPLACE FUNCTION tview._drop(p_name text, p_if_exists boolean, p_cascade boolean, schemas name[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t    tview.tviews;
    dep  tview.tviews;
    names text;
BEGIN
    PERFORM tview._require_engine_owner('drop TVIEW', p_name);
    t := tview._find(p_name, schemas);
    IF t.id IS NULL THEN
        IF p_if_exists THEN
            RAISE NOTICE 'TVIEW "%" does not exist, skipping', p_name;
            RETURN;
        END IF;
        PERFORM tview._get(p_name, schemas);   -- raises the not-found error
    END IF;
    SELECT string_agg(tview._label(x.schema_name, x.name), ', ') INTO names FROM tview._dependents(t) x;
    IF names IS NOT NULL AND NOT p_cascade THEN
        RAISE EXCEPTION 'cannot drop TVIEW %.tv_% because other TVIEWs read it: %', t.schema_name, t.name, names
            USING ERRCODE = 'dependent_objects_still_exist',
                  HINT = format('Drop them first, or use tview.drop(%L, cascade => true).', t.name);
    END IF;
    FOR dep IN SELECT * FROM tview._dependents(t) LOOP
        PERFORM tview._drop_objects(dep);
    END LOOP;
    PERFORM tview._drop_objects(t);
END;
$$;

CREATE OR REPLACE FUNCTION tview.drop(name text, if_exists boolean DEFAULT false, cascade boolean DEFAULT false,
                                      schema_name text DEFAULT NULL)
RETURNS void
LANGUAGE sql
AS $$ SELECT tview._drop(tview._in_schema($1, $4), $2, $3, pg_catalog.current_schemas(false)) $$;
COMMENT ON FUNCTION tview.drop(text, boolean, boolean, text) IS
    'Drop a TVIEW: table, backing view, catalog rows and unused triggers (cascade => also TVIEWs reading it)';

CREATE OR REPLACE FUNCTION tview.drop_all() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tview.tviews;
BEGIN
    PERFORM tview._require_engine_owner('drop every TVIEW', NULL);
    FOR t IN SELECT * FROM tview.tviews ORDER BY topo_level DESC, id DESC LOOP
        PERFORM tview._drop_objects(t);
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION tview._refresh(p_name text, p_keys bigint[], schemas name[]) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tview.tviews := tview._get(p_name, schemas);
BEGIN
    PERFORM tview._require_refresh_rights(t);
    RETURN tview._cascade(tview._add_work('{}', t.id, coalesce(p_keys, '{}'), p_keys IS NULL, 0),
                          NULL, 'REFRESH', true);
END;
$$;

CREATE OR REPLACE FUNCTION tview.refresh(name text) RETURNS bigint
LANGUAGE sql
AS $$ SELECT tview._refresh($1, NULL, pg_catalog.current_schemas(false)) $$;
COMMENT ON FUNCTION tview.refresh(text) IS 'Recompute a whole TVIEW (and what reads it); returns rows written';

CREATE OR REPLACE FUNCTION tview.refresh(name text, keys bigint[]) RETURNS bigint
LANGUAGE sql
AS $$ SELECT tview._refresh($1, coalesce($2, '{}'), pg_catalog.current_schemas(false)) $$;
COMMENT ON FUNCTION tview.refresh(text, bigint[]) IS 'Recompute the given keys of a TVIEW (and what reads them)';

CREATE OR REPLACE FUNCTION tview._verify(p_name text, schemas name[]) RETURNS TABLE (key bigint, problem text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tview.tviews := tview._get(p_name, schemas);
    saved jsonb := tview._apply_settings(t.session_settings);   -- compared as its refreshes write it
BEGIN
    RETURN QUERY EXECUTE format($q$
        SELECT coalesce(s.k, c.k)::bigint,
               CASE WHEN c.k IS NULL THEN 'missing' WHEN s.k IS NULL THEN 'extra' ELSE 'different' END
        FROM (SELECT x.%1$I AS k, x::text AS r FROM %2$s x) s
        FULL JOIN (SELECT x.%1$I AS k, x::text AS r FROM %3$s x) c ON c.k = s.k
        WHERE s.k IS NULL OR c.k IS NULL OR s.r IS DISTINCT FROM c.r
        ORDER BY 1$q$, t.key_column, tview._qname(t.view_oid), tview._qname(t.table_oid));
    PERFORM tview._apply_settings(saved);
END;
$$;

CREATE OR REPLACE FUNCTION tview.verify(name text) RETURNS TABLE (key bigint, problem text)
LANGUAGE sql
AS $$ SELECT * FROM tview._verify($1, pg_catalog.current_schemas(false)) $$;
COMMENT ON FUNCTION tview.verify(text) IS 'Rows of a TVIEW that differ from its definition: missing, extra, different';
