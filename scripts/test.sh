#!/usr/bin/env bash
# The project's test command (README; .ci/run runs exactly this): set-up, then
#   1. engine tests (they generate their fixture models on first use, fixtures/generated/, and
#      compare against the committed goldens in engine/tests/golden/) and the extension's
#      #[pg_test]s in a pgrx-managed PostgreSQL 15,
#   2. the SQL scenario tests against a real PostgreSQL 15 with pgvector (pg_regress), twice:
#      with the model in each backend, and through the model server (shared_preload_libraries),
#   3. the model server's own scenarios: 16 sessions x 100 calls, kill -9 and recovery,
#      withdrawal on cancel, model change on reload, the socket's permissions, the sync workers;
#   3b. migrations as Alembic and Django run them (tests/clients.sh; skipped with a line when
#      setup could not install them),
#   4. pg_dump / pg_restore of a database with a generated column, a trigger and a sync queue;
#   5. the Debian package (scripts/package_deb.sh): installed with dpkg into the system
#      PostgreSQL 15, used on a clean cluster with no Rust toolchain on the PATH, removed, and the
#      files it replaced put back;
#   6. the Citus scenarios (tests/citus.sh) when Citus is installed for PostgreSQL 15 (this
#      project does not build it; Debian has no package); else one line says so;
#   7. only with QWEN3_EMBED_ALL_PG=1: the #[pg_test]s and the SQL scenario tests on PostgreSQL 17
#      and 18 as well (tests/all_pg.sh; setup.sh then builds those servers from source).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"

bash scripts/setup.sh

echo "== every user-facing install builds the release (the demo, the README, the package)"
bash scripts/check_release_install.sh

# The test servers run as the postgres OS user and read the fixture models from this checkout:
# every directory above it must be searchable by that user (mktemp -d makes 0700 directories).
d="$ROOT"
while [[ "$d" != / ]]; do
    sudo -u postgres test -x "$d" || chmod o+x "$d"
    d="$(dirname "$d")"
done

echo "== engine and extension tests"
# One cargo invocation for both crates, so dependencies build once with one feature set.
# The extension's #[pg_test]s start a pgrx-managed PostgreSQL 15; Postgres refuses root, so it
# runs as the postgres user in a directory that user owns.
PGRX_DATA=/tmp/qwen3_embed-pgrx
install -d -o postgres -g postgres "$PGRX_DATA"
CARGO_PGRX_TEST_RUNAS=postgres CARGO_PGRX_TEST_PGDATA="$PGRX_DATA" \
    cargo test --workspace --no-default-features --features qwen3_embed/pg15,qwen3_embed/pg_test

echo "== engine golden tests under the other kernel tables this CPU runs (the default run used the best)"
# avx2 is the plain AVX2 table on every AVX2 CPU; avx2_vnni the one with AVX-VNNI.
for isa in generic avx2 avx2_vnni; do
    if [[ "$isa" == avx2* ]] && ! grep -qw avx2 /proc/cpuinfo; then
        echo "   (no AVX2 on this CPU: $isa skipped)"
        continue
    fi
    if [[ "$isa" == avx2_vnni ]] && ! grep -qw avx_vnni /proc/cpuinfo; then
        echo "   (no AVX-VNNI on this CPU: $isa skipped)"
        continue
    fi
    QWEN3_EMBED_ISA=$isa cargo test -p qwen3-embed-engine --test embeddings --test rerank
done

echo "== SQL scenario tests, model in each backend"
bash tests/sql.sh

echo "== SQL scenario tests, through the model server"
SKIP_INSTALL=1 QWEN3_EMBED_SQL_TEST_CONF="shared_preload_libraries = 'qwen3_embed'" bash tests/sql.sh

echo "== model server scenarios"
bash tests/server.sh

echo "== migrations from Alembic and Django"
bash tests/clients.sh

echo "== backups: pg_dump and pg_restore"
bash tests/dump.sh

echo "== the Debian package: build, install, use without a Rust toolchain, remove"
bash tests/deb.sh

if [[ -f "$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)/citus.so" ]]; then
    echo "== scale-out on Citus: a coordinator and two workers"
    bash tests/citus.sh
else
    echo "== Citus scenarios skipped: Citus is not installed for PostgreSQL 15 (this project does not build it: install Citus 13 for PostgreSQL 15 from its upstream source)"
fi

if [[ "${QWEN3_EMBED_ALL_PG:-0}" == 1 ]]; then
    echo "== PostgreSQL 17 and 18"
    bash tests/all_pg.sh
fi
