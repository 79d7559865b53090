//! Qwen3-Embedding inference with no Postgres in it: load a GGUF file or a Hugging Face
//! checkpoint, tokenize like the official tokenizer, run a packed forward pass, pool the last
//! token, truncate (MRL) and normalize; or, for a Qwen3-Reranker, score query–document pairs.

pub(crate) mod backend;
pub(crate) mod buf;
pub mod cache;
pub(crate) mod cancel;
pub(crate) mod config;
pub mod cut;
pub(crate) mod embedder;
pub(crate) mod engine;
pub mod error;
pub(crate) mod files;
#[cfg(feature = "fixture")]
pub mod fixture;
pub(crate) mod gguf;
pub(crate) mod gguf_tokenizer;
pub(crate) mod head;
pub(crate) mod hf;
pub mod kernels;
pub(crate) mod output;
pub mod profile;
#[cfg(feature = "pull")]
pub mod pull;
pub mod query_cache;
pub(crate) mod rerank;
pub mod serve;
pub(crate) mod task;
pub(crate) mod tensors;
pub(crate) mod tokenizer;

pub use backend::{Backend, BackendChoice, Device, DeviceSpec, Placement};
pub use cancel::{Cancel, CancelFlag, Never};
pub use config::ModelConfig;
pub use embedder::{Limits, LongInput, Prepared, TokenizedCall, Truncation, DEFAULT_BATCH_TOKENS, DEFAULT_MAX_TOKENS};
pub use engine::{Engine, EngineOptions, ModelInfo};
pub use error::{EngineError, ErrorKind, Result};
pub use task::Task;
pub use tokenizer::{format_input, Qwen3Tokenizer, Tokenized, DEFAULT_TASK, MAX_UNBROKEN_BYTES};
