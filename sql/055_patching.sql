-- Smart patching: when a TVIEW embeds another TVIEW's documents, a change of those
-- documents patches the embedding rows in place instead of re-running their definition.
--
-- Two shapes are recognised at create time, as keys of the top-level jsonb_build_object
-- that builds `data`:
--   object: 'author', u.data          where u is a TVIEW joined by u.<key> = <root column>
--           and the TVIEW outputs that root column (e.g. fk_user)
--   array:  'comments', coalesce((SELECT jsonb_agg(c.data ORDER BY c.<key> [DESC])
--                                 FROM tv_comment c WHERE c.<col> = <root key>), '[]')
-- and only when the embedded TVIEW is read nowhere else in the definition. Each spec is
-- {"kind", "path", "source_oid", "source_key", and "link_column" (object) or
-- "parent_column" + "descending" (array)}. Anything else is recomputed.
-- A patched row equals what recomputation gives, byte for byte: jsonb keys are ordered
-- by jsonb itself, array positions follow the ORDER BY on the (unique) key.

ALTER TABLE tview.tviews ADD COLUMN IF NOT EXISTS patch_specs jsonb NOT NULL DEFAULT '[]';

-- The relation and column a top-level Var reads (NULL unless a plain table column).
CREATE OR REPLACE FUNCTION tview._top_column(q jsonb, var jsonb, levelsup int DEFAULT 0)
RETURNS TABLE (relid oid, attname name)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (rte ->> 'relid')::oid, tview._colname((rte ->> 'relid')::oid, (var ->> 'varattno')::int)
    FROM (SELECT q -> 'rtable' -> ((var ->> 'varno')::int - 1) AS rte) r
    WHERE var ->> '_' = 'VAR' AND (var ->> 'varlevelsup')::int = levelsup
      AND (rte ->> 'rtekind')::int = 0 AND rte ->> 'relkind' = 'r'
$$;

-- Is there an equality a = b (either order) among the top-level AND-ed quals of query q
-- (WHERE and JOIN ... ON)? a and b are (relid, column) of q's own range table.
CREATE OR REPLACE FUNCTION tview._has_equality(q jsonb, a_rel oid, a_col name, b_rel oid, b_col name,
                                               b_levelsup int DEFAULT 0)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE quals(node) AS (
        SELECT q -> 'jointree'
        UNION ALL
        SELECT child
        FROM quals, LATERAL (
            SELECT node -> 'larg' UNION ALL SELECT node -> 'rarg'
            UNION ALL SELECT jsonb_array_elements(tview._list(node -> 'fromlist'))
        ) c(child)
        WHERE node ->> '_' IN ('FROMEXPR', 'JOINEXPR') AND jsonb_typeof(child) = 'object'
    )
    SELECT EXISTS (
        SELECT 1
        FROM quals, tview._conjuncts(node -> 'quals') c
        JOIN pg_operator o ON o.oid = (c ->> 'opno')::oid AND o.oprname = '='
        CROSS JOIN LATERAL tview._top_column(q, tview._strip(c -> 'args' -> 0), 0) l
        CROSS JOIN LATERAL (SELECT * FROM tview._top_column(q, tview._strip(c -> 'args' -> 1), 0)
                            UNION ALL
                            SELECT * FROM tview._top_column(q, tview._strip(c -> 'args' -> 1), 1)) r
        WHERE c ->> '_' = 'OPEXPR'
          AND ((l.relid, l.attname) = (a_rel, a_col) AND (r.relid, r.attname) = (b_rel, b_col)
               OR (l.relid, l.attname) = (b_rel, b_col) AND (r.relid, r.attname) = (a_rel, a_col)))
$$;

