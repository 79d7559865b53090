-- Creates the extension (and pgvector through CASCADE) in the test database.
CREATE EXTENSION qwen3_embed CASCADE;

-- Both extensions are installed, qwen3_embed requires vector.
SELECT extname FROM pg_extension WHERE extname IN ('vector', 'qwen3_embed') ORDER BY extname;
SELECT e.extname, r.extname AS requires
  FROM pg_extension e
  JOIN pg_depend d ON d.classid = 'pg_extension'::regclass AND d.objid = e.oid
                  AND d.refclassid = 'pg_extension'::regclass
  JOIN pg_extension r ON r.oid = d.refobjid
 WHERE e.extname = 'qwen3_embed';

-- Every object of the extension, with its comment present.
SELECT pg_describe_object(d.classid, d.objid, 0) AS object,
       obj_description(d.objid, d.classid::regclass::name) IS NOT NULL AS commented
  FROM pg_depend d
  JOIN pg_extension e ON e.oid = d.refobjid
 WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'qwen3_embed' AND d.deptype = 'e'
   -- PostgreSQL 18 also lists the row types of the extension's table and view (and their arrays)
   AND NOT EXISTS (SELECT 1 FROM pg_type t LEFT JOIN pg_type el ON el.oid = t.typelem
                    WHERE d.classid = 'pg_type'::regclass AND t.oid = d.objid
                      AND (t.typrelid <> 0 OR el.typrelid <> 0))
 ORDER BY 1;

-- The settings exist once the library is loaded.
SELECT qwen3_embed_default_task() IS NOT NULL AS loaded;
SELECT name, lower(setting) AS setting, context FROM pg_settings WHERE name LIKE 'qwen3_embed.%' AND name NOT IN ('qwen3_embed.model_path', 'qwen3_embed.reranker_path') ORDER BY name;
SELECT current_setting('qwen3_embed.model_path') LIKE '%.gguf' AS model_path_set;

-- The model the tests run on: the tiny fixture (hidden 256, the real vocabulary).
SELECT format, architecture, parameters > 0 AS has_parameters, tensor_types <> '' AS has_types,
       hidden_size, max_dims, vocab_size, device, threads, length(fingerprint) > 0 AS has_fingerprint,
       load_ms >= 0 AS load_ms_ok, runs_in, model_path = current_setting('qwen3_embed.model_path') AS path_matches
  FROM qwen3_embed_info();
