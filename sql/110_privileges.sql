-- Privileges: who may do what with the engine (docs/engine.md "Privileges").
--
-- The engine's owner is the owner of schema tview (the role that installed it). Writers of
-- base tables need no rights at all: the statement and commit triggers run as the owner
-- (SECURITY DEFINER). That is safe only while every piece of SQL those triggers run was
-- written by the owner or by a role holding the owner's privileges: TVIEW definitions
-- (their functions run as the owner), the catalog's generated SQL, and triggers on tv_*
-- tables. Hence:
--   * creating, dropping and reconfiguring TVIEWs needs the owner's privileges (the owner,
--     a role granted it, or a superuser);
--   * refreshing needs the rights to write the TVIEW's table (refresh runs as the caller);
--   * reading the catalog needs USAGE on schema tview and SELECT on its tables;
--   * the catalog tables and schema tview must never be writable by other roles.
-- Statements here are re-run by every install: REVOKE and ALTER are idempotent.

CREATE OR REPLACE FUNCTION tview._engine_owner() RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'tview'
$$;

-- Refuse (42501) unless the current role holds the engine owner's privileges.
CREATE OR REPLACE FUNCTION tview._require_engine_owner(action text, object_name text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner name := tview._engine_owner();
BEGIN
    IF NOT (pg_has_role(current_user, owner, 'USAGE') OR pg_has_role(current_user, owner, 'MEMBER')) THEN
        RAISE EXCEPTION 'permission denied to %: only the engine owner (role %) may',
                        action || coalesce(' "' || object_name || '"', ''), owner
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Run it as %I, or have it granted: GRANT %I TO %I.', owner, owner, current_user);
    END IF;
END;
$$;

-- Refresh runs as the caller: refuse (42501) early, naming the TVIEW, when the caller could
-- not read its definition or write its table.
CREATE OR REPLACE FUNCTION tview._require_refresh_rights(t tview.tviews) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT (has_table_privilege(t.view_oid, 'SELECT') AND has_table_privilege(t.table_oid, 'INSERT')
            AND has_table_privilege(t.table_oid, 'UPDATE') AND has_table_privilege(t.table_oid, 'DELETE')) THEN
        RAISE EXCEPTION 'permission denied to refresh TVIEW %.tv_%', t.schema_name, t.name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Refresh as the engine owner (role %I), or grant SELECT on %I.%I and INSERT, UPDATE,'
                                ' DELETE on %s.', tview._engine_owner(), t.schema_name, 'v_' || t.name,
                                tview._label(t.schema_name, t.name));
    END IF;
END;
$$;

-- What the engine owner needs on a table a TVIEW reads, and lacks: SELECT (its refreshes
-- read it), TRIGGER (the statement triggers are its; tview.repair_triggers re-creates them)
-- and UPDATE on some column (a refresh share-locks the rows it joins: FOR SHARE needs it).
-- Empty when nothing is missing (the owner of the table, or a superuser, has them all).
CREATE OR REPLACE FUNCTION tview._missing_grants(relid oid) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_remove(ARRAY[
        CASE WHEN NOT has_table_privilege(o.owner, relid, 'SELECT') THEN 'SELECT' END,
        CASE WHEN NOT has_table_privilege(o.owner, relid, 'TRIGGER') THEN 'TRIGGER' END,
        CASE WHEN NOT has_any_column_privilege(o.owner, relid, 'UPDATE') THEN 'UPDATE' END], NULL)
    FROM (SELECT n.nspowner AS owner FROM pg_namespace n WHERE n.nspname = 'tview') o
$$;

