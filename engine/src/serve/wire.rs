//! The model server's messages. A frame is a little-endian `u32` length, then that many bytes:
//! a little-endian `u32` JSON length, the JSON, and a binary tail (the vectors of an embedding
//! reply, as little-endian f32, so they arrive bit for bit). Everything read is checked: a short,
//! oversized or malformed frame is an error, never a panic.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, ErrorKind};
use crate::{ModelInfo, Task};

/// Largest frame either side accepts (texts of a big batch, or its vectors).
pub const MAX_FRAME: usize = 1 << 30;

/// Which model a request is for: the server keeps one loaded model per key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelKey {
    pub path: String,
    pub device: String,
    /// Compute threads (0: one per core).
    pub threads: usize,
}

/// Who sends a request: the role and the backend process it comes from. Requests of different
/// roles, and of different backends within a role, take turns in the batcher, and no role may
/// hold more than its share of the server's token budget. Only the server's own OS user can
/// reach the socket, so the backends that say this are trusted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Caller {
    pub role: u32,
    pub pid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Token sequences the caller tokenized for the model's `task` (documents and queries with
    /// EOS last, or query–document pairs as `Qwen3Tokenizer::tokenize_pair` makes them), each
    /// at most `max_tokens`: `lens[i]` ids each, as little-endian u32 in the frame's binary
    /// tail. The server never tokenizes. Answered with `Reply::Vectors`: an embedding per input,
    /// or a one-float score per pair. A model asked for another task than its own answers
    /// `WrongTask`.
    #[serde(alias = "embed")]
    Run {
        model: ModelKey,
        /// What the caller wants computed ("embedding" when not said).
        #[serde(default)]
        task: Task,
        lens: Vec<usize>,
        /// The vectors' size (`None`: the model's full size); a rerank call ignores it.
        dims: Option<usize>,
        /// Most tokens per input: every sequence must fit.
        max_tokens: usize,
        /// Token budget of one forward pass.
        batch_tokens: usize,
        /// Longest time this request waits for others to share its forward pass.
        batch_wait_ms: u64,
        /// Most tokens the whole request may have.
        #[serde(default = "unlimited")]
        max_request_tokens: usize,
        /// The model fingerprints the vectors must come from.
        #[serde(default)]
        expect_fingerprints: Vec<String>,
        #[serde(default)]
        caller: Caller,
        /// A query whose result may come from, and goes into, the server's query cache, with
        /// the cache's bound in bytes (the caller's `qwen3_embed.query_cache_size`); `None`:
        /// computed afresh and not kept (documents being written, batch calls).
        #[serde(default)]
        query_cache_bytes: Option<u64>,
        /// Whose queries the cached results are (the caller's current role): no other scope's
        /// request is answered from them, so no role can tell from a fast answer what another
        /// asked.
        #[serde(default)]
        query_cache_scope: u32,
    },
    Info {
        model: ModelKey,
    },
    Stats,
}

fn unlimited() -> usize {
    usize::MAX
}

impl Request {
    pub fn model(&self) -> Option<&ModelKey> {
        match self {
            Request::Run { model, .. } | Request::Info { model } => Some(model),
            Request::Stats => None,
        }
    }
}

/// The loaded model as every front end shows it: `qwen3_embed_info()`, the model server's
/// `Info` reply and `qwen3-embed info` all render this one summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfoSummary {
    pub path: String,
    pub format: String,
    pub architecture: String,
    /// "embedding" or "rerank" (`Task::name`).
    #[serde(default = "embedding")]
    pub task: String,
    pub parameters: u64,
    pub tensor_types: String,
    pub hidden: usize,
    #[serde(default)]
    pub intermediate: usize,
    #[serde(default)]
    pub layers: usize,
    #[serde(default)]
    pub heads: usize,
    #[serde(default)]
    pub kv_heads: usize,
    #[serde(default)]
    pub head_dim: usize,
    pub vocab_rows: usize,
    /// Ids the tokenizer knows (may be fewer than `vocab_rows`).
    #[serde(default)]
    pub tokenizer_vocab: usize,
    pub device: String,
    /// Why that device (`ModelInfo::device_reason`).
    #[serde(default)]
    pub device_reason: String,
    /// "kernels" or "candle".
    #[serde(default)]
    pub backend: String,
    pub threads: usize,
    pub fingerprint: String,
    pub load_ms: f64,
    /// The packed-weight cache: "off", "mapped", "built" or "in memory" (`CacheState`).
    #[serde(default)]
    pub cache: String,
    #[serde(default)]
    pub cache_file: Option<String>,
    #[serde(default)]
    pub cache_bytes: u64,
    /// Why the cache is not in use, or what was rebuilt.
    #[serde(default)]
    pub cache_note: Option<String>,
    /// The bytes of its weights as loaded (`ModelInfo::resident_bytes`).
    #[serde(default)]
    pub resident_bytes: u64,
}

