#!/usr/bin/env python3
"""Golden reference embeddings for qwen3_embed, computed with the upstream implementation.

What it does
    For every entry of the corpus (engine/tests/data/corpus.json) it builds the model input
    (queries: "Instruct: {task}\\nQuery:{text}", documents: the text as is), tokenizes it with the
    Hugging Face tokenizer loaded from the fixture's tokenizer.json, appends <|endoftext|> (id 151643,
    as the official Qwen3-Embedding tokenizer does), and runs transformers' `Qwen3Model` in float32 on
    CPU with the official pooling: batches of 8, LEFT padding with id 151643 plus attention mask,
    hidden state of the last position of `last_hidden_state` (final RMSNorm already applied), then
    L2 normalization. Reference models:
      f32     the fixture's hf-f32/ checkpoint (safetensors), as is
      bf16    the fixture's hf-bf16/ checkpoint, its bf16 weights computed in float32
      f16, q8_0, q4_k_m
              the fixture's *-f16.gguf / *-q8_0.gguf / *-q4_k_m.gguf, every tensor dequantized to
              float32 with `gguf.quants.dequantize`, renamed to Hugging Face names and loaded into the
              same Qwen3Model with load_state_dict(strict=True). (So a quantized engine path is judged
              against exactly the weights it holds, not against the f32 original.)
    Writes <out>/<model>.json per model and, with --ids-only, just <out>/token_ids.json.

Requirements (never installed in CI; CI only reads the committed JSON files)
    python3 -m venv /opt/refvenv
    /opt/refvenv/bin/pip install torch transformers gguf safetensors numpy
    (made with torch 2.15.0, transformers 5.23.0, gguf 0.19.0, tokenizers 0.23.3, numpy 2.4.6)

How to run (from the repository root, after generating the tiny fixture)
    /opt/refvenv/bin/python scripts/make_goldens.py \\
        --fixture fixtures/generated/tiny \\
        --corpus engine/tests/data/corpus.json \\
        --out engine/tests/golden
    Token ids only (no model, no torch forward pass):
    /opt/refvenv/bin/python scripts/make_goldens.py --ids-only \\
        --tokenizer fixtures/tokenizer/tokenizer.json \\
        --corpus engine/tests/data/corpus.json --out engine/tests/golden

This script is NEVER run in CI. Rerun it only when the fixture generator, the tokenizer or the
corpus changes, and commit its output together with the change.
"""

import argparse
import glob
import hashlib
import json
import math
import os
import sys

EOS_ID = 151643  # <|endoftext|>: appended to every input, and the left-padding id
BATCH_SIZE = 8
FLOAT_FMT = "{:.9g}"
GGUF_MODELS = ("f16", "q8_0", "q4_k_m")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_input(entry):
    """The official Qwen3-Embedding input format: instruction only on queries, no space after 'Query:'."""
    if entry.get("instruct") is None:
        return entry["text"]
    return f"Instruct: {entry['instruct']}\nQuery:{entry['text']}"


def load_corpus(path):
    with open(path, encoding="utf-8") as f:
        corpus = json.load(f)
    names = set()
    for e in corpus:
        assert set(e) == {"name", "text", "instruct"}, f"bad corpus entry keys: {sorted(e)}"
        assert isinstance(e["text"], str) and (e["instruct"] is None or isinstance(e["instruct"], str))
        assert e["name"] not in names, f"duplicate corpus name {e['name']}"
        names.add(e["name"])
    return corpus


# ---------------------------------------------------------------------------------------------------
# Tokenization
# ---------------------------------------------------------------------------------------------------

