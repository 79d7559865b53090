//! The engine: a loaded model, its tokenizer and its compute threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::backend::candle::CandleBackend;
use crate::backend::cpu::weights::ModelWeights;
use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, Device};
use crate::cache::{self, CacheInfo, CacheState};
use crate::cancel::{Cancel, CancelFlag, Never};
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::head::{self, Head};
use crate::task::Task;
use crate::tokenizer::Qwen3Tokenizer;
use crate::{gguf, gguf_tokenizer, hf};
use candle_core::Device as CDevice;

use crate::backend::{BackendChoice, DeviceSpec};

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Compute threads of the kernels backend; 0 means one per available core. (The candle
    /// backend's CPU threads are candle's own, process-wide: `CANDLE_NUM_THREADS`.)
    pub threads: usize,
    pub device: DeviceSpec,
    /// Which backend runs the model (CUDA devices always run candle's).
    pub backend: BackendChoice,
    /// The packed-weight cache's directory (`cache::default_dir()` is the usual one); `None`
    /// packs the weights in this process's memory.
    pub cache_dir: Option<PathBuf>,
    /// What the cache may take of the disk: a margin left free, a budget for the directory.
    pub cache_limits: cache::Limits,
    /// Stops a load that waits for another process to finish writing the cache.
    pub cancel: Option<CancelFlag>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            threads: 0,
            device: DeviceSpec::Cpu,
            backend: BackendChoice::Auto,
            cache_dir: None,
            cache_limits: cache::Limits::default(),
            cancel: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    /// "gguf" or "safetensors".
    pub format: &'static str,
    pub architecture: &'static str,
    /// What the model computes: embeddings, or reranking scores.
    pub task: Task,
    pub config: ModelConfig,
    pub parameter_count: u64,
    /// Tensor storage type -> number of tensors of that type.
    pub tensor_types: BTreeMap<String, usize>,
    /// Tokens the tokenizer knows (never more than the embedding rows).
    pub tokenizer_vocab: usize,
    /// A stable hash of the weights' metadata (names, shapes, types, file sizes).
    pub fingerprint: String,
    pub load_time: Duration,
    /// The device the model runs on: "cpu", "cuda:N".
    pub device: String,
    /// Why that device: what was asked for, and for `auto` what was found.
    pub device_reason: String,
    /// The backend that runs it: "kernels" or "candle".
    pub backend: &'static str,
    pub threads: usize,
    /// The packed-weight cache file in use, if any, and how it came to be.
    pub cache: CacheInfo,
    /// The bytes of the model's weights as the backend holds them, counted once at load: the
    /// packed projections and embedding table (their pages in the packed-weight cache's mapping
    /// when mapped, counted in full though other processes may share them; this process's own
    /// buffers otherwise; device memory on CUDA), the norms (and the CPU backend's f32 copies of
    /// them) and a reranker's two head rows. Not counted: the tokenizer, the compute threads and
    /// a forward pass's activations. What the model server's `max_model_bytes` budgets.
    pub resident_bytes: u64,
}

/// A loaded model: its tokenizer and the backend that runs it. The embedding policy is in
/// `embedder.rs`.
pub struct Engine {
    /// Unique among the engines this process has loaded (`Engine::id`).
    id: u64,
    backend: Box<dyn Backend>,
    tokenizer: Qwen3Tokenizer,
    head: Head,
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
        Err(source) => Err(EngineError::Unreadable { path: path.to_path_buf(), source }),
    }
}

/// What a model's files say besides its weights.
struct Described {
    tokenizer: Qwen3Tokenizer,
    /// "gguf" or "safetensors".
    format: &'static str,
    /// Tensor storage type -> number of tensors of that type.
    type_counts: BTreeMap<String, usize>,
    /// Every tensor in the files: name, shape, type (sorted by name).
    listing: Vec<(String, Vec<usize>, String)>,
    /// The size of each weight file.
    file_sizes: Vec<u64>,
    head: Head,
}

