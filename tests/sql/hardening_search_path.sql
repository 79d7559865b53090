-- Search-path hijacking: an ordinary role with CREATE on a schema that comes first on the
-- victim's search_path defines better-matching overloads of the functions and operators that
-- the extension's routines use. None of them may run when the victim (a superuser here) writes
-- to a table with the trigger, re-embeds, migrates, abandons a job or reads the progress view.
CREATE ROLE sp_attacker;
CREATE SCHEMA evil AUTHORIZATION sp_attacker;
CREATE TABLE evil.hits (what text);
GRANT INSERT, SELECT ON evil.hits TO PUBLIC;
SET ROLE sp_attacker;
CREATE FUNCTION evil.hit(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.hits VALUES (what); END $$;
-- Functions, each recording that it ran and then doing what the built-in does.
CREATE FUNCTION evil.format(f text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('format(text)'); RETURN pg_catalog.format(f); END $$;
CREATE FUNCTION evil.format(f text, a text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('format(text,text)'); RETURN pg_catalog.format(f, a); END $$;
CREATE FUNCTION evil.format(f text, a name) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('format(text,name)'); RETURN pg_catalog.format(f, a); END $$;
CREATE FUNCTION evil.format(f text, a regclass) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('format(text,regclass)'); RETURN pg_catalog.format(f, a); END $$;
CREATE FUNCTION evil.format(f text, a text, b text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('format(text,text,text)'); RETURN pg_catalog.format(f, a, b); END $$;
CREATE FUNCTION evil.format(f text, a regclass, b name) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('format(text,regclass,name)'); RETURN pg_catalog.format(f, a, b); END $$;
CREATE FUNCTION evil.quote_ident(a text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('quote_ident'); RETURN pg_catalog.quote_ident(a); END $$;
CREATE FUNCTION evil.quote_literal(a text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('quote_literal'); RETURN pg_catalog.quote_literal(a); END $$;
CREATE FUNCTION evil.btrim(a text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('btrim'); RETURN pg_catalog.btrim(a); END $$;
CREATE FUNCTION evil.octet_length(a text) RETURNS int LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('octet_length'); RETURN pg_catalog.octet_length(a); END $$;
CREATE FUNCTION evil.format_type(a oid, b int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('format_type'); RETURN pg_catalog.format_type(a, b); END $$;
CREATE FUNCTION evil.pg_get_indexdef(a oid) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('pg_get_indexdef'); RETURN pg_catalog.pg_get_indexdef(a); END $$;
CREATE FUNCTION evil.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('clock_timestamp'); RETURN pg_catalog.clock_timestamp(); END $$;
CREATE FUNCTION evil.pg_backend_pid() RETURNS int LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('pg_backend_pid'); RETURN pg_catalog.pg_backend_pid(); END $$;
CREATE FUNCTION evil.has_table_privilege(a regclass, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('has_table_privilege'); RETURN pg_catalog.has_table_privilege(a, b); END $$;
CREATE FUNCTION evil.jsonb_build_object(a text, b text) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('jsonb_build_object'); RETURN pg_catalog.jsonb_build_object(a, b); END $$;
CREATE FUNCTION evil.jsonb_populate_record(a anyelement, b jsonb) RETURNS anyelement LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('jsonb_populate_record'); RETURN pg_catalog.jsonb_populate_record(a, b); END $$;
CREATE FUNCTION evil.round(a numeric, b int) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('round'); RETURN pg_catalog.round(a, b); END $$;
CREATE FUNCTION evil.age(a timestamptz, b timestamptz) RETURNS interval LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('age'); RETURN pg_catalog.age(a, b); END $$;
CREATE FUNCTION evil.count_step(n bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('count(*)'); RETURN n + 1; END $$;
CREATE AGGREGATE evil.count(*) (SFUNC = evil.count_step, STYPE = bigint, INITCOND = '0');
CREATE FUNCTION evil.agg_step(s text, a text, d text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('string_agg'); RETURN coalesce(s || d, '') || a; END $$;
CREATE AGGREGATE evil.string_agg(text, text) (SFUNC = evil.agg_step, STYPE = text);
-- Operators on the types the routines compare, concatenate and match.
CREATE FUNCTION evil.op(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('text op'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.op);
CREATE OPERATOR evil.<> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.op);
CREATE OPERATOR evil.> (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.op);
CREATE OPERATOR evil.~ (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.op);
CREATE OPERATOR evil.!~ (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.op);
CREATE FUNCTION evil.cat(a text, b text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('||'); RETURN a OPERATOR(pg_catalog.||) b; END $$;
CREATE OPERATOR evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.cat);
CREATE FUNCTION evil.nameop(a name, b name) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('name op'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.nameop);
CREATE OPERATOR evil.<> (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.nameop);
CREATE FUNCTION evil.nametext(a name, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('name-text op'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = text, FUNCTION = evil.nametext);
CREATE FUNCTION evil.regop(a regclass, b regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('regclass op'); RETURN a::oid OPERATOR(pg_catalog.=) b::oid; END $$;
CREATE OPERATOR evil.= (LEFTARG = regclass, RIGHTARG = regclass, FUNCTION = evil.regop);
CREATE FUNCTION evil.oidop(a oid, b oid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('oid op'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.oidop);
CREATE FUNCTION evil.intop(a int, b int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('int op'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR evil.= (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.intop);
CREATE OPERATOR evil.<> (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.intop);
CREATE OPERATOR evil.> (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.intop);
CREATE OPERATOR evil.< (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.intop);
CREATE OPERATOR evil.>= (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.intop);
CREATE OPERATOR evil.<= (LEFTARG = int, RIGHTARG = int, FUNCTION = evil.intop);
CREATE FUNCTION evil.bigop(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('bigint op'); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.bigop);
CREATE OPERATOR evil.> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.bigop);
CREATE FUNCTION evil.plus(a bigint, b int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('bigint + int'); RETURN a OPERATOR(pg_catalog.+) b; END $$;
CREATE OPERATOR evil.+ (LEFTARG = bigint, RIGHTARG = int, FUNCTION = evil.plus);
CREATE FUNCTION evil.times(a numeric, b bigint) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN PERFORM evil.hit('numeric * bigint'); RETURN a OPERATOR(pg_catalog.*) b; END $$;
CREATE OPERATOR evil.* (LEFTARG = numeric, RIGHTARG = bigint, FUNCTION = evil.times);
RESET ROLE;

-- The victim's tables, written with the extension's trigger, re-embedded and migrated.
CREATE TABLE sp_docs (id int PRIMARY KEY, body text, embedding vector(256));
CREATE TRIGGER sp_embed BEFORE INSERT OR UPDATE ON sp_docs
    FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding');
CREATE TABLE sp_keys (k text PRIMARY KEY, body text, embedding vector(64));

-- A control: an ordinary function without a pinned path does call the hostile overloads.
CREATE FUNCTION sp_unpinned() RETURNS text LANGUAGE plpgsql AS $$
BEGIN RETURN format('%s', 'x'::text); END $$;
SET search_path = evil, pg_catalog, public;
SELECT sp_unpinned();
RESET search_path;
SELECT count(*) > 0 AS control_was_hijacked FROM evil.hits;
DELETE FROM evil.hits;

-- Now the extension's routines, called with the hostile schema first on the path.
SET search_path = evil, pg_catalog, public;
\set VERBOSITY terse
-- (The test's own statements name no operator or function here: they would be hijacked.)
INSERT INTO sp_docs VALUES (1, 'first document', NULL), (2, 'second document', NULL), (3, 'third', NULL),
    (5, 'a longer document, with more than eight tokens in its body text', NULL);
UPDATE sp_docs SET body = 'second document, changed' WHERE id OPERATOR(pg_catalog.=) 2;
UPDATE sp_docs SET id = 4 WHERE id OPERATOR(pg_catalog.=) 3;
INSERT INTO sp_keys VALUES ('key 1', 'text 1', NULL), ('key 2', 'text 2', NULL), ('key 3', 'text 3', NULL),
    ('key 4', 'text 4', NULL), ('key 5', 'text 5', NULL);
CALL qwen3_embed_reembed('sp_keys', 'body', 'embedding', batch_size => 2);
CALL qwen3_embed_reembed('sp_docs', 'body', 'embedding', batch_size => 2);
CALL qwen3_embed_migrate_dims('sp_docs', 'body', 'embedding', 128, batch_size => 2);
SELECT relation, target_column, state, rows_done, percent_done, elapsed IS NOT NULL AS has_elapsed
  FROM qwen3_embed_progress ORDER BY 1, 2;
-- An interrupted migration, refused, then abandoned.
SET qwen3_embed.on_long_input = 'error';
SET qwen3_embed.max_tokens = 8;
CALL qwen3_embed_migrate_dims('sp_docs', 'body', 'embedding', 64, batch_size => 2);
RESET qwen3_embed.max_tokens;
RESET qwen3_embed.on_long_input;
CALL qwen3_embed_migrate_dims('sp_docs', 'body', 'embedding', 96, batch_size => 2);
SELECT qwen3_embed_abandon('sp_docs', 'embedding');
SELECT qwen3_embed_abandon('sp_docs', 'embedding');
-- A wrong trigger argument still reports through the pinned code.
CREATE TRIGGER sp_bad BEFORE INSERT ON sp_keys FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding', '', 'many');
INSERT INTO sp_keys VALUES ('bad', 'x', NULL);
RESET search_path;
\set VERBOSITY default

-- Nothing of the attacker's ran, and the work is right.
SELECT count(*) AS hijacked_calls FROM evil.hits;
SELECT what, count(*) FROM evil.hits GROUP BY 1 ORDER BY 1;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 128)) AS docs_equal, count(*) AS docs FROM sp_docs;
SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) AS keys_equal, count(*) AS keys FROM sp_keys;
SELECT attname FROM pg_attribute WHERE attrelid = 'sp_docs'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;

-- Every routine the extension ships pins its search_path, or is a procedure (which cannot)
-- whose body is only qualified calls; C functions need none.
SELECT p.proname, p.prokind, l.lanname,
       coalesce(array_to_string(p.proconfig, ','), '(none)') AS config
  FROM pg_proc p
  JOIN pg_language l ON l.oid = p.prolang
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'qwen3_embed'
 WHERE l.lanname <> 'c'
 ORDER BY 1;

DROP TABLE sp_docs, sp_keys;
DROP FUNCTION sp_unpinned();
DELETE FROM qwen3_embed.jobs;
DROP SCHEMA evil CASCADE;
DROP ROLE sp_attacker;
