-- The extension's state tables (the column registry, the re-embedding jobs, the syncs, their
-- queue and errors) live in a schema of their own, created and owned by the extension, out of
-- the users' schemas: there migration tools (Alembic's autogenerate, Django's inspectdb) took
-- them for the users' own tables. Every role may look up names in it; only the extension
-- creates anything there. CREATE EXTENSION fails when a schema of that name exists already.
CREATE SCHEMA qwen3_embed;
GRANT USAGE ON SCHEMA qwen3_embed TO PUBLIC;
