//! The background workers that drain the embedding queue (`sql/sync.sql`): each one connects to
//! `qwen3_embed.sync_database` and runs a round of `qwen3_embed_sync_run()` (`drain`, which
//! acts as each table's owner) in a transaction of its own, again at once while there is work,
//! else after `qwen3_embed.sync_naptime`. The embedding itself goes through the model server.
//! A sync whose round fails is set aside by the drain; an ERROR that still escapes a round ends
//! the worker, which Postgres restarts after a few seconds; nothing is lost, the queue rows are
//! still there.

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::prelude::*;

use crate::settings;

/// Batches one round takes at most, shared among the syncs with work; each sync's share is one
/// model call (`qwen3_embed_sync_drain`), so a lone sync's round is one call of 4 batches.
const BATCHES_PER_ROUND: i32 = 4;

/// Registers `qwen3_embed.sync_workers` workers; call from `_PG_init` while preloading.
pub fn register() {
    for i in 0..settings::sync_workers() {
        BackgroundWorkerBuilder::new(&format!("qwen3_embed sync worker {i}"))
            .set_type("qwen3_embed sync worker")
            .set_library("qwen3_embed")
            .set_function("qwen3_embed_sync_main")
            .enable_spi_access()
            .set_start_time(BgWorkerStartTime::RecoveryFinished)
            .set_restart_time(Some(Duration::from_secs(5)))
            .load();
    }
}

/// One round: the rows embedded, or `None` when the extension is not installed there.
fn round() -> Option<i32> {
    let installed =
        Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'qwen3_embed')");
    matches!(installed, Ok(Some(true))).then(|| super::drain::run(None, BATCHES_PER_ROUND))
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn qwen3_embed_sync_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(Some(&settings::sync_database()), None);
    loop {
        let done = BackgroundWorker::transaction(round).unwrap_or(0);
        let nap = if done > 0 { Duration::ZERO } else { Duration::from_millis(settings::sync_naptime_ms()) };
        if !BackgroundWorker::wait_latch(Some(nap)) {
            return;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: the standard reload in a background worker's main loop.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
}
