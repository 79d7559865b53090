//! The packed-weight cache: built once, mapped after, bit-identical to packing in memory,
//! unusable files rebuilt, an unwritable directory falls back, a waiting load can be cancelled.

mod common;
use common::cache::*;
use common::*;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use qwen3_embed_engine::cache::{CacheState, Limits};
use qwen3_embed_engine::{CancelFlag, Engine, EngineError, EngineOptions};

fn load(model: &Path, cache: Option<&Path>) -> Engine {
    try_load(model, cache, None).unwrap_or_else(|e| panic!("load {}: {e}", model.display()))
}

fn try_load(model: &Path, cache: Option<&Path>, cancel: Option<CancelFlag>) -> Result<Engine, EngineError> {
    Engine::load(
        model,
        &EngineOptions {
            threads: 2,
            cache_dir: cache.map(Path::to_path_buf),
            // These tests are not about disk space: a full CI disk must not turn them off.
            cache_limits: Limits { min_free: 0, max_size: None },
            cancel,
            ..Default::default()
        },
    )
}

#[test]
fn mapped_weights_give_the_same_bits_as_packing_in_memory() {
    for rel in ["model-q4_k_m.gguf", "model-q8_0.gguf", "model-f16.gguf", "hf-bf16", "hf-f32"] {
        let model = tiny().join(rel);
        let dir = tempfile::tempdir().unwrap();
        let plain = load(&model, None);
        assert_eq!(plain.info().cache.state, CacheState::Off);
        let built = load(&model, Some(dir.path()));
        assert_eq!(built.info().cache.state, CacheState::Built, "{rel}");
        let mapped = load(&model, Some(dir.path()));
        let c = &mapped.info().cache;
        assert_eq!(c.state, CacheState::Mapped, "{rel}");
        assert_eq!(c.path.as_deref(), Some(pack_file(dir.path()).as_path()));
        assert!(c.bytes > 0 && c.note.is_none(), "{rel}: {c:?}");
        assert_eq!(mapped.info().tensor_types, plain.info().tensor_types, "{rel}");
        let want = vectors(&plain);
        assert_eq!(vectors(&built), want, "{rel}: built");
        assert_eq!(vectors(&mapped), want, "{rel}: mapped");
    }
}

#[test]
fn concurrent_first_loads_pack_once() {
    let model = tiny().join("model-q4_k_m.gguf");
    let dir = tempfile::tempdir().unwrap();
    let engines: Vec<Engine> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8).map(|_| s.spawn(|| load(&model, Some(dir.path())))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let states: Vec<CacheState> = engines.iter().map(|e| e.info().cache.state).collect();
    assert_eq!(states.iter().filter(|s| **s == CacheState::Built).count(), 1, "{states:?}");
    assert_eq!(states.iter().filter(|s| **s == CacheState::Mapped).count(), 7, "{states:?}");
    let want = vectors(&engines[0]);
    assert!(engines.iter().all(|e| vectors(e) == want));
    pack_file(dir.path());
}

/// Each way a file can be unusable is found, said in the note, and the file rebuilt.
#[test]
fn unusable_files_are_rebuilt() {
    let model = tiny().join("model-q8_0.gguf");
    let dir = tempfile::tempdir().unwrap();
    let want = vectors(&load(&model, None));
    load(&model, Some(dir.path()));
    let file = pack_file(dir.path());
    let len = std::fs::metadata(&file).unwrap().len();
    let write_at =
        |at: u64, bytes: &[u8]| OpenOptions::new().write(true).open(&file).unwrap().write_all_at(bytes, at).unwrap();
    let flip = |at: u64| {
        let f = OpenOptions::new().read(true).write(true).open(&file).unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
    };
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Box<dyn Fn()>)> = vec![
        ("truncated", Box::new(|| OpenOptions::new().write(true).open(&file).unwrap().set_len(len / 2).unwrap())),
        ("bad magic", Box::new(|| write_at(0, b"GGUF"))),
        ("another version", Box::new(|| write_at(12, &9999u32.to_le_bytes()))),
        ("instruction set", Box::new(|| write_at(16, b"sse2\0\0\0\0\0\0\0\0\0\0\0\0"))),
        ("other model files", Box::new(|| write_at(32, b"0123456789abcdef0123456789abcdef"))),
        ("checksum", Box::new(|| flip(len - 2))),
        ("do not match the hash", Box::new(|| flip(4096 + (1 << 20)))),
    ];
    for (what, spoil) in cases {
        spoil();
        let e = load(&model, Some(dir.path()));
        let c = &e.info().cache;
        assert_eq!(c.state, CacheState::Built, "{what}: {c:?}");
        assert!(c.note.as_deref().is_some_and(|n| n.contains(what) && n.contains("rebuilt")), "{what}: {c:?}");
        assert_eq!(vectors(&e), want, "{what}");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), len, "{what}: the rebuilt file");
        assert_eq!(load(&model, Some(dir.path())).info().cache.state, CacheState::Mapped, "{what}");
    }
}

/// A cache file of another model put in this one's place is refused and rebuilt.
#[test]
fn another_models_file_is_refused() {
    let (a, b) = (tiny().join("model-q8_0.gguf"), tiny().join("model-q4_k_m.gguf"));
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    load(&a, Some(da.path()));
    load(&b, Some(db.path()));
    std::fs::copy(pack_file(da.path()), pack_file(db.path())).unwrap();
    let e = load(&b, Some(db.path()));
    let c = &e.info().cache;
    assert!(c.state == CacheState::Built && c.note.as_deref().is_some_and(|n| n.contains("not")), "{c:?}");
    assert_eq!(vectors(&e), vectors(&load(&b, None)));
}

#[test]
fn an_unwritable_cache_falls_back_to_memory_with_a_note() {
    let model = tiny().join("model-q4_k_m.gguf");
    let tmp = tempfile::tempdir().unwrap();
    // A directory below a regular file cannot be made, whoever runs the test (root too).
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let e = load(&model, Some(&blocker.join("cache")));
    let c = &e.info().cache;
    assert_eq!(c.state, CacheState::InMemory);
    assert!(c.note.as_deref().is_some_and(|n| n.contains("cannot write the packed-weight cache")), "{c:?}");
    assert_eq!(vectors(&e), vectors(&load(&model, None)));
}

/// A load waiting for another process's write stops when cancelled.
#[test]
fn a_load_waiting_for_the_writer_can_be_cancelled() {
    let model = tiny().join("model-q4_k_m.gguf");
    let dir = tempfile::tempdir().unwrap();
    load(&model, Some(dir.path()));
    let file = pack_file(dir.path());
    std::fs::remove_file(&file).unwrap();
    let lock = OpenOptions::new().write(true).open(file.with_extension("qwen3pack.lock")).unwrap();
    lock.lock().unwrap();
    let cancel = CancelFlag::new();
    let flag = cancel.clone();
    let started = Instant::now();
    let waiter = std::thread::spawn(move || try_load(&model, Some(dir.path()), Some(flag)).map(|_| ()));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!waiter.is_finished(), "the load waits for the lock");
    cancel.cancel();
    let r = waiter.join().unwrap();
    assert!(matches!(r, Err(EngineError::Cancelled)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
