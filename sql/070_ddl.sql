-- DDL interception: CREATE TABLE tv_x AS SELECT ... and DROP TABLE tv_x.
-- Event triggers need a superuser; without one the installer skips them (tview.create and
-- tview.drop still work) and `tview-tui status` says interception is off.

-- Where the statement at the start of text may end: before each ';', and at the end (WITH
-- [NO] DATA removed). Pinned: only the probing below runs along the session's path.
CREATE OR REPLACE FUNCTION tview._query_prefixes(query text) RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_agg(regexp_replace(left(query, p.at), '\s+WITH\s+(NO\s+)?DATA\s*$', '', 'i') ORDER BY p.at)
    FROM (SELECT m.at - 1 AS at
          FROM generate_series(1, length(query)) m(at) WHERE substr(query, m.at, 1) = ';'
          UNION ALL SELECT length(query)) p
$$;

-- The first complete query at the start of text: try each prefix as the statement. Every
-- call is qualified, since this runs along the session's search_path.
CREATE OR REPLACE FUNCTION tview._first_query(query text) RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    probe refcursor;
    candidate text;
BEGIN
    FOREACH candidate IN ARRAY tview._query_prefixes(query) LOOP
        BEGIN
            OPEN probe NO SCROLL FOR EXECUTE candidate;
            CLOSE probe;
            RETURN candidate;
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END LOOP;
    RETURN NULL;
