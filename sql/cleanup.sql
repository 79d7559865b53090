-- What the extension keeps about a table or column goes with it: a sql_drop event trigger
-- removes the syncs (their queue and errors), column registry rows and re-embedding jobs of
-- dropped tables and columns, so that no queue row waits for good on an OID that is gone and a
-- database's sync worker goes idle. It runs as the extension's owner, as whoever drops, and
-- reads nothing but pg_event_trigger_dropped_objects() and the extension's own tables.
CREATE FUNCTION qwen3_embed.qwen3_embed_forget_dropped() RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_forget_dropped$
DECLARE
    d record;
BEGIN
    FOR d IN SELECT o.objid, o.object_type, o.address_names[3] AS column_name
               FROM pg_event_trigger_dropped_objects() o
              WHERE o.classid = 'pg_catalog.pg_class'::regclass
                AND o.object_type IN ('table', 'view', 'materialized view', 'foreign table', 'table column')
    LOOP
        WITH gone AS (
            DELETE FROM qwen3_embed.syncs s
             WHERE (s.relation = d.objid OR s.chunk_table = d.objid)
               AND (d.object_type <> 'table column' OR d.column_name IN (s.source_column, s.target_column, s.key_column))
            RETURNING s.id
        )
        DELETE FROM qwen3_embed.queue q USING gone g WHERE q.sync_id = g.id;
        DELETE FROM qwen3_embed.columns c
         WHERE c.relation = d.objid AND (d.object_type <> 'table column' OR c.column_name = d.column_name);
        DELETE FROM qwen3_embed.jobs j
         WHERE j.relation = d.objid
           AND (d.object_type <> 'table column' OR d.column_name IN (j.source_column, j.target_column, j.key_column));
    END LOOP;
END
$qwen3_embed_forget_dropped$;
REVOKE EXECUTE ON FUNCTION qwen3_embed.qwen3_embed_forget_dropped() FROM PUBLIC;

CREATE EVENT TRIGGER qwen3_embed_forget_dropped ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP VIEW', 'DROP MATERIALIZED VIEW', 'DROP FOREIGN TABLE', 'ALTER TABLE',
                 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION qwen3_embed.qwen3_embed_forget_dropped();
