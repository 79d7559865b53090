//! Scalar kernels of every kind: they run on any CPU, and they are the oracle every SIMD
//! kernel is tested against, so they are written to be read, not to be fast.

use std::ops::Range;

use half::{bf16, f16};
use rayon::prelude::*;

use super::dense::{DenseKind, PackedDense};
use super::ops::Attention;
use super::qgemm::{PackedQ, QuantAct, NR, QK};
use super::qpack::Format;
use super::SendPtr;
use super::{Isa, Kernels};

pub const KERNELS: Kernels = Kernels {
    isa: Isa::Generic,
    name: "generic",
    code: "generic",
    quantize_block,
    shift_signed: false,
    qgemm_unit,
    dense_unit: [dense_unit, dense_unit, dense_unit],
    attention,
    attention_int16: false,
    rms_rows,
    silu_mul,
    rope_row,
    add,
};

/// Quantizes one block (256 or 32 values): `d = max|x| / 127`, `q = round_half_even(x / d)`,
/// stored as `q + 128` in unsigned bytes when `shift`.
pub fn quantize_block(x: &[f32], q: &mut [i8], shift: bool) -> f32 {
    assert!(x.len() == q.len() && x.len().is_multiple_of(32));
    let amax = x.iter().fold(0f32, |a, &v| a.max(v.abs()));
    let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let flip = if shift { 0x80 } else { 0 };
    for (o, &v) in q.iter_mut().zip(x) {
        *o = ((v * inv).round_ties_even().clamp(-127.0, 127.0) as i8 as u8 ^ flip) as i8;
    }
    amax / 127.0
}

/// `y[r][c] = sum_blocks ad * sum_groups (s * sum_k((q - offset) * a) - min * asum)` for rows
/// `r0..r1` and the columns of `tiles`, one tile and group of weights decoded at a time; for
/// Q8_0, `ad` is the group's and multiplies `s`.
///
/// # Safety
/// `out` is `[m, w.n]` for the `m` rows of `a`.
pub unsafe fn qgemm_unit(w: &PackedQ, a: &QuantAct, tiles: Range<usize>, r0: usize, r1: usize, out: *mut f32) {
    let (k, g) = (w.k, w.group);
    let (ng, nb, gpb) = (k / g, k / QK, QK / g);
    let rows = r1 - r0;
    let per_group = Format::group_act_scales(w.format as u8);
    for t in tiles {
        let mut y = vec![[0f32; NR]; rows];
        let mut f = vec![[0f32; NR]; rows];
        let mut q = vec![[0i32; NR]; g];
        for gi in 0..ng {
            for (kk, q) in q.iter_mut().enumerate() {
                for (c, q) in q.iter_mut().enumerate() {
                    *q = w.value(t * NR + c, gi * g + kk);
                }
            }
            let sm: [(f32, f32); NR] = std::array::from_fn(|c| w.scale_min(t * NR + c, gi));
            for (ri, f) in f.iter_mut().enumerate() {
                let r = r0 + ri;
                let av = &a.q[r * k + gi * g..][..g];
                let dg = if per_group { a.d[r * ng + gi] } else { 1.0 };
                for (c, f) in f.iter_mut().enumerate() {
                    let isum: i32 = q.iter().zip(av).map(|(q, &a)| q[c] * a as i32).sum();
                    *f += sm[c].0 * dg * isum as f32 - sm[c].1 * a.sum[r * ng + gi];
                }
            }
            if gi % gpb == gpb - 1 {
                for (ri, (y, f)) in y.iter_mut().zip(&mut f).enumerate() {
                    let d = if per_group { 1.0 } else { a.d[(r0 + ri) * nb + gi / gpb] };
                    for (y, f) in y.iter_mut().zip(f.iter_mut()) {
                        *y += std::mem::take(f) * d;
                    }
                }
            }
        }
        for (ri, y) in y.iter().enumerate() {
            // SAFETY: (r0 + ri, t) lies inside the caller's `[m, n]` output.
            let o = unsafe { std::slice::from_raw_parts_mut(out.add((r0 + ri) * w.n + t * NR), NR) };
            o.copy_from_slice(y);
        }
    }
}

