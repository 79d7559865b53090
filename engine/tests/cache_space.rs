//! The cache cannot fill the disk (issue 27, item 9): a file that would take the filesystem's
//! margin is not written; the directory keeps within its budget by removing the least
//! recently used files that no process maps; `qwen3-embed cache list|prune` show and remove
//! them.

mod common;
use common::*;

use std::fs::{File, FileTimes};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use qwen3_embed_engine::cache::{space, CacheState, Limits};
use qwen3_embed_engine::{Engine, EngineOptions};

const NO_LIMITS: Limits = Limits { min_free: 0, max_size: None };

fn load(model: &Path, dir: &Path, limits: Limits) -> Engine {
    let opts =
        EngineOptions { threads: 2, cache_dir: Some(dir.to_path_buf()), cache_limits: limits, ..Default::default() };
    Engine::load(model, &opts).unwrap_or_else(|e| panic!("load {}: {e}", model.display()))
}

fn vectors(e: &Engine) -> Vec<Vec<u32>> {
    let v = common::embed_texts(e, &["one", "two words"], None, None, 512, 4096).unwrap();
    v.into_iter().map(|v| v.into_iter().map(f32::to_bits).collect()).collect()
}

/// Every file in `dir`, by name.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn cache_file(e: &Engine) -> PathBuf {
    e.info().cache.path.clone().expect("a cache file")
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

fn set_last_used(p: &Path, t: SystemTime) {
    File::open(p).unwrap().set_times(FileTimes::new().set_accessed(t)).unwrap();
}

