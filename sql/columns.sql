-- One model per column: every embedding column the extension fills (the trigger, the sync queue,
-- the re-embedding procedures) is registered with the fingerprint of the model that made its
-- vectors, its instruction and its size. Writes into it go through
-- qwen3_embed_batch_for_column, which refuses (55000) any other loaded model; re-embedding the
-- column moves it to the model loaded now and updates the registry at its end (while it runs,
-- writes with that new model are accepted too).
--
--   SELECT * FROM qwen3_embed_check();   -- registered columns whose model is not the loaded one

CREATE TABLE @extschema@.qwen3_embed_columns (
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
ALTER TABLE @extschema@.qwen3_embed_columns ENABLE ROW LEVEL SECURITY;
CREATE POLICY qwen3_embed_columns_updatable ON @extschema@.qwen3_embed_columns
    USING (pg_catalog.has_table_privilege(relation, 'UPDATE'))
    WITH CHECK (pg_catalog.has_table_privilege(relation, 'UPDATE'));
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.qwen3_embed_columns TO PUBLIC;

-- The fingerprint a write into relation.column_name must be made with: the registered one (or,
-- during a re-embedding, the one it moves to). A column written for the first time is
-- registered with the loaded model. A different instruction or size than the registered ones
-- is refused: the column's vectors would not be comparable.
CREATE FUNCTION @extschema@.qwen3_embed_column_model(p_rel regclass, p_col name, p_instruct text, p_dims int)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_column_model$
DECLARE
    c @extschema@.qwen3_embed_columns;
BEGIN
    SELECT * INTO c FROM @extschema@.qwen3_embed_columns x WHERE x.relation = p_rel AND x.column_name = p_col;
    IF NOT FOUND THEN
        INSERT INTO @extschema@.qwen3_embed_columns AS x (relation, column_name, fingerprint, instruct, dims)
        SELECT p_rel, p_col, i.fingerprint, p_instruct, p_dims FROM @extschema@.qwen3_embed_info() i
        ON CONFLICT (relation, column_name) DO NOTHING;
        SELECT * INTO c FROM @extschema@.qwen3_embed_columns x WHERE x.relation = p_rel AND x.column_name = p_col;
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

-- A re-embedding of relation.column_name starts (with the loaded model, instruct, dims) or ends.
CREATE FUNCTION @extschema@.qwen3_embed_column_moving(p_rel regclass, p_col name, p_instruct text, p_dims int, p_done boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_column_moving$
DECLARE
    v_fp text;
BEGIN
    IF p_done THEN
        UPDATE @extschema@.qwen3_embed_columns x
           SET fingerprint = coalesce(x.next_fingerprint, x.fingerprint), next_fingerprint = NULL,
               instruct = p_instruct, dims = p_dims, registered_at = clock_timestamp()
         WHERE x.relation = p_rel AND x.column_name = p_col;
        RETURN;
    END IF;
    SELECT i.fingerprint INTO v_fp FROM @extschema@.qwen3_embed_info() i;
    INSERT INTO @extschema@.qwen3_embed_columns AS x (relation, column_name, fingerprint, next_fingerprint, instruct, dims)
    VALUES (p_rel, p_col, v_fp, v_fp, p_instruct, p_dims)
    ON CONFLICT (relation, column_name) DO UPDATE
       SET next_fingerprint = EXCLUDED.next_fingerprint,
           instruct = EXCLUDED.instruct, dims = EXCLUDED.dims;
END
$qwen3_embed_column_moving$;

-- Registered columns (of tables and columns that still exist) and whether the loaded model is theirs.
CREATE FUNCTION @extschema@.qwen3_embed_check()
RETURNS TABLE (relation regclass, column_name name, fingerprint text, moving_to text, model_fingerprint text,
               matches boolean)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.relation, c.column_name, c.fingerprint, c.next_fingerprint, i.fingerprint,
           c.fingerprint = i.fingerprint AND c.next_fingerprint IS NULL
      FROM @extschema@.qwen3_embed_columns c, @extschema@.qwen3_embed_info() i
     WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = c.relation AND a.attname = c.column_name AND NOT a.attisdropped)
     ORDER BY c.relation::text, c.column_name
$$;
