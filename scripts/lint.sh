#!/usr/bin/env bash
# Formatting and lints, as .ci/run checks them (after scripts/setup.sh, which pgrx's build needs):
# rustfmt.toml's style, clippy with every warning an error, and the upgrade script exactly what
# scripts/release/upgrade_sql.py makes from sql/ (a hand edit of it fails here).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all --check
cargo clippy --workspace -- -D warnings
python3 scripts/release/upgrade_sql.py --check
python3 scripts/check_engine_imports.py
echo "lint: cargo fmt and cargo clippy are clean, the upgrade script is generated, the engine has no import loop"
