#!/usr/bin/env python3
"""The packed-weight cache, measured: memory, load time and first-query time of one CLI process
per model, without the cache, on a cold cache (this process packs and writes it) and on a warm
one (another process wrote it), side by side in one run. Standard library only.

Per model it runs `qwen3-embed bench` three times (--no-cache, cold, warm) over a small corpus and
prints load seconds, peak RSS (ru_maxrss of the child, which counts the mapped cache pages it
touched) and its ratio to the model file's size, document tokens/s and the median latency of one
short query. Then, on the warm cache, it times whole processes that embed one query
(`qwen3-embed embed`, process start to exit) and reports the best of --first-runs. The cache
file's size and its ratio to the model file are printed too. The cache directory is a fresh
temporary one per model, deleted afterwards (--keep keeps it).

  python3 scripts/bench/cache.py --threads 2 --model /opt/bench-models/4b/model-q4_k_m.gguf
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASK = "Given a web search query, retrieve relevant passages that answer the query"
WORDS = ("database index vector query table row column storage page tuple engine model "
         "embedding search result score cluster server session memory cache file").split()


def run_rss(cmd):
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e:
        p = subprocess.Popen(cmd, stdout=o, stderr=e)
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t0
        o.seek(0)
        e.seek(0)
        out, err = o.read().decode(), e.read().decode()
    if status != 0:
        sys.exit(f"failed ({status}): {' '.join(cmd)}\n{err[-2000:]}")
    return out, secs, ru.ru_maxrss * 1024, err


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cli", default=os.path.join(ROOT, "target/release/qwen3-embed"))
    ap.add_argument("--docs", type=int, default=8)
    ap.add_argument("--first-runs", type=int, default=3)
    ap.add_argument("--cache-parent", default=None, help="where the temporary cache directories go")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="bench-cache-")
    docs = os.path.join(work, "docs.txt")
    queries = os.path.join(work, "queries.jsonl")
    one = os.path.join(work, "one.jsonl")
    with open(docs, "w") as f:
        for i in range(args.docs):
            f.write(" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(60 + 40 * i)) + "\n")
    with open(queries, "w") as f:
        for q in ["what is a vector index", "how are rows stored", "which model embeds text"]:
            f.write(json.dumps({"text": q, "instruct": TASK}) + "\n")
    with open(one, "w") as f:
        f.write(json.dumps({"text": "what is a vector index", "instruct": TASK}) + "\n")

    print(f"load average before: {os.getloadavg()[0]:.2f} (page cache not dropped: warm runs read the cache file from memory)")
    rows = []
    for model in args.model:
        size = os.path.getsize(model) if os.path.isfile(model) else sum(
            os.path.getsize(os.path.join(model, f)) for f in os.listdir(model) if f.endswith(".safetensors"))
        cache = tempfile.mkdtemp(prefix="qwen3pack-", dir=args.cache_parent)
        base = [args.cli, "bench", "--model", model, "--threads", str(args.threads), "--docs", docs,
                "--queries", queries, "--query-repeats", "3"]
        results = {}
        for tag, extra in [("no cache", ["--no-cache"]), ("cold cache", ["--cache-dir", cache]),
                           ("warm cache", ["--cache-dir", cache])]:
            out, secs, rss, _ = run_rss(base + extra)
            r = json.loads(out.strip().splitlines()[-1])
            results[tag] = r
            rows.append((os.path.basename(model), tag, r["load_s"], rss, rss / size, r["doc_tokens_per_s"],
                         r["query_latency_ms_median"], r.get("cache", "?")))
        pack = [f for f in os.listdir(cache) if f.endswith(".qwen3pack")]
        pack_bytes = os.path.getsize(os.path.join(cache, pack[0])) if pack else 0
        firsts = []
        for _ in range(args.first_runs):
            _, secs, rss, _ = run_rss([args.cli, "embed", "--model", model, "--threads", str(args.threads),
                                       "--input", one, "--cache-dir", cache, "--output", os.devnull])
            firsts.append((secs, rss))
        best = min(firsts)
        rows.append((os.path.basename(model), "warm: one query, whole process", best[0], best[1], best[1] / size,
                     float("nan"), float("nan"), "mapped"))
        print(f"{os.path.basename(model)}: file {size / 1e9:.2f} GB, cache file {pack_bytes / 1e9:.2f} GB "
              f"({pack_bytes / size:.3f}x the file)")
        if not args.keep:
            shutil.rmtree(cache, ignore_errors=True)

    print()
    print(f"{'model':22} {'run':32} {'load/wall s':>11} {'peak RSS GB':>11} {'RSS/file':>8} {'doc tok/s':>9} "
          f"{'query ms':>8}  cache")
    for m, tag, load, rss, ratio, tps, qms, state in rows:
        print(f"{m:22} {tag:32} {load:11.2f} {rss / 1e9:11.2f} {ratio:8.2f} {tps:9.1f} {qms:8.1f}  {state}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
