-- Embeddings off the write path: a queue that background workers drain.
--
--   SELECT qwen3_embed_sync('docs', 'body', 'embedding', dims => 1024);
--   SELECT * FROM qwen3_embed_sync_status;
--   SELECT qwen3_embed_sync_retry('docs', 'embedding');      -- re-queue what failed
--   SELECT qwen3_embed_unsync('docs', 'embedding');
--
-- A write to the table only inserts queue rows (statement-level triggers over transition
-- tables, one INSERT ... SELECT per statement), in the writer's transaction: the queue commits
-- or rolls back with it. qwen3_embed_sync_run() takes a batch of queue rows (FOR UPDATE SKIP
-- LOCKED, so several workers share the work), locks their table rows, embeds the rows' current
-- text in one qwen3_embed_batch call, writes the vectors and deletes the queue rows, in one
-- transaction: a crash anywhere redoes work, never loses it. A row changed after it was queued
-- gets the text it has when it is embedded (its row lock keeps it from changing meanwhile), and
-- its change queued it again. A batch that fails is retried row by row; a row that keeps failing
-- waits 2^attempts seconds between tries and after max_attempts moves to
-- qwen3_embed_sync_errors. Background workers (shared_preload_libraries; the settings
-- qwen3_embed.sync_workers and qwen3_embed.sync_database) call qwen3_embed_sync_run()
-- continually; without them, call it yourself (it returns how many rows it embedded).
-- Every function here pins search_path = pg_catalog, pg_temp.

-- One row per kept-in-step column.
CREATE TABLE @extschema@.qwen3_embed_syncs (
    id            serial      PRIMARY KEY,
    relation      regclass    NOT NULL,
    source_column name        NOT NULL,
    target_column name        NOT NULL,
    instruct      text,
    dims          int,
    key_column    name        NOT NULL,
    key_type      text        NOT NULL,
    batch_size    int         NOT NULL DEFAULT 64 CHECK (batch_size > 0),
    max_attempts  int         NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    rows_done     bigint      NOT NULL DEFAULT 0,
    -- Rows per second while embedding, smoothed over the last batches.
    rate          float8,
    -- A chunked sync (qwen3_embed_sync_chunks): the chunk table, chunk size and overlap; its
    -- target_column is the chunk table's name.
    chunk_table   regclass,
    chunk_tokens  int,
    chunk_overlap int,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_done_at  timestamptz,
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

-- As for jobs: each role sees and changes the syncs (and their queue and errors) of tables it
-- can UPDATE; the queue is written by the tables' triggers, as the writing role.
ALTER TABLE @extschema@.qwen3_embed_syncs ENABLE ROW LEVEL SECURITY;
CREATE POLICY qwen3_embed_syncs_updatable ON @extschema@.qwen3_embed_syncs
    USING (pg_catalog.has_table_privilege(relation, 'UPDATE'))
    WITH CHECK (pg_catalog.has_table_privilege(relation, 'UPDATE'));
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.qwen3_embed_syncs TO PUBLIC;
GRANT USAGE ON SEQUENCE @extschema@.qwen3_embed_syncs_id_seq TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.qwen3_embed_queue TO PUBLIC;
GRANT USAGE ON SEQUENCE @extschema@.qwen3_embed_queue_id_seq TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON @extschema@.qwen3_embed_sync_errors TO PUBLIC;
GRANT USAGE ON SEQUENCE @extschema@.qwen3_embed_sync_errors_id_seq TO PUBLIC;

-- The enqueueing trigger: AFTER INSERT / UPDATE / DELETE ... FOR EACH STATEMENT, with the
-- statement's rows as transition tables. TG_ARGV[0] is the sync's id.
CREATE FUNCTION @extschema@.qwen3_embed_sync_enqueue() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_enqueue$
DECLARE
    s         @extschema@.qwen3_embed_syncs;
    v_cleared boolean;
BEGIN
    SELECT * INTO s FROM @extschema@.qwen3_embed_syncs WHERE id = TG_ARGV[0]::int;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO @extschema@.qwen3_embed_queue (sync_id, key) '
                       'SELECT $1, n.%I::text FROM qwen3_embed_new n WHERE n.%I IS NOT NULL',
                       s.key_column, s.source_column)
          USING s.id;
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE format('INSERT INTO @extschema@.qwen3_embed_queue (sync_id, key) '
                       'SELECT $1, n.%1$I::text FROM qwen3_embed_new n LEFT JOIN qwen3_embed_old o ON o.%1$I = n.%1$I '
                       'WHERE o.%1$I IS NULL OR n.%2$I IS DISTINCT FROM o.%2$I',
                       s.key_column, s.source_column)
          USING s.id;
        -- A row whose text became NULL has no vector. (Checked first: an UPDATE, even of no
        -- row, fires this trigger again.) A chunked sync's queue entry removes its chunks.
        v_cleared := false;
        IF s.chunk_table IS NULL THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM qwen3_embed_new n WHERE n.%I IS NULL AND n.%I IS NOT NULL)',
                           s.source_column, s.target_column)
               INTO v_cleared;
        END IF;
        IF v_cleared THEN
            EXECUTE format('UPDATE %s t SET %I = NULL FROM qwen3_embed_new n '
                           'WHERE t.%I = n.%I AND n.%I IS NULL AND t.%I IS NOT NULL',
                           s.relation, s.target_column, s.key_column, s.key_column, s.source_column, s.target_column);
        END IF;
    ELSE
        EXECUTE format('DELETE FROM @extschema@.qwen3_embed_queue q USING qwen3_embed_old o '
                       'WHERE q.sync_id = $1 AND q.key = o.%I::text', s.key_column)
          USING s.id;
    END IF;
    RETURN NULL;
