-- The sync queue under attack by an ordinary role (issue 27). The drain here is called by this
-- superuser session, as the sync workers call it: the table owner's code must still run as the
-- table owner, and no forged state can make the extension act for another role.
CREATE ROLE hs_mallory LOGIN NOSUPERUSER;
CREATE ROLE hs_alice LOGIN NOSUPERUSER;
CREATE ROLE hs_team NOLOGIN;
GRANT hs_team TO hs_mallory;
GRANT CREATE ON SCHEMA public TO hs_mallory, hs_alice, hs_team;
\set VERBOSITY terse

-- Alice's table, kept in step; Mallory may not touch it.
SET ROLE hs_alice;
CREATE TABLE hs_alice_docs (id int PRIMARY KEY, body text, embedding vector(64));
INSERT INTO hs_alice_docs SELECT i, 'alice document ' || i FROM generate_series(1, 6) i;
SELECT qwen3_embed_sync('hs_alice_docs', 'body', 'embedding') > 0 AS synced;
RESET ROLE;
SELECT id AS alice_sync FROM qwen3_embed.syncs WHERE relation = 'hs_alice_docs'::regclass \gset

-- 1. Mallory's table runs her code on every write: a BEFORE and an AFTER trigger that try to
-- make her superuser, an index on a function, a generated column and a CHECK constraint that
-- report who they run as. All must run as hs_mallory, the table's owner. (They qualify the
-- names they call: the worker's search_path is pg_catalog, pg_temp.)
SET ROLE hs_mallory;
CREATE FUNCTION hs_who(what text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RAISE NOTICE '% runs as %, superuser: %', what, current_user,
        (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
    RETURN true;
END $$;
CREATE FUNCTION hs_touch(v vector, what text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM public.hs_who(what);
    RETURN 1;
END $$;
CREATE FUNCTION hs_escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.hs_who(TG_WHEN || ' trigger');
    BEGIN
        EXECUTE 'ALTER ROLE hs_mallory SUPERUSER';
        RAISE NOTICE 'ALTER ROLE hs_mallory SUPERUSER went through';
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'ALTER ROLE refused: %', SQLSTATE;
    END;
    RETURN NEW;
END $$;
CREATE TABLE hs_m (id int PRIMARY KEY, body text, embedding vector(64),
                   touched int GENERATED ALWAYS AS (hs_touch(embedding, 'generated column')) STORED,
                   CHECK (hs_who('CHECK constraint')));
CREATE INDEX ON hs_m (hs_touch(embedding, 'index'));
CREATE TRIGGER b BEFORE UPDATE ON hs_m FOR EACH ROW EXECUTE FUNCTION hs_escalate();
CREATE TRIGGER a AFTER UPDATE ON hs_m FOR EACH ROW EXECUTE FUNCTION hs_escalate();
SELECT qwen3_embed_sync('hs_m', 'body', 'embedding') > 0 AS synced;
INSERT INTO hs_m (id, body) VALUES (1, 'alpha');
RESET ROLE;
SELECT id AS m_sync FROM qwen3_embed.syncs WHERE relation = 'hs_m'::regclass \gset
SELECT qwen3_embed_sync_run(:m_sync, 100) AS rows_embedded;
SELECT pending, waiting_retry, failed, paused_until IS NOT NULL AS set_aside, last_error
  FROM qwen3_embed_sync_status WHERE id = :m_sync;
SELECT key, last_error FROM qwen3_embed.queue WHERE sync_id = :m_sync;
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'hs_mallory';
SELECT count(embedding) AS embedded FROM hs_m;

-- The same for a chunk table's trigger.
SET ROLE hs_mallory;
CREATE TABLE hs_mc (id int PRIMARY KEY, body text);
SELECT qwen3_embed_sync_chunks('hs_mc', 'body', 'hs_mc_chunks', chunk_tokens => 8, overlap => 2) > 0 AS synced;
CREATE TRIGGER c BEFORE UPDATE ON hs_mc_chunks FOR EACH ROW EXECUTE FUNCTION hs_escalate();
INSERT INTO hs_mc VALUES (1, 'a text of a few words, cut in chunks');
RESET ROLE;
SELECT id AS mc_sync FROM qwen3_embed.syncs WHERE relation = 'hs_mc'::regclass \gset
SELECT qwen3_embed_sync_run(:mc_sync, 100) > 0 AS drained;
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'hs_mallory';
SELECT count(*) > 0 AS chunks, count(*) = count(embedding) AS all_embedded FROM hs_mc_chunks;

-- 2. Forged state: the state tables are read only for ordinary roles, whatever the row says.
SET ROLE hs_mallory;
\set VERBOSITY sqlstate
INSERT INTO qwen3_embed.syncs (relation, source_column, target_column, key_column, key_type, created_by)
VALUES ('hs_alice_docs', 'body', 'embedding', 'id', 'int', 'hs_mallory');
UPDATE qwen3_embed.syncs SET key_type = 'text';
UPDATE qwen3_embed.syncs SET chunk_table = 'hs_alice_docs';
INSERT INTO qwen3_embed.queue (sync_id, key) VALUES (1, '1');
DELETE FROM qwen3_embed.queue;
INSERT INTO qwen3_embed.sync_errors (sync_id, key, sqlstate, message, attempts) VALUES (1, '1', 'x', 'x', 1);
-- The gate's operations only through the gate, and the gate checks who calls it.
SELECT qwen3_embed.qwen3_embed_state_sync_remove('hs_alice'::regrole::oid, jsonb_build_object('id', :alice_sync));
SELECT qwen3_embed.qwen3_embed_state('sync_remove', jsonb_build_object('id', :alice_sync));
SELECT qwen3_embed.qwen3_embed_state('queue_claim', jsonb_build_object('id', :alice_sync, 'batches', 1));
SELECT qwen3_embed.qwen3_embed_state('sync_failed', jsonb_build_object('id', :alice_sync, 'sqlstate', 'XX000', 'message', 'forged'));
SELECT qwen3_embed.qwen3_embed_state('drop everything', '{}');
-- A forged migration job cannot point qwen3_embed_abandon at a column no migration made.
CREATE TABLE hs_jobs (id int PRIMARY KEY, body text, embedding vector(64), precious text);
INSERT INTO qwen3_embed.jobs (relation, target_column, source_column, key_column, batch_size, kind, migrates_column, dims)
VALUES ('hs_jobs', 'precious', 'body', 'id', 8, 'migrate', 'embedding', 64);
-- The column registry and the jobs are read only too, even for the table's owner: no planted
-- fingerprint, key or position for another role's write or CALL to obey.
INSERT INTO qwen3_embed.columns (relation, column_name, fingerprint) VALUES ('hs_jobs', 'embedding', 'forged');
UPDATE qwen3_embed.columns SET fingerprint = 'forged';
DELETE FROM qwen3_embed.columns;
UPDATE qwen3_embed.jobs SET last_key = '0';
DELETE FROM qwen3_embed.jobs;
SELECT qwen3_embed.qwen3_embed_state('column_register', jsonb_build_object(
    'relation', 'hs_alice_docs'::regclass::oid, 'column', 'embedding', 'instruct', 'forged', 'dims', 64));
SELECT qwen3_embed.qwen3_embed_state('column_move', jsonb_build_object(
    'relation', 'hs_alice_docs'::regclass::oid, 'column', 'embedding', 'instruct', 'forged', 'dims', 64, 'done', false));
SELECT qwen3_embed.qwen3_embed_state('job_begin', jsonb_build_object(
    'relation', 'hs_alice_docs'::regclass::oid, 'source_column', 'body', 'target_column', 'embedding',
    'batch_size', 8, 'restart', true));
SELECT qwen3_embed.qwen3_embed_state('job_forget', jsonb_build_object('relation', 'hs_alice_docs'::regclass::oid, 'target_column', 'embedding'));
SELECT qwen3_embed.qwen3_embed_state_job_begin('hs_alice'::regrole::oid, '{}');
\set VERBOSITY terse
-- Through the extension's own routines, the owner re-embeds, migrates and abandons as before.
INSERT INTO hs_jobs SELECT i, 'job row ' || i FROM generate_series(1, 5) i;
CALL qwen3_embed_reembed('hs_jobs', 'body', 'embedding', batch_size => 2);
SELECT target_column, state, rows_done, rows_total FROM qwen3_embed_progress WHERE relation = 'hs_jobs'::regclass;
CALL qwen3_embed_migrate_dims('hs_jobs', 'body', 'embedding', 32, batch_size => 2);
SELECT target_column, state, rows_done, kind FROM qwen3_embed_progress WHERE relation = 'hs_jobs'::regclass;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 32)) AS equal FROM hs_jobs;
SELECT column_name, dims FROM qwen3_embed.columns WHERE relation = 'hs_jobs'::regclass;
SELECT qwen3_embed_abandon('hs_jobs', 'embedding');

-- 3. Isolation: Mallory sees only her own syncs, queue and errors, and cannot unsync, retry or
-- drain Alice's.
SELECT count(*) AS syncs_seen FROM qwen3_embed.syncs WHERE relation = 'hs_alice_docs'::regclass;
SELECT count(*) AS queue_rows_seen FROM qwen3_embed.queue q
  WHERE NOT EXISTS (SELECT 1 FROM qwen3_embed.syncs s WHERE s.id = q.sync_id);
SELECT relation FROM qwen3_embed_sync_status ORDER BY relation::text;
\set VERBOSITY sqlstate
SELECT qwen3_embed_unsync('hs_alice_docs', 'embedding');
SELECT qwen3_embed_sync_retry('hs_alice_docs', 'embedding');
SELECT qwen3_embed_sync('hs_alice_docs', 'body', 'embedding');
\set VERBOSITY terse
SELECT qwen3_embed_sync_run(NULL, 100) AS alice_rows_drained_by_mallory;
SELECT qwen3_embed_sync_run(:alice_sync, 100) AS alice_rows_drained_by_mallory;
RESET ROLE;
SELECT pending, done, paused_until FROM qwen3_embed_sync_status WHERE relation = 'hs_alice_docs'::regclass;
SELECT qwen3_embed_sync_run(NULL, 100) AS rows_embedded;
SELECT count(embedding) AS alice_embedded FROM hs_alice_docs;

-- 4. Bounded arguments, and a sync whose rounds fail is set aside while the others go on.
SET ROLE hs_mallory;
\set VERBOSITY sqlstate
CREATE TABLE hs_bad (id int PRIMARY KEY, body text, embedding vector(64));
SELECT qwen3_embed_sync('hs_bad', 'body', 'embedding', batch_size => 2147483647);
SELECT qwen3_embed_sync('hs_bad', 'body', 'embedding', max_attempts => 0);
CREATE TABLE hs_small (id int PRIMARY KEY, body text, embedding vector(16));
SELECT qwen3_embed_sync('hs_small', 'body', 'embedding');
SELECT qwen3_embed_sync_chunks('hs_bad', 'body', 'hs_bad_chunks', dims => 16);
CREATE TABLE hs_arr (id int[] PRIMARY KEY, body text, embedding vector(64));
SELECT qwen3_embed_sync('hs_arr', 'body', 'embedding');
SELECT * FROM qwen3_chunks('hello', NULL, 2);
\set VERBOSITY terse
-- A team table: Mallory (a member) creates the sync; then the owning role gives up its own
-- UPDATE right, so every round of that sync fails as a whole.
SET ROLE hs_team;
CREATE TABLE hs_team_docs (id int PRIMARY KEY, body text, embedding vector(64));
GRANT SELECT, UPDATE ON hs_team_docs TO hs_mallory;
SET ROLE hs_mallory;
SELECT qwen3_embed_sync('hs_team_docs', 'body', 'embedding') > 0 AS synced;
INSERT INTO hs_team_docs VALUES (1, 'team text');
SET ROLE hs_team;
REVOKE UPDATE ON hs_team_docs FROM hs_team;
RESET ROLE;
UPDATE hs_alice_docs SET body = 'alice changed ' || id WHERE id <= 2;
SELECT qwen3_embed_sync_run(NULL, 100) AS rows_embedded;
SELECT relation, pending, paused_until > now() AS set_aside, split_part(last_error, ':', 1) AS error
  FROM qwen3_embed_sync_status WHERE relation IN ('hs_team_docs'::regclass, 'hs_alice_docs'::regclass)
 ORDER BY relation::text;
SELECT qwen3_embed_sync_run(NULL, 100) AS while_set_aside;
-- The creator losing its rights sends the rows to the error table with the reason.
SET ROLE hs_team;
GRANT UPDATE ON hs_team_docs TO hs_team;
REVOKE UPDATE ON hs_team_docs FROM hs_mallory;
RESET ROLE;
REVOKE hs_team FROM hs_mallory;
SELECT qwen3_embed_sync_retry('hs_team_docs', 'embedding') AS requeued;
SELECT qwen3_embed_sync_run(NULL, 100) AS rows_embedded;
SELECT key, sqlstate, message FROM qwen3_embed.sync_errors e
  JOIN qwen3_embed.syncs s ON s.id = e.sync_id WHERE s.relation = 'hs_team_docs'::regclass;

-- Clean up.
SET ROLE hs_mallory;
SELECT qwen3_embed_unsync('hs_m', 'embedding') AS pending_dropped;
SELECT qwen3_embed_unsync('hs_mc', 'hs_mc_chunks') AS pending_dropped;
RESET ROLE;
SELECT qwen3_embed_unsync('hs_team_docs', 'embedding') AS pending_dropped;
SELECT qwen3_embed_unsync('hs_alice_docs', 'embedding') AS pending_dropped;
DROP TABLE hs_jobs, hs_m, hs_mc_chunks, hs_mc, hs_bad, hs_small, hs_arr, hs_team_docs, hs_alice_docs;
DROP FUNCTION hs_escalate(), hs_touch(vector, text), hs_who(text);
DELETE FROM qwen3_embed.columns WHERE relation IS NULL OR NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = relation);
REVOKE CREATE ON SCHEMA public FROM hs_mallory, hs_alice, hs_team;
DROP ROLE hs_mallory, hs_alice, hs_team;
