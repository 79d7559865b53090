//! The one copy of the embedding policy, used by the CLI, the model server and the in-backend
//! host alike: text and instruction → tokens (EOS last) → the long-input rule → the per-call
//! token budget → the dims check → packed forward passes on the backend → the last token's
//! state → MRL truncation → L2 normalization.

use serde::{Deserialize, Serialize};

use crate::cancel::{Cancel, Never};
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::head::Head;
use crate::output::{output_dims, truncate_normalize};
use crate::task::Task;
use crate::tokenizer::{format_input, Qwen3Tokenizer, Tokenized};

/// What an input longer than `Limits::max_tokens` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LongInput {
    /// Keep the first tokens and EOS; the input is reported in `Prepared::truncated`.
    Truncate,
    /// Refuse the call.
    Error,
}

/// The limits one call runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most tokens per input, EOS included.
    pub max_tokens: usize,
    pub long_input: LongInput,
    /// Most tokens of the whole call, after truncation.
    pub max_request_tokens: usize,
    /// The model fingerprints the caller's vectors must come from (the session's pin, the
    /// target column's): another model is an error, so two models' vectors never mix.
    pub expect_fingerprints: Vec<String>,
}

/// Most tokens per input, EOS included, when the caller does not say.
pub const DEFAULT_MAX_TOKENS: usize = 8192;
/// Most tokens per forward pass, when the caller does not say.
pub const DEFAULT_BATCH_TOKENS: usize = 4096;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tokens: DEFAULT_MAX_TOKENS,
            long_input: LongInput::Truncate,
            max_request_tokens: usize::MAX,
            expect_fingerprints: Vec::new(),
        }
    }
}

/// An input cut to the token limit: its position and its length before the cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncation {
    pub index: usize,
    pub full_len: usize,
    /// Only a prefix was tokenized: the input has more than `full_len` tokens.
    #[serde(default)]
    pub more: bool,
}

impl Truncation {
    /// "1234" or "more than 1234".
    pub fn full_len_text(&self) -> String {
        if self.more {
            format!("more than {}", self.full_len)
        } else {
            self.full_len.to_string()
        }
    }
}

/// One call's inputs as token ids under the call's limits: what a caller with only the
/// tokenizer can do (the model server's clients send these).
#[derive(Debug, Clone)]
pub struct TokenizedCall {
    pub seqs: Vec<Vec<u32>>,
    pub truncated: Vec<Truncation>,
}

impl Qwen3Tokenizer {
    /// Token ids for `text` (with the instruction, if any), EOS last, at most `max_tokens`.
    /// An instruction so long that truncation would keep nothing of the text is an error: every
    /// input would get the same vector. `stop` is asked between tokenizing attempts.
    pub fn tokenize_input(
        &self,
        text: &str,
        instruct: Option<&str>,
        max_tokens: usize,
        stop: &dyn Cancel,
    ) -> Result<Tokenized> {
        let t = self.encode_until(&format_input(text, instruct), max_tokens, stop)?;
        if t.truncated && instruct.is_some() {
            let prefix = self.ids_until(&format_input("", instruct), stop)?.len() + 1;
            if prefix >= max_tokens {
                return Err(EngineError::InstructionTooLong { tokens: prefix, limit: max_tokens });
            }
        }
        Ok(t)
    }

    /// `text` split into chunks of at most `chunk_tokens` tokens as the model sees them (EOS
    /// included), consecutive chunks sharing `overlap` tokens. No chunk for a text without tokens.
    /// `stop` is asked between the pieces a long text is tokenized in (then `Cancelled`).
    pub fn chunk(&self, text: &str, chunk_tokens: usize, overlap: usize, stop: &dyn Cancel) -> Result<Vec<String>> {
        if chunk_tokens < 2 || overlap >= chunk_tokens - 1 {
            return Err(EngineError::InvalidChunking { chunk_tokens, overlap });
        }
        let spans = self.windows(text, chunk_tokens - 1, overlap, stop)?;
        Ok(spans.into_iter().map(|(a, b)| text[a..b].to_string()).collect())
    }

