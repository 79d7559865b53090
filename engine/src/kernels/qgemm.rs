//! Quantized GEMM for GGUF weights (Q4_K, Q5_K, Q6_K, Q8_0) with AVX-512 VNNI.
//!
//! # Weight layout
//! At load time every quantized weight `[n, k]` is unpacked once into a layout of our own:
//! each weight is `scale[c][g] * q - min[c][g]` with `q` an unsigned byte and `(scale, min)`
//! one f32 pair per output row `c` and per group `g` of `G` consecutive `k` (`G` = 32 for
//! Q4_K, Q5_K and Q8_0, 16 for Q6_K). That is exactly the dequantized value GGML defines:
//!
//! | type | q | scale | min |
//! |---|---|---|---|
//! | Q4_K | 4-bit quant (0..15) | `d * sc` | `dmin * m` |
//! | Q5_K | 5-bit quant (0..31) | `d * sc` | `dmin * m` |
//! | Q6_K | 6-bit quant (0..63) | `d * sc` (sc signed) | `32 * d * sc` |
//! | Q8_0 | quant + 128 (0..255) | `d` | `128 * d` |
//!
//! Q6_K and Q8_0 are stored signed instead (`q - 32`, `q`; no min) and multiplied with the
//! activations shifted to unsigned bytes; the shift is undone exactly by starting each
//! group's integer sum at `-128 * sum(w)`, so they need no per-group min term.
//!
//! The bytes are stored tile by tile: 16 output rows (one 512-bit register of f32 results) ×
//! one group, as `G/4` runs of `[16 rows][4 k]`, which is the operand order of `vpdpbusd`.
//!
//! # Product
//! Activations are quantized per row and per 256 values to i8 with one f32 scale (`ad`), and
//! the sum of the i8 values of every group is kept (`asum`). Then
//! `y[r][c] = sum_blocks ad * sum_groups (scale * sum_k(q * a) - min * asum)`,
//! where the inner sum is exact integer arithmetic (`vpdpbusd`). This is the same activation
//! quantization (8 bits per 256 values) that GGML's own k-quant dot products use.

use rayon::prelude::*;

/// Output rows per tile (one zmm of f32).
pub const NR: usize = 16;
/// Activation quantization block (values per scale).
pub const QK: usize = 256;
/// Activation rows per kernel call: 6 for the signed kinds, 4 for the unsigned ones, whose
/// per-group min term needs more registers.
const MR_SIGNED: usize = 6;
const MR_UNSIGNED: usize = 4;
/// Activation rows per work item.
const ROW_BLOCK: usize = 72;
/// Bytes of weights one work item keeps in L2 while its rows pass over them: the item covers
/// as many 32-row tile pairs as fit, so each strip of activation rows is read from L1 for all
/// of them instead of once per tile pair (gate/up of the 4B model, `k` = 2560: 4 pairs).
const L2_WEIGHT_BYTES: usize = 384 << 10;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QKind {
    Q4K,
    Q5K,
    Q6K,
    Q8_0,
}

impl QKind {
    /// Values and bytes of one GGML block.
    pub fn block(self) -> (usize, usize) {
        match self {
            QKind::Q4K => (256, 144),
            QKind::Q5K => (256, 176),
            QKind::Q6K => (256, 210),
            QKind::Q8_0 => (32, 34),
        }
    }

    /// Values per (scale, min) group.
    pub fn group(self) -> usize {
        match self {
            QKind::Q6K => 16,
            _ => 32,
        }
    }
}

/// True when this CPU runs the kernels (AVX-512 F/BW + VNNI).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
                && std::env::var_os("QWEN3_EMBED_NO_QGEMM").is_none()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether a `[n, k]` weight of `kind` can be packed.
pub fn supports(kind: QKind, n: usize, k: usize) -> bool {
    n > 0 && n.is_multiple_of(NR) && k > 0 && k.is_multiple_of(QK) && k.is_multiple_of(kind.block().0)
}

