//! Model weights as the forward pass uses them, whatever file they came from.
//! Quantized tensors stay quantized; dense ones keep the file's float type.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor};

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::kernels::dense::{self, DenseKind, PackedDense};
use crate::kernels::qgemm::{self, PackedQ, QKind};
use crate::kernels::{self, with_f32};

/// A projection weight `[out, in]`.
pub enum Linear {
    /// A weight of a type or shape our kernels do not take (Q2_K, Q3_K): candle's matmul.
    Quantized(QMatMul),
    /// A GGUF quantized weight repacked for our kernels (the GGUF copy is dropped).
    Packed(PackedQ),
    /// An F16/BF16/F32 weight repacked for our kernels (same values, tile order).
    PackedDense(PackedDense),
    Dense(Tensor),
}

impl Linear {
    pub fn quantized(t: QTensor) -> Result<Self> {
        let kind = match t.dtype() {
            GgmlDType::Q4_0 => Some(QKind::Q4_0),
            GgmlDType::Q4_1 => Some(QKind::Q4_1),
            GgmlDType::Q5_0 => Some(QKind::Q5_0),
            GgmlDType::Q5_1 => Some(QKind::Q5_1),
            GgmlDType::Q4K => Some(QKind::Q4K),
            GgmlDType::Q5K => Some(QKind::Q5K),
            GgmlDType::Q6K => Some(QKind::Q6K),
            GgmlDType::Q8_0 => Some(QKind::Q8_0),
            _ => None,
        };
        if let (Some(kind), &[n, k]) = (kind, t.shape().dims()) {
            if qgemm::supports(kind, n, k) {
                if let Some(p) = PackedQ::pack(kind, n, k, &t.data()?) {
                    return Ok(Linear::Packed(p));
                }
            }
        }
        Ok(Linear::Quantized(QMatMul::QTensor(Arc::new(t))))
    }

    /// A dense weight, repacked for our kernels in its own type (F16, BF16, F32).
    pub fn dense(t: Tensor) -> Result<Self> {
        let kind = match t.dtype() {
            DType::F16 => Some(DenseKind::F16),
            DType::BF16 => Some(DenseKind::Bf16),
            DType::F32 => Some(DenseKind::F32),
            _ => None,
        };
        if let (Some(kind), &[n, k]) = (kind, t.dims()) {
            if dense::supports(kind, n, k) {
                let flat = t.flatten_all()?;
                let p = match kind {
                    DenseKind::F16 => {
                        let bits: Vec<u16> = flat.to_vec1::<half::f16>()?.into_iter().map(|v| v.to_bits()).collect();
                        PackedDense::pack(kind, n, k, &bits)
                    }
                    DenseKind::Bf16 => {
                        let bits: Vec<u16> = flat.to_vec1::<half::bf16>()?.into_iter().map(|v| v.to_bits()).collect();
                        PackedDense::pack(kind, n, k, &bits)
                    }
                    DenseKind::F32 => PackedDense::pack_f32(n, k, &flat.to_vec1::<f32>()?),
                };
                if let Some(p) = p {
                    return Ok(Linear::PackedDense(p));
                }
            }
        }
        Ok(Linear::Dense(t))
    }

    pub fn dims(&self) -> Vec<usize> {
        match self {
            Linear::Packed(p) => vec![p.n, p.k],
            Linear::PackedDense(p) => vec![p.n, p.k],
            Linear::Quantized(QMatMul::QTensor(q)) => q.shape().dims().to_vec(),
            Linear::Quantized(QMatMul::Tensor(t)) | Linear::Quantized(QMatMul::TensorF16(t)) => t.dims().to_vec(),
            Linear::Dense(t) => t.dims().to_vec(),
        }
    }

    pub fn type_name(&self) -> String {
        match self {
            Linear::Packed(p) => format!("{:?}", p.kind).replace('_', ""),
            Linear::PackedDense(p) => match p.kind {
                DenseKind::F16 => "F16".into(),
                DenseKind::Bf16 => "BF16".into(),
                DenseKind::F32 => "F32".into(),
            },
            Linear::Quantized(QMatMul::QTensor(q)) => format!("{:?}", q.dtype()),
            Linear::Quantized(QMatMul::Tensor(t)) | Linear::Quantized(QMatMul::TensorF16(t)) => {
                format!("{:?}", t.dtype())
            }
            Linear::Dense(t) => format!("{:?}", t.dtype()),
        }
    }

    /// Several projections of the same input `x` (`[m, in]` row-major f32), as row-major f32
    /// vectors `[m, out]`: one activation quantization and one parallel loop for packed
    /// quantized weights.
    pub fn apply(ls: &[&Linear], x: &[f32], m: usize) -> Result<Vec<Vec<f32>>> {
        let packed: Option<Vec<&PackedQ>> = ls
            .iter()
            .map(|l| match l {
                Linear::Packed(p) => Some(p),
                _ => None,
            })
            .collect();
        let kn = kernels::table();
        if let Some(ps) = packed {
            return Ok(qgemm::matmul_many(kn, &ps, x, m));
        }
        ls.iter()
            .map(|l| match l {
                Linear::Packed(p) => Ok(p.matmul(kn, x, m)),
                Linear::PackedDense(p) => Ok(p.matmul(kn, x, m)),
                _ => {
                    let k = x.len() / m.max(1);
                    let t = Tensor::from_slice(x, (m, k), &candle_core::Device::Cpu)?;
                    Ok(l.forward(&t)?.flatten_all()?.to_vec1::<f32>()?)
                }
            })
            .collect()
    }

