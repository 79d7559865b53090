//! Attention's two products on AVX-512 VNNI in 16-bit fixed point: `vpdpwssd` multiplies pairs
//! of int16 and sums them into int32, 64 operations per instruction against f32 FMA's 32 (and
//! against `vdpbf16ps`, which runs at half FMA's rate on Sapphire Rapids). Queries are scaled per
//! row and keys per key, weights per row and block, values per span and dimension; the largest
//! magnitude of each becomes the largest integer whose sums cannot overflow (4,095 for the
//! model's 128-dimension heads), about 13 significant bits where bf16 keeps 8. The softmax
//! between the products runs in f32 in base 2 (the attention scale and log2(e) are in the keys'
//! scales), each block's weights relative to the block's own maximum, so they go from the
//! exponential to integers with no second pass.
//!
//! S = Q Kᵀ pairs dimensions: a query's pair (q[2i], q[2i+1]) is broadcast against 16 keys'
//! pairs of the same dimensions. O += P V pairs keys: a row's weights (p[j], p[j+1]) are
//! broadcast against 16 dimensions of values j and j + 1.
// Register tiles (`acc[r][x]`) are indexed in step with their rows and vectors.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::lanes::{self, Products, Tile};
use super::lanes512::{visible_mask, F32x16};
use crate::kernels::ops::{row_stride, Attention, Span};

/// Query rows per register tile (6 rows x 4 vectors of keys take 24 of the 32 registers).
const BQ: usize = 6;
/// Keys per register tile: 4 vectors.
const BK: usize = 64;
/// The largest weight and value integer: 64 keys of products stay below 2^31.
const PV_MAX: f32 = 5792.0;
/// A score this far (in base 2) below its block's maximum has weight 0.
const FLOOR: f32 = -64.0;

/// The largest query and key integer for heads of `hd` dimensions: `hd` products stay below 2^31.
fn qk_max(hd: usize) -> f32 {
    ((i32::MAX as f64 / hd as f64).sqrt().floor()).min(i16::MAX as f64) as f32
}

/// `x * inv` rounded to the nearest integer (halves away from 0), for `|x * inv|` within i16.
#[inline(always)]
fn round(x: f32, inv: f32) -> i16 {
    let y = x * inv;
    (y + 0.5f32.copysign(y)) as i16
}

/// The scale that maps `amax` to `max`, and its inverse (both 0 for an all-zero row).
#[inline(always)]
fn scales(amax: f32, max: f32) -> (f32, f32) {
    if amax > 0.0 {
        (amax / max, max / amax)
    } else {
        (0.0, 0.0)
    }
}

