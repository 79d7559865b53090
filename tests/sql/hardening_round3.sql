-- Privileged code never within reach of a user's objects (issue 39, items 1, 2, 7, 8, 10, 11).
-- The drain here is called by this superuser session, as the sync workers call it.
CREATE ROLE h3_mallory LOGIN NOSUPERUSER;
CREATE ROLE h3_alice LOGIN NOSUPERUSER;
GRANT CREATE ON SCHEMA public TO h3_mallory, h3_alice;
\set VERBOSITY terse

-- What runs with the extension owner's rights: the gate (a C function, qwen3_embed_state) and
-- these SECURITY DEFINER functions, none of which reads a user's table, type or setting.
SELECT p.proname FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qwen3_embed') AND p.prosecdef
 ORDER BY 1;

SET ROLE h3_mallory;
-- Her code tries to make her superuser wherever it runs, and says when it would have.
CREATE FUNCTION h3_escalate() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'ALTER ROLE h3_mallory SUPERUSER';
    RAISE NOTICE 'ALTER ROLE h3_mallory SUPERUSER went through';
    RETURN true;
EXCEPTION WHEN OTHERS THEN
    RETURN false;
END $$;

-- 1. A cast on the source column: a type of her own whose text form is her function.
CREATE TYPE h3_t AS (body text);
CREATE FUNCTION h3_to_text(h3_t) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.h3_escalate();
    RETURN ($1).body;
END $$;
CREATE CAST (h3_t AS text) WITH FUNCTION h3_to_text(h3_t);
CREATE TABLE h3_cast (id int PRIMARY KEY, body h3_t, embedding vector(64));
INSERT INTO h3_cast VALUES (1, ROW('first')::h3_t);
SELECT qwen3_embed_sync('h3_cast', 'body', 'embedding') > 0 AS synced;
INSERT INTO h3_cast VALUES (2, ROW('second')::h3_t);
UPDATE h3_cast SET body = ROW('first, changed')::h3_t WHERE id = 1;
-- Her operators first on the search path: what runs as the extension's owner pins pg_catalog
-- first and never resolves through them.
CREATE FUNCTION h3_int_eq(int, int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.h3_escalate();
    RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE FUNCTION h3_text_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.h3_escalate();
    RETURN $1 OPERATOR(pg_catalog.=) $2;
END $$;
CREATE OPERATOR public.= (LEFTARG = int, RIGHTARG = int, FUNCTION = h3_int_eq);
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = h3_text_eq);
SET search_path = public, pg_catalog;
INSERT INTO h3_cast VALUES (3, ROW('third')::h3_t);
RESET search_path;
DROP OPERATOR public.= (int, int);
DROP OPERATOR public.= (text, text);
RESET ROLE;
SELECT qwen3_embed_sync_run(NULL, 10) AS rows_embedded;
SELECT id, embedding IS NOT NULL AS embedded FROM h3_cast ORDER BY id;
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'h3_mallory';

-- The key column changed to a type of hers after the sync was made: the drain refuses the
-- table as it is now, before reading it.
SET ROLE h3_mallory;
CREATE DOMAIN h3_key AS int CHECK (public.h3_escalate() IS NOT NULL);
ALTER TABLE h3_cast ALTER COLUMN id TYPE h3_key;
UPDATE h3_cast SET body = ROW('second, changed')::h3_t WHERE id = 2;
RESET ROLE;
SELECT qwen3_embed_sync_run(NULL, 10) AS rows_embedded;
SELECT regexp_replace(last_error, 'sync [0-9]+', 'sync N') AS last_error, paused_until IS NOT NULL AS set_aside
  FROM qwen3_embed_sync_status WHERE relation = 'h3_cast'::regclass;
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'h3_mallory';
SELECT qwen3_embed_unsync('h3_cast', 'embedding') >= 0 AS unsynced;

