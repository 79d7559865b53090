//! Elementwise and attention kernels in f32 (AVX-512 with a scalar fallback).

use rayon::prelude::*;

/// True when the AVX-512 paths of this module run.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f")
                && std::env::var_os("QWEN3_EMBED_NO_OPS").is_none()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `gate[i] = silu(gate[i]) * up[i]` (SiLU(x) = x / (1 + e^-x)), in place, in parallel.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    const CHUNK: usize = 1 << 14;
    gate.par_chunks_mut(CHUNK).zip(up.par_chunks(CHUNK)).for_each(|(g, u)| {
        #[cfg(target_arch = "x86_64")]
        if available() {
            // SAFETY: AVX-512F checked.
            unsafe { avx512::silu_mul(g, u) };
            return;
        }
        for (g, &u) in g.iter_mut().zip(u) {
            *g = *g / (1.0 + (-*g).exp()) * u;
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

#[inline(always)]
fn rms_row(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let inv = 1.0 / (sum_sq(x) / x.len() as f32 + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = g * (v * inv);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rms_rows_avx512(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    for (x, o) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        rms_row(x, w, eps, o);
    }
}

fn rms_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX-512F checked.
        return unsafe { rms_rows_avx512(x, w, eps, out) };
    }
    for (x, o) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        rms_row(x, w, eps, o);
    }
}

/// RMSNorm of every row (rows are `w.len()` long): `w * x / sqrt(mean(x^2) + eps)`, in f32.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out: Vec<f32> = super::zeroed_vec(x.len());
    let rows = (16384 / w.len()).max(1) * w.len();
    out.par_chunks_mut(rows).zip(x.par_chunks(rows)).for_each(|(o, x)| rms_rows(x, w, eps, o));
    out
}

/// RMSNorm in place (per-head norms: rows of `w.len()`).
pub fn rms_norm_inplace(x: &mut [f32], w: &[f32], eps: f32) {
    let rows = (16384 / w.len()).max(1) * w.len();
    x.par_chunks_mut(rows).for_each(|x| {
        let mut tmp = vec![0f32; w.len()];
        for r in x.chunks_exact_mut(w.len()) {
            rms_rows(r, w, eps, &mut tmp);
            r.copy_from_slice(&tmp);
        }
    });
}

/// NeoX-style rotary embedding in place: `x` is `[rows, heads, hd]`, `cos`/`sin` are
/// `[rows, hd/2]`; the first and second halves of each head rotate together.
pub fn rope_inplace(x: &mut [f32], heads: usize, hd: usize, cos: &[f32], sin: &[f32]) {
    let half = hd / 2;
    let width = heads * hd;
    assert_eq!(x.len() / width * half, cos.len());
    x.par_chunks_mut(width).zip(cos.par_chunks(half).zip(sin.par_chunks(half))).with_min_len(16).for_each(
        |(row, (c, s))| {
            for head in row.chunks_exact_mut(hd) {
                let (a, b) = head.split_at_mut(half);
                for i in 0..half {
                    let (x1, x2) = (a[i], b[i]);
                    a[i] = x1 * c[i] - x2 * s[i];
                    b[i] = x2 * c[i] + x1 * s[i];
                }
            }
        },
    );
}

/// `a += b`.
pub fn add_inplace(a: &mut [f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    a.par_chunks_mut(1 << 14).zip(b.par_chunks(1 << 14)).for_each(|(a, b)| {
        for (a, b) in a.iter_mut().zip(b) {
            *a += b;
        }
    });
}

/// One sequence of a packed batch: its query rows and its key/value rows. Queries are the
/// last `q_len` positions of the sequence (all of it, or only its last token).
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub q_start: usize,
    pub q_len: usize,
    pub k_start: usize,
    pub k_len: usize,
}