def tokenize_corpus(tokenizer_path, corpus):
    """ids per entry, EOS appended. Uses transformers' fast tokenizer (what AutoTokenizer gives upstream)
    and cross-checks every result against the raw `tokenizers` library on the same file."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_file=tokenizer_path)
    raw = Tokenizer.from_file(tokenizer_path)
    out = []
    for e in corpus:
        s = build_input(e)
        ids = list(hf(s)["input_ids"])  # add_special_tokens default; the post-processor adds nothing
        raw_ids = raw.encode(s).ids
        if ids != raw_ids:
            sys.exit(f"tokenizer disagreement on {e['name']!r}: transformers {ids[:20]}... vs tokenizers {raw_ids[:20]}...")
        if ids and ids[-1] == EOS_ID and not s.endswith("<|endoftext|>"):
            sys.exit(f"tokenizer.json appears to append EOS itself ({e['name']!r}); this script expects it not to")
        out.append(ids + [EOS_ID])
    return out


# ---------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------

def load_config(hf_dir):
    from transformers import Qwen3Config

    with open(os.path.join(hf_dir, "config.json")) as f:
        raw = json.load(f)
    config = Qwen3Config.from_pretrained(hf_dir)
    config._attn_implementation = "eager"
    theta = raw.get("rope_theta")
    if theta is None:
        theta = (raw.get("rope_parameters") or {}).get("rope_theta")
    assert theta is not None, "config.json has no rope_theta"
    assert not raw.get("use_sliding_window", False), "sliding window attention is not expected"
    return config, raw, float(theta)


def config_summary(config, theta):
    return {
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "head_dim": config.head_dim,
        "vocab_size": config.vocab_size,
        "rope_theta": theta,
        "rms_norm_eps": config.rms_norm_eps,
    }


def build_model(config, theta, state_dict):
    import torch
    from transformers import Qwen3Model

    model = Qwen3Model(config).to(torch.float32).eval()
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    expected = model.state_dict()
    for k, v in state_dict.items():
        if k in expected and tuple(expected[k].shape) != tuple(v.shape):
            sys.exit(f"shape mismatch for {k}: file {tuple(v.shape)}, config wants {tuple(expected[k].shape)}")
    model.load_state_dict({k: v.to(torch.float32) for k, v in state_dict.items()}, strict=True)
    # Make sure the rotary base transformers derived from config.json is the one the file states.
    d = config.head_dim
    want = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).to(torch.float32) / d))
    got = model.rotary_emb.inv_freq.to(torch.float32)
    assert torch.allclose(got, want, rtol=1e-6, atol=0), "rotary inv_freq does not match rope_theta"
    return model


def load_hf_state_dict(hf_dir):
    from safetensors.torch import load_file

    path = os.path.join(hf_dir, "model.safetensors")
    sd = load_file(path)
    out = {}
    for k, v in sd.items():
        if k == "lm_head.weight":  # tied embeddings; Qwen3Model has no head
            continue
        out[k[len("model."):] if k.startswith("model.") else k] = v
    return out, path


GGUF_TO_HF = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def gguf_name_to_hf(name):
    if name == "token_embd.weight":
        return "embed_tokens.weight"
    if name == "output_norm.weight":
        return "norm.weight"
    if name == "output.weight":
        return None  # untied output head: not used by an embedding model
    parts = name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[3] == "weight" and parts[2] in GGUF_TO_HF:
        return f"layers.{int(parts[1])}.{GGUF_TO_HF[parts[2]]}.weight"
    sys.exit(f"unknown GGUF tensor {name}")


def load_gguf_state_dict(path, hf_vocab):
    """Dequantize every tensor to float32 and rename to HF. Also returns info for the JSON."""
    import numpy as np
    import torch
    import gguf

    reader = gguf.GGUFReader(path)
    sd, types = {}, {}
    for t in reader.tensors:
        hf_name = gguf_name_to_hf(t.name)
        if hf_name is None:
            continue
        arr = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(x) for x in reversed(list(t.shape)))  # ggml ne order -> numpy [out, in]
        arr = np.array(arr.reshape(shape), dtype=np.float32, copy=True)
        assert np.isfinite(arr).all(), f"non-finite values in {t.name}"
        sd[hf_name] = torch.from_numpy(arr)
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    # The GGUF's own vocabulary must agree with tokenizer.json for the ids it holds.
    field = reader.fields.get("tokenizer.ggml.tokens")
    vocab_mismatches = None
    if field is not None:
        n = len(field.data)
        vocab_mismatches = 0
        for i in range(n):
            tok = bytes(field.parts[field.data[i]]).decode("utf-8")
            if hf_vocab.get(i) != tok:
                vocab_mismatches += 1
        if vocab_mismatches:
            print(f"WARNING: {path}: {vocab_mismatches} of {n} GGUF vocabulary entries differ from tokenizer.json")
    return sd, dict(sorted(types.items())), vocab_mismatches


def last_token_pool(last_hidden_states, attention_mask):
    """Verbatim logic of the official Qwen3-Embedding `last_token_pool`."""
    import torch

    left_padding = attention_mask[:, -1].sum() == attention_mask.shape[0]
    if left_padding:
        return last_hidden_states[:, -1]
    sequence_lengths = attention_mask.sum(dim=1) - 1
    batch_size = last_hidden_states.shape[0]
    return last_hidden_states[torch.arange(batch_size, device=last_hidden_states.device), sequence_lengths]


def embed(model, id_lists, batch_size):
    import torch
    import torch.nn.functional as F

    out = []
    with torch.inference_mode():
        for start in range(0, len(id_lists), batch_size):
            chunk = id_lists[start:start + batch_size]
            width = max(len(ids) for ids in chunk)
            input_ids = torch.full((len(chunk), width), EOS_ID, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, ids in enumerate(chunk):  # LEFT padding, as the official tokenizer config does
                input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
                mask[row, width - len(ids):] = 1
            hidden = model(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
            pooled = last_token_pool(hidden, mask)
            out.append(F.normalize(pooled.to(torch.float32), p=2, dim=1))
    return torch.cat(out, dim=0)


# ---------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------

def fmt_float(x):
    assert math.isfinite(x)
    return FLOAT_FMT.format(x)


def fmt_ids(ids):
    return f'[{", ".join(str(x) for x in ids)}]'


def embedding_fields(it):
    """An item's fields after its name: ids, and the embedding where it has one."""
    parts = [f'"ids": {fmt_ids(it["ids"])}']
    if "embedding" in it:
        parts.append(f'"embedding": [{", ".join(fmt_float(x) for x in it["embedding"])}]')
    return parts


