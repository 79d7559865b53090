-- Errors: each with its SQLSTATE (VERBOSITY sqlstate prints only the code, so paths and
-- wording can change without breaking the test); a few with their full text, terse.
\set VERBOSITY sqlstate

-- dims outside 32..256 (the fixture's size): invalid_parameter_value
SELECT qwen3_embed('x', NULL, 31);
SELECT qwen3_embed('x', NULL, 257);
SELECT qwen3_embed('x', NULL, -1);
SELECT qwen3_embed('x', NULL, 0);
SELECT qwen3_embed_document('x', 1000000);
SELECT qwen3_embed_query('x', NULL, 31);
SELECT * FROM qwen3_embed_batch(ARRAY['x'], NULL, 31);
-- 32 and 256 are fine.
SELECT vector_dims(qwen3_embed('x', NULL, 32)) AS d32, vector_dims(qwen3_embed('x', NULL, 256)) AS d256;

-- Long inputs: truncated with a NOTICE, or refused with program_limit_exceeded.
SET qwen3_embed.max_tokens = 16;
SET qwen3_embed.on_long_input = 'error';
SELECT qwen3_embed(repeat('word ', 100));
SELECT * FROM qwen3_embed_batch(ARRAY['short', repeat('word ', 100)]);
-- At the limit exactly is fine: 15 tokens plus end-of-text.
SELECT qwen3_token_count(repeat(' word', 15)) AS tokens, vector_dims(qwen3_embed(repeat(' word', 15))) AS dims;
SELECT qwen3_embed(repeat(' word', 16));
SET qwen3_embed.on_long_input = 'truncate';
\set VERBOSITY terse
SELECT vector_dims(qwen3_embed(repeat('word ', 100))) AS truncated_dims;
-- Truncation keeps the first max_tokens - 1 tokens and the end-of-text token.
SELECT qwen3_embed(repeat(' word', 100)) = qwen3_embed(repeat(' word', 15)) AS truncated_equals_prefix;
\set VERBOSITY sqlstate
SET qwen3_embed.on_long_input = 'sometimes';
SET qwen3_embed.max_tokens = 1;
SET qwen3_embed.max_tokens = 40000;
RESET qwen3_embed.max_tokens;
RESET qwen3_embed.on_long_input;

-- No model configured: object_not_in_prerequisite_state.
SET qwen3_embed.model_path = '';
SELECT qwen3_embed('x');
SELECT * FROM qwen3_embed_info();
-- Nothing is loaded for NULL input or an all-NULL batch.
SELECT qwen3_embed(NULL) IS NULL AS null_needs_no_model;
-- A file that does not exist: undefined_file.
SET qwen3_embed.model_path = '/nonexistent/Qwen3-Embedding-4B-Q4_K_M.gguf';
SELECT qwen3_embed('x');
-- A file that exists but is no model (the server's PG_VERSION): data_corrupted.
SELECT current_setting('data_directory') || '/PG_VERSION' AS not_a_model \gset
SET qwen3_embed.model_path = :'not_a_model';
SELECT qwen3_embed('x');
-- A directory that is no Hugging Face checkpoint.
SELECT current_setting('data_directory') || '/base' AS not_a_checkpoint \gset
SET qwen3_embed.model_path = :'not_a_checkpoint';
SELECT qwen3_embed('x');
-- A truncated copy of the real model: a short file with a GGUF header.
-- (the first 100000 bytes of the fixture, written by the server with lo_export)
SELECT current_setting('data_directory') || '/truncated.gguf' AS truncated_model \gset
\getenv QWEN3_MODEL QWEN3_EMBED_MODEL
SELECT lo_from_bytea(0, pg_read_binary_file(:'QWEN3_MODEL', 0, 100000)) AS lo \gset
SELECT lo_export(:lo, :'truncated_model') = 1 AS exported;
SELECT lo_unlink(:lo) = 1 AS unlinked;
SET qwen3_embed.model_path = :'truncated_model';
SELECT qwen3_embed('x');
-- Back to the real model: it works again.
RESET qwen3_embed.model_path;
SELECT vector_dims(qwen3_embed('x')) AS works_again;

-- Devices: cuda is not in this build, nor in a backend (feature_not_supported either way), tpu is
-- no device (invalid_parameter_value, when it is set); auto runs on the CPU here and says why.
SET qwen3_embed.device = 'cuda';
SELECT qwen3_embed('x');
SET qwen3_embed.device = 'cuda:1';
SELECT qwen3_embed('x');
SET qwen3_embed.device = 'tpu';
SET qwen3_embed.device = 'auto';
SELECT vector_dims(qwen3_embed('x')) AS auto_runs_on_cpu, (SELECT device FROM qwen3_embed_info()) AS device,
       (SELECT device_reason <> '' FROM qwen3_embed_info()) AS says_why, (SELECT backend FROM qwen3_embed_info()) AS backend;
RESET qwen3_embed.device;
SELECT vector_dims(qwen3_embed('x')) AS cpu;

-- Settings out of range.
SET qwen3_embed.threads = -1;
SET qwen3_embed.batch_tokens = 1;

-- Only superusers may point the server at a file: insufficient_privilege.
CREATE ROLE qwen3_embed_user;
SET ROLE qwen3_embed_user;
SET qwen3_embed.model_path = '/etc/passwd';
ALTER ROLE qwen3_embed_user SET qwen3_embed.model_path = '/etc/passwd';
-- ... but may use the functions and the settings that affect only its own calls
-- (hardening_settings lists which those are).
SET qwen3_embed.on_long_input = 'error';
SELECT vector_dims(qwen3_embed('x')) AS user_can_embed;
RESET qwen3_embed.on_long_input;
RESET ROLE;

-- Also when the library is not loaded yet in the session: the value is a placeholder then,
-- which loading the library discards with a WARNING. (With shared_preload_libraries the SET
-- itself fails instead; either way the configured model stays, which is what is checked.)
\c
SET ROLE qwen3_embed_user;
DO $$
BEGIN
    EXECUTE 'SET qwen3_embed.model_path = ''/etc/passwd''';
EXCEPTION WHEN insufficient_privilege THEN NULL;
END $$;
SET client_min_messages = error;
SELECT vector_dims(qwen3_embed('x')) AS placeholder_ignored;
RESET client_min_messages;
SELECT current_setting('qwen3_embed.model_path') <> '/etc/passwd' AS still_the_configured_model;
RESET ROLE;
DROP ROLE qwen3_embed_user;