/// Reads a model path with the loader of its format (`hf` for a checkpoint directory or a
/// `.safetensors` file, `gguf` for a GGUF file), whatever backend the weights are for.
fn read<W>(
    path: &Path,
    meta: &std::fs::Metadata,
    config: impl Fn(&W) -> &ModelConfig,
    hf: impl FnOnce(&Path) -> Result<hf::HfModel<W>>,
    gguf: impl FnOnce(&Path) -> Result<gguf::GgufModel<W>>,
) -> Result<(W, Described)> {
    if meta.is_dir() || path.extension().is_some_and(|e| e == "safetensors") {
        let dir =
            if meta.is_dir() { path.to_path_buf() } else { path.parent().unwrap_or(Path::new(".")).to_path_buf() };
        let m = hf(&dir)?;
        let tok = Qwen3Tokenizer::from_file(&m.tokenizer_path, config(&m.weights).vocab_rows)?;
        let head = head::from_hf(&dir, &m.tensor_listing, &tok, config(&m.weights).hidden)?;
        let sizes =
            m.weight_files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).collect::<Vec<_>>();
        let (type_counts, listing) = (m.type_counts, m.tensor_listing);
        let format = "safetensors";
        Ok((m.weights, Described { tokenizer: tok, format, type_counts, listing, file_sizes: sizes, head }))
    } else if is_gguf(path)? {
        let m = gguf(path)?;
        let (doc, eos) = gguf_tokenizer::tokenizer_json_from_gguf(path, &m.metadata)?;
        let tok = Qwen3Tokenizer::from_json(path, doc, Some(eos), config(&m.weights).vocab_rows)?;
        let head = head::from_gguf(path, config(&m.weights).hidden)?;
        let (type_counts, listing, file_sizes) = (m.type_counts, m.tensor_listing, vec![meta.len()]);
        Ok((m.weights, Described { tokenizer: tok, format: "gguf", type_counts, listing, file_sizes, head }))
    } else {
        Err(EngineError::UnknownFormat {
            path: path.to_path_buf(),
            detail: "the file does not start with the GGUF magic".into(),
        })
    }
}

impl Qwen3Tokenizer {
    /// The tokenizer of a model path (as `Engine::load` takes it) without its weights: what a
    /// client of the model server needs to tokenize its own texts. Reads the GGUF header, or
    /// the directory's `config.json` and `tokenizer.json`.
    pub fn for_model(path: &Path) -> Result<Qwen3Tokenizer> {
        let meta = crate::files::model_path_metadata(path)?;
        if meta.is_dir() || path.extension().is_some_and(|e| e == "safetensors") {
            let dir = if meta.is_dir() { path } else { path.parent().unwrap_or(Path::new(".")) };
            let config_path = dir.join("config.json");
            let text = String::from_utf8(crate::files::read(&config_path)?)
                .map_err(|_| EngineError::InvalidConfig { path: config_path.clone(), detail: "not UTF-8".into() })?;
            let config = ModelConfig::from_hf_json(&config_path, &text)?;
            Qwen3Tokenizer::from_file(&dir.join("tokenizer.json"), config.vocab_rows)
        } else if is_gguf(path)? {
            let file = crate::files::open(path)?;
            let mut reader = std::io::BufReader::new(&file);
            let content = candle_core::quantized::gguf_file::Content::read(&mut reader)
                .map_err(|e| gguf::map_candle_error(path, e))?;
            let config = gguf::config_from_metadata(path, &content)?;
            let (doc, eos) = gguf_tokenizer::tokenizer_json_from_gguf(path, &content.metadata)?;
            Qwen3Tokenizer::from_json(path, doc, Some(eos), config.vocab_rows)
        } else {
            Err(EngineError::UnknownFormat {
                path: path.to_path_buf(),
                detail: "the file does not start with the GGUF magic".into(),
            })
        }
    }
}

