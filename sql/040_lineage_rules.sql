-- From the analysis (030_lineage.sql) to rules and keys queries, per relation read.

CREATE OR REPLACE FUNCTION tview._qname(relid oid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('%I.%I', n.nspname, c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = relid
$$;

-- A TVIEW's name as the server spells it: schema.tv_<name>, quoted where needed.
CREATE OR REPLACE FUNCTION tview._label(schema_name name, name name) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT format('%I.%I', schema_name, 'tv_' || name) $$;

-- Text for a format() template: every % doubled, so a name or literal holding one (a
-- column "a%b") comes out of format() as it went in. Keys queries and refresh statements are
-- templates (format(key_sql, relation)), so every name put in them goes through this.
CREATE OR REPLACE FUNCTION tview._pct(text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT replace($1, '%', '%%') $$;

-- The equality between two columns, for a keys query's join: ' = ' when pg_catalog has
-- one for their types; else the types' own '=' (an extension's, e.g. ltree), schema-qualified
-- (generated SQL runs with search_path = pg_catalog, pg_temp). Escaped for format().
CREATE OR REPLACE FUNCTION tview._eq_sql(left_rel oid, left_att int, right_rel oid, right_att int) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT CASE WHEN o.oprnamespace = 'pg_catalog'::regnamespace THEN ' = '
                                 ELSE tview._pct(format(' OPERATOR(%I.=) ', n.nspname)) END
                     FROM pg_attribute l, pg_attribute r, pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace
                     WHERE l.attrelid = left_rel AND l.attnum = left_att AND r.attrelid = right_rel AND r.attnum = right_att
                       AND o.oprname = '=' AND o.oprleft = l.atttypid AND o.oprright = r.atttypid
                     ORDER BY o.oprnamespace <> 'pg_catalog'::regnamespace, o.oid LIMIT 1), ' = ')
$$;

CREATE OR REPLACE FUNCTION tview._colname(relid oid, attnum int) RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT attname FROM pg_attribute WHERE attrelid = relid AND attnum = _colname.attnum AND NOT attisdropped
$$;

-- The relation a TVIEW's key comes from, per its analysis (NULL: not provable).
CREATE OR REPLACE FUNCTION tview._root_relid(analysis jsonb) RETURNS oid
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT (analysis -> 'occ' -> (analysis -> 'root' ->> 0)::int ->> 'relid')::oid $$;

-- Every relation the view reads, through helper views, from PostgreSQL's dependency
-- catalog (so nothing the tree walk could miss escapes: it is then lineage `full`).
CREATE OR REPLACE FUNCTION tview._base_relations(view_oid oid) RETURNS TABLE (relid oid, relkind "char")
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE reads(relid, relkind) AS (
        SELECT DISTINCT d.refobjid, c.relkind
        FROM pg_rewrite r
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> view_oid
        JOIN pg_class c ON c.oid = d.refobjid
        WHERE r.ev_class = view_oid
        UNION
        SELECT d.refobjid, c.relkind
        FROM reads
        JOIN pg_rewrite r ON r.ev_class = reads.relid AND reads.relkind = 'v'
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> reads.relid
        JOIN pg_class c ON c.oid = d.refobjid
    )
    SELECT relid, relkind FROM reads WHERE relkind <> 'v'
$$;

