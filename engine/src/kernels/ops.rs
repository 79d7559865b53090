//! Attention and elementwise kernels in f32: the parallel drivers here, the kernels in the
//! table ([`Kernels`]).

use rayon::prelude::*;

use super::Kernels;

use super::SendPtr;

/// `gate[i] = silu(gate[i]) * up[i]` (SiLU(x) = x / (1 + e^-x)), in place, in parallel.
pub fn silu_mul(kn: &Kernels, gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    const CHUNK: usize = 1 << 14;
    gate.par_chunks_mut(CHUNK).zip(up.par_chunks(CHUNK)).for_each(|(g, u)| {
        // SAFETY: `kn` runs on this CPU; equal lengths.
        unsafe { (kn.silu_mul)(g, u) }
    });
}

/// RMSNorm of every row (rows are `w.len()` long): `w * x / sqrt(mean(x^2) + eps)`, in f32.
pub fn rms_norm(kn: &Kernels, x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out: Vec<f32> = super::zeroed_vec(x.len());
    let rows = (16384 / w.len()).max(1) * w.len();
    out.par_chunks_mut(rows).zip(x.par_chunks(rows)).for_each(|(o, x)| {
        // SAFETY: `kn` runs on this CPU; equal lengths.
        unsafe { (kn.rms_rows)(x, w, eps, o) }
    });
    out
}

/// RMSNorm in place (per-head norms: rows of `w.len()`).
pub fn rms_norm_inplace(kn: &Kernels, x: &mut [f32], w: &[f32], eps: f32) {
    let rows = (16384 / w.len()).max(1) * w.len();
    x.par_chunks_mut(rows).for_each(|x| {
        let mut tmp = vec![0f32; w.len()];
        for r in x.chunks_exact_mut(w.len()) {
            // SAFETY: `kn` runs on this CPU; equal lengths.
            unsafe { (kn.rms_rows)(r, w, eps, &mut tmp) };
            r.copy_from_slice(&tmp);
        }
    });
}

/// NeoX-style rotary embedding in place: `x` is `[rows, heads, hd]`, `cos`/`sin` are
/// `[rows, hd/2]`; the first and second halves of each head rotate together.
pub fn rope_inplace(kn: &Kernels, x: &mut [f32], heads: usize, hd: usize, cos: &[f32], sin: &[f32]) {
    let half = hd / 2;
    let width = heads * hd;
    assert_eq!(x.len() / width * half, cos.len());
    assert_eq!(cos.len(), sin.len());
    x.par_chunks_mut(width).zip(cos.par_chunks(half).zip(sin.par_chunks(half))).with_min_len(16).for_each(
        |(row, (c, s))| {
            // SAFETY: `kn` runs on this CPU; `c` and `s` are hd/2 long.
            unsafe { (kn.rope_row)(row, hd, c, s) }
        },
    );
}

