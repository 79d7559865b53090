//! `qwen3-embed pull` against a local stand-in for the hub (no internet): a full download that
//! loads, a checkpoint directory, an interrupted download resumed, a corrupted file rejected,
//! unknown repositories and quantizations listed, an unreachable hub, a full disk.

#[path = "../common/mod.rs"]
mod common;
mod hub;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hub::{FakeFile, FakeHub};
use qwen3_embed_engine::{Engine, EngineOptions};

const GGUF_4B: &str = "Qwen/Qwen3-Embedding-4B-GGUF";
const GGUF_06B: &str = "Qwen/Qwen3-Embedding-0.6B-GGUF";

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `qwen3-embed pull ARGS` with HOME and HF_HOME inside `home`.
fn pull(endpoint: &str, home: &Path, args: &[&str], token: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qwen3-embed"));
    cmd.arg("pull").args(args);
    cmd.env("HF_ENDPOINT", endpoint).env("HF_HOME", home.join("hf")).env("HOME", home);
    for var in ["HF_TOKEN", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"] {
        cmd.env_remove(var);
    }
    cmd.env_remove("all_proxy");
    if let Some(t) = token {
        cmd.env("HF_TOKEN", t);
    }
    let Output { status, stdout, stderr } = cmd.output().expect("run qwen3-embed");
    let run = Run {
        ok: status.success(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    eprintln!("pull {args:?}: ok={} stdout={:?}\n{}", run.ok, run.stdout, run.stderr);
    run
}

fn linked(home: &Path, name: &str) -> PathBuf {
    home.join(".cache/qwen3_embed").join(name)
}

/// The hub cache's blob directory of a repository.
fn blobs(home: &Path, repo: &str) -> PathBuf {
    home.join("hf/hub").join(format!("models--{}", repo.replace('/', "--"))).join("blobs")
}

fn synthetic(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed).collect()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn default_pull_downloads_verifies_links_and_loads() {
    let tiny = common::tiny();
    let q4 = FakeFile::lfs("Qwen3-Embedding-4B-Q4_K_M.gguf", read(&tiny.join("model-q4_k_m.gguf")));
    let q8 = FakeFile::lfs("Qwen3-Embedding-4B-Q8_0.gguf", read(&tiny.join("model-q8_0.gguf")));
    let readme = FakeFile::small("README.md", b"# Qwen3-Embedding-4B-GGUF\n".to_vec());
    let hub = FakeHub::start(vec![(GGUF_4B, vec![readme, q8.clone(), q4.clone()])]);
    let home = tempfile::tempdir().unwrap();

    let run = pull(&hub.url, home.path(), &[], Some("hf_test_token"));
    assert!(run.ok, "{}", run.stderr);
    let link = linked(home.path(), "Qwen3-Embedding-4B-Q4_K_M.gguf");
    assert_eq!(run.stdout.trim(), link.display().to_string());
    assert!(run.stderr.contains(&format!("qwen3_embed.model_path = '{}'", link.display())));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(read(&link), *q4.bytes);
    assert!(blobs(home.path(), GGUF_4B).join(q4.sha256()).is_file());
    let seen = hub.seen();
    assert!(seen.iter().any(|s| s.path.starts_with("/api/models/")));
    assert!(seen.iter().all(|s| s.authorization.as_deref() == Some("Bearer hf_test_token")));
    assert!(!seen.iter().any(|s| s.path.contains("Q8_0")), "only the asked quantization is fetched");

    let engine =
        Engine::load(&link, &EngineOptions { threads: 1, ..Default::default() }).expect("the pulled file loads");
    assert_eq!(engine.info().format, "gguf");

    // Again: the verified cached copy is used, nothing is downloaded.
    let before = hub.seen().len();
    let again = pull(&hub.url, home.path(), &[GGUF_4B], None);
    assert!(again.ok, "{}", again.stderr);
    assert!(again.stderr.contains("already in the hub cache and verified"), "{}", again.stderr);
    let downloads = hub.seen()[before..]
        .iter()
        .filter(|s| s.path.starts_with("/cdn/") && s.range.as_deref() != Some("bytes=0-0"))
        .count();
    assert_eq!(downloads, 0);

    // The quantization matches case-insensitively.
    let q8_run = pull(&hub.url, home.path(), &[&format!("{GGUF_4B}:q8_0")], None);
    assert!(q8_run.ok, "{}", q8_run.stderr);
    assert_eq!(read(&linked(home.path(), "Qwen3-Embedding-4B-Q8_0.gguf")), *q8.bytes);
}

#[test]
fn safetensors_repository_becomes_a_loadable_directory() {
    let sharded = common::tiny().join("hf-sharded");
    let mut files = vec![
        FakeFile::small("config.json", read(&sharded.join("config.json"))),
        FakeFile::small("model.safetensors.index.json", read(&sharded.join("model.safetensors.index.json"))),
        FakeFile::lfs("tokenizer.json", read(&sharded.join("tokenizer.json"))),
        FakeFile::small("README.md", b"readme".to_vec()),
        FakeFile::small("1_Pooling/config.json", b"{}".to_vec()),
    ];
    for shard in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
        files.push(FakeFile::lfs(shard, read(&sharded.join(shard))));
    }
    let hub = FakeHub::start(vec![("Qwen/Qwen3-Embedding-0.6B", files)]);
    let home = tempfile::tempdir().unwrap();

    let quant = pull(&hub.url, home.path(), &["Qwen/Qwen3-Embedding-0.6B:Q8_0"], None);
    assert!(!quant.ok);
    assert!(quant.stderr.contains("has no .gguf files"), "{}", quant.stderr);

    let run = pull(&hub.url, home.path(), &["Qwen/Qwen3-Embedding-0.6B"], None);
    assert!(run.ok, "{}", run.stderr);
    let dir = linked(home.path(), "Qwen3-Embedding-0.6B");
    assert_eq!(run.stdout.trim(), dir.display().to_string());
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "tokenizer.json"
        ]
    );
    let engine =
        Engine::load(&dir, &EngineOptions { threads: 1, ..Default::default() }).expect("the pulled directory loads");
    assert_eq!(engine.info().format, "safetensors");
}

