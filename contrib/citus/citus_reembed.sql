-- Resumable re-embedding of a Citus distributed table, run on the coordinator:
--
--   psql -d mydb -f contrib/citus/citus_reembed.sql        -- once, on the coordinator
--   CALL qwen3_embed_reembed_distributed('docs', 'body', 'embedding', batch_size => 1000);
--   SELECT * FROM qwen3_embed_citus_jobs;           -- where each job stands
--
-- Why not qwen3_embed_reembed: its batches lock their rows with SELECT ... ORDER BY ... LIMIT ...
-- FOR UPDATE, which Citus refuses on a table spread over several shards ("could not run
-- distributed query with FOR UPDATE/SHARE commands", 0A000), and it would embed every row on the
-- coordinator anyway. This variant walks the table in key order in batches of batch_size keys:
-- for each batch it reads the batch's last key (a distributed ORDER BY ... LIMIT), then runs
--   UPDATE t SET embedding = qwen3_embed(body, instruct, dims) WHERE key > last AND key <= hi
-- which Citus sends to every shard, so each worker embeds its own rows, all workers at once.
-- The batch's last key is recorded in qwen3_embed_citus_jobs (a plain table on the coordinator)
-- in the same distributed transaction, and each batch COMMITs: a CALL that was cancelled,
-- timed out or lost its session resumes after the last committed batch when CALLed again with
-- the same relation and target column (restart => true starts over).
--
-- Each UPDATE reads the row's text as it is then, so every row ends with the vector of its
-- current text, as long as writes made during the run keep their own vectors (a generated
-- column, or qwen3_embed_trigger on the table). A generated target column cannot be SET: its
-- rows are rewritten with SET body = body, which recomputes it on the workers. With a trigger
-- on the table, the shards' entries in the workers' qwen3_embed.columns move to the loaded
-- model at the start (writes with it are accepted during the run) and are recorded at the end,
-- as qwen3_embed_reembed does for a local table.
-- The key must be a column with a total order (the distribution column or a unique key are the
-- natural choices); a CALL must run outside a transaction block.

CREATE TABLE IF NOT EXISTS qwen3_embed_citus_jobs (
    relation      regclass    NOT NULL,
    target_column name        NOT NULL,
    source_column name        NOT NULL,
    key_column    name        NOT NULL,
    instruct      text,
    dims          int,
    batch_size    int         NOT NULL CHECK (batch_size > 0),
    last_key      text,
    rows_done     bigint      NOT NULL DEFAULT 0,
    state         text        NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relation, target_column)
);

-- The trigger's model check lives on each shard: column_move on every shard of p_rel, to let
-- the shards accept the loaded model (p_done false) or to record it as theirs (true).
CREATE OR REPLACE FUNCTION qwen3_embed_citus_move_shards(p_rel regclass, p_col name, p_instruct text,
                                                         p_dims int, p_done boolean)
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_err text;
BEGIN
    SELECT string_agg(r.result, '; ') INTO v_err
      FROM run_command_on_shards(p_rel, format('SELECT qwen3_embed.qwen3_embed_state(''column_move'', jsonb_build_object(''relation'', %%L::regclass::oid, ''column'', %L, ''instruct'', %L, ''dims'', %s, ''done'', %s))',
                                               p_col, p_instruct, coalesce(p_dims::text, 'NULL'), p_done)) r
     WHERE NOT r.success;
    IF v_err IS NOT NULL THEN
        RAISE EXCEPTION 'qwen3_embed_reembed_distributed: could not %: %',
                format(CASE WHEN p_done THEN 'record the loaded model on the shards of %s'
                            ELSE 'move the shards of %s to the loaded model' END, p_rel), v_err;
    END IF;
END
$fn$;

CREATE OR REPLACE PROCEDURE qwen3_embed_reembed_distributed(
    relation      regclass,
    source_column text,
    target_column text,
    key_column    text    DEFAULT NULL,   -- NULL: the table's distribution column
    instruct      text    DEFAULT NULL,
    dims          int     DEFAULT NULL,   -- NULL: the size of a vector(n) / halfvec(n) target
    batch_size    int     DEFAULT 1000,
    restart       boolean DEFAULT false)
