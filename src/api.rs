//! The SQL functions. Each one: argument checks, then the host's engine, then a `vector`.

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;
use qwen3_embed_engine::DEFAULT_TASK;

use crate::errors::raise_with;
use crate::host;
use crate::text::{opt, DbText};
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

fn embed_one(input: &str, instruct: Option<&str>, dims: Option<i32>) -> Vector {
    let dims = check_dims(dims);
    let mut out = host::embed(&[input], instruct, dims, None);
    Vector(out.pop().expect("one vector per input"))
}

/// The embedding of `input`, formatted as `Instruct: {instruct}\nQuery:{input}` when an
/// instruction is given; `dims` (MRL) defaults to the model's full size. NULL input gives NULL.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_embed(
    input: Option<DbText>,
    instruct: default!(Option<DbText>, "NULL"),
    dims: default!(Option<i32>, "NULL"),
) -> Option<Vector> {
    Some(embed_one(input?.as_str(), opt(&instruct), dims))
}

/// A search query's embedding, with the upstream default retrieval task unless told otherwise.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_embed_query(
    query: Option<DbText>,
    task: default!(Option<DbText>, "'Given a web search query, retrieve relevant passages that answer the query'"),
    dims: default!(Option<i32>, "NULL"),
) -> Option<Vector> {
    Some(embed_one(query?.as_str(), opt(&task), dims))
}

/// A document's embedding: no instruction, as upstream.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_embed_document(doc: Option<DbText>, dims: default!(Option<i32>, "NULL")) -> Option<Vector> {
    Some(embed_one(doc?.as_str(), None, dims))
}

/// Embeds many inputs in as few forward passes as `qwen3_embed.batch_tokens` allows; one row
/// per input, in input order (`ord` from 1), NULL inputs giving NULL embeddings.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_embed_batch(
    inputs: Option<Array<DbText>>,
    instruct: default!(Option<DbText>, "NULL"),
    dims: default!(Option<i32>, "NULL"),
) -> TableIterator<'static, (name!(ord, i32), name!(embedding, Option<Vector>))> {
    embed_batch(inputs, opt(&instruct), dims, None)
}

/// `qwen3_embed_batch` for a column whose vectors came from the model with `fingerprint`: any
/// other loaded model is an error (what the trigger, the re-embedding and the sync queue call).
#[pg_extern(volatile, parallel_safe, schema = "qwen3_embed")]
fn qwen3_embed_batch_for_column(
    inputs: Option<Array<DbText>>,
    instruct: Option<DbText>,
    dims: Option<i32>,
    fingerprint: Option<DbText>,
) -> TableIterator<'static, (name!(ord, i32), name!(embedding, Option<Vector>))> {
    embed_batch(inputs, opt(&instruct), dims, opt(&fingerprint))
}

fn embed_batch(
    inputs: Option<Array<DbText>>,
    instruct: Option<&str>,
    dims: Option<i32>,
    column: Option<&str>,
) -> TableIterator<'static, (name!(ord, i32), name!(embedding, Option<Vector>))> {
    let Some(inputs) = inputs else {
        return TableIterator::new(Vec::new());
    };
    let dims = check_dims(dims);
    let texts = flat_texts(inputs, "qwen3_embed_batch: inputs");
    if texts.iter().all(Option::is_none) {
        let rows: Vec<_> = (1..=texts.len() as i32).map(|i| (i, None)).collect();
        return TableIterator::new(rows);
    }
    let present: Vec<&str> = texts.iter().flatten().map(String::as_str).collect();
    let mut vectors = host::embed(&present, instruct, dims, column).into_iter();
    let rows: Vec<_> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (i as i32 + 1, t.as_ref().map(|_| Vector(vectors.next().expect("vector")))))
        .collect();
    TableIterator::new(rows)
}

/// The elements of a one-dimensional text array (`what` names it in the error for any other).
pub(crate) fn flat_texts(inputs: Array<DbText>, what: &str) -> Vec<Option<String>> {
    let texts: Vec<Option<String>> = inputs.iter().map(|t| t.map(|t| t.0)).collect();
    // SAFETY: the array was detoasted by pgrx into memory of this call's context; only its
    // header is read.
    let ndim = unsafe { (*inputs.into_array_type()).ndim };
    if ndim > 1 {
        raise_with(
            Code::ERRCODE_ARRAY_ELEMENT_ERROR, // 2202E, array_subscript_error
            format!("{what} must be a one-dimensional array, got {ndim} dimensions"),
            "Pass a flat text[]; to use every element of a multi-dimensional array, flatten it first: ARRAY(SELECT unnest(a)).",
        );
    }
    texts
}

/// Tokens the model sees for `input` (with `instruct`), the appended end-of-text included,
/// before any truncation.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_token_count(input: Option<DbText>, instruct: default!(Option<DbText>, "NULL")) -> Option<i32> {
    Some(host::tokenize(input?.as_str(), opt(&instruct)).len() as i32)
}

