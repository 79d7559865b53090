#!/usr/bin/env bash
# How long the model server is away after a kill -9, with the packed-weight cache already there:
# starts a throwaway cluster with qwen3_embed preloaded and MODEL, lets the first call pack the
# cache (a temporary qwen3_embed.cache_dir), then ROUNDS times kills the model server process and
# times, from the kill, the first qwen3_embed() call that returns a vector (a new psql every
# 20 ms; each call also waits for the server by itself). Prints each round and the worst.
# Usage: scripts/bench/restart.sh MODEL [ROUNDS=3]   (the extension must be installed)
set -euo pipefail
MODEL="$(realpath "$1")"; ROUNDS="${2:-3}"
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/lib.sh"
DIR="$(mktemp -d /tmp/qwen3-restart.XXXXXX)"
chmod 755 "$DIR"
trap 'pg_local_stop; rm -rf "$DIR"' EXIT
install -d -o postgres "$DIR/cache"
pg_local_start "$DIR" 28817 "shared_preload_libraries = 'qwen3_embed'" "qwen3_embed.model_path = '$MODEL'" \
    "qwen3_embed.cache_dir = '$DIR/cache'" "qwen3_embed.server_threads = 2"
pg_local_psql -q -c "CREATE EXTENSION qwen3_embed CASCADE"
t0=$(date +%s%N)
pg_local_psql -qAt -c "SELECT vector_dims(qwen3_embed('first call'))" >/dev/null
echo "first call (the server packs the cache): $(( ($(date +%s%N) - t0) / 1000000 )) ms; $(pg_local_psql -qAt -c "SELECT cache || ' ' || round(cache_bytes / 1e9, 2) || ' GB' FROM qwen3_embed_server_stats()")"
worst=0
for r in $(seq "$ROUNDS"); do
    pid="$(pg_local_psql -qAt -c "SELECT pid FROM qwen3_embed_server_stats()")"
    t0=$(date +%s%N)
    kill -9 "$pid"
    until pg_local_psql -qAt -c "SELECT vector_dims(qwen3_embed('after kill $r'))" >/dev/null 2>&1; do sleep 0.02; done
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    (( ms > worst )) && worst=$ms
    echo "round $r: served $ms ms after kill -9 ($(pg_local_psql -qAt -c "SELECT 'cache ' || cache || ', load ' || round(model_load_ms) || ' ms' FROM qwen3_embed_server_stats()"))"
done
echo "worst: $worst ms"
