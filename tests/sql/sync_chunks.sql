-- Chunking long documents: qwen3_chunks, and a chunk table kept in step through the queue.
SELECT chunk_no, qwen3_token_count(chunk) AS tokens, length(chunk) > 0 AS has_text
  FROM qwen3_chunks(repeat('The quick brown fox jumps over the lazy dog. ', 12), 32, 8);
-- Chunks cover the text: the first starts it, the last ends it; each fits the chunk size.
WITH t AS (SELECT repeat('Lorem ipsum dolor sit amet, consectetur adipiscing elit. ', 20) || 'Ünïcödé ✓ end' AS body),
     c AS (SELECT x.* FROM t, qwen3_chunks(t.body, 24, 6) x)
SELECT count(*) AS chunks,
       bool_and(qwen3_token_count(c.chunk) <= 24) AS all_fit,
       (SELECT starts_with(t.body, (SELECT chunk FROM c ORDER BY chunk_no LIMIT 1)) FROM t) AS first_starts,
       (SELECT right(t.body, length(x.chunk)) = x.chunk FROM t, (SELECT chunk FROM c ORDER BY chunk_no DESC LIMIT 1) x) AS last_ends
  FROM c;
SELECT count(*) AS chunks FROM qwen3_chunks('');
SELECT count(*) AS chunks FROM qwen3_chunks(NULL);
\set VERBOSITY sqlstate
SELECT count(*) FROM qwen3_chunks('x', 8, 7);
SELECT count(*) FROM qwen3_chunks('x', 1, 0);
\set VERBOSITY default

CREATE TABLE ch_docs (id int PRIMARY KEY, body text);
INSERT INTO ch_docs SELECT i, repeat('Document ' || i || ' talks about chunking and vectors. ', i) FROM generate_series(1, 8) i;
SELECT qwen3_embed_sync_chunks('ch_docs', 'body', 'ch_chunks', chunk_tokens => 24, overlap => 4, dims => 64) > 0 AS synced;
SELECT qwen3_embed_sync_run(NULL, 100) AS rows_embedded;
SELECT count(*) AS chunks, count(DISTINCT id) AS docs,
       count(*) FILTER (WHERE embedding = qwen3_embed(chunk, NULL, 64)) AS chunk_vectors
  FROM ch_chunks;
SELECT (SELECT count(*) FROM ch_chunks) = (SELECT count(*) FROM ch_docs d, qwen3_chunks(d.body, 24, 4)) AS chunks_match;
-- A changed text gets new chunks; a deleted row's chunks go with it; NULL text has none.
UPDATE ch_docs SET body = 'Now a short text.' WHERE id = 8;
DELETE FROM ch_docs WHERE id = 7;
UPDATE ch_docs SET body = NULL WHERE id = 6;
SELECT qwen3_embed_sync_run(NULL, 100) AS rows_embedded;
SELECT id, count(*) AS chunks, bool_and(embedding = qwen3_embed(chunk, NULL, 64)) AS current
  FROM ch_chunks WHERE id >= 5 GROUP BY id ORDER BY id;
SELECT relation, target_column, pending, failed FROM qwen3_embed_sync_status;
SELECT qwen3_embed_unsync('ch_docs', 'ch_chunks') AS pending_dropped;
DROP TABLE ch_chunks, ch_docs;
DELETE FROM qwen3_embed.columns;
