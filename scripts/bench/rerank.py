#!/usr/bin/env python3
"""Side-by-side CPU reranking benchmark: `qwen3-embed rerank` vs llama.cpp's `llama-embedding
--pooling rank`, on the same GGUF file, same thread count, in one command.

For every --model (a Qwen3-Reranker GGUF that llama.cpp can load: `cls.output.weight`,
`qwen3.classifier.output_labels` and the "rerank" chat template, as llama.cpp's
convert_hf_to_gguf.py and `qwen3-embed fixture --kind reranker` write them) it scores one deterministic set of query/document pairs with both runtimes and prints
pairs per second, the ours/llama.cpp ratio, and the largest score difference between the two.
Standard library only.

How each runtime is run and timed
  ours       `qwen3-embed rerank --model F --input pairs.jsonl --threads N --no-cache
             --batch-tokens B`; one JSON line per pair with "score" = P(yes). The CLI reports no
             timing of its own, so only whole-process figures exist for it.
  llama.cpp  `llama-embedding -m F -f prompts --pooling rank --embd-normalize -1
             --embd-output-format raw -t N -tb N -c B -b B -ub B`, one "query<TAB>document" per
             prompt, prompts joined by a separator that never occurs. It fills the GGUF's "rerank"
             chat template (system text, "<Instruct>: <the default web-search task>", query,
             document, the assistant prefix with an empty think block) and prints [P(yes), P(no)]
             per pair. --embd-normalize -1 is required: with the default (2) it L2-normalizes
             n_embd floats starting at the 2-float rank output and prints garbage.
             Compute time = from its first "batch_decode" log line to its llama_perf summary
             (excludes loading and its warm-up run); llama_perf's own "prompt eval time" is not
             usable for pooled outputs.
             Note: its Qwen3 graph computes the full-vocabulary lm_head for every token of a rank
             batch (the compute buffer is n_ubatch x n_vocab floats), then reads the two
             [yes, no] rows; on a small model that dominates its time.
  Both get the same pairs without their own instruction, so both use the default task and the
  prompts match (llama.cpp's template hard-codes it). Neither applies anything the other does
  not: ASCII text, so NFC does not matter.
  Columns: "process" = pairs / whole-process wall time (load, weight packing, tokenizing,
  compute, output); "compute" = pairs / llama.cpp's decode time (ours: -); "net" = (pairs - 1) /
  (wall of the full run - wall of a one-pair run), the same start-up-free estimate for both.
  --runs R runs each runtime R times, alternating ours and llama.cpp, and keeps each one's best.
  The load average is printed before and after each model; on a shared machine re-run when high.

Against transformers: --golden FILE (a score file of scripts/make_rerank_goldens.py, such as
engine/tests/golden/rerank/f32.json) takes the pairs of engine/tests/data/rerank_pairs.json that
use the default instruction (llama.cpp's template hard-codes it) instead of generated ones, and
adds each runtime's largest |score - transformers| to the report. --model is then the golden's
own file, or llama.cpp's conversion of the same checkpoint (convert_hf_to_gguf.py on the
fixture's hf-f32 directory, named so that the converter sees a Qwen3-Reranker).

The pairs: --pairs pairs whose prompt lengths (the template included, about 70 tokens) are spread
evenly over [--pair-min, --pair-max] tokens: a short question and an English-like document from
a fixed word list (lengths approximate; the mean of ours' exact counts is printed). Everything
derives from --seed.

Example (2 threads, 4B-shape rerankers with random weights from
`qwen3-embed fixture --preset 4b --kind reranker --formats gguf-q8_0,gguf-q4_k_m`):
  python3 scripts/bench/rerank.py --threads 2 --llama-embedding /opt/llama.cpp/build/bin/llama-embedding \\
      --model /opt/bench-models/reranker-4b/model-q8_0.gguf --pairs 32 --runs 3
"""

import argparse
import json
import os
import random
import re
import shlex
import sys
import tempfile

import corpus
# Shared with the embedding benchmark: CPU description, child processes, llama.cpp's log.
from engines import cpu_info, fmt, log_times, run_child, tail

