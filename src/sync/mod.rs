//! The sync queue's Rust side: the background workers that drain it (`worker`) and the drain
//! itself, which runs each sync as its table's owner (`drain`).

mod drain;
mod worker;

pub use worker::register;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

use crate::settings;

/// The sync workers that drain this database's queue: `qwen3_embed.sync_workers` when the
/// library was preloaded with the model server (the workers embed through it) and this database
/// is `qwen3_embed.sync_database`; else 0, with a WARNING naming `what` (the calling function):
/// nothing but `qwen3_embed_sync_run()` drains the queue then.
#[pg_extern(volatile, parallel_unsafe)]
fn qwen3_embed_sync_workers_here(what: &str) -> i32 {
    // SAFETY: MyDatabaseId is this backend's database; get_database_name pallocs its name, or
    // returns NULL when it no longer exists.
    let database = unsafe {
        let p = pg_sys::get_database_name(pg_sys::MyDatabaseId);
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    let workers =
        if crate::host::server::registered() && database.as_deref() == Some(settings::sync_database().as_str()) {
            settings::sync_workers() as i32
        } else {
            0
        };
    if workers == 0 {
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_WARNING,
            format!(
                "{what}: no sync worker drains database {}: its rows wait until qwen3_embed_sync_run() is called",
                database.unwrap_or_default()
            ),
            "qwen3_embed",
        )
        .set_hint(
            "Sync workers run when qwen3_embed is in shared_preload_libraries (with qwen3_embed.server on) and drain only \
             the database named by qwen3_embed.sync_database, a server-start setting; or call qwen3_embed_sync_run() \
             from a scheduler.",
        )
        .report(PgLogLevel::WARNING);
    }
    workers
}
