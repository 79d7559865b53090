//! The Qwen3 forward pass over a packed batch: every sequence's tokens are concatenated with
//! no padding, positions restart at 0 for each sequence, and attention is causal within a
//! sequence only. Returns the final-norm hidden state of each sequence's last token.

use candle_core::{DType, Device, Tensor};
use candle_nn::attention::flash_attn_varlen_cpu;
use candle_nn::ops::rms_norm;
use candle_nn::rotary_emb::rope_thd;

use crate::error::{EngineError, Result};
use crate::profile::{self, Stage};
use crate::kernels::{ops, with_f32};
use crate::weights::{LayerWeights, Linear, ModelWeights};

pub struct Qwen3 {
    pub weights: ModelWeights,
    inv_freq: Vec<f32>,
}

/// A packed batch: the sequences' ids back to back.
struct Packed {
    ids: Tensor,
    cos: Tensor,
    sin: Tensor,
    seqlens: Tensor,
    ones: Tensor,
    last: Tensor,
    max_len: usize,
    count: usize,
    lens: Vec<usize>,
}

impl Packed {
    /// Attention spans: every position of every sequence, or its last position only.
    fn spans(&self, last_only: bool) -> Vec<ops::Span> {
        let mut out = Vec::with_capacity(self.lens.len());
        let mut start = 0;
        for (i, &n) in self.lens.iter().enumerate() {
            out.push(if last_only {
                ops::Span { q_start: i, q_len: 1, k_start: start, k_len: n }
            } else {
                ops::Span { q_start: start, q_len: n, k_start: start, k_len: n }
            });
            start += n;
        }
        out
    }
}

impl Qwen3 {
    pub fn new(weights: ModelWeights) -> Self {
        let c = &weights.config;
        let half = c.head_dim / 2;
        // As upstream: inv_freq = 1 / theta^(2i/d), all in f32.
        let theta = c.rope_theta as f32;
        let inv_freq = (0..half)
            .map(|i| 1.0f32 / theta.powf((2 * i) as f32 / c.head_dim as f32))
            .collect();
        Qwen3 { weights, inv_freq }
    }