impl Engine {
    /// Loads a `.gguf` file, a Hugging Face checkpoint directory, or a `.safetensors` file
    /// whose directory holds `config.json` and `tokenizer.json`.
    pub fn load(path: &Path, opts: &EngineOptions) -> Result<Engine> {
        let start = Instant::now();
        let placement = opts.device.place()?;
        let device = placement.device;
        let meta = crate::files::model_path_metadata(path)?;
        let off = CacheInfo { state: CacheState::Off, path: None, bytes: 0, note: None };
        let (backend, config, cache, described) = match (opts.backend, device) {
            (BackendChoice::Auto | BackendChoice::Kernels, Device::Cpu) => {
                let cancel: &dyn Cancel = match &opts.cancel {
                    Some(c) => c,
                    None => &Never,
                };
                let (dir, limits) = (opts.cache_dir.as_deref(), opts.cache_limits);
                let (b, (config, cache, extra)) = CpuBackend::load(opts.threads, || {
                    let ((weights, cache), extra) = read(
                        path,
                        &meta,
                        |w: &(ModelWeights, CacheInfo)| &w.0.config,
                        |d| hf::load_with(d, &CDevice::Cpu, |p, c, f, n| cache::load(dir, limits, cancel, p, c, f, n)),
                        |f| {
                            gguf::load_with(f, &CDevice::Cpu, |p, c, f, n| cache::load(dir, limits, cancel, p, c, f, n))
                        },
                    )?;
                    let config = weights.config.clone();
                    Ok((weights, (config, cache, extra)))
                })?;
                (Box::new(b) as Box<dyn Backend>, config, cache, extra)
            }
            (BackendChoice::Auto | BackendChoice::Candle, _) => {
                let (b, (config, extra)) = CandleBackend::load(device, |dev| {
                    let (weights, extra) = read(
                        path,
                        &meta,
                        |w: &crate::backend::candle::CandleWeights| w.config(),
                        |dir| hf::load_with(dir, dev, CandleBackend::assembler(dev)),
                        |file| gguf::load_with(file, dev, CandleBackend::assembler(dev)),
                    )?;
                    let config = weights.config().clone();
                    Ok((weights, (config, extra)))
                })?;
                (Box::new(b) as Box<dyn Backend>, config, off, extra)
            }
            (BackendChoice::Kernels, Device::Cuda(_)) => {
                return Err(EngineError::Device(
                    device.to_string(),
                    "the kernels backend runs on the CPU only; CUDA devices run the candle backend".into(),
                ))
            }
        };
        // Loading freed the file's metadata, the tokenizer's JSON and (without the cache) the
        // tensors' own copies: give that memory back rather than keep it in malloc's free lists.
        crate::files::release_free_memory();
        let Described { tokenizer, format, type_counts, listing, file_sizes, head } = described;
        let info = ModelInfo {
            path: path.to_path_buf(),
            format,
            architecture: "qwen3",
            task: head.task(),
            parameter_count: config.parameter_count(),
            tokenizer_vocab: tokenizer.vocab_size(),
            fingerprint: fingerprint(format, &listing, &file_sizes),
            tensor_types: type_counts,
            config,
            load_time: start.elapsed(),
            device: backend.device().to_string(),
            device_reason: placement.reason,
            backend: backend.name(),
            threads: backend.threads(),
            cache,
            resident_bytes: backend.weight_bytes() + head.bytes(),
        };
        static LOADED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = LOADED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Engine { id, backend, tokenizer, head, info })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// This load of the model: a model loaded again (the same file or another) gets another
    /// id, so what was computed with one load is never taken for the other's.
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn config(&self) -> &ModelConfig {
        &self.info.config
    }

    pub fn tokenizer(&self) -> &Qwen3Tokenizer {
        &self.tokenizer
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    pub(crate) fn head(&self) -> &Head {
        &self.head
    }
}
