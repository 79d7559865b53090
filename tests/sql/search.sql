-- qwen3_search: the vector and keyword rankings fused by RRF, checked against the same fusion
-- computed here in plain SQL from each stage's own ranking; keyword-only matches; the rerank
-- order against qwen3_rerank; chunked tables; privileges and row-level security; bad input.
-- Then the query cache: a hit is the same vector bit for bit, another model never gets it,
-- the bound holds and the counters move.
CREATE TABLE srch (id int PRIMARY KEY, tenant int NOT NULL, body text NOT NULL, embedding vector(64));
INSERT INTO srch
SELECT g, g % 3, 'note ' || g || ' on ' || (ARRAY['postgres tables', 'vector search', 'disk errors', 'cats and dogs', 'query plans'])[1 + g % 5]
  FROM generate_series(1, 120) g;
INSERT INTO srch VALUES (121, 0, 'the zyxwv failure code shows up when the disk is full', NULL);
UPDATE srch SET embedding = qwen3_embed(body, NULL, 64);

-- Each stage's own ranking, computed here: exact distances (no index: the function says so
-- with a NOTICE and reads every row too) and ts_rank_cd over the rows holding any query word.
CREATE FUNCTION srch_reference(q text, n int, cfg regconfig DEFAULT 'simple')
RETURNS TABLE (key text, vrank int, krank int, score float8)
LANGUAGE sql AS $$
WITH v AS (
    SELECT id::text AS key, (row_number() OVER (ORDER BY d, id::text))::int AS rank
      FROM (SELECT id, embedding <=> qwen3_embed_query(q, qwen3_embed_default_task(), 64) AS d FROM srch ORDER BY d, id::text LIMIT n) x
), words AS (
    SELECT array_to_string(array(SELECT quote_literal(l) FROM unnest(tsvector_to_array(to_tsvector(cfg, q))) l), ' | ')::tsquery AS tq
), k AS (
    SELECT id::text AS key, (row_number() OVER (ORDER BY r DESC, id::text))::int AS rank
      FROM (SELECT id, ts_rank_cd(to_tsvector(cfg, body), tq) AS r FROM srch, words
             WHERE to_tsvector(cfg, body) @@ tq ORDER BY r DESC, id::text LIMIT n) x
)
SELECT coalesce(v.key, k.key), v.rank, k.rank, coalesce(1.0 / (60 + v.rank), 0) + coalesce(1.0 / (60 + k.rank), 0)
  FROM v FULL JOIN k ON k.key = v.key
$$;

-- Fusion: every rank and score of the top 10 equals the reference's.
CREATE TEMP TABLE got AS
SELECT * FROM qwen3_search('srch'::regclass, 'disk errors on postgres tables', k => 10, candidates => 20, ts_config => 'simple');
SELECT count(*) AS rows_returned,
       count(*) FILTER (WHERE g.vector_rank IS NOT DISTINCT FROM r.vrank AND g.keyword_rank IS NOT DISTINCT FROM r.krank
                          AND abs(g.fused_score - r.score) < 1e-12) AS equal_to_reference,
       bool_and(g.doc ->> 'body' = s.body) AS rows_are_the_tables
  FROM got g
  JOIN srch_reference('disk errors on postgres tables', 20) r ON r.key = g.key
  JOIN srch s ON s.id::text = g.key;
SELECT array_agg(g.key ORDER BY g.rank) = (SELECT array_agg(key ORDER BY score DESC, key) FROM
         (SELECT * FROM srch_reference('disk errors on postgres tables', 20) ORDER BY score DESC, key LIMIT 10) r) AS same_order
  FROM got g;

-- A rare word that only the keyword stage places: found by the fused search, not by the
-- vector stage alone.
SELECT key, rank, vector_rank, keyword_rank
  FROM qwen3_search('srch', 'zyxwv', k => 3, candidates => 5, ts_config => 'simple') WHERE key = '121';
SELECT count(*) AS vector_stage_alone_finds_it
  FROM (SELECT id FROM srch ORDER BY embedding <=> qwen3_embed_query('zyxwv', dims => 64), id LIMIT 5) v WHERE id = 121;
-- No word of the query in any row: the vector ranking alone, unchanged.
SELECT array_agg(key ORDER BY rank) = (SELECT array_agg(id::text ORDER BY embedding <=> qwen3_embed_query('qqqq wwww', dims => 64), id::text)
                                         FROM (SELECT * FROM srch ORDER BY embedding <=> qwen3_embed_query('qqqq wwww', dims => 64), id::text LIMIT 5) s)
       AS vector_ranking_unchanged,
       bool_and(keyword_rank IS NULL) AS no_keyword_ranks
  FROM qwen3_search('srch', 'qqqq wwww', k => 5, ts_config => 'simple');

