//! The reranker against transformers' scores (scripts/make_rerank_goldens.py, the model card's
//! scoring code) on generated reranker checkpoints, tied and untied: the prompt's token ids
//! exactly, scores within 1e-4 for F32 and F16 files and 2e-2 for Q8_0, at the default token
//! limit and at 100 tokens (the longer documents cut). Also the refusals: a reranker does not embed, an
//! embedding model does not rerank.

mod common;

use std::path::Path;

use qwen3_embed_engine::fixture;
use qwen3_embed_engine::{BackendChoice, Engine, EngineError, EngineOptions, Never, Task};

/// The token limit at which the goldens' longer documents lose their end.
const CUT: usize = 100;

#[derive(serde::Deserialize)]
struct Pair {
    query: String,
    document: String,
    instruct: Option<String>,
}

#[derive(serde::Deserialize)]
struct Item {
    name: String,
    ids: Vec<u32>,
    score: f64,
    ids_cut: Vec<u32>,
    score_cut: f64,
}

#[derive(serde::Deserialize)]
struct Golden {
    source_file: String,
    source_sha256: String,
    items: Vec<Item>,
}

fn pairs() -> Vec<Pair> {
    let p = common::repo_root().join("engine/tests/data/rerank_pairs.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn golden(dir: &str, model: &str) -> Golden {
    let p = common::repo_root().join("engine/tests/golden").join(dir).join(format!("{model}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn load(path: &Path, backend: BackendChoice) -> Engine {
    Engine::load(path, &EngineOptions { threads: 2, backend, ..Default::default() })
        .unwrap_or_else(|e| panic!("load {}: {e}", path.display()))
}

/// Every pair of the golden through `path`: ids exactly, scores within `tol`.
fn check(path: &Path, g: &Golden, tol: f64, batch_tokens: usize, backend: BackendChoice) {
    let engine = load(path, backend);
    assert_eq!(engine.task(), Task::Rerank);
    let pairs = pairs();
    assert_eq!(pairs.len(), g.items.len());
    for (max_tokens, cut) in [(8192, false), (CUT, true)] {
        let tokenized: Vec<_> = pairs
            .iter()
            .map(|p| {
                engine
                    .tokenizer()
                    .tokenize_pair(&p.query, &p.document, p.instruct.as_deref(), max_tokens, &Never)
                    .unwrap()
            })
            .collect();
        let seqs: Vec<Vec<u32>> = tokenized.iter().map(|t| t.ids.clone()).collect();
        let scores = engine.rerank_tokens(&seqs, batch_tokens, &Never, &mut |_| {}).unwrap();
        for ((it, seq), got) in g.items.iter().zip(&seqs).zip(scores) {
            let (ids, score) = if cut { (&it.ids_cut, it.score_cut) } else { (&it.ids, it.score) };
            assert_eq!(seq, ids, "{} ids at {max_tokens} tokens", it.name);
            let diff = (got as f64 - score).abs();
            assert!(
                diff <= tol,
                "{} {}: score {got} vs transformers {score} at {max_tokens} tokens (diff {diff:.2e} > {tol:.0e})",
                path.display(),
                it.name
            );
        }
    }
}

fn check_model(tied: bool, model: &str, tol: f64) {
    let dir = common::reranker(tied);
    let g = golden(if tied { "rerank-tied" } else { "rerank" }, model);
    let file = dir.join(&g.source_file);
    let sha = fixture::sha256_file(&file).unwrap();
    assert_eq!(sha, g.source_sha256, "{} is not the file the goldens were made from", file.display());
    let path = if model == "f32" { dir.join("hf-f32") } else { file };
    check(&path, &g, tol, 4096, BackendChoice::Auto);
}

#[test]
fn untied_f32_matches_transformers() {
    check_model(false, "f32", 1e-4);
}

#[test]
fn untied_f16_matches_transformers() {
    check_model(false, "f16", 1e-4);
}

/// Q8_0 runs its products on int8 activations with a scale per 32 values (as llama.cpp does).
/// Measured on these fixtures: at most 9.9e-3 untied and 1.25e-2 tied under every table;
/// llama.cpp's `--pooling rank` on the same files, at most 8.5e-3 and 7.5e-3 on the pairs with
/// the default instruction (`scripts/bench/rerank.py --golden`).
const Q8_0_TOLERANCE: f64 = 2e-2;

#[test]
fn untied_q8_0_matches_transformers() {
    check_model(false, "q8_0", Q8_0_TOLERANCE);
}

#[test]
fn tied_f32_matches_transformers() {
    check_model(true, "f32", 1e-4);
}

#[test]
fn tied_q8_0_matches_transformers() {
    check_model(true, "q8_0", Q8_0_TOLERANCE);
}

/// The F32 GGUF holds the safetensors' weights, and llama.cpp's [yes, no] rows: the same scores;
/// pairs one per pass, and through the candle backend, too.
#[test]
fn gguf_packing_and_candle_agree() {
    let dir = common::reranker(false);
    let g = golden("rerank", "f32");
    check(&dir.join("model-f32.gguf"), &g, 1e-4, 1, BackendChoice::Auto);
    check(&dir.join("hf-f32"), &g, 1e-4, 4096, BackendChoice::Candle);
}

#[test]
fn a_reranker_does_not_embed_and_an_embedder_does_not_rerank() {
    let reranker = load(&common::reranker(true).join("model-q8_0.gguf"), BackendChoice::Auto);
    let err = reranker.embed_tokens(&[vec![1, 2, 3]], None, 4096, &Never).unwrap_err();
    assert!(matches!(err, EngineError::WrongTask { is: Task::Rerank, wanted: Task::Embedding, .. }), "{err}");
    assert!(err.to_string().contains("is a reranker, not an embedding model"), "{err}");
    let embedder = common::engine("model-q8_0.gguf");
    assert_eq!(embedder.task(), Task::Embedding);
    let err = embedder.rerank_tokens(&[vec![1, 2, 3]], 4096, &Never, &mut |_| {}).unwrap_err();
    assert!(matches!(err, EngineError::WrongTask { is: Task::Embedding, wanted: Task::Rerank, .. }), "{err}");
}

#[test]
fn a_query_that_leaves_no_room_for_the_document_is_refused() {
    let engine = load(&common::reranker(true).join("model-q8_0.gguf"), BackendChoice::Auto);
    let query = "word ".repeat(100);
    let err = engine.tokenizer().tokenize_pair(&query, "the document", None, 90, &Never).unwrap_err();
    assert!(matches!(err, EngineError::QueryTooLong { limit: 90, .. }), "{err}");
    let t = engine.tokenizer().tokenize_pair("short", &"word ".repeat(100), None, 90, &Never).unwrap();
    assert!(t.truncated && t.ids.len() == 90, "{} tokens, truncated {}", t.ids.len(), t.truncated);
}
