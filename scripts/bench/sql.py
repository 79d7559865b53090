#!/usr/bin/env python3
"""The SQL functions vs the engine CLI, on one model and the same inputs.

Embeds scripts/bench/engines.py's document corpus (same seed and sizes) three ways, each loaded and warmed
up first, best of --repeats:
  cli      `qwen3-embed bench` (its timing covers the forward passes, tokenizing excluded);
  backend  `SELECT count(*) FROM qwen3_embed_batch(ARRAY[...])` in a session holding the model;
  server   the same statement through the model server (qwen3_embed preloaded).
Then the latency of four single calls a new user tries (three bare texts and one
qwen3_embed_query, which carries the retrieval instruction), the same three ways: the CLI embeds
each text alone (`bench --queries`), the SQL side times `SELECT vector_dims(<call>)`.
The SQL timings are whole statements as psql sees them (parse, tokenize, embed, build the rows).
Prints tokens/s and milliseconds of each and the ratio to the CLI, and the build profile the
server reports (qwen3_embed_info().build). Needs root and the extension installed the way the
README installs it (cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config),
and cargo build --release -p qwen3-embed-engine --bin qwen3-embed.

Example:
  python3 scripts/bench/sql.py --model /opt/bench-models/4b/model-q4_k_m.gguf --threads 2
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engines as bench  # noqa: E402  (engines.py: the corpus)
from server import Cluster, Session, quote  # noqa: E402  (server.py: the throwaway cluster)

# The single calls: (SQL expression, text, instruction the CLI gives it).
CALLS = [
    ("qwen3_embed('which database stores vectors?')", "which database stores vectors?", None),
    ("qwen3_embed('how do I build an hnsw index')", "how do I build an hnsw index", None),
    ("qwen3_embed_query('which database stores vectors?')", "which database stores vectors?", bench.TASK),
    ("qwen3_embed('postgres')", "postgres", None),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--engine", default=os.path.join(bench.REPO, "target", "release", "qwen3-embed"))
    ap.add_argument("--docs", type=int, default=6)
    ap.add_argument("--doc-min", type=int, default=32)
    ap.add_argument("--doc-max", type=int, default=512)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port", type=int, default=28960)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the server runs as the postgres OS user)")
    docs, _ = bench.make_corpus(args.seed, args.docs, args.doc_min, args.doc_max, 0)
    work = tempfile.mkdtemp(prefix="qwen3-bench-sql-")
    os.chmod(work, 0o755)
    model = os.path.realpath(args.model)
    print(f"model {model}, {args.threads} threads, {len(docs)} documents, best of {args.repeats}, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    try:
        docs_path = os.path.join(work, "docs.jsonl")
        queries_path = os.path.join(work, "queries.jsonl")
        bench.write_jsonl(docs_path, docs)
        with open(queries_path, "w") as f:
            for _, text, task in CALLS:
                f.write(json.dumps({"text": text, "instruct": task} if task else {"text": text}) + "\n")
        out = subprocess.run([args.engine, "bench", "--model", model, "--threads", str(args.threads),
                              "--docs", docs_path, "--queries", queries_path,
                              "--batch-tokens", str(args.batch_tokens), "--doc-repeats", str(args.repeats),
                              "--query-repeats", str(args.repeats), "--output", os.path.join(work, "v.jsonl"),
                              "--no-cache"],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        tokens = r["doc_tokens"]
        results["cli"] = tokens / min(r["doc_seconds"])
        lat = r["query_latency_ms"]
        latency = {"cli": [min(lat[i::len(CALLS)]) for i in range(len(CALLS))]}
        print(f"  cli      {results['cli']:8.2f} tok/s ({tokens} tokens)", flush=True)
        array = "ARRAY[" + ",".join(quote(d) for d in docs) + "]"
        for i, mode in enumerate(["backend", "server"]):
            conf = [f"qwen3_embed.model_path = '{model}'", f"qwen3_embed.threads = {args.threads}",
                    f"qwen3_embed.server_threads = {args.threads}",
                    f"qwen3_embed.batch_tokens = {args.batch_tokens}"]
            if mode == "server":
                conf.append("shared_preload_libraries = 'qwen3_embed'")
            c = Cluster(os.path.join(work, mode), args.port + i, conf)
            try:
                c.sql("CREATE EXTENSION qwen3_embed CASCADE")
                s = Session(c)
                s.query("SELECT vector_dims(qwen3_embed('warm up'))")
                build = s.query("SELECT build FROM qwen3_embed_info()")
                best = None
                for _ in range(args.repeats):
                    begin = time.perf_counter()
                    n = s.query(f"SELECT count(embedding) FROM qwen3_embed_batch({array})")
                    took = time.perf_counter() - begin
                    assert int(n) == len(docs), n
                    best = took if best is None else min(best, took)
                latency[mode] = []
                for call, _, _ in CALLS:
                    took = []
                    for _ in range(args.repeats):
                        begin = time.perf_counter()
                        s.query(f"SELECT vector_dims({call})")
                        took.append((time.perf_counter() - begin) * 1e3)
                    latency[mode].append(min(took))
                s.close()
            finally:
                c.stop()
            results[mode] = tokens / best
            print(f"  {mode:8} {results[mode]:8.2f} tok/s = {results[mode] / results['cli']:.3f}x the CLI "
                  f"(extension build: {build})", flush=True)
        print(f"single calls, best of {args.repeats} (ms; SQL time / CLI time):")
        for i, (call, _, _) in enumerate(CALLS):
            cli = latency["cli"][i]
            cells = "  ".join(f"{m} {latency[m][i]:7.1f} ({latency[m][i] / cli:.2f}x)" for m in ("backend", "server"))
            print(f"  {call:55} cli {cli:7.1f}  {cells}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
