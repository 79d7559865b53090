#!/usr/bin/env bash
# The Debian package, as a DBA uses it: build it (scripts/package_deb.sh), install it with dpkg
# into the system PostgreSQL 15, then, in an environment with no Rust toolchain
# (env -i PATH=/usr/bin:/bin, no cargo or rustc there), create a clean cluster, CREATE EXTENSION,
# embed with the tiny fixture model in the backend and through the model server, a generated
# column and a nearest-neighbour query; then dpkg -r removes every file it installed.
#
# The package writes the same files as scripts/install.sh (which the other tests use). So the
# files it would replace are saved first and put back at the end, whatever happens (trap), and
# the package is removed: the system is left as it was found. Run it under the lock that keeps
# other runs of the test suite off the system PostgreSQL 15 (flock /tmp/qwen3_embed-pg15.lock).
#
#   bash tests/deb.sh [PG_MAJOR]      (default 15; DEB=path skips the build)
# Last line: "N passed, M failed"; exit status non-zero on any failure.
set -euo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_MAJOR="${1:-15}"
NAME="postgresql-$PG_MAJOR-qwen3-embed"
tiny_models
[[ $EUID -eq 0 ]] || { echo "run as root (dpkg -i)"; exit 1; }

START=$SECONDS
WORK="$(scratch_dir deb_test)"

if [[ -z "${DEB:-}" ]]; then
    DEB="$(PROFILE=dev OUT_DIR="$WORK" bash scripts/package_deb.sh "$PG_MAJOR" 2>"$WORK/package.log")" \
        || { tail -n 30 "$WORK/package.log"; echo "0 passed, 1 failed"; exit 1; }
fi
echo "package: $DEB ($(du -h "$DEB" | cut -f1), built in $((SECONDS - START)) s)"
check "the package is named and versioned for PostgreSQL $PG_MAJOR" \
    eq "$(dpkg-deb -f "$DEB" Package Version | tr '\n' ' ')" \
       "Package: $NAME Version: $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1) "