fn amax(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// Two int16 as one pair: `lo` in the low half, as `vpdpwssd` reads element `2i`.
#[inline(always)]
fn pair(lo: i16, hi: i16) -> u32 {
    lo as u16 as u32 | (hi as u16 as u32) << 16
}

/// Keys and values of every key/value head in 16-bit fixed point.
pub struct KvInt16 {
    /// `[head][dim pair][key]`, rows `ld` long, 0 past the last key.
    k: Vec<u32>,
    /// `[head][key]`, `ld` long: each key's scale times the attention's scale and log2(e).
    k_scale: Vec<f32>,
    ld: usize,
    /// `[head][key pair of each span][dim]`: each span's keys pair from its own first key, its
    /// rows starting at `spans[s].1` (spans sorted by first key, `spans[s].0`); an odd span's
    /// last pair is 0 in its high half.
    v: Vec<u32>,
    /// `[head][span][dim]`: each span's scale per dimension.
    v_scale: Vec<f32>,
    spans: Vec<(usize, usize)>,
    head_rows: usize,
}

impl KvInt16 {
    fn new(a: &Attention) -> KvInt16 {
        let (nkv, hd) = (a.nkv, a.hd);
        let tk = a.k.len() / (nkv * hd);
        let ld = row_stride(tk + BK);
        let kmax = qk_max(hd);
        let key = |t: usize, head: usize| &a.k[(t * nkv + head) * hd..][..hd];
        let mut k_scale = vec![0f32; nkv * ld];
        let mut k_inv = vec![0f32; nkv * ld];
        k_scale.par_chunks_mut(ld).zip(k_inv.par_chunks_mut(ld)).enumerate().for_each(|(head, (s, inv))| {
            for t in 0..tk {
                (s[t], inv[t]) = scales(amax(key(t, head)), kmax);
            }
        });
        let base2 = a.scale * std::f32::consts::LOG2_E;
        let mut k = vec![0u32; nkv * hd / 2 * ld];
        k.par_chunks_mut(ld).enumerate().for_each(|(row, dst)| {
            let (head, d) = (row / (hd / 2), 2 * (row % (hd / 2)));
            for (t, x) in dst[..tk].iter_mut().enumerate() {
                let inv = k_inv[head * ld + t];
                let src = &key(t, head)[d..];
                *x = pair(round(src[0], inv), round(src[1], inv));
            }
        });
        let mut order: Vec<&Span> = a.spans.iter().collect();
        order.sort_by_key(|sp| sp.k_start);
        let mut spans = Vec::with_capacity(order.len());
        let mut head_rows = 0;
        for sp in &order {
            spans.push((sp.k_start, head_rows));
            head_rows += sp.k_len.div_ceil(2);
        }
        let ns = order.len();
        let mut v = vec![0u32; nkv * head_rows * hd];
        let mut v_scale = vec![0f32; nkv * ns * hd];
        v.par_chunks_mut((head_rows * hd).max(1)).zip(v_scale.par_chunks_mut((ns * hd).max(1))).enumerate().for_each(
            |(head, (dst, scales_out))| {
                let value = |t: usize| &a.v[(t * nkv + head) * hd..][..hd];
                let mut inv = vec![0f32; hd];
                for (s, (sp, &(_, first))) in order.iter().zip(&spans).enumerate() {
                    let mut m = vec![0f32; hd];
                    for t in sp.k_start..sp.k_start + sp.k_len {
                        for (m, x) in m.iter_mut().zip(value(t)) {
                            *m = m.max(x.abs());
                        }
                    }
                    for d in 0..hd {
                        (scales_out[s * hd + d], inv[d]) = scales(m[d], PV_MAX);
                    }
                    for j in (0..sp.k_len).step_by(2) {
                        let row = &mut dst[(first + j / 2) * hd..][..hd];
                        let lo = value(sp.k_start + j);
                        let hi = (j + 1 < sp.k_len).then(|| value(sp.k_start + j + 1));
                        for (d, x) in row.iter_mut().enumerate() {
                            *x = pair(round(lo[d], inv[d]), hi.map_or(0, |hi| round(hi[d], inv[d])));
                        }
                    }
                }
            },
        );
        k_scale.iter_mut().for_each(|s| *s *= base2);
        KvInt16 { k, k_scale, ld, v, v_scale, spans, head_rows }
    }

    /// `sp`'s place among the sorted spans.
    fn span_index(&self, sp: &Span) -> usize {
        self.spans.partition_point(|&(start, _)| start < sp.k_start)
    }
}

/// 2^x for x <= 13 (the weights' largest exponent), |relative error| below 3e-6, a fifth of
/// what a weight's rounding to 13 bits costs; 2^x = 2^FLOOR for x < FLOOR.
#[inline(always)]
unsafe fn exp2(x: __m512) -> __m512 {
    let x = _mm512_max_ps(x, _mm512_set1_ps(FLOOR));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
    let f = _mm512_sub_ps(x, n);
    // (f ln 2)^k / k!, k = 5..0.
    let mut p = _mm512_set1_ps(1.333_355_8e-3);
    for c in [9.618_129e-3, 5.550_411e-2, 0.240_226_5, std::f32::consts::LN_2, 1.0] {
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}

/// A tile's weights for one block of keys: each row's integers (at most [`PV_MAX`]) and scale.
pub struct Weights<const R: usize, const K: usize> {
    p: [[i16; K]; R],
    scale: [f32; R],
}

/// Both products in 16-bit fixed point.
pub struct Int16Products;

impl Products<F32x16> for Int16Products {
    /// A query row is `hd / 2` int16 pairs, then its scale's bits.
    type Q = u32;
    type Kv = KvInt16;
    type P<const R: usize, const K: usize> = Weights<R, K>;
    /// Kept as a vector, so a block adds to it without a horizontal sum.
    type Sum = F32x16;

    fn q_len(hd: usize) -> usize {
        hd / 2 + 1
    }

    fn kv(a: &Attention) -> KvInt16 {
        KvInt16::new(a)
    }

    #[inline(always)]
    unsafe fn query(src: &[f32], dst: &mut [u32]) {
        let (scale, inv) = scales(amax(src), qk_max(src.len()));
        for (d, x) in dst[..src.len() / 2].iter_mut().enumerate() {
            *x = pair(round(src[2 * d], inv), round(src[2 * d + 1], inv));
        }
        dst[src.len() / 2] = scale.to_bits();
    }

    /// The scores in base 2 without the queries' scales (which `softmax` applies).
    #[inline(always)]
    unsafe fn scores<const R: usize>(
        q: *const u32,
        hd: usize,
        kv: &KvInt16,
        kvh: usize,
        sp: &Span,
        kb: usize,
    ) -> [[F32x16; 4]; R] {
        let ql = hd / 2 + 1;
        let kp = kv.k.as_ptr().add(kvh * hd / 2 * kv.ld + sp.k_start + kb);
        let mut acc = [[_mm512_setzero_si512(); 4]; R];
        for d in 0..hd / 2 {
            let kr = kp.add(d * kv.ld);
            let k: [__m512i; 4] = std::array::from_fn(|c| _mm512_loadu_si512(kr.add(16 * c).cast()));
            for (r, acc) in acc.iter_mut().enumerate() {
                let qv = _mm512_set1_epi32(*q.add(r * ql + d) as i32);
                for c in 0..4 {
                    acc[c] = _mm512_dpwssd_epi32(acc[c], qv, k[c]);
                }
            }
        }
        let ks = kv.k_scale.as_ptr().add(kvh * kv.ld + sp.k_start + kb);
        let mut s = [[F32x16(_mm512_setzero_ps()); 4]; R];
        for c in 0..4 {
            let ks = _mm512_loadu_ps(ks.add(16 * c));
            for r in 0..R {
                s[r][c] = F32x16(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][c]), ks));
            }
        }
        s
    }

    #[inline(always)]
    unsafe fn sum_zero() -> F32x16 {
        F32x16(_mm512_setzero_ps())
    }

    /// `o` is kept in units of the span's value scales, which are applied here once.
    #[inline(always)]
    unsafe fn finish(l: F32x16, o: *const f32, hd: usize, kv: &KvInt16, kvh: usize, sp: &Span, dst: *mut f32) {
        let vs = kv.v_scale.as_ptr().add((kvh * kv.spans.len() + kv.span_index(sp)) * hd);
        let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(l.0));
        for x in 0..hd / 16 {
            let scale = _mm512_mul_ps(_mm512_loadu_ps(vs.add(16 * x)), inv);
            _mm512_storeu_ps(dst.add(16 * x), _mm512_mul_ps(_mm512_loadu_ps(o.add(16 * x)), scale));
        }
    }

    /// Each row's weights are `PV_MAX * 2^(s - b)` rounded, `b` the row's largest score in the
    /// block, and its scale `2^(b - m) / PV_MAX`, `m` the running maximum; the sum is kept in
    /// units of `1 / PV_MAX`.
    #[inline(always)]
    unsafe fn softmax<const R: usize, const K: usize>(
        tile: &mut Tile<F32x16, R>,
        s: [[F32x16; 4]; R],
        q: *const u32,
        o: *mut f32,
        _scale: f32,
        hd: usize,
        kb: usize,
    ) -> Weights<R, K> {
        debug_assert_eq!(K, BK);
        let ql = hd / 2 + 1;
        let mut w = Weights { p: [[0i16; K]; R], scale: [0.0; R] };
        let mut visible = [0usize; R];
        let mut qs = [0f32; R];
        let mut b = [0f32; R];
        // Lanes 0..R: the old maximum less the new; lanes 8..8 + R: the block's maximum less the new.
        let mut d = [f32::NEG_INFINITY; 16];
        for r in 0..R {
            visible[r] = (tile.lim[r] + 1).saturating_sub(kb);
            qs[r] = f32::from_bits(*q.add(r * ql + hd / 2));
            let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
            for c in 0..4 {
                m = if visible[r] >= K {
                    _mm512_max_ps(m, s[r][c].0)
                } else {
                    _mm512_mask_max_ps(m, visible_mask(16 * c, visible[r]), m, s[r][c].0)
                };
            }
            if visible[r] == 0 {
                d[r] = 0.0;
                continue;
            }
            b[r] = _mm512_reduce_max_ps(m) * qs[r];
            let m_new = tile.m[r].max(b[r]);
            (d[r], d[8 + r]) = (tile.m[r] - m_new, b[r] - m_new);
            tile.m[r] = m_new;
        }
        let mut e = [0f32; 16];
        _mm512_storeu_ps(e.as_mut_ptr(), exp2(_mm512_loadu_ps(d.as_ptr())));
        let log2_max = PV_MAX.log2();
        for r in 0..R {
            let alpha = e[r];
            if alpha != 1.0 {
                let av = _mm512_set1_ps(alpha);
                tile.l[r] = F32x16(_mm512_mul_ps(tile.l[r].0, av));
                for x in 0..hd / 16 {
                    let op = o.add(r * hd + 16 * x);
                    _mm512_storeu_ps(op, _mm512_mul_ps(_mm512_loadu_ps(op), av));
                }
            }
            if visible[r] == 0 {
                continue;
            }
            let qv = _mm512_set1_ps(qs[r]);
            let off = _mm512_set1_ps(b[r] - log2_max);
            let mut sum = _mm512_setzero_ps();
            for c in 0..4 {
                let mut x = exp2(_mm512_fmsub_ps(qv, s[r][c].0, off));
                if visible[r] < K {
                    x = _mm512_maskz_mov_ps(visible_mask(16 * c, visible[r]), x);
                }
                sum = _mm512_add_ps(sum, x);
                let pq = _mm512_cvtepi32_epi16(_mm512_cvtps_epi32(x));
                _mm256_storeu_si256(w.p[r].as_mut_ptr().add(16 * c).cast(), pq);
            }
            w.scale[r] = e[8 + r];
            tile.l[r] = F32x16(_mm512_fmadd_ps(sum, _mm512_set1_ps(e[8 + r]), tile.l[r].0));
        }
        w
    }

    #[inline(always)]
    unsafe fn add_pv<const R: usize, const K: usize>(
        w: &Weights<R, K>,
        nk: usize,
        o: *mut f32,
        hd: usize,
        kv: &KvInt16,
        kvh: usize,
        sp: &Span,
        kb: usize,
    ) {
        let vp = kv.v.as_ptr().add((kvh * kv.head_rows + kv.spans[kv.span_index(sp)].1 + kb / 2) * hd);
        for x0 in (0..hd / 16).step_by(4) {
            let mut acc = [[_mm512_setzero_si512(); 4]; R];
            for j in 0..nk.div_ceil(2) {
                let vr = vp.add(j * hd + 16 * x0);
                let vv: [__m512i; 4] = std::array::from_fn(|x| _mm512_loadu_si512(vr.add(16 * x).cast()));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let pv = _mm512_set1_epi32(w.p[r].as_ptr().cast::<i32>().add(j).read_unaligned());
                    for x in 0..4 {
                        acc[x] = _mm512_dpwssd_epi32(acc[x], pv, vv[x]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let ps = _mm512_set1_ps(w.scale[r]);
                for x in 0..4 {
                    let op = o.add(r * hd + 16 * (x0 + x));
                    _mm512_storeu_ps(op, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[x]), ps, _mm512_loadu_ps(op)));
                }
            }
        }
    }
}