-- 2. A synced table turned into a view (PostgreSQL 15 still converts an empty table): changing
-- the sync queues the rows as the caller, who runs her own view; the drain refuses a view.
SET ROLE h3_mallory;
CREATE TABLE h3_view (id int PRIMARY KEY, body text, embedding vector(64));
SELECT qwen3_embed_sync('h3_view', 'body', 'embedding') > 0 AS synced;
DO $$
DECLARE t name;
BEGIN
    FOR t IN SELECT tgname FROM pg_trigger WHERE tgrelid = 'h3_view'::regclass AND NOT tgisinternal LOOP
        EXECUTE format('DROP TRIGGER %I ON h3_view', t);
    END LOOP;
    ALTER TABLE h3_view DROP CONSTRAINT h3_view_pkey;
END $$;
VACUUM h3_view;  -- clears relhastriggers
DO $$
BEGIN
    BEGIN
        CREATE RULE "_RETURN" AS ON SELECT TO h3_view DO INSTEAD
            SELECT 1 AS id, 'x' || public.h3_escalate()::text AS body, NULL::vector(64) AS embedding;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'not converted: %', SQLERRM;
    END;
END $$;
SELECT relkind FROM pg_class WHERE oid = 'h3_view'::regclass;
SELECT qwen3_embed_sync_alter('h3_view', 'embedding', instruct => 'another task') >= 0 AS altered;
RESET ROLE;
SELECT qwen3_embed_sync_run(NULL, 10) >= 0 AS drained;
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'h3_mallory';
SELECT coalesce(last_error, '') LIKE CASE WHEN relkind = 'v' THEN '55000: %is no longer a table' ELSE '' END AS refused_or_still_a_table
  FROM qwen3_embed_sync_status s JOIN pg_class c ON c.oid = s.relation WHERE s.relation = 'h3_view'::regclass;

-- 7. A setting her trigger changes for the session ends with her sync's share: Alice's rows,
-- drained in the same call after hers, are embedded.
SET ROLE h3_mallory;
CREATE TABLE h3_guc (id int PRIMARY KEY, body text, embedding vector(64));
CREATE FUNCTION h3_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.set_config('qwen3_embed.expect_fingerprint', 'not-the-model', false);
    PERFORM pg_catalog.set_config('search_path', 'public', false);
    RETURN NEW;
END $$;
CREATE TRIGGER h3_set BEFORE UPDATE ON h3_guc FOR EACH ROW EXECUTE FUNCTION h3_set();
INSERT INTO h3_guc VALUES (1, 'mallory''s row');
SELECT qwen3_embed_sync('h3_guc', 'body', 'embedding') > 0 AS synced;
SET ROLE h3_alice;
CREATE TABLE h3_alice_docs (id int PRIMARY KEY, body text, embedding vector(64));
INSERT INTO h3_alice_docs SELECT i, 'alice document ' || i FROM generate_series(1, 3) i;
SELECT qwen3_embed_sync('h3_alice_docs', 'body', 'embedding') > 0 AS synced;
RESET ROLE;
SELECT qwen3_embed_sync_run(NULL, 10) AS rows_embedded;
SELECT count(*) FILTER (WHERE embedding IS NOT NULL) AS alice_embedded FROM h3_alice_docs;
SELECT current_setting('qwen3_embed.expect_fingerprint') = '' AS fingerprint_untouched,
       current_setting('search_path') AS search_path;

-- 8. A share that takes longer than qwen3_embed.sync_timeout is cancelled and its sync set
-- aside; the others go on.
SET ROLE h3_mallory;
CREATE TABLE h3_slow (id int PRIMARY KEY, body text, embedding vector(64));
CREATE FUNCTION h3_sleep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.pg_sleep(30);
    RETURN NEW;