#[test]
fn reranker_repository_becomes_a_loadable_reranker() {
    let hf = common::reranker(true).join("hf-f32");
    let files = vec![
        FakeFile::small("config.json", read(&hf.join("config.json"))),
        FakeFile::lfs("model.safetensors", read(&hf.join("model.safetensors"))),
        FakeFile::lfs("tokenizer.json", read(&hf.join("tokenizer.json"))),
        FakeFile::small("README.md", b"readme".to_vec()),
    ];
    let hub = FakeHub::start(vec![("Qwen/Qwen3-Reranker-0.6B", files)]);
    let home = tempfile::tempdir().unwrap();
    let run = pull(&hub.url, home.path(), &["Qwen/Qwen3-Reranker-0.6B"], None);
    assert!(run.ok, "{}", run.stderr);
    let dir = linked(home.path(), "Qwen3-Reranker-0.6B");
    assert_eq!(run.stdout.trim(), dir.display().to_string());
    let engine = Engine::load(&dir, &EngineOptions { threads: 1, ..Default::default() }).expect("it loads");
    assert_eq!(engine.task(), qwen3_embed_engine::Task::Rerank);

    // An unknown repository lists the rerankers among the official ones.
    let unknown = pull(&hub.url, home.path(), &["Qwen/Qwen3-Reranker-5B"], None);
    assert!(!unknown.ok);
    assert!(unknown.stderr.contains("Qwen/Qwen3-Reranker-4B"), "{}", unknown.stderr);
}

#[test]
fn interrupted_download_resumes_where_it_stopped() {
    let file = FakeFile::lfs("Qwen3-Embedding-0.6B-Q8_0.gguf", synthetic(3 << 20, 7));
    let hub = FakeHub::start(vec![(GGUF_06B, vec![file.clone()])]);
    let home = tempfile::tempdir().unwrap();
    let spec = format!("{GGUF_06B}:Q8_0");

    hub.cut_next(&file.name, 1 << 20);
    let first = pull(&hub.url, home.path(), &[&spec], None);
    assert!(!first.ok);
    assert!(first.stderr.contains("interrupted"), "{}", first.stderr);
    assert!(first.stderr.contains("run the command again to resume"), "{}", first.stderr);
    let part = blobs(home.path(), GGUF_06B).join(format!("{}.part", file.sha256()));
    assert_eq!(std::fs::metadata(&part).expect("the partial file is kept").len(), 1 << 20);
    assert!(!linked(home.path(), &file.name).exists());

    let second = pull(&hub.url, home.path(), &[&spec], None);
    assert!(second.ok, "{}", second.stderr);
    assert!(hub
        .seen()
        .iter()
        .any(|s| s.path.starts_with("/cdn/") && s.range.as_deref() == Some(&format!("bytes={}-", 1 << 20))));
    assert_eq!(read(&linked(home.path(), &file.name)), *file.bytes);
    assert!(!part.exists());
}

