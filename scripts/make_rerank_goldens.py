#!/usr/bin/env python3
"""Golden reranker scores for qwen3_embed, computed with the upstream implementation.

What it does
    For every pair of engine/tests/data/rerank_pairs.json it runs the scoring code of the
    Qwen3-Reranker model card with transformers' `Qwen3ForCausalLM` in float32 on CPU: the prompt
    (system text in the Qwen chat format, "<Instruct>: {instruct}\\n<Query>: {query}\\n<Document>:
    {doc}", the assistant prefix with an empty think block), the pair's text tokenized alone and
    truncated to max_length minus the prompt's tokens, LEFT padding, the logits of "yes" and "no"
    at the last position, score = softmax([no, yes])[1]. Each pair is scored at max_length 8192
    and, to fix the truncation rule, at max_length 100 (`ids_cut` / `score_cut`), where the longer
    documents lose their end.
    Reference models (a generated reranker fixture: `qwen3-embed fixture --kind reranker` or
    `--kind reranker-tied`):
      f32     the fixture's hf-f32/ checkpoint, loaded with Qwen3ForCausalLM.from_pretrained
      f16, q8_0
              the fixture's model-f16.gguf / model-q8_0.gguf, every tensor dequantized to float32
              with `gguf.quants.dequantize` and loaded into the same Qwen3ForCausalLM; its
              cls.output.weight ([yes, no], as llama.cpp's converter writes a reranker) becomes the
              two rows of lm_head the scoring code reads (the other rows are zero and unread).
    Writes <out>/<model>.json per model.

Requirements (never installed in CI; CI only reads the committed JSON files): as
scripts/make_goldens.py (/opt/refvenv with torch, transformers, gguf, safetensors, numpy).

How to run (from the repository root)
    target/debug/qwen3-embed fixture --kind reranker --out fixtures/generated/tiny-reranker \\
        --formats hf-f32,gguf-f32,gguf-f16,gguf-q8_0
    /opt/refvenv/bin/python scripts/make_rerank_goldens.py --fixture fixtures/generated/tiny-reranker \\
        --pairs engine/tests/data/rerank_pairs.json --out engine/tests/golden/rerank
    (and the same with --kind reranker-tied, tiny-reranker-tied, engine/tests/golden/rerank-tied and
    --models f32,q8_0: the tied fixture has no F16 file)

This script is NEVER run in CI. Rerun it only when the fixture generator, the tokenizer or the
pairs change, and commit its output together with the change.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_goldens import GGUF_TO_HF, find_one, fmt_float, fmt_ids, sha256_file, versions, write_json  # noqa: E402

SYSTEM = ('Judge whether the Document meets the requirements based on the Query and the Instruct provided. '
          'Note that the answer can only be "yes" or "no".')
PREFIX = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_TASK = "Given a web search query, retrieve relevant passages that answer the query"
MAX_LENGTHS = (8192, 100)  # the second cuts the longer documents, never a query
BATCH_SIZE = 4


def format_instruction(instruction, query, doc):
    if instruction is None:
        instruction = DEFAULT_TASK
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"


def tokenizer_for(path):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=path, padding_side="left")
    tok.pad_token = "<|endoftext|>"
    return tok


def process_inputs(tok, pairs, max_length):
    """The model card's process_inputs: ids of each pair, prompt around it, left-padded."""
    prefix_tokens = tok.encode(PREFIX, add_special_tokens=False)
    suffix_tokens = tok.encode(SUFFIX, add_special_tokens=False)
    inputs = tok(pairs, padding=False, truncation="longest_first", return_attention_mask=False,
                 max_length=max_length - len(prefix_tokens) - len(suffix_tokens))
    for i, ele in enumerate(inputs["input_ids"]):
        inputs["input_ids"][i] = prefix_tokens + ele + suffix_tokens
    ids = [list(x) for x in inputs["input_ids"]]
    return ids, tok.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)


def compute_scores(model, tok, inputs):
    """The model card's compute_logits."""
    import torch

    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    with torch.no_grad():
        batch_scores = model(**inputs).logits[:, -1, :]
        true_vector = batch_scores[:, yes]
        false_vector = batch_scores[:, no]
        batch_scores = torch.stack([false_vector, true_vector], dim=1)
        batch_scores = torch.nn.functional.log_softmax(batch_scores, dim=1)
        return batch_scores[:, 1].exp().tolist()


