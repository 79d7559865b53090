//! Model weights as the forward pass uses them, whatever file they came from.
//! Quantized tensors stay quantized; dense ones keep the file's float type.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor};

use crate::buf::Buf;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::kernels;
use crate::kernels::dense::{self, DenseKind, PackedDense};
use crate::kernels::qgemm::{self, PackedQ, QKind};
use crate::tensors::{self, Layer, RawTensor, Role};

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
        let kind = QKind::of(t.dtype());
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

    /// The bytes the weight holds (owned, or mapped from the packed-weight cache).
    pub fn bytes(&self) -> u64 {
        match self {
            Linear::Packed(p) => p.bytes(),
            Linear::PackedDense(p) => p.bytes(),
            Linear::Quantized(q) => crate::backend::qmatmul_bytes(q),
            Linear::Dense(t) => crate::backend::tensor_bytes(t),
        }
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
                Linear::Quantized(q) => candle_matmul(x, m, |t| Ok(q.forward(t)?)),
                Linear::Dense(w) if w.dtype() == DType::F32 => candle_matmul(x, m, |t| Ok(t.matmul(&w.t()?)?)),
                Linear::Dense(w) => {
                    candle_matmul(x, m, |t| Ok(t.to_dtype(w.dtype())?.matmul(&w.t()?)?.to_dtype(DType::F32)?))
                }
            })
            .collect()
    }
}

/// `x` (`[m, in]` row-major f32) through a candle product, back as row-major f32 `[m, out]`.
fn candle_matmul(x: &[f32], m: usize, product: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Vec<f32>> {
    let k = x.len() / m.max(1);
    let t = Tensor::from_slice(x, (m, k), &candle_core::Device::Cpu)?;
    Ok(product(&t)?.flatten_all()?.to_vec1::<f32>()?)
}

/// The token-embedding table `[rows, hidden]` in the file's own type and bytes (GGML blocks,
/// F16, BF16 or F32); only looked-up rows are expanded, with candle's block dequantization.
pub struct Embedding {
    pub dtype: GgmlDType,
    pub rows: usize,
    pub hidden: usize,
    pub data: Buf<u8>,
}

impl Embedding {
    pub fn new(dtype: GgmlDType, rows: usize, hidden: usize, data: Buf<u8>) -> Option<Embedding> {
        let block = dtype.block_size();
        (hidden.is_multiple_of(block) && data.len() == rows * hidden / block * dtype.type_size()).then_some(Embedding {
            dtype,
            rows,
            hidden,
            data,
        })
    }

    fn from_raw(t: RawTensor) -> Result<Embedding> {
        let (dtype, dims, bytes) = match t {
            RawTensor::Quantized(q) => (q.dtype(), q.shape().dims().to_vec(), q.data()?.into_owned()),
            RawTensor::Dense(t) => {
                let flat = t.flatten_all()?;
                let (dtype, bytes) = match t.dtype() {
                    DType::F16 => {
                        (GgmlDType::F16, flat.to_vec1::<half::f16>()?.iter().flat_map(|v| v.to_le_bytes()).collect())
                    }
                    DType::BF16 => {
                        (GgmlDType::BF16, flat.to_vec1::<half::bf16>()?.iter().flat_map(|v| v.to_le_bytes()).collect())
                    }
                    _ => (
                        GgmlDType::F32,
                        flat.to_dtype(DType::F32)?.to_vec1::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    ),
                };
                (dtype, t.dims().to_vec(), bytes)
            }
        };
        let &[rows, hidden] = dims.as_slice() else {
            return Err(EngineError::Compute(format!("embedding table of shape {dims:?}")));
        };
        Embedding::new(dtype, rows, hidden, bytes.into()).ok_or_else(|| {
            EngineError::Compute(format!("embedding table {dtype:?} [{rows}, {hidden}] does not fill whole blocks"))
        })
    }

    pub fn dims(&self) -> Vec<usize> {
        vec![self.rows, self.hidden]
    }

    /// Row `id` as f32.
    fn row(&self, id: usize, out: &mut [f32]) -> Result<()> {
        use candle_core::quantized::k_quants::*;
        fn blocks<B: GgmlType>(bytes: &[u8], out: &mut [f32]) {
            // The bytes are a whole number of blocks; read them unaligned into their own copy.
            let n = bytes.len() / size_of::<B>();
            let v: Vec<B> = (0..n)
                // SAFETY: in bounds; `B` is a plain `repr(C)` GGML block for which every bit
                // pattern is valid.
                .map(|i| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<B>().add(i)) })
                .collect();
            B::to_float(&v, out);
        }
        let row_bytes = self.hidden / self.dtype.block_size() * self.dtype.type_size();
        if id >= self.rows {
            return Err(EngineError::Compute(format!(
                "token id {id} is outside the embedding table ({} rows)",
                self.rows
            )));
        }
        let b = &self.data[id * row_bytes..][..row_bytes];
        match self.dtype {
            GgmlDType::F32 => out
                .iter_mut()
                .zip(b.chunks_exact(4))
                .for_each(|(o, c)| *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            GgmlDType::F16 => out
                .iter_mut()
                .zip(b.chunks_exact(2))
                .for_each(|(o, c)| *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
            GgmlDType::BF16 => out
                .iter_mut()
                .zip(b.chunks_exact(2))
                .for_each(|(o, c)| *o = half::bf16::from_le_bytes([c[0], c[1]]).to_f32()),
            GgmlDType::Q4_0 => blocks::<BlockQ4_0>(b, out),
            GgmlDType::Q4_1 => blocks::<BlockQ4_1>(b, out),
            GgmlDType::Q5_0 => blocks::<BlockQ5_0>(b, out),
            GgmlDType::Q5_1 => blocks::<BlockQ5_1>(b, out),
            GgmlDType::Q8_0 => blocks::<BlockQ8_0>(b, out),
            GgmlDType::Q8_1 => blocks::<BlockQ8_1>(b, out),
            GgmlDType::Q2K => blocks::<BlockQ2K>(b, out),
            GgmlDType::Q3K => blocks::<BlockQ3K>(b, out),
            GgmlDType::Q4K => blocks::<BlockQ4K>(b, out),
            GgmlDType::Q5K => blocks::<BlockQ5K>(b, out),
            GgmlDType::Q6K => blocks::<BlockQ6K>(b, out),
            GgmlDType::Q8K => blocks::<BlockQ8K>(b, out),
        }
        Ok(())
    }

    /// `ids` is a u32 tensor `[tokens]`; the result is `[tokens, hidden]` in f32.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let ids = ids.flatten_all()?.to_vec1::<u32>()?;
        let mut out = vec![0f32; ids.len() * self.hidden];
        for (&id, o) in ids.iter().zip(out.chunks_exact_mut(self.hidden)) {
            self.row(id as usize, o)?;
        }
        Ok(Tensor::from_vec(out, (ids.len(), self.hidden), &candle_core::Device::Cpu)?)
    }
}

