//! The Qwen3 forward pass over a packed batch: every sequence's tokens are concatenated with
//! no padding, positions restart at 0 for each sequence, and attention is causal within a
//! sequence only. Returns the final-norm hidden state of each sequence's last token.
//!
//! The hidden state is a plain row-major `Vec<f32>` `[tokens, hidden]`; the projections, the
//! attention and the elementwise steps (RMSNorm, RoPE, SiLU, residuals) are our own kernels
//! (`crate::kernels`), all in f32 except the products' weights.

use candle_core::{DType, Device, Tensor};

use crate::backend::cpu::weights::{LayerWeights, Linear, ModelWeights};
use crate::cancel::Cancel;
use crate::error::{EngineError, Result};
use crate::kernels::{self, ops, Kernels};
use crate::profile::{self, Stage};

pub struct Qwen3 {
    pub weights: ModelWeights,
    /// The instruction set's kernels, chosen once per process (`kernels::active`).
    kernels: &'static Kernels,
    inv_freq: Vec<f32>,
    /// Per layer: attention norm, q norm, k norm, MLP norm, as f32.
    norms: Vec<[Vec<f32>; 4]>,
    final_norm: Vec<f32>,
}

/// A packed batch: the sequences' ids back to back.
struct Packed {
    ids: Tensor,
    /// `[tokens][head_dim / 2]` rotary tables (f32, as upstream).
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// Row of each sequence's last token.
    last: Vec<usize>,
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

fn f32_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

/// Rows `idx` of a row-major `[_, width]` matrix.
fn gather(x: &[f32], width: usize, idx: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(idx.len() * width);
    for &i in idx {
        out.extend_from_slice(&x[i * width..][..width]);
    }
    out
}

impl Qwen3 {
    pub fn new(weights: ModelWeights) -> Result<Self> {
        let c = &weights.config;
        let half = c.head_dim / 2;
        // As upstream: inv_freq = 1 / theta^(2i/d), all in f32.
        let theta = c.rope_theta as f32;
        let inv_freq = (0..half).map(|i| 1.0f32 / theta.powf((2 * i) as f32 / c.head_dim as f32)).collect();
        let norms = weights
            .layers
            .iter()
            .map(|l| Ok([f32_vec(&l.attn_norm)?, f32_vec(&l.q_norm)?, f32_vec(&l.k_norm)?, f32_vec(&l.ffn_norm)?]))
            .collect::<Result<Vec<_>>>()?;
        let final_norm = f32_vec(&weights.final_norm)?;
        Ok(Qwen3 { weights, kernels: kernels::active()?, inv_freq, norms, final_norm })
    }

    /// The bytes of the weights, and of the norms' f32 copies the forward pass reads.
    pub fn weight_bytes(&self) -> u64 {
        let norms: usize = self.norms.iter().flatten().map(Vec::len).sum::<usize>() + self.final_norm.len();
        self.weights.bytes() + (norms * size_of::<f32>()) as u64
    }

    fn pack(&self, seqs: &[&[u32]]) -> Result<Packed> {
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        let half = self.inv_freq.len();
        let mut ids = Vec::with_capacity(total);
        let mut cos = Vec::with_capacity(total * half);
        let mut sin = Vec::with_capacity(total * half);
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
            last.push(ids.len() - 1);
        }
        Ok(Packed {
            ids: Tensor::from_vec(ids, total, &Device::Cpu)?,
            cos,
            sin,
            last,
            lens: seqs.iter().map(|s| s.len()).collect(),
        })
    }

    /// Final-norm hidden states `[seqs, hidden]` of each sequence's last token.
    /// `cancel` is asked before every layer.
    pub fn forward(&self, seqs: &[&[u32]], cancel: &dyn Cancel) -> Result<Tensor> {
        let out = self.forward_layers(seqs, cancel);
        kernels::release_spares();
        out
    }

    fn forward_layers(&self, seqs: &[&[u32]], cancel: &dyn Cancel) -> Result<Tensor> {
        let c = &self.weights.config;
        let kn = self.kernels;
        let mut t = profile::start();
        let p = self.pack(seqs)?;
        let mut h = f32_vec(&self.weights.embed.forward(&p.ids)?)?;
        profile::lap(&mut t, Stage::Embed);
        let n = self.weights.layers.len();
        for (i, layer) in self.weights.layers.iter().enumerate() {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            h = self.layer(i, layer, h, &p, i + 1 == n)?;
        }
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        if n == 0 {
            h = gather(&h, c.hidden, &p.last);
        }
        let out = ops::rms_norm(kn, &h, &self.final_norm, c.rms_eps as f32);
        Ok(Tensor::from_vec(out, (p.last.len(), c.hidden), &Device::Cpu)?)
    }

