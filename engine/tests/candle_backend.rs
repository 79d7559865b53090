//! The candle backend (the CUDA code path) on candle's CPU device: the same goldens and
//! tolerances as the kernels backend (tests/embeddings.rs), batched equal to one by one,
//! cancellation, and CUDA errors typed in a build or on a machine without it.

mod common;
use common::*;
use qwen3_embed_engine::{BackendChoice, CancelFlag, DeviceSpec, Engine, EngineError, EngineOptions, ErrorKind};

/// Batched vs one by one for quantized weights. Candle picks its quantized product by the
/// number of rows, and the activations' quantization with it (on x86: Q8_K blocks in the
/// repacked path, which an m = 1 Q6_K product skips; on CUDA: q8_1 for a few rows, f32 past
/// them); a sequence run alone reaches the last layer with one row. The float formats prove
/// the padding and masking at 0.99999 / 0.9999; this bounds the kernels' own difference.
const QUANTIZED_PAIR_MIN: f64 = 0.9995;

/// The device the golden tests run on: the CPU, or QWEN3_EMBED_TEST_DEVICE (`cuda` on a GPU
/// machine, scripts/gpu_check.sh).
fn test_device() -> String {
    std::env::var("QWEN3_EMBED_TEST_DEVICE").unwrap_or_else(|_| "cpu".into())
}

fn candle(rel: &str) -> Engine {
    let path = tiny().join(rel);
    let opts = EngineOptions {
        threads: 2,
        backend: BackendChoice::Candle,
        device: test_device().parse().expect("QWEN3_EMBED_TEST_DEVICE"),
        ..Default::default()
    };
    Engine::load(&path, &opts).unwrap_or_else(|e| panic!("load {}: {e}", path.display()))
}

fn corpus_ids(e: &Engine) -> Vec<Vec<u32>> {
    corpus()
        .iter()
        .map(|c| e.tokenizer().tokenize_input(&c.text, c.instruct.as_deref(), 32768, &|| false).unwrap().ids)
        .collect()
}

/// Every corpus vector of `rel` on the candle backend against the golden `reference`; returns
/// the worst cosine. Also checks that batched and one-by-one vectors agree within `pair_min`.
fn check(rel: &str, reference: &str, min_cos: f64, pair_min: f64) -> f64 {
    let e = candle(rel);
    let device = e.info().device.clone();
    assert_eq!(e.info().backend, "candle");
    assert!(device.starts_with(test_device().trim_end_matches(":0")), "ran on {device}");
    let g = golden(reference);
    let seqs = corpus_ids(&e);
    let batched = e.embed_tokens(&seqs, None, 1 << 20, &CancelFlag::new()).unwrap();
    let single = e.embed_tokens(&seqs, None, 1, &CancelFlag::new()).unwrap();
    let mut worst = 1.0f64;
    let mut worst_pair = 1.0f64;
    for ((v, s), item) in batched.iter().zip(&single).zip(&g.items) {
        assert_eq!(seqs[g.items.iter().position(|i| i.name == item.name).unwrap()], item.ids, "{}", item.name);
        assert!((norm(v) - 1.0).abs() < 1e-5, "{rel} {}: norm {}", item.name, norm(v));
        for (got, mode) in [(v, "batched"), (s, "one by one")] {
            let c = cosine(got, &item.embedding);
            worst = worst.min(c);
            assert!(c >= min_cos, "{rel} {} ({mode}): cosine {c} < {min_cos} against {reference}", item.name);
        }
        let c = cosine(v, s);
        worst_pair = worst_pair.min(c);
        assert!(c >= pair_min, "{rel} {}: batched vs one by one cosine {c} < {pair_min}", item.name);
    }
    eprintln!("candle {rel} vs {reference}: min cosine {worst:.8}, batched vs one by one {worst_pair:.8}");
    worst
}

#[test]
fn f32_safetensors_matches_upstream() {
    check("hf-f32", "f32", 0.99999, 0.99999);
}

#[test]
fn sharded_prefixed_safetensors_matches_upstream() {
    check("hf-sharded", "f32", 0.99999, 0.99999);
}

