-- Lineage analysis: which TVIEW keys does a changed row of a relation affect?
--
-- We walk the definition's query tree (020_nodetree.sql) and record
--   * occurrences: every place a base relation is read (helper views and subqueries are
--     walked into, so a table read twice is two occurrences);
--   * edges: "occurrence X is restricted by occurrence Y" when an equality X.a = Y.b sits
--     in X's own query level (WHERE, the ON of a join where X is not the preserved side,
--     or a correlated subquery's WHERE). Then a row of X can only influence output rows
--     whose Y row has Y.b = X.a.
-- Starting from the occurrence the key comes from (the root), every occurrence reachable
-- by edges gets a proved rule and a keys query; anything else makes its relation `full`.
-- Subqueries and views are transparent to an equality on one of their output columns
-- only when that cannot change which of their rows exist (no LIMIT, window function,
-- DISTINCT ON, set operation; grouped only on grouping columns).

-- A node-tree list field as a jsonb array ('<>' and missing fields are empty lists).
CREATE OR REPLACE FUNCTION tview._list(field jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN jsonb_typeof(field) = 'array' THEN field ELSE '[]'::jsonb END $$;

-- True when a node-tree field is empty ('<>') or missing in this server version.
CREATE OR REPLACE FUNCTION tview._absent(field jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT field IS NULL OR jsonb_typeof(field) = 'null' $$;

-- Strip binary-compatible relabelling around an expression.
CREATE OR REPLACE FUNCTION tview._strip(expr jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    WHILE expr ->> '_' = 'RELABELTYPE' LOOP
        expr := expr -> 'arg';
    END LOOP;
    RETURN expr;
END;
$$;

-- Sublinks (subqueries in expressions) of one query level, not descending into them.
CREATE OR REPLACE FUNCTION tview._sublinks(node jsonb) RETURNS SETOF jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s
    FROM (
        SELECT node AS s WHERE jsonb_typeof(node) = 'object' AND node ->> '_' = 'SUBLINK'
        UNION ALL
        SELECT tview._sublinks(v)
        FROM jsonb_each(CASE WHEN jsonb_typeof(node) = 'object' AND node ->> '_' IS DISTINCT FROM 'SUBLINK'
                              THEN node ELSE '{}' END) AS e(k, v)
        WHERE jsonb_typeof(v) IN ('object', 'array')
        UNION ALL
        SELECT tview._sublinks(v)
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(node) = 'array' THEN node ELSE '[]' END) AS a(v)
        WHERE jsonb_typeof(v) IN ('object', 'array')
    ) found
$$;

-- Resolve a Var (relative to the innermost context of `stack`) to [occurrence, attnum] of
-- a base relation, or NULL when it does not name a base column transparently.
CREATE OR REPLACE FUNCTION tview._resolve(var jsonb, stack jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    level int;
    rte   jsonb;
    inner_expr jsonb;
BEGIN
    var := tview._strip(var);
    IF var IS NULL OR var ->> '_' IS DISTINCT FROM 'VAR' THEN
        RETURN NULL;
    END IF;
    level := jsonb_array_length(stack) - 1 - (var ->> 'varlevelsup')::int;
    IF level < 0 THEN
        RETURN NULL;
    END IF;
    rte := stack -> level -> 'rtes' -> ((var ->> 'varno')::int - 1);
    IF rte IS NULL OR (var ->> 'varattno')::int <= 0 THEN
        RETURN NULL;
    END IF;
    CASE rte ->> 'k'
        WHEN 'base' THEN
            RETURN jsonb_build_array(rte -> 'occ', (var ->> 'varattno')::int);
        WHEN 'sub' THEN
            inner_expr := rte -> 'out' -> ((var ->> 'varattno')::int - 1);
            RETURN CASE WHEN jsonb_typeof(inner_expr) = 'array' THEN inner_expr END;
        WHEN 'alias' THEN   -- join alias vars / grouping expressions of that level
            inner_expr := rte -> 'exprs' -> ((var ->> 'varattno')::int - 1);
            IF inner_expr IS NULL OR jsonb_typeof(inner_expr) <> 'object' THEN
                RETURN NULL;
            END IF;
            -- those expressions are relative to the same level: drop deeper contexts
            RETURN tview._resolve(inner_expr, (SELECT jsonb_agg(e ORDER BY i)
                                              FROM jsonb_array_elements(stack) WITH ORDINALITY s(e, i)
                                              WHERE i <= level + 1));
        ELSE
            RETURN NULL;
    END CASE;
END;
$$;

-- Conjuncts of a qual (top-level AND only: an equality under OR proves nothing).
CREATE OR REPLACE FUNCTION tview._conjuncts(qual jsonb) RETURNS SETOF jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT q FROM (SELECT qual AS q) s
    WHERE jsonb_typeof(qual) = 'object'
      AND NOT (qual ->> '_' = 'BOOLEXPR' AND qual ->> 'boolop' = 'and')
    UNION ALL
    SELECT tview._conjuncts(a)
    FROM jsonb_array_elements(CASE WHEN qual ->> '_' = 'BOOLEXPR' AND qual ->> 'boolop' = 'and'
                                   THEN qual -> 'args' ELSE '[]' END) AS t(a)
$$;

-- Record the edges one qual proves. restrictable: rtindexes of this level it restricts.
CREATE OR REPLACE FUNCTION tview._qual_edges(qual jsonb, restrictable int[], stack jsonb, st jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c      jsonb;
    a      jsonb;
    b      jsonb;
    ra     jsonb;
    rb     jsonb;
BEGIN
    IF qual IS NULL OR jsonb_typeof(qual) <> 'object' THEN
        RETURN st;
    END IF;
    FOR c IN SELECT tview._conjuncts(qual) LOOP
        CONTINUE WHEN c ->> '_' <> 'OPEXPR' OR jsonb_array_length(c -> 'args') <> 2;
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_operator o
                                  WHERE o.oid = (c ->> 'opno')::oid AND o.oprname = '=');
        a := tview._strip(c -> 'args' -> 0);
        b := tview._strip(c -> 'args' -> 1);
        ra := tview._resolve(a, stack);
        rb := tview._resolve(b, stack);
        CONTINUE WHEN ra IS NULL OR rb IS NULL;
        IF (a ->> 'varlevelsup')::int = 0 AND (a ->> 'varno')::int = ANY (restrictable) THEN
            st := jsonb_set(st, '{edges}', (st -> 'edges') || jsonb_build_array(ra || rb));
        END IF;
        IF (b ->> 'varlevelsup')::int = 0 AND (b ->> 'varno')::int = ANY (restrictable) THEN
            st := jsonb_set(st, '{edges}', (st -> 'edges') || jsonb_build_array(rb || ra));
        END IF;
    END LOOP;
    RETURN st;
END;
$$;

-- Walk a FROM tree; returns st with the edges of its join quals, and in st->'_rt' the
-- rtindexes it covers.
CREATE OR REPLACE FUNCTION tview._walk_from(node jsonb, stack jsonb, st jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    left_rt  int[];
    right_rt int[];
    all_rt   int[] := '{}';
    item     jsonb;
    jt       int;
BEGIN
    CASE node ->> '_'
        WHEN 'RANGETBLREF' THEN
            RETURN jsonb_set(st, '{_rt}', to_jsonb(ARRAY[(node ->> 'rtindex')::int]));
        WHEN 'JOINEXPR' THEN
            st := tview._walk_from(node -> 'larg', stack, st);
            left_rt := ARRAY(SELECT jsonb_array_elements_text(st -> '_rt')::int);
            st := tview._walk_from(node -> 'rarg', stack, st);
            right_rt := ARRAY(SELECT jsonb_array_elements_text(st -> '_rt')::int);
            jt := (node ->> 'jointype')::int;   -- 0 inner, 1 left, 2 full, 3 right
            st := tview._qual_edges(node -> 'quals',
                                    CASE jt WHEN 1 THEN right_rt WHEN 3 THEN left_rt
                                            ELSE left_rt || right_rt END,
                                    stack, st);
            RETURN jsonb_set(st, '{_rt}', to_jsonb(left_rt || right_rt || (node ->> 'rtindex')::int));
        WHEN 'FROMEXPR' THEN
            FOR item IN SELECT jsonb_array_elements(tview._list(node -> 'fromlist')) LOOP
                st := tview._walk_from(item, stack, st);
                all_rt := all_rt || ARRAY(SELECT jsonb_array_elements_text(st -> '_rt')::int);
            END LOOP;
            st := tview._qual_edges(node -> 'quals', all_rt, stack, st);
            RETURN jsonb_set(st, '{_rt}', to_jsonb(all_rt));
        ELSE
            RETURN jsonb_set(st, '{_rt}', '[]');
    END CASE;
END;
$$;

-- Walk one query level. Adds occurrences and edges to st; st->'out' is this query's output
-- map (per output column: [occurrence, attnum] when transparent, else null).
CREATE OR REPLACE FUNCTION tview._walk_query(q jsonb, outer_stack jsonb, st jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rtes     jsonb := '[]';
    rte      jsonb;
    stack    jsonb;
    sub      jsonb;
    link     jsonb;
    te       jsonb;
    outmap   jsonb := '[]';
    grouping int[];
    occ      int;
    transparent boolean;
BEGIN
    FOR rte IN SELECT e FROM jsonb_array_elements(tview._list(q -> 'rtable')) WITH ORDINALITY s(e, i) ORDER BY i
    LOOP
        stack := outer_stack || jsonb_build_array(jsonb_build_object('rtes', rtes));
        sub := NULL;
        CASE (rte ->> 'rtekind')::int
            WHEN 0 THEN                                   -- relation
                IF NOT coalesce((rte ->> 'inFromCl')::boolean, true) THEN
                    NULL;   -- the *OLD*/*NEW* placeholders of view rules before PostgreSQL 16
                ELSIF rte ->> 'relkind' = 'v' THEN
                    sub := tview._view_query((rte ->> 'relid')::oid);
                ELSE
                    occ := jsonb_array_length(st -> 'occ');
                    st := jsonb_set(st, '{occ}', (st -> 'occ') || jsonb_build_array(
                        jsonb_build_object('relid', (rte ->> 'relid')::oid, 'relkind', rte ->> 'relkind')));
                    rtes := rtes || jsonb_build_array(jsonb_build_object('k', 'base', 'occ', occ));
                    CONTINUE;
                END IF;
            WHEN 1 THEN                                   -- subquery in FROM
                sub := rte -> 'subquery';
            WHEN 2 THEN                                   -- join: its alias vars
                rtes := rtes || jsonb_build_array(jsonb_build_object('k', 'alias', 'exprs', rte -> 'joinaliasvars'));
                CONTINUE;
            WHEN 6 THEN                                   -- CTE of this level, not recursive
                IF (rte ->> 'ctelevelsup')::int = 0 AND NOT coalesce((rte ->> 'self_reference')::boolean, false) THEN
                    SELECT c -> 'ctequery' INTO sub
                    FROM jsonb_array_elements(tview._list(q -> 'cteList')) c
                    WHERE c ->> 'ctename' = rte ->> 'ctename'
                      AND NOT coalesce((c ->> 'cterecursive')::boolean, false);
                END IF;
            WHEN 9 THEN                                   -- grouping RTE (PostgreSQL 18)
                rtes := rtes || jsonb_build_array(jsonb_build_object('k', 'alias', 'exprs', rte -> 'groupexprs'));
                CONTINUE;
            ELSE
                NULL;
        END CASE;
        IF sub IS NOT NULL THEN
            st := tview._walk_query(sub, stack, st);
            rtes := rtes || jsonb_build_array(jsonb_build_object('k', 'sub', 'out', st -> 'out'));
        ELSE
            rtes := rtes || jsonb_build_array(jsonb_build_object('k', 'opaque'));
        END IF;
    END LOOP;

    stack := outer_stack || jsonb_build_array(jsonb_build_object('rtes', rtes));
    st := tview._walk_from(q -> 'jointree', stack, st);

    FOR link IN SELECT tview._sublinks(q - 'rtable' - 'cteList' - 'setOperations') LOOP
        st := tview._walk_query(link -> 'subselect', stack, st);
    END LOOP;

    -- Output map: which output columns are plain base columns an outer equality may use.
    transparent := NOT coalesce((q ->> 'hasWindowFuncs')::boolean, false)
               AND NOT coalesce((q ->> 'hasTargetSRFs')::boolean, false)
               AND NOT coalesce((q ->> 'hasDistinctOn')::boolean, false)
               AND tview._absent(q -> 'limitCount') AND tview._absent(q -> 'limitOffset')
               AND tview._absent(q -> 'setOperations') AND tview._absent(q -> 'groupingSets');
    grouping := ARRAY(SELECT (g ->> 'tleSortGroupRef')::int
                      FROM jsonb_array_elements(tview._list(q -> 'groupClause')) g);
    FOR te IN SELECT e FROM jsonb_array_elements(tview._list(q -> 'targetList')) WITH ORDINALITY s(e, i) ORDER BY i
    LOOP
        CONTINUE WHEN (te ->> 'resjunk')::boolean;
        IF transparent
           AND (cardinality(grouping) = 0 AND NOT coalesce((q ->> 'hasAggs')::boolean, false)
                OR (te ->> 'ressortgroupref')::int = ANY (grouping)) THEN
            outmap := outmap || jsonb_build_array(coalesce(tview._resolve(te -> 'expr', stack), 'null'::jsonb));
        ELSE
            outmap := outmap || jsonb_build_array('null'::jsonb);
        END IF;
    END LOOP;
    RETURN jsonb_set(st, '{out}', outmap);
END;
$$;

-- Analyse a TVIEW definition (its backing view) for the key column.
-- Returns {"occ": [...], "edges": [...], "root": [occ, attnum] | null, "reason": text | null}.
CREATE OR REPLACE FUNCTION tview._analyze(view_oid oid, key_column name) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q      jsonb := tview._view_query(view_oid);
    st     jsonb := '{"occ": [], "edges": []}';
    te     jsonb;
    root   jsonb;
    reason text;
    stack  jsonb;
BEGIN
    st := tview._walk_query(q, '[]', st);
    SELECT e INTO te FROM jsonb_array_elements(q -> 'targetList') e WHERE e ->> 'resname' = key_column LIMIT 1;
    stack := jsonb_build_array(jsonb_build_object('rtes', '[]'));
    IF coalesce((q ->> 'hasWindowFuncs')::boolean, false) THEN
        reason := 'window functions in the top level';
    ELSIF NOT (tview._absent(q -> 'limitCount') AND tview._absent(q -> 'limitOffset')) THEN
        reason := 'LIMIT/OFFSET in the top level';
    ELSIF NOT tview._absent(q -> 'setOperations') THEN
        reason := 'UNION/INTERSECT/EXCEPT in the top level';
    ELSIF coalesce((q ->> 'hasDistinctOn')::boolean, false) THEN
        reason := 'DISTINCT ON in the top level';
    ELSIF jsonb_array_length(tview._list(q -> 'groupClause')) > 0
          AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(q -> 'groupClause') g
                          WHERE (g ->> 'tleSortGroupRef')::int = (te ->> 'ressortgroupref')::int) THEN
        reason := format('the key %s is not a GROUP BY column', key_column);
    ELSE
        -- resolve the key through the top level's own output map
        root := st -> 'out' -> (
            SELECT count(*)::int FROM jsonb_array_elements(q -> 'targetList') e
            WHERE (e ->> 'resno')::int < (te ->> 'resno')::int AND NOT (e ->> 'resjunk')::boolean);
        IF root IS NULL OR jsonb_typeof(root) <> 'array' THEN
            root := NULL;
            reason := format('the key %s is not a plain column of a table', key_column);
        END IF;
    END IF;
    RETURN st - '_rt' || jsonb_build_object('root', root, 'reason', reason);
END;
$$;

-- What a view's query tree refers to, its own and that of every view it reads, as
-- (field, value): relations read ('relid', oid), functions called ('funcid', 'opfuncid',
-- 'aggfnoid', 'winfnoid': oid), SQL value functions ('SQLVALUEFUNCTION': op number) and
-- the clauses 'TABLESAMPLECLAUSE' and 'ROWMARKCLAUSE' (FOR UPDATE/SHARE), value 0, and
-- system columns read ('SYSCOLUMN': the attribute number, negative).
-- Read from the tree text because pinned system objects (pg_class, random()) have no
-- pg_depend rows.
CREATE OR REPLACE FUNCTION tview._tree_references(view_oid oid) RETURNS TABLE (field text, value bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT DISTINCT coalesce(m[1], m[3], m[5], CASE WHEN m[6] IS NOT NULL THEN 'SYSCOLUMN' END),
                    coalesce(m[2], m[4], m[6], '0')::bigint
    FROM tview._views_read(view_oid) v
    JOIN pg_rewrite r ON r.ev_class = v
    CROSS JOIN LATERAL regexp_matches(r.ev_action::text,
        ':(relid|funcid|opfuncid|aggfnoid|winfnoid) (\d+)|\{(SQLVALUEFUNCTION) :op (\d+)|\{(TABLESAMPLECLAUSE|ROWMARKCLAUSE)\M'
        '|\{VAR :varno \d+ :varattno (-\d+)',
        'g') m
$$;
