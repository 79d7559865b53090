-- The packed-weight cache's files (src/cache_api.rs) name paths on the server: only superusers
-- and pg_read_server_files may list them.
REVOKE EXECUTE ON FUNCTION @extschema@.qwen3_embed_cache_files() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.qwen3_embed_cache_files() TO pg_read_server_files;
