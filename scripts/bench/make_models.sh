#!/usr/bin/env bash
# Writes the benchmark checkpoints: seeded random weights with the real Qwen3-Embedding-4B shape
# (hidden 2560, 36 layers, 32/8 heads, head_dim 128, intermediate 9728, 151665 embedding rows)
# and the real tokenizer, as GGUF in every official quantization (Q4_K_M, Q5_K_M, Q6_K, Q8_0,
# each with llama.cpp's per-tensor type mix) and F16, plus a Hugging Face bf16 directory of the
# same weights for transformers. Random weights cost exactly what real ones do.
#
#   scripts/bench/make_models.sh [OUT_DIR]        (default /opt/bench-models/4b)
#
# Needs about 30 GB of disk (F16 and hf-bf16 are 8 GB each) and 15-30 minutes on 2 cores.
# Set LLAMA_QUANTIZE=/path/to/llama-quantize to also check every quantized file's type mix
# against what llama-quantize would choose from the F16 file (`--dry-run`, nothing written).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-/opt/bench-models/4b}"
FORMATS="gguf-q4_k_m,gguf-q5_k_m,gguf-q6_k,gguf-q8_0,gguf-f16,hf-bf16"
log() { echo "[bench/make_models] $*"; }

cd "$ROOT"
bash scripts/fetch_tokenizer.sh
log "cargo build --release -p qwen3-embed-engine"
cargo build --release -p qwen3-embed-engine
log "writing $FORMATS to $OUT"
target/release/qwen3-embed fixture --preset 4b --seed 42 \
    --tokenizer fixtures/tokenizer/tokenizer.json --formats "$FORMATS" --out "$OUT"
ls -l "$OUT"

if [[ -n "${LLAMA_QUANTIZE:-}" ]]; then
    # llama-quantize --dry-run prints one line per tensor with the type it would pick:
    # "[ 31/ 35] blk.2.attn_v.weight - [...], type = f16, size = ... -> ... MiB (q6_K)".
    for t in q4_k_m q5_k_m q6_k q8_0; do
        want="$("$LLAMA_QUANTIZE" --dry-run "$OUT/model-f16.gguf" "${t^^}" 1 2>&1 \
            | sed -n 's/^\[ *[0-9]*\/ *[0-9]*\] *\([^ ]*\) .*-> .*(\([A-Za-z0-9_]*\))$/\1 \2/p' | sort)"
        have="$(python3 - "$OUT/model-$t.gguf" <<'PY'
import struct, sys
# Minimal GGUF v3 reader: tensor names and ggml type ids.
NAMES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0", 10: "q2_K",
         11: "q3_K", 12: "q4_K", 13: "q5_K", 14: "q6_K", 30: "bf16"}
f = open(sys.argv[1], "rb")
magic, version, n_tensors, n_kv = struct.unpack("<4sIQQ", f.read(24))
def s():
    (n,) = struct.unpack("<Q", f.read(8)); return f.read(n).decode()
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def val(t):
    if t == 8: return s()
    if t == 9:
        (et, n) = struct.unpack("<IQ", f.read(12))
        for _ in range(n): val(et)
        return None
    f.read(SIZES[t]); return None
for _ in range(n_kv):
    s(); (t,) = struct.unpack("<I", f.read(4)); val(t)
for _ in range(n_tensors):
    name = s(); (nd,) = struct.unpack("<I", f.read(4)); f.read(8 * nd)
    (ty,) = struct.unpack("<I", f.read(4)); f.read(8)
    if name.endswith(".weight") and nd >= 1:
        print(name, NAMES.get(ty, ty))
PY
)"
        have="$(echo "$have" | sort)"
        want_q="$(echo "$want" | grep -v ' f32$' || true)"
        have_q="$(echo "$have" | grep -v ' f32$' || true)"
        if [[ "$want_q" == "$have_q" ]]; then
            log "$t: type mix matches llama-quantize ($(echo "$have_q" | awk '{print $2}' | sort | uniq -c | tr -s ' ' | tr '\n' ';'))"
        else
            log "$t: type mix DIFFERS from llama-quantize"
            diff <(echo "$want_q") <(echo "$have_q") | head -20
        fi
    done
fi
