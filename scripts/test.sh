#!/usr/bin/env bash
# The project's test command (README "Tests"; .ci/run runs it after scripts/setup.sh).
# Engine tests generate their fixture models on first use (fixtures/generated/, git-ignored)
# and compare against the committed goldens in engine/tests/golden/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"

echo "== engine tests =="
cargo test -p qwen3-embed-engine
