//! Command-line front end of the engine: embed a file of inputs, tokenize, describe a model,
//! write fixture checkpoints.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use qwen3_embed_engine::fixture::{self, Format, Shape};
use qwen3_embed_engine::{CancelFlag, DeviceSpec, Engine, EngineOptions};

#[derive(Parser)]
#[command(name = "qwen3-embed", about = "Qwen3-Embedding on the CPU, no Postgres needed")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
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
}

#[derive(Subcommand)]
enum Cmd {
    /// Embed every input of a file: plain text (one input per line) or .jsonl (a JSON string,
    /// or an object with "text" and optional "instruct", per line).
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        input: PathBuf,
        /// Where to write one JSON object per input; stdout when absent.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Task for every input, formatted as `Instruct: {task}\nQuery:{text}`.
        #[arg(long)]
        instruct: Option<String>,
        /// Output dimensions (MRL), 32..hidden; full size when absent.
        #[arg(long)]
        dims: Option<usize>,
        /// Most tokens per input, EOS included; longer inputs are truncated.
        #[arg(long, default_value_t = 8192)]
        max_tokens: usize,
        /// Most tokens per forward pass.
        #[arg(long, default_value_t = 4096)]
        batch_tokens: usize,
    },
    /// Print the token ids of every input, one JSON array per line.
    Tokenize {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        instruct: Option<String>,
        #[arg(long, default_value_t = 8192)]
        max_tokens: usize,
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
    },
}

struct Input {
    text: String,
    instruct: Option<String>,
}

fn read_inputs(path: &Path) -> Result<Vec<Input>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let jsonl = path.extension().is_some_and(|e| e == "jsonl");
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if !jsonl {
            out.push(Input { text: line, instruct: None });
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        let input = match &v {
            serde_json::Value::String(s) => Input { text: s.clone(), instruct: None },
            serde_json::Value::Object(o) => Input {
                text: o
                    .get("text")
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| format!("{}:{}: no \"text\"", path.display(), n + 1))?
                    .to_string(),
                instruct: o.get("instruct").and_then(|t| t.as_str()).map(str::to_string),
            },
            _ => return Err(format!("{}:{}: expected a string or an object", path.display(), n + 1)),
        };
        out.push(input);
    }
    Ok(out)
}

fn load(args: &ModelArgs) -> Result<Engine, String> {
    let device: DeviceSpec = args.device.parse().map_err(|e| format!("{e}"))?;
    let opts = EngineOptions { threads: args.threads, device };
    Engine::load(&args.model, &opts).map_err(|e| e.to_string())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Embed { model, input, output, instruct, dims, max_tokens, batch_tokens } => {
            let inputs = read_inputs(&input)?;
            let engine = load(&model)?;
            let mut seqs = Vec::with_capacity(inputs.len());
            let mut truncated = Vec::with_capacity(inputs.len());
            for i in &inputs {
                let task = i.instruct.as_deref().or(instruct.as_deref());
                let t = engine.tokenize(&i.text, task, max_tokens).map_err(|e| e.to_string())?;
                truncated.push(t.truncated);
                seqs.push(t.ids);
            }
            let tokens: usize = seqs.iter().map(|s| s.len()).sum();
            let start = Instant::now();
            let vectors = engine
                .embed_tokens(&seqs, dims, batch_tokens, &CancelFlag::new())
                .map_err(|e| e.to_string())?;
            let secs = start.elapsed().as_secs_f64();
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(BufWriter::new(
                    std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
                )),
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
        Cmd::Tokenize { model, input, instruct, max_tokens } => {
            let inputs = read_inputs(&input)?;
            let engine = load(&model)?;
            for i in &inputs {
                let task = i.instruct.as_deref().or(instruct.as_deref());
                let t = engine.tokenize(&i.text, task, max_tokens).map_err(|e| e.to_string())?;
                println!("{}", serde_json::json!(t.ids));
            }
        }
        Cmd::Info { model } => {
            let engine = load(&model)?;
            let i = engine.info();
            let c = &i.config;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "path": i.path, "format": i.format, "architecture": i.architecture,
                    "parameters": i.parameter_count, "tensor_types": i.tensor_types,
                    "hidden_size": c.hidden, "intermediate_size": c.intermediate, "layers": c.layers,
                    "heads": c.heads, "kv_heads": c.kv_heads, "head_dim": c.head_dim,
                    "vocab_rows": c.vocab_rows, "tokenizer_vocab": i.tokenizer_vocab,
                    "fingerprint": i.fingerprint, "load_ms": i.load_time.as_millis() as u64,
                    "device": i.device, "threads": i.threads,
                }))
                .expect("JSON")
            );
        }
        Cmd::Fixture { preset, seed, tokenizer, out, formats } => {
            let shape = Shape::preset(&preset).ok_or_else(|| format!("unknown preset {preset:?}"))?;
            let formats = formats
                .iter()
                .map(|f| f.parse::<Format>().map_err(|e| format!("{e}")))
                .collect::<Result<Vec<_>, _>>()?;
            let start = Instant::now();
            let written = fixture::generate(&shape, seed, &tokenizer, &out, &formats)
                .map_err(|e| e.to_string())?;
            for p in written {
                println!("{}", p.display());
            }
            eprintln!("fixture written in {:.1} s", start.elapsed().as_secs_f64());
        }
    }
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
