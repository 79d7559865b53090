#!/usr/bin/env bash
# SQL scenario tests against a real PostgreSQL (pg_regress, temporary instance): the system
# PostgreSQL 15 unless PG_CONFIG names another (e.g. /opt/postgresql-18/bin/pg_config, built by
# scripts/setup.sh --all-pg).
#
#   bash tests/sql.sh                 # every test in tests/schedule
#   bash tests/sql.sh trigger reembed # just these (setup always runs first)
#
# Steps: build and install the extension into that PostgreSQL (scripts/install.sh, dev profile, with the
# cargo feature of its major version, plus the 0.1.0 install script for the upgrade test), make
# sure the tiny fixture model exists, embed a few inputs with the engine CLI (for the
# cli_equality test), then run pg_regress with a temporary instance as the postgres OS user.
# Tests live in tests/sql/*.sql with expected output in tests/expected/*.out.
#
# Environment:
#   PG_CONFIG                   the server to test (default /usr/lib/postgresql/15/bin/pg_config)
#   QWEN3_EMBED_SQL_TEST_CONF   extra postgresql.conf lines for the temporary instance, e.g.
#                               "shared_preload_libraries = 'qwen3_embed'" (newlines allowed)
#   QWEN3_EMBED_SQL_TEST_MODEL  model file (default: fixtures/generated/tiny/model-q8_0.gguf)
#   QWEN3_EMBED_SQL_TEST_KEEP=1 keep the output directory (results/, regression.diffs, log/)
#   SKIP_INSTALL=1              do not rebuild/reinstall the extension
# Last line of output: "N passed, M failed". Exit status non-zero when any test fails.
set -euo pipefail
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"

PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}"
PG_MAJOR="$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')"
BINDIR="$("$PG_CONFIG" --bindir)"
PG_REGRESS="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress"
FIXTURE_DIR="$ROOT/fixtures/generated/tiny"
MODEL="${QWEN3_EMBED_SQL_TEST_MODEL:-$FIXTURE_DIR/model-q8_0.gguf}"
RUN_AS=postgres

