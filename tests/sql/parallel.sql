-- qwen3_embed in parallel workers (it is PARALLEL SAFE): each worker loads the model itself and
-- computes the same vectors as a serial run.
CREATE TABLE par_docs (id int PRIMARY KEY, body text, serial_emb vector(256));
INSERT INTO par_docs (id, body)
SELECT i, format('Parallel test document %s: %s', i, md5(i::text)) FROM generate_series(1, 60) AS i;
-- Serial reference.
SET max_parallel_workers_per_gather = 0;
UPDATE par_docs SET serial_emb = qwen3_embed(body);
ALTER TABLE par_docs SET (parallel_workers = 2);
VACUUM ANALYZE par_docs;

-- Force a parallel plan in which only the workers run the scan (and so the embedding).
-- (PostgreSQL 15 calls debug_parallel_query force_parallel_mode; costs at zero suffice here.)
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;

CREATE FUNCTION plan_lines(query text, with_analyze boolean DEFAULT false) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF'
                             || CASE WHEN with_analyze THEN ', ANALYZE, TIMING OFF, SUMMARY OFF' ELSE '' END
                             || ') ' || query LOOP
        -- Row counts per worker vary from run to run; keep the plan's shape and worker counts.
        RETURN NEXT regexp_replace(line, ' \(actual rows=[0-9.]+ loops=\d+\)', '');
    END LOOP;
END $$;

SELECT plan_lines($q$SELECT count(*) FILTER (WHERE (qwen3_embed(body) <=> serial_emb) < 1e-6) FROM par_docs$q$);
-- Workers did run it.
SELECT line FROM plan_lines($q$SELECT count(*) FILTER (WHERE (qwen3_embed(body) <=> serial_emb) < 1e-6) FROM par_docs$q$, true) AS line
 WHERE line LIKE '%Workers%' OR line LIKE '%Gather%';
-- Every parallel result equals the serial one.
SELECT count(*) AS rows, count(*) FILTER (WHERE (qwen3_embed(body) <=> serial_emb) < 1e-6) AS equal_to_serial
  FROM par_docs;
-- The same with an instruction and a size, and through the query/document forms.
SELECT count(*) FILTER (WHERE qwen3_embed(body, 'a task', 64) = qwen3_embed_query(body, 'a task', 64)) AS query_form,
       count(*) FILTER (WHERE (qwen3_embed_document(body) <=> serial_emb) < 1e-6) AS document_form,
       count(*) FILTER (WHERE qwen3_token_count(body) = cardinality(qwen3_tokenize(body))) AS tokenizer
  FROM par_docs;
-- A parallel nearest-neighbour scan (exact, Gather Merge over a sort).
SELECT line FROM plan_lines($q$SELECT id FROM par_docs ORDER BY serial_emb <=> qwen3_embed(body) LIMIT 5$q$) AS line
 WHERE line LIKE '%Gather%' OR line LIKE '%Parallel%';
SELECT count(*) AS zero_distance_rows FROM (
    SELECT id, serial_emb <=> qwen3_embed(body) AS d FROM par_docs ORDER BY d LIMIT 60) x WHERE d < 1e-6;

-- debug_parallel_query (force_parallel_mode before PostgreSQL 16): even a one-row query runs in
-- a worker.
SELECT set_config(name, 'on', false) AS forced FROM pg_settings
 WHERE name IN ('debug_parallel_query', 'force_parallel_mode');
SELECT plan_lines($q$SELECT qwen3_embed(body) FROM par_docs WHERE id = 1$q$);
SELECT qwen3_embed(body) = serial_emb AS equal FROM par_docs WHERE id = 7;
SELECT set_config(name, reset_val, false) AS reset FROM pg_settings
 WHERE name IN ('debug_parallel_query', 'force_parallel_mode');

RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;
DROP FUNCTION plan_lines(text, boolean);
DROP TABLE par_docs;
