#!/usr/bin/env bash
# Helpers to run a throwaway PostgreSQL cluster (the system 15 unless PG_BIN names another
# server's bin directory) as the postgres OS user (Postgres refuses root). Source it, then:
# pg_local_start DIR PORT [extra postgresql.conf lines...]; pg_local_psql ARGS...; pg_local_stop.
# PG_LOCAL_ENV: space-separated NAME=VALUE pairs for the server's environment (e.g. RUST_BACKTRACE=1).
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

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

pg_local_stop() {
    [[ -n "${PG_LOCAL_DIR:-}" && -f "$PG_LOCAL_DIR/data/postmaster.pid" ]] || return 0
    sudo -u postgres "$PG_BIN/pg_ctl" -D "$PG_LOCAL_DIR/data" -m fast -w stop >/dev/null || true
}
