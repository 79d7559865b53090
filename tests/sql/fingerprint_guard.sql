-- qwen3_embed.expect_fingerprint: pinned (per database, as ALTER DATABASE ... SET), every
-- embedding call under another model fails with object_not_in_prerequisite_state, so a
-- generated column cannot mix two models' vectors.
CREATE TABLE fp_docs (
    id int PRIMARY KEY,
    body text,
    embedding vector(64) GENERATED ALWAYS AS (qwen3_embed(body, NULL, 64)::vector(64)) STORED
);
SELECT fingerprint AS fp FROM qwen3_embed_info() \gset
-- The model in use is the expected one: writes go through.
SELECT set_config('qwen3_embed.expect_fingerprint', :'fp', false) IS NOT NULL AS pinned;
INSERT INTO fp_docs (id, body) VALUES (1, 'written under the expected model');
-- The spelling's case and surrounding spaces do not matter.
SELECT set_config('qwen3_embed.expect_fingerprint', ' ' || upper(:'fp') || ' ', false) IS NOT NULL AS pinned;
INSERT INTO fp_docs (id, body) VALUES (2, 'still the expected model');
-- Another model than the expected one (here: another fingerprint expected) is refused.
SET qwen3_embed.expect_fingerprint = '00000000000000000000000000000000';
\set VERBOSITY sqlstate
INSERT INTO fp_docs (id, body) VALUES (3, 'refused');
SELECT qwen3_embed('refused too');
SELECT count(*) FROM qwen3_embed_batch(ARRAY['refused as well']);
\set VERBOSITY terse
INSERT INTO fp_docs (id, body) VALUES (3, 'refused');
\set VERBOSITY default
-- What does not write vectors still works.
SELECT qwen3_token_count('counting is fine') > 0 AS tokenize_works;
SELECT count(*) AS rows FROM fp_docs;
-- Pinned for the database: a new session gets it, and a changed model fails there too.
SELECT current_database() AS db \gset
ALTER DATABASE :"db" SET qwen3_embed.expect_fingerprint = '00000000000000000000000000000000';
\c
\set VERBOSITY sqlstate
INSERT INTO fp_docs (id, body) VALUES (4, 'refused in a new session');
\set VERBOSITY default
ALTER DATABASE :"db" RESET qwen3_embed.expect_fingerprint;
\c
INSERT INTO fp_docs (id, body) VALUES (4, 'no pin, any model');
SELECT count(*) AS rows FROM fp_docs;
DROP TABLE fp_docs;