END
$qwen3_embed_sync_enqueue$;

-- A sync's triggers, and its backlog (every row with text) queued; returns the rows queued.
CREATE FUNCTION @extschema@.qwen3_embed_sync_install(p_id int)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_install$
DECLARE
    s       @extschema@.qwen3_embed_syncs;
    v_name  text := 'qwen3_embed_sync_' || p_id;
    v_rows  bigint;
BEGIN
    SELECT * INTO s FROM @extschema@.qwen3_embed_syncs x WHERE x.id = p_id;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS qwen3_embed_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qwen3_embed_sync_enqueue(%L)',
                   v_name || '_ins', s.relation, p_id);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS qwen3_embed_old NEW TABLE AS qwen3_embed_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qwen3_embed_sync_enqueue(%L)',
                   v_name || '_upd', s.relation, p_id);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS qwen3_embed_old '
                   'FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.qwen3_embed_sync_enqueue(%L)',
                   v_name || '_del', s.relation, p_id);
    EXECUTE format('INSERT INTO @extschema@.qwen3_embed_queue (sync_id, key) '
                   'SELECT $1, t.%I::text FROM %s t WHERE t.%I IS NOT NULL', s.key_column, s.relation, s.source_column)
      USING p_id;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$qwen3_embed_sync_install$;