    /// Tokenizes one call's inputs under the long-input rule and the per-call token budget.
    pub fn tokenize_call<S: AsRef<str>>(
        &self,
        texts: &[S],
        instruct: Option<&str>,
        limits: &Limits,
        stop: &dyn Cancel,
    ) -> Result<TokenizedCall> {
        tokenize_each(texts.len(), limits, |i| {
            self.tokenize_input(texts[i].as_ref(), instruct, limits.max_tokens, stop)
        })
    }
}

/// `n` inputs tokenized by `one(i)` (each at most `limits.max_tokens`), under the long-input
/// rule and the per-call token budget: the policy every task's inputs go through. The budget is
/// a running total: the call is refused at the first input that passes it, and no later input
/// is tokenized.
pub(crate) fn tokenize_each(
    n: usize,
    limits: &Limits,
    mut one: impl FnMut(usize) -> Result<Tokenized>,
) -> Result<TokenizedCall> {
    let mut seqs = Vec::with_capacity(n);
    let mut truncated = Vec::new();
    let mut tokens = 0usize;
    for index in 0..n {
        let t = one(index)?;
        if t.truncated {
            if limits.long_input == LongInput::Error {
                return Err(EngineError::InputTooLong { tokens: t.full_len_text(), limit: limits.max_tokens });
            }
            truncated.push(Truncation { index, full_len: t.full_len, more: t.cut });
        }
        tokens += t.ids.len();
        if tokens > limits.max_request_tokens {
            let tokens = if index + 1 < n { format!("at least {tokens}") } else { tokens.to_string() };
            return Err(EngineError::RequestTooLarge { tokens, limit: limits.max_request_tokens });
        }
        seqs.push(t.ids);
    }
    Ok(TokenizedCall { seqs, truncated })
}

/// One call's inputs, tokenized and checked: what the forward passes need.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// What the call computes: the model's task, checked when prepared.
    pub task: Task,
    pub seqs: Vec<Vec<u32>>,
    /// Floats per result: the vectors' size, or 1 (a score) for a rerank call.
    pub dims: usize,
    pub truncated: Vec<Truncation>,
}

impl Prepared {
    pub fn tokens(&self) -> usize {
        self.seqs.iter().map(Vec::len).sum()
    }
}

/// Tokens in one call from which the memory it freed is handed back to the system at its end.
const RELEASE_AFTER_TOKENS: usize = 8192;

impl Engine {
    /// `text` split into chunks of at most `chunk_tokens` tokens as the model sees them (EOS
    /// included), consecutive chunks sharing `overlap` tokens. No chunk for a text without tokens.
    /// `stop` is asked between the pieces a long text is tokenized in (then `Cancelled`).
    pub fn chunk(&self, text: &str, chunk_tokens: usize, overlap: usize, stop: &dyn Cancel) -> Result<Vec<String>> {
        self.tokenizer().chunk(text, chunk_tokens, overlap, stop)
    }

    /// Tokenizes one call's inputs and applies every check of the policy: the long-input rule,
    /// the per-call token budget and the output size (`None`: the model's full size).
    pub fn prepare<S: AsRef<str>>(
        &self,
        texts: &[S],
        instruct: Option<&str>,
        dims: Option<usize>,
        limits: &Limits,
    ) -> Result<Prepared> {
        self.prepare_until(texts, instruct, dims, limits, &Never)
    }

    /// As `prepare`; `stop` is asked between tokenizing attempts (then `Cancelled`).
    pub fn prepare_until<S: AsRef<str>>(
        &self,
        texts: &[S],
        instruct: Option<&str>,
        dims: Option<usize>,
        limits: &Limits,
        stop: &dyn Cancel,
    ) -> Result<Prepared> {
        self.check_model(limits)?;
        let dims = output_dims(dims, self.config().hidden)?;
        let call = self.tokenizer().tokenize_call(texts, instruct, limits, stop)?;
        Ok(Prepared { task: Task::Embedding, seqs: call.seqs, dims, truncated: call.truncated })
    }

