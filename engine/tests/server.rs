//! The model server over a real Unix socket: same vectors as the engine, batching across
//! concurrent callers, withdrawal on hang-up, several models loaded at once (an embedder and a
//! reranker through the one request type) within a memory budget, and garbage that must not
//! hurt it.

mod common;
use common::server::start;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use qwen3_embed_engine::serve::{self, wire, Caller, ModelKey, Reply, Request, ServerOptions, Stats};
use qwen3_embed_engine::{BackendChoice, Engine, EngineError, EngineOptions, ErrorKind, Limits, Never, Task};

/// Loads as the engine does, but takes seconds for the F16 file: a slow load.
fn slow_f16(path: &Path, opts: &EngineOptions) -> Result<Engine, EngineError> {
    if path.ends_with("model-f16.gguf") {
        std::thread::sleep(SLOW_LOAD);
    }
    Engine::load(path, opts)
}

const SLOW_LOAD: Duration = Duration::from_secs(3);

/// The tests share one server and check its counters and batch composition: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// One server for the whole test binary, on a socket in a temporary directory.
fn socket() -> &'static Path {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    SOCKET.get_or_init(|| {
        start(ServerOptions { preload: Some(key("model-q8_0.gguf")), load: slow_f16, ..ServerOptions::default() })
    })
}

fn key(rel: &str) -> ModelKey {
    ModelKey { path: common::tiny().join(rel).display().to_string(), device: "cpu".into(), threads: 2 }
}

/// An embedding request as the extension's backends send it: tokenized by the caller, token ids
/// in the tail. (Every fixture model has the same tokenizer.)
type Call = (Request, Vec<u8>);

fn embed_req(rel: &str, texts: &[&str], dims: Option<usize>, wait_ms: u64) -> Call {
    limited_req(rel, texts, dims, wait_ms, 8192)
}

fn limited_req(rel: &str, texts: &[&str], dims: Option<usize>, wait_ms: u64, max_tokens: usize) -> Call {
    let limits = Limits { max_tokens, ..Limits::default() };
    let t = common::engine("model-q8_0.gguf").tokenizer().tokenize_call(texts, None, &limits, &|| false).unwrap();
    ids_req(rel, &t.seqs, dims, wait_ms, max_tokens)
}

fn ids_req(rel: &str, seqs: &[Vec<u32>], dims: Option<usize>, wait_ms: u64, max_tokens: usize) -> Call {
    run_req(key(rel), Task::Embedding, seqs, dims, wait_ms, max_tokens)
}

fn run_req(
    model: ModelKey,
    task: Task,
    seqs: &[Vec<u32>],
    dims: Option<usize>,
    wait_ms: u64,
    max_tokens: usize,
) -> Call {
    let req = Request::Run {
        model,
        task,
        lens: seqs.iter().map(Vec::len).collect(),
        dims,
        max_tokens,
        batch_tokens: 4096,
        batch_wait_ms: wait_ms,
        max_request_tokens: usize::MAX,
        expect_fingerprints: Vec::new(),
        caller: Caller::default(),
        query_cache_bytes: None,
        query_cache_scope: 0,
    };
    (req, wire::ids_to_bytes(seqs))
}

fn call(c: &Call) -> Result<(Reply, Vec<u8>), EngineError> {
    serve::call(socket(), &c.0, &c.1, Duration::from_secs(10), &mut || false)
}

fn stats_req() -> Call {
    (Request::Stats, Vec::new())
}

fn embed(rel: &str, texts: &[&str], dims: Option<usize>, wait_ms: u64) -> Vec<Vec<f32>> {
    match call(&embed_req(rel, texts, dims, wait_ms)).unwrap() {
        (Reply::Vectors { dims, .. }, tail) => wire::bytes_to_f32s(&tail, &dims).unwrap(),
        (other, _) => panic!("unexpected reply {other:?}"),
    }
}

fn stats() -> Stats {
    match call(&stats_req()).unwrap() {
        (Reply::Stats { stats }, _) => stats,
        (other, _) => panic!("unexpected reply {other:?}"),
    }
}

fn direct(rel: &str, texts: &[&str], dims: Option<usize>) -> Vec<Vec<f32>> {
    common::embed_texts(common::engine(rel), texts, None, dims, 8192, 4096).unwrap()
}