-- With an HNSW index, the same call takes it (no NOTICE), and a filter holds in every stage.
CREATE INDEX ON srch USING hnsw (embedding vector_cosine_ops);
SELECT count(*) AS rows_returned, bool_and((doc ->> 'tenant')::int = 2) AS only_tenant_2
  FROM qwen3_search('srch', 'disk errors', k => 10, filter => '{"tenant": 2}');
SELECT count(*) AS rows_returned, bool_and((doc ->> 'tenant')::int IN (0, 1)) AS only_tenants_0_1
  FROM qwen3_search('srch', 'disk errors', k => 10, filter => '{"tenant": [0, 1]}');

-- Rerank: the fused candidates in the order of qwen3_rerank's own scores for them.
CREATE TEMP TABLE reranked AS
SELECT * FROM qwen3_search('srch', 'disk errors', k => 5, candidates => 8, rerank => true, ts_config => 'simple');
SELECT count(*) AS rows_returned,
       bool_and(r.rerank_score = qwen3_rerank_score('disk errors', s.body)) AS scores_are_qwen3_rerank_s,
       array_agg(r.key ORDER BY r.rank) = array_agg(r.key ORDER BY r.rerank_score DESC, r.fused_score DESC, r.key) AS ordered_by_score
  FROM reranked r JOIN srch s ON s.id::text = r.key;
WITH fused AS (
    SELECT q.key, s.body, row_number() OVER (ORDER BY q.fused_score DESC, q.key) AS ord
      FROM qwen3_search('srch', 'disk errors', k => 8, candidates => 8, ts_config => 'simple') q
      JOIN srch s ON s.id::text = q.key
)
SELECT (SELECT array_agg(key ORDER BY rank) FROM reranked)
       = ARRAY(SELECT f.key FROM fused f
                 JOIN qwen3_rerank('disk errors', (SELECT array_agg(body ORDER BY ord) FROM fused)) x ON x.ord = f.ord
                ORDER BY x.score DESC, f.ord LIMIT 5) AS same_as_reranking_by_hand;

