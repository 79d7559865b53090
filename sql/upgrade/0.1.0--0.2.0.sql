-- qwen3_embed 0.1.0 -> 0.2.0, run by ALTER EXTENSION qwen3_embed UPDATE.
--
-- 0.2.0 pins search_path in every shipped routine, records who runs a job (so a job whose session
-- died shows as interrupted), adds migrations that can be abandoned, reports more about the model
-- server, registers the model of every column it fills, adds the embedding queue
-- (qwen3_embed_sync, qwen3_embed_sync_alter), adopts columns filled elsewhere
-- (qwen3_embed_adopt), and marks its state tables for pg_dump.
--
-- This part is written by hand: what sql/*.sql cannot say about a 0.1.0 installation (functions
-- whose result type changed, the jobs table's new columns) and the C functions new in 0.2.0 (as
-- pgrx declares them). scripts/release/upgrade_sql.py appends every statement of sql/*.sql after
-- it; tests/sql/upgrade.sql checks that an upgraded database has exactly a fresh install's objects.
\echo Use "ALTER EXTENSION qwen3_embed UPDATE" to load this file. \quit

-- The extension's state (its tables and internal routines) goes to a schema of its own
-- (sql/schema.sql says why).
CREATE SCHEMA qwen3_embed;
GRANT USAGE ON SCHEMA qwen3_embed TO PUBLIC;

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
	"cache_bytes" bigint,
	"query_cache_hits" bigint,
	"query_cache_misses" bigint
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_server_stats_wrapper';

CREATE FUNCTION @extschema@."qwen3_embed_query_cache"() RETURNS TABLE (
	"runs_in" TEXT,
	"entries" bigint,
	"bytes" bigint,
	"max_bytes" bigint,
	"hits" bigint,
	"misses" bigint
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_query_cache_wrapper';

-- qwen3_embed_info gained seven result columns: why the device was chosen, the backend, the
-- packed-weight cache in use, the build profile of the library and the model's task.
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
	"build" TEXT,
	"task" TEXT
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

CREATE FUNCTION @extschema@."qwen3_embed_server_models"() RETURNS TABLE (
	"model_path" TEXT,
	"device" TEXT,
	"task" TEXT,
	"bytes" bigint,
	"load_ms" double precision,
	"requests" bigint,
	"idle_s" double precision,
	"max_bytes" bigint
)
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_server_models_wrapper';

CREATE FUNCTION @extschema@."qwen3_rerank"(
	"query" TEXT,
	"documents" TEXT[],
	"instruct" TEXT DEFAULT NULL,
	"top_n" INT DEFAULT NULL
) RETURNS TABLE (
	"ord" INT,
	"score" real
)
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_rerank_wrapper';

CREATE FUNCTION @extschema@."qwen3_rerank_score"(
	"query" TEXT,
	"document" TEXT,
	"instruct" TEXT DEFAULT NULL
) RETURNS real
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_rerank_score_wrapper';

CREATE FUNCTION qwen3_embed."qwen3_embed_batch_for_column"(
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

-- The jobs table of 0.1.0 goes to the state schema as qwen3_embed.jobs, with its rows,
-- privileges, row security and the constraint names a fresh install gives it.
ALTER TABLE @extschema@.qwen3_embed_jobs SET SCHEMA qwen3_embed;
ALTER TABLE qwen3_embed.qwen3_embed_jobs RENAME TO jobs;
ALTER TABLE qwen3_embed.jobs RENAME CONSTRAINT qwen3_embed_jobs_pkey TO jobs_pkey;
ALTER TABLE qwen3_embed.jobs RENAME CONSTRAINT qwen3_embed_jobs_batch_size_check TO jobs_batch_size_check;

-- The jobs table: the job's kind, a migration's column, the session running it, and the
-- 'interrupted' state. Existing rows are re-embedding jobs with no recorded session.
ALTER TABLE qwen3_embed.jobs
    DROP CONSTRAINT qwen3_embed_jobs_state_check,
    ADD CONSTRAINT jobs_state_check
        CHECK (state IN ('running', 'interrupted', 'failed', 'done')),
    ADD COLUMN kind text NOT NULL DEFAULT 'reembed' CHECK (kind IN ('reembed', 'migrate')),
    ADD COLUMN migrates_column name,
    ADD COLUMN runner_pid int,
    ADD COLUMN runner_started timestamptz,
    ADD CONSTRAINT qwen3_embed_jobs_migration_column
        CHECK (kind <> 'migrate' OR (dims IS NOT NULL AND target_column = migrates_column || '_qwen3_d' || dims));

-- The embedding queue's C functions (src/state.rs, src/sync/).
CREATE FUNCTION qwen3_embed."qwen3_embed_state"(
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

CREATE FUNCTION qwen3_embed."qwen3_embed_outside_transaction"(
	"what" TEXT
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_outside_transaction_wrapper';

CREATE FUNCTION qwen3_embed."qwen3_embed_sync_workers_here"(
	"what" TEXT
) RETURNS INT
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_sync_workers_here_wrapper';

CREATE FUNCTION qwen3_embed."qwen3_embed_sync_wake"() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_sync_wake_wrapper';

CREATE FUNCTION qwen3_embed."qwen3_embed_sync_worker"() RETURNS TEXT
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'qwen3_embed_sync_worker_wrapper';

-- The packed-weight cache's files (src/cache_api.rs).
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
