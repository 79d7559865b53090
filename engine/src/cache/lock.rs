//! One writer per cache file: an advisory lock on a file beside it, waited for in short steps
//! so that a cancelled load stops waiting.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::Duration;

use crate::engine::CancelFlag;

pub enum LockError {
    Cancelled,
    Io(std::io::Error),
}

/// Holds the lock until dropped.
pub struct Held(#[allow(dead_code)] File);

pub fn acquire(path: &Path, cancel: Option<&CancelFlag>) -> Result<Held, LockError> {
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(LockError::Io)?;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Held(file)),
            Err(TryLockError::WouldBlock) => {
                if cancel.is_some_and(|c| c.is_cancelled()) {
                    return Err(LockError::Cancelled);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
    }
}
