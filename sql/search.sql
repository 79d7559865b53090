-- Search in one call: the rows of a table that best answer a question. Two rankings of the
-- table's rows, fused by reciprocal rank fusion (RRF), then, when asked, reordered by the
-- reranker:
--   the vector stage   the query's embedding against the embedding column (its HNSW index);
--   the keyword stage  PostgreSQL's full-text search: rows holding any of the query's words,
--                      ranked by ts_rank_cd (through a GIN index on to_tsvector(config, text));
--   fusion             score = vector_weight / (rrf_k + vector rank)
--                            + keyword_weight / (rrf_k + keyword rank), a stage that did not
--                      find a row adding nothing;
--   rerank             the fused best `candidates` read with the query by Qwen3-Reranker,
--                      ordered by its P(yes).
-- It runs as the caller (never SECURITY DEFINER): privileges and row-level security apply to
-- every stage. On a table synced with qwen3_embed_sync_chunks it searches the chunks and
-- returns each row once, with its best chunk.
--
--   SELECT key, doc->>'body' FROM qwen3_search('kb', 'error XQZ-4471', k => 5);

-- The operator of the distance `column` is indexed for (cosine when it has no index), and
-- whether it has an HNSW or IVFFlat index.
CREATE FUNCTION qwen3_embed.qwen3_search_distance(p_table regclass, p_column name, OUT operator text, OUT indexed boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_search_distance$
SELECT coalesce(
           (SELECT CASE
                       WHEN opc.opcname LIKE '%\_l2\_ops' THEN '<->'
                       WHEN opc.opcname LIKE '%\_ip\_ops' THEN '<#>'
                       WHEN opc.opcname LIKE '%\_l1\_ops' THEN '<+>'
                       ELSE '<=>'
                   END
              FROM pg_index i
              JOIN pg_class ic ON ic.oid = i.indexrelid
              JOIN pg_am am ON am.oid = ic.relam
              JOIN pg_opclass opc ON opc.oid = i.indclass[0]
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
             WHERE i.indrelid = p_table AND a.attname = p_column AND am.amname IN ('hnsw', 'ivfflat')
             ORDER BY am.amname = 'hnsw' DESC, opc.opcname LIKE '%cosine%' DESC
             LIMIT 1),
           '<=>'),
       EXISTS (SELECT 1 FROM pg_index i
                 JOIN pg_class ic ON ic.oid = i.indexrelid
                 JOIN pg_am am ON am.oid = ic.relam
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                WHERE i.indrelid = p_table AND a.attname = p_column AND am.amname IN ('hnsw', 'ivfflat'))
$qwen3_search_distance$;

-- The one column of p_table other than its key p_key that holds the text (p_kind 'text': text,
-- varchar or char) or the embeddings ('embedding': pgvector's vector or halfvec); raises 42703
-- when there is none, 42702 when there are several (naming them).
CREATE FUNCTION qwen3_embed.qwen3_search_column(p_what text, p_table regclass, p_kind text, p_key name)
RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_search_column$
DECLARE
    v_col   name;
    v_cands text;
BEGIN
    SELECT CASE WHEN count(*) = 1 THEN min(a.attname) END, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
      INTO v_col, v_cands
      FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> p_key
       AND CASE p_kind
               WHEN 'text' THEN a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype)
               ELSE t.typname IN ('vector', 'halfvec')
                    AND t.typnamespace = (SELECT e.extnamespace FROM pg_extension e WHERE e.extname = 'vector')
           END;
    IF v_col IS NULL THEN
        RAISE EXCEPTION '%: cannot tell which column of % holds the %: name it with %_column => (%)',
                p_what, p_table, CASE p_kind WHEN 'text' THEN 'text' ELSE 'embeddings' END, p_kind,
                coalesce('one of ' || v_cands,
                         CASE p_kind WHEN 'text' THEN 'it has no text column' ELSE 'it has no vector or halfvec column' END)
            USING ERRCODE = CASE WHEN v_cands IS NULL THEN 'undefined_column' ELSE 'ambiguous_column' END;
    END IF;
    RETURN v_col;
END
$qwen3_search_column$;

-- The WHERE clause of `filter` over the row alias `p_alias`: each key a column of `p_table`, equal to
-- the value (a JSON array: any of its values; null: IS NULL), compared in the column's type.
CREATE FUNCTION qwen3_embed.qwen3_search_filter(p_table regclass, p_filter jsonb, p_alias name)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_search_filter$
DECLARE
    v_where text := 'true';
    v_col   text;
    v_value jsonb;
    v_type  text;
BEGIN
    IF p_filter IS NULL THEN
        RETURN v_where;
    END IF;
    IF jsonb_typeof(p_filter) <> 'object' THEN
        RAISE EXCEPTION 'qwen3_search: filter must be a JSON object of column names and values, got %', p_filter
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example filter => ''{"tenant_id": 42}'' or ''{"lang": ["en", "de"]}''.';
    END IF;
    FOR v_col, v_value IN SELECT e.key, e.value FROM jsonb_each(p_filter) e ORDER BY e.key LOOP
        SELECT format_type(a.atttypid, a.atttypmod) INTO v_type
          FROM pg_attribute a
         WHERE a.attrelid = p_table AND a.attname = v_col AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'qwen3_search: filter names "%", which is not a column of %', v_col, p_table
                USING ERRCODE = 'undefined_column';
        END IF;
        v_where := v_where || ' AND ' || CASE jsonb_typeof(v_value)
            WHEN 'null' THEN format('%I.%I IS NULL', p_alias, v_col)
            WHEN 'array' THEN format('%I.%I = ANY (ARRAY(SELECT pg_catalog.jsonb_array_elements_text(%L::pg_catalog.jsonb))::%s[])',
                                     p_alias, v_col, v_value, v_type)
            ELSE format('%I.%I = %L::%s', p_alias, v_col, v_value #>> '{}', v_type)
        END;
    END LOOP;
    RETURN v_where;
END
$qwen3_search_filter$;

CREATE FUNCTION @extschema@.qwen3_search(
    relation         regclass,
    query            text,
    k                int       DEFAULT 10,
    candidates       int       DEFAULT 50,
    rerank           boolean   DEFAULT false,
    filter           jsonb     DEFAULT NULL,
    text_column      text      DEFAULT NULL,
    embedding_column text      DEFAULT NULL,
    ts_config        regconfig DEFAULT NULL,
    rrf_k            int       DEFAULT 60,
    vector_weight    float8    DEFAULT 1,
    keyword_weight   float8    DEFAULT 1,
    instruct         text      DEFAULT NULL,
    rerank_instruct  text      DEFAULT NULL,
    chunk_table      regclass  DEFAULT NULL)
RETURNS TABLE (key text, rank int, vector_rank int, keyword_rank int, fused_score float8,
               rerank_score real, chunk_no int, doc jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET hnsw.iterative_scan = 'relaxed_order'
AS $qwen3_search$
#variable_conflict use_variable
DECLARE
    v_what     text := 'qwen3_search';
    v_table    regclass;            -- where the searched rows are: the relation, or its chunks
    v_chunked  boolean := false;
    v_key      name;
    v_key_type text;
    v_text     name := text_column;
    v_emb      name := embedding_column;
    v_emb_type oid;
    v_dims     int;
    v_reg_dims int;
    v_vec_nsp  name;
    v_vec_type text;
    v_op       text;
    v_indexed  boolean;
    v_fp       text;
    v_next_fp  text;
    v_where    text;
    v_config   regconfig := coalesce(ts_config, current_setting('default_text_search_config')::regconfig);
    v_tsquery  tsquery;
    v_query    text;
    v_qvec     text;
    v_keys     text[];
    v_chunks   int[];
    v_vranks   int[];
    v_kranks   int[];
    v_scores   float8[];
    v_texts    text[];
    v_rr       real[];
    v_cands    text;
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION '%: relation must not be NULL', v_what USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF query IS NULL OR btrim(query) = '' THEN
        RETURN;
    END IF;
    IF k IS NULL OR k NOT BETWEEN 1 AND 10000 OR candidates IS NULL OR candidates NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION '%: k and candidates must be between 1 and 10000, got % and %',
                v_what, coalesce(k::text, 'NULL'), coalesce(candidates::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF rrf_k IS NULL OR rrf_k < 0 OR vector_weight IS NULL OR vector_weight < 0
       OR keyword_weight IS NULL OR keyword_weight < 0 OR rerank IS NULL THEN
        RAISE EXCEPTION '%: rrf_k, vector_weight and keyword_weight must be 0 or more, and rerank true or false', v_what
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = relation AND c.relkind IN ('r', 'p', 'm')) THEN
        RAISE EXCEPTION '%: % is not a table', v_what, relation USING ERRCODE = 'wrong_object_type';
    END IF;
    SELECT a.attname, format_type(a.atttypid, a.atttypmod) INTO v_key, v_key_type
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = relation AND i.indisprimary AND i.indnkeyatts = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: % needs a single-column primary key, to name its rows', v_what, relation
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;

    -- Which rows and columns: the chunks of a chunked sync, else the table's own columns (its
    -- sync's, or the only text and the only vector column).
    IF chunk_table IS NULL AND text_column IS NULL AND embedding_column IS NULL THEN
        SELECT s.chunk_table INTO chunk_table FROM qwen3_embed.syncs s
         WHERE s.relation = relation AND s.chunk_table IS NOT NULL ORDER BY s.id LIMIT 1;
    END IF;
    IF chunk_table IS NOT NULL THEN
        IF text_column IS NOT NULL OR embedding_column IS NOT NULL THEN
            RAISE EXCEPTION '%: a chunk table is searched by its chunk and embedding columns: leave text_column and embedding_column out', v_what
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = chunk_table AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attname IN (v_key, 'chunk_no', 'chunk', 'embedding')) <> 4 THEN
            RAISE EXCEPTION '%: % is not a chunk table of % (it needs the columns %, chunk_no, chunk and embedding)',
                    v_what, chunk_table, relation, v_key
                USING ERRCODE = 'undefined_column';
        END IF;
        v_chunked := true;
        v_table := chunk_table;
        v_text := 'chunk';
        v_emb := 'embedding';
    ELSE
        v_table := relation;
        IF v_text IS NULL OR v_emb IS NULL THEN
            SELECT CASE WHEN count(*) = 1 THEN min(s.source_column) END, CASE WHEN count(*) = 1 THEN min(s.target_column) END
              INTO v_query, v_cands
              FROM qwen3_embed.syncs s
             WHERE s.relation = relation AND s.chunk_table IS NULL
               AND (v_emb IS NULL OR s.target_column = v_emb) AND (v_text IS NULL OR s.source_column = v_text);
            v_text := coalesce(v_text, v_query);
            v_emb := coalesce(v_emb, v_cands);
        END IF;
        v_text := coalesce(v_text, qwen3_embed.qwen3_search_column(v_what, relation, 'text', v_key));
        v_emb := coalesce(v_emb, qwen3_embed.qwen3_search_column(v_what, relation, 'embedding', v_key));
        IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = relation AND a.attname = v_text
                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION '%: % has no column "%"', v_what, relation, v_text USING ERRCODE = 'undefined_column';
        END IF;
    END IF;
    SELECT a.atttypid, CASE WHEN a.atttypmod > 0 THEN a.atttypmod END, n.nspname, t.typname
      INTO v_emb_type, v_dims, v_vec_nsp, v_vec_type
      FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE a.attrelid = v_table AND a.attname = v_emb AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: % has no column "%"', v_what, v_table, v_emb USING ERRCODE = 'undefined_column';
    END IF;
    IF v_vec_type NOT IN ('vector', 'halfvec') OR NOT EXISTS (SELECT 1 FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                                                              WHERE e.extname = 'vector' AND n.nspname = v_vec_nsp) THEN
        RAISE EXCEPTION '%: column "%" of % is %, not vector or halfvec', v_what, v_emb, v_table, format_type(v_emb_type, NULL)
            USING ERRCODE = 'datatype_mismatch';
    END IF;

    -- The column's model: a registered column must be searched with the model that filled it.
    SELECT c.fingerprint, c.next_fingerprint, c.dims INTO v_fp, v_next_fp, v_reg_dims
      FROM qwen3_embed.columns c WHERE c.relation = v_table AND c.column_name = v_emb;
    v_dims := coalesce(v_dims, v_reg_dims);
    IF v_fp IS NOT NULL AND (SELECT i.fingerprint FROM @extschema@.qwen3_embed_info() i) NOT IN (v_fp, coalesce(v_next_fp, v_fp)) THEN
        RAISE EXCEPTION '%: the loaded model is not the one that filled %.%', v_what, v_table, v_emb
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Point qwen3_embed.model_path at the model of the column (SELECT * FROM qwen3_embed_check() shows it), or re-embed the column with the loaded one.';
    END IF;

    SELECT d.operator, d.indexed INTO v_op, v_indexed FROM qwen3_embed.qwen3_search_distance(v_table, v_emb) d;
    IF NOT v_indexed THEN
        RAISE NOTICE '%: %.% has no HNSW index: the vector stage reads every row', v_what, v_table, v_emb
            USING HINT = format('CREATE INDEX ON %s USING hnsw (%I %s_cosine_ops);', v_table, v_emb, v_vec_type);
    END IF;
    v_where := qwen3_embed.qwen3_search_filter(relation, filter, CASE WHEN v_chunked THEN 'p' ELSE 's' END);
    v_qvec := @extschema@.qwen3_embed_query(query, coalesce(instruct, @extschema@.qwen3_embed_default_task()), v_dims)::text;
    v_op := format('OPERATOR(%I.%s)', v_vec_nsp, v_op);
    v_vec_type := format('%I.%I', v_vec_nsp, v_vec_type);
    -- The keyword stage matches any of the query's words, as the configuration reads them.
    SELECT nullif(array_to_string(array(SELECT quote_literal(l) FROM unnest(tsvector_to_array(to_tsvector(v_config, query))) l), ' | '), '')::tsquery
      INTO v_tsquery;

    v_query := format($sql$
        WITH vec AS (
            SELECT b.key, b.chunk_no, (row_number() OVER (ORDER BY b.d, b.key))::int AS rank
              FROM (SELECT DISTINCT ON (x.key) x.key, x.chunk_no, x.d
                      FROM (SELECT s.%2$I::text AS key, %3$s AS chunk_no, s.%4$I %5$s $1::%6$s AS d
                              FROM %7$s s %8$s
                             WHERE s.%4$I IS NOT NULL AND %9$s
                             ORDER BY s.%4$I %5$s $1::%6$s
                             LIMIT %10$s) x
                     ORDER BY x.key, x.d) b
             ORDER BY b.d, b.key
             LIMIT %11$s
        ), kw AS (
            SELECT b.key, b.chunk_no, (row_number() OVER (ORDER BY b.r DESC, b.key))::int AS rank
              FROM (SELECT DISTINCT ON (x.key) x.key, x.chunk_no, x.r
                      FROM (SELECT s.%2$I::text AS key, %3$s AS chunk_no,
                                   pg_catalog.ts_rank_cd(pg_catalog.to_tsvector(%12$L::pg_catalog.regconfig, s.%13$I), $2) AS r
                              FROM %7$s s %8$s
                             WHERE $2 IS NOT NULL
                               AND pg_catalog.to_tsvector(%12$L::pg_catalog.regconfig, s.%13$I) OPERATOR(pg_catalog.@@) $2
                               AND %9$s
                             ORDER BY r DESC, key
                             LIMIT %10$s) x
                     ORDER BY x.key, x.r DESC) b
             ORDER BY b.r DESC, b.key
             LIMIT %11$s
        ), fused AS (
            SELECT coalesce(vec.key, kw.key) AS key,
                   CASE WHEN kw.rank < vec.rank OR vec.rank IS NULL THEN kw.chunk_no ELSE vec.chunk_no END AS chunk_no,
                   vec.rank AS vrank, kw.rank AS krank,
                   coalesce($3 / ($4 + vec.rank), 0) + coalesce($5 / ($4 + kw.rank), 0) AS score
              FROM vec FULL JOIN kw ON kw.key = vec.key
             ORDER BY score DESC, key
             LIMIT %11$s
        )
        SELECT array_agg(f.key ORDER BY f.score DESC, f.key), array_agg(f.chunk_no ORDER BY f.score DESC, f.key),
               array_agg(f.vrank ORDER BY f.score DESC, f.key), array_agg(f.krank ORDER BY f.score DESC, f.key),
               array_agg(f.score ORDER BY f.score DESC, f.key),
               CASE WHEN $6 THEN array_agg(t.%13$I ORDER BY f.score DESC, f.key) END
          FROM fused f
          LEFT JOIN %7$s t ON $6 AND t.%2$I = f.key::%14$s %15$s
        $sql$,
        NULL, v_key,
        CASE WHEN v_chunked THEN 's.chunk_no' ELSE 'NULL::int' END,
        v_emb, v_op, v_vec_type, v_table,
        CASE WHEN v_chunked THEN format('JOIN %s p ON p.%I = s.%I', relation, v_key, v_key) ELSE '' END,
        v_where,
        CASE WHEN v_chunked THEN candidates * 4 ELSE candidates END,
        CASE WHEN rerank THEN candidates ELSE greatest(k, candidates) END,
        v_config::text, v_text, v_key_type,
        CASE WHEN v_chunked THEN 'AND t.chunk_no = f.chunk_no' ELSE '' END);
    EXECUTE v_query INTO v_keys, v_chunks, v_vranks, v_kranks, v_scores, v_texts
        USING v_qvec, v_tsquery, vector_weight, rrf_k::float8, keyword_weight, rerank;
    IF v_keys IS NULL THEN
        RETURN;
    END IF;
    IF rerank THEN
        SELECT array_agg(r.score ORDER BY r.ord) INTO v_rr
          FROM @extschema@.qwen3_rerank(query, v_texts, rerank_instruct) r;
    END IF;
    RETURN QUERY EXECUTE format($sql$
        SELECT u.key, (row_number() OVER (ORDER BY u.rr DESC NULLS LAST, u.score DESC, u.key))::int,
               u.vrank, u.krank, u.score, u.rr, u.chunk_no, pg_catalog.to_jsonb(p)
          FROM unnest($1, $2, $3, $4, $5, $6) AS u(key, chunk_no, vrank, krank, score, rr)
          LEFT JOIN %1$s p ON p.%2$I = u.key::%3$s
         ORDER BY u.rr DESC NULLS LAST, u.score DESC, u.key
         LIMIT $7
        $sql$, relation, v_key, v_key_type)
        USING v_keys, v_chunks, v_vranks, v_kranks, v_scores, coalesce(v_rr, array_fill(NULL::real, ARRAY[cardinality(v_keys)])), k;
END
$qwen3_search$;
