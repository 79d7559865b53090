-- Adopting embeddings made elsewhere (llama.cpp, another server, the engine CLI): a column the
-- extension did not fill is registered as if it had, once a sample of its rows, embedded again
-- with the loaded model, agrees with what is stored. Vectors of another model or another
-- instruction disagree and are refused, with the measured agreement.
--
--   SELECT * FROM qwen3_embed_adopt('docs', 'body', 'embedding');

CREATE FUNCTION @extschema@.qwen3_embed_adopt(
    relation      regclass,
    source_column text,
    target_column text,
    instruct      text    DEFAULT NULL,
    dims          int     DEFAULT NULL,
    sample        int     DEFAULT 32,
    min_cosine    float8  DEFAULT 0.98,
    sync          boolean DEFAULT true)
RETURNS TABLE (sampled int, lowest_cosine float8, mean_cosine float8, sync_id int, queued bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_adopt$
#variable_conflict use_variable
DECLARE
    v_what  text := 'qwen3_embed_adopt';
    v_owner oid;
    v_type  oid;
    v_mod   int;
    v_texts text[];
    v_saved text[];
    v_max   int;
    v_bad   int;
    r       jsonb;
BEGIN
    IF relation IS NULL OR source_column IS NULL OR target_column IS NULL THEN
        RAISE EXCEPTION '%: relation, source_column and target_column must not be NULL', v_what
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF sample IS NULL OR sample NOT BETWEEN 1 AND 10000 OR min_cosine IS NULL OR min_cosine NOT BETWEEN -1 AND 1 THEN
        RAISE EXCEPTION '%: sample must be between 1 and 10000 and min_cosine between -1 and 1, got % and %',
                v_what, coalesce(sample::text, 'NULL'), coalesce(min_cosine::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.relowner INTO v_owner FROM pg_class c WHERE c.oid = relation;
    IF NOT pg_has_role(current_user, v_owner, 'USAGE') THEN
        RAISE EXCEPTION '%: must be the owner of table % (or a member of its owning role %)', v_what, relation, v_owner::regrole
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT x.atttypid, x.atttypmod INTO v_type, v_mod FROM pg_attribute x
     WHERE x.attrelid = relation AND x.attname = target_column AND x.attnum > 0 AND NOT x.attisdropped;
    IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = relation AND x.attname = source_column
                                   AND x.attnum > 0 AND NOT x.attisdropped) THEN
        RAISE EXCEPTION '%: % has no column "%"', v_what, relation,
                CASE WHEN v_type IS NULL THEN target_column ELSE source_column END
            USING ERRCODE = 'undefined_column';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_extension e ON e.extname = 'vector' AND e.extnamespace = t.typnamespace
                    WHERE t.oid = v_type AND t.typname IN ('vector', 'halfvec')) THEN
        RAISE EXCEPTION '%: column "%" of % is %, not vector or halfvec', v_what, target_column, relation, format_type(v_type, v_mod)
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    SELECT i.max_dims INTO v_max FROM @extschema@.qwen3_embed_info() i;
    dims := coalesce(dims, nullif(v_mod, -1));
    IF dims IS NOT NULL AND (dims NOT BETWEEN 32 AND v_max OR (v_mod > 0 AND dims <> v_mod)) THEN
        RAISE EXCEPTION '%: dims % does not fit column "%" of % (%) or the model (32 to %)',
                v_what, dims, target_column, relation, format_type(v_type, v_mod), v_max
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    -- The sample: rows with both a text and a vector, at random.
    EXECUTE format('SELECT array_agg(s.src ORDER BY s.n), array_agg(s.dst ORDER BY s.n) FROM ('
                   'SELECT t.%1$I::text AS src, t.%2$I::text AS dst, row_number() OVER () AS n FROM %3$s t '
                   'WHERE t.%1$I IS NOT NULL AND t.%2$I IS NOT NULL ORDER BY random() LIMIT $1) s',
                   source_column, target_column, relation)
       INTO v_texts, v_saved USING sample;
    IF v_texts IS NULL THEN
        RAISE EXCEPTION '%: no row of % has both % and %: there is nothing to compare', v_what, relation,
                quote_ident(source_column), quote_ident(target_column)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'qwen3_embed_sync fills an empty column.';
    END IF;
    -- Embedded again (once), and compared as float8 arrays (no pgvector operator is needed).
    WITH pairs AS MATERIALIZED (
        SELECT translate(s.v, '[]', '{}')::float8[] AS a, translate(e.embedding::text, '[]', '{}')::float8[] AS b
          FROM unnest(v_saved) WITH ORDINALITY AS s(v, ord)
          JOIN @extschema@.qwen3_embed_batch(v_texts, instruct, dims) e ON e.ord = s.ord
    ), compared AS (
        SELECT cardinality(p.a) = cardinality(p.b) AS same,
               (SELECT sum(x * y) / nullif(sqrt(sum(x * x) * sum(y * y)), 0) FROM unnest(p.a, p.b) u(x, y)) AS c
          FROM pairs p
    )
    SELECT count(*) FILTER (WHERE NOT x.same)::int, count(*)::int,
           min(x.c) FILTER (WHERE x.same), avg(x.c) FILTER (WHERE x.same)
      INTO v_bad, sampled, lowest_cosine, mean_cosine
      FROM compared x;
    IF v_bad > 0 THEN
        RAISE EXCEPTION '%: % of % sampled vectors of %.% have another size than the model makes with dims %',
                v_what, v_bad, sampled, relation, quote_ident(target_column), coalesce(dims::text, 'NULL')
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'Pass the dims the vectors were made with.';
    END IF;
    IF lowest_cosine IS NULL OR lowest_cosine < min_cosine THEN
        RAISE EXCEPTION '%: %.% does not hold the loaded model''s vectors for instruct %: % sampled rows agree at cosine % (lowest) and % (mean), below %',
                v_what, relation, quote_ident(target_column), coalesce(quote_literal(instruct), 'NULL'), sampled,
                round(lowest_cosine::numeric, 4), round(mean_cosine::numeric, 4), min_cosine
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Vectors of another model, quantization or instruction cannot share a column with this model''s: pass the instruct and dims they were made with, or re-embed the column (CALL qwen3_embed_reembed).';
    END IF;
    PERFORM qwen3_embed.qwen3_embed_column_model(relation, target_column, instruct, dims);
    queued := 0;
    IF sync THEN
        r := qwen3_embed.qwen3_embed_state('sync_add', jsonb_build_object(
            'what', v_what, 'relation', relation::oid, 'source_column', source_column,
            'target_column', target_column, 'instruct', instruct, 'dims', dims, 'batch_size', 64,
            'max_attempts', 5));
        sync_id := (r->>'id')::int;
        queued := qwen3_embed.qwen3_embed_sync_backlog(sync_id, relation, false, true);
        RAISE NOTICE '%: %.% is adopted and kept in step with %; % rows without a vector queued', v_what,
            relation, quote_ident(target_column), quote_ident(source_column), queued;
        PERFORM qwen3_embed.qwen3_embed_sync_workers_here(v_what);
    ELSE
        RAISE NOTICE '%: %.% is adopted', v_what, relation, quote_ident(target_column);
    END IF;
    RETURN NEXT;
END
$qwen3_embed_adopt$;
