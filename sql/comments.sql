-- Comments on every object the extension creates (runs last: `finalize` in src/lib.rs).

COMMENT ON SCHEMA qwen3_embed IS
'The state tables of the qwen3_embed extension (columns, jobs, syncs, queue, sync_errors): read them, change them only through the extension''s functions.';

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
'The loaded model (loading it if needed): file, format, architecture, size, tensor types, dimensions, vocabulary, device, threads, fingerprint, load time, where it runs (backend or server), why that device was chosen, the compute backend (kernels or candle), the packed-weight cache, the build profile of the library (release, or debug: several times slower; reinstall with cargo pgrx install --release), and the model''s task (embedding).';

COMMENT ON FUNCTION @extschema@.qwen3_rerank(text, text[], text, integer) IS
'Scores each of documents for query with the reranker of qwen3_embed.reranker_path (Qwen3-Reranker): P(yes) in [0, 1] that the document meets the query under instruct (default: the upstream web search task). One row per document in input order (ord from 1), or with top_n the best top_n, highest score first. NULL documents (or a NULL query) score NULL; a NULL array gives no rows. A pair longer than qwen3_embed.max_tokens loses the end of its document (qwen3_embed.on_long_input); the whole call is bounded by qwen3_embed.max_request_tokens. Use it on the candidates of a vector search: ORDER BY embedding <=> qwen3_embed_query($1) LIMIT 50.';

COMMENT ON FUNCTION @extschema@.qwen3_rerank_score(text, text, text) IS
'The reranker''s score of one document for query (see qwen3_rerank): P(yes) in [0, 1]; NULL when either is NULL.';

COMMENT ON FUNCTION @extschema@.qwen3_embed_server_stats() IS
'The model server (when qwen3_embed is in shared_preload_libraries): state (off, unavailable, running), process id, restarts, model and load time, requests, withdrawn requests, inputs, tokens, forward-pass groups (batches), mean requests per batch, queue depth, tokens per second of compute, last error (superusers only), models loaded, the model being loaded now, the estimated tokens in flight with their limit (qwen3_embed.server_max_tokens), and the query cache''s hits and misses.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_query_cache() IS
'The query cache that serves this session: the model server''s (runs_in = server), or without it this backend''s; its entries, bytes, bound (qwen3_embed.query_cache_size) and how often it answered (hits) or computed (misses). A query (one text embedded outside an INSERT, UPDATE or COPY, for no registered column) found there gives the very vector computed before.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_server_models() IS
'The models resident in the model server now (none when it does not run), least recently used first: file, device, task (embedding or rerank), bytes of weights held, load time, requests answered, seconds since last used, and the memory all may take together (qwen3_embed.server_model_memory; NULL: no limit). Loading a model that would pass it unloads the least recently used ones.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_default_task() IS
'The upstream default retrieval task that qwen3_embed_query uses as its instruction.';

COMMENT ON FUNCTION @extschema@.qwen3_embed_trigger() IS
'Trigger function: BEFORE INSERT OR UPDATE ... FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger(''source_column'', ''target_column'' [, ''instruct'' [, ''dims'']]) embeds the source text into the target column on INSERT, and on UPDATE only when the source changed. Without dims, a vector(n) or halfvec(n) target gets n dimensions.';

COMMENT ON PROCEDURE @extschema@.qwen3_embed_reembed(regclass, text, text, text, integer, integer, boolean) IS
'Re-embeds source_column into target_column for every row, in primary-key order, batch_size rows per qwen3_embed_batch call, committing after each batch; CALLed again after an interruption it resumes after the last committed batch (restart => true starts over). CALL it outside a transaction block; progress is in qwen3_embed_progress.';

COMMENT ON PROCEDURE @extschema@.qwen3_embed_migrate_dims(regclass, text, text, integer, text, integer) IS
'Moves target_column to new_dims dimensions: fills a new column with resumable batches (kept current by a temporary trigger), then drops the old column and renames the new one in one transaction. Indexes on the old column go with it and must be recreated. CALL it outside a transaction block; CALL it again to resume.';

COMMENT ON TABLE qwen3_embed.jobs IS
'One row per re-embedding job (table and target column) of qwen3_embed_reembed and qwen3_embed_migrate_dims: settings, last committed key, rows done and total, state (running, interrupted, failed, done), last error, times, kind (reembed, or migrate for a migration''s new column) and the session running it. qwen3_embed_abandon forgets a job (and drops a migration''s leftovers). Written only through the extension''s functions; each role reads the jobs of tables it may UPDATE.';

