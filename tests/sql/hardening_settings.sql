-- Settings an ordinary role must not change, because they decide what other sessions get:
-- which model the shared server holds (device), how much CPU (threads) and memory (batch and
-- request token budgets, max_tokens) one call takes. on_long_input only turns a truncation
-- into an error for the caller, so anyone may set it.
-- The library is loaded first, so each SET is refused at once (not kept as a placeholder).
SELECT qwen3_embed_default_task() IS NOT NULL AS loaded;
CREATE ROLE set_user;
SET ROLE set_user;
\set VERBOSITY sqlstate
SET qwen3_embed.device = 'auto';
SET qwen3_embed.threads = 64;
SET qwen3_embed.batch_tokens = 1048576;
SET qwen3_embed.max_tokens = 32768;
SET qwen3_embed.max_request_tokens = 100000000;
SET qwen3_embed.model_path = '/tmp/other.gguf';
SET qwen3_embed.use_server = off;
\set VERBOSITY terse
SET qwen3_embed.device = 'auto';
SET qwen3_embed.on_long_input = 'error';
SHOW qwen3_embed.on_long_input;
-- What the role may call still works with the configured settings.
SELECT vector_dims(qwen3_embed('an ordinary call')) AS dims;
RESET qwen3_embed.on_long_input;
RESET ROLE;
DROP ROLE set_user;

SELECT name, context FROM pg_settings
 WHERE name LIKE 'qwen3_embed.%' AND context <> 'postmaster' ORDER BY name;

-- The per-call token budget: a call over qwen3_embed.max_request_tokens is refused as a
-- whole (program_limit_exceeded), before any forward pass; at the limit it runs.
SET qwen3_embed.max_request_tokens = 64;
SELECT sum(qwen3_token_count(t)) AS tokens
  FROM unnest(ARRAY['one two three four five six seven', 'eight nine ten eleven twelve thirteen']) t;
\set VERBOSITY sqlstate
SELECT count(*) FROM qwen3_embed_batch(array_fill('one two three four five six seven eight nine'::text, ARRAY[20]));
SELECT qwen3_embed(repeat('word ', 100));
\set VERBOSITY terse
SELECT count(*) FROM qwen3_embed_batch(array_fill('one two three four five six seven eight nine'::text, ARRAY[20]));
SELECT count(*) AS rows FROM qwen3_embed_batch(array_fill('word'::text, ARRAY[32]));
SELECT count(*) FROM qwen3_embed_batch(array_fill('word'::text, ARRAY[33]));
-- A truncated input counts with its truncated length.
SET qwen3_embed.max_tokens = 16;
SELECT count(*) AS rows FROM qwen3_embed_batch(array_fill(repeat('word ', 100), ARRAY[4]));
RESET qwen3_embed.max_tokens;
RESET qwen3_embed.max_request_tokens;
SELECT count(*) AS rows FROM qwen3_embed_batch(array_fill('one two three four five six seven eight nine'::text, ARRAY[20]));
\set VERBOSITY default
