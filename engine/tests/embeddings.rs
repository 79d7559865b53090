//! Vectors equal the upstream implementation's (transformers `Qwen3Model`, last-token pooling,
//! left padding) on the generated fixture, in every format, batched and one by one, at every
//! MRL size. Goldens: engine/tests/golden/, made by scripts/make_goldens.py.

mod common;
use common::*;
use qwen3_embed_engine::{CancelFlag, EngineError};

fn embed_corpus(rel: &str, dims: Option<usize>, batch_tokens: usize) -> Vec<Vec<f32>> {
    let e = engine(rel);
    let seqs: Vec<Vec<u32>> = corpus()
        .iter()
        .map(|c| e.tokenizer().tokenize_input(&c.text, c.instruct.as_deref(), 32768, &|| false).unwrap().ids)
        .collect();
    e.embed_tokens(&seqs, dims, batch_tokens, &CancelFlag::new()).unwrap()
}

fn truncate(v: &[f32], d: usize) -> Vec<f32> {
    let n = norm(&v[..d]) as f32;
    v[..d].iter().map(|x| x / n).collect()
}

/// Checks every corpus vector of `rel` against the golden `reference`, returns the worst cosine.
fn check(rel: &str, reference: &str, min_cos: f64) -> f64 {
    let g = golden(reference);
    let got = embed_corpus(rel, None, 4096);
    let mut worst = 1.0f64;
    for (v, item) in got.iter().zip(&g.items) {
        assert!((norm(v) - 1.0).abs() < 1e-5, "{rel} {}: norm {}", item.name, norm(v));
        let c = cosine(v, &item.embedding);
        worst = worst.min(c);
        assert!(c >= min_cos, "{rel} {}: cosine {c} < {min_cos} against {reference}", item.name);
    }
    eprintln!("{rel} vs {reference}: min cosine {worst:.8}");
    worst
}

#[test]
fn f32_safetensors_matches_upstream() {
    check("hf-f32", "f32", 0.99999);
}

#[test]
fn sharded_prefixed_safetensors_matches_upstream() {
    check("hf-sharded", "f32", 0.99999);
}

#[test]
fn gguf_f32_matches_upstream() {
    check("model-f32.gguf", "f32", 0.99999);
}

#[test]
fn gguf_f16_matches_upstream() {
    check("model-f16.gguf", "f16", 0.9999);
}

#[test]
fn hf_f16_matches_upstream() {
    check("hf-f16", "f16", 0.9999);
}

#[test]
fn hf_bf16_matches_upstream() {
    check("hf-bf16", "bf16", 0.9999);
}

#[test]
fn gguf_q8_0_matches_dequantized_upstream() {
    check("model-q8_0.gguf", "q8_0", 0.99);
}

#[test]
fn gguf_q4_k_m_matches_dequantized_upstream() {
    check("model-q4_k_m.gguf", "q4_k_m", 0.97);
}

/// The fixture must be able to fail the tests: different texts give clearly different vectors.
#[test]
fn goldens_discriminate_between_texts() {
    let g = golden("f32");
    let mut sum = 0.0;
    let mut n = 0;
    for (i, a) in g.items.iter().enumerate() {
        for b in &g.items[i + 1..] {
            sum += cosine(&a.embedding, &b.embedding);
            n += 1;
        }
    }
    let mean = sum / n as f64;
    assert!(mean < 0.9, "mean pairwise cosine {mean}: the fixture cannot tell texts apart");
}

#[test]
fn batched_equals_one_by_one() {
    for rel in ["hf-f32", "model-q4_k_m.gguf"] {
        let batched = embed_corpus(rel, None, 1 << 20);
        let single = embed_corpus(rel, None, 1);
        let min_cos = if rel == "hf-f32" { 0.99999 } else { 0.9999 };
        for (a, b) in batched.iter().zip(&single) {
            let c = cosine(a, b);
            assert!(c >= min_cos, "{rel}: batched vs single cosine {c}");
        }
    }
}

#[test]
fn mrl_dims_match_reference() {
    let g = golden("f32");
    let hidden = g.items[0].embedding.len();
    for d in [32, 128, hidden] {
        let got = embed_corpus("hf-f32", Some(d), 4096);
        for (v, item) in got.iter().zip(&g.items) {
            assert_eq!(v.len(), d);
            assert!((norm(v) - 1.0).abs() < 1e-5);
            let c = cosine(v, &truncate(&item.embedding, d));
            assert!(c >= 0.99999, "dims {d} {}: cosine {c}", item.name);
        }
    }
}

#[test]
fn dims_out_of_range_is_an_error() {
    let e = engine("hf-f32");
    let ids = vec![e.tokenizer().tokenize_input("x", None, 16, &|| false).unwrap().ids];
    for d in [0, 31, e.config().hidden + 1] {
        match e.embed_tokens(&ids, Some(d), 4096, &CancelFlag::new()) {
            Err(EngineError::InvalidDims { dims, max }) => {
                assert_eq!((dims, max), (d, e.config().hidden))
            }
            other => panic!("dims {d}: {:?}", other.map(|v| v.len())),
        }
    }
}

#[test]
fn cancelled_before_start() {
    let e = engine("hf-f32");
    let cancel = CancelFlag::new();
    cancel.cancel();
    let ids = vec![e.tokenizer().tokenize_input("hello", None, 16, &|| false).unwrap().ids];
    assert!(matches!(e.embed_tokens(&ids, None, 4096, &cancel), Err(EngineError::Cancelled)));
}

#[test]
fn cancelled_while_running_returns_no_vector() {
    let e = engine("hf-f32");
    let long = corpus().into_iter().find(|c| c.name == "long_text").unwrap();
    let t = e.tokenizer().tokenize_input(&long.text.repeat(2), None, 32768, &|| false).unwrap().ids;
    let seqs = vec![t; 2];
    let start = std::time::Instant::now();
    e.embed_tokens(&seqs, None, 1 << 20, &CancelFlag::new()).unwrap();
    let full = start.elapsed();

    let cancel = CancelFlag::new();
    let c2 = cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(full / 10);
        c2.cancel();
    });
    let start = std::time::Instant::now();
    let r = e.embed_tokens(&seqs, None, 1 << 20, &cancel);
    let took = start.elapsed();
    canceller.join().unwrap();
    assert!(matches!(r, Err(EngineError::Cancelled)), "expected the cancellation error");
    assert!(took < full, "cancelled run took {took:?}, a full one {full:?}");
}
