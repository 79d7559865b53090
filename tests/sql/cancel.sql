-- A statement timeout stops an embedding in progress (a 8192-token input on the test model
-- takes several seconds) with the usual error, and the session stays usable.
SET client_min_messages = warning;
SET statement_timeout = '300ms';
SELECT vector_dims(qwen3_embed(repeat('lorem ipsum dolor sit amet ', 1800)));
RESET statement_timeout;
SELECT vector_dims(qwen3_embed('still usable')) AS after_timeout;
-- Cut to 512 tokens the same input completes in time.
SET qwen3_embed.max_tokens = 512;
SELECT vector_dims(qwen3_embed(repeat('lorem ipsum dolor sit amet ', 1800))) AS truncated_input;
RESET qwen3_embed.max_tokens;
RESET client_min_messages;