END;
$$;
-- (no pinned search_path: the query resolves along the session's path)

-- The statement text with comments and string literals (quoted, E'', dollar-quoted) blanked
-- out, same length, newlines kept: a CREATE TABLE written in a comment or a literal is not
-- taken for the statement.
CREATE OR REPLACE FUNCTION tview._code_only(query text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c       text[] := regexp_split_to_array(query, '');
    n       int := cardinality(c);
    i       int := 1;
    j       int;
    k       int;
    depth   int;
    tag     text;
    escapes boolean;
BEGIN
    WHILE i <= n LOOP
        j := i + 1;                                   -- where the scan goes on; blank c[i .. j-1]?
        IF c[i] = '-' AND c[i + 1] = '-' THEN
            WHILE j <= n AND c[j] <> E'\n' LOOP j := j + 1; END LOOP;
        ELSIF c[i] = '/' AND c[i + 1] = '*' THEN     -- nested, as PostgreSQL reads them
            depth := 1;
            j := i + 2;
            WHILE j <= n AND depth > 0 LOOP
                IF c[j] = '/' AND c[j + 1] = '*' THEN depth := depth + 1; j := j + 2;
                ELSIF c[j] = '*' AND c[j + 1] = '/' THEN depth := depth - 1; j := j + 2;
                ELSE j := j + 1;
                END IF;
            END LOOP;
        ELSIF c[i] = '''' THEN
            escapes := i > 1 AND lower(c[i - 1]) = 'e' AND (i = 2 OR c[i - 2] !~ '[[:alnum:]_]');
            WHILE j <= n LOOP
                IF escapes AND c[j] = '\' THEN j := j + 2;
                ELSIF c[j] = '''' AND c[j + 1] = '''' THEN j := j + 2;
                ELSIF c[j] = '''' THEN j := j + 1; EXIT;
                ELSE j := j + 1;
                END IF;
            END LOOP;
        ELSIF c[i] = '"' THEN                         -- a quoted identifier is code: kept
            WHILE j <= n LOOP
                IF c[j] = '"' AND c[j + 1] = '"' THEN j := j + 2;
                ELSIF c[j] = '"' THEN j := j + 1; EXIT;
                ELSE j := j + 1;
                END IF;
            END LOOP;
            i := j;
            CONTINUE;
        ELSIF c[i] = '$' AND (i = 1 OR c[i - 1] !~ '[[:alnum:]_$]') THEN
            tag := substring(array_to_string(c[i:i + 70], '') FROM '^(\$(?:[[:alpha:]_][[:alnum:]_]*)?\$)');
            IF tag IS NULL THEN
                i := j;
                CONTINUE;
            END IF;
            k := strpos(array_to_string(c[i + length(tag):n], ''), tag);
            j := CASE WHEN k = 0 THEN n + 1 ELSE i + length(tag) + k - 1 + length(tag) END;
        ELSE
            i := j;
            CONTINUE;
        END IF;
        FOR k IN i .. least(j, n + 1) - 1 LOOP
            IF c[k] <> E'\n' THEN
                c[k] := ' ';
            END IF;
        END LOOP;
        i := j;
    END LOOP;
    RETURN array_to_string(c, '');
END;
$$;

-- A relation's columns and their types, in order, as one text.
CREATE OR REPLACE FUNCTION tview._columns(relid oid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum)
    FROM pg_attribute a WHERE a.attrelid = relid AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- The event triggers run for every role's DDL, most of it nothing to do with TVIEWs, and
-- for roles with no rights on schema tview: each is SECURITY DEFINER (the engine owner's
-- rights, to read its catalog) and returns at once for objects no TVIEW reads. The two that
-- must know the session's search_path (to resolve a CREATE TABLE tv_x AS query as it ran)
-- are a one-statement wrapper, every name in it qualified, around a pinned function.

-- CREATE TABLE tv_x AS SELECT ... / SELECT ... INTO tv_x: convert into tview.create. Only for
-- a role holding the engine owner's privileges (the table's owner: the role that ran it); any
-- other role's tv_x stays the plain table it made (a NOTICE says so).
CREATE OR REPLACE FUNCTION tview._on_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
AS $$
BEGIN
    PERFORM tview._convert_created_tables(pg_catalog.current_query(), pg_catalog.current_setting('search_path'));
END;
$$;
-- (no pinned search_path: it passes the session's on, calling only qualified names)

CREATE OR REPLACE FUNCTION tview._convert_created_tables(query text, caller_path text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    obj        record;
    rest       text;
    definition text;
    made       regclass;
    ran_columns text;
    long_name  text;
    owner      name := tview._engine_owner();
BEGIN
    FOR obj IN
        SELECT c.oid, c.relname, n.nspname, c.relpersistence, c.relowner::regrole::name AS maker
        FROM pg_event_trigger_ddl_commands() cmd
        JOIN pg_class c ON c.oid = cmd.objid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE cmd.object_type = 'table' AND c.relname ~ '^tv_' AND c.relpersistence <> 't'
    LOOP
        IF NOT (pg_has_role(obj.maker, owner, 'USAGE') OR pg_has_role(obj.maker, owner, 'MEMBER')) THEN
            RAISE NOTICE 'table %.% is not converted into a TVIEW: role % does not hold the engine owner''s privileges',
                         quote_ident(obj.nspname), quote_ident(obj.relname), obj.maker
                USING HINT = format('Have role %I create it (tview.create or CREATE TABLE ... AS), or GRANT %I TO %I.',
                                    owner, owner, obj.maker);
            CONTINUE;
        END IF;
        IF regexp_replace(obj.relname, '^tv_', '') !~ '^[a-z_][a-z0-9_]*$' THEN
            RAISE EXCEPTION 'invalid TVIEW name "%"', obj.relname
                USING ERRCODE = 'invalid_name',
                      HINT = 'Use tv_ and a lower-case identifier: letters, digits and underscores.';
        END IF;
        -- the text after "CREATE ... TABLE [IF NOT EXISTS] <name> ... AS", found in code only
        rest := substring(tview._code_only(query),
            '(?i)CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:(?:"(?:[^"]|"")*"|[^\s(".]+)\s*\.\s*)?"?'
            || obj.relname || '"?\s+(?:WITH\s*\([^)]*\)\s+)?(?:TABLESPACE\s+\S+\s+)?AS\s+(.*)$');
        rest := right(query, length(rest));
        -- PostgreSQL cut a longer name to 63 bytes: the same error as tview.create gives
        long_name := substring(tview._code_only(query),
            '(?i)CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:(?:"(?:[^"]|"")*"|[^\s(".]+)\s*\.\s*)?"?('
            || obj.relname || '[^\s(".;]+)');
        IF rest IS NULL AND long_name IS NOT NULL AND octet_length(obj.relname) = 63 THEN
            RAISE EXCEPTION 'TVIEW name "%" is too long: "%" exceeds 63 bytes', regexp_replace(long_name, '^tv_', '', 'i'),
                            long_name
                USING ERRCODE = 'invalid_name', HINT = 'Use a name of at most 60 bytes.';
        END IF;
        IF rest IS NULL THEN
            RAISE EXCEPTION 'cannot convert %.% into a TVIEW: its CREATE TABLE ... AS statement was not recognised',
                            obj.nspname, obj.relname
                USING ERRCODE = 'feature_not_supported',
                      HINT = format('Use SELECT tview.create(%L, ''SELECT ...'') instead.', obj.relname);
        END IF;
        -- probed along the session's path, as it ran (by a role holding the owner's privileges)
        PERFORM set_config('search_path', caller_path, true);
        definition := tview._first_query(rest);
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        IF definition IS NULL THEN
            RAISE EXCEPTION 'cannot convert %.% into a TVIEW: the query after AS was not recognised', obj.nspname, obj.relname
                USING ERRCODE = 'feature_not_supported',
                      HINT = format('Use SELECT tview.create(%L, ''SELECT ...'') instead.', obj.relname);
        END IF;
        ran_columns := tview._columns(obj.oid);
        EXECUTE format('DROP TABLE %I.%I', obj.nspname, obj.relname);
        made := tview._create(obj.relname, definition, 'immediate', obj.nspname, caller_path);
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        -- the query found must be the one PostgreSQL ran (e.g. not another statement's of
        -- the same query string): same columns, same types
        IF (tview._columns(made) = ran_columns) IS NOT TRUE THEN
            RAISE EXCEPTION 'cannot convert %.% into a TVIEW: the query after AS was not recognised', obj.nspname, obj.relname
                USING ERRCODE = 'feature_not_supported',
                      DETAIL = format('Found %s, which gives other columns.', definition),
                      HINT = format('Use SELECT tview.create(%L, ''SELECT ...'') instead.', obj.relname);
        END IF;
    END LOOP;
END;
$$;

-- CREATE TABLE tv_x AS ... for an existing TVIEW: the same error as tview.create gives
-- (PostgreSQL would otherwise say 42P07 before the conversion could).
CREATE OR REPLACE FUNCTION tview._on_ddl_start() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
AS $$
BEGIN
    PERFORM tview._check_created_name(pg_catalog.current_query(), pg_catalog.current_schemas(false));
END;
$$;
-- (no pinned search_path: it passes the session's on, calling only qualified names)

CREATE OR REPLACE FUNCTION tview._check_created_name(query text, schemas name[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found text[];
    t     tview.tviews;
BEGIN
    IF position('tv_' IN lower(query)) = 0 THEN
        RETURN;
    END IF;
    found := regexp_match(tview._code_only(query),
        '(?i)CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(IF\s+NOT\s+EXISTS\s+)?'
        '((?:"(?:[^"]|"")*"|[^\s(".;]+)(?:\s*\.\s*(?:"(?:[^"]|"")*"|[^\s(".;]+))?)');
    IF found IS NULL OR found[1] IS NOT NULL THEN
        RETURN;
    END IF;
    BEGIN
        t := tview._find(regexp_replace(found[2], '\s', '', 'g'), schemas);
    EXCEPTION WHEN OTHERS THEN
        RETURN;
    END;
    IF t.id IS NOT NULL AND (parse_ident(found[2]))[cardinality(parse_ident(found[2]))] = 'tv_' || t.name THEN
        RAISE EXCEPTION 'TVIEW %.tv_% already exists', t.schema_name, t.name
            USING ERRCODE = 'duplicate_object',
                  HINT = format('Drop it first with tview.drop(%L), or choose another name.', t.name);
    END IF;
END;
$$;

-- A TVIEW's table or backing view was dropped by plain DDL: drop the rest of it.
CREATE OR REPLACE FUNCTION tview._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
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
        -- its definition went with something it read (e.g. ALTER TABLE ... DROP COLUMN ... CASCADE)
        IF NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() o
                       WHERE o.classid = 'pg_class'::regclass AND o.objid = t.table_oid) THEN
            RAISE NOTICE 'dropping TVIEW %: its definition % was dropped', tview._label(t.schema_name, t.name),
                         format('%I.%I', t.schema_name, 'v_' || t.name)
                USING HINT = 'Create it again with tview.create and a definition that reads what is left.';
        END IF;
        PERFORM tview._drop_objects(t);
    END LOOP;
    -- a partition or inheritance child of a table TVIEWs read, dropped with its rows
    IF EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() o JOIN tview.members m ON m.relid = o.objid
               WHERE o.classid = 'pg_class'::regclass AND o.objsubid = 0) THEN
        PERFORM tview._sync_captures(tview._sync_members());
    END IF;
END;
$$;

-- CREATE TABLE ... PARTITION OF / INHERITS, ATTACH / DETACH PARTITION, INHERIT / NO INHERIT
-- on a table the engine's triggers sit on: refresh what the rows that came or went change,
-- and put the triggers on the new partitions and children (take them off those that left).
CREATE OR REPLACE FUNCTION tview._on_ddl_members() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('tview.members') IS NULL THEN
        RETURN;
    END IF;
    -- at once unless a table the triggers sit on, or a new child of one, was changed
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() cmd
                   WHERE cmd.classid = 'pg_class'::regclass
                     AND (EXISTS (SELECT 1 FROM tview.members m WHERE m.relid = cmd.objid)
                          OR EXISTS (SELECT 1 FROM pg_inherits i JOIN tview.members m ON m.relid = i.inhparent
                                     WHERE i.inhrelid = cmd.objid))) THEN
        RETURN;
    END IF;
    PERFORM tview._sync_captures(tview._sync_members());
END;
$$;

-- ALTER TABLE on a relation a TVIEW reads, or CREATE OR REPLACE / ALTER VIEW of a helper
-- view one reads: rebuild those TVIEWs (and refuse a change that closes a cycle).
CREATE OR REPLACE FUNCTION tview._on_ddl_alter() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tview.tviews;
BEGIN
    IF to_regclass('tview.tviews') IS NULL THEN
        RETURN;
    END IF;
    -- at once for what no TVIEW reads: no relation changed that a TVIEW reads or whose
    -- backing view reads it
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() cmd
                   WHERE cmd.classid = 'pg_class'::regclass
                     AND (EXISTS (SELECT 1 FROM tview.dependencies d WHERE d.source_oid = cmd.objid)
                          OR EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.refclassid = 'pg_class'::regclass
                                     AND dep.refobjid = cmd.objid AND dep.classid = 'pg_rewrite'::regclass))) THEN
        RETURN;
    END IF;
    FOR t IN
        SELECT x.*
        FROM tview.tviews x
        WHERE EXISTS (
            SELECT 1 FROM pg_event_trigger_ddl_commands() cmd
            WHERE cmd.classid = 'pg_class'::regclass AND cmd.objid <> x.view_oid AND cmd.objid <> x.table_oid
              AND (EXISTS (SELECT 1 FROM tview.dependencies d WHERE d.tview_id = x.id AND d.source_oid = cmd.objid)
                   OR tview._reads_view(x.view_oid, cmd.objid)))
        ORDER BY x.topo_level, x.id
    LOOP
        -- a helper view replaced by one the TVIEW could never equal (random(), current_user)
        PERFORM tview._check_definition_tree(t.view_oid, tview._label(t.schema_name, t.name));
        PERFORM tview._rebuild(t);
        -- Its rows may change too: a helper view it reads was replaced (a new expression), or it
        -- reads whole rows (to_jsonb(t), t::text), which a new or changed column changes. Whole,
        -- writing only the rows that differ, in this transaction.
        IF tview._reads_whole_rows(t.view_oid)
           OR EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() cmd JOIN pg_class c ON c.oid = cmd.objid
                      WHERE cmd.classid = 'pg_class'::regclass AND c.relkind = 'v' AND c.oid <> t.view_oid
                        AND tview._reads_view(t.view_oid, c.oid)) THEN
            PERFORM tview._cascade(tview._add_work('{}', t.id, '{}', true, 0), NULL, 'ALTER', true);
        END IF;
    END LOOP;
