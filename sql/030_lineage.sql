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

-- The type of an expression node _expr_side can write (NULL for any other node).
CREATE OR REPLACE FUNCTION tview._expr_type(expr jsonb) RETURNS oid
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (expr ->> CASE expr ->> '_' WHEN 'VAR' THEN 'vartype' WHEN 'CONST' THEN 'consttype'
                                       WHEN 'FUNCEXPR' THEN 'funcresulttype' WHEN 'OPEXPR' THEN 'opresulttype'
                                       WHEN 'COALESCEEXPR' THEN 'coalescetype' WHEN 'PARAM' THEN 'paramtype'
                                       WHEN 'RELABELTYPE' THEN 'resulttype' WHEN 'COERCEVIAIO' THEN 'resulttype' END)::oid
$$;

-- A Var naming an expression of a join alias or of GROUP BY (PostgreSQL 18 groups through a
-- range table entry of its own) as that expression (_expr_side), its Vars relative to the Var's
-- own level; NULL for anything else.
CREATE OR REPLACE FUNCTION tview._alias_expr_side(var jsonb, stack jsonb, occs jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    up    int := (var ->> 'varlevelsup')::int;
    level int := jsonb_array_length(stack) - 1 - up;
    rte   jsonb := stack -> level -> 'rtes' -> ((var ->> 'varno')::int - 1);
    side  jsonb;
BEGIN
    IF level < 0 OR rte ->> 'k' IS DISTINCT FROM 'alias' OR (var ->> 'varattno')::int <= 0 THEN
        RETURN NULL;
    END IF;
    side := tview._expr_side(rte -> 'exprs' -> ((var ->> 'varattno')::int - 1),
                             (SELECT jsonb_agg(e ORDER BY i) FROM jsonb_array_elements(stack) WITH ORDINALITY s(e, i)
                              WHERE i <= level + 1),
                             occs);
    RETURN side || jsonb_build_object('vars', (SELECT coalesce(jsonb_agg(jsonb_build_array((v ->> 0)::int + up, v -> 1)), '[]')
                                               FROM jsonb_array_elements(side -> 'vars') v));
END;
$$;

-- An expression over the columns of one relation read (one occurrence), written as SQL over
-- any row alias: {"occ": n, "atts": [attnums read], "vars": [[varlevelsup, varno], ...],
-- "sql": template with %1$s for the alias}. Only what evaluates the same anywhere: columns,
-- constants, immutable functions and operators (each argument cast to the declared type, so
-- the qualified name resolves to the same function), casts (binary or through immutable text
-- I/O) and COALESCE. NULL for anything else, or for columns of two relations.
CREATE OR REPLACE FUNCTION tview._expr_side(expr jsonb, stack jsonb, occs jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kind   text := expr ->> '_';
    args   jsonb;
    casts  oid[];
    head   text;
    sep    text := ', ';
    tail   text := ')';
    part   jsonb;
    parts  text[] := '{}';
    res    jsonb := jsonb_build_object('occ', null, 'atts', '[]'::jsonb, 'vars', '[]'::jsonb);
    found  jsonb;
    i      int;
BEGIN
    CASE kind
        WHEN 'VAR' THEN
            found := tview._resolve(expr, stack);
            IF found IS NOT NULL THEN
                RETURN jsonb_build_object(
                    'occ', found -> 0, 'atts', jsonb_build_array(found -> 1),
                    'vars', jsonb_build_array(jsonb_build_array((expr ->> 'varlevelsup')::int, (expr ->> 'varno')::int)),
                    'sql', tview._column_template(tview._colname((occs -> (found ->> 0)::int ->> 'relid')::oid,
                                                                 (found ->> 1)::int)));
            END IF;
            RETURN tview._alias_expr_side(expr, stack, occs);
        WHEN 'CONST' THEN
            RETURN res || jsonb_build_object('sql', tview._pct(tview._const_sql(expr)));   -- NULL: not writable
        WHEN 'RELABELTYPE', 'COERCEVIAIO' THEN
            IF kind = 'COERCEVIAIO' AND EXISTS (   -- text I/O of a type may read the session (DateStyle)
                   SELECT 1 FROM pg_proc p
                   WHERE p.provolatile <> 'i'
                     AND p.oid IN ((SELECT t.typinput FROM pg_type t WHERE t.oid = (expr ->> 'resulttype')::oid),
                                   (SELECT t.typoutput FROM pg_type t WHERE t.oid = tview._expr_type(expr -> 'arg'))))
               OR tview._expr_type(expr -> 'arg') IS NULL THEN
                RETURN NULL;
            END IF;
            args := jsonb_build_array(expr -> 'arg');
            casts := ARRAY[NULL::oid];
            head := '(';
            tail := ')::' || tview._pct(tview._type_sql((expr ->> 'resulttype')::oid));
        WHEN 'FUNCEXPR' THEN
            SELECT tview._pct(format('%I.%I(', n.nspname, p.proname)), p.proargtypes::oid[] INTO head, casts
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE p.oid = (expr ->> 'funcid')::oid AND p.prokind = 'f' AND p.provolatile = 'i' AND NOT p.proretset
              AND p.provariadic = 0 AND p.pronargs = jsonb_array_length(tview._list(expr -> 'args'))
              AND NOT EXISTS (SELECT 1 FROM unnest(p.proargtypes::oid[]) a JOIN pg_type t ON t.oid = a WHERE t.typtype = 'p');
            args := expr -> 'args';
        WHEN 'OPEXPR' THEN
            SELECT '(' || CASE WHEN o.oprkind = 'l' THEN tview._pct(tview._op_sql(o.oid)) || ' ' ELSE '' END,
                   CASE WHEN o.oprkind = 'b' THEN ARRAY[o.oprleft, o.oprright] ELSE ARRAY[o.oprright] END,
                   ' ' || tview._pct(tview._op_sql(o.oid)) || ' '
            INTO head, casts, sep
            FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
            WHERE o.oid = (expr ->> 'opno')::oid AND o.oprkind IN ('b', 'l') AND p.provolatile = 'i'
              AND NOT EXISTS (SELECT 1 FROM pg_type t WHERE t.oid IN (o.oprleft, o.oprright) AND t.typtype = 'p')
              AND jsonb_array_length(tview._list(expr -> 'args')) = CASE o.oprkind WHEN 'b' THEN 2 ELSE 1 END;
            args := expr -> 'args';
        WHEN 'COALESCEEXPR' THEN
            args := expr -> 'args';
            casts := array_fill((expr ->> 'coalescetype')::oid, ARRAY[jsonb_array_length(args)]);
            head := 'COALESCE(';
        ELSE
            RETURN NULL;
    END CASE;
    IF head IS NULL THEN
        RETURN NULL;
    END IF;
    FOR i IN 0 .. jsonb_array_length(args) - 1 LOOP
        part := tview._expr_side(args -> i, stack, occs);
        IF part IS NULL OR part ->> 'sql' IS NULL
           OR res ->> 'occ' IS NOT NULL AND part ->> 'occ' IS NOT NULL AND res -> 'occ' <> part -> 'occ' THEN
            RETURN NULL;
        END IF;
        res := jsonb_build_object('occ', CASE WHEN res ->> 'occ' IS NULL THEN part -> 'occ' ELSE res -> 'occ' END,
                                  'atts', (res -> 'atts') || (part -> 'atts'),
                                  'vars', (res -> 'vars') || (part -> 'vars'));
        parts := parts || CASE WHEN casts[i + 1] IS NULL THEN part ->> 'sql'
                               ELSE '(' || (part ->> 'sql') || ')::' || tview._pct(tview._type_sql(casts[i + 1])) END;
    END LOOP;
    RETURN res || jsonb_build_object('sql', head || array_to_string(parts, sep) || tail);
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

-- One side of an equality as an edge end: {"occ": n, "side": attnum (a plain column) or an
-- expression of one relation read (_expr_side: {"sql", "atts"}), "here": true when it is of
-- this level and in restrictable}; NULL when it is neither.
CREATE OR REPLACE FUNCTION tview._edge_end(expr jsonb, restrictable int[], stack jsonb, st jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    plain jsonb := tview._strip(expr);
    found jsonb := tview._resolve(plain, stack);
    side  jsonb;
BEGIN
    IF found IS NOT NULL THEN
        RETURN jsonb_build_object('occ', found -> 0, 'side', found -> 1,
                                  'here', (plain ->> 'varlevelsup')::int = 0 AND (plain ->> 'varno')::int = ANY (restrictable));
    END IF;
    side := tview._expr_side(expr, stack, st -> 'occ');
    IF side IS NULL OR side ->> 'occ' IS NULL OR side ->> 'sql' IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN jsonb_build_object('occ', side -> 'occ', 'side', jsonb_build_object('sql', side -> 'sql', 'atts', side -> 'atts'),
                              'here', NOT EXISTS (SELECT 1 FROM jsonb_array_elements(side -> 'vars') v
                                                  WHERE (v ->> 0)::int <> 0 OR (v ->> 1)::int <> ALL (restrictable)));
END;
$$;

-- Add the edges an equality `a op b` (op(a, ANY(b)) when any) proves to st: each end of this
-- level and restrictable is restricted by the other. Between two plain columns with `=` an
-- edge is [occ, attnum, occ, attnum]; otherwise it carries the operator, its argument types
-- and which end is its left argument, and the keys query applies that very operator.
CREATE OR REPLACE FUNCTION tview._add_edges(a jsonb, b jsonb, opno oid, arg_types oid[], any_array boolean, st jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    plain boolean := NOT any_array AND jsonb_typeof(a -> 'side') = 'number' AND jsonb_typeof(b -> 'side') = 'number';
    op    jsonb := jsonb_build_object('opno', opno, 'types', to_jsonb(arg_types), 'any', any_array);
BEGIN
    IF a IS NULL OR b IS NULL OR NOT plain AND array_position(arg_types, NULL) IS NOT NULL OR NOT EXISTS (SELECT 1 FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
                                             WHERE o.oid = opno AND o.oprname = '='
                                               AND (plain OR p.provolatile = 'i')) THEN
        RETURN st;
    END IF;
    IF (a ->> 'here')::boolean THEN
        st := jsonb_set(st, '{edges}', (st -> 'edges') || jsonb_build_array(
            jsonb_build_array(a -> 'occ', a -> 'side', b -> 'occ', b -> 'side')
            || CASE WHEN plain THEN '[]' ELSE jsonb_build_array(op || '{"left": "x"}') END));
    END IF;
    IF (b ->> 'here')::boolean THEN
        st := jsonb_set(st, '{edges}', (st -> 'edges') || jsonb_build_array(
            jsonb_build_array(b -> 'occ', b -> 'side', a -> 'occ', a -> 'side')
            || CASE WHEN plain THEN '[]' ELSE jsonb_build_array(op || '{"left": "y"}') END));
    END IF;
    RETURN st;
END;
$$;

-- Record the edges one qual proves. restrictable: rtindexes of this level it restricts.
-- Equalities `a = b` and `a = ANY(b)` (b an array) of its top-level conjuncts count.
CREATE OR REPLACE FUNCTION tview._qual_edges(qual jsonb, restrictable int[], stack jsonb, st jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c jsonb;
BEGIN
    IF qual IS NULL OR jsonb_typeof(qual) <> 'object' THEN
        RETURN st;
    END IF;
    FOR c IN SELECT tview._conjuncts(qual) LOOP
        CONTINUE WHEN c ->> '_' NOT IN ('OPEXPR', 'SCALARARRAYOPEXPR') OR jsonb_array_length(c -> 'args') <> 2
                      OR c ->> '_' = 'SCALARARRAYOPEXPR' AND NOT (c ->> 'useOr')::boolean;
        st := tview._add_edges(tview._edge_end(c -> 'args' -> 0, restrictable, stack, st),
                               tview._edge_end(c -> 'args' -> 1, restrictable, stack, st),
                               (c ->> 'opno')::oid,
                               ARRAY[tview._expr_type(c -> 'args' -> 0), tview._expr_type(c -> 'args' -> 1)],
                               c ->> '_' = 'SCALARARRAYOPEXPR', st);
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
-- map (per output column: [occurrence, attnum] when transparent, else null); at the top level,
-- st->'rtes' its range table entries as _resolve reads them.
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
    others   jsonb := '[]';   -- the conjuncts of WHERE not walked as IN-subqueries
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

    -- `a IN (SELECT b ...)` (`= ANY`), a conjunct of WHERE: the subquery's rows matter only to rows
    -- whose a equals their b (NULL or false, the row is filtered out alike; not so under NOT or in
    -- the target list, where such sublinks stay unlinked like any other)
    FOR link IN SELECT tview._conjuncts(q -> 'jointree' -> 'quals') LOOP
        IF link ->> '_' = 'SUBLINK' AND (link ->> 'subLinkType')::int = 2 THEN
            st := tview._walk_query(link -> 'subselect', stack, st);
            FOR te IN SELECT tview._conjuncts(link -> 'testexpr') LOOP
                CONTINUE WHEN te ->> '_' <> 'OPEXPR' OR jsonb_array_length(te -> 'args') <> 2
                              OR tview._strip(te -> 'args' -> 1) ->> '_' IS DISTINCT FROM 'PARAM'
                              OR (tview._strip(te -> 'args' -> 1) ->> 'paramkind')::int <> 2;
                sub := st -> 'out' -> ((tview._strip(te -> 'args' -> 1) ->> 'paramid')::int - 1);
                CONTINUE WHEN jsonb_typeof(sub) IS DISTINCT FROM 'array';
                st := tview._add_edges(tview._edge_end(te -> 'args' -> 0, '{}', stack, st),
                                       jsonb_build_object('occ', sub -> 0, 'side', sub -> 1, 'here', true),
                                       (te ->> 'opno')::oid,
                                       ARRAY[tview._expr_type(te -> 'args' -> 0), tview._expr_type(te -> 'args' -> 1)],
                                       false, st);
            END LOOP;
        ELSE
            others := others || jsonb_build_array(link);
        END IF;
    END LOOP;
    FOR link IN SELECT tview._sublinks(jsonb_set(q, '{jointree,quals}', others) - 'rtable' - 'cteList' - 'setOperations') LOOP
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
    RETURN st || jsonb_build_object('out', outmap)
              || CASE WHEN outer_stack = '[]' THEN jsonb_build_object('rtes', rtes) ELSE '{}' END;
END;
$$;

-- Analyse a TVIEW definition (q: its backing view's query tree) for the key column.
-- Returns {"occ": [...], "edges": [...], "root": [occ, attnum | expression] | null,
-- "reason": text | null}: the key is a column of the root occurrence or an expression of its
-- columns (_expr_side's {"sql", "atts"}), evaluated over changed rows as it is over the view's.
CREATE OR REPLACE FUNCTION tview._analyze(q jsonb, key_column name) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st     jsonb := '{"occ": [], "edges": []}';
    te     jsonb;
    root   jsonb;
    reason text;
    side   jsonb;
BEGIN
    st := tview._walk_query(q, '[]', st);
    SELECT e INTO te FROM jsonb_array_elements(q -> 'targetList') e WHERE e ->> 'resname' = key_column LIMIT 1;
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
            side := tview._expr_side(te -> 'expr', jsonb_build_array(jsonb_build_object('rtes', st -> 'rtes')), st -> 'occ');
            root := CASE WHEN side ->> 'occ' IS NOT NULL AND side ->> 'sql' IS NOT NULL
                         THEN jsonb_build_array(side -> 'occ', side - 'occ' - 'vars') END;
        END IF;
        IF root IS NULL THEN
            reason := format('the key %s is neither a column of a table nor an expression of one table''s columns '
                             'that evaluates the same in any session', key_column);
        END IF;
    END IF;
    RETURN st - '_rt' - 'rtes' || jsonb_build_object('root', root, 'reason', reason);
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