log() { echo "[tests/sql.sh] $*"; }
fail() { echo "[tests/sql.sh] ERROR: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

[[ $EUID -eq 0 ]] || fail "run as root (installs into PostgreSQL $PG_MAJOR, runs tests as '$RUN_AS')"
[[ -x "$PG_REGRESS" ]] || fail "pg_regress not found at $PG_REGRESS (the server headers of PostgreSQL $PG_MAJOR: scripts/setup.sh)"
id "$RUN_AS" >/dev/null 2>&1 || fail "no '$RUN_AS' OS user"
command -v sudo >/dev/null || fail "sudo is needed to run the server as '$RUN_AS'"

START=$SECONDS

# --- scratch space (the server's user must be able to write it) --------------------------------
WORK="$(scratch_dir sql_tests)"
cleanup() {
    if [[ "${QWEN3_EMBED_SQL_TEST_KEEP:-0}" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
mkdir -p "$WORK/out" "$WORK/cli"

# --- 1. the extension ----------------------------------------------------------------------------
if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
    log "scripts/install.sh --pg-config $PG_CONFIG (profile dev)"
    PROFILE=dev bash scripts/install.sh --pg-config "$PG_CONFIG" >"$WORK/pgrx_install.log" 2>&1 \
        || { tail -n 40 "$WORK/pgrx_install.log"; fail "scripts/install.sh failed"; }
    # cargo pgrx package stages upgrade scripts (name--from--to.sql) but not the full scripts of
    # released versions; the upgrade test creates the extension at 0.1.0 from this one.
    install -m 644 "$ROOT/sql/qwen3_embed--0.1.0.sql" "$("$PG_CONFIG" --sharedir)/extension/"
fi

# The engine CLI: the one scripts/test.sh's cargo test run just built, else build it.
CLI="${QWEN3_EMBED_CLI:-$ROOT/target/debug/qwen3-embed}"
if [[ ! -x "$CLI" ]]; then
    log "building the engine CLI"
    cargo build -q -p qwen3-embed-engine --bin qwen3-embed
    CLI="$ROOT/target/debug/qwen3-embed"
fi

# --- 2. the fixture model ------------------------------------------------------------------------
if [[ -z "${QWEN3_EMBED_SQL_TEST_MODEL:-}" && ! -f "$FIXTURE_DIR/MANIFEST.json" ]]; then
    log "generating the tiny fixture model in $FIXTURE_DIR"
    "$CLI" fixture --preset tiny \
        --out "$FIXTURE_DIR" \
        --formats hf-f32,hf-f16,hf-bf16,hf-sharded,gguf-f32,gguf-f16,gguf-q8_0,gguf-q4_k_m
fi
[[ -f "$MODEL" ]] || fail "model not found: $MODEL"
MODEL="$(realpath "$MODEL")"
sudo -u "$RUN_AS" test -r "$MODEL" || fail "$RUN_AS cannot read $MODEL"

# --- 3. reference vectors from the engine CLI (tests/sql/cli_equality.sql) ------------------------
cp "$ROOT/tests/data/cli_inputs.jsonl" "$WORK/cli/inputs.jsonl"
log "embedding tests/data/cli_inputs.jsonl with the engine CLI"
"$CLI" embed --model "$MODEL" \
    --input "$WORK/cli/inputs.jsonl" --output "$WORK/cli/full.jsonl" >/dev/null 2>"$WORK/cli/full.log" \
    || { cat "$WORK/cli/full.log"; fail "qwen3-embed embed failed"; }
"$CLI" embed --model "$MODEL" --dims 64 \
    --input "$WORK/cli/inputs.jsonl" --output "$WORK/cli/d64.jsonl" >/dev/null 2>"$WORK/cli/d64.log" \
    || { cat "$WORK/cli/d64.log"; fail "qwen3-embed embed --dims 64 failed"; }

# Vectors made elsewhere, for tests/sql/adopt.sql: by the engine CLI with the same model (with
# and without an instruction) and with another model (the tiny preset with another seed).
OTHER_MODEL="$ROOT/fixtures/generated/tiny-seed7/model-q8_0.gguf"
if [[ ! -f "$OTHER_MODEL" ]]; then
    log "generating another tiny model (seed 7) in $(dirname "$OTHER_MODEL")"
    "$CLI" fixture --preset tiny --seed 7 --out "$(dirname "$OTHER_MODEL")" --formats gguf-q8_0 >/dev/null
fi
cp "$ROOT/tests/data/adopt_inputs.txt" "$WORK/cli/adopt_inputs.txt"
log "embedding tests/data/adopt_inputs.txt with the engine CLI: the same model, an instruction, another model"
for made in "same:$MODEL:" "instructed:$MODEL:Given a web search query, retrieve relevant passages that answer the query" \
            "other:$OTHER_MODEL:"; do
    IFS=: read -r name model instruct <<<"$made"
    "$CLI" embed --model "$model" --dims 64 ${instruct:+--instruct "$instruct"} \
        --input "$WORK/cli/adopt_inputs.txt" --output "$WORK/cli/adopt_$name.jsonl" >/dev/null 2>"$WORK/cli/adopt_$name.log" \
        || { cat "$WORK/cli/adopt_$name.log"; fail "qwen3-embed embed ($name) failed"; }
done

# The reranker fixture (as engine/tests/rerank.rs makes it) and transformers' scores for it
# (tests/sql/rerank.sql).
RERANKER_DIR="$ROOT/fixtures/generated/tiny-reranker"
if [[ ! -f "$RERANKER_DIR/MANIFEST.json" ]]; then
    log "generating the tiny reranker in $RERANKER_DIR"
    "$CLI" fixture --kind reranker --preset tiny --seed 42 --tokenizer "$ROOT/fixtures/tokenizer/tokenizer.json" \
        --out "$RERANKER_DIR" --formats hf-f32,gguf-f32,gguf-f16,gguf-q8_0 >/dev/null
fi
RERANKER="$(realpath "$RERANKER_DIR/model-f32.gguf")"
cp "$ROOT/engine/tests/data/rerank_pairs.json" "$WORK/cli/rerank_pairs.json"
cp "$ROOT/engine/tests/golden/rerank/f32.json" "$WORK/cli/rerank_f32.json"
cp "$ROOT/engine/tests/golden/rerank/q8_0.json" "$WORK/cli/rerank_q8_0.json"

# --- 4. the temporary instance's configuration ---------------------------------------------------
CONF="$WORK/temp.conf"
{
    echo "qwen3_embed.model_path = '${MODEL//\'/\'\'}'"
    echo "qwen3_embed.reranker_path = '${RERANKER//\'/\'\'}'"
    echo "qwen3_embed.threads = 2"
    echo "qwen3_embed.server_threads = 2"
    echo "max_worker_processes = 16"
    echo "max_parallel_workers = 8"
    if [[ -n "${QWEN3_EMBED_SQL_TEST_CONF:-}" ]]; then
        # The scenarios drain their queues themselves (qwen3_embed_sync_run), so that what they
        # print does not depend on when a sync worker passes: no workers, as without preloading.
        [[ "$QWEN3_EMBED_SQL_TEST_CONF" == *shared_preload_libraries* ]] && echo "qwen3_embed.sync_workers = 0"
        printf '%s\n' "$QWEN3_EMBED_SQL_TEST_CONF"
    fi
} >"$CONF"
log "temp-config:"
sed 's/^/    /' "$CONF"
chown -R "$RUN_AS" "$WORK"

# --- 5. the tests --------------------------------------------------------------------------------
if (($# > 0)); then
    TESTS=(setup)
    for t in "$@"; do [[ "$t" == setup ]] || TESTS+=("$t"); done
    SCHEDULE_ARGS=("${TESTS[@]}")
else
    SCHEDULE_ARGS=(--schedule="$ROOT/tests/schedule")
fi

log "pg_regress, PostgreSQL $PG_MAJOR (temporary instance in $WORK/out/tmp_check)"
set +e
(cd "$WORK" && sudo -u "$RUN_AS" env \
    QWEN3_EMBED_CLI_INPUTS="$WORK/cli/inputs.jsonl" \
    QWEN3_EMBED_CLI_FULL="$WORK/cli/full.jsonl" \
    QWEN3_EMBED_CLI_D64="$WORK/cli/d64.jsonl" \
    QWEN3_EMBED_ADOPT_DIR="$WORK/cli" \
    QWEN3_EMBED_MODEL="$MODEL" \
    QWEN3_EMBED_RERANK_PAIRS="$WORK/cli/rerank_pairs.json" \
    QWEN3_EMBED_RERANK_GOLDEN_F32="$WORK/cli/rerank_f32.json" \
    QWEN3_EMBED_RERANK_GOLDEN_Q8_0="$WORK/cli/rerank_q8_0.json" \
    QWEN3_EMBED_RERANKER_Q8_0="$RERANKER_DIR/model-q8_0.gguf" \
    PGTZ=UTC PGDATESTYLE="ISO, MDY" \
    "$PG_REGRESS" \
        --bindir="$BINDIR" \
        --temp-instance="$WORK/out/tmp_check" \
        --temp-config="$CONF" \
        --inputdir="$ROOT/tests" \
        --outputdir="$WORK/out" \
        --dbname=qwen3_embed_regress \
        "${SCHEDULE_ARGS[@]}" 2>&1 | tee "$WORK/pg_regress.log")
RC=${PIPESTATUS[0]}
set -e

# pg_regress 15 prints "test name ... ok" / "... FAILED"; 16 and later print TAP ("ok 1 - name").
PASSED=$(grep -cE '^((test| ) *[a-z0-9_]+ +\.\.\. ok|ok [0-9]+ )' "$WORK/pg_regress.log" || true)
FAILED=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$WORK/pg_regress.log" || true)
if ((RC != 0 || FAILED > 0)); then
    if [[ -f "$WORK/out/regression.diffs" ]]; then
        echo "----- regression.diffs -----"
        cat "$WORK/out/regression.diffs"
        echo "----- end of regression.diffs -----"
    fi
    if [[ -d "$WORK/out/log" ]]; then
        echo "----- server log (last 60 lines) -----"
        tail -n 60 "$WORK/out/log/postmaster.log" 2>/dev/null || true
    fi
    ((FAILED > 0)) || FAILED=1
fi
log "took $((SECONDS - START)) s"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0 && RC == 0))
