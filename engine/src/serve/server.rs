//! The model server: loaded models (embedders and rerankers alike), requests from many callers
//! over a Unix socket, and a batcher that runs concurrent requests for one model in shared
//! forward passes. Every request runs through one handler whatever the model's task
//! (`Request::Run`, `Engine::run_prepared`): an embedder answers vectors, a reranker scores.
//!
//! Callers send token ids, never text: they tokenize themselves (the extension's backends do,
//! cut before tokenizing as `crate::cut` proves safe), so a huge input costs its own session,
//! not the thread every session's forward passes go through.
//!
//! One thread per connection reads the request and queues it, then keeps reading: when the
//! caller hangs up before its answer (a cancelled statement), the request is withdrawn. The
//! batcher takes requests in turns: the role served least recently first, within it the backend
//! served least recently, then that backend's oldest request; while the forward pass's token
//! budget allows and the first request's wait has not run out, it adds the next ones in the same
//! order for the same model. It skips withdrawn ones and stops a forward pass (before its next
//! layer) once all its requests are withdrawn.
//!
//! Several models stay loaded at once, keyed by path, device and threads: a request for any of
//! them is served in its turn among all queued requests for loaded models. Loading never holds
//! the request loop: a request for a model not loaded starts a load (one at a time) on a thread
//! of its own, and until it ends, requests for the loaded models keep being served while those
//! for the new one wait, each free to withdraw. A failed load answers the requests that waited
//! for it with its error. The loaded models' weights (`ModelInfo::resident_bytes`) are bounded
//! by `max_model_bytes`: a new model that would take them past it unloads the least recently
//! used others until it fits (between forward-pass groups, so never a model in use; a model
//! larger than the whole budget is still loaded, alone).
//!
//! Compute memory is bounded by tokens: each run request is charged, on arrival, its tokens; one
//! that would take the tokens in flight past the server's limit is refused at once
//! (`ServerBusy`), and so is one that would take its role past the role's share of that limit
//! (`RoleShare`), so that one role can never keep every other out.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::wire::{self, Caller, InfoSummary, ModelKey, Reply, Request, ResidentModel, Stats};
use crate::query_cache::QueryCache;
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
    /// Most tokens of all requests queued or running at once.
    pub max_tokens_in_flight: usize,
    /// The part of `max_tokens_in_flight` one role may hold, in percent (1..=100).
    pub role_share_percent: usize,
    /// The packed-weight cache's directory (`EngineOptions::cache_dir`).
    pub cache_dir: Option<std::path::PathBuf>,
    /// What the cache may take of the disk (`EngineOptions::cache_limits`).
    pub cache_limits: crate::cache::Limits,
    /// Most bytes of the models loaded at once (`ModelInfo::resident_bytes` of each): past it,
    /// loading a model unloads the least recently used others.
    pub max_model_bytes: u64,
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
            role_share_percent: 100,
            cache_dir: None,
            cache_limits: crate::cache::Limits::default(),
            max_model_bytes: u64::MAX,
            load: Engine::load,
        }
    }
}

/// The server's token budget: tokens held in all, and by each role.
struct Budget {
    limit: usize,
    role_limit: usize,
    held: Mutex<(usize, HashMap<u32, usize>)>,
}

/// Tokens charged to the budget, given back when dropped.
struct Charge {
    budget: Arc<Budget>,
    role: u32,
    tokens: usize,
}

impl Budget {
    fn charge(self: &Arc<Self>, role: u32, tokens: usize) -> Result<Charge, EngineError> {
        let mut held = lock(&self.held);
        if held.0 + tokens > self.limit {
            return Err(EngineError::ServerBusy { in_flight: held.0, tokens, limit: self.limit });
        }
        let by_role = held.1.get(&role).copied().unwrap_or(0);
        if by_role + tokens > self.role_limit {
            return Err(EngineError::RoleShare { held: by_role, tokens, limit: self.role_limit });
        }
        held.0 += tokens;
        *held.1.entry(role).or_default() += tokens;
        Ok(Charge { budget: self.clone(), role, tokens })
    }

