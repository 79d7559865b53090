//! Whether the endpoint answers a TCP connection within a short time: a quick "no network"
//! for the demo and before a download, instead of the HTTP client's long connect timeout.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PROXY_VARS: [&str; 6] = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// `Err` says why the endpoint cannot be reached. Behind a proxy (which the HTTP client
/// honours) a direct connection proves nothing, so the check passes.
pub fn check(endpoint: &str, timeout: Duration) -> Result<(), String> {
    if PROXY_VARS.iter().any(|v| std::env::var(v).is_ok_and(|p| !p.is_empty())) {
        return Ok(());
    }
    let url = url::Url::parse(endpoint).map_err(|e| format!("HF_ENDPOINT {endpoint:?} is not a URL: {e}"))?;
    let host = url.host_str().ok_or_else(|| format!("HF_ENDPOINT {endpoint:?} has no host"))?.to_string();
    let port = url.port_or_known_default().ok_or_else(|| format!("HF_ENDPOINT {endpoint:?} has no port"))?;
    let start = Instant::now();

    // The system resolver has no timeout of its own: resolve on a thread and stop waiting.
    let (tx, rx) = mpsc::channel();
    let target = (host.trim_start_matches('[').trim_end_matches(']').to_string(), port);
    std::thread::spawn(move || {
        let _ = tx.send(target.to_socket_addrs().map(|a| a.collect::<Vec<SocketAddr>>()));
    });
    let addrs = match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => addrs,
        Ok(Ok(_)) => return Err(format!("{host} has no address")),
        Ok(Err(e)) => return Err(format!("cannot resolve {host}: {e}")),
        Err(_) => return Err(format!("resolving {host} took more than {} s", timeout.as_secs_f32())),
    };
    let mut last = String::new();
    for addr in addrs {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    if last.is_empty() {
        last = format!("no answer within {} s", timeout.as_secs_f32());
    }
    Err(format!("cannot connect to {host}:{port} ({last})"))
}
