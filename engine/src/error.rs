use std::path::PathBuf;

/// Everything that can go wrong between a model path and a vector.
/// Messages name the file and say what is wrong; callers map variants to their own error codes.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model file {path}: not found")]
    NotFound { path: PathBuf },
    #[error("model file {path}: cannot be read: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("model file {path}: is {what}, not a regular file or a directory of them")]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("model file {path}: truncated: {detail}")]
    Truncated { path: PathBuf, detail: String },
    #[error("model file {path}: neither a GGUF file nor a safetensors checkpoint directory ({detail})")]
    UnknownFormat { path: PathBuf, detail: String },
    #[error("model file {path}: corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("model file {path}: architecture is {found:?}, expected \"qwen3\"")]
    WrongArchitecture { path: PathBuf, found: String },
    #[error("model file {path}: missing tensor {name}")]
    MissingTensor { path: PathBuf, name: String },
    #[error("model file {path}: tensor {name} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch { path: PathBuf, name: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("model file {path}: tensor {name} has unsupported type {dtype}")]
    UnsupportedQuantization { path: PathBuf, name: String, dtype: String },
    #[error("model file {path}: invalid configuration: {detail}")]
    InvalidConfig { path: PathBuf, detail: String },
    #[error("model file {path}: tokenizer: {detail}")]
    Tokenizer { path: PathBuf, detail: String },
    #[error("tokenization failed: {0}")]
    Encode(String),
    #[error("dims must be between 32 and {max}, got {dims}")]
    InvalidDims { dims: usize, max: usize },
    #[error("input has {tokens} tokens, more than the limit of {limit}")]
    InputTooLong {
        /// "1234", or "more than 1234" when only a prefix was tokenized.
        tokens: String,
        limit: usize,
    },
    #[error("input has a run of more than {limit} bytes from byte {at} with no place where its tokens may be cut (one word of letters, spaces or symbols): such a run is refused, not tokenized whole")]
    UnbrokenRun { at: usize, limit: usize },
    #[error(
        "the instruction alone takes {tokens} tokens, which leaves no room for the input under the limit of {limit}"
    )]
    InstructionTooLong { tokens: usize, limit: usize },
    #[error("the reranker's prompt with this instruction and query takes {tokens} tokens, which leaves no room for the document under the limit of {limit}")]
    QueryTooLong { tokens: usize, limit: usize },
    #[error("model file {path}: is {}, not {}", is.noun(), wanted.noun())]
    WrongTask { path: PathBuf, is: crate::task::Task, wanted: crate::task::Task },
    #[error("this call has {tokens} tokens in all, more than the limit of {limit} per call")]
    RequestTooLarge {
        /// "1234", or "at least 1234" when the call was refused before its last input.
        tokens: String,
        limit: usize,
    },
    #[error("the model server has {in_flight} tokens in flight; this request's {tokens} more would pass its limit of {limit}")]
    ServerBusy { in_flight: usize, tokens: usize, limit: usize },
    #[error("this role has {held} tokens in flight in the model server; this request's {tokens} more would pass the {limit} one role may hold")]
    RoleShare { held: usize, tokens: usize, limit: usize },
    #[error("the loaded model's fingerprint is {loaded}, not the expected {expected}")]
    ModelMismatch { loaded: String, expected: String },
    #[error("chunks of {chunk_tokens} tokens cannot overlap by {overlap}: the overlap must be smaller than the chunk's text tokens (chunk_tokens - 1), and chunk_tokens at least 2")]
    InvalidChunking { chunk_tokens: usize, overlap: usize },
    #[error("embedding cancelled")]
    Cancelled,
    #[error("device {0:?} is not available: {1}")]
    Device(String, String),
    #[error("device {0:?} is not available: this build of qwen3_embed has no CUDA support")]
    NoCuda(String),
    /// A device this build supports that cannot be used: no driver, no such device.
    #[error("device {device} is not available: {detail}")]
    DeviceUnavailable { device: String, detail: String },
    /// The device has too little free memory for the model or for one forward pass.
    #[error("device {device} is out of memory: {detail}")]
    DeviceOutOfMemory { device: String, detail: String },
    #[error("compute error: {0}")]
    Compute(String),
    /// `QWEN3_EMBED_ISA` names an instruction set that is unknown or that this CPU lacks.
    #[error("{0}")]
    Isa(String),
    /// The model server could not be reached, or went away while computing the request.
    #[error("{0}")]
    Server(String),
    /// An error the model server reported, as its kind and message.
    #[error("{message}")]
    Remote { kind: ErrorKind, message: String },
}

