-- qwen3_embed_reembed: resumable batch re-embedding; qwen3_embed_migrate_dims: a new size.
\set VERBOSITY terse
CREATE FUNCTION marker() RETURNS vector LANGUAGE sql IMMUTABLE AS $$ SELECT array_fill(0.5, ARRAY[256])::vector $$;
CREATE VIEW progress AS
SELECT relation, source_column, target_column, state, rows_done, rows_total, percent_done,
       dims, instruct, batch_size, key_column, last_key, split_part(last_error, ':', 1) AS error_code,
       started_at <= updated_at AS times_ordered, (finished_at IS NOT NULL) AS finished
  FROM qwen3_embed_progress;

-- 50 rows, one with NULL text, re-embedded 8 at a time.
CREATE TABLE re_docs (id int PRIMARY KEY, body text, embedding vector(256));
INSERT INTO re_docs (id, body)
SELECT i, CASE WHEN i = 25 THEN NULL ELSE format('Re-embedding test document %s: %s', i, md5(i::text)) END
  FROM generate_series(1, 50) AS i;
CALL qwen3_embed_reembed('re_docs', 'body', 'embedding', batch_size => 8);
SELECT count(*) AS rows,
       count(*) FILTER (WHERE (embedding <=> qwen3_embed(body)) < 1e-6) AS equal_to_function,
       count(*) FILTER (WHERE body IS NULL AND embedding IS NULL) AS null_text_null_embedding
  FROM re_docs;
SELECT * FROM progress;
-- A finished job CALLed again starts over (the table may have changed since).
UPDATE re_docs SET embedding = marker() WHERE id = 3;
CALL qwen3_embed_reembed('re_docs', 'body', 'embedding', batch_size => 32);
SELECT embedding = qwen3_embed(body) AS marker_replaced FROM re_docs WHERE id = 3;
SELECT state, rows_done, rows_total, batch_size FROM progress WHERE relation = 're_docs'::regclass;

-- Resume after an error: row 30's text is too long under on_long_input = 'error', so the
-- fourth batch (rows 25..32) fails. The first three batches stay committed.
CREATE TABLE re_resume (id int PRIMARY KEY, body text, embedding vector(256));
INSERT INTO re_resume (id, body)
SELECT i, CASE WHEN i = 30 THEN repeat('far too long ', 50) ELSE format('Resume test document %s: %s', i, md5(i::text)) END
  FROM generate_series(1, 50) AS i;
SET qwen3_embed.max_tokens = 64;
SET qwen3_embed.on_long_input = 'error';
CALL qwen3_embed_reembed('re_resume', 'body', 'embedding', batch_size => 8);
SELECT state, rows_done, rows_total, last_key, error_code FROM progress WHERE relation = 're_resume'::regclass;
SELECT count(embedding) AS embedded, min(id) FILTER (WHERE embedding IS NOT NULL) AS first,
       max(id) FILTER (WHERE embedding IS NOT NULL) AS last
  FROM re_resume;
-- Mark a row of the committed batches: a resumed run must not touch it.
UPDATE re_resume SET embedding = marker() WHERE id = 1;
-- Other settings than the unfinished job's are refused.
CALL qwen3_embed_reembed('re_resume', 'body', 'embedding', dims => 256, instruct => 'a task', batch_size => 8);
-- Fixed: truncate instead; the CALL resumes after row 24 (and row 30 is truncated, with a NOTICE).
SET qwen3_embed.on_long_input = 'truncate';
CALL qwen3_embed_reembed('re_resume', 'body', 'embedding', batch_size => 8);
SELECT state, rows_done, rows_total, last_key, error_code, percent_done FROM progress WHERE relation = 're_resume'::regclass;
SELECT embedding = marker() AS marker_kept FROM re_resume WHERE id = 1;
SELECT count(*) FILTER (WHERE (embedding <=> qwen3_embed(body)) < 1e-6) AS equal_to_function
  FROM re_resume WHERE id <> 1 AND id <> 30;
SELECT (embedding <=> qwen3_embed(body)) < 1e-6 AS truncated_row_equal FROM re_resume WHERE id = 30;
RESET qwen3_embed.max_tokens;
RESET qwen3_embed.on_long_input;