/// Causal attention within each span, grouped-query: `q [tq, nh, hd]`, `k`, `v` `[tk, nkv, hd]`
/// (row-major f32), query head `h` reads key/value head `h / (nh / nkv)`. Returns
/// `[tq, nh, hd]`. Softmax in f32 with a running maximum (one pass over the keys).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    nh: usize,
    nkv: usize,
    hd: usize,
    spans: &[Span],
    scale: f32,
) -> Vec<f32> {
    let tq = q.len() / (nh * hd);
    let tk = k.len() / (nkv * hd);
    assert_eq!(q.len(), tq * nh * hd);
    assert_eq!(v.len(), k.len());
    assert!(nh.is_multiple_of(nkv));
    let mut out: Vec<f32> = super::zeroed_vec(tq * nh * hd);
    #[cfg(target_arch = "x86_64")]
    if available() && hd.is_multiple_of(64) && hd <= avx512::MAX_HD {
        // Keys transposed per head: kt[head][dim][key], padded so a block of BK keys can
        // always be read.
        let ld = tk + avx512::BK;
        let mut kt: Vec<f32> = super::zeroed_vec(nkv * hd * ld);
        kt.par_chunks_mut(ld).enumerate().for_each(|(row, dst)| {
            let (head, d) = (row / hd, row % hd);
            for (t, x) in dst[..tk].iter_mut().enumerate() {
                *x = k[(t * nkv + head) * hd + d];
            }
        });
        // Values per head, key rows back to back: vt[head][key][dim]. In `v` one head's rows
        // are 4 KiB apart (4B model), so a block of them would share a few L1 sets.
        let mut vt: Vec<f32> = super::alloc_vec(nkv * tk * hd);
        // SAFETY: every value is written below before use.
        unsafe { vt.set_len(nkv * tk * hd) };
        vt.par_chunks_mut(tk * hd).enumerate().for_each(|(head, dst)| {
            for (t, row) in dst.chunks_exact_mut(hd).enumerate() {
                row.copy_from_slice(&v[(t * nkv + head) * hd..][..hd]);
            }
        });
        let mut units = Vec::new();
        for (s, span) in spans.iter().enumerate() {
            for h in 0..nh {
                for i0 in (0..span.q_len).step_by(avx512::BQ) {
                    units.push((s, h, i0));
                }
            }
        }
        let out_ptr = SendPtr(out.as_mut_ptr());
        units.into_par_iter().for_each(|(s, h, i0)| {
            let p = out_ptr;
            let g = avx512::Geometry { nh, nkv, hd, ld, tk };
            // SAFETY: AVX-512F checked; every unit writes its own rows of head `h`.
            unsafe { avx512::attention_unit(q, &kt, &vt, &g, &spans[s], h, i0, scale, p.0) };
        });
        super::recycle(kt);
        super::recycle(vt);
        return out;
    }
    // Scalar reference path.
    let group = nh / nkv;
    let out_ptr = SendPtr(out.as_mut_ptr());
    spans.par_iter().for_each(|sp| {
        let p = out_ptr;
        for i in 0..sp.q_len {
            let lim = sp.k_len - sp.q_len + i;
            for h in 0..nh {
                let kvh = h / group;
                let qr = &q[((sp.q_start + i) * nh + h) * hd..][..hd];
                let scores: Vec<f32> = (0..=lim)
                    .map(|j| {
                        let kr = &k[((sp.k_start + j) * nkv + kvh) * hd..][..hd];
                        qr.iter().zip(kr).map(|(a, b)| a * b).sum::<f32>() * scale
                    })
                    .collect();
                let mx = scores.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = scores.iter().map(|s| (s - mx).exp()).collect();
                let sum: f32 = e.iter().sum();
                // SAFETY: span rows are disjoint.
                let o = unsafe { std::slice::from_raw_parts_mut(p.0.add(((sp.q_start + i) * nh + h) * hd), hd) };
                for (j, w) in e.iter().enumerate() {
                    let vr = &v[((sp.k_start + j) * nkv + kvh) * hd..][..hd];
                    for (o, x) in o.iter_mut().zip(vr) {
                        *o += w / sum * x;
                    }
                }
            }
        }
    });
    out
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Span;
    use std::arch::x86_64::*;

    /// Query rows per attention unit.
    pub const BQ: usize = 6;
    /// Keys per block (4 vectors).
    pub const BK: usize = 64;
    pub const MAX_HD: usize = 256;

    pub struct Geometry {
        pub nh: usize,
        pub nkv: usize,
        pub hd: usize,
        /// Row length of the transposed keys.
        pub ld: usize,
        /// Keys (rows of the values per head).
        pub tk: usize,
    }

    /// e^x, |relative error| about 2e-7; e^x = 0 for x < -104 (and for -inf).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp(x: __m512) -> __m512 {
        let x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.5)), _mm512_set1_ps(-104.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm512_set1_ps(1.0 / 5040.0);
        for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn silu_mul(g: &mut [f32], u: &[f32]) {
        let n = g.len() / 16 * 16;
        let one = _mm512_set1_ps(1.0);
        for i in (0..n).step_by(16) {
            let x = _mm512_loadu_ps(g.as_ptr().add(i));
            let y = _mm512_loadu_ps(u.as_ptr().add(i));
            let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), x));
            let s = _mm512_div_ps(_mm512_mul_ps(x, y), _mm512_add_ps(one, e));
            _mm512_storeu_ps(g.as_mut_ptr().add(i), s);
        }
        for i in n..g.len() {
            g[i] = g[i] / (1.0 + (-g[i]).exp()) * u[i];
        }
    }

    /// Query rows `i0..i0+BQ` (clipped to the span) of head `h` in span `sp`; `kt` and `vt`
    /// are the keys and values per head as `attention` lays them out.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn attention_unit(
        q: &[f32],
        kt: &[f32],
        vt: &[f32],
        g: &Geometry,
        sp: &Span,
        h: usize,
        i0: usize,
        scale: f32,
        out: *mut f32,
    ) {
        let (nh, nkv, hd, ld) = (g.nh, g.nkv, g.hd, g.ld);
        let kvh = h / (nh / nkv);
        let rows = (sp.q_len - i0).min(BQ);
        // Row r of the unit; rows past the span repeat the last real one (results dropped).
        let row = |r: usize| i0 + r.min(rows - 1);
        let lim = |r: usize| sp.k_len - sp.q_len + row(r); // last visible key, inclusive
        let lim_max = lim(BQ - 1);
        // The unit's query rows, copied together (in `q` they are 16 KiB apart on the 4B model).
        let mut qb = [0f32; MAX_HD * BQ];
        for r in 0..BQ {
            let src = &q[((sp.q_start + row(r)) * nh + h) * hd..][..hd];
            qb[r * MAX_HD..][..hd].copy_from_slice(src);
        }
        let qp: [*const f32; BQ] = std::array::from_fn(|r| qb.as_ptr().add(r * MAX_HD));
        let ktp = kt.as_ptr().add(kvh * hd * ld + sp.k_start);
        let vstride = hd;
        let vp = vt.as_ptr().add((kvh * g.tk + sp.k_start) * hd);
        let dv = hd / 16;

        let mut o = [0f32; MAX_HD * BQ];
        let mut m = [f32::NEG_INFINITY; BQ];
        let mut l = [0f32; BQ];
        let mut p = [0f32; BK * BQ];
        let op0 = o.as_mut_ptr();
        let pp0 = p.as_mut_ptr();
        let scale_v = _mm512_set1_ps(scale);
        let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

        let mut kb = 0;
        while kb <= lim_max {
            let nk = (lim_max + 1 - kb).min(BK);
            // S = Q K^T for BQ rows x BK keys.
            let mut acc = [[_mm512_setzero_ps(); 4]; BQ];
            for d in 0..hd {
                let kr = ktp.add(d * ld + kb);
                let kv = [
                    _mm512_loadu_ps(kr),
                    _mm512_loadu_ps(kr.add(16)),
                    _mm512_loadu_ps(kr.add(32)),
                    _mm512_loadu_ps(kr.add(48)),
                ];
                for r in 0..BQ {
                    let qv = _mm512_set1_ps(*qp[r].add(d));
                    for c in 0..4 {
                        acc[r][c] = _mm512_fmadd_ps(qv, kv[c], acc[r][c]);
                    }
                }
            }
            // Online softmax.
            for r in 0..BQ {
                let visible = (lim(r) + 1).saturating_sub(kb) as i32; // keys kb..kb+visible
                let mut s = [_mm512_setzero_ps(); 4];
                let mut bm = _mm512_set1_ps(f32::NEG_INFINITY);
                for c in 0..4 {
                    let idx = _mm512_add_epi32(lane, _mm512_set1_epi32(16 * c as i32));
                    let mask = _mm512_cmplt_epi32_mask(idx, _mm512_set1_epi32(visible));
                    s[c] = _mm512_mask_blend_ps(
                        mask,
                        _mm512_set1_ps(f32::NEG_INFINITY),
                        _mm512_mul_ps(acc[r][c], scale_v),
                    );
                    bm = _mm512_max_ps(bm, s[c]);
                }
                let m_new = m[r].max(_mm512_reduce_max_ps(bm));
                let alpha = if m[r] == f32::NEG_INFINITY { 0.0 } else { (m[r] - m_new).exp() };
                let mv = _mm512_set1_ps(m_new);
                let mut sum = _mm512_setzero_ps();
                for (c, s) in s.iter().enumerate() {
                    let e = exp(_mm512_sub_ps(*s, mv));
                    sum = _mm512_add_ps(sum, e);
                    _mm512_storeu_ps(pp0.add(r * BK + 16 * c), e);
                }
                l[r] = l[r] * alpha + _mm512_reduce_add_ps(sum);
                m[r] = m_new;
                if alpha != 1.0 {
                    let av = _mm512_set1_ps(alpha);
                    for x in 0..dv {
                        let op = op0.add(r * MAX_HD + 16 * x);
                        _mm512_storeu_ps(op, _mm512_mul_ps(_mm512_loadu_ps(op), av));
                    }
                }
            }
            // O += P V, four vectors (64 dimensions) at a time.
            for x0 in (0..dv).step_by(4) {
                let mut acc = [[_mm512_setzero_ps(); 4]; BQ];
                for r in 0..BQ {
                    let op = op0.add(r * MAX_HD + 16 * x0);
                    for x in 0..4 {
                        acc[r][x] = _mm512_loadu_ps(op.add(16 * x));
                    }
                }
                for j in 0..nk {
                    let vr = vp.add((kb + j) * vstride + 16 * x0);
                    let vv = [
                        _mm512_loadu_ps(vr),
                        _mm512_loadu_ps(vr.add(16)),
                        _mm512_loadu_ps(vr.add(32)),
                        _mm512_loadu_ps(vr.add(48)),
                    ];
                    for r in 0..BQ {
                        let pv = _mm512_set1_ps(*pp0.add(r * BK + j));
                        for x in 0..4 {
                            acc[r][x] = _mm512_fmadd_ps(pv, vv[x], acc[r][x]);
                        }
                    }
                }
                for r in 0..BQ {
                    let op = op0.add(r * MAX_HD + 16 * x0);
                    for x in 0..4 {
                        _mm512_storeu_ps(op.add(16 * x), acc[r][x]);
                    }
                }
            }
            kb += BK;
        }
        for r in 0..rows {
            let inv = _mm512_set1_ps(1.0 / l[r]);
            let dst = out.add(((sp.q_start + i0 + r) * nh + h) * hd);
            for x in 0..dv {
                _mm512_storeu_ps(dst.add(16 * x), _mm512_mul_ps(_mm512_loadu_ps(op0.add(r * MAX_HD + 16 * x)), inv));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn silu_matches_scalar() {
        let g = lcg(1, 1000).iter().map(|x| x * 30.0).collect::<Vec<_>>();
        let u = lcg(2, 1000);
        let mut got = g.clone();
        silu_mul(&mut got, &u);
        for i in 0..g.len() {
            let want = (g[i] as f64 / (1.0 + (-g[i] as f64).exp()) * u[i] as f64) as f32;
            assert!((got[i] - want).abs() <= 1e-6 * (1.0 + want.abs()), "{i}: {} vs {want}", got[i]);
        }
    }

    /// Attention against an f64 reference: several sequences, GQA, full and last-token queries.
    #[test]
    fn attention_matches_reference() {
        let (nh, nkv, hd) = (4, 2, 32);
        let lens = [1usize, 5, 70, 130];
        for last_only in [false, true] {
            let tk: usize = lens.iter().sum();
            let mut spans = Vec::new();
            let (mut qs, mut ks) = (0, 0);
            for &n in &lens {
                let ql = if last_only { 1 } else { n };
                spans.push(Span { q_start: qs, q_len: ql, k_start: ks, k_len: n });
                qs += ql;
                ks += n;
            }
            let tq = qs;
            let q = lcg(3, tq * nh * hd).iter().map(|x| x * 3.0).collect::<Vec<_>>();
            let k = lcg(4, tk * nkv * hd);
            let v = lcg(5, tk * nkv * hd);
            let scale = 1.0 / (hd as f32).sqrt();
            let got = attention(&q, &k, &v, nh, nkv, hd, &spans, scale);
            for sp in &spans {
                for i in 0..sp.q_len {
                    let lim = sp.k_len - sp.q_len + i;
                    for h in 0..nh {
                        let kvh = h / (nh / nkv);
                        let qr = &q[((sp.q_start + i) * nh + h) * hd..][..hd];
                        let s: Vec<f64> = (0..=lim)
                            .map(|j| {
                                let kr = &k[((sp.k_start + j) * nkv + kvh) * hd..][..hd];
                                qr.iter().zip(kr).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scale as f64
                            })
                            .collect();
                        let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
                        let z: f64 = e.iter().sum();
                        for d in 0..hd {
                            let want: f64 = e
                                .iter()
                                .enumerate()
                                .map(|(j, w)| w / z * v[((sp.k_start + j) * nkv + kvh) * hd + d] as f64)
                                .sum();
                            let o = got[((sp.q_start + i) * nh + h) * hd + d] as f64;
                            assert!((o - want).abs() < 1e-5, "last_only={last_only} {i} {h} {d}: {o} vs {want}");
                        }
                    }
                }
            }
        }
    }

    /// `cargo test --release -p qwen3-embed-engine --lib attention_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn attention_speed() {
        let (nh, nkv, hd) = (32, 8, 128);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for n in [64usize, 512, 2048] {
            let spans = [Span { q_start: 0, q_len: n, k_start: 0, k_len: n }];
            let q = lcg(3, n * nh * hd);
            let k = lcg(4, n * nkv * hd);
            let v = lcg(5, n * nkv * hd);
            let flops = 4.0 * (n * (n + 1) / 2 * nh * hd) as f64;
            let reps = (2e10 / flops).clamp(1.0, 100.0) as usize;
            let secs = pool.install(|| {
                attention(&q, &k, &v, nh, nkv, hd, &spans, 0.1);
                let t = crate::kernels::process_cpu_seconds();
                for _ in 0..reps {
                    std::hint::black_box(attention(&q, &k, &v, nh, nkv, hd, &spans, 0.1));
                }
                (crate::kernels::process_cpu_seconds() - t) / 2.0 / reps as f64
            });
            println!("attention n={n}: {:.1} GFLOP/s ({:.2} ms)", flops / secs / 1e9, secs * 1e3);
        }
    }
}
