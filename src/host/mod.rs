//! Where the engine runs: in the model server when there is one (see `server`), else in the
//! calling backend. Both give the same SQL-visible results: same vectors, scores, notices and
//! errors.
//!
//! Every call that needs a model is one `Work`: its task, its inputs and the settings it runs
//! under. `run` tokenizes it in this backend and hands the token ids to the model of its task,
//! here or in the server; a new SQL function builds a `Work` and reads the rows it gets back.

mod local;
mod offthread;
mod remote;
pub mod server;

use std::sync::{Arc, Mutex};

pub use qwen3_embed_engine::serve::InfoSummary;
use qwen3_embed_engine::{Cancel, Limits, Qwen3Tokenizer, Task, TokenizedCall};
pub use remote::server_stats;

use crate::settings;

/// One call's inputs for the model of its task.
#[derive(Debug, Clone)]
pub struct Work {
    pub task: Task,
    /// Documents to embed, or to score against `query`.
    pub texts: Vec<String>,
    pub query: Option<String>,
    pub instruct: Option<String>,
    /// Output size of an embedding (`None`: the model's full size).
    pub dims: Option<usize>,
    /// The fingerprint of the model the target column's vectors came from, which the loaded
    /// model must be.
    pub column: Option<String>,
}

impl Work {
    pub fn embed(texts: &[&str], instruct: Option<&str>, dims: Option<usize>, column: Option<&str>) -> Work {
        Work {
            task: Task::Embedding,
            texts: texts.iter().map(|t| t.to_string()).collect(),
            query: None,
            instruct: instruct.map(str::to_string),
            dims,
            column: column.map(str::to_string),
        }
    }

    pub fn rerank(query: &str, documents: &[&str], instruct: Option<&str>) -> Work {
        Work {
            task: Task::Rerank,
            texts: documents.iter().map(|t| t.to_string()).collect(),
            query: Some(query.to_string()),
            instruct: instruct.map(str::to_string),
            dims: None,
            column: None,
        }
    }

    /// The model file of the task's setting.
    fn model_path(&self) -> String {
        match self.task {
            Task::Embedding => settings::model_path_or_raise(),
            Task::Rerank => settings::reranker_path_or_raise(),
        }
    }

    /// The session's limits; a fingerprint pin is the embedder's, so a rerank has none.
    fn limits(&self) -> Limits {
        match self.task {
            Task::Embedding => settings::limits_for(self.column.as_deref()),
            Task::Rerank => Limits { expect_fingerprints: Vec::new(), ..settings::limits() },
        }
    }

    /// The inputs as the model reads them, under the long-input rule and the per-call budget.
    fn tokenize(
        &self,
        tok: &Qwen3Tokenizer,
        limits: &Limits,
        stop: &dyn Cancel,
    ) -> qwen3_embed_engine::Result<TokenizedCall> {
        match self.task {
            Task::Embedding => tok.tokenize_call(&self.texts, self.instruct.as_deref(), limits, stop),
            Task::Rerank => tok.tokenize_pairs(
                self.query.as_deref().unwrap_or_default(),
                &self.texts,
                self.instruct.as_deref(),
                limits,
                stop,
            ),
        }
    }
}

/// The query cache's bound for `work`, when its result may come from the cache and go into
/// it: one text to embed, for no registered column (a trigger, a sync, a re-embedding), while
/// no statement but a SELECT runs. A document being written is embedded while its INSERT,
/// UPDATE or COPY runs; a query's text is a constant that the planner folds before any
/// statement runs, or a SELECT's value.
fn query_cache_bytes(work: &Work) -> Option<u64> {
    let max = settings::query_cache_bytes();
    let one_query = work.task == Task::Embedding && work.texts.len() == 1 && work.column.is_none();
    (max > 0 && one_query && no_write_running()).then_some(max)
}

/// Whose cached queries this call may be answered from: the current role's.
fn query_cache_scope() -> u32 {
    // SAFETY: reads this backend's current user id.
    unsafe { pgrx::pg_sys::GetUserId().to_u32() }
}

/// Whether the statement this backend runs for its client is a SELECT: the running portal's
/// command, or while none runs (the planner folding a constant) the statement's first word.
fn no_write_running() -> bool {
    // SAFETY: reads this backend's own portal pointer and, when set, its command tag; else the
    // text of the statement it is planning, a C string Postgres keeps while it runs.
    unsafe {
        let portal = pgrx::pg_sys::ActivePortal;
        if !portal.is_null() {
            return (*portal).commandTag == pgrx::pg_sys::CommandTag::CMDTAG_SELECT;
        }
        let text = pgrx::pg_sys::debug_query_string;
        !text.is_null() && starts_with_select(std::ffi::CStr::from_ptr(text).to_bytes())
    }
}

