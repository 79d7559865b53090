-- The extension's state tables hold users' state (jobs, the column registry, the sync queue and
-- its errors): pg_dump carries their rows, and their sequences' positions, with the database.
SELECT pg_catalog.pg_extension_config_dump('qwen3_embed.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('qwen3_embed.columns', '');
SELECT pg_catalog.pg_extension_config_dump('qwen3_embed.syncs', '');
SELECT pg_catalog.pg_extension_config_dump('qwen3_embed.syncs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('qwen3_embed.queue', '');
SELECT pg_catalog.pg_extension_config_dump('qwen3_embed.queue_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('qwen3_embed.sync_errors', '');
SELECT pg_catalog.pg_extension_config_dump('qwen3_embed.sync_errors_id_seq', '');
