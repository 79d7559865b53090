#!/usr/bin/env python3
"""Two builds of the engine side by side: `qwen3-embed bench` of a base binary and of a head
binary, alternating (base first in odd rounds, head first in even ones) so that both see the same
machine, over engines.py's corpus (6 documents of 32-512 tokens in one packed batch, 8 short
questions). Queries come twice: bare (7-10 tokens, the issue's "short query") and with the
default retrieval instruction (about 30 tokens), each embedded alone.

Prints, per model, the best document throughput of each binary, the median latency of each kind
of query over every round and repeat, and head/base ratios. Weights are packed in memory
(`--no-cache` where the binary has it), so both measure compute, not loading.

  python3 scripts/bench/ab.py --base /tmp/base/qwen3-embed --threads 2 --rounds 3 \\
      --model /opt/bench-models/4b/model-q4_k_m.gguf --model /opt/bench-models/4b/model-q6_k.gguf
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engines as bench  # noqa: E402  (engines.py: the corpus and the instruction)


def has_flag(binary, flag):
    out = subprocess.run([binary, "bench", "--help"], capture_output=True, text=True).stdout
    return flag in out


def run(binary, model, threads, docs, queries, repeats):
    cmd = [binary, "bench", "--model", model, "--threads", str(threads), "--docs", docs,
           "--queries", queries, "--query-repeats", str(repeats), "--doc-repeats", "2"]
    if has_flag(binary, "--no-cache"):
        cmd.append("--no-cache")
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the binary to compare against")
    ap.add_argument("--head", default=os.path.join(bench.REPO, "target", "release", "qwen3-embed"))
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--query-repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    docs, questions = bench.make_corpus(args.seed, 6, 32, 512, 8)
    work = tempfile.mkdtemp(prefix="qwen3_embed_ab.")
    docs_path, queries_path = os.path.join(work, "docs.jsonl"), os.path.join(work, "queries.jsonl")
    bench.write_jsonl(docs_path, docs)
    with open(queries_path, "w") as f:
        for q in questions:
            f.write(json.dumps({"text": q}) + "\n")
        for q in questions:
            f.write(json.dumps({"text": q, "instruct": bench.TASK}) + "\n")
    n = len(questions)
    bins = {"base": args.base, "head": args.head}
    print(f"base {args.base}\nhead {args.head}\nthreads {args.threads}, {args.rounds} rounds, alternating")
    for model in args.model:
        res = {k: {"tps": [], "bare": [], "inst": [], "bare_tok": None, "inst_tok": None} for k in bins}
        for r in range(args.rounds):
            order = ["base", "head"] if r % 2 == 0 else ["head", "base"]
            for k in order:
                o = run(bins[k], model, args.threads, docs_path, queries_path, args.query_repeats)
                lat, toks = o["query_latency_ms"], o["query_token_counts"]
                res[k]["tps"].append(o["doc_tokens_per_s"])
                for i, ms in enumerate(lat):
                    res[k]["bare" if i % (2 * n) < n else "inst"].append(ms)
                res[k]["bare_tok"] = (min(toks[:n]), max(toks[:n]))
                res[k]["inst_tok"] = (min(toks[n:]), max(toks[n:]))
                res[k]["doc_tokens"] = o["doc_tokens"]
                print(f"  {os.path.basename(model)} round {r + 1} {k}: {o['doc_tokens_per_s']:.1f} tokens/s, "
                      f"query {statistics.median(lat[:n]):.1f} / {statistics.median(lat[n:2 * n]):.1f} ms",
                      flush=True)
        b, h = res["base"], res["head"]
        print(f"{os.path.basename(model)}: documents {b['doc_tokens']} tokens, best of {args.rounds} x 2 rounds")
        print(f"  document tokens/s      base {max(b['tps']):7.1f}  head {max(h['tps']):7.1f}  "
              f"head/base {max(h['tps']) / max(b['tps']):.3f}")
        for kind, label in (("bare", "short query"), ("inst", "instruction query")):
            tok = h[f"{kind}_tok"]
            mb, mh = statistics.median(b[kind]), statistics.median(h[kind])
            print(f"  {label} ({tok[0]}-{tok[1]} tokens), median ms  base {mb:7.1f}  head {mh:7.1f}  "
                  f"head/base {mh / mb:.3f}")


if __name__ == "__main__":
    main()