-- The argument checks qwen3_embed_sync and qwen3_embed_sync_chunks share, in their callers'
-- words (p_caller names the function, p_target_arg its third argument): no NULL, the source
-- column exists, a single-column primary key (its name and type are returned), batch_size and
-- max_attempts at least 1.
CREATE FUNCTION @extschema@.qwen3_embed_sync_check_args(
    p_caller text, p_rel regclass, p_source text, p_target_arg text, p_target text,
    p_batch_size int, p_max_attempts int, OUT key_column name, OUT key_type text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_check_args$
BEGIN
    IF p_rel IS NULL OR p_source IS NULL OR p_target IS NULL THEN
        RAISE EXCEPTION '%: relation, source_column and % must not be NULL', p_caller, p_target_arg
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p_rel AND a.attname = p_source
                      AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION '%: column "%" of % does not exist', p_caller, p_source, p_rel
            USING ERRCODE = 'undefined_column';
    END IF;
    SELECT a.attname, format_type(a.atttypid, a.atttypmod) INTO key_column, key_type
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = p_rel AND i.indisprimary AND i.indnkeyatts = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: % needs a single-column primary key', p_caller, p_rel
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF p_batch_size IS NULL OR p_batch_size < 1 OR p_max_attempts IS NULL OR p_max_attempts < 1 THEN
        RAISE EXCEPTION '%: batch_size and max_attempts must be at least 1', p_caller
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$qwen3_embed_sync_check_args$;

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
    v_rel      regclass := relation;
    v_dims     int      := dims;
    v_dst_type oid;
    v_dst_mod  int;
    v_key      name;
    v_key_type text;
    v_id       int;
    v_trigger  text;
    v_rows     bigint;
BEGIN
    SELECT c.key_column, c.key_type INTO v_key, v_key_type
      FROM @extschema@.qwen3_embed_sync_check_args('qwen3_embed_sync', v_rel, source_column, 'target_column',
                                                   target_column, batch_size, max_attempts) c;
    SELECT a.atttypid, a.atttypmod INTO v_dst_type, v_dst_mod FROM pg_attribute a
     WHERE a.attrelid = v_rel AND a.attname = target_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_sync: column "%" of % does not exist', target_column, v_rel
            USING ERRCODE = 'undefined_column';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_extension e ON e.extname = 'vector' AND e.extnamespace = t.typnamespace
                    WHERE t.oid = v_dst_type AND t.typname IN ('vector', 'halfvec')) THEN
        RAISE EXCEPTION 'qwen3_embed_sync: column "%" of % is %, not vector or halfvec',
                target_column, v_rel, format_type(v_dst_type, v_dst_mod)
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    IF v_dims IS NULL AND v_dst_mod > 0 THEN
        v_dims := v_dst_mod;
    ELSIF v_dims IS NOT NULL AND v_dst_mod > 0 AND v_dims <> v_dst_mod THEN
        RAISE EXCEPTION 'qwen3_embed_sync: dims % does not fit column "%" of %, which is %',
                v_dims, target_column, v_rel, format_type(v_dst_type, v_dst_mod)
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    INSERT INTO @extschema@.qwen3_embed_syncs AS s
           (relation, source_column, target_column, instruct, dims, key_column, key_type, batch_size, max_attempts)
    VALUES (v_rel, source_column, target_column, instruct, v_dims, v_key, v_key_type, batch_size, max_attempts)
    ON CONFLICT ON CONSTRAINT qwen3_embed_syncs_relation_target_column_key DO NOTHING
    RETURNING s.id INTO v_id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'qwen3_embed_sync: %.% is already kept in step', v_rel, quote_ident(target_column)
            USING ERRCODE = 'duplicate_object',
                  HINT = 'SELECT qwen3_embed_unsync(...) first to change its settings.';
    END IF;
    PERFORM @extschema@.qwen3_embed_column_model(v_rel, target_column, instruct, v_dims);
    v_rows := @extschema@.qwen3_embed_sync_install(v_id);
    RAISE NOTICE 'qwen3_embed_sync: %.% is kept in step with %; % rows queued', v_rel,
        quote_ident(target_column), quote_ident(source_column), v_rows;
    RETURN v_id;
END
$qwen3_embed_sync$;

-- Keep a chunk table in step with source_column: each row's text split into chunks of at most
-- chunk_tokens tokens overlapping by overlap tokens (qwen3_chunks), one row and one vector per
-- chunk in chunk_table (created here, in the table's schema, with the key, chunk_no, chunk and
-- embedding; its rows go with their source row). Returns the sync's id.
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
    v_key      name;
    v_key_type text;
    v_vector   text;
    v_schema   name;
    v_table    regclass;
    v_id       int;
    v_rows     bigint;
BEGIN
    SELECT c.key_column, c.key_type INTO v_key, v_key_type
      FROM @extschema@.qwen3_embed_sync_check_args('qwen3_embed_sync_chunks', v_rel, source_column, 'chunk_table',
                                                   chunk_table, batch_size, max_attempts) c;
    IF chunk_tokens IS NULL OR overlap IS NULL OR chunk_tokens < 2 OR overlap < 0 OR overlap >= chunk_tokens - 1 THEN
        RAISE EXCEPTION 'qwen3_embed_sync_chunks: chunk_tokens must be at least 2 and overlap between 0 and chunk_tokens - 2, got % and %',
                chunk_tokens, overlap
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_dims IS NULL THEN
        SELECT i.max_dims INTO v_dims FROM @extschema@.qwen3_embed_info() i;
    END IF;
    SELECT format_type(t.oid, NULL) INTO v_vector FROM pg_type t
      JOIN pg_extension e ON e.extname = 'vector' AND e.extnamespace = t.typnamespace
     WHERE t.typname = 'vector';
    SELECT n.nspname INTO v_schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = v_rel;
    EXECUTE format('CREATE TABLE %I.%I (%I %s NOT NULL REFERENCES %s ON DELETE CASCADE, chunk_no int NOT NULL, '
                   'chunk text NOT NULL, embedding %s(%s), PRIMARY KEY (%I, chunk_no))',
                   v_schema, chunk_table, v_key, v_key_type, v_rel, v_vector, v_dims, v_key);
    v_table := format('%I.%I', v_schema, chunk_table)::regclass;
    INSERT INTO @extschema@.qwen3_embed_syncs AS s
           (relation, source_column, target_column, instruct, dims, key_column, key_type, batch_size, max_attempts,
            chunk_table, chunk_tokens, chunk_overlap)
    VALUES (v_rel, source_column, chunk_table, instruct, v_dims, v_key, v_key_type, batch_size, max_attempts,
            v_table, chunk_tokens, overlap)
    RETURNING s.id INTO v_id;
    PERFORM @extschema@.qwen3_embed_column_model(v_table, 'embedding', instruct, v_dims);
    v_rows := @extschema@.qwen3_embed_sync_install(v_id);
    RAISE NOTICE 'qwen3_embed_sync_chunks: % keeps chunks of %.% of % tokens (overlap %); % rows queued',
        v_table, v_rel, quote_ident(source_column), chunk_tokens, overlap, v_rows;
    RETURN v_id;
