//! Where the engine runs: in the model server when there is one (see `server`), else in the
//! calling backend. Both give the same SQL-visible results: same vectors, notices and errors.

mod local;
mod offthread;
mod remote;
pub mod server;

pub use qwen3_embed_engine::serve::InfoSummary;
pub use remote::server_stats;

use crate::settings;

/// The NOTICE for an input cut to `qwen3_embed.max_tokens`, the same in both modes.
fn notice_truncated(t: &qwen3_embed_engine::Truncation, max: usize) {
    let full = t.full_len_text();
    pgrx::notice!("qwen3_embed: input of {full} tokens truncated to {max} (qwen3_embed.max_tokens)");
}

fn in_server() -> bool {
    server::registered() && settings::use_server()
}

/// Embeddings of `texts` (with `instruct`), `dims` long (the full size when `None`), in
/// input order. Inputs over `qwen3_embed.max_tokens` get a NOTICE or an ERROR, as
/// `qwen3_embed.on_long_input` says. `column`: the fingerprint of the model the target column's
/// vectors came from, which the loaded model must be.
pub fn embed(texts: &[&str], instruct: Option<&str>, dims: Option<usize>, column: Option<&str>) -> Vec<Vec<f32>> {
    if texts.is_empty() {
        return Vec::new();
    }
    if in_server() {
        remote::embed(texts, instruct, dims, column)
    } else {
        local::embed(texts, instruct, dims, column)
    }
}

/// `text` in chunks of at most `chunk_tokens` tokens overlapping by `overlap`.
pub fn chunk(text: &str, chunk_tokens: usize, overlap: usize) -> Vec<String> {
    if in_server() {
        remote::chunk(text, chunk_tokens, overlap)
    } else {
        local::chunk(text, chunk_tokens, overlap)
    }
}

/// Token ids of one input, end-of-text last, never truncated.
pub fn tokenize(text: &str, instruct: Option<&str>) -> Vec<u32> {
    if in_server() {
        remote::tokenize(text, instruct)
    } else {
        local::tokenize(text, instruct)
    }
}

/// The model in use (loading it if needed) and where it runs: "server" or "backend".
pub fn info() -> (InfoSummary, &'static str) {
    if in_server() {
        (remote::info(), "server")
    } else {
        (local::info(), "backend")
    }
}
