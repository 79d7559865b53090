#!/usr/bin/env bash
# Private memory of backends that each embedded something: starts a throwaway server with the
# extension and MODEL, opens N sessions that each call qwen3_embed() and then wait, and prints
# every backend's Rss / Pss / private memory from /proc/PID/smaps_rollup, and their total.
# Usage: scripts/measure_memory.sh MODEL [N=2] [extra postgresql.conf lines...]
# (The extension must be installed: cargo pgrx install --pg-config /usr/lib/postgresql/15/bin/pg_config)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL="$(realpath "$1")"; N="${2:-2}"; shift; shift || true
source "$ROOT/scripts/pg_local.sh"
DIR="$(mktemp -d /tmp/qwen3-mem.XXXXXX)"
trap 'kill $(jobs -p) 2>/dev/null || true; pg_local_stop; rm -rf "$DIR"' EXIT
pg_local_start "$DIR" 28816 "qwen3_embed.model_path = '$MODEL'" "max_connections = 64" "$@"
pg_local_psql -q -c "CREATE EXTENSION qwen3_embed CASCADE"

for i in $(seq 1 "$N"); do
    pg_local_psql -q -c "SELECT vector_dims(qwen3_embed('memory probe $i'))" \
        -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
done
# Wait until every session has its vector and sleeps.
for _ in $(seq 1 600); do
    busy=$(pg_local_psql -At -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%' AND state = 'active'")
    [[ "$busy" -ge "$N" ]] && break
    sleep 1
done
printf '%-8s %10s %10s %14s\n' pid rss_kB pss_kB private_kB
total=0
for pid in $(pg_local_psql -At -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(600)%'"); do
    read -r rss pss priv < <(awk '/^Rss:/{r=$2} /^Pss:/{p=$2} /^Private_(Clean|Dirty):/{v+=$2} END{print r, p, v}' "/proc/$pid/smaps_rollup")
    printf '%-8s %10s %10s %14s\n' "$pid" "$rss" "$pss" "$priv"
    total=$((total + priv))
done
echo "total private memory of $N backends: $((total / 1024)) MiB"
