//! The model server: one loaded model, requests from many callers over a Unix socket, and a
//! batcher that runs concurrent embedding requests in shared forward passes.
//!
//! One thread per connection reads the request and queues it, then keeps reading: when the
//! caller hangs up before its answer (a cancelled statement), the request is withdrawn. The
//! batcher takes the oldest request and, while the token budget allows and the first request's
//! wait has not run out, the following requests for the same model; it skips withdrawn ones and
//! stops a forward pass (before its next layer) once all its requests are withdrawn.

use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::wire::{self, InfoSummary, ModelKey, Reply, Request, Stats, Truncation};
use crate::pool::check_dims;
use crate::{DeviceSpec, Engine, EngineError, EngineOptions};

pub struct ServerOptions {
    /// A model to load at start, before the first request asks for it.
    pub preload: Option<ModelKey>,
    /// Restarts before this process (shown in the stats).
    pub restarts: u64,
    /// Why the previous process ended, if it did: the first `last_error`.
    pub last_exit: Option<String>,
    /// Where log lines go.
    pub log: fn(&str),
}

struct Job {
    req: Request,
    arrived: Instant,
    withdrawn: AtomicBool,
    /// The caller's connection, taken by whoever answers.
    out: Mutex<Option<UnixStream>>,
}

impl Job {
    fn withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::SeqCst)
    }

    fn answer(&self, reply: &Reply, tail: &[u8]) -> bool {
        let Some(mut s) = lock(&self.out).take() else { return false };
        let ok = wire::write_frame(&mut s, reply, tail).is_ok();
        let _ = s.shutdown(std::net::Shutdown::Both);
        ok
    }

    fn answered(&self) -> bool {
        lock(&self.out).is_none()
    }
}

struct Shared {
    queue: Mutex<VecDeque<Arc<Job>>>,
    wake: Condvar,
    stats: Mutex<Stats>,
    started: Instant,
    /// Connections open now: callers waiting for an answer or still sending.
    open: AtomicUsize,
    log: fn(&str),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn push(&self, job: Arc<Job>) {
        lock(&self.queue).push_back(job);
        self.wake.notify_all();
    }

    /// The oldest request still wanted, waiting for one.
    fn pop(&self) -> Arc<Job> {
        let mut q = lock(&self.queue);
        loop {
            while let Some(j) = q.pop_front() {
                if !j.withdrawn() {
                    return j;
                }
            }
            q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The oldest request if `fits` it, waiting until `deadline` for one to arrive.
    fn pop_if(&self, fits: impl Fn(&Job) -> bool, deadline: Option<Instant>) -> Option<Arc<Job>> {
        let mut q = lock(&self.queue);
        loop {
            while q.front().is_some_and(|j| j.withdrawn()) {
                q.pop_front();
            }
            if let Some(j) = q.front() {
                return if fits(j) { q.pop_front() } else { None };
            }
            let now = Instant::now();
            match deadline {
                Some(d) if d > now => {
                    q = self.wake.wait_timeout(q, d - now).unwrap_or_else(|p| p.into_inner()).0;
                }
                _ => return None,
            }
        }
    }

    fn queue_len(&self) -> usize {
        lock(&self.queue).len()
    }

    fn stats(&self) -> Stats {
        let mut s = lock(&self.stats).clone();
        s.queue_depth = self.queue_len();
        s.uptime_s = self.started.elapsed().as_secs_f64();
        s
    }

    fn error(&self, e: &EngineError) {
        lock(&self.stats).last_error = Some(e.to_string());
    }
}

/// Serves requests on `listener` until the process ends.
pub fn serve(listener: UnixListener, opts: ServerOptions) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        wake: Condvar::new(),
        stats: Mutex::new(Stats {
            pid: std::process::id(),
            restarts: opts.restarts,
            last_error: opts.last_exit.clone(),
            ..Stats::default()
        }),
        started: Instant::now(),
        open: AtomicUsize::new(0),
        log: opts.log,
    });
    let batcher = shared.clone();
    let preload = opts.preload.clone();
    std::thread::Builder::new()
        .name("qwen3-embed-batch".into())
        .spawn(move || run_batcher(&batcher, preload))?;
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let shared = shared.clone();
                shared.open.fetch_add(1, Ordering::SeqCst);
                let spawned = std::thread::Builder::new()
                    .name("qwen3-embed-conn".into())
                    .stack_size(256 << 10)
                    .spawn(move || {
                        handle_connection(&shared, stream);
                        shared.open.fetch_sub(1, Ordering::SeqCst);
                        shared.wake.notify_all();
                    });
                if let Err(e) = spawned {
                    (opts.log)(&format!("cannot start a connection thread: {e}"));
                }
            }
            Err(e) => {
                (opts.log)(&format!("accept failed: {e}"));
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Ok(())
}

