//! The engine: a loaded model, its tokenizer and its compute threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::model::{rows, Qwen3};
use crate::pool::{check_dims, truncate_normalize};
use crate::tokenizer::{format_input, Qwen3Tokenizer, Tokenized};
use crate::{gguf, gguf_tokenizer, hf};

/// Tokens in one call from which the memory it freed is handed back to the system at its end.
const RELEASE_AFTER_TOKENS: usize = 8192;

/// Where the forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    Auto,
}

impl std::str::FromStr for DeviceSpec {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "auto" => Ok(DeviceSpec::Auto),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| {
                    EngineError::Device(s.clone(), "expected cpu, cuda, cuda:N or auto".into())
                }),
        }
    }
}

impl DeviceSpec {
    /// The device this build can actually use for the spec.
    pub fn resolve(self) -> Result<&'static str> {
        match self {
            DeviceSpec::Cpu | DeviceSpec::Auto => Ok("cpu"),
            DeviceSpec::Cuda(n) => Err(EngineError::NoCuda(format!("cuda:{n}"))),
        }
    }
}

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

pub struct Engine {
    model: Qwen3,
    tokenizer: Qwen3Tokenizer,
    info: ModelInfo,
    threads: rayon::ThreadPool,
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
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            opts.threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("qwen3-embed-{i}"))
            .build()
            .map_err(|e| EngineError::Compute(format!("cannot start {threads} threads: {e}")))?;

        let (weights, tokenizer, format, types, listing, sizes) = if meta.is_dir()
            || path.extension().is_some_and(|e| e == "safetensors")
        {
            let dir = if meta.is_dir() {
                path.to_path_buf()
            } else {
                path.parent().unwrap_or(Path::new(".")).to_path_buf()
            };
            let m = pool.install(|| hf::load(&dir))?;
            let tok = Qwen3Tokenizer::from_file(&m.tokenizer_path, m.weights.config.vocab_rows)?;
            let sizes = m
                .weight_files
                .iter()
                .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
                .collect::<Vec<_>>();
            (m.weights, tok, "safetensors", m.type_counts, m.tensor_listing, sizes)
        } else if is_gguf(path)? {
            let m = pool.install(|| gguf::load(path))?;
            let (doc, eos) = gguf_tokenizer::tokenizer_json_from_gguf(path, &m.metadata)?;
            let tok = Qwen3Tokenizer::from_json(path, doc, Some(eos), m.weights.config.vocab_rows)?;
            (m.weights, tok, "gguf", m.type_counts, m.tensor_listing, vec![meta.len()])
        } else {
            return Err(EngineError::UnknownFormat {
                path: path.to_path_buf(),
                detail: "the file does not start with the GGUF magic".into(),
            });
        };
        let config = weights.config.clone();
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
            device,
            threads,
        };
        Ok(Engine {
            model: Qwen3::new(weights)?,
            tokenizer,
            info,
            threads: pool,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn config(&self) -> &ModelConfig {
        &self.info.config
    }

    /// Token ids for `text` (with the instruction, if any), EOS last, at most `max_tokens`.
    /// An instruction so long that truncation would keep nothing of the text is an error: every
    /// input would get the same vector.
    pub fn tokenize(&self, text: &str, instruct: Option<&str>, max_tokens: usize) -> Result<Tokenized> {
        let t = self.tokenizer.encode(&format_input(text, instruct), max_tokens)?;
        if t.truncated && instruct.is_some() {
            let prefix = self.tokenizer.encode(&format_input("", instruct), usize::MAX)?.full_len;
            if prefix >= max_tokens {
                return Err(EngineError::InstructionTooLong { tokens: prefix, limit: max_tokens });
            }
        }
        Ok(t)
    }

    /// Embeds token sequences (each ending in EOS, as `tokenize` makes them), packing them into
    /// forward passes of at most `batch_tokens` tokens (a longer sequence runs alone).
    /// Results are in input order, `dims` long (the full size when `None`), unit length.
    pub fn embed_tokens(
        &self,
        seqs: &[Vec<u32>],
        dims: Option<usize>,
        batch_tokens: usize,
        cancel: &CancelFlag,
    ) -> Result<Vec<Vec<f32>>> {
        let dims = check_dims(dims, self.info.config.hidden)?;
        self.embed_tokens_each(seqs, &vec![dims; seqs.len()], batch_tokens, &|| cancel.is_cancelled())
    }

    /// As `embed_tokens`, with an output size per sequence (each already checked with
    /// `pool::check_dims`) and a stop test run before every layer. Each vector depends only on
    /// how the sequences fall into forward passes, so the same packing gives the same bits.
    pub fn embed_tokens_each(
        &self,
        seqs: &[Vec<u32>],
        dims: &[usize],
        batch_tokens: usize,
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<Vec<Vec<f32>>> {
        assert_eq!(seqs.len(), dims.len());
        let hidden = self.info.config.hidden;
        for &d in dims {
            check_dims(Some(d), hidden)?;
        }
        let rows_max = self.info.config.vocab_rows;
        if let Some(id) = seqs.iter().flatten().find(|&&id| id as usize >= rows_max) {
            return Err(EngineError::Encode(format!(
                "token id {id} is past the model's {rows_max} embedding rows"
            )));
        }
        let limit = self.info.config.max_positions;
        if let Some(s) = seqs.iter().find(|s| s.len() > limit) {
            return Err(EngineError::InputTooLong {
                tokens: s.len(),
                limit,
            });
        }
        if let Some(s) = seqs.iter().find(|s| s.is_empty()) {
            return Err(EngineError::Encode(format!("an empty token sequence ({} tokens)", s.len())));
        }
        let mut out = Vec::with_capacity(seqs.len());
        let mut start = 0;
        while start < seqs.len() {
            let mut end = start + 1;
            let mut tokens = seqs[start].len();
            while end < seqs.len() && tokens + seqs[end].len() <= batch_tokens {
                tokens += seqs[end].len();
                end += 1;
            }
            let batch: Vec<&[u32]> = seqs[start..end].iter().map(|s| s.as_slice()).collect();
            let states = self.threads.install(|| self.model.forward(&batch, &|| cancelled()))?;
            for (state, &d) in rows(&states)?.iter().zip(&dims[start..end]) {
                out.push(truncate_normalize(state, d)?);
            }
            start = end;
        }
        if seqs.iter().map(Vec::len).sum::<usize>() >= RELEASE_AFTER_TOKENS {
            crate::files::release_free_memory();
        }
        Ok(out)
    }

    /// Tokenizes and embeds texts; inputs over `max_tokens` are truncated (keeping EOS).
    pub fn embed_texts(
        &self,
        texts: &[&str],
        instruct: Option<&str>,
        dims: Option<usize>,
        max_tokens: usize,
        batch_tokens: usize,
        cancel: &CancelFlag,
    ) -> Result<Vec<Vec<f32>>> {
        let seqs = texts
            .iter()
            .map(|t| self.tokenize(t, instruct, max_tokens).map(|t| t.ids))
            .collect::<Result<Vec<_>>>()?;
        self.embed_tokens(&seqs, dims, batch_tokens, cancel)
    }
}
