//! Command-line front end of the engine: embed a file of inputs, tokenize, describe a model,
//! write fixture checkpoints, pull an official model from the hub.

use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

#[path = "qwen3-embed/cache.rs"]
mod cache_cmd;
#[path = "qwen3-embed/rerank.rs"]
mod rerank_cmd;
use qwen3_embed_engine::fixture::{self, Format, Shape};
use qwen3_embed_engine::serve::InfoSummary;
use qwen3_embed_engine::{
    BackendChoice, CancelFlag, DeviceSpec, Engine, EngineOptions, Tokenized, DEFAULT_BATCH_TOKENS, DEFAULT_MAX_TOKENS,
};

#[derive(Parser)]
#[command(name = "qwen3-embed", version, about = "Qwen3-Embedding on the CPU, no Postgres needed")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// The inputs of `embed` and `tokenize`.
#[derive(clap::Args)]
struct InputArgs {
    /// The input file; `-` reads standard input.
    #[arg(long)]
    input: PathBuf,
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    input_format: InputFormat,
    /// Task for every input without its own "instruct", formatted as
    /// `Instruct: {task}\nQuery:{text}`.
    #[arg(long)]
    instruct: Option<String>,
    /// Most tokens per input, EOS included; longer inputs are truncated.
    #[arg(long, default_value_t = DEFAULT_MAX_TOKENS)]
    max_tokens: usize,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// A .gguf file or a Hugging Face checkpoint directory.
    #[arg(long)]
    model: PathBuf,
    /// Compute threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// auto (our kernels on the CPU, candle on CUDA), kernels, or candle (on any device).
    #[arg(long, default_value = "auto")]
    backend: String,
    /// The packed-weight cache's directory (default $XDG_CACHE_HOME/qwen3_embed or
    /// ~/.cache/qwen3_embed): the first run packs the model into a file there, later runs map it.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Pack the weights in this process's memory; no cache file is read or written.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    #[command(flatten)]
    cache_limits: cache_cmd::LimitArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Embed every input of a file: plain text (one input per line) or .jsonl (a JSON string,
    /// or an object with "text" and optional "instruct", per line).
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        inputs: InputArgs,
        /// Where to write one JSON object per input; stdout when absent.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Output dimensions (MRL), 32..hidden; full size when absent.
        #[arg(long)]
        dims: Option<usize>,
        /// Most tokens per forward pass.
        #[arg(long, default_value_t = DEFAULT_BATCH_TOKENS)]
        batch_tokens: usize,
    },
    /// Benchmark: load once, warm up, embed a document file in packed batches (timed), then
    /// each query alone (timed, `--query-repeats` rounds). Prints one JSON object with the
    /// timings; `--output` gets one JSON object per document, then per query.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// Documents: plain text (one per line) or .jsonl, as for `embed`; `-` reads standard input.
        #[arg(long)]
        docs: PathBuf,
        /// Queries, embedded one at a time: plain text or .jsonl, as for `embed`; `-` reads
        /// standard input (for one of the two files at most).
        #[arg(long)]
        queries: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
        input_format: InputFormat,
        /// Task for queries without their own "instruct".
        #[arg(long)]
        instruct: Option<String>,
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long, default_value_t = DEFAULT_MAX_TOKENS)]
        max_tokens: usize,
        #[arg(long, default_value_t = DEFAULT_BATCH_TOKENS)]
        batch_tokens: usize,
        /// Rounds over the query file (the latency reported is the median of all).
        #[arg(long, default_value_t = 3)]
        query_repeats: usize,
        /// Rounds over the document file (the throughput reported is the best round).
        #[arg(long, default_value_t = 1)]
        doc_repeats: usize,
    },
    /// Score query–document pairs with a reranker (Qwen3-Reranker): JSON lines
    /// {"query", "document", "instruct"?}, or one pair from --query and --document. Prints one
    /// JSON line per pair, in input order, with its "score" (P(yes), in [0, 1]).
    Rerank(rerank_cmd::RerankArgs),
    /// Print the token ids of every input, one JSON array per line.
    Tokenize {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        inputs: InputArgs,
    },
    /// The packed-weight cache's files: list them, remove the least recently used, verify them.
    Cache {
        #[command(subcommand)]
        cmd: cache_cmd::CacheCmd,
    },
    /// Describe a model file.
    Info {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Write deterministic random-weight Qwen3 checkpoints with the real tokenizer.
    Fixture {
        /// tiny, tiny-151665, 0.6b, 4b or 8b.
        #[arg(long, default_value = "tiny")]
        preset: String,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The official tokenizer.json (scripts/fetch_tokenizer.sh fetches it).
        #[arg(long, default_value = "fixtures/tokenizer/tokenizer.json")]
        tokenizer: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Comma-separated: hf-f32, hf-f16, hf-bf16, hf-sharded, gguf-f32, gguf-f16,
        /// gguf-q8_0, gguf-q6_k, gguf-q5_k_m, gguf-q5_0, gguf-q4_k_m.
        #[arg(long, value_delimiter = ',', default_value = "hf-f32,gguf-f32")]
        formats: Vec<String>,
        /// embedding, reranker (its own lm_head, as the 4B and 8B) or reranker-tied (the
        /// embedding table as its head, as the 0.6B).
        #[arg(long, default_value = "embedding")]
        kind: String,
    },
    /// Download an official model from the Hugging Face hub ($HF_ENDPOINT, token $HF_TOKEN,
    /// cache $HF_HOME), resuming a partial download, verify its checksum, link it under
    /// ~/.cache/qwen3_embed and print the path for qwen3_embed.model_path on stdout.
    #[cfg(feature = "pull")]
    Pull {
        /// REPO[:QUANT]: Qwen/Qwen3-Embedding-{0.6B,4B,8B}-GGUF with F16, Q8_0, Q6_K, Q5_K_M,
        /// Q5_0 or Q4_K_M (default Q4_K_M), or a safetensors repository such as
        /// Qwen/Qwen3-Embedding-0.6B or a reranker, Qwen/Qwen3-Reranker-{0.6B,4B,8B}.
        #[arg(default_value = "Qwen/Qwen3-Embedding-4B-GGUF:Q4_K_M")]
        spec: String,
        /// Where to link the model (default ~/.cache/qwen3_embed).
        #[arg(long)]
        dest: Option<PathBuf>,
        /// Only check that the hub accepts a connection within --connect-timeout; exit 0 if so.
        #[arg(long)]
        check: bool,
        /// Seconds the hub may take to accept a connection.
        #[arg(long, default_value_t = 5)]
        connect_timeout: u64,
    },
}

