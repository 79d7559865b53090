//! Every byte of a cache file is checked before its weights serve a vector (issue 27, item 7):
//! one byte changed anywhere in the weights, where the old check sampled nothing, is reported,
//! the file rebuilt, and the vectors are those of an uncorrupted load; `qwen3-embed cache
//! verify` finds the same.

mod common;
use common::cache::*;
use common::*;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use qwen3_embed_engine::cache::{CacheState, Limits};
use qwen3_embed_engine::{Engine, EngineOptions};

const HEADER: u64 = 4096;

fn load(model: &Path, cache: Option<&Path>) -> Engine {
    let opts = EngineOptions {
        threads: 2,
        cache_dir: cache.map(Path::to_path_buf),
        // Not about disk space: a full CI disk must not turn the cache off.
        cache_limits: Limits { min_free: 0, max_size: None },
        ..Default::default()
    };
    Engine::load(model, &opts).unwrap_or_else(|e| panic!("load {}: {e}", model.display()))
}

fn flip(file: &Path, at: u64) {
    let f = OpenOptions::new().read(true).write(true).open(file).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x01], at).unwrap();
}

/// Where the weights end: the table's offset, in the header.
fn weights_end(file: &Path) -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open(file).unwrap().read_exact_at(&mut b, 64).unwrap();
    u64::from_le_bytes(b)
}

/// The format before this one hashed 64 bytes at every MiB of the weights: none of these
/// positions is among them. The last byte of the weights is the final norm's.
#[test]
fn one_byte_changed_anywhere_is_reported_and_rebuilt() {
    for rel in ["model-q8_0.gguf", "hf-bf16"] {
        let model = tiny().join(rel);
        let dir = tempfile::tempdir().unwrap();
        let want = vectors(&load(&model, None));
        load(&model, Some(dir.path()));
        let file = pack_file(dir.path());
        let end = weights_end(&file);
        assert!(end > HEADER + (4 << 20), "{rel}: a file of several MiB ({end})");
        let sampled = |at: u64| (at - HEADER) % (1 << 20) < 64;
        for at in [end - 1, end / 2 + 1000, HEADER + (3 << 20) + 4000, HEADER + 100] {
            assert!(!sampled(at), "{rel}: {at}");
            flip(&file, at);
            let e = load(&model, Some(dir.path()));
            let c = &e.info().cache;
            assert_eq!(c.state, CacheState::Built, "{rel} at {at}: {c:?}");
            let note = c.note.as_deref().unwrap_or_default();
            assert!(note.contains("corrupted: bytes") && note.contains("rebuilt"), "{rel} at {at}: {note}");
            assert_eq!(vectors(&e), want, "{rel} at {at}");
            drop(e);
            let again = load(&model, Some(dir.path()));
            assert_eq!(again.info().cache.state, CacheState::Mapped, "{rel} at {at}");
            assert_eq!(vectors(&again), want, "{rel} at {at}");
        }
    }
}

/// `qwen3-embed cache verify` checks every byte of each file and fails on one that changed.
#[test]
fn cache_verify_finds_a_changed_byte() {
    let model = tiny().join("model-q4_k_m.gguf");
    let dir = tempfile::tempdir().unwrap();
    load(&model, Some(dir.path()));
    let file = pack_file(dir.path());
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_qwen3-embed"))
            .args(["cache", "verify", "--cache-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let ok = verify();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let line: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(line["ok"], true, "{line}");
    assert_eq!(line["bytes"], std::fs::metadata(&file).unwrap().len(), "{line}");
    flip(&file, weights_end(&file) - 3);
    let bad = verify();
    assert!(!bad.status.success());
    let line: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(line["ok"], false, "{line}");
    assert!(line["error"].as_str().unwrap().contains("do not match the hash"), "{line}");
}
