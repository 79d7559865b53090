-- One model per column: every embedding column the extension fills (the trigger, the sync queue,
-- the re-embedding procedures) is registered with the fingerprint of the model that made its
-- vectors, its instruction and its size. Writes into it go through
-- qwen3_embed_batch_for_column, which refuses (55000) any other loaded model; re-embedding the
-- column moves it to the model loaded now and updates the registry at its end (while it runs,
-- writes with that new model are accepted too).
--
--   SELECT * FROM qwen3_embed_check();   -- registered columns whose model is not the loaded one

CREATE TABLE qwen3_embed.columns (
    relation         regclass    NOT NULL,
    column_name      name        NOT NULL,
    fingerprint      text        NOT NULL,
    -- Set while a re-embedding moves the column to another model.
    next_fingerprint text,
    instruct         text,
    dims             int,
    registered_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relation, column_name)
);
ALTER TABLE qwen3_embed.columns ENABLE ROW LEVEL SECURITY;
CREATE POLICY qwen3_embed_columns_updatable ON qwen3_embed.columns
    USING (pg_catalog.has_table_privilege(relation, 'UPDATE'))
    WITH CHECK (pg_catalog.has_table_privilege(relation, 'UPDATE'));
REVOKE ALL ON qwen3_embed.columns FROM PUBLIC;
GRANT SELECT ON qwen3_embed.columns TO PUBLIC;

-- The fingerprint a write into relation.column_name must be made with: the registered one (or,
-- during a re-embedding, the one it moves to). A column written for the first time is
-- registered with the loaded model. A different instruction or size than the registered ones
-- is refused: the column's vectors would not be comparable.
CREATE FUNCTION qwen3_embed.qwen3_embed_column_model(p_rel regclass, p_col name, p_instruct text, p_dims int)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_column_model$
DECLARE
    c qwen3_embed.columns;
BEGIN
    SELECT * INTO c FROM qwen3_embed.columns x WHERE x.relation = p_rel AND x.column_name = p_col;
    IF NOT FOUND THEN
        PERFORM qwen3_embed.qwen3_embed_state('column_register', pg_catalog.jsonb_build_object(
            'relation', p_rel::oid, 'column', p_col, 'instruct', p_instruct, 'dims', p_dims));
        SELECT * INTO c FROM qwen3_embed.columns x WHERE x.relation = p_rel AND x.column_name = p_col;
    END IF;
    IF c.instruct IS DISTINCT FROM p_instruct OR c.dims IS DISTINCT FROM p_dims THEN
        RAISE EXCEPTION 'qwen3_embed: %.% holds vectors made with instruct % and dims %, not % and %',
                p_rel, quote_ident(p_col), coalesce(quote_literal(c.instruct), 'NULL'), coalesce(c.dims::text, 'NULL'),
                coalesce(quote_literal(p_instruct), 'NULL'), coalesce(p_dims::text, 'NULL')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Write it with the registered settings, or re-embed the whole column with the new ones (CALL qwen3_embed_reembed).';
    END IF;
    RETURN coalesce(c.next_fingerprint, c.fingerprint);
END
$qwen3_embed_column_model$;

-- The gate's operation column_register: the first write into relation.column_name registers it
-- with the loaded model. Takes INSERT or UPDATE on the table, and a column that exists.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_column_register(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_column_register$
DECLARE
    v_rel regclass := (a->>'relation')::oid;
    v_col name     := a->>'column';
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = v_rel) THEN
        RAISE EXCEPTION 'qwen3_embed: relation % does not exist', v_rel::oid USING ERRCODE = 'undefined_table';
    END IF;
    IF NOT has_table_privilege(p_caller, v_rel, 'INSERT, UPDATE') THEN
        RAISE EXCEPTION 'qwen3_embed: permission denied for table % (INSERT or UPDATE is needed to register its column "%")',
                v_rel, v_col
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute x
                    WHERE x.attrelid = v_rel AND x.attname = v_col AND x.attnum > 0 AND NOT x.attisdropped) THEN
        RAISE EXCEPTION 'qwen3_embed: column "%" of % does not exist', v_col, v_rel USING ERRCODE = 'undefined_column';
    END IF;
    INSERT INTO qwen3_embed.columns AS x (relation, column_name, fingerprint, instruct, dims)
    SELECT v_rel, v_col, i.fingerprint, a->>'instruct', (a->>'dims')::int FROM @extschema@.qwen3_embed_info() i
    ON CONFLICT (relation, column_name) DO NOTHING;
    RETURN NULL;
END
$qwen3_embed_state_column_register$;

-- The gate's operation column_move: a re-embedding of relation.column_name starts (the column
-- moves to the loaded model, instruct and dims) or ends (done: the move is complete). Takes
-- UPDATE on the table.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_column_move(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_column_move$
DECLARE
    v_rel      regclass := (a->>'relation')::oid;
    v_col      name     := a->>'column';
    v_instruct text     := a->>'instruct';
    v_dims     int      := (a->>'dims')::int;
    v_fp       text;
BEGIN
    PERFORM qwen3_embed.qwen3_embed_state_check(p_caller, v_rel, false, 'qwen3_embed');
    IF (a->>'done')::boolean THEN
        UPDATE qwen3_embed.columns x
           SET fingerprint = coalesce(x.next_fingerprint, x.fingerprint), next_fingerprint = NULL,
               instruct = v_instruct, dims = v_dims, registered_at = clock_timestamp()
         WHERE x.relation = v_rel AND x.column_name = v_col;
        RETURN NULL;
    END IF;
    SELECT i.fingerprint INTO v_fp FROM @extschema@.qwen3_embed_info() i;
    INSERT INTO qwen3_embed.columns AS x (relation, column_name, fingerprint, next_fingerprint, instruct, dims)
    VALUES (v_rel, v_col, v_fp, v_fp, v_instruct, v_dims)
    ON CONFLICT (relation, column_name) DO UPDATE
       SET next_fingerprint = EXCLUDED.next_fingerprint,
           instruct = EXCLUDED.instruct, dims = EXCLUDED.dims;
    RETURN NULL;
END
$qwen3_embed_state_column_move$;

-- Registered columns (of tables and columns that still exist) and whether the loaded model is theirs.
CREATE FUNCTION @extschema@.qwen3_embed_check()
RETURNS TABLE (relation regclass, column_name name, fingerprint text, moving_to text, model_fingerprint text,
               matches boolean)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.relation, c.column_name, c.fingerprint, c.next_fingerprint, i.fingerprint,
           c.fingerprint = i.fingerprint AND c.next_fingerprint IS NULL
      FROM qwen3_embed.columns c, @extschema@.qwen3_embed_info() i
     WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = c.relation AND a.attname = c.column_name AND NOT a.attisdropped)
     ORDER BY c.relation::text, c.column_name
$$;

REVOKE EXECUTE ON FUNCTION
    qwen3_embed.qwen3_embed_state_column_register(oid, jsonb),
    qwen3_embed.qwen3_embed_state_column_move(oid, jsonb)
FROM PUBLIC;
