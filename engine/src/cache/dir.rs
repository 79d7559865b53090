//! The cache directory's files: what each is, whether a process uses it, when it was last
//! used; and eviction, least recently used first, of the files no process uses.
//!
//! A cache file is in use while a process maps it (it holds a shared lock on the file); a
//! partial file (a write under its temporary name) while its writer holds the build lock.
//! Only this module's own kinds of files are looked at: a model that `qwen3-embed pull`
//! linked into the same directory is neither counted nor removed.

use std::fs::{File, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::file::{self, Header};
use super::{lock_path, SUFFIX};

#[derive(Debug, Clone)]
pub struct CacheFile {
    pub path: PathBuf,
    pub bytes: u64,
    /// Mapped by a process (a cache file), or being written (a partial one).
    pub in_use: bool,
    /// When a process last mapped it: its access time.
    pub last_used: SystemTime,
    pub modified: SystemTime,
    /// The model's file name (its stem), as the cache file's name carries it.
    pub model: Option<String>,
    /// The header's fields; `None` for a partial file or one without a header.
    pub header: Option<Header>,
    /// A write's temporary file: of a write in progress when in use, else left by a writer
    /// that stopped.
    pub partial: bool,
}

/// `{stem}-{identity}-p{layout}-{code}.qwen3pack` (`identity::file_name`) -> the stem.
fn model_of(name: &str) -> Option<String> {
    let mut parts = name.strip_suffix(SUFFIX)?.rsplitn(4, '-');
    let (_code, layout, _id, stem) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    layout.starts_with('p').then(|| stem.to_string())
}

/// Whether another open file description holds a lock on `path`: an exclusive lock taken
/// and at once released when none does. A missing file is not in use.
fn locked(path: &Path) -> io::Result<bool> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// The cache files and partial files of `dir`, least recently used first; an empty list when
/// the directory does not exist.
pub fn list(dir: &Path) -> io::Result<Vec<CacheFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let partial_of = file::partial_of(&name).map(str::to_string);
        if partial_of.is_none() && !name.ends_with(SUFFIX) {
            continue;
        }
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let in_use = match &partial_of {
            Some(dest) => locked(&lock_path(&dir.join(dest)))?,
            None => locked(&path)?,
        };
        let time = |secs: i64, nsec: i64| {
            SystemTime::UNIX_EPOCH + std::time::Duration::new(secs.max(0) as u64, nsec.clamp(0, 999_999_999) as u32)
        };
        out.push(CacheFile {
            bytes: meta.len(),
            in_use,
            last_used: time(meta.atime(), meta.atime_nsec()),
            modified: time(meta.mtime(), meta.mtime_nsec()),
            model: model_of(partial_of.as_deref().unwrap_or(&name)),
            header: if partial_of.is_some() { None } else { file::read_header(&path) },
            partial: partial_of.is_some(),
            path,
        });
    }
    out.sort_by(|a, b| (a.last_used, &a.path).cmp(&(b.last_used, &b.path)));
    Ok(out)
}

/// Removes `f` if no process uses it now, holding the lock that proves it while it unlinks;
/// `false` when it is in use (or was replaced meanwhile).
fn remove_unused(f: &CacheFile) -> io::Result<bool> {
    let guard = if f.partial {
        let name = f.path.file_name().and_then(|n| n.to_str()).and_then(file::partial_of);
        lock_path(&f.path.with_file_name(name.ok_or_else(|| io::Error::other("not a partial file"))?))
    } else {
        f.path.clone()
    };
    let held = match File::open(&guard) {
        Ok(h) => h,
        // A partial file whose build lock is gone has no writer.
        Err(e) if e.kind() == io::ErrorKind::NotFound && f.partial => {
            std::fs::remove_file(&f.path)?;
            return Ok(true);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match held.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(false),
        Err(TryLockError::Error(e)) => return Err(e),
    }
    if !f.partial {
        let (a, b) = (held.metadata()?, std::fs::metadata(&f.path)?);
        if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
            return Ok(false);
        }
    }
    std::fs::remove_file(&f.path)?;
    if !f.partial {
        // Its build lock, unless a process is building the file again.
        let lock = lock_path(&f.path);
        if !locked(&lock)? {
            let _ = std::fs::remove_file(&lock);
        }
    }
    Ok(true)
}

/// Bytes the cache files and partial files of `dir` take.
pub fn total(files: &[CacheFile]) -> u64 {
    files.iter().map(|f| f.bytes).sum()
}

/// What an eviction removed, and what it left.
#[derive(Debug, Default)]
pub struct Evicted {
    pub removed: Vec<CacheFile>,
    /// Bytes of the files left.
    pub left: u64,
    /// Bytes of files left because a process uses them.
    pub in_use: u64,
}

/// Removes files of `dir` that no process uses, partial files of stopped writes first, then
/// the least recently used cache files, until the files left take at most `target` bytes
/// (or none that can go is left). `skip` (the caller's own partial file) is neither counted
/// nor removed.
pub fn evict(dir: &Path, target: u64, skip: Option<&Path>) -> io::Result<Evicted> {
    let mut files: Vec<CacheFile> = list(dir)?.into_iter().filter(|f| Some(f.path.as_path()) != skip).collect();
    files.sort_by_key(|f| (!f.partial, f.last_used));
    let mut out = Evicted { left: total(&files), ..Evicted::default() };
    for f in files {
        if out.left <= target {
            break;
        }
        if !f.in_use && remove_unused(&f)? {
            out.left -= f.bytes;
            out.removed.push(f);
        }
    }
    out.in_use = list(dir)?.iter().filter(|f| f.in_use && Some(f.path.as_path()) != skip).map(|f| f.bytes).sum();
    Ok(out)
}
