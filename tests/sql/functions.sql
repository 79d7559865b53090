-- The SQL functions: sizes, NULLs, MRL, normalization, query vs document, batch vs one by one,
-- tokenizer. The fixture model has random weights: its vectors mean nothing, but they are
-- deterministic, so only stable facts about them are printed.

-- Output sizes of every embedding function (the fixture's hidden size is 256).
SELECT vector_dims(qwen3_embed('hello world'))                      AS embed,
       vector_dims(qwen3_embed('hello world', 'a task'))            AS embed_instruct,
       vector_dims(qwen3_embed_query('hello world'))                AS query,
       vector_dims(qwen3_embed_query('hello world', 'a task', 64))  AS query_64,
       vector_dims(qwen3_embed_document('hello world'))             AS document,
       vector_dims(qwen3_embed_document('hello world', 32))         AS document_32;
SELECT ord, vector_dims(embedding) FROM qwen3_embed_batch(ARRAY['a', 'b'], NULL, 128) ORDER BY ord;

-- MRL: 32, 128 and NULL (the full size); every vector has unit length.
SELECT d AS dims_arg, vector_dims(v) AS dims, round(vector_norm(v)::numeric, 5) AS norm
  FROM (VALUES (32), (128), (256), (NULL::int)) AS t(d),
       LATERAL (SELECT qwen3_embed('The quick brown fox jumps over the lazy dog.', NULL, d) AS v) e
 ORDER BY d NULLS LAST;
-- A smaller size is the renormalized prefix of the full vector.
SELECT (qwen3_embed('prefix test', NULL, 32)
        <=> l2_normalize(subvector(qwen3_embed('prefix test'), 1, 32))) < 1e-6 AS mrl_is_prefix;

-- Deterministic: the same input twice gives the same vector.
SELECT qwen3_embed('same text') = qwen3_embed('same text') AS deterministic;

-- NULL in, NULL out; NULL instruct/dims mean none/full.
SELECT qwen3_embed(NULL) IS NULL AS embed_null,
       qwen3_embed_query(NULL) IS NULL AS query_null,
       qwen3_embed_document(NULL) IS NULL AS document_null,
       qwen3_token_count(NULL) IS NULL AS count_null,
       qwen3_tokenize(NULL) IS NULL AS tokenize_null,
       qwen3_embed('x', NULL, NULL) = qwen3_embed('x') AS null_args_are_defaults;
SELECT count(*) AS rows_for_null_array FROM qwen3_embed_batch(NULL);
SELECT count(*) AS rows_for_empty_array FROM qwen3_embed_batch('{}'::text[]);
SELECT ord, embedding IS NULL AS is_null FROM qwen3_embed_batch(ARRAY[NULL, NULL]::text[]) ORDER BY ord;

-- The empty string is a valid input (just the end-of-text token).
SELECT vector_dims(qwen3_embed('')) AS empty_dims, qwen3_tokenize('') AS empty_ids;

-- Query vs document: the instruction changes the vector; the document form has none.
SELECT qwen3_embed_document('hello world') = qwen3_embed('hello world') AS document_is_plain,
       qwen3_embed_query('hello world') = qwen3_embed('hello world', qwen3_embed_default_task()) AS query_uses_default_task,
       (qwen3_embed_query('hello world') <=> qwen3_embed_document('hello world')) > 1e-3 AS query_differs_from_document,
       (qwen3_embed_query('hello world', 'another task') <=> qwen3_embed_query('hello world')) > 1e-3 AS task_matters;
SELECT qwen3_embed_query('hello world', NULL) = qwen3_embed_document('hello world') AS null_task_is_document;
SELECT qwen3_embed_query('hello world', 'a task', 64) = qwen3_embed('hello world', 'a task', 64) AS query_dims;
-- The instruction format: "Instruct: {task}\nQuery:{query}".
SELECT qwen3_tokenize('hello', 'a task') = qwen3_tokenize(E'Instruct: a task\nQuery:hello') AS instruct_format;

-- Batch: input order kept, NULL elements give NULL rows, values equal one-by-one calls.
CREATE TABLE batch_inputs (ord int PRIMARY KEY, body text);
INSERT INTO batch_inputs VALUES
  (1, 'PostgreSQL is an object-relational database.'),
  (2, NULL),
  (3, 'Zürich, 東京, Москва — naïve café 🐘'),
  (4, ''),
  (5, repeat('a long input with many tokens ', 40)),
  (6, NULL),
  (7, 'x');
SELECT b.ord, b.embedding IS NULL AS is_null,
       CASE WHEN b.embedding IS NULL THEN NULL
            ELSE (b.embedding <=> qwen3_embed(i.body)) < 1e-6 END AS equals_single
  FROM qwen3_embed_batch((SELECT array_agg(body ORDER BY ord) FROM batch_inputs)) b
  JOIN batch_inputs i USING (ord)
 ORDER BY b.ord;
-- ... with an instruction and a size.
SELECT bool_and((b.embedding <=> qwen3_embed(i.body, 'a task', 64)) < 1e-6) AS batch_instruct_dims_equal,
       count(*) AS non_null_rows
  FROM qwen3_embed_batch((SELECT array_agg(body ORDER BY ord) FROM batch_inputs), 'a task', 64) b
  JOIN batch_inputs i USING (ord)
 WHERE b.embedding IS NOT NULL;
-- ... across several forward passes (a small token budget splits the batch).
SET qwen3_embed.batch_tokens = 64;
SELECT bool_and((b.embedding <=> qwen3_embed(i.body)) < 1e-6) AS small_budget_equal, count(*) AS non_null_rows
  FROM qwen3_embed_batch((SELECT array_agg(body ORDER BY ord) FROM batch_inputs)) b
  JOIN batch_inputs i USING (ord)
 WHERE b.embedding IS NOT NULL;
RESET qwen3_embed.batch_tokens;
-- Texts are well separated: each is its own nearest neighbour.
SELECT i.ord,
       (SELECT j.ord FROM batch_inputs j WHERE j.body IS NOT NULL
         ORDER BY qwen3_embed(j.body) <=> qwen3_embed(i.body) LIMIT 1) AS nearest
  FROM batch_inputs i WHERE i.body IS NOT NULL ORDER BY i.ord;
DROP TABLE batch_inputs;

-- Tokenizer: the count is the length of the ids; end-of-text (151643) is appended last.
SELECT qwen3_token_count('hello world') AS count,
       cardinality(qwen3_tokenize('hello world')) AS ids,
       (qwen3_tokenize('hello world'))[cardinality(qwen3_tokenize('hello world'))] AS last_id;
SELECT qwen3_tokenize('hello world') AS ids;
SELECT qwen3_token_count('hello', 'a task') = cardinality(qwen3_tokenize('hello', 'a task')) AS instruct_count_consistent,
       qwen3_token_count('hello', 'a task') > qwen3_token_count('hello') AS instruct_adds_tokens;
-- Special-token strings are the special tokens.
SELECT qwen3_tokenize('<|endoftext|>') AS special_ids;
-- Counts ignore qwen3_embed.max_tokens (they are before truncation).
SET qwen3_embed.max_tokens = 8;
SELECT qwen3_token_count(repeat('word ', 100)) AS long_count;
RESET qwen3_embed.max_tokens;

-- The default task, as upstream.
SELECT qwen3_embed_default_task();

-- Volatility and parallel safety, as declared.
SELECT proname, provolatile, proparallel, proisstrict
  FROM pg_proc
 WHERE proname LIKE 'qwen3%' AND prokind = 'f'
 ORDER BY proname;