END
$qwen3_embed_sync_chunks$;

-- Stop keeping a column in step: drops the triggers, the queue and the errors of that sync.
CREATE FUNCTION @extschema@.qwen3_embed_unsync(relation regclass, target_column text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_unsync$
#variable_conflict use_variable
DECLARE
    v_id      int;
    v_pending bigint;
BEGIN
    SELECT s.id INTO v_id FROM @extschema@.qwen3_embed_syncs s
     WHERE s.relation = relation AND s.target_column = target_column;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_unsync: %.% is not kept in step', relation, quote_ident(target_column)
            USING ERRCODE = 'undefined_object';
    END IF;
    DELETE FROM @extschema@.qwen3_embed_queue q WHERE q.sync_id = v_id;
    GET DIAGNOSTICS v_pending = ROW_COUNT;
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'qwen3_embed_sync_' || v_id || '_ins', relation);
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'qwen3_embed_sync_' || v_id || '_upd', relation);
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'qwen3_embed_sync_' || v_id || '_del', relation);
    DELETE FROM @extschema@.qwen3_embed_syncs s WHERE s.id = v_id;
    RETURN v_pending;
END
$qwen3_embed_unsync$;

-- Embeds one batch of queued rows of one sync; returns how many rows it embedded.
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
        DELETE FROM @extschema@.qwen3_embed_queue q WHERE q.id = ANY (p_ids);
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
    DELETE FROM @extschema@.qwen3_embed_queue q WHERE q.id = ANY (p_ids);
    RETURN v_n;
END
$qwen3_embed_sync_batch$;

-- Drains up to max_batches batches of the queue (every sync, or one); returns rows embedded.
-- What the background workers call; callable by hand, in any transaction. The batches a call may
-- take are shared out among the syncs, and each sync's share is embedded in one
-- qwen3_embed_sync_batch call of up to 4 batches (one model call: fewer, fuller forward passes
-- than batch_size rows at a time); passes over the syncs repeat until max_batches or no sync has
-- due rows. So a worker's round (4 batches) of one sync with a backlog is one model call.
CREATE FUNCTION @extschema@.qwen3_embed_sync_run(sync_id int DEFAULT NULL, max_batches int DEFAULT 1)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_run$
#variable_conflict use_variable
DECLARE
    s       @extschema@.qwen3_embed_syncs;
    v_ids   bigint[];
    v_keys  text[];
    v_done  int := 0;
    v_n     int;
    v_state text;
    v_msg   text;
    v_batch int := 0;
    v_start timestamptz;
    v_secs  float8;
    v_from  int;
    v_found boolean;
    v_syncs int;
    v_take  int;
    q       record;
