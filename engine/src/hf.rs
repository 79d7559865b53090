//! Loading a Hugging Face checkpoint directory: `config.json`, `model.safetensors` or sharded
//! `*.safetensors` with `model.safetensors.index.json`, and `tokenizer.json`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::SafeTensors;

use crate::backend::cpu::weights::ModelWeights;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::tensors::{Assemble, RawTensor};

pub struct HfModel<W = ModelWeights> {
    pub weights: W,
    pub type_counts: BTreeMap<String, usize>,
    pub tensor_listing: Vec<(String, Vec<usize>, String)>,
    pub tokenizer_path: PathBuf,
    pub weight_files: Vec<PathBuf>,
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    crate::files::read(path)
}

fn map_file(path: &Path) -> Result<Mmap> {
    let file = crate::files::open(path)?;
    // SAFETY: the map is read-only and dropped when loading ends; a model file changed
    // underneath a running load is a corrupt load, detected by the header checks.
    unsafe { Mmap::map(&file) }.map_err(|source| EngineError::Unreadable { path: path.to_path_buf(), source })
}

/// The safetensors files of the directory, and which file holds each tensor name.
/// The safetensors files, and which of them holds each tensor (for a sharded checkpoint).
type WeightFiles = (Vec<PathBuf>, Option<HashMap<String, PathBuf>>);

fn weight_files(dir: &Path) -> Result<WeightFiles> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok((vec![single], None));
    }
    let index_path = dir.join("model.safetensors.index.json");
    if !index_path.exists() {
        return Err(EngineError::UnknownFormat {
            path: dir.to_path_buf(),
            detail: "directory has neither model.safetensors nor model.safetensors.index.json".into(),
        });
    }
    let text = read_file(&index_path)?;
    let doc: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| EngineError::Corrupt { path: index_path.clone(), detail: format!("not valid JSON: {e}") })?;
    let map = doc
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| EngineError::Corrupt { path: index_path.clone(), detail: "no weight_map object".into() })?;
    let mut by_name = HashMap::new();
    let mut files = Vec::<PathBuf>::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| EngineError::Corrupt {
            path: index_path.clone(),
            detail: format!("weight_map entry {name} is not a file name"),
        })?;
        if file.contains('/') || file.contains("..") {
            return Err(EngineError::Corrupt {
                path: index_path.clone(),
                detail: format!("weight_map entry {name} points outside the directory"),
            });
        }
        let p = dir.join(file);
        if !files.contains(&p) {
            files.push(p.clone());
        }
        by_name.insert(name.clone(), p);
    }
    files.sort();
    Ok((files, Some(by_name)))
}

/// A safetensors file must hold its whole header and every byte its header points at.
fn check_complete(path: &Path, bytes: &[u8]) -> Result<()> {
    let truncated = |detail: String| EngineError::Truncated { path: path.to_path_buf(), detail };
    if bytes.len() < 8 {
        return Err(truncated(format!("{} bytes, less than the 8-byte header length", bytes.len())));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let header_end = 8u64.saturating_add(header_len);
    if header_end > bytes.len() as u64 {
        return Err(truncated(format!("the header needs {header_end} bytes, the file has {}", bytes.len())));
    }
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..header_end as usize])
        .map_err(|e| EngineError::Corrupt { path: path.to_path_buf(), detail: format!("header is not JSON: {e}") })?;
    let data_end = header
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, t)| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let needed = header_end.saturating_add(data_end);
    if needed > bytes.len() as u64 {
        return Err(truncated(format!("the header needs {needed} bytes, the file has {}", bytes.len())));
    }
    Ok(())
}

fn dtype_of(path: &Path, name: &str, d: safetensors::Dtype) -> Result<DType> {
    Ok(match d {
        safetensors::Dtype::F32 => DType::F32,
        safetensors::Dtype::F16 => DType::F16,
        safetensors::Dtype::BF16 => DType::BF16,
        other => {
            return Err(EngineError::UnsupportedQuantization {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: format!("{other:?}"),
            })
        }
    })
}