    /// Token sequences a client tokenized for `task` (`TokenizedCall::seqs`, or pairs from
    /// `Qwen3Tokenizer::tokenize_pair`), checked as `prepare` checks its own: the model's task
    /// (`WrongTask`) and fingerprint, the output size (a rerank call has one score per pair and
    /// ignores `dims`), the per-call budget, ids the model has.
    pub fn prepare_ids(
        &self,
        task: Task,
        seqs: Vec<Vec<u32>>,
        dims: Option<usize>,
        limits: &Limits,
    ) -> Result<Prepared> {
        self.require(task)?;
        self.check_model(limits)?;
        let dims = match task {
            Task::Embedding => output_dims(dims, self.config().hidden)?,
            Task::Rerank => 1,
        };
        self.check_seqs(&seqs, limits.max_tokens)?;
        let p = Prepared { task, seqs, dims, truncated: Vec::new() };
        let tokens = p.tokens();
        if tokens > limits.max_request_tokens {
            return Err(EngineError::RequestTooLarge { tokens: tokens.to_string(), limit: limits.max_request_tokens });
        }
        Ok(p)
    }

    /// Every token id is a row of the embedding table, and no sequence is longer than `max_len`.
    fn check_seqs(&self, seqs: &[Vec<u32>], max_len: usize) -> Result<()> {
        let rows = self.config().vocab_rows;
        if let Some(id) = seqs.iter().flatten().find(|&&id| id as usize >= rows) {
            return Err(EngineError::Encode(format!("token id {id} is past the model's {rows} embedding rows")));
        }
        if let Some(s) = seqs.iter().find(|s| s.len() > max_len) {
            return Err(EngineError::InputTooLong { tokens: s.len().to_string(), limit: max_len });
        }
        Ok(())
    }

    fn check_model(&self, limits: &Limits) -> Result<()> {
        let loaded = &self.info().fingerprint;
        match limits.expect_fingerprints.iter().find(|e| !e.trim().eq_ignore_ascii_case(loaded)) {
            Some(expected) => Err(EngineError::ModelMismatch { loaded: loaded.clone(), expected: expected.clone() }),
            None => Ok(()),
        }
    }

    /// The results of prepared calls, run together in forward passes of at most `batch_tokens`
    /// tokens (a longer sequence runs alone; a pass may hold several calls' sequences): one list
    /// per call, in input order, through the model's head. For an embedding call its vectors
    /// (`dims` long, unit length); for a rerank call one `vec![score]` per pair, P(yes). Every
    /// call must be for this model's task (`WrongTask`).
    pub fn run_prepared(
        &self,
        calls: &[&Prepared],
        batch_tokens: usize,
        cancel: &dyn Cancel,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        for p in calls {
            self.require(p.task)?;
            if p.task == Task::Embedding {
                output_dims(Some(p.dims), self.config().hidden)?;
            }
        }
        let seqs: Vec<Vec<u32>> = calls.iter().flat_map(|p| p.seqs.iter().cloned()).collect();
        let dims: Vec<usize> = calls.iter().flat_map(|p| std::iter::repeat_n(p.dims, p.seqs.len())).collect();
        let head = self.head();
        let mut results = self
            .passes(&seqs, batch_tokens, cancel, &mut |_| {}, |i, state| match head {
                Head::Embedding => truncate_normalize(state, dims[i]),
                Head::Rerank(h) => Ok(vec![h.score(state)]),
            })?
            .into_iter();
        Ok(calls.iter().map(|p| results.by_ref().take(p.seqs.len()).collect()).collect())
    }

