//! How much a cache file may take: the filesystem keeps a margin free (the cache shares it
//! with the database, whose WAL writes fail on a full disk), and the directory keeps within a
//! budget. Checked before a file is written, for the model files' size (about the least its
//! packing takes), and again before every array is written, for the bytes themselves.

use std::path::{Path, PathBuf};

/// Defaults of `qwen3_embed.cache_min_free` and `qwen3_embed.cache_max_size`.
pub const DEFAULT_MIN_FREE: u64 = 10 << 30;
pub const DEFAULT_MAX_SIZE: u64 = 20 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes the filesystem must still have free, for unprivileged users, after a cache file
    /// is written.
    pub min_free: u64,
    /// Most bytes the cache directory's files may take together; `None`: no budget.
    pub max_size: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { min_free: DEFAULT_MIN_FREE, max_size: Some(DEFAULT_MAX_SIZE) }
    }
}

/// Bytes free for unprivileged users on the filesystem of `dir` (the server does not run as
/// root, so the blocks reserved for root are not its to take).
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `c` is a valid C string and `st` is written by statvfs before it is read.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(st.f_bavail as u64 * st.f_frsize as u64)
    }
}

pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Bytes free on the filesystem of a directory (`free_bytes`, or a test's).
type FreeFn<'a> = Box<dyn FnMut(&Path) -> std::io::Result<u64> + 'a>;
/// Evicts until the other files take at most the bytes given; returns what they take then.
type EvictFn<'a> = Box<dyn FnMut(u64) -> std::io::Result<u64> + 'a>;

/// The room a write has: each `take` checks that the bytes about to be written leave the
/// filesystem its margin, and keep the directory within its budget, evicting the least
/// recently used files no process uses when they would not.
pub struct Room<'a> {
    dir: PathBuf,
    limits: Limits,
    taken: u64,
    /// Bytes of the directory's other files.
    others: u64,
    free: FreeFn<'a>,
    evict: EvictFn<'a>,
}

impl<'a> Room<'a> {
    pub fn new(
        dir: &Path,
        limits: Limits,
        others: u64,
        free: impl FnMut(&Path) -> std::io::Result<u64> + 'a,
        evict: impl FnMut(u64) -> std::io::Result<u64> + 'a,
    ) -> Self {
        Room { dir: dir.to_path_buf(), limits, taken: 0, others, free: Box::new(free), evict: Box::new(evict) }
    }

    /// Whether `bytes` more may be written, or why not.
    pub fn take(&mut self, bytes: u64) -> Result<(), String> {
        let need = self.taken + bytes;
        if let Some(max) = self.limits.max_size.filter(|&max| self.others + need > max) {
            let left = (self.evict)(max.saturating_sub(need))
                .map_err(|e| format!("cannot evict from {}: {e}", self.dir.display()))?;
            self.others = left;
            if left + need > max {
                return Err(format!(
                    "the cache file would pass qwen3_embed.cache_max_size ({}): it needs more than {}, and the files that are in use or can't be removed take {}",
                    gib(max),
                    gib(need),
                    gib(left)
                ));
            }
        }
        let free =
            (self.free)(&self.dir).map_err(|e| format!("cannot read the free space of {}: {e}", self.dir.display()))?;
        if free.saturating_sub(bytes) < self.limits.min_free {
            return Err(format!(
                "writing {} more would leave less than qwen3_embed.cache_min_free ({}) free on the filesystem of {} ({} free)",
                gib(bytes),
                gib(self.limits.min_free),
                self.dir.display(),
                gib(free)
            ));
        }
        self.taken = need;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_keeps_the_margin() {
        let free = std::cell::Cell::new(1000u64);
        let limits = Limits { min_free: 300, max_size: None };
        let mut room = Room::new(Path::new("/x"), limits, 0, |_| Ok(free.get()), |_| unreachable!());
        assert!(room.take(500).is_ok());
        // Another writer took space meanwhile: the margin is checked against what is free now.
        free.set(400);
        let e = room.take(200).unwrap_err();
        assert!(e.contains("cache_min_free"), "{e}");
        free.set(10_000);
        assert!(room.take(100).is_ok());
    }

    /// Over the budget, other files are evicted down to what this one leaves; when that is not
    /// enough (files in use), the write stops.
    #[test]
    fn room_evicts_to_keep_the_budget() {
        let asked = std::cell::RefCell::new(Vec::new());
        let in_use = 250u64;
        let limits = Limits { min_free: 0, max_size: Some(1000) };
        let evict = |target: u64| {
            asked.borrow_mut().push(target);
            Ok(target.max(in_use))
        };
        let mut room = Room::new(Path::new("/x"), limits, 700, |_| Ok(u64::MAX), evict);
        assert!(room.take(300).is_ok());
        assert!(asked.borrow().is_empty(), "700 + 300 fits");
        assert!(room.take(100).is_ok());
        assert_eq!(*asked.borrow(), vec![600]);
        assert!(room.take(300).is_ok());
        assert_eq!(*asked.borrow(), vec![600, 300]);
        let e = room.take(100).unwrap_err();
        assert!(e.contains("cache_max_size") && e.contains("in use"), "{e}");
    }

    #[test]
    fn free_bytes_reads_the_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }
}