-- Resume after a cancel (a statement timeout): a trigger sleeps on row 20, in the third batch.
-- The cancel is not caught: the job stays 'running' with the two committed batches.
UPDATE re_resume SET embedding = NULL;
CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 20 THEN PERFORM pg_sleep(30); END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER slow BEFORE UPDATE ON re_resume FOR EACH ROW EXECUTE FUNCTION slow_row();
SET statement_timeout = '3s';
CALL qwen3_embed_reembed('re_resume', 'body', 'embedding', batch_size => 8, restart => true);
RESET statement_timeout;
SELECT state, rows_done, last_key FROM progress WHERE relation = 're_resume'::regclass;
SELECT count(embedding) AS embedded FROM re_resume;
DROP TRIGGER slow ON re_resume;
CALL qwen3_embed_reembed('re_resume', 'body', 'embedding', batch_size => 8);
SELECT state, rows_done, rows_total FROM progress WHERE relation = 're_resume'::regclass;
SELECT count(*) FILTER (WHERE (embedding <=> qwen3_embed(body)) < 1e-6) AS equal_to_function FROM re_resume WHERE id <> 30;

-- Quoted names, a schema, a text key, an instruction and a size; the target's vector(64)
-- gives the size when dims is not passed.
CREATE SCHEMA "Re Schema";
CREATE TABLE "Re Schema"."Docs Table" ("Doc Key" text PRIMARY KEY, "Body Text" text, "Vec 64" vector(64));
INSERT INTO "Re Schema"."Docs Table" ("Doc Key", "Body Text")
SELECT 'key ' || chr(64 + i), 'text number ' || i FROM generate_series(1, 20) AS i;
CALL qwen3_embed_reembed('"Re Schema"."Docs Table"', 'Body Text', 'Vec 64', instruct => 'Find it', batch_size => 6);
SELECT count(*) FILTER (WHERE "Vec 64" = qwen3_embed("Body Text", 'Find it', 64)) AS equal_to_function
  FROM "Re Schema"."Docs Table";
SELECT relation, state, rows_done, dims, instruct, key_column, last_key FROM progress
 WHERE relation = '"Re Schema"."Docs Table"'::regclass;

-- Wrong usage.
\set VERBOSITY sqlstate
CREATE TABLE re_nokey (id int, body text, embedding vector(256));
CALL qwen3_embed_reembed('re_nokey', 'body', 'embedding');
CREATE TABLE re_twokeys (a int, b int, body text, embedding vector(256), PRIMARY KEY (a, b));
CALL qwen3_embed_reembed('re_twokeys', 'body', 'embedding');
CALL qwen3_embed_reembed('re_docs', 'nope', 'embedding');
CALL qwen3_embed_reembed('re_docs', 'body', 'nope');
CALL qwen3_embed_reembed('re_docs', 'body', 'embedding', batch_size => 0);
CALL qwen3_embed_reembed('progress', 'body', 'embedding');
CALL qwen3_embed_reembed('no_such_table', 'body', 'embedding');
CALL qwen3_embed_reembed('re_docs', 'body', 'embedding', dims => 31);
-- COMMIT inside: only outside a transaction block (invalid_transaction_termination).
BEGIN;
CALL qwen3_embed_reembed('re_docs', 'body', 'embedding');
ROLLBACK;
\set VERBOSITY terse
CALL qwen3_embed_reembed('re_nokey', 'body', 'embedding');

-- A role that owns its table runs its own job and sees only jobs on tables it can update.
CREATE ROLE re_user;
CREATE TABLE re_owned (id int PRIMARY KEY, body text, embedding vector(256));
ALTER TABLE re_owned OWNER TO re_user;
INSERT INTO re_owned SELECT i, 'owned ' || i FROM generate_series(1, 5) AS i;
SET ROLE re_user;
CALL qwen3_embed_reembed('re_owned', 'body', 'embedding');
SELECT relation, state, rows_done FROM qwen3_embed_progress;
SELECT relation, state FROM qwen3_embed.jobs;
\set VERBOSITY sqlstate
UPDATE qwen3_embed.jobs SET rows_done = 0 WHERE relation = 're_docs'::regclass;
UPDATE qwen3_embed.jobs SET last_key = NULL WHERE relation = 're_owned'::regclass;
CALL qwen3_embed_reembed('re_docs', 'body', 'embedding');
\set VERBOSITY terse
RESET ROLE;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body)) AS owned_equal FROM re_owned;
DROP TABLE re_owned;
DELETE FROM qwen3_embed.jobs WHERE relation::oid NOT IN (SELECT oid FROM pg_class);
DROP ROLE re_user;

-- qwen3_embed_migrate_dims: 256 -> 128 through a new column, swapped in at the end.
CREATE TABLE mig_docs (id int PRIMARY KEY, body text, embedding vector(256), note text);
CREATE TRIGGER mig_docs_embed BEFORE INSERT OR UPDATE ON mig_docs
    FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding');