    /// Embeds token sequences (each ending in EOS, as `tokenize` makes them), packing them into
    /// forward passes of at most `batch_tokens` tokens (a longer sequence runs alone).
    /// Results are in input order, `dims` long (the full size when `None`), unit length.
    pub fn embed_tokens(
        &self,
        seqs: &[Vec<u32>],
        dims: Option<usize>,
        batch_tokens: usize,
        cancel: &dyn Cancel,
    ) -> Result<Vec<Vec<f32>>> {
        self.embed_tokens_reporting(seqs, dims, batch_tokens, cancel, &mut |_| {})
    }

    /// As `embed_tokens`, calling `passed(n)` after each forward pass with the number of
    /// sequences it embedded (a progress bar).
    pub fn embed_tokens_reporting(
        &self,
        seqs: &[Vec<u32>],
        dims: Option<usize>,
        batch_tokens: usize,
        cancel: &dyn Cancel,
        passed: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let dims = output_dims(dims, self.config().hidden)?;
        self.embed_tokens_each(seqs, &vec![dims; seqs.len()], batch_tokens, cancel, passed)
    }

    /// As `embed_tokens_reporting`, with an output size per sequence and a stop test run before
    /// every layer. Each vector depends only on how the sequences fall into forward passes, so
    /// the same packing gives the same bits.
    pub fn embed_tokens_each(
        &self,
        seqs: &[Vec<u32>],
        dims: &[usize],
        batch_tokens: usize,
        cancel: &dyn Cancel,
        passed: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        assert_eq!(seqs.len(), dims.len());
        self.require(Task::Embedding)?;
        for &d in dims {
            output_dims(Some(d), self.config().hidden)?;
        }
        self.passes(seqs, batch_tokens, cancel, passed, |i, state| truncate_normalize(state, dims[i]))
    }

    /// The trunk over token sequences packed into forward passes of at most `batch_tokens`
    /// (a longer sequence alone), in order: `head(i, state)` for sequence `i`'s last-token
    /// final-norm state, `passed(n)` after each pass.
    pub(crate) fn passes<T>(
        &self,
        seqs: &[Vec<u32>],
        batch_tokens: usize,
        cancel: &dyn Cancel,
        passed: &mut dyn FnMut(usize),
        mut head: impl FnMut(usize, &[f32]) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.check_seqs(seqs, self.config().max_positions)?;
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
            let states = self.backend().forward(&batch, cancel)?;
            for (i, state) in (start..end).zip(&states) {
                out.push(head(i, state)?);
            }
            passed(end - start);
            start = end;
        }
        if seqs.iter().map(Vec::len).sum::<usize>() >= RELEASE_AFTER_TOKENS {
            crate::files::release_free_memory();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(tokens: usize) -> Tokenized {
        Tokenized { ids: vec![7; tokens], truncated: false, full_len: tokens, cut: false }
    }

    #[test]
    fn the_budget_refuses_at_the_first_input_past_it() {
        // 8,000-token inputs (an 8,000-token instruction each) under 262,144 tokens a call.
        let limits = Limits { max_request_tokens: 262_144, ..Limits::default() };
        let mut asked = 0;
        let r = tokenize_each(2000, &limits, |_| {
            asked += 1;
            Ok(input(8000))
        });
        assert_eq!(asked, 33, "no input after the one that passes the budget is tokenized");
        match r {
            Err(e @ EngineError::RequestTooLarge { .. }) => assert_eq!(
                e.to_string(),
                "this call has at least 264000 tokens in all, more than the limit of 262144 per call"
            ),
            r => panic!("{r:?}"),
        }
        // Passed by the last input, the total is exact; at the limit, the call runs.
        let r = tokenize_each(3, &Limits { max_request_tokens: 299, ..Limits::default() }, |_| Ok(input(100)));
        assert!(matches!(r, Err(EngineError::RequestTooLarge { ref tokens, limit: 299 }) if tokens == "300"), "{r:?}");
        let call =
            tokenize_each(3, &Limits { max_request_tokens: 300, ..Limits::default() }, |_| Ok(input(100))).unwrap();
        assert_eq!(call.seqs.len(), 3);
    }
}