#[test]
fn gguf_f32_matches_upstream() {
    check("model-f32.gguf", "f32", 0.99999, 0.99999);
}

#[test]
fn gguf_f16_matches_upstream() {
    check("model-f16.gguf", "f16", 0.9999, 0.9999);
}

#[test]
fn hf_bf16_matches_upstream() {
    check("hf-bf16", "bf16", 0.9999, 0.9999);
}

#[test]
fn gguf_q8_0_matches_dequantized_upstream() {
    check("model-q8_0.gguf", "q8_0", 0.99, QUANTIZED_PAIR_MIN);
}

#[test]
fn gguf_q4_k_m_matches_dequantized_upstream() {
    check("model-q4_k_m.gguf", "q4_k_m", 0.97, QUANTIZED_PAIR_MIN);
}

/// Both backends describe one model the same way: the fingerprint pins vectors to a model,
/// never to the backend that computed them.
#[test]
fn model_info_is_the_same_as_the_kernels_backend() {
    for rel in ["hf-f16", "model-q4_k_m.gguf"] {
        let c = candle(rel);
        let k = engine(rel);
        assert_eq!(k.info().backend, "kernels");
        assert_eq!(c.info().fingerprint, k.info().fingerprint, "{rel}");
        assert_eq!(c.info().tensor_types, k.info().tensor_types, "{rel}");
        assert_eq!(c.info().config, k.info().config, "{rel}");
        assert_eq!(c.info().device_reason, "device 'cpu' was asked for");
    }
}

#[test]
fn cancelled_before_a_layer_returns_no_vector() {
    let e = candle("hf-f32");
    let ids = corpus_ids(&e);
    let polls = std::sync::atomic::AtomicUsize::new(0);
    // Stops at the second poll: after the first layer has run, before the second.
    let stop = || polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1;
    let r = e.embed_tokens_each(&ids, &vec![e.config().hidden; ids.len()], 1 << 20, &stop, &mut |_| {});
    assert!(matches!(r, Err(EngineError::Cancelled)), "expected the cancellation error");
    assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 2, "the pass went on after the stop");
}

#[test]
fn kernels_backend_on_cuda_is_refused() {
    let opts = EngineOptions { device: DeviceSpec::Cuda(0), backend: BackendChoice::Kernels, ..Default::default() };
    let err = Engine::load(&tiny().join("hf-f32"), &opts).err().expect("an error");
    assert!(
        matches!(err.kind(), ErrorKind::Device | ErrorKind::DeviceUnsupported | ErrorKind::DeviceUnavailable),
        "{err}"
    );
}

/// Without the `cuda` feature, or on a machine without a CUDA device, `cuda` is a typed error
/// (never a crash, never the CPU instead) and `auto` runs on the CPU and says why.
#[test]
fn cuda_where_there_is_none_is_a_typed_error() {
    let cuda_here = cfg!(feature = "cuda") && DeviceSpec::Cuda(0).place().is_ok();
    if cuda_here {
        eprintln!("a CUDA device is visible: nothing to check here");
        return;
    }
    for spec in ["cuda", "cuda:1"] {
        let spec: DeviceSpec = spec.parse().unwrap();
        let opts = EngineOptions { device: spec, ..Default::default() };
        let err = Engine::load(&tiny().join("hf-f32"), &opts).err().expect("an error");
        let want = if cfg!(feature = "cuda") { ErrorKind::DeviceUnavailable } else { ErrorKind::DeviceUnsupported };
        assert_eq!(err.kind(), want, "{spec:?}: {err}");
    }
    let auto = DeviceSpec::Auto.place().unwrap();
    assert_eq!(auto.device, qwen3_embed_engine::Device::Cpu);
    assert!(auto.reason.starts_with("auto: "), "{}", auto.reason);
    let e = Engine::load(
        &tiny().join("model-q8_0.gguf"),
        &EngineOptions { device: DeviceSpec::Auto, ..Default::default() },
    )
    .unwrap();
    assert_eq!((e.info().device.as_str(), e.info().device_reason.as_str()), ("cpu", auto.reason.as_str()));
}