def write_json(path, header, items, fields=embedding_fields):
    """Header fields pretty-printed, one line per item (its name, then `fields(item)`: '"key": value'
    strings, inline) to keep diffs readable."""
    lines = ["{"]
    for k, v in header.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},")
    lines.append('  "items": [')
    for i, it in enumerate(items):
        parts = [f'"name": {json.dumps(it["name"])}'] + fields(it)
        lines.append("    {" + ", ".join(parts) + "}" + ("," if i + 1 < len(items) else ""))
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # self-check
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {path} ({len(text.encode())} bytes)")


def versions():
    v = {}
    for mod in ("torch", "transformers", "tokenizers", "gguf", "safetensors", "numpy"):
        try:
            m = __import__(mod)
            v[mod] = getattr(m, "__version__", None)
        except ImportError:
            pass
    if v.get("gguf") is None:
        from importlib.metadata import version
        v["gguf"] = version("gguf")
    return v


def read_hf_vocab(tok_path):
    with open(tok_path, encoding="utf-8") as f:
        tj = json.load(f)
    vocab = {v: k for k, v in tj["model"]["vocab"].items()}
    vocab.update({a["id"]: a["content"] for a in tj["added_tokens"]})
    return vocab


def find_one(fixture, pattern):
    hits = sorted(glob.glob(os.path.join(fixture, pattern)))
    if len(hits) != 1:
        sys.exit(f"expected exactly one {pattern} in {fixture}, found {hits}")
    return hits[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture", help="generated fixture dir (hf-f32/ plus *-f16/q8_0/q4_k_m.gguf)")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", help="tokenizer.json (default: FIXTURE/hf-f32/tokenizer.json)")
    ap.add_argument("--ids-only", action="store_true", help="write only OUT/token_ids.json")
    ap.add_argument("--models", default="f32,bf16," + ",".join(GGUF_MODELS),
                    help="comma-separated subset of f32,bf16,f16,q8_0,q4_k_m")
    args = ap.parse_args()

    tok_path = args.tokenizer or (args.fixture and os.path.join(args.fixture, "hf-f32", "tokenizer.json"))
    if not tok_path:
        ap.error("need --fixture or --tokenizer")
    os.makedirs(args.out, exist_ok=True)
    corpus = load_corpus(args.corpus)
    ids = tokenize_corpus(tok_path, corpus)
    tok_sha = sha256_file(tok_path)
    common = {
        "tokenizer_sha256": tok_sha,
        "corpus": os.path.basename(args.corpus),
        "corpus_sha256": sha256_file(args.corpus),
        "eos_id_appended": EOS_ID,
        "instruction_format": "Instruct: {task}\\nQuery:{text}",
    }

    if args.ids_only:
        write_json(os.path.join(args.out, "token_ids.json"), common,
                   [{"name": e["name"], "ids": i} for e, i in zip(corpus, ids)])
        return

    if not args.fixture:
        ap.error("--fixture is required unless --ids-only")
    import torch

    torch.set_grad_enabled(False)
    hf_dir = os.path.join(args.fixture, "hf-f32")
    config, _, theta = load_config(hf_dir)
    max_id = max(max(i) for i in ids)
    assert max_id < config.vocab_size, f"token id {max_id} >= embedding rows {config.vocab_size}"
    header_base = {
        **common,
        "config": config_summary(config, theta),
        "batch_size": BATCH_SIZE,
        "padding": "left, pad id 151643, attention mask",
        "pooling": "last token of last_hidden_state, L2-normalized",
        "generator": {"script": "scripts/make_goldens.py", "attn_implementation": "eager", "dtype": "float32",
                      "device": "cpu", **versions()},
    }

    def items_for(emb):
        return [{"name": e["name"], "ids": i, "embedding": emb[n].tolist()} for n, (e, i) in enumerate(zip(corpus, ids))]

    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    f32_sd, f32_path = load_hf_state_dict(hf_dir)
    hf_vocab = None

    for name in wanted:
        if name == "f32":
            model = build_model(config, theta, f32_sd)
            emb = embed(model, ids, BATCH_SIZE)
            single = embed(model, ids, 1)
            diff = (emb - single).abs().max().item()
            print(f"f32: batched vs one-by-one max abs diff {diff:.3g}")
            header = {"model": "f32", "source_file": os.path.relpath(f32_path, args.fixture),
                      "source_sha256": sha256_file(f32_path), **header_base,
                      "batch_vs_single_max_abs_diff": float(fmt_float(diff))}
            gguf_f32 = sorted(glob.glob(os.path.join(args.fixture, "*-f32.gguf")))
            if len(gguf_f32) == 1:  # the F32 GGUF must hold exactly the safetensors weights
                if hf_vocab is None:
                    hf_vocab = read_hf_vocab(tok_path)
                sd, _, _ = load_gguf_state_dict(gguf_f32[0], hf_vocab)
                assert set(sd) == set(f32_sd), "F32 GGUF and safetensors hold different tensors"
                gd = max((sd[k] - f32_sd[k].to(torch.float32)).abs().max().item() for k in sd)
                print(f"f32: {os.path.basename(gguf_f32[0])} vs model.safetensors max abs weight diff {gd}")
                header["gguf_f32_weights_max_abs_diff_vs_safetensors"] = gd
            write_json(os.path.join(args.out, "f32.json"), header, items_for(emb))
        elif name in GGUF_MODELS:
            path = find_one(args.fixture, f"*-{name}.gguf")
            if hf_vocab is None:
                hf_vocab = read_hf_vocab(tok_path)
            sd, types, vocab_mismatches = load_gguf_state_dict(path, hf_vocab)
            # Sanity: the dequantized weights must be close to the f32 originals (catches a wrong name
            # mapping, a transposition or a q/k row permutation, which would give errors of order 1).
            worst = 0.0
            for k, v in sd.items():
                ref = f32_sd[k].to(torch.float32)
                rel = ((v - ref).norm() / ref.norm().clamp_min(1e-30)).item()
                worst = max(worst, rel)
            print(f"{name}: tensor types {types}; worst relative weight error vs hf-f32 {worst:.3g}")
            if worst > 0.2:
                sys.exit(f"{name}: dequantized weights are far from hf-f32 (rel error {worst:.3g}): name/layout bug?")
            model = build_model(config, theta, sd)
            emb = embed(model, ids, BATCH_SIZE)
            header = {"model": name, "source_file": os.path.relpath(path, args.fixture),
                      "source_sha256": sha256_file(path), **header_base,
                      "gguf_tensor_types": types,
                      "weights_rel_error_vs_f32_max": float(fmt_float(worst))}
            if vocab_mismatches is not None:
                header["gguf_vocab_mismatches_vs_tokenizer_json"] = vocab_mismatches
            write_json(os.path.join(args.out, f"{name}.json"), header, items_for(emb))
        elif name == "bf16":
            bf16_dir = os.path.join(args.fixture, "hf-bf16")
            sd, path = load_hf_state_dict(bf16_dir)
            model = build_model(config, theta, sd)  # the bf16 weights, exactly, computed in f32
            emb = embed(model, ids, BATCH_SIZE)
            header = {"model": "bf16", "source_file": os.path.relpath(path, args.fixture),
                      "source_sha256": sha256_file(path), **header_base}
            write_json(os.path.join(args.out, "bf16.json"), header, items_for(emb))
        else:
            sys.exit(f"unknown model {name}")


if __name__ == "__main__":
    main()