/// Reads a checkpoint's shape and tensors onto `device` and hands them, by canonical name, to
/// `build`, which assembles the weights of one backend (and counts tensor types).
pub(crate) fn load_with<W>(dir: &Path, device: &Device, build: impl Assemble<W>) -> Result<HfModel<W>> {
    let config_path = dir.join("config.json");
    let config_text = read_file(&config_path)?;
    let config_text = String::from_utf8(config_text)
        .map_err(|_| EngineError::InvalidConfig { path: config_path.clone(), detail: "not UTF-8".into() })?;
    let mut config = ModelConfig::from_hf_json(&config_path, &config_text)?;

    let (files, index) = weight_files(dir)?;
    let maps: Vec<(PathBuf, Mmap)> = files.iter().map(|f| Ok((f.clone(), map_file(f)?))).collect::<Result<_>>()?;
    let parsed: Vec<(&PathBuf, SafeTensors)> = maps
        .iter()
        .map(|(p, m)| {
            check_complete(p, m)?;
            SafeTensors::deserialize(m)
                .map(|s| (p, s))
                .map_err(|e| EngineError::Corrupt { path: p.clone(), detail: e.to_string() })
        })
        .collect::<Result<_>>()?;

    // Upstream embedding checkpoints have no `model.` prefix; causal-LM ones do.
    let find = |canonical: &str| -> Option<(&PathBuf, safetensors::tensor::TensorView<'_>)> {
        for name in [canonical.to_string(), format!("model.{canonical}")] {
            if let Some(idx) = &index {
                if let Some(file) = idx.get(&name) {
                    if let Some((p, st)) = parsed.iter().find(|(p, _)| *p == file) {
                        if let Ok(v) = st.tensor(&name) {
                            return Some((p, v));
                        }
                    }
                }
            }
            for (p, st) in &parsed {
                if let Ok(v) = st.tensor(&name) {
                    return Some((p, v));
                }
            }
        }
        None
    };

    let embed_name = "embed_tokens.weight";
    let (_, embed) = find(embed_name)
        .ok_or_else(|| EngineError::MissingTensor { path: dir.to_path_buf(), name: embed_name.into() })?;
    let rows = embed.shape().first().copied().unwrap_or(0);
    if rows != config.vocab_rows {
        return Err(EngineError::InvalidConfig {
            path: config_path,
            detail: format!("vocab_size is {} but embed_tokens.weight has {rows} rows", config.vocab_rows),
        });
    }
    config.vocab_rows = rows;

    let mut tensor_listing = Vec::new();
    for (_, st) in &parsed {
        for (name, v) in st.tensors() {
            tensor_listing.push((name, v.shape().to_vec(), format!("{:?}", v.dtype())));
        }
    }
    tensor_listing.sort();

    let mut type_counts = BTreeMap::new();
    let weights = build(
        dir,
        config,
        &mut |canonical: &str| {
            let name = format!("{canonical}.weight");
            let (file, view) = find(&name)
                .ok_or_else(|| EngineError::MissingTensor { path: dir.to_path_buf(), name: name.clone() })?;
            let dtype = dtype_of(file, &name, view.dtype())?;
            let t = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), device)?;
            // The tensor has its own copy now: drop the mapped pages from the resident set
            // (read-only shared map: the file's pages stay in the page cache).
            if let Some((_, m)) = maps.iter().find(|(p, _)| p == file) {
                let off = view.data().as_ptr() as usize - m.as_ptr() as usize;
                // SAFETY: this range of the map is not read again.
                let _ = unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, view.data().len()) };
            }
            Ok(RawTensor::Dense(t))
        },
        &mut type_counts,
    )?;
    let tokenizer_path = dir.join("tokenizer.json");
    Ok(HfModel { weights, type_counts, tensor_listing, tokenizer_path, weight_files: files })
}

/// The directory's `config.json` as JSON.
pub(crate) fn read_config_json(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("config.json");
    serde_json::from_slice(&read_file(&path)?)
        .map_err(|e| EngineError::InvalidConfig { path, detail: format!("not valid JSON: {e}") })
}

/// Rows `rows` of the `[n, hidden]` tensor `name` (a full name, as stored), as f32.
pub(crate) fn read_rows(dir: &Path, name: &str, rows: &[usize], hidden: usize) -> Result<Vec<Vec<f32>>> {
    let (files, index) = weight_files(dir)?;
    let candidates: Vec<PathBuf> = match index.as_ref().and_then(|i| i.get(name)) {
        Some(file) => vec![file.clone()],
        None => files,
    };
    for file in candidates {
        let map = map_file(&file)?;
        check_complete(&file, &map)?;
        let st = SafeTensors::deserialize(&map)
            .map_err(|e| EngineError::Corrupt { path: file.clone(), detail: e.to_string() })?;
        let Ok(view) = st.tensor(name) else { continue };
        let n = view.shape().first().copied().unwrap_or(0);
        if view.shape().len() != 2 || view.shape()[1] != hidden || rows.iter().any(|&r| r >= n) {
            return Err(EngineError::ShapeMismatch {
                path: file.clone(),
                name: name.to_string(),
                found: view.shape().to_vec(),
                expected: vec![n.max(rows.iter().max().map_or(0, |r| r + 1)), hidden],
            });
        }
        let dtype = dtype_of(&file, name, view.dtype())?;
        let size = dtype.size_in_bytes();
        return Ok(rows
            .iter()
            .map(|&r| {
                let bytes = &view.data()[r * hidden * size..][..hidden * size];
                bytes
                    .chunks_exact(size)
                    .map(|b| match dtype {
                        DType::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
                        DType::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
                        _ => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                    })
                    .collect()
            })
            .collect());
    }
    Err(EngineError::MissingTensor { path: dir.to_path_buf(), name: name.to_string() })
}
