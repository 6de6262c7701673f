-- From the analysis (030_lineage.sql) to rules and keys queries, per relation read.

CREATE OR REPLACE FUNCTION tview._qname(relid oid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('%I.%I', n.nspname, c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = relid
$$;

-- Text for a format() template: every % doubled, so a name or literal holding one (a
-- column "a%b") comes out of format() as it went in. Keys queries and refresh statements are
-- templates (format(key_sql, relation)), so every name put in them goes through this.
CREATE OR REPLACE FUNCTION tview._pct(text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$ SELECT replace($1, '%', '%%') $$;

-- Generated code from a template with named parts: each {name} (lower-case letters, digits
-- and _) is replaced by parts ->> name, in one pass, so a part's own text (names, literals,
-- other code) is never scanned for more. A part that is JSON null is empty text; a name
-- parts does not have is an error.
CREATE OR REPLACE FUNCTION tview._fill(template text, parts jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pieces text[] := regexp_split_to_array(template, '\{[a-z_][a-z0-9_]*\}');
    names  text[] := ARRAY(SELECT m.m[1] FROM regexp_matches(template, '\{([a-z_][a-z0-9_]*)\}', 'g') WITH ORDINALITY m(m, i)
                           ORDER BY m.i);
    filled text := pieces[1];
BEGIN
    FOR i IN 1 .. cardinality(names) LOOP
        IF NOT parts ? names[i] THEN
            RAISE EXCEPTION 'template part {%} is not given', names[i]
                USING ERRCODE = 'internal_error', HINT = 'A bug in the engine: report it with the statement that failed.';
        END IF;
        filled := filled || coalesce(parts ->> names[i], '') || pieces[i + 1];
    END LOOP;
    RETURN filled;
END;
$$;

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

-- A type as SQL, schema-qualified and without a type modifier (pg_catalog.bpchar, not
-- character: that would be char(1)).
CREATE OR REPLACE FUNCTION tview._type_sql(typid oid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('%I.%I', n.nspname, t.typname)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = typid
$$;

-- A constant as SQL: text, integers and booleans, and NULL of any type;
-- NULL for any other constant. Byte-valued datums are read little-endian.
CREATE OR REPLACE FUNCTION tview._const_sql(node jsonb) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    typid oid := (node ->> 'consttype')::oid;
    len   int := (node ->> 'constlen')::int;
    value numeric := 0;
    lit   text;
BEGIN
    IF (node ->> 'constisnull')::boolean THEN
        lit := 'NULL';
    ELSIF typid IN (25, 1043) THEN
        lit := quote_literal(tview._const_text(node));
    ELSIF typid IN (16, 20, 21, 23) AND (node ->> 'constbyval')::boolean AND len IN (1, 2, 4, 8) THEN
        SELECT sum((b::int & 255) * 256::numeric ^ (i - 1)) INTO value
        FROM unnest(string_to_array(btrim(regexp_replace(node ->> 'datum', '\s+', ' ', 'g')), ' '))
             WITH ORDINALITY u(b, i)
        WHERE i <= len;
        IF value >= 2::numeric ^ (8 * len - 1) THEN
            value := value - 2::numeric ^ (8 * len);
        END IF;
        lit := CASE WHEN typid = 16 THEN (value <> 0)::text ELSE trunc(value)::text END;
    END IF;
    RETURN format('(%s)::%s', lit, tview._type_sql(typid));
END;
$$;

-- An operator as SQL: OPERATOR(schema.name).
CREATE OR REPLACE FUNCTION tview._op_sql(opno oid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT format('OPERATOR(%I.%s)', n.nspname, o.oprname)
    FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE o.oid = opno
$$;

CREATE OR REPLACE FUNCTION tview._colname(relid oid, attnum int) RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT attname FROM pg_attribute WHERE attrelid = relid AND attnum = _colname.attnum AND NOT attisdropped
$$;

-- The attnums one end of an edge reads (an attnum, or an expression's).
CREATE OR REPLACE FUNCTION tview._side_atts(side jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN jsonb_typeof(side) = 'number' THEN jsonb_build_array(side) ELSE side -> 'atts' END $$;

-- A column as a template over a row alias (%1$s), escaped for format().
CREATE OR REPLACE FUNCTION tview._column_template(col name) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '%1$s.' || tview._pct(quote_ident(col)) $$;

-- One end of an edge (or a TVIEW's key) as a template over a row alias (%1$s), escaped for
-- format(): the column, or the expression.
CREATE OR REPLACE FUNCTION tview._side_template(side jsonb, relid oid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN jsonb_typeof(side) = 'number' THEN tview._column_template(tview._colname(relid, side::int))
                ELSE side ->> 'sql' END
$$;

-- One end of an edge over the row alias, as SQL: the column, or the expression.
CREATE OR REPLACE FUNCTION tview._side_sql(side jsonb, relid oid, alias text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT format(tview._side_template(side, relid), alias) $$;

-- The join condition of one hop of a keys query, escaped for format(): the edge's equality
-- with its end x over x_alias (a row of x_rel) and its end y over y_alias. Between plain
-- columns `y.col = x.col`; else the definition's own operator, its arguments cast to the types
-- they had there (`= ANY (array)` kept as such: a join on it unnests).
CREATE OR REPLACE FUNCTION tview._hop_cond(hop jsonb, x_rel oid, x_alias text, y_rel oid, y_alias text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    op    jsonb := hop -> 4;
    x_sql text := tview._side_sql(hop -> 1, x_rel, x_alias);
    y_sql text := tview._side_sql(hop -> 3, y_rel, y_alias);
BEGIN
    IF op IS NULL THEN
        RETURN tview._pct(y_sql) || tview._eq_sql(y_rel, (hop ->> 3)::int, x_rel, (hop ->> 1)::int) || tview._pct(x_sql);
    END IF;
    RETURN tview._pct(format(CASE WHEN (op ->> 'any')::boolean THEN '(%s)::%s %s ANY ((%s)::%s)' ELSE '(%s)::%s %s (%s)::%s' END,
                             CASE op ->> 'left' WHEN 'x' THEN x_sql ELSE y_sql END,
                             tview._type_sql((op -> 'types' ->> 0)::oid),
                             tview._op_sql((op ->> 'opno')::oid),
                             CASE op ->> 'left' WHEN 'x' THEN y_sql ELSE x_sql END,
                             tview._type_sql((op -> 'types' ->> 1)::oid)));
END;
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

-- The names of the WITH queries some range table entry of a tree reads, at any level.
CREATE OR REPLACE FUNCTION tview._ctes_named(tree jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(DISTINCT n), '[]')
    FROM jsonb_path_query(tree, 'lax $.** ? (@._ == "RANGETBLENTRY" && @.rtekind == 6).ctename') n
$$;


-- The relations a view reads (q: its query tree), through views, leaving out the WITH queries
-- no part of a tree names (PostgreSQL never runs those). A WITH query is counted as read when
-- any range table entry of the tree names it, at any level.
CREATE OR REPLACE FUNCTION tview._read_relids(view_oid oid, q jsonb) RETURNS SETOF oid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- a walk of the trees, each view once (before PostgreSQL 16 a view's tree names the view
    -- itself, as its OLD and NEW entries)
    WITH RECURSIVE walk(node, ctes, seen) AS (
        SELECT q, tview._ctes_named(q), ARRAY[view_oid]
        UNION ALL
        SELECT c.node, c.ctes, c.seen
        FROM walk w, LATERAL (
            SELECT v, w.ctes, w.seen FROM jsonb_array_elements(CASE WHEN jsonb_typeof(w.node) = 'array' THEN w.node END) v
            WHERE jsonb_typeof(v) IN ('object', 'array')
            UNION ALL
            SELECT v, w.ctes, w.seen FROM jsonb_each(CASE WHEN jsonb_typeof(w.node) = 'object' THEN w.node END) e(k, v)
            WHERE jsonb_typeof(v) IN ('object', 'array') AND k <> 'cteList'
            UNION ALL
            SELECT q -> 'ctequery', w.ctes, w.seen
            FROM jsonb_array_elements(CASE WHEN jsonb_typeof(w.node) = 'object' THEN tview._list(w.node -> 'cteList') END) q
            WHERE w.ctes ? (q ->> 'ctename')
            UNION ALL
            SELECT v.q, tview._ctes_named(v.q), w.seen || v.relid
            FROM (SELECT (w.node ->> 'relid')::oid AS relid, tview._view_query((w.node ->> 'relid')::oid) AS q
                  WHERE jsonb_typeof(w.node) = 'object' AND w.node ->> '_' = 'RANGETBLENTRY'
                    AND w.node ->> 'relkind' = 'v' AND (w.node ->> 'relid')::oid <> ALL (w.seen)) v
        ) c(node, ctes, seen))
    SELECT (node ->> 'relid')::oid FROM walk
    WHERE jsonb_typeof(node) = 'object' AND jsonb_typeof(node -> 'relid') = 'number'
$$;

-- The rules: one row per relation read, with its lineage and keys query (q: the view's query
-- tree, analysis: tview._analyze's). A keys query selects TVIEW keys from %1$s, the changed
-- rows of that relation. A role whose keys query looks rows up by an expression of their
-- columns names those in "lookups" ({"relid", "expr": template over %1$s}), for health()'s
-- unindexed check.
CREATE OR REPLACE FUNCTION tview._lineage_rules(view_oid oid, q jsonb, analysis jsonb)
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
    root_side jsonb;
    lookups  jsonb;
    occ_rel  oid[];
    occ      int;
    hops     jsonb;
    hop      jsonb;
    n        int;
    i        int;
    prev     text;
    sql      text;
    rule     text;
    rel      record;
    occ_sqls text[];
    occ_rules text[];
    occ_roles jsonb;
    unproven boolean;
    is_tview boolean;
    unread   oid[] := ARRAY(SELECT DISTINCT tview._read_relids(view_oid, q));
BEGIN
    occ_rel := ARRAY(SELECT (o ->> 'relid')::oid FROM jsonb_array_elements(analysis -> 'occ') o);
    IF root IS NOT NULL AND jsonb_typeof(root) = 'array' THEN
        root_occ := (root ->> 0)::int;
        root_side := root -> 1;
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
        IF unproven AND rel.relid <> ALL (unread) THEN
            -- read in WITH queries nothing reads only, never run: no change of it changes T
            source_oid := rel.relid;
            lineage := 'none';
            key_sql := 'SELECT NULL::bigint FROM %1$s x WHERE false';
            roles := jsonb_build_array(jsonb_build_object('rule', 'none', 'reason', 'read only in a WITH query nothing reads'));
            RETURN NEXT;
            CONTINUE;
        END IF;
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
            lookups := '[]';
            IF n = 0 THEN
                -- changed rows of a TVIEW come without their data: a key computed from it is unknown
                IF is_tview AND EXISTS (SELECT 1 FROM jsonb_array_elements(tview._side_atts(root_side)) a
                                        WHERE tview._colname(rel.relid, a::int) = 'data') THEN
                    unproven := true;
                    occ_roles := occ_roles || jsonb_build_object('rule', 'full', 'reason', 'the key is computed from data');
                    CONTINUE;
                END IF;
                rule := 'root';
                sql := 'SELECT ' || tview._pct(tview._side_sql(root_side, rel.relid, 'x')) || ' FROM %1$s x';
            ELSE
                -- the changed rows' columns used by the first hop must be in the row image
                IF is_tview AND EXISTS (SELECT 1 FROM jsonb_array_elements(tview._side_atts(hops -> 0 -> 1)) a
                                        WHERE tview._colname(rel.relid, a::int) = 'data') THEN
                    unproven := true;
                    occ_roles := occ_roles || jsonb_build_object('rule', 'full', 'reason', 'linked through data');
                    CONTINUE;
                END IF;
                sql := 'FROM %1$s x';
                prev := 'x';
                FOR i IN 0 .. n - 2 LOOP
                    hop := hops -> i;
                    sql := sql || format(' JOIN %s j%s ON ', tview._pct(tview._qname(occ_rel[(hop ->> 2)::int + 1])), i)
                        || tview._hop_cond(hop, occ_rel[(hop ->> 0)::int + 1], prev, occ_rel[(hop ->> 2)::int + 1], 'j' || i);
                    prev := 'j' || i;
                END LOOP;
                -- each hop looks up rows of its relation y by its end there (the root's too, unless the
                -- last hop's column is the key itself)
                lookups := coalesce((SELECT jsonb_agg(jsonb_build_object('relid', occ_rel[(h ->> 2)::int + 1], 'expr', h -> 3 -> 'sql'))
                                     FROM jsonb_array_elements(hops) h WHERE jsonb_typeof(h -> 3) = 'object'), '[]');
                hop := hops -> (n - 1);
                IF jsonb_array_length(hop) = 4 AND hop -> 3 = root_side THEN
                    -- a plain column equal to the key: its values are the keys
                    sql := format('SELECT %s.%s ', prev,
                                  tview._pct(quote_ident(tview._colname(occ_rel[(hop ->> 0)::int + 1], (hop ->> 1)::int)))) || sql;
                    rule := CASE WHEN n = 1 THEN 'child' ELSE 'path' END;
                ELSE
                    -- the root's own table, not the TVIEW's copy of the column: a root row that
                    -- the definition dropped (e.g. an inner join without a match) has no TVIEW row
                    sql := 'SELECT ' || tview._pct(tview._side_sql(root_side, occ_rel[root_occ + 1], 'r')) || ' ' || sql
                        || format(' JOIN %s r ON ', tview._pct(tview._qname(occ_rel[root_occ + 1])))
                        || tview._hop_cond(hop, occ_rel[(hop ->> 0)::int + 1], prev, occ_rel[root_occ + 1], 'r');
                    rule := CASE WHEN n = 1 THEN 'fk' ELSE 'path' END;
                END IF;
            END IF;
            occ_sqls := occ_sqls || sql;
            occ_rules := occ_rules || rule;
            occ_roles := occ_roles || (jsonb_build_object('rule', rule, 'keys_sql', sql)
                                       || CASE WHEN lookups <> '[]' THEN jsonb_build_object('lookups', lookups) ELSE '{}' END);
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
