//! `qwen3-embed pull`: fetch an official Qwen3-Embedding model from the Hugging Face hub (or
//! the mirror in `HF_ENDPOINT`) into the hub cache (`HF_HOME`), resuming a partial download,
//! verify every file against the hub's checksum, and link it where the demo and the README
//! look (`~/.cache/qwen3_embed/`).

mod error;
mod hub;
mod listing;
mod place;
mod reach;
mod select;
mod space;
mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{human_bytes, PullError, QuantFile, OFFICIAL_REPOS};
pub use hub::{endpoint, DEFAULT_ENDPOINT};
pub use select::{quant_of, Spec, DEFAULT_QUANT, DEFAULT_REPO};

use hub::Hub;
use verify::Digest;

pub struct Options {
    /// `REPO[:QUANT]`; `None` for the default.
    pub spec: Option<String>,
    /// Where the model is linked.
    pub dest: PathBuf,
    /// A progress bar on stderr.
    pub progress: bool,
    /// How long the endpoint may take to accept a connection.
    pub connect_timeout: Duration,
}

#[derive(Debug)]
pub struct Pulled {
    /// The path for `qwen3_embed.model_path`.
    pub path: PathBuf,
    pub downloaded_bytes: u64,
}

/// `~/.cache/qwen3_embed`.
pub fn default_dest() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".cache/qwen3_embed"))
}

/// How to get the model without this command, for the "no network" error.
fn manual(endpoint: &str, spec: &Spec, dest: &Path) -> String {
    let name = spec.name();
    let lower = name.to_ascii_lowercase();
    if lower.ends_with("-gguf") {
        let file = format!("{}-{}.gguf", &name[..name.len() - 5], spec.quant.as_deref().unwrap_or(DEFAULT_QUANT));
        format!(
            "on a machine with access, download {endpoint}/{}/resolve/main/{file}, copy it to {}, \
             and set qwen3_embed.model_path to that path",
            spec.repo,
            dest.join(&file).display()
        )
    } else {
        format!(
            "on a machine with access, download config.json, tokenizer.json and the .safetensors \
             files (with model.safetensors.index.json when sharded) from {endpoint}/{}, copy them \
             into {}, and set qwen3_embed.model_path to that directory",
            spec.repo,
            dest.join(name).display()
        )
    }
}

/// Fails fast with [`PullError::NoNetwork`] when the endpoint cannot be reached.
pub fn check_reachable(spec: Option<&str>, dest: &Path, timeout: Duration) -> Result<(), PullError> {
    let spec = Spec::parse(spec)?;
    let endpoint = endpoint();
    reach::check(&endpoint, timeout).map_err(|detail| PullError::NoNetwork {
        manual: manual(&endpoint, &spec, dest),
        endpoint,
        detail,
    })
}

struct Wanted<'a> {
    name: &'a str,
    size: u64,
    digest: &'a Digest,
    link: PathBuf,
}

/// Pulls the model; `log` receives one line per step.
pub fn pull(opts: &Options, log: &mut dyn FnMut(String)) -> Result<Pulled, PullError> {
    let spec = Spec::parse(opts.spec.as_deref())?;
    let dest = std::path::absolute(&opts.dest).map_err(|source| PullError::Io { path: opts.dest.clone(), source })?;
    let hub = Hub::from_env(opts.progress)?;
    let manual = manual(&hub.endpoint, &spec, &dest);
    reach::check(&hub.endpoint, opts.connect_timeout).map_err(|detail| PullError::NoNetwork {
        endpoint: hub.endpoint.clone(),
        detail,
        manual: manual.clone(),
    })?;
    let listing = hub.listing(&spec.repo, &manual)?;
    let plan = select::plan(&spec, &listing)?;
    let mut wanted = Vec::new();
    for f in plan.files() {
        let (Some(size), Some(digest)) = (f.size, f.digest.as_ref()) else {
            return Err(PullError::NoChecksum { repo: spec.repo.clone(), file: f.name.clone() });
        };
        wanted.push(Wanted { name: &f.name, size, digest, link: place::link_path(&plan, &dest, &f.name) });
    }

    // First what is already here: a verified file in place, or a verified copy in the cache.
    let mut sources: Vec<Option<PathBuf>> = Vec::new();
    for w in &wanted {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PullError::Io { path, source }
        };
        if place::is_plain_file(&w.link) {
            match verify::check(&w.link, w.size, w.digest).map_err(io(&w.link))? {
                None => {
                    log(format!("{} is already in place and verified", w.link.display()));
                    sources.push(None);
                    continue;
                }
                Some(actual) => {
                    return Err(PullError::Occupied {
                        path: w.link.clone(),
                        detail: format!("it has {actual}, the hub's {} has {}", w.name, w.digest),
                    })
                }
            }
        }
        let cached = hub.cached(&spec.repo, w.name);
        match cached {
            Some(p) => match verify::check(&p, w.size, w.digest).map_err(io(&p))? {
                None => {
                    log(format!("{} is already in the hub cache and verified", w.name));
                    sources.push(Some(p));
                }
                Some(actual) => {
                    log(format!("the cached {} has {actual}, not {}: downloading it again", w.name, w.digest));
                    place::remove_download(&p)?;
                    sources.push(None);
                }
            },
            None => sources.push(None),
        }
    }
    let to_fetch: Vec<usize> =
        (0..wanted.len()).filter(|&i| sources[i].is_none() && !place::is_plain_file(&wanted[i].link)).collect();

    let repo_dir = hub.repo_dir(&spec.repo);
    let needed: u64 = to_fetch
        .iter()
        .map(|&i| {
            let w = &wanted[i];
            // The hub names an LFS blob by its sha256; a partial one resumes.
            let partial = match w.digest {
                Digest::Sha256(h) => {
                    std::fs::metadata(repo_dir.join("blobs").join(format!("{h}.part"))).map_or(0, |m| m.len())
                }
                Digest::GitBlob(_) => 0,
            };
            w.size.saturating_sub(partial)
        })
        .sum();
    if let Some(available) = space::available(&repo_dir) {
        if available < needed {
            return Err(PullError::NoSpace { dir: repo_dir, needed, available });
        }
    }

    let mut downloaded = 0;
    for &i in &to_fetch {
        let w = &wanted[i];
        log(format!("downloading {} ({}) from {}/{}", w.name, human_bytes(w.size), hub.endpoint, spec.repo));
        let path = hub.download(&spec.repo, w.name, &manual)?;
        let verdict =
            verify::check(&path, w.size, w.digest).map_err(|source| PullError::Io { path: path.clone(), source })?;
        if let Some(actual) = verdict {
            place::remove_download(&path)?;
            return Err(PullError::ChecksumMismatch {
                file: w.name.to_string(),
                expected: w.digest.to_string(),
                actual,
            });
        }
        log(format!("{} verified ({})", w.name, w.digest));
        downloaded += w.size;
        sources[i] = Some(path);
    }
    for (w, source) in wanted.iter().zip(&sources) {
        if let Some(source) = source {
            place::link(source, &w.link)?;
        }
    }
    Ok(Pulled { path: place::model_path(&plan, &dest), downloaded_bytes: downloaded })
}
