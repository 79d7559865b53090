//! Qwen3-Embedding inference with no Postgres in it: load a GGUF file or a Hugging Face
//! checkpoint, tokenize like the official tokenizer, run a packed forward pass, pool the last
//! token, truncate (MRL) and normalize.

pub mod backend;
pub mod buf;
pub mod cache;
pub mod config;
pub mod cut;
pub mod embedder;
pub mod engine;
pub mod error;
pub mod files;
#[cfg(feature = "fixture")]
pub mod fixture;
pub mod gguf;
pub mod gguf_tokenizer;
pub mod hf;
pub mod kernels;
pub mod model;
pub mod pool;
pub mod profile;
#[cfg(feature = "pull")]
pub mod pull;
pub mod serve;
pub mod tensor_names;
pub mod tokenizer;
pub mod weights;

pub use backend::{Backend, BackendChoice, Device, DeviceSpec, Placement};
pub use config::ModelConfig;
pub use embedder::{Limits, LongInput, Prepared, TokenizedCall, Truncation};
pub use engine::{CancelFlag, Engine, EngineOptions, ModelInfo};
pub use error::{EngineError, ErrorKind, Result};
pub use tokenizer::{format_input, Qwen3Tokenizer, Tokenized, DEFAULT_TASK};
