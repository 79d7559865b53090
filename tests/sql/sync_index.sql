-- The index option of a sync: the sync worker makes the HNSW index once the column holds
-- index_rows vectors (tests/server.sh watches it do so); here, what is recorded and refused.
CREATE TABLE si_docs (id int PRIMARY KEY, body text, embedding vector(64), free vector, half halfvec(64));
SET client_min_messages = error;
SELECT qwen3_embed_sync('si_docs', 'body', 'embedding', index_rows => 1000) > 0 AS synced;
RESET client_min_messages;
SELECT index_rows, index_state FROM qwen3_embed.syncs WHERE relation = 'si_docs'::regclass;
SELECT index FROM qwen3_embed_sync_status WHERE relation = 'si_docs'::regclass;
-- Changed in place: another threshold, or none.
SELECT qwen3_embed_sync_alter('si_docs', 'embedding', index_rows => 10) AS queued;
SELECT index FROM qwen3_embed_sync_status WHERE relation = 'si_docs'::regclass;
SELECT qwen3_embed_sync_alter('si_docs', 'embedding', no_index => true) AS queued;
SELECT index IS NULL AS no_index FROM qwen3_embed_sync_status WHERE relation = 'si_docs'::regclass;
-- Refused: a column of no fixed size, a negative count.
SELECT qwen3_embed_unsync('si_docs', 'embedding') AS dropped;
SELECT qwen3_embed_sync('si_docs', 'body', 'free', dims => 64, index_rows => 10);
SELECT qwen3_embed_sync('si_docs', 'body', 'embedding', index_rows => -1);
SELECT count(*) AS syncs FROM qwen3_embed.syncs WHERE relation = 'si_docs'::regclass;
-- A halfvec column takes it too.
SET client_min_messages = error;
SELECT qwen3_embed_sync('si_docs', 'body', 'half', index_rows => 0) > 0 AS synced;
RESET client_min_messages;
SELECT target_column, index FROM qwen3_embed_sync_status WHERE relation = 'si_docs'::regclass;
-- Only the worker runs the index's steps.
CREATE ROLE si_owner;
SET ROLE si_owner;
SELECT * FROM qwen3_embed.qwen3_embed_sync_index_syncs('waiting');
SELECT qwen3_embed.qwen3_embed_sync_index_begin(1, true);
RESET ROLE;
DROP ROLE si_owner;
DROP TABLE si_docs;
