//! A sync worker: started by the launcher for one database (`launcher`), it runs rounds of
//! `qwen3_embed_sync_run()` (`drain`, which acts as each table's owner) there, each in a
//! transaction of its own, again at once while there is work, else after
//! `qwen3_embed.sync_naptime`. It leaves when the queue has stayed empty for
//! `qwen3_embed.sync_linger`, when the launcher asks it to make room for another database, or
//! when a command needs the database to itself. A SIGTERM (server shutdown, or such a command) ends the round in progress: its
//! transaction rolls back and the queue rows are still there. The embedding itself goes
//! through the model server.

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, SignalWakeFlags};
use pgrx::prelude::*;

use super::shared::{self, SHARED};
use crate::settings;

/// Batches one round takes at most, shared among the syncs with work; each sync's share is one
/// model call (`qwen3_embed_sync_drain`), so a lone sync's round is one call of 4 batches.
const BATCHES_PER_ROUND: i32 = 4;

/// How often a busy worker looks for a sync whose index is due.
const INDEX_LOOK: Duration = Duration::from_secs(2);

/// One round: the rows embedded and whether queue rows are left (embedded or not, due or
/// waiting for a retry), or `None` when the extension is not installed there.
fn round() -> Option<(i32, bool)> {
    Spi::get_one::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'qwen3_embed')",
    )
    .ok()
    .flatten()
    .filter(|&installed| installed)?;
    let done = super::drain::run(None, BATCHES_PER_ROUND);
    let left = Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM qwen3_embed.queue)").ok().flatten().unwrap_or(false);
    Some((done, left))
}

unsafe extern "C-unwind" {
    /// PostgreSQL's SIGTERM handler for backends (postgres.c), as a C function pointer.
    #[link_name = "die"]
    fn backend_die(signal: std::ffi::c_int);
}

fn use_backend_sigterm() {
    // SAFETY: installs PostgreSQL's own SIGTERM handler for backends, which sets ProcDiePending
    // so that the next CHECK_FOR_INTERRUPTS ends the process cleanly (transaction rolled back).
    unsafe {
        #[cfg(not(feature = "pg18"))]
        pg_sys::pqsignal(libc::SIGTERM, Some(backend_die));
        #[cfg(feature = "pg18")]
        pg_sys::pqsignal_be(libc::SIGTERM, Some(backend_die));
    }
}

/// What ended a worker's turn.
enum Leave {
    /// Its queue is empty: the slot stays for the next wake.
    Idle,
    /// It made room for another database: ask again, the launcher puts it behind.
    Yield,
    /// Gone (no extension) or evicted: do not come back by itself.
    Stop,
}

fn leave(db: u32, why: Leave) {
    let mut shared = SHARED.exclusive();
    if let Some(i) = shared.find(db) {
        let slot = &mut shared.slots[i];
        slot.pid = 0;
        slot.proc_ = 0;
        slot.starting = false;
        slot.yield_asked = false;
        match why {
            Leave::Yield => {
                slot.wanted = true;
                slot.wanted_since = shared::now();
            }
            Leave::Stop => slot.wanted = false,
            Leave::Idle => {}
        }
    }
    let launcher = shared.launcher_proc;
    drop(shared);
    shared::set_latch(launcher);
}

/// Says it runs; `false` when it must not (a command holds the database).
fn arrive(db: u32) -> bool {
    let mut shared = SHARED.exclusive();
    let Some(i) = shared.find_or_take(db) else { return false };
    let slot = &mut shared.slots[i];
    slot.starting = false;
    if slot.hold_until > shared::now() {
        return false;
    }
    slot.pid = std::process::id() as i32;
    slot.proc_ = shared::my_proc();
    slot.rows = 0;
    slot.started_at = shared::now();
    true
}

/// Takes the slot's wake before a round; returns (asked to yield, held by a command).
fn before_round(db: u32) -> (bool, bool) {
    let mut shared = SHARED.exclusive();
    match shared.find(db) {
        Some(i) => {
            let slot = &mut shared.slots[i];
            slot.wanted = false;
            (slot.yield_asked, slot.hold_until > shared::now())
        }
        None => (false, true),
    }
}

/// Whether rows were queued since `before_round` took the wake.
fn woken_since(db: u32) -> bool {
    let shared = SHARED.share();
    shared.find(db).is_some_and(|i| shared.slots[i].wanted)
}

fn count(db: u32, rows: i32) {
    let mut shared = SHARED.exclusive();
    if let Some(i) = shared.find(db) {
        shared.slots[i].rows += rows as i64;
    }
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn qwen3_embed_sync_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP);
    use_backend_sigterm();
    let db = arg.value() as u32;
    if !arrive(db) {
        return leave(db, Leave::Idle);
    }
    // A database dropped meanwhile ends the process here (FATAL); the launcher sees it stop.
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(pg_sys::Oid::from(db)), None);
    // The database's own settings (ALTER DATABASE ... SET search_path, which its owner may set)
    // apply to this superuser session: nothing it runs may resolve a name through them.
    // SAFETY: sets a setting of this process before its first query, as SET would.
    unsafe {
        pg_sys::SetConfigOption(
            c"search_path".as_ptr(),
            c"".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
        );
    }
    let mut idle_since = std::time::Instant::now();
    let mut worked = false;
    // A sync's index is looked at after work, every INDEX_LOOK at most, and once the queue is
    // empty; a look that finds none due costs one query.
    let mut index_look = std::time::Instant::now();
    let mut work_since_look = true;
    let mut first_look = true;
    loop {
        let (yield_asked, held) = before_round(db);
        if held {
            return leave(db, Leave::Stop);
        }
        let Some((done, left)) = BackgroundWorker::transaction(round) else {
            return leave(db, Leave::Stop);
        };
        count(db, done);
        work_since_look |= done > 0;
        if work_since_look && (!left || index_look.elapsed() >= INDEX_LOOK) {
            if first_look {
                super::index::interrupted();
                first_look = false;
            }
            super::index::look();
            index_look = std::time::Instant::now();
            work_since_look = false;
        }
        if yield_asked {
            return leave(db, if left { Leave::Yield } else { Leave::Idle });
        }
        if done > 0 || left {
            idle_since = std::time::Instant::now();
            worked = true;
        } else if (!worked || idle_since.elapsed() >= settings::sync_linger()) && !woken_since(db) {
            // A look that found nothing (the launcher's look at every database) ends at once.
            return leave(db, Leave::Idle);
        }
        let nap = if done > 0 { Duration::ZERO } else { Duration::from_millis(settings::sync_naptime_ms()) };
        BackgroundWorker::wait_latch(Some(nap));
        if BackgroundWorker::sighup_received() {
            // SAFETY: the standard reload in a background worker's main loop.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
}