/// # Safety
/// AVX-512 F/BW and VNNI available; `a` as `ops::attention` checks it.
pub unsafe fn attention(a: &Attention, out: &mut [f32]) {
    lanes::attention::<F32x16, Int16Products, BQ>(a, out, attention_unit)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn attention_unit(a: &Attention, kv: &KvInt16, sp: &Span, kvh: usize, i0: usize, out: *mut f32) {
    lanes::attention_unit::<F32x16, Int16Products, BQ, BK>(a, kv, sp, kvh, i0, out)
}

#[cfg(test)]
mod tests {
    use crate::kernels::ops::{packed_spans, Attention};
    use crate::kernels::{generic, lcg, Isa};

    /// The fixed-point kernel itself on every span length (the table sends it only long ones):
    /// ragged packed spans, odd first keys, GQA, whole sequences and last tokens only, against
    /// the generic kernel within what 13-bit operands allow.
    #[test]
    fn matches_generic_on_ragged_spans() {
        if !Isa::Avx512.supported() {
            println!("skipped: no AVX-512 VNNI on this CPU");
            return;
        }
        for (nh, nkv, hd) in [(4, 2, 64), (8, 2, 128), (6, 3, 64)] {
            for last_only in [false, true] {
                let (spans, qs, ks) = packed_spans(&[1, 5, 64, 65, 130, 333], last_only);
                let q: Vec<f32> = lcg(12, qs * nh * hd).iter().map(|x| x * 3.0).collect();
                let k = lcg(13, ks * nkv * hd);
                let v = lcg(14, ks * nkv * hd);
                let a = Attention { q: &q, k: &k, v: &v, nh, nkv, hd, spans: &spans, scale: 0.125 };
                let mut want = vec![0f32; qs * nh * hd];
                generic::attention(&a, &mut want);
                let mut got = vec![0f32; qs * nh * hd];
                // SAFETY: the CPU has AVX-512 VNNI (checked above); the operands are consistent.
                unsafe { super::attention(&a, &mut got) };
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!((g - w).abs() < 1e-3, "{nh}/{nkv}x{hd} last_only={last_only} [{i}]: {g} vs {w}");
                }
            }
        }
    }
}
