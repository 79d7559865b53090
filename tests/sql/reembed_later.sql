-- Re-embedding from inside a transaction, as a migration tool runs it:
-- qwen3_embed_reembed_later queues the rows and returns; the sync workers (here
-- qwen3_embed_sync_run, what they call) replace each vector.
CREATE TABLE rl_docs (id int PRIMARY KEY, body text, embedding vector(64));
INSERT INTO rl_docs SELECT i, 'later document ' || i, NULL FROM generate_series(1, 12) i;
INSERT INTO rl_docs VALUES (13, NULL, NULL);
SET client_min_messages = warning;
CALL qwen3_embed_reembed('rl_docs', 'body', 'embedding', instruct => 'old task');
RESET client_min_messages;
SELECT column_name, instruct, dims FROM qwen3_embed.columns WHERE relation = 'rl_docs'::regclass;

-- CALL inside a transaction block fails at once, before any work, and names what to use.
-- (Its CONTEXT differs between the two modes: not shown.)
\set SHOW_CONTEXT never
BEGIN;
CALL qwen3_embed_reembed('rl_docs', 'body', 'embedding');
ROLLBACK;
BEGIN;
CALL qwen3_embed_migrate_dims('rl_docs', 'body', 'embedding', 32);
ROLLBACK;
\set SHOW_CONTEXT errors
SELECT state FROM qwen3_embed_progress WHERE relation = 'rl_docs'::regclass;

-- In a transaction: the rows are queued, nothing is embedded yet, the old vectors serve.
BEGIN;
SELECT qwen3_embed_reembed_later('rl_docs', 'body', 'embedding', default_instruct => true) AS queued;
SELECT pending, replacing, once, instruct, dims FROM qwen3_embed_sync_status WHERE relation = 'rl_docs'::regclass;
COMMIT;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, 'old task', 64)) AS old_vectors FROM rl_docs;
SELECT fingerprint = next_fingerprint AS moving, instruct FROM qwen3_embed.columns WHERE relation = 'rl_docs'::regclass;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'rl_docs'::regclass;
-- Drained: every row with text has its new vector, the one-time sync is gone and the registry
-- has the new settings.
SELECT qwen3_embed_sync_run(NULL, 100) AS rows_embedded;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) AS new_vectors,
       count(*) FILTER (WHERE body IS NULL AND embedding IS NULL) AS null_text_null_vector
  FROM rl_docs;
SELECT count(*) AS syncs_left FROM qwen3_embed.syncs WHERE relation = 'rl_docs'::regclass;
SELECT instruct, dims, next_fingerprint IS NULL AS settled FROM qwen3_embed.columns WHERE relation = 'rl_docs'::regclass;

-- Rolled back with its transaction: nothing queued, nothing left behind.
BEGIN;
SELECT qwen3_embed_reembed_later('rl_docs', 'body', 'embedding') AS queued;
ROLLBACK;
SELECT (SELECT count(*) FROM qwen3_embed.syncs WHERE relation = 'rl_docs'::regclass) AS syncs_left,
       (SELECT next_fingerprint IS NULL FROM qwen3_embed.columns WHERE relation = 'rl_docs'::regclass) AS settled;

-- A synced column is re-queued through its sync, which stays, with its settings.
SET client_min_messages = warning;
SELECT qwen3_embed_sync('rl_docs', 'body', 'embedding', batch_size => 5) > 0 AS synced;
SELECT qwen3_embed_sync_run(NULL, 100) AS rows_embedded;
SELECT qwen3_embed_reembed_later('rl_docs', 'body', 'embedding') AS queued;
RESET client_min_messages;
SELECT v.pending, v.replacing, v.once, s.batch_size FROM qwen3_embed_sync_status v JOIN qwen3_embed.syncs s USING (id)
 WHERE v.relation = 'rl_docs'::regclass;
SELECT qwen3_embed_sync_run(NULL, 100) AS rows_embedded;
SELECT pending, replacing, once FROM qwen3_embed_sync_status WHERE relation = 'rl_docs'::regclass;
SELECT qwen3_embed_reembed_later('rl_docs', 'note', 'embedding');
SELECT qwen3_embed_unsync('rl_docs', 'embedding') AS dropped;

