#!/usr/bin/env python3
"""qwen3_search timed from SQL, side by side with what it builds on: the query's embedding and the
HNSW query alone.

A throwaway cluster gets a table of --rows rows: English-like text from engines.py's corpus
(--doc-min to --doc-max tokens) and a random vector of --dims dimensions per row, with an HNSW
index (cosine) on the vectors and a GIN index on to_tsvector(the database's configuration, body). (What the vector
stage costs does not depend on what the vectors mean, and embedding 100,000 rows with the
4B-shape model would take days on 2 cores.) Then for each mode of --modes (backend: the model in
the session's backend; server: the library preloaded, the model in the model server), best of
--repeats, whole statements as psql sees them (one session; each "fresh" query is a text never
asked before, so the query cache cannot answer it):
  embed, fresh      SELECT qwen3_embed_query(q): the forward pass
  embed, repeated   the same call again: the query cache
  hnsw alone        SELECT id ... ORDER BY embedding <=> qwen3_embed_query(q, dims) LIMIT k, fresh q
  search            SELECT ... FROM qwen3_search('docs', q, k => k), fresh q
  search, repeated  the same qwen3_search call again (its query embedding cached)
and the ratio search / hnsw alone. With --reranker (server mode): qwen3_search(..., rerank => true,
candidates => --rerank-candidates) with a cached query, against the same search without rerank:
the rerank stage's time and its cost per candidate. Needs root, and the extension installed as
the README installs it (bash scripts/install.sh).

Example (4B-shape models with random weights, `qwen3-embed fixture --preset 4b`):
  python3 scripts/bench/search.py --threads 2 --embedder /opt/bench-models/4b/model-q4_k_m.gguf \\
      --reranker /opt/bench-models/reranker-0.6b/model-q4_k_m.gguf
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engines as bench  # noqa: E402  (engines.py: the corpus)
from server import PG_BIN, Cluster, Session, quote, sh  # noqa: E402  (server.py: the throwaway cluster)

QUESTION = "which database keeps its vectors next to the rows"


def fill(c, args):
    """The table, its vectors and its two indexes; returns the seconds each step took."""
    docs, _ = bench.make_corpus(args.seed, args.rows, args.doc_min, args.doc_max, 0)
    c.sql("CREATE TABLE texts (id int, body text)")
    copy = subprocess.run(c.psql_args() + ["-c", "COPY texts FROM STDIN"], input="".join(
        f"{i}\t{d}\n" for i, d in enumerate(docs, 1)), text=True, capture_output=True)
    if copy.returncode != 0:
        sys.exit(copy.stderr)
    took = {}
    begin = time.perf_counter()
    c.sql(f"CREATE TABLE docs (id int PRIMARY KEY, body text, embedding vector({args.dims}))")
    c.sql(f"SELECT setseed({args.seed / 1000})")
    c.sql(f"INSERT INTO docs SELECT t.id, t.body, (SELECT array_agg(random() - 0.5) FROM generate_series(1, {args.dims}) "
          f"WHERE t.id > 0)::vector FROM texts t")
    took["rows"] = time.perf_counter() - begin
    begin = time.perf_counter()
    c.sql(f"SET maintenance_work_mem = '2GB'; SET max_parallel_maintenance_workers = {args.threads - 1}; "
          "CREATE INDEX ON docs USING hnsw (embedding vector_cosine_ops)")
    took["hnsw"] = time.perf_counter() - begin
    begin = time.perf_counter()
    # On the database's text search configuration, which qwen3_search uses by default.
    config = c.sql("SELECT current_setting('default_text_search_config')")
    c.sql(f"CREATE INDEX ON docs USING gin (to_tsvector('{config}', body))")
    took["gin"] = time.perf_counter() - begin
    c.sql("VACUUM ANALYZE docs")
    return took


class Fresh:
    """Query texts never asked before (the cache is keyed by the text)."""

    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return f"{QUESTION} {self.n}"


def best(session, repeats, make_sql):
    """Best time (ms) of `repeats` runs of make_sql() (a new statement each time, or the same)."""
    out = None
    for _ in range(repeats):
        sql = " ".join(make_sql().split())
        begin = time.perf_counter()
        session.query(sql)
        took = (time.perf_counter() - begin) * 1e3
        out = took if out is None else min(out, took)
    return out


def measure(c, args, mode, reranker):
    s = Session(c)
    k, dims = args.k, args.dims
    fresh = Fresh()
    print(f"mode {mode}: extension build {s.query('SELECT build FROM qwen3_embed_info()')}, "
          f"runs in {s.query('SELECT runs_in FROM qwen3_embed_info()')}", flush=True)
    s.query("SELECT vector_dims(qwen3_embed_query('warm up'))")
    rows = []
    embed_fresh = best(s, args.repeats, lambda: f"SELECT vector_dims(qwen3_embed_query({quote(fresh())}))")
    q = fresh()
    s.query(f"SELECT vector_dims(qwen3_embed_query({quote(q)}))")
    embed_hit = best(s, max(args.repeats, 5), lambda: f"SELECT vector_dims(qwen3_embed_query({quote(q)}))")
    hnsw = best(s, args.repeats, lambda: (
        f"SELECT count(*) FROM (SELECT id FROM docs ORDER BY embedding <=> "
        f"qwen3_embed_query({quote(fresh())}, dims => {dims}) LIMIT {k}) x"))
    search = best(s, args.repeats, lambda: f"SELECT count(*) FROM qwen3_search('docs', {quote(fresh())}, k => {k})")
    q = fresh()
    s.query(f"SELECT count(*) FROM qwen3_search('docs', {quote(q)}, k => {k})")
    search_hit = best(s, max(args.repeats, 5), lambda: f"SELECT count(*) FROM qwen3_search('docs', {quote(q)}, k => {k})")
    hnsw_hit = best(s, max(args.repeats, 5), lambda: (
        f"SELECT count(*) FROM (SELECT id FROM docs ORDER BY embedding <=> "
        f"qwen3_embed_query({quote(q)}, dims => {dims}) LIMIT {k}) x"))
    rows += [("embed, fresh query", embed_fresh), ("embed, repeated query (cache)", embed_hit),
             ("hnsw alone, fresh query", hnsw), ("qwen3_search, fresh query", search),
             ("hnsw alone, repeated query", hnsw_hit), ("qwen3_search, repeated query", search_hit)]
    for name, ms in rows:
        print(f"  {name:34} {ms:10.1f} ms", flush=True)
    print(f"  qwen3_search / hnsw alone, fresh query: {search / hnsw:.3f}x", flush=True)
    if reranker:
        n = args.rerank_candidates
        plain = best(s, max(args.repeats, 3), lambda: (
            f"SELECT count(*) FROM qwen3_search('docs', {quote(q)}, k => {k}, candidates => {n})"))
        s.query(f"SELECT count(*) FROM qwen3_search('docs', {quote(q)}, k => {k}, candidates => {n}, rerank => true)")
        ranked = best(s, args.repeats, lambda: (
            f"SELECT count(*) FROM qwen3_search('docs', {quote(q)}, k => {k}, candidates => {n}, rerank => true)"))
        print(f"  qwen3_search, {n} candidates, cached query: {plain:.1f} ms; with rerank {ranked:.1f} ms: "
              f"the rerank stage {ranked - plain:.1f} ms, {(ranked - plain) / n:.1f} ms per candidate", flush=True)
    s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", required=True)
    ap.add_argument("--reranker", help="with it, the rerank stage is timed too (server mode)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--doc-min", type=int, default=16)
    ap.add_argument("--doc-max", type=int, default=64)
    ap.add_argument("--dims", type=int, default=1024)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rerank-candidates", type=int, default=20)
    ap.add_argument("--modes", default="backend,server")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--port", type=int, default=28990)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (the server runs as the postgres OS user)")
    random.seed(args.seed)
    embedder = os.path.realpath(args.embedder)
    reranker = os.path.realpath(args.reranker) if args.reranker else None
    work = tempfile.mkdtemp(prefix="qwen3-bench-search-")
    os.chmod(work, 0o755)
    print(f"embedder {embedder}\nreranker {reranker}\n{args.threads} threads, {args.rows} rows of "
          f"{args.doc_min}-{args.doc_max} tokens, vector({args.dims}) with HNSW and GIN, k {args.k}, "
          f"best of {args.repeats}, load average {os.getloadavg()[0]:.2f}\n{bench.cpu_info()}", flush=True)
    base = [f"qwen3_embed.model_path = '{embedder}'", f"qwen3_embed.threads = {args.threads}",
            f"qwen3_embed.server_threads = {args.threads}", "qwen3_embed.server_model_memory = -1",
            "shared_buffers = '2GB'", "max_parallel_maintenance_workers = 1"]
    if reranker:
        base.append(f"qwen3_embed.reranker_path = '{reranker}'")
    data = None
    for mode in args.modes.split(","):
        conf = base + [f"shared_preload_libraries = '{'qwen3_embed' if mode == 'server' else ''}'"]
        root = os.path.join(work, "pg")
        if data is None:
            c = Cluster(root, args.port, conf)
            c.sql("CREATE EXTENSION qwen3_embed CASCADE")
            took = fill(c, args)
            print("table: " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()), flush=True)
            data = c.data
        else:
            # The same data directory, restarted with this mode's settings.
            with open(os.path.join(data, "postgresql.conf"), "a") as f:
                f.write("\n".join(conf) + "\n")
            sh("sudo", "-u", "postgres", f"{PG_BIN}/pg_ctl", "-D", data, "-l", os.path.join(root, "server.log"),
               "-w", "-o", f"-p {args.port} -k {root} -c listen_addresses=''", "start")
        try:
            measure(c, args, mode, reranker if mode == "server" else None)
        finally:
            c.stop()
    shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
