//! The Qwen3 forward pass on candle tensors, for one padded batch.
//!
//! Our own module rather than `candle_transformers::models::{qwen3, quantized_qwen3}`: those
//! return logits (the quantized one for the last position of batch 1 only), keep a KV cache,
//! and take no padding mask. Here sequences are padded on the right to the longest one, so
//! positions restart at 0 in every row, one RoPE table serves the whole batch, and the causal
//! mask alone keeps every real token from seeing padding (padding only ever follows). In the
//! last layer only each sequence's last token goes on past attention, and there a per-sequence
//! mask stops it at its own length. Activations are f32 throughout; only the products take the
//! weights' own type (see `Proj::forward`).

use candle_core::{DType, Device, Tensor, D};
use candle_nn::ops::{rms_norm, softmax_last_dim};
use candle_nn::rotary_emb::rope;

use super::weights::{Layer, Weights};
use crate::cancel::Cancel;
use crate::error::{EngineError, Result};

/// Most bytes one block of attention scores may take: queries go through attention in blocks
/// of rows small enough for this, so a long sequence never needs `heads × len²` floats at once.
const SCORE_BLOCK_BYTES: usize = 256 << 20;

pub struct Model {
    pub weights: Weights,
    pub device: Device,
    /// RoPE inverse frequencies, f32 as upstream.
    inv_freq: Vec<f32>,
    score_block_bytes: usize,
}

/// One padded batch on the device.
struct Batch {
    rows: usize,
    len: usize,
    /// `[len, head_dim / 2]` RoPE tables for positions 0..len.
    cos: Tensor,
    sin: Tensor,
    /// `[rows]` u32: the flat index (row × len + position) of each sequence's last token.
    last_flat: Tensor,
    /// `[rows, 1, head_dim / 2]` RoPE tables at each sequence's last position.
    cos_last: Tensor,
    sin_last: Tensor,
}

impl Model {
    pub fn new(weights: Weights, device: Device) -> Self {
        let c = &weights.config;
        let theta = c.rope_theta as f32;
        let inv_freq = (0..c.head_dim / 2).map(|i| 1.0f32 / theta.powf((2 * i) as f32 / c.head_dim as f32)).collect();
        Model { weights, device, inv_freq, score_block_bytes: SCORE_BLOCK_BYTES }
    }

    fn rope_tables(&self, positions: impl Iterator<Item = usize>) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        let mut n = 0;
        for pos in positions {
            for &f in &self.inv_freq {
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
            n += 1;
        }
        Ok((Tensor::from_vec(cos, (n, half), &self.device)?, Tensor::from_vec(sin, (n, half), &self.device)?))
    }

