//! The SQL functions. Each one: argument checks, then the host's engine, then a `vector`.

use std::sync::Arc;

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;
use qwen3_embed_engine::{Engine, EngineError, DEFAULT_TASK};

use crate::errors::{raise, raise_with, OrRaise};
use crate::host::{self, run_cancellable};
use crate::settings::{self, LongInput};
use crate::vector::Vector;

fn check_dims(dims: Option<i32>) -> Option<usize> {
    match dims {
        None => None,
        Some(d) if d < 0 => raise_with(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("qwen3_embed: dims must be between 32 and the model's size, got {d}"),
            "Pass dims between 32 and the model's size, or NULL for the full size.",
        ),
        Some(d) => Some(d as usize),
    }
}

/// Token ids the model sees for one input, after the long-input policy.
fn tokens_for(engine: &Engine, text: &str, instruct: Option<&str>) -> Vec<u32> {
    let max = settings::max_tokens();
    let t = engine.tokenize(text, instruct, max).or_raise();
    if t.truncated {
        match settings::on_long_input() {
            LongInput::Truncate => pgrx::notice!(
                "qwen3_embed: input of {} tokens truncated to {max} (qwen3_embed.max_tokens)",
                t.full_len
            ),
            LongInput::Error => raise(EngineError::InputTooLong { tokens: t.full_len, limit: max }),
        }
    }
    t.ids
}

/// Embeds token sequences off the backend thread, cancellable, in input order.
fn embed_seqs(engine: Arc<Engine>, seqs: Vec<Vec<u32>>, dims: Option<usize>) -> Vec<Vec<f32>> {
    if seqs.is_empty() {
        return Vec::new();
    }
    let hidden = engine.config().hidden;
    qwen3_embed_engine::pool::check_dims(dims, hidden).or_raise();
    let budget = settings::batch_tokens();
    run_cancellable(move |cancel| engine.embed_tokens(&seqs, dims, budget, cancel)).or_raise()
}

fn embed_one(input: &str, instruct: Option<&str>, dims: Option<i32>) -> Vector {
    let dims = check_dims(dims);
    let engine = host::engine().engine;
    let ids = tokens_for(&engine, input, instruct);
    let mut out = embed_seqs(engine, vec![ids], dims);
    Vector(out.pop().expect("one vector per input"))
}

/// The embedding of `input`, formatted as `Instruct: {instruct}\nQuery:{input}` when an
/// instruction is given; `dims` (MRL) defaults to the model's full size. NULL input gives NULL.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_embed(
    input: Option<&str>,
    instruct: default!(Option<&str>, "NULL"),
    dims: default!(Option<i32>, "NULL"),
) -> Option<Vector> {
    Some(embed_one(input?, instruct, dims))
}

/// A search query's embedding, with the upstream default retrieval task unless told otherwise.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_embed_query(
    query: Option<&str>,
    task: default!(
        Option<&str>,
        "'Given a web search query, retrieve relevant passages that answer the query'"
    ),
    dims: default!(Option<i32>, "NULL"),
) -> Option<Vector> {
    Some(embed_one(query?, task, dims))
}

/// A document's embedding: no instruction, as upstream.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_embed_document(doc: Option<&str>, dims: default!(Option<i32>, "NULL")) -> Option<Vector> {
    Some(embed_one(doc?, None, dims))
}

/// Embeds many inputs in as few forward passes as `qwen3_embed.batch_tokens` allows; one row
/// per input, in input order (`ord` from 1), NULL inputs giving NULL embeddings.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_embed_batch(
    inputs: Option<Array<&str>>,
    instruct: default!(Option<&str>, "NULL"),
    dims: default!(Option<i32>, "NULL"),
) -> TableIterator<'static, (name!(ord, i32), name!(embedding, Option<Vector>))> {
    let Some(inputs) = inputs else {
        return TableIterator::new(Vec::new());
    };
    let dims = check_dims(dims);
    let texts: Vec<Option<String>> = inputs.iter().map(|t| t.map(str::to_string)).collect();
    if texts.iter().all(Option::is_none) {
        let rows: Vec<_> = (1..=texts.len() as i32).map(|i| (i, None)).collect();
        return TableIterator::new(rows);
    }
    let engine = host::engine().engine;
    let seqs: Vec<Vec<u32>> = texts
        .iter()
        .flatten()
        .map(|t| tokens_for(&engine, t, instruct))
        .collect();
    let mut vectors = embed_seqs(engine, seqs, dims).into_iter();
    let rows: Vec<_> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (i as i32 + 1, t.as_ref().map(|_| Vector(vectors.next().expect("vector")))))
        .collect();
    TableIterator::new(rows)
}

/// Tokens the model sees for `input` (with `instruct`), the appended end-of-text included,
/// before any truncation.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_token_count(input: Option<&str>, instruct: default!(Option<&str>, "NULL")) -> Option<i32> {
    let engine = host::engine().engine;
    let t = engine.tokenize(input?, instruct, usize::MAX).or_raise();
    Some(t.ids.len() as i32)
}

/// The token ids the model sees for `input` (with `instruct`), end-of-text last, before any
/// truncation.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_tokenize(input: Option<&str>, instruct: default!(Option<&str>, "NULL")) -> Option<Vec<i32>> {
    let engine = host::engine().engine;
    let t = engine.tokenize(input?, instruct, usize::MAX).or_raise();
    Some(t.ids.into_iter().map(|i| i as i32).collect())
}

/// The loaded model (loading it if needed) and where it runs.
#[pg_extern(volatile, parallel_safe)]
#[allow(clippy::type_complexity)]
fn qwen3_embed_info() -> TableIterator<
    'static,
    (
        name!(model_path, String),
        name!(format, String),
        name!(architecture, String),
        name!(parameters, i64),
        name!(tensor_types, String),
        name!(hidden_size, i32),
        name!(max_dims, i32),
        name!(vocab_size, i32),
        name!(device, String),
        name!(threads, i32),
        name!(fingerprint, String),
        name!(load_ms, f64),
        name!(runs_in, String),
    ),
> {
    let loaded = host::engine();
    let i = loaded.engine.info();
    let types = i
        .tensor_types
        .iter()
        .map(|(t, n)| format!("{t}:{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    TableIterator::once((
        i.path.display().to_string(),
        i.format.to_string(),
        i.architecture.to_string(),
        i.parameter_count as i64,
        types,
        i.config.hidden as i32,
        i.config.hidden as i32,
        i.config.vocab_rows as i32,
        i.device.to_string(),
        i.threads as i32,
        i.fingerprint.clone(),
        i.load_time.as_secs_f64() * 1000.0,
        loaded.runs_in.to_string(),
    ))
}

/// The upstream default retrieval task, for building queries by hand.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_embed_default_task() -> &'static str {
    DEFAULT_TASK
}
