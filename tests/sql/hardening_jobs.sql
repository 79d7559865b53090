-- Interrupted jobs say so; a migration refuses to start over another one's leftovers; a job
-- can be abandoned.
CREATE VIEW jobs AS
SELECT target_column, state, rows_done, split_part(last_error, ':', 1) AS error_code, kind, migrates_column
  FROM qwen3_embed_progress;
CREATE TABLE job_docs (id int PRIMARY KEY, body text, embedding vector(256));
INSERT INTO job_docs SELECT i, 'job document ' || i FROM generate_series(1, 24) i;

-- A statement timeout in the third batch: the job records 'interrupted' and the 57014.
CREATE FUNCTION job_slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 20 AND NEW.embedding IS NOT NULL THEN PERFORM pg_sleep(30); END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER slow BEFORE UPDATE ON job_docs FOR EACH ROW EXECUTE FUNCTION job_slow_row();
SET statement_timeout = '3s';
\set VERBOSITY terse
CALL qwen3_embed_reembed('job_docs', 'body', 'embedding', batch_size => 8);
RESET statement_timeout;
SELECT * FROM jobs;
SELECT last_error FROM qwen3_embed_progress WHERE target_column = 'embedding';

-- A job whose session is gone (terminated, or the server crashed) shows as interrupted even
-- though nothing could record it: here, a session that no longer exists.
UPDATE qwen3_embed.jobs SET state = 'running', last_error = NULL, runner_pid = 0;
SELECT target_column, state FROM qwen3_embed_progress;
-- The job's own session running it shows as running.
UPDATE qwen3_embed.jobs SET runner_pid = pg_backend_pid(),
       runner_started = (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid());
SELECT target_column, state FROM qwen3_embed_progress;
DROP TRIGGER slow ON job_docs;
CALL qwen3_embed_reembed('job_docs', 'body', 'embedding', batch_size => 8);
SELECT * FROM jobs;

-- A migration to 128 interrupted by a failing batch leaves its column and sync trigger; a
-- migration to 96 refuses to start over them and says which; abandoning drops them.
SET qwen3_embed.max_tokens = 8;
UPDATE job_docs SET body = 'a body that is far longer than eight tokens, which fails' WHERE id = 12;
SET qwen3_embed.on_long_input = 'error';
CALL qwen3_embed_migrate_dims('job_docs', 'body', 'embedding', 128, batch_size => 8);
SET qwen3_embed.on_long_input = 'truncate';
RESET qwen3_embed.max_tokens;
SELECT * FROM jobs ORDER BY 1;
SELECT attname FROM pg_attribute WHERE attrelid = 'job_docs'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
\set VERBOSITY default
\set SHOW_CONTEXT never
CALL qwen3_embed_migrate_dims('job_docs', 'body', 'embedding', 96, batch_size => 8);
\set SHOW_CONTEXT errors
\set VERBOSITY terse
SELECT qwen3_embed_abandon('job_docs', 'embedding_qwen3_d128');
SELECT attname FROM pg_attribute WHERE attrelid = 'job_docs'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'job_docs'::regclass ORDER BY 1;
SELECT * FROM jobs ORDER BY 1;
CALL qwen3_embed_migrate_dims('job_docs', 'body', 'embedding', 96, batch_size => 8);
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 96)) AS equal, count(*) AS rows FROM job_docs;
SELECT * FROM jobs ORDER BY 1;
-- Abandoning a re-embedding job forgets it; rows keep their vectors. Unknown jobs are errors.
SELECT qwen3_embed_abandon('job_docs', 'embedding');
SELECT count(*) AS jobs_left FROM qwen3_embed.jobs;
\set VERBOSITY sqlstate
SELECT qwen3_embed_abandon('job_docs', 'embedding');
SELECT qwen3_embed_abandon('job_docs', 'no_such_column');
\set VERBOSITY default
DROP TABLE job_docs;
DROP FUNCTION job_slow_row();
DROP VIEW jobs;