-- The GRANT that gives the engine owner what it lacks on relid (NULL when nothing).
CREATE OR REPLACE FUNCTION tview._grant_fix(relid oid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('GRANT %s ON %s TO %I', array_to_string(m, ', '), relid::regclass, tview._engine_owner())
    FROM tview._missing_grants(relid) m
    WHERE cardinality(m) > 0
$$;

-- Called when a TVIEW is created (and when a helper view it reads is replaced): refuse
-- (42501) a definition reading a table on which the engine owner lacks SELECT, TRIGGER or
-- UPDATE, naming what is missing and the GRANT that fixes it. Without them a later write
-- (anyone's) would fail with "permission denied" inside the engine's trigger.
CREATE OR REPLACE FUNCTION tview._check_source_grants(view_oid oid, label text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad record;
BEGIN
    SELECT b.relid, tview._missing_grants(b.relid) AS missing INTO bad
    FROM tview._base_relations(view_oid) b
    WHERE b.relkind IN ('r', 'p')
      AND NOT EXISTS (SELECT 1 FROM tview.tviews t WHERE t.table_oid = b.relid)
      AND cardinality(tview._missing_grants(b.relid)) > 0
    ORDER BY b.relid::regclass::text
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'definition of % reads table %, on which the engine owner (role %) lacks %',
                        label, bad.relid::regclass, tview._engine_owner(), array_to_string(bad.missing, ', ')
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('The engine''s triggers read, share-lock and trigger on it as its owner: have the '
                                'table''s owner run %s.', tview._grant_fix(bad.relid));
    END IF;
END;
$$;

-- Roles whose code may run with the engine owner's rights: the owner and superusers.
CREATE OR REPLACE FUNCTION tview._trusted(role_oid oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT role_oid = (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'tview')
           OR coalesce((SELECT r.rolsuper FROM pg_roles r WHERE r.oid = role_oid), false)
$$;

-- Code a definition would run with the engine owner's rights (its functions, operators and
-- the functions behind them, the types of its values and columns, and the helper views it
-- reads, through views), owned by a role that is neither the engine owner nor a superuser:
-- one row per object, kind and name and owner.
CREATE OR REPLACE FUNCTION tview._untrusted_code(view_oid oid)
RETURNS TABLE (kind text, object text, owner name)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH views(oid) AS (SELECT * FROM tview._views_read(view_oid)),
    used(classid, objid) AS (
        SELECT d.refclassid, d.refobjid
        FROM views JOIN pg_rewrite r ON r.ev_class = views.oid
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
        UNION
        SELECT d.refclassid, d.refobjid                 -- the types of the views' columns
        FROM views JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = views.oid AND d.objsubid > 0
    ),
    found(kind, object, owner) AS (
        SELECT 'function', p.oid::regprocedure::text, p.proowner
        FROM used JOIN pg_proc p ON used.classid = 'pg_proc'::regclass AND p.oid = used.objid
        UNION ALL
        SELECT 'operator', o.oid::regoperator::text, o.oprowner
        FROM used JOIN pg_operator o ON used.classid = 'pg_operator'::regclass AND o.oid = used.objid
        UNION ALL
        SELECT 'function', p.oid::regprocedure::text, p.proowner
        FROM used JOIN pg_operator o ON used.classid = 'pg_operator'::regclass AND o.oid = used.objid
        JOIN pg_proc p ON p.oid = o.oprcode
        UNION ALL
        SELECT CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END, format_type(t.oid, NULL), t.typowner
        FROM used JOIN pg_type t ON used.classid = 'pg_type'::regclass AND t.oid = used.objid
        UNION ALL
        SELECT 'view', c.oid::regclass::text, c.relowner
        FROM views JOIN pg_class c ON c.oid = views.oid
        WHERE views.oid <> view_oid
    )
    SELECT f.kind, f.object, pg_get_userbyid(f.owner)
    FROM found f
    WHERE NOT tview._trusted(f.owner)
    GROUP BY 1, 2, 3
    ORDER BY array_position(ARRAY['view', 'operator', 'domain', 'type', 'function'], f.kind), 2   -- what the user wrote first
$$;

-- Called when a TVIEW is created (and when a helper view it reads is replaced): refuse (42501)
-- a definition that would run another role's code with the engine owner's rights on every
-- write (that role could replace it at any time), and a table whose row-level security
-- policies would run as the owner (the engine's triggers turn row_security off, so such a
-- table would make every write fail instead).
CREATE OR REPLACE FUNCTION tview._check_trusted_code(view_oid oid, label text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad record;
BEGIN
    SELECT * INTO bad FROM tview._untrusted_code(view_oid) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'definition of % uses % %, owned by role %, which is not the engine owner', label,
                        bad.kind, bad.object, bad.owner
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('The engine runs a definition with its owner''s rights (role %s) on every write, and '
                                'the owner of that %s could change what it does: have the engine owner or a '
                                'superuser own it (ALTER ... OWNER TO %s), or leave it out of the definition.',
                                tview._engine_owner(), bad.kind, quote_ident(tview._engine_owner()));
    END IF;
    SELECT b.relid INTO bad
    FROM tview._base_relations(view_oid) b JOIN pg_class c ON c.oid = b.relid
    WHERE c.relrowsecurity
      AND NOT (SELECT r.rolsuper OR r.rolbypassrls FROM pg_roles r WHERE r.rolname = tview._engine_owner())
      AND (c.relforcerowsecurity OR pg_get_userbyid(c.relowner) <> tview._engine_owner())
    ORDER BY b.relid::regclass::text LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'definition of % reads table %, which has row-level security', label, bad.relid::regclass
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('Its policies would run with the engine owner''s rights and filter what the TVIEW '
                                'holds: disable row-level security on it, or give role %s BYPASSRLS.',
                                quote_ident(tview._engine_owner()));
    END IF;
END;
$$;

-- Nothing in schema tview is anyone else's by default (no-ops unless PUBLIC was granted
-- something by hand).
REVOKE ALL ON SCHEMA tview FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA tview FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA tview FROM PUBLIC;

-- The SECURITY DEFINER trigger functions: callable by nobody directly (PostgreSQL does not
-- check EXECUTE when a trigger fires, so writers are unaffected). The generated capture
-- functions are revoked as they are made (tview._install_table_capture).
REVOKE EXECUTE ON FUNCTION tview._flush_deferred() FROM PUBLIC;
-- The event trigger functions and what they call with the owner's rights (SECURITY DEFINER,
-- sql/070_ddl.sql): run by the event triggers only.
REVOKE EXECUTE ON FUNCTION tview._on_ddl_end() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tview._on_ddl_start() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tview._on_ddl_alter() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tview._on_sql_drop() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tview._on_ddl_members() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tview._on_ddl_schema() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tview._on_ddl_subscription() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tview._convert_created_tables(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tview._check_created_name(text, name[]) FROM PUBLIC;
