//! Shared test helpers: the generated fixture models, the committed goldens, the corpus.
#![allow(dead_code)]

pub mod cache;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use qwen3_embed_engine::fixture::{self, Format, Shape};
use qwen3_embed_engine::{Engine, EngineError, EngineOptions, Limits};

pub const SEED: u64 = 42;

/// The checkout: where this was built, or `QWEN3_EMBED_REPO` for a test binary run elsewhere
/// (scripts/gpu_check.sh runs one on the GPU machine).
pub fn repo_root() -> PathBuf {
    std::env::var_os("QWEN3_EMBED_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf())
}

pub fn tokenizer_json() -> PathBuf {
    let p = repo_root().join("fixtures/tokenizer/tokenizer.json");
    assert!(p.exists(), "{} is missing: run scripts/fetch_tokenizer.sh (scripts/setup.sh does)", p.display());
    p
}

/// The generated fixture directory for a preset, made once.
pub fn fixture_dir(preset: &str, formats: &[Format]) -> PathBuf {
    let dir = repo_root().join("fixtures/generated").join(preset);
    let shape = Shape::preset(preset).expect("preset");
    fixture::ensure(fixture::Kind::Embedding, &shape, SEED, &tokenizer_json(), &dir, formats).expect("generate fixture")
}

/// The reranker fixture of the tiny preset (generated once): its own lm_head (as the 4B and
/// 8B), or tied to the embedding table (as the 0.6B).
pub fn reranker(tied: bool) -> PathBuf {
    let name = if tied { "tiny-reranker-tied" } else { "tiny-reranker" };
    let dir = repo_root().join("fixtures/generated").join(name);
    let tok = tokenizer_json();
    let kind = fixture::Kind::reranker(tied, &tok).expect("reranker kind");
    let formats: &[Format] = if tied {
        &[Format::HfF32, Format::GgufF32, Format::GgufQ8_0]
    } else {
        &[Format::HfF32, Format::GgufF32, Format::GgufF16, Format::GgufQ8_0]
    };
    fixture::ensure(kind, &Shape::preset("tiny").expect("preset"), SEED, &tok, &dir, formats)
        .expect("generate reranker")
}

pub fn tiny() -> PathBuf {
    fixture_dir("tiny", &fixture::test_formats())
}

pub fn tiny_151665() -> PathBuf {
    fixture_dir("tiny-151665", &[Format::HfF32, Format::GgufQ8_0])
}

/// Engines are expensive to load; each test binary loads each model once.
pub fn engine(rel: &str) -> &'static Engine {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<String, &'static Engine>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().unwrap();
    if let Some(e) = map.get(rel) {
        return e;
    }
    let path = tiny().join(rel);
    let e: &'static Engine = Box::leak(Box::new(
        Engine::load(&path, &EngineOptions { threads: 2, ..Default::default() })
            .unwrap_or_else(|e| panic!("load {}: {e}", path.display())),
    ));
    map.insert(rel.to_string(), e);
    e
}

#[derive(serde::Deserialize, Clone)]
pub struct CorpusItem {
    pub name: String,
    pub text: String,
    pub instruct: Option<String>,
}

pub fn corpus() -> Vec<CorpusItem> {
    let p = repo_root().join("engine/tests/data/corpus.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[derive(serde::Deserialize)]
pub struct Golden {
    pub model: String,
    pub source_file: String,
    pub source_sha256: String,
    pub items: Vec<GoldenItem>,
}

#[derive(serde::Deserialize)]
pub struct GoldenItem {
    pub name: String,
    pub ids: Vec<u32>,
    pub embedding: Vec<f32>,
}

/// A committed golden file, checked to belong to the fixture the tests generated.
pub fn golden(model: &str) -> Golden {
    let p = repo_root().join(format!("engine/tests/golden/{model}.json"));
    let g: Golden = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tiny().join("MANIFEST.json")).unwrap()).unwrap();
    let text = manifest.to_string();
    assert!(
        text.contains(&g.source_sha256),
        "{} was made from a fixture with {} = sha256 {}, which the generated fixture does not have: \
         the generator changed; regenerate the goldens with scripts/make_goldens.py",
        p.display(),
        g.source_file,
        g.source_sha256
    );
    g
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

pub fn norm(a: &[f32]) -> f64 {
    a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt()
}

/// Tokenizes and embeds texts in one call; inputs over `max_tokens` are truncated (keeping EOS).
pub fn embed_texts(
    e: &Engine,
    texts: &[&str],
    instruct: Option<&str>,
    dims: Option<usize>,
    max_tokens: usize,
    batch_tokens: usize,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let limits = Limits { max_tokens, ..Limits::default() };
    let p = e.prepare(texts, instruct, dims, &limits)?;
    let mut out = e.run_prepared(&[&p], batch_tokens, &qwen3_embed_engine::Never)?;
    Ok(out.pop().expect("one list per call"))
}
