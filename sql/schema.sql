-- The extension's state tables (the column registry, the re-embedding jobs, the syncs, their
-- queue and errors) and its internal routines live in a schema of their own, created and owned
-- by the extension, out of the users' schemas: there migration tools (Alembic's autogenerate,
-- Django's inspectdb) took the tables for the users' own, and \df listed the routines among
-- the users' functions. pgrx creates it (src/lib.rs, `mod qwen3_embed`) with IF NOT EXISTS,
-- which in an extension's script fails when a schema of that name exists already and is not
-- the extension's. Every role may look up names in it; only the extension creates anything there.
GRANT USAGE ON SCHEMA qwen3_embed TO PUBLIC;
