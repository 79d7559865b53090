//! What the sync launcher, its workers and every backend share when the library is preloaded:
//! one slot per database that has queued rows (or had, recently), under one lock.
//!
//! A backend that queues rows asks for a worker when its transaction commits (`wake`); the
//! launcher starts one for each database that asks, up to `qwen3_embed.sync_workers` at once;
//! a worker leaves when its queue is empty, when another database has waited while it served a
//! full turn, or when a command needs its database to itself (`evict`, from `hook`).

use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::lwlock::PgLwLock;
use pgrx::pg_shmem_init;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;

/// Databases that can have a slot at once (a slot is freed when its database has no worker
/// and asks for none). A database that finds no free slot is served by the launcher's next
/// look at every database (`launcher::PROBE_EVERY`).
pub const MAX_DATABASES: usize = 1024;

#[derive(Clone, Copy, Default)]
pub struct Slot {
    /// The database's OID; 0 for a free slot.
    pub db: u32,
    /// The launcher registered a worker that has not yet said it runs.
    pub starting: bool,
    /// The worker serving the database, 0 when none runs.
    pub pid: i32,
    /// Its PGPROC, whose latch wakes it.
    pub proc_: usize,
    /// Rows were queued (or the launcher looks for them) since a worker last looked.
    pub wanted: bool,
    pub wanted_since: i64,
    pub started_at: i64,
    pub rows: i64,
    /// The launcher asks the worker to make room for a database that waits.
    pub yield_asked: bool,
    /// A command needs the database to itself: no worker until `hold_until`.
    pub hold_until: i64,
}

pub struct Shared {
    pub launcher_proc: usize,
    pub slots: [Slot; MAX_DATABASES],
}

impl Default for Shared {
    fn default() -> Self {
        Shared { launcher_proc: 0, slots: [Slot::default(); MAX_DATABASES] }
    }
}

// SAFETY: plain old data (integers and booleans), no pointers into process memory (the PGPROC
// addresses point into shared memory, the same in every process).
unsafe impl PGRXSharedMemory for Shared {}

pub static SHARED: PgLwLock<Shared> = unsafe { PgLwLock::new(c"qwen3_embed sync") };

/// Set in the postmaster when the shared state is requested; every process inherits it.
static READY: AtomicBool = AtomicBool::new(false);

/// Asks for the shared state; call from `_PG_init` while preloading.
pub fn init() {
    pg_shmem_init!(SHARED);
    READY.store(true, Ordering::Relaxed);
}

pub fn ready() -> bool {
    READY.load(Ordering::Relaxed)
}

pub fn now() -> i64 {
    // SAFETY: reads the clock.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// Wakes the process whose PGPROC is `proc_` (0: nobody).
pub fn set_latch(proc_: usize) {
    if proc_ != 0 {
        // SAFETY: PGPROCs live in shared memory for the server's life; waking one that now
        // belongs to another process only makes that process look at its work again.
        unsafe { pg_sys::SetLatch(&raw mut (*(proc_ as *mut pg_sys::PGPROC)).procLatch) };
    }
}

pub fn my_proc() -> usize {
    // SAFETY: this process's PGPROC, set once it joined shared memory.
    unsafe { pg_sys::MyProc as usize }
}

impl Shared {
    pub fn find(&self, db: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.db == db)
    }

    /// The slot of `db`, taking a free one if it has none.
    pub fn find_or_take(&mut self, db: u32) -> Option<usize> {
        if let Some(i) = self.find(db) {
            return Some(i);
        }
        let i = self.slots.iter().position(|s| s.db == 0)?;
        self.slots[i] = Slot { db, ..Slot::default() };
        Some(i)
    }
}

/// Asks for a worker in database `db`: sets its slot wanted and wakes its worker (which then
/// looks at its queue again) or, when it has none, the launcher.
pub fn wake(db: u32) {
    if !ready() {
        return;
    }
    let target = {
        let mut shared = SHARED.exclusive();
        let Some(i) = shared.find_or_take(db) else { return };
        let slot = &mut shared.slots[i];
        if !slot.wanted {
            slot.wanted = true;
            slot.wanted_since = now();
        }
        if slot.pid != 0 {
            slot.proc_
        } else {
            shared.launcher_proc
        }
    };
    set_latch(target);
}

/// What serves database `db` now, in words, for `qwen3_embed_sync_status`.
pub fn describe(db: u32, pool: usize) -> String {
    let shared = SHARED.share();
    let busy = shared.slots.iter().filter(|s| s.pid != 0 || s.starting).count();
    match shared.find(db).map(|i| shared.slots[i]) {
        Some(s) if s.pid != 0 => format!("sync worker pid {}, {} rows embedded since it started", s.pid, s.rows),
        Some(s) if s.starting => "a sync worker is starting".into(),
        Some(s) if s.hold_until > now() => "none: a command needs this database to itself".into(),
        Some(s) if s.wanted && busy >= pool => {
            format!("waiting for a sync worker: all {pool} are serving other databases")
        }
        Some(s) if s.wanted => "a sync worker is being started".into(),
        _ => "none now: a worker starts when rows are queued".into(),
    }
}

/// How long a command that needs a database to itself keeps its worker away, at most (it gives
/// the database back when it ends, `release`).
const HOLD_MICROS: i64 = 60 * 1_000_000;
/// How long such a command waits for the worker to be gone, at most.
const EVICT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Makes the worker of database `db` leave (SIGTERM: its round rolls back, the rows stay queued)
/// and keeps another from starting, for a command that needs the database to itself (DROP
/// DATABASE, or a copy or move of it); returns once no worker is connected there.
pub fn evict(db: u32) {
    if !ready() {
        return;
    }
    let pid = {
        let mut shared = SHARED.exclusive();
        let Some(i) = shared.find_or_take(db) else { return };
        let slot = &mut shared.slots[i];
        slot.hold_until = now() + HOLD_MICROS;
        if slot.pid != 0 {
            // Back when the command is over (a DROP frees the slot instead).
            slot.wanted = true;
            slot.wanted_since = now();
        }
        slot.pid
    };
    if pid != 0 {
        // SAFETY: a signal to the sync worker, a process of the same server.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let start = std::time::Instant::now();
    while start.elapsed() < EVICT_WAIT {
        let connected = {
            let shared = SHARED.share();
            shared.find(db).map(|i| shared.slots[i]).is_some_and(|s| {
                // SAFETY: kill with signal 0 only asks whether the process exists.
                s.starting || (s.pid != 0 && unsafe { libc::kill(s.pid, 0) } == 0)
            })
        };
        if !connected {
            return;
        }
        pgrx::check_for_interrupts!();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The command that evicted `db`'s worker is over: `dropped` frees its slot, else a worker may
/// come back.
pub fn release(db: u32, dropped: bool) {
    if !ready() {
        return;
    }
    let launcher = {
        let mut shared = SHARED.exclusive();
        if let Some(i) = shared.find(db) {
            if dropped {
                shared.slots[i] = Slot::default();
            } else {
                shared.slots[i].hold_until = 0;
            }
        }
        shared.launcher_proc
    };
    set_latch(launcher);
}
