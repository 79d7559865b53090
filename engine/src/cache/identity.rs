//! Which model files a cache file was packed from: their paths, sizes, modification times and
//! bytes sampled across them, with the model's shape. Replacing a model file with another of
//! the same size (a fine-tune) changes its time and its bytes, so the old packing is never used.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::ModelConfig;

/// Bytes read from each file: `SAMPLES` runs of `RUN` bytes spread over it.
const SAMPLES: u64 = 64;
const RUN: usize = 4096;

/// The weight files of a model path: the file itself, or a checkpoint directory's safetensors
/// files and config.
fn files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "safetensors") || p.file_name().is_some_and(|n| n == "config.json")
        })
        .collect();
    v.sort();
    Ok(v)
}

/// Bytes of the model's weight files.
pub fn source_bytes(path: &Path) -> std::io::Result<u64> {
    files(path)?.iter().map(|f| Ok(std::fs::metadata(f)?.len())).sum()
}

/// 32 hex digits.
pub fn of(path: &Path, config: &ModelConfig) -> std::io::Result<String> {
    let mut h = Sha256::new();
    h.update(format!("{config:?}").as_bytes());
    for f in files(path)? {
        let canonical = f.canonicalize()?;
        let file = std::fs::File::open(&canonical)?;
        let m = file.metadata()?;
        h.update(canonical.as_os_str().as_encoded_bytes());
        h.update(m.len().to_le_bytes());
        h.update(m.mtime().to_le_bytes());
        h.update(m.mtime_nsec().to_le_bytes());
        let mut buf = vec![0u8; RUN];
        for i in 0..SAMPLES {
            let at = m.len().saturating_sub(RUN as u64) * i / (SAMPLES - 1);
            let n = file.read_at(&mut buf, at)?;
            h.update(&buf[..n]);
        }
    }
    Ok(h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect())
}

/// The cache file's name: the model's name for people, then what it was packed for (`isa`:
/// the kernel table's code).
pub fn file_name(path: &Path, identity: &str, layout: u32, isa: &str) -> String {
    let stem: String = path
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
                .collect()
        })
        .unwrap_or_default();
    format!("{}-{}-p{layout}-{isa}{}", stem.chars().take(64).collect::<String>(), &identity[..16], super::SUFFIX)
}
