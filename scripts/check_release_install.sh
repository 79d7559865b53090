#!/usr/bin/env bash
# A command is `cargo pgrx install` followed by options or the end of the line (prose that names
# the command in backquotes is not one).
#
# Every way the README and the user-facing scripts give to install the extension builds it as the
# release: `cargo pgrx install` with --release, `cargo pgrx package` defaulting to the release
# profile, and the demo's CLI built with --release. (A debug build embeds 3-7x slower than the
# figures in the README.) The test scripts may install faster-compiling builds: they are listed
# below and nothing else is exempt. Part of scripts/test.sh; exits non-zero with the offending lines.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Test drivers: they build for the tests, never for a user.
exempt='^(tests/(sql|all_pg|deb)|scripts/check_release_install)\.sh$'
bad=0
while IFS= read -r f; do
    [[ "$f" =~ $exempt ]] && continue
    while IFS= read -r hit; do
        line="${hit%%:*}"
        text="${hit#*:}"
        if [[ ! "$text" =~ cargo\ pgrx\ install[^\`\']*[[:space:]](--release|-r)([^[:alnum:]-]|$) ]]; then
            echo "$f:$line: installs without --release: ${text#"${text%%[![:space:]]*}"}" >&2
            bad=1
        fi
    done < <(grep -nE 'cargo pgrx install( +-|$)' "$f" || true)
done < <(git ls-files)

# The package and install scripts ship the release profile unless told otherwise.
for f in scripts/package_deb.sh scripts/install.sh; do
    if ! grep -q '^PROFILE="${PROFILE:-release}"$' "$f"; then
        echo "$f: its default PROFILE is not release" >&2
        bad=1
    fi
done
# The demo installs with the install script, unchanged profile.
if grep -n 'PROFILE=' scripts/demo.sh >&2; then
    echo "scripts/demo.sh: sets PROFILE" >&2
    bad=1
fi
# The demo runs the CLI (model pull, fixture) from the same optimized build.
while IFS= read -r hit; do
    if [[ ! "$hit" =~ --release ]]; then
        echo "scripts/demo.sh: runs the CLI without --release: $hit" >&2
        bad=1
    fi
done < <(grep -n 'cargo run' scripts/demo.sh || true)

if [[ $bad != 0 ]]; then
    echo "check_release_install: a user-facing install is not the release build (see above)" >&2
    exit 1
fi
echo "check_release_install: every user-facing install builds the release"
