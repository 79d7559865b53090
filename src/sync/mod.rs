//! The sync queue's Rust side: the launcher that starts a worker for each database whose queue
//! has rows (`launcher`, `worker`, sharing `shared`), the hook that sends a worker away from a
//! database a command needs to itself (`hook`), the drain itself, which runs each sync as its
//! table's owner (`drain`), and the HNSW index a sync asks for, which a worker builds between
//! rounds as that owner (`index`).

mod drain;
mod hook;
mod index;
mod launcher;
mod shared;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::settings;

/// Sets up the launcher, its shared state and the hook; call from `_PG_init` while preloading
/// with the model server on.
pub fn register() {
    shared::init();
    hook::install();
    if settings::sync_workers() > 0 {
        launcher::register();
    }
}

/// This backend's database: (OID, name).
fn this_database() -> (u32, String) {
    // SAFETY: MyDatabaseId is this backend's database; get_database_name pallocs its name, or
    // returns NULL when it no longer exists.
    unsafe {
        let p = pg_sys::get_database_name(pg_sys::MyDatabaseId);
        let name = (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned());
        (pg_sys::MyDatabaseId.to_u32(), name.unwrap_or_default())
    }
}

/// Why no worker serves this database, or `None` when the launcher serves it.
fn unserved_reason(name: &str) -> Option<&'static str> {
    let filter = settings::sync_database();
    if !shared::ready() || !crate::host::server::registered() {
        Some("qwen3_embed is not in shared_preload_libraries with qwen3_embed.server on")
    } else if settings::sync_workers() == 0 {
        Some("qwen3_embed.sync_workers is 0")
    } else if !filter.is_empty() && filter != name {
        Some("qwen3_embed.sync_database names another database")
    } else {
        None
    }
}

/// The sync workers that may drain this database's queue (`qwen3_embed.sync_workers`, shared
/// by every database of the cluster), or 0 with a WARNING naming `what` (the calling function):
/// nothing but `qwen3_embed_sync_run()` drains the queue then.
#[pg_extern(volatile, parallel_unsafe, schema = "qwen3_embed")]
fn qwen3_embed_sync_workers_here(what: &str) -> i32 {
    let (_, name) = this_database();
    if unserved_reason(&name).is_none() {
        return settings::sync_workers() as i32;
    }
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_WARNING,
        format!("{what}: no sync worker drains database {name}: its rows wait until qwen3_embed_sync_run() is called"),
        "qwen3_embed",
    )
    .set_hint(
        "Sync workers serve every database when qwen3_embed is in shared_preload_libraries with qwen3_embed.server on \
         and qwen3_embed.sync_workers above 0 (qwen3_embed_sync_status.worker says why not here); or call \
         qwen3_embed_sync_run() from a scheduler.",
    )
    .report(PgLogLevel::WARNING);
    0
}

/// What drains this database's queue now, in words (`qwen3_embed_sync_status.worker`).
#[pg_extern(stable, parallel_safe, schema = "qwen3_embed")]
fn qwen3_embed_sync_worker() -> String {
    let (db, name) = this_database();
    match unserved_reason(&name) {
        Some(reason) => format!("none: {reason}"),
        None => shared::describe(db, settings::sync_workers()),
    }
}

static WAKE_AT_COMMIT: AtomicBool = AtomicBool::new(false);

/// Asks for a sync worker in this database once the current transaction commits (its queued
/// rows are visible then); several calls in one transaction ask once.
pub fn wake_at_commit() {
    let (db, name) = this_database();
    if unserved_reason(&name).is_some() || WAKE_AT_COMMIT.swap(true, Ordering::Relaxed) {
        return;
    }
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Commit, move || {
        WAKE_AT_COMMIT.store(false, Ordering::Relaxed);
        shared::wake(db);
    });
    pgrx::register_xact_callback(pgrx::PgXactCallbackEvent::Abort, || {
        WAKE_AT_COMMIT.store(false, Ordering::Relaxed);
    });
}

/// `wake_at_commit` for the queue's triggers (`sql/sync.sql`).
#[pg_extern(volatile, parallel_unsafe, schema = "qwen3_embed")]
fn qwen3_embed_sync_wake() {
    wake_at_commit();
}
