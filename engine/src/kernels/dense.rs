//! GEMM for dense weights (F16 GGUF, BF16/F16 safetensors, and F32 ones).
//!
//! Weights `[n, k]` are repacked once, keeping their type and value, into tiles of 16 output
//! rows so that one 512-bit load holds the same `k` (or `k` pair) for 16 rows:
//! * BF16: `[n/16][k/2][16][2]`, multiplied against activations rounded to bf16 (round to
//!   nearest even), accumulated in f32 (`vdpbf16ps` where the CPU has it) — what PyTorch's
//!   bf16 matmul computes.
//! * F16: `[n/16][k][16]`, widened exactly to f32 (`vcvtph2ps`) and multiplied with f32 FMA
//!   against the f32 activations (no rounding of the activations at all).
//! * F32: `[n/16][k][16]`, as F16 without the widening.

use half::bf16;
use rayon::prelude::*;

use super::{Kernels, SendPtr};
use crate::buf::{Buf, Region};

pub(in crate::kernels) const NR: usize = 16;
/// Activation rows per micro-kernel call.
pub(in crate::kernels) const MR: usize = 6;
/// Tiles (of 16 columns) per micro-kernel call.
pub(in crate::kernels) const NV: usize = 4;

/// The weight's type; the value indexes `Kernels::dense_unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseKind {
    F16 = 0,
    Bf16 = 1,
    F32 = 2,
}

pub fn supports(kind: DenseKind, n: usize, k: usize) -> bool {
    n > 0 && n.is_multiple_of(NR) && k > 0 && (kind != DenseKind::Bf16 || k.is_multiple_of(2))
}

/// A `[n, k]` weight in tile order.
pub struct PackedDense {
    pub kind: DenseKind,
    pub n: usize,
    pub k: usize,
    /// F16/BF16 bit patterns.
    pub(in crate::kernels) data: Buf<u16>,
    /// F32 values.
    pub(in crate::kernels) data32: Buf<f32>,
}

/// Position of weight `(r, kk)` of a tile, for 16-bit kinds.
fn tile_index(kind: DenseKind, r: usize, kk: usize) -> usize {
    match kind {
        DenseKind::Bf16 => (kk / 2) * NR * 2 + r * 2 + kk % 2,
        _ => kk * NR + r,
    }
}

impl PackedDense {
    /// The bytes the packed weight holds (owned, or mapped from the packed-weight cache).
    pub fn bytes(&self) -> u64 {
        (self.data.as_bytes().len() + self.data32.as_bytes().len()) as u64
    }

    /// `bits` holds the `[n, k]` row-major values' bit patterns (F16 or BF16).
    pub fn pack(kind: DenseKind, n: usize, k: usize, bits: &[u16]) -> Option<PackedDense> {
        if kind == DenseKind::F32 || !supports(kind, n, k) || bits.len() != n * k {
            return None;
        }
        let mut data = vec![0u16; n * k];
        data.par_chunks_mut(NR * k).enumerate().for_each(|(t, tile)| {
            for r in 0..NR {
                for (kk, &b) in bits[(t * NR + r) * k..][..k].iter().enumerate() {
                    tile[tile_index(kind, r, kk)] = b;
                }
            }
        });
        Some(PackedDense { kind, n, k, data: data.into(), data32: Buf::default() })
    }

    /// An F32 weight, `[n, k]` row-major.
    pub fn pack_f32(n: usize, k: usize, w: &[f32]) -> Option<PackedDense> {
        if !supports(DenseKind::F32, n, k) || w.len() != n * k {
            return None;
        }
        let mut data32 = vec![0f32; n * k];
        data32.par_chunks_mut(NR * k).enumerate().for_each(|(t, tile)| {
            for r in 0..NR {
                for (kk, &v) in w[(t * NR + r) * k..][..k].iter().enumerate() {
                    tile[kk * NR + r] = v;
                }
            }
        });
        Some(PackedDense { kind: DenseKind::F32, n, k, data: Buf::default(), data32: data32.into() })
    }

    /// The stored arrays, in the order `from_parts` takes them (the packed-weight cache).
    pub fn parts(&self) -> Vec<&[u8]> {
        vec![self.data.as_bytes(), self.data32.as_bytes()]
    }

    /// A weight read back from `parts()`; `None` when a part's size does not fit.
    pub fn from_parts(kind: DenseKind, n: usize, k: usize, parts: &[Region]) -> Option<PackedDense> {
        let [data, data32] = parts else { return None };
        if !supports(kind, n, k) {
            return None;
        }
        let p = PackedDense { kind, n, k, data: data.typed()?, data32: data32.typed()? };
        let (d16, d32) = if kind == DenseKind::F32 { (0, n * k) } else { (n * k, 0) };
        (p.data.len() == d16 && p.data32.len() == d32).then_some(p)
    }

