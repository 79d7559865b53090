-- Text in databases of other encodings (issue 39, item 4): every SQL function converts the
-- database's text to UTF-8 with PostgreSQL's conversion (and chunks back), so the same text
-- gives the same vectors, scores and tokens as in a UTF-8 database; SQL_ASCII, which says
-- nothing about bytes above 0x7F, refuses them with 22021. This file is UTF-8; each database
-- is read with client_encoding UTF8.
\set VERBOSITY terse
SET client_encoding = 'UTF8';
-- The reference, in this (UTF-8) database.
SELECT qwen3_embed('Ein Café in Zürich, naïve façade')::text AS v_latin \gset
SELECT qwen3_embed('€ — “quoted” café')::text AS v_win \gset
SELECT qwen3_embed('日本語の文章を埋め込む')::text AS v_jp \gset
SELECT qwen3_embed_query('où est le café')::text AS q_latin \gset
SELECT qwen3_tokenize('Ein Café in Zürich, naïve façade')::text AS t_latin \gset
SELECT qwen3_rerank_score('où est le café', 'Ein Café in Zürich')::text AS s_latin \gset
SELECT string_agg(chunk, '|' ORDER BY chunk_no) AS c_jp FROM qwen3_chunks('日本語の文章を埋め込む。' || repeat('東京と大阪、', 20), 8, 2) \gset

CREATE DATABASE qwen3_enc_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE qwen3_enc_win1252 ENCODING 'WIN1252' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE qwen3_enc_eucjp ENCODING 'EUC_JP' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
CREATE DATABASE qwen3_enc_sqlascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;

\c qwen3_enc_latin1
SET client_encoding = 'UTF8';
\set VERBOSITY terse
CREATE EXTENSION vector;
CREATE EXTENSION qwen3_embed;
SHOW server_encoding;
SELECT qwen3_embed('Ein Café in Zürich, naïve façade') <=> :'v_latin'::vector < 1e-6 AS embed_same;
SELECT qwen3_embed_document('Ein Café in Zürich, naïve façade') <=> :'v_latin'::vector < 1e-6 AS document_same;
SELECT qwen3_embed_query('où est le café') <=> :'q_latin'::vector < 1e-6 AS query_same;
SELECT qwen3_tokenize('Ein Café in Zürich, naïve façade')::text = :'t_latin' AS tokens_same,
       qwen3_token_count('Ein Café in Zürich, naïve façade') = cardinality(:'t_latin'::int[]) AS count_same;
SELECT b.ord, b.embedding <=> :'v_latin'::vector < 1e-6 AS batch_same
  FROM qwen3_embed_batch(ARRAY['Ein Café in Zürich, naïve façade', NULL, 'Ein Café in Zürich, naïve façade']) b ORDER BY b.ord;
SELECT abs(qwen3_rerank_score('où est le café', 'Ein Café in Zürich') - :'s_latin'::real) < 1e-6 AS score_same;
SELECT r.ord, abs(r.score - :'s_latin'::real) < 1e-6 AS rerank_same
  FROM qwen3_rerank('où est le café', ARRAY['Ein Café in Zürich', 'Ein Café in Zürich']) r ORDER BY r.ord;
SELECT string_agg(chunk, '|' ORDER BY chunk_no) = 'Ein Café in Zürich, naïve façade' AS chunk_round_trip
  FROM qwen3_chunks('Ein Café in Zürich, naïve façade', 512, 0);
-- A generated column and a kept-in-step column.
CREATE TABLE docs (id int PRIMARY KEY, body text, e vector(256) GENERATED ALWAYS AS (qwen3_embed(body)) STORED, s vector(256));
INSERT INTO docs (id, body) VALUES (1, 'Ein Café in Zürich, naïve façade');
SELECT e <=> :'v_latin'::vector < 1e-6 AS generated_same FROM docs;
SELECT qwen3_embed_sync('docs', 'body', 's') > 0 AS synced;
SELECT qwen3_embed_sync_run(NULL, 10) AS rows_embedded;
SELECT s <=> :'v_latin'::vector < 1e-6 AS synced_same FROM docs;
-- A character LATIN1 cannot hold is refused by the conversion, as for any text.
SELECT qwen3_embed('日本');

\c qwen3_enc_win1252
SET client_encoding = 'UTF8';
\set VERBOSITY terse
CREATE EXTENSION vector;
CREATE EXTENSION qwen3_embed;
SHOW server_encoding;
SELECT qwen3_embed('€ — “quoted” café') <=> :'v_win'::vector < 1e-6 AS embed_same;
SELECT b.ord, b.embedding <=> :'v_win'::vector < 1e-6 AS batch_same
  FROM qwen3_embed_batch(ARRAY['€ — “quoted” café']) b;

\c qwen3_enc_eucjp
SET client_encoding = 'UTF8';
\set VERBOSITY terse
CREATE EXTENSION vector;
CREATE EXTENSION qwen3_embed;
SHOW server_encoding;
SELECT qwen3_embed('日本語の文章を埋め込む') <=> :'v_jp'::vector < 1e-6 AS embed_same;
SELECT b.ord, b.embedding <=> :'v_jp'::vector < 1e-6 AS batch_same
  FROM qwen3_embed_batch(ARRAY['日本語の文章を埋め込む']) b;
SELECT string_agg(chunk, '|' ORDER BY chunk_no) = :'c_jp' AS chunks_same
  FROM qwen3_chunks('日本語の文章を埋め込む。' || repeat('東京と大阪、', 20), 8, 2);

\c qwen3_enc_sqlascii
SET client_encoding = 'UTF8';
\set VERBOSITY terse
CREATE EXTENSION vector;
CREATE EXTENSION qwen3_embed;
SHOW server_encoding;
SELECT vector_dims(qwen3_embed('plain ASCII text is fine')) AS ascii_dims;
\set VERBOSITY default
SELECT qwen3_embed('café');
\set VERBOSITY sqlstate
SELECT * FROM qwen3_embed_batch(ARRAY['ascii', 'café']);
SELECT * FROM qwen3_rerank('q', ARRAY['café']);
SELECT qwen3_token_count('café');
SELECT * FROM qwen3_chunks('café');

\c qwen3_embed_regress
DROP DATABASE qwen3_enc_latin1;
DROP DATABASE qwen3_enc_win1252;
DROP DATABASE qwen3_enc_eucjp;
DROP DATABASE qwen3_enc_sqlascii;