#[test]
fn a_lone_request_gets_the_engines_bits() {
    let _serial = serial();
    let texts = ["hello world", "a second, longer input for the same pass", "ünïcödé"];
    assert_eq!(embed("model-q8_0.gguf", &texts, None, 0), direct("model-q8_0.gguf", &texts, None));
    assert_eq!(embed("model-q8_0.gguf", &texts, Some(64), 0), direct("model-q8_0.gguf", &texts, Some(64)));
}

#[test]
fn concurrent_requests_share_forward_passes_and_agree_with_the_engine() {
    let _serial = serial();
    let before = stats();
    let callers = 8;
    let rounds = 4;
    let barrier = Arc::new(Barrier::new(callers));
    let handles: Vec<_> = (0..callers)
        .map(|c| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for r in 0..rounds {
                    let text = format!("caller {c} round {r}: some words to embed");
                    barrier.wait();
                    let v = embed("model-q8_0.gguf", &[&text], Some(128), 50);
                    out.push((text, v.into_iter().next().unwrap()));
                }
                out
            })
        })
        .collect();
    for h in handles {
        for (text, v) in h.join().unwrap() {
            let want = &direct("model-q8_0.gguf", &[&text], Some(128))[0];
            let cos = common::cosine(&v, want);
            assert!(cos >= 0.99999, "{text}: cos {cos}");
        }
    }
    let after = stats();
    let requests = after.requests - before.requests;
    let batches = after.batches - before.batches;
    assert!(requests >= (callers * rounds) as u64, "{requests} requests");
    assert!(batches < requests, "{requests} requests ran in {batches} forward-pass groups: no batching");
}

