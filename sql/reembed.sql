-- Resumable re-embedding of a whole table, and moving a table to a new number of dimensions.
--
--   CALL qwen3_embed_reembed('docs', 'body', 'embedding', batch_size => 64);
--   CALL qwen3_embed_migrate_dims('docs', 'body', 'embedding', 1024);
--   SELECT * FROM qwen3_embed_progress;
--
-- Both walk the table in primary-key order, embed each batch with one qwen3_embed_batch call,
-- update the rows and COMMIT after every batch, recording the last key done in
-- qwen3_embed_jobs. A CALL after an interruption (cancel, crash, error) resumes after the last
-- committed batch. Procedures that COMMIT must be CALLed outside a transaction block (not inside
-- BEGIN ... COMMIT, not from a function). Table and column names only exist at run time: all
-- dynamic SQL quotes them (format %I for names, %s for a regclass, which prints itself quoted).

-- One row per (table, target column): where its re-embedding stands.
CREATE TABLE @extschema@.qwen3_embed_jobs (
    relation      regclass    NOT NULL,
    target_column name        NOT NULL,
    source_column name        NOT NULL,
    instruct      text,
    dims          int,
    key_column    name        NOT NULL,
    batch_size    int         NOT NULL CHECK (batch_size > 0),
    last_key      text,
    rows_done     bigint      NOT NULL DEFAULT 0,
    rows_total    bigint      NOT NULL DEFAULT 0,
    state         text        NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'failed', 'done')),
    last_error    text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    PRIMARY KEY (relation, target_column)
);