fn cli(args: &[&str], dir: &Path) -> (bool, Vec<serde_json::Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_qwen3-embed")).args(args).arg("--cache-dir").arg(dir).output().unwrap();
    let lines = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out.status.success(), lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A margin larger than what the filesystem has free: nothing is written, one note says why,
/// the vectors are the same.
#[test]
fn a_file_that_would_take_the_margin_is_not_written() {
    let model = tiny().join("model-q8_0.gguf");
    let dir = tempfile::tempdir().unwrap();
    let free = space::free_bytes(dir.path()).unwrap();
    let e = load(&model, dir.path(), Limits { min_free: free + (1 << 30), max_size: None });
    let c = &e.info().cache;
    assert_eq!(c.state, CacheState::InMemory, "{c:?}");
    let note = c.note.as_deref().unwrap_or_default();
    assert!(note.contains("qwen3_embed.cache_min_free") && note.contains("packed in this process's memory"), "{note}");
    assert!(
        names(dir.path()).iter().all(|n| !n.contains(".qwen3pack") || n.ends_with(".lock")),
        "{:?}",
        names(dir.path())
    );
    let plain = Engine::load(&model, &EngineOptions { threads: 2, ..Default::default() }).unwrap();
    assert_eq!(vectors(&e), vectors(&plain));
    // With the margin met, the same directory takes the file.
    assert_eq!(load(&model, dir.path(), NO_LIMITS).info().cache.state, CacheState::Built);
}

/// A budget smaller than the model files: refused before anything is written.
#[test]
fn a_budget_smaller_than_the_model_is_refused() {
    let model = tiny().join("model-q8_0.gguf");
    let dir = tempfile::tempdir().unwrap();
    let e = load(&model, dir.path(), Limits { min_free: 0, max_size: Some(1 << 20) });
    let c = &e.info().cache;
    assert_eq!(c.state, CacheState::InMemory, "{c:?}");
    assert!(c.note.as_deref().is_some_and(|n| n.contains("qwen3_embed.cache_max_size")), "{c:?}");
}

/// Files A, B, C, E of four models, B mapped by a live engine and the least recently used;
/// then model D is written under a budget that holds B, E and D: A and C (least recently used
/// after B) are removed, B (in use) and E (most recent) stay.
#[test]
fn the_budget_removes_the_least_recently_used_files_no_process_maps() {
    let t = tiny();
    let [a, b, c, e, d] =
        ["model-q8_0.gguf", "model-q4_k_m.gguf", "hf-bf16", "model-f16.gguf", "hf-f16"].map(|r| t.join(r));
    let dir = tempfile::tempdir().unwrap();
    let fa = cache_file(&load(&a, dir.path(), NO_LIMITS));
    let kept = load(&b, dir.path(), NO_LIMITS);
    let fb = cache_file(&kept);
    let fc = cache_file(&load(&c, dir.path(), NO_LIMITS));
    let fe = cache_file(&load(&e, dir.path(), NO_LIMITS));
    let now = SystemTime::now();
    for (f, ago) in [(&fb, 400), (&fa, 300), (&fc, 200), (&fe, 100)] {
        set_last_used(f, now - Duration::from_secs(ago));
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let size_d = size(&cache_file(&load(&d, elsewhere.path(), NO_LIMITS)));
    let slack = size(&fa).min(size(&fc)) - 1;
    let budget = size(&fb) + size(&fe) + size_d + slack;

    let engine_d = load(&d, dir.path(), Limits { min_free: 0, max_size: Some(budget) });
    let info = &engine_d.info().cache;
    assert_eq!(info.state, CacheState::Built, "{info:?}");
    let note = info.note.as_deref().unwrap_or_default();
    assert!(note.contains("removed 2 least recently used cache files"), "{note}");
    for (f, there) in [(&fa, false), (&fb, true), (&fc, false), (&fe, true), (&cache_file(&engine_d), true)] {
        assert_eq!(f.exists(), there, "{} in {:?}", f.display(), names(dir.path()));
    }
    assert_eq!(vectors(&kept), vectors(&load(&b, elsewhere.path(), NO_LIMITS)), "B still serves");
    let total: u64 = [&fb, &fe, &cache_file(&engine_d)].iter().map(|f| size(f)).sum();
    assert!(total <= budget);
}

/// `cache list` shows which files are mapped; `cache prune` removes partial files of stopped
/// writes first, then the least recently used files, never one a process maps.
#[test]
fn cache_list_and_prune() {
    let t = tiny();
    let dir = tempfile::tempdir().unwrap();
    let kept = load(&t.join("model-q8_0.gguf"), dir.path(), NO_LIMITS);
    let in_use = cache_file(&kept);
    let old = cache_file(&load(&t.join("model-q4_k_m.gguf"), dir.path(), NO_LIMITS));
    let recent = cache_file(&load(&t.join("model-f16.gguf"), dir.path(), NO_LIMITS));
    let now = SystemTime::now();
    set_last_used(&old, now - Duration::from_secs(200));
    set_last_used(&recent, now - Duration::from_secs(100));
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    // A stopped write's file: its build lock is not held.
    let partial = dir.path().join(format!(".{}.4000000.tmp", name(&recent)));
    std::fs::write(&partial, vec![0u8; 1000]).unwrap();
    // A model that `qwen3-embed pull` linked here is not the cache's.
    std::fs::write(dir.path().join("Qwen3-Embedding-4B-Q4_K_M.gguf"), b"GGUF").unwrap();

    let (ok, listed, err) = cli(&["cache", "list"], dir.path());
    assert!(ok, "{err}");
    let row = |p: &Path| listed.iter().find(|v| v["path"] == p.display().to_string()).cloned().unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert_eq!(row(&in_use)["in_use"], true);
    assert_eq!(row(&old)["in_use"], false);
    assert_eq!(row(&partial)["partial"], true);
    assert_eq!(row(&old)["model"], "model-q4_k_m");
    assert_eq!(row(&old)["isa"], qwen3_embed_engine::kernels::active().unwrap().code);
    assert_eq!(row(&old)["bytes"], size(&old));

    // Down to the two newest files: the partial file and the oldest go.
    let target = size(&in_use) + size(&recent);
    let (ok, removed, err) = cli(&["cache", "prune", "--max-size", &target.to_string()], dir.path());
    assert!(ok, "{err}");
    let removed: Vec<&str> = removed.iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert_eq!(removed, [partial.to_str().unwrap(), old.to_str().unwrap()]);
    assert!(recent.exists() && in_use.exists());

    let (ok, removed, err) = cli(&["cache", "prune", "--all"], dir.path());
    assert!(ok, "{err}");
    assert_eq!(removed.len(), 1, "only the file no process maps: {removed:?}");
    assert!(in_use.exists() && !recent.exists());
    drop(kept);
    let (_, removed, _) = cli(&["cache", "prune", "--all"], dir.path());
    assert_eq!(removed.len(), 1);
    assert_eq!(names(dir.path()), ["Qwen3-Embedding-4B-Q4_K_M.gguf"]);
}
