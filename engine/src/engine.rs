//! The engine: a loaded model, its tokenizer and its compute threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, Device};
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::tokenizer::Qwen3Tokenizer;
use crate::{gguf, gguf_tokenizer, hf};

pub use crate::backend::DeviceSpec;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Compute threads; 0 means one per available core.
    pub threads: usize,
    pub device: DeviceSpec,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: 0,
            device: DeviceSpec::Cpu,
        }
    }
}

/// A flag another thread sets to stop a running embedding; checked before every layer.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    /// "gguf" or "safetensors".
    pub format: &'static str,
    pub architecture: &'static str,
    pub config: ModelConfig,
    pub parameter_count: u64,
    /// Tensor storage type -> number of tensors of that type.
    pub tensor_types: BTreeMap<String, usize>,
    /// Tokens the tokenizer knows (never more than the embedding rows).
    pub tokenizer_vocab: usize,
    /// A stable hash of the weights' metadata (names, shapes, types, file sizes).
    pub fingerprint: String,
    pub load_time: Duration,
    pub device: &'static str,
    pub threads: usize,
}

/// A loaded model: its tokenizer and the backend that runs it. The embedding policy is in
/// `embedder.rs`.
pub struct Engine {
    backend: Box<dyn Backend>,
    tokenizer: Qwen3Tokenizer,
    info: ModelInfo,
}

fn fingerprint(format: &str, listing: &[(String, Vec<usize>, String)], sizes: &[u64]) -> String {
    let mut h = Sha256::new();
    h.update(format.as_bytes());
    for (name, shape, ty) in listing {
        h.update(format!("{name}:{shape:?}:{ty};").as_bytes());
    }
    for s in sizes {
        h.update(s.to_le_bytes());
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn is_gguf(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut f = crate::files::open(path)?;
    let mut magic = [0u8; 4];
    match f.read_exact(&mut magic) {
        Ok(()) => Ok(&magic == b"GGUF"),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(source) => Err(EngineError::Unreadable {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl Engine {
    /// Loads a `.gguf` file, a Hugging Face checkpoint directory, or a `.safetensors` file
    /// whose directory holds `config.json` and `tokenizer.json`.
    pub fn load(path: &Path, opts: &EngineOptions) -> Result<Engine> {
        let start = Instant::now();
        let device = opts.device.resolve()?;
        let meta = crate::files::model_path_metadata(path)?;
        let read = || -> Result<_> {
            if meta.is_dir() || path.extension().is_some_and(|e| e == "safetensors") {
                let dir = if meta.is_dir() { path.to_path_buf() } else { path.parent().unwrap_or(Path::new(".")).to_path_buf() };
                let m = hf::load(&dir)?;
                let tok = Qwen3Tokenizer::from_file(&m.tokenizer_path, m.weights.config.vocab_rows)?;
                let sizes = m.weight_files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).collect::<Vec<_>>();
                Ok((m.weights, (tok, "safetensors", m.type_counts, m.tensor_listing, sizes)))
            } else if is_gguf(path)? {
                let m = gguf::load(path)?;
                let (doc, eos) = gguf_tokenizer::tokenizer_json_from_gguf(path, &m.metadata)?;
                let tok = Qwen3Tokenizer::from_json(path, doc, Some(eos), m.weights.config.vocab_rows)?;
                Ok((m.weights, (tok, "gguf", m.type_counts, m.tensor_listing, vec![meta.len()])))
            } else {
                Err(EngineError::UnknownFormat {
                    path: path.to_path_buf(),
                    detail: "the file does not start with the GGUF magic".into(),
                })
            }
        };
        let (backend, config, (tokenizer, format, types, listing, sizes)) = match device {
            Device::Cpu => {
                let (b, (config, extra)) = CpuBackend::load(opts.threads, || {
                    let (weights, extra) = read()?;
                    let config = weights.config.clone();
                    Ok((weights, (config, extra)))
                })?;
                (Box::new(b) as Box<dyn Backend>, config, extra)
            }
        };
        let info = ModelInfo {
            path: path.to_path_buf(),
            format,
            architecture: "qwen3",
            parameter_count: config.parameter_count(),
            tokenizer_vocab: tokenizer.vocab_size(),
            fingerprint: fingerprint(format, &listing, &sizes),
            tensor_types: types,
            config,
            load_time: start.elapsed(),
            device: backend.device().name(),
            threads: backend.threads(),
        };
        Ok(Engine { backend, tokenizer, info })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn config(&self) -> &ModelConfig {
        &self.info.config
    }

    pub(crate) fn tokenizer(&self) -> &Qwen3Tokenizer {
        &self.tokenizer
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }
}
