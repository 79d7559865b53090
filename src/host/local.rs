//! The engine inside this Postgres backend process (`runs_in = backend`): one copy per process
//! of each model in use (the embedder, the reranker), loaded on first use.

use std::sync::{Arc, Mutex};

use qwen3_embed_engine::serve::InfoSummary;
use qwen3_embed_engine::{Device, DeviceSpec, Engine, EngineOptions};

use crate::errors::{raise, OrRaise};
use crate::host::offthread::run_cancellable;
use crate::host::{kept, Work};
use crate::settings;

/// What a loaded engine was loaded from: a change in any of these loads another.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Key {
    path: String,
    /// The device it runs on (every spelling of one device is the same model).
    device: Device,
    threads: usize,
}

static ENGINES: Mutex<Vec<(Key, Arc<Engine>)>> = Mutex::new(Vec::new());

/// The engine of the model at `path` for the current settings, loading it (in this backend)
/// when needed.
fn engine(path: String) -> Arc<Engine> {
    let spec: DeviceSpec = settings::device().parse().unwrap_or_else(|e| raise(e));
    // A GPU copy of the model per connection would exhaust the card: CUDA is the model
    // server's, and 'auto' in a backend is the CPU.
    let spec = match spec {
        DeviceSpec::Cuda(_) => crate::errors::raise_with(
            pgrx::PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("qwen3_embed: device '{}' runs only in the model server, not in a backend", settings::device().trim()),
            "Add qwen3_embed to shared_preload_libraries (and restart) so that one model server holds the one GPU copy for every session.",
        ),
        DeviceSpec::Auto => DeviceSpec::Cpu,
        cpu => cpu,
    };
    let device = spec.resolve().unwrap_or_else(|e| raise(e));
    let key = Key { path, device, threads: settings::threads() };
    let opts = EngineOptions {
        threads: key.threads,
        device: spec,
        cache_dir: settings::cache_dir(),
        cache_limits: settings::cache_limits(),
        ..Default::default()
    };
    let path = key.path.clone();
    kept(&ENGINES, key, || {
        // Off this thread, so a slow load (or a wait for another process writing the cache)
        // can be cancelled; the abandoned load then ends alone.
        let loaded = run_cancellable(move |cancel| {
            Engine::load(std::path::Path::new(&path), &EngineOptions { cancel: Some(cancel.clone()), ..opts })
        });
        let engine = loaded.unwrap_or_else(|e| raise(e));
        if let Some(note) = &engine.info().cache.note {
            pgrx::warning!("qwen3_embed: {note}");
        }
        engine
    })
}

pub fn run(work: &Work) -> Vec<Vec<f32>> {
    let engine = engine(work.model_path());
    let limits = work.limits();
    let max_tokens = limits.max_tokens;
    // Tokenizing is off this thread too: a huge input can be cancelled while it is cut.
    let (w, e, l) = (work.clone(), engine.clone(), limits.clone());
    let call = run_cancellable(move |cancel| w.tokenize(e.tokenizer(), &l, cancel)).or_raise();
    for t in &call.truncated {
        super::notice_truncated(t, max_tokens);
    }
    let prepared = engine.prepare_ids(work.task, call.seqs, work.dims, &limits).or_raise();
    let cache = super::query_cache_bytes(work).map(|max| {
        super::QUERY_CACHE.set_max_bytes(max);
        (engine.id(), prepared.task, prepared.dims, prepared.seqs[0].clone())
    });
    if let Some((id, task, dims, seq)) = &cache {
        if let Some(v) = super::QUERY_CACHE.get(*id, super::query_cache_scope(), *task, *dims, seq) {
            return vec![v];
        }
    }
    let budget = settings::batch_tokens();
    let mut out = run_cancellable(move |cancel| engine.run_prepared(&[&prepared], budget, cancel)).or_raise();
    let out = out.pop().expect("one list per call");
    if let Some((id, task, dims, seq)) = cache {
        super::QUERY_CACHE.put(id, super::query_cache_scope(), task, dims, &seq, &out[0]);
    }
    out
}

pub fn chunk(text: &str, chunk_tokens: usize, overlap: usize) -> Vec<String> {
    let engine = engine(settings::model_path_or_raise());
    let text = text.to_string();
    run_cancellable(move |cancel| engine.chunk(&text, chunk_tokens, overlap, cancel)).or_raise()
}

pub fn tokenize(text: &str, instruct: Option<&str>) -> Vec<u32> {
    let engine = engine(settings::model_path_or_raise());
    let (text, instruct) = (text.to_string(), instruct.map(str::to_string));
    run_cancellable(move |cancel| engine.tokenizer().tokenize_input(&text, instruct.as_deref(), usize::MAX, cancel))
        .or_raise()
        .ids
}

pub fn info(path: String) -> InfoSummary {
    InfoSummary::from(engine(path).info())
}