END $$;
CREATE TRIGGER h3_sleep BEFORE UPDATE ON h3_slow FOR EACH ROW EXECUTE FUNCTION h3_sleep();
INSERT INTO h3_slow VALUES (1, 'slow');
SELECT qwen3_embed_sync('h3_slow', 'body', 'embedding') > 0 AS synced;
RESET ROLE;
INSERT INTO h3_alice_docs VALUES (4, 'alice document 4');
SET qwen3_embed.sync_timeout = 1;
SELECT clock_timestamp() AS t0 \gset
SELECT qwen3_embed_sync_run(NULL, 10) AS rows_embedded;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '10 s' AS bounded;
RESET qwen3_embed.sync_timeout;
SELECT last_error, paused_until IS NOT NULL AS set_aside FROM qwen3_embed_sync_status WHERE relation = 'h3_slow'::regclass;
SELECT embedding IS NOT NULL AS alice_4_embedded FROM h3_alice_docs WHERE id = 4;

-- 10. What a dropped table or column leaves behind is removed with it.
SET ROLE h3_alice;
CREATE TABLE h3_gone (id int PRIMARY KEY, body text, other text, embedding vector(64), e2 vector(64));
INSERT INTO h3_gone SELECT i, 'gone ' || i, 'other ' || i FROM generate_series(1, 5) i;
SELECT qwen3_embed_sync('h3_gone', 'body', 'embedding') > 0 AS synced;
SELECT qwen3_embed_sync('h3_gone', 'other', 'e2') > 0 AS synced;
SET client_min_messages = warning;  -- the cascade's NOTICE names the sync's trigger by id
ALTER TABLE h3_gone DROP COLUMN other CASCADE;
RESET client_min_messages;
RESET ROLE;
SELECT target_column, pending FROM qwen3_embed_sync_status WHERE relation = 'h3_gone'::regclass;
SELECT oid AS gone_oid FROM pg_class WHERE relname = 'h3_gone' \gset
SET ROLE h3_alice;
DROP TABLE h3_gone;
RESET ROLE;
SELECT (SELECT count(*) FROM qwen3_embed.syncs WHERE relation = :gone_oid) AS syncs_left,
       (SELECT count(*) FROM qwen3_embed.queue q WHERE NOT EXISTS (SELECT 1 FROM qwen3_embed.syncs s WHERE s.id = q.sync_id)) AS orphan_queue_rows,
       (SELECT count(*) FROM qwen3_embed.columns WHERE relation = :gone_oid) AS registry_left;

-- 11. The model's size comes from the model, not from the caller's arguments.
SET ROLE h3_alice;
CREATE TABLE h3_dims (id int PRIMARY KEY, body text, embedding vector);
SELECT qwen3_embed.qwen3_embed_state('sync_add', jsonb_build_object('what', 'forged', 'relation', 'h3_dims'::regclass::oid,
       'source_column', 'body', 'target_column', 'embedding', 'dims', 100000, 'max_dims', 1000000,
       'batch_size', 64, 'max_attempts', 5));
RESET ROLE;

-- A writer that may only INSERT still has its rows queued, through the gate, as itself.
SELECT id AS slow_sync FROM qwen3_embed.syncs WHERE relation = 'h3_slow'::regclass \gset
CREATE ROLE h3_writer LOGIN NOSUPERUSER;
GRANT INSERT ON h3_alice_docs TO h3_writer;
SET ROLE h3_writer;
INSERT INTO h3_alice_docs VALUES (5, 'written by a role that may only insert');
-- It may not queue keys of a table it cannot write.
SELECT qwen3_embed.qwen3_embed_state('queue_add', jsonb_build_object('id', :slow_sync, 'keys', '["1"]'::jsonb));
RESET ROLE;
SELECT qwen3_embed_sync_run(NULL, 10) >= 1 AS drained;
SELECT embedding IS NOT NULL AS writer_row_embedded FROM h3_alice_docs WHERE id = 5;
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'h3_mallory';

-- Clean up: dropping everything they own leaves no sync of theirs behind.
DROP OWNED BY h3_mallory, h3_alice, h3_writer CASCADE;
SELECT count(*) AS syncs_left FROM qwen3_embed.syncs s WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = s.relation);
DROP ROLE h3_mallory, h3_alice, h3_writer;
