//! Loading an official (or generated) Qwen3 GGUF file: shape from `qwen3.*` metadata,
//! tensors as stored, tokenizer from `tokenizer.ggml.*`.

use std::collections::{BTreeMap, HashMap};
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::ggml_file::qtensor_from_ggml;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::backend::cpu::weights::ModelWeights;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::tensors::{gguf_name, Assemble, RawTensor};

pub struct GgufModel<W = ModelWeights> {
    pub weights: W,
    pub metadata: HashMap<String, Value>,
    pub type_counts: BTreeMap<String, usize>,
    pub tensor_listing: Vec<(String, Vec<usize>, String)>,
}

pub(crate) fn map_candle_error(path: &Path, e: candle_core::Error) -> EngineError {
    let path = path.to_path_buf();
    if let candle_core::Error::Io(io) = &e {
        if io.kind() == std::io::ErrorKind::UnexpectedEof {
            return EngineError::Truncated { path, detail: "file ends inside the header".into() };
        }
    }
    let msg = crate::error::candle_message(&e);
    if let Some(rest) = msg.strip_prefix("unknown dtype for tensor ") {
        return EngineError::UnsupportedQuantization {
            path,
            name: "(header)".into(),
            dtype: format!("ggml type {rest}"),
        };
    }
    if msg.contains("remaining") {
        return EngineError::Truncated { path, detail: msg };
    }
    EngineError::Corrupt { path, detail: msg }
}

fn meta_u64(path: &Path, md: &HashMap<String, Value>, key: &str) -> Result<u64> {
    let v = md.get(key).ok_or_else(|| EngineError::InvalidConfig {
        path: path.to_path_buf(),
        detail: format!("metadata {key} is missing"),
    })?;
    let n = match v {
        Value::U8(x) => Some(*x as u64),
        Value::U16(x) => Some(*x as u64),
        Value::U32(x) => Some(*x as u64),
        Value::U64(x) => Some(*x),
        Value::I8(x) => u64::try_from(*x).ok(),
        Value::I16(x) => u64::try_from(*x).ok(),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::I64(x) => u64::try_from(*x).ok(),
        _ => None,
    };
    n.ok_or_else(|| EngineError::InvalidConfig {
        path: path.to_path_buf(),
        detail: format!("metadata {key} is not a non-negative integer"),
    })
}

fn meta_f64(path: &Path, md: &HashMap<String, Value>, key: &str, default: f64) -> Result<f64> {
    match md.get(key) {
        None => Ok(default),
        Some(Value::F32(x)) => Ok(*x as f64),
        Some(Value::F64(x)) => Ok(*x),
        Some(_) => Err(EngineError::InvalidConfig {
            path: path.to_path_buf(),
            detail: format!("metadata {key} is not a float"),
        }),
    }
}

pub(crate) fn config_from_metadata(path: &Path, content: &Content) -> Result<ModelConfig> {
    let md = &content.metadata;
    let arch = match md.get("general.architecture") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => "(not a string)".into(),
        None => "(missing)".into(),
    };
    if arch != "qwen3" {
        return Err(EngineError::WrongArchitecture { path: path.to_path_buf(), found: arch });
    }
    let u = |k: &str| meta_u64(path, md, &format!("qwen3.{k}")).map(|x| x as usize);
    let hidden = u("embedding_length")?;
    let heads = u("attention.head_count")?;
    let head_dim = match md.get("qwen3.attention.key_length") {
        Some(_) => u("attention.key_length")?,
        None => hidden / heads.max(1),
    };
    let embd = content
        .tensor_infos
        .get("token_embd.weight")
        .ok_or_else(|| EngineError::MissingTensor { path: path.to_path_buf(), name: "token_embd.weight".into() })?;
    let vocab_rows = embd.shape.dims().first().copied().unwrap_or(0);
    let c = ModelConfig {
        hidden,
        intermediate: u("feed_forward_length")?,
        layers: u("block_count")?,
        heads,
        kv_heads: match md.get("qwen3.attention.head_count_kv") {
            Some(_) => u("attention.head_count_kv")?,
            None => heads,
        },
        head_dim,
        vocab_rows,
        rope_theta: meta_f64(path, md, "qwen3.rope.freq_base", 1_000_000.0)?,
        rms_eps: meta_f64(path, md, "qwen3.attention.layer_norm_rms_epsilon", 1e-6)?,
        max_positions: u("context_length").unwrap_or(40960),
    };
    c.validate(path)?;
    Ok(c)
}

fn dense_from_qtensor(q: &QTensor, device: &Device) -> Result<Tensor> {
    let dtype = match q.dtype() {
        GgmlDType::F32 => DType::F32,
        GgmlDType::F16 => DType::F16,
        GgmlDType::BF16 => DType::BF16,
        _ => unreachable!("only float GGUF tensors are dense"),
    };
    let data = q.data()?;
    Ok(Tensor::from_raw_buffer(&data, dtype, q.shape().dims(), device)?)
}