COMMENT ON VIEW @extschema@.qwen3_embed_progress IS
'Progress of re-embedding jobs: state (a running job whose session is gone shows as interrupted), rows done of total, percent, last error and elapsed time.';

COMMENT ON FUNCTION @extschema@.qwen3_embed_abandon(regclass, text) IS
'Forgets the job on relation.target_column. For a migration (named by its new column, or by the column being migrated) it also drops the migration''s new column and its sync trigger, so nothing keeps embedding for a migration that will not be finished. Refused while another session runs the job.';

COMMENT ON FUNCTION qwen3_embed.qwen3_embed_job_state(text, integer, timestamp with time zone) IS
'Internal: a job''s state as qwen3_embed_progress shows it.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_job_percent(text, bigint, bigint) IS
'Internal: a job''s percent done as qwen3_embed_progress shows it.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_job_claim(regclass, name) IS
'Internal (qwen3_embed_state): records this session as the one running a job.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_job_key(regclass, text) IS
'Internal (qwen3_embed_state): the single-column primary key a job walks, or an error.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_job_columns(regclass, name[], text) IS
'Internal (qwen3_embed_state): raises 42703 unless every name is a column of the table.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_job_begin(oid, jsonb) IS
'Internal (qwen3_embed_state): starts, restarts or resumes a re-embedding job, its key taken from the catalog; the column moves to the loaded model.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_job_lock(oid, jsonb) IS
'Internal (qwen3_embed_state): locks a job''s row for the caller''s transaction and returns it.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_job_progress(oid, jsonb) IS
'Internal (qwen3_embed_state): records a job''s finished batch, or the rows it will walk.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_job_end(oid, jsonb) IS
'Internal (qwen3_embed_state): records a job as done (the column registry then holds the new model), interrupted or failed.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_job_migrate(oid, jsonb) IS
'Internal (qwen3_embed_state): records the job of a migration whose new column the caller has added. Members of the table''s owning role only.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_job_swap(oid, jsonb) IS
'Internal (qwen3_embed_state): after a migration''s swap, renames the column''s registration and records the job as done. Members of the table''s owning role only.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_job_forget(oid, jsonb) IS
'Internal (qwen3_embed_state): forgets a job (a migration''s with its column''s registration; members of the table''s owning role only).';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_job_start(regclass, name, name, text, integer, integer, boolean) IS
'Internal (qwen3_embed_reembed): checks the arguments and starts, restarts or resumes a job.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_job_step(regclass, name) IS
'Internal (qwen3_embed_reembed): embeds and writes the next batch of a job, recording an error or a cancel in the job.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_migrate_prepare(regclass, name, name, integer, text, integer) IS
'Internal (qwen3_embed_migrate_dims): checks, then creates or finds the new column, its sync trigger and its job.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_migrate_swap(regclass, name, name, integer, text, integer) IS
'Internal (qwen3_embed_migrate_dims): embeds rows the walk missed and swaps the new column in.';