CREATE OR REPLACE FUNCTION tview._patch_specs(view_oid oid, q jsonb, analysis jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    data_te  jsonb;
    args     jsonb;
    i        int;
    path_key text;
    val      jsonb;
    col      record;
    src      tview.tviews;
    root_rel oid := (analysis -> 'occ' -> (analysis -> 'root' ->> 0)::int ->> 'relid')::oid;
    root_col name := CASE WHEN jsonb_typeof(analysis -> 'root' -> 1) = 'number'   -- NULL: the key is an expression
                          THEN tview._colname(root_rel, (analysis -> 'root' ->> 1)::int) END;
    link     name;
    sub      jsonb;
    agg      jsonb;
    sort     jsonb;
    sort_te  jsonb;
    specs    jsonb := '[]';
BEGIN
    IF root_rel IS NULL OR analysis ->> 'reason' IS NOT NULL THEN
        RETURN specs;       -- nothing is provable: everything is recomputed whole
    END IF;
    SELECT e -> 'expr' INTO data_te FROM jsonb_array_elements(q -> 'targetList') e WHERE e ->> 'resname' = 'data';
    IF data_te ->> '_' <> 'FUNCEXPR'
       OR NOT EXISTS (SELECT 1 FROM pg_proc WHERE oid = (data_te ->> 'funcid')::oid AND proname = 'jsonb_build_object') THEN
        RETURN specs;
    END IF;
    args := tview._list(data_te -> 'args');
    FOR i IN 0 .. jsonb_array_length(args) / 2 - 1 LOOP
        path_key := tview._const_text(tview._strip(args -> (2 * i)));
        CONTINUE WHEN path_key IS NULL;
        val := tview._strip(args -> (2 * i + 1));

        -- object: 'key', x.data with x a TVIEW joined on its key
        IF val ->> '_' = 'VAR' THEN
            SELECT * INTO col FROM tview._top_column(q, val, 0);
            SELECT * INTO src FROM tview.tviews t WHERE t.table_oid = col.relid;
            -- the embedded TVIEW's columns are read exactly twice: here and in the join equality
            IF src.id IS NOT NULL AND col.attname = 'data'
               AND (SELECT count(*) FROM jsonb_path_query(q - 'rtable' - 'cteList', 'strict $.**') v
                    WHERE v ->> '_' = 'VAR' AND (v ->> 'varno')::int = (val ->> 'varno')::int) = 2 THEN
                SELECT a.attname INTO link
                FROM jsonb_array_elements(analysis -> 'out') WITH ORDINALITY o(m, pos)
                JOIN pg_attribute a ON a.attrelid = view_oid AND a.attnum = o.pos AND NOT a.attisdropped
                WHERE jsonb_typeof(o.m) = 'array'
                  AND (analysis -> 'occ' -> (o.m ->> 0)::int ->> 'relid')::oid = root_rel
                  AND tview._has_equality(q, src.table_oid, src.key_column, root_rel,
                                          tview._colname(root_rel, (o.m ->> 1)::int))
                  AND (o.m ->> 0)::int = (analysis -> 'root' ->> 0)::int
                LIMIT 1;
                IF link IS NOT NULL THEN
                    specs := specs || jsonb_build_object('kind', 'object', 'path', jsonb_build_array(path_key), 'source_oid', src.table_oid,
                                                         'source_key', src.key_column, 'link_column', link);
                END IF;
            END IF;
            CONTINUE;
        END IF;

        -- array: coalesce((SELECT jsonb_agg(x.data ORDER BY x.key) FROM tv_x x WHERE x.col = root key), '[]')
        CONTINUE WHEN val ->> '_' <> 'COALESCEEXPR' OR jsonb_array_length(val -> 'args') <> 2
                   OR val -> 'args' -> 1 ->> '_' <> 'CONST' OR val -> 'args' -> 0 ->> '_' <> 'SUBLINK';
        sub := val -> 'args' -> 0 -> 'subselect';
        CONTINUE WHEN jsonb_array_length(tview._list(sub -> 'rtable')) <> 1
                   OR jsonb_array_length(tview._list(sub -> 'targetList')) <> 1
                   OR NOT tview._absent(sub -> 'groupClause') OR NOT tview._absent(sub -> 'havingQual')
                   OR NOT tview._absent(sub -> 'limitCount') OR NOT tview._absent(sub -> 'limitOffset')
                   OR coalesce((sub ->> 'hasWindowFuncs')::boolean, false)
                   OR NOT tview._absent(sub -> 'setOperations');
        SELECT * INTO src FROM tview.tviews t WHERE t.table_oid = (sub -> 'rtable' -> 0 ->> 'relid')::oid;
        CONTINUE WHEN src.id IS NULL;
        agg := sub -> 'targetList' -> 0 -> 'expr';
        CONTINUE WHEN agg ->> '_' <> 'AGGREF'
                   OR NOT EXISTS (SELECT 1 FROM pg_proc WHERE oid = (agg ->> 'aggfnoid')::oid AND proname = 'jsonb_agg')
                   OR NOT tview._absent(agg -> 'aggdistinct') OR NOT tview._absent(agg -> 'aggfilter')
                   OR jsonb_array_length(tview._list(agg -> 'aggorder')) <> 1;
        SELECT * INTO col FROM tview._top_column(sub, tview._strip(agg -> 'args' -> 0 -> 'expr'), 0);
        CONTINUE WHEN col.attname IS DISTINCT FROM 'data';
        sort := agg -> 'aggorder' -> 0;
        SELECT e INTO sort_te FROM jsonb_array_elements(agg -> 'args') e
        WHERE (e ->> 'ressortgroupref')::int = (sort ->> 'tleSortGroupRef')::int;
        SELECT * INTO col FROM tview._top_column(sub, tview._strip(sort_te -> 'expr'), 0);
        CONTINUE WHEN col.attname IS DISTINCT FROM src.key_column;
        -- the one qual: x.<parent column> = <root key> of the outer query
        CONTINUE WHEN (SELECT count(*) FROM tview._conjuncts(sub -> 'jointree' -> 'quals')) <> 1;
        SELECT l.attname INTO link
        FROM tview._conjuncts(sub -> 'jointree' -> 'quals') c
        CROSS JOIN LATERAL tview._top_column(sub, tview._strip(c -> 'args' -> 0), 0) l
        CROSS JOIN LATERAL tview._top_column(q, tview._strip(c -> 'args' -> 1), 1) r
        WHERE c ->> '_' = 'OPEXPR' AND r.relid = root_rel AND r.attname = root_col
        UNION ALL
        SELECT l.attname
        FROM tview._conjuncts(sub -> 'jointree' -> 'quals') c
        CROSS JOIN LATERAL tview._top_column(sub, tview._strip(c -> 'args' -> 1), 0) l
        CROSS JOIN LATERAL tview._top_column(q, tview._strip(c -> 'args' -> 0), 1) r
        WHERE c ->> '_' = 'OPEXPR' AND r.relid = root_rel AND r.attname = root_col
        LIMIT 1;
        CONTINUE WHEN link IS NULL;
        specs := specs || jsonb_build_object('kind', 'array', 'path', jsonb_build_array(path_key), 'source_oid', src.table_oid,
                                             'source_key', src.key_column, 'parent_column', link,
                                             'descending', coalesce((sort ->> 'reverse_sort')::boolean,
                                                                    (SELECT oprname = '>' FROM pg_operator
                                                                     WHERE oid = (sort ->> 'sortop')::oid)));
    END LOOP;
    -- a TVIEW read anywhere else in the definition is recomputed, never patched
    RETURN coalesce((
        SELECT jsonb_agg(s)
        FROM jsonb_array_elements(specs) s
        WHERE (SELECT count(*) FROM jsonb_array_elements(specs) o WHERE o ->> 'source_oid' = s ->> 'source_oid')
            = (SELECT count(*) FROM jsonb_array_elements(analysis -> 'occ') o WHERE o ->> 'relid' = s ->> 'source_oid')
    ), '[]');
END;
$$;

-- jsonb_build_object(...) of a TVIEW row's columns other than data (the row "image" the
-- cascade passes on), over alias t.
CREATE OR REPLACE FUNCTION tview._image_sql(table_oid oid) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'jsonb_build_object(' || string_agg(format('%L, t.%I', attname, attname), ', ' ORDER BY attnum) || ')'
    FROM pg_attribute WHERE attrelid = table_oid AND attnum > 0 AND NOT attisdropped AND attname <> 'data'
