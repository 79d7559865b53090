//! Calling the model server: one connection per request. The caller is polled every few
//! milliseconds while it waits; when it asks to stop, the connection is closed, which withdraws
//! the request.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::wire::{self, Reply, Request};
use crate::EngineError;

const POLL: Duration = Duration::from_millis(10);

/// Sends `req` (with the binary `tail`: an embedding request's token ids) to the server at
/// `socket` and returns its reply (a server-side error as
/// `EngineError::Remote`) with the binary tail. While the server is not there (starting, or
/// restarting after its process died), it keeps trying to connect for `connect_wait`.
/// `stop` is asked every few milliseconds; when it says yes, the call returns `Cancelled`.
pub fn call(
    socket: &Path,
    req: &Request,
    tail: &[u8],
    connect_wait: Duration,
    stop: &mut dyn FnMut() -> bool,
) -> Result<(Reply, Vec<u8>), EngineError> {
    let mut stream = connect(socket, connect_wait, stop)?;
    let lost = |e: std::io::Error| {
        EngineError::Server(format!("the model server process went away while handling this request ({e})"))
    };
    wire::write_frame(&mut stream, req, tail).map_err(lost)?;
    stream.set_read_timeout(Some(POLL)).map_err(lost)?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut want: Option<usize> = None;
    loop {
        if let Some(n) = want {
            if buf.len() >= 4 + n {
                break;
            }
        } else if buf.len() >= 4 {
            let n = wire::frame_len(buf[..4].try_into().expect("4 bytes")).map_err(lost)?;
            want = Some(n);
            buf.reserve((4 + n).saturating_sub(buf.len()));
            continue;
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(lost(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) =>
            {
                if stop() {
                    return Err(EngineError::Cancelled);
                }
            }
            Err(e) => return Err(lost(e)),
        }
    }
    let n = want.expect("length read");
    let (reply, tail): (Reply, &[u8]) = wire::parse_payload(&buf[4..4 + n]).map_err(lost)?;
    match reply {
        Reply::Error { kind, message } => Err(EngineError::Remote { kind, message }),
        r => Ok((r, tail.to_vec())),
    }
}

fn connect(socket: &Path, wait: Duration, stop: &mut dyn FnMut() -> bool) -> Result<UnixStream, EngineError> {
    let start = Instant::now();
    loop {
        match UnixStream::connect(socket) {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused)
                    && start.elapsed() < wait =>
            {
                if stop() {
                    return Err(EngineError::Cancelled);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(EngineError::Server(format!(
                    "the model server is not reachable at {} ({e}); waited {:.1} s",
                    socket.display(),
                    start.elapsed().as_secs_f64()
                )))
            }
        }
    }
}
