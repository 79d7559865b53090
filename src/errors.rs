//! Engine errors as Postgres errors: a fitting SQLSTATE, a message, and a hint saying what to do.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;
use qwen3_embed_engine::{EngineError, ErrorKind};

pub fn sqlstate(e: &EngineError) -> Code {
    match e.kind() {
        ErrorKind::NotFound => Code::ERRCODE_UNDEFINED_FILE,
        ErrorKind::Unreadable => Code::ERRCODE_IO_ERROR,
        ErrorKind::Corrupt => Code::ERRCODE_DATA_CORRUPTED,
        ErrorKind::Unsupported | ErrorKind::DeviceUnsupported => Code::ERRCODE_FEATURE_NOT_SUPPORTED,
        ErrorKind::InvalidDims | ErrorKind::Device => Code::ERRCODE_INVALID_PARAMETER_VALUE,
        ErrorKind::InputTooLong | ErrorKind::RequestTooLarge => Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        ErrorKind::ServerBusy => Code::ERRCODE_OUT_OF_MEMORY,
        ErrorKind::RoleShare => Code::ERRCODE_INSUFFICIENT_RESOURCES,
        ErrorKind::ModelMismatch => Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        ErrorKind::WrongTask => Code::ERRCODE_WRONG_OBJECT_TYPE,
        ErrorKind::Cancelled => Code::ERRCODE_QUERY_CANCELED,
        ErrorKind::Encode => Code::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        ErrorKind::DeviceUnavailable => Code::ERRCODE_SYSTEM_ERROR,
        ErrorKind::DeviceOutOfMemory => Code::ERRCODE_OUT_OF_MEMORY,
        ErrorKind::Compute => Code::ERRCODE_INTERNAL_ERROR,
        ErrorKind::Server => Code::ERRCODE_SYSTEM_ERROR,
    }
}

fn hint(e: &EngineError) -> Option<&'static str> {
    match e {
        EngineError::NotRegular { .. } => {
            return Some(
                "qwen3_embed.model_path must name a regular .gguf file or a Hugging Face checkpoint directory.",
            )
        }
        EngineError::WrongArchitecture { .. } => {
            return Some("qwen3_embed runs Qwen3-Embedding models (0.6B, 4B, 8B) only.")
        }
        EngineError::UnbrokenRun { .. } => {
            return Some(
                "Text has a space, a digit or punctuation at least every megabyte; a longer run of one kind of character cannot be cut or cancelled while it is tokenized.",
            )
        }
        EngineError::InstructionTooLong { .. } => {
            return Some("Shorten the instruction, or ask a superuser to raise qwen3_embed.max_tokens.")
        }
        _ => {}
    }
    Some(match e.kind() {
        ErrorKind::NotFound | ErrorKind::Unreadable => {
            "Check qwen3_embed.model_path: the server process must be able to read it."
        }
        ErrorKind::Corrupt => {
            "Download the model file again, or point qwen3_embed.model_path at a complete .gguf file or Hugging Face directory."
        }
        ErrorKind::Unsupported => "Use an official quantization: F16, Q8_0, Q6_K, Q5_K_M, Q5_0 or Q4_K_M.",
        ErrorKind::InvalidDims => "Pass dims between 32 and the model's size, or NULL for the full size.",
        ErrorKind::InputTooLong => {
            "SET qwen3_embed.on_long_input = 'truncate', or ask a superuser to raise qwen3_embed.max_tokens (up to 32768)."
        }
        ErrorKind::RequestTooLarge => {
            "Embed fewer or shorter inputs per call (for qwen3_embed_reembed, a smaller batch_size), or ask a superuser to raise qwen3_embed.max_request_tokens."
        }
        ErrorKind::WrongTask => {
            "qwen3_embed.model_path names the embedding model (Qwen3-Embedding); a reranker (Qwen3-Reranker) cannot embed."
        }
        ErrorKind::ModelMismatch => {
            "Vectors of another model must not be mixed in: configure the expected model again, or re-embed with the new one (CALL qwen3_embed_reembed) and then set qwen3_embed.expect_fingerprint to the new fingerprint."
        }
        ErrorKind::ServerBusy => {
            "Run the statement again when the server is less busy; a superuser can raise qwen3_embed.server_max_tokens (server restart)."
        }
        ErrorKind::RoleShare => {
            "Other roles keep their share of the model server: run the statement again when this role's other calls (or, for a group of qwen3_embed.server_share_groups, its members' calls) have finished, or ask a superuser to raise qwen3_embed.server_role_share (server restart)."
        }
        ErrorKind::Device | ErrorKind::DeviceUnsupported => "Use qwen3_embed.device = 'cpu' or 'auto'.",
        ErrorKind::DeviceUnavailable => {
            "Check the NVIDIA driver and the device number (nvidia-smi lists the devices), or use qwen3_embed.device = 'cpu'."
        }
        ErrorKind::DeviceOutOfMemory => {
            "Free memory on the card, use a smaller quantization or a lower qwen3_embed.batch_tokens, or use qwen3_embed.device = 'cpu'."
        }
        ErrorKind::Server => {
            "The model server restarts by itself when its process dies: run the statement again. Its state: SELECT * FROM qwen3_embed_server_stats();"
        }
        _ => return None,
    })
}

/// Makes sure no Rust backtrace is ever captured in this process (or the model server it
/// forks), whatever `RUST_BACKTRACE` says: pgrx attaches a captured backtrace, build paths and
/// all, to the DETAIL of errors it reports (a statement timeout among them), and candle to its
/// error messages. `RUST_LIB_BACKTRACE` decides `Backtrace::capture` before `RUST_BACKTRACE`
/// does; it is read at the first capture, and nothing of ours has run before `_PG_init`. Panic
/// messages in the server log still follow `RUST_BACKTRACE`.
pub fn no_backtraces() {
    // No other thread of ours exists yet (the library is being loaded), so changing the
    // environment races with nothing.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
}

/// Raises `e` as an ERROR; never returns.
pub fn raise(e: EngineError) -> ! {
    let mut report = ErrorReport::new(sqlstate(&e), format!("qwen3_embed: {}", e.message()), "qwen3_embed");
    if let Some(h) = hint(&e) {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Raises an ERROR with a SQLSTATE, message and hint.
pub fn raise_with(code: Code, message: String, hint: &str) -> ! {
    ErrorReport::new(code, message, "qwen3_embed").set_hint(hint.to_string()).report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Raises an ERROR with a SQLSTATE and a message.
pub fn raise_code(code: Code, message: String) -> ! {
    ErrorReport::new(code, message, "qwen3_embed").report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, EngineError> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| raise(e))
    }
}
