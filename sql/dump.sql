-- The extension's state tables hold users' state (jobs, the column registry, the sync queue and
-- its errors): pg_dump carries their rows, and their sequences' positions, with the database.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_columns', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_syncs', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_syncs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_queue', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_queue_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_sync_errors', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.qwen3_embed_sync_errors_id_seq', '');