/// Rows `r0..r1` times tiles `tiles` of a dense weight; each tile's weights are widened to f32
/// once per `k` and used for all the rows.
///
/// # Safety
/// `out` is `[m, w.n]` for the `m` rows of `x` (or of `xb`, bf16 pairs, for BF16 weights).
pub unsafe fn dense_unit(
    w: &PackedDense,
    x: &[f32],
    xb: &[u32],
    tiles: Range<usize>,
    r0: usize,
    r1: usize,
    out: *mut f32,
) {
    let k = w.k;
    let rows = r1 - r0;
    let mut acc = vec![[0f32; NR]; rows];
    for t in tiles {
        acc.iter_mut().for_each(|a| *a = [0.0; NR]);
        match w.kind {
            DenseKind::F16 | DenseKind::F32 => {
                for kk in 0..k {
                    let i = t * NR * k + kk * NR;
                    let wv: [f32; NR] = match w.kind {
                        DenseKind::F16 => std::array::from_fn(|c| f16::from_bits(w.data[i + c]).to_f32()),
                        _ => std::array::from_fn(|c| w.data32[i + c]),
                    };
                    for (ri, acc) in acc.iter_mut().enumerate() {
                        let xv = x[(r0 + ri) * k + kk];
                        for c in 0..NR {
                            acc[c] += xv * wv[c];
                        }
                    }
                }
            }
            DenseKind::Bf16 => {
                for kp in 0..k / 2 {
                    let i = t * NR * k + kp * NR * 2;
                    let wv: [f32; 2 * NR] = std::array::from_fn(|j| bf16::from_bits(w.data[i + j]).to_f32());
                    for (ri, acc) in acc.iter_mut().enumerate() {
                        let pair = xb[(r0 + ri) * (k / 2) + kp];
                        let x0 = f32::from_bits(pair << 16);
                        let x1 = f32::from_bits(pair & 0xFFFF_0000);
                        for c in 0..NR {
                            acc[c] += x0 * wv[2 * c] + x1 * wv[2 * c + 1];
                        }
                    }
                }
            }
        }
        for (ri, acc) in acc.iter().enumerate() {
            // SAFETY: (r0 + ri, t) lies inside the caller's `[m, n]` output.
            let o = unsafe { std::slice::from_raw_parts_mut(out.add((r0 + ri) * w.n + t * NR), NR) };
            o.copy_from_slice(acc);
        }
    }
}

/// Causal grouped-query attention, one query row and head at a time: scores, softmax with
/// the maximum subtracted, weighted sum of the values. `out` is zeroed.
pub fn attention(a: &Attention, out: &mut [f32]) {
    let (nh, nkv, hd) = (a.nh, a.nkv, a.hd);
    let group = nh / nkv;
    let out_ptr = SendPtr(out.as_mut_ptr());
    a.spans.par_iter().for_each(|sp| {
        let p = out_ptr;
        for i in 0..sp.q_len {
            let lim = sp.k_len - sp.q_len + i;
            for h in 0..nh {
                let kvh = h / group;
                let qr = &a.q[((sp.q_start + i) * nh + h) * hd..][..hd];
                let scores: Vec<f32> = (0..=lim)
                    .map(|j| {
                        let kr = &a.k[((sp.k_start + j) * nkv + kvh) * hd..][..hd];
                        qr.iter().zip(kr).map(|(x, y)| x * y).sum::<f32>() * a.scale
                    })
                    .collect();
                let mx = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = scores.iter().map(|s| (s - mx).exp()).collect();
                let sum: f32 = e.iter().sum();
                // SAFETY: the spans' query rows are disjoint, so this row of head h is written
                // by this iteration only.
                let o = unsafe { std::slice::from_raw_parts_mut(p.0.add(((sp.q_start + i) * nh + h) * hd), hd) };
                for (j, wt) in e.iter().enumerate() {
                    let vr = &a.v[((sp.k_start + j) * nkv + kvh) * hd..][..hd];
                    for (o, x) in o.iter_mut().zip(vr) {
                        *o += wt / sum * x;
                    }
                }
            }
        }
    });
}

/// Sum of squares of `x`, in f32 with 16 independent partial sums (vectorizable).
#[inline(always)]
fn sum_sq(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for i in 0..16 {
            acc[i] += c[i] * c[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for v in chunks.remainder() {
        s += v * v;
    }
    s
}

/// RMSNorm of every row; inlined into the SIMD tables' functions, which the compiler then
/// vectorizes for their instruction set with the same results.
#[inline(always)]
pub fn rms_rows_inline(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    assert_eq!(x.len(), out.len());
    for (x, out) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        let inv = 1.0 / (sum_sq(x) / x.len() as f32 + eps).sqrt();
        for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
            *o = g * (v * inv);
        }
    }
}

pub fn rms_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    rms_rows_inline(x, w, eps, out)
}

pub fn silu_mul(g: &mut [f32], u: &[f32]) {
    for (g, &u) in g.iter_mut().zip(u) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// NeoX rotary embedding of one row of heads (inlined like `rms_rows_inline`).
#[inline(always)]
pub fn rope_row_inline(row: &mut [f32], hd: usize, c: &[f32], s: &[f32]) {
    let half = hd / 2;
    let (c, s) = (&c[..half], &s[..half]);
    for head in row.chunks_exact_mut(hd) {
        let (a, b) = head.split_at_mut(half);
        for i in 0..half {
            let (x1, x2) = (a[i], b[i]);
            a[i] = x1 * c[i] - x2 * s[i];
            b[i] = x2 * c[i] + x1 * s[i];
        }
    }
}

pub fn rope_row(row: &mut [f32], hd: usize, c: &[f32], s: &[f32]) {
    rope_row_inline(row, hd, c, s)
}

#[inline(always)]
pub fn add_inline(a: &mut [f32], b: &[f32]) {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
}

pub fn add(a: &mut [f32], b: &[f32]) {
    add_inline(a, b)
}
