#!/usr/bin/env bash
# Formatting and lints, as .ci/run checks them (after scripts/setup.sh, which pgrx's build needs):
# rustfmt.toml's style, and clippy with every warning an error.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all --check
cargo clippy --workspace -- -D warnings
echo "lint: cargo fmt and cargo clippy are clean"