struct Input {
    text: String,
    instruct: Option<String>,
}

/// How an input file is read: `auto` goes by its name (`.jsonl` is JSON lines; anything else,
/// standard input included, is plain text).
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum InputFormat {
    Auto,
    Text,
    Jsonl,
}

/// The lines of `path`, or of standard input when `path` is `-`, and the name to show for it.
fn open_input(path: &Path) -> Result<(String, Box<dyn BufRead>), String> {
    if path == Path::new("-") {
        return Ok(("<stdin>".to_string(), Box::new(std::io::stdin().lock())));
    }
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| format!("{name}: {e}"))?;
    Ok((name, Box::new(std::io::BufReader::new(file))))
}

/// Reads the inputs of `path`, or of standard input when `path` is `-`.
fn read_inputs(path: &Path, format: InputFormat) -> Result<Vec<Input>, String> {
    let stdin = path == Path::new("-");
    let (name, reader) = open_input(path)?;
    let jsonl = match format {
        InputFormat::Auto => !stdin && path.extension().is_some_and(|e| e == "jsonl"),
        InputFormat::Text => false,
        InputFormat::Jsonl => true,
    };
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{name}: {e}"))?;
        if !jsonl {
            out.push(Input { text: line, instruct: None });
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| format!("{name}:{}: {e}", n + 1))?;
        let input = match &v {
            serde_json::Value::String(s) => Input { text: s.clone(), instruct: None },
            serde_json::Value::Object(o) => Input {
                text: o
                    .get("text")
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| format!("{name}:{}: no \"text\"", n + 1))?
                    .to_string(),
                instruct: o.get("instruct").and_then(|t| t.as_str()).map(str::to_string),
            },
            _ => return Err(format!("{name}:{}: expected a string or an object", n + 1)),
        };
        out.push(input);
    }
    Ok(out)
}

/// A progress bar on standard error, drawn only when standard error is a terminal (a pipe or a
/// file gets nothing), at most ten times a second, and once more at the end.
struct Progress {
    shown: bool,
    total: usize,
    done: usize,
    start: Instant,
    last: Option<Instant>,
}

