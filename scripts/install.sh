#!/usr/bin/env bash
# Builds the extension and installs it into a PostgreSQL, running or not:
#
#   bash scripts/install.sh [--pg-config PATH]     # default: /usr/lib/postgresql/15/bin/pg_config
#
# `cargo pgrx package` stages the files `cargo pgrx install` would copy (the library, the control
# file, the install and upgrade scripts); each is then written next to its destination under a
# temporary name and renamed over the old one. A process that has the old library mapped keeps
# it (a rename leaves its inode alone), so a running server, preloaded or not, goes on serving;
# a new session, and the model server and sync workers once they restart, load the new one.
# `cargo pgrx install` instead rewrites qwen3_embed.so in place, and every process that had it
# mapped dies (SIGBUS or SIGILL; a preloaded server's postmaster shuts down).
# The library goes first: a session that starts in between finds the new library with the old
# SQL scripts, which name nothing the new library lacks.
#
# Environment:
#   PROFILE   cargo profile: release (default, what users run) or dev (the tests, sharing their
#             build)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
while (($#)); do
    case "$1" in
        --pg-config) PG_CONFIG="$2"; shift 2 ;;
        --pg-config=*) PG_CONFIG="${1#*=}"; shift ;;
        *) echo "usage: $0 [--pg-config PATH]" >&2; exit 2 ;;
    esac
done
[[ -x "$PG_CONFIG" ]] || { echo "$PG_CONFIG: no such pg_config" >&2; exit 1; }
PG_MAJOR="$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
PROFILE="${PROFILE:-release}"

mkdir -p "$ROOT/target"
STAGE="$(mktemp -d "$ROOT/target/install-stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
echo "[install] cargo pgrx package for PostgreSQL $PG_MAJOR ($PG_CONFIG), profile $PROFILE" >&2
cargo pgrx package --pg-config "$PG_CONFIG" --no-default-features --features "pg$PG_MAJOR" \
    --profile "$PROFILE" --out-dir "$STAGE" >&2

LIBDIR="$("$PG_CONFIG" --pkglibdir)"
EXTDIR="$("$PG_CONFIG" --sharedir)/extension"
[[ -f "$STAGE$LIBDIR/qwen3_embed.so" ]] || { echo "cargo pgrx package wrote no $STAGE$LIBDIR/qwen3_embed.so" >&2; exit 1; }

# put MODE PATH: the staged file of PATH, written beside it and renamed over it.
put() {
    local tmp
    tmp="$(dirname "$2")/.$(basename "$2").new.$$"
    install -m "$1" "$STAGE$2" "$tmp"
    mv -f "$tmp" "$2"
    echo "[install] $2" >&2
}
install -d "$LIBDIR" "$EXTDIR"
put 755 "$LIBDIR/qwen3_embed.so"
for f in "$STAGE$EXTDIR"/qwen3_embed*; do
    put 644 "$EXTDIR/$(basename "$f")"
done