    /// `x` is `[tokens, in]` in f32; the result is `[tokens, out]` in f32.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Linear::Packed(p) => {
                let m = x.dim(0)?;
                let y = with_f32(x, |xs| p.matmul(kernels::table(), xs, m))?;
                Tensor::from_vec(y, (m, p.n), x.device())?
            }
            Linear::PackedDense(p) => {
                let m = x.dim(0)?;
                let y = with_f32(x, |xs| p.matmul(kernels::table(), xs, m))?;
                Tensor::from_vec(y, (m, p.n), x.device())?
            }
            Linear::Quantized(m) => m.forward(x)?,
            Linear::Dense(w) if w.dtype() == DType::F32 => x.matmul(&w.t()?)?,
            Linear::Dense(w) => x.to_dtype(w.dtype())?.matmul(&w.t()?)?.to_dtype(DType::F32)?,
        })
    }
}

/// The token-embedding table `[vocab_rows, hidden]`; only looked-up rows are expanded.
pub enum Embedding {
    Quantized(Arc<QTensor>),
    Dense(Tensor),
}

impl Embedding {
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Embedding::Quantized(q) => q.shape().dims().to_vec(),
            Embedding::Dense(t) => t.dims().to_vec(),
        }
    }

    pub fn type_name(&self) -> String {
        match self {
            Embedding::Quantized(q) => format!("{:?}", q.dtype()),
            Embedding::Dense(t) => format!("{:?}", t.dtype()),
        }
    }

    /// `ids` is a u32 tensor `[tokens]`; the result is `[tokens, hidden]` in f32.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Embedding::Quantized(q) => q.embedding(ids)?.to_dtype(DType::F32)?,
            Embedding::Dense(t) => t.index_select(ids, 0)?.to_dtype(DType::F32)?,
        })
    }
}

pub struct LayerWeights {
    pub attn_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub q_norm: Tensor,
    pub k_norm: Tensor,
    pub ffn_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

pub struct ModelWeights {
    pub config: ModelConfig,
    pub embed: Embedding,
    pub layers: Vec<LayerWeights>,
    pub final_norm: Tensor,
}

/// Canonical (Hugging Face style, unprefixed) tensor names of one layer, in the order
/// `LayerWeights` holds them.
pub const LAYER_TENSORS: [&str; 11] = [
    "input_layernorm",
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "self_attn.q_norm",
    "self_attn.k_norm",
    "post_attention_layernorm",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
];

/// What a loader hands over for one tensor.
pub enum RawTensor {
    Quantized(QTensor),
    Dense(Tensor),
}

impl RawTensor {
    pub fn dims(&self) -> Vec<usize> {
        match self {
            RawTensor::Quantized(q) => q.shape().dims().to_vec(),
            RawTensor::Dense(t) => t.dims().to_vec(),
        }
    }
}

/// Expected `[rows, cols]` of each canonical tensor for a shape.
pub fn expected_dims(c: &ModelConfig, canonical: &str) -> Vec<usize> {
    let q = c.heads * c.head_dim;
    let kv = c.kv_heads * c.head_dim;
    match canonical {
        "embed_tokens" => vec![c.vocab_rows, c.hidden],
        "norm" | "input_layernorm" | "post_attention_layernorm" => vec![c.hidden],
        "self_attn.q_norm" | "self_attn.k_norm" => vec![c.head_dim],
        "self_attn.q_proj" => vec![q, c.hidden],
        "self_attn.k_proj" | "self_attn.v_proj" => vec![kv, c.hidden],
        "self_attn.o_proj" => vec![c.hidden, q],
        "mlp.gate_proj" | "mlp.up_proj" => vec![c.intermediate, c.hidden],
        "mlp.down_proj" => vec![c.hidden, c.intermediate],
        other => unreachable!("unknown canonical tensor {other}"),
    }
}

/// Assembles `ModelWeights` from a source that yields tensors by canonical name
/// (`embed_tokens`, `norm`, `layers.{i}.{LAYER_TENSORS}`), checking every shape.
pub fn assemble(
    path: &Path,
    config: ModelConfig,
    mut fetch: impl FnMut(&str) -> Result<RawTensor>,
    type_counts: &mut BTreeMap<String, usize>,
) -> Result<ModelWeights> {
    // Before the first tensor: an invalid QWEN3_EMBED_ISA fails the load at once.
    kernels::active()?;
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
            RawTensor::Quantized(q) => q.dequantize(&candle_core::Device::Cpu)?,
            RawTensor::Dense(d) => d.to_dtype(DType::F32)?,
        })
    };
    let linear = |t: RawTensor| -> Result<Linear> {
        match t {
            RawTensor::Quantized(q) => Linear::quantized(q),
            RawTensor::Dense(d) => Linear::dense(d),
        }
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
        layers.push(LayerWeights {
            attn_norm: norm(next())?,
            q: linear(next())?,
            k: linear(next())?,
            v: linear(next())?,
            o: linear(next())?,
            q_norm: norm(next())?,
            k_norm: norm(next())?,
            ffn_norm: norm(next())?,
            gate: linear(next())?,
            up: linear(next())?,
            down: linear(next())?,
        });
    }
    let final_norm = norm(get("norm", "norm")?)?;
    Ok(ModelWeights { config, embed, layers, final_norm })
}