COMMENT ON TABLE qwen3_embed.syncs IS
'One row per column kept in step with its source text through the embedding queue (qwen3_embed_sync): settings, key column and type, batch size, attempts before a row fails, rows embedded, the role that created it, and its back-off after failed rounds. Written only through the extension''s functions; each role reads the syncs of tables it may UPDATE.';
COMMENT ON TABLE qwen3_embed.queue IS
'Rows waiting to be embedded by the sync workers (or qwen3_embed_sync_run): sync, key, attempts so far, when next tried, last error. Written by the tables'' triggers in the writers'' transactions, and otherwise only through the extension''s functions; each role reads the rows of tables it may UPDATE.';
COMMENT ON TABLE qwen3_embed.sync_errors IS
'Rows that failed max_attempts times: sync, key, SQLSTATE, message, attempts, time. qwen3_embed_sync_retry puts them back in the queue.';
COMMENT ON VIEW @extschema@.qwen3_embed_sync_status IS
'Each sync: pending rows, rows waiting for a retry, failed rows, rows embedded, the recent rate in rows per second, the time the pending rows should take at that rate, how long the oldest queued row has waited (oldest_pending_age, 0 when none waits), when it last embedded, what drains this database''s queue now (worker), and whether rows queued by qwen3_embed_sync_alter are being replaced (replacing).';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_index_check(text, regclass, name, bigint) IS
'Internal (qwen3_embed_sync, qwen3_embed_sync_alter): raises unless the column can have the HNSW index a sync makes (vector(n) or halfvec(n), n at most 4000).';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_index_syncs(text) IS
'Internal (the sync worker): the syncs whose index is in the given state, with their table''s owner: ''waiting'' ones whose index may be due, or ''building'' ones (at its first look: builds an earlier worker did not finish).';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_index_enough(integer) IS
'Internal (the sync worker, as the table''s owner): whether the sync''s column holds index_rows vectors.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_index_begin(integer, boolean) IS
'Internal (the sync worker): records the count; with enough vectors, the index''s name and CREATE INDEX CONCURRENTLY statement.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_index_end(integer, text) IS
'Internal (the sync worker): records the build as ready or failed; returns the statement that drops an invalid index left behind.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_metrics() IS
'Each sync of this database in numbers, for monitoring (contrib/postgres_exporter/queries.yaml): table, column, pending, waiting and failed rows, rows embedded, rows per second, seconds the oldest queued row has waited, and whether it is set aside. Members of pg_monitor may call it for every sync; no key, text or error message is shown.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_eta(bigint, double precision) IS
'Internal (qwen3_embed_sync_status): pending rows over the recent rate, as an interval.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync(regclass, text, text, text, integer, integer, integer, bigint) IS
'Keeps target_column in step with source_column through the embedding queue: installs statement-level triggers that queue written rows (the write embeds nothing), queues every existing row, and returns the sync''s id. The sync workers (or qwen3_embed_sync_run) embed the queue. With index_rows, the sync worker creates the column''s HNSW index (cosine; as halfvec beyond 2000 dimensions) concurrently, as the table''s owner, once the column holds that many vectors (qwen3_embed_sync_status.index).';
COMMENT ON FUNCTION @extschema@.qwen3_embed_unsync(regclass, text) IS
'Stops keeping a column in step: drops its triggers, queue rows and errors; returns how many rows were still queued.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_run(integer, integer) IS
'Embeds up to max_batches batches of queued rows (of every sync the caller may UPDATE the table of, or of sync_id) and returns the rows embedded; what the sync workers call. Each sync is drained as its table''s owner, in a security-restricted operation; a sync whose round fails is set aside with back-off (paused_until, last_error in qwen3_embed_sync_status).';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_workers_here(text) IS
'Internal (qwen3_embed_sync, qwen3_embed_sync_chunks): the sync workers that may drain this database (qwen3_embed.sync_workers, shared by every database, when preloaded with the model server and qwen3_embed.sync_database is empty or names this one; else 0); warns, naming what, when none may.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_worker() IS
'What drains this database''s sync queue now, in words: a worker''s pid and rows embedded, one starting or waiting for a free worker, none while the queue is empty, or why none can (qwen3_embed_sync_status.worker).';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_wake() IS
'Internal (the queue''s triggers): asks for a sync worker in this database when the transaction commits.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_adopt(regclass, text, text, text, integer, integer, double precision, boolean) IS
'Registers a column filled elsewhere (llama.cpp, another server, the engine CLI) as if the extension had filled it: a random sample of up to sample rows is embedded again with the loaded model, instruct and dims, and every one must agree with the stored vector at cosine >= min_cosine (0.98), else 55000 with the measured agreement. With sync (the default) the column is then kept in step, and only its rows without a vector are queued. Members of the table''s owning role only.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_alter(regclass, text, integer, integer, text, integer, boolean, bigint, boolean) IS
'Changes a sync in place: batch_size, max_attempts, instruct, dims (NULL leaves each; default_instruct => true goes back to the default instruction). A new instruction or size queues every row again; each keeps its old vector until it is replaced, and the column registry moves to the new settings when the queue is empty. Returns the rows queued. index_rows sets the number of vectors at which the sync worker creates the HNSW index; no_index => true stops waiting for it.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_reembed_later(regclass, text, text, text, integer, boolean, integer) IS
'Re-embeds a column with the loaded model without committing: queues every row with text and returns the rows queued; the sync workers replace each vector (the old one serves until then; progress in qwen3_embed_sync_status). What a migration calls inside its transaction, where CALL qwen3_embed_reembed cannot run. A synced column goes through its sync; another column gets a one-time sync (no triggers) that goes when done. instruct and dims default to the column''s registered ones (default_instruct => true: no instruction). Only members of the table''s owning role.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_outside_transaction(text) IS
'Internal (qwen3_embed_reembed, qwen3_embed_migrate_dims): raises 2D000, with a hint saying what to use instead, inside a transaction block, before the procedure does any work.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_retry(regclass, text) IS
'Puts the failed rows of a sync back in the queue and makes every queued row due now; returns how many came back.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_enqueue() IS
'Internal: the statement-level trigger function that queues written rows for a sync.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_batch(qwen3_embed.syncs, bigint[], text[]) IS
'Internal (qwen3_embed_sync_drain): embeds one batch of queued rows, as the table''s owner.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_counts(integer) IS
'Internal (qwen3_embed_sync_status): pending, waiting and failed rows of a sync, and when its oldest queued row was queued.';

