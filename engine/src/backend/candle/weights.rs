//! The candle backend's weights, on its device: quantized GGUF projections stay quantized
//! (`QMatMul`), dense ones keep the file's float type, norms are f32. The loaders
//! (`gguf::load_with`, `hf::load_with`) read the tensors onto the device; this assembles them
//! with the same shape checks and type counts as the CPU backend (`tensors::read_all`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::tensors::{self, RawTensor};

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

/// One layer's weights on the device.
pub type Layer = tensors::Layer<Tensor, Proj>;

impl Weights {
    /// The bytes of every weight on the device: the embedding table, projections and norms.
    pub fn bytes(&self) -> u64 {
        use crate::backend::{qmatmul_bytes, tensor_bytes};
        let proj = |p: &Proj| match p {
            Proj::Quantized(q) => qmatmul_bytes(q),
            Proj::Dense(t) => tensor_bytes(t),
        };
        let layer = |l: &Layer| {
            [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().map(|p| proj(p)).sum::<u64>()
                + [&l.attn_norm, &l.q_norm, &l.k_norm, &l.ffn_norm].iter().map(|t| tensor_bytes(t)).sum::<u64>()
        };
        let embed = match &self.embed {
            Embedding::Quantized(q) => q.storage_size_in_bytes() as u64,
            Embedding::Dense(t) => tensor_bytes(t),
        };
        embed + self.layers.iter().map(layer).sum::<u64>() + tensor_bytes(&self.final_norm)
    }
}

pub struct Weights {
    pub config: ModelConfig,
    pub embed: Embedding,
    pub layers: Vec<Layer>,
    pub final_norm: Tensor,
}

/// Builds `Weights` on `device` from a loader's tensors (already on `device`), their shapes
/// checked and their types counted by `tensors::read_all`, as for the CPU backend.
pub fn assemble(
    path: &Path,
    config: ModelConfig,
    device: &Device,
    fetch: &mut dyn FnMut(&str) -> Result<RawTensor>,
    type_counts: &mut BTreeMap<String, usize>,
) -> Result<Weights> {
    let mut raw = HashMap::new();
    tensors::read_all(path, &config, fetch, type_counts, |name, _, t| {
        raw.insert(name, t);
        Ok(())
    })?;
    let mut take =
        |name: &str| raw.remove(name).ok_or_else(|| EngineError::Compute(format!("tensor {name} was not loaded")));
    let norm = |_: &str, t: RawTensor| -> Result<Tensor> {
        Ok(match t {
            RawTensor::Quantized(q) => q.dequantize(device)?,
            RawTensor::Dense(d) => d.to_dtype(DType::F32)?,
        })
    };
    let embed = match take("embed_tokens")? {
        RawTensor::Quantized(q) => Embedding::Quantized(Arc::new(q)),
        RawTensor::Dense(d) => Embedding::Dense(d),
    };
    let layers = (0..config.layers)
        .map(|i| Layer::build(i, &mut take, norm, |_, t| Proj::new(t)))
        .collect::<Result<Vec<_>>>()?;
    let final_norm = norm("norm", take("norm")?)?;
    Ok(Weights { config, embed, layers, final_norm })
}
