-- Resumable re-embedding of a whole table, and moving a table to a new number of dimensions.
--
--   CALL qwen3_embed_reembed('docs', 'body', 'embedding', batch_size => 64);
--   CALL qwen3_embed_migrate_dims('docs', 'body', 'embedding', 1024);
--   SELECT * FROM qwen3_embed_progress;
--   SELECT qwen3_embed_abandon('docs', 'embedding');   -- forget a job, undo a migration's leftovers
--
-- Both walk the table in primary-key order, embed each batch with one qwen3_embed_batch call,
-- update the rows and COMMIT after every batch, recording the last key done in
-- qwen3_embed.jobs. A CALL after an interruption (cancel, crash, error) resumes after the last
-- committed batch. Procedures that COMMIT must be CALLed outside a transaction block.
--
-- Search-path safety: every function here runs with search_path = pg_catalog, pg_temp, so no
-- object in a schema on the caller's path can stand in for a built-in. A procedure that
-- COMMITs cannot carry a SET clause, so the two procedures only call these functions (schema
-- qualified) and hold no expression of their own that names a function or an operator.
-- Table and column names only exist at run time: all dynamic SQL quotes them (format %I for
-- names, %s for a regclass, which prints itself quoted and schema-qualified here).

-- One row per (table, target column): where its re-embedding stands.
CREATE TABLE qwen3_embed.jobs (
    relation        regclass    NOT NULL,
    target_column   name        NOT NULL,
    source_column   name        NOT NULL,
    instruct        text,
    dims            int,
    key_column      name        NOT NULL,
    batch_size      int         NOT NULL CHECK (batch_size > 0),
    last_key        text,
    rows_done       bigint      NOT NULL DEFAULT 0,
    rows_total      bigint      NOT NULL DEFAULT 0,
    state           text        NOT NULL DEFAULT 'running'
                    CHECK (state IN ('running', 'interrupted', 'failed', 'done')),
    last_error      text,
    started_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    -- 'migrate': the new column of a qwen3_embed_migrate_dims run, which replaces migrates_column.
    kind            text        NOT NULL DEFAULT 'reembed' CHECK (kind IN ('reembed', 'migrate')),
    migrates_column name,
    -- The session running the job: a 'running' job whose session is gone shows as interrupted.
    runner_pid      int,
    runner_started  timestamptz,
    PRIMARY KEY (relation, target_column),
    -- A migration's job names the column the migration made (qwen3_embed_abandon drops it), and
    -- no other: a row cannot make abandoning a migration drop some other column.
    CONSTRAINT qwen3_embed_jobs_migration_column
        CHECK (kind <> 'migrate' OR (dims IS NOT NULL AND target_column = migrates_column || '_qwen3_d' || dims))
);