    /// The final-norm hidden state of each sequence's last token, `[seqs, hidden]` f32.
    /// `cancel` is asked before every layer.
    pub fn forward(&self, seqs: &[&[u32]], cancel: &dyn Cancel) -> Result<Tensor> {
        let c = &self.weights.config;
        let rows = seqs.len();
        let len = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        if seqs.iter().any(|s| s.is_empty()) {
            return Err(EngineError::Compute("empty token sequence".into()));
        }
        let mut ids = vec![0u32; rows * len];
        for (r, s) in seqs.iter().enumerate() {
            ids[r * len..][..s.len()].copy_from_slice(s);
        }
        let (cos, sin) = self.rope_tables(0..len)?;
        let (cos_last, sin_last) = self.rope_tables(seqs.iter().map(|s| s.len() - 1))?;
        let half = self.inv_freq.len();
        let last_flat: Vec<u32> = seqs.iter().enumerate().map(|(r, s)| (r * len + s.len() - 1) as u32).collect();
        let b = Batch {
            rows,
            len,
            cos,
            sin,
            last_flat: Tensor::from_vec(last_flat, rows, &self.device)?,
            cos_last: cos_last.reshape((rows, 1, half))?,
            sin_last: sin_last.reshape((rows, 1, half))?,
        };

        let ids = Tensor::from_vec(ids, rows * len, &self.device)?;
        let mut h = self.weights.embed.forward(&ids)?;
        let n = self.weights.layers.len();
        let causal = causal_mask(len, &self.device)?;
        let key_lens = key_length_mask(seqs, len, &self.device)?;
        for (i, layer) in self.weights.layers.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            h = if i + 1 == n {
                self.last_layer(layer, &h, &b, &key_lens)?
            } else {
                self.layer(layer, &h, &b, &causal)?
            };
        }
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        Ok(rms_norm(&h, &self.weights.final_norm, c.rms_eps as f32)?)
    }

    /// Keys and values of every token, `[rows, kv_heads, len, head_dim]`, k normed and rotated.
    fn keys_values(&self, w: &Layer, x: &Tensor, b: &Batch) -> Result<(Tensor, Tensor)> {
        let c = &self.weights.config;
        let k = w.k.forward(x)?.reshape((b.rows, b.len, c.kv_heads, c.head_dim))?;
        let k = rms_norm(&k, &w.k_norm, c.rms_eps as f32)?.transpose(1, 2)?.contiguous()?;
        let k = rope(&k, &b.cos, &b.sin)?;
        let v = w.v.forward(x)?.reshape((b.rows, b.len, c.kv_heads, c.head_dim))?.transpose(1, 2)?.contiguous()?;
        Ok((k, v))
    }

    /// Queries of `x` (`[rows × q_len, hidden]`) as `[rows, heads, q_len, head_dim]`, normed and
    /// rotated with tables `[q_len, half]` or `[rows, q_len, half]`.
    fn queries(&self, w: &Layer, x: &Tensor, rows: usize, q_len: usize, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let c = &self.weights.config;
        let q = w.q.forward(x)?.reshape((rows, q_len, c.heads, c.head_dim))?;
        let q = rms_norm(&q, &w.q_norm, c.rms_eps as f32)?.transpose(1, 2)?.contiguous()?;
        Ok(rope(&q, cos, sin)?)
    }

    /// Attention of queries `[rows, heads, q_len, hd]` over keys/values `[rows, kv_heads,
    /// len, hd]` under an additive mask that broadcasts to `[rows, heads, q_len, len]`, in
    /// blocks of query rows; the result is `[rows × q_len, heads × hd]`.
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let c = &self.weights.config;
        let (rows, heads, q_len, hd) = q.dims4()?;
        let len = k.dim(2)?;
        let group = c.heads / c.kv_heads;
        let k = repeat_kv(k, group)?;
        let v = repeat_kv(v, group)?;
        let kt = k.t()?;
        let scale = 1.0 / (hd as f64).sqrt();
        let block = (self.score_block_bytes / (4 * rows * heads * len).max(1)).clamp(1, q_len);
        let mut out = Vec::with_capacity(q_len.div_ceil(block));
        let mut start = 0;
        while start < q_len {
            let n = block.min(q_len - start);
            let m = if mask.dim(D::Minus2)? == 1 { mask.clone() } else { mask.narrow(D::Minus2, start, n)? };
            let scores = (q.narrow(2, start, n)?.contiguous()?.matmul(&kt)? * scale)?.broadcast_add(&m)?;
            out.push(softmax_last_dim(&scores)?.matmul(&v)?);
            start += n;
        }
        let attn = Tensor::cat(&out, 2)?;
        Ok(attn.transpose(1, 2)?.reshape((rows * q_len, heads * hd))?)
    }

    fn mlp(&self, w: &Layer, h: &Tensor) -> Result<Tensor> {
        let eps = self.weights.config.rms_eps as f32;
        let x = rms_norm(h, &w.ffn_norm, eps)?;
        let act = (candle_nn::ops::silu(&w.gate.forward(&x)?)? * w.up.forward(&x)?)?;
        Ok((h + w.down.forward(&act)?)?)
    }

    /// One decoder layer over every token: `h` is `[rows × len, hidden]`.
    fn layer(&self, w: &Layer, h: &Tensor, b: &Batch, causal: &Tensor) -> Result<Tensor> {
        let x = rms_norm(h, &w.attn_norm, self.weights.config.rms_eps as f32)?;
        let (k, v) = self.keys_values(w, &x, b)?;
        let q = self.queries(w, &x, b.rows, b.len, &b.cos, &b.sin)?;
        let attn = self.attention(&q, &k, &v, causal)?;
        let h = (h + w.o.forward(&attn)?)?;
        self.mlp(w, &h)
    }

    /// The last layer: keys and values of every token, everything else for each sequence's
    /// last token only; the result is `[rows, hidden]`.
    fn last_layer(&self, w: &Layer, h: &Tensor, b: &Batch, key_lens: &Tensor) -> Result<Tensor> {
        let x = rms_norm(h, &w.attn_norm, self.weights.config.rms_eps as f32)?;
        let (k, v) = self.keys_values(w, &x, b)?;
        let x_last = x.index_select(&b.last_flat, 0)?;
        let q = self.queries(w, &x_last, b.rows, 1, &b.cos_last, &b.sin_last)?;
        let attn = self.attention(&q, &k, &v, key_lens)?;
        let h = (h.index_select(&b.last_flat, 0)? + w.o.forward(&attn)?)?;
        self.mlp(w, &h)
    }
}