-- A chunked table: each document once, with its chunk that ranks best (in the stage that ranks
-- the document higher).
CREATE TABLE long_docs (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO long_docs
SELECT g, repeat('filler words about nothing in particular ' || g || ' ', 40) || CASE WHEN g = 3 THEN ' the zyxwv code' ELSE '' END
  FROM generate_series(1, 6) g;
SET client_min_messages = error;  -- the warning that no worker drains this database differs by mode
SELECT qwen3_embed_sync_chunks('long_docs', 'body', 'long_docs_chunks', chunk_tokens => 64, overlap => 8, dims => 64) > 0 AS synced;
RESET client_min_messages;
SELECT qwen3_embed_sync_run(NULL, 100) >= 0 AS drained;
SELECT count(*) > 6 AS several_chunks_a_document FROM long_docs_chunks WHERE embedding IS NOT NULL;
SELECT count(*) AS rows_returned, count(DISTINCT key) AS distinct_documents, bool_and(chunk_no IS NOT NULL) AS chunk_named
  FROM qwen3_search('long_docs', 'zyxwv code', k => 10, ts_config => 'simple');
SELECT key, chunk_no = (SELECT min(chunk_no) FROM long_docs_chunks WHERE id = 3 AND chunk LIKE '%zyxwv%') AS the_matching_chunk,
       keyword_rank
  FROM qwen3_search('long_docs', 'zyxwv', k => 10, ts_config => 'simple') WHERE keyword_rank IS NOT NULL;

-- Privileges and row-level security: a role without SELECT gets 42501; with a policy, rows
-- it cannot see appear in no stage.
CREATE FUNCTION srch_err(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
CREATE ROLE srch_reader LOGIN;
SET ROLE srch_reader;
SELECT srch_err($$SELECT * FROM qwen3_search('srch', 'disk errors')$$) AS without_select;
RESET ROLE;
GRANT SELECT ON srch TO srch_reader;
ALTER TABLE srch ENABLE ROW LEVEL SECURITY;
CREATE POLICY srch_tenant_1 ON srch FOR SELECT TO srch_reader USING (tenant = 1);
SET ROLE srch_reader;
SELECT count(*) AS rows_returned, bool_and((doc ->> 'tenant')::int = 1) AS only_visible_rows
  FROM qwen3_search('srch', 'disk errors zyxwv', k => 50, candidates => 100);
SELECT count(*) AS invisible_keyword_match FROM qwen3_search('srch', 'zyxwv', k => 50) WHERE key = '121';
RESET ROLE;
ALTER TABLE srch DISABLE ROW LEVEL SECURITY;

-- Bad input: each a clear error with its SQLSTATE, or no rows where documented.
SELECT count(*) AS rows_for_null_query FROM qwen3_search('srch', NULL);
SELECT count(*) AS rows_for_empty_query FROM qwen3_search('srch', '   ');
CREATE TABLE two_vectors (id int PRIMARY KEY, body text, a vector(64), b vector(64));
CREATE TABLE no_key (body text, embedding vector(64));
CREATE VIEW srch_view AS SELECT * FROM srch;
SELECT srch_err(s) AS error FROM unnest(ARRAY[
    $$SELECT * FROM qwen3_search(NULL, 'x')$$,
    $$SELECT * FROM qwen3_search('srch', 'x', k => 0)$$,
    $$SELECT * FROM qwen3_search('srch', 'x', k => 100000)$$,
    $$SELECT * FROM qwen3_search('srch', 'x', candidates => NULL)$$,
    $$SELECT * FROM qwen3_search('srch', 'x', vector_weight => -1)$$,
    $$SELECT * FROM qwen3_search('srch', 'x', filter => '[1]')$$,
    $$SELECT * FROM qwen3_search('srch', 'x', filter => '{"nope": 1}')$$,
    $$SELECT * FROM qwen3_search('srch', 'x', filter => '{"tenant": "not a number"}')$$,
    $$SELECT * FROM qwen3_search('srch', 'x', ts_config => 'nope')$$,
    $$SELECT * FROM qwen3_search('srch', 'x', embedding_column => 'body')$$,
    $$SELECT * FROM qwen3_search('srch', 'x', text_column => 'nope')$$,
    $$SELECT * FROM qwen3_search('two_vectors', 'x')$$,
    $$SELECT * FROM qwen3_search('no_key', 'x')$$,
    $$SELECT * FROM qwen3_search('srch_view', 'x')$$]) s;

-- The query cache: a repeated query is the same vector bit for bit (as text: pgvector prints
-- the shortest decimal that reads back the same float), a batch call computes it afresh to the
-- same bits, the hit counter moves, the bound holds.
SELECT hits AS hits_before, misses AS misses_before FROM qwen3_embed_query_cache() \gset
SELECT qwen3_embed_query('a query seen twice', dims => 64)::text AS first_vector \gset
SELECT qwen3_embed_query('a query seen twice', dims => 64)::text = :'first_vector' AS same_bits_on_a_hit;
SELECT embedding::text = :'first_vector' AS same_bits_as_a_fresh_batch
  FROM qwen3_embed_batch(ARRAY['a query seen twice', 'another text'], qwen3_embed_default_task(), 64) WHERE ord = 1;
SELECT hits - :hits_before >= 1 AS hit_counted, misses - :misses_before >= 1 AS miss_counted,
       bytes <= max_bytes AS within_bound, max_bytes = 64 * 1024 * 1024 AS default_bound
  FROM qwen3_embed_query_cache();
-- Another role's query is computed, not answered from this role's entry: a fast answer would
-- tell it what this role asked.
SET ROLE srch_reader;
SELECT hits AS hits_before, misses AS misses_before FROM qwen3_embed_query_cache() \gset
SELECT qwen3_embed_query('a query seen twice', dims => 64)::text = :'first_vector' AS same_vector;
SELECT hits = :hits_before AS not_a_hit, misses = :misses_before + 1 AS a_miss FROM qwen3_embed_query_cache();
RESET ROLE;
-- Another model never gets this model's vectors; back on this model, the cached one is served.
\getenv QWEN3_MODEL QWEN3_EMBED_MODEL
SELECT replace(:'QWEN3_MODEL', 'model-q8_0.gguf', 'model-q4_k_m.gguf') AS q4_model \gset
SET qwen3_embed.model_path = :'q4_model';
SELECT qwen3_embed_query('a query seen twice', dims => 64)::text <> :'first_vector' AS other_model_other_vector;
RESET qwen3_embed.model_path;
SELECT qwen3_embed_query('a query seen twice', dims => 64)::text = :'first_vector' AS this_model_again;
-- A document written is never kept: inserting a row does not add an entry.
SELECT entries AS entries_before FROM qwen3_embed_query_cache() \gset
CREATE TABLE srch_written (id int PRIMARY KEY, embedding vector(64));
INSERT INTO srch_written VALUES (1, qwen3_embed('a document written once', NULL, 64));
UPDATE srch SET embedding = qwen3_embed(body || ' changed', NULL, 64) WHERE id = 1;
SELECT entries = :entries_before AS nothing_kept_for_writes FROM qwen3_embed_query_cache();

DROP TABLE srch_written, two_vectors, no_key, long_docs_chunks, long_docs;
DROP VIEW srch_view;
DROP TABLE srch;
DROP FUNCTION srch_reference(text, int, regconfig);
DROP FUNCTION srch_err(text);
DROP ROLE srch_reader;
