-- ALTER EXTENSION qwen3_embed UPDATE from 0.1.0 (sql/qwen3_embed--0.1.0.sql, the released
-- install script) to the current version, in a database of its own: user objects built on
-- 0.1.0 (a generated column, a trigger, re-embedding jobs, a view over the progress view) keep
-- working, and the upgraded extension has exactly the objects and definitions of a fresh install.

-- Every object of the extension with its full definition, one row each. Kept in a psql variable
-- so that the same query describes this database (a fresh install, from the setup test) and the
-- upgraded one.
SELECT $describe$
SELECT pg_catalog.pg_describe_object(d.classid, d.objid, 0)
       || coalesce(E'\ncomment: ' || pg_catalog.obj_description(d.objid, d.classid::regclass::name), '')
       || CASE d.classid
            WHEN 'pg_catalog.pg_proc'::regclass THEN
                E'\n' || pg_catalog.pg_get_functiondef(d.objid)
                || coalesce(E'\nacl: ' || (SELECT p.proacl::text FROM pg_catalog.pg_proc p WHERE p.oid = d.objid), '')
            WHEN 'pg_catalog.pg_class'::regclass THEN
                (SELECT string_agg(x, E'\n' ORDER BY k, x) FROM (
                    SELECT 0, format(E'\nkind %s, row security %s, options %s, acl %s',
                                     r.relkind, r.relrowsecurity, r.reloptions, r.relacl)
                      FROM pg_catalog.pg_class r WHERE r.oid = d.objid
                    UNION ALL
                    SELECT a.attnum, format('column %s %s%s%s', a.attname,
                                            pg_catalog.format_type(a.atttypid, a.atttypmod),
                                            CASE WHEN a.attnotnull THEN ' not null' END,
                                            ' default ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid))
                      FROM pg_catalog.pg_attribute a
                      LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                     WHERE a.attrelid = d.objid AND a.attnum > 0 AND NOT a.attisdropped
                    UNION ALL
                    SELECT 10000, format('constraint %s %s', c.conname, pg_catalog.pg_get_constraintdef(c.oid))
                      FROM pg_catalog.pg_constraint c WHERE c.conrelid = d.objid
                    UNION ALL
                    SELECT 10001, pg_catalog.pg_get_indexdef(i.indexrelid)
                      FROM pg_catalog.pg_index i WHERE i.indrelid = d.objid
                    UNION ALL
                    SELECT 10002, format('policy %s %s %s using %s check %s', p.polname, p.polcmd, p.polroles,
                                         pg_catalog.pg_get_expr(p.polqual, p.polrelid),
                                         pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid))
                      FROM pg_catalog.pg_policy p WHERE p.polrelid = d.objid
                    UNION ALL
                    SELECT 10003, pg_catalog.pg_get_viewdef(d.objid)
                      FROM pg_catalog.pg_class v WHERE v.oid = d.objid AND v.relkind = 'v'
                ) s(k, x))
            ELSE ''
          END
  FROM pg_catalog.pg_depend d
 WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'qwen3_embed')
UNION ALL
SELECT format('extension %s, version %s, configuration tables %s %s', extname, extversion,
              extconfig::regclass[], extcondition)
  FROM pg_catalog.pg_extension WHERE extname = 'qwen3_embed'
$describe$ AS describe \gset
SELECT array_agg(d) AS fresh FROM (:describe) s(d) \gset

CREATE DATABASE qwen3_embed_upgrade TEMPLATE template0;
\c qwen3_embed_upgrade
SET client_min_messages = warning;
CREATE EXTENSION vector;
-- A schema named qwen3_embed that is not the extension's stops CREATE EXTENSION (and, below, the
-- update): the extension's state and internal routines never move in beside someone else's objects.
CREATE SCHEMA qwen3_embed;
CREATE EXTENSION qwen3_embed;
CREATE EXTENSION qwen3_embed VERSION '0.1.0';
ALTER EXTENSION qwen3_embed UPDATE;
DROP EXTENSION qwen3_embed;
DROP SCHEMA qwen3_embed;
CREATE EXTENSION qwen3_embed VERSION '0.1.0';
RESET client_min_messages;
SELECT extversion FROM pg_extension WHERE extname = 'qwen3_embed';

-- On 0.1.0: a generated column, a trigger, a finished job, a failed job, a view on the progress.
CREATE TABLE up_gen (
    id        int PRIMARY KEY,
    body      text,
    embedding vector(256) GENERATED ALWAYS AS (qwen3_embed(body)) STORED
);
INSERT INTO up_gen (id, body) VALUES (1, 'generated on 0.1.0');
CREATE TABLE up_trg (id int PRIMARY KEY, body text, embedding vector(64));
CREATE TRIGGER up_trg_embed BEFORE INSERT OR UPDATE ON up_trg
    FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding');
INSERT INTO up_trg (id, body) VALUES (1, 'trigger on 0.1.0');
CREATE TABLE up_done (id int PRIMARY KEY, body text, embedding vector(256));
INSERT INTO up_done (id, body) SELECT i, 'finished job row ' || i FROM generate_series(1, 20) AS i;
CALL qwen3_embed_reembed('up_done', 'body', 'embedding', batch_size => 8);
-- Row 12's text is too long under on_long_input = 'error': batch 2 (rows 9..16) fails.
CREATE TABLE up_failed (id int PRIMARY KEY, body text, embedding vector(256));
INSERT INTO up_failed (id, body)
SELECT i, CASE WHEN i = 12 THEN repeat('far too long ', 50) ELSE 'failed job row ' || i END
  FROM generate_series(1, 20) AS i;
