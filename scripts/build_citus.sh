#!/usr/bin/env bash
# Builds Citus from a source tree and installs it into the system PostgreSQL 15 (or the server
# whose pg_config PG_CONFIG names). Citus is not packaged for Debian 12, so this is the only way
# here; nothing is downloaded (the source must already be on the machine).
#
#   flock /tmp/qwen3_embed-pg15.lock bash scripts/build_citus.sh
#
# CITUS_SRC: a Citus source directory (with configure.ac), or a git directory from which
#   CITUS_REF (default v13.2.2, a release supporting PostgreSQL 15-17) is exported.
#   Default: the snapshot /work/.mirror/citusdata+citus/repo.
# Idempotent: does nothing when the installed citus.so is already that version. Exit 2 when no
# source is found. The build runs in a temporary copy, so the source is never modified (and the
# Citus source never lands in this repository). About 5 minutes with make -j2.
set -euo pipefail
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
CITUS_SRC="${CITUS_SRC:-/work/.mirror/citusdata+citus/repo}"
CITUS_REF="${CITUS_REF:-v13.2.2}"
JOBS="${JOBS:-2}"

if [[ ! -d "$CITUS_SRC" ]]; then
    echo "build_citus.sh: no Citus source at '$CITUS_SRC'; set CITUS_SRC to a Citus source" \
         "directory or a git directory holding tag $CITUS_REF" >&2
    exit 2
fi

# The version the source would build, to compare with what is installed.
if [[ -f "$CITUS_SRC/configure.ac" ]]; then
    kind=dir
    version="$(sed -n 's/^AC_INIT(\[Citus\], \[\([^]]*\)\]).*/\1/p' "$CITUS_SRC/configure.ac")"
elif git -C "$CITUS_SRC" rev-parse --verify -q "$CITUS_REF^{commit}" >/dev/null 2>&1; then
    kind=git
    version="$(git -C "$CITUS_SRC" show "$CITUS_REF:configure.ac" \
               | sed -n 's/^AC_INIT(\[Citus\], \[\([^]]*\)\]).*/\1/p')"
else
    echo "build_citus.sh: '$CITUS_SRC' is neither a Citus source directory (no configure.ac)" \
         "nor a git directory with $CITUS_REF" >&2
    exit 2
fi
[[ -n "$version" ]] || { echo "build_citus.sh: cannot read the Citus version from configure.ac" >&2; exit 2; }

pkglibdir="$("$PG_CONFIG" --pkglibdir)"
if [[ -f "$pkglibdir/citus.so" ]] && grep -aq "Citus $version on " "$pkglibdir/citus.so"; then
    echo "Citus $version is already installed in $pkglibdir"
    exit 0
fi

# PostgreSQL 15's server headers include <gssapi/gssapi.h> (libkrb5-dev), which
# postgresql-server-dev-15 does not pull in on Debian 12; lz4 and zstd serve Citus's columnar
# compression. Installed from Debian when missing (we run as root, as setup.sh does).
missing=()
for p in libkrb5-dev liblz4-dev libzstd-dev; do
    [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" == installed ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "Installing ${missing[*]}"
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -qq && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi
# libcurl only serves Citus's anonymous usage statistics: never wanted.
opts=(--without-libcurl)
[[ -f /usr/include/lz4.h ]] || opts+=(--without-lz4)
[[ -f /usr/include/zstd.h ]] || opts+=(--without-zstd)

build="$(mktemp -d /tmp/citus-build.XXXXXX)"
trap 'rm -rf "$build"' EXIT
if [[ "$kind" == git ]]; then
    git -C "$CITUS_SRC" archive "$CITUS_REF" | tar -x -C "$build"
else
    cp -a "$CITUS_SRC/." "$build/"
fi
# PostgreSQL 15.20 (Debian 12's current 15) exports have_createdb_privilege() from
# commands/dbcommands.h, which earlier 15.x kept static; Citus 13.2.2's pg_version_compat.h
# defines its own static copy for PostgreSQL < 16, and gcc refuses the pair ("static declaration
# of 'have_createdb_privilege' follows non-static declaration"). Where the server exports it, drop
# Citus's copy (in this temporary tree only) and call the server's, which does the same check.
server_inc="$("$PG_CONFIG" --includedir-server)"
compat="$build/src/include/pg_version_compat.h"
if grep -q 'extern bool have_createdb_privilege' "$server_inc/commands/dbcommands.h" 2>/dev/null \
   && grep -q '^have_createdb_privilege(void)' "$compat" 2>/dev/null; then
    perl -0pi -e 's/static inline bool\nhave_createdb_privilege\(void\)\n\{.*?\n\}\n//s' "$compat"
    if grep -q '^have_createdb_privilege(void)' "$compat"; then
        echo "build_citus.sh: could not remove Citus's own have_createdb_privilege from $compat" >&2
        exit 1
    fi
    echo "Patched (build copy only): Citus's static have_createdb_privilege() removed, the server exports it"
fi
echo "Building Citus $version for $("$PG_CONFIG" --version) (${opts[*]}), make -j$JOBS"
start=$SECONDS
cd "$build"
./configure PG_CONFIG="$PG_CONFIG" "${opts[@]}" >configure.log 2>&1 \
    || { tail -20 configure.log >&2; exit 1; }
make -j"$JOBS" >make.log 2>&1 || { tail -40 make.log >&2; exit 1; }
make install >install.log 2>&1 || { tail -20 install.log >&2; exit 1; }
echo "Citus $version installed into $pkglibdir in $((SECONDS - start)) s"
