//! The task heads over the one trunk: what a sequence's last-token final-norm state becomes.
//! Which head a model has is a property of its files, read when it loads:
//! - an embedding model (Qwen3-Embedding): the state itself, truncated and normalized
//!   (`output.rs`);
//! - a reranker (Qwen3-Reranker, a causal LM): the logits of "yes" and "no" at the last position,
//!   scored as P(yes) = softmax([no, yes])[1]. A Hugging Face checkpoint takes the two rows from
//!   `lm_head` (or from the tied embedding table); a GGUF file made by llama.cpp's converter has
//!   them as `cls.output.weight` ([yes, no]).

use std::path::Path;

use crate::error::{EngineError, Result};
use crate::task::Task;
use crate::tokenizer::Qwen3Tokenizer;

pub(crate) enum Head {
    Embedding,
    Rerank(RerankHead),
}

impl Head {
    pub fn task(&self) -> Task {
        match self {
            Head::Embedding => Task::Embedding,
            Head::Rerank(_) => Task::Rerank,
        }
    }

    /// The bytes of the head's own weights (the reranker's two rows; nothing for embeddings).
    pub fn bytes(&self) -> u64 {
        match self {
            Head::Embedding => 0,
            Head::Rerank(h) => ((h.yes.len() + h.no.len()) * size_of::<f32>()) as u64,
        }
    }
}

/// The two rows of the output head a reranker needs.
pub(crate) struct RerankHead {
    yes: Vec<f32>,
    no: Vec<f32>,
}

impl RerankHead {
    /// P(yes) for one sequence's last-token final-norm state.
    pub fn score(&self, state: &[f32]) -> f32 {
        let dot = |w: &[f32]| state.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>();
        let (yes, no) = (dot(&self.yes), dot(&self.no));
        (1.0 / (1.0 + (no - yes).exp())) as f32
    }
}

/// The token id of a reranker's answer word.
fn answer_id(path: &Path, tokenizer: &Qwen3Tokenizer, word: &str) -> Result<usize> {
    tokenizer.token_id(word).map(|i| i as usize).ok_or_else(|| EngineError::Tokenizer {
        path: path.to_path_buf(),
        detail: format!("no token {word:?}, which a reranker answers with"),
    })
}

/// The head of a Hugging Face checkpoint. A causal LM (an `lm_head`, or `Qwen3ForCausalLM`
/// weights under `model.` with tied embeddings) is a reranker; anything else an embedding model.
pub(crate) fn from_hf(
    dir: &Path,
    listing: &[(String, Vec<usize>, String)],
    tokenizer: &Qwen3Tokenizer,
    hidden: usize,
) -> Result<Head> {
    let has = |name: &str| listing.iter().any(|(n, _, _)| n == name);
    let config = crate::hf::read_config_json(dir)?;
    let causal_lm = config
        .get("architectures")
        .and_then(|a| a.as_array())
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("Qwen3ForCausalLM")));
    let tied = config.get("tie_word_embeddings").and_then(|t| t.as_bool()).unwrap_or(false);
    let table = if has("lm_head.weight") {
        "lm_head.weight"
    } else if causal_lm && tied && has("model.embed_tokens.weight") {
        "model.embed_tokens.weight"
    } else {
        return Ok(Head::Embedding);
    };
    let rows = [answer_id(dir, tokenizer, "yes")?, answer_id(dir, tokenizer, "no")?];
    let mut got = crate::hf::read_rows(dir, table, &rows, hidden)?.into_iter();
    let (yes, no) = (got.next().expect("two rows"), got.next().expect("two rows"));
    Ok(Head::Rerank(RerankHead { yes, no }))
}

/// The head of a GGUF file: a reranker when it has `cls.output.weight` (two rows, [yes, no]).
pub(crate) fn from_gguf(path: &Path, hidden: usize) -> Result<Head> {
    let Some(rows) = crate::gguf::read_dense(path, "cls.output.weight")? else {
        return Ok(Head::Embedding);
    };
    if rows.len() != 2 || rows.iter().any(|r| r.len() != hidden) {
        return Err(EngineError::ShapeMismatch {
            path: path.to_path_buf(),
            name: "cls.output.weight".into(),
            found: vec![rows.len(), rows.first().map_or(0, Vec::len)],
            expected: vec![2, hidden],
        });
    }
    let mut rows = rows.into_iter();
    let (yes, no) = (rows.next().expect("two rows"), rows.next().expect("two rows"));
    Ok(Head::Rerank(RerankHead { yes, no }))
}
