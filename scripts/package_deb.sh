#!/usr/bin/env bash
# Builds an installable Debian package of the extension for one PostgreSQL major version:
# `cargo pgrx package` (the files `cargo pgrx install` would copy: the library, the control file,
# the install and upgrade scripts) turned into a .deb with dpkg-deb.
#
#   bash scripts/package_deb.sh [PG_MAJOR]      # default 15; prints the .deb's path last
#
# The server is found by its pg_config: /usr/lib/postgresql/NN/bin/pg_config (Debian's packages,
# or PGDG's), else /opt/postgresql-NN/bin/pg_config (scripts/setup.sh --all-pg), or PG_CONFIG.
# The package installs where that pg_config says (for Debian's servers /usr/lib/postgresql/NN/lib
# and /usr/share/postgresql/NN/extension) and is named postgresql-NN-qwen3-embed, like Debian's
# own extension packages (postgresql-NN-pgvector). It depends on postgresql-NN when the server
# is Debian's, and recommends postgresql-NN-pgvector: the extension needs pgvector's `vector`
# (CREATE EXTENSION ... CASCADE creates it), but pgvector is often built from source (Debian 12
# has no package of it), so dpkg is not made to refuse the install without that package.
#
# Environment:
#   PROFILE   cargo profile of the build: release (default, what to ship) or dev (the project's
#             dev profile is optimized too; the package test uses it to share the test builds)
#   OUT_DIR   where the .deb goes (default target/deb)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"

PG_MAJOR="${1:-15}"
[[ "$PG_MAJOR" =~ ^[0-9]+$ ]] || { echo "usage: $0 [PG_MAJOR]" >&2; exit 2; }
if [[ -z "${PG_CONFIG:-}" ]]; then
    for c in "/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" "/opt/postgresql-$PG_MAJOR/bin/pg_config"; do
        [[ -x "$c" ]] && { PG_CONFIG="$c"; break; }
    done
fi
[[ -x "${PG_CONFIG:-}" ]] || { echo "no pg_config for PostgreSQL $PG_MAJOR (set PG_CONFIG)" >&2; exit 1; }
got="$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
[[ "$got" == "$PG_MAJOR" ]] || { echo "$PG_CONFIG is PostgreSQL $got, not $PG_MAJOR" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "dpkg-deb is needed (package dpkg)" >&2; exit 1; }

PROFILE="${PROFILE:-release}"
OUT_DIR="${OUT_DIR:-$ROOT/target/deb}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
ARCH="$(dpkg --print-architecture)"
NAME="postgresql-$PG_MAJOR-qwen3-embed"
STAGE="$ROOT/target/deb-stage/$NAME"
rm -rf "$STAGE"
mkdir -p "$STAGE" "$OUT_DIR"

echo "[package_deb] cargo pgrx package for PostgreSQL $PG_MAJOR ($PG_CONFIG), profile $PROFILE" >&2
cargo pgrx package --pg-config "$PG_CONFIG" --no-default-features --features "pg$PG_MAJOR" \
    --profile "$PROFILE" --out-dir "$STAGE" >&2

LIB="$STAGE$("$PG_CONFIG" --pkglibdir)/qwen3_embed.so"
EXT="$STAGE$("$PG_CONFIG" --sharedir)/extension"
for f in "$LIB" "$EXT/qwen3_embed.control" "$EXT/qwen3_embed--$VERSION.sql" "$EXT/qwen3_embed--0.1.0--$VERSION.sql"; do
    [[ -f "$f" ]] || { echo "cargo pgrx package did not write $f" >&2; exit 1; }
done
# Debug symbols stay in the build tree; the package ships the stripped library.
strip --strip-debug "$LIB"
chmod 644 "$LIB" "$EXT"/*
find "$STAGE" -type d -exec chmod 755 {} +

# What the library links against beyond the server: libc (its newest symbol version) and
# libgcc_s (unwinding).
GLIBC_MIN="$(objdump -T "$LIB" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)"
DEPENDS="libc6 (>= $GLIBC_MIN), libgcc-s1"
if [[ "$PG_CONFIG" == "/usr/lib/postgresql/$PG_MAJOR/bin/pg_config" ]]; then
    DEPENDS="postgresql-$PG_MAJOR, $DEPENDS"
fi
SIZE_KB="$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)"
mkdir -p "$STAGE/DEBIAN"
cat >"$STAGE/DEBIAN/control" <<EOF
Package: $NAME
Version: $VERSION
Architecture: $ARCH
Maintainer: qwen3_embed developers <qwen3-embed@localhost>
Installed-Size: $SIZE_KB
Depends: $DEPENDS
Recommends: postgresql-$PG_MAJOR-pgvector
Section: database
Priority: optional
Description: Qwen3-Embedding models inside PostgreSQL $PG_MAJOR
 The qwen3_embed extension runs the Qwen3-Embedding text-embedding models
 (GGUF or safetensors files) inside the database and returns pgvector
 vectors: qwen3_embed(text), generated columns, triggers, a background
 embedding queue and re-embedding procedures. Needs pgvector.
EOF
DEB="$OUT_DIR/${NAME}_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group --build "$STAGE" "$DEB" >&2
echo "[package_deb] contents:" >&2
dpkg-deb --contents "$DEB" | awk '{print "    " $6}' >&2
echo "$DEB"
