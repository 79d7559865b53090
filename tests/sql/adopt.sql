-- Adopting a column filled elsewhere: tests/sql.sh embeds tests/data/adopt_inputs.txt
-- with the engine CLI (dims 64): with the loaded model, with the loaded model and an
-- instruction, and with another model (same shape, other weights). A sample is embedded again
-- and must agree at cosine >= min_cosine (0.98) on every row.
\getenv adopt_dir QWEN3_EMBED_ADOPT_DIR
SELECT :'adopt_dir' || '/adopt_inputs.txt' AS inputs_file, :'adopt_dir' || '/adopt_same.jsonl' AS same_file,
       :'adopt_dir' || '/adopt_instructed.jsonl' AS instructed_file, :'adopt_dir' || '/adopt_other.jsonl' AS other_file \gset
CREATE TEMP TABLE made AS
SELECT f.kind, (n - 1)::int AS id, l.line AS body, (v.j ->> 'embedding') AS embedding
  FROM (VALUES ('same', :'same_file'), ('instructed', :'instructed_file'), ('other', :'other_file')) AS f(kind, path),
       LATERAL regexp_split_to_table(rtrim(pg_read_file(f.path), E'\n'), E'\n') WITH ORDINALITY AS o(js, n)
       JOIN LATERAL (SELECT o.js::jsonb AS j) v ON true
       JOIN LATERAL (SELECT line FROM regexp_split_to_table(rtrim(pg_read_file(:'inputs_file'), E'\n'), E'\n')
                       WITH ORDINALITY AS i(line, k) WHERE i.k = o.n) l ON true;
SELECT kind, count(*) AS rows FROM made GROUP BY kind ORDER BY kind;

-- The same model's vectors: adopted; the two rows without a vector are queued for the sync.
CREATE TABLE ad_docs (id int PRIMARY KEY, body text, embedding vector(64));
INSERT INTO ad_docs SELECT id, body, embedding::vector FROM made WHERE kind = 'same';
INSERT INTO ad_docs VALUES (100, 'a row written before the adoption', NULL), (101, 'another one', NULL);
SELECT sampled, lowest_cosine >= 0.999999 AS agrees, mean_cosine >= 0.999999 AS agrees_on_average,
       sync_id IS NOT NULL AS synced, queued
  FROM qwen3_embed_adopt('ad_docs', 'body', 'embedding');
SELECT c.instruct, c.dims, c.fingerprint = i.fingerprint AS loaded_model, c.next_fingerprint
  FROM qwen3_embed.columns c, qwen3_embed_info() i WHERE c.relation = 'ad_docs'::regclass;
SELECT qwen3_embed_sync_run(NULL, 10) AS rows_embedded;
-- The adopted vectors stayed; the new rows got the loaded model's; later writes too.
INSERT INTO ad_docs VALUES (102, 'written after the adoption', NULL);
SELECT qwen3_embed_sync_run(NULL, 10) AS rows_embedded;
SELECT count(*) FILTER (WHERE d.embedding::text = m.embedding::vector::text) AS adopted_unchanged,
       count(*) FILTER (WHERE 1 - (d.embedding <=> qwen3_embed(d.body, NULL, 64)) >= 0.999999) AS agree_with_the_model,
       count(*) AS rows
  FROM ad_docs d LEFT JOIN made m ON m.kind = 'same' AND m.id = d.id;

-- Another instruction's vectors are refused, with the agreement measured; named, adopted.
CREATE TABLE ad_instructed (id int PRIMARY KEY, body text, embedding vector(64));
INSERT INTO ad_instructed SELECT id, body, embedding::vector FROM made WHERE kind = 'instructed';
SELECT * FROM qwen3_embed_adopt('ad_instructed', 'body', 'embedding');
SELECT count(*) AS registered FROM qwen3_embed.columns WHERE relation = 'ad_instructed'::regclass;
SELECT sampled, lowest_cosine >= 0.999999 AS agrees, queued
  FROM qwen3_embed_adopt('ad_instructed', 'body', 'embedding', sync => false,
                         instruct => 'Given a web search query, retrieve relevant passages that answer the query');
SELECT c.instruct IS NOT NULL AS has_instruct FROM qwen3_embed.columns c WHERE c.relation = 'ad_instructed'::regclass;

-- Another model's vectors are refused.
CREATE TABLE ad_other (id int PRIMARY KEY, body text, embedding vector(64));
INSERT INTO ad_other SELECT id, body, embedding::vector FROM made WHERE kind = 'other';
SELECT * FROM qwen3_embed_adopt('ad_other', 'body', 'embedding');
SELECT count(*) AS registered FROM qwen3_embed.columns WHERE relation = 'ad_other'::regclass;
SELECT count(*) AS syncs FROM qwen3_embed.syncs WHERE relation = 'ad_other'::regclass;

-- Wrong usage.
\set VERBOSITY sqlstate
SELECT * FROM qwen3_embed_adopt('ad_other', 'body', 'embedding', dims => 32);
SELECT * FROM qwen3_embed_adopt('ad_other', 'body', 'nope');
SELECT * FROM qwen3_embed_adopt('ad_other', 'body', 'body');
SELECT * FROM qwen3_embed_adopt('ad_other', 'body', 'embedding', sample => 0);
SELECT * FROM qwen3_embed_adopt('ad_docs', 'body', 'embedding');
CREATE TABLE ad_empty (id int PRIMARY KEY, body text, embedding vector(64));
SELECT * FROM qwen3_embed_adopt('ad_empty', 'body', 'embedding');
CREATE ROLE ad_stranger;
GRANT SELECT, UPDATE ON ad_other TO ad_stranger;
SET ROLE ad_stranger;
SELECT * FROM qwen3_embed_adopt('ad_other', 'body', 'embedding');
RESET ROLE;
\set VERBOSITY default
SELECT qwen3_embed_unsync('ad_docs', 'embedding') AS pending_dropped;
DROP TABLE ad_docs, ad_instructed, ad_other, ad_empty;
DROP ROLE ad_stranger;
