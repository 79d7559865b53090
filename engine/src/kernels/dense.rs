//! GEMM for half-precision weights (F16 GGUF, BF16/F16 safetensors), AVX-512.
//!
//! Weights `[n, k]` are repacked once, keeping their type and value, into tiles of 16 output
//! rows so that one 512-bit load holds the same `k` (or `k` pair) for 16 rows:
//! * BF16: `[n/16][k/2][16][2]`, multiplied with `vdpbf16ps` against activations rounded to
//!   bf16 (round to nearest even), accumulated in f32 — what PyTorch's bf16 matmul computes.
//! * F16: `[n/16][k][16]`, widened exactly to f32 (`vcvtph2ps`) and multiplied with f32 FMA
//!   against the f32 activations (no rounding of the activations at all).

use half::{bf16, f16};
use rayon::prelude::*;

const NR: usize = 16;
/// Activation rows per micro-kernel call.
const MR: usize = 6;
/// Tiles (of 16 columns) per micro-kernel call.
const NV: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseKind {
    F16,
    Bf16,
}

pub fn available(kind: DenseKind) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static F16: OnceLock<bool> = OnceLock::new();
        static BF16: OnceLock<bool> = OnceLock::new();
        let off = || std::env::var_os("QWEN3_EMBED_NO_DENSE").is_some();
        match kind {
            DenseKind::F16 => *F16.get_or_init(|| {
                std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("f16c") && !off()
            }),
            DenseKind::Bf16 => *BF16.get_or_init(|| {
                std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bf16")
                    && !off()
            }),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = kind;
        false
    }
}

pub fn supports(kind: DenseKind, n: usize, k: usize) -> bool {
    n > 0 && n.is_multiple_of(NR) && k > 0 && (kind == DenseKind::F16 || k.is_multiple_of(2))
}

/// A `[n, k]` half-precision weight in tile order (16-bit values).
pub struct PackedDense {
    pub kind: DenseKind,
    pub n: usize,
    pub k: usize,
    data: Vec<u16>,
}

impl PackedDense {
    /// `bits` holds the `[n, k]` row-major values' bit patterns.
    pub fn pack(kind: DenseKind, n: usize, k: usize, bits: &[u16]) -> Option<PackedDense> {
        if !supports(kind, n, k) || bits.len() != n * k {
            return None;
        }
        let mut data = vec![0u16; n * k];
        data.par_chunks_mut(NR * k).enumerate().for_each(|(t, tile)| {
            for r in 0..NR {
                let row = &bits[(t * NR + r) * k..][..k];
                match kind {
                    DenseKind::F16 => {
                        for (kk, &b) in row.iter().enumerate() {
                            tile[kk * NR + r] = b;
                        }
                    }
                    DenseKind::Bf16 => {
                        for (kk, &b) in row.iter().enumerate() {
                            tile[(kk / 2) * NR * 2 + r * 2 + kk % 2] = b;
                        }
                    }
                }
            }
        });
        Some(PackedDense { kind, n, k, data })
    }

    pub fn bytes(&self) -> usize {
        2 * self.data.len()
    }

    /// Row `c` as f32 (for tests).
    pub fn row(&self, c: usize) -> Vec<f32> {
        let (t, r) = (c / NR, c % NR);
        let tile = &self.data[t * NR * self.k..][..NR * self.k];
        (0..self.k)
            .map(|kk| match self.kind {
                DenseKind::F16 => f16::from_bits(tile[kk * NR + r]).to_f32(),
                DenseKind::Bf16 => bf16::from_bits(tile[(kk / 2) * NR * 2 + r * 2 + kk % 2]).to_f32(),
            })
            .collect()
    }