/// A weight `[n, k]` in the layout described in the module docs.
pub struct PackedQ {
    pub kind: QKind,
    pub n: usize,
    pub k: usize,
    group: usize,
    /// `[n/16][k/G][G/4][16][4]`
    qs: Vec<u8>,
    /// `[n/16][k/G][16]`
    scale: Vec<f32>,
    /// `[n/16][k/G][16]` (unsigned kinds only)
    min: Vec<f32>,
    /// Signed kinds (Q6_K, Q8_0): `qs` holds the signed quants `w` (Q6_K: q - 32, Q8_0: q) as
    /// i8, multiplied with activations shifted to u8 (`a + 128`); `corr` is `-128 * sum(w)` per
    /// `[n/16][k/G][16]`, the integer start value that removes the shift exactly.
    signed: bool,
    corr: Vec<i32>,
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// GGML's 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K block.
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Unpacks one GGML block into `q` (block values), `scale` and `min` (one per group).
fn unpack_block(kind: QKind, b: &[u8], q: &mut [u8], scale: &mut [f32], min: &mut [f32]) {
    match kind {
        QKind::Q4K | QKind::Q5K => {
            let d = f16_at(b, 0);
            let dmin = f16_at(b, 2);
            let sc = &b[4..16];
            let (qh, qs) = if kind == QKind::Q5K { (&b[16..48], &b[48..176]) } else { (&b[0..0], &b[16..144]) };
            for c in 0..4 {
                for l in 0..32 {
                    let byte = qs[c * 32 + l];
                    let (mut lo, mut hi) = (byte & 0xF, byte >> 4);
                    if kind == QKind::Q5K {
                        lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                        hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
                    }
                    q[c * 64 + l] = lo;
                    q[c * 64 + 32 + l] = hi;
                }
            }
            for j in 0..8 {
                let (s, m) = scale_min_k4(j, sc);
                scale[j] = d * s as f32;
                min[j] = dmin * m as f32;
            }
        }
        QKind::Q6K => {
            let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
            let d = f16_at(b, 208);
            for h in 0..2 {
                let (ql, qh) = (&ql[h * 64..], &qh[h * 32..]);
                let o = h * 128;
                for l in 0..32 {
                    q[o + l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
                    q[o + l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
                    q[o + l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                    q[o + l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                }
            }
            for j in 0..16 {
                let s = d * (sc[j] as i8) as f32;
                scale[j] = s;
                min[j] = 32.0 * s;
            }
        }
        QKind::Q8_0 => {
            let d = f16_at(b, 0);
            for l in 0..32 {
                q[l] = (b[2 + l] as i8 as i16 + 128) as u8;
            }
            scale[0] = d;
            min[0] = 128.0 * d;
        }
    }
}

impl PackedQ {
    /// Packs GGML row-major data of a `[n, k]` tensor (`n` rows of `k` values).
    pub fn pack(kind: QKind, n: usize, k: usize, data: &[u8]) -> Option<PackedQ> {
        let (bv, bb) = kind.block();
        if !supports(kind, n, k) || data.len() != n * (k / bv) * bb {
            return None;
        }
        let g = kind.group();
        let ng = k / g;
        let mut qs = vec![0u8; n * k];
        let mut scale = vec![0f32; n * ng];
        let mut min = vec![0f32; n * ng];
        let row_bytes = (k / bv) * bb;
        qs.par_chunks_mut(NR * k)
            .zip(scale.par_chunks_mut(NR * ng).zip(min.par_chunks_mut(NR * ng)))
            .enumerate()
            .for_each(|(t, (tq, (ts, tm)))| {
                let mut q = vec![0u8; k];
                let mut s = vec![0f32; ng];
                let mut m = vec![0f32; ng];
                for r in 0..NR {
                    let row = &data[(t * NR + r) * row_bytes..][..row_bytes];
                    let gpb = bv / g;
                    for (bi, b) in row.chunks_exact(bb).enumerate() {
                        unpack_block(
                            kind,
                            b,
                            &mut q[bi * bv..][..bv],
                            &mut s[bi * gpb..][..gpb],
                            &mut m[bi * gpb..][..gpb],
                        );
                    }
                    for gi in 0..ng {
                        ts[gi * NR + r] = s[gi];
                        tm[gi * NR + r] = m[gi];
                        for k4 in 0..g / 4 {
                            let dst = &mut tq[((gi * (g / 4) + k4) * NR + r) * 4..][..4];
                            dst.copy_from_slice(&q[gi * g + k4 * 4..][..4]);
                        }
                    }
                }
            });
        let (signed, offset) = match kind {
            QKind::Q6K => (true, 32i32),
            QKind::Q8_0 => (true, 128i32),
            _ => (false, 0),
        };
        let mut corr = Vec::new();
        if signed {
            corr = vec![0i32; n * ng];
            for (tg, chunk) in qs.chunks_mut(g * NR).enumerate() {
                // chunk: one tile, one group: [G/4][16][4]
                let mut sums = [0i32; NR];
                for (i, b) in chunk.iter_mut().enumerate() {
                    let w = *b as i32 - offset;
                    *b = w as i8 as u8;
                    sums[(i / 4) % NR] += w;
                }
                for r in 0..NR {
                    corr[tg * NR + r] = -128 * sums[r];
                }
            }
            min = Vec::new();
        }
        Some(PackedQ { kind, n, k, group: g, qs, scale, min, signed, corr })
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.qs.len() + 4 * (self.scale.len() + self.min.len() + self.corr.len())
    }

    /// Dequantized row `c` (for tests).
    pub fn dequantize_row(&self, c: usize) -> Vec<f32> {
        let (t, r) = (c / NR, c % NR);
        let g = self.group;
        let ng = self.k / g;
        (0..self.k)
            .map(|kk| {
                let (gi, k4, j) = (kk / g, (kk % g) / 4, kk % 4);
                let q = self.qs[t * NR * self.k + ((gi * (g / 4) + k4) * NR + r) * 4 + j];
                let s = self.scale[t * NR * ng + gi * NR + r];
                if self.signed {
                    return s * (q as i8) as f32;
                }
                let m = self.min[t * NR * ng + gi * NR + r];
                s * q as f32 - m
            })
            .collect()
    }

    /// `x` is `[m, k]` row-major f32; returns `[m, n]` row-major f32.
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        matmul_many(&[self], x, m).pop().expect("one output")
    }

    /// Rows `r0..r1` times the tiles `tiles`, in strips of a few rows; each strip passes over
    /// all the tiles while its activations are in L1.
    ///
    /// # Safety
    /// `out` is `[m, self.n]` for the `m` rows of `a`; AVX-512 F/BW/VNNI available.
    unsafe fn unit(&self, a: &QuantAct, tiles: std::ops::Range<usize>, r0: usize, r1: usize, out: *mut f32) {
        let mr = if self.signed { MR_SIGNED } else { MR_UNSIGNED };
        for r in (r0..r1).step_by(mr) {
            let rows = (r1 - r).min(mr);
            for t0 in tiles.clone().step_by(2) {
                self.call(a, rows, t0, (tiles.end - t0).min(2), r, out);
            }
        }
    }

    /// One kernel call: `rows` (1 to 6) activation rows from `r` times `nv` (1 or 2) tiles
    /// from `t0`.
    ///
    /// # Safety
    /// As for `unit`.
    unsafe fn call(&self, a: &QuantAct, rows: usize, t0: usize, nv: usize, r: usize, out: *mut f32) {
        #[cfg(target_arch = "x86_64")]
        {
            macro_rules! go {
                ($mr:literal) => {
                    match (self.signed, self.group, nv) {
                        (false, 32, 2) => avx512::kernel::<$mr, 2, 32, false>(self, a, t0, r, out),
                        (false, 32, _) => avx512::kernel::<$mr, 1, 32, false>(self, a, t0, r, out),
                        (false, _, 2) => avx512::kernel::<$mr, 2, 16, false>(self, a, t0, r, out),
                        (false, _, _) => avx512::kernel::<$mr, 1, 16, false>(self, a, t0, r, out),
                        (true, 32, 2) => avx512::kernel::<$mr, 2, 32, true>(self, a, t0, r, out),
                        (true, 32, _) => avx512::kernel::<$mr, 1, 32, true>(self, a, t0, r, out),
                        (true, _, 2) => avx512::kernel::<$mr, 2, 16, true>(self, a, t0, r, out),
                        (true, _, _) => avx512::kernel::<$mr, 1, 16, true>(self, a, t0, r, out),
                    }
                };
            }
            match rows {
                1 => go!(1),
                2 => go!(2),
                3 => go!(3),
                4 => go!(4),
                5 => go!(5),
                _ => go!(6),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (a, rows, t0, nv, r, out);
            unreachable!("qgemm::available() is false off x86_64");
        }
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Activations quantized for the kernel: i8 values, one scale per 256, one sum per group.
pub struct QuantAct {
    q: Vec<i8>,
    /// `[m][k/256]`
    d: Vec<f32>,
    /// `[m][k/group]`, integer-valued
    sum: Vec<f32>,
}

/// Quantizes one 256-value block: `d = max|x| / 127`, `q = round_half_even(x / d)`, stored
/// as `q + 128` in unsigned bytes when `shift`.
fn quantize_block(x: &[f32], q: &mut [i8], shift: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX-512 checked; both slices are QK long.
        return unsafe { avx512::quantize_block(x, q, shift) };
    }
    let amax = x.iter().fold(0f32, |a, &v| a.max(v.abs()));
    let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
    let flip = if shift { 0x80 } else { 0 };
    for (o, &v) in q.iter_mut().zip(x) {
        *o = ((v * inv).round_ties_even().clamp(-127.0, 127.0) as i8 as u8 ^ flip) as i8;
    }
    amax / 127.0
}

impl QuantAct {
    /// `shifted`: store `a + 128` as unsigned bytes (for the signed weight kinds, which need
    /// no group sums: `sum` stays empty).
    pub fn new(x: &[f32], m: usize, k: usize, group: usize, shifted: bool) -> QuantAct {
        assert!(k.is_multiple_of(QK) && QK.is_multiple_of(group));
        let mut q: Vec<i8> = super::alloc_vec(m * k);
        // SAFETY: every block is written below.
        unsafe { q.set_len(m * k) };
        let mut d = vec![0f32; m * k / QK];
        let mut sum = vec![0f32; if shifted { 0 } else { m * k / group }];
        let sum_row = if shifted { 0 } else { k / group };
        let rows = q.par_chunks_mut(k).zip(d.par_chunks_mut(k / QK)).zip(x.par_chunks(k)).enumerate();
        let sum_ptr = SendPtr(sum.as_mut_ptr());
        rows.with_min_len(8).for_each(|(r, ((q, d), x))| {
            for (b, (xb, qb)) in x.chunks_exact(QK).zip(q.chunks_exact_mut(QK)).enumerate() {
                d[b] = quantize_block(xb, qb, shifted);
            }
            if !shifted {
                // SAFETY: row r's sums are written by this row only.
                let s = unsafe { std::slice::from_raw_parts_mut(sum_ptr.get().add(r * sum_row), sum_row) };
                for (s, g) in s.iter_mut().zip(q.chunks_exact(group)) {
                    *s = g.iter().map(|&v| v as i32).sum::<i32>() as f32;
                }
            }
        });
        QuantAct { q, d, sum }
    }
}

/// `x [m, k] @ w.T` for several weights sharing the input (q/k/v, gate/up): activations are
/// quantized once per group size and all products run in one parallel loop.
pub fn matmul_many(ws: &[&PackedQ], x: &[f32], m: usize) -> Vec<Vec<f32>> {
    let k = ws[0].k;
    assert!(ws.iter().all(|w| w.k == k) && x.len() == m * k);
    let mut acts: Vec<((usize, bool), QuantAct)> = Vec::new();
    for w in ws {
        let key = (w.group, w.signed);
        if !acts.iter().any(|(g, _)| *g == key) {
            acts.push((key, QuantAct::new(x, m, k, w.group, w.signed)));
        }
    }
    // Every (row, column) of every output is written by exactly one unit below.
    let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| super::alloc_vec(m * w.n)).collect();
    let rb = m.min(ROW_BLOCK);
    let nrb = m.div_ceil(rb);
    // (weight, tile group) per work item, times row blocks.
    let mut items = Vec::new();
    for (i, w) in ws.iter().enumerate() {
        let tg = 2 * (L2_WEIGHT_BYTES / (2 * NR * w.k)).max(1);
        let tiles = w.n / NR;
        for t in (0..tiles).step_by(tg) {
            items.push((i, t..(t + tg).min(tiles)));
        }
    }
    let ptrs: Vec<SendPtr> = outs.iter_mut().map(|o| SendPtr(o.as_mut_ptr())).collect();
    (0..items.len() * nrb).into_par_iter().for_each(|u| {
        let ((i, tiles), b) = (&items[u / nrb], u % nrb);
        let w = ws[*i];
        let a = &acts.iter().find(|(g, _)| *g == (w.group, w.signed)).expect("quantized").1;
        let r0 = b * rb;
        let r1 = (r0 + rb).min(m);
        let ptr = ptrs[*i];
        // SAFETY: units write disjoint (row, column) blocks of their output.
        unsafe { w.unit(a, tiles.clone(), r0, r1, ptr.0) };
    });
    for (o, w) in outs.iter_mut().zip(ws) {
        // SAFETY: all m * n values were written above.
        unsafe { o.set_len(m * w.n) };
    }
    for (_, a) in acts {
        super::recycle(a.q);
    }
    outs
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedQ, QuantAct, NR, QK};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_block(x: &[f32], q: &mut [i8], shift: bool) -> f32 {
        debug_assert!(x.len() == QK && q.len() == QK);
        let mut mx = _mm512_setzero_ps();
        for i in 0..QK / 16 {
            mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(x.as_ptr().add(i * 16))));
        }
        let amax = _mm512_reduce_max_ps(mx);
        let inv = _mm512_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
        let flip = _mm_set1_epi8(if shift { i8::MIN } else { 0 });
        for i in 0..QK / 16 {
            let v = _mm512_mul_ps(_mm512_loadu_ps(x.as_ptr().add(i * 16)), inv);
            // round to nearest even (MXCSR default); |v| <= 127 by construction
            let r = _mm512_cvtps_epi32(v);
            let b = _mm_xor_si128(_mm512_cvtsepi32_epi8(r), flip);
            _mm_storeu_si128(q.as_mut_ptr().add(i * 16) as *mut __m128i, b);
        }
        amax / 127.0
    }

    /// `MR` activation rows from `r0` times tiles `t0..t0+NV` over all of `k`. The sum over
    /// activation blocks runs in the output (block 0 stores, later blocks add), which leaves
    /// the registers to the integer and per-block sums.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn kernel<const MR: usize, const NV: usize, const G: usize, const SIGNED: bool>(
        w: &PackedQ,
        a: &QuantAct,
        t0: usize,
        r0: usize,
        out: *mut f32,
    ) {
        let k = w.k;
        let ng = k / G;
        let gpb = QK / G;
        let nblocks = k / QK;
        let tile_q = NR * k; // bytes per tile
        let tile_s = NR * ng; // scales per tile
        let qs = w.qs.as_ptr();
        let sc = w.scale.as_ptr();
        let mn = w.min.as_ptr();
        let corr = w.corr.as_ptr();
        let aq = a.q.as_ptr();
        let ad = a.d.as_ptr();
        let asum = a.sum.as_ptr();
        for blk in 0..nblocks {
            let mut f = [[_mm512_setzero_ps(); NV]; MR];
            for gb in 0..gpb {
                let gi = blk * gpb + gb;
                let mut acc = [[_mm512_setzero_si512(); NV]; MR];
                if SIGNED {
                    for v in 0..NV {
                        let c0 = _mm512_loadu_si512(corr.add((t0 + v) * tile_s + gi * NR) as *const _);
                        for acc in acc.iter_mut() {
                            acc[v] = c0;
                        }
                    }
                }
                for k4 in 0..G / 4 {
                    let mut wv = [_mm512_setzero_si512(); NV];
                    for (v, wv) in wv.iter_mut().enumerate() {
                        *wv = _mm512_loadu_si512(
                            qs.add((t0 + v) * tile_q + (gi * (G / 4) + k4) * NR * 4) as *const _,
                        );
                    }
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let av = _mm512_set1_epi32(std::ptr::read_unaligned(
                            aq.add((r0 + r) * k + gi * G + k4 * 4) as *const i32,
                        ));
                        for v in 0..NV {
                            acc[v] = if SIGNED {
                                _mm512_dpbusd_epi32(acc[v], av, wv[v])
                            } else {
                                _mm512_dpbusd_epi32(acc[v], wv[v], av)
                            };
                        }
                    }
                }
                for v in 0..NV {
                    let s = _mm512_loadu_ps(sc.add((t0 + v) * tile_s + gi * NR));
                    if SIGNED {
                        for r in 0..MR {
                            f[r][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][v]), s, f[r][v]);
                        }
                    } else {
                        let mi = _mm512_loadu_ps(mn.add((t0 + v) * tile_s + gi * NR));
                        for r in 0..MR {
                            let sum = _mm512_set1_ps(*asum.add((r0 + r) * ng + gi));
                            f[r][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][v]), s, f[r][v]);
                            f[r][v] = _mm512_fnmadd_ps(mi, sum, f[r][v]);
                        }
                    }
                }
            }
            for r in 0..MR {
                let d = _mm512_set1_ps(*ad.add((r0 + r) * nblocks + blk));
                for v in 0..NV {
                    let o = out.add((r0 + r) * w.n + (t0 + v) * NR);
                    let y = if blk == 0 {
                        _mm512_mul_ps(f[r][v], d)
                    } else {
                        _mm512_fmadd_ps(f[r][v], d, _mm512_loadu_ps(o))
                    };
                    _mm512_storeu_ps(o, y);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    fn lcg(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn check(dtype: GgmlDType, kind: QKind) {
        if !available() {
            return;
        }
        let (n, k, m) = (48, 512, 7);
        let w = lcg(1, n * k);
        let wt = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        let qt = QTensor::quantize(&wt, dtype).unwrap();
        let deq = qt.dequantize(&Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        let p = PackedQ::pack(kind, n, k, &qt.data().unwrap()).unwrap();
        for (c, row) in deq.iter().enumerate() {
            assert_eq!(&p.dequantize_row(c), row, "{kind:?} row {c}");
        }
        let x = lcg(2, m * k);
        let y = p.matmul(&x, m);
        // Exact reference of the same arithmetic (quantized activations), in f64.
        let a = QuantAct::new(&x, m, k, p.group, false);
        for r in 0..m {
            for (c, row) in deq.iter().enumerate() {
                let mut want = 0f64;
                let mut plain = 0f64;
                for kk in 0..k {
                    let ad = a.d[r * (k / QK) + kk / QK] as f64;
                    want += row[kk] as f64 * a.q[r * k + kk] as f64 * ad;
                    plain += row[kk] as f64 * x[r * k + kk] as f64;
                }
                let got = y[r * n + c] as f64;
                assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{kind:?} {r},{c}: {got} vs {want}");
                assert!((got - plain).abs() < 0.15 * (1.0 + plain.abs()), "{kind:?} {r},{c}: {got} vs {plain}");
            }
        }
    }

    #[test]
    fn q4k() {
        check(GgmlDType::Q4K, QKind::Q4K)
    }
    #[test]
    fn q5k() {
        check(GgmlDType::Q5K, QKind::Q5K)
    }
    #[test]
    fn q6k() {
        check(GgmlDType::Q6K, QKind::Q6K)
    }
    #[test]
    fn q8_0() {
        check(GgmlDType::Q8_0, QKind::Q8_0)
    }

    /// GFLOP/s of the packed kernel vs candle's QMatMul on the 4B model's gate and down shapes:
    /// `cargo test --release -p qwen3-embed-engine --lib qgemm_speed -- --ignored --nocapture`
    /// (`QGEMM_KINDS=q8_0,q4k`, `QGEMM_M=256,1631` and `QGEMM_NO_CANDLE=1` narrow it down).
    #[test]
    #[ignore]
    fn qgemm_speed() {
        use candle_core::Module;
        let env_list = |name: &str, default: &str| -> Vec<String> {
            std::env::var(name).unwrap_or_else(|_| default.into()).split(',').map(|s| s.trim().to_lowercase()).collect()
        };
        let wanted = env_list("QGEMM_KINDS", "q4k,q5k,q6k,q8_0");
        let ms: Vec<usize> = env_list("QGEMM_M", "1,16,64,256,512,1631").iter().map(|s| s.parse().unwrap()).collect();
        let with_candle = std::env::var_os("QGEMM_NO_CANDLE").is_none();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let kinds = [
            (GgmlDType::Q4K, QKind::Q4K, "q4k"),
            (GgmlDType::Q5K, QKind::Q5K, "q5k"),
            (GgmlDType::Q6K, QKind::Q6K, "q6k"),
            (GgmlDType::Q8_0, QKind::Q8_0, "q8_0"),
        ]
        .into_iter()
        .filter(|(_, _, name)| wanted.iter().any(|k| k == name));
        let shapes = [(9728, 2560), (2560, 9728)];
        let wts = shapes.map(|(n, k)| Tensor::from_vec(lcg(3, n * k), (n, k), &Device::Cpu).unwrap());
        for (((n, k), wt), (dtype, kind, _)) in shapes.into_iter().zip(&wts).flat_map(|s| kinds.clone().map(move |c| (s, c))) {
            let qt = QTensor::quantize(wt, dtype).unwrap();
            let p = PackedQ::pack(kind, n, k, &qt.data().unwrap()).unwrap();
            let qm = candle_core::quantized::QMatMul::from_qtensor(qt).unwrap();
            for &m in &ms {
                let x = lcg(4, m * k);
                let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
                let flops = 2.0 * (m * n * k) as f64;
                let reps = (4e11 / flops).clamp(2.0, 50.0) as usize;
                let time = |f: &(dyn Fn() + Sync)| {
                    pool.install(|| {
                        f();
                        (0..reps)
                            .map(|_| {
                                let t = std::time::Instant::now();
                                f();
                                t.elapsed().as_secs_f64()
                            })
                            .fold(f64::INFINITY, f64::min)
                    })
                };
                let quant = time(&|| {
                    std::hint::black_box(QuantAct::new(&x, m, k, p.group, p.signed));
                });
                println!("  quantize activations: {:.2} ms", quant * 1e3);
                // Outputs go back to the spares, as in the forward pass.
                let ours = time(&|| {
                    crate::kernels::recycle(std::hint::black_box(p.matmul(&x, m)));
                });
                let theirs = if with_candle {
                    time(&|| {
                        std::hint::black_box(qm.forward(&xt).unwrap());
                    })
                } else {
                    f64::NAN
                };
                println!(
                    "{kind:?} {n}x{k} m={m:4}: ours {:6.1} GFLOP/s, candle {:6.1} GFLOP/s (best of {reps})",
                    flops / ours / 1e9,
                    flops / theirs / 1e9,
                    reps = reps
                );
            }
        }
    }
}

#[cfg(test)]
mod kernel_speed {
    //! One thread, one tile pair, one row block, data in cache: the kernel alone.
    //! `cargo test --release -p qwen3-embed-engine --lib kernel_speed -- --ignored --nocapture`
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    #[test]
    #[ignore]
    fn kernel_speed() {
        if !available() {
            return;
        }
        let (n, k) = (32, 2560);
        for (dtype, kind) in [(GgmlDType::Q8_0, QKind::Q8_0), (GgmlDType::Q4K, QKind::Q4K), (GgmlDType::Q6K, QKind::Q6K)] {
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
            let wt = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
            let qt = QTensor::quantize(&wt, dtype).unwrap();
            let p = PackedQ::pack(kind, n, k, &qt.data().unwrap()).unwrap();
            for m in [6usize, 72] {
                let x: Vec<f32> = (0..m * k).map(|i| ((i * 104729 % 2000) as f32 / 1000.0) - 1.0).collect();
                let a = QuantAct::new(&x, m, k, p.group, p.signed);
                let calls = 20_000_000 / m / 5 / (k / 256);
                // Seconds per call, best of 5 runs of `calls` calls, on this thread.
                let per_call = || {
                    let mut out = vec![0f32; m * n];
                    (0..5)
                        .map(|_| {
                            let t = std::time::Instant::now();
                            for _ in 0..calls {
                                unsafe { p.unit(&a, 0..2, 0, m, out.as_mut_ptr()) };
                            }
                            t.elapsed().as_secs_f64() / calls as f64
                        })
                        .fold(f64::INFINITY, f64::min)
                };
                let ops = 2.0 * (m * n * k) as f64;
                println!("{kind:?} m={m}: {:.0} GOP/s on one thread", ops / per_call() / 1e9);
                let two: Vec<f64> = std::thread::scope(|sc| {
                    let hs: Vec<_> = (0..2).map(|_| sc.spawn(per_call)).collect();
                    hs.into_iter().map(|h| h.join().unwrap()).collect()
                });
                println!("{kind:?} m={m}: {:.0} GOP/s on two threads", 2.0 * ops / two.iter().cloned().fold(0.0, f64::max) / 1e9);
            }
        }
    }
}

