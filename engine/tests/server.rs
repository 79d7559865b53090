//! The model server over a real Unix socket: same vectors as the engine, batching across
//! concurrent callers, withdrawal on hang-up, model swap, and garbage that must not hurt it.

mod common;
use common::server::start;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use qwen3_embed_engine::serve::{self, wire, Caller, ModelKey, Reply, Request, ServerOptions, Stats};
use qwen3_embed_engine::{Engine, EngineError, EngineOptions, ErrorKind, Limits};

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
    let req = Request::Embed {
        model: key(rel),
        lens: seqs.iter().map(Vec::len).collect(),
        dims,
        max_tokens,
        batch_tokens: 4096,
        batch_wait_ms: wait_ms,
        max_request_tokens: usize::MAX,
        expect_fingerprints: Vec::new(),
        caller: Caller::default(),
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
    if let Request::Embed { max_tokens, .. } = &mut strict.0 {
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
        if let Request::Embed { model, .. } = &mut req.0 {
            model.device = device.into();
        }
        assert!(matches!(call(&req).unwrap().0, Reply::Vectors { .. }));
    }
    assert_eq!(stats().model_loads, loads, "a device spelling reloaded the model");
    let mut bad = embed_req("model-q8_0.gguf", &["x"], None, 0);
    if let Request::Embed { model, .. } = &mut bad.0 {
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
    if let Request::Embed { max_request_tokens, .. } = &mut req.0 {
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
