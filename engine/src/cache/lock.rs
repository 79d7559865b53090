//! One writer per cache file: an advisory lock on a file beside it, waited for in short steps
//! so that a cancelled load stops waiting.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use crate::cancel::Cancel;

pub enum LockError {
    Cancelled,
    Io(std::io::Error),
}

/// Holds the lock until dropped.
pub struct Held(#[allow(dead_code)] File);

/// Takes the lock on the file `path` names: an eviction may remove a lock file no process
/// holds, and a lock on a removed file excludes nobody, so the lock is taken again on the new one.
pub fn acquire(path: &Path, cancel: &dyn Cancel) -> Result<Held, LockError> {
    let open = || OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(LockError::Io);
    let mut file = open()?;
    loop {
        match file.try_lock() {
            Ok(()) => {
                let (held, now) = (file.metadata().map_err(LockError::Io)?, std::fs::metadata(path));
                if now.is_ok_and(|now| (held.dev(), held.ino()) == (now.dev(), now.ino())) {
                    return Ok(Held(file));
                }
                file = open()?;
            }
            Err(TryLockError::WouldBlock) => {
                if cancel.is_cancelled() {
                    return Err(LockError::Cancelled);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
    }
}