$$;

-- Is patching on for this TVIEW (per TVIEW, and tview.patching in cfg, tview._settings())?
CREATE OR REPLACE FUNCTION tview._patching_on(t tview.tviews, cfg jsonb) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT t.patching AND tview._cfg_enabled(cfg, 'patching', true) AND jsonb_array_length(t.patch_specs) > 0 $$;

-- Patches run in a function generated per TVIEW (tview._patch_<id>), one block of static
-- SQL per recognised shape. Each changed document is patched by its own small statement
-- (an index lookup by key), whose generic plan is cached: a set-based statement over a
-- list of keys would be re-planned at every call. A change of tview.patch_threshold
-- embedded documents or more is not patched: its rows are recomputed set-based instead.
-- tview._patch_<id>(patches, exclude, batch, want_images) applies the queued patches
-- (changes of embedded TVIEWs, as row images) except to the keys in `exclude` (recomputed
-- anyway) and returns {"patched": n, "recompute": [keys that could not be patched], "keys":
-- "{keys of the rows patched}"}, with "images": [their images] when want_images (TVIEWs read
-- this one) and they are fewer than twice tview.patch_threshold (batch): a patch of many rows
-- hands their keys on, not a jsonb value that grows with them.
CREATE OR REPLACE FUNCTION tview._install_patch_function(t tview.tviews) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    spec    jsonb;
    src     tview.tviews;
    dep_sql text;
    parts   jsonb;
    blocks  text := '';
