#!/usr/bin/env bash
# Scale-out on Citus: a coordinator and two workers (three throwaway PostgreSQL 15 clusters,
# tests/lib.sh) plus a plain single server for reference, each with Citus (not the
# single one), qwen3_embed (model in each backend) and the tiny fixture model. Scenarios:
#   1. a distributed table with a generated embedding column: rows inserted through the
#      coordinator get their vectors on the workers (EXPLAIN shows the shard INSERT without the
#      vector; the coordinator's own model is made unusable and the INSERT still works; counted
#      per worker via citus_shards), equal to qwen3_embed(body) on the single server;
#   2. qwen3_embed_trigger on a distributed table: refused by Citus unless
#      citus.enable_unsafe_triggers is on when the trigger is created (before or after
#      create_distributed_table); then it fires on the workers' shards;
#   3. ORDER BY embedding <=> qwen3_embed_query(...) LIMIT k: the same rows as the single
#      server, the query vector computed once on the coordinator and sent to the shards as a
#      constant; the same with an HNSW index on every shard;
#   4. re-embedding after a model change: qwen3_embed_reembed is refused by Citus (reported);
#      contrib/citus/citus_reembed.sql's qwen3_embed_reembed_distributed, cancelled (pg_cancel_backend)
#      mid-way, resumes, and every row ends with its current text's vector from the new model.
# Needs Citus installed for PostgreSQL 15 (from its upstream source) and the extension and fixture
# models from tests/sql.sh. Run: flock /tmp/qwen3_embed-pg15.lock bash tests/citus.sh
# Last line: "N passed, M failed"; exit status non-zero on any failure.
set -euo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tiny_models
[[ -f "$("$PG_BIN/pg_config" --pkglibdir)/citus.so" ]] || { echo "Citus is not installed for PostgreSQL 15 (install it from its upstream source)"; exit 1; }
WORK="$(scratch_dir citus_tests)"
chown postgres "$WORK"
BASE=$((30000 + RANDOM % 900))   # coordinator, workers on +1 and +2, single server on +3
cleanup() {
    citus_node single $((BASE + 3)); pg_local_stop
    citus_cluster_stop
    [[ "${QWEN3_EMBED_CITUS_TEST_KEEP:-0}" == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT

# on NODE psql-args...: coord, w1, w2 or single.
on() { local node="$1"; shift; citus_node "$node" $((BASE + 3)); pg_local_psql -qAt "$@"; }
# on_err NODE SQL: runs SQL expecting an error; prints the error text.
on_err() { local node="$1"; shift; citus_node "$node" $((BASE + 3)); pg_local_psql -qAt -c "$1" 2>&1 && echo "(no error)"; true; }

start=$SECONDS
lap() { echo "      ($1 at $((SECONDS - start)) s)"; }
# Small shard count: a multi-shard statement opens one worker connection per shard at most.
citus_cluster_start "$WORK" "$BASE" "qwen3_embed.threads = 1" "citus.shard_count = 4"
pg_local_start "$WORK/single" $((BASE + 3)) "qwen3_embed.model_path = '$MODEL'" "qwen3_embed.threads = 1"
on single -c "CREATE EXTENSION qwen3_embed CASCADE" 2>/dev/null
check "coordinator sees two workers" eq "$(on coord -c "SELECT count(*) FROM citus_get_active_worker_nodes()")" 2

ROWS="SELECT i, 'document ' || i || ' about ' || (ARRAY['databases','vectors','cats','rivers','music'])[1 + i % 5] FROM generate_series(1, 60) i"
digest() { echo "SELECT md5(string_agg(id || ':' || coalesce(embedding::text, '-'), ',' ORDER BY id)) FROM $1"; }
BROKEN="SET qwen3_embed.model_path = '$WORK/no-such-model.gguf';"   # this session only (Citus does not propagate SET)

# --- 1. generated column -------------------------------------------------------------------------
lap "1 starts"
GEN="CREATE TABLE gen (id bigint PRIMARY KEY, body text NOT NULL,
       embedding vector(64) GENERATED ALWAYS AS (qwen3_embed(body, NULL, 64)::vector(64)) STORED)"
on single -c "$GEN" -c "INSERT INTO gen (id, body) $ROWS"
on coord -c "$GEN" -c "SELECT create_distributed_table('gen', 'id')" >/dev/null
plan="$(on coord -c "EXPLAIN (VERBOSE, COSTS OFF) INSERT INTO gen (id, body) VALUES (1000, 'x')")"
check "EXPLAIN: the shard INSERT carries only id and body, and goes to a worker" \
    bash -c "$(declare -f has hasnt); has \"\$1\" 'Query: INSERT INTO public.gen_[0-9]* (id, body) VALUES' && hasnt \"\$1\" 'qwen3_embed(' && has \"\$1\" \"port=$((BASE + 1))\\|port=$((BASE + 2))\"" _ "$plan"
out="$(on coord -c "$BROKEN" -c "INSERT INTO gen (id, body) $ROWS" -c "SELECT count(embedding) FROM gen" 2>&1)"
check "with the coordinator's model unusable, the INSERT through it still embeds all 60 rows (on the workers)" eq "$out" 60
per_worker() { # TABLE: "w1_rows w2_rows", counted on each worker in its own shards
    local t="$1" node port res=""
    for node in w1 w2; do
        port=$([[ $node == w1 ]] && echo $((BASE + 1)) || echo $((BASE + 2)))
        local n=0 s
        for s in $(on coord -c "SELECT shard_name FROM citus_shards WHERE table_name = '$t'::regclass AND nodeport = $port"); do
            n=$((n + $(on "$node" -c "SELECT count(*) FROM $s WHERE embedding IS NOT NULL AND embedding = qwen3_embed(body, NULL, 64)")))
        done
        res+="$n "
    done
    echo "${res% }"
}
split="$(per_worker gen)"
echo "      rows with their vector on each worker's shards (w1 w2): $split"
check "both workers hold shards of the rows, 60 in all, each vector equal to the worker's qwen3_embed(body)" \
    bash -c "a=\${1% *}; b=\${1#* }; (( a > 0 && b > 0 && a + b == 60 ))" _ "$split"
check "the distributed vectors equal the single server's, bit for bit" \
    eq "$(on coord -c "$(digest gen)")" "$(on single -c "$(digest gen)")"

# --- 2. the trigger ------------------------------------------------------------------------------
lap "2 starts"
TRG="(id bigint PRIMARY KEY, body text, note text, embedding vector(64))"
TRIGGER="FOR EACH ROW EXECUTE FUNCTION qwen3_embed_trigger('body', 'embedding')"
on single -c "CREATE TABLE trg $TRG" -c "CREATE TRIGGER trg_embed BEFORE INSERT OR UPDATE ON trg $TRIGGER"
on coord -c "CREATE TABLE trg $TRG" -c "SELECT create_distributed_table('trg', 'id')" >/dev/null
check "CREATE TRIGGER on a distributed table is refused by default" \
    has "$(on_err coord "CREATE TRIGGER trg_embed BEFORE INSERT OR UPDATE ON trg $TRIGGER")" "triggers are not supported on distributed tables"
on coord -c "CREATE TABLE trg2 $TRG" -c "CREATE TRIGGER trg2_embed BEFORE INSERT OR UPDATE ON trg2 $TRIGGER"
check "create_distributed_table of a table that has the trigger is refused by default" \
    has "$(on_err coord "SELECT create_distributed_table('trg2', 'id')")" "cannot distribute relation \"trg2\" because it has triggers"
on coord -c "SET citus.enable_unsafe_triggers = on" \
    -c "CREATE TRIGGER trg_embed BEFORE INSERT OR UPDATE ON trg $TRIGGER" \
    -c "SELECT create_distributed_table('trg2', 'id')" >/dev/null
check "with citus.enable_unsafe_triggers = on, both work and every shard has the trigger (4 + 4)" \
    eq "$(( $(on w1 -c "SELECT count(*) FROM pg_trigger WHERE tgname ~ '^trg2?_embed_[0-9]+$'") + $(on w2 -c "SELECT count(*) FROM pg_trigger WHERE tgname ~ '^trg2?_embed_[0-9]+$'") ))" 8
on single -c "INSERT INTO trg (id, body) $ROWS"
# Sessions without the setting: it is only needed to create the trigger.
out="$(on coord -c "$BROKEN" -c "INSERT INTO trg (id, body) $ROWS" -c "INSERT INTO trg2 (id, body) $ROWS" \
        -c "SELECT count(embedding) FROM trg" -c "SELECT count(embedding) FROM trg2" 2>&1 | tr '\n' ' ')"
check "inserts through the coordinator (its model unusable) are embedded by the shards' triggers" eq "$out" "60 60 "
UPDATES="UPDATE trg SET note = 'seen' WHERE id <= 10; UPDATE trg SET body = 'rewritten ' || id::text WHERE id % 7 = 0;"
on single -c "$UPDATES"
on coord -c "$BROKEN" -c "$UPDATES"
check "after UPDATEs of the text and of another column, the vectors equal the single server's" \
    eq "$(on coord -c "$(digest trg)")" "$(on single -c "$(digest trg)")"
check "trg2 (trigger created before distribution): every row holds qwen3_embed(body)" \
    eq "$(on coord -c "SELECT count(*) FROM trg2 WHERE embedding = qwen3_embed(body, NULL, 64)")" 60

# --- 3. nearest neighbours -----------------------------------------------------------------------
lap "3 starts"
KNN="SELECT string_agg(id::text, ',') FROM (SELECT id FROM gen ORDER BY embedding <=> qwen3_embed_query('which database stores vectors?', dims => 64) LIMIT 10) t"
single_knn="$(on single -c "$KNN")"
echo "      top 10 on the single server: $single_knn"
check "distributed top 10 equals the single server's" eq "$(on coord -c "$KNN")" "$single_knn"
plan="$(on coord -c "EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM gen ORDER BY embedding <=> qwen3_embed_query('which database stores vectors?', dims => 64) LIMIT 10")"
check "the shards receive the query vector as a constant: qwen3_embed_query ran once, on the coordinator" \
    bash -c "$(declare -f has hasnt); has \"\$1\" 'Task Count: 4' && has \"\$1\" \"OPERATOR(public.<=>) '\\[\" && hasnt \"\$1\" 'qwen3_embed_query'" _ "$plan"
check "so the coordinator needs the model: with it unusable there, the search fails" \
    has "$(on_err coord "$BROKEN $KNN")" "no-such-model.gguf"
on coord -c "CREATE INDEX gen_hnsw ON gen USING hnsw (embedding vector_cosine_ops)"
on single -c "CREATE INDEX gen_hnsw ON gen USING hnsw (embedding vector_cosine_ops)"
# SET LOCAL reaches the shard queries with citus.propagate_set_commands = local.
# One statement per -c (a multi-statement string with BEGIN confuses Citus's SET propagation).
with_index() { on coord -c "SET citus.propagate_set_commands = 'local'" -c "BEGIN" -c "SET LOCAL enable_seqscan = off" -c "$1" -c "COMMIT"; }
plan="$(with_index "EXPLAIN (COSTS OFF) SELECT id FROM gen ORDER BY embedding <=> qwen3_embed_query('which database stores vectors?', dims => 64) LIMIT 10")"
# (shards are hidden from pg_class on the workers unless citus.override_table_visibility is off)
check "CREATE INDEX USING hnsw reaches every shard, and the shard queries use it" \
    bash -c "$(declare -f has); has \"\$1\" 'Index Scan using gen_hnsw_[0-9]* on gen_[0-9]*' && [[ \$2 == 4 ]]" _ "$plan" \
         "$(( $(on w1 -c "SET citus.override_table_visibility = off" -c "SELECT count(*) FROM pg_class WHERE relname ~ '^gen_hnsw_[0-9]+$'") + $(on w2 -c "SET citus.override_table_visibility = off" -c "SELECT count(*) FROM pg_class WHERE relname ~ '^gen_hnsw_[0-9]+$'") ))"
check "through the HNSW indexes (15 rows a shard, ef_search 40: exact) the top 10 is the same" \
    eq "$(with_index "$KNN")" "$single_knn"

# --- 4. re-embedding after a model change --------------------------------------------------------
lap "4 starts"
check "qwen3_embed_reembed on a distributed table: Citus refuses its batches' FOR UPDATE" \
    has "$(on_err coord "CALL qwen3_embed_reembed('trg', 'body', 'embedding', batch_size => 8)")" \
        "could not run distributed query with FOR UPDATE/SHARE commands"
on coord -c "SELECT qwen3_embed_abandon('trg', 'embedding')" >/dev/null
on coord -f contrib/citus/citus_reembed.sql
N=300
on coord -c "CREATE TABLE re (id bigint PRIMARY KEY, body text NOT NULL, embedding vector(64))" \
    -c "SELECT create_distributed_table('re', 'id')" \
    -c "INSERT INTO re (id, body) SELECT i, 'text ' || i || ' of the re-embedding test' FROM generate_series(1, $N) i" >/dev/null
t0=$(date +%s%N)
on coord -c "CALL qwen3_embed_reembed_distributed('re', 'body', 'embedding', batch_size => 20)" 2>/dev/null
full_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "      a full run over $N rows in batches of 20 took $full_ms ms"
check "a full run fills every row with qwen3_embed(body)" \
    eq "$(on coord -c "SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) FROM re")" $N
on coord -c "CREATE TABLE re_old AS SELECT id, embedding::text AS v FROM re"   # a local table on the coordinator
# The model changes on every node (a reload; the next call in each session uses the new file).
for node in coord w1 w2; do
    on "$node" -c "ALTER SYSTEM SET qwen3_embed.model_path = '$Q4_MODEL'" -c "SELECT pg_reload_conf()" >/dev/null
done
sleep 0.5
# Each node's first load of the new file packs its weights (the packed-weight cache): done here,
# so that the timed run below measures batches, not that one-off load.
for node in coord w1 w2; do on "$node" -c "SELECT qwen3_embed('warm-up') IS NOT NULL" >/dev/null; done
err="$(on_err coord "INSERT INTO trg (id, body) VALUES (1001, 'new row')")"
echo "      ${err%%$'\n'*}"
check "after the model change the trigger refuses inserts into its shards until they are re-embedded" \
    has "$err" "ERROR:  qwen3_embed"
# The run is cancelled (pg_cancel_backend, from another session) once 40 rows are committed.
citus_node coord
pg_local_psql -qAt -c "CALL qwen3_embed_reembed_distributed('re', 'body', 'embedding', batch_size => 20, restart => true)" \
    >"$WORK/interrupted.log" 2>&1 &
caller=$!
for _ in $(seq 600); do
    [[ "$(on coord -c "SELECT state = 'running' AND rows_done >= 40 FROM qwen3_embed_citus_jobs WHERE relation = 're'::regclass")" == t ]] && break
    sleep 0.05
done
on coord -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CALL qwen3_embed_reembed_distributed(''re''%'" >/dev/null
wait "$caller" || true
err="$(cat "$WORK/interrupted.log")"
check "a run cancelled mid-way by pg_cancel_backend fails with the cancel" has "$err" "canceling statement due to user request"
read -r done_rows last_key < <(on coord -F ' ' -c "SELECT rows_done, last_key FROM qwen3_embed_citus_jobs WHERE relation = 're'::regclass")
done_rows=${done_rows:-0}; last_key=${last_key:-0}
echo "      stopped after $done_rows rows (last key $last_key)"
check "it stopped mid-way: 0 < rows done < $N" bash -c "(( $done_rows > 0 && $done_rows < $N ))"
check "exactly the committed batches carry the new model's vectors (keys <= the recorded last key)" \
    eq "$(on coord -c "SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) || ' ' || count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64) AND id > $last_key) FROM re")" "$done_rows 0"
# Texts change in the part not done yet: the resumed run embeds the text the rows have then.
on coord -c "UPDATE re SET body = 'changed while stopped ' || id::text WHERE id > $last_key AND id % 10 = 0"
out="$(on coord -c "CALL qwen3_embed_reembed_distributed('re', 'body', 'embedding', batch_size => 20)" 2>&1)"
check "CALLed again, it resumes after the last committed batch" has "$out" "resuming re.embedding after $done_rows rows"
check "every row ends with its current text's vector from the new model, none with its old one" \
    eq "$(on coord -c "SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) FROM re") $(on coord -c "SELECT count(*) FROM re r JOIN re_old o USING (id) WHERE r.embedding::text = o.v")" "$N 0"
on coord -c "CALL qwen3_embed_reembed_distributed('trg', 'body', 'embedding', batch_size => 20)" 2>/dev/null
check "re-embedding the trigger's table moves its shards to the new model: inserts work again, all rows current" \
    eq "$(on coord -c "INSERT INTO trg (id, body) VALUES (1001, 'new row')" -c "SELECT count(*) FILTER (WHERE embedding = qwen3_embed(body, NULL, 64)) FROM trg")" 61

echo "      (tests/citus.sh took $((SECONDS - start)) s)"
summary