    fn in_flight(&self) -> usize {
        lock(&self.held).0
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let mut held = lock(&self.budget.held);
        held.0 -= self.tokens;
        if let Some(r) = held.1.get_mut(&self.role) {
            *r -= self.tokens;
            if *r == 0 {
                held.1.remove(&self.role);
            }
        }
    }
}

struct Job {
    req: Request,
    /// A run request's token sequences.
    seqs: Vec<Vec<u32>>,
    caller: Caller,
    arrived: Instant,
    withdrawn: AtomicBool,
    /// The caller's connection, taken by whoever answers.
    out: Mutex<Option<UnixStream>>,
    /// Tokens charged to the server's budget, given back once answered or gone.
    charge: Mutex<Option<Charge>>,
}

impl Job {
    fn withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::SeqCst)
    }

    fn release(&self) {
        lock(&self.charge).take();
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

/// The requests waiting, and when each role and each backend was last served.
#[derive(Default)]
struct Queue {
    jobs: Vec<Arc<Job>>,
    turn: u64,
    role_served: HashMap<u32, u64>,
    pid_served: HashMap<u32, u64>,
}

/// Past this many remembered roles or backends, those with nothing queued are forgotten.
const REMEMBERED: usize = 4096;

impl Queue {
    /// Takes the request whose turn it is among those that `fits`: the role served least
    /// recently, then its backend served least recently, then the oldest.
    fn take_fair(&mut self, fits: impl Fn(&Job) -> bool) -> Option<Arc<Job>> {
        self.jobs.retain(|j| !j.withdrawn());
        let at = |m: &HashMap<u32, u64>, k: u32| m.get(&k).copied().unwrap_or(0);
        let (i, _) = self
            .jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| fits(j))
            .min_by_key(|(i, j)| (at(&self.role_served, j.caller.role), at(&self.pid_served, j.caller.pid), *i))?;
        let job = self.jobs.remove(i);
        self.turn += 1;
        self.role_served.insert(job.caller.role, self.turn);
        self.pid_served.insert(job.caller.pid, self.turn);
        if self.role_served.len() > REMEMBERED || self.pid_served.len() > REMEMBERED {
            let jobs = &self.jobs;
            self.role_served.retain(|r, _| jobs.iter().any(|j| j.caller.role == *r));
            self.pid_served.retain(|p, _| jobs.iter().any(|j| j.caller.pid == *p));
        }
        Some(job)
    }
}

/// A model held loaded, and how it has been used.
struct Resident {
    engine: Arc<Engine>,
    load_ms: f64,
    requests: u64,
    last_used: Instant,
}

impl Resident {
    fn bytes(&self) -> u64 {
        self.engine.info().resident_bytes
    }
}

/// The models held loaded, by key, within `limit` bytes in all. Only the batcher changes it.
struct Models {
    limit: u64,
    held: HashMap<ModelKey, Resident>,
}

impl Models {
    fn keys(&self) -> Vec<ModelKey> {
        self.held.keys().cloned().collect()
    }

    /// The model for `key`, if loaded, marked as used now.
    fn take_turn(&mut self, key: &ModelKey) -> Option<Arc<Engine>> {
        let r = self.held.get_mut(key)?;
        r.last_used = Instant::now();
        Some(r.engine.clone())
    }

    fn total(&self) -> u64 {
        self.held.values().map(Resident::bytes).fold(0, u64::saturating_add)
    }