INSERT INTO mig_docs (id, body)
SELECT i, format('Migration test document %s: %s', i, md5(i::text)) FROM generate_series(1, 30) AS i;
CREATE INDEX mig_docs_hnsw ON mig_docs USING hnsw (embedding vector_cosine_ops);
SELECT format_type(atttypid, atttypmod) AS type_before FROM pg_attribute
 WHERE attrelid = 'mig_docs'::regclass AND attname = 'embedding';
CALL qwen3_embed_migrate_dims('mig_docs', 'body', 'embedding', 128, batch_size => 8);
SELECT format_type(atttypid, atttypmod) AS type_after FROM pg_attribute
 WHERE attrelid = 'mig_docs'::regclass AND attname = 'embedding';
SELECT count(*) AS rows,
       count(*) FILTER (WHERE vector_dims(embedding) = 128) AS dims_128,
       count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 128)) AS equal_to_function
  FROM mig_docs;
-- Nothing of the migration is left: no extra column, no sync trigger, no index.
SELECT attname FROM pg_attribute WHERE attrelid = 'mig_docs'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'mig_docs'::regclass ORDER BY tgname;
SELECT count(*) AS indexes_on_embedding FROM pg_indexes WHERE tablename = 'mig_docs' AND indexdef LIKE '%embedding%';
SELECT relation, target_column, state, rows_done, rows_total, dims FROM progress WHERE relation = 'mig_docs'::regclass;
-- The table's own trigger (no dims argument) now embeds to 128.
INSERT INTO mig_docs (id, body) VALUES (31, 'inserted after the migration');
SELECT embedding = qwen3_embed(body, NULL, 128) AS trigger_uses_new_size FROM mig_docs WHERE id = 31;
-- Recreate the index, search.
CREATE INDEX mig_docs_hnsw ON mig_docs USING hnsw (embedding vector_cosine_ops);
SET enable_seqscan = off;
SELECT id FROM mig_docs ORDER BY embedding <=> qwen3_embed_document((SELECT body FROM mig_docs WHERE id = 17), 128) LIMIT 1;
RESET enable_seqscan;
-- Same size again: nothing to do.
CALL qwen3_embed_migrate_dims('mig_docs', 'body', 'embedding', 128);
-- Sizes the model does not have, and a column that is no vector.
\set VERBOSITY sqlstate
CALL qwen3_embed_migrate_dims('mig_docs', 'body', 'embedding', 300);
CALL qwen3_embed_migrate_dims('mig_docs', 'body', 'embedding', 16);
CALL qwen3_embed_migrate_dims('mig_docs', 'body', 'note', 64);
\set VERBOSITY terse

-- An interrupted migration: row 20's text is too long under 'error' (the table's trigger
-- truncated it when it was written), so the third batch fails; a row inserted meanwhile gets its
-- new-size vector from the migration's sync trigger; a second CALL finishes the job.
SET qwen3_embed.max_tokens = 64;
UPDATE mig_docs SET body = repeat('far too long ', 50) WHERE id = 20;
SET qwen3_embed.on_long_input = 'error';
CALL qwen3_embed_migrate_dims('mig_docs', 'body', 'embedding', 64, batch_size => 8);
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'mig_docs'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'mig_docs'::regclass ORDER BY tgname;
SELECT target_column, state, rows_done, error_code FROM progress WHERE relation = 'mig_docs'::regclass ORDER BY 1;
SET qwen3_embed.on_long_input = 'truncate';
INSERT INTO mig_docs (id, body) VALUES (32, 'inserted during the migration');
SELECT embedding_qwen3_d64 = qwen3_embed(body, NULL, 64) AS sync_trigger_filled FROM mig_docs WHERE id = 32;
CALL qwen3_embed_migrate_dims('mig_docs', 'body', 'embedding', 64, batch_size => 8);
SELECT format_type(atttypid, atttypmod) AS type_after FROM pg_attribute
 WHERE attrelid = 'mig_docs'::regclass AND attname = 'embedding';
SELECT count(*) AS rows, count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) AS equal_to_function
  FROM mig_docs;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'mig_docs'::regclass ORDER BY tgname;
SELECT relation, target_column, state, rows_done, dims FROM progress WHERE relation = 'mig_docs'::regclass;
RESET qwen3_embed.max_tokens;
RESET qwen3_embed.on_long_input;

DROP TABLE re_docs, re_resume, re_nokey, re_twokeys, mig_docs, "Re Schema"."Docs Table";
DROP SCHEMA "Re Schema";
DROP FUNCTION slow_row();
-- Jobs of dropped tables go with them (the sql_drop event trigger).
SELECT count(*) AS stale_jobs FROM qwen3_embed.jobs WHERE relation::oid NOT IN (SELECT oid FROM pg_class);
DELETE FROM qwen3_embed.jobs;
DROP VIEW progress;
DROP FUNCTION marker();