/// Reads a GGUF file's shape and tensors onto `device` and hands them, by canonical name, to
/// `build`, which assembles the weights of one backend (and counts tensor types).
pub(crate) fn load_with<W>(path: &Path, device: &Device, build: impl Assemble<W>) -> Result<GgufModel<W>> {
    let file = crate::files::open(path)?;
    let mut reader = BufReader::new(&file);
    let content = Content::read(&mut reader).map_err(|e| map_candle_error(path, e))?;
    // SAFETY: read-only map, dropped when loading ends; tensor bounds are checked below.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|source| EngineError::Unreadable { path: path.to_path_buf(), source })?;
    let config = config_from_metadata(path, &content)?;

    let mut tensor_listing: Vec<(String, Vec<usize>, String)> = content
        .tensor_infos
        .iter()
        .map(|(n, i)| (n.clone(), i.shape.dims().to_vec(), format!("{:?}", i.ggml_dtype)))
        .collect();
    tensor_listing.sort();

    let mut type_counts = BTreeMap::new();
    let weights = build(
        path,
        config,
        &mut |canonical: &str| {
            let name = gguf_name(canonical);
            let info = content
                .tensor_infos
                .get(&name)
                .ok_or_else(|| EngineError::MissingTensor { path: path.to_path_buf(), name: name.clone() })?;
            // Straight from the mapped file into the tensor's own storage: no intermediate
            // buffer, so a multi-GB model is not allocated twice while loading.
            let elems = info.shape.elem_count();
            let block = info.ggml_dtype.block_size();
            let size = (elems / block.max(1)) as u64 * info.ggml_dtype.type_size() as u64;
            let start = content.tensor_data_offset.saturating_add(info.offset);
            let end = start.saturating_add(size);
            if elems % block.max(1) != 0 {
                return Err(EngineError::Corrupt {
                    path: path.to_path_buf(),
                    detail: format!("tensor {name}: {elems} elements are not whole blocks of {block}"),
                });
            }
            if end > map.len() as u64 {
                return Err(EngineError::Truncated {
                    path: path.to_path_buf(),
                    detail: format!("tensor {name} needs bytes up to {end}, the file has {}", map.len()),
                });
            }
            let q = qtensor_from_ggml(
                info.ggml_dtype,
                &map[start as usize..end as usize],
                info.shape.dims().to_vec(),
                device,
            )
            .map_err(|e| map_candle_error(path, e))?;
            // The tensor now has its own copy: give the mapped pages back, so that they do not
            // add up in the resident set while the rest of the model loads (the map is
            // read-only and shared with the file, so this only drops our view of the pages).
            // SAFETY: nothing reads this range of the map again.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start as usize, (end - start) as usize)
            };
            Ok(match q.dtype() {
                GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => RawTensor::Dense(dense_from_qtensor(&q, device)?),
                GgmlDType::Q4_0
                | GgmlDType::Q4_1
                | GgmlDType::Q5_0
                | GgmlDType::Q5_1
                | GgmlDType::Q8_0
                | GgmlDType::Q2K
                | GgmlDType::Q3K
                | GgmlDType::Q4K
                | GgmlDType::Q5K
                | GgmlDType::Q6K => RawTensor::Quantized(q),
                other => {
                    return Err(EngineError::UnsupportedQuantization {
                        path: path.to_path_buf(),
                        name,
                        dtype: format!("{other:?}"),
                    })
                }
            })
        },
        &mut type_counts,
    )?;
    Ok(GgufModel { weights, metadata: content.metadata, type_counts, tensor_listing })
}

/// The rows of tensor `name` as f32 (dequantized), or `None` when the file has no such tensor.
pub(crate) fn read_dense(path: &Path, name: &str) -> Result<Option<Vec<Vec<f32>>>> {
    let file = crate::files::open(path)?;
    let mut reader = BufReader::new(&file);
    let content = Content::read(&mut reader).map_err(|e| map_candle_error(path, e))?;
    if !content.tensor_infos.contains_key(name) {
        return Ok(None);
    }
    let q = content.tensor(&mut reader, name, &Device::Cpu).map_err(|e| map_candle_error(path, e))?;
    let t = q.dequantize(&Device::Cpu)?;
    let rows = match t.dims() {
        [_, _] => t.to_vec2::<f32>()?,
        [n] => vec![t.reshape((1, *n))?.to_vec2::<f32>()?.remove(0)],
        other => {
            return Err(EngineError::ShapeMismatch {
                path: path.to_path_buf(),
                name: name.to_string(),
                found: other.to_vec(),
                expected: vec![2, 0],
            })
        }
    };
    Ok(Some(rows))
}