    /// Holds a model just loaded, first taking out the least recently used others until it
    /// fits in `limit` (alone, when it never does): returns those taken out, for the caller to
    /// drop outside the lock. The batcher calls this between forward-pass groups, so no model
    /// is in use then (and a group's `Arc<Engine>` would keep its model alive anyway).
    fn insert(&mut self, key: ModelKey, engine: Engine) -> Vec<(ModelKey, Resident)> {
        let load_ms = engine.info().load_time.as_secs_f64() * 1000.0;
        let bytes = engine.info().resident_bytes;
        // (Loads are only for keys not held: there is no older copy of this one to replace.)
        let mut out = Vec::new();
        while self.total().saturating_add(bytes) > self.limit {
            let Some(lru) = self.held.iter().min_by_key(|(_, r)| r.last_used).map(|(k, _)| k.clone()) else {
                break;
            };
            out.extend(self.held.remove_entry(&lru));
        }
        let resident = Resident { engine: Arc::new(engine), load_ms, requests: 0, last_used: Instant::now() };
        self.held.insert(key, resident);
        out
    }

    /// The loaded models for the stats, least recently used first.
    fn list(&self) -> Vec<ResidentModel> {
        let mut held: Vec<(&ModelKey, &Resident)> = self.held.iter().collect();
        held.sort_by_key(|(_, r)| r.last_used);
        held.into_iter()
            .map(|(k, r)| ResidentModel {
                path: k.path.clone(),
                device: k.device.clone(),
                threads: k.threads,
                task: r.engine.task().name().to_string(),
                bytes: r.bytes(),
                load_ms: r.load_ms,
                requests: r.requests,
                idle_s: r.last_used.elapsed().as_secs_f64(),
            })
            .collect()
    }
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    stats: Mutex<Stats>,
    started: Instant,
    /// Connections open now: callers waiting for an answer or still sending.
    open: AtomicUsize,
    log: fn(&str),
    budget: Arc<Budget>,
    cache_dir: Option<std::path::PathBuf>,
    cache_limits: crate::cache::Limits,
    load: Loader,
    /// A load that has ended, for the batcher to take.
    loaded: Mutex<Option<(ModelKey, Result<Engine, EngineError>)>>,
    /// The models loaded now.
    models: Mutex<Models>,
    /// Results of queries already computed (`Request::Run::query_cache_bytes`).
    queries: QueryCache,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn push(&self, job: Arc<Job>) {
        lock(&self.queue).jobs.push(job);
        self.wake.notify_all();
    }

    /// When no load is under way, the model of the oldest request for a model not among the
    /// `resident` ones; else the request whose turn it is among those for resident models;
    /// else, after waiting a while, nothing.
    fn next(&self, resident: &[ModelKey], loading: bool) -> Next {
        let is_resident = |j: &Job| j.req.model().is_some_and(|k| resident.contains(k));
        let mut q = lock(&self.queue);
        q.jobs.retain(|j| !j.withdrawn());
        if !loading {
            if let Some(key) = q.jobs.iter().find(|j| !is_resident(j)).and_then(|j| j.req.model()) {
                return Next::Load(key.clone());
            }
        }
        if let Some(job) = q.take_fair(is_resident) {
            return Next::Serve(job);
        }
        let _unused = self.wake.wait_timeout(q, Duration::from_millis(100));
        Next::Nothing
    }

    /// Answers every queued request for `key` with `e`.
    fn fail_all(&self, key: &ModelKey, e: &EngineError) {
        let failed: Vec<Arc<Job>> = {
            let mut q = lock(&self.queue);
            let (failed, kept): (Vec<Arc<Job>>, Vec<Arc<Job>>) =
                q.jobs.drain(..).partition(|j| j.req.model() == Some(key));
            q.jobs = kept;
            failed
        };
        for j in failed {
            j.answer(&Reply::error(e), &[]);
        }
    }