impl Progress {
    fn new(total: usize) -> Self {
        Progress { shown: std::io::stderr().is_terminal(), total, done: 0, start: Instant::now(), last: None }
    }

    fn advance(&mut self, n: usize) {
        self.done += n;
        if !self.shown || self.last.is_some_and(|t| t.elapsed().as_millis() < 100 && self.done < self.total) {
            return;
        }
        self.last = Some(Instant::now());
        let secs = self.start.elapsed().as_secs_f64();
        let rate = self.done as f64 / secs.max(1e-9);
        let width = 30;
        let filled = (self.done * width).checked_div(self.total).unwrap_or(width).min(width);
        let eta = if rate > 0.0 { (self.total - self.done.min(self.total)) as f64 / rate } else { 0.0 };
        eprint!(
            "\r[{}{}] {}/{} texts, {rate:.1} texts/s, {secs:.0} s, eta {eta:.0} s \x1b[K",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.done,
            self.total
        );
        if self.done >= self.total {
            eprintln!();
        }
    }
}

/// `engine.embed_tokens` over `seqs`, advancing the progress bar after each forward pass.
fn embed_progress(
    engine: &Engine,
    seqs: &[Vec<u32>],
    dims: Option<usize>,
    batch_tokens: usize,
    cancel: &CancelFlag,
    progress: &mut Progress,
) -> Result<Vec<Vec<f32>>, String> {
    engine
        .embed_tokens_reporting(seqs, dims, batch_tokens, cancel, &mut |n| progress.advance(n))
        .map_err(|e| e.to_string())
}

fn load(args: &ModelArgs) -> Result<Engine, String> {
    let device: DeviceSpec = args.device.parse().map_err(|e| format!("{e}"))?;
    let backend: BackendChoice = args.backend.parse().map_err(|e| format!("{e}"))?;
    let cache_dir =
        if args.no_cache { None } else { args.cache_dir.clone().or_else(qwen3_embed_engine::cache::default_dir) };
    let cache_limits = args.cache_limits.limits();
    let opts = EngineOptions { threads: args.threads, device, backend, cache_dir, cache_limits, cancel: None };
    let engine = Engine::load(&args.model, &opts).map_err(|e| e.to_string())?;
    if let Some(note) = &engine.info().cache.note {
        eprintln!("qwen3-embed: warning: {note}");
    }
    Ok(engine)
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Embed { model, inputs, output, dims, batch_tokens } => {
            let read = read_inputs(&inputs.input, inputs.input_format)?;
            let engine = load(&model)?;
            let tokenized = tokenize_all(&engine, &read, inputs.instruct.as_deref(), inputs.max_tokens)?;
            let truncated: Vec<bool> = tokenized.iter().map(|t| t.truncated).collect();
            let seqs: Vec<Vec<u32>> = tokenized.into_iter().map(|t| t.ids).collect();
            let tokens: usize = seqs.iter().map(|s| s.len()).sum();
            let start = Instant::now();
            let mut progress = Progress::new(seqs.len());
            let vectors = embed_progress(&engine, &seqs, dims, batch_tokens, &CancelFlag::new(), &mut progress)?;
            let secs = start.elapsed().as_secs_f64();
            let mut out: Box<dyn Write> = match &output {
                Some(p) => {
                    Box::new(BufWriter::new(std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?))
                }
                None => Box::new(BufWriter::new(std::io::stdout())),
            };
            for (i, v) in vectors.iter().enumerate() {
                let line = serde_json::json!({
                    "index": i, "tokens": seqs[i].len(), "truncated": truncated[i], "embedding": v,
                });
                writeln!(out, "{line}").map_err(|e| e.to_string())?;
            }
            out.flush().map_err(|e| e.to_string())?;
            eprintln!(
                "embedded {} inputs, {tokens} tokens in {secs:.3} s: {:.1} tokens/s ({} threads)",
                vectors.len(),
                tokens as f64 / secs,
                engine.info().threads
            );
        }
        Cmd::Bench {
            model,
            docs,
            queries,
            input_format,
            instruct,
            output,
            max_tokens,
            batch_tokens,
            query_repeats,
            doc_repeats,
        } => {
            if docs == Path::new("-") && queries.as_deref() == Some(Path::new("-")) {
                return Err("--docs and --queries cannot both read standard input".into());
            }
            bench(
                &model,
                &docs,
                queries.as_deref(),
                input_format,
                instruct.as_deref(),
                output.as_deref(),
                max_tokens,
                batch_tokens,
                query_repeats,
                doc_repeats,
            )?
        }
        Cmd::Tokenize { model, inputs } => {
            let read = read_inputs(&inputs.input, inputs.input_format)?;
            let engine = load(&model)?;
            for t in tokenize_all(&engine, &read, inputs.instruct.as_deref(), inputs.max_tokens)? {
                println!("{}", serde_json::json!(t.ids));
            }
        }
        Cmd::Info { model } => {
            let engine = load(&model)?;
            let summary = InfoSummary::from(engine.info());
            println!("{}", serde_json::to_string_pretty(&summary).expect("JSON"));
        }
        Cmd::Fixture { preset, seed, tokenizer, out, formats, kind } => {
            let shape = Shape::preset(&preset).ok_or_else(|| format!("unknown preset {preset:?}"))?;
            let formats = formats
                .iter()
                .map(|f| f.parse::<Format>().map_err(|e| format!("{e}")))
                .collect::<Result<Vec<_>, _>>()?;
            let start = Instant::now();
            let kind = match kind.as_str() {
                "embedding" => fixture::Kind::Embedding,
                "reranker" | "reranker-tied" => {
                    fixture::Kind::reranker(kind == "reranker-tied", &tokenizer).map_err(|e| e.to_string())?
                }
                other => return Err(format!("unknown kind {other:?}: embedding, reranker or reranker-tied")),
            };
            let written =
                fixture::generate(kind, &shape, seed, &tokenizer, &out, &formats).map_err(|e| e.to_string())?;
            for p in written {
                println!("{}", p.display());
            }
            eprintln!("fixture written in {:.1} s", start.elapsed().as_secs_f64());
        }
        Cmd::Cache { cmd } => cache_cmd::run(cmd)?,
        Cmd::Rerank(args) => rerank_cmd::run(args)?,
        #[cfg(feature = "pull")]
        Cmd::Pull { spec, dest, check, connect_timeout } => pull(spec, dest, check, connect_timeout)?,
    }
    Ok(())
}

