#!/usr/bin/env python3
"""Two-stage search timed from SQL: HNSW top --candidates, then qwen3_rerank to the best --top.

A throwaway cluster with qwen3_embed preloaded (the model server holds the embedder of --embedder
and the reranker of --reranker side by side) gets a table of --docs documents (scripts/bench/
engines.py's corpus: English-like words, lengths spread evenly over [--doc-min, --doc-max]
tokens), embedded at --dims dimensions by qwen3_embed_batch, and an HNSW index (cosine). Then,
for each of --queries queries, best of --repeats, whole statements as psql sees them:
  stage 1    SELECT id ... ORDER BY embedding <=> qwen3_embed_query(q, dims) LIMIT candidates
  two-stage  a hand-written CTE: those candidates reranked by qwen3_rerank(..., top_n => top)
The difference is what the reranker costs; it is printed per candidate and as tokens/s of the
pairs it read (the model server's `tokens` counter, read around each statement: the two-stage
statement's tokens less stage 1's, i.e. the candidates with the reranker's prompt). The server's model_loads is printed after the warm-up and at the end:
equal when embedder and reranker stayed resident. Needs root, and the extension installed the way
the README installs it (bash scripts/install.sh --pg-config /usr/lib/postgresql/15/bin/pg_config).

Example (4B-shape models with random weights, `qwen3-embed fixture --preset 4b`, `--kind reranker`):
  python3 scripts/bench/two_stage.py --threads 2 --embedder /opt/bench-models/4b/model-q4_k_m.gguf \\
      --reranker /opt/bench-models/reranker-4b/model-q4_k_m.gguf
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engines as bench  # noqa: E402  (engines.py: the corpus)
from server import Cluster, Session, quote  # noqa: E402  (server.py: the throwaway cluster)

QUERIES = [
    "which database stores vectors?",
    "how do I keep an index in step with its table",
    "what does a reranker read that a vector search does not",
]


def two_stage(query, dims, candidates, top):
    q = quote(query)
    return f"""
WITH candidates AS (
    SELECT id, body FROM docs
    ORDER BY embedding <=> qwen3_embed_query({q}, dims => {dims})
    LIMIT {candidates}
), ranked AS (
    SELECT r.ord, r.score
      FROM qwen3_rerank({q}, (SELECT array_agg(body ORDER BY id) FROM candidates), top_n => {top}) r
)
SELECT count(*) FROM (
SELECT c.id, ranked.score
  FROM ranked
  JOIN (SELECT id, row_number() OVER (ORDER BY id) AS ord FROM candidates) c USING (ord)
 ORDER BY ranked.score DESC) best"""


def stage_one(query, dims, candidates):
    return (f"SELECT count(*) FROM (SELECT id FROM docs ORDER BY embedding <=> "
            f"qwen3_embed_query({quote(query)}, dims => {dims}) LIMIT {candidates}) c")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", required=True)
    ap.add_argument("--reranker", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--docs", type=int, default=100)
    ap.add_argument("--queries", type=int, default=len(QUERIES), help=f"how many of the {len(QUERIES)} queries")
    ap.add_argument("--doc-min", type=int, default=32)
    ap.add_argument("--doc-max", type=int, default=160)
    ap.add_argument("--dims", type=int, default=1024)
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port", type=int, default=28980)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the server runs as the postgres OS user)")
    if args.docs < args.candidates:
        sys.exit("--docs must be at least --candidates")
    docs, _ = bench.make_corpus(args.seed, args.docs, args.doc_min, args.doc_max, 0)
    embedder, reranker = os.path.realpath(args.embedder), os.path.realpath(args.reranker)
    work = tempfile.mkdtemp(prefix="qwen3-bench-two-stage-")
    os.chmod(work, 0o755)
    print(f"embedder {embedder}\nreranker {reranker}\n{args.threads} threads, {len(docs)} documents of "
          f"{args.doc_min}-{args.doc_max} tokens, vector({args.dims}) with HNSW, top {args.candidates} "
          f"reranked to {args.top}, best of {args.repeats}, load average {os.getloadavg()[0]:.2f}", flush=True)
    conf = ["shared_preload_libraries = 'qwen3_embed'", f"qwen3_embed.model_path = '{embedder}'",
            f"qwen3_embed.reranker_path = '{reranker}'", f"qwen3_embed.server_threads = {args.threads}",
            f"qwen3_embed.threads = {args.threads}", f"qwen3_embed.batch_tokens = {args.batch_tokens}",
            "qwen3_embed.server_model_memory = -1"]
    c = Cluster(os.path.join(work, "pg"), args.port, conf)
    try:
        c.sql("CREATE EXTENSION qwen3_embed CASCADE")
        c.sql(f"CREATE TABLE docs (id int PRIMARY KEY, body text, embedding vector({args.dims}))")
        begin = time.perf_counter()
        array = "ARRAY[" + ",".join(quote(d) for d in docs) + "]"
        c.sql(f"INSERT INTO docs SELECT ord, ({array})[ord], embedding "
              f"FROM qwen3_embed_batch({array}, NULL, {args.dims})")
        c.sql("CREATE INDEX ON docs USING hnsw (embedding vector_cosine_ops)")
        print(f"table filled and indexed in {time.perf_counter() - begin:.1f} s", flush=True)
        s = Session(c)
        print(f"extension build: {s.query('SELECT build FROM qwen3_embed_info()')}", flush=True)
        s.query("SELECT qwen3_rerank_score('warm up', 'the reranker')")
        loads = s.query("SELECT model_loads FROM qwen3_embed_server_stats()")
        print(f"model loads after the warm-up: {loads}", flush=True)
        print(f"{'query':45} {'stage 1 ms':>10} {'two-stage ms':>12} {'rerank ms/candidate':>19} "
              f"{'pair tokens':>11} {'rerank tok/s':>12}")
        for query in QUERIES[:args.queries]:
            first, first_tokens = best_of(s, args.repeats, stage_one(query, args.dims, args.candidates))
            both, tokens = best_of(s, args.repeats, two_stage(query, args.dims, args.candidates, args.top),
                                   want=str(args.top))
            tokens -= first_tokens
            rerank = both - first
            print(f"{query[:45]:45} {first:10.1f} {both:12.1f} {rerank / args.candidates:19.1f} "
                  f"{tokens:11d} {tokens / (rerank / 1e3):12.1f}", flush=True)
        print(f"model loads at the end: {s.query('SELECT model_loads FROM qwen3_embed_server_stats()')}")
        s.close()
    finally:
        c.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def best_of(session, repeats, sql, want=None):
    """The statement's best time of `repeats` (ms), and the tokens the model server computed for it."""
    sql = " ".join(sql.split())
    best, tokens = None, None
    for _ in range(repeats):
        before = int(session.query("SELECT tokens FROM qwen3_embed_server_stats()"))
        begin = time.perf_counter()
        got = session.query(sql)
        took = (time.perf_counter() - begin) * 1e3
        if want is not None:
            assert got == want, got
        after = int(session.query("SELECT tokens FROM qwen3_embed_server_stats()"))
        if best is None or took < best:
            best, tokens = took, after - before
    return best, tokens


if __name__ == "__main__":
    main()
