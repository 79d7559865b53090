-- The vectors from SQL equal the engine CLI's for the same inputs and model (cos >= 0.999999).
-- tests/sql.sh runs `qwen3-embed embed` on tests/data/cli_inputs.jsonl (full size and
-- --dims 64) and passes the files' paths in environment variables.
\getenv cli_inputs QWEN3_EMBED_CLI_INPUTS
\getenv cli_full QWEN3_EMBED_CLI_FULL
\getenv cli_d64 QWEN3_EMBED_CLI_D64

CREATE TEMP TABLE cli_inputs AS
SELECT (n - 1)::int AS index, line::jsonb ->> 'text' AS text, line::jsonb ->> 'instruct' AS instruct
  FROM regexp_split_to_table(rtrim(pg_read_file(:'cli_inputs'), E'\n'), E'\n') WITH ORDINALITY AS t(line, n);
CREATE TEMP TABLE cli_out AS
SELECT d.dims, (j ->> 'index')::int AS index, (j ->> 'tokens')::int AS tokens,
       (j -> 'embedding')::text::vector AS embedding
  FROM (VALUES (NULL::int, pg_read_file(:'cli_full')), (64, pg_read_file(:'cli_d64'))) AS d(dims, content),
       regexp_split_to_table(rtrim(d.content, E'\n'), E'\n') AS line,
       LATERAL (SELECT line::jsonb AS j) x;

SELECT count(*) AS inputs, count(instruct) AS with_instruct FROM cli_inputs;
SELECT coalesce(o.dims, 256) AS dims, count(*) AS compared,
       count(*) FILTER (WHERE 1 - (o.embedding <=> qwen3_embed(i.text, i.instruct, o.dims)) >= 0.999999) AS cos_ge_0_999999,
       count(*) FILTER (WHERE o.tokens = qwen3_token_count(i.text, i.instruct)) AS same_token_count,
       count(*) FILTER (WHERE vector_dims(o.embedding) = coalesce(o.dims, 256)) AS right_size
  FROM cli_out o JOIN cli_inputs i USING (index)
 GROUP BY o.dims ORDER BY 1;
-- One batch call gives the same.
SELECT count(*) FILTER (WHERE 1 - (o.embedding <=> b.embedding) >= 0.999999) AS batch_cos_ge_0_999999
  FROM qwen3_embed_batch((SELECT array_agg(text ORDER BY index) FROM cli_inputs WHERE instruct IS NULL)) b
  JOIN (SELECT row_number() OVER (ORDER BY index) AS ord, index FROM cli_inputs WHERE instruct IS NULL) k ON k.ord = b.ord
  JOIN cli_out o ON o.index = k.index AND o.dims IS NULL;