#[test]
fn corrupted_download_is_rejected_and_removed() {
    let file = FakeFile::lfs("Qwen3-Embedding-0.6B-Q4_K_M.gguf", synthetic(1 << 20, 3));
    let hub = FakeHub::start(vec![(GGUF_06B, vec![file.clone()])]);
    let home = tempfile::tempdir().unwrap();
    let spec = format!("{GGUF_06B}:Q4_K_M");

    hub.corrupt(&file.name, true);
    let bad = pull(&hub.url, home.path(), &[&spec], None);
    assert!(!bad.ok);
    assert!(bad.stderr.contains("checksum mismatch"), "{}", bad.stderr);
    assert!(bad.stderr.contains(&file.sha256()), "{}", bad.stderr);
    assert!(bad.stderr.contains("was removed"), "{}", bad.stderr);
    let left: Vec<_> = std::fs::read_dir(blobs(home.path(), GGUF_06B))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "left in the cache: {left:?}");
    assert!(std::fs::symlink_metadata(linked(home.path(), &file.name)).is_err());

    hub.corrupt(&file.name, false);
    let good = pull(&hub.url, home.path(), &[&spec], None);
    assert!(good.ok, "{}", good.stderr);
    assert_eq!(read(&linked(home.path(), &file.name)), *file.bytes);
}

#[test]
fn unknown_quantization_and_repository_list_what_exists() {
    let files = vec![
        FakeFile::lfs("Qwen3-Embedding-4B-Q8_0.gguf", synthetic(4000, 1)),
        FakeFile::lfs("Qwen3-Embedding-4B-f16.gguf", synthetic(7000, 2)),
        FakeFile::lfs("Qwen3-Embedding-4B-Q4_K_M.gguf", synthetic(2000, 3)),
    ];
    let hub = FakeHub::start(vec![(GGUF_4B, files)]);
    let home = tempfile::tempdir().unwrap();

    let run = pull(&hub.url, home.path(), &[&format!("{GGUF_4B}:Q3_K_S")], None);
    assert!(!run.ok);
    assert!(run.stderr.contains("has no Q3_K_S file"), "{}", run.stderr);
    for quant in ["f16", "Q8_0", "Q4_K_M"] {
        assert!(run.stderr.contains(&format!("{GGUF_4B}:{quant}")), "{quant}: {}", run.stderr);
    }

    let repo = pull(&hub.url, home.path(), &["Qwen/Qwen3-Embedding-5B-GGUF"], None);
    assert!(!repo.ok);
    assert!(repo.stderr.contains("not found"), "{}", repo.stderr);
    assert!(repo.stderr.contains("set HF_TOKEN"), "{}", repo.stderr);
    assert!(repo.stderr.contains("Qwen/Qwen3-Embedding-0.6B-GGUF"), "{}", repo.stderr);

    let bad = pull(&hub.url, home.path(), &["not a repo"], None);
    assert!(!bad.ok);
    assert!(bad.stderr.contains("is not REPO[:QUANT]"), "{}", bad.stderr);
    assert!(!home.path().join(".cache/qwen3_embed").exists());
}

#[test]
fn unreachable_hub_fails_fast_with_the_manual_way() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let home = tempfile::tempdir().unwrap();

    let start = Instant::now();
    let run = pull(&endpoint, home.path(), &["--connect-timeout", "3"], None);
    assert!(!run.ok);
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(run.stderr.contains(&format!("cannot reach {endpoint}")), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("{endpoint}/{GGUF_4B}/resolve/main/Qwen3-Embedding-4B-Q4_K_M.gguf")),
        "{}",
        run.stderr
    );

    let check = pull(&endpoint, home.path(), &["--check", "--connect-timeout", "2"], None);
    assert!(!check.ok);
    let hub = FakeHub::start(vec![]);
    let live = pull(&hub.url, home.path(), &["--check"], None);
    assert!(live.ok, "{}", live.stderr);
    assert!(hub.seen().is_empty(), "--check only connects");
}

#[test]
fn full_disk_is_reported() {
    let file = FakeFile::lfs("Qwen3-Embedding-0.6B-Q6_K.gguf", synthetic(256 << 10, 9));
    let mut huge = FakeFile::lfs("Qwen3-Embedding-0.6B-Q5_0.gguf", synthetic(1000, 4));
    huge.listed_size = Some(1 << 60);
    let hub = FakeHub::start(vec![(GGUF_06B, vec![file.clone(), huge])]);
    let home = tempfile::tempdir().unwrap();

    // More than any disk holds: refused before downloading.
    let before = pull(&hub.url, home.path(), &[&format!("{GGUF_06B}:Q5_0")], None);
    assert!(!before.ok);
    assert!(before.stderr.contains("not enough disk space"), "{}", before.stderr);
    assert!(!hub.seen().iter().any(|s| s.path.starts_with("/cdn/")));

    // The disk fills up while writing: the partial file is /dev/full, which refuses every write.
    let blob_dir = blobs(home.path(), GGUF_06B);
    std::fs::create_dir_all(&blob_dir).unwrap();
    let part = blob_dir.join(format!("{}.part", file.sha256()));
    std::os::unix::fs::symlink("/dev/full", &part).unwrap();
    let during = pull(&hub.url, home.path(), &[&format!("{GGUF_06B}:Q6_K")], None);
    assert!(!during.ok);
    assert!(during.stderr.contains("the disk is full"), "{}", during.stderr);
    assert!(!linked(home.path(), &file.name).exists());
}
