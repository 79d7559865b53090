//! Running engine work off the backend's thread, so the backend keeps answering cancel
//! requests. Engine threads block every signal: Postgres' handlers only ever run on the
//! backend's own thread, and no engine thread ever calls into Postgres.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a cancelled call waits for the engine to stop before leaving it behind.
const ABANDON_AFTER: Duration = Duration::from_millis(300);

use pgrx::pg_sys;
use qwen3_embed_engine::{CancelFlag, EngineError};

/// Runs `f` with all signals blocked on this thread, so threads it spawns inherit the mask.
pub fn with_signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: plain libc calls on a local sigset; the old mask is restored before returning.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let out = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        out
    }
}

/// Call threads of this backend still running: one while a call runs, and any a cancelled
/// call left behind.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Work of this long or more hands its freed memory back to the system when it ends.
const TRIM_AFTER: Duration = Duration::from_millis(200);

/// Counts a call thread while it lives; at its end, memory it freed goes back to the system
/// after long work (a cancelled 60 MB tokenization must not leave gigabytes mapped).
struct Live(Instant);

impl Live {
    fn new() -> Self {
        LIVE.fetch_add(1, Ordering::SeqCst);
        Live(Instant::now())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.0.elapsed() >= TRIM_AFTER {
            // SAFETY: glibc's malloc_trim touches only the allocator's own free lists.
            unsafe { libc::malloc_trim(0) };
        }
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits until no call thread of this backend runs (one a cancelled call left behind ends
/// within a second: every long step asks its flag), so that abandoned work never piles up.
/// A cancel meanwhile raises the usual error.
fn wait_for_abandoned() -> Result<(), EngineError> {
    while LIVE.load(Ordering::SeqCst) > 0 {
        if cancel_requested() {
            pgrx::check_for_interrupts!();
            return Err(EngineError::Cancelled);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

pub fn cancel_requested() -> bool {
    // SAFETY: reading sig_atomic_t flags that Postgres' signal handlers set on this thread.
    unsafe { pg_sys::QueryCancelPending != 0 || pg_sys::ProcDiePending != 0 }
}

/// Runs `work` on its own thread while this (backend) thread watches for query cancel,
/// statement timeout and termination. On one, the work is told to stop (it checks before
/// every layer) and the usual Postgres error is raised once it has stopped: no partial result.
pub fn run_cancellable<T: Send + 'static>(
    work: impl FnOnce(&CancelFlag) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    wait_for_abandoned()?;
    let cancel = CancelFlag::new();
    let (tx, rx) = mpsc::channel();
    let flag = cancel.clone();
    let live = Live::new();
    let spawned = with_signals_blocked(|| {
        std::thread::Builder::new().name("qwen3-embed-call".into()).spawn(move || {
            let _live = live;
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&flag))).unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                Err(EngineError::Compute(format!("engine panicked: {msg}")))
            });
            let _ = tx.send(out);
        })
    });
    if let Err(e) = spawned {
        return Err(EngineError::Compute(format!("cannot start a compute thread: {e}")));
    }
    let mut cancelled_at = None;
    let result = loop {
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(r) => break r,
            Err(mpsc::RecvTimeoutError::Timeout) => match cancelled_at {
                None if cancel_requested() => {
                    cancel.cancel();
                    cancelled_at = Some(Instant::now());
                }
                // The engine stops at its next check; if that is far off (a long layer), the
                // statement ends now and the thread finishes alone, touching nothing of ours.
                Some(t) if t.elapsed() >= ABANDON_AFTER => break Err(EngineError::Cancelled),
                _ => {}
            },
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err(EngineError::Compute("compute thread vanished".into()))
            }
        }
    };
    if cancel.is_cancelled() || matches!(result, Err(EngineError::Cancelled)) {
        // Raises "canceling statement due to user request" / "... statement timeout" / FATAL.
        pgrx::check_for_interrupts!();
        return Err(EngineError::Cancelled);
    }
    result
}
