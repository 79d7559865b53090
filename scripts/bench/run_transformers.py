#!/usr/bin/env python3
"""Helper of scripts/bench/engines.py: times transformers' Qwen3Model on the CPU (run by the Python that
has torch and transformers; engines.py itself needs only the standard library).

Input (--input): JSON {"docs": [[ids]], "queries": [[ids]]}, token ids as the engine made them
(EOS last), so every runtime sees the same tokens. The model is loaded from a Hugging Face
directory in bfloat16 (--dtype), torch.set_num_threads(--threads). Documents are sorted by length
and run in batches of --batch-size with LEFT padding (id 151643) and an attention mask, the
upstream recipe; the pooled vector is the last position's final hidden state, L2-normalized.
Queries run one at a time. Tokens/s counts real tokens, not padding.

Output (--output): JSON with the timings and the vectors (docs and queries, input order).
"""

import argparse
import json
import time

PAD_ID = 151643


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--query-repeats", type=int, default=3)
    ap.add_argument("--doc-repeats", type=int, default=1)
    ap.add_argument("--attn", default="sdpa", help="attn_implementation (sdpa or eager)")
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoModel

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    with open(args.input) as f:
        data = json.load(f)
    docs, queries = data["docs"], data.get("queries", [])

    t0 = time.perf_counter()
    model = AutoModel.from_pretrained(args.model_dir, dtype=dtype, attn_implementation=args.attn)
    model.eval()
    load_s = time.perf_counter() - t0

    def run(batch):
        n = max(len(s) for s in batch)
        ids = torch.full((len(batch), n), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for i, s in enumerate(batch):
            ids[i, n - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, n - len(s):] = 1
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        v = out[:, -1, :].float()
        v = torch.nn.functional.normalize(v, p=2, dim=-1)
        return v.tolist()

    # Warm-up (one short pass), as the other runtimes get.
    t0 = time.perf_counter()
    warm = (queries or docs)[0]
    run([warm[-16:], warm[-16:]])
    warmup_s = time.perf_counter() - t0

    order = sorted(range(len(docs)), key=lambda i: len(docs[i]))
    doc_vecs = [None] * len(docs)
    doc_rounds = []
    for _ in range(max(1, args.doc_repeats)):
        t0 = time.perf_counter()
        for b in range(0, len(order), args.batch_size):
            idx = order[b:b + args.batch_size]
            for i, v in zip(idx, run([docs[i] for i in idx])):
                doc_vecs[i] = v
        doc_rounds.append(time.perf_counter() - t0)
    doc_tokens = sum(len(s) for s in docs)

    lat_ms, query_vecs = [], []
    for r in range(max(1, args.query_repeats) if queries else 0):
        for s in queries:
            t0 = time.perf_counter()
            v = run([s])
            lat_ms.append((time.perf_counter() - t0) * 1e3)
            if r == 0:
                query_vecs.extend(v)

    out = {
        "runtime": f"transformers {transformers.__version__} torch {torch.__version__}",
        "dtype": args.dtype,
        "attn_implementation": args.attn,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "load_s": load_s,
        "warmup_s": warmup_s,
        "doc_tokens": doc_tokens,
        "doc_seconds": doc_rounds,
        "doc_tokens_per_s": doc_tokens / min(doc_rounds),
        "query_latency_ms": lat_ms,
        "doc_vectors": doc_vecs,
        "query_vectors": query_vecs,
    }
    with open(args.output, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