    /// The request whose turn it is among those that `fits`; when none is queued at all,
    /// waiting until `deadline` for one to arrive.
    fn pop_if(&self, fits: impl Fn(&Job) -> bool, deadline: Option<Instant>) -> Option<Arc<Job>> {
        let mut q = lock(&self.queue);
        loop {
            if let Some(j) = q.take_fair(&fits) {
                return Some(j);
            }
            if !q.jobs.is_empty() {
                return None;
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
        lock(&self.queue).jobs.len()
    }

    fn stats(&self) -> Stats {
        let mut s = lock(&self.stats).clone();
        s.queue_depth = self.queue_len();
        s.uptime_s = self.started.elapsed().as_secs_f64();
        s.tokens_in_flight = self.budget.in_flight();
        s.max_tokens_in_flight = self.budget.limit;
        s.max_tokens_per_role = self.budget.role_limit;
        let models = lock(&self.models);
        s.models = models.list();
        s.max_model_bytes = models.limit;
        s.query_cache = self.queries.stats();
        s
    }

    fn error(&self, e: &EngineError) {
        lock(&self.stats).last_error = Some(e.message());
    }
}

/// Serves requests on `listener` until the process ends.
pub fn serve(listener: UnixListener, opts: ServerOptions) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
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
        budget: Arc::new(Budget {
            limit: opts.max_tokens_in_flight.max(1),
            role_limit: (opts.max_tokens_in_flight.max(1) as u128 * opts.role_share_percent.clamp(1, 100) as u128 / 100)
                .max(1) as usize,
            held: Mutex::new((0, HashMap::new())),
        }),
        cache_dir: opts.cache_dir.clone(),
        cache_limits: opts.cache_limits,
        load: opts.load,
        loaded: Mutex::new(None),
        models: Mutex::new(Models { limit: opts.max_model_bytes, held: HashMap::new() }),
        queries: QueryCache::new(),
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
    let parsed = wire::read_frame(&mut stream).and_then(|p| {
        let (req, tail) = wire::parse_payload::<Request>(&p)?;
        let seqs = match &req {
            Request::Run { lens, .. } => wire::bytes_to_ids(tail, lens)?,
            _ => Vec::new(),
        };
        Ok((req, seqs))
    });
    let (mut req, seqs) = match parsed {
        Ok(r) => r,
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
    let caller = match &req {
        Request::Run { caller, .. } => *caller,
        _ => Caller::default(),
    };
    let tokens = seqs.iter().map(Vec::len).fold(0usize, usize::saturating_add);
    let canonical = canonical_device(&mut req);
    if canonical.is_ok() {
        if let Some((reply, vectors)) = answer_from_cache(shared, &req, &seqs) {
            let _ = wire::write_frame(&mut stream, &reply, &wire::f32s_to_bytes(&vectors));
            return;
        }
    }
    let admitted = canonical.and_then(|()| shared.budget.charge(caller.role, tokens));
    let charge = match admitted {
        Ok(c) => c,
        Err(e) => {
            let _ = wire::write_frame(&mut stream, &Reply::error(&e), &[]);
            return;
        }
    };
    let Ok(out) = stream.try_clone() else { return };
    let job = Arc::new(Job {
        req,
        seqs,
        caller,
        arrived: Instant::now(),
        withdrawn: AtomicBool::new(false),
        out: Mutex::new(Some(out)),
        charge: Mutex::new(Some(charge)),
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
        job.release();
        lock(&shared.stats).withdrawn += 1;
        lock(&job.out).take();
        shared.wake.notify_all();
    }
}

/// Writes the device the request's model would run on in place of its spelling, so that every
/// spelling of one device ("auto", "cpu", "CPU") names the same loaded model.
fn canonical_device(req: &mut Request) -> Result<(), EngineError> {
    let model = match req {
        Request::Run { model, .. } | Request::Info { model } => model,
        Request::Stats => return Ok(()),
    };
    model.device = model.device.parse::<DeviceSpec>()?.resolve()?.to_string();
    Ok(())
}

/// The most tokens one request may have: its own limit, and never more than the server holds.
fn request_limit(shared: &Shared, asked: usize) -> usize {
    asked.min(shared.budget.limit)
}

/// A run request's token sequences checked against its model (the task among them) and the
/// request's limits, never more tokens than the server holds in flight.
fn prepare(shared: &Shared, engine: &Engine, req: &Request, seqs: &[Vec<u32>]) -> Result<Prepared, EngineError> {
    let Request::Run { task, dims, max_tokens, max_request_tokens, expect_fingerprints, .. } = req else {
        unreachable!("only run requests are prepared")
    };
    let limits = Limits {
        max_tokens: *max_tokens,
        long_input: LongInput::Error,
        max_request_tokens: request_limit(shared, *max_request_tokens),
        expect_fingerprints: expect_fingerprints.clone(),
    };
    engine.prepare_ids(*task, seqs.to_vec(), *dims, &limits)
}

/// The one sequence of a query that may be answered from the query cache (the cache bound
/// set to the caller's), or `None`.
fn cacheable<'a>(shared: &Shared, req: &Request, seqs: &'a [Vec<u32>]) -> Option<&'a [u32]> {
    let Request::Run { query_cache_bytes: Some(max), .. } = req else { return None };
    let [seq] = seqs else { return None };
    shared.queries.set_max_bytes(*max);
    Some(seq)
}

/// A cached query's answer, when its model is loaded and the request passes every check a
/// computed one would (its task, size, limits and the fingerprints it expects).
fn answer_from_cache(shared: &Shared, req: &Request, seqs: &[Vec<u32>]) -> Option<(Reply, Vec<Vec<f32>>)> {
    let seq = cacheable(shared, req, seqs)?;
    let engine = lock(&shared.models).held.get(req.model()?).map(|r| r.engine.clone())?;
    let p = prepare(shared, &engine, req, seqs).ok()?;
    let Request::Run { query_cache_scope, .. } = req else { return None };
    let v = shared.queries.get(engine.id(), *query_cache_scope, p.task, p.dims, seq)?;
    let mut s = lock(&shared.stats);
    s.requests += 1;
    s.inputs += 1;
    Some((Reply::Vectors { dims: vec![p.dims] }, vec![v]))
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
    let for_thread = key.clone();
    let spawned = std::thread::Builder::new().name("qwen3-embed-load".into()).spawn(move || {
        let key = for_thread;
        (sh.log)(&format!("loading {}", key.path));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let device: DeviceSpec = key.device.parse()?;
            let opts = EngineOptions {
                threads: key.threads,
                device,
                cache_dir: sh.cache_dir.clone(),
                cache_limits: sh.cache_limits,
                ..Default::default()
            };
            (sh.load)(Path::new(&key.path), &opts)
        }))
        .unwrap_or_else(|_| Err(EngineError::Compute("loading the model panicked".into())));
        *lock(&sh.loaded) = Some((key, result));
        sh.wake.notify_all();
    });
    if let Err(e) = spawned {
        let e = EngineError::Compute(format!("cannot start a loading thread: {e}"));
        *lock(&shared.loaded) = Some((key, Err(e)));
    }
}

