-- tview engine: schema and installation metadata.
-- Every file in sql/ is applied in name order by the installer, in one transaction
-- under an advisory lock, and must be safe to re-run over any older installation
-- (CREATE ... IF NOT EXISTS, CREATE OR REPLACE, ADD COLUMN IF NOT EXISTS). Functions are
-- always (re)created with CREATE OR REPLACE, never conditionally, and never altered in bulk
-- (GRANT/REVOKE ... ALL FUNCTIONS IN SCHEMA tview): an upgrade drops the tview functions
-- whose pg_proc row no file rewrote (see tview_tui/installer.py install()).

CREATE SCHEMA IF NOT EXISTS tview;
COMMENT ON SCHEMA tview IS 'TVIEW engine: incrementally maintained JSONB read models';

-- One row: the engine version the installer last applied.
CREATE TABLE IF NOT EXISTS tview.meta (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version      text NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now(),
    upgraded_at  timestamptz
);

CREATE OR REPLACE FUNCTION tview.version() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT version FROM tview.meta $$;
COMMENT ON FUNCTION tview.version() IS 'The installed engine version';
