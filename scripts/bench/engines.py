#!/usr/bin/env python3
"""Side-by-side CPU benchmark: the qwen3-embed engine vs llama.cpp vs transformers.

For every --model (a GGUF file or a Hugging Face checkpoint directory) it embeds one
deterministically generated corpus with the engine (`qwen3-embed bench`) and with the peer for
that form of the weights: llama.cpp's `llama-embedding` for a GGUF file (--llama-embedding),
transformers' Qwen3Model for a directory (--torch-python, via scripts/bench/run_transformers.py).
Same thread count for all. It prints, per model and runtime: document throughput (tokens/s),
the mean latency of one short instruction query (model loaded and warmed up), the child's peak
RSS, load time, and the agreement of the peer's vectors with the engine's (min cosine over all
documents and queries), then the engine/peer throughput ratio. Standard library only.

How each runtime is timed
  engine        `qwen3-embed bench --no-cache` (the packed-weight cache changes the load, not the
                compute; scripts/bench/cache.py measures it): load, warm-up (two short sequences), documents packed into
                forward passes of at most --batch-tokens tokens (timed: best of --doc-repeats),
                then each query alone, --query-repeats rounds (mean).
  llama.cpp     one `llama-embedding` process for the documents (-c = -b = -ub = --batch-tokens,
                so it packs documents into decodes exactly like the engine; its own warm-up runs
                first), and one process per query for --llama-query-runs queries (a run of
                several prompts packs them into one decode); time = the decodes' duration (which
                excludes loading and warm-up), read from the timestamps of its log (from each
                "batch_decode" line to the next, the last ending at its perf summary);
                query latency = mean over those single-query decodes.
                Flags: --pooling last --embd-normalize 2 --embd-output-format array and a
                separator string that never occurs in the corpus. llama.cpp skips NFC, so the
                corpus is plain ASCII.
  transformers  bf16 Qwen3Model (sdpa), torch.set_num_threads(N), documents sorted by length in
                batches of --torch-batch with left padding, queries one at a time; tokens/s counts
                real tokens. It is given the engine's token ids.
  --rounds N runs the engine and the peer N times per model, alternating, and reports each
  one's best round (all rounds are printed too): on a shared machine the figures move by 10-25%
  from run to run, and alternating puts a slow spell on both sides.
  Peak RSS is ru_maxrss of each child (os.wait4). The load average is printed before and after
  each model (a busy machine skews the figures; re-run a model if it was high).

The corpus: --docs documents whose lengths are spread evenly over [--doc-min, --doc-max] tokens
(ASCII English-like sentences from a fixed word list; lengths are approximate, the engine's exact
counts are printed) and --queries short questions with the default retrieval instruction.
Everything derives from --seed.

With --engine-env QWEN3_EMBED_PROFILE=1 it also prints attention's share of the engine's pass
time beside its share of the arithmetic. Long documents: --docs 1 --doc-min N --doc-max N
--batch-tokens M --engine-args "--max-tokens M" with M a little over N.

Example (2 threads, every official quantization + F16 + the bf16 directory):
  python3 scripts/bench/engines.py --threads 2 \\
      --llama-embedding /opt/llama.cpp/bin/llama-embedding --torch-python /opt/refvenv/bin/python \\
      --model /opt/bench-models/4b/model-q4_k_m.gguf --model /opt/bench-models/4b/hf-bf16
"""

import argparse
import json
import math
import os
import platform
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time

import corpus

TASK = "Given a web search query, retrieve relevant passages that answer the query"
SEPARATOR = "<#qwen3-bench-separator#>"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


QUESTION_FORMS = [
    "what is the {a} of the {b}",
    "how does the {a} affect {b}",
    "why is the {a} important for {b}",
    "when was the first {a} built",
    "where can i find a {a} near the {b}",
    "who wrote the {a} about {b}",
    "how many {a} are in the {b}",
    "best way to learn about {a}",
]


