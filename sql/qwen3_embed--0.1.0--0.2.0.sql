-- qwen3_embed 0.1.0 -> 0.2.0, run by ALTER EXTENSION qwen3_embed UPDATE.
--
-- 0.2.0 pins search_path in every shipped routine, records who runs a job (so a job whose session
-- died shows as interrupted), adds migrations that can be abandoned, reports more about the model
-- server, registers the model of every column it fills, adds the embedding queue
-- (qwen3_embed_sync, qwen3_embed_sync_alter), adopts columns filled elsewhere
-- (qwen3_embed_adopt), and marks its state tables for pg_dump. The definitions below are 0.2.0's
-- (sql/*.sql and the generated C functions) as of the release; tests/sql/upgrade.sql checks that
-- an upgraded database has exactly a fresh install's objects.
\echo Use "ALTER EXTENSION qwen3_embed UPDATE" to load this file. \quit

-- The model server's statistics gained seven result columns; a function's result type cannot be
-- replaced, only dropped and created again.
DROP FUNCTION @extschema@.qwen3_embed_server_stats();
CREATE FUNCTION @extschema@."qwen3_embed_server_stats"() RETURNS TABLE (
	"state" TEXT,
	"pid" INT,
	"restarts" bigint,
	"uptime_s" double precision,
	"model_path" TEXT,
	"model_load_ms" double precision,
	"requests" bigint,
	"withdrawn" bigint,
	"inputs" bigint,
	"tokens" bigint,
	"batches" bigint,
	"mean_batch_size" double precision,
	"queue_depth" INT,
	"tokens_per_second" double precision,
	"last_error" TEXT,
	"model_loads" bigint,
	"loading" TEXT,
	"tokens_in_flight" bigint,
	"max_tokens_in_flight" bigint,
	"cache" TEXT,
	"cache_file" TEXT,
	"cache_bytes" bigint
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_server_stats_wrapper';

-- qwen3_embed_info gained six result columns: why the device was chosen, the backend, the
-- packed-weight cache in use, and the build profile of the library.
DROP FUNCTION @extschema@.qwen3_embed_info();
CREATE FUNCTION @extschema@."qwen3_embed_info"() RETURNS TABLE (
	"model_path" TEXT,
	"format" TEXT,
	"architecture" TEXT,
	"parameters" bigint,
	"tensor_types" TEXT,
	"hidden_size" INT,
	"max_dims" INT,
	"vocab_size" INT,
	"device" TEXT,
	"threads" INT,
	"fingerprint" TEXT,
	"load_ms" double precision,
	"runs_in" TEXT,
	"device_reason" TEXT,
	"backend" TEXT,
	"cache" TEXT,
	"cache_file" TEXT,
	"cache_bytes" bigint,
	"build" TEXT
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_info_wrapper';

-- New C functions.
CREATE FUNCTION @extschema@."qwen3_chunks"(
	"input" TEXT,
	"chunk_tokens" INT DEFAULT 512,
	"overlap" INT DEFAULT 64
) RETURNS TABLE (
	"chunk_no" INT,
	"chunk" TEXT
)
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_chunks_wrapper';

CREATE FUNCTION @extschema@."qwen3_embed_batch_for_column"(
	"inputs" TEXT[],
	"instruct" TEXT,
	"dims" INT,
	"fingerprint" TEXT
) RETURNS TABLE (
	"ord" INT,
	"embedding" vector
)
VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_batch_for_column_wrapper';

-- The column registry, all new (sql/columns.sql).
CREATE TABLE @extschema@.qwen3_embed_columns (
    relation         regclass    NOT NULL,
    column_name      name        NOT NULL,
    fingerprint      text        NOT NULL,
    -- Set while a re-embedding moves the column to another model.
    next_fingerprint text,
    instruct         text,
    dims             int,
    registered_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (relation, column_name)
);
ALTER TABLE @extschema@.qwen3_embed_columns ENABLE ROW LEVEL SECURITY;
CREATE POLICY qwen3_embed_columns_updatable ON @extschema@.qwen3_embed_columns
    USING (pg_catalog.has_table_privilege(relation, 'UPDATE'))
    WITH CHECK (pg_catalog.has_table_privilege(relation, 'UPDATE'));
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.qwen3_embed_columns TO PUBLIC;

-- The fingerprint a write into relation.column_name must be made with: the registered one (or,
-- during a re-embedding, the one it moves to). A column written for the first time is
-- registered with the loaded model. A different instruction or size than the registered ones
-- is refused: the column's vectors would not be comparable.
CREATE FUNCTION @extschema@.qwen3_embed_column_model(p_rel regclass, p_col name, p_instruct text, p_dims int)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_column_model$
DECLARE
    c @extschema@.qwen3_embed_columns;
BEGIN
    SELECT * INTO c FROM @extschema@.qwen3_embed_columns x WHERE x.relation = p_rel AND x.column_name = p_col;
    IF NOT FOUND THEN
        INSERT INTO @extschema@.qwen3_embed_columns AS x (relation, column_name, fingerprint, instruct, dims)
        SELECT p_rel, p_col, i.fingerprint, p_instruct, p_dims FROM @extschema@.qwen3_embed_info() i
        ON CONFLICT (relation, column_name) DO NOTHING;
        SELECT * INTO c FROM @extschema@.qwen3_embed_columns x WHERE x.relation = p_rel AND x.column_name = p_col;
    END IF;
    IF c.instruct IS DISTINCT FROM p_instruct OR c.dims IS DISTINCT FROM p_dims THEN
        RAISE EXCEPTION 'qwen3_embed: %.% holds vectors made with instruct % and dims %, not % and %',
                p_rel, quote_ident(p_col), coalesce(quote_literal(c.instruct), 'NULL'), coalesce(c.dims::text, 'NULL'),
                coalesce(quote_literal(p_instruct), 'NULL'), coalesce(p_dims::text, 'NULL')
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Write it with the registered settings, or re-embed the whole column with the new ones (CALL qwen3_embed_reembed).';
    END IF;
    RETURN coalesce(c.next_fingerprint, c.fingerprint);
END
$qwen3_embed_column_model$;

-- A re-embedding of relation.column_name starts (with the loaded model, instruct, dims) or ends.
CREATE FUNCTION @extschema@.qwen3_embed_column_moving(p_rel regclass, p_col name, p_instruct text, p_dims int, p_done boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_column_moving$
DECLARE
    v_fp text;
BEGIN
    IF p_done THEN
        UPDATE @extschema@.qwen3_embed_columns x
           SET fingerprint = coalesce(x.next_fingerprint, x.fingerprint), next_fingerprint = NULL,
               instruct = p_instruct, dims = p_dims, registered_at = clock_timestamp()
         WHERE x.relation = p_rel AND x.column_name = p_col;
        RETURN;
    END IF;
    SELECT i.fingerprint INTO v_fp FROM @extschema@.qwen3_embed_info() i;
    INSERT INTO @extschema@.qwen3_embed_columns AS x (relation, column_name, fingerprint, next_fingerprint, instruct, dims)
    VALUES (p_rel, p_col, v_fp, v_fp, p_instruct, p_dims)
    ON CONFLICT (relation, column_name) DO UPDATE
       SET next_fingerprint = EXCLUDED.next_fingerprint,
           instruct = EXCLUDED.instruct, dims = EXCLUDED.dims;
END
$qwen3_embed_column_moving$;

-- Registered columns (of tables and columns that still exist) and whether the loaded model is theirs.
CREATE FUNCTION @extschema@.qwen3_embed_check()
RETURNS TABLE (relation regclass, column_name name, fingerprint text, moving_to text, model_fingerprint text,
               matches boolean)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.relation, c.column_name, c.fingerprint, c.next_fingerprint, i.fingerprint,
           c.fingerprint = i.fingerprint AND c.next_fingerprint IS NULL
      FROM @extschema@.qwen3_embed_columns c, @extschema@.qwen3_embed_info() i
     WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = c.relation AND a.attname = c.column_name AND NOT a.attisdropped)
     ORDER BY c.relation::text, c.column_name
$$;

-- The trigger function (sql/trigger.sql).
CREATE OR REPLACE FUNCTION @extschema@.qwen3_embed_trigger() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_trigger$
DECLARE
    src_col  text;
    dst_col  text;
    instruct text;
    dims     int;
    dims_arg text;
    dst_type oid;
    dst_mod  int;
    dst_vec  boolean;
    changed  boolean;
    body     text;
    fp       text;
    vec      text;
BEGIN
    IF TG_WHEN <> 'BEFORE' OR TG_LEVEL <> 'ROW' OR TG_OP NOT IN ('INSERT', 'UPDATE') THEN
        RAISE EXCEPTION 'qwen3_embed_trigger: must be fired BEFORE INSERT OR UPDATE ... FOR EACH ROW, not % % ... FOR EACH %',
                TG_WHEN, TG_OP, TG_LEVEL
            USING ERRCODE = 'triggered_action_exception',
                  HINT = 'CREATE TRIGGER ... BEFORE INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger(''source_column'', ''target_column'');';
    END IF;
    IF TG_NARGS < 2 OR TG_NARGS > 4 THEN
        RAISE EXCEPTION 'qwen3_embed_trigger: expected 2 to 4 arguments (source column, target column [, instruct [, dims]]), got % on trigger "%" of %',
                TG_NARGS, TG_NAME, TG_RELID::regclass
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'EXECUTE FUNCTION qwen3_embed_trigger(''body'', ''embedding'') or qwen3_embed_trigger(''body'', ''embedding'', '''', ''1024'').';
    END IF;
    src_col  := TG_ARGV[0];
    dst_col  := TG_ARGV[1];
    instruct := NULLIF(TG_ARGV[2], '');
    dims_arg := NULLIF(btrim(TG_ARGV[3]), '');

    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = TG_RELID AND a.attname = src_col
                      AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'qwen3_embed_trigger: source column "%" does not exist in %', src_col, TG_RELID::regclass
            USING ERRCODE = 'undefined_column',
                  HINT = format('Check the first argument of trigger "%s".', TG_NAME);
    END IF;
    SELECT a.atttypid, a.atttypmod INTO dst_type, dst_mod
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = TG_RELID AND a.attname = dst_col AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_trigger: target column "%" does not exist in %', dst_col, TG_RELID::regclass
            USING ERRCODE = 'undefined_column',
                  HINT = format('Check the second argument of trigger "%s".', TG_NAME);
    END IF;

    -- pgvector's own vector or halfvec (not a type that merely shares the name).
    SELECT EXISTS (SELECT 1 FROM pg_type t
                     JOIN pg_extension e ON e.extname = 'vector' AND e.extnamespace = t.typnamespace
                    WHERE t.oid = dst_type AND t.typname IN ('vector', 'halfvec'))
      INTO dst_vec;
    IF NOT dst_vec THEN
        RAISE EXCEPTION 'qwen3_embed_trigger: target column "%" of % is %, not vector or halfvec',
                dst_col, TG_RELID::regclass, format_type(dst_type, dst_mod)
            USING ERRCODE = 'datatype_mismatch',
                  HINT = format('Point the second argument of trigger "%s" at a vector(n) or halfvec(n) column.', TG_NAME);
    END IF;
    IF dims_arg IS NOT NULL THEN
        IF dims_arg !~ '^[+-]?[0-9]{1,9}$' THEN
            RAISE EXCEPTION 'qwen3_embed_trigger: dims must be an integer, got "%"', TG_ARGV[3]
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('Fix the fourth argument of trigger "%s": a number such as ''1024'', or '''' for the full size.', TG_NAME);
        END IF;
        dims := dims_arg::int;
        IF dst_mod > 0 AND dims <> dst_mod THEN
            RAISE EXCEPTION 'qwen3_embed_trigger: trigger "%" asks for % dimensions, but column "%" of % is %',
                    TG_NAME, dims, dst_col, TG_RELID::regclass, format_type(dst_type, dst_mod)
                USING ERRCODE = 'datatype_mismatch',
                      HINT = format('Recreate trigger "%s" with dims ''%s'' (or '''' to follow the column''s size).', TG_NAME, dst_mod);
        END IF;
    ELSIF dst_mod > 0 THEN
        dims := dst_mod;  -- vector(n) / halfvec(n): embed to n dimensions
    END IF;

    IF TG_OP = 'UPDATE' THEN
        EXECUTE format('SELECT ($1).%1$I IS DISTINCT FROM ($2).%1$I', src_col)
            INTO changed USING NEW, OLD;
        IF NOT changed THEN
            RETURN NEW;
        END IF;
    END IF;

    EXECUTE format('SELECT ($1).%I::text', src_col) INTO body USING NEW;
    -- The column's model (registered at its first write): any other loaded model is refused.
    fp := @extschema@.qwen3_embed_column_model(TG_RELID, dst_col, instruct, dims);
    SELECT e.embedding::text INTO vec
      FROM @extschema@.qwen3_embed_batch_for_column(ARRAY[body], instruct, dims, fp) e;
    NEW := jsonb_populate_record(NEW, jsonb_build_object(dst_col, vec));
    RETURN NEW;
END
$qwen3_embed_trigger$;

-- The jobs table: the job's kind, a migration's column, the session running it, and the
-- 'interrupted' state. Existing rows are re-embedding jobs with no recorded session.
ALTER TABLE @extschema@.qwen3_embed_jobs
    DROP CONSTRAINT qwen3_embed_jobs_state_check,
    ADD CONSTRAINT qwen3_embed_jobs_state_check
        CHECK (state IN ('running', 'interrupted', 'failed', 'done')),
    ADD COLUMN kind text NOT NULL DEFAULT 'reembed' CHECK (kind IN ('reembed', 'migrate')),
    ADD COLUMN migrates_column name,
    ADD COLUMN runner_pid int,
    ADD COLUMN runner_started timestamptz,
    ADD CONSTRAINT qwen3_embed_jobs_migration_column
        CHECK (kind <> 'migrate' OR (dims IS NOT NULL AND target_column = migrates_column || '_qwen3_d' || dims));

-- Re-embedding and migrations (sql/reembed.sql, less the jobs table above).
-- A job's state as people should read it: 'running' only while its session still exists.
-- (A cancelled or timed-out job records 'interrupted' itself; a terminated session or a crash
-- cannot, and is recognised here.) Other roles' backend_start is hidden from ordinary roles,
-- where the process id alone decides.
CREATE OR REPLACE FUNCTION @extschema@.qwen3_embed_job_state(state text, runner_pid int, runner_started timestamptz)
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
CREATE OR REPLACE FUNCTION @extschema@.qwen3_embed_job_percent(state text, rows_done bigint, rows_total bigint)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN $1 = 'done' THEN 100.0 ELSE round(100.0 * $2 / NULLIF($3, 0), 1) END
$$;

CREATE OR REPLACE VIEW @extschema@.qwen3_embed_progress WITH (security_invoker = true) AS
SELECT j.relation,
       j.source_column,
       j.target_column,
       @extschema@.qwen3_embed_job_state(j.state, j.runner_pid, j.runner_started) AS state,
       j.rows_done,
       j.rows_total,
       @extschema@.qwen3_embed_job_percent(j.state, j.rows_done, j.rows_total) AS percent_done,
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
  FROM @extschema@.qwen3_embed_jobs j;
GRANT SELECT ON @extschema@.qwen3_embed_progress TO PUBLIC;

-- This session, as a job's runner.
CREATE OR REPLACE FUNCTION @extschema@.qwen3_embed_job_claim(p_rel regclass, p_dst name)
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE @extschema@.qwen3_embed_jobs j
       SET runner_pid = pg_catalog.pg_backend_pid(),
           runner_started = (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a
                              WHERE a.pid = pg_catalog.pg_backend_pid())
     WHERE j.relation = p_rel AND j.target_column = p_dst
$$;

-- qwen3_embed_reembed, part 1: check the arguments, then start, restart or resume the job.
CREATE OR REPLACE FUNCTION @extschema@.qwen3_embed_job_start(
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
    v_job      @extschema@.qwen3_embed_jobs;
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

    -- Start, restart or resume the job (one that did nothing yet just starts anew).
    SELECT * INTO v_job FROM @extschema@.qwen3_embed_jobs j
     WHERE j.relation = p_rel AND j.target_column = p_dst
       FOR UPDATE;
    IF FOUND AND NOT coalesce(p_restart, false) AND v_job.state <> 'done' AND v_job.rows_done > 0 THEN
        IF v_job.source_column IS DISTINCT FROM p_src OR v_job.instruct IS DISTINCT FROM p_instruct
           OR v_job.dims IS DISTINCT FROM v_dims OR v_job.key_column IS DISTINCT FROM v_key THEN
            RAISE EXCEPTION 'qwen3_embed_reembed: an unfinished job on %.% used other settings (source %, instruct %, dims %, key %)',
                    p_rel, p_dst, v_job.source_column, coalesce(quote_literal(v_job.instruct), 'NULL'),
                    coalesce(v_job.dims::text, 'NULL'), v_job.key_column
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = format('CALL it again with the same arguments to resume it, with restart => true to start over, or forget it with SELECT qwen3_embed_abandon(%L, %L).',
                                    p_rel::text, p_dst);
        END IF;
        UPDATE @extschema@.qwen3_embed_jobs j
           SET state = 'running', last_error = NULL, batch_size = p_batch, updated_at = clock_timestamp()
         WHERE j.relation = p_rel AND j.target_column = p_dst;
        RAISE NOTICE 'qwen3_embed_reembed: resuming %.% after % rows', p_rel, quote_ident(p_dst), v_job.rows_done;
    ELSE
        INSERT INTO @extschema@.qwen3_embed_jobs AS j
               (relation, target_column, source_column, instruct, dims, key_column, batch_size)
        VALUES (p_rel, p_dst, p_src, p_instruct, v_dims, v_key, p_batch)
        ON CONFLICT (relation, target_column) DO UPDATE
           SET source_column = EXCLUDED.source_column, instruct = EXCLUDED.instruct,
               dims = EXCLUDED.dims, key_column = EXCLUDED.key_column, batch_size = EXCLUDED.batch_size,
               last_key = NULL, rows_done = 0, rows_total = 0, state = 'running', last_error = NULL,
               started_at = clock_timestamp(), updated_at = clock_timestamp(), finished_at = NULL;
    END IF;
    PERFORM @extschema@.qwen3_embed_job_claim(p_rel, p_dst);
    -- The column moves to the loaded model: its writes are made with it from now on.
    PERFORM @extschema@.qwen3_embed_column_moving(p_rel, p_dst, p_instruct, v_dims, false);

    SELECT j.last_key, j.rows_done INTO v_last, v_done FROM @extschema@.qwen3_embed_jobs j
     WHERE j.relation = p_rel AND j.target_column = p_dst;
    IF v_last IS NULL THEN
        EXECUTE format('SELECT count(*) FROM %s', p_rel) INTO v_total;
    ELSE
        EXECUTE format('SELECT count(*) FROM %s WHERE %I > $1::%s', p_rel, v_key, v_key_type)
           INTO v_total USING v_last;
    END IF;
    UPDATE @extschema@.qwen3_embed_jobs j SET rows_total = v_done + v_total
     WHERE j.relation = p_rel AND j.target_column = p_dst;
END
$qwen3_embed_job_start$;

-- qwen3_embed_reembed, part 2: one batch. Locks the next rows in key order, embeds their texts
-- in one qwen3_embed_batch call, writes the vectors back and records the last key. An error
-- (or a cancel) undoes the batch, is recorded in the job and comes back in err_*, for the
-- procedure to COMMIT the record and raise it.
CREATE OR REPLACE FUNCTION @extschema@.qwen3_embed_job_step(p_rel regclass, p_dst name,
    OUT finished boolean, OUT notice text,
    OUT err_state text, OUT err_message text, OUT err_detail text, OUT err_hint text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_job_step$
DECLARE
    v_job      @extschema@.qwen3_embed_jobs;
    v_key_type text;
    v_tpl      text;
    v_n        int;
    v_last     text;
    v_done     bigint;
    v_total    bigint;
    v_hint     text;
    v_fp       text;
BEGIN
    finished := false;
    BEGIN
        -- Serializes concurrent CALLs on the same job: each takes the next batch in turn.
        SELECT * INTO v_job FROM @extschema@.qwen3_embed_jobs j
         WHERE j.relation = p_rel AND j.target_column = p_dst
           FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'qwen3_embed_reembed: the job on %.% was deleted while it ran', p_rel, p_dst
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        SELECT format_type(a.atttypid, a.atttypmod) INTO v_key_type
          FROM pg_attribute a
         WHERE a.attrelid = p_rel AND a.attname = v_job.key_column AND NOT a.attisdropped;
        SELECT coalesce(c.next_fingerprint, c.fingerprint) INTO v_fp FROM @extschema@.qwen3_embed_columns c
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
                  FROM @extschema@.qwen3_embed_batch_for_column(ARRAY(SELECT n.body FROM numbered n ORDER BY n.ord), $3, $4, $5) AS e
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
            UPDATE @extschema@.qwen3_embed_jobs j
               SET state = 'done', rows_total = rows_done, updated_at = clock_timestamp(),
                   finished_at = clock_timestamp()
             WHERE j.relation = p_rel AND j.target_column = p_dst
            RETURNING rows_done INTO v_done;
            PERFORM @extschema@.qwen3_embed_column_moving(p_rel, p_dst, v_job.instruct, v_job.dims, true);
            finished := true;
            notice := format('qwen3_embed_reembed: done, %s rows of %s.%I', v_done, p_rel, p_dst);
            RETURN;
        END IF;
        UPDATE @extschema@.qwen3_embed_jobs j
           SET last_key = v_last, rows_done = rows_done + v_n,
               rows_total = greatest(rows_total, rows_done + v_n), updated_at = clock_timestamp()
         WHERE j.relation = p_rel AND j.target_column = p_dst
        RETURNING rows_done, rows_total INTO v_done, v_total;
        PERFORM @extschema@.qwen3_embed_job_claim(p_rel, p_dst);
        notice := format('qwen3_embed_reembed: %s of %s rows done (%s.%I)', v_done, v_total, p_rel, p_dst);
        RETURN;
    EXCEPTION
        WHEN query_canceled THEN
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT;
            UPDATE @extschema@.qwen3_embed_jobs j
               SET state = 'interrupted', last_error = err_state || ': ' || err_message,
                   updated_at = clock_timestamp()
             WHERE j.relation = p_rel AND j.target_column = p_dst
            RETURNING rows_done, rows_total INTO v_done, v_total;
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT,
                                    v_hint = PG_EXCEPTION_HINT;
            -- Keep what the earlier batches did, say where it stopped.
            UPDATE @extschema@.qwen3_embed_jobs j
               SET state = 'failed', last_error = err_state || ': ' || err_message, updated_at = clock_timestamp()
             WHERE j.relation = p_rel AND j.target_column = p_dst
            RETURNING rows_done, rows_total INTO v_done, v_total;
    END;
    err_detail := format('qwen3_embed_reembed stopped on %s.%I after %s of %s rows; those stay done.',
                         p_rel, p_dst, coalesce(v_done, 0), coalesce(v_total, 0));
    err_hint := coalesce(NULLIF(v_hint, '') || ' ', '')
                || 'Then CALL qwen3_embed_reembed again: it resumes after the last committed batch.';
END
$qwen3_embed_job_step$;

CREATE OR REPLACE PROCEDURE @extschema@.qwen3_embed_reembed(
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
    PERFORM @extschema@.qwen3_embed_job_start(v_rel, source_column, v_dst, instruct, dims, batch_size, restart);
    -- Fails here, before any work, when CALLed inside a transaction block.
    COMMIT;
    LOOP
        SELECT * INTO r FROM @extschema@.qwen3_embed_job_step(v_rel, v_dst);
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
CREATE OR REPLACE FUNCTION @extschema@.qwen3_embed_migrate_prepare(
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
    SELECT j.target_column, j.dims INTO v_other FROM @extschema@.qwen3_embed_jobs j
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
        SELECT j.state INTO v_state FROM @extschema@.qwen3_embed_jobs j
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
    DELETE FROM @extschema@.qwen3_embed_jobs j WHERE j.relation = p_rel AND j.target_column = new_column;
    INSERT INTO @extschema@.qwen3_embed_jobs
           (relation, target_column, source_column, instruct, dims, key_column, batch_size, state,
            kind, migrates_column)
    SELECT p_rel, new_column, p_src, p_instruct, p_dims, a.attname, greatest(coalesce(p_batch, 64), 1), 'running',
           'migrate', p_dst
      FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = p_rel AND i.indisprimary AND i.indnkeyatts = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_migrate_dims: % needs a single-column primary key to walk it in order', p_rel
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add one, for example: ALTER TABLE ' || p_rel::text || ' ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;';
    END IF;
    PERFORM @extschema@.qwen3_embed_job_claim(p_rel, new_column);
    walk := true;
    swap := true;
END
$qwen3_embed_migrate_prepare$;

-- qwen3_embed_migrate_dims, part 2, in one transaction: embed rows the walk missed, drop the old
-- column, rename the new one, record the job as done. Returns the NOTICEs to show.
CREATE OR REPLACE FUNCTION @extschema@.qwen3_embed_migrate_swap(
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
    v_rows    bigint;
BEGIN
    SELECT format_type(a.atttypid, NULL) INTO v_type
      FROM pg_attribute a
     WHERE a.attrelid = p_rel AND a.attname = v_new AND a.attnum > 0 AND NOT a.attisdropped;
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', p_rel);
    EXECUTE format('UPDATE %1$s SET %2$I = (SELECT e.embedding FROM '
                   '@extschema@.qwen3_embed_batch_for_column(ARRAY[%3$I::text], $1, $2, $3) e) '
                   'WHERE %2$I IS NULL AND %3$I IS NOT NULL', p_rel, v_new, p_src)
       USING p_instruct, p_dims,
             (SELECT c.fingerprint FROM @extschema@.qwen3_embed_columns c
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
    DELETE FROM @extschema@.qwen3_embed_columns c WHERE c.relation = p_rel AND c.column_name = p_dst;
    UPDATE @extschema@.qwen3_embed_columns c SET column_name = p_dst
     WHERE c.relation = p_rel AND c.column_name = v_new;
    DELETE FROM @extschema@.qwen3_embed_jobs j WHERE j.relation = p_rel AND j.target_column = v_new
    RETURNING j.rows_done INTO v_rows;
    INSERT INTO @extschema@.qwen3_embed_jobs AS j
           (relation, target_column, source_column, instruct, dims, key_column, batch_size,
            rows_done, rows_total, state, finished_at)
    SELECT p_rel, p_dst, p_src, p_instruct, p_dims, i.key_column, i.batch_size,
           coalesce(v_rows, 0) + v_caught, coalesce(v_rows, 0) + v_caught, 'done', clock_timestamp()
      FROM (SELECT a.attname AS key_column, greatest(coalesce(p_batch, 64), 1) AS batch_size
              FROM pg_index x
              JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
             WHERE x.indrelid = p_rel AND x.indisprimary) i
    ON CONFLICT (relation, target_column) DO UPDATE
       SET source_column = EXCLUDED.source_column, instruct = EXCLUDED.instruct, dims = EXCLUDED.dims,
           key_column = EXCLUDED.key_column, batch_size = EXCLUDED.batch_size, last_key = NULL,
           rows_done = EXCLUDED.rows_done, rows_total = EXCLUDED.rows_total, state = 'done',
           last_error = NULL, updated_at = clock_timestamp(), finished_at = clock_timestamp(),
           kind = 'reembed', migrates_column = NULL;
    IF v_caught > 0 THEN
        RETURN NEXT format('qwen3_embed_migrate_dims: embedded %s rows written during the migration', v_caught);
    END IF;
    RETURN NEXT format('qwen3_embed_migrate_dims: %s.%I is now %s(%s)', p_rel, p_dst, v_type, p_dims);
    RETURN NEXT format('qwen3_embed_migrate_dims: indexes on the old column were dropped with it; recreate them: %s',
                       coalesce(v_indexes, '(there were none)'));
END
$qwen3_embed_migrate_swap$;

CREATE OR REPLACE PROCEDURE @extschema@.qwen3_embed_migrate_dims(
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
    SELECT * INTO v_plan
      FROM @extschema@.qwen3_embed_migrate_prepare(v_rel, v_src, v_dst, v_dims, instruct, v_batch);
    IF NOT v_plan.swap THEN
        RETURN;
    END IF;
    IF v_plan.walk THEN
        COMMIT;
        CALL @extschema@.qwen3_embed_reembed(v_rel, v_src, v_plan.new_column, instruct, v_dims, v_batch, false);
    END IF;
    FOR v_notice IN
        SELECT n FROM @extschema@.qwen3_embed_migrate_swap(v_rel, v_src, v_dst, v_dims, instruct, v_batch) AS n
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
CREATE OR REPLACE FUNCTION @extschema@.qwen3_embed_abandon(relation regclass, target_column text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_abandon$
#variable_conflict use_variable
DECLARE
    v_rel regclass := relation;
    v_job @extschema@.qwen3_embed_jobs;
    v_live int;
BEGIN
    -- The column being migrated names its unfinished migration first, then its own job.
    SELECT * INTO v_job FROM @extschema@.qwen3_embed_jobs j
     WHERE j.relation = v_rel AND j.kind = 'migrate' AND j.migrates_column = target_column;
    IF NOT FOUND THEN
        SELECT * INTO v_job FROM @extschema@.qwen3_embed_jobs j
         WHERE j.relation = v_rel AND j.target_column = target_column;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'qwen3_embed_abandon: no job on %.%', v_rel, quote_ident(target_column)
                USING ERRCODE = 'undefined_object',
                      HINT = 'SELECT relation, target_column, state FROM qwen3_embed_progress; lists the jobs you can see.';
        END IF;
    END IF;
    -- A job that a session is running now holds its row: stop that session first.
    BEGIN
        PERFORM 1 FROM @extschema@.qwen3_embed_jobs j
         WHERE j.relation = v_rel AND j.target_column = v_job.target_column
           FOR UPDATE NOWAIT;
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
        DELETE FROM @extschema@.qwen3_embed_columns c
         WHERE c.relation = v_rel AND c.column_name = v_job.target_column;
    END IF;
    DELETE FROM @extschema@.qwen3_embed_jobs j
     WHERE j.relation = v_rel AND j.target_column = v_job.target_column;
    IF v_job.kind = 'migrate' THEN
        RETURN format('abandoned the migration of %s.%I to %s dimensions: dropped column %I and trigger %I',
                      v_rel, v_job.migrates_column, v_job.dims, v_job.target_column, v_job.target_column || '_sync');
    END IF;
    RETURN format('forgot the %s job on %s.%I after %s of %s rows (rows already re-embedded keep their new vectors)',
                  v_job.state, v_rel, v_job.target_column, v_job.rows_done, v_job.rows_total);
END
$qwen3_embed_abandon$;

-- The embedding queue, all new (sql/sync.sql), and its C functions (src/state.rs, src/sync/drain.rs).
CREATE FUNCTION @extschema@."qwen3_embed_state"(
	"op" TEXT,
	"args" jsonb
) RETURNS jsonb
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_state_wrapper';

CREATE FUNCTION @extschema@."qwen3_embed_sync_run"(
	"sync_id" INT DEFAULT NULL,
	"max_batches" INT DEFAULT 1
) RETURNS INT
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_sync_run_wrapper';

CREATE FUNCTION @extschema@."qwen3_embed_sync_workers_here"(
	"what" TEXT
) RETURNS INT
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_sync_workers_here_wrapper';

CREATE FUNCTION @extschema@."qwen3_embed_sync_wake"() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_sync_wake_wrapper';

CREATE FUNCTION @extschema@."qwen3_embed_sync_worker"() RETURNS TEXT
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_sync_worker_wrapper';

-- One row per kept-in-step column.
CREATE TABLE @extschema@.qwen3_embed_syncs (
    id            serial      PRIMARY KEY,
    relation      regclass    NOT NULL,
    source_column name        NOT NULL,
    target_column name        NOT NULL,
    instruct      text,
    dims          int,
    key_column    name        NOT NULL,
    key_type      regtype     NOT NULL,
    batch_size    int         NOT NULL DEFAULT 64 CHECK (batch_size BETWEEN 1 AND 4096),
    max_attempts  int         NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    rows_done     bigint      NOT NULL DEFAULT 0,
    -- Rows per second while embedding, smoothed over the last batches.
    rate          float8,
    -- A chunked sync (qwen3_embed_sync_chunks): the chunk table, chunk size and overlap; its
    -- target_column is the chunk table's name.
    chunk_table   regclass,
    chunk_tokens  int,
    chunk_overlap int,
    -- The role that created the sync: it must still be allowed to read the source and write
    -- the target at every round, or the rows go to the error table.
    created_by    regrole     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_done_at  timestamptz,
    -- Rounds that failed in a row; the sync is skipped until paused_until.
    failures      int         NOT NULL DEFAULT 0,
    paused_until  timestamptz,
    -- qwen3_embed_sync_alter changed what the vectors are (instruction, size): the rows it
    -- queued again are being replaced; the column registry moves when the queue is empty.
    replacing     boolean     NOT NULL DEFAULT false,
    last_error    text,
    UNIQUE (relation, target_column)
);

-- Rows waiting to be embedded: the key as text, how often it was tried, when next. No foreign
-- key to the syncs (a per-row check on every queued row of every write): qwen3_embed_unsync
-- deletes a sync's queue and errors itself.
CREATE TABLE @extschema@.qwen3_embed_queue (
    id          bigserial   PRIMARY KEY,
    sync_id     int         NOT NULL,
    key         text        NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    attempts    int         NOT NULL DEFAULT 0,
    next_try_at timestamptz NOT NULL DEFAULT now(),
    last_error  text
);

-- Rows that failed max_attempts times, with the last error.
CREATE TABLE @extschema@.qwen3_embed_sync_errors (
    id        bigserial   PRIMARY KEY,
    sync_id   int         NOT NULL REFERENCES @extschema@.qwen3_embed_syncs ON DELETE CASCADE,
    key       text        NOT NULL,
    sqlstate  text        NOT NULL,
    message   text        NOT NULL,
    attempts  int         NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);

-- Read only, and only the rows of tables the reader may UPDATE (superusers and the extension's
-- owner see all).
ALTER TABLE @extschema@.qwen3_embed_syncs ENABLE ROW LEVEL SECURITY;
CREATE POLICY qwen3_embed_syncs_updatable ON @extschema@.qwen3_embed_syncs FOR SELECT
    USING (pg_catalog.has_table_privilege(relation, 'UPDATE'));
ALTER TABLE @extschema@.qwen3_embed_queue ENABLE ROW LEVEL SECURITY;
CREATE POLICY qwen3_embed_queue_updatable ON @extschema@.qwen3_embed_queue FOR SELECT
    USING (EXISTS (SELECT 1 FROM @extschema@.qwen3_embed_syncs s WHERE s.id = sync_id));
ALTER TABLE @extschema@.qwen3_embed_sync_errors ENABLE ROW LEVEL SECURITY;
CREATE POLICY qwen3_embed_sync_errors_updatable ON @extschema@.qwen3_embed_sync_errors FOR SELECT
    USING (EXISTS (SELECT 1 FROM @extschema@.qwen3_embed_syncs s WHERE s.id = sync_id));
REVOKE ALL ON @extschema@.qwen3_embed_syncs, @extschema@.qwen3_embed_queue,
              @extschema@.qwen3_embed_sync_errors FROM PUBLIC;
GRANT SELECT ON @extschema@.qwen3_embed_syncs, @extschema@.qwen3_embed_queue,
                @extschema@.qwen3_embed_sync_errors TO PUBLIC;

-- Whether p_caller may drain, retry and read the sync's table (UPDATE), or create and remove its
-- sync (membership in the owning role). Raises insufficient_privilege otherwise.
CREATE FUNCTION @extschema@.qwen3_embed_state_check(p_caller oid, p_rel regclass, p_owner boolean, p_what text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_check$
DECLARE
    v_owner oid;
BEGIN
    SELECT c.relowner INTO v_owner FROM pg_class c WHERE c.oid = p_rel;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: relation % does not exist', p_what, p_rel::oid USING ERRCODE = 'undefined_table';
    END IF;
    IF p_owner AND NOT pg_has_role(p_caller, v_owner, 'USAGE') THEN
        RAISE EXCEPTION '%: must be the owner of table % (or a member of its owning role %)',
                p_what, p_rel, v_owner::regrole
            USING ERRCODE = 'insufficient_privilege';
    ELSIF NOT p_owner AND NOT has_table_privilege(p_caller, p_rel, 'UPDATE') THEN
        RAISE EXCEPTION '%: permission denied for table % (UPDATE is needed)', p_what, p_rel
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$qwen3_embed_state_check$;

-- The sync of p_id, checked for p_caller; raises undefined_object when it does not exist.
CREATE FUNCTION @extschema@.qwen3_embed_state_sync(p_caller oid, p_id int, p_owner boolean, p_what text)
RETURNS @extschema@.qwen3_embed_syncs
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync$
DECLARE
    s @extschema@.qwen3_embed_syncs;
BEGIN
    SELECT * INTO s FROM @extschema@.qwen3_embed_syncs x WHERE x.id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: no sync %', p_what, p_id USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM @extschema@.qwen3_embed_state_check(p_caller, s.relation, p_owner, p_what);
    RETURN s;
END
$qwen3_embed_state_sync$;

-- The enqueueing trigger: AFTER INSERT / UPDATE / DELETE ... FOR EACH STATEMENT, with the
-- statement's rows as transition tables. TG_ARGV[0] is the sync's id. It runs as the extension's
-- owner (it writes the queue for every writer of the table) and runs no code of the table's:
-- it reads the transition tables' key (a built-in type) and compares the source's text forms.
-- It acts only for the table its sync names: the same function put on another table does nothing.
CREATE FUNCTION @extschema@.qwen3_embed_sync_enqueue() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_enqueue$
DECLARE
    s @extschema@.qwen3_embed_syncs;
BEGIN
    SELECT * INTO s FROM @extschema@.qwen3_embed_syncs WHERE id = TG_ARGV[0]::int AND relation = TG_RELID;
    IF NOT FOUND OR TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO @extschema@.qwen3_embed_queue (sync_id, key) '
                       'SELECT $1, n.%I::text FROM qwen3_embed_new n WHERE n.%I IS NOT NULL',
                       s.key_column, s.source_column)
          USING s.id;
        PERFORM @extschema@.qwen3_embed_sync_wake();
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE format('INSERT INTO @extschema@.qwen3_embed_queue (sync_id, key) '
                       'SELECT $1, n.%1$I::text FROM qwen3_embed_new n LEFT JOIN qwen3_embed_old o ON o.%1$I = n.%1$I '
                       'WHERE o.%1$I IS NULL OR n.%2$I::text IS DISTINCT FROM o.%2$I::text',
                       s.key_column, s.source_column)
          USING s.id;
        PERFORM @extschema@.qwen3_embed_sync_wake();
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE format('DELETE FROM @extschema@.qwen3_embed_queue q USING qwen3_embed_old o '
                       'WHERE q.sync_id = $1 AND q.key = o.%I::text', s.key_column)
          USING s.id;
    END IF;
    RETURN NULL;
END
$qwen3_embed_sync_enqueue$;

-- BEFORE UPDATE ... FOR EACH ROW WHEN (the source became NULL and a vector is still there):
-- a row whose text became NULL has no vector. TG_ARGV[0] is the target column. Runs as the writer.
CREATE FUNCTION @extschema@.qwen3_embed_sync_clear() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_clear$
BEGIN
    NEW := jsonb_populate_record(NEW, jsonb_build_object(TG_ARGV[0], NULL));
    RETURN NEW;
END
$qwen3_embed_sync_clear$;

-- Why the role that created sync s may no longer have it drained (NULL when it may): it must
-- still read the source column and write the target (or the chunk table).
CREATE FUNCTION @extschema@.qwen3_embed_sync_refusal(s @extschema@.qwen3_embed_syncs)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_refusal$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = s.relation AND x.attname = s.source_column
                      AND x.attnum > 0 AND NOT x.attisdropped) THEN
        RETURN format('column %I of %s no longer exists', s.source_column, s.relation);
    END IF;
    IF NOT has_column_privilege(s.created_by, s.relation, s.source_column::text, 'SELECT') THEN
        RETURN format('role %s, which created this sync, may no longer read %s.%I', s.created_by, s.relation, s.source_column);
    END IF;
    IF s.chunk_table IS NOT NULL THEN
        IF NOT has_table_privilege(s.created_by, s.chunk_table, 'INSERT, UPDATE, DELETE') THEN
            RETURN format('role %s, which created this sync, may no longer write %s', s.created_by, s.chunk_table);
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = s.relation AND x.attname = s.target_column
                         AND x.attnum > 0 AND NOT x.attisdropped) THEN
        RETURN format('column %I of %s no longer exists', s.target_column, s.relation);
    ELSIF NOT has_column_privilege(s.created_by, s.relation, s.target_column::text, 'UPDATE') THEN
        RETURN format('role %s, which created this sync, may no longer write %s.%I', s.created_by, s.relation, s.target_column);
    END IF;
    RETURN NULL;
END
$qwen3_embed_sync_refusal$;

-- The gate's operation sync_add: validate a new sync's settings, record it (resolved objects
-- only), create its triggers and queue its backlog (every row with text; with only_missing, those without a vector). Returns its id and
-- the rows queued. Only members of the table's owning role.
CREATE FUNCTION @extschema@.qwen3_embed_state_sync_add(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_add$
DECLARE
    v_what     text     := a->>'what';
    v_rel      regclass := (a->>'relation')::oid;
    v_src      name     := a->>'source_column';
    v_dst      name     := a->>'target_column';
    v_instruct text     := a->>'instruct';
    v_dims     int      := (a->>'dims')::int;
    v_batch    int      := (a->>'batch_size')::int;
    v_attempts int      := (a->>'max_attempts')::int;
    v_chunks   regclass := (a->>'chunk_table')::oid;
    v_tokens   int      := (a->>'chunk_tokens')::int;
    v_overlap  int      := (a->>'chunk_overlap')::int;
    v_max      int      := (a->>'max_dims')::int;
    v_missing  boolean  := coalesce((a->>'only_missing')::boolean, false);
    v_kind     "char";
    v_key      name;
    v_key_type regtype;
    v_dst_type oid;
    v_dst_mod  int;
    v_id       int;
    v_name     text;
    v_rows     bigint;
BEGIN
    IF v_rel IS NULL OR v_src IS NULL OR v_dst IS NULL THEN
        RAISE EXCEPTION '%: relation, source_column and % must not be NULL', v_what,
                CASE WHEN v_chunks IS NULL AND v_tokens IS NULL THEN 'target_column' ELSE 'chunk_table' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM @extschema@.qwen3_embed_state_check(p_caller, v_rel, true, v_what);
    SELECT c.relkind INTO v_kind FROM pg_class c WHERE c.oid = v_rel;
    IF v_kind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '%: % is not a table', v_what, v_rel USING ERRCODE = 'wrong_object_type';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = v_rel AND x.attname = v_src
                      AND x.attnum > 0 AND NOT x.attisdropped) THEN
        RAISE EXCEPTION '%: column "%" of % does not exist', v_what, v_src, v_rel
            USING ERRCODE = 'undefined_column';
    END IF;
    -- The key: one column, of a built-in scalar type (its text form is its identity, and
    -- comparing it runs no one's code).
    SELECT x.attname, x.atttypid::regtype INTO v_key, v_key_type
      FROM pg_index i JOIN pg_attribute x ON x.attrelid = i.indrelid AND x.attnum = i.indkey[0]
     WHERE i.indrelid = v_rel AND i.indisprimary AND i.indnkeyatts = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: % needs a single-column primary key', v_what, v_rel
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF v_key_type NOT IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'numeric'::regtype,
                          'text'::regtype, 'character varying'::regtype, 'character'::regtype, 'uuid'::regtype) THEN
        RAISE EXCEPTION '%: the primary key "%" of % is %, which the queue cannot carry', v_what, v_key, v_rel, v_key_type
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'The key must be smallint, integer, bigint, numeric, text, varchar, char or uuid.';
    END IF;
    IF v_key = v_dst OR v_key = v_src THEN
        RAISE EXCEPTION '%: the primary key "%" of % cannot be the source or the target', v_what, v_key, v_rel
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_batch IS NULL OR v_batch NOT BETWEEN 1 AND 4096 OR v_attempts IS NULL OR v_attempts NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION '%: batch_size must be between 1 and 4096 and max_attempts between 1 and 100, got % and %',
                v_what, coalesce(v_batch::text, 'NULL'), coalesce(v_attempts::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(v_instruct) > 8192 THEN
        RAISE EXCEPTION '%: instruct is % bytes, at most 8192', v_what, octet_length(v_instruct)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_chunks IS NULL THEN
        SELECT x.atttypid, x.atttypmod INTO v_dst_type, v_dst_mod FROM pg_attribute x
         WHERE x.attrelid = v_rel AND x.attname = v_dst AND x.attnum > 0 AND NOT x.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION '%: column "%" of % does not exist', v_what, v_dst, v_rel
                USING ERRCODE = 'undefined_column';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_extension e ON e.extname = 'vector' AND e.extnamespace = t.typnamespace
                        WHERE t.oid = v_dst_type AND t.typname IN ('vector', 'halfvec')) THEN
            RAISE EXCEPTION '%: column "%" of % is %, not vector or halfvec',
                    v_what, v_dst, v_rel, format_type(v_dst_type, v_dst_mod)
                USING ERRCODE = 'datatype_mismatch';
        END IF;
        IF v_dims IS NULL AND v_dst_mod > 0 THEN
            v_dims := v_dst_mod;
        ELSIF v_dims IS NOT NULL AND v_dst_mod > 0 AND v_dims <> v_dst_mod THEN
            RAISE EXCEPTION '%: dims % does not fit column "%" of %, which is %',
                    v_what, v_dims, v_dst, v_rel, format_type(v_dst_type, v_dst_mod)
                USING ERRCODE = 'datatype_mismatch';
        END IF;
    ELSE
        IF v_tokens IS NULL OR v_overlap IS NULL OR v_tokens NOT BETWEEN 2 AND 32768
           OR v_overlap < 0 OR v_overlap >= v_tokens - 1 THEN
            RAISE EXCEPTION '%: chunk_tokens must be between 2 and 32768 and overlap between 0 and chunk_tokens - 2, got % and %',
                    v_what, coalesce(v_tokens::text, 'NULL'), coalesce(v_overlap::text, 'NULL')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF (SELECT c.relowner FROM pg_class c WHERE c.oid = v_chunks)
           IS DISTINCT FROM (SELECT c.relowner FROM pg_class c WHERE c.oid = v_rel) THEN
            RAISE EXCEPTION '%: the chunk table % must belong to the owner of %', v_what, v_chunks, v_rel
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    IF v_dims IS NOT NULL AND v_dims NOT BETWEEN 32 AND v_max THEN
        RAISE EXCEPTION '%: dims must be between 32 and the model''s size (%), got %', v_what, v_max, v_dims
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO @extschema@.qwen3_embed_syncs AS s
           (relation, source_column, target_column, instruct, dims, key_column, key_type, batch_size, max_attempts,
            chunk_table, chunk_tokens, chunk_overlap, created_by)
    VALUES (v_rel, v_src, v_dst, v_instruct, v_dims, v_key, v_key_type, v_batch, v_attempts,
            v_chunks, v_tokens, v_overlap, p_caller)
    ON CONFLICT ON CONSTRAINT qwen3_embed_syncs_relation_target_column_key DO NOTHING
    RETURNING s.id INTO v_id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION '%: %.% is already kept in step', v_what, v_rel, quote_ident(v_dst)
            USING ERRCODE = 'duplicate_object',
                  HINT = 'SELECT qwen3_embed_unsync(...) first to change its settings.';
    END IF;
    v_name := 'qwen3_embed_sync_' || v_id;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS qwen3_embed_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qwen3_embed_sync_enqueue(%L)',
                   v_name || '_ins', v_rel, v_id);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS qwen3_embed_old NEW TABLE AS qwen3_embed_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qwen3_embed_sync_enqueue(%L)',
                   v_name || '_upd', v_rel, v_id);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS qwen3_embed_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qwen3_embed_sync_enqueue(%L)',
                   v_name || '_del', v_rel, v_id);
    IF v_chunks IS NULL THEN
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %s FOR EACH ROW WHEN (NEW.%I IS NULL AND NEW.%I IS NOT NULL) '
                       'EXECUTE FUNCTION @extschema@.qwen3_embed_sync_clear(%L)',
                       v_name || '_clear', v_rel, v_src, v_dst, v_dst);
    END IF;
    EXECUTE format('INSERT INTO @extschema@.qwen3_embed_queue (sync_id, key) '
                   'SELECT $1, t.%I::text FROM %s t WHERE t.%I IS NOT NULL', v_key, v_rel, v_src)
            || CASE WHEN v_missing AND v_chunks IS NULL THEN format(' AND t.%I IS NULL', v_dst) ELSE '' END
      USING v_id;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN jsonb_build_object('id', v_id, 'rows', v_rows, 'dims', v_dims);
END
$qwen3_embed_state_sync_add$;

-- The gate's operation sync_remove: drop a sync's triggers, queue and errors. Returns the rows
-- that were still queued. Only members of the table's owning role.
CREATE FUNCTION @extschema@.qwen3_embed_state_sync_remove(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_remove$
DECLARE
    s         @extschema@.qwen3_embed_syncs;
    v_pending bigint;
    v_suffix  text;
BEGIN
    s := @extschema@.qwen3_embed_state_sync(p_caller, (a->>'id')::int, true, 'qwen3_embed_unsync');
    DELETE FROM @extschema@.qwen3_embed_queue q WHERE q.sync_id = s.id;
    GET DIAGNOSTICS v_pending = ROW_COUNT;
    FOREACH v_suffix IN ARRAY CASE WHEN s.chunk_table IS NULL THEN ARRAY['_ins', '_upd', '_del', '_clear']
                                   ELSE ARRAY['_ins', '_upd', '_del'] END LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'qwen3_embed_sync_' || s.id || v_suffix, s.relation);
    END LOOP;
    DELETE FROM @extschema@.qwen3_embed_syncs x WHERE x.id = s.id;
    RETURN jsonb_build_object('pending', v_pending);
END
$qwen3_embed_state_sync_remove$;

-- The gate's operation sync_retry: a sync's failed rows back in the queue, every queued row due
-- now, and the sync no longer set aside. Needs UPDATE on the table.
CREATE FUNCTION @extschema@.qwen3_embed_state_sync_retry(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_retry$
DECLARE
    s   @extschema@.qwen3_embed_syncs;
    v_n bigint;
BEGIN
    s := @extschema@.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_retry');
    WITH moved AS (
        DELETE FROM @extschema@.qwen3_embed_sync_errors e WHERE e.sync_id = s.id RETURNING e.key
    )
    INSERT INTO @extschema@.qwen3_embed_queue (sync_id, key) SELECT DISTINCT s.id, m.key FROM moved m;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    UPDATE @extschema@.qwen3_embed_queue q SET next_try_at = clock_timestamp(), attempts = 0
     WHERE q.sync_id = s.id;
    UPDATE @extschema@.qwen3_embed_syncs x SET failures = 0, paused_until = NULL WHERE x.id = s.id;
    RETURN jsonb_build_object('requeued', v_n);
END
$qwen3_embed_state_sync_retry$;

-- The gate's operation sync_alter: change a sync's batch size, attempts, instruction or size.
-- A new instruction or size makes other vectors: every row with text is queued again, the
-- column registry starts moving to the new settings (writes with them are accepted from now on)
-- and the old vectors stay until each row is replaced; queue_done ends the move when the sync's
-- queue is empty. Returns the rows queued and whether the vectors change. Only members of the
-- table's owning role.
CREATE FUNCTION @extschema@.qwen3_embed_state_sync_alter(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_alter$
DECLARE
    s          @extschema@.qwen3_embed_syncs;
    v_what     text := 'qwen3_embed_sync_alter';
    v_batch    int;
    v_attempts int;
    v_instruct text;
    v_dims     int;
    v_max      int  := (a->>'max_dims')::int;
    v_rel      regclass;
    v_col      name;
    v_mod      int;
    v_changes  boolean;
    v_rows     bigint := 0;
BEGIN
    s := @extschema@.qwen3_embed_state_sync(p_caller, (a->>'id')::int, true, v_what);
    v_batch := coalesce((a->>'batch_size')::int, s.batch_size);
    v_attempts := coalesce((a->>'max_attempts')::int, s.max_attempts);
    v_instruct := CASE WHEN (a->>'default_instruct')::boolean THEN NULL ELSE coalesce(a->>'instruct', s.instruct) END;
    v_dims := coalesce((a->>'dims')::int, s.dims);
    IF v_batch NOT BETWEEN 1 AND 4096 OR v_attempts NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION '%: batch_size must be between 1 and 4096 and max_attempts between 1 and 100, got % and %',
                v_what, v_batch, v_attempts
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(v_instruct) > 8192 THEN
        RAISE EXCEPTION '%: instruct is % bytes, at most 8192', v_what, octet_length(v_instruct)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_rel := coalesce(s.chunk_table, s.relation);
    v_col := CASE WHEN s.chunk_table IS NULL THEN s.target_column ELSE 'embedding' END;
    IF v_dims IS DISTINCT FROM s.dims THEN
        SELECT x.atttypmod INTO v_mod FROM pg_attribute x
         WHERE x.attrelid = v_rel AND x.attname = v_col AND x.attnum > 0 AND NOT x.attisdropped;
        IF v_mod > 0 AND v_dims IS DISTINCT FROM v_mod THEN
            RAISE EXCEPTION '%: dims % does not fit column "%" of %, which holds % dimensions',
                    v_what, coalesce(v_dims::text, 'NULL'), v_col, v_rel, v_mod
                USING ERRCODE = 'datatype_mismatch',
                      HINT = 'CALL qwen3_embed_migrate_dims(...) moves a column of a fixed size to another size.';
        END IF;
        IF v_dims NOT BETWEEN 32 AND v_max THEN
            RAISE EXCEPTION '%: dims must be between 32 and the model''s size (%), got %', v_what, v_max, v_dims
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    v_changes := v_instruct IS DISTINCT FROM s.instruct OR v_dims IS DISTINCT FROM s.dims;
    IF v_changes AND NOT s.replacing AND EXISTS (
           SELECT 1 FROM @extschema@.qwen3_embed_columns c
            WHERE c.relation = v_rel AND c.column_name = v_col AND c.next_fingerprint IS NOT NULL) THEN
        RAISE EXCEPTION '%: %.% is being re-embedded; change its sync when that is over', v_what, v_rel, quote_ident(v_col)
            USING ERRCODE = 'object_in_use';
    END IF;
    UPDATE @extschema@.qwen3_embed_syncs x
       SET batch_size = v_batch, max_attempts = v_attempts, instruct = v_instruct, dims = v_dims,
           replacing = x.replacing OR v_changes
     WHERE x.id = s.id;
    IF v_changes THEN
        PERFORM @extschema@.qwen3_embed_column_moving(v_rel, v_col, v_instruct, v_dims, false);
        EXECUTE format('INSERT INTO @extschema@.qwen3_embed_queue (sync_id, key) '
                       'SELECT $1, t.%1$I::text FROM %2$s t WHERE t.%3$I IS NOT NULL AND NOT EXISTS '
                       '(SELECT 1 FROM @extschema@.qwen3_embed_queue q WHERE q.sync_id = $1 AND q.key = t.%1$I::text)',
                       s.key_column, s.relation, s.source_column)
          USING s.id;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        UPDATE @extschema@.qwen3_embed_queue q SET next_try_at = clock_timestamp(), attempts = 0
         WHERE q.sync_id = s.id;
    END IF;
    RETURN jsonb_build_object('rows', v_rows, 'changes', v_changes);
END
$qwen3_embed_state_sync_alter$;

-- The gate's operation queue_claim: the oldest due rows of a sync that no other worker holds
-- (locked until the caller's transaction ends), at most `batches` (up to 4) batches' worth.
-- Needs UPDATE on the table.
CREATE FUNCTION @extschema@.qwen3_embed_state_queue_claim(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_queue_claim$
DECLARE
    s      @extschema@.qwen3_embed_syncs;
    v_ids  bigint[];
    v_keys text[];
BEGIN
    s := @extschema@.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_run');
    SELECT array_agg(p.id ORDER BY p.id), array_agg(p.key ORDER BY p.id) INTO v_ids, v_keys
      FROM (SELECT q.id, q.key FROM @extschema@.qwen3_embed_queue q
             WHERE q.sync_id = s.id AND q.next_try_at <= clock_timestamp()
             ORDER BY q.id LIMIT s.batch_size * least((a->>'batches')::int, 4)
               FOR UPDATE SKIP LOCKED) p;
    RETURN jsonb_build_object('ids', to_jsonb(coalesce(v_ids, '{}')), 'keys', to_jsonb(coalesce(v_keys, '{}')));
END
$qwen3_embed_state_queue_claim$;

-- The gate's operation queue_done: a batch embedded: its queue rows (of this sync only) go, and
-- the sync's counters move. Needs UPDATE on the table.
CREATE FUNCTION @extschema@.qwen3_embed_state_queue_done(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_queue_done$
DECLARE
    s      @extschema@.qwen3_embed_syncs;
    v_rows int    := (a->>'rows')::int;
    v_secs float8 := (a->>'seconds')::float8;
BEGIN
    s := @extschema@.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_run');
    DELETE FROM @extschema@.qwen3_embed_queue q
     WHERE q.sync_id = s.id AND q.id = ANY (ARRAY(SELECT jsonb_array_elements_text(a->'ids'))::bigint[]);
    IF v_rows > 0 THEN
        UPDATE @extschema@.qwen3_embed_syncs x
           SET rows_done = x.rows_done + v_rows, last_done_at = clock_timestamp(),
               rate = CASE WHEN x.rate IS NULL THEN v_rows / greatest(v_secs, 1e-6)
                           ELSE 0.7 * x.rate + 0.3 * v_rows / greatest(v_secs, 1e-6) END
         WHERE x.id = s.id;
    END IF;
    IF s.replacing AND NOT EXISTS (SELECT 1 FROM @extschema@.qwen3_embed_queue q WHERE q.sync_id = s.id) THEN
        -- Every row queued by qwen3_embed_sync_alter has its new vector (or failed for good).
        UPDATE @extschema@.qwen3_embed_syncs x SET replacing = false WHERE x.id = s.id;
        PERFORM @extschema@.qwen3_embed_column_moving(coalesce(s.chunk_table, s.relation),
                CASE WHEN s.chunk_table IS NULL THEN s.target_column ELSE 'embedding' END, s.instruct, s.dims, true);
    END IF;
    RETURN NULL;
END
$qwen3_embed_state_queue_done$;

-- The gate's operation queue_failed: one queue row of this sync failed: try it again after
-- 2^attempts seconds, or after max_attempts move it to the error table. Needs UPDATE on the table.
CREATE FUNCTION @extschema@.qwen3_embed_state_queue_failed(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_queue_failed$
DECLARE
    s   @extschema@.qwen3_embed_syncs;
    q   @extschema@.qwen3_embed_queue;
BEGIN
    s := @extschema@.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_run');
    SELECT * INTO q FROM @extschema@.qwen3_embed_queue x WHERE x.id = (a->>'queue_id')::bigint AND x.sync_id = s.id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF q.attempts + 1 >= s.max_attempts THEN
        INSERT INTO @extschema@.qwen3_embed_sync_errors (sync_id, key, sqlstate, message, attempts)
        VALUES (s.id, q.key, a->>'sqlstate', a->>'message', q.attempts + 1);
        DELETE FROM @extschema@.qwen3_embed_queue x WHERE x.id = q.id;
    ELSE
        UPDATE @extschema@.qwen3_embed_queue x
           SET attempts = q.attempts + 1, last_error = (a->>'sqlstate') || ': ' || (a->>'message'),
               next_try_at = clock_timestamp() + interval '1 second' * power(2, q.attempts)
         WHERE x.id = q.id;
    END IF;
    RETURN NULL;
END
$qwen3_embed_state_queue_failed$;

-- The gate's operation sync_refuse: when the role that created the sync may no longer read its
-- source or write its target (qwen3_embed_sync_refusal), its due rows go to the error table
-- (42501) with the reason, instead of being embedded. Needs UPDATE on the table.
CREATE FUNCTION @extschema@.qwen3_embed_state_sync_refuse(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_refuse$
DECLARE
    s        @extschema@.qwen3_embed_syncs;
    v_reason text;
    v_n      bigint;
BEGIN
    s := @extschema@.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_run');
    v_reason := @extschema@.qwen3_embed_sync_refusal(s);
    IF v_reason IS NULL THEN
        RETURN jsonb_build_object('refused', 0);
    END IF;
    WITH moved AS (
        DELETE FROM @extschema@.qwen3_embed_queue q
         WHERE q.sync_id = s.id AND q.next_try_at <= clock_timestamp()
        RETURNING q.key, q.attempts
    )
    INSERT INTO @extschema@.qwen3_embed_sync_errors (sync_id, key, sqlstate, message, attempts)
    SELECT s.id, m.key, '42501', 'qwen3_embed sync: not embedded: ' || v_reason, m.attempts + 1 FROM moved m;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN jsonb_build_object('refused', v_n);
END
$qwen3_embed_state_sync_refuse$;

-- The gate's operation sync_failed: a round of the sync failed as a whole (not one row: its
-- table's code, a lock, the model): set it aside for 2^failures seconds, at most an hour, with
-- the error, while the other syncs go on. Needs UPDATE on the table.
CREATE FUNCTION @extschema@.qwen3_embed_state_sync_failed(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_failed$
DECLARE
    s @extschema@.qwen3_embed_syncs;
BEGIN
    s := @extschema@.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_run');
    UPDATE @extschema@.qwen3_embed_syncs x
       SET failures = x.failures + 1,
           paused_until = clock_timestamp() + interval '1 second' * least(power(2, least(x.failures, 12)), 3600),
           last_error = left((a->>'sqlstate') || ': ' || (a->>'message'), 1000)
     WHERE x.id = s.id;
    RETURN NULL;
END
$qwen3_embed_state_sync_failed$;

-- The gate's operation sync_succeeded: a round went through: the sync is no longer set aside.
CREATE FUNCTION @extschema@.qwen3_embed_state_sync_succeeded(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_succeeded$
DECLARE
    s @extschema@.qwen3_embed_syncs;
BEGIN
    s := @extschema@.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_run');
    UPDATE @extschema@.qwen3_embed_syncs x SET failures = 0, paused_until = NULL, last_error = NULL
     WHERE x.id = s.id AND x.failures > 0;
    RETURN NULL;
END
$qwen3_embed_state_sync_succeeded$;

REVOKE EXECUTE ON FUNCTION
    @extschema@.qwen3_embed_state_check(oid, regclass, boolean, text),
    @extschema@.qwen3_embed_state_sync(oid, int, boolean, text),
    @extschema@.qwen3_embed_state_sync_add(oid, jsonb),
    @extschema@.qwen3_embed_state_sync_remove(oid, jsonb),
    @extschema@.qwen3_embed_state_sync_retry(oid, jsonb),
    @extschema@.qwen3_embed_state_sync_alter(oid, jsonb),
    @extschema@.qwen3_embed_state_queue_claim(oid, jsonb),
    @extschema@.qwen3_embed_state_queue_done(oid, jsonb),
    @extschema@.qwen3_embed_state_queue_failed(oid, jsonb),
    @extschema@.qwen3_embed_state_sync_refuse(oid, jsonb),
    @extschema@.qwen3_embed_state_sync_failed(oid, jsonb),
    @extschema@.qwen3_embed_state_sync_succeeded(oid, jsonb),
    @extschema@.qwen3_embed_sync_wake()
FROM PUBLIC;

-- The syncs a qwen3_embed_sync_run call should visit (every one the caller can see, or one):
-- those with due rows and not set aside, with their table's owner, as whom they are drained,
-- and whether their creator may no longer have them drained.
CREATE FUNCTION @extschema@.qwen3_embed_sync_due(p_id int)
RETURNS TABLE (id int, owner oid, refused boolean, failures int)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.id, c.relowner, @extschema@.qwen3_embed_sync_refusal(s) IS NOT NULL, s.failures
      FROM @extschema@.qwen3_embed_syncs s JOIN pg_class c ON c.oid = s.relation
     WHERE ($1 IS NULL OR s.id = $1)
       AND (s.paused_until IS NULL OR s.paused_until <= clock_timestamp())
       AND EXISTS (SELECT 1 FROM @extschema@.qwen3_embed_queue q
                    WHERE q.sync_id = s.id AND q.next_try_at <= clock_timestamp())
     ORDER BY s.id
$$;

-- Keep target_column in step with source_column through the queue. Queues every existing row
-- (the backlog) and returns the sync's id.
CREATE FUNCTION @extschema@.qwen3_embed_sync(
    relation      regclass,
    source_column text,
    target_column text,
    instruct      text DEFAULT NULL,
    dims          int  DEFAULT NULL,
    batch_size    int  DEFAULT 64,
    max_attempts  int  DEFAULT 5)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync$
#variable_conflict use_variable
DECLARE
    r jsonb;
BEGIN
    r := @extschema@.qwen3_embed_state('sync_add', jsonb_build_object(
        'what', 'qwen3_embed_sync', 'relation', relation::oid, 'source_column', source_column,
        'target_column', target_column, 'instruct', instruct, 'dims', dims, 'batch_size', batch_size,
        'max_attempts', max_attempts, 'max_dims', (SELECT i.max_dims FROM @extschema@.qwen3_embed_info() i)));
    PERFORM @extschema@.qwen3_embed_column_model(relation, target_column, instruct, (r->>'dims')::int);
    RAISE NOTICE 'qwen3_embed_sync: %.% is kept in step with %; % rows queued', relation,
        quote_ident(target_column), quote_ident(source_column), r->>'rows';
    PERFORM @extschema@.qwen3_embed_sync_workers_here('qwen3_embed_sync');
    RETURN (r->>'id')::int;
END
$qwen3_embed_sync$;

-- Keep a chunk table in step with source_column: each row's text split into chunks of at most
-- chunk_tokens tokens overlapping by overlap tokens (qwen3_chunks), one row and one vector per
-- chunk in chunk_table (created here, in the table's schema and for the table's owner, with the
-- key, chunk_no, chunk and embedding; its rows go with their source row). Returns the sync's id.
CREATE FUNCTION @extschema@.qwen3_embed_sync_chunks(
    relation      regclass,
    source_column text,
    chunk_table   text,
    chunk_tokens  int  DEFAULT 512,
    overlap       int  DEFAULT 64,
    instruct      text DEFAULT NULL,
    dims          int  DEFAULT NULL,
    batch_size    int  DEFAULT 8,
    max_attempts  int  DEFAULT 5)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_chunks$
#variable_conflict use_variable
DECLARE
    v_rel      regclass := relation;
    v_dims     int      := dims;
    v_max      int;
    v_key      name;
    v_key_type text;
    v_vector   text;
    v_schema   name;
    v_owner    regrole;
    v_table    regclass;
    r          jsonb;
BEGIN
    IF v_rel IS NULL OR source_column IS NULL OR chunk_table IS NULL THEN
        RAISE EXCEPTION 'qwen3_embed_sync_chunks: relation, source_column and chunk_table must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT i.max_dims INTO v_max FROM @extschema@.qwen3_embed_info() i;
    v_dims := coalesce(v_dims, v_max);
    IF v_dims NOT BETWEEN 32 AND v_max THEN
        RAISE EXCEPTION 'qwen3_embed_sync_chunks: dims must be between 32 and the model''s size (%), got %', v_max, v_dims
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT x.attname, format_type(x.atttypid, x.atttypmod) INTO v_key, v_key_type
      FROM pg_index i JOIN pg_attribute x ON x.attrelid = i.indrelid AND x.attnum = i.indkey[0]
     WHERE i.indrelid = v_rel AND i.indisprimary AND i.indnkeyatts = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_sync_chunks: % needs a single-column primary key', v_rel
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT format_type(t.oid, NULL) INTO v_vector FROM pg_type t
      JOIN pg_extension e ON e.extname = 'vector' AND e.extnamespace = t.typnamespace
     WHERE t.typname = 'vector';
    SELECT n.nspname, c.relowner INTO v_schema, v_owner
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = v_rel;
    IF NOT pg_has_role(current_user, v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'qwen3_embed_sync_chunks: must be the owner of table % (or a member of its owning role %)', v_rel, v_owner
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    EXECUTE format('CREATE TABLE %I.%I (%I %s NOT NULL REFERENCES %s ON DELETE CASCADE, chunk_no int NOT NULL, '
                   'chunk text NOT NULL, embedding %s(%s), PRIMARY KEY (%I, chunk_no))',
                   v_schema, chunk_table, v_key, v_key_type, v_rel, v_vector, v_dims, v_key);
    v_table := format('%I.%I', v_schema, chunk_table)::regclass;
    EXECUTE format('ALTER TABLE %s OWNER TO %s', v_table, v_owner);
    r := @extschema@.qwen3_embed_state('sync_add', jsonb_build_object(
        'what', 'qwen3_embed_sync_chunks', 'relation', v_rel::oid, 'source_column', source_column,
        'target_column', chunk_table, 'instruct', instruct, 'dims', v_dims, 'batch_size', batch_size,
        'max_attempts', max_attempts, 'chunk_table', v_table::oid, 'chunk_tokens', chunk_tokens,
        'chunk_overlap', overlap, 'max_dims', v_max));
    PERFORM @extschema@.qwen3_embed_column_model(v_table, 'embedding', instruct, v_dims);
    RAISE NOTICE 'qwen3_embed_sync_chunks: % keeps chunks of %.% of % tokens (overlap %); % rows queued',
        v_table, v_rel, quote_ident(source_column), chunk_tokens, overlap, r->>'rows';
    PERFORM @extschema@.qwen3_embed_sync_workers_here('qwen3_embed_sync_chunks');
    RETURN (r->>'id')::int;
END
$qwen3_embed_sync_chunks$;

-- The id of the sync of relation.target_column, or undefined_object in p_what's words.
CREATE FUNCTION @extschema@.qwen3_embed_sync_id(p_rel regclass, p_target text, p_what text)
RETURNS int
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_id$
DECLARE
    v_id int;
BEGIN
    SELECT s.id INTO v_id FROM @extschema@.qwen3_embed_syncs s
     WHERE s.relation = p_rel AND s.target_column = p_target;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: %.% is not kept in step', p_what, p_rel, quote_ident(p_target)
            USING ERRCODE = 'undefined_object';
    END IF;
    RETURN v_id;
END
$qwen3_embed_sync_id$;

-- Stop keeping a column in step: drops the triggers, the queue and the errors of that sync.
CREATE FUNCTION @extschema@.qwen3_embed_unsync(relation regclass, target_column text)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (@extschema@.qwen3_embed_state('sync_remove', jsonb_build_object('id',
               @extschema@.qwen3_embed_sync_id($1, $2, 'qwen3_embed_unsync')))->>'pending')::bigint
$$;

-- Embeds one batch of queued rows of one sync; returns how many rows it embedded. Runs as the
-- table's owner (qwen3_embed_sync_drain); keys are parameters of the key's own type. Its path is
-- pinned like every routine here, so no other role's object in public can stand in for a
-- built-in while the owner's identity is in use; the owner's triggers fire under that path too
-- (as in PostgreSQL's own maintenance commands and logical replication): they must qualify
-- their names or pin their own search_path.
CREATE FUNCTION @extschema@.qwen3_embed_sync_batch(s @extschema@.qwen3_embed_syncs, p_ids bigint[], p_keys text[])
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_batch$
DECLARE
    v_n  int;
    v_fp text;
BEGIN
    IF s.chunk_table IS NOT NULL THEN
        -- Lock the source rows, replace their chunks, embed the new chunks in one call.
        EXECUTE format('SELECT count(*)::int FROM (SELECT 1 FROM %s t WHERE t.%I = ANY ($1::%s[]) FOR UPDATE OF t) x',
                       s.relation, s.key_column, s.key_type)
           INTO v_n USING p_keys;
        EXECUTE format('DELETE FROM %s c WHERE c.%I = ANY ($1::%s[])', s.chunk_table, s.key_column, s.key_type)
          USING p_keys;
        EXECUTE format('INSERT INTO %1$s (%2$I, chunk_no, chunk) '
                       'SELECT t.%2$I, x.chunk_no, x.chunk FROM %3$s t, @extschema@.qwen3_chunks(t.%4$I::text, $2, $3) x '
                       'WHERE t.%2$I = ANY ($1::%5$s[]) AND t.%4$I IS NOT NULL',
                       s.chunk_table, s.key_column, s.relation, s.source_column, s.key_type)
          USING p_keys, s.chunk_tokens, s.chunk_overlap;
        v_fp := @extschema@.qwen3_embed_column_model(s.chunk_table, 'embedding', s.instruct, s.dims);
        EXECUTE format($sql$
            WITH numbered AS MATERIALIZED (
                SELECT c.%1$I AS k, c.chunk_no, c.chunk, (row_number() OVER (ORDER BY c.%1$I, c.chunk_no))::int AS ord
                  FROM %2$s c WHERE c.%1$I = ANY ($1::%3$s[])
            ), embedded AS MATERIALIZED (
                SELECT e.ord, e.embedding
                  FROM @extschema@.qwen3_embed_batch_for_column(ARRAY(SELECT n.chunk FROM numbered n ORDER BY n.ord), $2, $3, $4) AS e
            )
            UPDATE %2$s AS c SET embedding = e.embedding
              FROM numbered n JOIN embedded e ON e.ord = n.ord
             WHERE c.%1$I = n.k AND c.chunk_no = n.chunk_no
            $sql$, s.key_column, s.chunk_table, s.key_type)
          USING p_keys, s.instruct, s.dims, v_fp;
        RETURN v_n;
    END IF;
    EXECUTE format($sql$
        WITH rows AS MATERIALIZED (
            SELECT t.%1$I AS k, t.%2$I::text AS body
              FROM %3$s t
             WHERE t.%1$I = ANY ($1::%5$s[]) AND t.%2$I IS NOT NULL
             ORDER BY t.%1$I
               FOR UPDATE OF t
        ), numbered AS MATERIALIZED (
            SELECT r.k, r.body, (row_number() OVER (ORDER BY r.k))::int AS ord FROM rows r
        ), embedded AS MATERIALIZED (
            SELECT e.ord, e.embedding
              FROM @extschema@.qwen3_embed_batch_for_column(ARRAY(SELECT n.body FROM numbered n ORDER BY n.ord), $2, $3, $4) AS e
        ), updated AS (
            UPDATE %3$s AS t SET %4$I = e.embedding
              FROM numbered n JOIN embedded e ON e.ord = n.ord
             WHERE t.%1$I = n.k
            RETURNING 1
        )
        SELECT count(*)::int FROM updated
        $sql$, s.key_column, s.source_column, s.relation, s.target_column, s.key_type)
       INTO v_n USING p_keys, s.instruct, s.dims,
                      @extschema@.qwen3_embed_column_model(s.relation, s.target_column, s.instruct, s.dims);
    RETURN v_n;
END
$qwen3_embed_sync_batch$;

-- One sync's share of a round (qwen3_embed_sync_run, src/sync/drain.rs, calls it as the table's
-- owner): up to p_batches batches of due rows, embedded in one qwen3_embed_sync_batch call (one
-- model call: fewer, fuller forward passes than batch_size rows at a time). A failing call is
-- retried row by row, so one bad row does not hold back the others. Returns the rows embedded
-- and the batches taken.
CREATE FUNCTION @extschema@.qwen3_embed_sync_drain(p_id int, p_batches int, OUT embedded int, OUT batches int)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_drain$
DECLARE
    s       @extschema@.qwen3_embed_syncs;
    c       jsonb;
    v_ids   bigint[];
    v_keys  text[];
    v_start timestamptz := clock_timestamp();
    v_state text;
    v_msg   text;
    v_n     int;
    i       int;
BEGIN
    embedded := 0;
    batches := 0;
    c := @extschema@.qwen3_embed_state('queue_claim', jsonb_build_object('id', p_id, 'batches', p_batches));
    -- The gate checked that this role may UPDATE the table: row security now shows it the sync.
    SELECT * INTO STRICT s FROM @extschema@.qwen3_embed_syncs x WHERE x.id = p_id;
    v_ids := ARRAY(SELECT jsonb_array_elements_text(c->'ids'))::bigint[];
    v_keys := ARRAY(SELECT jsonb_array_elements_text(c->'keys'));
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    batches := (cardinality(v_ids) + s.batch_size - 1) / s.batch_size;
    BEGIN
        embedded := @extschema@.qwen3_embed_sync_batch(s, v_ids, ARRAY(SELECT DISTINCT k FROM unnest(v_keys) k));
        PERFORM @extschema@.qwen3_embed_state('queue_done', jsonb_build_object(
            'id', p_id, 'ids', to_jsonb(v_ids), 'rows', embedded,
            'seconds', extract(epoch FROM clock_timestamp() - v_start)));
    EXCEPTION
        WHEN query_canceled THEN RAISE;
        WHEN OTHERS THEN
            FOR i IN 1 .. cardinality(v_ids) LOOP
                BEGIN
                    v_start := clock_timestamp();
                    v_n := @extschema@.qwen3_embed_sync_batch(s, ARRAY[v_ids[i]], ARRAY[v_keys[i]]);
                    embedded := embedded + v_n;
                    PERFORM @extschema@.qwen3_embed_state('queue_done', jsonb_build_object(
                        'id', p_id, 'ids', jsonb_build_array(v_ids[i]), 'rows', v_n,
                        'seconds', extract(epoch FROM clock_timestamp() - v_start)));
                EXCEPTION
                    WHEN query_canceled THEN RAISE;
                    WHEN OTHERS THEN
                        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                        PERFORM @extschema@.qwen3_embed_state('queue_failed', jsonb_build_object(
                            'id', p_id, 'queue_id', v_ids[i], 'sqlstate', v_state, 'message', v_msg));
                END;
            END LOOP;
    END;
END
$qwen3_embed_sync_drain$;

-- Puts a sync's failed rows back in the queue (after fixing what made them fail), and takes the
-- sync out of its back-off.
CREATE FUNCTION @extschema@.qwen3_embed_sync_retry(relation regclass, target_column text)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (@extschema@.qwen3_embed_state('sync_retry', jsonb_build_object('id',
               @extschema@.qwen3_embed_sync_id($1, $2, 'qwen3_embed_sync_retry')))->>'requeued')::bigint
$$;

-- Change a sync in place: its batch size and attempts, or its instruction and size (NULL leaves
-- each as it is; default_instruct => true goes back to the default instruction). A change of
-- the vectors queues every row again and keeps the old vectors until each row is replaced
-- (qwen3_embed_sync_status: pending, replacing). Returns the rows queued.
CREATE FUNCTION @extschema@.qwen3_embed_sync_alter(
    relation         regclass,
    target_column    text,
    batch_size       int     DEFAULT NULL,
    max_attempts     int     DEFAULT NULL,
    instruct         text    DEFAULT NULL,
    dims             int     DEFAULT NULL,
    default_instruct boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_alter$
#variable_conflict use_variable
DECLARE
    r jsonb;
BEGIN
    r := @extschema@.qwen3_embed_state('sync_alter', jsonb_build_object(
        'id', @extschema@.qwen3_embed_sync_id(relation, target_column, 'qwen3_embed_sync_alter'),
        'batch_size', batch_size, 'max_attempts', max_attempts, 'instruct', instruct, 'dims', dims,
        'default_instruct', coalesce(default_instruct, false),
        'max_dims', (SELECT i.max_dims FROM @extschema@.qwen3_embed_info() i)));
    IF (r->>'changes')::boolean THEN
        RAISE NOTICE 'qwen3_embed_sync_alter: %.% gets other vectors; % rows queued, each keeps its old vector until it is replaced',
            relation, quote_ident(target_column), r->>'rows';
        PERFORM @extschema@.qwen3_embed_sync_workers_here('qwen3_embed_sync_alter');
    END IF;
    RETURN (r->>'rows')::bigint;
END
$qwen3_embed_sync_alter$;

CREATE FUNCTION @extschema@.qwen3_embed_sync_counts(p_id int,
    OUT pending bigint, OUT waiting_retry bigint, OUT failed bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (SELECT count(*) FROM @extschema@.qwen3_embed_queue q WHERE q.sync_id = $1 AND q.attempts = 0),
           (SELECT count(*) FROM @extschema@.qwen3_embed_queue q WHERE q.sync_id = $1 AND q.attempts > 0),
           (SELECT count(*) FROM @extschema@.qwen3_embed_sync_errors e WHERE e.sync_id = $1)
$$;

CREATE FUNCTION @extschema@.qwen3_embed_sync_eta(p_pending bigint, p_rate float8)
RETURNS interval
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN $1 = 0 THEN interval '0' WHEN $2 > 0 THEN make_interval(secs => $1 / $2) END
$$;

-- Each sync: pending, waiting for a retry, failed and done rows, the recent rate, the time the
-- pending rows should take at that rate, when it last embedded, and whether it is set aside
-- after failed rounds (until when, and why), and what drains this database's queue.
CREATE VIEW @extschema@.qwen3_embed_sync_status WITH (security_invoker = true) AS
SELECT s.id, s.relation, s.source_column, s.target_column, s.dims, s.instruct,
       c.pending, c.waiting_retry, c.failed, s.rows_done AS done,
       s.rate AS rows_per_second, @extschema@.qwen3_embed_sync_eta(c.pending, s.rate) AS time_left,
       s.last_done_at, s.created_at, s.created_by, s.paused_until, s.last_error,
       @extschema@.qwen3_embed_sync_worker() AS worker, s.replacing
  FROM @extschema@.qwen3_embed_syncs s,
       LATERAL @extschema@.qwen3_embed_sync_counts(s.id) c;
GRANT SELECT ON @extschema@.qwen3_embed_sync_status TO PUBLIC;

-- Adopting embeddings made elsewhere, all new (sql/adopt.sql).
-- Adopting embeddings made elsewhere (llama.cpp, another server, the engine CLI): a column the
-- extension did not fill is registered as if it had, once a sample of its rows, embedded again
-- with the loaded model, agrees with what is stored. Vectors of another model or another
-- instruction disagree and are refused, with the measured agreement.
--
--   SELECT * FROM qwen3_embed_adopt('docs', 'body', 'embedding');

CREATE FUNCTION @extschema@.qwen3_embed_adopt(
    relation      regclass,
    source_column text,
    target_column text,
    instruct      text    DEFAULT NULL,
    dims          int     DEFAULT NULL,
    sample        int     DEFAULT 32,
    min_cosine    float8  DEFAULT 0.98,
    sync          boolean DEFAULT true)
RETURNS TABLE (sampled int, lowest_cosine float8, mean_cosine float8, sync_id int, queued bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_adopt$
#variable_conflict use_variable
DECLARE
    v_what  text := 'qwen3_embed_adopt';
    v_owner oid;
    v_type  oid;
    v_mod   int;
    v_texts text[];
    v_saved text[];
    v_max   int;
    v_bad   int;
    r       jsonb;
BEGIN
    IF relation IS NULL OR source_column IS NULL OR target_column IS NULL THEN
        RAISE EXCEPTION '%: relation, source_column and target_column must not be NULL', v_what
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF sample IS NULL OR sample NOT BETWEEN 1 AND 10000 OR min_cosine IS NULL OR min_cosine NOT BETWEEN -1 AND 1 THEN
        RAISE EXCEPTION '%: sample must be between 1 and 10000 and min_cosine between -1 and 1, got % and %',
                v_what, coalesce(sample::text, 'NULL'), coalesce(min_cosine::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.relowner INTO v_owner FROM pg_class c WHERE c.oid = relation;
    IF NOT pg_has_role(current_user, v_owner, 'USAGE') THEN
        RAISE EXCEPTION '%: must be the owner of table % (or a member of its owning role %)', v_what, relation, v_owner::regrole
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT x.atttypid, x.atttypmod INTO v_type, v_mod FROM pg_attribute x
     WHERE x.attrelid = relation AND x.attname = target_column AND x.attnum > 0 AND NOT x.attisdropped;
    IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = relation AND x.attname = source_column
                                   AND x.attnum > 0 AND NOT x.attisdropped) THEN
        RAISE EXCEPTION '%: % has no column "%"', v_what, relation,
                CASE WHEN v_type IS NULL THEN target_column ELSE source_column END
            USING ERRCODE = 'undefined_column';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_extension e ON e.extname = 'vector' AND e.extnamespace = t.typnamespace
                    WHERE t.oid = v_type AND t.typname IN ('vector', 'halfvec')) THEN
        RAISE EXCEPTION '%: column "%" of % is %, not vector or halfvec', v_what, target_column, relation, format_type(v_type, v_mod)
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    SELECT i.max_dims INTO v_max FROM @extschema@.qwen3_embed_info() i;
    dims := coalesce(dims, nullif(v_mod, -1));
    IF dims IS NOT NULL AND (dims NOT BETWEEN 32 AND v_max OR (v_mod > 0 AND dims <> v_mod)) THEN
        RAISE EXCEPTION '%: dims % does not fit column "%" of % (%) or the model (32 to %)',
                v_what, dims, target_column, relation, format_type(v_type, v_mod), v_max
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    -- The sample: rows with both a text and a vector, at random.
    EXECUTE format('SELECT array_agg(s.src ORDER BY s.n), array_agg(s.dst ORDER BY s.n) FROM ('
                   'SELECT t.%1$I::text AS src, t.%2$I::text AS dst, row_number() OVER () AS n FROM %3$s t '
                   'WHERE t.%1$I IS NOT NULL AND t.%2$I IS NOT NULL ORDER BY random() LIMIT $1) s',
                   source_column, target_column, relation)
       INTO v_texts, v_saved USING sample;
    IF v_texts IS NULL THEN
        RAISE EXCEPTION '%: no row of % has both % and %: there is nothing to compare', v_what, relation,
                quote_ident(source_column), quote_ident(target_column)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'qwen3_embed_sync fills an empty column.';
    END IF;
    -- Embedded again (once), and compared as float8 arrays (no pgvector operator is needed).
    WITH pairs AS MATERIALIZED (
        SELECT translate(s.v, '[]', '{}')::float8[] AS a, translate(e.embedding::text, '[]', '{}')::float8[] AS b
          FROM unnest(v_saved) WITH ORDINALITY AS s(v, ord)
          JOIN @extschema@.qwen3_embed_batch(v_texts, instruct, dims) e ON e.ord = s.ord
    ), compared AS (
        SELECT cardinality(p.a) = cardinality(p.b) AS same,
               (SELECT sum(x * y) / nullif(sqrt(sum(x * x) * sum(y * y)), 0) FROM unnest(p.a, p.b) u(x, y)) AS c
          FROM pairs p
    )
    SELECT count(*) FILTER (WHERE NOT x.same)::int, count(*)::int,
           min(x.c) FILTER (WHERE x.same), avg(x.c) FILTER (WHERE x.same)
      INTO v_bad, sampled, lowest_cosine, mean_cosine
      FROM compared x;
    IF v_bad > 0 THEN
        RAISE EXCEPTION '%: % of % sampled vectors of %.% have another size than the model makes with dims %',
                v_what, v_bad, sampled, relation, quote_ident(target_column), coalesce(dims::text, 'NULL')
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'Pass the dims the vectors were made with.';
    END IF;
    IF lowest_cosine IS NULL OR lowest_cosine < min_cosine THEN
        RAISE EXCEPTION '%: %.% does not hold the loaded model''s vectors for instruct %: % sampled rows agree at cosine % (lowest) and % (mean), below %',
                v_what, relation, quote_ident(target_column), coalesce(quote_literal(instruct), 'NULL'), sampled,
                round(lowest_cosine::numeric, 4), round(mean_cosine::numeric, 4), min_cosine
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Vectors of another model, quantization or instruction cannot share a column with this model''s: pass the instruct and dims they were made with, or re-embed the column (CALL qwen3_embed_reembed).';
    END IF;
    PERFORM @extschema@.qwen3_embed_column_model(relation, target_column, instruct, dims);
    queued := 0;
    IF sync THEN
        r := @extschema@.qwen3_embed_state('sync_add', jsonb_build_object(
            'what', v_what, 'relation', relation::oid, 'source_column', source_column,
            'target_column', target_column, 'instruct', instruct, 'dims', dims, 'batch_size', 64,
            'max_attempts', 5, 'max_dims', v_max, 'only_missing', true));
        sync_id := (r->>'id')::int;
        queued := (r->>'rows')::bigint;
        RAISE NOTICE '%: %.% is adopted and kept in step with %; % rows without a vector queued', v_what,
            relation, quote_ident(target_column), quote_ident(source_column), queued;
        PERFORM @extschema@.qwen3_embed_sync_workers_here(v_what);
    ELSE
        RAISE NOTICE '%: %.% is adopted', v_what, relation, quote_ident(target_column);
    END IF;
    RETURN NEXT;
END
$qwen3_embed_adopt$;

-- The state tables for pg_dump (sql/dump.sql).
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_columns', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_syncs', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_syncs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_queue', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_queue_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_sync_errors', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_sync_errors_id_seq', '');

-- The packed-weight cache's files (src/cache_api.rs), for superusers and pg_read_server_files.
CREATE FUNCTION @extschema@."qwen3_embed_cache_files"() RETURNS TABLE (
	"file" TEXT,
	"bytes" bigint,
	"in_use" bool,
	"last_used" timestamp with time zone,
	"modified" timestamp with time zone,
	"model" TEXT,
	"kernels" TEXT,
	"layout" INT,
	"partial" bool
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_cache_files_wrapper';
REVOKE EXECUTE ON FUNCTION @extschema@.qwen3_embed_cache_files() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.qwen3_embed_cache_files() TO pg_read_server_files;

-- Comments (sql/comments.sql).

COMMENT ON FUNCTION @extschema@.qwen3_embed(text, text, integer) IS
'The embedding of input as a pgvector vector, unit length. With instruct the model sees "Instruct: {instruct}\nQuery:{input}" (use it for queries); dims keeps the first dims dimensions (MRL, 32 to the model''s size, default the full size). NULL input gives NULL.';

COMMENT ON FUNCTION @extschema@.qwen3_embed_query(text, text, integer) IS
'The embedding of a search query, with the upstream default retrieval task as its instruction unless task says otherwise; compare it with qwen3_embed_document vectors.';

COMMENT ON FUNCTION @extschema@.qwen3_embed_document(text, integer) IS
'The embedding of a document (no instruction, as upstream), to store and search with qwen3_embed_query.';

COMMENT ON FUNCTION @extschema@.qwen3_embed_batch(text[], text, integer) IS
'Embeds every element of inputs in as few forward passes as qwen3_embed.batch_tokens allows: one row per element, in order (ord from 1), NULL elements giving NULL embeddings; equal to one-by-one qwen3_embed calls.';

COMMENT ON FUNCTION @extschema@.qwen3_token_count(text, text) IS
'How many tokens the model sees for input (with instruct), the appended end-of-text token included, before any truncation to qwen3_embed.max_tokens.';

COMMENT ON FUNCTION @extschema@.qwen3_tokenize(text, text) IS
'The token ids the model sees for input (with instruct), end-of-text (151643) last, before any truncation.';

COMMENT ON FUNCTION @extschema@.qwen3_embed_info() IS
'The loaded model (loading it if needed): file, format, architecture, size, tensor types, dimensions, vocabulary, device, threads, fingerprint, load time, where it runs (backend or server), why that device was chosen, the compute backend (kernels or candle), the packed-weight cache, and the build profile of the library (release, or debug: several times slower; reinstall with cargo pgrx install --release).';

COMMENT ON FUNCTION @extschema@.qwen3_embed_server_stats() IS
'The model server (when qwen3_embed is in shared_preload_libraries): state (off, unavailable, running), process id, restarts, model and load time, requests, withdrawn requests, inputs, tokens, forward-pass groups (batches), mean requests per batch, queue depth, tokens per second of compute, last error (superusers only), models loaded, the model being loaded now, and the estimated tokens in flight with their limit (qwen3_embed.server_max_tokens).';
COMMENT ON FUNCTION @extschema@.qwen3_embed_default_task() IS
'The upstream default retrieval task that qwen3_embed_query uses as its instruction.';

COMMENT ON FUNCTION @extschema@.qwen3_embed_trigger() IS
'Trigger function: BEFORE INSERT OR UPDATE ... FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger(''source_column'', ''target_column'' [, ''instruct'' [, ''dims'']]) embeds the source text into the target column on INSERT, and on UPDATE only when the source changed. Without dims, a vector(n) or halfvec(n) target gets n dimensions.';

COMMENT ON PROCEDURE @extschema@.qwen3_embed_reembed(regclass, text, text, text, integer, integer, boolean) IS
'Re-embeds source_column into target_column for every row, in primary-key order, batch_size rows per qwen3_embed_batch call, committing after each batch; CALLed again after an interruption it resumes after the last committed batch (restart => true starts over). CALL it outside a transaction block; progress is in qwen3_embed_progress.';

COMMENT ON PROCEDURE @extschema@.qwen3_embed_migrate_dims(regclass, text, text, integer, text, integer) IS
'Moves target_column to new_dims dimensions: fills a new column with resumable batches (kept current by a temporary trigger), then drops the old column and renames the new one in one transaction. Indexes on the old column go with it and must be recreated. CALL it outside a transaction block; CALL it again to resume.';

COMMENT ON TABLE @extschema@.qwen3_embed_jobs IS
'One row per re-embedding job (table and target column) of qwen3_embed_reembed and qwen3_embed_migrate_dims: settings, last committed key, rows done and total, state (running, interrupted, failed, done), last error, times, kind (reembed, or migrate for a migration''s new column) and the session running it. qwen3_embed_abandon forgets a job (and drops a migration''s leftovers).';

COMMENT ON VIEW @extschema@.qwen3_embed_progress IS
'Progress of re-embedding jobs: state (a running job whose session is gone shows as interrupted), rows done of total, percent, last error and elapsed time.';

COMMENT ON FUNCTION @extschema@.qwen3_embed_abandon(regclass, text) IS
'Forgets the job on relation.target_column. For a migration (named by its new column, or by the column being migrated) it also drops the migration''s new column and its sync trigger, so nothing keeps embedding for a migration that will not be finished. Refused while another session runs the job.';

COMMENT ON FUNCTION @extschema@.qwen3_embed_job_state(text, integer, timestamp with time zone) IS
'Internal: a job''s state as qwen3_embed_progress shows it.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_job_percent(text, bigint, bigint) IS
'Internal: a job''s percent done as qwen3_embed_progress shows it.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_job_claim(regclass, name) IS
'Internal: records this session as the one running a job.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_job_start(regclass, name, name, text, integer, integer, boolean) IS
'Internal (qwen3_embed_reembed): checks the arguments and starts, restarts or resumes a job.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_job_step(regclass, name) IS
'Internal (qwen3_embed_reembed): embeds and writes the next batch of a job, recording an error or a cancel in the job.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_migrate_prepare(regclass, name, name, integer, text, integer) IS
'Internal (qwen3_embed_migrate_dims): checks, then creates or finds the new column, its sync trigger and its job.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_migrate_swap(regclass, name, name, integer, text, integer) IS
'Internal (qwen3_embed_migrate_dims): embeds rows the walk missed and swaps the new column in.';

COMMENT ON TABLE @extschema@.qwen3_embed_syncs IS
'One row per column kept in step with its source text through the embedding queue (qwen3_embed_sync): settings, key column and type, batch size, attempts before a row fails, rows embedded, the role that created it, and its back-off after failed rounds. Written only through the extension''s functions; each role reads the syncs of tables it may UPDATE.';
COMMENT ON TABLE @extschema@.qwen3_embed_queue IS
'Rows waiting to be embedded by the sync workers (or qwen3_embed_sync_run): sync, key, attempts so far, when next tried, last error. Written by the tables'' triggers in the writers'' transactions, and otherwise only through the extension''s functions; each role reads the rows of tables it may UPDATE.';
COMMENT ON TABLE @extschema@.qwen3_embed_sync_errors IS
'Rows that failed max_attempts times: sync, key, SQLSTATE, message, attempts, time. qwen3_embed_sync_retry puts them back in the queue.';
COMMENT ON VIEW @extschema@.qwen3_embed_sync_status IS
'Each sync: pending rows, rows waiting for a retry, failed rows, rows embedded, the recent rate in rows per second, the time the pending rows should take at that rate, when it last embedded, what drains this database''s queue now (worker), and whether rows queued by qwen3_embed_sync_alter are being replaced (replacing).';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_eta(bigint, double precision) IS
'Internal (qwen3_embed_sync_status): pending rows over the recent rate, as an interval.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync(regclass, text, text, text, integer, integer, integer) IS
'Keeps target_column in step with source_column through the embedding queue: installs statement-level triggers that queue written rows (the write embeds nothing), queues every existing row, and returns the sync''s id. The sync workers (or qwen3_embed_sync_run) embed the queue.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_unsync(regclass, text) IS
'Stops keeping a column in step: drops its triggers, queue rows and errors; returns how many rows were still queued.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_run(integer, integer) IS
'Embeds up to max_batches batches of queued rows (of every sync the caller may UPDATE the table of, or of sync_id) and returns the rows embedded; what the sync workers call. Each sync is drained as its table''s owner, in a security-restricted operation; a sync whose round fails is set aside with back-off (paused_until, last_error in qwen3_embed_sync_status).';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_workers_here(text) IS
'Internal (qwen3_embed_sync, qwen3_embed_sync_chunks): the sync workers that may drain this database (qwen3_embed.sync_workers, shared by every database, when preloaded with the model server and qwen3_embed.sync_database is empty or names this one; else 0); warns, naming what, when none may.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_worker() IS
'What drains this database''s sync queue now, in words: a worker''s pid and rows embedded, one starting or waiting for a free worker, none while the queue is empty, or why none can (qwen3_embed_sync_status.worker).';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_wake() IS
'Internal (the queue''s triggers): asks for a sync worker in this database when the transaction commits.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_adopt(regclass, text, text, text, integer, integer, double precision, boolean) IS
'Registers a column filled elsewhere (llama.cpp, another server, the engine CLI) as if the extension had filled it: a random sample of up to sample rows is embedded again with the loaded model, instruct and dims, and every one must agree with the stored vector at cosine >= min_cosine (0.98), else 55000 with the measured agreement. With sync (the default) the column is then kept in step, and only its rows without a vector are queued. Members of the table''s owning role only.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_alter(regclass, text, integer, integer, text, integer, boolean) IS
'Changes a sync in place: batch_size, max_attempts, instruct, dims (NULL leaves each; default_instruct => true goes back to the default instruction). A new instruction or size queues every row again; each keeps its old vector until it is replaced, and the column registry moves to the new settings when the queue is empty. Returns the rows queued.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_retry(regclass, text) IS
'Puts the failed rows of a sync back in the queue and makes every queued row due now; returns how many came back.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_enqueue() IS
'Internal: the statement-level trigger function that queues written rows for a sync.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_batch(@extschema@.qwen3_embed_syncs, bigint[], text[]) IS
'Internal (qwen3_embed_sync_drain): embeds one batch of queued rows, as the table''s owner.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_counts(integer) IS
'Internal (qwen3_embed_sync_status): pending, waiting and failed rows of a sync.';

COMMENT ON TABLE @extschema@.qwen3_embed_columns IS
'One row per embedding column the extension fills (trigger, sync queue, re-embedding): the fingerprint of the model that made its vectors (next_fingerprint while a re-embedding moves it to another), its instruction and size. Writes with another model are refused.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_check() IS
'Registered embedding columns, their model''s fingerprint, the one a re-embedding moves them to, the loaded model''s, and whether they match: a column that does not match refuses writes until it is re-embedded.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_batch_for_column(text[], text, integer, text) IS
'qwen3_embed_batch for a column whose vectors came from the model with fingerprint: any other loaded model is an error (55000). What the trigger, the sync queue and the re-embedding call.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_column_model(regclass, name, text, integer) IS
'Internal: the fingerprint a write into a column must be made with, registering the column with the loaded model at its first write.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_column_moving(regclass, name, text, integer, boolean) IS
'Internal: a re-embedding of a column to the loaded model starts, or ends (the registry then holds the new model).';
COMMENT ON SEQUENCE @extschema@.qwen3_embed_syncs_id_seq IS 'Ids of qwen3_embed_syncs.';
COMMENT ON SEQUENCE @extschema@.qwen3_embed_queue_id_seq IS 'Ids of qwen3_embed_queue.';
COMMENT ON SEQUENCE @extschema@.qwen3_embed_sync_errors_id_seq IS 'Ids of qwen3_embed_sync_errors.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_chunks(regclass, text, text, integer, integer, text, integer, integer, integer) IS
'Keeps a chunk table in step with source_column through the embedding queue: each row''s text split into chunks of at most chunk_tokens tokens overlapping by overlap (qwen3_chunks), one row and one vector per chunk in chunk_table, which it creates (key, chunk_no, chunk, embedding; rows go with their source row). Returns the sync''s id.';
COMMENT ON FUNCTION @extschema@.qwen3_chunks(text, integer, integer) IS
'input split into chunks of at most chunk_tokens tokens as the model sees them (the end-of-text token included), consecutive chunks sharing overlap tokens; chunk_no from 1; no chunk for an empty input.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state(text, jsonb) IS
'Internal: the one way the sync state tables are changed. Runs the qwen3_embed_state_<op> function as the extension''s owner for the calling role, which it checks first.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state_check(oid, regclass, boolean, text) IS
'Internal (qwen3_embed_state): raises 42501 unless the role may UPDATE the table (or, for creating and removing syncs, is a member of its owning role).';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state_sync(oid, integer, boolean, text) IS
'Internal (qwen3_embed_state): a sync, after qwen3_embed_state_check for the role.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state_sync_add(oid, jsonb) IS
'Internal (qwen3_embed_state): validates and records a new sync, creates its triggers and queues its backlog.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state_sync_remove(oid, jsonb) IS
'Internal (qwen3_embed_state): drops a sync''s triggers, queue and errors.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state_sync_alter(oid, jsonb) IS
'Internal (qwen3_embed_state): changes a sync''s settings; a change of its vectors queues its rows again and starts the column registry''s move. Members of the table''s owning role only.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state_sync_retry(oid, jsonb) IS
'Internal (qwen3_embed_state): puts a sync''s failed rows back in the queue and ends its back-off.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state_sync_refuse(oid, jsonb) IS
'Internal (qwen3_embed_state): moves a sync''s due rows to the error table when the role that created it may no longer read its source or write its target.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state_sync_failed(oid, jsonb) IS
'Internal (qwen3_embed_state): sets a sync whose round failed aside for 2^failures seconds (at most an hour), with the error.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state_sync_succeeded(oid, jsonb) IS
'Internal (qwen3_embed_state): ends a sync''s back-off after a round that went through.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state_queue_claim(oid, jsonb) IS
'Internal (qwen3_embed_state): locks and returns the oldest due queue rows of a sync that no other worker holds.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state_queue_done(oid, jsonb) IS
'Internal (qwen3_embed_state): deletes an embedded batch''s queue rows and moves the sync''s counters.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_state_queue_failed(oid, jsonb) IS
'Internal (qwen3_embed_state): schedules a failed queue row''s next try, or moves it to the error table after max_attempts.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_clear() IS
'Internal: BEFORE UPDATE row trigger of a sync that empties the target when the source became NULL.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_refusal(@extschema@.qwen3_embed_syncs) IS
'Internal (qwen3_embed_sync_run): why the role that created a sync may no longer have it drained, or NULL.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_due(integer) IS
'Internal (qwen3_embed_sync_run): the syncs with due rows that are not set aside, with their table''s owner.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_drain(integer, integer) IS
'Internal (qwen3_embed_sync_run): embeds up to p_batches batches of one sync''s due rows in one model call, retrying row by row when it fails; run as the table''s owner.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_id(regclass, text, text) IS
'Internal: the id of the sync of relation.target_column, or an error in the caller''s words.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_cache_files() IS
'The packed-weight cache directory''s files (qwen3_embed.cache_dir), least recently used first: path, bytes, whether a process maps it (in_use), when it was last mapped and written, the model file name, kernel table and layout it was packed for, and whether it is a partial write. Superusers and pg_read_server_files only: it shows server file paths. Remove files with qwen3-embed cache prune.';
