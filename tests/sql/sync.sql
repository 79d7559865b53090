-- The embedding queue: writes only queue rows, in the writer's transaction;
-- qwen3_embed_sync_run() (what the sync workers call) embeds them.
CREATE TABLE sy_docs (id int PRIMARY KEY, body text, note text, embedding vector(64));
INSERT INTO sy_docs SELECT i, CASE WHEN i = 7 THEN NULL ELSE 'queued document ' || i END, NULL, NULL
  FROM generate_series(1, 30) i;
SELECT qwen3_embed_sync('sy_docs', 'body', 'embedding') > 0 AS synced;
SELECT relation, target_column, dims, pending, waiting_retry, failed, done FROM qwen3_embed_sync_status;
-- Writes queue rows and embed nothing; a rolled-back write queues nothing.
INSERT INTO sy_docs SELECT i, 'inserted later ' || i, NULL, NULL FROM generate_series(31, 35) i;
UPDATE sy_docs SET body = 'changed text ' || id WHERE id IN (2, 3);
UPDATE sy_docs SET note = 'only the note' WHERE id = 4;
DELETE FROM sy_docs WHERE id = 5;
BEGIN;
INSERT INTO sy_docs VALUES (99, 'rolled back', NULL, NULL);
ROLLBACK;
SELECT count(embedding) AS embedded_yet FROM sy_docs;
SELECT pending FROM qwen3_embed_sync_status;
-- How long the oldest queued row has waited: what to alert on (0 once the queue is empty).
SELECT oldest_pending_age > interval '0' AS waiting, oldest_pending_age < interval '1 hour' AS recent
  FROM qwen3_embed_sync_status;
-- The same numbers for monitoring: a pg_monitor role sees them for every sync, and no key or text;
-- other roles may not call it.
CREATE ROLE sy_monitor IN ROLE pg_monitor;
CREATE ROLE sy_nobody;
SET ROLE sy_monitor;
SELECT relation, target_column, pending, waiting_retry, failed, oldest_pending_age_seconds > 0 AS waiting, paused
  FROM qwen3_embed_sync_metrics();
SELECT count(*) AS rows_in_status_view FROM qwen3_embed_sync_status;
SET ROLE sy_nobody;
SELECT count(*) FROM qwen3_embed_sync_metrics();
RESET ROLE;
DROP ROLE sy_monitor;
DROP ROLE sy_nobody;
-- Drain: every row with text gets the vector of its current text, once; NULL text stays NULL.
SELECT qwen3_embed_sync_run(NULL, 100) AS rows_embedded;
SELECT qwen3_embed_sync_run() AS nothing_left;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) AS current_vectors,
       count(*) FILTER (WHERE body IS NULL AND embedding IS NULL) AS null_text_null_vector
  FROM sy_docs;
SELECT pending, waiting_retry, failed, done, oldest_pending_age FROM qwen3_embed_sync_status;
-- A text set to NULL loses its vector at once; a new text is queued again.
UPDATE sy_docs SET body = NULL WHERE id = 8;
UPDATE sy_docs SET body = 'new text for nine' WHERE id = 9;
SELECT embedding IS NULL AS cleared FROM sy_docs WHERE id = 8;
SELECT qwen3_embed_sync_run() AS rows_embedded;
SELECT embedding = qwen3_embed('new text for nine', NULL, 64) AS current FROM sy_docs WHERE id = 9;

-- Failures: a row that cannot be embedded is retried with backoff, then lands in the errors
-- table with its SQLSTATE; the other rows of its batch are embedded. Re-queued after the fix,
-- it is embedded.
SELECT qwen3_embed_unsync('sy_docs', 'embedding') AS pending_dropped;
SELECT qwen3_embed_sync('sy_docs', 'body', 'embedding', max_attempts => 2) > 0 AS synced_again;
SELECT qwen3_embed_sync_run(NULL, 100) > 0 AS drained;
SET qwen3_embed.max_tokens = 8;
SET qwen3_embed.on_long_input = 'error';
UPDATE sy_docs SET body = 'a text that is far longer than eight tokens, so it fails' WHERE id = 10;
UPDATE sy_docs SET body = 'short one' WHERE id = 11;
SELECT qwen3_embed_sync_run() AS rows_embedded;
SELECT pending, waiting_retry, failed FROM qwen3_embed_sync_status;
SELECT key, attempts, split_part(last_error, ':', 1) AS error FROM qwen3_embed.queue;
SELECT pg_sleep(1.2);
SELECT qwen3_embed_sync_run() AS rows_embedded;
SELECT key, sqlstate, attempts FROM qwen3_embed.sync_errors;
SELECT pending, waiting_retry, failed FROM qwen3_embed_sync_status;
RESET qwen3_embed.on_long_input;
RESET qwen3_embed.max_tokens;
SELECT qwen3_embed_sync_retry('sy_docs', 'embedding') AS requeued;
SELECT qwen3_embed_sync_run() AS rows_embedded;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) AS current_vectors,
       count(body) AS rows_with_text FROM sy_docs;
