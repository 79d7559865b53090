//! Checking a downloaded file against the hub's checksum: the SHA-256 of large (LFS) files,
//! the git blob id (SHA-1 of `blob <len>\0` + content) of small ones.

use std::fmt;
use std::io::Read;
use std::path::Path;

use sha1::Sha1;
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, PartialEq)]
pub enum Digest {
    Sha256(String),
    GitBlob(String),
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Digest::Sha256(h) => write!(f, "sha256 {h}"),
            Digest::GitBlob(h) => write!(f, "git blob {h}"),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn feed(path: &Path, mut update: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        update(&buf[..n]);
    }
}

/// The digest of the file at `path`, of the same kind as `expected`.
pub fn digest_like(path: &Path, expected: &Digest) -> std::io::Result<Digest> {
    match expected {
        Digest::Sha256(_) => {
            let mut h = Sha256::new();
            feed(path, |b| h.update(b))?;
            Ok(Digest::Sha256(hex(&h.finalize())))
        }
        Digest::GitBlob(_) => {
            let len = std::fs::metadata(path)?.len();
            let mut h = Sha1::new();
            h.update(format!("blob {len}\0").as_bytes());
            feed(path, |b| h.update(b))?;
            Ok(Digest::GitBlob(hex(&h.finalize())))
        }
    }
}

/// `Ok(None)` when the file has the expected size and digest, else what it has instead.
pub fn check(path: &Path, size: u64, expected: &Digest) -> std::io::Result<Option<String>> {
    let len = std::fs::metadata(path)?.len();
    if len != size {
        return Ok(Some(format!("{len} bytes instead of {size}")));
    }
    let actual = digest_like(path, expected)?;
    Ok((actual != *expected).then(|| actual.to_string()))
}
