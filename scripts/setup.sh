#!/usr/bin/env bash
# One-time (and re-runnable) setup of everything the tests need, on Debian 12 as root:
#   1. Debian packages: PostgreSQL 15 + server headers, sudo, C toolchain, clang/libclang (bindgen)
#   2. pgvector 0.8.0, built from Debian 13 (trixie)'s source package into the system PostgreSQL 15
#   3. cargo-pgrx 0.18.0 (pgrx 0.19 needs Rust 1.96; the toolchain here is 1.95)
#   4. cargo pgrx init against the system PostgreSQL 15
#   5. the real tokenizer fixture (scripts/fetch_tokenizer.sh)
# Each step is skipped when its result is already in place, so a second run takes seconds.
# It does not install torch/transformers or llama.cpp: the tests do not need them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR=15
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
PGVECTOR_VERSION=0.8.0
PGRX_VERSION=0.18.0
APT_PACKAGES=(
    "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR"
    sudo build-essential pkg-config clang libclang-dev dpkg-dev ca-certificates python3
)
TRIXIE_SRC=/etc/apt/sources.list.d/trixie-src.sources

export DEBIAN_FRONTEND=noninteractive
# cargo lives in ~/.cargo/bin, which a non-login shell may not have on PATH
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"

log() { echo "[setup] $*"; }
STEP_START=0
step() { STEP_START=$SECONDS; echo; log "== $* =="; }
done_step() { log "   done in $((SECONDS - STEP_START))s"; }

if [[ $EUID -ne 0 ]]; then
    log "ERROR: run as root (installs Debian packages)"; exit 1
fi

# --- 1. Debian packages ----------------------------------------------------------------------
step "Debian packages: ${APT_PACKAGES[*]}"
missing=()
for p in "${APT_PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" != installed ]]; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
else
    log "all installed, skipping apt-get"
fi
done_step

# --- 2. pgvector from trixie's source package --------------------------------------------------
step "pgvector $PGVECTOR_VERSION"
SHAREDIR="$("$PG_CONFIG" --sharedir)"
CONTROL="$SHAREDIR/extension/vector.control"
if [[ -f "$CONTROL" ]] && grep -q "default_version = '$PGVECTOR_VERSION'" "$CONTROL" \
    && [[ -f "$("$PG_CONFIG" --pkglibdir)/vector.so" ]]; then
    log "already installed: $CONTROL"
else
    if [[ ! -f "$TRIXIE_SRC" ]]; then
        # Source only: there is no binary 'deb' entry for trixie, so nothing gets upgraded.
        log "adding deb-src entry for trixie: $TRIXIE_SRC"
        cat >"$TRIXIE_SRC" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        apt-get update
    elif ! apt-cache showsrc pgvector 2>/dev/null | grep -q "^Version: $PGVECTOR_VERSION"; then
        apt-get update
    fi
    SRC_VERSION="$(apt-cache showsrc pgvector | awk '/^Version: /{print $2}' \
        | grep "^$PGVECTOR_VERSION-" | sort -V | tail -n1)"
    [[ -n "$SRC_VERSION" ]] || { log "ERROR: no pgvector $PGVECTOR_VERSION source in apt"; exit 1; }
    BUILD="$(mktemp -d)"
    # let apt's sandbox user write the download there (else a harmless "unsandboxed" warning)
    if id _apt >/dev/null 2>&1; then chown _apt "$BUILD"; fi
    log "apt-get source pgvector=$SRC_VERSION in $BUILD"
    (cd "$BUILD" && apt-get source -q "pgvector=$SRC_VERSION")
    SRCDIR="$(find "$BUILD" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n1)"
    # OPTFLAGS= : no -march=native (Debian's no-native patch does the same; distance functions
    # dispatch on the CPU at run time), so the build does not depend on the build machine's CPU
    log "make PG_CONFIG=$PG_CONFIG && make install"
    make -s -C "$SRCDIR" -j"$(nproc)" PG_CONFIG="$PG_CONFIG" OPTFLAGS=
    make -s -C "$SRCDIR" PG_CONFIG="$PG_CONFIG" OPTFLAGS= install
    rm -rf "$BUILD"
    grep -q "default_version = '$PGVECTOR_VERSION'" "$CONTROL" \
        || { log "ERROR: $CONTROL is not version $PGVECTOR_VERSION"; exit 1; }
    log "installed $CONTROL"
fi
done_step

# --- 3. cargo-pgrx ---------------------------------------------------------------------------
step "cargo-pgrx $PGRX_VERSION"
if cargo pgrx --version 2>/dev/null | grep -qw "$PGRX_VERSION"; then
    log "already installed: $(cargo pgrx --version)"
else
    log "cargo install cargo-pgrx --version $PGRX_VERSION --locked (about 9 minutes on 2 cores)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi
done_step

# --- 4. cargo pgrx init --------------------------------------------------------------------------
step "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
PGRX_CONFIG="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
if [[ -f "$PGRX_CONFIG" ]] && grep -q "^pg$PG_MAJOR = \"$PG_CONFIG\"" "$PGRX_CONFIG"; then
    log "already configured in $PGRX_CONFIG"
else
    cargo pgrx init --pg"$PG_MAJOR" "$PG_CONFIG"
fi
done_step

# --- 5. tokenizer fixture ------------------------------------------------------------------------
step "tokenizer fixture"
"$ROOT/scripts/fetch_tokenizer.sh"
done_step

echo
log "all done in ${SECONDS}s"