END;
$$;

-- Does a view use whole rows of a relation (a row variable: to_jsonb(t), row_to_json(t),
-- t::text), directly or through the views it reads? Their value follows the relation's
-- columns, so a column added, dropped or retyped changes the view's rows.
CREATE OR REPLACE FUNCTION tview._reads_whole_rows(view_oid oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM tview._views_read(view_oid) v JOIN pg_rewrite r ON r.ev_class = v
                   WHERE r.ev_action::text ~ '\{VAR :varno \d+ :varattno 0 ')
$$;

-- ALTER SCHEMA ... RENAME TO: the catalog keeps each TVIEW's schema by name and the generated
-- code names relations qualified. Follow the new name, and rebuild the TVIEWs that live in the
-- schema or read a relation in it (which includes the readers of the TVIEWs there).
CREATE OR REPLACE FUNCTION tview._on_ddl_schema() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t       tview.tviews;
    renamed oid[];
    stale   oid[] := '{}';
BEGIN
    IF to_regclass('tview.tviews') IS NULL THEN
        RETURN;
    END IF;
    renamed := ARRAY(SELECT cmd.objid FROM pg_event_trigger_ddl_commands() cmd
                     WHERE cmd.classid = 'pg_namespace'::regclass);
    UPDATE tview.tviews x SET schema_name = n.nspname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = x.table_oid AND n.oid = ANY (renamed) AND x.schema_name <> n.nspname;
    FOR t IN
        SELECT x.* FROM tview.tviews x
        WHERE EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = x.table_oid AND c.relnamespace = ANY (renamed))
           OR EXISTS (SELECT 1 FROM tview._base_relations(x.view_oid) b JOIN pg_class c ON c.oid = b.relid
                      WHERE c.relnamespace = ANY (renamed))
        ORDER BY x.topo_level, x.id
    LOOP
        stale := stale || tview._derive(t);
    END LOOP;
    IF stale <> '{}' THEN
        PERFORM tview._sync_captures(stale);   -- each table's capture code once
    END IF;