fn starts_with_select(sql: &[u8]) -> bool {
    let start = sql.iter().position(|b| !b.is_ascii_whitespace() && *b != b'(').unwrap_or(sql.len());
    sql[start..].get(..6).is_some_and(|w| w.eq_ignore_ascii_case(b"select"))
}

/// The query cache of this backend, for calls that run here (`use_server = off`, or no server).
static QUERY_CACHE: std::sync::LazyLock<qwen3_embed_engine::query_cache::QueryCache> =
    std::sync::LazyLock::new(Default::default);

/// What the query cache that serves this session holds, and how often it answered:
/// "server" or "backend" with its figures.
pub fn query_cache_stats() -> (&'static str, Option<qwen3_embed_engine::query_cache::QueryCacheStats>) {
    if in_server() {
        ("server", remote::server_stats().1.map(|s| s.query_cache))
    } else {
        ("backend", Some(QUERY_CACHE.stats()))
    }
}

/// The NOTICE for an input cut to `qwen3_embed.max_tokens`, the same in both modes.
fn notice_truncated(t: &qwen3_embed_engine::Truncation, max: usize) {
    let full = t.full_len_text();
    pgrx::notice!("qwen3_embed: input of {full} tokens truncated to {max} (qwen3_embed.max_tokens)");
}

fn in_server() -> bool {
    server::registered() && settings::use_server()
}

/// The outputs of `work`, one per input in input order: an embedding, or `[score]`.
pub fn run(work: &Work) -> Vec<Vec<f32>> {
    if work.texts.is_empty() {
        return Vec::new();
    }
    if in_server() {
        remote::run(work)
    } else {
        local::run(work)
    }
}

/// Embeddings of `texts` (with `instruct`), `dims` long (the full size when `None`), in
/// input order. Inputs over `qwen3_embed.max_tokens` get a NOTICE or an ERROR, as
/// `qwen3_embed.on_long_input` says. `column`: the fingerprint of the model the target column's
/// vectors came from, which the loaded model must be.
pub fn embed(texts: &[&str], instruct: Option<&str>, dims: Option<usize>, column: Option<&str>) -> Vec<Vec<f32>> {
    run(&Work::embed(texts, instruct, dims, column))
}

/// The reranker's P(yes) for `query` with each of `documents`, in input order.
pub fn rerank(query: &str, documents: &[&str], instruct: Option<&str>) -> Vec<f32> {
    run(&Work::rerank(query, documents, instruct)).into_iter().map(|s| s[0]).collect()
}

/// `text` in chunks of at most `chunk_tokens` tokens overlapping by `overlap`.
pub fn chunk(text: &str, chunk_tokens: usize, overlap: usize) -> Vec<String> {
    if in_server() {
        remote::chunk(text, chunk_tokens, overlap)
    } else {
        local::chunk(text, chunk_tokens, overlap)
    }
}

/// Token ids of one input, end-of-text last, never truncated.
pub fn tokenize(text: &str, instruct: Option<&str>) -> Vec<u32> {
    if in_server() {
        remote::tokenize(text, instruct)
    } else {
        local::tokenize(text, instruct)
    }
}

/// The model of `task` (loading it if needed) and where it runs: "server" or "backend".
pub fn info(task: Task) -> (InfoSummary, &'static str) {
    let path = match task {
        Task::Embedding => settings::model_path_or_raise(),
        Task::Rerank => settings::reranker_path_or_raise(),
    };
    if in_server() {
        (remote::info(path), "server")
    } else {
        (local::info(path), "backend")
    }
}

/// What a backend keeps loaded per model: the embedder and the reranker at most, so that
/// alternating calls never reload.
const KEPT: usize = 2;

/// The value kept for `key` in `slot`, or the one `load` makes (dropping the least recently
/// used beyond `KEPT` first, so that no more than that sit in memory together).
fn kept<K: PartialEq, V>(slot: &Mutex<Vec<(K, Arc<V>)>>, key: K, load: impl FnOnce() -> V) -> Arc<V> {
    let mut kept = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = kept.iter().position(|(k, _)| *k == key) {
        let hit = kept.remove(i);
        let v = hit.1.clone();
        kept.push(hit);
        return v;
    }
    while kept.len() >= KEPT {
        kept.remove(0);
    }
    drop(kept);
    let v = Arc::new(load());
    let mut kept = slot.lock().unwrap_or_else(|p| p.into_inner());
    while kept.len() >= KEPT {
        kept.remove(0);
    }
    kept.push((key, v.clone()));
    v
}