    /// One decoder layer. In the last layer only the last token of each sequence is needed
    /// past attention, so queries, the output projection and the MLP run on those rows only.
    fn layer(&self, i: usize, w: &LayerWeights, h: Vec<f32>, p: &Packed, last_layer: bool) -> Result<Vec<f32>> {
        let c = &self.weights.config;
        let kn = self.kernels;
        let eps = c.rms_eps as f32;
        let (hd, nh, nkv, hidden) = (c.head_dim, c.heads, c.kv_heads, c.hidden);
        let [attn_norm, q_norm, k_norm, ffn_norm] = &self.norms[i];
        let t = h.len() / hidden;
        let mut tm = profile::start();
        let x = ops::rms_norm(kn, &h, attn_norm, eps);
        profile::lap(&mut tm, Stage::Norm);

        let (mut q, mut k, v, mut h, q_rows, q_pos) = if last_layer {
            let xq = gather(&x, hidden, &p.last);
            let q = Linear::apply(&[&w.q], &xq, p.last.len())?.pop().expect("q");
            let mut kv = Linear::apply(&[&w.k, &w.v], &x, t)?;
            let v = kv.pop().expect("v");
            let h_last = gather(&h, hidden, &p.last);
            kernels::recycle(h);
            (q, kv.pop().expect("k"), v, h_last, p.last.len(), Some(&p.last))
        } else {
            let mut qkv = Linear::apply(&[&w.q, &w.k, &w.v], &x, t)?;
            let v = qkv.pop().expect("v");
            let k = qkv.pop().expect("k");
            (qkv.pop().expect("q"), k, v, h, t, None)
        };
        kernels::recycle(x);
        profile::lap(&mut tm, Stage::Qkv);
        ops::rms_norm_inplace(kn, &mut q, q_norm, eps);
        ops::rms_norm_inplace(kn, &mut k, k_norm, eps);
        profile::lap(&mut tm, Stage::Norm);
        let half = hd / 2;
        match q_pos {
            Some(rows) => {
                let cos = gather(&p.cos, half, rows);
                let sin = gather(&p.sin, half, rows);
                ops::rope_inplace(kn, &mut q, nh, hd, &cos, &sin);
            }
            None => ops::rope_inplace(kn, &mut q, nh, hd, &p.cos, &p.sin),
        }
        ops::rope_inplace(kn, &mut k, nkv, hd, &p.cos, &p.sin);
        profile::lap(&mut tm, Stage::Rope);

        let spans = p.spans(last_layer);
        if profile::enabled() {
            let proj = |rows: usize, n: usize, k: usize| 2 * (rows * n * k) as u64;
            let (qd, kvd, inter) = (nh * hd, nkv * hd, c.intermediate);
            profile::count(Stage::Qkv, proj(q_rows, qd, hidden) + proj(t, 2 * kvd, hidden));
            let keys: usize = spans.iter().map(|s| (s.k_len - s.q_len..s.k_len).map(|i| i + 1).sum::<usize>()).sum();
            profile::count(Stage::Attention, 4 * (keys * qd) as u64);
            profile::count(Stage::OutProj, proj(q_rows, hidden, qd));
            profile::count(Stage::GateUp, proj(q_rows, 2 * inter, hidden));
            profile::count(Stage::Down, proj(q_rows, hidden, inter));
        }
        let attn = ops::attention(kn, &q, &k, &v, nh, nkv, hd, &spans, 1.0 / (hd as f32).sqrt());
        for b in [q, k, v] {
            kernels::recycle(b);
        }
        profile::lap(&mut tm, Stage::Attention);
        let o = Linear::apply(&[&w.o], &attn, q_rows)?.pop().expect("o");
        kernels::recycle(attn);
        profile::lap(&mut tm, Stage::OutProj);
        ops::add_inplace(kn, &mut h, &o);
        kernels::recycle(o);
        profile::lap(&mut tm, Stage::Residual);

        let x = ops::rms_norm(kn, &h, ffn_norm, eps);
        profile::lap(&mut tm, Stage::Norm);
        let mut gu = Linear::apply(&[&w.gate, &w.up], &x, q_rows)?;
        kernels::recycle(x);
        profile::lap(&mut tm, Stage::GateUp);
        let up = gu.pop().expect("up");
        let mut gate = gu.pop().expect("gate");
        ops::silu_mul(kn, &mut gate, &up);
        kernels::recycle(up);
        profile::lap(&mut tm, Stage::Act);
        let mlp = Linear::apply(&[&w.down], &gate, q_rows)?.pop().expect("down");
        kernels::recycle(gate);
        profile::lap(&mut tm, Stage::Down);
        ops::add_inplace(kn, &mut h, &mlp);
        kernels::recycle(mlp);
        profile::lap(&mut tm, Stage::Residual);
        Ok(h)
    }
}

/// Copies `[rows, hidden]` f32 into one vector per row.
pub fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(t.to_dtype(DType::F32)?.to_vec2::<f32>()?)
}
