-- Reading a view's query tree.
--
-- PostgreSQL stores a view as a rewrite rule whose action is a query tree printed in its
-- node-text format ({QUERY :rtable (...) :jointree {...} ...}). Lineage analysis needs
-- that tree (which relations are read where, joined by which equalities), so we turn the
-- text into jsonb: a node becomes {"_": "NODETYPE", "field": value, ...}, a list becomes
-- an array, <> becomes null. A constant's datum ([ 4 0 0 0 ]) becomes a "datum" field
-- holding its bytes (see tview._const_text).

CREATE OR REPLACE FUNCTION tview._nodetree_to_jsonb(tree text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tok       text;
    out       text[] := '{}';
    -- per open container: 'n' node, 'l' list
    stack     text[] := '{}';
    need_sep  boolean := false;   -- a value was written at this level; next one needs ','
    in_value  boolean := false;   -- a field key was written, its value not yet
    skip_rest boolean := false;   -- extra tokens of a field value (datums): ignore
    piece     text;
BEGIN
    FOR tok IN
        SELECT m[1]
        FROM regexp_matches(
            tree,
            -- a bare token (PostgreSQL < 16 writes names unquoted) may hold " [ ] after its start
            '(\{[A-Z_0-9]+|\}|\(|\)|"(?:[^"\\]|\\.)*"|\[[^\]]*\]|(?:\\.|[^\s{}()\[\]"\\])(?:\\.|[^\s{}()\\])*)',
            'g') WITH ORDINALITY AS r(m, i)
        ORDER BY i
    LOOP
        IF left(tok, 1) = ':' AND length(tok) > 1 AND stack[cardinality(stack)] = 'n' THEN
            out := out || (',' || to_json(substr(tok, 2))::text || ':');
            in_value := true;
            skip_rest := false;
            CONTINUE;
        END IF;

        IF skip_rest AND tok NOT IN ('}', ')') AND left(tok, 1) <> '{' AND tok <> '(' THEN
            IF left(tok, 1) = '[' THEN      -- a constant's datum: kept as its byte list
                out := out || (',"datum":' || to_json(btrim(tok, '[] '))::text);
            END IF;
            CONTINUE;
        END IF;

        IF tok = '}' OR tok = ')' THEN
            IF in_value THEN            -- a field with no value at all
                out := out || 'null'::text;
                in_value := false;
            END IF;
            out := out || CASE tok WHEN '}' THEN '}' ELSE ']' END;
            stack := stack[1:cardinality(stack) - 1];
            need_sep := true;
            skip_rest := false;
            CONTINUE;
        END IF;

        -- a value: node, list or scalar
        IF NOT in_value AND need_sep AND stack[cardinality(stack)] = 'l' THEN
            out := out || ','::text;
        END IF;

        IF left(tok, 1) = '{' THEN
            out := out || ('{"_":' || to_json(substr(tok, 2))::text);
            stack := stack || 'n'::text;
            need_sep := true;
            in_value := false;
            skip_rest := false;
            CONTINUE;
        ELSIF tok = '(' THEN
            out := out || '['::text;
            stack := stack || 'l'::text;
            need_sep := false;
            in_value := false;
            skip_rest := false;
            CONTINUE;
        END IF;

        IF tok = '<>' THEN
            piece := 'null';
        ELSIF tok IN ('true', 'false') THEN
            piece := tok;
        ELSIF tok ~ '^-?[0-9]+$' THEN
            piece := tok;
        ELSIF left(tok, 1) = '"' THEN
            piece := to_json(regexp_replace(substr(tok, 2, length(tok) - 2), '\\(.)', '\1', 'g'))::text;
        ELSE
            piece := to_json(regexp_replace(tok, '\\(.)', '\1', 'g'))::text;
        END IF;
        out := out || piece;
        IF in_value THEN
            in_value := false;
            skip_rest := true;      -- e.g. ":constvalue 4 [ 1 0 0 0 ]": keep the first token
        ELSE
            need_sep := true;
        END IF;
    END LOOP;
    RETURN array_to_string(out, '')::jsonb;
END;
$$;

-- A view and every view it reads, through views (from pg_depend: each rule's references).
CREATE OR REPLACE FUNCTION tview._views_read(view_oid oid) RETURNS SETOF oid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE views(oid) AS (
        SELECT view_oid
        UNION
        SELECT d.refobjid
        FROM views
        JOIN pg_rewrite r ON r.ev_class = views.oid
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                        AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> views.oid
        JOIN pg_class c ON c.oid = d.refobjid AND c.relkind = 'v')
    SELECT oid FROM views
$$;

-- The query tree of a view, as jsonb (the rule's single action).
CREATE OR REPLACE FUNCTION tview._view_query(view_oid oid) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT tview._nodetree_to_jsonb(r.ev_action::text) -> 0
    FROM pg_rewrite r
    WHERE r.ev_class = view_oid AND r.rulename = '_RETURN'
$$;

-- The text of a text/unknown/varchar constant node, decoded from its datum bytes.
CREATE OR REPLACE FUNCTION tview._const_text(node jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bytes int[];
    len   int;
    body  int[];
BEGIN
    IF node ->> '_' IS DISTINCT FROM 'CONST' OR (node ->> 'constisnull')::boolean
       OR (node ->> 'consttype')::oid NOT IN (25, 705, 1043) OR node ->> 'datum' IS NULL THEN
        RETURN NULL;
    END IF;
    -- the bytes are printed as C chars, signed on most platforms: -61 is 0xC3
    bytes := ARRAY(SELECT b::int & 255 FROM unnest(string_to_array(btrim(regexp_replace(node ->> 'datum', '\s+', ' ', 'g')), ' ')) u(b));
    IF (node ->> 'constlen')::int = -2 THEN                 -- C string, NUL-terminated
        body := bytes[1:coalesce(array_position(bytes, 0), cardinality(bytes) + 1) - 1];
    ELSIF bytes[1] & 1 = 1 THEN                             -- varlena, 1-byte header
        len := bytes[1] >> 1;
        body := bytes[2:len];
    ELSE                                                    -- varlena, 4-byte header
        len := (bytes[1] | (bytes[2] << 8) | (bytes[3] << 16) | (bytes[4] << 24)) >> 2;   -- | and << bind alike
        body := bytes[5:len];
    END IF;
    RETURN convert_from(decode(coalesce(string_agg(lpad(to_hex(b), 2, '0'), '' ORDER BY n), ''), 'hex'), 'UTF8')
    FROM unnest(body) WITH ORDINALITY u(b, n);
END;
$$;