/// One layer's weights: norms as f32 tensors, projections as the kernels take them.
pub type LayerWeights = Layer<Tensor, Linear>;

impl ModelWeights {
    /// The bytes of every weight as held: the embedding table, projections and norms.
    pub fn bytes(&self) -> u64 {
        use crate::backend::tensor_bytes;
        let layer = |l: &LayerWeights| {
            [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down].iter().map(|p| p.bytes()).sum::<u64>()
                + [&l.attn_norm, &l.q_norm, &l.k_norm, &l.ffn_norm].iter().map(|t| tensor_bytes(t)).sum::<u64>()
        };
        self.embed.data.len() as u64 + self.layers.iter().map(layer).sum::<u64>() + tensor_bytes(&self.final_norm)
    }
}

pub struct ModelWeights {
    pub config: ModelConfig,
    pub embed: Embedding,
    pub layers: Vec<LayerWeights>,
    pub final_norm: Tensor,
}

/// One model tensor as the forward pass keeps it. (A few hundred of them live at once, during a
/// load: boxing the large variant would save nothing worth an allocation each.)
#[allow(clippy::large_enum_variant)]
pub enum Piece {
    Embed(Embedding),
    Norm(Tensor),
    Linear(Linear),
}

/// Reads every tensor from a source that yields them by canonical name (its shape checked and
/// its type counted by `tensors::read_all`), converts it for the forward pass (repacking
/// projections for the kernels) and hands it to `take`, one at a time.
pub fn walk(
    path: &Path,
    config: &ModelConfig,
    fetch: &mut dyn FnMut(&str) -> Result<RawTensor>,
    type_counts: &mut BTreeMap<String, usize>,
    mut take: impl FnMut(&str, Piece) -> Result<()>,
) -> Result<()> {
    // Before the first tensor: an invalid QWEN3_EMBED_ISA fails the load at once.
    kernels::active()?;
    tensors::read_all(path, config, fetch, type_counts, |name, role, t| {
        let piece = match role {
            Role::TokenEmbd => Piece::Embed(Embedding::from_raw(t)?),
            _ if t.dims().len() == 1 => Piece::Norm(match t {
                RawTensor::Quantized(q) => q.dequantize(&candle_core::Device::Cpu)?,
                RawTensor::Dense(d) => d.to_dtype(DType::F32)?,
            }),
            _ => Piece::Linear(match t {
                RawTensor::Quantized(q) => Linear::quantized(q)?,
                RawTensor::Dense(d) => Linear::dense(d)?,
            }),
        };
        take(&name, piece)
    })
}

fn wrong(name: &str) -> EngineError {
    EngineError::Compute(format!("tensor {name} is not of the kind its name says"))
}

impl ModelWeights {
    /// The weights from their pieces, taken by canonical name.
    pub fn from_pieces(config: ModelConfig, mut take: impl FnMut(&str) -> Result<Piece>) -> Result<ModelWeights> {
        let embed = match take("embed_tokens")? {
            Piece::Embed(e) => e,
            _ => return Err(wrong("embed_tokens")),
        };
        let norm = |name: &str, p: Piece| match p {
            Piece::Norm(t) => Ok(t),
            _ => Err(wrong(name)),
        };
        let linear = |name: &str, p: Piece| match p {
            Piece::Linear(l) => Ok(l),
            _ => Err(wrong(name)),
        };
        let layers =
            (0..config.layers).map(|i| Layer::build(i, &mut take, norm, linear)).collect::<Result<Vec<_>>>()?;
        let final_norm = norm("norm", take("norm")?)?;
        Ok(ModelWeights { config, embed, layers, final_norm })
    }
}

/// Assembles `ModelWeights` in this process's memory from a source that yields tensors by
/// canonical name, checking every shape.
pub fn assemble(
    path: &Path,
    config: ModelConfig,
    fetch: &mut dyn FnMut(&str) -> Result<RawTensor>,
    type_counts: &mut BTreeMap<String, usize>,
) -> Result<ModelWeights> {
    let mut pieces = std::collections::HashMap::new();
    walk(path, &config, fetch, type_counts, |name, p| {
        pieces.insert(name.to_string(), p);
        Ok(())
    })?;
    ModelWeights::from_pieces(config, |name| {
        pieces.remove(name).ok_or_else(|| EngineError::Compute(format!("tensor {name} was not loaded")))
    })
}
