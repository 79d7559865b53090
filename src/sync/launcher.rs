//! The sync launcher: one background worker, connected to no database, that starts a sync
//! worker (`worker`) for each database whose queue has rows, up to `qwen3_embed.sync_workers`
//! at once, one per database. Backends ask for one when a transaction that queued rows commits
//! (`shared::wake`); at start and every `PROBE_EVERY` the launcher also looks at every database
//! that accepts connections (rows queued before a restart, a wake that found no free slot).
//! When databases wait and every worker is busy, the one that has served longest is asked to
//! make room after its round (`TURN`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, DynamicBackgroundWorker, SignalWakeFlags,
};
use pgrx::prelude::*;

use super::shared::{self, SHARED};
use crate::settings;

const PROBE_EVERY: Duration = Duration::from_secs(300);
/// How long a worker serves while another database waits for one, at least.
const TURN: Duration = Duration::from_secs(10);
const MICROS_PER_SEC: i64 = 1_000_000;

/// Registers the launcher; call from `_PG_init` while preloading.
pub fn register() {
    BackgroundWorkerBuilder::new("qwen3_embed sync launcher")
        .set_type("qwen3_embed sync launcher")
        .set_library("qwen3_embed")
        .set_function("qwen3_embed_sync_launcher_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(5)))
        .load();
}

/// The databases a worker may connect to: (OID, name).
fn databases() -> Vec<(u32, String)> {
    let mut found = Vec::new();
    // SAFETY: a catalog scan of the shared catalog pg_database, in a transaction, as the
    // autovacuum launcher does; the tuples are read while the scan holds them.
    unsafe {
        let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
        loop {
            let tuple = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            let form = &*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tuple);
            // datconnlimit -2 marks a database whose DROP was interrupted.
            if form.datallowconn && !form.datistemplate && form.datconnlimit != -2 {
                let name = std::ffi::CStr::from_ptr(form.datname.data.as_ptr()).to_string_lossy().into_owned();
                found.push((form.oid.to_u32(), name));
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    }
    found
}

/// Marks every database the workers serve as wanted: each gets a worker that looks at its
/// queue (and leaves at once when it is empty or the extension is not there).
fn probe() {
    let filter = settings::sync_database();
    let dbs = BackgroundWorker::transaction(databases);
    let now = shared::now();
    let mut shared = SHARED.exclusive();
    for (oid, name) in dbs {
        if !filter.is_empty() && name != filter {
            continue;
        }
        if let Some(i) = shared.find_or_take(oid) {
            let slot = &mut shared.slots[i];
            if !slot.wanted {
                slot.wanted = true;
                slot.wanted_since = now;
            }
        }
    }
}

fn start(db: u32) -> Option<DynamicBackgroundWorker> {
    let started = BackgroundWorkerBuilder::new(&format!("qwen3_embed sync worker for database {db}"))
        .set_type("qwen3_embed sync worker")
        .set_library("qwen3_embed")
        .set_function("qwen3_embed_sync_main")
        .set_argument(Some(pg_sys::Datum::from(db as usize)))
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        // SAFETY: this process's pid: the postmaster tells it when the worker starts and stops.
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .load_dynamic();
    match started {
        Ok(w) => Some(w),
        Err(_) => {
            pgrx::log!("qwen3_embed sync launcher: no background worker slot free (max_worker_processes); will retry");
            None
        }
    }
}

/// One look at the slots: forgets the workers that ended, starts workers for the databases
/// that want one, oldest wish first, asks the longest-serving worker to make room when some
/// wait, and frees the slots nobody needs.
fn tend(running: &mut HashMap<u32, DynamicBackgroundWorker>, pool: usize) {
    let ended: Vec<u32> = running.iter().filter(|(_, w)| w.pid().is_err_and(stopped)).map(|(db, _)| *db).collect();
    let now = shared::now();
    let mut shared = SHARED.exclusive();
    for db in ended {
        running.remove(&db);
        if let Some(i) = shared.find(db) {
            let slot = &mut shared.slots[i];
            slot.pid = 0;
            slot.proc_ = 0;
            slot.starting = false;
        }
    }
    let mut waiting: Vec<(i64, u32)> = shared
        .slots
        .iter()
        .filter(|s| s.db != 0 && s.wanted && s.hold_until <= now && s.pid == 0 && !s.starting)
        .filter(|s| !running.contains_key(&s.db))
        .map(|s| (s.wanted_since, s.db))
        .collect();
    waiting.sort_unstable();
    let mut waiting = waiting.into_iter().map(|(_, db)| db).peekable();
    // Workers a restarted launcher did not start still hold their databases.
    let mut busy = shared.slots.iter().filter(|s| s.pid != 0 || s.starting).count().max(running.len());
    while busy < pool {
        let Some(db) = waiting.next() else { break };
        let Some(worker) = start(db) else { break };
        running.insert(db, worker);
        busy += 1;
        let i = shared.find(db).expect("a waiting database has a slot");
        let slot = &mut shared.slots[i];
        slot.starting = true;
        slot.wanted = false;
        slot.started_at = now;
    }
    if waiting.peek().is_some() {
        let turn = TURN.as_secs() as i64 * MICROS_PER_SEC;
        let longest = shared
            .slots
            .iter_mut()
            .filter(|s| s.pid != 0 && !s.yield_asked && now - s.started_at >= turn)
            .min_by_key(|s| s.started_at);
        if let Some(slot) = longest {
            slot.yield_asked = true;
            shared::set_latch(slot.proc_);
        }
    }
    for slot in shared.slots.iter_mut() {
        if slot.db != 0
            && !slot.wanted
            && !slot.starting
            && slot.pid == 0
            && slot.hold_until <= now
            && !running.contains_key(&slot.db)
        {
            *slot = shared::Slot::default();
        }
    }
}

fn stopped(status: pgrx::bgworkers::BackgroundWorkerStatus) -> bool {
    use pgrx::bgworkers::BackgroundWorkerStatus::*;
    matches!(status, Stopped | PostmasterDied)
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn qwen3_embed_sync_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(None, None);
    SHARED.exclusive().launcher_proc = shared::my_proc();
    let pool = settings::sync_workers();
    let mut running = HashMap::new();
    let mut probed = None::<Instant>;
    loop {
        if probed.is_none_or(|t| t.elapsed() >= PROBE_EVERY) {
            probe();
            probed = Some(Instant::now());
        }
        tend(&mut running, pool);
        if !BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: the standard reload in a background worker's main loop.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
    // The postmaster stops the workers itself at shutdown; a launcher that ends otherwise (it
    // is restarted) leaves them running and finds them as busy slots no more: stop them.
    for (_, worker) in running {
        let _ = worker.terminate();
    }
    SHARED.exclusive().launcher_proc = 0;
}
