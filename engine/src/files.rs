//! Opening model files: never blocking, and one mapping of I/O errors to engine errors.
//!
//! A model path can name anything: a FIFO or a character device would block `open()` (or a
//! read) forever, holding whatever process loads it. Files are opened with `O_NONBLOCK`, which
//! does not change how a regular file reads, and anything that turns out not to be a regular
//! file is refused before a byte is read.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{EngineError, Result};

/// `NotFound` for a missing file, `Unreadable` for any other I/O failure.
pub fn io_error(path: &Path, source: std::io::Error) -> EngineError {
    if source.kind() == std::io::ErrorKind::NotFound {
        EngineError::NotFound { path: path.to_path_buf() }
    } else {
        EngineError::Unreadable { path: path.to_path_buf(), source }
    }
}

fn what(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The metadata of a model path, which must be a regular file or a directory (symbolic links
/// followed). `stat` never blocks on a FIFO.
pub fn model_path_metadata(path: &Path) -> Result<Metadata> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if meta.is_file() || meta.is_dir() {
        Ok(meta)
    } else {
        Err(EngineError::NotRegular { path: path.to_path_buf(), what: what(&meta) })
    }
}

/// Opens a regular file for reading without ever blocking in `open()`.
pub fn open(path: &Path) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if !meta.is_file() {
        return Err(EngineError::NotRegular { path: path.to_path_buf(), what: what(&meta) });
    }
    Ok(file)
}

/// The whole contents of a regular file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let mut file = open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| io_error(path, e))?;
    Ok(bytes)
}

/// Hands memory freed by a large computation back to the operating system (glibc keeps freed
/// heap memory, in every thread's arena, for reuse).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
