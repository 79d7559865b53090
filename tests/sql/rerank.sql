-- qwen3_rerank and qwen3_rerank_score with the reranker of qwen3_embed.reranker_path (the tiny
-- random-weight reranker, seed 42, as engine/tests/rerank.rs generates it) against the scores
-- transformers gives on the same checkpoint (engine/tests/golden/rerank/, made by
-- scripts/make_rerank_goldens.py with the model card's scoring code): |difference| <= 1e-4
-- for the F32 file and <= 2e-2 for Q8_0 (int8 activations, as in llama.cpp). tests/sql.sh
-- copies the pairs and goldens and passes their paths.
\getenv rerank_pairs QWEN3_EMBED_RERANK_PAIRS
\getenv golden_f32 QWEN3_EMBED_RERANK_GOLDEN_F32
\getenv golden_q8 QWEN3_EMBED_RERANK_GOLDEN_Q8_0
\getenv reranker_q8 QWEN3_EMBED_RERANKER_Q8_0
\getenv embedder QWEN3_EMBED_MODEL

CREATE TEMP TABLE rr_pairs AS
SELECT (n - 1)::int AS i, p ->> 'name' AS name, p ->> 'query' AS query, p ->> 'document' AS document,
       p ->> 'instruct' AS instruct
  FROM jsonb_array_elements(pg_read_file(:'rerank_pairs')::jsonb) WITH ORDINALITY AS t(p, n);
CREATE TEMP TABLE rr_golden AS
SELECT g.model, it ->> 'name' AS name, (it ->> 'score')::float8 AS score, (it ->> 'score_cut')::float8 AS score_cut
  FROM (VALUES ('f32', pg_read_file(:'golden_f32')::jsonb), ('q8_0', pg_read_file(:'golden_q8')::jsonb)) AS g(model, j),
       jsonb_array_elements(g.j -> 'items') AS it;
SELECT count(*) AS pairs, count(instruct) AS with_instruct FROM rr_pairs;

-- One pair at a time, and each query's documents in one call, against transformers.
SELECT count(*) AS compared,
       count(*) FILTER (WHERE abs(qwen3_rerank_score(p.query, p.document, p.instruct) - g.score) <= 1e-4) AS within_1e_4
  FROM rr_pairs p JOIN rr_golden g ON g.name = p.name AND g.model = 'f32';
SELECT count(*) AS compared, count(*) FILTER (WHERE abs(r.score - g.score) <= 1e-4) AS within_1e_4
  FROM (SELECT query, instruct, array_agg(document ORDER BY i) AS docs, array_agg(name ORDER BY i) AS names
          FROM rr_pairs GROUP BY query, instruct) q
 CROSS JOIN LATERAL qwen3_rerank(q.query, q.docs, q.instruct) r
  JOIN rr_golden g ON g.name = q.names[r.ord] AND g.model = 'f32';
-- Scores are probabilities; top_n keeps the best, highest first, ties in input order.
SELECT bool_and(score BETWEEN 0 AND 1) AS in_0_1, count(*) AS rows
  FROM qwen3_rerank('What is the capital of China?', (SELECT array_agg(document ORDER BY i) FROM rr_pairs));
WITH all_rows AS (
    SELECT r.ord, r.score FROM qwen3_rerank('What is the capital of China?', (SELECT array_agg(document ORDER BY i) FROM rr_pairs)) r
), top AS (
    SELECT row_number() OVER () AS rank, t.ord, t.score
      FROM qwen3_rerank('What is the capital of China?', (SELECT array_agg(document ORDER BY i) FROM rr_pairs), top_n => 3) t
)
SELECT count(*) AS top_rows,
       bool_and(top.score = a.score) AS same_scores,
       bool_and(top.ord = (SELECT a2.ord FROM all_rows a2 ORDER BY a2.score DESC, a2.ord OFFSET top.rank - 1 LIMIT 1)) AS best_first
  FROM top JOIN all_rows a USING (ord);

-- NULLs, empty and malformed arrays.
SELECT qwen3_rerank_score(NULL, 'a document') IS NULL AS null_query,
       qwen3_rerank_score('a query', NULL) IS NULL AS null_document;
SELECT count(*) AS rows_for_null_array FROM qwen3_rerank('a query', NULL);
SELECT count(*) AS rows_for_empty_array FROM qwen3_rerank('a query', '{}');
SELECT ord, score IS NULL AS null_score FROM qwen3_rerank(NULL, ARRAY['a', 'b']);
SELECT ord, score IS NULL AS null_score FROM qwen3_rerank('a query', ARRAY['a', NULL, 'c']);
SELECT ord, score IS NULL AS null_score FROM qwen3_rerank('a query', ARRAY[NULL, 'b', NULL], top_n => 2);
\set VERBOSITY sqlstate
SELECT * FROM qwen3_rerank('a query', ARRAY['a'], top_n => 0);
SELECT * FROM qwen3_rerank('a query', ARRAY[['a', 'b'], ['c', 'd']]);
\set VERBOSITY terse

-- Long pairs lose the end of their document, as upstream truncates the pair's text: with
-- max_tokens = 100 the scores are transformers' at max_length = 100. Or they are refused.
SET qwen3_embed.max_tokens = 100;
SET client_min_messages = warning;
SELECT count(*) AS compared,
       count(*) FILTER (WHERE abs(qwen3_rerank_score(p.query, p.document, p.instruct) - g.score_cut) <= 1e-4) AS within_1e_4
  FROM rr_pairs p JOIN rr_golden g ON g.name = p.name AND g.model = 'f32';
RESET client_min_messages;
SELECT qwen3_rerank_score('What is the capital of China?', repeat('Beijing is the capital. ', 40)) IS NOT NULL AS truncated;
\set VERBOSITY sqlstate
SET qwen3_embed.on_long_input = 'error';
SELECT qwen3_rerank_score('What is the capital of China?', repeat('Beijing is the capital. ', 40));
RESET qwen3_embed.on_long_input;
-- A query that leaves no room for the document.
SELECT qwen3_rerank_score(repeat('capital ', 200), 'Beijing');
RESET qwen3_embed.max_tokens;
-- The per-call budget bounds a huge array.
SET qwen3_embed.max_request_tokens = 1000;
SELECT count(*) FROM qwen3_rerank('a query', array_fill('a document'::text, ARRAY[100]));
RESET qwen3_embed.max_request_tokens;

-- A model of the other task is refused (42809), both ways.
SET qwen3_embed.reranker_path = :'embedder';
SELECT qwen3_rerank_score('a query', 'a document');
RESET qwen3_embed.reranker_path;
SET qwen3_embed.model_path = :'reranker_q8';
SELECT qwen3_embed('a document');
RESET qwen3_embed.model_path;
\set VERBOSITY terse

-- The Q8_0 file.
SET qwen3_embed.reranker_path = :'reranker_q8';
SELECT count(*) AS compared,
       count(*) FILTER (WHERE abs(qwen3_rerank_score(p.query, p.document, p.instruct) - g.score) <= 2e-2) AS within_2e_2
  FROM rr_pairs p JOIN rr_golden g ON g.name = p.name AND g.model = 'q8_0';
RESET qwen3_embed.reranker_path;

-- Embedding and reranking alternate without reloading either model: the model server (when
-- there is one) keeps both resident.
SELECT qwen3_embed('warm up') IS NOT NULL AS embedded, qwen3_rerank_score('warm', 'up') IS NOT NULL AS scored;
SELECT coalesce(model_loads, -1) AS loads_before FROM qwen3_embed_server_stats() \gset
SELECT count(*) FILTER (WHERE e IS NOT NULL AND s IS NOT NULL) AS rounds
  FROM generate_series(1, 3) n,
       LATERAL (SELECT qwen3_embed('document ' || n) AS e) x,
       LATERAL (SELECT qwen3_rerank_score('query ' || n, 'document ' || n) AS s) y;
SELECT coalesce(model_loads, -1) = :loads_before AS no_reload FROM qwen3_embed_server_stats();
SELECT (SELECT state FROM qwen3_embed_server_stats()) <> 'running'
       OR (SELECT count(DISTINCT task) = 2 AND bool_and(bytes > 0) FROM qwen3_embed_server_models()) AS both_resident;

-- The README's two-stage search: vector candidates, then the reranker's best, in one statement.
CREATE TABLE rr_docs (id int PRIMARY KEY, body text, embedding vector(256));
INSERT INTO rr_docs SELECT p.i + 1, p.document, qwen3_embed(p.document) FROM rr_pairs p;
WITH candidates AS (
    SELECT id, body FROM rr_docs
    ORDER BY embedding <=> qwen3_embed_query('What is the capital of China?')
    LIMIT 6
), ranked AS (
    SELECT r.ord, r.score
      FROM qwen3_rerank('What is the capital of China?',
                        (SELECT array_agg(body ORDER BY id) FROM candidates), top_n => 3) r
), result AS (
    SELECT c.id, ranked.score
      FROM ranked
      JOIN (SELECT id, row_number() OVER (ORDER BY id) AS ord FROM candidates) c USING (ord)
)
SELECT count(*) AS rows,
       bool_and(abs(score - qwen3_rerank_score('What is the capital of China?', (SELECT body FROM rr_docs d WHERE d.id = result.id))) <= 1e-5) AS scores_match,
       min(score) >= (SELECT max(qwen3_rerank_score('What is the capital of China?', c.body)) FROM (
            SELECT id, body FROM rr_docs ORDER BY embedding <=> qwen3_embed_query('What is the capital of China?') LIMIT 6) c
         WHERE c.id NOT IN (SELECT id FROM result)) AS best_kept
  FROM result;
DROP TABLE rr_docs;
