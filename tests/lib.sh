#!/usr/bin/env bash
# The shell scenario suites' shared helpers (tests/server.sh, dump.sh, deb.sh, citus.sh), also
# sourced by scripts/demo.sh and the benchmark drivers under scripts/bench/ that start a cluster.
# Source it by its path (source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" from tests/); it sets ROOT to
# the repository root and moves there. It defines:
#
#   a throwaway PostgreSQL cluster (the system 15 unless PG_BIN names another server's bin
#   directory), run as the postgres OS user (Postgres refuses root):
#     pg_local_start DIR PORT [extra postgresql.conf lines...]; pg_local_psql ARGS...;
#     pg_local_stop; q ARGS... (pg_local_psql -qAt: one bare value a line)
#     PG_LOCAL_ENV: space-separated NAME=VALUE pairs for the server's environment
#     (e.g. RUST_BACKTRACE=1)
#   a Citus cluster of three such clusters (a coordinator and two workers):
#     citus_cluster_start WORK BASE_PORT [extra postgresql.conf lines...]; citus_node NAME;
#     citus_cluster_stop
#   the suites' bookkeeping:
#     scratch_dir NAME      a fresh /tmp/qwen3_embed_NAME.XXXXXX the postgres user can read
#     random_port [BASE]    a port in BASE..BASE+19999 (default 20000)
#     tiny_models           sets MODEL and Q4_MODEL to the tiny fixture models, or exits saying
#                           that tests/sql.sh makes them
#     check NAME CMD...     runs CMD: "ok    NAME" or "FAIL  NAME", counted in PASS and FAIL
#     eq GOT WANT; has TEXT PATTERN; hasnt TEXT PATTERN   (say what they got when they fail)
#     summary               the suites' last line, "N passed, M failed"; non-zero on any failure
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

# --- a throwaway cluster ---------------------------------------------------------------------------
pg_local_start() {
    PG_LOCAL_DIR="$1"; PG_LOCAL_PORT="$2"; shift 2
    install -d -o postgres -g postgres "$PG_LOCAL_DIR"
    sudo -u postgres "$PG_BIN/initdb" -D "$PG_LOCAL_DIR/data" -U postgres --auth=trust \
        --locale=C.UTF-8 -E UTF8 >"$PG_LOCAL_DIR/initdb.log" 2>&1
    for line in "$@"; do
        echo "$line" | sudo -u postgres tee -a "$PG_LOCAL_DIR/data/postgresql.conf" >/dev/null
    done
    # shellcheck disable=SC2086
    sudo -u postgres env ${PG_LOCAL_ENV:-} "$PG_BIN/pg_ctl" -D "$PG_LOCAL_DIR/data" -l "$PG_LOCAL_DIR/server.log" -w \
        -o "-p $PG_LOCAL_PORT -k $PG_LOCAL_DIR -c listen_addresses=''" start >/dev/null
}

pg_local_psql() {
    "$PG_BIN/psql" -h "$PG_LOCAL_DIR" -p "$PG_LOCAL_PORT" -U postgres -X -v ON_ERROR_STOP=1 "$@"
}

q() { pg_local_psql -qAt "$@"; }

pg_local_stop() {
    [[ -n "${PG_LOCAL_DIR:-}" && -f "$PG_LOCAL_DIR/data/postmaster.pid" ]] || return 0
    sudo -u postgres "$PG_BIN/pg_ctl" -D "$PG_LOCAL_DIR/data" -m fast -w stop >/dev/null || true
}

# --- a Citus cluster -------------------------------------------------------------------------------
# A coordinator and two workers on consecutive ports, every node with Citus and qwen3_embed and the
# model file in MODEL configured. Used by tests/citus.sh and scripts/bench/citus.sh. Needs Citus
# installed for PostgreSQL 15 (from its upstream source; not built by this project).

# Points pg_local_psql / pg_local_stop at a node of the cluster (coord, w1 or w2), or at another
# cluster under the same WORK (NAME PORT).
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

# --- the suites' bookkeeping -----------------------------------------------------------------------
scratch_dir() {
    local dir
    dir="$(mktemp -d "/tmp/qwen3_embed_$1.XXXXXX")"
    chmod 755 "$dir"
    echo "$dir"
}

random_port() { echo $((${1:-20000} + RANDOM % 20000)); }

tiny_models() {
    MODEL="$(realpath fixtures/generated/tiny/model-q8_0.gguf 2>/dev/null || true)"
    Q4_MODEL="$(realpath fixtures/generated/tiny/model-q4_k_m.gguf 2>/dev/null || true)"
    [[ -f "$MODEL" && -f "$Q4_MODEL" ]] || { echo "fixture models missing: run tests/sql.sh first"; exit 1; }
}

PASS=0
FAIL=0
check() { # name, then a command that must succeed
    local name="$1"; shift
    if "$@"; then
        echo "ok    $name"; PASS=$((PASS + 1))
    else
        echo "FAIL  $name"; FAIL=$((FAIL + 1))
    fi
}
eq() { [[ "$1" == "$2" ]] || { echo "      got '$1', want '$2'"; return 1; }; }
has() { grep -q -- "$2" <<<"$1" || { echo "      '$2' not in: ${1:0:400}"; return 1; }; }
hasnt() { ! grep -q -- "$2" <<<"$1" || { echo "      '$2' unexpectedly in: ${1:0:400}"; return 1; }; }

summary() {
    echo "$PASS passed, $FAIL failed"
    ((FAIL == 0))
}