LANGUAGE plpgsql
AS $proc$
#variable_conflict use_variable
DECLARE
    v_rel       regclass := relation;
    v_dst       name     := target_column;
    v_src       name     := source_column;
    v_key       name     := key_column;
    v_dims      int      := dims;
    v_key_type  text;
    v_generated boolean;
    v_triggered boolean;
    v_mod       int;
    v_job       qwen3_embed_citus_jobs;
    v_hi        text;
    v_n         bigint;
    v_set       text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = v_rel) THEN
        RAISE EXCEPTION 'qwen3_embed_reembed_distributed: % is not a Citus table; use CALL qwen3_embed_reembed', v_rel;
    END IF;
    IF v_key IS NULL THEN
        v_key := column_to_column_name(v_rel, (SELECT p.partkey FROM pg_dist_partition p WHERE p.logicalrelid = v_rel));
        IF v_key IS NULL THEN
            RAISE EXCEPTION 'qwen3_embed_reembed_distributed: % has no distribution column: name key_column', v_rel;
        END IF;
    END IF;
    SELECT format_type(a.atttypid, a.atttypmod) INTO v_key_type
      FROM pg_attribute a WHERE a.attrelid = v_rel AND a.attname = v_key AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_key_type IS NULL THEN
        RAISE EXCEPTION 'qwen3_embed_reembed_distributed: key column "%" of % does not exist', v_key, v_rel;
    END IF;
    SELECT a.attgenerated = 's', a.atttypmod INTO v_generated, v_mod
      FROM pg_attribute a WHERE a.attrelid = v_rel AND a.attname = v_dst AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_generated IS NULL THEN
        RAISE EXCEPTION 'qwen3_embed_reembed_distributed: column "%" of % does not exist', v_dst, v_rel;
    END IF;
    IF v_dims IS NULL AND v_mod > 0 THEN
        v_dims := v_mod;
    END IF;
    v_triggered := EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_proc f ON f.oid = t.tgfoid
                            WHERE t.tgrelid = v_rel AND f.proname = 'qwen3_embed_trigger' AND NOT t.tgisinternal);

    SELECT * INTO v_job FROM qwen3_embed_citus_jobs j WHERE j.relation = v_rel AND j.target_column = v_dst;
    IF FOUND AND v_job.state = 'running' AND NOT restart THEN
        IF (v_job.source_column, v_job.key_column) IS DISTINCT FROM (v_src, v_key)
           OR v_job.instruct IS DISTINCT FROM instruct OR v_job.dims IS DISTINCT FROM v_dims THEN
            RAISE EXCEPTION 'qwen3_embed_reembed_distributed: an unfinished job on %.% used other settings (source %, key %, instruct %, dims %)',
                v_rel, v_dst, v_job.source_column, v_job.key_column, coalesce(quote_literal(v_job.instruct), 'NULL'),
                coalesce(v_job.dims::text, 'NULL')
                USING HINT = 'CALL it with the same arguments to resume it, or with restart => true to start over.';
        END IF;
        UPDATE qwen3_embed_citus_jobs j SET batch_size = batch_size, updated_at = clock_timestamp()
         WHERE j.relation = v_rel AND j.target_column = v_dst;
        RAISE NOTICE 'qwen3_embed_reembed_distributed: resuming %.% after % rows (key %)',
            v_rel, v_dst, v_job.rows_done, v_job.last_key;
    ELSE
        INSERT INTO qwen3_embed_citus_jobs AS j
               (relation, target_column, source_column, key_column, instruct, dims, batch_size)
        VALUES (v_rel, v_dst, v_src, v_key, instruct, v_dims, batch_size)
        ON CONFLICT ON CONSTRAINT qwen3_embed_citus_jobs_pkey DO UPDATE
           SET source_column = EXCLUDED.source_column, key_column = EXCLUDED.key_column,
               instruct = EXCLUDED.instruct, dims = EXCLUDED.dims, batch_size = EXCLUDED.batch_size,
               last_key = NULL, rows_done = 0, state = 'running',
               started_at = clock_timestamp(), updated_at = clock_timestamp();
    END IF;
    IF v_triggered THEN
        PERFORM qwen3_embed_citus_move_shards(v_rel, v_dst, instruct, v_dims, false);
    END IF;
    COMMIT;

    v_set := CASE WHEN v_generated THEN format('%I = %I', v_src, v_src)
                  ELSE format('%I = qwen3_embed(%I::text, $3, $4)', v_dst, v_src) END;
    LOOP
        SELECT * INTO v_job FROM qwen3_embed_citus_jobs j WHERE j.relation = v_rel AND j.target_column = v_dst;
        EXECUTE format('SELECT max(k)::text FROM (SELECT %1$I AS k FROM %2$s WHERE $1 IS NULL OR %1$I > $1::%3$s ORDER BY %1$I LIMIT $2) b',
                       v_key, v_rel, v_key_type)
           INTO v_hi USING v_job.last_key, v_job.batch_size;
        EXIT WHEN v_hi IS NULL;
        EXECUTE format('UPDATE %1$s SET %4$s WHERE ($1 IS NULL OR %2$I > $1::%3$s) AND %2$I <= $2::%3$s',
                       v_rel, v_key, v_key_type, v_set)
           USING v_job.last_key, v_hi, v_job.instruct, v_job.dims;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        UPDATE qwen3_embed_citus_jobs j
           SET last_key = v_hi, rows_done = j.rows_done + v_n, updated_at = clock_timestamp()
         WHERE j.relation = v_rel AND j.target_column = v_dst;
        COMMIT;
        RAISE NOTICE 'qwen3_embed_reembed_distributed: % rows done (%.%, key %)', v_job.rows_done + v_n, v_rel, v_dst, v_hi;
    END LOOP;
    IF v_triggered THEN
        PERFORM qwen3_embed_citus_move_shards(v_rel, v_dst, instruct, v_dims, true);
    END IF;
    UPDATE qwen3_embed_citus_jobs j SET state = 'done', updated_at = clock_timestamp()
     WHERE j.relation = v_rel AND j.target_column = v_dst;
    COMMIT;
    RAISE NOTICE 'qwen3_embed_reembed_distributed: done, % rows of %.%',
        (SELECT j.rows_done FROM qwen3_embed_citus_jobs j WHERE j.relation = v_rel AND j.target_column = v_dst), v_rel, v_dst;
END
$proc$;