SEPARATOR = "<#qwen3-rerank-bench-separator#>"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMPT_TOKENS = 70  # the template's tokens around query and document (system text, tags, think block)


QUESTION_FORMS = [
    "what is the {a} of the {b}",
    "how does the {a} affect the {b}",
    "why is the {a} important for the {b}",
    "when was the first {a} built near the {b}",
    "where can i find a {a} near the {b}",
    "who wrote the {a} about the {b}",
    "how many {a} are in the {b}",
    "what is the best way to learn about the {a}",
]


def make_pairs(seed, n, pair_min, pair_max):
    """n (query, document) pairs; the prompt of pair i has about the i-th of n lengths spread
    evenly over [pair_min, pair_max] tokens (one token per word and per period)."""
    rng = random.Random(seed)
    pairs = []
    for target in corpus.lengths(rng, n, pair_min, pair_max):
        form = rng.choice(QUESTION_FORMS)
        query = form.format(a=rng.choice(corpus.WORDS), b=rng.choice(corpus.WORDS)) + "?"
        doc = corpus.sentences(rng, corpus.WORDS, max(target - PROMPT_TOKENS - len(query.split()) - 1, 4))
        for t in (query, doc):
            assert t.isascii() and SEPARATOR not in t and "\n" not in t and "\t" not in t
        pairs.append((query, doc))
    return pairs


def golden_pairs(golden_path):
    """The golden's pairs that use the default instruction, and transformers' score of each."""
    with open(golden_path) as f:
        golden = json.load(f)
    with open(os.path.join(REPO, "engine", "tests", "data", "rerank_pairs.json")) as f:
        inputs = {p["name"]: p for p in json.load(f)}
    pairs, scores = [], []
    for item in golden["items"]:
        p = inputs[item["name"]]
        if p.get("instruct") is None:
            pairs.append((p["query"], p["document"]))
            scores.append(item["score"])
    return golden, pairs, scores


# --------------------------------------------------------------------------------------------
# Runtimes
# --------------------------------------------------------------------------------------------

def run_ours(args, model, work, pairs, tag):
    inp = os.path.join(work, f"{tag}.jsonl")
    with open(inp, "w") as f:
        for q, d in pairs:
            f.write(json.dumps({"query": q, "document": d}) + "\n")
    stdout, stderr = os.path.join(work, f"{tag}.out"), os.path.join(work, f"{tag}.err")
    cmd = [args.qwen3_embed, "rerank", "--model", model, "--input", inp, "--threads", str(args.threads),
           "--no-cache", "--batch-tokens", str(args.batch_tokens)] + shlex.split(args.qwen3_embed_args)
    rc, wall, rss = run_child(cmd, stdout, stderr)
    if rc != 0:
        sys.exit(f"qwen3-embed failed ({rc}): {shlex.join(cmd)}\n{tail(stderr)}")
    with open(stdout) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if len(rows) != len(pairs):
        sys.exit(f"qwen3-embed returned {len(rows)} scores for {len(pairs)} pairs")
    rows.sort(key=lambda r: r["index"])
    return {"scores": [r["score"] for r in rows], "tokens": [r["tokens"] for r in rows],
            "wall": wall, "compute": None, "rss": rss, "cmd": cmd}


