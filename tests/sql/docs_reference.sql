-- The reference pages cannot drift from the catalog: every routine, table and view of the
-- extension is named in docs/sql.md, and every qwen3_embed.* setting has its row in
-- docs/settings.md, saying who may change it as pg_settings.context does. Each query lists
-- what is missing or wrong: no rows is a pass.
\getenv abs_srcdir PG_ABS_SRCDIR
\set sql_page :abs_srcdir '/../docs/sql.md'
\set settings_page :abs_srcdir '/../docs/settings.md'
CREATE TEMP TABLE pages AS
SELECT pg_read_file(:'sql_page') AS sql_page, pg_read_file(:'settings_page') AS settings_page;

CREATE TEMP VIEW extension_objects AS
SELECT d.classid, d.objid
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'qwen3_embed');

SELECT count(*) > 60 AS routines_checked FROM extension_objects WHERE classid = 'pg_proc'::regclass;
SELECT p.proname AS routine_missing_from_docs_sql
  FROM extension_objects o JOIN pg_proc p ON o.classid = 'pg_proc'::regclass AND o.objid = p.oid
 WHERE position('`' || p.proname || '(' IN (SELECT sql_page FROM pages)) = 0
 ORDER BY 1;
-- The routines the page lists as internal live in the state schema, qwen3_embed, and only those:
-- every other routine is one users call, in the extension's schema.
SELECT p.oid::regprocedure AS routine_in_the_wrong_schema
  FROM extension_objects o JOIN pg_proc p ON o.classid = 'pg_proc'::regclass AND o.objid = p.oid
 WHERE (position('`' || p.proname || '(' IN (SELECT split_part(sql_page, '## Internal routines', 2) FROM pages)) > 0)
       <> (p.pronamespace = 'qwen3_embed'::regnamespace)
 ORDER BY 1;
-- (Named as users write them: the state tables with their schema, qwen3_embed.)
SELECT c.oid::regclass AS relation_missing_from_docs_sql
  FROM extension_objects o JOIN pg_class c ON o.classid = 'pg_class'::regclass AND o.objid = c.oid
 WHERE c.relkind IN ('r', 'v') AND position('`' || c.oid::regclass::text || '`' IN (SELECT sql_page FROM pages)) = 0
 ORDER BY 1;
SELECT count(*) AS state_tables_in_their_schema
  FROM extension_objects o JOIN pg_class c ON o.classid = 'pg_class'::regclass AND o.objid = c.oid
 WHERE c.relkind = 'r' AND c.relnamespace = 'qwen3_embed'::regnamespace;

-- The settings exist once the library is loaded in this session.
SELECT qwen3_embed_default_task() <> '' AS library_loaded;
SELECT count(*) >= 17 AS settings_checked FROM pg_settings WHERE name LIKE 'qwen3\_embed.%';
SELECT s.name AS setting, s.context, d.who AS docs_say
  FROM pg_settings s
  LEFT JOIN LATERAL (
      SELECT (regexp_match(p.settings_page,
                           '\n\| `' || replace(s.name, '.', '\.') || '` \| [^|\n]* \| ([^|\n]*) \|'))[1] AS who
        FROM pages p) d ON true
 WHERE s.name LIKE 'qwen3\_embed.%'
   AND d.who IS DISTINCT FROM CASE s.context WHEN 'superuser' THEN 'superuser'
                                             WHEN 'postmaster' THEN 'server start'
                                             WHEN 'sighup' THEN 'configuration file'
                                             WHEN 'user' THEN 'anyone' END
 ORDER BY 1;