SET qwen3_embed.max_tokens = 64;
SET qwen3_embed.on_long_input = 'error';
\set VERBOSITY terse
CALL qwen3_embed_reembed('up_failed', 'body', 'embedding', batch_size => 8);
\set VERBOSITY default
RESET qwen3_embed.max_tokens;
RESET qwen3_embed.on_long_input;
CREATE VIEW up_progress AS SELECT relation, state, rows_done, rows_total, last_key FROM qwen3_embed_progress;
SELECT * FROM up_progress ORDER BY relation::text;

ALTER EXTENSION qwen3_embed UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'qwen3_embed';

-- The same objects and definitions as a fresh install: nothing missing, nothing extra, nothing
-- different (each row is an object with its definition).
SELECT array_length(:'fresh'::text[], 1) > 20 AS fresh_described;
SELECT d AS missing_or_different FROM unnest(:'fresh'::text[]) d
EXCEPT SELECT d FROM (:describe) s(d);
SELECT d AS extra_or_different FROM (:describe) s(d)
EXCEPT SELECT d FROM unnest(:'fresh'::text[]) d;
SELECT pg_describe_object(d.classid, d.objid, 0) AS object
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qwen3_embed')
   -- PostgreSQL 18 also lists the row types of the extension's table and view (and their arrays)
   AND NOT EXISTS (SELECT 1 FROM pg_type t LEFT JOIN pg_type el ON el.oid = t.typelem
                    WHERE d.classid = 'pg_type'::regclass AND t.oid = d.objid
                      AND (t.typrelid <> 0 OR el.typrelid <> 0))
 ORDER BY 1;
-- The tables of user state and their sequences are dumped by pg_dump with the user's tables.
SELECT extconfig::regclass[] AS dumped_tables FROM pg_extension WHERE extname = 'qwen3_embed';

-- Nothing of the user's was dropped.
SELECT relname, relkind FROM pg_class
 WHERE relname IN ('up_gen', 'up_trg', 'up_done', 'up_failed', 'up_progress') ORDER BY relname;
SELECT tgname, tgrelid::regclass FROM pg_trigger WHERE tgname = 'up_trg_embed';

-- The generated column: old rows intact, new and updated rows computed.
INSERT INTO up_gen (id, body) VALUES (2, 'generated on 0.2.0');
UPDATE up_gen SET body = 'updated on 0.2.0' WHERE id = 1;
SELECT id, embedding = qwen3_embed(body) AS equals_function FROM up_gen ORDER BY id;

-- The trigger runs the new function: vector(64) from the column, and 0.2.0's check of an
-- explicit size against the column.
INSERT INTO up_trg (id, body) VALUES (2, 'trigger on 0.2.0');
SELECT id, embedding = qwen3_embed(body, NULL, 64) AS equals_function FROM up_trg ORDER BY id;
CREATE TRIGGER up_trg_wrong BEFORE INSERT ON up_trg
    FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding', '', '128');
\set VERBOSITY sqlstate
INSERT INTO up_trg (id, body) VALUES (3, 'refused');
\set VERBOSITY default
DROP TRIGGER up_trg_wrong ON up_trg;

-- The jobs of 0.1.0, in the new columns and states; the view over the progress still works.
SELECT relation, state, rows_done, rows_total, last_key, kind, migrates_column, runner_pid
  FROM qwen3_embed.jobs ORDER BY relation::text;
SELECT * FROM up_progress ORDER BY relation::text;
-- The failed job resumes after its last committed batch.
UPDATE up_failed SET body = 'fixed row 12' WHERE id = 12;
CALL qwen3_embed_reembed('up_failed', 'body', 'embedding', batch_size => 8);
SELECT relation, state, rows_done, rows_total, kind FROM qwen3_embed_progress ORDER BY relation::text;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body)) AS equal_to_function FROM up_failed;

-- The functions and procedures that 0.2.0 added or changed.
CALL qwen3_embed_migrate_dims('up_done', 'body', 'embedding', 64, batch_size => 8);
SELECT format_type(atttypid, atttypmod) AS embedding_type FROM pg_attribute
 WHERE attrelid = 'up_done'::regclass AND attname = 'embedding';
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) AS migrated FROM up_done;
SELECT qwen3_embed_abandon('up_failed', 'embedding');
SELECT relation, state, kind FROM qwen3_embed_progress ORDER BY relation::text;
SELECT * FROM qwen3_embed_server_stats() LIMIT 0;
-- The embedding queue, new in 0.2.0: a sync queues the table's rows, a drain embeds them.
SELECT qwen3_embed_sync('up_failed', 'body', 'embedding') AS sync_id;
UPDATE up_failed SET body = 'queued on 0.2.0' WHERE id = 1;
SELECT qwen3_embed_sync_run(NULL, 10) AS rows_embedded;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body)) AS equal_to_function FROM up_failed;
SELECT relation, pending, failed FROM qwen3_embed_sync_status;

\c qwen3_embed_regress
DROP DATABASE qwen3_embed_upgrade;
