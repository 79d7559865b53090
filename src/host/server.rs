//! The model server's supervisor (a background worker) and the process it supervises.
//!
//! The worker holds no model. It forks a child that leaves Postgres behind (detaches shared
//! memory, resets signals, gets its own session) and serves the engine on a Unix socket in the
//! data directory. The postmaster never sees that child, so when it dies (kill -9, the OOM
//! killer) no crash restart happens: the worker logs how it ended and forks a new one, and
//! sessions keep their connections. The worker stops the child on shutdown; the child also dies
//! with the worker (PR_SET_PDEATHSIG).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::prelude::*;
use qwen3_embed_engine::serve::{self, ModelKey, ServerOptions};

use crate::settings;

/// The socket, relative to the data directory (every Postgres process runs there).
pub const SOCKET: &str = "qwen3_embed.sock";

/// Set in the postmaster when the worker is registered; every backend inherits it.
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Whether a model server was started with this server (the library was preloaded and
/// `qwen3_embed.server` is on).
pub fn registered() -> bool {
    REGISTERED.load(Ordering::Relaxed)
}

/// Registers the supervisor; call from `_PG_init` while preloading.
pub fn register() {
    BackgroundWorkerBuilder::new("qwen3_embed model server")
        .set_type("qwen3_embed model server")
        .set_library("qwen3_embed")
        .set_function("qwen3_embed_server_main")
        .enable_shmem_access(None)
        .set_start_time(BgWorkerStartTime::PostmasterStart)
        .set_restart_time(Some(Duration::from_secs(1)))
        .load();
    REGISTERED.store(true, Ordering::Relaxed);
}

/// The model the server loads at start: the configured one, if any.
fn preload_key() -> Option<ModelKey> {
    Some(ModelKey { path: settings::model_path()?, device: settings::device(), threads: settings::server_threads() })
}

unsafe extern "C" {
    /// Detaches this process from the main shared memory segment (postmaster's pg_shmem.h).
    fn PGSharedMemoryDetach();
}

fn describe(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: strsignal returns a static (or thread-local) string for any number.
        let name = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(sig)) }.to_string_lossy().into_owned();
        format!("was terminated by signal {sig} ({name})")
    } else {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    }
}

fn child_log(line: &str) {
    eprintln!("qwen3_embed model server [{}]: {line}", std::process::id());
}

/// Runs in the forked child: never returns, never calls into Postgres.
fn child_main(parent: libc::pid_t, restarts: u64, last_exit: Option<String>, preload: Option<ModelKey>) -> ! {
    // SAFETY: plain system calls in a freshly forked single-threaded process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(0);
        }
        libc::setsid();
        PGSharedMemoryDetach();
        for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
        for sig in [libc::SIGTERM, libc::SIGQUIT, libc::SIGALRM, libc::SIGCHLD] {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_NAME, c"qwen3-embed-srv".as_ptr());
    }
    let code = std::panic::catch_unwind(move || {
        let _ = std::fs::remove_file(SOCKET);
        let listener = match UnixListener::bind(SOCKET) {
            Ok(l) => l,
            Err(e) => {
                child_log(&format!("cannot listen on {SOCKET}: {e}"));
                return 1;
            }
        };
        if let Err(e) = std::fs::set_permissions(SOCKET, std::fs::Permissions::from_mode(0o600)) {
            child_log(&format!("cannot restrict {SOCKET} to its owner: {e}"));
            return 1;
        }
        child_log(&format!("listening on {SOCKET}"));
        let opts = ServerOptions {
            preload,
            restarts,
            last_exit,
            log: child_log,
            max_tokens_in_flight: settings::server_max_tokens(),
            role_share_percent: settings::server_role_share(),
            max_model_bytes: settings::server_model_memory(),
            cache_dir: settings::cache_dir(),
            cache_limits: settings::cache_limits(),
            ..ServerOptions::default()
        };
        match serve::serve(listener, opts) {
            Ok(()) => 0,
            Err(e) => {
                child_log(&format!("stopped: {e}"));
                1
            }
        }
    })
    .unwrap_or(1);
    // SAFETY: leaves without running Postgres' exit callbacks, which belong to the parent.
    unsafe { libc::_exit(code) }
}

fn stop_child(pid: libc::pid_t) {
    // SAFETY: signalling and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
        let start = Instant::now();
        let mut status = 0;
        while libc::waitpid(pid, &mut status, libc::WNOHANG) == 0 {
            if start.elapsed() > Duration::from_secs(5) {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = std::fs::remove_file(SOCKET);
}

/// The background worker: starts the model server process and restarts it when it dies.
#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn qwen3_embed_server_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let mut restarts = 0u64;
    let mut last_exit: Option<String> = None;
    loop {
        // SAFETY: this worker is single-threaded; the child only makes system calls before
        // it starts its own threads.
        let parent = unsafe { libc::getpid() };
        let preload = preload_key();
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            child_main(parent, restarts, last_exit.clone(), preload);
        }
        if pid < 0 {
            warning!("qwen3_embed: cannot start the model server process: {}", std::io::Error::last_os_error());
            if !BackgroundWorker::wait_latch(Some(Duration::from_secs(5))) {
                return;
            }
            continue;
        }
        log!("qwen3_embed: model server process {pid} started");
        let started = Instant::now();
        let status = loop {
            if !BackgroundWorker::wait_latch(Some(Duration::from_millis(100))) {
                stop_child(pid);
                return;
            }
            if BackgroundWorker::sighup_received() {
                // SAFETY: the standard reload in a background worker's main loop.
                unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
            }
            let mut status = 0;
            // SAFETY: reaping our own child without blocking.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                break status;
            }
        };
        let how = describe(status);
        warning!("qwen3_embed: model server process {pid} {how}; starting a new one");
        last_exit = Some(format!("the previous model server process ({pid}) {how}"));
        restarts += 1;
        // A process that fails at once (say, it cannot bind its socket) is not retried in a loop;
        // one that was killed (kill -9, the OOM killer) is replaced at once, however young.
        let killed = libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL;
        if !killed
            && started.elapsed() < Duration::from_secs(5)
            && !BackgroundWorker::wait_latch(Some(Duration::from_secs(1)))
        {
            return;
        }
    }
}
