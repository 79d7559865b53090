//! What a model computes. A leaf of the crate (it imports nothing of it), so that the error type
//! can name tasks without depending on the heads, the loaders or the weights above them.

use serde::{Deserialize, Serialize};

/// What a model computes; on the wire, its `name` ("embedding" when a request does not say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    #[default]
    Embedding,
    Rerank,
}

impl Task {
    /// "embedding" or "rerank" (model information, error messages).
    pub fn name(self) -> &'static str {
        match self {
            Task::Embedding => "embedding",
            Task::Rerank => "rerank",
        }
    }

    /// "an embedding model" or "a reranker".
    pub fn noun(self) -> &'static str {
        match self {
            Task::Embedding => "an embedding model",
            Task::Rerank => "a reranker",
        }
    }
}