fn embedding() -> String {
    "embedding".into()
}

impl From<&ModelInfo> for InfoSummary {
    fn from(i: &ModelInfo) -> Self {
        InfoSummary {
            path: i.path.display().to_string(),
            format: i.format.to_string(),
            architecture: i.architecture.to_string(),
            task: i.task.name().to_string(),
            parameters: i.parameter_count,
            tensor_types: i.tensor_types.iter().map(|(t, n)| format!("{t}:{n}")).collect::<Vec<_>>().join(", "),
            hidden: i.config.hidden,
            intermediate: i.config.intermediate,
            layers: i.config.layers,
            heads: i.config.heads,
            kv_heads: i.config.kv_heads,
            head_dim: i.config.head_dim,
            vocab_rows: i.config.vocab_rows,
            tokenizer_vocab: i.tokenizer_vocab,
            device: i.device.clone(),
            device_reason: i.device_reason.clone(),
            backend: i.backend.to_string(),
            threads: i.threads,
            fingerprint: i.fingerprint.clone(),
            load_ms: i.load_time.as_secs_f64() * 1000.0,
            cache: i.cache.state.as_str().to_string(),
            cache_file: i.cache.path.as_ref().map(|p| p.display().to_string()),
            cache_bytes: i.cache.bytes,
            cache_note: i.cache.note.clone(),
            resident_bytes: i.resident_bytes,
        }
    }
}

/// A model the server holds loaded now (`Stats::models`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResidentModel {
    pub path: String,
    pub device: String,
    /// Compute threads asked for (0: one per core), as in its `ModelKey`.
    #[serde(default)]
    pub threads: usize,
    /// "embedding" or "rerank" (`Task::name`).
    pub task: String,
    /// Its weights as loaded (`ModelInfo::resident_bytes`).
    pub bytes: u64,
    pub load_ms: f64,
    /// Run requests it answered since it was loaded.
    pub requests: u64,
    /// Seconds since a request last used it.
    pub idle_s: f64,
}

/// The server's counters since its process started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub pid: u32,
    /// Times the supervisor restarted the server process before this one.
    pub restarts: u64,
    pub uptime_s: f64,
    /// The model loaded most recently, and how long it took.
    pub model_path: Option<String>,
    pub model_load_ms: Option<f64>,
    /// Run requests answered (one per SQL call; a batch call is one request).
    pub requests: u64,
    /// Requests withdrawn by their caller (cancelled, timed out) before an answer.
    pub withdrawn: u64,
    pub inputs: u64,
    pub tokens: u64,
    /// Forward-pass groups run: each holds one or more requests.
    pub batches: u64,
    pub queue_depth: usize,
    /// Seconds spent in forward passes (embeddings and scores).
    pub busy_s: f64,
    pub last_error: Option<String>,
    /// Models loaded by this process (the first one included).
    #[serde(default)]
    pub model_loads: u64,
    /// Models unloaded to keep the resident ones within `max_model_bytes`.
    #[serde(default)]
    pub model_unloads: u64,
    /// The models loaded now, least recently used first.
    #[serde(default)]
    pub models: Vec<ResidentModel>,
    /// Most bytes of resident models (`ServerOptions::max_model_bytes`; `u64::MAX`: no limit).
    #[serde(default)]
    pub max_model_bytes: u64,
    /// The model being loaded now, while requests for the resident ones go on being served.
    #[serde(default)]
    pub loading: Option<String>,
    /// Estimated tokens of the requests queued or running now, and the most allowed.
    #[serde(default)]
    pub tokens_in_flight: usize,
    #[serde(default)]
    pub max_tokens_in_flight: usize,
    /// The most of them one role may hold (`ServerOptions::role_share_percent`).
    #[serde(default)]
    pub max_tokens_per_role: usize,
    /// The most recently loaded model's packed-weight cache: state, file and size
    /// (`InfoSummary::cache`).
    #[serde(default)]
    pub cache: Option<String>,
    #[serde(default)]
    pub cache_file: Option<String>,
    #[serde(default)]
    pub cache_bytes: u64,
    /// The query cache: what it holds, its bound, and how often it answered.
    #[serde(default)]
    pub query_cache: crate::query_cache::QueryCacheStats,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Vectors follow in the binary tail, `dims[i]` floats each, in input order.
    Vectors {
        dims: Vec<usize>,
    },
    Info {
        info: InfoSummary,
    },
    Stats {
        stats: Stats,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

impl Reply {
    pub fn error(e: &EngineError) -> Reply {
        Reply::Error { kind: e.kind(), message: e.message() }
    }
}

fn invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Writes one frame: `body` as JSON, then `tail`.
pub fn write_frame<T: Serialize>(w: &mut impl Write, body: &T, tail: &[u8]) -> std::io::Result<()> {
    let json = serde_json::to_vec(body).map_err(|e| invalid(e.to_string()))?;
    let len = 4 + json.len() + tail.len();
    if len > MAX_FRAME {
        return Err(invalid(format!("message of {len} bytes is over the {MAX_FRAME}-byte limit")));
    }
    let mut buf = Vec::with_capacity(8 + json.len() + tail.len());
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
    buf.extend_from_slice(&json);
    buf.extend_from_slice(tail);
    w.write_all(&buf)?;
    w.flush()
}

/// Splits a frame's payload (what follows the length) into its JSON body and its tail.
pub fn parse_payload<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> std::io::Result<(T, &[u8])> {
    if payload.len() < 4 {
        return Err(invalid("message shorter than its header"));
    }
    let jlen = u32::from_le_bytes(payload[..4].try_into().expect("4 bytes")) as usize;
    let rest = &payload[4..];
    if jlen > rest.len() {
        return Err(invalid("message body longer than the message"));
    }
    let body = serde_json::from_slice(&rest[..jlen]).map_err(|e| invalid(format!("malformed message: {e}")))?;
    Ok((body, &rest[jlen..]))
}

/// The length in a frame header, checked against `MAX_FRAME`.
pub fn frame_len(header: [u8; 4]) -> std::io::Result<usize> {
    let len = u32::from_le_bytes(header) as usize;
    if !(4..=MAX_FRAME).contains(&len) {
        return Err(invalid(format!("message length {len} is out of range")));
    }
    Ok(len)
}

/// Reads one whole frame's payload (blocking).
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header)?;
    let len = frame_len(header)?;
    let mut payload = Vec::new();
    r.take(len as u64).read_to_end(&mut payload)?;
    if payload.len() != len {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated message"));
    }
    Ok(payload)
}

