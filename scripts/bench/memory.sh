#!/usr/bin/env bash
# Memory of backends that each embedded something, with the model in every backend (no model
# server): starts a throwaway server with the extension and MODEL, lets one session pack the
# model into a fresh packed-weight cache (qwen3_embed.cache_dir, a temporary directory), then
# opens N sessions that each call qwen3_embed() at once and then wait, and prints every backend's
# Rss / Pss / private memory from /proc/PID/smaps_rollup, their total private memory, and how
# much of each backend's Rss is the shared cache file.
# Usage: scripts/bench/memory.sh MODEL [N=2] [extra postgresql.conf lines...]
#   (CACHE_DIR=off measures without the cache: every backend packs its own copy.)
# (The extension must be installed: cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config)
set -euo pipefail
MODEL="$(realpath "$1")"; N="${2:-2}"; shift; shift || true
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/lib.sh"
DIR="$(mktemp -d /tmp/qwen3-mem.XXXXXX)"
chmod 755 "$DIR"
trap 'kill $(jobs -p) 2>/dev/null || true; pg_local_stop; rm -rf "$DIR"' EXIT
CACHE="${CACHE_DIR:-$DIR/cache}"
[[ "$CACHE" == off ]] || install -d -o postgres "$CACHE"
pg_local_start "$DIR" 28816 "qwen3_embed.model_path = '$MODEL'" "qwen3_embed.cache_dir = '$CACHE'" \
    "max_connections = 64" "$@"
pg_local_psql -q -c "CREATE EXTENSION qwen3_embed CASCADE"

t0=$(date +%s%N)
first="$(pg_local_psql -At -c "SELECT vector_dims(qwen3_embed('pack probe'))" -c "SELECT cache FROM qwen3_embed_info()")"
echo "first session: $(tr '\n' ' ' <<<"$first")in $(( ($(date +%s%N) - t0) / 1000000 )) ms (cache: $CACHE)"

t0=$(date +%s%N)
for i in $(seq 1 "$N"); do
    pg_local_psql -q -c "SELECT vector_dims(qwen3_embed('memory probe $i'))" \
        -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
done
# Wait until every session has its vector and sleeps.
for _ in $(seq 1 600); do
    busy=$(pg_local_psql -At -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%' AND state = 'active'")
    [[ "$busy" -ge "$N" ]] && break
    sleep 0.2
done
echo "$N sessions loaded the model and embedded in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
printf '%-8s %10s %10s %14s %14s\n' pid rss_kB pss_kB private_kB cache_rss_kB
total=0
for pid in $(pg_local_psql -At -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%'"); do
    read -r rss pss priv < <(awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Private_(Clean|Dirty):/{v+=$2} END{print r, p, v}' "/proc/$pid/smaps_rollup")
    cache_rss=$(awk '/qwen3pack/{m=1; next} /^[0-9a-f]+-[0-9a-f]+ /{m=0} m && /^Rss:/{s+=$2} END{print s+0}' "/proc/$pid/smaps")
    printf '%-8s %10s %10s %14s %14s\n' "$pid" "$rss" "$pss" "$priv" "$cache_rss"
    total=$((total + priv))
done
[[ "$CACHE" == off ]] || ls -l "$CACHE"/*.qwen3pack | awk '{printf "cache file: %.2f GB\n", $5 / 1e9}'
echo "total private memory of $N backends: $((total / 1024)) MiB ($((total / 1024 / N)) MiB each)"
