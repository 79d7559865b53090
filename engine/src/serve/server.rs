//! The model server: one loaded model, requests from many callers over a Unix socket, and a
//! batcher that runs concurrent embedding requests in shared forward passes.
//!
//! One thread per connection reads the request and queues it, then keeps reading: when the
//! caller hangs up before its answer (a cancelled statement), the request is withdrawn. The
//! batcher takes the oldest request and, while the token budget allows and the first request's
//! wait has not run out, the following requests for the same model; it skips withdrawn ones and
//! stops a forward pass (before its next layer) once all its requests are withdrawn.
//!
//! Loading a model never holds the request loop: a request for another model starts a load on
//! a thread of its own, and until it ends, requests for the model already loaded keep being
//! served (both models sit in memory for that time) while those for the new one wait, each
//! free to withdraw. A failed load answers the requests that waited for it with its error.
//!
//! Memory is bounded by tokens: each embedding request is charged, on arrival, an upper bound
//! of its tokens (its text bytes, capped by its per-input and per-request limits); one that
//! would take the tokens in flight past the server's limit is refused at once (`ServerBusy`).

use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::wire::{self, InfoSummary, ModelKey, Reply, Request, Stats};
use crate::{DeviceSpec, Engine, EngineError, EngineOptions, Limits, LongInput, Prepared};

/// How a model is loaded: `Engine::load`, or a stand-in in tests.
pub type Loader = fn(&Path, &EngineOptions) -> Result<Engine, EngineError>;

pub struct ServerOptions {
    /// A model to load at start, before the first request asks for it.
    pub preload: Option<ModelKey>,
    /// Restarts before this process (shown in the stats).
    pub restarts: u64,
    /// Why the previous process ended, if it did: the first `last_error`.
    pub last_exit: Option<String>,
    /// Where log lines go.
    pub log: fn(&str),
    /// Most estimated tokens of all requests queued or running at once.
    pub max_tokens_in_flight: usize,
    /// The packed-weight cache's directory (`EngineOptions::cache_dir`).
    pub cache_dir: Option<std::path::PathBuf>,
    pub load: Loader,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            preload: None,
            restarts: 0,
            last_exit: None,
            log: |_| {},
            max_tokens_in_flight: 1 << 22,
            cache_dir: None,
            load: Engine::load,
        }
    }
}