COMMENT ON TABLE qwen3_embed.columns IS
'One row per embedding column the extension fills (trigger, sync queue, re-embedding): the fingerprint of the model that made its vectors (next_fingerprint while a re-embedding moves it to another), its instruction and size. Writes with another model are refused. Written only through the extension''s functions; each role reads the columns of tables it may UPDATE.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_check() IS
'Registered embedding columns, their model''s fingerprint, the one a re-embedding moves them to, the loaded model''s, and whether they match: a column that does not match refuses writes until it is re-embedded.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_batch_for_column(text[], text, integer, text) IS
'qwen3_embed_batch for a column whose vectors came from the model with fingerprint: any other loaded model is an error (55000). What the trigger, the sync queue and the re-embedding call.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_column_model(regclass, name, text, integer) IS
'Internal: the fingerprint a write into a column must be made with, registering the column with the loaded model at its first write.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_column_register(oid, jsonb) IS
'Internal (qwen3_embed_state): registers a column with the loaded model at its first write. Takes INSERT or UPDATE on the table.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_column_move(oid, jsonb) IS
'Internal (qwen3_embed_state): a re-embedding of a column to the loaded model starts, or ends (the registry then holds the new model).';
COMMENT ON SEQUENCE qwen3_embed.syncs_id_seq IS 'Ids of qwen3_embed.syncs.';
COMMENT ON SEQUENCE qwen3_embed.queue_id_seq IS 'Ids of qwen3_embed.queue.';
COMMENT ON SEQUENCE qwen3_embed.sync_errors_id_seq IS 'Ids of qwen3_embed.sync_errors.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_sync_chunks(regclass, text, text, integer, integer, text, integer, integer, integer) IS
'Keeps a chunk table in step with source_column through the embedding queue: each row''s text split into chunks of at most chunk_tokens tokens overlapping by overlap (qwen3_chunks), one row and one vector per chunk in chunk_table, which it creates (key, chunk_no, chunk, embedding; rows go with their source row). Returns the sync''s id.';
COMMENT ON FUNCTION @extschema@.qwen3_chunks(text, integer, integer) IS
'input split into chunks of at most chunk_tokens tokens as the model sees them (the end-of-text token included), consecutive chunks sharing overlap tokens; chunk_no from 1; no chunk for an empty input.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state(text, jsonb) IS
'Internal: the one way the state tables (sync queue, column registry, re-embedding jobs) are changed. Runs the qwen3_embed_state_<op> function as the extension''s owner for the calling role, which it checks first.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_check(oid, regclass, boolean, text) IS
'Internal (qwen3_embed_state): raises 42501 unless the role may UPDATE the table (or, for creating and removing syncs, is a member of its owning role).';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_sync(oid, integer, boolean, text) IS
'Internal (qwen3_embed_state): a sync, after qwen3_embed_state_check for the role.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_settings(text, integer, integer, text, integer, regclass, name) IS
'Internal (qwen3_embed_state: sync_add, sync_alter): raises unless batch_size, max_attempts, the instruction and dims are in range (dims one the model has and that fits the target column); returns dims, the column''s size when NULL.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_sync_add(oid, jsonb) IS
'Internal (qwen3_embed_state): validates and records a new sync and creates its triggers (its backlog is queued by the caller: qwen3_embed_sync_backlog).';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_sync_remove(oid, jsonb) IS
'Internal (qwen3_embed_state): drops a sync''s triggers, queue and errors.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_sync_alter(oid, jsonb) IS
'Internal (qwen3_embed_state): changes a sync''s settings; a change of its vectors starts the column registry''s move (the caller queues its rows again). Members of the table''s owning role only.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_sync_retry(oid, jsonb) IS
'Internal (qwen3_embed_state): puts a sync''s failed rows back in the queue and ends its back-off.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_sync_refuse(oid, jsonb) IS
'Internal (qwen3_embed_state): moves a sync''s due rows to the error table when the role that created it may no longer read its source or write its target.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_sync_failed(oid, jsonb) IS
'Internal (qwen3_embed_state): sets a sync whose round failed aside for 2^failures seconds (at most an hour), with the error.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_sync_succeeded(oid, jsonb) IS
'Internal (qwen3_embed_state): ends a sync''s back-off after a round that went through.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_queue_add(oid, jsonb) IS
'Internal (qwen3_embed_state): queues keys of a sync''s table for a role that may INSERT or UPDATE it (the enqueueing trigger, the backlog).';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_columns(integer, oid) IS
'Internal: the key, source and target columns of a sync of the given table, for the enqueueing trigger and the backlog, which run as the writer.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_backlog(integer, regclass, boolean, boolean) IS
'Internal: queues, as the calling role, the rows of a sync''s table that have text (or only those without a vector), in batches through qwen3_embed_state.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_forget_dropped() IS
'Internal: the sql_drop event trigger''s function: removes the syncs, queue rows, column registry rows and re-embedding jobs of dropped tables and columns.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_queue_claim(oid, jsonb) IS
'Internal (qwen3_embed_state): locks and returns the oldest due queue rows of a sync that no other worker holds.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_queue_done(oid, jsonb) IS
'Internal (qwen3_embed_state): deletes an embedded batch''s queue rows and moves the sync''s counters.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_state_queue_failed(oid, jsonb) IS
'Internal (qwen3_embed_state): schedules a failed queue row''s next try, or moves it to the error table after max_attempts.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_clear() IS
'Internal: BEFORE UPDATE row trigger of a sync that empties the target when the source became NULL.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_refusal(qwen3_embed.syncs) IS
'Internal (qwen3_embed_sync_run): why the role that created a sync may no longer have it drained, or NULL.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_due(integer) IS
'Internal (qwen3_embed_sync_run): the syncs with due rows that are not set aside, with their table''s owner.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_drain(integer, integer) IS
'Internal (qwen3_embed_sync_run): embeds up to p_batches batches of one sync''s due rows in one model call, retrying row by row when it fails; run as the table''s owner.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_id(regclass, text, text) IS
'Internal: the id of the sync of relation.target_column, or an error in the caller''s words.';
COMMENT ON FUNCTION @extschema@.qwen3_embed_cache_files() IS
'The packed-weight cache directory''s files (qwen3_embed.cache_dir), least recently used first: path, bytes, whether a process maps it (in_use), when it was last mapped and written, the model file name, kernel table and layout it was packed for, and whether it is a partial write. Superusers and pg_read_server_files only: it shows server file paths. Remove files with qwen3-embed cache prune.';
COMMENT ON FUNCTION @extschema@.qwen3_search(regclass, text, integer, integer, boolean, jsonb, text, text, regconfig, integer, double precision, double precision, text, text, regclass) IS
'The k rows of relation that best answer query: a vector ranking (the query''s embedding against the embedding column, through its HNSW index) and a keyword ranking (rows holding any of the query''s words in ts_config, by ts_rank_cd) of candidates rows each, fused by reciprocal rank fusion (weight / (rrf_k + rank) summed over the stages); with rerank, the fused best candidates reordered by qwen3_rerank. Each row: its key as text, its rank, each stage''s rank (NULL: not found there), the fused score, the rerank score, the matching chunk (a table synced with qwen3_embed_sync_chunks is searched by its chunks) and the row as jsonb. filter: a JSON object of column = value (an array: any of them). Runs as the caller: privileges and row-level security apply.';
COMMENT ON FUNCTION qwen3_embed.qwen3_search_column(text, regclass, text, name) IS
'Internal (qwen3_search): the one text or embedding column of a table, or an error naming the candidates.';
COMMENT ON FUNCTION qwen3_embed.qwen3_search_distance(regclass, name) IS
'Internal: the distance operator the HNSW or IVFFlat index of a vector column was built for (cosine without one), and whether it has one.';
COMMENT ON FUNCTION qwen3_embed.qwen3_search_filter(regclass, jsonb, name) IS
'Internal: the WHERE clause of qwen3_search''s filter, each value compared in its column''s type.';
COMMENT ON EVENT TRIGGER qwen3_embed_forget_dropped IS
'Removes what qwen3_embed keeps about a table or column (syncs, queue rows, column registry rows, re-embedding jobs) when it is dropped.';
COMMENT ON FUNCTION qwen3_embed.qwen3_embed_sync_changed(qwen3_embed.syncs) IS
'Internal (qwen3_embed_sync_drain): how a sync''s table or key column is no longer what the sync was made for, or NULL.';
