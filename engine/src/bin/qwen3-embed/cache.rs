//! `qwen3-embed cache list|prune|verify`, and the cache limits a model load runs under.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use clap::Subcommand;
use qwen3_embed_engine::cache::{self, dir::CacheFile, space};

#[derive(Subcommand)]
pub enum CacheCmd {
    /// One JSON object per file of the cache directory, least recently used first: its path,
    /// bytes, whether a process maps it (in_use), when it was last mapped and written, the
    /// model, layout and kernel table it was packed for.
    List {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Removes files no process maps, partial files of stopped writes first, then the least
    /// recently used, until the directory takes at most --max-size. Prints one JSON object per
    /// removed file, then a summary.
    Prune {
        #[command(flatten)]
        dir: DirArg,
        /// The size to bring the directory down to (K, M, G, T: powers of 1024).
        #[arg(long, value_parser = parse_size, default_value = "20G", conflicts_with = "all")]
        max_size: u64,
        /// Remove every file no process maps.
        #[arg(long)]
        all: bool,
    },
    /// Checks every byte of each cache file (of the directory, or the files named) against the
    /// hashes taken when it was written; one JSON object per file with the time it took. Exits
    /// with an error when a file does not match.
    Verify {
        #[command(flatten)]
        dir: DirArg,
        files: Vec<PathBuf>,
    },
}

#[derive(clap::Args)]
pub struct DirArg {
    /// The cache directory (default $XDG_CACHE_HOME/qwen3_embed or ~/.cache/qwen3_embed).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

impl DirArg {
    fn path(&self) -> Result<PathBuf, String> {
        self.cache_dir.clone().or_else(cache::default_dir).ok_or_else(|| "no home directory: give --cache-dir".into())
    }
}

/// The cache limits of a model load.
#[derive(clap::Args, Clone)]
pub struct LimitArgs {
    /// Bytes the cache must leave free on its filesystem; a file that would take them is not
    /// written (the weights are packed in memory). K, M, G, T: powers of 1024.
    #[arg(long, value_parser = parse_size, default_value = "10G")]
    cache_min_free: u64,
    /// Most bytes the cache directory's files may take: the least recently used files no
    /// process maps are removed to stay within it; "none": no budget.
    #[arg(long, value_parser = parse_budget, default_value = "20G")]
    cache_max_size: Budget,
}

impl LimitArgs {
    pub fn limits(&self) -> space::Limits {
        space::Limits { min_free: self.cache_min_free, max_size: self.cache_max_size.0 }
    }
}

#[derive(Clone, Copy)]
pub struct Budget(Option<u64>);

/// `1234`, `512K`, `20M`, `10G`, `1T` (with or without a trailing `B` or `iB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (num, shift) = match t.chars().last() {
        Some(c @ ('K' | 'k' | 'M' | 'm' | 'G' | 'g' | 'T' | 't')) => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                _ => 40,
            };
            (&t[..t.len() - 1], shift)
        }
        _ => (t, 0),
    };
    let n: f64 = num.trim().parse().map_err(|_| format!("{s:?} is not a size: write e.g. 10G, 500M or 1048576"))?;
    if n.is_nan() || n < 0.0 || n * (1u64 << shift) as f64 >= u64::MAX as f64 {
        return Err(format!("{s:?} is not a size"));
    }
    Ok((n * (1u64 << shift) as f64) as u64)
}

fn parse_budget(s: &str) -> Result<Budget, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        return Ok(Budget(None));
    }
    parse_size(s).map(|b| Budget(Some(b)))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn json(f: &CacheFile) -> serde_json::Value {
    let h = f.header.as_ref();
    serde_json::json!({
        "path": f.path, "bytes": f.bytes, "in_use": f.in_use, "partial": f.partial,
        "last_used": unix(f.last_used), "modified": unix(f.modified), "model": f.model,
        "format": h.map(|h| h.format), "layout": h.map(|h| h.layout), "isa": h.map(|h| &h.isa),
        "identity": h.map(|h| &h.identity),
    })
}

pub fn run(cmd: CacheCmd) -> Result<(), String> {
    let io = |dir: &Path, e: std::io::Error| format!("{}: {e}", dir.display());
    match cmd {
        CacheCmd::List { dir } => {
            let dir = dir.path()?;
            for f in cache::dir::list(&dir).map_err(|e| io(&dir, e))? {
                println!("{}", json(&f));
            }
        }
        CacheCmd::Prune { dir, max_size, all } => {
            let dir = dir.path()?;
            let target = if all { 0 } else { max_size };
            let e = cache::dir::evict(&dir, target, None).map_err(|e| io(&dir, e))?;
            for f in &e.removed {
                println!("{}", json(f));
            }
            eprintln!(
                "removed {} files ({}); {} left, {} of them in use",
                e.removed.len(),
                space::gib(cache::dir::total(&e.removed)),
                space::gib(e.left),
                space::gib(e.in_use)
            );
        }
        CacheCmd::Verify { dir, files } => {
            let files = if files.is_empty() {
                let dir = dir.path()?;
                let all = cache::dir::list(&dir).map_err(|e| io(&dir, e))?;
                all.into_iter().filter(|f| !f.partial).map(|f| f.path).collect()
            } else {
                files
            };
            let mut bad = 0;
            for path in files {
                let bytes = std::fs::metadata(&path).map_err(|e| io(&path, e))?.len();
                let start = Instant::now();
                let result = cache::check(&path);
                let secs = start.elapsed().as_secs_f64();
                bad += usize::from(result.is_err());
                println!(
                    "{}",
                    serde_json::json!({
                        "path": path, "bytes": bytes, "ok": result.is_ok(), "error": result.err(),
                        "seconds": secs, "gb_per_s": bytes as f64 / secs / 1e9,
                        "threads": rayon::current_num_threads(),
                    })
                );
            }
            if bad > 0 {
                return Err(format!("{bad} cache files do not match their hashes"));
            }
        }
    }
    Ok(())
}