/// Takes in a load that has ended: a model to hold (unloading the least recently used others
/// past the budget), or an error for the requests that waited for it.
fn finish_load(shared: &Shared, key: ModelKey, result: Result<Engine, EngineError>) {
    lock(&shared.stats).loading = None;
    let engine = match result {
        Ok(engine) => engine,
        Err(e) => {
            (shared.log)(&format!("cannot load {}: {e}", key.path));
            shared.error(&e);
            shared.fail_all(&key, &e);
            return;
        }
    };
    let info = engine.info();
    let ms = info.load_time.as_secs_f64() * 1000.0;
    let cache = &info.cache;
    if let Some(note) = &cache.note {
        (shared.log)(&format!("WARNING: {note}"));
    }
    (shared.log)(&format!(
        "loaded {} in {ms:.0} ms ({}, {} bytes, {} threads, cache {})",
        key.path,
        info.task.name(),
        info.resident_bytes,
        info.threads,
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
    let (unloaded, limit) = {
        let mut models = lock(&shared.models);
        (models.insert(key, engine), models.limit)
    };
    if !unloaded.is_empty() {
        lock(&shared.stats).model_unloads += unloaded.len() as u64;
        for (k, r) in &unloaded {
            (shared.log)(&format!("unloaded {} ({} bytes) to stay within {limit} model bytes", k.path, r.bytes()));
        }
        // The models taken out are freed here, outside the lock.
        drop(unloaded);
        crate::files::release_free_memory();
    }
}

fn run_batcher(shared: Arc<Shared>, preload: Option<ModelKey>) {
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
            finish_load(&shared, key, result);
        }
        let resident = lock(&shared.models).keys();
        let job = match shared.next(&resident, loading) {
            Next::Serve(job) => job,
            Next::Load(key) => {
                start_load(&shared, key);
                loading = true;
                continue;
            }
            Next::Nothing => continue,
        };
        let key = job.req.model().expect("only requests for a model are queued").clone();
        let engine = lock(&shared.models).take_turn(&key).expect("only requests for loaded models are served");
        match &job.req {
            Request::Info { .. } => {
                job.answer(&Reply::Info { info: InfoSummary::from(engine.info()) }, &[]);
            }
            Request::Run { batch_tokens, batch_wait_ms, .. } => {
                let budget = (*batch_tokens).max(1);
                let deadline = job.arrived + Duration::from_millis(*batch_wait_ms);
                let mut group: Vec<(Arc<Job>, Prepared)> = Vec::new();
                let mut tokens = 0;
                let mut next = Some(job.clone());
                while let Some(j) = next.take() {
                    match prepare(&shared, &engine, &j.req, &j.seqs) {
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
                    next = shared.pop_if(|o| matches!(o.req, Request::Run { .. }) && o.req.model() == Some(&key), wait);
                }
                if !group.is_empty() {
                    last_group = group.len();
                    let answered = run_group(&shared, &engine, group, budget);
                    if let Some(r) = lock(&shared.models).held.get_mut(&key) {
                        r.requests += answered;
                    }
                }
            }
            Request::Stats => {}
        }
    }
}

/// Runs one group of prepared requests for `engine` in shared forward passes and answers
/// them: the number answered.
fn run_group(shared: &Shared, engine: &Engine, group: Vec<(Arc<Job>, Prepared)>, budget: usize) -> u64 {
    let group: Vec<_> = group.into_iter().filter(|(j, _)| !j.withdrawn()).collect();
    if group.is_empty() {
        return 0;
    }
    let calls: Vec<&Prepared> = group.iter().map(|(_, p)| p).collect();
    let tokens: usize = calls.iter().map(|p| p.tokens()).sum();
    let inputs: usize = calls.iter().map(|p| p.seqs.len()).sum();
    let all_withdrawn = || group.iter().all(|(j, _)| j.withdrawn());
    let start = Instant::now();
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.run_prepared(&calls, budget, &all_withdrawn)))
            .unwrap_or_else(|_| Err(EngineError::Compute("the engine panicked".into())));
    let busy = start.elapsed().as_secs_f64();
    match result {
        Ok(per_call) => {
            let mut answered = 0;
            for ((job, p), vs) in group.iter().zip(per_call) {
                if let (Some(seq), Request::Run { query_cache_scope, .. }) =
                    (cacheable(shared, &job.req, &job.seqs), &job.req)
                {
                    shared.queries.put(engine.id(), *query_cache_scope, p.task, p.dims, seq, &vs[0]);
                }
                let reply = Reply::Vectors { dims: vec![p.dims; vs.len()] };
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
            answered
        }
        Err(EngineError::Cancelled) => 0,
        Err(e) => {
            shared.error(&e);
            for (job, _) in &group {
                job.answer(&Reply::error(&e), &[]);
            }
            0
        }
    }
}