struct Job {
    req: Request,
    arrived: Instant,
    withdrawn: AtomicBool,
    /// The caller's connection, taken by whoever answers.
    out: Mutex<Option<UnixStream>>,
    /// Tokens charged to the server's budget, given back once answered or gone.
    charge: AtomicUsize,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Job {
    fn drop(&mut self) {
        self.release();
    }
}

impl Job {
    fn withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::SeqCst)
    }

    fn release(&self) {
        self.in_flight.fetch_sub(self.charge.swap(0, Ordering::SeqCst), Ordering::SeqCst);
    }

    fn answer(&self, reply: &Reply, tail: &[u8]) -> bool {
        self.release();
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
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
    cache_dir: Option<std::path::PathBuf>,
    load: Loader,
    /// A load that has ended, for the batcher to take.
    loaded: Mutex<Option<(ModelKey, Result<Engine, EngineError>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn push(&self, job: Arc<Job>) {
        lock(&self.queue).push_back(job);
        self.wake.notify_all();
    }

    /// When no load is under way, the model of the oldest request for another model than the
    /// `ready` one; else the oldest request still wanted for the `ready` model; else, after
    /// waiting a while, nothing.
    fn next(&self, ready: Option<&ModelKey>, loading: bool) -> Next {
        let mut q = lock(&self.queue);
        q.retain(|j| !j.withdrawn());
        if !loading {
            if let Some(key) = q.iter().filter_map(|j| j.req.model()).find(|&k| Some(k) != ready) {
                return Next::Load(key.clone());
            }
        }
        if let Some(i) = q.iter().position(|j| j.req.model() == ready) {
            return Next::Serve(q.remove(i).expect("position is in the queue"));
        }
        let _unused = self.wake.wait_timeout(q, Duration::from_millis(100));
        Next::Nothing
    }

    /// Answers every queued request for `key` with `e`.
    fn fail_all(&self, key: &ModelKey, e: &EngineError) {
        let failed: Vec<Arc<Job>> = {
            let mut q = lock(&self.queue);
            let (failed, kept): (Vec<Arc<Job>>, Vec<Arc<Job>>) = q.drain(..).partition(|j| j.req.model() == Some(key));
            q.extend(kept);
            failed
        };
        for j in failed {
            j.answer(&Reply::error(e), &[]);
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
        s.tokens_in_flight = self.in_flight.load(Ordering::SeqCst);
        s.max_tokens_in_flight = self.max_in_flight;
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
        in_flight: Arc::new(AtomicUsize::new(0)),
        max_in_flight: opts.max_tokens_in_flight.max(1),
        cache_dir: opts.cache_dir.clone(),
        load: opts.load,
        loaded: Mutex::new(None),
    });
    let batcher = shared.clone();
    let preload = opts.preload.clone();
    std::thread::Builder::new().name("qwen3-embed-batch".into()).spawn(move || run_batcher(batcher, preload))?;
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let shared = shared.clone();
                shared.open.fetch_add(1, Ordering::SeqCst);
                let spawned = std::thread::Builder::new().name("qwen3-embed-conn".into()).stack_size(256 << 10).spawn(
                    move || {
                        handle_connection(&shared, stream);
                        shared.open.fetch_sub(1, Ordering::SeqCst);
                        shared.wake.notify_all();
                    },
                );
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
    let mut req = match parsed {
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
    let admitted = canonical_device(&mut req).and_then(|()| admit(shared, &req));
    let charge = match admitted {
        Ok(c) => c,
        Err(e) => {
            let _ = wire::write_frame(&mut stream, &Reply::error(&e), &[]);
            return;
        }
    };
    let Ok(out) = stream.try_clone() else {
        shared.in_flight.fetch_sub(charge, Ordering::SeqCst);
        return;
    };
    let job = Arc::new(Job {
        req,
        arrived: Instant::now(),
        withdrawn: AtomicBool::new(false),
        out: Mutex::new(Some(out)),
        charge: AtomicUsize::new(charge),
        in_flight: shared.in_flight.clone(),
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

/// Writes the device the request's model would run on in place of its spelling, so that every
/// spelling of one device ("auto", "cpu", "CPU") names the same loaded model.
fn canonical_device(req: &mut Request) -> Result<(), EngineError> {
    let model = match req {
        Request::Embed { model, .. }
        | Request::Tokenize { model, .. }
        | Request::Info { model }
        | Request::Chunk { model, .. } => model,
        Request::Stats => return Ok(()),
    };
    model.device = model.device.parse::<DeviceSpec>()?.resolve()?.to_string();
    Ok(())
}

/// Charges an embedding request's upper bound of tokens to the server's budget, or refuses it.
fn admit(shared: &Shared, req: &Request) -> Result<usize, EngineError> {
    let Request::Embed { texts, instruct, max_tokens, max_request_tokens, .. } = req else {
        return Ok(0);
    };
    // A byte-level BPE token covers at least one byte; the instruction's frame adds a few.
    let per_input = instruct.as_ref().map_or(0, |i| i.len() + 16) + 1;
    let bound = texts
        .iter()
        .map(|t| (t.len() + per_input).min(*max_tokens))
        .fold(0usize, usize::saturating_add)
        .min(request_limit(shared, *max_request_tokens).saturating_add(1));
    let mut current = shared.in_flight.load(Ordering::SeqCst);
    loop {
        if current + bound > shared.max_in_flight {
            return Err(EngineError::ServerBusy { in_flight: current, tokens: bound, limit: shared.max_in_flight });
        }
        match shared.in_flight.compare_exchange(current, current + bound, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return Ok(bound),
            Err(now) => current = now,
        }
    }
}

/// The most tokens one request may have: its own limit, and never more than the server holds.
fn request_limit(shared: &Shared, asked: usize) -> usize {
    asked.min(shared.max_in_flight)
}

/// An embedding request tokenized and checked, under the request's limits and never more
/// tokens than the server holds in flight.
fn prepare(shared: &Shared, engine: &Engine, req: &Request) -> Result<Prepared, EngineError> {
    let Request::Embed {
        texts,
        instruct,
        dims,
        max_tokens,
        long_input_error,
        max_request_tokens,
        expect_fingerprints,
        ..
    } = req
    else {
        unreachable!("only embedding requests are prepared")
    };
    let limits = Limits {
        max_tokens: *max_tokens,
        long_input: if *long_input_error { LongInput::Error } else { LongInput::Truncate },
        max_request_tokens: request_limit(shared, *max_request_tokens),
        expect_fingerprints: expect_fingerprints.clone(),
    };
    engine.prepare(texts, instruct.as_deref(), *dims, &limits)
}

enum Next {
    Serve(Arc<Job>),
    Load(ModelKey),
    Nothing,
}

/// Starts loading `key` on a thread of its own; the result lands in `shared.loaded`.
fn start_load(shared: &Arc<Shared>, key: ModelKey) {
    let sh = shared.clone();
    lock(&shared.stats).loading = Some(key.path.clone());
    let spawned = std::thread::Builder::new().name("qwen3-embed-load".into()).spawn(move || {
        (sh.log)(&format!("loading {}", key.path));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let device: DeviceSpec = key.device.parse()?;
            let opts =
                EngineOptions { threads: key.threads, device, cache_dir: sh.cache_dir.clone(), ..Default::default() };
            (sh.load)(Path::new(&key.path), &opts)
        }))
        .unwrap_or_else(|_| Err(EngineError::Compute("loading the model panicked".into())));
        *lock(&sh.loaded) = Some((key, result));
        sh.wake.notify_all();
    });
    if let Err(e) = spawned {
        let e = EngineError::Compute(format!("cannot start a loading thread: {e}"));
        *lock(&shared.loaded) = Some((ModelKey { ..Default::default() }, Err(e)));
    }
}

fn run_batcher(shared: Arc<Shared>, preload: Option<ModelKey>) {
    let mut ready: Option<(ModelKey, Arc<Engine>)> = None;
    let mut loading = false;
    if let Some(key) = preload {
        start_load(&shared, key);
        loading = true;
    }
    let mut last_group = 1;
    loop {
        let finished = lock(&shared.loaded).take();
        if let Some((key, result)) = finished {
            loading = false;
            lock(&shared.stats).loading = None;
            match result {
                Ok(engine) => {
                    let ms = engine.info().load_time.as_secs_f64() * 1000.0;
                    let cache = &engine.info().cache;
                    if let Some(note) = &cache.note {
                        (shared.log)(&format!("WARNING: {note}"));
                    }
                    let threads = engine.info().threads;
                    (shared.log)(&format!(
                        "loaded {} in {ms:.0} ms ({threads} threads, cache {})",
                        key.path,
                        cache.state.as_str()
                    ));
                    {
                        let mut s = lock(&shared.stats);
                        s.model_path = Some(key.path.clone());
                        s.model_load_ms = Some(ms);
                        s.model_loads += 1;
                        s.cache = Some(cache.state.as_str().to_string());
                        s.cache_file = cache.path.as_ref().map(|p| p.display().to_string());
                        s.cache_bytes = cache.bytes;
                    }
                    // The model it replaces (if any) is freed here.
                    ready = Some((key, Arc::new(engine)));
                    crate::files::release_free_memory();
                }
                Err(e) => {
                    (shared.log)(&format!("cannot load {}: {e}", key.path));
                    shared.error(&e);
                    shared.fail_all(&key, &e);
                }
            }
        }
        let job = match shared.next(ready.as_ref().map(|(k, _)| k), loading) {
            Next::Serve(job) => job,
            Next::Load(key) => {
                start_load(&shared, key);
                loading = true;
                continue;
            }
            Next::Nothing => continue,
        };
        let (key, engine) = ready.clone().expect("only requests for the loaded model are served");
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
            Request::Chunk { text, chunk_tokens, overlap, .. } => {
                let reply = match engine.chunk(text, *chunk_tokens, *overlap) {
                    Ok(chunks) => Reply::Chunks { chunks },
                    Err(e) => Reply::error(&e),
                };
                job.answer(&reply, &[]);
            }
            Request::Embed { batch_tokens, batch_wait_ms, .. } => {
                let budget = (*batch_tokens).max(1);
                let deadline = job.arrived + Duration::from_millis(*batch_wait_ms);
                let mut group: Vec<(Arc<Job>, Prepared)> = Vec::new();
                let mut tokens = 0;
                let mut next = Some(job.clone());
                while let Some(j) = next.take() {
                    match prepare(&shared, &engine, &j.req) {
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
                    next =
                        shared.pop_if(|o| matches!(o.req, Request::Embed { .. }) && o.req.model() == Some(&key), wait);
                }
                if !group.is_empty() {
                    last_group = group.len();
                    run_group(&shared, &engine, group, budget);
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
    let calls: Vec<&Prepared> = group.iter().map(|(_, p)| p).collect();
    let tokens: usize = calls.iter().map(|p| p.tokens()).sum();
    let inputs: usize = calls.iter().map(|p| p.seqs.len()).sum();
    let all_withdrawn = || group.iter().all(|(j, _)| j.withdrawn());
    let start = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine.embed_prepared(&calls, budget, &all_withdrawn)
    }))
    .unwrap_or_else(|_| Err(EngineError::Compute("the engine panicked".into())));
    let busy = start.elapsed().as_secs_f64();
    match result {
        Ok(per_call) => {
            let mut answered = 0;
            for ((job, p), vs) in group.iter().zip(per_call) {
                let reply = Reply::Vectors { dims: vec![p.dims; vs.len()], truncated: p.truncated.clone() };
                if job.answer(&reply, &wire::f32s_to_bytes(&vs)) {
                    answered += 1;
                }
            }
            let mut s = lock(&shared.stats);
            s.requests += answered;
            s.inputs += inputs as u64;
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
