//! Calls into the model server, from a backend: the session's settings go with each request,
//! and the statement can be cancelled while it waits (the server then drops the request).

use std::path::Path;
use std::time::Duration;

use qwen3_embed_engine::serve::{self, wire, InfoSummary, ModelKey, Reply, Request, Stats};
use qwen3_embed_engine::EngineError;

use crate::errors::raise;
use crate::host::notice_truncated;
use crate::host::offthread::cancel_requested;
use crate::host::server::{self, SOCKET};
use crate::settings::{self, LongInput};

/// How long a call waits for the server to (re)appear, e.g. after its process died.
const CONNECT_WAIT: Duration = Duration::from_secs(30);

fn key() -> ModelKey {
    ModelKey { path: settings::model_path_or_raise(), device: settings::device(), threads: settings::server_threads() }
}

/// The wait event this backend shows in `pg_stat_activity` while it waits on the model server:
/// from PostgreSQL 17, a custom one named `Qwen3EmbedModelServer` (type `Extension`); before,
/// the generic `Extension` event.
#[cfg(any(feature = "pg17", feature = "pg18"))]
fn server_wait_event() -> u32 {
    static EVENT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    // SAFETY: called on the backend's own thread; the name is a static C string. The first call
    // in a cluster registers the name in shared memory, later ones look it up.
    *EVENT.get_or_init(|| unsafe { pgrx::pg_sys::WaitEventExtensionNew(c"Qwen3EmbedModelServer".as_ptr()) })
}

#[cfg(not(any(feature = "pg17", feature = "pg18")))]
fn server_wait_event() -> u32 {
    pgrx::pg_sys::PG_WAIT_EXTENSION
}

/// Shows `server_wait_event()` from creation until dropped (`pgstat_report_wait_start` and
/// `_end`, inline functions in C). Dropped on every way out, an ERROR's unwinding included;
/// Postgres' abort processing clears it too.
struct WaitingOnServer;

impl WaitingOnServer {
    fn start() -> Self {
        let event = server_wait_event();
        // SAFETY: my_wait_event_info points at this backend's PGPROC field (or a local dummy
        // before it has one); a plain 4-byte store is what the C inline function does.
        unsafe { std::ptr::write_volatile(pgrx::pg_sys::my_wait_event_info, event) };
        WaitingOnServer
    }
}

impl Drop for WaitingOnServer {
    fn drop(&mut self) {
        // SAFETY: as in start.
        unsafe { std::ptr::write_volatile(pgrx::pg_sys::my_wait_event_info, 0) };
    }
}

fn call(req: &Request, wait: Duration) -> Result<(Reply, Vec<u8>), EngineError> {
    let waiting = WaitingOnServer::start();
    let r = serve::call(Path::new(SOCKET), req, wait, &mut cancel_requested);
    drop(waiting);
    if let Err(EngineError::Cancelled) = r {
        // Raises "canceling statement due to user request" / "... statement timeout" / FATAL.
        pgrx::check_for_interrupts!();
    }
    r
}

fn unexpected(r: Reply) -> ! {
    raise(EngineError::Server(format!("the model server sent an unexpected reply: {r:?}")))
}

pub fn embed(texts: &[&str], instruct: Option<&str>, dims: Option<usize>, column: Option<&str>) -> Vec<Vec<f32>> {
    let limits = settings::limits_for(column);
    let max_tokens = limits.max_tokens;
    let req = Request::Embed {
        model: key(),
        texts: texts.iter().map(|t| t.to_string()).collect(),
        instruct: instruct.map(str::to_string),
        dims,
        max_tokens,
        long_input_error: settings::on_long_input() == LongInput::Error,
        batch_tokens: settings::batch_tokens(),
        batch_wait_ms: settings::server_batch_wait_ms(),
        max_request_tokens: settings::max_request_tokens(),
        expect_fingerprints: limits.expect_fingerprints,
    };
    match call(&req, CONNECT_WAIT).unwrap_or_else(|e| raise(e)) {
        (Reply::Vectors { dims, truncated }, tail) => {
            for t in &truncated {
                notice_truncated(t.full_len, max_tokens);
            }
            let vectors = wire::bytes_to_f32s(&tail, &dims)
                .unwrap_or_else(|e| raise(EngineError::Server(format!("the model server sent broken vectors: {e}"))));
            if vectors.len() != texts.len() {
                raise(EngineError::Server(format!(
                    "the model server sent {} vectors for {} inputs",
                    vectors.len(),
                    texts.len()
                )));
            }
            vectors
        }
        (r, _) => unexpected(r),
    }
}

pub fn tokenize(text: &str, instruct: Option<&str>) -> Vec<u32> {
    let req = Request::Tokenize { model: key(), text: text.to_string(), instruct: instruct.map(str::to_string) };
    match call(&req, CONNECT_WAIT).unwrap_or_else(|e| raise(e)) {
        (Reply::Tokens { ids, .. }, _) => ids,
        (r, _) => unexpected(r),
    }
}

pub fn chunk(text: &str, chunk_tokens: usize, overlap: usize) -> Vec<String> {
    let req = Request::Chunk { model: key(), text: text.to_string(), chunk_tokens, overlap };
    match call(&req, CONNECT_WAIT).unwrap_or_else(|e| raise(e)) {
        (Reply::Chunks { chunks }, _) => chunks,
        (r, _) => unexpected(r),
    }
}

pub fn info() -> InfoSummary {
    match call(&Request::Info { model: key() }, CONNECT_WAIT).unwrap_or_else(|e| raise(e)) {
        (Reply::Info { info }, _) => info,
        (r, _) => unexpected(r),
    }
}

/// The server's state ("off", "unavailable" or "running") and its counters when running.
pub fn server_stats() -> (&'static str, Option<Stats>, Option<String>) {
    if !server::registered() {
        return ("off", None, None);
    }
    match call(&Request::Stats, Duration::from_millis(500)) {
        Ok((Reply::Stats { stats }, _)) => ("running", Some(stats), None),
        Ok((r, _)) => unexpected(r),
        Err(e) => ("unavailable", None, Some(e.to_string())),
    }
}