def make_corpus(seed, n_docs, doc_min, doc_max, n_queries):
    rng = random.Random(seed)
    # EOS, appended by the tokenizer, is the last token of each document.
    docs = [corpus.sentences(rng, corpus.WORDS, target - 1) for target in corpus.lengths(rng, n_docs, doc_min, doc_max)]
    queries = []
    for _ in range(n_queries):
        form = rng.choice(QUESTION_FORMS)
        queries.append(form.format(a=rng.choice(corpus.WORDS), b=rng.choice(corpus.WORDS)))
    for t in docs + queries:
        assert t.isascii() and SEPARATOR not in t and "\n" not in t
    return docs, queries


def cpu_info():
    model, flags = platform.processor(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", None, platform.processor()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                        "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
            if f in flags]
    return model, simd


def run_child(cmd, stdout_path=None, stderr_path=None, env=None):
    """Runs cmd, returns (returncode, wall seconds, peak RSS in bytes)."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
    t0 = time.perf_counter()
    try:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if stdout_path:
            out.close()
        if stderr_path:
            err.close()
    return p.returncode, time.perf_counter() - t0, ru.ru_maxrss * 1024


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else float("nan")


def write_jsonl(path, texts, instruct=None):
    with open(path, "w") as f:
        for t in texts:
            o = {"text": t}
            if instruct is not None:
                o["instruct"] = instruct
            f.write(json.dumps(o) + "\n")


# --------------------------------------------------------------------------------------------
# Runtimes
# --------------------------------------------------------------------------------------------

def run_engine(args, model, work, docs_path, queries_path, tag):
    out_vec = os.path.join(work, f"{tag}-engine-vectors.jsonl")
    stdout, stderr = os.path.join(work, f"{tag}-engine.json"), os.path.join(work, f"{tag}-engine.err")
    cmd = [args.engine, "bench", "--model", model, "--threads", str(args.threads),
           "--docs", docs_path, "--queries", queries_path, "--instruct", TASK,
           "--batch-tokens", str(args.batch_tokens), "--query-repeats", str(args.query_repeats),
           "--doc-repeats", str(args.doc_repeats), "--output", out_vec, "--no-cache"]
    cmd += shlex.split(args.engine_args)
    env = dict(os.environ, **dict(kv.split("=", 1) for kv in args.engine_env))
    rc, wall, rss = run_child(cmd, stdout, stderr, env=env)
    if rc != 0:
        sys.exit(f"engine failed ({rc}): {' '.join(cmd)}\n{tail(stderr)}")
    with open(stdout) as f:
        r = json.loads(f.read().strip().splitlines()[-1])
    docs_v, queries_v = [], []
    with open(out_vec) as f:
        for line in f:
            o = json.loads(line)
            (docs_v if o["kind"] == "doc" else queries_v).append(o["embedding"])
    lat = r["query_latency_ms"]
    return {
        "runtime": "engine",
        "tokens_per_s": r["doc_tokens_per_s"],
        "doc_tokens": r["doc_tokens"],
        "doc_seconds": min(r["doc_seconds"]),
        "query_ms": sum(lat) / len(lat) if lat else None,
        "query_ms_median": r["query_latency_ms_median"],
        "rss": rss,
        "load_s": r["load_s"],
        "wall_s": wall,
        "doc_token_counts": r["doc_token_counts"],
        "query_token_counts": r["query_token_counts"],
        "tensor_types": r["tensor_types"],
        "profile_s": r.get("profile_s") or {},
        "profile_gflop": r.get("profile_gflop") or {},
        "docs_v": docs_v,
        "queries_v": queries_v,
    }


def profile_line(e):
    """Attention's share of the forward passes' time against its share of their arithmetic,
    from a run with QWEN3_EMBED_PROFILE=1 (every pass of the process: warm-up, documents, queries)."""
    secs, gflop = e["profile_s"], e["profile_gflop"]
    t_share = secs.get("attention", 0.0) / sum(secs.values())
    f_share = gflop.get("attention", 0.0) / sum(gflop.values())
    return (f"attention takes {100 * t_share:.1f}% of the pass time and does {100 * f_share:.1f}% of its "
            f"arithmetic ({t_share / f_share:.2f}x); {sum(gflop.values()) / sum(secs.values()):.0f} GFLOP/s "
            f"over all stages, attention {gflop.get('attention', 0.0) / max(secs.get('attention', 0.0), 1e-9):.0f}")


TS_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(\d+) . (.*)$")


def log_times(err):
    """(seconds, message) of every timestamped line of llama.cpp's log (minutes.seconds.ms.us)."""
    out = []
    for line in err.splitlines():
        m = TS_RE.match(line.strip())
        if m:
            mi, se, ms, us = (int(g) for g in m.groups()[:4])
            out.append((mi * 60 + se + ms / 1e3 + us / 1e6, m.group(5)))
    return out


