//! Fair share in the model server: roles take turns, so do backends within a role, and no role
//! may hold more than its share of the server's token budget.

mod common;
use common::server::start;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qwen3_embed_engine::serve::{self, wire, Caller, ModelKey, Reply, Request, ServerOptions};
use qwen3_embed_engine::{Engine, EngineError, EngineOptions, ErrorKind, Task};

/// Loads as the engine does, but the F16 file takes seconds: requests for it stay in flight.
fn slow_f16(path: &Path, opts: &EngineOptions) -> Result<Engine, EngineError> {
    if path.ends_with("model-f16.gguf") {
        std::thread::sleep(Duration::from_secs(3));
    }
    Engine::load(path, opts)
}

fn key(rel: &str) -> ModelKey {
    ModelKey { path: common::tiny().join(rel).display().to_string(), device: "cpu".into(), threads: 2 }
}

/// `n` sequences of `len` ordinary token ids (EOS last) from `caller`, one forward pass each.
fn req(rel: &str, n: usize, len: usize, caller: Caller) -> (Request, Vec<u8>) {
    let mut seq: Vec<u32> = (0..len as u32 - 1).map(|i| 100 + i % 1000).collect();
    seq.push(151643);
    let seqs = vec![seq; n];
    let req = Request::Run {
        model: key(rel),
        task: Task::Embedding,
        lens: seqs.iter().map(Vec::len).collect(),
        dims: Some(32),
        max_tokens: 8192,
        batch_tokens: 64,
        batch_wait_ms: 0,
        max_request_tokens: usize::MAX,
        expect_fingerprints: Vec::new(),
        caller,
        query_cache_bytes: None,
        query_cache_scope: 0,
    };
    (req, wire::ids_to_bytes(&seqs))
}

fn send(sock: &Path, r: &(Request, Vec<u8>)) -> Result<(Reply, Vec<u8>), EngineError> {
    serve::call(sock, &r.0, &r.1, Duration::from_secs(60), &mut || false)
}

fn queue_depth(sock: &Path) -> usize {
    match send(sock, &(Request::Stats, Vec::new())).unwrap() {
        (Reply::Stats { stats }, _) => stats.queue_depth,
        other => panic!("{other:?}"),
    }
}

/// `crowd` callers flood the server with long requests; once most of them are queued, `late`
/// sends one short request. Returns how many of the crowd's requests were answered before it.
fn answered_before_the_late_one(crowd: &[Caller], late: Caller) -> usize {
    let sock = start(ServerOptions { preload: Some(key("model-q8_0.gguf")), ..ServerOptions::default() });
    assert!(matches!(send(&sock, &req("model-q8_0.gguf", 1, 4, late)).unwrap().0, Reply::Vectors { .. }));
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = crowd
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let (sock, order) = (sock.clone(), order.clone());
            std::thread::spawn(move || {
                let r = send(&sock, &req("model-q8_0.gguf", 4, 1500, c));
                assert!(matches!(r.unwrap().0, Reply::Vectors { .. }));
                order.lock().unwrap().push(format!("crowd {i}"));
            })
        })
        .collect();
    for _ in 0..500 {
        if queue_depth(&sock) + 1 >= crowd.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(queue_depth(&sock) + 2 >= crowd.len(), "the crowd's requests did not queue up");
    let r = send(&sock, &req("model-q8_0.gguf", 1, 4, late));
    assert!(matches!(r.unwrap().0, Reply::Vectors { .. }));
    let before = order.lock().unwrap().len();
    for h in handles {
        h.join().unwrap();
    }
    before
}

#[test]
fn a_role_waits_for_one_forward_pass_not_for_another_roles_queue() {
    let crowd: Vec<Caller> = (0..12).map(|pid| Caller { role: 10, pid: 1000 + pid }).collect();
    let before = answered_before_the_late_one(&crowd, Caller { role: 20, pid: 2000 });
    // The request running when it arrived, and at most one more picked in the same instant.
    assert!(before <= 2, "{before} of the other role's 12 requests were answered first");
}

#[test]
fn backends_of_one_role_take_turns() {
    let crowd: Vec<Caller> = (0..12).map(|_| Caller { role: 10, pid: 1000 }).collect();
    let before = answered_before_the_late_one(&crowd, Caller { role: 10, pid: 1001 });
    assert!(before <= 2, "{before} of another backend's 12 requests were answered first");
}

#[test]
fn no_role_holds_more_than_its_share() {
    let sock = start(ServerOptions {
        max_tokens_in_flight: 1000,
        role_share_percent: 50,
        load: slow_f16,
        ..ServerOptions::default()
    });
    let (a, b) = (Caller { role: 10, pid: 1 }, Caller { role: 20, pid: 2 });
    // Alone over the share: refused at once, with the share in the message.
    match send(&sock, &req("model-f16.gguf", 1, 600, a)) {
        Err(EngineError::Remote { kind: ErrorKind::RoleShare, message }) => {
            assert!(message.contains("500"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // Role a holds 400 tokens while the model loads; 200 more would pass its 500.
    let held = {
        let sock = sock.clone();
        std::thread::spawn(move || send(&sock, &req("model-f16.gguf", 1, 400, a)))
    };
    std::thread::sleep(Duration::from_millis(300));
    match send(&sock, &req("model-f16.gguf", 1, 200, a)) {
        Err(EngineError::Remote { kind: ErrorKind::RoleShare, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Role b still gets its own share of what is left.
    assert!(matches!(send(&sock, &req("model-f16.gguf", 1, 400, b)).unwrap().0, Reply::Vectors { .. }));
    assert!(matches!(held.join().unwrap().unwrap().0, Reply::Vectors { .. }));
    // All given back: role a's 500 fit again.
    assert!(matches!(send(&sock, &req("model-f16.gguf", 1, 500, a)).unwrap().0, Reply::Vectors { .. }));
}