BEGIN
    FOR spec IN SELECT s FROM jsonb_array_elements(t.patch_specs) s LOOP
        SELECT * INTO src FROM tview.tviews x WHERE x.table_oid = (spec ->> 'source_oid')::oid;
        CONTINUE WHEN src.id IS NULL;
        SELECT d.key_sql INTO dep_sql FROM tview.dependencies d WHERE d.tview_id = t.id AND d.source_oid = src.table_oid;
        CONTINUE WHEN dep_sql IS NULL;     -- never routed here (see tview._cascade)
        -- the parts both shapes have: the TVIEW's table, the embedded TVIEW's, the path
        parts := jsonb_build_object(
            'table', tview._qname(t.table_oid), 'key', quote_ident(t.key_column),
            'source', tview._qname(src.table_oid), 'source_oid', src.table_oid,
            'source_key', quote_ident(src.key_column), 'source_key_literal', quote_literal(src.key_column),
            'path', quote_literal(ARRAY(SELECT jsonb_array_elements_text(spec -> 'path'))::text));
        IF spec ->> 'kind' = 'object' THEN
            blocks := blocks || tview._fill($b$
    FOR entry IN SELECT e FROM jsonb_array_elements(patches) e WHERE (e ->> 'source_oid')::oid = {source_oid} LOOP
        -- documents updated in place are patched; inserted or deleted ones recomputed
        kept := ARRAY(SELECT (o ->> {source_key_literal})::bigint FROM jsonb_array_elements(entry -> 'old') o
                      INTERSECT
                      SELECT (o ->> {source_key_literal})::bigint FROM jsonb_array_elements(entry -> 'new') o);
        IF cardinality(kept) >= batch THEN
            kept := '{}';
        END IF;
        IF jsonb_array_length(entry -> 'old') + jsonb_array_length(entry -> 'new') > 2 * cardinality(kept) THEN
            recompute := recompute || ARRAY({moved_keys});
        END IF;
        FOREACH skey IN ARRAY kept LOOP
            WITH p AS (
                UPDATE {table} t SET data = jsonb_set(t.data, {path}, coalesce(s.data, 'null'))
                FROM {source} s
                WHERE s.{source_key} = skey AND t.{link_column} = skey AND t.{key} <> ALL (exclude)
                  AND (t.data #> {path})::text IS DISTINCT FROM coalesce(s.data, 'null')::text
                RETURNING t.{key} AS k)
            SELECT count(*), coalesce(array_agg(p.k), '{}') INTO n, more FROM p;
            patched := patched + n;
            patched_keys := patched_keys || more;
        END LOOP;
    END LOOP;$b$, parts || jsonb_build_object(
                'link_column', quote_ident(spec ->> 'link_column'),
                'moved_keys', tview._keys_sql(dep_sql,
                                              format('(SELECT * FROM %s x WHERE x.%I <> ALL (kept))',
                                                     tview._images_relation(src.table_oid, 'entry -> ''old''', true),
                                                     src.key_column),
                                              format('(SELECT * FROM %s x WHERE x.%I <> ALL (kept))',
                                                     tview._images_relation(src.table_oid, 'entry -> ''new''', true),
                                                     src.key_column))));
        ELSE
            blocks := blocks || tview._fill($b$
    FOR entry IN SELECT e FROM jsonb_array_elements(patches) e WHERE (e ->> 'source_oid')::oid = {source_oid} LOOP
        -- one element operation per parent row: set, insert (at the ORDER BY position) or
        -- delete; a parent with several operations, or too many operations, is recomputed
        IF jsonb_array_length(entry -> 'old') = 1 AND jsonb_array_length(entry -> 'new') = 1 AND batch > 1
           AND entry -> 'old' -> 0 -> {source_key_literal} = entry -> 'new' -> 0 -> {source_key_literal}
           AND entry -> 'old' -> 0 -> {parent_column_literal} = entry -> 'new' -> 0 -> {parent_column_literal}
           AND jsonb_typeof(entry -> 'new' -> 0 -> {parent_column_literal}) = 'number' THEN
            -- one element changed in place, the usual write: its one 'set', without the query below
            ops := CASE WHEN (entry -> 'new' -> 0 ->> {parent_column_literal})::bigint <> ALL (exclude)
                        THEN jsonb_build_array(jsonb_build_object('tkey', entry -> 'new' -> 0 -> {parent_column_literal},
                                                                  'op', 'set', 'skey', entry -> 'new' -> 0 -> {source_key_literal}))
                        ELSE '[]' END;
            failed := '{}';
        ELSE
            WITH old_rows AS (SELECT (o ->> {source_key_literal})::bigint AS sk, (o ->> {parent_column_literal})::bigint AS par
                              FROM jsonb_array_elements(entry -> 'old') o),
                 new_rows AS (SELECT (o ->> {source_key_literal})::bigint AS sk, (o ->> {parent_column_literal})::bigint AS par
                              FROM jsonb_array_elements(entry -> 'new') o),
                 all_ops AS (
                    SELECT nw.par AS tkey, 'set' AS op, nw.sk FROM new_rows nw JOIN old_rows od USING (sk)
                    WHERE od.par = nw.par
                    UNION ALL
                    SELECT od.par, 'delete', od.sk FROM old_rows od LEFT JOIN new_rows nw USING (sk)
                    WHERE nw.sk IS NULL OR nw.par IS DISTINCT FROM od.par
                    UNION ALL
                    SELECT nw.par, 'insert', nw.sk FROM new_rows nw LEFT JOIN old_rows od USING (sk)
                    WHERE od.sk IS NULL OR od.par IS DISTINCT FROM nw.par),
                 counted AS (SELECT a.*, count(*) OVER (PARTITION BY tkey) AS per_parent, count(*) OVER () AS total
                             FROM all_ops a WHERE tkey IS NOT NULL AND tkey <> ALL (exclude))
            SELECT coalesce(jsonb_agg(jsonb_build_object('tkey', q.tkey, 'op', q.op, 'skey', q.sk))
                                FILTER (WHERE q.per_parent = 1 AND q.total < batch), '[]'),
                   coalesce(array_agg(DISTINCT q.tkey) FILTER (WHERE q.per_parent > 1 OR q.total >= batch), '{}')
            INTO ops, failed FROM counted q;
        END IF;
        recompute := recompute || failed;
        FOR op IN SELECT * FROM jsonb_to_recordset(ops) AS o(tkey bigint, op text, skey bigint) ORDER BY tkey LOOP
            -- lock the embedding row first (in key order): what the next statements read is
            -- then current, a concurrent patch of the same array included
            SELECT t.data #> {path} INTO arr FROM {table} t WHERE t.{key} = op.tkey FOR UPDATE;
            SELECT (SELECT count(*) FROM {source} x WHERE x.{parent_column} = op.tkey AND x.{source_key} <> op.skey AND x.{source_key} {before} op.skey),
                   (SELECT count(*) FROM {source} x WHERE x.{parent_column} = op.tkey),
                   (SELECT s.data FROM {source} s WHERE s.{source_key} = op.skey)
            INTO idx, n_now, sdata;
            -- the array must hold what the source held before this change, else recompute
            IF NOT coalesce(jsonb_typeof(arr) = 'array' AND jsonb_array_length(arr)
                            = n_now + CASE op.op WHEN 'insert' THEN -1 WHEN 'delete' THEN 1 ELSE 0 END, false) THEN
                recompute := recompute || op.tkey;
                CONTINUE;
            END IF;
            WITH upd AS (
                UPDATE {table} t SET data = CASE op.op
                    WHEN 'set' THEN jsonb_set(t.data, {path}::text[] || idx::text, coalesce(sdata, 'null'))
                    WHEN 'insert' THEN jsonb_insert(t.data, {path}::text[] || idx::text, coalesce(sdata, 'null'))
                    ELSE t.data #- ({path}::text[] || idx::text) END
                WHERE t.{key} = op.tkey
                  AND (op.op <> 'set'
                       OR (t.data #> ({path}::text[] || idx::text))::text IS DISTINCT FROM coalesce(sdata, 'null')::text)
                RETURNING t.{key} AS k)
            SELECT count(*), coalesce(array_agg(upd.k), '{}') INTO n, more FROM upd;
            patched := patched + n;
            patched_keys := patched_keys || more;
        END LOOP;
    END LOOP;$b$, parts || jsonb_build_object(
                'parent_column', quote_ident(spec ->> 'parent_column'),
                'parent_column_literal', quote_literal(spec ->> 'parent_column'),
                'before', CASE WHEN (spec ->> 'descending')::boolean THEN '>' ELSE '<' END));
        END IF;
    END LOOP;
    EXECUTE tview._fill($f$
CREATE OR REPLACE FUNCTION tview.{name}(patches jsonb, exclude bigint[], batch int, want_images boolean) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan     -- every statement is a lookup by key: plan once
AS {tag}
#variable_conflict use_variable
DECLARE
    entry     jsonb;
    kept      bigint[];
    skey      bigint;
    recompute bigint[] := '{}';
    failed    bigint[];
    ops       jsonb;
    op        record;
    idx       bigint;
    n_now     bigint;
    sdata     jsonb;
    arr       jsonb;
    n         bigint;
    more      bigint[];
    patched   bigint := 0;
    patched_keys bigint[] := '{}';
BEGIN{blocks}
    RETURN jsonb_build_object('patched', patched, 'recompute', to_jsonb(ARRAY(SELECT DISTINCT unnest(recompute))),
                              'keys', patched_keys::text)
           -- images of the rows patched, for TVIEWs reading this one, when they are few
           || CASE WHEN want_images AND cardinality(patched_keys) < 2 * batch
                   THEN jsonb_build_object('images', (SELECT coalesce(jsonb_agg({image}), '[]') FROM {table} t
                                                      WHERE t.{key} = ANY (patched_keys)))
                   ELSE '{}' END;
END;
{tag}
$f$, jsonb_build_object('name', quote_ident('_patch_' || t.id), 'blocks', blocks,
                        'table', tview._qname(t.table_oid), 'key', quote_ident(t.key_column),
                        'image', tview._image_sql(t.table_oid),
                        'tag', tview._dollar_tag(blocks || tview._image_sql(t.table_oid) || tview._qname(t.table_oid), 'body')));
END;
$$;

-- batch: tview.patch_threshold.
DROP FUNCTION IF EXISTS tview._apply_patches(tview.tviews, jsonb, bigint[], int);   -- 0.6.3 and older: images always
CREATE OR REPLACE FUNCTION tview._apply_patches(t tview.tviews, patches jsonb, exclude bigint[], batch int,
                                                images boolean) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb;
BEGIN
    EXECUTE format('SELECT %s($1, $2, $3, $4)', tview._generated(t, 'patch')) INTO result
        USING patches, exclude, batch, images;
    RETURN result;
END;
$$;

-- Patch primitives, usable on their own. They change one place of a document with
-- jsonb_set / jsonb_insert / #- (no text round trips) and compare values as jsonb does
-- (1.0 = 1), keeping each number's own text.

-- Replace the value at path; the last key is created only where its parent exists.
CREATE OR REPLACE FUNCTION tview.jsonb_patch_object(doc jsonb, path text[], value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT jsonb_set(doc, path, coalesce(value, 'null'::jsonb), true) $$;

-- Position (0-based) of the first object element of the array at path whose match_key
-- equals match_value; NULL when there is none.
CREATE OR REPLACE FUNCTION tview._jsonb_array_find(doc jsonb, path text[], match_key text, match_value jsonb)
RETURNS int
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (e.n - 1)::int
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(doc #> path) = 'array' THEN doc #> path ELSE '[]' END)
         WITH ORDINALITY e(elem, n)
    WHERE jsonb_typeof(e.elem) = 'object' AND e.elem -> match_key = match_value
    ORDER BY e.n LIMIT 1
$$;

-- Replace the element whose match_key equals match_value; unchanged when none does.
CREATE OR REPLACE FUNCTION tview.jsonb_array_update(doc jsonb, path text[], match_key text, match_value jsonb,
                                                    element jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN i IS NULL THEN doc ELSE jsonb_set(doc, path || i::text, coalesce(element, 'null'::jsonb), false) END
    FROM (SELECT tview._jsonb_array_find(doc, path, match_key, match_value) AS i) f
$$;

-- Delete the element whose match_key equals match_value; unchanged when none does.
CREATE OR REPLACE FUNCTION tview.jsonb_array_delete(doc jsonb, path text[], match_key text, match_value jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN i IS NULL THEN doc ELSE doc #- (path || i::text) END
    FROM (SELECT tview._jsonb_array_find(doc, path, match_key, match_value) AS i) f
$$;

-- Insert element where ORDER BY sort_key [DESC] puts it: after every element that sorts
-- before it or equal to it (ties go after equal keys). A missing array is created.
CREATE OR REPLACE FUNCTION tview.jsonb_array_insert_sorted(doc jsonb, path text[], element jsonb, sort_key text,
                                                           descending boolean DEFAULT false) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN jsonb_typeof(doc #> path) IS DISTINCT FROM 'array'
            THEN jsonb_set(doc, path, jsonb_build_array(element), true)
        ELSE jsonb_insert(doc, path || (
            SELECT count(*)::text
            FROM jsonb_array_elements(doc #> path) e
            WHERE CASE WHEN descending THEN e -> sort_key >= element -> sort_key
                       ELSE e -> sort_key <= element -> sort_key END), element)
    END
$$;

CREATE OR REPLACE FUNCTION tview._set_patching(p_name text, enabled boolean, schemas name[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t tview.tviews;
BEGIN
    PERFORM tview._require_engine_owner('change patching of TVIEW', p_name);
    t := tview._get(p_name, schemas);
    UPDATE tview.tviews SET patching = coalesce(enabled, true) WHERE id = t.id;
END;
$$;

CREATE OR REPLACE FUNCTION tview.set_patching(name text, enabled boolean) RETURNS void
LANGUAGE sql
AS $$ SELECT tview._set_patching($1, $2, pg_catalog.current_schemas(false)) $$;
COMMENT ON FUNCTION tview.set_patching(text, boolean) IS
    'Patch embedded documents in place (true, default) or always recompute (false); tview.patching = off does it for all';