# --- save what the package will overwrite; put it back at the end -----------------------------------
mapfile -t FILES < <(dpkg-deb --fsys-tarfile "$DEB" | tar -t | sed -n 's|^\./|/|p' | grep -v '/$')
EXISTING=()
for f in "${FILES[@]}"; do [[ -e "$f" ]] && EXISTING+=("$f"); done
if ((${#EXISTING[@]})); then
    tar -cpf "$WORK/saved.tar" -P "${EXISTING[@]}"
fi
INSTALLED=0
CLUSTER_UP=0
cleanup() {
    if ((CLUSTER_UP)); then
        sudo -u postgres /usr/lib/postgresql/"$PG_MAJOR"/bin/pg_ctl -D "$WORK/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if ((INSTALLED)); then
        dpkg -r "$NAME" >/dev/null 2>&1 || true
    fi
    if [[ -f "$WORK/saved.tar" ]]; then
        tar -xpf "$WORK/saved.tar" -P
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
# A leftover of an interrupted run: remove it (the files saved above are put back at the end).
dpkg -s "$NAME" >/dev/null 2>&1 && dpkg -r "$NAME" >/dev/null

# --- install -----------------------------------------------------------------------------------------
INSTALLED=1
dpkg -i "$DEB" >"$WORK/dpkg.log" 2>&1 || cat "$WORK/dpkg.log"
check "dpkg -i installs it" eq "$(dpkg-query -W -f '${Status}' "$NAME" 2>/dev/null)" "install ok installed"
LIB="$(dpkg -L "$NAME" | grep '/qwen3_embed\.so$')"
check "the installed library's dependencies all resolve" bash -c "! ldd '$LIB' | grep -q 'not found'"

# --- use it with no Rust toolchain -----------------------------------------------------------------
# The model and the cluster live in $WORK, outside the checkout.
install -d -o postgres "$WORK/pg"
cp "$MODEL" "$WORK/model.gguf"
chmod 644 "$WORK/model.gguf"
PORT="$(random_port)"
CLUSTER_UP=1
env -i PATH=/usr/bin:/bin LANG=C.UTF-8 WORK="$WORK" PORT="$PORT" PG_MAJOR="$PG_MAJOR" \
    bash -euo pipefail >"$WORK/use.out" 2>&1 <<'EOF' || true
if command -v cargo || command -v rustc || command -v cargo-pgrx; then
    echo "toolchain: found"; exit 1
fi
echo "toolchain: none"
BIN=/usr/lib/postgresql/$PG_MAJOR/bin
sudo -u postgres "$BIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust --locale=C.UTF-8 -E UTF8 >/dev/null
cat <<CONF | sudo -u postgres tee -a "$WORK/pg/data/postgresql.conf" >/dev/null
shared_preload_libraries = 'qwen3_embed'
qwen3_embed.model_path = '$WORK/model.gguf'
qwen3_embed.threads = 2
qwen3_embed.server_threads = 2
qwen3_embed.cache_dir = '$WORK/pg/cache'
CONF
sudo -u postgres "$BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w \
    -o "-p $PORT -k $WORK/pg -c listen_addresses=''" start >/dev/null
q() { "$BIN/psql" -h "$WORK/pg" -p "$PORT" -U postgres -X -v ON_ERROR_STOP=1 -qAt "$@"; }
q -c "CREATE EXTENSION qwen3_embed CASCADE"
echo "version: $(q -c "SELECT extversion FROM pg_extension WHERE extname = 'qwen3_embed'")"
echo "server: $(q -c "SELECT runs_in, vector_dims(qwen3_embed('a packaged extension')) FROM qwen3_embed_info()")"
echo "build: $(q -c "SELECT build FROM qwen3_embed_info()")"
echo "debug-build warnings in the log: $(grep -c 'this library is a debug build' "$WORK/pg/server.log" || true)"
echo "same in the backend: $(q -c "SELECT qwen3_embed('a packaged extension')::text" -c "SET qwen3_embed.use_server = off" \
                                -c "SELECT qwen3_embed('a packaged extension')::text" | uniq | wc -l)"
q -c "CREATE TABLE docs (id int PRIMARY KEY, body text,
                         embedding vector(64) GENERATED ALWAYS AS (qwen3_embed(body, NULL, 64)::vector(64)) STORED)" \
  -c "INSERT INTO docs (id, body) SELECT i, 'document number ' || i FROM generate_series(1, 20) i"
echo "nearest: $(q -c "SELECT id FROM docs ORDER BY embedding <=> qwen3_embed('document number 7', NULL, 64) LIMIT 1")"
echo "batch: $(q -c "SELECT count(embedding) FROM qwen3_embed_batch(ARRAY(SELECT body FROM docs))")"
EOF
sed 's/^/      /' "$WORK/use.out"
check "no cargo or rustc on the PATH of the cluster's session" grep -qx "toolchain: none" "$WORK/use.out"
check "CREATE EXTENSION qwen3_embed CASCADE on a clean cluster gives the package's version" \
    grep -qx "version: $(dpkg-deb -f "$DEB" Version)" "$WORK/use.out"
check "it embeds through the model server with the fixture model (256 dims)" grep -qx "server: server|256" "$WORK/use.out"
# The test packages the dev profile (debug assertions on) to share the test builds: the library
# must say so, and the postmaster (preloading it) must have warned once in the log.
check "qwen3_embed_info().build names the package's profile (debug)" grep -qx "build: debug" "$WORK/use.out"
check "the server log warns once that the library is a debug build" \
    grep -qx "debug-build warnings in the log: 1" "$WORK/use.out"
check "the same vector in the backend" grep -qx "same in the backend: 1" "$WORK/use.out"
check "a generated column and a nearest-neighbour query" grep -qx "nearest: 7" "$WORK/use.out"
check "qwen3_embed_batch" grep -qx "batch: 20" "$WORK/use.out"
sudo -u postgres /usr/lib/postgresql/"$PG_MAJOR"/bin/pg_ctl -D "$WORK/pg/data" -m fast -w stop >/dev/null
CLUSTER_UP=0

# --- remove ------------------------------------------------------------------------------------------
dpkg -r "$NAME" >"$WORK/dpkg-r.log" 2>&1
INSTALLED=0
left=0
for f in "${FILES[@]}"; do [[ -e "$f" ]] && left=$((left + 1)); done
check "dpkg -r removes every file it installed (${#FILES[@]})" eq "$left" 0

echo "deb test took $((SECONDS - START)) s"
summary