/// The token ids the model sees for `input` (with `instruct`), end-of-text last, before any
/// truncation.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_tokenize(input: Option<DbText>, instruct: default!(Option<DbText>, "NULL")) -> Option<Vec<i32>> {
    Some(host::tokenize(input?.as_str(), opt(&instruct)).into_iter().map(|i| i as i32).collect())
}

/// `input` split into chunks of at most `chunk_tokens` tokens as the model sees them (the
/// end-of-text included), consecutive chunks sharing `overlap` tokens; `chunk_no` from 1.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_chunks(
    input: Option<DbText>,
    chunk_tokens: default!(Option<i32>, 512),
    overlap: default!(Option<i32>, 64),
) -> TableIterator<'static, (name!(chunk_no, i32), name!(chunk, DbText))> {
    let (Some(chunk_tokens), Some(overlap)) = (chunk_tokens, overlap) else {
        raise_with(
            Code::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            "qwen3_chunks: chunk_tokens and overlap must not be NULL".into(),
            "Leave them out for the defaults (512 and 64), or give numbers.",
        );
    };
    let Some(input) = input else {
        return TableIterator::new(Vec::new());
    };
    if chunk_tokens < 2 || overlap < 0 || overlap >= chunk_tokens - 1 {
        raise_with(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("qwen3_chunks: chunk_tokens must be at least 2 and overlap between 0 and chunk_tokens - 2, got {chunk_tokens} and {overlap}"),
            "For example qwen3_chunks(body, 512, 64).",
        );
    }
    let chunks = host::chunk(input.as_str(), chunk_tokens as usize, overlap as usize);
    TableIterator::new(chunks.into_iter().enumerate().map(|(i, c)| (i as i32 + 1, DbText(c))).collect::<Vec<_>>())
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
        name!(device_reason, String),
        name!(backend, String),
        name!(cache, String),
        name!(cache_file, Option<String>),
        name!(cache_bytes, i64),
        name!(build, String),
        name!(task, String),
    ),
> {
    let (i, runs_in) = host::info(qwen3_embed_engine::Task::Embedding);
    let paths = PathView::for_caller();
    TableIterator::once((
        paths.show(i.path),
        i.format,
        i.architecture,
        i.parameters as i64,
        i.tensor_types,
        i.hidden as i32,
        i.hidden as i32,
        i.vocab_rows as i32,
        i.device,
        i.threads as i32,
        i.fingerprint,
        i.load_ms,
        runs_in.to_string(),
        i.device_reason,
        i.backend,
        i.cache,
        i.cache_file.map(|f| paths.show(f)),
        i.cache_bytes as i64,
        crate::BUILD_PROFILE.to_string(),
        i.task,
    ))
}

/// The model server: whether it runs, and its counters since its process started.
#[pg_extern(volatile, parallel_safe)]
#[allow(clippy::type_complexity)]
fn qwen3_embed_server_stats() -> TableIterator<
    'static,
    (
        name!(state, String),
        name!(pid, Option<i32>),
        name!(restarts, Option<i64>),
        name!(uptime_s, Option<f64>),
        name!(model_path, Option<String>),
        name!(model_load_ms, Option<f64>),
        name!(requests, Option<i64>),
        name!(withdrawn, Option<i64>),
        name!(inputs, Option<i64>),
        name!(tokens, Option<i64>),
        name!(batches, Option<i64>),
        name!(mean_batch_size, Option<f64>),
        name!(queue_depth, Option<i32>),
        name!(tokens_per_second, Option<f64>),
        name!(last_error, Option<String>),
        name!(model_loads, Option<i64>),
        name!(loading, Option<String>),
        name!(tokens_in_flight, Option<i64>),
        name!(max_tokens_in_flight, Option<i64>),
        name!(cache, Option<String>),
        name!(cache_file, Option<String>),
        name!(cache_bytes, Option<i64>),
        name!(query_cache_hits, Option<i64>),
        name!(query_cache_misses, Option<i64>),
    ),
> {
    let (state, stats, unreachable) = host::server_stats();
    // Errors name other sessions' model paths and files: only superusers see them.
    // SAFETY: superuser() reads this backend's current role.
    let privileged = unsafe { pgrx::pg_sys::superuser() };
    let hide = |e: Option<String>| if privileged { e } else { e.map(|_| HIDDEN.to_string()) };
    let Some(s) = stats else {
        return TableIterator::once((
            state.to_string(),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            hide(unreachable),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ));
    };
    let paths = PathView::for_caller();
    let mean = (s.batches > 0).then(|| s.requests as f64 / s.batches as f64);
    let cache_bytes = s.cache.is_some().then_some(s.cache_bytes as i64);
    let tps = (s.busy_s > 0.0).then(|| s.tokens as f64 / s.busy_s);
    TableIterator::once((
        state.to_string(),
        Some(s.pid as i32),
        Some(s.restarts as i64),
        Some(s.uptime_s),
        s.model_path.map(|p| paths.show(p)),
        s.model_load_ms,
        Some(s.requests as i64),
        Some(s.withdrawn as i64),
        Some(s.inputs as i64),
        Some(s.tokens as i64),
        Some(s.batches as i64),
        mean,
        Some(s.queue_depth as i32),
        tps,
        hide(s.last_error),
        Some(s.model_loads as i64),
        s.loading,
        Some(s.tokens_in_flight as i64),
        Some(s.max_tokens_in_flight as i64),
        s.cache,
        s.cache_file.map(|f| paths.show(f)),
        cache_bytes,
        Some(s.query_cache.hits as i64),
        Some(s.query_cache.misses as i64),
    ))
}

