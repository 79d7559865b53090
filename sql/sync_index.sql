-- The HNSW index of a synced column, made by the sync worker once the column holds enough
-- vectors (qwen3_embed_sync(..., index_rows => n), qwen3_embed_sync_alter(..., index_rows => n)):
-- CREATE INDEX CONCURRENTLY, as the table's owner, between two rounds of the worker
-- (src/sync/index.rs), so writes go on while it is built. Cosine distance (the distance the
-- model's vectors are compared with); a vector column of more than 2,000 dimensions is indexed
-- as halfvec (an expression index: query it with column::halfvec(n)), up to pgvector's 4,000.
-- qwen3_embed_sync_status.index says where it stands.

-- Raises unless relation.column can have that index: a vector(n) or halfvec(n) column of at most
-- 4,000 dimensions, and a row count of 0 or more.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_index_check(p_what text, p_rel regclass, p_col name, p_rows bigint)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_index_check$
DECLARE
    v_type name;
    v_mod  int;
BEGIN
    IF p_rows < 0 THEN
        RAISE EXCEPTION '%: index_rows must be 0 or more, got %', p_what, p_rows
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT t.typname, x.atttypmod INTO v_type, v_mod
      FROM pg_attribute x JOIN pg_type t ON t.oid = x.atttypid
     WHERE x.attrelid = p_rel AND x.attname = p_col AND x.attnum > 0 AND NOT x.attisdropped;
    IF v_mod IS NULL OR v_mod < 1 OR v_mod > 4000 OR v_type NOT IN ('vector', 'halfvec') THEN
        RAISE EXCEPTION '%: an HNSW index needs a vector(n) or halfvec(n) column of at most 4000 dimensions; "%" of % is %',
                p_what, p_col, p_rel, coalesce(format_type((SELECT x.atttypid FROM pg_attribute x
                                                             WHERE x.attrelid = p_rel AND x.attname = p_col), v_mod), 'missing')
            USING ERRCODE = 'datatype_mismatch';
    END IF;
END
$qwen3_embed_sync_index_check$;

-- The syncs of this database whose index is in state p_state, with their table's owner:
-- 'waiting' ones that may be due (the worker counts their vectors next: index_rows embedded,
-- and a tenth of index_rows more since the last count), or 'building' ones (at a worker's
-- start, builds that an earlier worker did not finish).
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_index_syncs(p_state text, OUT id int, OUT owner oid)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.id, c.relowner
      FROM qwen3_embed.syncs s JOIN pg_class c ON c.oid = s.relation
     WHERE s.index_state = p_state
       AND (p_state <> 'waiting'
            OR (s.chunk_table IS NULL AND s.rows_done >= s.index_rows
                AND (s.index_counted IS NULL OR s.rows_done >= s.index_counted + greatest(s.index_rows / 10, 1))))
     ORDER BY s.id
$$;

-- Whether sync p_id's column holds index_rows vectors; run by the worker as the table's owner.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_index_enough(p_id int)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_index_enough$
DECLARE
    s        qwen3_embed.syncs;
    v_enough boolean;
BEGIN
    SELECT * INTO s FROM qwen3_embed.syncs x WHERE x.id = p_id;
    IF NOT FOUND OR qwen3_embed.qwen3_embed_sync_changed(s) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT count(%I) >= $1 FROM %s', s.target_column, s.relation) INTO v_enough USING s.index_rows;
    RETURN v_enough;
END
$qwen3_embed_sync_index_enough$;

-- The worker counted sync p_id's vectors: with enough, the index's name and statement (the sync
-- then shows 'building'); else NULL, and the next count waits for more rows.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_index_begin(p_id int, p_enough boolean,
    OUT index_name name, OUT statement text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_index_begin$
DECLARE
    s      qwen3_embed.syncs;
    v_type name;
    v_mod  int;
    v_vec  text;
    v_key  text;
    v_name text;
BEGIN
    UPDATE qwen3_embed.syncs x SET index_counted = x.rows_done WHERE x.id = p_id AND x.index_state = 'waiting'
    RETURNING * INTO s;
    IF NOT FOUND OR NOT p_enough THEN
        RETURN;
    END IF;
    SELECT t.typname, x.atttypmod INTO v_type, v_mod
      FROM pg_attribute x JOIN pg_type t ON t.oid = x.atttypid
     WHERE x.attrelid = s.relation AND x.attname = s.target_column AND NOT x.attisdropped;
    SELECT quote_ident(n.nspname) INTO v_vec
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector';
    IF v_type = 'vector' AND v_mod <= 2000 THEN
        v_key := format('%I %s.vector_cosine_ops', s.target_column, v_vec);
    ELSE
        v_key := format('(%I::%s.halfvec(%s)) %s.halfvec_cosine_ops', s.target_column, v_vec, v_mod, v_vec);
    END IF;
    v_name := left((SELECT c.relname FROM pg_class c WHERE c.oid = s.relation) || '_' || s.target_column, 50) || '_hnsw';
    IF EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = v_name
                  AND c.relnamespace = (SELECT r.relnamespace FROM pg_class r WHERE r.oid = s.relation)) THEN
        v_name := left(v_name, 40) || '_' || s.id || '_hnsw';
    END IF;
    UPDATE qwen3_embed.syncs x SET index_state = 'building', index_name = v_name WHERE x.id = p_id;
    index_name := v_name;
    statement := format('CREATE INDEX CONCURRENTLY %I ON %s USING hnsw (%s)', v_name, s.relation, v_key);
END
$qwen3_embed_sync_index_begin$;

-- The worker's build of sync p_id's index ended: 'ready', or 'failed' with the error (the worker
-- has dropped what the failed build left). Returns the statement that drops a left-over invalid
-- index, or NULL.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_index_end(p_id int, p_error text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_index_end$
DECLARE
    s       qwen3_embed.syncs;
    v_index oid;
BEGIN
    SELECT * INTO s FROM qwen3_embed.syncs x WHERE x.id = p_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT c.oid INTO v_index FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
     WHERE c.relname = s.index_name AND i.indrelid = s.relation;
    IF p_error IS NULL AND v_index IS NOT NULL
       AND (SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = v_index) THEN
        UPDATE qwen3_embed.syncs x SET index_state = 'ready', index_error = NULL WHERE x.id = p_id;
        RETURN NULL;
    END IF;
    UPDATE qwen3_embed.syncs x SET index_state = 'failed', index_error = coalesce(p_error, 'the index is not valid')
     WHERE x.id = p_id;
    IF v_index IS NOT NULL THEN
        RETURN format('DROP INDEX CONCURRENTLY IF EXISTS %s', v_index::regclass);
    END IF;
    RETURN NULL;
END
$qwen3_embed_sync_index_end$;

REVOKE EXECUTE ON FUNCTION qwen3_embed.qwen3_embed_sync_index_syncs(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION qwen3_embed.qwen3_embed_sync_index_begin(int, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION qwen3_embed.qwen3_embed_sync_index_end(int, text) FROM PUBLIC;