def score_all(model, tok, pairs, max_length):
    texts = [format_instruction(p["instruct"], p["query"], p["document"]) for p in pairs]
    ids, scores = [], []
    for start in range(0, len(texts), BATCH_SIZE):
        chunk_ids, inputs = process_inputs(tok, texts[start:start + BATCH_SIZE], max_length)
        ids += chunk_ids
        scores += compute_scores(model, tok, inputs)
    return ids, scores


def hf_model(hf_dir):
    import torch
    from transformers import Qwen3ForCausalLM

    return Qwen3ForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32, attn_implementation="eager").eval()


def gguf_model(path, hf_dir, tok):
    """A Qwen3ForCausalLM holding the GGUF's dequantized weights; cls.output's rows as lm_head's."""
    import numpy as np
    import torch
    import gguf
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config.from_pretrained(hf_dir)
    config.tie_word_embeddings = False
    config._attn_implementation = "eager"
    model = Qwen3ForCausalLM(config).to(torch.float32).eval()
    reader = gguf.GGUFReader(path)
    sd, types = {}, {}
    for t in reader.tensors:
        arr = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(x) for x in reversed(list(t.shape)))
        arr = torch.from_numpy(np.array(arr.reshape(shape), dtype=np.float32, copy=True))
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
        parts = t.name.split(".")
        if t.name == "token_embd.weight":
            sd["model.embed_tokens.weight"] = arr
        elif t.name == "output_norm.weight":
            sd["model.norm.weight"] = arr
        elif t.name == "cls.output.weight":
            head = torch.zeros((config.vocab_size, config.hidden_size), dtype=torch.float32)
            head[tok.convert_tokens_to_ids("yes")] = arr[0]
            head[tok.convert_tokens_to_ids("no")] = arr[1]
            sd["lm_head.weight"] = head
        elif len(parts) == 4 and parts[0] == "blk" and parts[2] in GGUF_TO_HF:
            sd[f"model.layers.{int(parts[1])}.{GGUF_TO_HF[parts[2]]}.weight"] = arr
        else:
            sys.exit(f"unknown GGUF tensor {t.name}")
    model.load_state_dict(sd, strict=True)
    return model, dict(sorted(types.items()))


def score_fields(it):
    """An item's fields after its name: ids and score at each of MAX_LENGTHS."""
    parts = []
    for n in MAX_LENGTHS:
        sfx = "" if n == MAX_LENGTHS[0] else "_cut"
        parts.append(f'"ids{sfx}": {fmt_ids(it["ids" + sfx])}')
        parts.append(f'"score{sfx}": {fmt_float(it["score" + sfx])}')
    return parts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="f32,f16,q8_0")
    args = ap.parse_args()
    import torch

    torch.set_grad_enabled(False)
    with open(args.pairs, encoding="utf-8") as f:
        pairs = json.load(f)
    hf_dir = os.path.join(args.fixture, "hf-f32")
    tok_path = os.path.join(hf_dir, "tokenizer.json")
    tok = tokenizer_for(tok_path)
    with open(os.path.join(hf_dir, "config.json")) as f:
        tied = json.load(f).get("tie_word_embeddings", False)
    os.makedirs(args.out, exist_ok=True)
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name == "f32":
            model, source, types = hf_model(hf_dir), os.path.join(hf_dir, "model.safetensors"), {"F32": None}
        else:
            source = find_one(args.fixture, f"*-{name}.gguf")
            model, types = gguf_model(source, hf_dir, tok)
        items = [{"name": p["name"]} for p in pairs]
        for n in MAX_LENGTHS:
            sfx = "" if n == MAX_LENGTHS[0] else "_cut"
            ids, scores = score_all(model, tok, pairs, n)
            for it, i, s in zip(items, ids, scores):
                it["ids" + sfx], it["score" + sfx] = i, s
        header = {
            "model": name,
            "tied": tied,
            "source_file": os.path.relpath(source, args.fixture),
            "source_sha256": sha256_file(source),
            "tensor_types": types,
            "tokenizer_sha256": sha256_file(tok_path),
            "pairs_sha256": sha256_file(args.pairs),
            "max_lengths": list(MAX_LENGTHS),
            "score": "softmax([logit(no), logit(yes)]) at the last position, the yes entry",
            "generator": {"script": "scripts/make_rerank_goldens.py", "attn_implementation": "eager",
                          "dtype": "float32", "device": "cpu", **versions()},
        }
        write_json(os.path.join(args.out, f"{name}.json"), header, items, score_fields)


if __name__ == "__main__":
    main()