#[test]
fn errors_come_back_with_their_kind() {
    let _serial = serial();
    let missing = embed_req("no-such-model.gguf", &["x"], None, 0);
    match call(&missing) {
        Err(EngineError::Remote { kind: ErrorKind::NotFound, message }) => {
            assert!(message.contains("no-such-model.gguf"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    match call(&embed_req("model-q8_0.gguf", &["x"], Some(7), 0)) {
        Err(EngineError::Remote { kind: ErrorKind::InvalidDims, .. }) => {}
        other => panic!("{other:?}"),
    }
    // A sequence longer than the request's own per-input limit.
    let long = limited_req("model-q8_0.gguf", &["many more than four tokens in this text"], None, 0, 8192);
    let mut strict = long.clone();
    if let Request::Run { max_tokens, .. } = &mut strict.0 {
        *max_tokens = 4;
    }
    match call(&strict) {
        Err(EngineError::Remote { kind: ErrorKind::InputTooLong, .. }) => {}
        other => panic!("{other:?}"),
    }
    // The server still works, on the same model.
    assert_eq!(embed("model-q8_0.gguf", &["x"], None, 0), direct("model-q8_0.gguf", &["x"], None));
}

#[test]
fn the_server_checks_the_ids_it_is_sent() {
    let _serial = serial();
    // An id past the embedding table, an empty sequence, and lengths that do not match the tail.
    match call(&ids_req("model-q8_0.gguf", &[vec![1, 2, 151_669]], None, 0, 8192)) {
        Err(EngineError::Remote { kind: ErrorKind::Encode, message }) => {
            assert!(message.contains("151669"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        call(&ids_req("model-q8_0.gguf", &[vec![]], None, 0, 8192)),
        Err(EngineError::Remote { kind: ErrorKind::Encode, .. })
    ));
    let (req, mut tail) = ids_req("model-q8_0.gguf", &[vec![1, 2, 3]], None, 0, 8192);
    tail.truncate(8);
    match call(&(req, tail)) {
        Err(EngineError::Remote { kind: ErrorKind::Server, message }) => {
            assert!(message.contains("bad request"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // What a client sends after truncating is served: the same vector as the engine's.
    let text = "many more than four tokens in this text";
    let limits = Limits { max_tokens: 4, ..Limits::default() };
    let t = common::engine("model-q8_0.gguf").tokenizer().tokenize_call(&[text], None, &limits, &|| false).unwrap();
    assert_eq!((t.truncated.len(), t.truncated[0].index, t.seqs[0].len()), (1, 0, 4));
    match call(&ids_req("model-q8_0.gguf", &t.seqs, None, 0, 4)).unwrap() {
        (Reply::Vectors { dims }, tail) => {
            let v = wire::bytes_to_f32s(&tail, &dims).unwrap();
            let want = common::embed_texts(common::engine("model-q8_0.gguf"), &[text], None, None, 4, 4096);
            assert_eq!(v, want.unwrap());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn another_model_path_is_loaded_on_request() {
    let _serial = serial();
    let info = |rel: &str| match call(&(Request::Info { model: key(rel) }, Vec::new())).unwrap() {
        (Reply::Info { info }, _) => info,
        other => panic!("{other:?}"),
    };
    let q4 = info("model-q4_k_m.gguf");
    assert!(q4.path.ends_with("model-q4_k_m.gguf"));
    assert_eq!(embed("model-q4_k_m.gguf", &["swap"], None, 0), direct("model-q4_k_m.gguf", &["swap"], None));
    let q8 = info("model-q8_0.gguf");
    assert!(q8.path.ends_with("model-q8_0.gguf"));
    assert_ne!(q4.fingerprint, q8.fingerprint);
}

#[test]
fn a_caller_that_hangs_up_withdraws_its_request() {
    let _serial = serial();
    let long = "word ".repeat(3000);
    let before = stats();
    for _ in 0..3 {
        let mut s = UnixStream::connect(socket()).unwrap();
        let (req, tail) = embed_req("model-q8_0.gguf", &[&long], None, 0);
        wire::write_frame(&mut s, &req, &tail).unwrap();
        drop(s);
    }
    let mut stopped = 0;
    let (req, tail) = embed_req("model-q8_0.gguf", &[&long], None, 0);
    let r = serve::call(socket(), &req, &tail, Duration::from_secs(5), &mut || {
        stopped += 1;
        stopped > 2
    });
    assert!(matches!(r, Err(EngineError::Cancelled)), "{r:?}");
    std::thread::sleep(Duration::from_millis(300));
    let after = stats();
    assert!(after.withdrawn >= before.withdrawn + 4, "withdrawn {} -> {}", before.withdrawn, after.withdrawn);
    assert_eq!(embed("model-q8_0.gguf", &["after"], None, 0), direct("model-q8_0.gguf", &["after"], None));
}

#[test]
fn malformed_and_truncated_messages_do_not_hurt_the_server() {
    let _serial = serial();
    let send = |bytes: &[u8], close_early: bool| {
        let mut s = UnixStream::connect(socket()).unwrap();
        let _ = s.write_all(bytes);
        if close_early {
            return None;
        }
        s.shutdown(std::net::Shutdown::Write).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        wire::read_frame(&mut s).ok().and_then(|p| wire::parse_payload::<Reply>(&p).ok().map(|r| r.0))
    };
    // A huge length, a zero length, a length longer than what follows, bad JSON, a body longer
    // than its frame, a well-formed frame of the wrong shape, and a connection closed mid-frame.
    assert!(matches!(send(&u32::MAX.to_le_bytes(), false), Some(Reply::Error { .. })));
    assert!(matches!(send(&0u32.to_le_bytes(), false), Some(Reply::Error { .. })));
    assert!(send(&[100, 0, 0, 0, 1, 2, 3], false).is_none());
    let mut bad_json = 12u32.to_le_bytes().to_vec();
    bad_json.extend_from_slice(&8u32.to_le_bytes());
    bad_json.extend_from_slice(b"{\"op\":!!");
    assert!(matches!(send(&bad_json, false), Some(Reply::Error { .. })));
    let mut long_body = 8u32.to_le_bytes().to_vec();
    long_body.extend_from_slice(&1000u32.to_le_bytes());
    long_body.extend_from_slice(b"{}{}");
    assert!(matches!(send(&long_body, false), Some(Reply::Error { .. })));
    let mut wrong = Vec::new();
    wire::write_frame(&mut wrong, &serde_json::json!({"op": "embed", "texts": 5}), &[]).unwrap();
    assert!(matches!(send(&wrong, false), Some(Reply::Error { .. })));
    let mut half = Vec::new();
    let (req, tail) = embed_req("model-q8_0.gguf", &["half"], None, 0);
    wire::write_frame(&mut half, &req, &tail).unwrap();
    send(&half[..half.len() / 2], true);
    // Still serving.
    assert_eq!(embed("model-q8_0.gguf", &["still here"], None, 0), direct("model-q8_0.gguf", &["still here"], None));
}

#[test]
fn no_server_is_a_clear_error_after_the_wait() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let r = serve::call(&dir.path().join("none.sock"), &Request::Stats, &[], Duration::from_millis(100), &mut || false);
    match r {
        Err(EngineError::Server(m)) => assert!(m.contains("not reachable"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_slow_load_holds_no_one_else_and_its_waiters_can_leave() {
    let _serial = serial();
    assert_eq!(embed("model-q8_0.gguf", &["warm"], None, 0), direct("model-q8_0.gguf", &["warm"], None));
    let waiter = std::thread::spawn(|| embed("model-f16.gguf", &["slow"], None, 0));
    std::thread::sleep(Duration::from_millis(300));
    // While the F16 model loads, the loaded model answers, and the stats say what is loading.
    for i in 0..5 {
        let text = format!("served during the load {i}");
        assert_eq!(embed("model-q8_0.gguf", &[&text], None, 0), direct("model-q8_0.gguf", &[&text], None));
    }
    let during = stats();
    assert!(during.loading.as_deref().is_some_and(|p| p.ends_with("model-f16.gguf")), "{:?}", during.loading);
    // A second caller for the loading model gives up while it waits.
    let mut polls = 0;
    let (req, tail) = embed_req("model-f16.gguf", &["leaves"], None, 0);
    let r = serve::call(socket(), &req, &tail, Duration::from_secs(5), &mut || {
        polls += 1;
        polls > 20
    });
    assert!(matches!(r, Err(EngineError::Cancelled)), "{r:?}");
    assert_eq!(waiter.join().unwrap(), direct("model-f16.gguf", &["slow"], None));
    let after = stats();
    assert!(after.loading.is_none());
    assert_eq!(after.model_loads, during.model_loads + 1);
    assert_eq!(embed("model-q8_0.gguf", &["back"], None, 0), direct("model-q8_0.gguf", &["back"], None));
}

#[test]
fn every_spelling_of_a_device_is_one_model() {
    let _serial = serial();
    assert_eq!(embed("model-q8_0.gguf", &["cpu"], None, 0).len(), 1);
    let loads = stats().model_loads;
    for device in ["auto", "CPU", "cpu", " Auto ", "cpu"] {
        let mut req = embed_req("model-q8_0.gguf", &["spelled"], None, 0);
        if let Request::Run { model, .. } = &mut req.0 {
            model.device = device.into();
        }
        assert!(matches!(call(&req).unwrap().0, Reply::Vectors { .. }));
    }
    assert_eq!(stats().model_loads, loads, "a device spelling reloaded the model");
    let mut bad = embed_req("model-q8_0.gguf", &["x"], None, 0);
    if let Request::Run { model, .. } = &mut bad.0 {
        model.device = "gpu".into();
    }
    assert!(matches!(call(&bad), Err(EngineError::Remote { kind: ErrorKind::Device, .. })));
    assert_eq!(stats().model_loads, loads);
}

#[test]
fn token_budgets_refuse_what_is_too_big() {
    let _serial = serial();
    let sock = start(ServerOptions { max_tokens_in_flight: 1000, ..ServerOptions::default() });
    let send = |c: &Call| serve::call(&sock, &c.0, &c.1, Duration::from_secs(10), &mut || false);
    // Over the server's budget by its tokens alone: refused before any work.
    let big = vec![vec![1u32; 600], vec![1u32; 600]];
    match send(&ids_req("model-q8_0.gguf", &big, None, 0, 8192)) {
        Err(EngineError::Remote { kind: ErrorKind::ServerBusy, message }) => {
            assert!(message.contains("1000"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // Over the request's own limit.
    let mut req = embed_req("model-q8_0.gguf", &["one two three four five six seven eight", "nine ten"], None, 0);
    if let Request::Run { max_request_tokens, .. } = &mut req.0 {
        *max_request_tokens = 6;
    }
    match send(&req) {
        Err(EngineError::Remote { kind: ErrorKind::RequestTooLarge, .. }) => {}
        other => panic!("{other:?}"),
    }
    // What fits is served, and the budget is free again afterwards.
    let fits = ["small enough"; 3];
    for _ in 0..3 {
        match send(&embed_req("model-q8_0.gguf", &fits, None, 0)).unwrap() {
            (Reply::Vectors { dims }, _) => assert_eq!(dims.len(), 3),
            other => panic!("{other:?}"),
        }
    }
    let s = match send(&stats_req()).unwrap() {
        (Reply::Stats { stats }, _) => stats,
        other => panic!("{other:?}"),
    };
    assert_eq!((s.tokens_in_flight, s.max_tokens_in_flight), (0, 1000));
}

/// The reranker fixture's Q8_0 file, as the server is asked for it.
fn reranker_key() -> ModelKey {
    ModelKey {
        path: common::reranker(false).join("model-q8_0.gguf").display().to_string(),
        device: "cpu".into(),
        threads: 2,
    }
}

/// The reranker, loaded here as the server loads it.
fn reranker() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::load(Path::new(&reranker_key().path), &EngineOptions { threads: 2, ..Default::default() }).unwrap()
    })
}

const PAIRS: [(&str, &str); 3] = [
    ("what is the capital of France?", "Paris is the capital and largest city of France."),
    ("what is the capital of France?", "The quick brown fox jumps over the lazy dog."),
    ("how do plants make food?", "Photosynthesis turns light, water and carbon dioxide into sugar."),
];

/// The pairs as the reranker reads them.
fn pair_ids(pairs: &[(&str, &str)]) -> Vec<Vec<u32>> {
    pairs.iter().map(|(q, d)| reranker().tokenizer().tokenize_pair(q, d, None, 8192, &Never).unwrap().ids).collect()
}

fn send_to(sock: &Path, c: &Call) -> Result<(Reply, Vec<u8>), EngineError> {
    serve::call(sock, &c.0, &c.1, Duration::from_secs(30), &mut || false)
}

/// The floats of a `Vectors` reply, checked to be `per` long each.
fn floats(r: Result<(Reply, Vec<u8>), EngineError>, per: usize) -> Vec<Vec<f32>> {
    match r.unwrap() {
        (Reply::Vectors { dims }, tail) => {
            assert!(dims.iter().all(|&d| d == per), "{dims:?}");
            wire::bytes_to_f32s(&tail, &dims).unwrap()
        }
        (other, _) => panic!("unexpected reply {other:?}"),
    }
}

fn stats_of(sock: &Path) -> Stats {
    match send_to(sock, &stats_req()).unwrap() {
        (Reply::Stats { stats }, _) => stats,
        (other, _) => panic!("unexpected reply {other:?}"),
    }
}

/// Embeds `text` through `sock` and checks the engine's bits.
fn embed_checked(sock: &Path, text: &str) {
    let (req, tail) = embed_req("model-q8_0.gguf", &[text], None, 0);
    let got = floats(send_to(sock, &(req, tail)), common::engine("model-q8_0.gguf").config().hidden);
    assert_eq!(got, direct("model-q8_0.gguf", &[text], None), "{text}");
}

/// Reranks `PAIRS` through `sock` and checks the engine's bits: `rerank_tokens` on the same ids
/// in the same packing.
fn rerank_checked(sock: &Path) -> Vec<f32> {
    let seqs = pair_ids(&PAIRS);
    let got = floats(send_to(sock, &run_req(reranker_key(), Task::Rerank, &seqs, None, 0, 8192)), 1);
    let want = reranker().rerank_tokens(&seqs, 4096, &Never, &mut |_| {}).unwrap();
    let got: Vec<f32> = got.into_iter().map(|v| v[0]).collect();
    assert_eq!(
        got.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|s| s.to_bits()).collect::<Vec<_>>()
    );
    assert!(got.iter().all(|s| (0.0..=1.0).contains(s)), "{got:?}");
    got
}

#[test]
fn an_embedder_and_a_reranker_stay_loaded_side_by_side() {
    let sock = start(ServerOptions::default());
    for round in 0..3 {
        embed_checked(&sock, &format!("round {round}: embed me"));
        rerank_checked(&sock);
        let s = stats_of(&sock);
        assert_eq!((s.model_loads, s.model_unloads), (2, 0), "round {round}");
        assert_eq!(s.max_model_bytes, u64::MAX);
        let mut tasks: Vec<(&str, &str)> = s.models.iter().map(|m| (m.task.as_str(), m.path.as_str())).collect();
        tasks.sort();
        assert_eq!(tasks.len(), 2, "{:?}", s.models);
        assert_eq!(tasks[0].0, "embedding");
        assert!(tasks[0].1.ends_with("tiny/model-q8_0.gguf"), "{}", tasks[0].1);
        assert_eq!(tasks[1].0, "rerank");
        assert!(tasks[1].1.ends_with("tiny-reranker/model-q8_0.gguf"), "{}", tasks[1].1);
        for m in &s.models {
            assert_eq!(m.requests, round + 1, "{m:?}");
            assert!(m.bytes > 0 && m.load_ms > 0.0 && m.device == "cpu" && m.threads == 2, "{m:?}");
        }
    }
    // The reranker's Info says what it is.
    match send_to(&sock, &(Request::Info { model: reranker_key() }, Vec::new())).unwrap() {
        (Reply::Info { info }, _) => {
            assert_eq!(info.task, "rerank");
            assert_eq!(info.resident_bytes, reranker().info().resident_bytes);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rerank_scores_through_the_server_are_the_engines_bits() {
    let sock = start(ServerOptions::default());
    let scores = rerank_checked(&sock);
    // A lone pair, and pairs one per forward pass, too.
    let seqs = pair_ids(&PAIRS[1..2]);
    let one = floats(send_to(&sock, &run_req(reranker_key(), Task::Rerank, &seqs, None, 0, 8192)), 1);
    assert_eq!(one[0][0].to_bits(), reranker().rerank_tokens(&seqs, 4096, &Never, &mut |_| {}).unwrap()[0].to_bits());
    let seqs = pair_ids(&PAIRS);
    let mut narrow = run_req(reranker_key(), Task::Rerank, &seqs, Some(7), 0, 8192);
    if let Request::Run { batch_tokens, .. } = &mut narrow.0 {
        *batch_tokens = 1;
    }
    let got = floats(send_to(&sock, &narrow), 1);
    let want = reranker().rerank_tokens(&seqs, 1, &Never, &mut |_| {}).unwrap();
    assert_eq!(
        got.iter().map(|v| v[0].to_bits()).collect::<Vec<_>>(),
        want.iter().map(|s| s.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(scores.len(), PAIRS.len());
}

#[test]
fn a_model_asked_for_another_task_says_so() {
    let sock = start(ServerOptions::default());
    let seqs = pair_ids(&PAIRS[..1]);
    let wrong = |model: ModelKey, task: Task| match send_to(&sock, &run_req(model, task, &seqs, None, 0, 8192)) {
        Err(EngineError::Remote { kind: ErrorKind::WrongTask, message }) => message,
        other => panic!("{other:?}"),
    };
    let m = wrong(key("model-q8_0.gguf"), Task::Rerank);
    assert!(m.contains("is an embedding model, not a reranker"), "{m}");
    let m = wrong(reranker_key(), Task::Embedding);
    assert!(m.contains("is a reranker, not an embedding model"), "{m}");
    // Both models still answer what they do.
    embed_checked(&sock, "still embedding");
    rerank_checked(&sock);
    let s = stats_of(&sock);
    assert_eq!((s.model_loads, s.models.len()), (2, 2));
}

#[test]
fn past_the_memory_budget_the_least_recently_used_model_is_unloaded() {
    let embedder = common::engine("model-q8_0.gguf").info().resident_bytes;
    let both = embedder + reranker().info().resident_bytes;
    let sock = start(ServerOptions { max_model_bytes: both - 1, ..ServerOptions::default() });
    for round in 0..3u64 {
        embed_checked(&sock, &format!("round {round}"));
        let s = stats_of(&sock);
        assert_eq!((s.model_loads, s.model_unloads), (2 * round + 1, 2 * round), "round {round}");
        assert_eq!(s.models.len(), 1, "{:?}", s.models);
        assert_eq!((s.models[0].task.as_str(), s.models[0].bytes), ("embedding", embedder));
        rerank_checked(&sock);
        let s = stats_of(&sock);
        assert_eq!((s.model_loads, s.model_unloads), (2 * round + 2, 2 * round + 1), "round {round}");
        assert_eq!(s.models.len(), 1, "{:?}", s.models);
        assert_eq!(s.models[0].task, "rerank");
        assert_eq!(s.max_model_bytes, both - 1);
    }
    // With room for both, nothing more is unloaded.
    let roomy = start(ServerOptions { max_model_bytes: both, ..ServerOptions::default() });
    for _ in 0..2 {
        embed_checked(&roomy, "both fit");
        rerank_checked(&roomy);
    }
    let s = stats_of(&roomy);
    assert_eq!((s.model_loads, s.model_unloads, s.models.len()), (2, 0, 2));
    // A model larger than the whole budget is still loaded, alone.
    let tight = start(ServerOptions { max_model_bytes: 1, ..ServerOptions::default() });
    embed_checked(&tight, "alone");
    rerank_checked(&tight);
    embed_checked(&tight, "alone again");
    let s = stats_of(&tight);
    assert_eq!((s.model_loads, s.model_unloads, s.models.len()), (3, 2, 1));
}

/// What a model holds is about what its file holds: the Q8_0 weights, packed.
#[test]
fn resident_bytes_are_about_the_weights() {
    for (path, engine) in [
        (common::tiny().join("model-q8_0.gguf"), common::engine("model-q8_0.gguf")),
        (PathBuf::from(reranker_key().path), reranker()),
    ] {
        let file = std::fs::metadata(&path).unwrap().len();
        let held = engine.info().resident_bytes;
        assert!(held > file / 2 && held < file * 2, "{}: {held} bytes held, file {file}", path.display());
        // The candle backend keeps the GGUF's own quantized tensors: about the file, too.
        let opts = EngineOptions { threads: 2, backend: BackendChoice::Candle, ..Default::default() };
        let candle = Engine::load(&path, &opts).unwrap().info().resident_bytes;
        assert!(candle > file / 2 && candle < file * 2, "{}: {candle} bytes in candle, file {file}", path.display());
    }
}

/// A query sent twice with the query cache on: the second answer is the first's bits, counted
/// as a hit without a forward pass; another size, another model or the cache off computes.
#[test]
fn a_repeated_query_is_answered_from_the_query_cache() {
    let _serial = serial();
    let cached = |rel: &str, text: &str, dims: Option<usize>, bound: Option<u64>| {
        let mut c = embed_req(rel, &[text], dims, 0);
        if let Request::Run { query_cache_bytes, .. } = &mut c.0 {
            *query_cache_bytes = bound;
        }
        match call(&c).unwrap() {
            (Reply::Vectors { dims, .. }, tail) => wire::bytes_to_f32s(&tail, &dims).unwrap(),
            (other, _) => panic!("unexpected reply {other:?}"),
        }
    };
    let on = Some(1 << 20);
    let before = stats();
    let first = cached("model-q8_0.gguf", "a query asked twice", None, on);
    let after_first = stats();
    let second = cached("model-q8_0.gguf", "a query asked twice", None, on);
    let after_second = stats();
    assert_eq!(first, direct("model-q8_0.gguf", &["a query asked twice"], None));
    assert_eq!(
        first[0].iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
        second[0].iter().map(|f| f.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(after_first.query_cache.misses, before.query_cache.misses + 1);
    assert_eq!(after_second.query_cache.hits, before.query_cache.hits + 1);
    assert_eq!(after_second.batches, after_first.batches, "a hit runs no forward pass");
    assert!(after_second.query_cache.bytes <= after_second.query_cache.max_bytes);
    // Another size, another model, or no cache: computed, not served from the entry above.
    assert_eq!(
        cached("model-q8_0.gguf", "a query asked twice", Some(64), on),
        direct("model-q8_0.gguf", &["a query asked twice"], Some(64))
    );
    assert_eq!(
        cached("model-q4_k_m.gguf", "a query asked twice", None, on),
        direct("model-q4_k_m.gguf", &["a query asked twice"], None)
    );
    let hits = stats().query_cache.hits;
    cached("model-q8_0.gguf", "a query asked twice", None, None);
    assert_eq!(stats().query_cache.hits, hits, "a request without the cache bound is computed afresh");
}