/// `a += b`.
pub fn add_inplace(kn: &Kernels, a: &mut [f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    a.par_chunks_mut(1 << 14).zip(b.par_chunks(1 << 14)).for_each(|(a, b)| {
        // SAFETY: `kn` runs on this CPU; equal lengths.
        unsafe { (kn.add)(a, b) }
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

/// The operands of [`attention`], checked.
pub struct Attention<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub nh: usize,
    pub nkv: usize,
    pub hd: usize,
    pub spans: &'a [Span],
    pub scale: f32,
}

/// Causal attention within each span, grouped-query: `q [tq, nh, hd]`, `k`, `v` `[tk, nkv, hd]`
/// (row-major f32), query head `h` reads key/value head `h / (nh / nkv)`. Returns
/// `[tq, nh, hd]`. Softmax in f32 with a running maximum (one pass over the keys).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    kn: &Kernels,
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
    assert_eq!(k.len(), tk * nkv * hd);
    assert_eq!(v.len(), k.len());
    assert!(nh.is_multiple_of(nkv));
    for sp in spans {
        assert!(sp.q_len <= sp.k_len && sp.q_start + sp.q_len <= tq && sp.k_start + sp.k_len <= tk);
    }
    let mut out: Vec<f32> = super::zeroed_vec(tq * nh * hd);
    let a = Attention { q, k, v, nh, nkv, hd, spans, scale };
    // SAFETY: `kn` runs on this CPU; the operands are checked above.
    unsafe { (kn.attention)(&a, &mut out) };
    out
}

/// Keys and values per key/value head, for the SIMD attention kernels:
/// `kt[head][dim][key]` (rows `ld` long, padded so a block of `bk` keys can always be read) and
/// `vt[head][key][dim]`. In `v` one head's rows are 4 KiB apart (4B model), so a block of them
/// would share a few L1 sets.
pub(in crate::kernels) struct KvPerHead {
    pub kt: Vec<f32>,
    pub vt: Vec<f32>,
    pub ld: usize,
    pub tk: usize,
}

impl KvPerHead {
    pub fn new(a: &Attention, bk: usize) -> KvPerHead {
        let (nkv, hd) = (a.nkv, a.hd);
        let tk = a.k.len() / (nkv * hd);
        let ld = row_stride(tk + bk);
        let mut kt: Vec<f32> = super::zeroed_vec(nkv * hd * ld);
        kt.par_chunks_mut(ld).enumerate().for_each(|(row, dst)| {
            let (head, d) = (row / hd, row % hd);
            for (t, x) in dst[..tk].iter_mut().enumerate() {
                *x = a.k[(t * nkv + head) * hd + d];
            }
        });
        let mut vt: Vec<f32> = super::alloc_vec(nkv * tk * hd);
        // SAFETY: every value is written below before use.
        unsafe { vt.set_len(nkv * tk * hd) };
        vt.par_chunks_mut((tk * hd).max(1)).enumerate().for_each(|(head, dst)| {
            for (t, row) in dst.chunks_exact_mut(hd).enumerate() {
                row.copy_from_slice(&a.v[(t * nkv + head) * hd..][..hd]);
            }
        });
        KvPerHead { kt, vt, ld, tk }
    }
}

impl Drop for KvPerHead {
    fn drop(&mut self) {
        super::recycle(std::mem::take(&mut self.kt));
        super::recycle(std::mem::take(&mut self.vt));
    }
}

/// A row length of at least `n` 4-byte values for key layouts read one block of keys from every
/// row in turn: an odd number of 64-byte lines, so that consecutive rows start in different L1
/// sets. (Rows a multiple of 4 KiB apart, as 1,024 keys would make them, all fall into the same
/// few sets and evict each other.)
pub(in crate::kernels) fn row_stride(n: usize) -> usize {
    let lines = n.div_ceil(16);
    (lines | 1) * 16
}

/// Sequences of lengths `lens` packed one after another, each with all its queries or only its
/// last one: the spans, the query rows and the key rows in all.
#[cfg(test)]
pub(crate) fn packed_spans(lens: &[usize], last_only: bool) -> (Vec<Span>, usize, usize) {
    let (mut spans, mut qs, mut ks) = (Vec::new(), 0, 0);
    for &n in lens {
        let ql = if last_only { 1 } else { n };
        spans.push(Span { q_start: qs, q_len: ql, k_start: ks, k_len: n });
        qs += ql;
        ks += n;
    }
    (spans, qs, ks)
}

/// Runs `f(span, first head, first query row, out)` in parallel for every block of `bq` query
/// rows of every group of `heads` consecutive heads of every span; each call writes only its own
/// rows of its heads.
pub(in crate::kernels) fn par_units(
    a: &Attention,
    bq: usize,
    heads: usize,
    out: &mut [f32],
    f: impl Fn(&Span, usize, usize, *mut f32) + Sync,
) {
    let mut units = Vec::new();
    for (s, span) in a.spans.iter().enumerate() {
        for h in (0..a.nh).step_by(heads) {
            for i0 in (0..span.q_len).step_by(bq) {
                units.push((s, h, i0));
            }
        }
    }
    let out_ptr = SendPtr(out.as_mut_ptr());
    units.into_par_iter().for_each(|(s, h, i0)| {
        let p = out_ptr;
        f(&a.spans[s], h, i0, p.0)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::lcg;

    use crate::kernels::{generic, Kernels};

    #[test]
    fn silu_matches_scalar() {
        let g = lcg(1, 1000).iter().map(|x| x * 30.0).collect::<Vec<_>>();
        let u = lcg(2, 1000);
        for kn in crate::kernels::tables() {
            let mut got = g.clone();
            silu_mul(kn, &mut got, &u);
            for i in 0..g.len() {
                let want = (g[i] as f64 / (1.0 + (-g[i] as f64).exp()) * u[i] as f64) as f32;
                assert!((got[i] - want).abs() <= 1e-6 * (1.0 + want.abs()), "{} {i}: {} vs {want}", kn.name, got[i]);
            }
        }
    }

    /// RMSNorm, RoPE and the residual add of every instruction set equal the generic ones
    /// (the SIMD versions are the same code vectorized, without contraction to FMA).
    #[test]
    fn elementwise_match_generic() {
        for (rows, width, hd) in [(1, 64, 64), (7, 256, 64), (33, 96, 32), (3, 1000, 8)] {
            let x = lcg(6, rows * width);
            let w = lcg(7, width);
            let cos = lcg(8, rows * hd / 2);
            let sin = lcg(9, rows * hd / 2);
            let g = &generic::KERNELS;
            let want_norm = rms_norm(g, &x, &w, 1e-6);
            let mut want_rope = x.clone();
            rope_inplace(g, &mut want_rope, width / hd, hd, &cos, &sin);
            let mut want_add = x.clone();
            add_inplace(g, &mut want_add, &w.repeat(rows));
            for kn in crate::kernels::tables() {
                assert_eq!(rms_norm(kn, &x, &w, 1e-6), want_norm, "{} rms_norm {rows}x{width}", kn.name);
                let mut y = x.clone();
                rms_norm_inplace(kn, &mut y, &w, 1e-6);
                assert_eq!(y, want_norm, "{} rms_norm_inplace {rows}x{width}", kn.name);
                let mut y = x.clone();
                rope_inplace(kn, &mut y, width / hd, hd, &cos, &sin);
                assert_eq!(y, want_rope, "{} rope {rows}x{width}/{hd}", kn.name);
                let mut y = x.clone();
                add_inplace(kn, &mut y, &w.repeat(rows));
                assert_eq!(y, want_add, "{} add {rows}x{width}", kn.name);
            }
        }
    }

    /// The largest |difference| from the exact result a table's attention may make here, with
    /// values of at most 1: f32 products, or 16-bit fixed-point ones (each operand within 2^-13
    /// of its row's, key's or dimension's largest magnitude, so scores of a few units move by
    /// some 1e-4 and so do the weights).
    fn tolerance(kn: &Kernels) -> f64 {
        if kn.attention_int16 {
            1e-3
        } else {
            1e-5
        }
    }

    /// Attention against an f64 reference: several sequences, GQA, full and last-token queries.
    #[test]
    fn attention_matches_reference() {
        let lens = [1usize, 5, 70, 130];
        let cases = crate::kernels::tables().into_iter().flat_map(|kn| {
            [(4, 2, 32), (4, 2, 64), (2, 1, 128), (6, 3, 8)]
                .into_iter()
                .flat_map(move |g| [(kn, g, false), (kn, g, true)])
        });
        for (kn, (nh, nkv, hd), last_only) in cases {
            let (spans, tq, tk) = packed_spans(&lens, last_only);
            let q = lcg(3, tq * nh * hd).iter().map(|x| x * 3.0).collect::<Vec<_>>();
            let k = lcg(4, tk * nkv * hd);
            let v = lcg(5, tk * nkv * hd);
            let scale = 1.0 / (hd as f32).sqrt();
            let got = attention(kn, &q, &k, &v, nh, nkv, hd, &spans, scale);
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
                            assert!(
                                (o - want).abs() < tolerance(kn),
                                "{} {nh}/{nkv}x{hd} last_only={last_only} {i} {h} {d}: {o} vs {want}",
                                kn.name
                            );
                        }
                    }
                }
            }
        }
    }

    /// Spans longer than a kernel's blocks of queries and keys, packed, with GQA: every table
    /// against the generic one.
    #[test]
    fn attention_long_spans_match_generic() {
        let (nh, nkv, hd) = (4, 1, 32);
        for last_only in [false, true] {
            let (spans, qs, ks) = packed_spans(&[300, 33, 700], last_only);
            let q = lcg(6, qs * nh * hd).iter().map(|x| x * 3.0).collect::<Vec<_>>();
            let k = lcg(7, ks * nkv * hd);
            let v = lcg(8, ks * nkv * hd);
            let want = attention(&generic::KERNELS, &q, &k, &v, nh, nkv, hd, &spans, 0.2);
            for kn in crate::kernels::tables() {
                let got = attention(kn, &q, &k, &v, nh, nkv, hd, &spans, 0.2);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() < tolerance(kn) as f32,
                        "{} last_only={last_only} [{i}]: {g} vs {w}",
                        kn.name
                    );
                }
            }
        }
    }

    /// The model's shape (GQA 4:1, 128 dimensions), one long sequence with queries and keys the
    /// size Qwen3's normed heads give: each table's output rows against the generic kernel's
    /// (f32) by cosine, the measure the embeddings are held to.
    #[test]
    fn attention_long_sequence_keeps_direction() {
        let (nh, nkv, hd, n) = (8, 2, 128, 1100);
        let spans = [Span { q_start: 0, q_len: n, k_start: 0, k_len: n }];
        let q = lcg(9, n * nh * hd).iter().map(|x| x * 4.0).collect::<Vec<_>>();
        let k = lcg(10, n * nkv * hd).iter().map(|x| x * 4.0).collect::<Vec<_>>();
        let v = lcg(11, n * nkv * hd);
        let scale = 1.0 / (hd as f32).sqrt();
        let want = attention(&generic::KERNELS, &q, &k, &v, nh, nkv, hd, &spans, scale);
        for kn in crate::kernels::tables() {
            let got = attention(kn, &q, &k, &v, nh, nkv, hd, &spans, scale);
            let mut worst = 1.0f64;
            for (g, w) in got.chunks_exact(hd).zip(want.chunks_exact(hd)) {
                let dot: f64 = g.iter().zip(w).map(|(a, b)| *a as f64 * *b as f64).sum();
                let nn = |x: &[f32]| x.iter().map(|a| *a as f64 * *a as f64).sum::<f64>().sqrt();
                worst = worst.min(dot / (nn(g) * nn(w)));
            }
            let min = if kn.attention_int16 { 0.99999 } else { 0.999_999_9 };
            eprintln!("{}: worst row cosine {worst:.9}", kn.name);
            assert!(worst >= min, "{}: row cosine {worst} < {min}", kn.name);
        }
    }

    /// `cargo test --release -p qwen3-embed-engine --lib attention_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn attention_speed() {
        let (nh, nkv, hd) = (32, 8, 128);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let kn = crate::kernels::table();
        println!("instruction set: {:?}", kn.isa);
        for n in [64usize, 512, 960, 2048, 8192] {
            let spans = [Span { q_start: 0, q_len: n, k_start: 0, k_len: n }];
            let q = lcg(3, n * nh * hd);
            let k = lcg(4, n * nkv * hd);
            let v = lcg(5, n * nkv * hd);
            let flops = 4.0 * (n * (n + 1) / 2 * nh * hd) as f64;
            let reps = (2e10 / flops).clamp(1.0, 100.0) as usize;
            let secs = pool.install(|| {
                attention(kn, &q, &k, &v, nh, nkv, hd, &spans, 0.1);
                let t = crate::kernels::process_cpu_seconds();
                for _ in 0..reps {
                    std::hint::black_box(attention(kn, &q, &k, &v, nh, nkv, hd, &spans, 0.1));
                }
                (crate::kernels::process_cpu_seconds() - t) / 2.0 / reps as f64
            });
            println!("attention n={n}: {:.1} GFLOP/s ({:.2} ms)", flops / secs / 1e9, secs * 1e3);
        }
    }
}
