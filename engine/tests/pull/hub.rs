//! A stand-in for the Hugging Face hub on 127.0.0.1, answering what `hf-hub` asks: the
//! repository listing (`/api/models/{repo}/revision/main?blobs=true`), `/{repo}/resolve/main/{file}`
//! (small files served directly with their git blob id as ETag; LFS files redirected to a
//! "CDN" path with the sha256 in `X-Linked-Etag`, as the hub does), and byte ranges.
//! It can corrupt a file, break a transfer off after some bytes, and records every request.
//! It stops when dropped, or after two minutes whatever happens.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha1::Sha1;
use sha2::{Digest, Sha256};

pub const COMMIT: &str = "5b9d6a2d0c3e1f4a7b8c9d0e1f2a3b4c5d6e7f80";

#[derive(Clone)]
pub struct FakeFile {
    pub name: String,
    pub bytes: Arc<Vec<u8>>,
    pub lfs: bool,
    /// A size for the listing other than the real one.
    pub listed_size: Option<u64>,
}

impl FakeFile {
    pub fn lfs(name: &str, bytes: Vec<u8>) -> FakeFile {
        FakeFile { name: name.into(), bytes: Arc::new(bytes), lfs: true, listed_size: None }
    }
    pub fn small(name: &str, bytes: Vec<u8>) -> FakeFile {
        FakeFile { name: name.into(), bytes: Arc::new(bytes), lfs: false, listed_size: None }
    }
    pub fn sha256(&self) -> String {
        hex(&Sha256::digest(&*self.bytes))
    }
    fn git_blob_id(&self) -> String {
        let content: Vec<u8> = if self.lfs {
            format!(
                "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
                self.sha256(),
                self.bytes.len()
            )
            .into_bytes()
        } else {
            self.bytes.to_vec()
        };
        let mut h = Sha1::new();
        h.update(format!("blob {}\0", content.len()).as_bytes());
        h.update(&content);
        hex(&h.finalize())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    repos: BTreeMap<String, Vec<FakeFile>>,
    corrupt: HashSet<String>,
    /// File name → body bytes to send on its next ranged download before hanging up.
    cut: HashMap<String, usize>,
    seen: Vec<Seen>,
}

pub struct FakeHub {
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHub {
    pub fn start(repos: Vec<(&str, Vec<FakeFile>)>) -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            repos: repos.into_iter().map(|(r, f)| (r.to_string(), f)).collect(),
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop, url) = (state.clone(), stop.clone(), url.clone());
            std::thread::spawn(move || serve(listener, &state, &stop, &url))
        };
        FakeHub { url, state, stop, thread: Some(thread) }
    }

    /// Serve `name` with one byte changed (the listing keeps the true checksum).
    pub fn corrupt(&self, name: &str, on: bool) {
        let mut s = self.state.lock().unwrap();
        if on {
            s.corrupt.insert(name.into());
        } else {
            s.corrupt.remove(name);
        }
    }

    /// Hang up after `bytes` bytes of the next ranged download of `name`.
    pub fn cut_next(&self, name: &str, bytes: usize) {
        self.state.lock().unwrap().cut.insert(name.into(), bytes);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, state: &Mutex<State>, stop: &AtomicBool, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = handle(stream, state, url);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => return,
        }
    }
}

struct Reply {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes, then hang up.
    cut: Option<usize>,
}

impl Reply {
    fn new(status: &'static str, body: Vec<u8>) -> Reply {
        Reply { status, headers: Vec::new(), body, cut: None }
    }
    fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

fn handle(stream: TcpStream, state: &Mutex<State>, url: &str) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        // A connection test (`pull --check`, or the check before a download): no request.
        return Ok(());
    }
    let (mut range, mut authorization) = (None, None);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(value.trim().to_string()),
                "authorization" => authorization = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let path = target.split('?').next().unwrap_or("").to_string();
    let reply = {
        let mut s = state.lock().unwrap();
        s.seen.push(Seen { path: path.clone(), range: range.clone(), authorization });
        route(&mut s, &path, range.as_deref(), url)
    };
    write_reply(stream, reply)
}

