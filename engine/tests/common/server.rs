//! For the model server's tests.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use qwen3_embed_engine::serve::{self, ServerOptions};

/// A server of its own on a fresh socket.
pub fn start(opts: ServerOptions) -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("server.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || serve::serve(listener, opts));
    path
}