SELECT pending, waiting_retry, failed FROM qwen3_embed_sync_status;

-- A model that cannot be loaded (a missing file): the rows are retried, then fail with its
-- SQLSTATE; after the path is fixed, re-queueing finishes the work.
SET qwen3_embed.model_path = '/nonexistent/model.gguf';
UPDATE sy_docs SET body = 'waits for a model ' || id WHERE id IN (12, 13);
SELECT qwen3_embed_sync_run() AS rows_embedded;
SELECT pg_sleep(1.2);
SELECT qwen3_embed_sync_run() AS rows_embedded;
SELECT key, sqlstate, attempts FROM qwen3_embed.sync_errors ORDER BY key;
RESET qwen3_embed.model_path;
SELECT qwen3_embed_sync_retry('sy_docs', 'embedding') AS requeued;
SELECT qwen3_embed_sync_run() AS rows_embedded;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) AS current_vectors,
       count(body) AS rows_with_text FROM sy_docs;
SELECT pending, waiting_retry, failed, rows_per_second > 0 AS has_rate, time_left FROM qwen3_embed_sync_status;

-- Changing a sync in place. Batch size and attempts change no vector: nothing is queued.
SELECT qwen3_embed_sync_alter('sy_docs', 'embedding', batch_size => 8, max_attempts => 3) AS queued;
SELECT s.batch_size, s.max_attempts, v.replacing, v.pending
  FROM qwen3_embed.syncs s JOIN qwen3_embed_sync_status v USING (id);
-- A new instruction: every row with text is queued again and keeps its old vector until its
-- turn; writes from now on (and the drained rows) get the new instruction.
SELECT qwen3_embed_sync_alter('sy_docs', 'embedding', instruct => 'Find the passage') AS queued;
SELECT pending, replacing FROM qwen3_embed_sync_status;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) AS old_vectors,
       count(body) AS rows_with_text FROM sy_docs;
SELECT instruct, next_fingerprint IS NOT NULL AS moving FROM qwen3_embed.columns WHERE relation = 'sy_docs'::regclass;
SELECT qwen3_embed_sync_run(NULL, 1) AS rows_embedded;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) AS old_vectors,
       count(*) FILTER (WHERE embedding = qwen3_embed(body, 'Find the passage', 64)) AS new_vectors FROM sy_docs;
SELECT qwen3_embed_sync_run(NULL, 100) > 0 AS embedded;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, 'Find the passage', 64)) AS new_vectors,
       count(body) AS rows_with_text FROM sy_docs;
SELECT pending, replacing FROM qwen3_embed_sync_status;
SELECT instruct, next_fingerprint IS NOT NULL AS moving FROM qwen3_embed.columns WHERE relation = 'sy_docs'::regclass;
-- Back to the default instruction.
SELECT qwen3_embed_sync_alter('sy_docs', 'embedding', default_instruct => true) > 0 AS queued;
SELECT qwen3_embed_sync_run(NULL, 100) > 0 AS embedded;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) AS current_vectors,
       count(body) AS rows_with_text FROM sy_docs;
SELECT s.instruct IS NULL AS default_instruct, v.replacing FROM qwen3_embed.syncs s JOIN qwen3_embed_sync_status v USING (id);

-- Wrong usage.
\set VERBOSITY sqlstate
SELECT qwen3_embed_sync('sy_docs', 'body', 'embedding');
SELECT qwen3_embed_sync('sy_docs', 'body', 'note');
SELECT qwen3_embed_sync('sy_docs', 'nope', 'embedding');
SELECT qwen3_embed_sync('sy_docs', 'body', 'embedding', dims => 32);
SELECT qwen3_embed_unsync('sy_docs', 'note');
SELECT qwen3_embed_sync_alter('sy_docs', 'embedding', dims => 32);
SELECT qwen3_embed_sync_alter('sy_docs', 'embedding', batch_size => 0);
SELECT qwen3_embed_sync_alter('sy_docs', 'note', batch_size => 10);
\set VERBOSITY default
SELECT qwen3_embed_unsync('sy_docs', 'embedding') AS pending_dropped;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'sy_docs'::regclass;
DROP TABLE sy_docs;
