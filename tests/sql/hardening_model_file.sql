-- A model path that would block: a named pipe nobody writes to. It is refused at once with
-- io_error (not waited on until a timeout), and the configured model keeps working.
\! rm -f /tmp/qwen3_embed_test.fifo && mkfifo /tmp/qwen3_embed_test.fifo
SET statement_timeout = '20s';
SET qwen3_embed.model_path = '/tmp/qwen3_embed_test.fifo';
\set VERBOSITY sqlstate
SELECT qwen3_embed('x');
\set VERBOSITY terse
SELECT qwen3_embed('x');
SELECT * FROM qwen3_embed_info();
\set VERBOSITY default
RESET qwen3_embed.model_path;
RESET statement_timeout;
SELECT vector_dims(qwen3_embed('the configured model still works')) AS dims;
-- A directory is a checkpoint only when it holds one; a device is no model either.
SET qwen3_embed.model_path = '/dev/null';
\set VERBOSITY terse
SELECT qwen3_embed('x');
\set VERBOSITY default
RESET qwen3_embed.model_path;
\! rm -f /tmp/qwen3_embed_test.fifo