impl EngineError {
    /// The message as callers show it: never with a backtrace.
    pub fn message(&self) -> String {
        without_backtrace(&self.to_string()).into_owned()
    }
}

/// What kind of failure an error is: how callers map errors to their own codes, and how the
/// model server sends them over the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    Unreadable,
    /// A model file or directory that is broken: truncated, corrupt, not a model, bad shape.
    Corrupt,
    /// A model this build cannot run: another architecture, an unsupported tensor type.
    Unsupported,
    Encode,
    InvalidDims,
    InputTooLong,
    /// One call asks for more tokens than a call may have.
    RequestTooLarge,
    /// The model server holds as many tokens in flight as it may.
    ServerBusy,
    /// The caller's role holds as many of the model server's tokens as one role may.
    RoleShare,
    /// The loaded model is not the one the caller's vectors must come from.
    ModelMismatch,
    /// An embedding model asked to rerank, or a reranker asked to embed.
    WrongTask,
    Cancelled,
    /// A device this build has no support for.
    DeviceUnsupported,
    /// A device name that is not valid (a bad ordinal included).
    Device,
    /// A device this build supports, not usable here: no driver, no device.
    DeviceUnavailable,
    /// The device has not enough free memory.
    DeviceOutOfMemory,
    Compute,
    /// The model server is not reachable or went away.
    Server,
}

impl EngineError {
    pub fn kind(&self) -> ErrorKind {
        use EngineError::*;
        match self {
            NotFound { .. } => ErrorKind::NotFound,
            Unreadable { .. } | NotRegular { .. } => ErrorKind::Unreadable,
            Truncated { .. }
            | Corrupt { .. }
            | UnknownFormat { .. }
            | MissingTensor { .. }
            | ShapeMismatch { .. }
            | InvalidConfig { .. }
            | Tokenizer { .. } => ErrorKind::Corrupt,
            WrongArchitecture { .. } | UnsupportedQuantization { .. } | Isa(_) => ErrorKind::Unsupported,
            Encode(_) => ErrorKind::Encode,
            InvalidDims { .. } | InvalidChunking { .. } => ErrorKind::InvalidDims,
            InputTooLong { .. } | InstructionTooLong { .. } | QueryTooLong { .. } | UnbrokenRun { .. } => {
                ErrorKind::InputTooLong
            }
            WrongTask { .. } => ErrorKind::WrongTask,
            RequestTooLarge { .. } => ErrorKind::RequestTooLarge,
            ServerBusy { .. } => ErrorKind::ServerBusy,
            RoleShare { .. } => ErrorKind::RoleShare,
            ModelMismatch { .. } => ErrorKind::ModelMismatch,
            Cancelled => ErrorKind::Cancelled,
            NoCuda(_) => ErrorKind::DeviceUnsupported,
            Device(..) => ErrorKind::Device,
            DeviceUnavailable { .. } => ErrorKind::DeviceUnavailable,
            DeviceOutOfMemory { .. } => ErrorKind::DeviceOutOfMemory,
            Compute(_) => ErrorKind::Compute,
            Server(_) => ErrorKind::Server,
            Remote { kind, .. } => *kind,
        }
    }
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        EngineError::Compute(candle_message(&e))
    }
}

/// A candle error's message without the backtrace candle attaches to it when `RUST_BACKTRACE`
/// is set: messages reach SQL clients, backtraces (with build paths) must not.
pub fn candle_message(e: &candle_core::Error) -> String {
    use candle_core::Error as C;
    match e {
        C::WithBacktrace { inner, .. } => candle_message(inner),
        C::Context { inner, context } => format!("{context}\n{}", candle_message(inner)),
        C::WithPath { inner, path } => format!("path: {path:?} {}", candle_message(inner)),
        other => without_backtrace(&other.to_string()).to_string(),
    }
}

/// `message` up to the first line that starts a Rust backtrace ("stack backtrace:", a frame
/// "  12: symbol", or its "at /path/file.rs:3:5" line), trailing blanks removed.
pub fn without_backtrace(message: &str) -> std::borrow::Cow<'_, str> {
    let frame = |line: &str| {
        let t = line.trim();
        let numbered = t.split_once(": ").is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        numbered || t.eq_ignore_ascii_case("stack backtrace:") || (t.starts_with("at ") && t.contains(".rs:"))
    };
    let mut at = 0;
    for line in message.split_inclusive('\n') {
        if at > 0 && frame(line) {
            return std::borrow::Cow::Owned(message[..at].trim_end().to_string());
        }
        at += line.len();
    }
    std::borrow::Cow::Borrowed(message)
}

pub type Result<T> = std::result::Result<T, EngineError>;
