//! Calls into the model server, from a backend: the session's settings go with each request,
//! and the statement can be cancelled while it waits (the server then drops the request).
//!
//! The backend tokenizes its own texts (cut before tokenizing, `qwen3_embed_engine::cut`) and
//! sends token ids: a huge input then costs this session's time and memory, can be cancelled
//! like any statement, and never holds the server's batching thread. The tokenizer comes from
//! the model file's header (or the directory's tokenizer.json), loaded once per backend and
//! model path.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qwen3_embed_engine::serve::{self, wire, Caller, InfoSummary, ModelKey, Reply, Request, Stats};
use qwen3_embed_engine::{EngineError, Qwen3Tokenizer};

use crate::errors::{raise, OrRaise};
use crate::host::offthread::{cancel_requested, run_cancellable};
use crate::host::server::{self, SOCKET};
use crate::host::{kept, notice_truncated, Work};
use crate::settings;

/// How long a call waits for the server to (re)appear, e.g. after its process died.
const CONNECT_WAIT: Duration = Duration::from_secs(30);

fn key(path: String) -> ModelKey {
    ModelKey { path, device: settings::device(), threads: settings::server_threads() }
}

static TOKENIZERS: Mutex<Vec<(String, Arc<Qwen3Tokenizer>)>> = Mutex::new(Vec::new());

/// The tokenizer of the model at `path`, loaded in this backend when needed.
fn tokenizer(path: &str) -> Arc<Qwen3Tokenizer> {
    let owned = path.to_string();
    kept(&TOKENIZERS, path.to_string(), || {
        run_cancellable(move |_| Qwen3Tokenizer::for_model(Path::new(&owned))).or_raise()
    })
}

/// This session's role (the one it logged in as, which SET ROLE does not change) and process.
fn caller() -> Caller {
    // SAFETY: plain reads of this backend's own globals, on its own thread.
    let (user, pid) = unsafe { (pgrx::pg_sys::GetSessionUserId(), pgrx::pg_sys::MyProcPid as u32) };
    Caller { role: share_of(user).to_u32(), pid }
}

/// The role whose part of the model server `user`'s calls take: the first group role of
/// `qwen3_embed.server_share_groups` it belongs to (superuser rights do not make a member), else
/// the user itself. Names that are no role are passed over.
fn share_of(user: pgrx::pg_sys::Oid) -> pgrx::pg_sys::Oid {
    // SAFETY: reads the transaction state of this backend.
    if !unsafe { pgrx::pg_sys::IsTransactionState() } {
        return user;
    }
    for name in settings::server_share_groups() {
        let Ok(name) = std::ffi::CString::new(name) else { continue };
        // SAFETY: catalog lookups on the backend's thread, inside the calling statement's
        // transaction; missing_ok makes an unknown name InvalidOid instead of an error.
        unsafe {
            let group = pgrx::pg_sys::get_role_oid(name.as_ptr(), true);
            if group != pgrx::pg_sys::InvalidOid && pgrx::pg_sys::is_member_of_role_nosuper(user, group) {
                return group;
            }
        }
    }
    user
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

fn call_server(req: &Request, tail: &[u8], wait: Duration) -> Result<(Reply, Vec<u8>), EngineError> {
    let waiting = WaitingOnServer::start();
    let r = serve::call(Path::new(SOCKET), req, tail, wait, &mut cancel_requested);
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

pub fn run(work: &Work) -> Vec<Vec<f32>> {
    let model = key(work.model_path());
    let tok = tokenizer(&model.path);
    let limits = work.limits();
    let max_tokens = limits.max_tokens;
    let expect_fingerprints = limits.expect_fingerprints.clone();
    let w = work.clone();
    let call = run_cancellable(move |cancel| w.tokenize(&tok, &limits, cancel)).or_raise();
    for t in &call.truncated {
        notice_truncated(t, max_tokens);
    }
    let req = Request::Run {
        model,
        task: work.task,
        lens: call.seqs.iter().map(Vec::len).collect(),
        dims: work.dims,
        max_tokens,
        batch_tokens: settings::batch_tokens(),
        batch_wait_ms: settings::server_batch_wait_ms(),
        max_request_tokens: settings::max_request_tokens(),
        expect_fingerprints,
        caller: caller(),
        query_cache_bytes: super::query_cache_bytes(work),
        query_cache_scope: super::query_cache_scope(),
    };
    match call_server(&req, &wire::ids_to_bytes(&call.seqs), CONNECT_WAIT).unwrap_or_else(|e| raise(e)) {
        (Reply::Vectors { dims }, tail) => {
            let outputs = wire::bytes_to_f32s(&tail, &dims)
                .unwrap_or_else(|e| raise(EngineError::Server(format!("the model server sent broken vectors: {e}"))));
            if outputs.len() != work.texts.len() {
                raise(EngineError::Server(format!(
                    "the model server sent {} outputs for {} inputs",
                    outputs.len(),
                    work.texts.len()
                )));
            }
            outputs
        }
        (r, _) => unexpected(r),
    }
}

pub fn tokenize(text: &str, instruct: Option<&str>) -> Vec<u32> {
    let tok = tokenizer(&settings::model_path_or_raise());
    let (text, instruct) = (text.to_string(), instruct.map(str::to_string));
    run_cancellable(move |cancel| tok.tokenize_input(&text, instruct.as_deref(), usize::MAX, cancel)).or_raise().ids
}

pub fn chunk(text: &str, chunk_tokens: usize, overlap: usize) -> Vec<String> {
    let tok = tokenizer(&settings::model_path_or_raise());
    let text = text.to_string();
    run_cancellable(move |cancel| tok.chunk(&text, chunk_tokens, overlap, cancel)).or_raise()
}

pub fn info(path: String) -> InfoSummary {
    match call_server(&Request::Info { model: key(path) }, &[], CONNECT_WAIT).unwrap_or_else(|e| raise(e)) {
        (Reply::Info { info }, _) => info,
        (r, _) => unexpected(r),
    }
}

/// The server's state ("off", "unavailable" or "running") and its counters when running.
pub fn server_stats() -> (&'static str, Option<Stats>, Option<String>) {
    if !server::registered() {
        return ("off", None, None);
    }
    match call_server(&Request::Stats, &[], Duration::from_millis(500)) {
        Ok((Reply::Stats { stats }, _)) => ("running", Some(stats), None),
        Ok((r, _)) => unexpected(r),
        Err(e) => ("unavailable", None, Some(e.to_string())),
    }
}
