-- One model per column: the columns the extension fills are registered with their model, and a
-- write with another model is refused until the column is re-embedded with it.
\getenv QWEN3_MODEL QWEN3_EMBED_MODEL
SELECT replace(:'QWEN3_MODEL', 'model-q8_0.gguf', 'model-q4_k_m.gguf') AS q4_model \gset
CREATE TABLE cr_docs (id int PRIMARY KEY, body text, embedding vector(64));
CREATE TRIGGER cr_embed BEFORE INSERT OR UPDATE ON cr_docs
    FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding');
INSERT INTO cr_docs SELECT i, 'registered document ' || i, NULL FROM generate_series(1, 10) i;
CREATE TABLE cr_queued (id int PRIMARY KEY, body text, embedding vector(64));
INSERT INTO cr_queued SELECT i, 'queued document ' || i, NULL FROM generate_series(1, 5) i;
SELECT qwen3_embed_sync('cr_queued', 'body', 'embedding') > 0 AS synced;
SELECT qwen3_embed_sync_run(NULL, 10) AS embedded;
-- Both columns are registered with the loaded model.
SELECT relation, column_name, fingerprint = (SELECT fingerprint FROM qwen3_embed_info()) AS this_model,
       moving_to, matches FROM qwen3_embed_check();

CREATE TEMP TABLE cr_before AS SELECT id, embedding FROM cr_queued;
-- Another model: writes into the registered columns are refused (55000), nothing is written.
SET qwen3_embed.model_path = :'q4_model';
\set VERBOSITY sqlstate
INSERT INTO cr_docs VALUES (11, 'written with the other model', NULL);
UPDATE cr_docs SET body = 'changed with the other model' WHERE id = 1;
\set VERBOSITY terse
\set SHOW_CONTEXT never
INSERT INTO cr_docs VALUES (11, 'written with the other model', NULL);
\set SHOW_CONTEXT errors
SELECT count(*) AS rows, count(*) FILTER (WHERE body LIKE '%other model%') AS other_model_rows FROM cr_docs;
SELECT relation, column_name, matches FROM qwen3_embed_check();
-- The queue keeps the row and retries it: it waits, it is not written with the other model.
UPDATE cr_queued SET body = 'queued with the other model' WHERE id = 1;
SELECT qwen3_embed_sync_run() AS embedded;
SELECT key, attempts, split_part(last_error, ':', 1) AS error FROM qwen3_embed.queue;
SELECT q.embedding = b.embedding AS old_vector_kept FROM cr_queued q JOIN cr_before b USING (id) WHERE id = 1;

-- Re-embedding moves the column to the loaded model; then writes go through again.
CALL qwen3_embed_reembed('cr_docs', 'body', 'embedding', batch_size => 4);
SELECT relation, column_name, moving_to, matches FROM qwen3_embed_check() WHERE relation = 'cr_docs'::regclass;
INSERT INTO cr_docs VALUES (11, 'written with the other model', NULL);
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) AS current_vectors, count(*) AS rows FROM cr_docs;
-- A trigger with another size than the column's registered one is refused.
CREATE TABLE cr_sized (id int PRIMARY KEY, body text, embedding vector);
CREATE TRIGGER a64 BEFORE INSERT ON cr_sized FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding', '', '64');
INSERT INTO cr_sized VALUES (1, 'sixty-four', NULL);
DROP TRIGGER a64 ON cr_sized;
CREATE TRIGGER a32 BEFORE INSERT ON cr_sized FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding', '', '32');
\set SHOW_CONTEXT never
INSERT INTO cr_sized VALUES (2, 'thirty-two', NULL);
\set SHOW_CONTEXT errors
RESET qwen3_embed.model_path;
\set VERBOSITY default
DROP TABLE cr_docs, cr_queued, cr_sized;
DELETE FROM qwen3_embed.columns;
DELETE FROM qwen3_embed.jobs;
