-- Embeddings off the write path: a queue that background workers drain.
--
--   SELECT qwen3_embed_sync('docs', 'body', 'embedding', dims => 1024);
--   SELECT * FROM qwen3_embed_sync_status;
--   SELECT qwen3_embed_sync_retry('docs', 'embedding');      -- re-queue what failed
--   SELECT qwen3_embed_unsync('docs', 'embedding');
--
-- A write to the table only inserts queue rows (statement-level triggers over transition
-- tables, one INSERT ... SELECT per statement), in the writer's transaction: the queue commits
-- or rolls back with it. qwen3_embed_sync_run() (src/sync/drain.rs) takes each sync with due
-- rows in turn and, as the table's owner in a security-restricted operation (as autovacuum and
-- REFRESH MATERIALIZED VIEW run a table owner's code), calls qwen3_embed_sync_drain: it claims
-- a batch of queue rows (FOR UPDATE SKIP LOCKED, so several workers share the work), locks
-- their table rows, embeds the rows' current text in one qwen3_embed_batch call, writes the
-- vectors and deletes the queue rows, in one transaction: a crash anywhere redoes work, never
-- loses it. A row changed after it was queued gets the text it has when it is embedded (its
-- row lock keeps it from changing meanwhile), and its change queued it again. A batch that
-- fails is retried row by row; a row that keeps failing waits 2^attempts seconds between tries
-- and after max_attempts moves to qwen3_embed.sync_errors. A sync whose whole round fails is
-- set aside (paused_until, doubling up to an hour) while the others go on.
--
-- Who may do what. The state tables (qwen3_embed.syncs, qwen3_embed.queue,
-- qwen3_embed.sync_errors) are written only by the extension: ordinary roles may read, under
-- row security, the rows of tables they may UPDATE, and change them only through the functions
-- below, which pass each change through qwen3_embed_state() (src/state.rs). That gate checks
-- the role calling it (the current user, as PostgreSQL's own privilege checks do) and runs one
-- of the qwen3_embed_state_* functions as the extension's owner; nobody else may call those.
-- Stored values are resolved objects (regclass, regtype) and names that are always quoted;
-- keys travel as parameters. Creating, changing or removing a sync takes membership in the
-- table's owning role; draining, retrying and reading it take UPDATE on the table.
-- Every function here pins search_path = pg_catalog, pg_temp.

-- One row per kept-in-step column.
CREATE TABLE qwen3_embed.syncs (
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
    -- A one-time re-embedding (qwen3_embed_reembed_later): no triggers; the sync goes once its
    -- queue is empty and no row failed.
    once          boolean     NOT NULL DEFAULT false,
    -- The HNSW index the sync worker makes once the column holds index_rows vectors (NULL: none):
    -- 'waiting', 'building', 'ready' or 'failed', its name, and the rows_done of the last count.
    index_rows    bigint      CHECK (index_rows >= 0),
    index_state   text        CHECK (index_state IN ('waiting', 'building', 'ready', 'failed')),
    index_name    name,
    index_error   text,
    index_counted bigint,
    last_error    text,
    UNIQUE (relation, target_column)
);

-- Rows waiting to be embedded: the key as text, how often it was tried, when next. No foreign
-- key to the syncs (a per-row check on every queued row of every write): qwen3_embed_unsync
-- deletes a sync's queue and errors itself.
CREATE TABLE qwen3_embed.queue (
    id          bigserial   PRIMARY KEY,
    sync_id     int         NOT NULL,
    key         text        NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    attempts    int         NOT NULL DEFAULT 0,
    next_try_at timestamptz NOT NULL DEFAULT now(),
    last_error  text
);

-- Rows that failed max_attempts times, with the last error.
CREATE TABLE qwen3_embed.sync_errors (
    id        bigserial   PRIMARY KEY,
    sync_id   int         NOT NULL REFERENCES qwen3_embed.syncs ON DELETE CASCADE,
    key       text        NOT NULL,
    sqlstate  text        NOT NULL,
    message   text        NOT NULL,
    attempts  int         NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);

-- Read only, and only the rows of tables the reader may UPDATE (superusers and the extension's
-- owner see all).
ALTER TABLE qwen3_embed.syncs ENABLE ROW LEVEL SECURITY;
CREATE POLICY qwen3_embed_syncs_updatable ON qwen3_embed.syncs FOR SELECT
    USING (pg_catalog.has_table_privilege(relation, 'UPDATE'));
ALTER TABLE qwen3_embed.queue ENABLE ROW LEVEL SECURITY;
CREATE POLICY qwen3_embed_queue_updatable ON qwen3_embed.queue FOR SELECT
    USING (EXISTS (SELECT 1 FROM qwen3_embed.syncs s WHERE s.id = sync_id));
ALTER TABLE qwen3_embed.sync_errors ENABLE ROW LEVEL SECURITY;
CREATE POLICY qwen3_embed_sync_errors_updatable ON qwen3_embed.sync_errors FOR SELECT
    USING (EXISTS (SELECT 1 FROM qwen3_embed.syncs s WHERE s.id = sync_id));
REVOKE ALL ON qwen3_embed.syncs, qwen3_embed.queue,
              qwen3_embed.sync_errors FROM PUBLIC;
GRANT SELECT ON qwen3_embed.syncs, qwen3_embed.queue,
                qwen3_embed.sync_errors TO PUBLIC;

-- Whether p_caller may drain, retry and read the sync's table (UPDATE), or create and remove its
-- sync (membership in the owning role). Raises insufficient_privilege otherwise.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_check(p_caller oid, p_rel regclass, p_owner boolean, p_what text)
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
CREATE FUNCTION qwen3_embed.qwen3_embed_state_sync(p_caller oid, p_id int, p_owner boolean, p_what text)
RETURNS qwen3_embed.syncs
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync$
DECLARE
    s qwen3_embed.syncs;
BEGIN
    SELECT * INTO s FROM qwen3_embed.syncs x WHERE x.id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: no sync %', p_what, p_id USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM qwen3_embed.qwen3_embed_state_check(p_caller, s.relation, p_owner, p_what);
    RETURN s;
END
$qwen3_embed_state_sync$;

-- The enqueueing trigger: AFTER INSERT / UPDATE ... FOR EACH STATEMENT, with the statement's
-- rows as transition tables. TG_ARGV[0] is the sync's id. It runs as the writer (the table's
-- code it reaches, such as a cast of the source column to text, runs with the writer's rights,
-- as any trigger of the table does) and hands only the keys to the gate's queue_add, which
-- checks that the writer may write the table. It acts only for the table its sync names: the
-- same function put on another table does nothing. Deleted rows are left in the queue: the
-- drain finds no row for them and drops them, so a writer never waits on a row the drain holds.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_enqueue() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_enqueue$
DECLARE
    c    record;
    v_id int := TG_ARGV[0]::int;
    v_keys jsonb;
