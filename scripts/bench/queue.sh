#!/usr/bin/env bash
# The sync queue at scale, on a throwaway cluster (no workers: the drain is called by hand, in one
# session with the model loaded), the queue's own cost apart from embedding:
#   1. qwen3_embed_sync over a table of N rows (the backlog queued), and then, with those N rows
#      queued, one drained batch (qwen3_embed_sync_run(max_batches => 1), 64 rows), the status
#      view, and the claim query's plan and time;
#   2. the bad case: those N rows all waiting for a retry an hour away, and a second table's
#      1,000 rows queued behind them: the second sync's drained batch, its claim query and
#      qwen3_embed_sync_due.
#   scripts/bench/queue.sh [MODEL] [ROWS]   (defaults: the tiny fixture, 1000000)
set -euo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../tests/lib.sh"
MODEL="$(realpath "${1:-fixtures/generated/tiny/model-q8_0.gguf}")"
ROWS="${2:-1000000}"
WORK="$(scratch_dir bench_queue)"
trap 'pg_local_stop; rm -rf "$WORK"' EXIT
pg_local_start "$WORK/pg" "$(random_port)" "qwen3_embed.model_path = '$MODEL'" "shared_buffers = '512MB'"
q -c "CREATE EXTENSION qwen3_embed CASCADE" >/dev/null 2>&1
# One session: the model is loaded once (by the warm-up), every figure is the statement's own time.
run() { q -c "SET client_min_messages = warning" -c "SELECT 1 FROM qwen3_embed('warm up')" -c "\\timing on" "$@"; }
ms() { sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'; }
claim() { # sync id: the claim query's plan (as qwen3_embed_state_queue_claim runs it), and its time
    q -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF)
          SELECT q.id, q.key FROM qwen3_embed.queue q WHERE q.sync_id = $1 AND q.next_try_at <= clock_timestamp()
           ORDER BY q.id LIMIT 64 FOR UPDATE SKIP LOCKED" | sed 's/^/      /'
}

q -c "CREATE TABLE a (id bigint PRIMARY KEY, body text, embedding vector(64))" \
  -c "INSERT INTO a SELECT i, 'document ' || i FROM generate_series(1, $ROWS) i" \
  -c "CREATE TABLE b (id bigint PRIMARY KEY, body text, embedding vector(64))" \
  -c "INSERT INTO b SELECT i, 'document ' || i FROM generate_series(1, 1000) i" >/dev/null
t=($(run -c "SELECT qwen3_embed_sync('a', 'body', 'embedding')" 2>/dev/null | ms))
echo "qwen3_embed_sync over $ROWS rows (backlog queued): ${t[0]} ms"
q -c "VACUUM ANALYZE qwen3_embed.queue" >/dev/null
t=($(run -c "SELECT qwen3_embed_sync_run(max_batches => 1)" -c "SELECT qwen3_embed_sync_run(max_batches => 1)" \
         -c "SELECT count(*) FROM qwen3_embed_sync_status" | ms))
echo "with $ROWS rows queued: a drained batch of 64 ${t[0]} ms, again ${t[1]} ms; the status view ${t[2]} ms"
echo "  the claim query:"
claim 1

q -c "UPDATE qwen3_embed.queue SET attempts = 1, next_try_at = now() + interval '1 hour' WHERE sync_id = 1" \
  -c "SET client_min_messages = warning" -c "SELECT qwen3_embed_sync('b', 'body', 'embedding')" \
  -c "VACUUM ANALYZE qwen3_embed.queue" >/dev/null 2>&1
t=($(run -c "SELECT qwen3_embed_sync_run(2, max_batches => 1)" -c "SELECT qwen3_embed_sync_run(2, max_batches => 1)" \
         -c "SELECT count(*) FROM qwen3_embed.qwen3_embed_sync_due(NULL)" | ms))
echo "1,000 rows of another sync behind $ROWS waiting for a retry: a drained batch of 64 ${t[0]} ms, again ${t[1]} ms;"
echo "  qwen3_embed_sync_due ${t[2]} ms; the claim query:"
claim 2