END;
$$;

-- CREATE or ALTER SUBSCRIPTION (tables added by REFRESH PUBLICATION): the tables TVIEWs read
-- that are now subscribed get the row trigger that follows replicated rows.
CREATE OR REPLACE FUNCTION tview._on_ddl_subscription() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('tview.tviews') IS NULL THEN
        RETURN;
    END IF;
    PERFORM tview._install_captures(ARRAY(SELECT d.source_oid FROM tview.dependencies d
                                         WHERE d.source_kind = 'table' AND tview._subscribed(d.source_oid)), '{}');
END;
$$;

-- Does view_oid read relid, directly or through other views?
CREATE OR REPLACE FUNCTION tview._reads_view(view_oid oid, relid oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM tview._views_read(view_oid) v
                   JOIN pg_rewrite r ON r.ev_class = v
                   JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                                   AND d.refclassid = 'pg_class'::regclass AND d.refobjid = relid
                   WHERE relid <> view_oid)
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
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'tview_ddl_create_check') THEN
        CREATE EVENT TRIGGER tview_ddl_create_check ON ddl_command_start
            WHEN TAG IN ('CREATE TABLE AS', 'SELECT INTO')
            EXECUTE FUNCTION tview._on_ddl_start();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'tview_ddl_alter') THEN
        CREATE EVENT TRIGGER tview_ddl_alter ON ddl_command_end
            WHEN TAG IN ('ALTER TABLE', 'CREATE VIEW', 'ALTER VIEW')
            EXECUTE FUNCTION tview._on_ddl_alter();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'tview_ddl_schema') THEN
        CREATE EVENT TRIGGER tview_ddl_schema ON ddl_command_end
            WHEN TAG IN ('ALTER SCHEMA')
            EXECUTE FUNCTION tview._on_ddl_schema();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'tview_ddl_subscription') THEN
        CREATE EVENT TRIGGER tview_ddl_subscription ON ddl_command_end
            WHEN TAG IN ('CREATE SUBSCRIPTION', 'ALTER SUBSCRIPTION')
            EXECUTE FUNCTION tview._on_ddl_subscription();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'tview_ddl_members') THEN
        CREATE EVENT TRIGGER tview_ddl_members ON ddl_command_end
            WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
            EXECUTE FUNCTION tview._on_ddl_members();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'tview_ddl_drop') THEN
        CREATE EVENT TRIGGER tview_ddl_drop ON sql_drop
            EXECUTE FUNCTION tview._on_sql_drop();
    END IF;
END;
$$;
