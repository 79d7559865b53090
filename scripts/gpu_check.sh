#!/usr/bin/env bash
# The CUDA check, in two halves, because the GPU machine has CUDA but no Rust toolchain:
#
#   bash scripts/gpu_check.sh prepare     # here: build the cuda feature (Debian 12's toolkit,
#                                         #   QWEN3_EMBED_WITH_CUDA=1 bash scripts/setup.sh), put
#                                         #   the CLI, the candle backend's test binary and the
#                                         #   tokenizer into .gpu/ (ignored by git)
#   bash scripts/gpu_check.sh run         # on the GPU machine, with .gpu carried: the candle
#                                         #   backend's golden tests on the GPU, then
#                                         #   `qwen3-embed bench` on 4B-shape F16 and Q4_K_M files
#                                         #   generated there, printing tokens/s, the batch size
#                                         #   and the fraction of the GPU's bf16 peak
#
# With the device tool: run(command="bash scripts/gpu_check.sh run", carry=[".gpu"], timeout_s=560).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
G="$ROOT/.gpu"

case "${1:-}" in
prepare)
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
    mkdir -p "$G"
    export NVCC_PREPEND_FLAGS='-ccbin clang-14' CUDA_COMPUTE_CAP=90
    cargo build --release -p qwen3-embed-engine --features cuda --bin qwen3-embed
    cp target/release/qwen3-embed "$G/"
    test_bin="$(cargo test --release -p qwen3-embed-engine --features cuda --test candle_backend --no-run \
        --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "candle_backend":
        print(m["executable"])')"
    cp "$test_bin" "$G/candle_backend"
    cp fixtures/tokenizer/tokenizer.json "$G/"
    # The golden tests read the tiny fixtures and the goldens from the checkout.
    mkdir -p "$G/tiny" && cp -r fixtures/generated/tiny/. "$G/tiny/"
    du -sh "$G"
    ;;
run)
    [[ -x "$G/qwen3-embed" ]] || { echo "no .gpu/qwen3-embed: run 'scripts/gpu_check.sh prepare' first and carry .gpu"; exit 1; }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    mkdir -p fixtures/generated fixtures/tokenizer
    cp "$G/tokenizer.json" fixtures/tokenizer/
    rm -rf fixtures/generated/tiny && cp -r "$G/tiny" fixtures/generated/tiny
    echo "== candle backend golden tests on the GPU"
    QWEN3_EMBED_REPO="$ROOT" QWEN3_EMBED_TEST_DEVICE=cuda "$G/candle_backend" --test-threads 1
    echo "== 4B-shape models"
    M="${OUT:-/tmp}/gpu-models"
    "$G/qwen3-embed" fixture --preset 4b --seed 42 --tokenizer "$G/tokenizer.json" \
        --formats gguf-f16,gguf-q4_k_m --out "$M" >/dev/null
    python3 - "$M/docs.txt" <<'PY'
import sys
words = "the quick brown fox jumps over the lazy dog while databases store vectors".split()
with open(sys.argv[1], "w") as f:
    for i in range(256):
        f.write(" ".join(words[(i + j) % len(words)] for j in range(8 + (i * 37) % 500)) + "\n")
PY
    peak=$(nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200 && echo 790 || echo 790)
    for m in model-f16.gguf model-q4_k_m.gguf; do
        for bt in 8192 32768; do
            echo "== $m, batch_tokens $bt"
            "$G/qwen3-embed" bench --model "$M/$m" --device cuda --docs "$M/docs.txt" --batch-tokens "$bt" --doc-repeats 2 \
                | tee "$M/bench-$m-$bt.json"
            python3 - "$M/bench-$m-$bt.json" "$peak" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
tps = next(v for k, v in b.items() if "tokens_per_s" in k and "doc" in k)
# 4B: about 2 * 4.0e9 FLOP per token for the projections, plus attention (small at these lengths).
tflops = tps * 2 * 4.02e9 / 1e12
print(f"doc tokens/s {tps:.0f}, about {tflops:.1f} TFLOP/s, {100 * tflops / float(sys.argv[2]):.2f}% of the bf16 peak")
PY
        done
    done
    ;;
*)
    echo "usage: bash scripts/gpu_check.sh prepare|run"; exit 2 ;;
esac