def llama_once(args, model, work, texts, ctx, tag):
    """One llama-embedding process. Returns vectors, the seconds of each decode (from one
    "batch_decode:" log line to the next; the last one ends at llama_perf's summary, printed
    right after the vectors), tokens, peak RSS, wall time, its system_info line.
    (llama_perf's own "prompt eval time" is not usable here: with pooled embeddings it reports
    about a millisecond for the whole run.)"""
    prompt = os.path.join(work, f"{tag}.prompt.txt")
    with open(prompt, "w") as f:
        f.write(SEPARATOR.join(texts))
    stdout, stderr = os.path.join(work, f"{tag}.out"), os.path.join(work, f"{tag}.err")
    cmd = [args.llama_embedding, "-m", model, "-f", prompt, "--embd-separator", SEPARATOR,
           "--pooling", "last", "--embd-normalize", "2", "--embd-output-format", "array",
           "-t", str(args.threads), "-tb", str(args.threads),
           "-c", str(ctx), "-b", str(ctx), "-ub", str(ctx), "--perf", "-lv", "4"]
    cmd += shlex.split(args.llama_args)
    rc, wall, rss = run_child(cmd, stdout, stderr)
    if rc != 0:
        sys.exit(f"llama-embedding failed ({rc}): {' '.join(cmd)}\n{tail(stderr)}")
    with open(stdout) as f:
        vecs = json.loads(f.read().strip())
    with open(stderr, errors="replace") as f:
        err = f.read()
    times = log_times(err)
    starts = [(t, msg) for t, msg in times if msg.startswith("batch_decode: n_tokens")]
    end = next((t for t, msg in times if msg.startswith("llama_perf_context_print")), None)
    if not starts or end is None:
        sys.exit(f"no timestamped batch_decode/llama_perf lines in llama-embedding's log:\n{tail(stderr)}")
    bounds = [t for t, _ in starts] + [end]
    decode_s = [b - a for a, b in zip(bounds, bounds[1:])]
    tokens = sum(int(re.search(r"n_tokens = (\d+)", msg).group(1)) for _, msg in starts)
    if len(vecs) != len(texts):
        sys.exit(f"llama-embedding returned {len(vecs)} vectors for {len(texts)} inputs")
    sysinfo = next((l.split("system_info:", 1)[1].strip() for l in err.splitlines() if "system_info:" in l), "")
    return vecs, decode_s, tokens, rss, wall, sysinfo


def run_llama(args, model, work, docs, queries, eng, tag):
    docs_v, dsecs, ntok, rss, wall, sysinfo = llama_once(
        args, model, work, docs, args.batch_tokens, f"{tag}-llama-docs")
    secs = sum(dsecs)
    if ntok != sum(eng["doc_token_counts"]):
        print(f"  note: llama.cpp counted {ntok} document tokens, the engine "
              f"{sum(eng['doc_token_counts'])}", file=sys.stderr)
    # One process per query: llama-embedding packs every prompt of a run into decodes of
    # n_batch >= 256 tokens (its output buffer needs n_batch >= n_seq_max = 256), so a query
    # only gets a decode of its own when it is the only prompt.
    qtexts = [f"Instruct: {TASK}\nQuery:{q}" for q in queries]
    q_v, qsecs, qrss = [], [], 0
    for i, q in enumerate(qtexts[:args.llama_query_runs]):
        v, secs_q, _, r, _, _ = llama_once(args, model, work, [q], 256, f"{tag}-llama-query{i}")
        q_v += v
        qsecs += secs_q
        qrss = max(qrss, r)
    return {
        "runtime": "llama.cpp",
        "tokens_per_s": ntok / secs,
        "doc_tokens": ntok,
        "doc_seconds": secs,
        "query_ms": sum(qsecs) * 1e3 / len(qsecs),
        "rss": max(rss, qrss),
        "load_s": None,
        "wall_s": wall,
        "sysinfo": sysinfo,
        "docs_v": docs_v,
        "queries_v": q_v,
    }


