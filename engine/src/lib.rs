//! Qwen3-Embedding inference with no Postgres in it: load a GGUF file or a Hugging Face
//! checkpoint, tokenize like the official tokenizer, run a packed forward pass, pool the last
//! token, truncate (MRL) and normalize.

pub mod config;
pub mod engine;
pub mod error;
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
pub mod tokenizer;
pub mod weights;

pub use config::ModelConfig;
pub use engine::{CancelFlag, DeviceSpec, Engine, EngineOptions, ModelInfo};
pub use error::{EngineError, ErrorKind, Result};
pub use tokenizer::{format_input, Tokenized, DEFAULT_TASK};