def run_llama(args, model, work, pairs, tag):
    prompt = os.path.join(work, f"{tag}.prompt.txt")
    with open(prompt, "w") as f:
        f.write(SEPARATOR.join(f"{q}\t{d}" for q, d in pairs))
    stdout, stderr = os.path.join(work, f"{tag}.out"), os.path.join(work, f"{tag}.err")
    b = str(args.batch_tokens)
    cmd = [args.llama_embedding, "-m", model, "-f", prompt, "--embd-separator", SEPARATOR,
           "--cls-separator", "\t", "--pooling", "rank", "--embd-normalize", "-1",
           "--embd-output-format", "raw", "-t", str(args.threads), "-tb", str(args.threads),
           "-c", b, "-b", b, "-ub", b, "--perf", "-lv", "4"] + shlex.split(args.llama_args)
    rc, wall, rss = run_child(cmd, stdout, stderr)
    if rc != 0:
        with open(stderr, errors="replace") as f:
            errors = [line.rstrip() for line in f if re.match(r"^[\d.]+ E ", line)]
        return {"failed": f"exit {rc}: " + (" / ".join(errors[:2]) or tail(stderr, 3)), "cmd": cmd}
    with open(stdout, errors="replace") as f:
        rows = [line.split() for line in f if re.fullmatch(r"\s*\S+ \S+\s*", line)]
    try:
        scores = [float(r[0]) for r in rows[-len(pairs):]]
    except ValueError:
        scores = []
    if len(scores) != len(pairs):
        sys.exit(f"llama-embedding printed {len(rows)} score rows for {len(pairs)} pairs "
                 f"(is {model} a reranker GGUF from llama.cpp's converter?)\n{tail(stderr)}")
    with open(stderr, errors="replace") as f:
        err = f.read()
    times = log_times(err)
    starts = [t for t, msg in times if msg.startswith("batch_decode: n_tokens")]
    end = next((t for t, msg in times if msg.startswith("llama_perf_context_print")), None)
    compute = end - starts[0] if starts and end is not None else None
    tokens = sum(int(x) for x in re.findall(r"batch_decode: n_tokens = (\d+)", err))
    sysinfo = next((l.split("system_info:", 1)[1].strip() for l in err.splitlines() if "system_info:" in l), "")
    return {"scores": scores, "tokens": tokens, "wall": wall, "compute": compute, "rss": rss,
            "cmd": cmd, "sysinfo": sysinfo}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True,
                    help="reranker GGUF file that both runtimes load; repeatable")
    ap.add_argument("--llama-embedding", required=True, help="path of llama.cpp's llama-embedding binary")
    ap.add_argument("--llama-args", default="", help="extra arguments for llama-embedding")
    ap.add_argument("--qwen3-embed", default=os.path.join(REPO, "target", "release", "qwen3-embed"))
    ap.add_argument("--qwen3-embed-args", default="", help="extra arguments for `qwen3-embed rerank`")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--pairs", type=int, default=32)
    ap.add_argument("--pair-min", type=int, default=150, help="shortest prompt, tokens (template included)")
    ap.add_argument("--pair-max", type=int, default=300, help="longest prompt, tokens (template included)")
    ap.add_argument("--runs", type=int, default=1, help="runs per runtime, alternating; best kept")
    ap.add_argument("--batch-tokens", type=int, default=4096,
                    help="tokens per forward pass (ours --batch-tokens; llama.cpp -c = -b = -ub)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work-dir", help="where inputs, outputs and logs go (default: a temp dir)")
    ap.add_argument("--golden", help="a scripts/make_rerank_goldens.py score file: score its pairs "
                    "and compare both runtimes with transformers")
    args = ap.parse_args()
    if args.pairs < 2:
        sys.exit("--pairs must be at least 2")
    for exe in (args.qwen3_embed, args.llama_embedding):
        if not os.access(exe, os.X_OK):
            sys.exit(f"not an executable: {exe}")

    work = args.work_dir or tempfile.mkdtemp(prefix="qwen3-rerank-bench-")
    os.makedirs(work, exist_ok=True)
    reference = None
    if args.golden:
        golden, pairs, reference = golden_pairs(args.golden)
        args.pairs = len(pairs)
        print(f"pairs: the {len(pairs)} of {args.golden} with the default instruction; transformers "
              f"scored {golden['source_file']} (sha256 {golden['source_sha256'][:12]}..., "
              f"transformers {golden['generator']['transformers']})")
    else:
        pairs = make_pairs(args.seed, args.pairs, args.pair_min, args.pair_max)
    one = pairs[:1]

    cpu, simd = cpu_info()
    print(f"CPU: {cpu}; {os.cpu_count()} logical CPUs; SIMD: {' '.join(simd)}")
    print(f"threads {args.threads}; {args.pairs} pairs of about {args.pair_min}-{args.pair_max} tokens "
          f"(seed {args.seed}); best of {args.runs}; batch {args.batch_tokens} tokens; work dir {work}")
    sys.stdout.flush()

    table = []
    for n, model in enumerate(args.model):
        name = os.path.basename(model)
        print(f"\n== {model}")
        print(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        sys.stdout.flush()
        best = {"ours": None, "llama.cpp": None}
        best1 = {"ours": None, "llama.cpp": None}
        runners = (("ours", run_ours), ("llama.cpp", run_llama))
        failed = {}
        for rnd in range(args.runs):
            for rt, fn in runners:
                if rt in failed:
                    continue
                tag = f"m{n}-r{rnd}-{rt}"
                r = fn(args, model, work, pairs, tag)
                if "failed" in r:
                    failed[rt] = r
                    print(f"  {rt} cannot run this file ({r['failed']})")
                    continue
                r1 = fn(args, model, work, one, tag + "-one")
                print(f"  round {rnd + 1} {rt}: {args.pairs} pairs in {r['wall']:.2f} s "
                      f"(compute {fmt(r['compute'], '.2f')} s), one pair {r1['wall']:.2f} s")
                sys.stdout.flush()
                if best[rt] is None or r["wall"] < best[rt]["wall"]:
                    best[rt] = r
                if best1[rt] is None or r1["wall"] < best1[rt]["wall"]:
                    best1[rt] = r1
        o, l = best["ours"], best["llama.cpp"]
        diff = max(abs(a - b) for a, b in zip(o["scores"], l["scores"])) if l else None
        mean_tokens = sum(o["tokens"]) / len(o["tokens"])
        if l and l["tokens"] != sum(o["tokens"]):
            print(f"  note: llama.cpp decoded {l['tokens']} tokens, ours counted {sum(o['tokens'])}")
        print(f"  mean prompt tokens (ours): {mean_tokens:.0f}; max |score ours - llama.cpp|: {fmt(diff, '.2e')}")
        if reference:
            for rt in ("ours", "llama.cpp"):
                if best[rt]:
                    errs = [abs(a - b) for a, b in zip(best[rt]["scores"], reference)]
                    print(f"  {rt}: max |score - transformers| {max(errs):.2e} "
                          f"({', '.join(f'{e:.1e}' for e in errs)})")
        print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for rt in ("ours", "llama.cpp"):
            r, r1 = best[rt], best1[rt]
            if r is None:
                table.append(None)
                continue
            net_s = r["wall"] - r1["wall"]
            table.append({
                "model": name, "runtime": rt, "wall": r["wall"], "rss": r["rss"],
                "process": args.pairs / r["wall"],
                "compute": args.pairs / r["compute"] if r["compute"] else None,
                "net": (args.pairs - 1) / net_s if net_s > 0 else None,
                "diff": diff, "tokens": mean_tokens, "sysinfo": r.get("sysinfo"),
            })
        print(f"  ours:      {shlex.join(o['cmd'])}")
        print(f"  llama.cpp: {shlex.join((l or failed['llama.cpp'])['cmd'])}")
        sys.stdout.flush()

    print(f"\nCPU: {cpu}, {args.threads} threads; {args.pairs} pairs, best of {args.runs}; pairs/s")
    print("| file | runtime | process | compute | net of start-up | ours/llama.cpp (process) "
          "| ours/llama.cpp (net) | wall s | peak RSS GiB | max score diff |")
    print("|" + "---|" * 10)
    for i in range(0, len(table), 2):
        o, l = table[i], table[i + 1]
        rp = o["process"] / l["process"] if l else None
        rn = o["net"] / l["net"] if l and o["net"] and l["net"] else None
        for r in (o, l) if l else (o,):
            mine = r is o
            print(f"| {r['model']} | {r['runtime']} | {r['process']:.3g} | {fmt(r['compute'], '.3g')} | "
                  f"{fmt(r['net'], '.3g')} | {fmt(rp if mine else None, '.2f')} | {fmt(rn if mine else None, '.2f')} | "
                  f"{r['wall']:.2f} | {r['rss'] / 2**30:.2f} | {fmt(r['diff'], '.1e')} |")
        if l is None:
            print(f"| {o['model']} | llama.cpp | cannot load the file (see above) | | | | | | | |")
    for s in sorted({r["sysinfo"] for r in table if r and r.get("sysinfo")}):
        print(f"llama.cpp: {s}")


if __name__ == "__main__":
    main()
