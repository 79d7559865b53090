#!/usr/bin/env bash
# Benchmark, not a test: rows per second embedded by a generated column, INSERT ... SELECT of
# ROWS rows through a Citus coordinator with two workers, against the same INSERT into one plain
# server; same model file and qwen3_embed.threads (THREADS) on every node, model in each backend,
# best of 3 each. All nodes share this machine's cores, so on a 2-core machine the figure shows
# Citus's overhead, not the gain of more machines.
#   flock /tmp/qwen3_embed-pg15.lock bash scripts/bench/citus.sh [MODEL] [ROWS] [THREADS]
# Defaults: the tiny fixture model (tests/sql.sh makes it), 2000 rows, 1 thread.
# MODE=server preloads qwen3_embed on every node (one model server each) instead.
set -euo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/lib.sh"
MODEL="$(realpath "${1:-fixtures/generated/tiny/model-q8_0.gguf}")"
ROWS="${2:-2000}"
THREADS="${3:-1}"
WORK="$(scratch_dir bench_citus)"
chown postgres "$WORK"
BASE=$((30000 + RANDOM % 900))
cleanup() { citus_node single $((BASE + 3)); pg_local_stop; citus_cluster_stop; rm -rf "$WORK"; }
trap cleanup EXIT

MODE="${MODE:-backend}"
extra=("qwen3_embed.threads = $THREADS")
[[ "$MODE" == server ]] && extra+=("shared_preload_libraries = 'citus,qwen3_embed'" "qwen3_embed.server_threads = $THREADS" "qwen3_embed.sync_workers = 0")
citus_cluster_start "$WORK" "$BASE" "${extra[@]}" 2>/dev/null
single_extra=("${extra[@]}")
[[ "$MODE" == server ]] && single_extra+=("shared_preload_libraries = 'qwen3_embed'")
pg_local_start "$WORK/single" $((BASE + 3)) "qwen3_embed.model_path = '$MODEL'" "${single_extra[@]}"
citus_node single $((BASE + 3)); pg_local_psql -q -c "CREATE EXTENSION qwen3_embed CASCADE" 2>/dev/null
TABLE="CREATE TABLE b (id bigint PRIMARY KEY, body text NOT NULL,
        embedding vector GENERATED ALWAYS AS (qwen3_embed(body)) STORED)"
INSERT="INSERT INTO b (id, body) SELECT i, 'row ' || i || ': PostgreSQL stores vectors, and Citus spreads the rows of a table over workers' FROM generate_series(1, $ROWS) i"
citus_node coord; pg_local_psql -q -c "$TABLE" -c "SELECT create_distributed_table('b', 'id')" >/dev/null
citus_node single $((BASE + 3)); pg_local_psql -q -c "$TABLE"

on_shards() { citus_node coord; pg_local_psql -qAt -c "SELECT count(*) FROM citus_shards WHERE table_name = 'b'::regclass"; }
best() { # node: best of 3 runs of the INSERT, in ms
    local node="$1" b=0 t0 ms
    for _ in 1 2 3; do
        citus_node "$node" $((BASE + 3))
        pg_local_psql -q -c "TRUNCATE b"
        t0=$(date +%s%N)
        pg_local_psql -q -c "$INSERT"
        ms=$(( ($(date +%s%N) - t0) / 1000000 ))
        ((b == 0 || ms < b)) && b=$ms
    done
    echo "$b"
}
single_ms=$(best single)
citus_ms=$(best coord)
echo "model $(basename "$MODEL"), mode $MODE (backend: model in each backend; server: qwen3_embed preloaded), $ROWS rows, $THREADS thread(s) per node, $(on_shards) shards, $(nproc) cores, best of 3:"
echo "  one server:                   $single_ms ms, $((ROWS * 1000 / single_ms)) rows/s"
echo "  coordinator + 2 workers:      $citus_ms ms, $((ROWS * 1000 / citus_ms)) rows/s"
echo "  (all nodes on this machine: Citus's overhead on shared cores, not the gain of more machines)"