/// The query cache that serves this session's queries: the model server's, or without it
/// this backend's; what it holds, its bound, and how often it answered.
#[pg_extern(volatile, parallel_safe)]
#[allow(clippy::type_complexity)]
fn qwen3_embed_query_cache() -> TableIterator<
    'static,
    (
        name!(runs_in, String),
        name!(entries, Option<i64>),
        name!(bytes, Option<i64>),
        name!(max_bytes, Option<i64>),
        name!(hits, Option<i64>),
        name!(misses, Option<i64>),
    ),
> {
    let (runs_in, stats) = host::query_cache_stats();
    let n = |v: u64| Some(v as i64);
    let row = match stats {
        Some(s) => (runs_in.to_string(), n(s.entries), n(s.bytes), n(s.max_bytes), n(s.hits), n(s.misses)),
        None => (runs_in.to_string(), None, None, None, None, None),
    };
    TableIterator::once(row)
}

const HIDDEN: &str = "(hidden: only superusers see the model server's errors)";

/// Server file paths (models, the packed-weight cache) in full for superusers and members of
/// pg_read_server_files, as `qwen3_embed_cache_files()`; other roles see the file's name.
struct PathView {
    full: bool,
}

impl PathView {
    fn for_caller() -> Self {
        // SAFETY: privilege checks of this backend's current role.
        let full = unsafe {
            pgrx::pg_sys::superuser()
                || pgrx::pg_sys::has_privs_of_role(
                    pgrx::pg_sys::GetUserId(),
                    pgrx::pg_sys::Oid::from(pgrx::pg_sys::ROLE_PG_READ_SERVER_FILES),
                )
        };
        PathView { full }
    }

    fn show(&self, path: String) -> String {
        if self.full {
            return path;
        }
        match std::path::Path::new(&path).file_name() {
            Some(name) => format!(".../{}", name.to_string_lossy()),
            None => path,
        }
    }
}

/// The models resident in the model server now (none when it does not run), least recently
/// used first, and the memory they may take together (`qwen3_embed.server_model_memory`).
#[pg_extern(volatile, parallel_safe)]
#[allow(clippy::type_complexity)]
fn qwen3_embed_server_models() -> TableIterator<
    'static,
    (
        name!(model_path, String),
        name!(device, String),
        name!(task, String),
        name!(bytes, i64),
        name!(load_ms, f64),
        name!(requests, i64),
        name!(idle_s, f64),
        name!(max_bytes, Option<i64>),
    ),
> {
    let (_, stats, _) = host::server_stats();
    let Some(s) = stats else {
        return TableIterator::new(Vec::new());
    };
    // u64::MAX: no limit.
    let max = i64::try_from(s.max_model_bytes).ok();
    let paths = PathView::for_caller();
    TableIterator::new(
        s.models
            .into_iter()
            .map(|m| {
                (paths.show(m.path), m.device, m.task, m.bytes as i64, m.load_ms, m.requests as i64, m.idle_s, max)
            })
            .collect::<Vec<_>>(),
    )
}

/// The upstream default retrieval task, for building queries by hand.
#[pg_extern(immutable, parallel_safe)]
fn qwen3_embed_default_task() -> &'static str {
    DEFAULT_TASK
}

/// Raises 2D000 when the statement runs inside a transaction block: the procedures that COMMIT
/// after every batch (`what`) call it first, before any work, so that a migration tool's
/// transaction is told what to use instead.
#[pg_extern(volatile, parallel_unsafe, schema = "qwen3_embed")]
fn qwen3_embed_outside_transaction(what: DbText) {
    // SAFETY: reads this backend's transaction state.
    if !unsafe { pg_sys::IsTransactionBlock() } {
        return;
    }
    let what = what.as_str();
    let hint = if what == "qwen3_embed_migrate_dims" {
        "Run it outside a transaction block: in Alembic inside op.get_context().autocommit_block(), in Django in a \
         migration with atomic = False. A column of type vector (no size) changes size inside a transaction with \
         qwen3_embed_reembed_later(..., dims => n)."
    } else {
        "Migration tools (Alembic, Django, Rails, Flyway) run each migration in a transaction; there, \
         SELECT qwen3_embed_reembed_later(relation, source_column, target_column) has the sync workers re-embed the \
         column and returns at once."
    };
    raise_with(
        Code::ERRCODE_INVALID_TRANSACTION_TERMINATION,
        format!("{what}: it commits after every batch, so it cannot run inside a transaction block"),
        hint,
    );
}