def run_torch(args, model, work, eng, tag):
    inp = os.path.join(work, f"{tag}-torch-in.json")
    # Token ids from the engine's tokenizer: recover them through `qwen3-embed tokenize`.
    with open(inp, "w") as f:
        json.dump({"docs": eng["doc_ids"], "queries": eng["query_ids"]}, f)
    outp, stderr = os.path.join(work, f"{tag}-torch-out.json"), os.path.join(work, f"{tag}-torch.err")
    helper = os.path.join(REPO, "scripts", "bench", "run_transformers.py")
    cmd = [args.torch_python, helper, "--model-dir", model, "--input", inp, "--output", outp,
           "--threads", str(args.threads), "--batch-size", str(args.torch_batch),
           "--query-repeats", str(args.query_repeats), "--doc-repeats", str(args.doc_repeats)]
    rc, wall, rss = run_child(cmd, None, stderr)
    if rc != 0:
        sys.exit(f"transformers helper failed ({rc}):\n{tail(stderr)}")
    with open(outp) as f:
        r = json.load(f)
    lat = r["query_latency_ms"]
    return {
        "runtime": f"transformers {r['dtype']}",
        "tokens_per_s": r["doc_tokens_per_s"],
        "doc_tokens": r["doc_tokens"],
        "doc_seconds": min(r["doc_seconds"]),
        "query_ms": sum(lat) / len(lat) if lat else None,
        "rss": rss,
        "load_s": r["load_s"],
        "wall_s": wall,
        "sysinfo": r["runtime"],
        "docs_v": r["doc_vectors"],
        "queries_v": r["query_vectors"],
    }


def token_ids(args, model, work, path, instruct, tag):
    out = os.path.join(work, f"{tag}.ids")
    cmd = [args.engine, "tokenize", "--model", model, "--input", path]
    if instruct:
        cmd += ["--instruct", instruct]
    rc, _, _ = run_child(cmd, out, out + ".err")
    if rc != 0:
        sys.exit(f"tokenize failed:\n{tail(out + '.err')}")
    with open(out) as f:
        return [json.loads(l) for l in f if l.strip()]


def agreement(eng, peer):
    cos = [cosine(a, b) for a, b in zip(eng["docs_v"] + eng["queries_v"],
                                        peer["docs_v"] + peer["queries_v"])]
    return min(cos) if cos else None


