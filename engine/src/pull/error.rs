//! What can go wrong while pulling a model, each with a message that says what to do.

use std::fmt;
use std::path::PathBuf;

/// One `.gguf` file of a repository: its quantization as written in the file name, and size.
#[derive(Debug, Clone)]
pub struct QuantFile {
    pub quant: String,
    pub file: String,
    pub size: Option<u64>,
}

#[derive(Debug)]
pub enum PullError {
    /// `REPO[:QUANT]` could not be understood.
    BadSpec(String),
    /// The endpoint did not answer; `manual` says how to get the files by hand.
    NoNetwork {
        endpoint: String,
        detail: String,
        manual: String,
    },
    /// The hub does not know the repository (or it is private and no token gives access).
    UnknownRepo {
        repo: String,
        status: u16,
        token: bool,
    },
    /// The repository has `.gguf` files, none for this quantization.
    UnknownQuant {
        repo: String,
        quant: String,
        available: Vec<QuantFile>,
    },
    /// A quantization was asked of a repository without `.gguf` files.
    QuantOnSafetensors {
        repo: String,
        quant: String,
    },
    /// Neither a `.gguf` file nor the files of a safetensors checkpoint.
    NotAModel {
        repo: String,
        detail: String,
    },
    /// The hub's listing lacks the size or checksum of a file.
    NoChecksum {
        repo: String,
        file: String,
    },
    /// The downloaded bytes do not hash to the hub's checksum; the file was removed.
    ChecksumMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    /// Not enough free space, found before downloading.
    NoSpace {
        dir: PathBuf,
        needed: u64,
        available: u64,
    },
    /// The disk filled up during the download; the partial file is kept for resuming.
    DiskFull {
        dir: PathBuf,
    },
    /// The transfer broke off; the partial file is kept for resuming.
    Interrupted {
        file: String,
        detail: String,
    },
    /// A file that is not ours stands where the model should be linked.
    Occupied {
        path: PathBuf,
        detail: String,
    },
    /// Any other answer of the hub that we cannot use.
    Hub {
        what: String,
        detail: String,
    },
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The official repositories, listed when a repository is unknown: the embedders (GGUF and
/// safetensors) and the rerankers (safetensors checkpoints).
pub const OFFICIAL_REPOS: [&str; 9] = [
    "Qwen/Qwen3-Embedding-0.6B-GGUF",
    "Qwen/Qwen3-Embedding-4B-GGUF",
    "Qwen/Qwen3-Embedding-8B-GGUF",
    "Qwen/Qwen3-Embedding-0.6B",
    "Qwen/Qwen3-Embedding-4B",
    "Qwen/Qwen3-Embedding-8B",
    "Qwen/Qwen3-Reranker-0.6B",
    "Qwen/Qwen3-Reranker-4B",
    "Qwen/Qwen3-Reranker-8B",
];

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "";
    for u in UNITS {
        v /= 1024.0;
        unit = u;
        if v < 1024.0 {
            break;
        }
    }
    format!("{v:.2} {unit}")
}

impl fmt::Display for PullError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullError::BadSpec(s) => write!(f, "{s}"),
            PullError::NoNetwork { endpoint, detail, manual } => write!(
                f,
                "cannot reach {endpoint} ({detail}).\nCheck the network (or set HF_ENDPOINT to a \
                 mirror). To install the model by hand instead: {manual}"
            ),
            PullError::UnknownRepo { repo, status, token } => {
                write!(f, "repository {repo:?} not found on the hub (HTTP {status})")?;
                if !token {
                    write!(f, "; if it is private or gated, set HF_TOKEN")?;
                }
                write!(f, ".\nThe official repositories: {}", OFFICIAL_REPOS.join(", "))
            }
            PullError::UnknownQuant { repo, quant, available } => {
                write!(f, "{repo} has no {quant} file; available:")?;
                for q in available {
                    let size = q.size.map_or("size unknown".into(), human_bytes);
                    write!(f, "\n  {}:{}  ({}, {size})", repo, q.quant, q.file)?;
                }
                Ok(())
            }
            PullError::QuantOnSafetensors { repo, quant } => write!(
                f,
                "{repo} has no .gguf files, so :{quant} does not apply; pull it without a \
                 quantization to get its safetensors checkpoint"
            ),
            PullError::NotAModel { repo, detail } => write!(
                f,
                "{repo} holds neither a .gguf file nor a safetensors checkpoint ({detail}); the \
                 official repositories: {}",
                OFFICIAL_REPOS.join(", ")
            ),
            PullError::NoChecksum { repo, file } => write!(
                f,
                "the hub's listing of {repo} gives no size or checksum for {file}, so it cannot \
                 be verified; not downloading it"
            ),
            PullError::ChecksumMismatch { file, expected, actual } => write!(
                f,
                "checksum mismatch for {file}: the hub says {expected}, the download hashes to \
                 {actual}. The downloaded file was removed; run the command again"
            ),
            PullError::NoSpace { dir, needed, available } => write!(
                f,
                "not enough disk space in {}: {} to download, {} free. Free some space, or set \
                 HF_HOME to a directory on a larger disk",
                dir.display(),
                human_bytes(*needed),
                human_bytes(*available)
            ),
            PullError::DiskFull { dir } => write!(
                f,
                "the disk is full (writing under {}). Free some space, or set HF_HOME to a \
                 directory on a larger disk; run the command again to resume where it stopped",
                dir.display()
            ),
            PullError::Interrupted { file, detail } => write!(
                f,
                "the download of {file} was interrupted ({detail}); run the command again to \
                 resume where it stopped"
            ),
            PullError::Occupied { path, detail } => write!(
                f,
                "{} already exists and is not the hub's file ({detail}); move it away and run \
                 the command again",
                path.display()
            ),
            PullError::Hub { what, detail } => write!(f, "{what}: {detail}"),
            PullError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for PullError {}