fn handle_connection(shared: &Arc<Shared>, mut stream: UnixStream) {
    let parsed = wire::read_frame(&mut stream).and_then(|p| wire::parse_payload::<Request>(&p).map(|(req, _)| req));
    let req = match parsed {
        Ok(req) => req,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return,
        Err(e) => {
            let reply = Reply::Error { kind: crate::error::ErrorKind::Server, message: format!("bad request: {e}") };
            let _ = wire::write_frame(&mut stream, &reply, &[]);
            return;
        }
    };
    if let Request::Stats = req {
        let _ = wire::write_frame(&mut stream, &Reply::Stats { stats: shared.stats() }, &[]);
        return;
    }
    let Ok(out) = stream.try_clone() else { return };
    let job = Arc::new(Job {
        req,
        arrived: Instant::now(),
        withdrawn: AtomicBool::new(false),
        out: Mutex::new(Some(out)),
    });
    shared.push(job.clone());
    // The caller sends nothing more: end of stream before the answer means it gave up.
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    if !job.answered() {
        job.withdrawn.store(true, Ordering::SeqCst);
        lock(&shared.stats).withdrawn += 1;
        lock(&job.out).take();
        shared.wake.notify_all();
    }
}

/// The engine for `key`, loading it (in place of the current one) when needed.
fn ensure(shared: &Shared, loaded: &mut Option<(ModelKey, Arc<Engine>)>, key: &ModelKey) -> Result<Arc<Engine>, EngineError> {
    if let Some((k, e)) = loaded.as_ref() {
        if k == key {
            return Ok(e.clone());
        }
    }
    // Refuse what cannot load before dropping the model that works.
    let device: DeviceSpec = key.device.parse()?;
    device.resolve()?;
    if !Path::new(&key.path).exists() {
        return Err(EngineError::NotFound { path: key.path.clone().into() });
    }
    *loaded = None;
    {
        let mut s = lock(&shared.stats);
        s.model_path = None;
        s.model_load_ms = None;
    }
    (shared.log)(&format!("loading {}", key.path));
    let engine = Engine::load(Path::new(&key.path), &EngineOptions { threads: key.threads, device })?;
    let ms = engine.info().load_time.as_secs_f64() * 1000.0;
    (shared.log)(&format!("loaded {} in {ms:.0} ms ({} threads)", key.path, engine.info().threads));
    {
        let mut s = lock(&shared.stats);
        s.model_path = Some(key.path.clone());
        s.model_load_ms = Some(ms);
    }
    let engine = Arc::new(engine);
    *loaded = Some((key.clone(), engine.clone()));
    Ok(engine)
}

/// An embedding request tokenized and checked.
struct Prepared {
    seqs: Vec<Vec<u32>>,
    dims: usize,
    truncated: Vec<Truncation>,
}

fn prepare(engine: &Engine, req: &Request) -> Result<Prepared, EngineError> {
    let Request::Embed { texts, instruct, dims, max_tokens, long_input_error, .. } = req else {
        unreachable!("only embedding requests are prepared")
    };
    let dims = check_dims(*dims, engine.config().hidden)?;
    let mut seqs = Vec::with_capacity(texts.len());
    let mut truncated = Vec::new();
    for (index, text) in texts.iter().enumerate() {
        let t = engine.tokenize(text, instruct.as_deref(), *max_tokens)?;
        if t.truncated {
            if *long_input_error {
                return Err(EngineError::InputTooLong { tokens: t.full_len, limit: *max_tokens });
            }
            truncated.push(Truncation { index, full_len: t.full_len });
        }
        seqs.push(t.ids);
    }
    Ok(Prepared { seqs, dims, truncated })
}

