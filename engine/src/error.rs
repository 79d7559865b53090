use std::path::PathBuf;

/// Everything that can go wrong between a model path and a vector.
/// Messages name the file and say what is wrong; callers map variants to their own error codes.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model file {path}: not found")]
    NotFound { path: PathBuf },
    #[error("model file {path}: cannot be read: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model file {path}: truncated: {detail}")]
    Truncated { path: PathBuf, detail: String },
    #[error("model file {path}: neither a GGUF file nor a safetensors checkpoint directory ({detail})")]
    UnknownFormat { path: PathBuf, detail: String },
    #[error("model file {path}: corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("model file {path}: architecture is {found:?}, expected \"qwen3\"")]
    WrongArchitecture { path: PathBuf, found: String },
    #[error("model file {path}: missing tensor {name}")]
    MissingTensor { path: PathBuf, name: String },
    #[error("model file {path}: tensor {name} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("model file {path}: tensor {name} has unsupported type {dtype}")]
    UnsupportedQuantization {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error("model file {path}: invalid configuration: {detail}")]
    InvalidConfig { path: PathBuf, detail: String },
    #[error("model file {path}: tokenizer: {detail}")]
    Tokenizer { path: PathBuf, detail: String },
    #[error("tokenization failed: {0}")]
    Encode(String),
    #[error("dims must be between 32 and {max}, got {dims}")]
    InvalidDims { dims: usize, max: usize },
    #[error("input has {tokens} tokens, more than the limit of {limit}")]
    InputTooLong { tokens: usize, limit: usize },
    #[error("embedding cancelled")]
    Cancelled,
    #[error("device {0:?} is not available: {1}")]
    Device(String, String),
    #[error("compute error: {0}")]
    Compute(String),
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        EngineError::Compute(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;
