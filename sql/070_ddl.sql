-- DDL interception: CREATE TABLE tv_x AS SELECT ... and DROP TABLE tv_x.
-- Event triggers need a superuser; without one the installer skips them (tview.create and
-- tview.drop still work) and `tview-tui status` says interception is off.

-- The first complete query at the start of text: try each ';' as the end of the statement.
CREATE OR REPLACE FUNCTION tview._first_query(query text) RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    probe refcursor;
    cut   int := 0;
    next_cut int;
    candidate text;
BEGIN
    LOOP
        next_cut := strpos(substr(query, cut + 1), ';');
        candidate := CASE WHEN next_cut = 0 THEN query ELSE left(query, cut + next_cut - 1) END;
        candidate := regexp_replace(candidate, '\s+WITH\s+(NO\s+)?DATA\s*$', '', 'i');
        BEGIN
            OPEN probe NO SCROLL FOR EXECUTE candidate;
            CLOSE probe;
            RETURN candidate;
        EXCEPTION WHEN OTHERS THEN
            IF next_cut = 0 THEN
                RETURN NULL;
            END IF;
        END;
        cut := cut + next_cut;
    END LOOP;
END;
$$;
-- (no pinned search_path: the query resolves along the session's path)

CREATE OR REPLACE FUNCTION tview._on_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql
AS $$
DECLARE
    obj        record;
    query      text := pg_catalog.current_query();
    rest       text;
    definition text;
    caller_path text := pg_catalog.current_setting('search_path');
BEGIN
    FOR obj IN
        SELECT c.oid, c.relname, n.nspname, c.relpersistence
        FROM pg_catalog.pg_event_trigger_ddl_commands() cmd
        JOIN pg_catalog.pg_class c ON c.oid = cmd.objid
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE cmd.object_type = 'table' AND c.relname OPERATOR(pg_catalog.~) '^tv_'
          AND c.relpersistence OPERATOR(pg_catalog.<>) 't'
    LOOP
        -- the text after "CREATE ... TABLE [IF NOT EXISTS] <name> ... AS"
        rest := pg_catalog.substring(query,
            '(?i)CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:[^\s(]*\.)?"?'
            OPERATOR(pg_catalog.||) obj.relname OPERATOR(pg_catalog.||)
            '"?\s+(?:WITH\s*\([^)]*\)\s+)?(?:TABLESPACE\s+\S+\s+)?AS\s+(.*)$');
        IF rest IS NULL THEN
            RAISE EXCEPTION 'cannot convert %.% into a TVIEW: its CREATE TABLE ... AS statement was not recognised',
                            obj.nspname, obj.relname
                USING ERRCODE = 'feature_not_supported',
                      HINT = pg_catalog.format('Use SELECT tview.create(%L, ''SELECT ...'') instead.', obj.relname);
        END IF;
        definition := tview._first_query(rest);
        IF definition IS NULL THEN
            RAISE EXCEPTION 'cannot convert %.% into a TVIEW: the query after AS was not recognised', obj.nspname, obj.relname
                USING ERRCODE = 'feature_not_supported',
                      HINT = pg_catalog.format('Use SELECT tview.create(%L, ''SELECT ...'') instead.', obj.relname);
        END IF;
        EXECUTE pg_catalog.format('DROP TABLE %I.%I', obj.nspname, obj.relname);
        PERFORM tview._create(obj.relname, definition, 'immediate', obj.nspname, caller_path);
    END LOOP;
END;
$$;

-- A TVIEW's table or backing view was dropped by plain DDL: drop the rest of it.
CREATE OR REPLACE FUNCTION tview._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tview.tviews;
BEGIN
    IF to_regclass('tview.tviews') IS NULL THEN
        RETURN;   -- the engine itself is being uninstalled
    END IF;
    FOR t IN
        SELECT DISTINCT ON (v.id) v.*
        FROM pg_event_trigger_dropped_objects() o
        JOIN tview.tviews v ON o.objid IN (v.table_oid, v.view_oid)
        WHERE o.classid = 'pg_class'::regclass AND o.objsubid = 0
        ORDER BY v.id
    LOOP
        PERFORM tview._drop_objects(t);
    END LOOP;
END;
$$;

-- Rebuild what the engine generated for a TVIEW (lineage keys queries, refresh and patch
-- functions) from its definition as it is now, e.g. after a table or column it reads was
-- renamed: the view follows renames by itself, the generated SQL does not.
CREATE OR REPLACE FUNCTION tview._rebuild(t tview.tviews) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_lineage jsonb := tview._analyze(t.view_oid, t.key_column);
    rule     record;
BEGIN
    UPDATE tview.tviews x
    SET refresh_sql = tview._build_refresh_sql(t.view_oid, t.table_oid, t.key_column),
        patch_specs = tview._patch_specs(t.view_oid, found_lineage),
        analysis = found_lineage ->> 'reason',
        root_column = tview._colname(x.root_oid, (found_lineage -> 'root' ->> 1)::int)
    WHERE x.id = t.id;
    DELETE FROM tview.dependencies WHERE tview_id = t.id;
    FOR rule IN SELECT * FROM tview._lineage_rules(t.view_oid, found_lineage) LOOP
        INSERT INTO tview.dependencies (tview_id, source_oid, source_kind, lineage, key_sql, roles)
        VALUES (t.id, rule.source_oid,
                CASE WHEN EXISTS (SELECT 1 FROM tview.tviews v WHERE v.table_oid = rule.source_oid)
                     THEN 'tview' ELSE 'table' END,
                rule.lineage, rule.key_sql, rule.roles);
    END LOOP;
    EXECUTE format('DROP FUNCTION IF EXISTS tview.%I(bigint[], bigint[])', '_refresh_' || t.id);
    EXECUTE format('DROP FUNCTION IF EXISTS tview.%I(jsonb, bigint[])', '_patch_' || t.id);
    PERFORM tview._install_refresh_function(x) FROM tview.tviews x WHERE x.id = t.id;
END;
$$;

-- ALTER TABLE on a relation a TVIEW reads (or on a TVIEW table): rebuild those TVIEWs.
CREATE OR REPLACE FUNCTION tview._on_ddl_alter() RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tview.tviews;
BEGIN
    IF to_regclass('tview.tviews') IS NULL THEN
        RETURN;
    END IF;
    FOR t IN
        SELECT DISTINCT ON (x.id) x.*
        FROM pg_event_trigger_ddl_commands() cmd
        JOIN tview.dependencies d ON d.source_oid = cmd.objid
        JOIN tview.tviews x ON x.id = d.tview_id
        WHERE cmd.classid = 'pg_class'::regclass
        ORDER BY x.id
    LOOP
        PERFORM tview._rebuild(t);
    END LOOP;
END;
$$;

DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE NOTICE 'not a superuser: CREATE TABLE tv_x AS ... and DROP TABLE tv_x interception is off';
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'tview_ddl_create') THEN
        CREATE EVENT TRIGGER tview_ddl_create ON ddl_command_end
            WHEN TAG IN ('CREATE TABLE AS', 'SELECT INTO')
            EXECUTE FUNCTION tview._on_ddl_end();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'tview_ddl_alter') THEN
        CREATE EVENT TRIGGER tview_ddl_alter ON ddl_command_end
            WHEN TAG IN ('ALTER TABLE')
            EXECUTE FUNCTION tview._on_ddl_alter();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'tview_ddl_drop') THEN
        CREATE EVENT TRIGGER tview_ddl_drop ON sql_drop
            EXECUTE FUNCTION tview._on_sql_drop();
    END IF;
END;
$$;
