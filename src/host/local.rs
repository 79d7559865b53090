//! The engine inside this Postgres backend process (`runs_in = backend`): one copy per process,
//! loaded on first use.

use std::sync::{Arc, Mutex};

use qwen3_embed_engine::serve::InfoSummary;
use qwen3_embed_engine::{Device, DeviceSpec, Engine, EngineOptions};

use crate::errors::{raise, OrRaise};
use crate::host::offthread::run_cancellable;
use crate::settings;

/// What a loaded engine was loaded from: a change in any of these reloads it.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Key {
    path: String,
    /// The device it runs on (every spelling of one device is the same model).
    device: Device,
    threads: usize,
}

static ENGINE: Mutex<Option<(Key, Arc<Engine>)>> = Mutex::new(None);

/// The engine for the current settings, loading it (in this backend) when needed.
fn engine() -> Arc<Engine> {
    let path = settings::model_path_or_raise();
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

    let mut slot = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((k, e)) = slot.as_ref() {
        if *k == key {
            return e.clone();
        }
    }
    // Drop the old model before loading the new one, so two never sit in memory together.
    *slot = None;
    let opts = EngineOptions {
        threads: key.threads,
        device: spec,
        cache_dir: settings::cache_dir(),
        cache_limits: settings::cache_limits(),
        ..Default::default()
    };
    let path = key.path.clone();
    // Off this thread, so a slow load (or a wait for another process writing the cache) can be
    // cancelled; the abandoned load then ends alone.
    let loaded = run_cancellable(move |cancel| {
        Engine::load(std::path::Path::new(&path), &EngineOptions { cancel: Some(cancel.clone()), ..opts })
    });
    let engine = Arc::new(loaded.unwrap_or_else(|e| raise(e)));
    if let Some(note) = &engine.info().cache.note {
        pgrx::warning!("qwen3_embed: {note}");
    }
    *slot = Some((key, engine.clone()));
    engine
}

pub fn embed(texts: &[&str], instruct: Option<&str>, dims: Option<usize>, column: Option<&str>) -> Vec<Vec<f32>> {
    let engine = engine();
    let limits = settings::limits_for(column);
    let max_tokens = limits.max_tokens;
    // Tokenizing is off this thread too: a huge input can be cancelled while it is cut.
    let owned: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    let instruct = instruct.map(str::to_string);
    let work = engine.clone();
    let prepared =
        run_cancellable(move |cancel| work.prepare_until(&owned, instruct.as_deref(), dims, &limits, cancel))
            .or_raise();
    for t in &prepared.truncated {
        super::notice_truncated(t, max_tokens);
    }
    let budget = settings::batch_tokens();
    let mut out = run_cancellable(move |cancel| engine.embed_prepared(&[&prepared], budget, cancel)).or_raise();
    out.pop().expect("one list per call")
}

pub fn chunk(text: &str, chunk_tokens: usize, overlap: usize) -> Vec<String> {
    let engine = engine();
    let text = text.to_string();
    run_cancellable(move |_| engine.chunk(&text, chunk_tokens, overlap)).or_raise()
}

pub fn tokenize(text: &str, instruct: Option<&str>) -> Vec<u32> {
    let engine = engine();
    let (text, instruct) = (text.to_string(), instruct.map(str::to_string));
    run_cancellable(move |_| engine.tokenize(&text, instruct.as_deref(), usize::MAX)).or_raise().ids
}

pub fn info() -> InfoSummary {
    InfoSummary::from(engine().info())
}