/// Token sequences as the tail of an embedding request: little-endian u32, one after another.
pub fn ids_to_bytes(seqs: &[Vec<u32>]) -> Vec<u8> {
    seqs.iter().flatten().flat_map(|x| x.to_le_bytes()).collect()
}

/// Splits an embedding request's tail into sequences of `lens` ids; the lengths must match.
pub fn bytes_to_ids(tail: &[u8], lens: &[usize]) -> std::io::Result<Vec<Vec<u32>>> {
    let total = lens.iter().try_fold(0usize, |a, &n| a.checked_add(n)).unwrap_or(usize::MAX);
    if total.checked_mul(4) != Some(tail.len()) {
        return Err(invalid(format!("{} token bytes for {total} token ids", tail.len())));
    }
    let mut ids = tail.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")));
    Ok(lens.iter().map(|&n| ids.by_ref().take(n).collect()).collect())
}

pub fn f32s_to_bytes(vs: &[Vec<f32>]) -> Vec<u8> {
    vs.iter().flatten().flat_map(|x| x.to_le_bytes()).collect()
}

/// Splits a vectors tail by `dims`; the lengths must match exactly.
pub fn bytes_to_f32s(tail: &[u8], dims: &[usize]) -> std::io::Result<Vec<Vec<f32>>> {
    let total: usize = dims.iter().sum();
    if tail.len() != total * 4 {
        return Err(invalid(format!("{} vector bytes for {total} values", tail.len())));
    }
    let mut out = Vec::with_capacity(dims.len());
    let mut at = 0;
    for &d in dims {
        let v =
            tail[at..at + 4 * d].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        out.push(v);
        at += 4 * d;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_request_names_its_task_and_embeds_when_it_does_not() {
        let old = r#"{"op":"embed","model":{"path":"m","device":"cpu","threads":0},"lens":[1],"dims":null,
            "max_tokens":8,"batch_tokens":8,"batch_wait_ms":0}"#;
        assert!(matches!(serde_json::from_str(old).unwrap(), Request::Run { task: Task::Embedding, .. }));
        let rerank = old.replace(r#""op":"embed""#, r#""op":"run","task":"rerank""#);
        assert!(matches!(serde_json::from_str(&rerank).unwrap(), Request::Run { task: Task::Rerank, .. }));
        for task in [Task::Embedding, Task::Rerank] {
            assert_eq!(serde_json::to_value(task).unwrap(), task.name());
        }
    }
}