#[cfg(feature = "pull")]
fn pull(spec: String, dest: Option<PathBuf>, check: bool, connect_timeout: u64) -> Result<(), String> {
    use std::io::IsTerminal;
    use std::time::Duration;

    use qwen3_embed_engine::pull;

    let dest = dest
        .or_else(pull::default_dest)
        .ok_or("HOME is not set: give the directory to link the model in with --dest")?;
    let timeout = Duration::from_secs(connect_timeout.max(1));
    if check {
        pull::check_reachable(Some(&spec), &dest, timeout).map_err(|e| e.to_string())?;
        eprintln!("{} is reachable", pull::endpoint());
        return Ok(());
    }
    let opts =
        pull::Options { spec: Some(spec), dest, progress: std::io::stderr().is_terminal(), connect_timeout: timeout };
    let pulled = pull::pull(&opts, &mut |line| eprintln!("{line}")).map_err(|e| e.to_string())?;
    let path = pulled.path.display();
    eprintln!(
        "model ready ({} downloaded). Use it with:\n  qwen3_embed.model_path = '{path}'",
        pull::human_bytes(pulled.downloaded_bytes)
    );
    println!("{path}");
    Ok(())
}

/// Each input with its own instruction, or `instruct` where it has none.
fn tokenize_all(
    engine: &Engine,
    inputs: &[Input],
    instruct: Option<&str>,
    max_tokens: usize,
) -> Result<Vec<Tokenized>, String> {
    inputs
        .iter()
        .map(|i| {
            let task = i.instruct.as_deref().or(instruct);
            engine.tokenizer().tokenize_input(&i.text, task, max_tokens, &|| false).map_err(|e| e.to_string())
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn bench(
    model: &ModelArgs,
    docs: &Path,
    queries: Option<&Path>,
    input_format: InputFormat,
    instruct: Option<&str>,
    output: Option<&Path>,
    max_tokens: usize,
    batch_tokens: usize,
    query_repeats: usize,
    doc_repeats: usize,
) -> Result<(), String> {
    let doc_inputs = read_inputs(docs, input_format)?;
    let query_inputs = match queries {
        Some(q) => read_inputs(q, input_format)?,
        None => Vec::new(),
    };
    let start = Instant::now();
    let engine = load(model)?;
    let load_s = start.elapsed().as_secs_f64();
    // Documents carry no instruction unless their own line says so.
    let ids = |t: Vec<Tokenized>| t.into_iter().map(|t| t.ids).collect::<Vec<_>>();
    let doc_seqs = ids(tokenize_all(&engine, &doc_inputs, None, max_tokens)?);
    let query_seqs = ids(tokenize_all(&engine, &query_inputs, instruct, max_tokens)?);
    let cancel = CancelFlag::new();
    let embed = |seqs: &[Vec<u32>]| engine.embed_tokens(seqs, None, batch_tokens, &cancel).map_err(|e| e.to_string());

    // Warm-up: two short sequences in one pass, so every layer (the last one included, which
    // runs on one row per sequence) has seen a multi-row product once.
    let warm: Vec<Vec<u32>> = match query_seqs.first().or(doc_seqs.first()) {
        Some(s) => vec![s[s.len().saturating_sub(16)..].to_vec(); 2],
        None => Vec::new(),
    };
    let t = Instant::now();
    if !warm.is_empty() {
        embed(&warm)?;
    }
    let warmup_s = t.elapsed().as_secs_f64();

    let doc_tokens: usize = doc_seqs.iter().map(|s| s.len()).sum();
    let query_rounds = if query_seqs.is_empty() { 0 } else { query_repeats.max(1) };
    let mut progress = Progress::new(doc_seqs.len() * doc_repeats.max(1) + query_seqs.len() * query_rounds);
    let mut doc_rounds = Vec::new();
    let mut doc_vectors = Vec::new();
    for _ in 0..doc_repeats.max(1) {
        let t = Instant::now();
        doc_vectors = embed_progress(&engine, &doc_seqs, None, batch_tokens, &cancel, &mut progress)?;
        doc_rounds.push(t.elapsed().as_secs_f64());
    }
    let doc_best = doc_rounds.iter().cloned().fold(f64::INFINITY, f64::min);

    let mut latencies_ms = Vec::new();
    let mut query_vectors = Vec::new();
    for round in 0..query_rounds {
        for s in &query_seqs {
            let t = Instant::now();
            let v = embed(std::slice::from_ref(s))?;
            latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
            progress.advance(1);
            if round == 0 {
                query_vectors.extend(v);
            }
        }
    }
    let mut sorted = latencies_ms.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let median = |v: &[f64]| if v.is_empty() { None } else { Some(v[v.len() / 2]) };

    if let Some(p) = output {
        let mut out = BufWriter::new(std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?);
        let all = doc_seqs.iter().zip(&doc_vectors).map(|(s, v)| ("doc", s, v));
        let all = all.chain(query_seqs.iter().zip(&query_vectors).map(|(s, v)| ("query", s, v)));
        for (kind, s, v) in all {
            let line = serde_json::json!({ "kind": kind, "tokens": s.len(), "embedding": v });
            writeln!(out, "{line}").map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())?;
    }
    let i = engine.info();
    println!(
        "{}",
        serde_json::json!({
            "model": i.path, "format": i.format, "tensor_types": i.tensor_types,
            "threads": i.threads, "batch_tokens": batch_tokens,
            "load_s": load_s, "warmup_s": warmup_s, "cache": i.cache.state.as_str(), "cache_bytes": i.cache.bytes,
            "docs": doc_seqs.len(), "doc_tokens": doc_tokens,
            "doc_token_counts": doc_seqs.iter().map(|s| s.len()).collect::<Vec<_>>(),
            "doc_seconds": doc_rounds, "doc_tokens_per_s": doc_tokens as f64 / doc_best,
            "queries": query_seqs.len(),
            "query_token_counts": query_seqs.iter().map(|s| s.len()).collect::<Vec<_>>(),
            "query_latency_ms": latencies_ms, "query_latency_ms_median": median(&sorted),
            "profile_s": qwen3_embed_engine::profile::report().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            "profile_gflop": qwen3_embed_engine::profile::arithmetic().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        })
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qwen3-embed: {e}");
            ExitCode::FAILURE
        }
    }
}