-- Anyone may run a re-embedding of a table they can UPDATE; each role sees and changes only the
-- jobs of such tables (superusers and the extension's owner see all).
ALTER TABLE @extschema@.qwen3_embed_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY qwen3_embed_jobs_updatable ON @extschema@.qwen3_embed_jobs
    USING (pg_catalog.has_table_privilege(relation, 'UPDATE'))
    WITH CHECK (pg_catalog.has_table_privilege(relation, 'UPDATE'));
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.qwen3_embed_jobs TO PUBLIC;

-- Progress of every job, for humans.
CREATE VIEW @extschema@.qwen3_embed_progress WITH (security_invoker = true) AS
SELECT j.relation,
       j.source_column,
       j.target_column,
       j.state,
       j.rows_done,
       j.rows_total,
       CASE WHEN j.state = 'done' THEN 100.0
            ELSE round(100.0 * j.rows_done / NULLIF(j.rows_total, 0), 1)
       END AS percent_done,
       j.dims,
       j.instruct,
       j.batch_size,
       j.key_column,
       j.last_key,
       j.last_error,
       j.started_at,
       j.updated_at,
       j.finished_at,
       j.updated_at - j.started_at AS elapsed
  FROM @extschema@.qwen3_embed_jobs j;
GRANT SELECT ON @extschema@.qwen3_embed_progress TO PUBLIC;

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
#variable_conflict use_column
DECLARE
    v_rel      regclass := relation;
    v_src      name     := source_column;
    v_dst      name     := target_column;
    v_instruct text     := instruct;
    v_dims     int      := dims;
    v_batch    int      := batch_size;
    v_restart  boolean  := coalesce(restart, false);
    v_dst_type oid;
    v_dst_mod  int;
    v_key      name;
    v_key_type text;
    v_job      @extschema@.qwen3_embed_jobs;
    v_tpl      text;
    v_first    text;
    v_next     text;
    v_last     text;
    v_done     bigint;
    v_total    bigint;
    v_n        int;
    v_err      text;
    v_err_msg  text;
    v_err_hint text;
BEGIN
    IF v_rel IS NULL OR v_src IS NULL OR v_dst IS NULL THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: relation, source_column and target_column must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF v_batch IS NULL OR v_batch < 1 THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: batch_size must be at least 1, got %', coalesce(v_batch::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = v_rel) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: % is not a table', v_rel
            USING ERRCODE = 'wrong_object_type';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = v_rel AND a.attname = v_src AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: column "%" of % does not exist', v_src, v_rel
            USING ERRCODE = 'undefined_column';
    END IF;
    SELECT a.atttypid, a.atttypmod INTO v_dst_type, v_dst_mod
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = v_rel AND a.attname = v_dst AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: column "%" of % does not exist', v_dst, v_rel
            USING ERRCODE = 'undefined_column';
    END IF;
    -- The walk's order: a single-column primary key.
    SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) INTO v_key, v_key_type
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = v_rel AND i.indisprimary AND i.indnkeyatts = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: % needs a single-column primary key to walk it in order', v_rel
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add one, for example: ALTER TABLE ' || v_rel::text || ' ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;';
    END IF;
    IF v_key = v_dst THEN
        RAISE EXCEPTION 'qwen3_embed_reembed: the target column "%" is the primary key of %', v_dst, v_rel
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- vector(n) / halfvec(n) without dims: embed to n dimensions.
    IF v_dims IS NULL AND v_dst_mod > 0
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE t.oid = v_dst_type AND t.typname IN ('vector', 'halfvec')) THEN
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
     WHERE j.relation = v_rel AND j.target_column = v_dst
       FOR UPDATE;
    IF FOUND AND NOT v_restart AND v_job.state <> 'done' AND v_job.rows_done > 0 THEN
        IF v_job.source_column IS DISTINCT FROM v_src OR v_job.instruct IS DISTINCT FROM v_instruct
           OR v_job.dims IS DISTINCT FROM v_dims OR v_job.key_column IS DISTINCT FROM v_key THEN
            RAISE EXCEPTION 'qwen3_embed_reembed: an unfinished job on %.% used other settings (source %, instruct %, dims %, key %)',
                    v_rel, v_dst, v_job.source_column, coalesce(quote_literal(v_job.instruct), 'NULL'),
                    coalesce(v_job.dims::text, 'NULL'), v_job.key_column
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'CALL it again with the same arguments to resume it, or with restart => true to start over.';
        END IF;
        UPDATE @extschema@.qwen3_embed_jobs j
           SET state = 'running', last_error = NULL, batch_size = v_batch, updated_at = clock_timestamp()
         WHERE j.relation = v_rel AND j.target_column = v_dst;
        RAISE NOTICE 'qwen3_embed_reembed: resuming %.% after % rows', v_rel, quote_ident(v_dst), v_job.rows_done;
    ELSE
        INSERT INTO @extschema@.qwen3_embed_jobs AS j
               (relation, target_column, source_column, instruct, dims, key_column, batch_size)
        VALUES (v_rel, v_dst, v_src, v_instruct, v_dims, v_key, v_batch)
        ON CONFLICT (relation, target_column) DO UPDATE
           SET source_column = EXCLUDED.source_column, instruct = EXCLUDED.instruct,
               dims = EXCLUDED.dims, key_column = EXCLUDED.key_column, batch_size = EXCLUDED.batch_size,
               last_key = NULL, rows_done = 0, rows_total = 0, state = 'running', last_error = NULL,
               started_at = clock_timestamp(), updated_at = clock_timestamp(), finished_at = NULL;
    END IF;

    SELECT j.last_key, j.rows_done INTO v_last, v_done FROM @extschema@.qwen3_embed_jobs j
     WHERE j.relation = v_rel AND j.target_column = v_dst;
    IF v_last IS NULL THEN
        EXECUTE format('SELECT count(*) FROM %s', v_rel) INTO v_total;
    ELSE
        EXECUTE format('SELECT count(*) FROM %s WHERE %I > $1::%s', v_rel, v_key, v_key_type)
           INTO v_total USING v_last;
    END IF;
    v_total := v_done + v_total;
    UPDATE @extschema@.qwen3_embed_jobs j SET rows_total = v_total
     WHERE j.relation = v_rel AND j.target_column = v_dst;
    -- Fails here, before any work, when CALLed inside a transaction block.
    COMMIT;

    -- One statement per batch: lock the next rows in key order, embed their texts in one
    -- qwen3_embed_batch call, write the vectors back; it returns the count and the last key.
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
              FROM @extschema@.qwen3_embed_batch(ARRAY(SELECT n.body FROM numbered n ORDER BY n.ord), $3, $4) AS e
        ), updated AS (
            UPDATE %3$s AS t SET %4$I = e.embedding
              FROM numbered n JOIN embedded e ON e.ord = n.ord
             WHERE t.%1$I = n.k
            RETURNING 1
        )  -- runs whether or not the SELECT below reads it
        SELECT (SELECT count(*) FROM numbered)::int,
               (SELECT n.k::text FROM numbered n ORDER BY n.ord DESC LIMIT 1)
        $sql$;
    v_next := format(v_tpl, v_key, v_src, v_rel, v_dst,
                     format('WHERE s.%I > $1::%s', v_key, v_key_type));
    v_first := format(v_tpl, v_key, v_src, v_rel, v_dst, '');

    LOOP
        v_err := NULL;
        BEGIN
            -- Serializes concurrent CALLs on the same job: each takes the next batch in turn.
            SELECT j.last_key INTO v_last FROM @extschema@.qwen3_embed_jobs j
             WHERE j.relation = v_rel AND j.target_column = v_dst
               FOR UPDATE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'qwen3_embed_reembed: the job on %.% was deleted while it ran', v_rel, v_dst
                    USING ERRCODE = 'object_not_in_prerequisite_state';
            END IF;
            IF v_last IS NULL THEN
                EXECUTE v_first INTO v_n, v_last USING v_last, v_batch, v_instruct, v_dims;
            ELSE
                EXECUTE v_next INTO v_n, v_last USING v_last, v_batch, v_instruct, v_dims;
            END IF;
            EXIT WHEN v_n = 0;
            UPDATE @extschema@.qwen3_embed_jobs j
               SET last_key = v_last, rows_done = rows_done + v_n,
                   rows_total = greatest(rows_total, rows_done + v_n), updated_at = clock_timestamp()
             WHERE j.relation = v_rel AND j.target_column = v_dst
            RETURNING rows_done, rows_total INTO v_done, v_total;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_err = RETURNED_SQLSTATE, v_err_msg = MESSAGE_TEXT,
                                    v_err_hint = PG_EXCEPTION_HINT;
        END;
        IF v_err IS NOT NULL THEN
            -- Keep what the earlier batches did, say where it stopped, then fail as the batch did.
            UPDATE @extschema@.qwen3_embed_jobs j
               SET state = 'failed', last_error = v_err || ': ' || v_err_msg, updated_at = clock_timestamp()
             WHERE j.relation = v_rel AND j.target_column = v_dst
            RETURNING rows_done, rows_total INTO v_done, v_total;
            COMMIT;
            RAISE EXCEPTION USING ERRCODE = v_err, MESSAGE = v_err_msg,
                DETAIL = format('qwen3_embed_reembed stopped on %s.%I after %s of %s rows; those stay done.',
                                v_rel, v_dst, coalesce(v_done, 0), coalesce(v_total, 0)),
                HINT = coalesce(NULLIF(v_err_hint, '') || ' ', '')
                       || 'Then CALL qwen3_embed_reembed again: it resumes after the last committed batch.';
        END IF;
        COMMIT;
        RAISE NOTICE 'qwen3_embed_reembed: % of % rows done (%.%)', v_done, v_total, v_rel, quote_ident(v_dst);
    END LOOP;

    UPDATE @extschema@.qwen3_embed_jobs j
       SET state = 'done', rows_total = rows_done, updated_at = clock_timestamp(), finished_at = clock_timestamp()
     WHERE j.relation = v_rel AND j.target_column = v_dst
    RETURNING rows_done INTO v_done;
    COMMIT;
    RAISE NOTICE 'qwen3_embed_reembed: done, % rows of %.%', v_done, v_rel, quote_ident(v_dst);
