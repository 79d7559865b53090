-- qwen3_embed_trigger(): fills the target on INSERT, re-embeds on UPDATE only when the source
-- text changed.
CREATE TABLE trg_docs (
    id        int PRIMARY KEY,
    title     text,
    body      text,
    embedding vector(256)
);
CREATE TRIGGER trg_docs_embed BEFORE INSERT OR UPDATE ON trg_docs
    FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding');

INSERT INTO trg_docs (id, title, body) VALUES
  (1, 'pg', 'PostgreSQL is a powerful, open source object-relational database system.'),
  (2, 'vec', 'pgvector adds vector similarity search to Postgres.'),
  (3, 'none', NULL);
-- A value given for the target is replaced by the embedding of the source.
INSERT INTO trg_docs (id, title, body, embedding) VALUES (4, 'given', 'some text', qwen3_embed('other text'));
SELECT id, embedding IS NULL AS is_null, embedding = qwen3_embed(body) AS filled FROM trg_docs ORDER BY id;

-- UPDATE of the text re-embeds.
UPDATE trg_docs SET body = 'A different text now.' WHERE id = 1;
SELECT embedding = qwen3_embed('A different text now.') AS reembedded FROM trg_docs WHERE id = 1;
UPDATE trg_docs SET body = 'no longer NULL' WHERE id = 3;
SELECT embedding = qwen3_embed('no longer NULL') AS filled_from_null FROM trg_docs WHERE id = 3;
UPDATE trg_docs SET body = NULL WHERE id = 3;
SELECT embedding IS NULL AS null_text_null_embedding FROM trg_docs WHERE id = 3;

-- UPDATE of another column does not re-embed: put a marker in the embedding directly (the text
-- is unchanged, so the trigger leaves it), then update the title: the marker stays.
UPDATE trg_docs SET embedding = array_fill(0.5, ARRAY[256])::vector WHERE id = 2;
SELECT embedding = array_fill(0.5, ARRAY[256])::vector AS marker_set FROM trg_docs WHERE id = 2;
UPDATE trg_docs SET title = 'vector search' WHERE id = 2;
SELECT title, embedding = array_fill(0.5, ARRAY[256])::vector AS marker_kept FROM trg_docs WHERE id = 2;
-- Setting the text to the same value is no change either.
UPDATE trg_docs SET body = body WHERE id = 2;
SELECT embedding = array_fill(0.5, ARRAY[256])::vector AS marker_kept_same_text FROM trg_docs WHERE id = 2;
-- Changing the text replaces the marker.
UPDATE trg_docs SET body = body || '!' WHERE id = 2;
SELECT embedding = qwen3_embed('pgvector adds vector similarity search to Postgres.!') AS marker_replaced
  FROM trg_docs WHERE id = 2;

-- With an instruction and a size; empty strings mean NULL.
CREATE TABLE trg_queries (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "Query Text" varchar(200),
    q64       vector(64),
    q_full    vector,
    q_sized   vector(128),
    q_half    halfvec(256)
);
CREATE TRIGGER a_q64 BEFORE INSERT OR UPDATE ON trg_queries
    FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('Query Text', 'q64', 'Find documents about this', '64');
CREATE TRIGGER b_full BEFORE INSERT OR UPDATE ON trg_queries
    FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('Query Text', 'q_full', '', '');
-- No dims argument: the size comes from the column, vector(128).
CREATE TRIGGER c_sized BEFORE INSERT OR UPDATE ON trg_queries
    FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('Query Text', 'q_sized', 'Find documents about this');
-- A halfvec target.
CREATE TRIGGER d_half BEFORE INSERT OR UPDATE ON trg_queries
    FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('Query Text', 'q_half');
INSERT INTO trg_queries ("Query Text") VALUES ('how do I index vectors'), ('what is MRL');
SELECT id,
       q64 = qwen3_embed("Query Text", 'Find documents about this', 64) AS q64_ok,
       vector_dims(q_full) AS full_dims, q_full = qwen3_embed("Query Text") AS full_ok,
       vector_dims(q_sized) AS sized_dims, q_sized = qwen3_embed("Query Text", 'Find documents about this', 128) AS sized_ok,
       (q_half::vector <=> qwen3_embed("Query Text")) < 1e-3 AS half_ok
  FROM trg_queries ORDER BY id;

-- The trigger also runs under COPY.
COPY trg_docs (id, title, body) FROM stdin;
10	copied	text that came through COPY
\.
SELECT embedding = qwen3_embed('text that came through COPY') AS copy_filled FROM trg_docs WHERE id = 10;

-- Wrong usage, each with its SQLSTATE.
\set VERBOSITY sqlstate
CREATE TABLE trg_bad (id int PRIMARY KEY, body text, embedding vector(256), n int);
-- unknown columns: undefined_column
CREATE TRIGGER bad BEFORE INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('nope', 'embedding');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
CREATE TRIGGER bad BEFORE INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'nope');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
-- too few / too many arguments: invalid_parameter_value
CREATE TRIGGER bad BEFORE INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
CREATE TRIGGER bad BEFORE INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding', '', '', 'x');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
-- dims not an integer: invalid_parameter_value; an integer that is not the column's size: datatype_mismatch
CREATE TRIGGER bad BEFORE INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding', '', 'lots');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
CREATE TRIGGER bad BEFORE INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding', '', '12.5');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
CREATE TRIGGER bad BEFORE INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding', '', '31');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
-- a size that does not fit the column: datatype_mismatch, before embedding
CREATE TRIGGER bad BEFORE INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding', '', '64');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
-- a target that is not a vector or halfvec: datatype_mismatch
CREATE TRIGGER bad BEFORE INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'n');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
-- AFTER, or FOR EACH STATEMENT: triggered_action_exception
CREATE TRIGGER bad AFTER INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
CREATE TRIGGER bad BEFORE INSERT ON trg_bad FOR EACH STATEMENT EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
CREATE TRIGGER bad BEFORE DELETE ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DELETE FROM trg_bad;
DROP TRIGGER bad ON trg_bad;
DELETE FROM trg_bad;
-- The messages say what is wrong.
\set VERBOSITY terse
CREATE TRIGGER bad BEFORE INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('nope', 'embedding');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
CREATE TRIGGER bad BEFORE INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding', '', 'lots');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
CREATE TRIGGER bad AFTER INSERT ON trg_bad FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding');
INSERT INTO trg_bad (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON trg_bad;
\set VERBOSITY default
SELECT count(*) AS no_rows_written FROM trg_bad;
DROP TABLE trg_docs, trg_queries, trg_bad;
