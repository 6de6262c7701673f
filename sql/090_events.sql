-- Cascade events: one per TVIEW refreshed per round, JSON protocol v1 (docs/events.md),
-- sent with pg_notify on channel tview_events and/or appended to the bounded log
-- tview.events. Settings (the engine owner's role or the database, see tview.setting; a
-- session may only turn tview.notify down):
--   tview.notify   on|off|auto (default auto) NOTIFY is delivered at commit; a transaction
--                                         that ran NOTIFY cannot be PREPAREd: use
--                                         SET LOCAL tview.notify = off (events reach the
--                                         log if tview.log is on).
--                                         auto: only while a listener registered with
--                                         tview.listen() is connected (NOTIFY makes the
--                                         commits of every notifying transaction wait
--                                         for one another, listened to or not)
--   tview.log      on|off  (default off)  keep history, e.g. for clients behind a
--                                         transaction-pooling proxy (they poll it)
--   tview.log_max  rows kept in the log (default 100000)
--   tview.notify_queue_pct  no NOTIFY while pg_notification_queue_usage() is above this
--                           percentage (default 50), and tview.health() reports it

CREATE TABLE IF NOT EXISTS tview.events (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts      timestamptz NOT NULL DEFAULT clock_timestamp(),
    payload jsonb NOT NULL
);
COMMENT ON TABLE tview.events IS 'Recent cascade events (when tview.log = on), pruned to tview.log_max rows';

-- Listeners registered with tview.listen(): what tview.notify = auto looks at (rows whose
-- backend is gone, left by a listener that crashed, do not count; tview.listen() clears them).
CREATE TABLE IF NOT EXISTS tview.listeners (
    pid              int PRIMARY KEY,
    since            timestamptz NOT NULL DEFAULT now(),
    application_name text
);
COMMENT ON TABLE tview.listeners IS 'Sessions listening on tview_events (tview.listen()), for tview.notify = auto';

-- LISTEN on tview_events and register this session, so that writers with tview.notify = auto
-- send events while it is connected. For any role with USAGE on schema tview.
CREATE OR REPLACE FUNCTION tview.listen() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM tview.listeners l WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.pid);
    INSERT INTO tview.listeners (pid, application_name)
    VALUES (pg_backend_pid(), current_setting('application_name'))
    ON CONFLICT (pid) DO UPDATE SET since = now(), application_name = EXCLUDED.application_name;
    LISTEN tview_events;
END;
$$;

-- The reverse of tview.listen().
CREATE OR REPLACE FUNCTION tview.unlisten() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UNLISTEN tview_events;
    DELETE FROM tview.listeners WHERE pid = pg_backend_pid();
END;
$$;

-- Should this event be sent with NOTIFY? tview.notify (see tview.setting: a session may only
-- turn it down) on, off, or auto (the default: only while a listener registered with
-- tview.listen() is connected). Never while the notification queue is fuller than
-- tview.notify_queue_pct: a listener that sits in a transaction keeps the queue from
-- draining, and a full queue would make every notifying commit fail (54000). The events
-- still reach the log when tview.log is on; streams see the gap and read it.
CREATE OR REPLACE FUNCTION tview._notify_wanted(cfg jsonb) RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    raw text := lower(btrim(cfg ->> 'notify'));
BEGIN
    IF raw = 'auto' THEN
        IF NOT EXISTS (SELECT 1 FROM tview.listeners l WHERE EXISTS (SELECT 1 FROM pg_stat_get_activity(l.pid))) THEN
            RETURN false;
        END IF;
    ELSIF tview._truthy(raw) IS NULL THEN
        RAISE EXCEPTION 'invalid value for tview.notify: "%"', raw
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use on, off or auto.';
    ELSIF NOT tview._truthy(raw) THEN
        RETURN false;
    END IF;
    RETURN pg_notification_queue_usage() * 100 <= tview._queue_pct_setting(cfg);
END;
$$;

-- tview.notify_queue_pct: a number from 0 to 100 (default 50); anything else is an error.
CREATE OR REPLACE FUNCTION tview._queue_pct_setting(cfg jsonb) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    raw text := btrim(coalesce(cfg ->> 'notify_queue_pct', '50'));
BEGIN
    IF raw !~ '^\d{1,3}(\.\d*)?$' OR raw::numeric > 100 THEN
        RAISE EXCEPTION 'invalid value for tview.notify_queue_pct: "%"', raw
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use a percentage from 0 to 100, e.g. 50.';
    END IF;
    RETURN raw::numeric;
END;
$$;

-- keys: every key written (recomputed or patched); NULL for a whole refresh; cfg:
-- tview._settings(). Nothing is read or built unless the event is sent or logged.
CREATE OR REPLACE FUNCTION tview._publish(tview_id int, source text, op text, depth int, whole boolean,
                                          recomputed int, keys bigint[], result jsonb, us bigint, cfg jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    to_notify boolean := tview._notify_wanted(cfg);
    to_log    boolean := tview._cfg_enabled(cfg, 'log', false);
    shown     int := 50;
    payload   jsonb;
    new_id    bigint;
    keep      bigint;
    t         record;
BEGIN
    IF NOT (to_notify OR to_log) THEN
        RETURN;
    END IF;
    SELECT x.schema_name, x.name INTO t FROM tview.tviews x WHERE x.id = tview_id;
    payload := jsonb_build_object(
        'v', 1,
        'ts', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'pid', pg_backend_pid(),
        'xid', pg_current_xact_id()::text,
        'schema', t.schema_name,
        'tview', 'tv_' || t.name,
        'source', source,
        'op', op,
        'depth', depth,
        'mode', CASE WHEN whole THEN 'full'
                     WHEN coalesce((result ->> 'patched')::bigint, 0) = 0 THEN 'recompute'
                     WHEN coalesce(recomputed, 0) = 0 THEN 'patch'
                     ELSE 'patch+recompute' END,
        'rows', (result ->> 'upserted')::bigint + (result ->> 'deleted')::bigint
                + coalesce((result ->> 'patched')::bigint, 0),
        'upserted', (result ->> 'upserted')::bigint,
        'patched', coalesce((result ->> 'patched')::bigint, 0),
        'deleted', (result ->> 'deleted')::bigint,
        'us', us,
        'keys', coalesce(to_jsonb(keys[1:shown]), '[]'::jsonb),
        'keys_more', greatest(coalesce(cardinality(keys), 0) - shown, 0));
    IF to_notify THEN
        PERFORM pg_notify('tview_events', payload::text);
    END IF;
    IF to_log THEN
        INSERT INTO tview.events (payload) VALUES (payload) RETURNING id INTO new_id;
        IF new_id % 1000 = 0 THEN
            keep := tview._cfg_count(cfg, 'log_max', 100000);
            DELETE FROM tview.events WHERE id <= new_id - keep;
        END IF;
    END IF;
END;
$$;
