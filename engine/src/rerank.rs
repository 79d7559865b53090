//! The reranking policy, as upstream's model card scores pairs: the prompt (the system text in
//! the Qwen chat format, `<Instruct>: …\n<Query>: …\n<Document>: …`, the assistant's empty think
//! block, no EOS), long pairs cut at the document's end, packed passes through the trunk, the
//! rerank head's P(yes).

use crate::cancel::Cancel;
use crate::embedder::{tokenize_each, Limits, TokenizedCall};
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::head::Head;
use crate::task::Task;
use crate::tokenizer::{Qwen3Tokenizer, Tokenized, DEFAULT_TASK};

const SYSTEM: &str = "Judge whether the Document meets the requirements based on the Query and the Instruct \
provided. Note that the answer can only be \"yes\" or \"no\".";
const SUFFIX: &str = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";

fn prefix() -> String {
    format!("<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n")
}

/// The pair's text between the prompt's prefix and suffix, up to the document.
fn pair_head(query: &str, instruct: Option<&str>) -> String {
    format!("<Instruct>: {}\n<Query>: {query}\n<Document>: ", instruct.unwrap_or(DEFAULT_TASK))
}

/// The prompt with the default instruction and `{query}` / `{document}` placeholders: the
/// `tokenizer.chat_template.rerank` a reranker GGUF carries for llama.cpp, which formats its
/// pairs with it (and so cannot take another instruction).
pub fn rank_template() -> String {
    format!("{}{}{{document}}{SUFFIX}", prefix(), pair_head("{query}", None))
}

impl Qwen3Tokenizer {
    /// The token ids of one query–document pair as the reranker reads it, at most `max_tokens`.
    /// A longer pair loses the end of its document (as upstream's truncation of the pair's text);
    /// when the prompt, instruction and query leave no room for the document, an error.
    pub fn tokenize_pair(
        &self,
        query: &str,
        document: &str,
        instruct: Option<&str>,
        max_tokens: usize,
        stop: &dyn Cancel,
    ) -> Result<Tokenized> {
        let (pre, suf) = (self.ids(&prefix())?, self.ids(SUFFIX)?);
        let frame = pre.len() + suf.len();
        let head = pair_head(query, instruct);
        let budget = max_tokens.saturating_sub(frame);
        // `encode_until` keeps `budget` text tokens and appends EOS, which the reranker has not.
        let body = self.encode_until(&format!("{head}{document}"), budget + 1, stop)?;
        if body.truncated {
            let head_len = self.ids_until(&head, stop)?.len();
            if head_len >= budget {
                return Err(EngineError::QueryTooLong { tokens: frame + head_len, limit: max_tokens });
            }
        }
        let mut ids = pre;
        ids.extend_from_slice(&body.ids[..body.ids.len() - 1]);
        ids.extend_from_slice(&suf);
        Ok(Tokenized { ids, truncated: body.truncated, full_len: body.full_len - 1 + frame, cut: body.cut })
    }

    /// One rerank call's pairs (`query` with each of `documents`) as token ids, under the
    /// long-input rule and the per-call token budget, as `tokenize_call` does for documents.
    pub fn tokenize_pairs<S: AsRef<str>>(
        &self,
        query: &str,
        documents: &[S],
        instruct: Option<&str>,
        limits: &Limits,
        stop: &dyn Cancel,
    ) -> Result<TokenizedCall> {
        tokenize_each(documents.len(), limits, |i| {
            self.tokenize_pair(query, documents[i].as_ref(), instruct, limits.max_tokens, stop)
        })
    }
}

impl Engine {
    /// The model's task, from its files.
    pub fn task(&self) -> Task {
        self.head().task()
    }

    /// An error unless this model does `task`.
    pub(crate) fn require(&self, task: Task) -> Result<()> {
        let is = self.task();
        if is == task {
            Ok(())
        } else {
            Err(EngineError::WrongTask { path: self.info().path.clone(), is, wanted: task })
        }
    }

    /// P(yes) for each tokenized pair (`Qwen3Tokenizer::tokenize_pair`), pairs packed into
    /// passes of at most `batch_tokens` like documents. `passed(n)` after each pass.
    pub fn rerank_tokens(
        &self,
        seqs: &[Vec<u32>],
        batch_tokens: usize,
        cancel: &dyn Cancel,
        passed: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>> {
        self.require(Task::Rerank)?;
        let Head::Rerank(head) = self.head() else { unreachable!("checked above") };
        self.passes(seqs, batch_tokens, cancel, passed, |_, state| Ok(head.score(state)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_is_upstreams() {
        assert_eq!(
            prefix(),
            "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the \
             Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n"
        );
        assert_eq!(
            pair_head("q", None),
            "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n<Query>: q\n<Document>: "
        );
        // What llama.cpp's converter writes for a Qwen3-Reranker, character for character.
        assert_eq!(
            rank_template(),
            "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the \
             Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n\
             <Instruct>: Given a web search query, retrieve relevant passages that answer the query\n<Query>: {query}\n\
             <Document>: {document}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        );
    }
}