BEGIN
    IF TG_LEVEL <> 'STATEMENT' OR TG_WHEN <> 'AFTER' OR TG_OP NOT IN ('INSERT', 'UPDATE') THEN
        RETURN NULL;
    END IF;
    SELECT * INTO c FROM qwen3_embed.qwen3_embed_sync_columns(v_id, TG_RELID);
    IF c.key_column IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('SELECT jsonb_agg(n.%I::text) FROM qwen3_embed_new n WHERE n.%I IS NOT NULL',
                       c.key_column, c.source_column)
           INTO v_keys;
    ELSE
        EXECUTE format('SELECT jsonb_agg(n.%1$I::text) FROM qwen3_embed_new n LEFT JOIN qwen3_embed_old o ON o.%1$I = n.%1$I '
                       'WHERE o.%1$I IS NULL OR n.%2$I::text IS DISTINCT FROM o.%2$I::text',
                       c.key_column, c.source_column)
           INTO v_keys;
    END IF;
    IF v_keys IS NOT NULL THEN
        PERFORM qwen3_embed.qwen3_embed_state('queue_add', jsonb_build_object('id', v_id, 'keys', v_keys));
    END IF;
    RETURN NULL;
END
$qwen3_embed_sync_enqueue$;

-- The columns of sync p_id, when it is a sync of p_rel (else no row): what the enqueueing
-- trigger and the backlog read as the writer, who may not see the sync itself (row security
-- shows syncs to roles that may UPDATE the table). Reads nothing but the sync.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_columns(p_id int, p_rel oid,
    OUT key_column name, OUT key_type regtype, OUT source_column name, OUT target_column name,
    OUT chunk_table regclass)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.key_column, s.key_type, s.source_column, s.target_column, s.chunk_table
      FROM qwen3_embed.syncs s WHERE s.id = p_id AND s.relation = p_rel
$$;

-- Queues, as the calling role, every row of sync p_id's table with text (with p_missing, only
-- those without a vector), through the gate's queue_add in batches of 50,000 keys (with
-- p_dedupe, keys already queued are not queued again). Returns the rows queued.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_backlog(p_id int, p_rel regclass, p_dedupe boolean, p_missing boolean)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_backlog$
DECLARE
    c      record;
    v_key  text;
    v_keys text[] := '{}';
    v_n    bigint := 0;
BEGIN
    SELECT * INTO c FROM qwen3_embed.qwen3_embed_sync_columns(p_id, p_rel);
    IF c.key_column IS NULL THEN
        RETURN 0;
    END IF;
    FOR v_key IN EXECUTE format('SELECT t.%I::text FROM %s t WHERE t.%I IS NOT NULL', c.key_column, p_rel, c.source_column)
                         || CASE WHEN p_missing AND c.chunk_table IS NULL THEN format(' AND t.%I IS NULL', c.target_column) ELSE '' END
    LOOP
        v_keys := v_keys || v_key;
        IF cardinality(v_keys) >= 50000 THEN
            v_n := v_n + (qwen3_embed.qwen3_embed_state('queue_add', jsonb_build_object(
                              'id', p_id, 'keys', to_jsonb(v_keys), 'dedupe', p_dedupe))->>'rows')::bigint;
            v_keys := '{}';
        END IF;
    END LOOP;
    IF cardinality(v_keys) > 0 THEN
        v_n := v_n + (qwen3_embed.qwen3_embed_state('queue_add', jsonb_build_object(
                          'id', p_id, 'keys', to_jsonb(v_keys), 'dedupe', p_dedupe))->>'rows')::bigint;
    END IF;
    RETURN v_n;
END
$qwen3_embed_sync_backlog$;

-- BEFORE UPDATE ... FOR EACH ROW WHEN (the source became NULL and a vector is still there):
-- a row whose text became NULL has no vector. TG_ARGV[0] is the target column. Runs as the writer.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_clear() RETURNS trigger
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
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_refusal(s qwen3_embed.syncs)
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

-- Raises unless a sync's settings are in range: batch_size, max_attempts, the instruction's
-- length, and dims (one the model has, and the size of column p_col of p_rel when it has one).
-- Returns dims: the column's size when p_dims is NULL.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_settings(p_what text, p_batch int, p_attempts int, p_instruct text,
    p_dims int, p_rel regclass, p_col name)
RETURNS int
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_settings$
DECLARE
    v_type oid;
    v_mod  int;
    v_max  int;
