-- qwen3_embed_trigger(): keeps an embedding column in step with a text column.
--
--   CREATE TRIGGER docs_embed BEFORE INSERT OR UPDATE ON docs
--       FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding' [, 'instruct' [, 'dims']]);
--
-- On INSERT it embeds the source column into the target column; on UPDATE only when the source
-- column changed (IS DISTINCT FROM), so updating any other column never re-embeds. A NULL source
-- gives a NULL embedding. Empty strings for instruct and dims mean NULL. When dims is not given
-- and the target column has a declared size (vector(n), halfvec(n)), that size is used (MRL),
-- so the trigger keeps working when a migration changes the column's size.
-- The table and column names are only known at run time: columns are read and written through
-- dynamic SQL on the row value (identifiers quoted with %I), and the target is set with
-- jsonb_populate_record, which converts the vector's text form to the column's own type
-- (vector(n), halfvec(n)) with its size check; float4 text output round-trips exactly.
-- The target must be one of pgvector's vector or halfvec, and an explicit dims must match its
-- declared size: checked before embedding, so a mismatch is a short error, not a vector dump.
-- search_path is pinned: nothing on the caller's path can stand in for a built-in.
CREATE FUNCTION @extschema@.qwen3_embed_trigger() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $qwen3_embed_trigger$
DECLARE
    src_col  text;
    dst_col  text;
    instruct text;
    dims     int;
    dims_arg text;
    dst_type oid;
    dst_mod  int;
    dst_vec  boolean;
    changed  boolean;
    body     text;
    fp       text;
    vec      text;
BEGIN
    IF TG_WHEN <> 'BEFORE' OR TG_LEVEL <> 'ROW' OR TG_OP NOT IN ('INSERT', 'UPDATE') THEN
        RAISE EXCEPTION 'qwen3_embed_trigger: must be fired BEFORE INSERT OR UPDATE ... FOR EACH ROW, not % % ... FOR EACH %',
                TG_WHEN, TG_OP, TG_LEVEL
            USING ERRCODE = 'triggered_action_exception',
                  HINT = 'CREATE TRIGGER ... BEFORE INSERT OR UPDATE ON t FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger(''source_column'', ''target_column'');';
    END IF;
    IF TG_NARGS < 2 OR TG_NARGS > 4 THEN
        RAISE EXCEPTION 'qwen3_embed_trigger: expected 2 to 4 arguments (source column, target column [, instruct [, dims]]), got % on trigger "%" of %',
                TG_NARGS, TG_NAME, TG_RELID::regclass
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'EXECUTE FUNCTION qwen3_embed_trigger(''body'', ''embedding'') or qwen3_embed_trigger(''body'', ''embedding'', '''', ''1024'').';
    END IF;
    src_col  := TG_ARGV[0];
    dst_col  := TG_ARGV[1];
    instruct := NULLIF(TG_ARGV[2], '');
    dims_arg := NULLIF(btrim(TG_ARGV[3]), '');

    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = TG_RELID AND a.attname = src_col
                      AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'qwen3_embed_trigger: source column "%" does not exist in %', src_col, TG_RELID::regclass
            USING ERRCODE = 'undefined_column',
                  HINT = format('Check the first argument of trigger "%s".', TG_NAME);
    END IF;
    SELECT a.atttypid, a.atttypmod INTO dst_type, dst_mod
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = TG_RELID AND a.attname = dst_col AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'qwen3_embed_trigger: target column "%" does not exist in %', dst_col, TG_RELID::regclass
            USING ERRCODE = 'undefined_column',
                  HINT = format('Check the second argument of trigger "%s".', TG_NAME);
    END IF;

    -- pgvector's own vector or halfvec (not a type that merely shares the name).
    SELECT EXISTS (SELECT 1 FROM pg_type t
                     JOIN pg_extension e ON e.extname = 'vector' AND e.extnamespace = t.typnamespace
                    WHERE t.oid = dst_type AND t.typname IN ('vector', 'halfvec'))
      INTO dst_vec;
    IF NOT dst_vec THEN
        RAISE EXCEPTION 'qwen3_embed_trigger: target column "%" of % is %, not vector or halfvec',
                dst_col, TG_RELID::regclass, format_type(dst_type, dst_mod)
            USING ERRCODE = 'datatype_mismatch',
                  HINT = format('Point the second argument of trigger "%s" at a vector(n) or halfvec(n) column.', TG_NAME);
    END IF;
    IF dims_arg IS NOT NULL THEN
        IF dims_arg !~ '^[+-]?[0-9]{1,9}$' THEN
            RAISE EXCEPTION 'qwen3_embed_trigger: dims must be an integer, got "%"', TG_ARGV[3]
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('Fix the fourth argument of trigger "%s": a number such as ''1024'', or '''' for the full size.', TG_NAME);
        END IF;
        dims := dims_arg::int;
        IF dst_mod > 0 AND dims <> dst_mod THEN
            RAISE EXCEPTION 'qwen3_embed_trigger: trigger "%" asks for % dimensions, but column "%" of % is %',
                    TG_NAME, dims, dst_col, TG_RELID::regclass, format_type(dst_type, dst_mod)
                USING ERRCODE = 'datatype_mismatch',
                      HINT = format('Recreate trigger "%s" with dims ''%s'' (or '''' to follow the column''s size).', TG_NAME, dst_mod);
        END IF;
    ELSIF dst_mod > 0 THEN
        dims := dst_mod;  -- vector(n) / halfvec(n): embed to n dimensions
    END IF;

    IF TG_OP = 'UPDATE' THEN
        EXECUTE format('SELECT ($1).%1$I IS DISTINCT FROM ($2).%1$I', src_col)
            INTO changed USING NEW, OLD;
        IF NOT changed THEN
            RETURN NEW;
        END IF;
    END IF;

    EXECUTE format('SELECT ($1).%I::text', src_col) INTO body USING NEW;
    -- The column's model (registered at its first write): any other loaded model is refused.
    fp := qwen3_embed.qwen3_embed_column_model(TG_RELID, dst_col, instruct, dims);
    SELECT e.embedding::text INTO vec
      FROM qwen3_embed.qwen3_embed_batch_for_column(ARRAY[body], instruct, dims, fp) e;
    NEW := jsonb_populate_record(NEW, jsonb_build_object(dst_col, vec));
    RETURN NEW;
END
$qwen3_embed_trigger$;