fn write_reply(mut stream: TcpStream, reply: Reply) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {}\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", reply.body.len()));
    stream.write_all(head.as_bytes())?;
    let n = reply.cut.unwrap_or(reply.body.len()).min(reply.body.len());
    stream.write_all(&reply.body[..n])?;
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Both)
}

/// `owner/name` and the rest of a path that starts with a repository id.
fn split_repo(path: &str) -> Option<(String, &str)> {
    let mut parts = path.splitn(3, '/');
    let (owner, name, rest) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
    Some((format!("{owner}/{name}"), rest))
}

fn route(s: &mut State, path: &str, range: Option<&str>, url: &str) -> Reply {
    let not_found = |what: &str| {
        Reply::new("404 Not Found", format!("{{\"error\":\"{what} not found\"}}").into_bytes())
            .header("X-Error-Code", "EntryNotFound")
    };
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let Some((repo, tail)) = split_repo(rest) else { return not_found("repository") };
        let Some(files) = s.repos.get(&repo).filter(|_| tail == "revision/main") else {
            // The hub answers 401 for a repository that does not exist (or is private).
            return Reply::new("401 Unauthorized", b"{\"error\":\"Repository not found\"}".to_vec())
                .header("X-Error-Code", "RepoNotFound");
        };
        return Reply::new("200 OK", listing(&repo, files).into_bytes()).header("Content-Type", "application/json");
    }
    if let Some(rest) = path.strip_prefix("/cdn/") {
        let Some((repo, name)) = split_repo(rest) else { return not_found("file") };
        let Some(file) = find(s, &repo, name) else { return not_found("file") };
        return ranged(s, &file, range);
    }
    let Some((repo, rest)) = split_repo(path.trim_start_matches('/')) else {
        return not_found("path");
    };
    let Some(name) = rest.strip_prefix("resolve/main/") else { return not_found("path") };
    let Some(file) = find(s, &repo, name) else { return not_found("file") };
    if file.lfs {
        let quoted = |v: String| format!("\"{v}\"");
        return Reply::new("302 Found", Vec::new())
            .header("Location", format!("{url}/cdn/{repo}/{name}"))
            .header("X-Repo-Commit", COMMIT)
            .header("X-Linked-Etag", quoted(file.sha256()))
            .header("X-Linked-Size", file.bytes.len().to_string())
            .header("ETag", quoted(file.git_blob_id()));
    }
    ranged(s, &file, range).header("X-Repo-Commit", COMMIT).header("ETag", format!("\"{}\"", file.git_blob_id()))
}

fn find(s: &State, repo: &str, name: &str) -> Option<FakeFile> {
    s.repos.get(repo)?.iter().find(|f| f.name == name).cloned()
}

fn listing(repo: &str, files: &[FakeFile]) -> String {
    let siblings: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            let size = f.listed_size.unwrap_or(f.bytes.len() as u64);
            let mut v = serde_json::json!({
                "rfilename": f.name, "size": size, "blobId": f.git_blob_id(),
            });
            if f.lfs {
                v["lfs"] = serde_json::json!({ "sha256": f.sha256(), "size": size, "pointerSize": 134 });
            }
            v
        })
        .collect();
    serde_json::json!({ "id": repo, "sha": COMMIT, "siblings": siblings }).to_string()
}

/// The file's bytes (corrupted if asked), the requested range of them as 206, or all as 200.
fn ranged(s: &mut State, file: &FakeFile, range: Option<&str>) -> Reply {
    let mut bytes = file.bytes.to_vec();
    if s.corrupt.contains(&file.name) {
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x5a;
    }
    let len = bytes.len();
    let Some(spec) = range.and_then(|r| r.strip_prefix("bytes=")) else {
        return Reply::new("200 OK", bytes);
    };
    let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
    let start: usize = a.parse().unwrap_or(0);
    let end: usize = b.parse().map_or(len.saturating_sub(1), |e: usize| e.min(len.saturating_sub(1)));
    if start >= len || start > end {
        return Reply::new("416 Range Not Satisfiable", Vec::new()).header("Content-Range", format!("bytes */{len}"));
    }
    let body = bytes[start..=end].to_vec();
    let mut reply =
        Reply::new("206 Partial Content", body).header("Content-Range", format!("bytes {start}-{end}/{len}"));
    if end > start {
        reply.cut = s.cut.remove(&file.name);
    }
    reply
}