BEGIN
    IF p_batch IS NULL OR p_batch NOT BETWEEN 1 AND 4096 OR p_attempts IS NULL OR p_attempts NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION '%: batch_size must be between 1 and 4096 and max_attempts between 1 and 100, got % and %',
                p_what, coalesce(p_batch::text, 'NULL'), coalesce(p_attempts::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(p_instruct) > 8192 THEN
        RAISE EXCEPTION '%: instruct is % bytes, at most 8192', p_what, octet_length(p_instruct)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT x.atttypid, x.atttypmod INTO v_type, v_mod FROM pg_attribute x
     WHERE x.attrelid = p_rel AND x.attname = p_col AND x.attnum > 0 AND NOT x.attisdropped;
    IF p_dims IS NULL AND v_mod > 0 THEN
        p_dims := v_mod;
    ELSIF p_dims IS NOT NULL AND v_mod > 0 AND p_dims <> v_mod THEN
        RAISE EXCEPTION '%: dims % does not fit column "%" of %, which is %',
                p_what, p_dims, p_col, p_rel, format_type(v_type, v_mod)
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'CALL qwen3_embed_migrate_dims(...), outside a transaction block, moves a column of a fixed size to another size.';
    END IF;
    IF p_dims IS NOT NULL THEN
        SELECT i.max_dims INTO v_max FROM @extschema@.qwen3_embed_info() i;
        IF p_dims NOT BETWEEN 32 AND v_max THEN
            RAISE EXCEPTION '%: dims must be between 32 and the model''s size (%), got %', p_what, v_max, p_dims
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    RETURN p_dims;
END
$qwen3_embed_sync_settings$;

-- The gate's operation sync_add: validate a new sync's settings, record it (resolved objects
-- only), create its triggers and queue its backlog (every row with text; with only_missing, those without a vector). Returns its id and
-- the rows queued. Only members of the table's owning role.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_sync_add(p_caller oid, a jsonb)
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
    v_once     boolean  := coalesce((a->>'once')::boolean, false);
    v_index    bigint   := (a->>'index_rows')::bigint;
    v_kind     "char";
    v_key      name;
    v_key_type regtype;
    v_dst_type oid;
    v_dst_mod  int;
    v_id       int;
    v_name     text;
BEGIN
    IF v_rel IS NULL OR v_src IS NULL OR v_dst IS NULL THEN
        RAISE EXCEPTION '%: relation, source_column and % must not be NULL', v_what,
                CASE WHEN v_chunks IS NULL AND v_tokens IS NULL THEN 'target_column' ELSE 'chunk_table' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM qwen3_embed.qwen3_embed_state_check(p_caller, v_rel, true, v_what);
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
    IF v_chunks IS NULL THEN
        SELECT x.atttypid, x.atttypmod INTO v_dst_type, v_dst_mod FROM pg_attribute x
         WHERE x.attrelid = v_rel AND x.attname = v_dst AND x.attnum > 0 AND NOT x.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION '%: column "%" of % does not exist', v_what, v_dst, v_rel
                USING ERRCODE = 'undefined_column';
        END IF;
        IF EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = v_rel AND x.attname = v_dst AND x.attgenerated <> '') THEN
            RAISE EXCEPTION '%: column "%" of % is a generated column, which PostgreSQL computes itself', v_what, v_dst, v_rel
                USING ERRCODE = 'wrong_object_type',
                      HINT = 'A generated column is recomputed by rewriting the table: ALTER TABLE ... ALTER COLUMN ... SET EXPRESSION (PostgreSQL 17), or drop and add it.';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_extension e ON e.extname = 'vector' AND e.extnamespace = t.typnamespace
                        WHERE t.oid = v_dst_type AND t.typname IN ('vector', 'halfvec')) THEN
            RAISE EXCEPTION '%: column "%" of % is %, not vector or halfvec',
                    v_what, v_dst, v_rel, format_type(v_dst_type, v_dst_mod)
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
    IF v_index IS NOT NULL THEN
        PERFORM qwen3_embed.qwen3_embed_sync_index_check(v_what, v_rel, v_dst, v_index);
    END IF;
    v_dims := qwen3_embed.qwen3_embed_sync_settings(v_what, v_batch, v_attempts, v_instruct, v_dims,
                                                    v_rel, CASE WHEN v_chunks IS NULL THEN v_dst END);
    IF v_once AND EXISTS (SELECT 1 FROM qwen3_embed.columns c
                           WHERE c.relation = v_rel AND c.column_name = v_dst AND c.next_fingerprint IS NOT NULL) THEN
        RAISE EXCEPTION '%: %.% is being re-embedded already', v_what, v_rel, quote_ident(v_dst)
            USING ERRCODE = 'object_in_use',
                  HINT = 'SELECT * FROM qwen3_embed_progress shows the job; qwen3_embed_abandon forgets a stopped one.';
    END IF;
    INSERT INTO qwen3_embed.syncs AS s
           (relation, source_column, target_column, instruct, dims, key_column, key_type, batch_size, max_attempts,
            chunk_table, chunk_tokens, chunk_overlap, created_by, once, replacing, index_rows, index_state)
    VALUES (v_rel, v_src, v_dst, v_instruct, v_dims, v_key, v_key_type, v_batch, v_attempts,
            v_chunks, v_tokens, v_overlap, p_caller, v_once, v_once, v_index,
            CASE WHEN v_index IS NOT NULL THEN 'waiting' END)
    ON CONFLICT ON CONSTRAINT syncs_relation_target_column_key DO NOTHING
    RETURNING s.id INTO v_id;
    IF v_id IS NULL THEN
        RAISE EXCEPTION '%: %.% is already kept in step', v_what, v_rel, quote_ident(v_dst)
            USING ERRCODE = 'duplicate_object',
                  HINT = 'SELECT qwen3_embed_unsync(...) first to change its settings.';
    END IF;
    IF v_once THEN
        -- Writes to the column are accepted with the loaded model from now on; queue_done ends
        -- the move when the last row is done.
        PERFORM qwen3_embed.qwen3_embed_state_column_move(p_caller, jsonb_build_object(
            'relation', v_rel::oid, 'column', v_dst, 'instruct', v_instruct, 'dims', v_dims, 'done', false));
        RETURN jsonb_build_object('id', v_id, 'dims', v_dims);
    END IF;
    v_name := 'qwen3_embed_sync_' || v_id;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS qwen3_embed_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION qwen3_embed.qwen3_embed_sync_enqueue(%L)',
                   v_name || '_ins', v_rel, v_id);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS qwen3_embed_old NEW TABLE AS qwen3_embed_new '
                   'FOR EACH STATEMENT EXECUTE FUNCTION qwen3_embed.qwen3_embed_sync_enqueue(%L)',
                   v_name || '_upd', v_rel, v_id);
    IF v_chunks IS NULL THEN
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %s FOR EACH ROW WHEN (NEW.%I IS NULL AND NEW.%I IS NOT NULL) '
                       'EXECUTE FUNCTION qwen3_embed.qwen3_embed_sync_clear(%L)',
                       v_name || '_clear', v_rel, v_src, v_dst, v_dst);
    END IF;
    RETURN jsonb_build_object('id', v_id, 'dims', v_dims);
END
$qwen3_embed_state_sync_add$;

-- The gate's operation sync_remove: drop a sync's triggers, queue and errors. Returns the rows
-- that were still queued. Only members of the table's owning role.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_sync_remove(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_remove$
DECLARE
    s         qwen3_embed.syncs;
    v_pending bigint;
    v_suffix  text;
BEGIN
    s := qwen3_embed.qwen3_embed_state_sync(p_caller, (a->>'id')::int, true, 'qwen3_embed_unsync');
    DELETE FROM qwen3_embed.queue q WHERE q.sync_id = s.id;
    GET DIAGNOSTICS v_pending = ROW_COUNT;
    FOREACH v_suffix IN ARRAY CASE WHEN s.once THEN '{}'::text[]
                                   WHEN s.chunk_table IS NULL THEN ARRAY['_ins', '_upd', '_clear']
                                   ELSE ARRAY['_ins', '_upd'] END LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'qwen3_embed_sync_' || s.id || v_suffix, s.relation);
    END LOOP;
    DELETE FROM qwen3_embed.syncs x WHERE x.id = s.id;
    RETURN jsonb_build_object('pending', v_pending);
END
$qwen3_embed_state_sync_remove$;