/// `[len, len]`: 0 where a query may see a key (key ≤ query), −∞ elsewhere.
fn causal_mask(len: usize, device: &Device) -> Result<Tensor> {
    let m: Vec<f32> =
        (0..len).flat_map(|i| (0..len).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Ok(Tensor::from_vec(m, (len, len), device)?)
}

/// `[rows, 1, 1, len]`: 0 for each sequence's own keys, −∞ for its padding.
fn key_length_mask(seqs: &[&[u32]], len: usize, device: &Device) -> Result<Tensor> {
    let m: Vec<f32> =
        seqs.iter().flat_map(|s| (0..len).map(move |j| if j < s.len() { 0.0 } else { f32::NEG_INFINITY })).collect();
    Ok(Tensor::from_vec(m, (seqs.len(), 1, 1, len), device)?)
}

/// `[rows, kv_heads, len, hd]` → `[rows, kv_heads × group, len, hd]`, query head `i` reading
/// key/value head `i / group` (as upstream's `repeat_kv`).
fn repeat_kv(x: &Tensor, group: usize) -> Result<Tensor> {
    if group == 1 {
        return Ok(x.clone());
    }
    let (rows, kv, len, hd) = x.dims4()?;
    Ok(x.unsqueeze(2)?.expand((rows, kv, group, len, hd))?.reshape((rows, kv * group, len, hd))?)
}

/// Copies `[rows, hidden]` f32 into one vector per row.
pub fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::super::weights::{Embedding, Proj};
    use super::*;
    use crate::config::ModelConfig;

    /// A random two-layer model with grouped keys/values (4 query heads, 2 key/value heads).
    fn model() -> Model {
        let dev = Device::Cpu;
        let config = ModelConfig {
            hidden: 64,
            intermediate: 96,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            vocab_rows: 50,
            rope_theta: 1e6,
            rms_eps: 1e-6,
            max_positions: 128,
        };
        let r = |shape: (usize, usize)| Tensor::randn(0f32, 0.2, shape, &dev).unwrap();
        let n = |len: usize| (Tensor::randn(0f32, 0.1, len, &dev).unwrap() + 1.0).unwrap();
        let (h, q, kv, i) = (64, 64, 32, 96);
        let layers = (0..config.layers)
            .map(|_| Layer {
                attn_norm: n(h),
                q: Proj::Dense(r((q, h))),
                k: Proj::Dense(r((kv, h))),
                v: Proj::Dense(r((kv, h))),
                o: Proj::Dense(r((h, q))),
                q_norm: n(16),
                k_norm: n(16),
                ffn_norm: n(h),
                gate: Proj::Dense(r((i, h))),
                up: Proj::Dense(r((i, h))),
                down: Proj::Dense(r((h, i))),
            })
            .collect();
        let weights = Weights { embed: Embedding::Dense(r((50, h))), layers, final_norm: n(h), config };
        Model::new(weights, dev)
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// Padding never reaches a sequence's result: a short sequence padded beside a long one
    /// gives what it gives alone, and so do blocks of one query row.
    #[test]
    fn padding_and_query_blocks_change_nothing() {
        let mut m = model();
        let long: Vec<u32> = (0..23).map(|i| (i * 7 % 50) as u32).collect();
        let short: Vec<u32> = vec![3, 14, 15, 9];
        let never = || false;
        let both = rows(&m.forward(&[&short, &long], &never).unwrap()).unwrap();
        let alone_short = rows(&m.forward(&[&short], &never).unwrap()).unwrap();
        let alone_long = rows(&m.forward(&[&long], &never).unwrap()).unwrap();
        assert!(max_diff(&both[0], &alone_short[0]) < 1e-4, "{}", max_diff(&both[0], &alone_short[0]));
        assert!(max_diff(&both[1], &alone_long[0]) < 1e-4);
        assert!(max_diff(&both[0], &both[1]) > 1e-2, "different inputs must give different states");
        m.score_block_bytes = 1;
        let blocked = rows(&m.forward(&[&short, &long], &never).unwrap()).unwrap();
        assert!(max_diff(&blocked[0], &both[0]) < 1e-5 && max_diff(&blocked[1], &both[1]) < 1e-5);
    }
}
