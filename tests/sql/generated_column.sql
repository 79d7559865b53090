-- An embedding as a stored generated column: computed on INSERT and on UPDATE of the text.
CREATE TABLE gen_docs (
    id        int PRIMARY KEY,
    body      text,
    embedding vector(256) GENERATED ALWAYS AS (qwen3_embed(body, NULL, 256)::vector(256)) STORED,
    small     vector(64)  GENERATED ALWAYS AS (qwen3_embed_document(body, 64)) STORED
);
INSERT INTO gen_docs (id, body) VALUES
  (1, 'PostgreSQL is a powerful, open source object-relational database system.'),
  (2, 'pgvector adds vector similarity search to Postgres.'),
  (3, 'Qwen3-Embedding turns text into vectors.'),
  (4, NULL),
  (5, 'Zürich, 東京, Москва — naïve café 🐘');
SELECT id, embedding IS NULL AS is_null, vector_dims(embedding) AS dims, vector_dims(small) AS small_dims,
       embedding = qwen3_embed(body) AS equals_function,
       small = qwen3_embed(body, NULL, 64) AS small_equals_function
  FROM gen_docs ORDER BY id;

-- UPDATE of the text recomputes it.
UPDATE gen_docs SET body = 'Now about something else entirely.' WHERE id = 1;
SELECT id, embedding = qwen3_embed('Now about something else entirely.') AS recomputed
  FROM gen_docs WHERE id = 1;
UPDATE gen_docs SET body = 'filled later' WHERE id = 4;
SELECT id, embedding = qwen3_embed('filled later') AS filled FROM gen_docs WHERE id = 4;

-- Generated columns cannot be written.
\set VERBOSITY sqlstate
INSERT INTO gen_docs (id, body, embedding) VALUES (9, 'x', qwen3_embed('x'));
\set VERBOSITY default

-- A plain INSERT ... SELECT qwen3_embed(...) into an ordinary column works the same.
CREATE TABLE plain_docs (id int PRIMARY KEY, body text, embedding vector(256));
INSERT INTO plain_docs SELECT id, body, qwen3_embed(body) FROM gen_docs;
SELECT count(*) AS rows, count(*) FILTER (WHERE p.embedding = g.embedding) AS equal
  FROM plain_docs p JOIN gen_docs g USING (id);
-- A size mismatch is pgvector's error.
\set VERBOSITY sqlstate
INSERT INTO plain_docs VALUES (10, 'x', qwen3_embed('x', NULL, 128));
\set VERBOSITY default
DROP TABLE gen_docs, plain_docs;