    /// `x [m, k]` f32 row-major times the weight transposed: `[m, n]` f32.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        assert_eq!(x.len(), m * self.k);
        let k = self.k;
        // bf16 activations as u32 pairs (element 2i in the low half), rounded to nearest even.
        let xb: Vec<u32> = if self.kind == DenseKind::Bf16 {
            let mut v = vec![0u32; m * k / 2];
            v.par_chunks_mut(k / 2).zip(x.par_chunks(k)).for_each(|(d, s)| {
                for (d, p) in d.iter_mut().zip(s.chunks_exact(2)) {
                    *d = bf16::from_f32(p[0]).to_bits() as u32 | (bf16::from_f32(p[1]).to_bits() as u32) << 16;
                }
            });
            v
        } else {
            Vec::new()
        };
        let mut out: Vec<f32> = super::zeroed_vec(m * self.n);
        let tiles = self.n / NR;
        let blocks = tiles.div_ceil(NV);
        let rb = if m <= 48 { m } else { 48 };
        let nrb = m.div_ceil(rb);
        let out_ptr = SendPtr(out.as_mut_ptr());
        (0..blocks * nrb).into_par_iter().for_each(|u| {
            let (b, rbi) = (u / nrb, u % nrb);
            let t0 = b * NV;
            let nv = (tiles - t0).min(NV);
            let r0 = rbi * rb;
            let r1 = (r0 + rb).min(m);
            let p = out_ptr;
            // SAFETY: disjoint output blocks; features checked by the caller via `available`.
            unsafe { self.unit(x, &xb, t0, nv, r0, r1, p.0) };
        });
        out
    }

    #[allow(clippy::too_many_arguments)]
    unsafe fn unit(&self, x: &[f32], xb: &[u32], t0: usize, nv: usize, r0: usize, r1: usize, out: *mut f32) {
        #[cfg(target_arch = "x86_64")]
        {
            macro_rules! go {
                ($mr:literal, $nv:literal, $r:expr) => {
                    match self.kind {
                        DenseKind::F16 => avx512::f16_kernel::<$mr, $nv>(self, x, t0, $r, out),
                        DenseKind::Bf16 => avx512::bf16_kernel::<$mr, $nv>(self, xb, t0, $r, out),
                    }
                };
            }
            macro_rules! rows {
                ($nv:literal) => {{
                    let mut r = r0;
                    while r < r1 {
                        let step = (r1 - r).min(MR);
                        match step {
                            1 => go!(1, $nv, r),
                            2 => go!(2, $nv, r),
                            3 => go!(3, $nv, r),
                            4 => go!(4, $nv, r),
                            5 => go!(5, $nv, r),
                            _ => go!(6, $nv, r),
                        }
                        r += step;
                    }
                }};
            }
            match nv {
                1 => rows!(1),
                2 => rows!(2),
                3 => rows!(3),
                _ => rows!(4),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (x, xb, t0, nv, r0, r1, out);
            unreachable!()
        }
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedDense, NR};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,f16c")]
    pub(super) unsafe fn f16_kernel<const R: usize, const V: usize>(
        w: &PackedDense,
        x: &[f32],
        t0: usize,
        r0: usize,
        out: *mut f32,
    ) {
        let k = w.k;
        let wp = w.data.as_ptr();
        let xp = x.as_ptr();
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for kk in 0..k {
            let mut wv = [_mm512_setzero_ps(); V];
            for (v, wv) in wv.iter_mut().enumerate() {
                *wv = _mm512_cvtph_ps(_mm256_loadu_si256(
                    wp.add((t0 + v) * NR * k + kk * NR) as *const __m256i,
                ));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_ps(*xp.add((r0 + r) * k + kk));
                for v in 0..V {
                    acc[v] = _mm512_fmadd_ps(a, wv[v], acc[v]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add((r0 + r) * w.n + (t0 + v) * NR), *acc);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn bf16_kernel<const R: usize, const V: usize>(
        w: &PackedDense,
        xb: &[u32],
        t0: usize,
        r0: usize,
        out: *mut f32,
    ) {
        let k = w.k;
        let k2 = k / 2;
        let wp = w.data.as_ptr();
        let xp = xb.as_ptr();
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for kp in 0..k2 {
            let mut wv = [_mm512_setzero_si512(); V];
            for (v, wv) in wv.iter_mut().enumerate() {
                *wv = _mm512_loadu_si512(wp.add((t0 + v) * NR * k + kp * NR * 2) as *const _);
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_epi32(*xp.add((r0 + r) * k2 + kp) as i32);
                for v in 0..V {
                    acc[v] = _mm512_dpbf16_ps(acc[v], std::mem::transmute::<__m512i, __m512bh>(a), std::mem::transmute::<__m512i, __m512bh>(wv[v]));
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add((r0 + r) * w.n + (t0 + v) * NR), *acc);
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

    fn check(kind: DenseKind) {
        if !available(kind) {
            return;
        }
        let (n, k, m) = (80, 96, 13);
        let w = lcg(1, n * k);
        let bits: Vec<u16> = w
            .iter()
            .map(|&v| match kind {
                DenseKind::F16 => f16::from_f32(v).to_bits(),
                DenseKind::Bf16 => bf16::from_f32(v).to_bits(),
            })
            .collect();
        let p = PackedDense::pack(kind, n, k, &bits).unwrap();
        let x = lcg(2, m * k);
        let y = p.matmul(&x, m);
        for c in 0..n {
            let row = p.row(c);
            for r in 0..m {
                let want: f64 = (0..k)
                    .map(|kk| {
                        let xv = match kind {
                            DenseKind::F16 => x[r * k + kk],
                            DenseKind::Bf16 => bf16::from_f32(x[r * k + kk]).to_f32(),
                        };
                        row[kk] as f64 * xv as f64
                    })
                    .sum();
                let got = y[r * n + c] as f64;
                assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{kind:?} {r},{c}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn f16_matches_reference() {
        check(DenseKind::F16)
    }

    #[test]
    fn bf16_matches_reference() {
        check(DenseKind::Bf16)
    }

    /// `cargo test --release -p qwen3-embed-engine --lib dense_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn dense_speed() {
        let (n, k) = (9728, 2560);
        let bits: Vec<u16> = lcg(3, n * k).iter().map(|&v| f16::from_f32(v).to_bits()).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for kind in [DenseKind::F16, DenseKind::Bf16] {
            let p = PackedDense::pack(kind, n, k, &bits).unwrap();
            for m in [16usize, 64, 256, 512] {
                let x = lcg(4, m * k);
                let flops = 2.0 * (m * n * k) as f64;
                let reps = (2e11 / flops).clamp(2.0, 20.0) as usize;
                let secs = pool.install(|| {
                    p.matmul(&x, m);
                    let t = crate::kernels::process_cpu_seconds();
                    for _ in 0..reps {
                        std::hint::black_box(p.matmul(&x, m));
                    }
                    (crate::kernels::process_cpu_seconds() - t) / 2.0 / reps as f64
                });
                println!("{kind:?} m={m:4}: {:6.1} GFLOP/s", flops / secs / 1e9);
            }
        }
    }
}
