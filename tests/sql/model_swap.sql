-- A new qwen3_embed.model_path takes effect at the next call, no restart: here the Q4_K_M file
-- of the same test model. Its vectors differ from Q8_0's bits but agree in direction.
\getenv QWEN3_MODEL QWEN3_EMBED_MODEL
SELECT replace(:'QWEN3_MODEL', 'model-q8_0.gguf', 'model-q4_k_m.gguf') AS q4_model \gset
CREATE TEMP TABLE swap_q8 AS SELECT qwen3_embed('model swap') AS v;
SET qwen3_embed.model_path = :'q4_model';
SELECT model_path LIKE '%model-q4_k_m.gguf' AS q4_loaded, tensor_types LIKE '%Q4K:%' AS has_q4_k
  FROM qwen3_embed_info();
SELECT q.v <> s.v AS other_bits, 1 - (q.v <=> s.v) > 0.99 AS same_direction
  FROM (SELECT qwen3_embed('model swap') AS v) q, swap_q8 s;
RESET qwen3_embed.model_path;
SELECT model_path LIKE '%model-q8_0.gguf' AS q8_back FROM qwen3_embed_info();
SELECT qwen3_embed('model swap') = v AS same_bits_again FROM swap_q8;
