#!/usr/bin/env bash
# Backups: pg_dump --create of a database that keeps embeddings three ways (a generated column,
# the trigger, the sync queue), restored into a cluster where the model is configured and into
# one where it is not. Checks what the README says: the extension's state (jobs, column
# registry, sync queue and errors) comes along; trigger and queue columns keep their dumped
# vectors; a generated column is recomputed on restore, which needs the model. The model is
# configured for the database (ALTER DATABASE ... SET qwen3_embed.model_path), which pg_dump
# --create carries. Needs tests/sql.sh to have installed the extension and made the model.
# Last line: "N passed, M failed".
set -euo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tiny_models
WORK="$(scratch_dir dump_tests)"
chown postgres "$WORK"
# Three clusters, one at a time on the pg_local helpers' globals.
use() { PG_LOCAL_DIR="$WORK/$1"; PG_LOCAL_PORT="$2"; }
cleanup() {
    for c in src with without; do use "$c" 0; pg_local_stop; done
    rm -rf "$WORK"
}
trap cleanup EXIT
BASE="$(random_port)"

# --- the source database --------------------------------------------------------------------------
pg_local_start "$WORK/src" "$BASE"
q -c "CREATE DATABASE docs"
q -d docs -c "ALTER DATABASE docs SET qwen3_embed.model_path = '$MODEL'"
q -d docs >/dev/null 2>&1 <<'SQL'
CREATE EXTENSION qwen3_embed CASCADE;
CREATE TABLE gen (id int PRIMARY KEY, body text,
                  embedding vector(64) GENERATED ALWAYS AS (qwen3_embed(body, NULL, 64)::vector(64)) STORED);
INSERT INTO gen (id, body) SELECT i, 'generated ' || i FROM generate_series(1, 20) i;
CREATE TABLE trg (id int PRIMARY KEY, body text, embedding vector(64));
CREATE TRIGGER trg_embed BEFORE INSERT OR UPDATE ON trg FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding');
INSERT INTO trg SELECT i, 'trigger ' || i, NULL FROM generate_series(1, 20) i;
CREATE TABLE que (id int PRIMARY KEY, body text, embedding vector(64));
INSERT INTO que SELECT i, 'queue ' || i, NULL FROM generate_series(1, 20) i;
SELECT qwen3_embed_sync('que', 'body', 'embedding');
SELECT qwen3_embed_sync_run(NULL, 100);
-- Some still queued at dump time, and a finished re-embedding job.
INSERT INTO que SELECT i, 'queue ' || i, NULL FROM generate_series(21, 25) i;
CALL qwen3_embed_reembed('trg', 'body', 'embedding', batch_size => 8);
SQL
state="SELECT (SELECT count(*) FROM gen WHERE embedding IS NOT NULL) || ' ' ||
              (SELECT count(*) FROM trg WHERE embedding IS NOT NULL) || ' ' ||
              (SELECT count(*) FROM que WHERE embedding IS NOT NULL) || ' ' ||
              (SELECT count(*) FROM qwen3_embed.jobs WHERE state = 'done') || ' ' ||
              (SELECT count(*) FROM qwen3_embed.columns) || ' ' ||
              (SELECT count(*) FROM qwen3_embed.syncs) || ' ' ||
              (SELECT count(*) FROM qwen3_embed.queue)"
before="$(q -d docs -c "$state")"
echo "      source: $before (gen trg que embedded, jobs done, registered columns, syncs, queued)"
q -d docs -c "CREATE TABLE ref AS SELECT 'trg' AS t, id, embedding::text AS v FROM trg UNION ALL SELECT 'que', id, embedding::text FROM que WHERE embedding IS NOT NULL"
sudo -u postgres "$PG_BIN/pg_dump" -h "$WORK/src" -p "$BASE" -U postgres --create -Fc -f "$WORK/docs.dump" docs
chmod 644 "$WORK/docs.dump"
pg_local_stop

# --- restored where the model file exists ---------------------------------------------------------
use with $((BASE + 1))
pg_local_start "$WORK/with" $((BASE + 1))
sudo -u postgres "$PG_BIN/pg_restore" -h "$WORK/with" -p $((BASE + 1)) -U postgres --create -d postgres "$WORK/docs.dump" \
    >"$WORK/restore_with.log" 2>&1 && rc=0 || rc=$?
check "restore with the model configured succeeds" eq "$rc" 0
check "every row, vector and state row came back" eq "$(q -d docs -c "$state")" "$before"
check "the database's model setting came with --create" \
    eq "$(q -d docs -c "SELECT current_setting('qwen3_embed.model_path') = '$MODEL'")" t
check "trigger and queue vectors are the dumped ones, bit for bit" \
    eq "$(q -d docs -c "SELECT count(*) FROM ref r JOIN (SELECT 'trg' AS t, id, embedding::text AS v FROM trg UNION ALL SELECT 'que', id, embedding::text FROM que) x USING (t, id) WHERE x.v = r.v") $(q -d docs -c "SELECT count(*) FROM ref")" \
       "$(q -d docs -c "SELECT count(*) FROM ref") $(q -d docs -c "SELECT count(*) FROM ref")"
check "the restored queue drains with the same model" \
    eq "$(q -d docs -c "SELECT qwen3_embed_sync_run(NULL, 100)") $(q -d docs -c "SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) FROM que")" "5 25"
pg_local_stop

# --- restored where no model is configured (the file is not there) -------------------------------
use without $((BASE + 2))
pg_local_start "$WORK/without" $((BASE + 2))
# As into a cluster without the model: everything but the database's model setting.
sudo -u postgres "$PG_BIN/pg_restore" -h "$WORK/without" -p $((BASE + 2)) -U postgres -l "$WORK/docs.dump" \
    | grep -v "DATABASE PROPERTIES" >"$WORK/list"
q -c "CREATE DATABASE docs"
sudo -u postgres "$PG_BIN/pg_restore" -h "$WORK/without" -p $((BASE + 2)) -U postgres -d docs -L "$WORK/list" \
    "$WORK/docs.dump" >"$WORK/restore_without.log" 2>&1 && rc=0 || rc=$?
check "without the model, the restore reports the generated column's table" \
    bash -c "[[ $rc != 0 ]] && grep -q 'qwen3_embed.model_path' '$WORK/restore_without.log'"
check "without the model: the generated column's table is empty, the others and the state are whole" \
    eq "$(q -d docs -c "SELECT (SELECT count(*) FROM gen) || ' ' || (SELECT count(*) FROM trg WHERE embedding IS NOT NULL) || ' ' || (SELECT count(*) FROM que WHERE embedding IS NOT NULL) || ' ' || (SELECT count(*) FROM qwen3_embed.columns) || ' ' || (SELECT count(*) FROM qwen3_embed.queue)")" \
       "0 20 20 2 5"
pg_local_stop

summary