-- The rules: one row per relation read, with its lineage and keys query.
-- A keys query selects TVIEW keys from %1$s, the changed rows of that relation.
CREATE OR REPLACE FUNCTION tview._lineage_rules(view_oid oid, analysis jsonb)
RETURNS TABLE (source_oid oid, lineage text, key_sql text, roles jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    paths    jsonb := '{}';
    grew     boolean := true;
    e        jsonb;
    root     jsonb := analysis -> 'root';
    root_occ int;
    root_att int;
    occ_rel  oid[];
    occ      int;
    hops     jsonb;
    hop      jsonb;
    n        int;
    i        int;
    prev     text;
    sql      text;
    rule     text;
    last_att int;
    rel      record;
    occ_sqls text[];
    occ_rules text[];
    occ_roles jsonb;
    unproven boolean;
    is_tview boolean;
BEGIN
    occ_rel := ARRAY(SELECT (o ->> 'relid')::oid FROM jsonb_array_elements(analysis -> 'occ') o);
    IF root IS NOT NULL AND jsonb_typeof(root) = 'array' THEN
        root_occ := (root ->> 0)::int;
        root_att := (root ->> 1)::int;
        paths := jsonb_build_object(root_occ::text, '[]'::jsonb);
        -- breadth first: an occurrence restricted by a proved one is proved, one hop longer
        WHILE grew LOOP
            grew := false;
            FOR e IN SELECT x FROM jsonb_array_elements(analysis -> 'edges') x LOOP
                IF paths ? (e ->> 2) AND NOT paths ? (e ->> 0) THEN
                    paths := paths || jsonb_build_object(e ->> 0, jsonb_build_array(e) || (paths -> (e ->> 2)));
                    grew := true;
                END IF;
            END LOOP;
        END LOOP;
    END IF;

    FOR rel IN SELECT b.relid, b.relkind FROM tview._base_relations(view_oid) b ORDER BY b.relid LOOP
        occ_sqls := '{}';
        occ_rules := '{}';
        occ_roles := '[]';
        unproven := NOT (rel.relid = ANY (occ_rel));   -- read somewhere the walk did not reach
        is_tview := EXISTS (SELECT 1 FROM tview.tviews t WHERE t.table_oid = rel.relid);
        FOR occ IN SELECT o - 1 FROM generate_subscripts(occ_rel, 1) o WHERE occ_rel[o] = rel.relid LOOP
            IF NOT paths ? occ::text THEN
                unproven := true;
                occ_roles := occ_roles || jsonb_build_object('rule', 'full', 'reason',
                    coalesce(analysis ->> 'reason', 'no equality links this read to the key'));
                CONTINUE;
            END IF;
            hops := paths -> occ::text;
            n := jsonb_array_length(hops);
            IF n = 0 THEN
                rule := 'root';
                sql := format('SELECT x.%s FROM %%1$s x', tview._pct(quote_ident(tview._colname(rel.relid, root_att))));
            ELSE
                -- the changed rows' column used by the first hop must be in the row image
                IF is_tview AND tview._colname(rel.relid, (hops -> 0 ->> 1)::int) = 'data' THEN
                    unproven := true;
                    occ_roles := occ_roles || jsonb_build_object('rule', 'full', 'reason', 'linked through data');
                    CONTINUE;
                END IF;
                sql := 'FROM %1$s x';
                prev := 'x';
                FOR i IN 0 .. n - 2 LOOP
                    hop := hops -> i;
                    sql := sql || format(' JOIN %s j%s ON j%s.%s%s%s.%s',
                        tview._pct(tview._qname(occ_rel[(hop ->> 2)::int + 1])), i, i,
                        tview._pct(quote_ident(tview._colname(occ_rel[(hop ->> 2)::int + 1], (hop ->> 3)::int))),
                        tview._eq_sql(occ_rel[(hop ->> 2)::int + 1], (hop ->> 3)::int,
                                      occ_rel[(hop ->> 0)::int + 1], (hop ->> 1)::int),
                        prev, tview._pct(quote_ident(tview._colname(occ_rel[(hop ->> 0)::int + 1], (hop ->> 1)::int))));
                    prev := 'j' || i;
                END LOOP;
                hop := hops -> (n - 1);
                last_att := (hop ->> 3)::int;
                IF last_att = root_att THEN
                    sql := format('SELECT %s.%s ', prev,
                                  tview._pct(quote_ident(tview._colname(occ_rel[(hop ->> 0)::int + 1], (hop ->> 1)::int)))) || sql;
                    rule := CASE WHEN n = 1 THEN 'child' ELSE 'path' END;
                ELSE
                    -- the root's own table, not the TVIEW's copy of the column: a root row that
                    -- the definition dropped (e.g. an inner join without a match) has no TVIEW row
                    sql := format('SELECT r.%s ', tview._pct(quote_ident(tview._colname(occ_rel[root_occ + 1], root_att)))) || sql
                        || format(' JOIN %s r ON r.%s%s%s.%s', tview._pct(tview._qname(occ_rel[root_occ + 1])),
                                  tview._pct(quote_ident(tview._colname(occ_rel[root_occ + 1], last_att))),
                                  tview._eq_sql(occ_rel[root_occ + 1], last_att,
                                                occ_rel[(hop ->> 0)::int + 1], (hop ->> 1)::int), prev,
                                  tview._pct(quote_ident(tview._colname(occ_rel[(hop ->> 0)::int + 1], (hop ->> 1)::int))));
                    rule := CASE WHEN n = 1 THEN 'fk' ELSE 'path' END;
                END IF;
            END IF;
            occ_sqls := occ_sqls || sql;
            occ_rules := occ_rules || rule;
            occ_roles := occ_roles || jsonb_build_object('rule', rule, 'keys_sql', sql);
        END LOOP;
        source_oid := rel.relid;
        roles := occ_roles;
        IF unproven THEN
            lineage := 'full';
            key_sql := NULL;
        ELSE
            lineage := array_to_string(ARRAY(SELECT DISTINCT r FROM unnest(occ_rules) r ORDER BY 1), '+');
            key_sql := array_to_string(ARRAY(SELECT DISTINCT s FROM unnest(occ_sqls) s ORDER BY 1), ' UNION ALL ');
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