def flops_per_token(cfg, doc_lens):
    """Matmul FLOPs (2 per multiply-add) of the forward pass per document token, attention
    scores and values included (causal: L(L+1)/2 pairs per sequence)."""
    h, i, layers = cfg["hidden"], cfg["intermediate"], cfg["layers"]
    q, kv = cfg["heads"] * cfg["head_dim"], cfg["kv_heads"] * cfg["head_dim"]
    per_tok = 2 * layers * (h * q + 2 * h * kv + q * h + 3 * h * i)
    pairs = sum(n * (n + 1) // 2 for n in doc_lens)
    attn = 2 * 2 * layers * q * pairs
    return per_tok + attn / sum(doc_lens)


def shape_of(args, model, work, tag):
    out = os.path.join(work, f"{tag}.info")
    rc, _, _ = run_child([args.engine, "info", "--model", model, "--threads", "1"], out, out + ".err")
    if rc != 0:
        return None
    with open(out) as f:
        i = json.load(f)
    return {"hidden": i["hidden"], "intermediate": i["intermediate"],
            "layers": i["layers"], "heads": i["heads"], "kv_heads": i["kv_heads"],
            "head_dim": i["head_dim"]}


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True,
                    help="GGUF file (compared with llama.cpp) or HF directory (with transformers); repeatable")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--engine", default=os.path.join(REPO, "target", "release", "qwen3-embed"))
    ap.add_argument("--engine-args", default="", help="extra arguments for `qwen3-embed bench`")
    ap.add_argument("--engine-env", action="append", default=[], help="KEY=VALUE for the engine")
    ap.add_argument("--llama-embedding", help="path of llama.cpp's llama-embedding binary")
    ap.add_argument("--llama-args", default="", help="extra arguments for llama-embedding")
    ap.add_argument("--llama-query-runs", type=int, default=3,
                    help="llama.cpp query latency: this many queries, one process each")
    ap.add_argument("--torch-python", help="a Python with torch and transformers")
    ap.add_argument("--torch-batch", type=int, default=8, help="documents per transformers batch")
    ap.add_argument("--no-engine", action="store_true", help="peers only")
    ap.add_argument("--docs", type=int, default=6)
    ap.add_argument("--doc-min", type=int, default=32)
    ap.add_argument("--doc-max", type=int, default=512)
    ap.add_argument("--queries", type=int, default=8)
    ap.add_argument("--query-repeats", type=int, default=2)
    ap.add_argument("--doc-repeats", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1,
                    help="run engine and peer this many times, alternating; report each one's best")
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work-dir", help="where inputs, outputs and logs go (default: a temp dir)")
    ap.add_argument("--json", help="write all results (without vectors) here")
    args = ap.parse_args()

    work = args.work_dir or tempfile.mkdtemp(prefix="qwen3-bench-")
    os.makedirs(work, exist_ok=True)
    docs, queries = make_corpus(args.seed, args.docs, args.doc_min, args.doc_max, args.queries)
    docs_path, queries_path = os.path.join(work, "docs.jsonl"), os.path.join(work, "queries.jsonl")
    write_jsonl(docs_path, docs)
    write_jsonl(queries_path, queries, TASK)

    cpu, simd = cpu_info()
    print(f"CPU: {cpu}; {os.cpu_count()} logical CPUs; SIMD: {' '.join(simd)}")
    print(f"threads {args.threads}; corpus seed {args.seed}: {args.docs} documents of "
          f"{args.doc_min}-{args.doc_max} tokens, {args.queries} queries x {args.query_repeats} rounds; "
          f"work dir {work}")
    sys.stdout.flush()

    results = []
    for n, model in enumerate(args.model):
        tag = f"m{n}"
        name = os.path.basename(os.path.normpath(model))
        is_dir = os.path.isdir(model)
        print(f"\n== {model}")
        print(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        sys.stdout.flush()
        rows = []
        eng = None
        peer = None
        engines, peers = [], []
        # Rounds alternate engine and peer, so that a slow spell of a shared machine falls on
        # both; each runtime's best round is reported.
        for rnd in range(args.rounds):
            rtag = tag if rnd == 0 else f"{tag}r{rnd}"
            if not args.no_engine:
                e = run_engine(args, model, work, docs_path, queries_path, rtag)
                engines.append(e)
                print(f"  engine: {e['tokens_per_s']:.2f} tokens/s ({e['doc_tokens']} tokens in "
                      f"{e['doc_seconds']:.1f} s), query {e['query_ms']:.0f} ms, "
                      f"RSS {e['rss'] / 2**30:.2f} GiB, types {e['tensor_types']}")
                if e["profile_gflop"]:
                    print(f"  engine: {profile_line(e)}")
                sys.stdout.flush()
                eng = max(engines, key=lambda r: r["tokens_per_s"])
            p = None
            if not is_dir and args.llama_embedding and eng is not None:
                p = run_llama(args, model, work, docs, queries, eng, rtag)
            elif is_dir and args.torch_python and eng is not None:
                if "doc_ids" not in eng:
                    eng["doc_ids"] = token_ids(args, model, work, docs_path, None, f"{tag}-docs")
                    eng["query_ids"] = token_ids(args, model, work, queries_path, None, f"{tag}-queries")
                p = run_torch(args, model, work, eng, rtag)
            if p is not None:
                peers.append(p)
                if args.rounds > 1:
                    print(f"  {p['runtime']}: {p['tokens_per_s']:.2f} tokens/s")
                    sys.stdout.flush()
        if peers:
            peer = max(peers, key=lambda r: r["tokens_per_s"])
        for best, runs in ((eng, engines), (peer, peers)):
            if best is not None:
                best["rounds"] = [r["tokens_per_s"] for r in runs]
        if eng is not None:
            rows.append(eng)
        if peer is not None:
            peer["min_cos"] = agreement(eng, peer)
            eng["ratio"] = eng["tokens_per_s"] / peer["tokens_per_s"]
            rows.append(peer)
            print(f"  {peer['runtime']}: {peer['tokens_per_s']:.2f} tokens/s, query "
                  f"{peer['query_ms']:.0f} ms, RSS {peer['rss'] / 2**30:.2f} GiB; "
                  f"min cosine vs engine {peer['min_cos']:.6f}; engine/peer {eng['ratio']:.2f}x")
        if eng is not None:
            cfg = shape_of(args, model, work, tag)
            if cfg:
                eng["gflops"] = eng["tokens_per_s"] * flops_per_token(cfg, eng["doc_token_counts"]) / 1e9
                for r in rows[1:]:
                    r["gflops"] = r["tokens_per_s"] * flops_per_token(cfg, eng["doc_token_counts"]) / 1e9
        load_after = os.getloadavg()
        print(f"  load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
        for r in rows:
            r["model"] = name
            r["load_after"] = load_after
        results.extend(rows)
        sys.stdout.flush()

    print(f"\nCPU: {cpu}, {args.threads} threads; {args.docs} documents ({args.doc_min}-{args.doc_max} "
          f"tokens), query = one short instruction query, mean of {args.queries}x{args.query_repeats}")
    head = ("| file | runtime | doc tokens/s | engine/peer | GFLOP/s | query ms | peak RSS GiB "
            "| min cos vs engine |")
    print(head)
    print("|" + "---|" * 8)
    for r in results:
        print(f"| {r['model']} | {r['runtime']} | {r['tokens_per_s']:.2f} | "
              f"{fmt(r.get('ratio'), '.2f')} | {fmt(r.get('gflops'), '.0f')} | "
              f"{fmt(r['query_ms'], '.0f')} | {r['rss'] / 2**30:.2f} | {fmt(r.get('min_cos'), '.5f')} |")
    if args.rounds > 1:
        print(f"\nEvery round's doc tokens/s (the table has the best of {args.rounds}):")
        for r in results:
            print(f"  {r['model']} {r['runtime']}: {', '.join(f'{x:.2f}' for x in r['rounds'])}")
    ours = [r for r in results if r["runtime"] == "engine"]
    theirs = [r for r in results if r["runtime"] != "engine"]
    if ours and theirs:
        a = max(ours, key=lambda r: r["tokens_per_s"])
        b = max(theirs, key=lambda r: r["tokens_per_s"])
        print(f"\nFastest engine configuration: {a['model']} {a['tokens_per_s']:.2f} tokens/s; fastest "
              f"peer configuration: {b['runtime']} on {b['model']} {b['tokens_per_s']:.2f} tokens/s; "
              f"ratio {a['tokens_per_s'] / b['tokens_per_s']:.2f}x")
    sysinfos = {r["sysinfo"] for r in results if r.get("sysinfo")}
    for s in sorted(sysinfos):
        print(f"peer: {s}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "simd": simd, "threads": args.threads, "argv": sys.argv,
                       "results": [{k: v for k, v in r.items() if not k.endswith("_v") and not k.endswith("_ids")}
                                   for r in results]}, f, indent=1)


if __name__ == "__main__":
    main()
