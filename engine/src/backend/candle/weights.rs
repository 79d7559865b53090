//! The candle backend's weights, on its device: quantized GGUF projections stay quantized
//! (`QMatMul`), dense ones keep the file's float type, norms are f32. The loaders
//! (`gguf::load_with`, `hf::load_with`) read the tensors onto the device; this assembles them
//! with the same shape checks and type counts as the CPU backend.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::weights::{expected_dims, RawTensor, LAYER_TENSORS};

/// A projection weight `[out, in]`.
pub enum Proj {
    Quantized(QMatMul),
    Dense(Tensor),
}

impl Proj {
    fn new(t: RawTensor) -> Result<Self> {
        Ok(match t {
            RawTensor::Quantized(q) => Proj::Quantized(QMatMul::from_arc(Arc::new(q))?),
            RawTensor::Dense(d) => Proj::Dense(d),
        })
    }

    /// `x` is `[rows, in]` f32; the result `[rows, out]` f32. A dense half-precision weight
    /// multiplies activations cast to its own type, so the weight is never copied.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Proj::Quantized(q) => q.forward(x)?,
            Proj::Dense(w) if w.dtype() == DType::F32 => x.matmul(&w.t()?)?,
            Proj::Dense(w) => x.to_dtype(w.dtype())?.matmul(&w.t()?)?.to_dtype(DType::F32)?,
        })
    }
}

/// The token-embedding table `[vocab_rows, hidden]`.
pub enum Embedding {
    Quantized(Arc<QTensor>),
    Dense(Tensor),
}

impl Embedding {
    /// `ids` is a u32 tensor `[tokens]`; the result is `[tokens, hidden]` f32.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Embedding::Quantized(q) => q.embedding(ids)?.to_dtype(DType::F32)?,
            Embedding::Dense(t) => t.index_select(ids, 0)?.to_dtype(DType::F32)?,
        })
    }
}

pub struct Layer {
    pub attn_norm: Tensor,
    pub q: Proj,
    pub k: Proj,
    pub v: Proj,
    pub o: Proj,
    pub q_norm: Tensor,
    pub k_norm: Tensor,
    pub ffn_norm: Tensor,
    pub gate: Proj,
    pub up: Proj,
    pub down: Proj,
}

pub struct Weights {
    pub config: ModelConfig,
    pub embed: Embedding,
    pub layers: Vec<Layer>,
    pub final_norm: Tensor,
}

/// Builds `Weights` on `device` from a loader's tensors (already on `device`), checking every
/// shape against the configuration and counting tensor types as the CPU backend does.
pub fn assemble(
    path: &Path,
    config: ModelConfig,
    device: &Device,
    fetch: &mut dyn FnMut(&str) -> Result<RawTensor>,
    type_counts: &mut BTreeMap<String, usize>,
) -> Result<Weights> {
    let mut get = |name: &str, canonical: &str| -> Result<RawTensor> {
        let t = fetch(name)?;
        let expected = expected_dims(&config, canonical);
        let found = t.dims();
        if found != expected {
            return Err(EngineError::ShapeMismatch {
                path: path.to_path_buf(),
                name: name.to_string(),
                found,
                expected,
            });
        }
        let type_name = match &t {
            RawTensor::Quantized(q) => format!("{:?}", q.dtype()),
            RawTensor::Dense(d) => format!("{:?}", d.dtype()),
        };
        *type_counts.entry(type_name).or_default() += 1;
        Ok(t)
    };
    let norm = |t: RawTensor| -> Result<Tensor> {
        Ok(match t {
            RawTensor::Quantized(q) => q.dequantize(device)?,
            RawTensor::Dense(d) => d.to_dtype(DType::F32)?,
        })
    };
    let embed = match get("embed_tokens", "embed_tokens")? {
        RawTensor::Quantized(q) => Embedding::Quantized(Arc::new(q)),
        RawTensor::Dense(d) => Embedding::Dense(d),
    };
    let mut layers = Vec::with_capacity(config.layers);
    for i in 0..config.layers {
        let mut t = Vec::with_capacity(LAYER_TENSORS.len());
        for canonical in LAYER_TENSORS {
            t.push(get(&format!("layers.{i}.{canonical}"), canonical)?);
        }
        let mut it = t.into_iter();
        let mut next = || it.next().expect("one tensor per LAYER_TENSORS entry");
        layers.push(Layer {
            attn_norm: norm(next())?,
            q: Proj::new(next())?,
            k: Proj::new(next())?,
            v: Proj::new(next())?,
            o: Proj::new(next())?,
            q_norm: norm(next())?,
            k_norm: norm(next())?,
            ffn_norm: norm(next())?,
            gate: Proj::new(next())?,
            up: Proj::new(next())?,
            down: Proj::new(next())?,
        });
    }
    let final_norm = norm(get("norm", "norm")?)?;
    Ok(Weights { config, embed, layers, final_norm })
}