-- A column of type vector (no size) changes size.
CREATE TABLE rl_free (id int PRIMARY KEY, body text, embedding vector);
INSERT INTO rl_free SELECT i, 'free document ' || i, qwen3_embed('free document ' || i, NULL, 64) FROM generate_series(1, 6) i;
SET client_min_messages = warning;
SELECT qwen3_embed_reembed_later('rl_free', 'body', 'embedding', dims => 32) AS queued;
RESET client_min_messages;
SELECT qwen3_embed_sync_run(NULL, 100) AS rows_embedded;
SELECT vector_dims(embedding) AS dims, count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 32)) AS current
  FROM rl_free GROUP BY 1;

-- A row that keeps failing: the one-time sync stays in view with it until it is retried.
CREATE TABLE rl_fail (id int PRIMARY KEY, body text, embedding vector(64));
INSERT INTO rl_fail VALUES (1, 'short', NULL), (2, 'a text that is far longer than eight tokens, so it fails', NULL);
SET client_min_messages = warning;
SELECT qwen3_embed_reembed_later('rl_fail', 'body', 'embedding') AS queued;
RESET client_min_messages;
UPDATE qwen3_embed.syncs SET max_attempts = 1 WHERE relation = 'rl_fail'::regclass;
SET qwen3_embed.max_tokens = 8;
SET qwen3_embed.on_long_input = 'error';
SELECT qwen3_embed_sync_run(NULL, 100) AS rows_embedded;
RESET qwen3_embed.on_long_input;
RESET qwen3_embed.max_tokens;
SELECT pending, failed, replacing, once FROM qwen3_embed_sync_status WHERE relation = 'rl_fail'::regclass;
SELECT qwen3_embed_sync_retry('rl_fail', 'embedding') AS requeued;
SELECT qwen3_embed_sync_run(NULL, 100) AS rows_embedded;
SELECT count(*) AS syncs_left FROM qwen3_embed.syncs WHERE relation = 'rl_fail'::regclass;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) AS current FROM rl_fail;

-- An empty table: nothing to queue, no sync left.
CREATE TABLE rl_empty (id int PRIMARY KEY, body text, embedding vector(64));
SELECT qwen3_embed_reembed_later('rl_empty', 'body', 'embedding') AS queued;
SELECT (SELECT count(*) FROM qwen3_embed.syncs WHERE relation = 'rl_empty'::regclass) AS syncs_left,
       (SELECT next_fingerprint IS NULL FROM qwen3_embed.columns WHERE relation = 'rl_empty'::regclass) AS settled;

-- Refused: another size for a vector(n) column, a generated column, NULL arguments, a role that
-- does not own the table.
SELECT qwen3_embed_reembed_later('rl_docs', 'body', 'embedding', dims => 32);
CREATE TABLE rl_gen (id int PRIMARY KEY, body text,
                     embedding vector(64) GENERATED ALWAYS AS (qwen3_embed(body, NULL, 64)::vector(64)) STORED);
SELECT qwen3_embed_reembed_later('rl_gen', 'body', 'embedding');
SELECT qwen3_embed_reembed_later('rl_docs', NULL, 'embedding');
CREATE ROLE rl_writer;
GRANT SELECT, UPDATE ON rl_docs TO rl_writer;
SET ROLE rl_writer;
SELECT qwen3_embed_reembed_later('rl_docs', 'body', 'embedding');
RESET ROLE;
-- Dropped, a table leaves no job and no registry row behind (as after Alembic's downgrade).
SELECT oid AS rl_docs_oid FROM pg_class WHERE relname = 'rl_docs' \gset
SELECT (SELECT count(*) FROM qwen3_embed.jobs WHERE relation = :rl_docs_oid) AS jobs,
       (SELECT count(*) FROM qwen3_embed.columns WHERE relation = :rl_docs_oid) AS registered;
DROP TABLE rl_docs, rl_free, rl_fail, rl_empty, rl_gen;
SELECT (SELECT count(*) FROM qwen3_embed.jobs WHERE relation = :rl_docs_oid) AS jobs_left,
       (SELECT count(*) FROM qwen3_embed.columns WHERE relation = :rl_docs_oid) AS registry_left;
DROP ROLE rl_writer;