-- Anyone may run a re-embedding of a table they can UPDATE; each role sees only the jobs of such
-- tables (superusers and the extension's owner see all). Only the extension writes them, through
-- the gate qwen3_embed_state() (src/state.rs) and the job_* operations below: each checks the
-- calling role's rights on the table and takes the walk's key, the columns and the migration's
-- column from the catalog, never from a stored row, so no role can plant a job that another
-- role's CALL (or abandon) would then act on.
ALTER TABLE qwen3_embed.jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY qwen3_embed_jobs_updatable ON qwen3_embed.jobs
    USING (pg_catalog.has_table_privilege(relation, 'UPDATE'))
    WITH CHECK (pg_catalog.has_table_privilege(relation, 'UPDATE'));
REVOKE ALL ON qwen3_embed.jobs FROM PUBLIC;
GRANT SELECT ON qwen3_embed.jobs TO PUBLIC;

-- A job's state as people should read it: 'running' only while its session still exists.
-- (A cancelled or timed-out job records 'interrupted' itself; a terminated session or a crash
-- cannot, and is recognised here.) Other roles' backend_start is hidden from ordinary roles,
-- where the process id alone decides.
CREATE FUNCTION qwen3_embed.qwen3_embed_job_state(state text, runner_pid int, runner_started timestamptz)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN $1 = 'running' AND NOT EXISTS (
                 SELECT 1 FROM pg_catalog.pg_stat_activity a
                  WHERE a.pid = $2 AND (a.backend_start IS NULL OR a.backend_start = $3))
        THEN 'interrupted'
        ELSE $1
    END
$$;

-- Progress of every job, for humans.
CREATE FUNCTION qwen3_embed.qwen3_embed_job_percent(state text, rows_done bigint, rows_total bigint)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN $1 = 'done' THEN 100.0 ELSE round(100.0 * $2 / NULLIF($3, 0), 1) END
$$;

CREATE VIEW @extschema@.qwen3_embed_progress WITH (security_invoker = true) AS
SELECT j.relation,
       j.source_column,
       j.target_column,
       qwen3_embed.qwen3_embed_job_state(j.state, j.runner_pid, j.runner_started) AS state,
       j.rows_done,
       j.rows_total,
       qwen3_embed.qwen3_embed_job_percent(j.state, j.rows_done, j.rows_total) AS percent_done,
       j.dims,
       j.instruct,
       j.batch_size,
       j.key_column,
       j.last_key,
       j.last_error,
       j.started_at,
       j.updated_at,
       j.finished_at,
       pg_catalog.age(j.updated_at, j.started_at) AS elapsed,
       j.kind,
       j.migrates_column,
       j.runner_pid
  FROM qwen3_embed.jobs j;
GRANT SELECT ON @extschema@.qwen3_embed_progress TO PUBLIC;

-- This session, as a job's runner (for the job_* operations only).
CREATE FUNCTION qwen3_embed.qwen3_embed_state_job_claim(p_rel regclass, p_dst name)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE qwen3_embed.jobs j
       SET runner_pid = pg_catalog.pg_backend_pid(),
           runner_started = (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a
                              WHERE a.pid = pg_catalog.pg_backend_pid())
     WHERE j.relation = p_rel AND j.target_column = p_dst
$$;

-- The walk's key of p_rel: its single-column primary key. Raises when it has none.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_job_key(p_rel regclass, p_what text)
RETURNS name
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_job_key$
DECLARE
    v_key name;
BEGIN
    SELECT a.attname INTO v_key
      FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = p_rel AND i.indisprimary AND i.indnkeyatts = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: % needs a single-column primary key to walk it in order', p_what, p_rel
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add one, for example: ALTER TABLE ' || p_rel::text || ' ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;';
    END IF;
    RETURN v_key;
END
$qwen3_embed_state_job_key$;

-- Raises unless every name in p_cols is a live column of p_rel.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_job_columns(p_rel regclass, p_cols name[], p_what text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_job_columns$
DECLARE
    v_col name;
BEGIN
    FOREACH v_col IN ARRAY p_cols LOOP
        IF v_col IS NULL OR NOT EXISTS (
               SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = p_rel AND a.attname = v_col AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION '%: column "%" of % does not exist', p_what, v_col, p_rel USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
END
$qwen3_embed_state_job_columns$;

-- The gate's operation job_begin: start, restart or resume the re-embedding of
-- relation.target_column from source_column (a job that did nothing yet just starts anew); this
-- session runs it, and the column moves to the loaded model. Takes UPDATE on the table.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_job_begin(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_job_begin$
DECLARE
    v_what     text     := 'qwen3_embed_reembed';
    v_rel      regclass := (a->>'relation')::oid;
    v_src      name     := a->>'source_column';
    v_dst      name     := a->>'target_column';
    v_instruct text     := a->>'instruct';
    v_dims     int      := (a->>'dims')::int;
    v_batch    int      := (a->>'batch_size')::int;
    v_key      name;
    v_job      qwen3_embed.jobs;
BEGIN
    PERFORM qwen3_embed.qwen3_embed_state_check(p_caller, v_rel, false, v_what);
    PERFORM qwen3_embed.qwen3_embed_state_job_columns(v_rel, ARRAY[v_src, v_dst], v_what);
    v_key := qwen3_embed.qwen3_embed_state_job_key(v_rel, v_what);
    IF v_batch IS NULL OR v_batch < 1 THEN
        RAISE EXCEPTION '%: batch_size must be at least 1, got %', v_what, coalesce(v_batch::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO v_job FROM qwen3_embed.jobs j
     WHERE j.relation = v_rel AND j.target_column = v_dst
       FOR UPDATE;
    IF FOUND AND NOT (a->>'restart')::boolean AND v_job.state <> 'done' AND v_job.rows_done > 0 THEN
        IF v_job.source_column IS DISTINCT FROM v_src OR v_job.instruct IS DISTINCT FROM v_instruct
           OR v_job.dims IS DISTINCT FROM v_dims OR v_job.key_column IS DISTINCT FROM v_key THEN
            RAISE EXCEPTION 'qwen3_embed_reembed: an unfinished job on %.% used other settings (source %, instruct %, dims %, key %)',
                    v_rel, v_dst, v_job.source_column, coalesce(quote_literal(v_job.instruct), 'NULL'),
                    coalesce(v_job.dims::text, 'NULL'), v_job.key_column
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = format('CALL it again with the same arguments to resume it, with restart => true to start over, or forget it with SELECT qwen3_embed_abandon(%L, %L).',
                                    v_rel::text, v_dst);
        END IF;
        UPDATE qwen3_embed.jobs j
           SET state = 'running', last_error = NULL, batch_size = v_batch, updated_at = clock_timestamp()
         WHERE j.relation = v_rel AND j.target_column = v_dst;
        RAISE NOTICE 'qwen3_embed_reembed: resuming %.% after % rows', v_rel, quote_ident(v_dst), v_job.rows_done;
    ELSE
        INSERT INTO qwen3_embed.jobs AS j
               (relation, target_column, source_column, instruct, dims, key_column, batch_size)
        VALUES (v_rel, v_dst, v_src, v_instruct, v_dims, v_key, v_batch)
        ON CONFLICT (relation, target_column) DO UPDATE
           SET source_column = EXCLUDED.source_column, instruct = EXCLUDED.instruct,
               dims = EXCLUDED.dims, key_column = EXCLUDED.key_column, batch_size = EXCLUDED.batch_size,
               last_key = NULL, rows_done = 0, rows_total = 0, state = 'running', last_error = NULL,
               started_at = clock_timestamp(), updated_at = clock_timestamp(), finished_at = NULL;
    END IF;
    PERFORM qwen3_embed.qwen3_embed_state_job_claim(v_rel, v_dst);
    -- The column moves to the loaded model: its writes are made with it from now on.
    PERFORM qwen3_embed.qwen3_embed_state_column_move(p_caller, jsonb_build_object(
        'relation', v_rel::oid, 'column', v_dst, 'instruct', v_instruct, 'dims', v_dims, 'done', false));
    RETURN NULL;
END
$qwen3_embed_state_job_begin$;

-- The gate's operation job_lock: the job's row, locked until the caller's transaction ends
-- (nowait: lock_not_available at once when another session holds it), or NULL when there is no
-- such job. Takes UPDATE on the table.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_job_lock(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_job_lock$
DECLARE
    v_rel regclass := (a->>'relation')::oid;
    v_job qwen3_embed.jobs;
BEGIN
    PERFORM qwen3_embed.qwen3_embed_state_check(p_caller, v_rel, false, 'qwen3_embed_reembed');
    IF (a->>'nowait')::boolean THEN
        SELECT * INTO v_job FROM qwen3_embed.jobs j
         WHERE j.relation = v_rel AND j.target_column = a->>'target_column'
           FOR UPDATE NOWAIT;
    ELSE
        SELECT * INTO v_job FROM qwen3_embed.jobs j
         WHERE j.relation = v_rel AND j.target_column = a->>'target_column'
           FOR UPDATE;
    END IF;
    RETURN CASE WHEN FOUND THEN to_jsonb(v_job) END;
END
$qwen3_embed_state_job_lock$;

-- The gate's operation job_progress: a batch of `rows` rows up to `last_key` is done (this
-- session runs the job), or, with rows_total alone, the rows the job will have walked. Returns
-- rows_done and rows_total. Takes UPDATE on the table.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_job_progress(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_job_progress$
DECLARE
    v_rel   regclass := (a->>'relation')::oid;
    v_dst   name     := a->>'target_column';
    v_n     bigint   := (a->>'rows')::bigint;
    v_done  bigint;
    v_total bigint;
BEGIN
    PERFORM qwen3_embed.qwen3_embed_state_check(p_caller, v_rel, false, 'qwen3_embed_reembed');
    IF v_n IS NULL THEN
        UPDATE qwen3_embed.jobs j SET rows_total = greatest((a->>'rows_total')::bigint, 0)
         WHERE j.relation = v_rel AND j.target_column = v_dst
        RETURNING rows_done, rows_total INTO v_done, v_total;
    ELSE
        UPDATE qwen3_embed.jobs j
           SET last_key = a->>'last_key', rows_done = rows_done + greatest(v_n, 0),
               rows_total = greatest(rows_total, rows_done + greatest(v_n, 0)), updated_at = clock_timestamp()
         WHERE j.relation = v_rel AND j.target_column = v_dst
        RETURNING rows_done, rows_total INTO v_done, v_total;
        PERFORM qwen3_embed.qwen3_embed_state_job_claim(v_rel, v_dst);
    END IF;
    RETURN jsonb_build_object('rows_done', v_done, 'rows_total', v_total);
END
$qwen3_embed_state_job_progress$;

-- The gate's operation job_end: the job is 'done' (its column has moved to the model, with the
-- job's instruction and size), 'interrupted' or 'failed' (with the error). Returns rows_done and
-- rows_total. Takes UPDATE on the table.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_job_end(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_job_end$
DECLARE
    v_rel   regclass := (a->>'relation')::oid;
    v_dst   name     := a->>'target_column';
    v_state text     := a->>'state';
    v_job   qwen3_embed.jobs;
BEGIN
    PERFORM qwen3_embed.qwen3_embed_state_check(p_caller, v_rel, false, 'qwen3_embed_reembed');
    IF v_state NOT IN ('done', 'interrupted', 'failed') THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: a job cannot end as %', quote_literal(v_state)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE qwen3_embed.jobs j
       SET state = v_state, updated_at = clock_timestamp(),
           last_error = CASE WHEN v_state = 'done' THEN NULL ELSE a->>'error' END,
           rows_total = CASE WHEN v_state = 'done' THEN j.rows_done ELSE j.rows_total END,
           finished_at = CASE WHEN v_state = 'done' THEN clock_timestamp() END
     WHERE j.relation = v_rel AND j.target_column = v_dst
    RETURNING * INTO v_job;
    IF v_state = 'done' AND v_job.target_column IS NOT NULL THEN
        PERFORM qwen3_embed.qwen3_embed_state_column_move(p_caller, jsonb_build_object(
            'relation', v_rel::oid, 'column', v_dst, 'instruct', v_job.instruct, 'dims', v_job.dims, 'done', true));
    END IF;
    RETURN jsonb_build_object('rows_done', v_job.rows_done, 'rows_total', v_job.rows_total);
END
$qwen3_embed_state_job_end$;

-- The gate's operation job_migrate: the job of a migration of relation.migrates_column to dims
-- dimensions, whose new column (migrates_column_qwen3_d<dims>) the caller has just added; this
-- session runs it. Takes membership in the table's owning role.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_job_migrate(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_job_migrate$
DECLARE
    v_what text     := 'qwen3_embed_migrate_dims';
    v_rel  regclass := (a->>'relation')::oid;
    v_old  name     := a->>'migrates_column';
    v_dims int      := (a->>'dims')::int;
    v_new  name     := v_old || '_qwen3_d' || v_dims;
    v_src  name     := a->>'source_column';
BEGIN
    PERFORM qwen3_embed.qwen3_embed_state_check(p_caller, v_rel, true, v_what);
    PERFORM qwen3_embed.qwen3_embed_state_job_columns(v_rel, ARRAY[v_src, v_old, v_new], v_what);
    DELETE FROM qwen3_embed.jobs j WHERE j.relation = v_rel AND j.target_column = v_new;
    INSERT INTO qwen3_embed.jobs
           (relation, target_column, source_column, instruct, dims, key_column, batch_size, state,
            kind, migrates_column)
    VALUES (v_rel, v_new, v_src, a->>'instruct', v_dims, qwen3_embed.qwen3_embed_state_job_key(v_rel, v_what),
            greatest(coalesce((a->>'batch_size')::int, 64), 1), 'running', 'migrate', v_old);
    PERFORM qwen3_embed.qwen3_embed_state_job_claim(v_rel, v_new);
    RETURN NULL;
END
$qwen3_embed_state_job_migrate$;

-- The gate's operation job_swap: the caller has dropped relation.migrates_column and renamed the
-- migration's column to it; the registry follows the rename and the migration's job becomes the
-- column's finished job (`caught`: rows embedded during the swap). Takes membership in the
-- table's owning role.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_job_swap(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_job_swap$
DECLARE
    v_what text     := 'qwen3_embed_migrate_dims';
    v_rel  regclass := (a->>'relation')::oid;
    v_dst  name     := a->>'migrates_column';
    v_dims int      := (a->>'dims')::int;
    v_new  name     := v_dst || '_qwen3_d' || v_dims;
    v_rows bigint;
    v_done bigint;
BEGIN
    PERFORM qwen3_embed.qwen3_embed_state_check(p_caller, v_rel, true, v_what);
    PERFORM qwen3_embed.qwen3_embed_state_job_columns(v_rel, ARRAY[(a->>'source_column')::name, v_dst], v_what);
    DELETE FROM qwen3_embed.jobs j
     WHERE j.relation = v_rel AND j.target_column = v_new AND j.kind = 'migrate'
    RETURNING j.rows_done INTO v_rows;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: no migration of %.% to % dimensions', v_what, v_rel, quote_ident(v_dst), v_dims
            USING ERRCODE = 'undefined_object';
    END IF;
    DELETE FROM qwen3_embed.columns c WHERE c.relation = v_rel AND c.column_name = v_dst;
    UPDATE qwen3_embed.columns c SET column_name = v_dst
     WHERE c.relation = v_rel AND c.column_name = v_new;
    v_done := v_rows + greatest(coalesce((a->>'caught')::bigint, 0), 0);
    INSERT INTO qwen3_embed.jobs AS j
           (relation, target_column, source_column, instruct, dims, key_column, batch_size,
            rows_done, rows_total, state, finished_at)
    VALUES (v_rel, v_dst, a->>'source_column', a->>'instruct', v_dims, qwen3_embed.qwen3_embed_state_job_key(v_rel, v_what),
            greatest(coalesce((a->>'batch_size')::int, 64), 1), v_done, v_done, 'done', clock_timestamp())
    ON CONFLICT (relation, target_column) DO UPDATE
       SET source_column = EXCLUDED.source_column, instruct = EXCLUDED.instruct, dims = EXCLUDED.dims,
           key_column = EXCLUDED.key_column, batch_size = EXCLUDED.batch_size, last_key = NULL,
           rows_done = EXCLUDED.rows_done, rows_total = EXCLUDED.rows_total, state = 'done',
           last_error = NULL, updated_at = clock_timestamp(), finished_at = clock_timestamp(),
           kind = 'reembed', migrates_column = NULL;
    RETURN NULL;
END
$qwen3_embed_state_job_swap$;

-- The gate's operation job_forget: forget relation.target_column's job; a migration's job takes
-- its column's registration with it. A re-embedding's job takes UPDATE on the table, a
-- migration's membership in the table's owning role (abandoning it drops a column).
CREATE FUNCTION qwen3_embed.qwen3_embed_state_job_forget(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_job_forget$
DECLARE
    v_rel  regclass := (a->>'relation')::oid;
    v_dst  name     := a->>'target_column';
    v_kind text;
BEGIN
    PERFORM qwen3_embed.qwen3_embed_state_check(p_caller, v_rel, false, 'qwen3_embed_abandon');
    SELECT j.kind INTO v_kind FROM qwen3_embed.jobs j WHERE j.relation = v_rel AND j.target_column = v_dst;
    IF v_kind = 'migrate' THEN
        PERFORM qwen3_embed.qwen3_embed_state_check(p_caller, v_rel, true, 'qwen3_embed_abandon');
        DELETE FROM qwen3_embed.columns c WHERE c.relation = v_rel AND c.column_name = v_dst;
    END IF;
    DELETE FROM qwen3_embed.jobs j WHERE j.relation = v_rel AND j.target_column = v_dst;
    RETURN NULL;
END
$qwen3_embed_state_job_forget$;

REVOKE EXECUTE ON FUNCTION
    qwen3_embed.qwen3_embed_state_job_claim(regclass, name),
    qwen3_embed.qwen3_embed_state_job_key(regclass, text),
    qwen3_embed.qwen3_embed_state_job_columns(regclass, name[], text),
    qwen3_embed.qwen3_embed_state_job_begin(oid, jsonb),
    qwen3_embed.qwen3_embed_state_job_lock(oid, jsonb),
    qwen3_embed.qwen3_embed_state_job_progress(oid, jsonb),
    qwen3_embed.qwen3_embed_state_job_end(oid, jsonb),
    qwen3_embed.qwen3_embed_state_job_migrate(oid, jsonb),
    qwen3_embed.qwen3_embed_state_job_swap(oid, jsonb),
    qwen3_embed.qwen3_embed_state_job_forget(oid, jsonb)
FROM PUBLIC;

-- qwen3_embed_reembed, part 1: check the arguments, then start, restart or resume the job.
CREATE FUNCTION qwen3_embed.qwen3_embed_job_start(
    p_rel regclass, p_src name, p_dst name, p_instruct text, p_dims int, p_batch int, p_restart boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_job_start$
DECLARE
    v_dims     int := p_dims;
    v_dst_type oid;
    v_dst_mod  int;
    v_key      name;
    v_key_type text;
    v_last     text;
    v_done     bigint;
    v_total    bigint;
BEGIN
    IF p_rel IS NULL OR p_src IS NULL OR p_dst IS NULL THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: relation, source_column and target_column must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_batch IS NULL OR p_batch < 1 THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: batch_size must be at least 1, got %', coalesce(p_batch::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = p_rel) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: % is not a table', p_rel
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = p_rel AND a.attname = p_src AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: column "%" of % does not exist', p_src, p_rel
            USING ERRCODE = 'undefined_column';
    END IF;
    SELECT a.atttypid, a.atttypmod INTO v_dst_type, v_dst_mod
      FROM pg_attribute a
     WHERE a.attrelid = p_rel AND a.attname = p_dst AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: column "%" of % does not exist', p_dst, p_rel
            USING ERRCODE = 'undefined_column';
    END IF;
    -- The walk's order: a single-column primary key.
    SELECT a.attname, format_type(a.atttypid, a.atttypmod) INTO v_key, v_key_type
      FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = p_rel AND i.indisprimary AND i.indnkeyatts = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: % needs a single-column primary key to walk it in order', p_rel
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add one, for example: ALTER TABLE ' || p_rel::text || ' ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;';
    END IF;
    IF v_key = p_dst THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: the target column "%" is the primary key of %', p_dst, p_rel
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- vector(n) / halfvec(n) without dims: embed to n dimensions.
    IF v_dims IS NULL AND v_dst_mod > 0
       AND EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = v_dst_type AND t.typname IN ('vector', 'halfvec')) THEN
        v_dims := v_dst_mod;
    END IF;
    IF v_dims IS NOT NULL THEN
        -- Refuse a size the model does not have before any job is recorded.
        PERFORM 1 FROM @extschema@.qwen3_embed_info() i WHERE v_dims BETWEEN 32 AND i.max_dims;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'qwen3_embed_reembed: dims must be between 32 and the model''s size (%), got %',
                    (SELECT i.max_dims FROM @extschema@.qwen3_embed_info() i), v_dims
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;

    PERFORM qwen3_embed.qwen3_embed_state('job_begin', jsonb_build_object(
        'relation', p_rel::oid, 'source_column', p_src, 'target_column', p_dst, 'instruct', p_instruct,
        'dims', v_dims, 'batch_size', p_batch, 'restart', coalesce(p_restart, false)));

    SELECT j.last_key, j.rows_done INTO v_last, v_done FROM qwen3_embed.jobs j
     WHERE j.relation = p_rel AND j.target_column = p_dst;
    IF v_last IS NULL THEN
        EXECUTE format('SELECT count(*) FROM %s', p_rel) INTO v_total;
    ELSE
        EXECUTE format('SELECT count(*) FROM %s WHERE %I > $1::%s', p_rel, v_key, v_key_type)
           INTO v_total USING v_last;
    END IF;
    PERFORM qwen3_embed.qwen3_embed_state('job_progress', jsonb_build_object(
        'relation', p_rel::oid, 'target_column', p_dst, 'rows_total', v_done + v_total));
END
$qwen3_embed_job_start$;

-- qwen3_embed_reembed, part 2: one batch. Locks the next rows in key order, embeds their texts
-- in one qwen3_embed_batch call, writes the vectors back and records the last key. An error
-- (or a cancel) undoes the batch, is recorded in the job and comes back in err_*, for the
-- procedure to COMMIT the record and raise it.
CREATE FUNCTION qwen3_embed.qwen3_embed_job_step(p_rel regclass, p_dst name,
    OUT finished boolean, OUT notice text,
    OUT err_state text, OUT err_message text, OUT err_detail text, OUT err_hint text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_job_step$
DECLARE
    v_job      qwen3_embed.jobs;
    v_key_type text;
    v_tpl      text;
    v_n        int;
    v_last     text;
    v_done     bigint;
    v_total    bigint;
    v_hint     text;
    v_fp       text;
    v_res      jsonb;
BEGIN
    finished := false;
    BEGIN
        -- Serializes concurrent CALLs on the same job: each takes the next batch in turn.
        v_job := jsonb_populate_record(NULL::qwen3_embed.jobs,
                     qwen3_embed.qwen3_embed_state('job_lock', jsonb_build_object(
                         'relation', p_rel::oid, 'target_column', p_dst, 'nowait', false)));
        IF v_job.target_column IS NULL THEN
            RAISE EXCEPTION 'qwen3_embed_reembed: the job on %.% was deleted while it ran', p_rel, p_dst
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        SELECT format_type(a.atttypid, a.atttypmod) INTO v_key_type
          FROM pg_attribute a
         WHERE a.attrelid = p_rel AND a.attname = v_job.key_column AND NOT a.attisdropped;
        SELECT coalesce(c.next_fingerprint, c.fingerprint) INTO v_fp FROM qwen3_embed.columns c
         WHERE c.relation = p_rel AND c.column_name = p_dst;
        v_tpl := $sql$
            WITH batch AS MATERIALIZED (
                SELECT s.%1$I AS k, s.%2$I::text AS body
                  FROM %3$s AS s
                  %5$s
                 ORDER BY s.%1$I
                 LIMIT $2
                   FOR UPDATE OF s
            ), numbered AS MATERIALIZED (
                SELECT b.k, b.body, (row_number() OVER (ORDER BY b.k))::int AS ord FROM batch b
            ), embedded AS MATERIALIZED (
                SELECT e.ord, e.embedding
                  FROM qwen3_embed.qwen3_embed_batch_for_column(ARRAY(SELECT n.body FROM numbered n ORDER BY n.ord), $3, $4, $5) AS e
            ), updated AS (
                UPDATE %3$s AS t SET %4$I = e.embedding
                  FROM numbered n JOIN embedded e ON e.ord = n.ord
                 WHERE t.%1$I = n.k
                RETURNING 1
            )  -- runs whether or not the SELECT below reads it
            SELECT (SELECT count(*) FROM numbered)::int,
                   (SELECT n.k::text FROM numbered n ORDER BY n.ord DESC LIMIT 1)
            $sql$;
        EXECUTE format(v_tpl, v_job.key_column, v_job.source_column, p_rel, p_dst,
                       CASE WHEN v_job.last_key IS NULL THEN ''
                            ELSE format('WHERE s.%I > $1::%s', v_job.key_column, v_key_type) END)
           INTO v_n, v_last USING v_job.last_key, v_job.batch_size, v_job.instruct, v_job.dims, v_fp;
        IF v_n = 0 THEN
            v_done := (qwen3_embed.qwen3_embed_state('job_end', jsonb_build_object(
                           'relation', p_rel::oid, 'target_column', p_dst, 'state', 'done')))->>'rows_done';
            finished := true;
            notice := format('qwen3_embed_reembed: done, %s rows of %s.%I', v_done, p_rel, p_dst);
            RETURN;
        END IF;
        v_res := qwen3_embed.qwen3_embed_state('job_progress', jsonb_build_object(
                     'relation', p_rel::oid, 'target_column', p_dst, 'rows', v_n, 'last_key', v_last));
        v_done := v_res->>'rows_done';
        v_total := v_res->>'rows_total';
        notice := format('qwen3_embed_reembed: %s of %s rows done (%s.%I)', v_done, v_total, p_rel, p_dst);
        RETURN;
    EXCEPTION
        WHEN query_canceled THEN
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT;
            v_res := qwen3_embed.qwen3_embed_state('job_end', jsonb_build_object(
                         'relation', p_rel::oid, 'target_column', p_dst, 'state', 'interrupted',
                         'error', err_state || ': ' || err_message));
            v_done := v_res->>'rows_done';
            v_total := v_res->>'rows_total';
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT,
                                    v_hint = PG_EXCEPTION_HINT;
            -- Keep what the earlier batches did, say where it stopped.
            v_res := qwen3_embed.qwen3_embed_state('job_end', jsonb_build_object(
                         'relation', p_rel::oid, 'target_column', p_dst, 'state', 'failed',
                         'error', err_state || ': ' || err_message));
            v_done := v_res->>'rows_done';
            v_total := v_res->>'rows_total';
    END;
    err_detail := format('qwen3_embed_reembed stopped on %s.%I after %s of %s rows; those stay done.',
                         p_rel, p_dst, coalesce(v_done, 0), coalesce(v_total, 0));
    err_hint := coalesce(NULLIF(v_hint, '') || ' ', '')
                || 'Then CALL qwen3_embed_reembed again: it resumes after the last committed batch.';
END
$qwen3_embed_job_step$;

CREATE PROCEDURE @extschema@.qwen3_embed_reembed(
    relation      regclass,
    source_column text,
    target_column text,
    instruct      text    DEFAULT NULL,
    dims          int     DEFAULT NULL,
    batch_size    int     DEFAULT 64,
    restart       boolean DEFAULT false)
LANGUAGE plpgsql
AS $qwen3_embed_reembed$
#variable_conflict use_variable
DECLARE
    v_rel regclass := relation;
    v_dst name     := target_column;
    r     record;
BEGIN
    PERFORM qwen3_embed.qwen3_embed_outside_transaction('qwen3_embed_reembed');
    PERFORM qwen3_embed.qwen3_embed_job_start(v_rel, source_column, v_dst, instruct, dims, batch_size, restart);
    -- (Called from a function or DO block, which cannot commit either: fails here, before any work.)
    COMMIT;
    LOOP
        SELECT * INTO r FROM qwen3_embed.qwen3_embed_job_step(v_rel, v_dst);
        COMMIT;
        IF r.err_state IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = r.err_state, MESSAGE = r.err_message,
                                  DETAIL = r.err_detail, HINT = r.err_hint;
        END IF;
        RAISE NOTICE '%', r.notice;
        EXIT WHEN r.finished;
    END LOOP;
END
$qwen3_embed_reembed$;

-- qwen3_embed_migrate_dims, part 1: check, then create the new column, its sync trigger and its
-- job (or find them, to resume). Returns what the procedure should do next.
CREATE FUNCTION qwen3_embed.qwen3_embed_migrate_prepare(
    p_rel regclass, p_src name, p_dst name, p_dims int, p_instruct text, p_batch int,
    OUT walk boolean, OUT swap boolean, OUT new_column name)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_migrate_prepare$
DECLARE
    v_type     text;
    v_typname  name;
    v_mod      int;
    v_max      int;
    v_trigger  text;
    v_state    text;
    v_other    record;
BEGIN
    IF p_rel IS NULL OR p_src IS NULL OR p_dst IS NULL THEN
        RAISE EXCEPTION 'qwen3_embed_migrate_dims: relation, source_column and target_column must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT format_type(a.atttypid, NULL), t.typname, a.atttypmod INTO v_type, v_typname, v_mod
      FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = p_rel AND a.attname = p_dst AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_migrate_dims: column "%" of % does not exist', p_dst, p_rel
            USING ERRCODE = 'undefined_column';
    END IF;
    IF v_typname NOT IN ('vector', 'halfvec') THEN
        RAISE EXCEPTION 'qwen3_embed_migrate_dims: column "%" of % is %, not vector or halfvec',
                p_dst, p_rel, format_type((SELECT a.atttypid FROM pg_attribute a
                                            WHERE a.attrelid = p_rel AND a.attname = p_dst), v_mod)
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    SELECT i.max_dims INTO v_max FROM @extschema@.qwen3_embed_info() i;
    IF p_dims IS NULL OR p_dims < 32 OR p_dims > v_max THEN
        RAISE EXCEPTION 'qwen3_embed_migrate_dims: new_dims must be between 32 and % (the model''s size), got %',
                v_max, coalesce(p_dims::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    new_column := p_dst || '_qwen3_d' || p_dims;
    v_trigger := new_column || '_sync';
    -- An unfinished migration of this column to another size: its column and sync trigger
    -- would keep embedding every write. Resume it or abandon it first; never guess.
    SELECT j.target_column, j.dims INTO v_other FROM qwen3_embed.jobs j
     WHERE j.relation = p_rel AND j.kind = 'migrate' AND j.migrates_column = p_dst
       AND j.target_column <> new_column
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_migrate_dims: an unfinished migration of %.% to % dimensions left its column "%" and trigger "%" behind',
                p_rel, quote_ident(p_dst), v_other.dims, v_other.target_column, v_other.target_column || '_sync'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('Finish it with CALL qwen3_embed_migrate_dims(%L, %L, %L, %s), or drop its column and trigger with SELECT qwen3_embed_abandon(%L, %L); then CALL this migration again.',
                                p_rel::text, p_src, p_dst, v_other.dims, p_rel::text, v_other.target_column);
    END IF;
    walk := false;
    swap := false;
    IF v_mod = p_dims THEN
        RAISE NOTICE 'qwen3_embed_migrate_dims: %.% already has % dimensions; nothing to do (qwen3_embed_reembed re-embeds in place)',
            p_rel, quote_ident(p_dst), p_dims;
        RETURN;
    END IF;
    IF octet_length(v_trigger) > 63 THEN
        RAISE EXCEPTION 'qwen3_embed_migrate_dims: column name "%" is too long for the migration''s column "%"', p_dst, new_column
            USING ERRCODE = 'name_too_long';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = p_rel AND a.attname = new_column AND a.attnum > 0 AND NOT a.attisdropped) THEN
        SELECT j.state INTO v_state FROM qwen3_embed.jobs j
         WHERE j.relation = p_rel AND j.target_column = new_column;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'qwen3_embed_migrate_dims: % already has a column "%" that no migration job owns', p_rel, new_column
                USING ERRCODE = 'duplicate_column',
                      HINT = 'Drop or rename that column, then CALL qwen3_embed_migrate_dims again.';
        END IF;
        RAISE NOTICE 'qwen3_embed_migrate_dims: resuming the migration of %.% to % dimensions', p_rel, quote_ident(p_dst), p_dims;
        walk := v_state <> 'done';
        swap := true;
        RETURN;
    END IF;
    EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s(%s)', p_rel, new_column, v_type, p_dims);
    EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %s FOR EACH ROW '
                   'EXECUTE FUNCTION @extschema@.qwen3_embed_trigger(%L, %L, %L, %L)',
                   v_trigger, p_rel, p_src, new_column, coalesce(p_instruct, ''), p_dims);
    PERFORM qwen3_embed.qwen3_embed_state('job_migrate', jsonb_build_object(
        'relation', p_rel::oid, 'migrates_column', p_dst, 'source_column', p_src, 'instruct', p_instruct,
        'dims', p_dims, 'batch_size', greatest(coalesce(p_batch, 64), 1)));
    walk := true;
    swap := true;
END
$qwen3_embed_migrate_prepare$;

-- qwen3_embed_migrate_dims, part 2, in one transaction: embed rows the walk missed, drop the old
-- column, rename the new one, record the job as done. Returns the NOTICEs to show.
CREATE FUNCTION qwen3_embed.qwen3_embed_migrate_swap(
    p_rel regclass, p_src name, p_dst name, p_dims int, p_instruct text, p_batch int)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_migrate_swap$
DECLARE
    v_new     name := p_dst || '_qwen3_d' || p_dims;
    v_type    text;
    v_caught  bigint;
    v_indexes text;
BEGIN
    SELECT format_type(a.atttypid, NULL) INTO v_type
      FROM pg_attribute a
     WHERE a.attrelid = p_rel AND a.attname = v_new AND a.attnum > 0 AND NOT a.attisdropped;
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', p_rel);
    EXECUTE format('UPDATE %1$s SET %2$I = (SELECT e.embedding FROM '
                   'qwen3_embed.qwen3_embed_batch_for_column(ARRAY[%3$I::text], $1, $2, $3) e) '
                   'WHERE %2$I IS NULL AND %3$I IS NOT NULL', p_rel, v_new, p_src)
       USING p_instruct, p_dims,
             (SELECT c.fingerprint FROM qwen3_embed.columns c
               WHERE c.relation = p_rel AND c.column_name = v_new);
    GET DIAGNOSTICS v_caught = ROW_COUNT;
    SELECT string_agg(pg_get_indexdef(d.objid), '; ' ORDER BY d.objid) INTO v_indexes
      FROM pg_depend d
      JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
      JOIN pg_class c ON c.oid = d.objid AND c.relkind IN ('i', 'I')
     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.refobjid = p_rel AND a.attname = p_dst;
    EXECUTE format('DROP TRIGGER %I ON %s', v_new || '_sync', p_rel);
    EXECUTE format('ALTER TABLE %s DROP COLUMN %I', p_rel, p_dst);
    EXECUTE format('ALTER TABLE %s RENAME COLUMN %I TO %I', p_rel, v_new, p_dst);
    PERFORM qwen3_embed.qwen3_embed_state('job_swap', jsonb_build_object(
        'relation', p_rel::oid, 'migrates_column', p_dst, 'source_column', p_src, 'instruct', p_instruct,
        'dims', p_dims, 'batch_size', greatest(coalesce(p_batch, 64), 1), 'caught', v_caught));
    IF v_caught > 0 THEN
        RETURN NEXT format('qwen3_embed_migrate_dims: embedded %s rows written during the migration', v_caught);
    END IF;
    RETURN NEXT format('qwen3_embed_migrate_dims: %s.%I is now %s(%s)', p_rel, p_dst, v_type, p_dims);
    RETURN NEXT format('qwen3_embed_migrate_dims: indexes on the old column were dropped with it; recreate them: %s',
                       coalesce(v_indexes, '(there were none)'));
END
$qwen3_embed_migrate_swap$;

CREATE PROCEDURE @extschema@.qwen3_embed_migrate_dims(
    relation      regclass,
    source_column text,
    target_column text,
    new_dims      int,
    instruct      text DEFAULT NULL,
    batch_size    int  DEFAULT 64)
LANGUAGE plpgsql
AS $qwen3_embed_migrate_dims$
#variable_conflict use_variable
DECLARE
    v_rel    regclass := relation;
    v_src    name     := source_column;
    v_dst    name     := target_column;
    v_dims   int      := new_dims;
    v_batch  int      := batch_size;
    v_plan   record;
    v_notice text;
BEGIN
    PERFORM qwen3_embed.qwen3_embed_outside_transaction('qwen3_embed_migrate_dims');
    SELECT * INTO v_plan
      FROM qwen3_embed.qwen3_embed_migrate_prepare(v_rel, v_src, v_dst, v_dims, instruct, v_batch);
    IF NOT v_plan.swap THEN
        RETURN;
    END IF;
    IF v_plan.walk THEN
        COMMIT;
        CALL @extschema@.qwen3_embed_reembed(v_rel, v_src, v_plan.new_column, instruct, v_dims, v_batch, false);
    END IF;
    FOR v_notice IN
        SELECT n FROM qwen3_embed.qwen3_embed_migrate_swap(v_rel, v_src, v_dst, v_dims, instruct, v_batch) AS n
    LOOP
        RAISE NOTICE '%', v_notice;
    END LOOP;
    COMMIT;
    RAISE NOTICE 'qwen3_embed_migrate_dims: triggers that pass dims to qwen3_embed_trigger explicitly must be recreated with the new size';
END
$qwen3_embed_migrate_dims$;

-- Forget a job. For a migration's job (its target the migration's own column) this also drops
-- that column and its sync trigger, so nothing keeps embedding for a migration nobody will
-- finish. Naming the column being migrated picks its unfinished migration, if it has one.
CREATE FUNCTION @extschema@.qwen3_embed_abandon(relation regclass, target_column text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_abandon$
#variable_conflict use_variable
DECLARE
    v_rel regclass := relation;
    v_job qwen3_embed.jobs;
    v_live int;
BEGIN
    -- The column being migrated names its unfinished migration first, then its own job.
    SELECT * INTO v_job FROM qwen3_embed.jobs j
     WHERE j.relation = v_rel AND j.kind = 'migrate' AND j.migrates_column = target_column;
    IF NOT FOUND THEN
        SELECT * INTO v_job FROM qwen3_embed.jobs j
         WHERE j.relation = v_rel AND j.target_column = target_column;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'qwen3_embed_abandon: no job on %.%', v_rel, quote_ident(target_column)
                USING ERRCODE = 'undefined_object',
                      HINT = 'SELECT relation, target_column, state FROM qwen3_embed_progress; lists the jobs you can see.';
        END IF;
    END IF;
    -- A job that a session is running now holds its row: stop that session first.
    BEGIN
        PERFORM qwen3_embed.qwen3_embed_state('job_lock', jsonb_build_object(
            'relation', v_rel::oid, 'target_column', v_job.target_column, 'nowait', true));
    EXCEPTION WHEN lock_not_available THEN
        v_live := v_job.runner_pid;
        RAISE EXCEPTION 'qwen3_embed_abandon: the job on %.% is running in another session (process %)',
                v_rel, quote_ident(v_job.target_column), v_live
            USING ERRCODE = 'lock_not_available',
                  HINT = format('Cancel it first: SELECT pg_cancel_backend(%s);', v_live);
    END;
    IF v_job.kind = 'migrate' THEN
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_job.target_column || '_sync', v_rel);
        IF EXISTS (SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = v_rel AND a.attname = v_job.target_column AND a.attnum > 0
                      AND NOT a.attisdropped) THEN
            EXECUTE format('ALTER TABLE %s DROP COLUMN %I', v_rel, v_job.target_column);
        END IF;
    END IF;
    PERFORM qwen3_embed.qwen3_embed_state('job_forget', jsonb_build_object(
        'relation', v_rel::oid, 'target_column', v_job.target_column));
    IF v_job.kind = 'migrate' THEN
        RETURN format('abandoned the migration of %s.%I to %s dimensions: dropped column %I and trigger %I',
                      v_rel, v_job.migrates_column, v_job.dims, v_job.target_column, v_job.target_column || '_sync');
    END IF;
    RETURN format('forgot the %s job on %s.%I after %s of %s rows (rows already re-embedded keep their new vectors)',
                  v_job.state, v_rel, v_job.target_column, v_job.rows_done, v_job.rows_total);
END
$qwen3_embed_abandon$;
