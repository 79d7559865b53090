-- Inputs as long as the model's context: qwen3_embed.max_tokens at its ceiling, 32768, works in
-- the backend and through the model server (such an input is longer than batch_tokens and runs
-- alone in its pass), and an input past it is truncated to its first 32767 tokens and the
-- end-of-text token: the same vector as the text of exactly that length.
SET qwen3_embed.max_tokens = 32768;
CREATE TEMP TABLE long_text AS
SELECT rtrim(repeat('word ', 32767)) AS exact, rtrim(repeat('word ', 40000)) AS over;
SELECT qwen3_token_count(exact) AS exact_tokens, qwen3_token_count(over) AS over_tokens FROM long_text;
CREATE TEMP TABLE long_vec AS
SELECT qwen3_embed(exact) AS exact, qwen3_embed(over) AS over FROM long_text;
SELECT vector_dims(exact) AS dims, round(vector_norm(exact)::numeric, 5) AS norm,
       exact <=> over < 1e-6 AS truncated_to_the_same_vector
  FROM long_vec;
-- A shorter document is a different vector (the long one was not cut elsewhere).
SELECT (SELECT exact FROM long_vec) <=> qwen3_embed(rtrim(repeat('word ', 8000))) > 1e-6 AS differs_from_8k;
RESET qwen3_embed.max_tokens;
