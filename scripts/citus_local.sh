#!/usr/bin/env bash
# Helpers for a throwaway Citus cluster on this machine: a coordinator and two workers, three
# PostgreSQL 15 clusters on consecutive ports (scripts/pg_local.sh starts each), every node with
# Citus and qwen3_embed and the same model file configured. Source it (after pg_local.sh), then:
#   citus_cluster_start WORK BASE_PORT [extra postgresql.conf lines for every node...]
#   citus_node NAME           # coord, w1 or w2: points the pg_local helpers at that node
#   citus_cluster_stop
# Used by scripts/citus_tests.sh and scripts/bench/citus.sh. Needs Citus installed
# for PostgreSQL 15 (from its upstream source; not built by this project) and the model path in MODEL.

# Points pg_local_psql / pg_local_stop at a node of the cluster (or any cluster under WORK).
citus_node() {
    PG_LOCAL_DIR="$CITUS_WORK/$1"
    case "$1" in
        coord) PG_LOCAL_PORT=$CITUS_BASE ;;
        w1) PG_LOCAL_PORT=$((CITUS_BASE + 1)) ;;
        w2) PG_LOCAL_PORT=$((CITUS_BASE + 2)) ;;
        *) PG_LOCAL_PORT=$2 ;;
    esac
}

citus_cluster_start() {
    CITUS_WORK="$1"; CITUS_BASE="$2"; shift 2
    local name
    for name in coord w1 w2; do
        citus_node "$name"
        # Citus must be preloaded on every node; two-phase commit (multi-node writes) needs
        # prepared transactions on the workers. The nodes talk through their Unix sockets.
        pg_local_start "$PG_LOCAL_DIR" "$PG_LOCAL_PORT" \
            "shared_preload_libraries = 'citus'" \
            "max_prepared_transactions = 20" \
            "qwen3_embed.model_path = '$MODEL'" \
            "$@"
        pg_local_psql -q -c "SET client_min_messages = warning" -c "CREATE EXTENSION citus" -c "CREATE EXTENSION qwen3_embed CASCADE"
    done
    citus_node coord
    pg_local_psql -q -c "SELECT citus_set_coordinator_host('$CITUS_WORK/coord', $CITUS_BASE)" \
        -c "SELECT citus_add_node('$CITUS_WORK/w1', $((CITUS_BASE + 1)))" \
        -c "SELECT citus_add_node('$CITUS_WORK/w2', $((CITUS_BASE + 2)))" >/dev/null
}

citus_cluster_stop() {
    [[ -n "${CITUS_WORK:-}" ]] || return 0
    local name
    for name in w2 w1 coord; do
        citus_node "$name"
        pg_local_stop
    done
}
