//! `REPO[:QUANT]`, and which of a repository's files make the model.

use super::error::{PullError, QuantFile};
use super::listing::{Listing, RemoteFile};

pub const DEFAULT_REPO: &str = "Qwen/Qwen3-Embedding-4B-GGUF";
pub const DEFAULT_QUANT: &str = "Q4_K_M";

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub repo: String,
    pub quant: Option<String>,
}

impl Spec {
    /// `None` means the default repository and quantization.
    pub fn parse(text: Option<&str>) -> Result<Spec, PullError> {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Spec { repo: DEFAULT_REPO.into(), quant: None });
        };
        let (repo, quant) = match text.split_once(':') {
            Some((r, q)) => (r, Some(q)),
            None => (text, None),
        };
        let valid_part = |p: &str| {
            !p.is_empty() && p != "." && p != ".." && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        let parts: Vec<&str> = repo.split('/').collect();
        if parts.len() != 2 || !parts.iter().all(|p| valid_part(p)) {
            return Err(PullError::BadSpec(format!(
                "{text:?} is not REPO[:QUANT] with REPO as owner/name, e.g. {DEFAULT_REPO}:{DEFAULT_QUANT}"
            )));
        }
        if quant.is_some_and(|q| !valid_part(q)) {
            return Err(PullError::BadSpec(format!(
                "{text:?}: the quantization after ':' is empty or has odd characters (e.g. Q8_0)"
            )));
        }
        Ok(Spec { repo: repo.into(), quant: quant.map(str::to_string) })
    }

    /// The last part of the repository name: the directory name of a safetensors checkpoint.
    pub fn name(&self) -> &str {
        self.repo.rsplit('/').next().unwrap_or(&self.repo)
    }
}

#[derive(Debug)]
pub enum Plan {
    /// One `.gguf` file, linked as `dest/<its file name>`.
    Gguf(RemoteFile),
    /// A checkpoint directory, linked file by file under `dest/<repo name>/`.
    Directory { name: String, files: Vec<RemoteFile> },
}

impl Plan {
    pub fn files(&self) -> Vec<&RemoteFile> {
        match self {
            Plan::Gguf(f) => vec![f],
            Plan::Directory { files, .. } => files.iter().collect(),
        }
    }
}

/// The quantization in a GGUF file name: what follows the last '-' of the stem
/// (`Qwen3-Embedding-4B-Q4_K_M.gguf` → `Q4_K_M`, `...-f16.gguf` → `f16`).
pub fn quant_of(file: &str) -> &str {
    let base = file.rsplit('/').next().unwrap_or(file);
    let stem = &base[..base.len() - ".gguf".len().min(base.len())];
    stem.rsplit('-').next().unwrap_or(stem)
}

fn is_gguf(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".gguf")
}

pub fn plan(spec: &Spec, listing: &Listing) -> Result<Plan, PullError> {
    let ggufs: Vec<&RemoteFile> = listing.files.iter().filter(|f| is_gguf(&f.name)).collect();
    if !ggufs.is_empty() {
        let quant = spec.quant.as_deref().unwrap_or(DEFAULT_QUANT);
        let matching: Vec<&&RemoteFile> =
            ggufs.iter().filter(|f| quant_of(&f.name).eq_ignore_ascii_case(quant)).collect();
        return match matching.as_slice() {
            [one] => Ok(Plan::Gguf((**one).clone())),
            _ => {
                // None, or several (split files, which the loader does not read): list them all.
                let mut available: Vec<QuantFile> = ggufs
                    .iter()
                    .map(|f| QuantFile { quant: quant_of(&f.name).to_string(), file: f.name.clone(), size: f.size })
                    .collect();
                available.sort_by_key(|q| std::cmp::Reverse(q.size));
                Err(PullError::UnknownQuant { repo: spec.repo.clone(), quant: quant.into(), available })
            }
        };
    }
    if let Some(quant) = &spec.quant {
        return Err(PullError::QuantOnSafetensors { repo: spec.repo.clone(), quant: quant.clone() });
    }
    // The files engine/src/hf.rs reads, at the top of the repository.
    let top = |name: &str| listing.files.iter().find(|f| f.name == name).cloned();
    let mut missing = Vec::new();
    let mut files = Vec::new();
    for required in ["config.json", "tokenizer.json"] {
        match top(required) {
            Some(f) => files.push(f),
            None => missing.push(required),
        }
    }
    if let Some(single) = top("model.safetensors") {
        files.push(single);
    } else if let Some(index) = top("model.safetensors.index.json") {
        files.push(index);
        let shards = listing.files.iter().filter(|f| !f.name.contains('/') && f.name.ends_with(".safetensors"));
        files.extend(shards.cloned());
    } else {
        missing.push("model.safetensors or model.safetensors.index.json");
    }
    if !missing.is_empty() {
        return Err(PullError::NotAModel { repo: spec.repo.clone(), detail: format!("no {}", missing.join(", no ")) });
    }
    Ok(Plan::Directory { name: spec.name().to_string(), files })
}
