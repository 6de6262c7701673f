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
                                ' DELETE on %I.%I.', tview._engine_owner(), t.schema_name, 'v_' || t.name,
                                t.schema_name, 'tv_' || t.name);
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
-- functions are revoked as they are made (tview._install_capture).
REVOKE EXECUTE ON FUNCTION tview._flush_deferred() FROM PUBLIC;
