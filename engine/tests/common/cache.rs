//! For the packed-weight cache's tests: the texts they embed, the vectors as bits, the one file.

use std::path::{Path, PathBuf};

use qwen3_embed_engine::Engine;

pub const TEXTS: [&str; 3] = ["The quick brown fox", "PostgreSQL stores rows in heap pages.", "数据库"];

/// The vectors of `TEXTS`, bit for bit.
pub fn vectors(e: &Engine) -> Vec<Vec<u32>> {
    let v = super::embed_texts(e, &TEXTS, Some("Find the passage"), None, 512, 4096).unwrap();
    v.into_iter().map(|v| v.into_iter().map(f32::to_bits).collect()).collect()
}

/// The one cache file in `dir`.
pub fn pack_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "qwen3pack"))
        .collect();
    assert_eq!(files.len(), 1, "one cache file in {}: {files:?}", dir.display());
    files.into_iter().next().unwrap()
}