BEGIN
    SELECT count(*) INTO v_syncs FROM @extschema@.qwen3_embed_syncs x WHERE sync_id IS NULL OR x.id = sync_id;
    LOOP
        v_found := false;
        FOR s IN SELECT * FROM @extschema@.qwen3_embed_syncs x
                  WHERE sync_id IS NULL OR x.id = sync_id ORDER BY x.id LOOP
            EXIT WHEN v_batch >= max_batches;
            -- This sync's share of the batches left, at most 4 in one model call: that fills
            -- the forward passes, while a call stays far from qwen3_embed.max_request_tokens and
            -- a failing call's row-by-row retry stays short.
            v_take := least(4, greatest(1, (max_batches - v_batch) / greatest(v_syncs, 1)));
            -- The oldest due rows of this sync that no other worker holds; one queue row per key.
            SELECT array_agg(p.id), array_agg(DISTINCT p.key) INTO v_ids, v_keys
              FROM (SELECT q2.id, q2.key FROM @extschema@.qwen3_embed_queue q2
                     WHERE q2.sync_id = s.id AND q2.next_try_at <= clock_timestamp()
                     ORDER BY q2.id LIMIT s.batch_size * v_take
                       FOR UPDATE SKIP LOCKED) p;
            CONTINUE WHEN v_ids IS NULL;
            v_found := true;
            v_batch := v_batch + (cardinality(v_ids) + s.batch_size - 1) / s.batch_size;
            v_start := clock_timestamp();
            v_from := v_done;
            BEGIN
                v_n := @extschema@.qwen3_embed_sync_batch(s, v_ids, v_keys);
                v_done := v_done + v_n;
            EXCEPTION
                WHEN query_canceled THEN RAISE;
                WHEN OTHERS THEN
                    -- One row at a time, so one bad row does not hold back the others.
                    FOR q IN SELECT x.id, x.key, x.attempts FROM @extschema@.qwen3_embed_queue x
                              WHERE x.id = ANY (v_ids) ORDER BY x.id LOOP
                        BEGIN
                            v_done := v_done + @extschema@.qwen3_embed_sync_batch(s, ARRAY[q.id], ARRAY[q.key]);
                        EXCEPTION
                            WHEN query_canceled THEN RAISE;
                            WHEN OTHERS THEN
                                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                                IF q.attempts + 1 >= s.max_attempts THEN
                                    INSERT INTO @extschema@.qwen3_embed_sync_errors (sync_id, key, sqlstate, message, attempts)
                                    VALUES (s.id, q.key, v_state, v_msg, q.attempts + 1);
                                    DELETE FROM @extschema@.qwen3_embed_queue x WHERE x.id = q.id;
                                ELSE
                                    UPDATE @extschema@.qwen3_embed_queue x
                                       SET attempts = q.attempts + 1, last_error = v_state || ': ' || v_msg,
                                           next_try_at = clock_timestamp() + interval '1 second' * power(2, q.attempts)
                                     WHERE x.id = q.id;
                                END IF;
                        END;
                    END LOOP;
            END;
            v_secs := extract(epoch FROM clock_timestamp() - v_start);
            UPDATE @extschema@.qwen3_embed_syncs x
               SET rows_done = x.rows_done + (v_done - v_from), last_done_at = clock_timestamp(),
                   rate = CASE WHEN x.rate IS NULL THEN (v_done - v_from) / greatest(v_secs, 1e-6)
                               ELSE 0.7 * x.rate + 0.3 * (v_done - v_from) / greatest(v_secs, 1e-6) END
             WHERE x.id = s.id AND v_done > v_from;
        END LOOP;
        EXIT WHEN NOT v_found OR v_batch >= max_batches;
    END LOOP;
    RETURN v_done;
END
$qwen3_embed_sync_run$;

-- Puts a sync's failed rows back in the queue (after fixing what made them fail).
CREATE FUNCTION @extschema@.qwen3_embed_sync_retry(relation regclass, target_column text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_retry$
#variable_conflict use_variable
DECLARE
    v_id int;
    v_n  bigint;
BEGIN
    SELECT s.id INTO v_id FROM @extschema@.qwen3_embed_syncs s
     WHERE s.relation = relation AND s.target_column = target_column;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_sync_retry: %.% is not kept in step', relation, quote_ident(target_column)
            USING ERRCODE = 'undefined_object';
    END IF;
    WITH moved AS (
        DELETE FROM @extschema@.qwen3_embed_sync_errors e WHERE e.sync_id = v_id RETURNING e.key
    )
    INSERT INTO @extschema@.qwen3_embed_queue (sync_id, key) SELECT DISTINCT v_id, m.key FROM moved m;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    UPDATE @extschema@.qwen3_embed_queue q SET next_try_at = clock_timestamp(), attempts = 0
     WHERE q.sync_id = v_id;
    RETURN v_n;
END
$qwen3_embed_sync_retry$;

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
-- pending rows should take at that rate, and when it last embedded.
CREATE VIEW @extschema@.qwen3_embed_sync_status WITH (security_invoker = true) AS
SELECT s.id, s.relation, s.source_column, s.target_column, s.dims, s.instruct,
       c.pending, c.waiting_retry, c.failed, s.rows_done AS done,
       s.rate AS rows_per_second, @extschema@.qwen3_embed_sync_eta(c.pending, s.rate) AS time_left,
       s.last_done_at, s.created_at
  FROM @extschema@.qwen3_embed_syncs s,
       LATERAL @extschema@.qwen3_embed_sync_counts(s.id) c;
GRANT SELECT ON @extschema@.qwen3_embed_sync_status TO PUBLIC;
