-- Smaller surprises, each now an error that says what is wrong.
-- 1. A two-dimensional array is not flattened silently: array_subscript_error.
\set VERBOSITY sqlstate
SELECT count(*) FROM qwen3_embed_batch(ARRAY[['a', 'b'], ['c', 'd']]);
\set VERBOSITY terse
SELECT count(*) FROM qwen3_embed_batch(ARRAY[['a', 'b'], ['c', 'd']]);
SELECT count(*) AS rows FROM qwen3_embed_batch(ARRAY(SELECT unnest(ARRAY[['a', 'b'], ['c', 'd']])));
SELECT count(*) AS rows FROM qwen3_embed_batch('{}'::text[]);
-- 2. An instruction that leaves no room for the input is refused (every input would get the
--    same vector), whatever on_long_input says; one that leaves room truncates as before.
SET qwen3_embed.max_tokens = 16;
SELECT qwen3_token_count('', 'Find the passage that answers the question about very many things') AS instruction_tokens;
\set VERBOSITY sqlstate
SELECT qwen3_embed('first input', 'Find the passage that answers the question about very many things');
\set VERBOSITY terse
SELECT qwen3_embed('first input', 'Find the passage that answers the question about very many things');
SELECT vector_dims(qwen3_embed(repeat('word ', 50), 'Find it')) AS dims;
RESET qwen3_embed.max_tokens;
-- 3. The trigger refuses a target that is not a vector, and a dims that does not fit the
--    column, before embedding: the message is one line, no vector printed.
CREATE TABLE small_docs (id int PRIMARY KEY, body text, n int, embedding vector(256));
CREATE TRIGGER bad BEFORE INSERT ON small_docs FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'n');
\set VERBOSITY sqlstate
INSERT INTO small_docs (id, body) VALUES (1, 'x');
\set VERBOSITY default
\set SHOW_CONTEXT never
INSERT INTO small_docs (id, body) VALUES (1, 'x');
DROP TRIGGER bad ON small_docs;
CREATE TRIGGER bad BEFORE INSERT ON small_docs FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding', '', '64');
INSERT INTO small_docs (id, body) VALUES (1, 'x');
\set SHOW_CONTEXT errors
DROP TABLE small_docs;