    fn pack(&self, seqs: &[&[u32]]) -> Result<Packed> {
        let dev = Device::Cpu;
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        let half = self.inv_freq.len();
        let mut ids = Vec::with_capacity(total);
        let mut cos = Vec::with_capacity(total * half);
        let mut sin = Vec::with_capacity(total * half);
        let mut seqlens = Vec::with_capacity(seqs.len());
        let mut last = Vec::with_capacity(seqs.len());
        for s in seqs {
            if s.is_empty() {
                return Err(EngineError::Compute("empty token sequence".into()));
            }
            for (pos, &id) in s.iter().enumerate() {
                ids.push(id);
                for &f in &self.inv_freq {
                    let angle = pos as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
            seqlens.push(s.len() as u32);
            last.push((ids.len() - 1) as u32);
        }
        Ok(Packed {
            ids: Tensor::from_vec(ids, total, &dev)?,
            cos: Tensor::from_vec(cos, (total, half), &dev)?,
            sin: Tensor::from_vec(sin, (total, half), &dev)?,
            seqlens: Tensor::from_vec(seqlens, seqs.len(), &dev)?,
            ones: Tensor::ones(seqs.len(), DType::U32, &dev)?,
            last: Tensor::from_vec(last, seqs.len(), &dev)?,
            max_len: seqs.iter().map(|s| s.len()).max().unwrap_or(0),
            count: seqs.len(),
            lens: seqs.iter().map(|s| s.len()).collect(),
        })
    }

    /// Final-norm hidden states `[seqs, hidden]` of each sequence's last token.
    /// `cancelled` is polled before every layer.
    pub fn forward(&self, seqs: &[&[u32]], cancelled: &dyn Fn() -> bool) -> Result<Tensor> {
        let c = &self.weights.config;
        let mut t = profile::start();
        let p = self.pack(seqs)?;
        let mut h = self.weights.embed.forward(&p.ids)?;
        profile::lap(&mut t, Stage::Embed);
        let n = self.weights.layers.len();
        for (i, layer) in self.weights.layers.iter().enumerate() {
            if cancelled() {
                return Err(EngineError::Cancelled);
            }
            h = self.layer(layer, &h, &p, i + 1 == n)?;
        }
        if cancelled() {
            return Err(EngineError::Cancelled);
        }
        if n == 0 {
            h = h.index_select(&p.last, 0)?;
        }
        Ok(rms_norm(&h, &self.weights.final_norm, c.rms_eps as f32)?)
    }

    /// One decoder layer. In the last layer only the last token of each sequence is needed
    /// past attention, so queries, the output projection and the MLP run on those rows only.
    fn layer(&self, w: &LayerWeights, h: &Tensor, p: &Packed, last_layer: bool) -> Result<Tensor> {
        let c = &self.weights.config;
        let eps = c.rms_eps as f32;
        let (hd, nh, nkv) = (c.head_dim, c.heads, c.kv_heads);
        let mut tm = profile::start();
        let x = rms_norm(h, &w.attn_norm, eps)?;
        profile::lap(&mut tm, Stage::Norm);

        let (xq, h, q_rows, cos_q, sin_q, seqlens_q, max_q) = if last_layer {
            let xq = x.index_select(&p.last, 0)?;
            let h = h.index_select(&p.last, 0)?;
            let cos = p.cos.index_select(&p.last, 0)?;
            let sin = p.sin.index_select(&p.last, 0)?;
            (xq, h, p.count, cos, sin, &p.ones, 1)
        } else {
            let rows = x.dim(0)?;
            (x.clone(), h.clone(), rows, p.cos.clone(), p.sin.clone(), &p.seqlens, p.max_len)
        };
        let t = x.dim(0)?;
        profile::lap(&mut tm, Stage::Other);

        let (q, k, v) = if last_layer {
            let q = w.q.forward(&xq)?;
            let mut kv = Linear::forward_many(&[&w.k, &w.v], &x)?;
            let v = kv.pop().expect("v");
            (q, kv.pop().expect("k"), v)
        } else {
            let mut qkv = Linear::forward_many(&[&w.q, &w.k, &w.v], &x)?;
            let v = qkv.pop().expect("v");
            let k = qkv.pop().expect("k");
            (qkv.pop().expect("q"), k, v)
        };
        let q = q.reshape((q_rows, nh, hd))?;
        let k = k.reshape((t, nkv, hd))?;
        let v = v.reshape((t, nkv, hd))?;
        profile::lap(&mut tm, Stage::Qkv);
        let q = rms_norm(&q, &w.q_norm, eps)?;
        let k = rms_norm(&k, &w.k_norm, eps)?;
        profile::lap(&mut tm, Stage::Norm);
        let q = rope_thd(&q.unsqueeze(0)?, &cos_q, &sin_q)?.squeeze(0)?;
        let k = rope_thd(&k.unsqueeze(0)?, &p.cos, &p.sin)?.squeeze(0)?;
        profile::lap(&mut tm, Stage::Rope);

        let scale = 1.0 / (hd as f32).sqrt();
        let attn = if ops::available() {
            let spans = p.spans(last_layer);
            let o = with_f32(&q, |qs| {
                with_f32(&k, |ks| with_f32(&v, |vs| ops::attention(qs, ks, vs, nh, nkv, hd, &spans, scale)))
            })???;
            Tensor::from_vec(o, (q_rows, nh * hd), q.device())?
        } else {
            flash_attn_varlen_cpu(
                &q, &k, &v, None, seqlens_q, &p.seqlens, max_q, p.max_len, scale, true, None, None,
            )?
            .reshape((q_rows, nh * hd))?
        };
        profile::lap(&mut tm, Stage::Attention);
        let o = w.o.forward(&attn)?;
        profile::lap(&mut tm, Stage::OutProj);
        let h = (h + o)?;
        profile::lap(&mut tm, Stage::Residual);

        let x = rms_norm(&h, &w.ffn_norm, eps)?;
        profile::lap(&mut tm, Stage::Norm);
        let rows = x.dim(0)?;
        let mut gu = Linear::forward_many_raw(&[&w.gate, &w.up], &x)?;
        profile::lap(&mut tm, Stage::GateUp);
        let up = gu.pop().expect("up");
        let mut gate = gu.pop().expect("gate");
        ops::silu_mul(&mut gate, &up);
        let act = Tensor::from_vec(gate, (rows, c.intermediate), x.device())?;
        profile::lap(&mut tm, Stage::Act);
        let mlp = w.down.forward(&act)?;
        profile::lap(&mut tm, Stage::Down);
        let out = (h + mlp)?;
        profile::lap(&mut tm, Stage::Residual);
        Ok(out)
    }
}

/// Copies `[rows, hidden]` f32 into one vector per row.
pub fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}