    /// Row `c` as f32 (for tests).
    #[cfg(test)]
    pub fn row(&self, c: usize) -> Vec<f32> {
        let (t, r) = (c / NR, c % NR);
        let tile = t * NR * self.k;
        (0..self.k)
            .map(|kk| {
                let i = tile + tile_index(self.kind, r, kk);
                match self.kind {
                    DenseKind::F16 => half::f16::from_bits(self.data[i]).to_f32(),
                    DenseKind::Bf16 => bf16::from_bits(self.data[i]).to_f32(),
                    DenseKind::F32 => self.data32[i],
                }
            })
            .collect()
    }

    /// `x [m, k]` f32 row-major times the weight transposed: `[m, n]` f32.
    pub fn matmul(&self, kn: &Kernels, x: &[f32], m: usize) -> Vec<f32> {
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
        let rb = if m <= 48 { m.max(1) } else { 48 };
        let nrb = m.div_ceil(rb);
        let out_ptr = SendPtr(out.as_mut_ptr());
        let unit = kn.dense_unit[self.kind as usize];
        (0..blocks * nrb).into_par_iter().for_each(|u| {
            let (b, rbi) = (u / nrb, u % nrb);
            let t0 = b * NV;
            let r0 = rbi * rb;
            let r1 = (r0 + rb).min(m);
            let p = out_ptr;
            // SAFETY: units write disjoint blocks of the `[m, n]` output; `kn` runs on this CPU.
            unsafe { unit(self, x, &xb, t0..(t0 + NV).min(tiles), r0, r1, p.0) };
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::lcg;
    use half::f16;

    /// Every kernel this CPU runs against an f64 product of the packed values, on shapes with
    /// ragged row strips and tile groups.
    fn check(kind: DenseKind) {
        for (n, k, m) in [(80, 96, 13), (16, 2, 1), (48, 130, 7), (112, 64, 50)] {
            let w = lcg(1, n * k);
            let p = match kind {
                DenseKind::F16 => {
                    PackedDense::pack(kind, n, k, &w.iter().map(|&v| f16::from_f32(v).to_bits()).collect::<Vec<_>>())
                }
                DenseKind::Bf16 => {
                    PackedDense::pack(kind, n, k, &w.iter().map(|&v| bf16::from_f32(v).to_bits()).collect::<Vec<_>>())
                }
                DenseKind::F32 => PackedDense::pack_f32(n, k, &w),
            }
            .unwrap();
            let x = lcg(2, m * k);
            for kn in crate::kernels::tables() {
                let y = p.matmul(kn, &x, m);
                for c in 0..n {
                    let row = p.row(c);
                    for r in 0..m {
                        let want: f64 = (0..k)
                            .map(|kk| {
                                let xv = match kind {
                                    DenseKind::Bf16 => bf16::from_f32(x[r * k + kk]).to_f32(),
                                    _ => x[r * k + kk],
                                };
                                row[kk] as f64 * xv as f64
                            })
                            .sum();
                        let got = y[r * n + c] as f64;
                        assert!(
                            (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{} {kind:?} {n}x{k} m={m} {r},{c}: {got} vs {want}",
                            kn.name
                        );
                    }
                }
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

    #[test]
    fn f32_matches_reference() {
        check(DenseKind::F32)
    }

    /// `cargo test --release -p qwen3-embed-engine --lib dense_speed -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn dense_speed() {
        let (n, k) = (9728, 2560);
        let bits: Vec<u16> = lcg(3, n * k).iter().map(|&v| f16::from_f32(v).to_bits()).collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let kn = crate::kernels::table();
        for kind in [DenseKind::F16, DenseKind::Bf16] {
            let p = PackedDense::pack(kind, n, k, &bits).unwrap();
            for m in [16usize, 64, 256, 512] {
                let x = lcg(4, m * k);
                let flops = 2.0 * (m * n * k) as f64;
                let reps = (2e11 / flops).clamp(2.0, 20.0) as usize;
                let secs = pool.install(|| {
                    p.matmul(kn, &x, m);
                    let t = crate::kernels::process_cpu_seconds();
                    for _ in 0..reps {
                        std::hint::black_box(p.matmul(kn, &x, m));
                    }
                    (crate::kernels::process_cpu_seconds() - t) / 2.0 / reps as f64
                });
                println!("{kind:?} m={m:4}: {:6.1} GFLOP/s", flops / secs / 1e9);
            }
        }
    }
}