fn run_batcher(shared: &Shared, preload: Option<ModelKey>) {
    let mut loaded = None;
    if let Some(key) = preload {
        if let Err(e) = ensure(shared, &mut loaded, &key) {
            (shared.log)(&format!("cannot load {}: {e}", key.path));
            shared.error(&e);
        }
    }
    let mut last_group = 1;
    loop {
        let job = shared.pop();
        let key = job.req.model().expect("stats requests are answered on arrival").clone();
        let engine = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ensure(shared, &mut loaded, &key))) {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                shared.error(&e);
                job.answer(&Reply::error(&e), &[]);
                continue;
            }
            Err(_) => {
                let e = EngineError::Compute("loading the model panicked".into());
                shared.error(&e);
                job.answer(&Reply::error(&e), &[]);
                continue;
            }
        };
        match &job.req {
            Request::Tokenize { text, instruct, .. } => {
                let reply = match engine.tokenize(text, instruct.as_deref(), usize::MAX) {
                    Ok(t) => Reply::Tokens { ids: t.ids, truncated: t.truncated, full_len: t.full_len },
                    Err(e) => Reply::error(&e),
                };
                job.answer(&reply, &[]);
            }
            Request::Info { .. } => {
                job.answer(&Reply::Info { info: InfoSummary::from(engine.info()) }, &[]);
            }
            Request::Embed { batch_tokens, batch_wait_ms, .. } => {
                let budget = (*batch_tokens).max(1);
                let deadline = job.arrived + Duration::from_millis(*batch_wait_ms);
                let mut group: Vec<(Arc<Job>, Prepared)> = Vec::new();
                let mut tokens = 0;
                let mut next = Some(job.clone());
                while let Some(j) = next.take() {
                    match prepare(&engine, &j.req) {
                        Ok(p) => {
                            tokens += p.seqs.iter().map(Vec::len).sum::<usize>();
                            group.push((j, p));
                        }
                        Err(e) => {
                            j.answer(&Reply::error(&e), &[]);
                        }
                    }
                    if tokens >= budget {
                        break;
                    }
                    // Wait for company only when some is likely: others are sending now, or
                    // the last forward pass was shared.
                    let others = shared.open.load(Ordering::SeqCst) > group.len() + shared.queue_len();
                    let wait = (last_group > 1 || others).then_some(deadline);
                    next = shared.pop_if(
                        |o| matches!(o.req, Request::Embed { .. }) && o.req.model() == Some(&key),
                        wait,
                    );
                }
                if !group.is_empty() {
                    last_group = group.len();
                    run_group(shared, &engine, group, budget);
                }
            }
            Request::Stats => {}
        }
    }
}

fn run_group(shared: &Shared, engine: &Engine, group: Vec<(Arc<Job>, Prepared)>, budget: usize) {
    let group: Vec<_> = group.into_iter().filter(|(j, _)| !j.withdrawn()).collect();
    if group.is_empty() {
        return;
    }
    let mut seqs = Vec::new();
    let mut dims = Vec::new();
    for (_, p) in &group {
        seqs.extend(p.seqs.iter().cloned());
        dims.extend(std::iter::repeat_n(p.dims, p.seqs.len()));
    }
    let tokens: usize = seqs.iter().map(Vec::len).sum();
    let all_withdrawn = || group.iter().all(|(j, _)| j.withdrawn());
    let start = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine.embed_tokens_each(&seqs, &dims, budget, &all_withdrawn)
    }))
    .unwrap_or_else(|_| Err(EngineError::Compute("the engine panicked".into())));
    let busy = start.elapsed().as_secs_f64();
    match result {
        Ok(vectors) => {
            let mut vectors = vectors.into_iter();
            let mut answered = 0;
            for (job, p) in &group {
                let vs: Vec<Vec<f32>> = vectors.by_ref().take(p.seqs.len()).collect();
                let reply = Reply::Vectors { dims: vec![p.dims; vs.len()], truncated: p.truncated.clone() };
                if job.answer(&reply, &wire::f32s_to_bytes(&vs)) {
                    answered += 1;
                }
            }
            let mut s = lock(&shared.stats);
            s.requests += answered;
            s.inputs += seqs.len() as u64;
            s.tokens += tokens as u64;
            s.batches += 1;
            s.busy_s += busy;
        }
        Err(EngineError::Cancelled) => {}
        Err(e) => {
            shared.error(&e);
            for (job, _) in &group {
                job.answer(&Reply::error(&e), &[]);
            }
        }
    }
}