-- The gate's operation sync_retry: a sync's failed rows back in the queue, every queued row due
-- now, and the sync no longer set aside. Needs UPDATE on the table.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_sync_retry(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_retry$
DECLARE
    s   qwen3_embed.syncs;
    v_n bigint;
BEGIN
    s := qwen3_embed.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_retry');
    WITH moved AS (
        DELETE FROM qwen3_embed.sync_errors e WHERE e.sync_id = s.id RETURNING e.key
    )
    INSERT INTO qwen3_embed.queue (sync_id, key) SELECT DISTINCT s.id, m.key FROM moved m;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    UPDATE qwen3_embed.queue q SET next_try_at = clock_timestamp(), attempts = 0
     WHERE q.sync_id = s.id;
    UPDATE qwen3_embed.syncs x SET failures = 0, paused_until = NULL WHERE x.id = s.id;
    RETURN jsonb_build_object('requeued', v_n);
END
$qwen3_embed_state_sync_retry$;

-- The gate's operation sync_alter: change a sync's batch size, attempts, instruction or size.
-- A new instruction or size makes other vectors: every row with text is queued again (by the
-- caller: qwen3_embed_sync_backlog), the column registry starts moving to the new settings (writes with them are accepted from now on)
-- and the old vectors stay until each row is replaced; queue_done ends the move when the sync's
-- queue is empty. With force, the same settings make other vectors too (those of the loaded
-- model: qwen3_embed_reembed_later). Returns whether the vectors change. Only members of the
-- table's owning role.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_sync_alter(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_alter$
DECLARE
    s          qwen3_embed.syncs;
    v_what     text := 'qwen3_embed_sync_alter';
    v_batch    int;
    v_attempts int;
    v_instruct text;
    v_dims     int;
    v_rel      regclass;
    v_col      name;
    v_changes  boolean;
BEGIN
    s := qwen3_embed.qwen3_embed_state_sync(p_caller, (a->>'id')::int, true, v_what);
    v_batch := coalesce((a->>'batch_size')::int, s.batch_size);
    v_attempts := coalesce((a->>'max_attempts')::int, s.max_attempts);
    v_instruct := CASE WHEN (a->>'default_instruct')::boolean THEN NULL ELSE coalesce(a->>'instruct', s.instruct) END;
    v_dims := coalesce((a->>'dims')::int, s.dims);
    v_rel := coalesce(s.chunk_table, s.relation);
    v_col := CASE WHEN s.chunk_table IS NULL THEN s.target_column ELSE 'embedding' END;
    -- (The column's size is checked when dims changes.)
    v_dims := qwen3_embed.qwen3_embed_sync_settings(v_what, v_batch, v_attempts, v_instruct, v_dims, v_rel,
                                                    CASE WHEN v_dims IS DISTINCT FROM s.dims THEN v_col END);
    v_changes := v_instruct IS DISTINCT FROM s.instruct OR v_dims IS DISTINCT FROM s.dims
                 OR coalesce((a->>'force')::boolean, false);
    IF v_changes AND NOT s.replacing AND EXISTS (
           SELECT 1 FROM qwen3_embed.columns c
            WHERE c.relation = v_rel AND c.column_name = v_col AND c.next_fingerprint IS NOT NULL) THEN
        RAISE EXCEPTION '%: %.% is being re-embedded; change its sync when that is over', v_what, v_rel, quote_ident(v_col)
            USING ERRCODE = 'object_in_use';
    END IF;
    UPDATE qwen3_embed.syncs x
       SET batch_size = v_batch, max_attempts = v_attempts, instruct = v_instruct, dims = v_dims,
           replacing = x.replacing OR v_changes
     WHERE x.id = s.id;
    IF (a->>'no_index')::boolean THEN
        UPDATE qwen3_embed.syncs x SET index_rows = NULL, index_state = NULL, index_error = NULL, index_counted = NULL
         WHERE x.id = s.id AND x.index_state IS DISTINCT FROM 'building';
    ELSIF a->>'index_rows' IS NOT NULL THEN
        PERFORM qwen3_embed.qwen3_embed_sync_index_check('qwen3_embed_sync_alter', v_rel, v_col, (a->>'index_rows')::bigint);
        -- A new threshold: wait for it (again, after a failure); a made index stays made.
        UPDATE qwen3_embed.syncs x
           SET index_rows = (a->>'index_rows')::bigint, index_error = NULL, index_counted = NULL,
               index_state = CASE WHEN x.index_state IN ('ready', 'building') THEN x.index_state ELSE 'waiting' END
         WHERE x.id = s.id;
    END IF;
    IF v_changes THEN
        PERFORM qwen3_embed.qwen3_embed_state_column_move(p_caller, jsonb_build_object(
            'relation', v_rel::oid, 'column', v_col, 'instruct', v_instruct, 'dims', v_dims, 'done', false));
        UPDATE qwen3_embed.queue q SET next_try_at = clock_timestamp(), attempts = 0
         WHERE q.sync_id = s.id;
    END IF;
    RETURN jsonb_build_object('changes', v_changes);
END
$qwen3_embed_state_sync_alter$;

-- The gate's operation queue_add: keys (a JSON array of the key's text forms) of rows of the
-- sync's table to embed; with dedupe, keys already queued are left out. Needs INSERT or UPDATE
-- on the table (the enqueueing trigger calls it as the writer). Returns the rows queued.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_queue_add(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_queue_add$
DECLARE
    v_id  int := (a->>'id')::int;
    v_rel regclass;
    v_n   bigint;
BEGIN
    SELECT s.relation INTO v_rel FROM qwen3_embed.syncs s WHERE s.id = v_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_sync: no sync %', v_id USING ERRCODE = 'undefined_object';
    END IF;
    IF NOT has_table_privilege(p_caller, v_rel, 'INSERT, UPDATE') THEN
        RAISE EXCEPTION 'qwen3_embed_sync: permission denied for table % (INSERT or UPDATE is needed)', v_rel
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    INSERT INTO qwen3_embed.queue (sync_id, key)
    SELECT v_id, k.key FROM jsonb_array_elements_text(a->'keys') k(key)
     WHERE NOT coalesce((a->>'dedupe')::boolean, false)
        OR NOT EXISTS (SELECT 1 FROM qwen3_embed.queue q WHERE q.sync_id = v_id AND q.key = k.key);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    PERFORM qwen3_embed.qwen3_embed_sync_wake();
    RETURN jsonb_build_object('rows', v_n);
END
$qwen3_embed_state_queue_add$;

-- The gate's operation queue_claim: the oldest due rows of a sync that no other worker holds
-- (locked until the caller's transaction ends), at most `batches` (up to 4) batches' worth.
-- Needs UPDATE on the table.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_queue_claim(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_queue_claim$
DECLARE
    s      qwen3_embed.syncs;
    v_ids  bigint[];
    v_keys text[];
BEGIN
    s := qwen3_embed.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_run');
    SELECT array_agg(p.id ORDER BY p.id), array_agg(p.key ORDER BY p.id) INTO v_ids, v_keys
      FROM (SELECT q.id, q.key FROM qwen3_embed.queue q
             WHERE q.sync_id = s.id AND q.next_try_at <= clock_timestamp()
             ORDER BY q.id LIMIT s.batch_size * least((a->>'batches')::int, 4)
               FOR UPDATE SKIP LOCKED) p;
    RETURN jsonb_build_object('ids', to_jsonb(coalesce(v_ids, '{}')), 'keys', to_jsonb(coalesce(v_keys, '{}')));
END
$qwen3_embed_state_queue_claim$;

-- The gate's operation queue_done: a batch embedded: its queue rows (of this sync only) go, and
-- the sync's counters move. Needs UPDATE on the table.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_queue_done(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_queue_done$
DECLARE
    s      qwen3_embed.syncs;
    v_rows int    := (a->>'rows')::int;
    v_secs float8 := (a->>'seconds')::float8;
BEGIN
    s := qwen3_embed.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_run');
    DELETE FROM qwen3_embed.queue q
     WHERE q.sync_id = s.id AND q.id = ANY (ARRAY(SELECT jsonb_array_elements_text(a->'ids'))::bigint[]);
    IF v_rows > 0 THEN
        UPDATE qwen3_embed.syncs x
           SET rows_done = x.rows_done + v_rows, last_done_at = clock_timestamp(),
               rate = CASE WHEN x.rate IS NULL THEN v_rows / greatest(v_secs, 1e-6)
                           ELSE 0.7 * x.rate + 0.3 * v_rows / greatest(v_secs, 1e-6) END
         WHERE x.id = s.id;
    END IF;
    IF s.replacing AND NOT EXISTS (SELECT 1 FROM qwen3_embed.queue q WHERE q.sync_id = s.id) THEN
        -- Every row queued by qwen3_embed_sync_alter or qwen3_embed_reembed_later has its new
        -- vector (or failed for good).
        UPDATE qwen3_embed.syncs x SET replacing = false WHERE x.id = s.id;
        PERFORM qwen3_embed.qwen3_embed_state_column_move(p_caller, jsonb_build_object(
            'relation', coalesce(s.chunk_table, s.relation)::oid,
            'column', CASE WHEN s.chunk_table IS NULL THEN s.target_column ELSE 'embedding' END,
            'instruct', s.instruct, 'dims', s.dims, 'done', true));
    END IF;
    -- A one-time re-embedding goes when it is done, unless rows failed: those stay in view
    -- (qwen3_embed_sync_status, qwen3_embed.sync_errors) until retried.
    IF s.once AND NOT EXISTS (SELECT 1 FROM qwen3_embed.queue q WHERE q.sync_id = s.id)
       AND NOT EXISTS (SELECT 1 FROM qwen3_embed.sync_errors e WHERE e.sync_id = s.id) THEN
        DELETE FROM qwen3_embed.syncs x WHERE x.id = s.id;
    END IF;
    RETURN NULL;
END
$qwen3_embed_state_queue_done$;

-- The gate's operation queue_failed: one queue row of this sync failed: try it again after
-- 2^attempts seconds, or after max_attempts move it to the error table. Needs UPDATE on the table.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_queue_failed(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_queue_failed$
DECLARE
    s   qwen3_embed.syncs;
    q   qwen3_embed.queue;
BEGIN
    s := qwen3_embed.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_run');
    SELECT * INTO q FROM qwen3_embed.queue x WHERE x.id = (a->>'queue_id')::bigint AND x.sync_id = s.id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF q.attempts + 1 >= s.max_attempts THEN
        INSERT INTO qwen3_embed.sync_errors (sync_id, key, sqlstate, message, attempts)
        VALUES (s.id, q.key, a->>'sqlstate', a->>'message', q.attempts + 1);
        DELETE FROM qwen3_embed.queue x WHERE x.id = q.id;
    ELSE
        UPDATE qwen3_embed.queue x
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
CREATE FUNCTION qwen3_embed.qwen3_embed_state_sync_refuse(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_refuse$
DECLARE
    s        qwen3_embed.syncs;
    v_reason text;
    v_n      bigint;
BEGIN
    s := qwen3_embed.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_run');
    v_reason := qwen3_embed.qwen3_embed_sync_refusal(s);
    IF v_reason IS NULL THEN
        RETURN jsonb_build_object('refused', 0);
    END IF;
    WITH moved AS (
        DELETE FROM qwen3_embed.queue q
         WHERE q.sync_id = s.id AND q.next_try_at <= clock_timestamp()
        RETURNING q.key, q.attempts
    )
    INSERT INTO qwen3_embed.sync_errors (sync_id, key, sqlstate, message, attempts)
    SELECT s.id, m.key, '42501', 'qwen3_embed sync: not embedded: ' || v_reason, m.attempts + 1 FROM moved m;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN jsonb_build_object('refused', v_n);
END
$qwen3_embed_state_sync_refuse$;

-- The gate's operation sync_failed: a round of the sync failed as a whole (not one row: its
-- table's code, a lock, the model): set it aside for 2^failures seconds, at most an hour, with
-- the error, while the other syncs go on. Needs UPDATE on the table.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_sync_failed(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_failed$
DECLARE
    s qwen3_embed.syncs;
BEGIN
    s := qwen3_embed.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_run');
    UPDATE qwen3_embed.syncs x
       SET failures = x.failures + 1,
           paused_until = clock_timestamp() + interval '1 second' * least(power(2, least(x.failures, 12)), 3600),
           last_error = left((a->>'sqlstate') || ': ' || (a->>'message'), 1000)
     WHERE x.id = s.id;
    RETURN NULL;
END
$qwen3_embed_state_sync_failed$;

-- The gate's operation sync_succeeded: a round went through: the sync is no longer set aside.
CREATE FUNCTION qwen3_embed.qwen3_embed_state_sync_succeeded(p_caller oid, a jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_state_sync_succeeded$
DECLARE
    s qwen3_embed.syncs;
BEGIN
    s := qwen3_embed.qwen3_embed_state_sync(p_caller, (a->>'id')::int, false, 'qwen3_embed_sync_run');
    UPDATE qwen3_embed.syncs x SET failures = 0, paused_until = NULL, last_error = NULL
     WHERE x.id = s.id AND x.failures > 0;
    RETURN NULL;
END
$qwen3_embed_state_sync_succeeded$;

REVOKE EXECUTE ON FUNCTION
    qwen3_embed.qwen3_embed_state_check(oid, regclass, boolean, text),
    qwen3_embed.qwen3_embed_state_sync(oid, int, boolean, text),
    qwen3_embed.qwen3_embed_state_sync_add(oid, jsonb),
    qwen3_embed.qwen3_embed_state_sync_remove(oid, jsonb),
    qwen3_embed.qwen3_embed_state_sync_retry(oid, jsonb),
    qwen3_embed.qwen3_embed_state_sync_alter(oid, jsonb),
    qwen3_embed.qwen3_embed_state_queue_add(oid, jsonb),
    qwen3_embed.qwen3_embed_state_queue_claim(oid, jsonb),
    qwen3_embed.qwen3_embed_state_queue_done(oid, jsonb),
    qwen3_embed.qwen3_embed_state_queue_failed(oid, jsonb),
    qwen3_embed.qwen3_embed_state_sync_refuse(oid, jsonb),
    qwen3_embed.qwen3_embed_state_sync_failed(oid, jsonb),
    qwen3_embed.qwen3_embed_state_sync_succeeded(oid, jsonb),
    qwen3_embed.qwen3_embed_sync_wake()
FROM PUBLIC;

-- The syncs a qwen3_embed_sync_run call should visit (every one the caller can see, or one):
-- those with due rows and not set aside, with their table's owner, as whom they are drained,
-- and whether their creator may no longer have them drained.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_due(p_id int)
RETURNS TABLE (id int, owner oid, refused boolean, failures int)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.id, c.relowner, qwen3_embed.qwen3_embed_sync_refusal(s) IS NOT NULL, s.failures
      FROM qwen3_embed.syncs s JOIN pg_class c ON c.oid = s.relation
     WHERE ($1 IS NULL OR s.id = $1)
       AND (s.paused_until IS NULL OR s.paused_until <= clock_timestamp())
       AND EXISTS (SELECT 1 FROM qwen3_embed.queue q
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
    max_attempts  int  DEFAULT 5,
    index_rows    bigint DEFAULT NULL)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync$
#variable_conflict use_variable
DECLARE
    r jsonb;
BEGIN
    r := qwen3_embed.qwen3_embed_state('sync_add', jsonb_build_object(
        'what', 'qwen3_embed_sync', 'relation', relation::oid, 'source_column', source_column,
        'target_column', target_column, 'instruct', instruct, 'dims', dims, 'batch_size', batch_size,
        'max_attempts', max_attempts, 'index_rows', index_rows));
    PERFORM qwen3_embed.qwen3_embed_column_model(relation, target_column, instruct, (r->>'dims')::int);
    RAISE NOTICE 'qwen3_embed_sync: %.% is kept in step with %; % rows queued', relation,
        quote_ident(target_column), quote_ident(source_column),
        qwen3_embed.qwen3_embed_sync_backlog((r->>'id')::int, relation, false, false);
    PERFORM qwen3_embed.qwen3_embed_sync_workers_here('qwen3_embed_sync');
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
    r := qwen3_embed.qwen3_embed_state('sync_add', jsonb_build_object(
        'what', 'qwen3_embed_sync_chunks', 'relation', v_rel::oid, 'source_column', source_column,
        'target_column', chunk_table, 'instruct', instruct, 'dims', v_dims, 'batch_size', batch_size,
        'max_attempts', max_attempts, 'chunk_table', v_table::oid, 'chunk_tokens', chunk_tokens,
        'chunk_overlap', overlap));
    PERFORM qwen3_embed.qwen3_embed_column_model(v_table, 'embedding', instruct, v_dims);
    RAISE NOTICE 'qwen3_embed_sync_chunks: % keeps chunks of %.% of % tokens (overlap %); % rows queued',
        v_table, v_rel, quote_ident(source_column), chunk_tokens, overlap,
        qwen3_embed.qwen3_embed_sync_backlog((r->>'id')::int, v_rel, false, false);
    PERFORM qwen3_embed.qwen3_embed_sync_workers_here('qwen3_embed_sync_chunks');
    RETURN (r->>'id')::int;
END
$qwen3_embed_sync_chunks$;

-- The id of the sync of relation.target_column, or undefined_object in p_what's words.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_id(p_rel regclass, p_target text, p_what text)
RETURNS int
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_id$
DECLARE
    v_id int;
BEGIN
    SELECT s.id INTO v_id FROM qwen3_embed.syncs s
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
    SELECT (qwen3_embed.qwen3_embed_state('sync_remove', jsonb_build_object('id',
               qwen3_embed.qwen3_embed_sync_id($1, $2, 'qwen3_embed_unsync')))->>'pending')::bigint
$$;

-- Embeds one batch of queued rows of one sync; returns how many rows it embedded. Runs as the
-- table's owner (qwen3_embed_sync_drain); keys are parameters of the key's own type. Its path is
-- pinned like every routine here, so no other role's object in public can stand in for a
-- built-in while the owner's identity is in use; the owner's triggers fire under that path too
-- (as in PostgreSQL's own maintenance commands and logical replication): they must qualify
-- their names or pin their own search_path.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_batch(s qwen3_embed.syncs, p_ids bigint[], p_keys text[])
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
        v_fp := qwen3_embed.qwen3_embed_column_model(s.chunk_table, 'embedding', s.instruct, s.dims);
        EXECUTE format($sql$
            WITH numbered AS MATERIALIZED (
                SELECT c.%1$I AS k, c.chunk_no, c.chunk, (row_number() OVER (ORDER BY c.%1$I, c.chunk_no))::int AS ord
                  FROM %2$s c WHERE c.%1$I = ANY ($1::%3$s[])
            ), embedded AS MATERIALIZED (
                SELECT e.ord, e.embedding
                  FROM qwen3_embed.qwen3_embed_batch_for_column(ARRAY(SELECT n.chunk FROM numbered n ORDER BY n.ord), $2, $3, $4) AS e
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
              FROM qwen3_embed.qwen3_embed_batch_for_column(ARRAY(SELECT n.body FROM numbered n ORDER BY n.ord), $2, $3, $4) AS e
        ), updated AS (
            UPDATE %3$s AS t SET %4$I = e.embedding
              FROM numbered n JOIN embedded e ON e.ord = n.ord
             WHERE t.%1$I = n.k
            RETURNING 1
        )
        SELECT count(*)::int FROM updated
        $sql$, s.key_column, s.source_column, s.relation, s.target_column, s.key_type)
       INTO v_n USING p_keys, s.instruct, s.dims,
                      qwen3_embed.qwen3_embed_column_model(s.relation, s.target_column, s.instruct, s.dims);
    RETURN v_n;
END
$qwen3_embed_sync_batch$;

-- How sync s's table is no longer what the sync was made for (NULL when it is): a table
-- (not a view or anything else), with its key column of the type the queue carries. The drain
-- asks at every round, before it reads the table.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_changed(s qwen3_embed.syncs)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = s.relation AND c.relkind IN ('r', 'p'))
            THEN format('%s is no longer a table', s.relation)
        WHEN s.chunk_table IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = s.chunk_table AND c.relkind IN ('r', 'p'))
            THEN format('%s is no longer a table', s.chunk_table)
        WHEN NOT EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = s.relation AND x.attname = s.key_column
                            AND x.atttypid = s.key_type AND x.attnum > 0 AND NOT x.attisdropped)
            THEN format('the key column %I of %s is no longer of type %s', s.key_column, s.relation, s.key_type)
    END
$$;

-- One sync's share of a round (qwen3_embed_sync_run, src/sync/drain.rs, calls it as the table's
-- owner): up to p_batches batches of due rows, embedded in one qwen3_embed_sync_batch call (one
-- model call: fewer, fuller forward passes than batch_size rows at a time). A failing call is
-- retried row by row, so one bad row does not hold back the others. Returns the rows embedded
-- and the batches taken.
CREATE FUNCTION qwen3_embed.qwen3_embed_sync_drain(p_id int, p_batches int, OUT embedded int, OUT batches int)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_drain$
DECLARE
    s       qwen3_embed.syncs;
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
    c := qwen3_embed.qwen3_embed_state('queue_claim', jsonb_build_object('id', p_id, 'batches', p_batches));
    -- The gate checked that this role may UPDATE the table: row security now shows it the sync.
    SELECT * INTO STRICT s FROM qwen3_embed.syncs x WHERE x.id = p_id;
    v_msg := qwen3_embed.qwen3_embed_sync_changed(s);
    IF v_msg IS NOT NULL THEN
        RAISE EXCEPTION 'qwen3_embed sync %: %', p_id, v_msg
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Remove the sync (qwen3_embed_unsync) and create it again for the table as it is now.';
    END IF;
    v_ids := ARRAY(SELECT jsonb_array_elements_text(c->'ids'))::bigint[];
    v_keys := ARRAY(SELECT jsonb_array_elements_text(c->'keys'));
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    batches := (cardinality(v_ids) + s.batch_size - 1) / s.batch_size;
    BEGIN
        embedded := qwen3_embed.qwen3_embed_sync_batch(s, v_ids, ARRAY(SELECT DISTINCT k FROM unnest(v_keys) k));
        PERFORM qwen3_embed.qwen3_embed_state('queue_done', jsonb_build_object(
            'id', p_id, 'ids', to_jsonb(v_ids), 'rows', embedded,
            'seconds', extract(epoch FROM clock_timestamp() - v_start)));
    EXCEPTION
        WHEN query_canceled THEN RAISE;
        WHEN OTHERS THEN
            FOR i IN 1 .. cardinality(v_ids) LOOP
                BEGIN
                    v_start := clock_timestamp();
                    v_n := qwen3_embed.qwen3_embed_sync_batch(s, ARRAY[v_ids[i]], ARRAY[v_keys[i]]);
                    embedded := embedded + v_n;
                    PERFORM qwen3_embed.qwen3_embed_state('queue_done', jsonb_build_object(
                        'id', p_id, 'ids', jsonb_build_array(v_ids[i]), 'rows', v_n,
                        'seconds', extract(epoch FROM clock_timestamp() - v_start)));
                EXCEPTION
                    WHEN query_canceled THEN RAISE;
                    WHEN OTHERS THEN
                        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
                        PERFORM qwen3_embed.qwen3_embed_state('queue_failed', jsonb_build_object(
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
    SELECT (qwen3_embed.qwen3_embed_state('sync_retry', jsonb_build_object('id',
               qwen3_embed.qwen3_embed_sync_id($1, $2, 'qwen3_embed_sync_retry')))->>'requeued')::bigint
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
    default_instruct boolean DEFAULT false,
    index_rows       bigint  DEFAULT NULL,
    no_index         boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_sync_alter$
#variable_conflict use_variable
DECLARE
    r    jsonb;
    v_id int := qwen3_embed.qwen3_embed_sync_id(relation, target_column, 'qwen3_embed_sync_alter');
    v_n  bigint := 0;
BEGIN
    r := qwen3_embed.qwen3_embed_state('sync_alter', jsonb_build_object(
        'id', v_id, 'batch_size', batch_size, 'max_attempts', max_attempts, 'instruct', instruct, 'dims', dims,
        'default_instruct', coalesce(default_instruct, false), 'index_rows', index_rows,
        'no_index', coalesce(no_index, false)));
    IF (r->>'changes')::boolean THEN
        v_n := qwen3_embed.qwen3_embed_sync_backlog(v_id, relation, true, false);
        RAISE NOTICE 'qwen3_embed_sync_alter: %.% gets other vectors; % rows queued, each keeps its old vector until it is replaced',
            relation, quote_ident(target_column), v_n;
        PERFORM qwen3_embed.qwen3_embed_sync_workers_here('qwen3_embed_sync_alter');
    END IF;
    RETURN v_n;
END
$qwen3_embed_sync_alter$;

-- Re-embed relation.target_column from source_column with the loaded model, off the calling
-- transaction: queues every row with text and returns the rows queued; the sync workers do the
-- rest, as for a sync (each row keeps its old vector until replaced, nothing lost to a crash,
-- progress in qwen3_embed_sync_status). What a migration (a transaction) calls where
-- CALL qwen3_embed_reembed cannot run. A synced column is re-queued through its sync; any
-- other column gets a one-time sync (no triggers) that goes when it is done. instruct and dims
-- default to the column's registered ones (default_instruct => true: no instruction). Only
-- members of the table's owning role.
CREATE FUNCTION @extschema@.qwen3_embed_reembed_later(
    relation         regclass,
    source_column    text,
    target_column    text,
    instruct         text    DEFAULT NULL,
    dims             int     DEFAULT NULL,
    default_instruct boolean DEFAULT false,
    batch_size       int     DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_reembed_later$
#variable_conflict use_variable
DECLARE
    v_what text := 'qwen3_embed_reembed_later';
    s      qwen3_embed.syncs;
    c      qwen3_embed.columns;
    r      jsonb;
    v_n    bigint;
BEGIN
    IF relation IS NULL OR source_column IS NULL OR target_column IS NULL THEN
        RAISE EXCEPTION '%: relation, source_column and target_column must not be NULL', v_what
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO s FROM qwen3_embed.syncs x
     WHERE x.relation = relation AND x.target_column = target_column AND x.chunk_table IS NULL;
    IF FOUND THEN
        IF s.source_column <> source_column THEN
            RAISE EXCEPTION '%: %.% is kept in step with "%", not "%"', v_what, relation,
                    quote_ident(target_column), s.source_column, source_column
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        r := qwen3_embed.qwen3_embed_state('sync_alter', jsonb_build_object(
            'id', s.id, 'batch_size', batch_size, 'instruct', instruct, 'dims', dims,
            'default_instruct', coalesce(default_instruct, false), 'force', true));
        v_n := qwen3_embed.qwen3_embed_sync_backlog(s.id, relation, true, false);
    ELSE
        SELECT * INTO c FROM qwen3_embed.columns x
         WHERE x.relation = relation AND x.column_name = target_column;
        r := qwen3_embed.qwen3_embed_state('sync_add', jsonb_build_object(
            'what', v_what, 'relation', relation::oid, 'source_column', source_column,
            'target_column', target_column,
            'instruct', CASE WHEN default_instruct THEN NULL ELSE coalesce(instruct, c.instruct) END,
            'dims', coalesce(dims, c.dims), 'batch_size', coalesce(batch_size, 64), 'max_attempts', 5, 'once', true));
        v_n := qwen3_embed.qwen3_embed_sync_backlog((r->>'id')::int, relation, false, false);
        IF v_n = 0 THEN
            -- Nothing to embed: the column is the loaded model's now.
            PERFORM qwen3_embed.qwen3_embed_state('sync_remove', jsonb_build_object('id', (r->>'id')::int));
            PERFORM qwen3_embed.qwen3_embed_state('column_move', jsonb_build_object(
                'relation', relation::oid, 'column', target_column, 'done', true,
                'instruct', CASE WHEN default_instruct THEN NULL ELSE coalesce(instruct, c.instruct) END,
                'dims', (r->>'dims')::int));
        END IF;
    END IF;
    IF v_n > 0 THEN
        RAISE NOTICE '%: % rows of % queued; each keeps its old vector until the sync workers replace it (qwen3_embed_sync_status)',
            v_what, v_n, relation;
        PERFORM qwen3_embed.qwen3_embed_sync_workers_here(v_what);
    ELSE
        RAISE NOTICE '%: no row of % has text; %.% is registered with the loaded model', v_what, relation,
            relation, quote_ident(target_column);
    END IF;
    RETURN v_n;
END
$qwen3_embed_reembed_later$;

CREATE FUNCTION qwen3_embed.qwen3_embed_sync_counts(p_id int,
    OUT pending bigint, OUT waiting_retry bigint, OUT failed bigint, OUT oldest_enqueued timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT q.pending, q.waiting_retry,
           (SELECT count(*) FROM qwen3_embed.sync_errors e WHERE e.sync_id = $1), q.oldest
      FROM (SELECT count(*) FILTER (WHERE x.attempts = 0) AS pending,
                   count(*) FILTER (WHERE x.attempts > 0) AS waiting_retry,
                   min(x.enqueued_at) AS oldest
              FROM qwen3_embed.queue x WHERE x.sync_id = $1) q
$$;

CREATE FUNCTION qwen3_embed.qwen3_embed_sync_eta(p_pending bigint, p_rate float8)
RETURNS interval
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN $1 = 0 THEN interval '0' WHEN $2 > 0 THEN make_interval(secs => $1 / $2) END
$$;

-- Each sync: pending, waiting for a retry, failed and done rows, the recent rate, the time the
-- pending rows should take at that rate, how long the oldest queued row has waited (what to
-- alert on), when it last embedded, and whether it is set aside after failed rounds (until
-- when, and why), and what drains this database's queue.
CREATE VIEW @extschema@.qwen3_embed_sync_status WITH (security_invoker = true) AS
SELECT s.id, s.relation, s.source_column, s.target_column, s.dims, s.instruct,
       c.pending, c.waiting_retry, c.failed, s.rows_done AS done,
       s.rate AS rows_per_second, qwen3_embed.qwen3_embed_sync_eta(c.pending, s.rate) AS time_left,
       coalesce(pg_catalog.now() - c.oldest_enqueued, interval '0') AS oldest_pending_age,
       s.last_done_at, s.created_at, s.created_by, s.paused_until, s.last_error,
       qwen3_embed.qwen3_embed_sync_worker() AS worker, s.replacing, s.once,
       CASE s.index_state
           WHEN 'waiting' THEN format('waiting for %s vectors', s.index_rows)
           WHEN 'building' THEN format('building %I', s.index_name)
           WHEN 'ready' THEN format('ready: %I', s.index_name)
           WHEN 'failed' THEN format('failed: %s', s.index_error)
       END AS index
  FROM qwen3_embed.syncs s,
       LATERAL qwen3_embed.qwen3_embed_sync_counts(s.id) c;
GRANT SELECT ON @extschema@.qwen3_embed_sync_status TO PUBLIC;

-- The syncs' numbers for monitoring (contrib/postgres_exporter/queries.yaml): members of
-- pg_monitor read them for every sync of this database, without the right to UPDATE the tables
-- that qwen3_embed_sync_status asks for. Names and counts only: no key, text or error message.
-- It reads nothing but the extension's own tables.
CREATE FUNCTION @extschema@.qwen3_embed_sync_metrics()
RETURNS TABLE(relation text, target_column text, pending bigint, waiting_retry bigint, failed bigint,
              done bigint, rows_per_second float8, oldest_pending_age_seconds float8, paused boolean)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format('%s', s.relation), pg_catalog.format('%s', s.target_column), c.pending, c.waiting_retry, c.failed, s.rows_done,
           coalesce(s.rate, 0), coalesce(extract(epoch FROM now() - c.oldest_enqueued)::float8, 0),
           coalesce(s.paused_until > now(), false)
      FROM qwen3_embed.syncs s, LATERAL qwen3_embed.qwen3_embed_sync_counts(s.id) c
     ORDER BY s.id
$$;
REVOKE EXECUTE ON FUNCTION @extschema@.qwen3_embed_sync_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.qwen3_embed_sync_metrics() TO pg_monitor;
