#!/usr/bin/env bash
# The sync queue's cost on the write path and its drain rate, on a throwaway cluster with the
# library preloaded (model server and sync workers):
#   1. INSERT of N rows into a table kept in step by qwen3_embed_sync, against the same INSERT
#      into a table with no embedding at all (each best of 3);
#   2. the time the workers take to drain that backlog (from the INSERT's commit), against one
#      qwen3_embed_batch call over the same texts (best of 3), as rows/s and their ratio.
#   scripts/bench/sync.sh [MODEL] [ROWS] [WORKERS]   (defaults: the tiny fixture, 10000, 1)
set -euo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/lib.sh"
MODEL="$(realpath "${1:-fixtures/generated/tiny/model-q8_0.gguf}")"
ROWS="${2:-10000}"
WORKERS="${3:-1}"
WORK="$(scratch_dir bench_sync)"
trap 'pg_local_stop; rm -rf "$WORK"' EXIT
pg_local_start "$WORK/pg" "$(random_port)" \
    "shared_preload_libraries = 'qwen3_embed'" "qwen3_embed.model_path = '$MODEL'" \
    "qwen3_embed.sync_workers = $WORKERS" "qwen3_embed.sync_naptime = 50"
q -c "CREATE EXTENSION qwen3_embed CASCADE" >/dev/null
TEXTS="SELECT i, format('Document %s about %s, with some words to embed', i, md5(i::text)), NULL FROM generate_series(1, $ROWS) i"
ms() { q -c "\\timing on" -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1; }
best() { sort -n | head -1; }

plain=$(for r in 1 2 3; do
    q -c "DROP TABLE IF EXISTS plain; CREATE TABLE plain (id int PRIMARY KEY, body text, embedding vector(64))"
    ms "INSERT INTO plain $TEXTS"
done | best)
# Warm the model so the drain measures embedding, not loading.
q -c "SELECT qwen3_embed('warm up')" >/dev/null
synced=()
drain=()
for r in 1 2 3; do
    q -c "DROP TABLE IF EXISTS synced; CREATE TABLE synced (id int PRIMARY KEY, body text, embedding vector(64))" \
      -c "SELECT qwen3_embed_sync('synced', 'body', 'embedding', batch_size => ${BATCH:-256})" >/dev/null 2>&1
    # The INSERT, then (same session, no gap) a wait until the queue is empty: the drain is timed
    # from the INSERT's commit, when its queue rows become visible to the workers. The wait looks
    # every 20 ms with one cheap query in one backend, so it takes next to no CPU from them, and
    # commits each time, so it holds back no cleanup of the queue's dead rows.
    times=($(q -c "\\timing on" -c "INSERT INTO synced $TEXTS" \
        -c "DO \$\$BEGIN WHILE EXISTS (SELECT FROM qwen3_embed.queue) LOOP COMMIT; PERFORM pg_sleep(0.02); END LOOP; END\$\$" \
        | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'))
    synced+=("${times[0]}")
    drain+=("${times[1]}")
    [[ "$(q -c "SELECT count(*) FILTER (WHERE embedding IS NOT NULL) FROM synced")" == "$ROWS" ]] || { echo "drain incomplete"; exit 1; }
    q -c "SELECT qwen3_embed_unsync('synced', 'embedding')" >/dev/null
done
synced_best=$(printf '%s\n' "${synced[@]}" | best)
drain_best=$(printf '%s\n' "${drain[@]}" | best)
batch=$(for r in 1 2 3; do ms "SET qwen3_embed.max_request_tokens = 100000000; SELECT count(*) FROM qwen3_embed_batch(ARRAY(SELECT body FROM plain ORDER BY id))"; done | best)
python3 - "$ROWS" "$plain" "$synced_best" "$drain_best" "$batch" "$WORKERS" <<'PY'
import sys
rows, plain, synced, drain, batch, workers = int(sys.argv[1]), *map(float, sys.argv[2:6]), sys.argv[6]
print(f"rows {rows}, sync workers {workers}, best of 3 each")
print(f"INSERT, no embedding:        {plain:9.1f} ms")
print(f"INSERT, kept by the queue:   {synced:9.1f} ms   ratio {synced / plain:.2f}x")
print(f"queue drained by workers:    {drain:9.1f} ms   {rows / drain * 1000:8.1f} rows/s")
print(f"one qwen3_embed_batch call:  {batch:9.1f} ms   {rows / batch * 1000:8.1f} rows/s")
print(f"drain rate / batch rate:     {batch / drain:.2f}")
PY