END
$qwen3_embed_reembed$;

CREATE PROCEDURE @extschema@.qwen3_embed_migrate_dims(
    relation      regclass,
    source_column text,
    target_column text,
    new_dims      int,
    instruct      text DEFAULT NULL,
    batch_size    int  DEFAULT 64)
LANGUAGE plpgsql
AS $qwen3_embed_migrate_dims$
#variable_conflict use_column
DECLARE
    v_rel      regclass := relation;
    v_src      name     := source_column;
    v_dst      name     := target_column;
    v_dims     int      := new_dims;
    v_instruct text     := instruct;
    v_batch    int      := batch_size;
    v_type     text;
    v_typname  name;
    v_mod      int;
    v_max      int;
    v_new      text;
    v_trigger  text;
    v_state    text;
    v_caught   bigint;
    v_indexes  text;
    v_rows     bigint;
BEGIN
    IF v_rel IS NULL OR v_src IS NULL OR v_dst IS NULL THEN
        RAISE EXCEPTION 'qwen3_embed_migrate_dims: relation, source_column and target_column must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT pg_catalog.format_type(a.atttypid, NULL), t.typname, a.atttypmod INTO v_type, v_typname, v_mod
      FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = v_rel AND a.attname = v_dst AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_migrate_dims: column "%" of % does not exist', v_dst, v_rel
            USING ERRCODE = 'undefined_column';
    END IF;
    IF v_typname NOT IN ('vector', 'halfvec') THEN
        RAISE EXCEPTION 'qwen3_embed_migrate_dims: column "%" of % is %, not vector or halfvec',
                v_dst, v_rel, pg_catalog.format_type((SELECT a.atttypid FROM pg_catalog.pg_attribute a
                                                       WHERE a.attrelid = v_rel AND a.attname = v_dst), v_mod)
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    SELECT i.max_dims INTO v_max FROM @extschema@.qwen3_embed_info() i;
    IF v_dims IS NULL OR v_dims < 32 OR v_dims > v_max THEN
        RAISE EXCEPTION 'qwen3_embed_migrate_dims: new_dims must be between 32 and % (the model''s size), got %',
                v_max, coalesce(v_dims::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_mod = v_dims THEN
        RAISE NOTICE 'qwen3_embed_migrate_dims: %.% already has % dimensions; nothing to do (qwen3_embed_reembed re-embeds in place)',
            v_rel, quote_ident(v_dst), v_dims;
        RETURN;
    END IF;

    -- The new column and a trigger that keeps it current for rows written while the batches run.
    v_new := v_dst || '_qwen3_d' || v_dims;
    v_trigger := v_new || '_sync';
    IF octet_length(v_trigger) > 63 THEN
        RAISE EXCEPTION 'qwen3_embed_migrate_dims: column name "%" is too long for the migration''s column "%"', v_dst, v_new
            USING ERRCODE = 'name_too_long';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = v_rel AND a.attname = v_new AND a.attnum > 0 AND NOT a.attisdropped) THEN
        SELECT j.state INTO v_state FROM @extschema@.qwen3_embed_jobs j
         WHERE j.relation = v_rel AND j.target_column = v_new;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'qwen3_embed_migrate_dims: % already has a column "%" that no migration job owns', v_rel, v_new
                USING ERRCODE = 'duplicate_column',
                      HINT = 'Drop or rename that column, then CALL qwen3_embed_migrate_dims again.';
        END IF;
        RAISE NOTICE 'qwen3_embed_migrate_dims: resuming the migration of %.% to % dimensions', v_rel, quote_ident(v_dst), v_dims;
    ELSE
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s(%s)', v_rel, v_new, v_type, v_dims);
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %s FOR EACH ROW '
                       'EXECUTE FUNCTION @extschema@.qwen3_embed_trigger(%L, %L, %L, %L)',
                       v_trigger, v_rel, v_src, v_new, coalesce(v_instruct, ''), v_dims);
        DELETE FROM @extschema@.qwen3_embed_jobs j WHERE j.relation = v_rel AND j.target_column = v_new;
        INSERT INTO @extschema@.qwen3_embed_jobs
               (relation, target_column, source_column, instruct, dims, key_column, batch_size, state)
        SELECT v_rel, v_new, v_src, v_instruct, v_dims, a.attname, greatest(coalesce(v_batch, 64), 1), 'running'
          FROM pg_catalog.pg_index i
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = v_rel AND i.indisprimary AND i.indnkeyatts = 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'qwen3_embed_migrate_dims: % needs a single-column primary key to walk it in order', v_rel
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Add one, for example: ALTER TABLE ' || v_rel::text || ' ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;';
        END IF;
        COMMIT;
        v_state := 'running';
    END IF;

    IF v_state <> 'done' THEN
        CALL @extschema@.qwen3_embed_reembed(v_rel, v_src, v_new, v_instruct, v_dims, v_batch, false);
    END IF;

    -- The swap, in one transaction: embed rows the walk missed, drop the old column, rename.
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v_rel);
    EXECUTE format('UPDATE %1$s SET %2$I = @extschema@.qwen3_embed(%3$I::text, $1, $2) '
                   'WHERE %2$I IS NULL AND %3$I IS NOT NULL', v_rel, v_new, v_src)
       USING v_instruct, v_dims;
    GET DIAGNOSTICS v_caught = ROW_COUNT;
    SELECT string_agg(pg_catalog.pg_get_indexdef(d.objid), '; ' ORDER BY d.objid) INTO v_indexes
      FROM pg_catalog.pg_depend d
      JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
      JOIN pg_catalog.pg_class c ON c.oid = d.objid AND c.relkind IN ('i', 'I')
     WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
       AND d.refobjid = v_rel AND a.attname = v_dst;
    EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, v_rel);
    EXECUTE format('ALTER TABLE %s DROP COLUMN %I', v_rel, v_dst);
    EXECUTE format('ALTER TABLE %s RENAME COLUMN %I TO %I', v_rel, v_new, v_dst);
    DELETE FROM @extschema@.qwen3_embed_jobs j WHERE j.relation = v_rel AND j.target_column = v_new
    RETURNING j.rows_done INTO v_rows;
    INSERT INTO @extschema@.qwen3_embed_jobs AS j
           (relation, target_column, source_column, instruct, dims, key_column, batch_size,
            rows_done, rows_total, state, finished_at)
    SELECT v_rel, v_dst, v_src, v_instruct, v_dims, i.key_column, i.batch_size,
           coalesce(v_rows, 0) + v_caught, coalesce(v_rows, 0) + v_caught, 'done', clock_timestamp()
      FROM (SELECT a.attname AS key_column, greatest(coalesce(v_batch, 64), 1) AS batch_size
              FROM pg_catalog.pg_index x
              JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
             WHERE x.indrelid = v_rel AND x.indisprimary) i
    ON CONFLICT (relation, target_column) DO UPDATE
       SET source_column = EXCLUDED.source_column, instruct = EXCLUDED.instruct, dims = EXCLUDED.dims,
           key_column = EXCLUDED.key_column, batch_size = EXCLUDED.batch_size, last_key = NULL,
           rows_done = EXCLUDED.rows_done, rows_total = EXCLUDED.rows_total, state = 'done',
           last_error = NULL, updated_at = clock_timestamp(), finished_at = clock_timestamp();
    COMMIT;
    IF v_caught > 0 THEN
        RAISE NOTICE 'qwen3_embed_migrate_dims: embedded % rows written during the migration', v_caught;
    END IF;
    RAISE NOTICE 'qwen3_embed_migrate_dims: %.% is now %(%)', v_rel, quote_ident(v_dst), v_type, v_dims;
    RAISE NOTICE 'qwen3_embed_migrate_dims: indexes on the old column were dropped with it; recreate them: %',
        coalesce(v_indexes, '(there were none)')
        USING HINT = 'Triggers that pass dims to qwen3_embed_trigger explicitly must be recreated with the new size.';
END
$qwen3_embed_migrate_dims$;
