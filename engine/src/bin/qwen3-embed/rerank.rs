//! `qwen3-embed rerank`: score query–document pairs with a reranker (Qwen3-Reranker).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use qwen3_embed_engine::{CancelFlag, DEFAULT_BATCH_TOKENS, DEFAULT_MAX_TOKENS};

use super::{load, ModelArgs};

#[derive(clap::Args)]
pub struct RerankArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// JSON lines {"query", "document", "instruct"?}; `-` reads standard input.
    #[arg(long, conflicts_with_all = ["query", "document"], required_unless_present = "query")]
    input: Option<PathBuf>,
    /// One pair's query (with --document).
    #[arg(long, requires = "document")]
    query: Option<String>,
    /// One pair's document (with --query).
    #[arg(long, requires = "query")]
    document: Option<String>,
    /// Task for every pair without its own "instruct" (default: the web search task).
    #[arg(long)]
    instruct: Option<String>,
    /// Most tokens per pair, the prompt included; a longer pair loses the end of its document.
    #[arg(long, default_value_t = DEFAULT_MAX_TOKENS)]
    max_tokens: usize,
    /// Most tokens per forward pass.
    #[arg(long, default_value_t = DEFAULT_BATCH_TOKENS)]
    batch_tokens: usize,
}

struct Pair {
    query: String,
    document: String,
    instruct: Option<String>,
}

/// The pairs of a JSON-lines file, or of standard input when `path` is `-` (blank lines skipped).
fn read_pairs(path: &Path) -> Result<Vec<Pair>, String> {
    let (name, reader) = super::open_input(path)?;
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{name}: {e}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{name}:{}", n + 1);
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| format!("{at}: {e}"))?;
        let text = |key: &str| v.get(key).and_then(|t| t.as_str()).map(str::to_string);
        out.push(Pair {
            query: text("query").ok_or_else(|| format!("{at}: no \"query\" string"))?,
            document: text("document").ok_or_else(|| format!("{at}: no \"document\" string"))?,
            instruct: text("instruct"),
        });
    }
    Ok(out)
}

/// Prints one JSON line per pair, in input order: its index, tokens, whether the document was
/// cut, and its score (P(yes), in [0, 1]).
pub fn run(a: RerankArgs) -> Result<(), String> {
    let pairs = match (&a.input, a.query, a.document) {
        (Some(p), _, _) => read_pairs(p)?,
        (None, Some(query), Some(document)) => vec![Pair { query, document, instruct: None }],
        _ => return Err("give --input, or --query with --document".into()),
    };
    let engine = load(&a.model)?;
    let cancel = CancelFlag::new();
    let tokenized = pairs
        .iter()
        .map(|p| {
            let instruct = p.instruct.as_deref().or(a.instruct.as_deref());
            engine.tokenizer().tokenize_pair(&p.query, &p.document, instruct, a.max_tokens, &cancel)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let seqs: Vec<Vec<u32>> = tokenized.iter().map(|t| t.ids.clone()).collect();
    let scores = engine.rerank_tokens(&seqs, a.batch_tokens, &cancel, &mut |_| {}).map_err(|e| e.to_string())?;
    for (i, (t, score)) in tokenized.iter().zip(scores).enumerate() {
        let line = serde_json::json!({"index": i, "tokens": t.ids.len(), "truncated": t.truncated, "score": score});
        println!("{line}");
    }
    Ok(())
}
