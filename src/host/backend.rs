//! The engine inside this backend: one copy per backend process, loaded on first use.

use std::sync::{Arc, Mutex};

use qwen3_embed_engine::{DeviceSpec, Engine, EngineOptions};

use crate::errors::{raise, raise_with};
use crate::host::offthread::with_signals_blocked;
use crate::settings;

/// What a loaded engine was loaded from: a change in any of these reloads it.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Key {
    path: String,
    device: DeviceSpec,
    threads: usize,
}

pub struct Loaded {
    pub engine: Arc<Engine>,
    pub runs_in: &'static str,
}

static ENGINE: Mutex<Option<(Key, Arc<Engine>)>> = Mutex::new(None);

/// The engine for the current settings, loading it (in this backend) when needed.
pub fn engine() -> Loaded {
    let Some(path) = settings::model_path() else {
        raise_with(
            pgrx::PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "qwen3_embed: no model configured (qwen3_embed.model_path is empty)".into(),
            "As a superuser: ALTER SYSTEM SET qwen3_embed.model_path = '/path/to/Qwen3-Embedding-4B-Q4_K_M.gguf'; SELECT pg_reload_conf();",
        )
    };
    let device: DeviceSpec = settings::device().parse().unwrap_or_else(|e| raise(e));
    let key = Key { path, device, threads: settings::threads() };

    let mut slot = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((k, e)) = slot.as_ref() {
        if *k == key {
            return Loaded { engine: e.clone(), runs_in: "backend" };
        }
    }
    // Drop the old model before loading the new one, so two never sit in memory together.
    *slot = None;
    let opts = EngineOptions { threads: key.threads, device: key.device };
    let loaded = with_signals_blocked(|| Engine::load(std::path::Path::new(&key.path), &opts));
    let engine = Arc::new(loaded.unwrap_or_else(|e| raise(e)));
    *slot = Some((key, engine.clone()));
    Loaded { engine, runs_in: "backend" }
}
