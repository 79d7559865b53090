//! The AVX-512 kernels (F/BW/VL + VNNI; BF16 where the CPU has it).
// Register tiles (`acc[r][v]`, `f[r][v]`) are indexed in step with their rows and vectors.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::ops::Range;

use super::lanes::{self, F32Products};
use super::lanes512::F32x16;
use crate::kernels::dense::{DenseKind, PackedDense, MR};
use crate::kernels::ops::{Attention, KvPerHead, Span};
use crate::kernels::qgemm::{PackedQ, QuantAct, NR, QK};
use crate::kernels::qpack::Format;
use crate::kernels::{generic, Isa, Kernels};

/// The table; BF16 weights fall back to the AVX2 kernel on a CPU without AVX512_BF16.
pub const KERNELS: Kernels = Kernels {
    isa: Isa::Avx512,
    name: "avx512",
    code: "avx512",
    quantize_block,
    shift_signed: true,
    qgemm_unit,
    dense_unit: [dense_unit, dense_unit, dense_unit],
    attention,
    attention_int16: true,
    rms_rows,
    silu_mul,
    rope_row,
    add,
};

/// Activation rows per quantized kernel call. Q4_K and Q5_K take one tile and up to 12 rows,
/// over which each decoded weight vector is used; the other formats take two tiles and 6 rows,
/// or 4 for the legacy kinds, whose per-group min term needs more registers.
const MR_ONE_TILE: usize = 12;
const MR_PAIR: usize = 6;
const MR_PAIR_MIN: usize = 4;

// ---- quantized GEMM

/// # Safety
/// AVX-512 F/BW available; `x` and `q` are as long, a multiple of 32.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn quantize_block(x: &[f32], q: &mut [i8], shift: bool) -> f32 {
    assert!(x.len() == q.len() && x.len().is_multiple_of(32));
    let mut mx = _mm512_setzero_ps();
    for i in 0..x.len() / 16 {
        mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(x.as_ptr().add(i * 16))));
    }
    let amax = _mm512_reduce_max_ps(mx);
    let inv = _mm512_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
    let flip = _mm_set1_epi8(if shift { i8::MIN } else { 0 });
    for i in 0..x.len() / 16 {
        let v = _mm512_mul_ps(_mm512_loadu_ps(x.as_ptr().add(i * 16)), inv);
        // round to nearest even (MXCSR default); |v| <= 127 by construction
        let r = _mm512_cvtps_epi32(v);
        let b = _mm_xor_si128(_mm512_cvtsepi32_epi8(r), flip);
        _mm_storeu_si128(q.as_mut_ptr().add(i * 16) as *mut __m128i, b);
    }
    amax / 127.0
}

/// The bits of `h` from bit `pos` moved to bit 4 (bits elsewhere are left for the caller's
/// mask); `pos` is a constant once the callers' loops are unrolled.
#[inline(always)]
unsafe fn bits_to_4(h: __m512i, pos: usize) -> __m512i {
    match pos {
        0 => _mm512_slli_epi16::<4>(h),
        1 => _mm512_slli_epi16::<3>(h),
        2 => _mm512_slli_epi16::<2>(h),
        3 => _mm512_slli_epi16::<1>(h),
        4 => h,
        5 => _mm512_srli_epi16::<1>(h),
        6 => _mm512_srli_epi16::<2>(h),
        _ => _mm512_srli_epi16::<3>(h),
    }
}

/// `MR` activation rows from `r0` times tiles `t0..t0+NV` over all of `k`, for weights of
/// format `F` (`qpack::Format`). The sum over activation blocks runs in the output (block 0
/// stores, later blocks add), which leaves the registers to the integer and per-block sums.
/// Q8_0's activation scales (one per group) multiply the group's weight scales instead.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn qgemm_kernel<const MR: usize, const NV: usize, const F: u8>(
    w: &PackedQ,
    a: &QuantAct,
    t0: usize,
    r0: usize,
    out: *mut f32,
    ldo: usize,
) {
    let g = Format::group(F);
    let (nib, hb) = (Format::nibbles(F), Format::high_bits(F));
    let (k, ng, gpb, nblocks) = (w.k, w.k / g, QK / g, w.k / QK);
    let tile_q = if nib { NR * k / 2 } else { NR * k };
    let pairs = Format::pairs(F);
    let (qs, qh, sub, dp, scale_min) =
        (w.qs.as_ptr(), w.qh.as_ptr(), w.sub.as_ptr(), w.d.as_ptr(), w.scale_min.as_ptr());
    let (aq, ad, asum, bias, corr) = (a.q.as_ptr(), a.d.as_ptr(), a.sum.as_ptr(), a.bias.as_ptr(), w.corr.as_ptr());
    let low4 = _mm512_set1_epi8(0x0F);
    let high = _mm512_set1_epi8((((1 << hb) - 1) << 4) as i8);
    let act = |r: usize, gi: usize, o: usize| {
        _mm512_set1_epi32(std::ptr::read_unaligned(aq.add((r0 + r) * k + gi * g + o * 4) as *const i32))
    };
    let f16s = |p: *const u16| _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i));
    let bytes_ps = |p: *const u8, signed: bool| {
        let b = _mm_loadu_si128(p as *const __m128i);
        _mm512_cvtepi32_ps(if signed { _mm512_cvtepi8_epi32(b) } else { _mm512_cvtepu8_epi32(b) })
    };
    for blk in 0..nblocks {
        let mut f = [[_mm512_setzero_ps(); NV]; MR];
        // Q6_K: the block's integer sum `sum_groups sc * sum_k(a * (q - 32))` (at most
        // 16 * 127 * 16 * 127 * 32 in size).
        let mut isc = [[_mm512_setzero_si512(); NV]; MR];
        let (k6, q8, per_group) = (F == Format::K6 as u8, F == Format::Q8 as u8, Format::group_act_scales(F));
        let mut dv = [_mm512_setzero_ps(); NV];
        let mut dminv = [_mm512_setzero_ps(); NV];
        if nib {
            for v in 0..NV {
                let at = ((t0 + v) * nblocks + blk) * pairs * NR;
                dv[v] = f16s(dp.add(at));
                if pairs == 2 {
                    dminv[v] = f16s(dp.add(at + NR));
                }
            }
        }
        for gb in 0..gpb {
            let gi = blk * gpb + gb;
            let mut acc = [[_mm512_setzero_si512(); NV]; MR];
            if Format::offset(F) != 0 {
                for (r, acc) in acc.iter_mut().enumerate() {
                    *acc = [_mm512_set1_epi32(*bias.add((r0 + r) * ng + gi)); NV];
                }
            }
            let mut dg = [_mm512_setzero_ps(); MR];
            if per_group {
                for (r, dg) in dg.iter_mut().enumerate() {
                    *dg = _mm512_set1_ps(*ad.add((r0 + r) * ng + gi));
                }
            }
            if q8 {
                for v in 0..NV {
                    let c = _mm256_loadu_si256(corr.add(((t0 + v) * ng + gi) * NR) as *const __m256i);
                    let c = _mm512_slli_epi32::<7>(_mm512_cvtepi16_epi32(c));
                    for acc in acc.iter_mut() {
                        acc[v] = c;
                    }
                }
            }
            if nib {
                let mut hv = [_mm512_setzero_si512(); NV];
                if hb > 0 {
                    for v in 0..NV {
                        hv[v] = _mm512_loadu_si512(qh.add(((t0 + v) * ng + gi) * NR * 4) as *const _);
                    }
                }
                let half = g / 8;
                for j in 0..half {
                    let mut lo = [_mm512_setzero_si512(); NV];
                    let mut hi = [_mm512_setzero_si512(); NV];
                    for v in 0..NV {
                        let n = _mm512_loadu_si512(qs.add((t0 + v) * tile_q + (gi * half + j) * NR * 4) as *const _);
                        lo[v] = _mm512_and_si512(n, low4);
                        hi[v] = _mm512_and_si512(_mm512_srli_epi16::<4>(n), low4);
                        if hb > 0 {
                            // lo | (bits & high)
                            lo[v] = _mm512_ternarylogic_epi32::<0xF8>(lo[v], bits_to_4(hv[v], j * hb), high);
                            hi[v] = _mm512_ternarylogic_epi32::<0xF8>(hi[v], bits_to_4(hv[v], (j + half) * hb), high);
                        }
                    }
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let (al, ah) = (act(r, gi, j), act(r, gi, j + half));
                        for v in 0..NV {
                            acc[v] = _mm512_dpbusd_epi32(acc[v], lo[v], al);
                            acc[v] = _mm512_dpbusd_epi32(acc[v], hi[v], ah);
                        }
                    }
                }
            } else {
                for o in 0..g / 4 {
                    let mut wv = [_mm512_setzero_si512(); NV];
                    for (v, wv) in wv.iter_mut().enumerate() {
                        *wv = _mm512_loadu_si512(qs.add((t0 + v) * tile_q + (gi * (g / 4) + o) * NR * 4) as *const _);
                    }
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let av = act(r, gi, o);
                        for v in 0..NV {
                            acc[v] = if F == Format::Q8 as u8 {
                                _mm512_dpbusd_epi32(acc[v], av, wv[v])
                            } else {
                                _mm512_dpbusd_epi32(acc[v], wv[v], av)
                            };
                        }
                    }
                }
            }
            for v in 0..NV {
                let at = ((t0 + v) * ng + gi) * pairs * NR;
                let (s, mi) = match F {
                    0 => (_mm512_loadu_ps(scale_min.add(at)), _mm512_loadu_ps(scale_min.add(at + NR))),
                    1 => (f16s(dp.add(at)), _mm512_setzero_ps()),
                    5 => (_mm512_loadu_ps(scale_min.add(at)), _mm512_setzero_ps()),
                    4 => {
                        let sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(sub.add(at) as *const __m128i));
                        for r in 0..MR {
                            isc[r][v] = _mm512_add_epi32(isc[r][v], _mm512_mullo_epi32(acc[r][v], sc));
                        }
                        continue;
                    }
                    _ => (
                        _mm512_mul_ps(dv[v], bytes_ps(sub.add(at), false)),
                        _mm512_mul_ps(dminv[v], bytes_ps(sub.add(at + NR), false)),
                    ),
                };
                for r in 0..MR {
                    let s = if per_group { _mm512_mul_ps(s, dg[r]) } else { s };
                    f[r][v] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][v]), s, f[r][v]);
                    if Format::has_min(F) {
                        let sum = _mm512_set1_ps(*asum.add((r0 + r) * ng + gi));
                        f[r][v] = _mm512_fnmadd_ps(mi, sum, f[r][v]);
                    }
                }
            }
        }
        if k6 {
            for r in 0..MR {
                for v in 0..NV {
                    f[r][v] = _mm512_mul_ps(_mm512_cvtepi32_ps(isc[r][v]), dv[v]);
                }
            }
        }
        for r in 0..MR {
            let d = _mm512_set1_ps(if per_group { 1.0 } else { *ad.add((r0 + r) * nblocks + blk) });
            for v in 0..NV {
                let o = out.add((r0 + r) * ldo + (t0 + v) * NR);
                let y =
                    if blk == 0 { _mm512_mul_ps(f[r][v], d) } else { _mm512_fmadd_ps(f[r][v], d, _mm512_loadu_ps(o)) };
                _mm512_storeu_ps(o, y);
            }
        }
    }
}

/// Rows `r0..r1` times the tiles `tiles`, in strips of a few rows; each strip passes over
/// all the tiles while its activations are in L1.
///
/// # Safety
/// `out` is `[m, w.n]` for the `m` rows of `a` (quantized for this table); AVX-512 F/BW/VNNI
/// available.
pub unsafe fn qgemm_unit(w: &PackedQ, a: &QuantAct, tiles: Range<usize>, r0: usize, r1: usize, out: *mut f32) {
    match w.format {
        Format::K6 | Format::K5 if r1 - r0 >= COPY_ROWS => DECODED.with_borrow_mut(|(key, qs, scales)| {
            let k6 = w.format == Format::K6;
            if *key != Some((w.id, tiles.clone())) {
                if k6 {
                    decode_k6(w, tiles.clone(), qs, scales);
                } else {
                    decode_k5(w, tiles.clone(), qs, scales);
                }
                *key = Some((w.id, tiles.clone()));
            }
            let (n, qs_v, sc_v) = (tiles.len() * NR, std::mem::take(qs), std::mem::take(scales));
            let copy = if k6 { PackedQ::k6_bytes(n, w.k, qs_v, sc_v) } else { PackedQ::k5_bytes(n, w.k, qs_v, sc_v) };
            pair_rows(&copy, a, 0..tiles.len(), r0, r1, out.add(tiles.start * NR), w.n);
            (*qs, *scales) = (copy.qs.into_vec(), copy.scale_min.into_vec());
        }),
        Format::K4 | Format::K5 => {
            for r in (r0..r1).step_by(MR_ONE_TILE) {
                let rows = (r1 - r).min(MR_ONE_TILE);
                for t in tiles.clone() {
                    match w.format {
                        Format::K4 => one_tile_call::<{ Format::K4 as u8 }>(w, a, rows, t, r, out),
                        _ => one_tile_call::<{ Format::K5 as u8 }>(w, a, rows, t, r, out),
                    }
                }
            }
        }
        _ => pair_rows(w, a, tiles, r0, r1, out, w.n),
    }
}

/// Rows from which a Q6_K or Q5_K unit multiplies a copy of its tiles decoded to bytes (in
/// L2), instead of decoding in registers for every few rows.
const COPY_ROWS: usize = 24;

/// A weight's id and tiles, and those tiles decoded (`decode_k6`, `decode_k5`).
type Decoded = (Option<(u64, Range<usize>)>, Vec<u8>, Vec<f32>);

thread_local! {
    /// This thread's last decoded tiles: the units of one tile group for successive row
    /// blocks mostly run on the same thread, one after the other, and decode them once.
    static DECODED: std::cell::RefCell<Decoded> = const { std::cell::RefCell::new((None, Vec::new(), Vec::new())) };
}

/// `tiles` of a Q5_K weight as `Format::Bytes`: quants `[tiles][k/32][8][16][4]`, then per
/// group the f32 `d * sc` and `dmin * m` `[tiles][k/32][2][16]`: the values the register
/// decode of `qgemm_kernel` forms, so the products are the same to the bit.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn decode_k5(w: &PackedQ, tiles: Range<usize>, qs: &mut Vec<u8>, scale_min: &mut Vec<f32>) {
    let (k, ng, nb, nv) = (w.k, w.k / 32, w.k / QK, tiles.len());
    qs.resize(nv * NR * k, 0);
    scale_min.resize(nv * ng * 2 * NR, 0.0);
    let (low4, high) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x10));
    for v in 0..nv {
        let t = tiles.start + v;
        for gi in 0..ng {
            let h = _mm512_loadu_si512(w.qh.as_ptr().add((t * ng + gi) * NR * 4) as *const _);
            let dst = qs.as_mut_ptr().add((v * ng + gi) * 8 * NR * 4);
            for j in 0..4 {
                let n = _mm512_loadu_si512(w.qs.as_ptr().add(t * NR * k / 2 + (gi * 4 + j) * NR * 4) as *const _);
                let lo = _mm512_ternarylogic_epi32::<0xF8>(_mm512_and_si512(n, low4), bits_to_4(h, j), high);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(n), low4);
                let hi = _mm512_ternarylogic_epi32::<0xF8>(hi, bits_to_4(h, j + 4), high);
                _mm512_storeu_si512(dst.add(j * NR * 4) as *mut _, lo);
                _mm512_storeu_si512(dst.add((j + 4) * NR * 4) as *mut _, hi);
            }
            let dp = w.d.as_ptr().add((t * nb + gi / 8) * 2 * NR);
            let (d, dmin) = (
                _mm512_cvtph_ps(_mm256_loadu_si256(dp as *const __m256i)),
                _mm512_cvtph_ps(_mm256_loadu_si256(dp.add(NR) as *const __m256i)),
            );
            let at = (t * ng + gi) * 2 * NR;
            let sc =
                _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(w.sub.as_ptr().add(at) as *const __m128i)));
            let m = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                w.sub.as_ptr().add(at + NR) as *const __m128i
            )));
            let o = scale_min.as_mut_ptr().add((v * ng + gi) * 2 * NR);
            _mm512_storeu_ps(o, _mm512_mul_ps(d, sc));
            _mm512_storeu_ps(o.add(NR), _mm512_mul_ps(dmin, m));
        }
    }
}

/// `tiles` of a Q6_K weight as `Format::K6Bytes`: quants `[tiles][k/16][4][16][4]`, scales
/// `d * sc` `[tiles][k/16][16]`.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn decode_k6(w: &PackedQ, tiles: Range<usize>, qs: &mut Vec<u8>, scales: &mut Vec<f32>) {
    let (k, ng, nv) = (w.k, w.k / 16, tiles.len());
    qs.resize(nv * NR * k, 0);
    scales.resize(nv * NR * ng, 0.0);
    let (low4, high) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x30));
    for v in 0..nv {
        let t = tiles.start + v;
        for gi in 0..ng {
            let h = _mm512_loadu_si512(w.qh.as_ptr().add((t * ng + gi) * NR * 4) as *const _);
            for j in 0..2 {
                let n = _mm512_loadu_si512(w.qs.as_ptr().add(t * NR * k / 2 + (gi * 2 + j) * NR * 4) as *const _);
                let lo = _mm512_ternarylogic_epi32::<0xF8>(_mm512_and_si512(n, low4), bits_to_4(h, j * 2), high);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(n), low4);
                let hi = _mm512_ternarylogic_epi32::<0xF8>(hi, bits_to_4(h, (j + 2) * 2), high);
                let dst = qs.as_mut_ptr().add((v * ng + gi) * 4 * NR * 4);
                _mm512_storeu_si512(dst.add(j * NR * 4) as *mut _, lo);
                _mm512_storeu_si512(dst.add((j + 2) * NR * 4) as *mut _, hi);
            }
            let d =
                _mm512_cvtph_ps(_mm256_loadu_si256(w.d.as_ptr().add((t * (k / QK) + gi / 16) * NR) as *const __m256i));
            let sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(w.sub.as_ptr().add((t * ng + gi) * NR) as *const __m128i));
            _mm512_storeu_ps(scales.as_mut_ptr().add((v * ng + gi) * NR), _mm512_mul_ps(d, _mm512_cvtepi32_ps(sc)));
        }
    }
}

/// Rows `r0..r1` times `tiles`, in strips of 6 rows (4 for the legacy kinds) and tile pairs;
/// `out` has rows of `ldo`.
///
/// # Safety
/// As for `qgemm_unit`.
unsafe fn pair_rows(w: &PackedQ, a: &QuantAct, tiles: Range<usize>, r0: usize, r1: usize, out: *mut f32, ldo: usize) {
    let mr = if w.format == Format::Bytes { MR_PAIR_MIN } else { MR_PAIR };
    for r in (r0..r1).step_by(mr) {
        let rows = (r1 - r).min(mr);
        for t0 in tiles.clone().step_by(2) {
            pair_call(w, a, rows, t0, (tiles.end - t0).min(2), r, out, ldo);
        }
    }
}

/// One kernel call on Q8_0, Q6_K or a legacy kind: `rows` (1 to 6) activation rows from `r`
/// times `nv` (1 or 2) tiles from `t0`.
///
/// # Safety
/// As for `qgemm_unit`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn pair_call(w: &PackedQ, a: &QuantAct, rows: usize, t0: usize, nv: usize, r: usize, out: *mut f32, ldo: usize) {
    macro_rules! go {
        ($mr:literal) => {
            match (w.format, nv) {
                (Format::Q8, 2) => qgemm_kernel::<$mr, 2, { Format::Q8 as u8 }>(w, a, t0, r, out, ldo),
                (Format::Q8, _) => qgemm_kernel::<$mr, 1, { Format::Q8 as u8 }>(w, a, t0, r, out, ldo),
                (Format::K6, 2) => qgemm_kernel::<$mr, 2, { Format::K6 as u8 }>(w, a, t0, r, out, ldo),
                (Format::K6, _) => qgemm_kernel::<$mr, 1, { Format::K6 as u8 }>(w, a, t0, r, out, ldo),
                (Format::K6Bytes, 2) => qgemm_kernel::<$mr, 2, { Format::K6Bytes as u8 }>(w, a, t0, r, out, ldo),
                (Format::K6Bytes, _) => qgemm_kernel::<$mr, 1, { Format::K6Bytes as u8 }>(w, a, t0, r, out, ldo),
                (_, 2) => qgemm_kernel::<$mr, 2, { Format::Bytes as u8 }>(w, a, t0, r, out, ldo),
                (_, _) => qgemm_kernel::<$mr, 1, { Format::Bytes as u8 }>(w, a, t0, r, out, ldo),
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

/// One kernel call on format `F`: `rows` (1 to 12) activation rows from `r` times tile `t`.
///
/// # Safety
/// As for `qgemm_unit`.
#[inline(always)]
unsafe fn one_tile_call<const F: u8>(w: &PackedQ, a: &QuantAct, rows: usize, t: usize, r: usize, out: *mut f32) {
    match rows {
        1 => qgemm_kernel::<1, 1, F>(w, a, t, r, out, w.n),
        2 => qgemm_kernel::<2, 1, F>(w, a, t, r, out, w.n),
        3 => qgemm_kernel::<3, 1, F>(w, a, t, r, out, w.n),
        4 => qgemm_kernel::<4, 1, F>(w, a, t, r, out, w.n),
        5 => qgemm_kernel::<5, 1, F>(w, a, t, r, out, w.n),
        6 => qgemm_kernel::<6, 1, F>(w, a, t, r, out, w.n),
        7 => qgemm_kernel::<7, 1, F>(w, a, t, r, out, w.n),
        8 => qgemm_kernel::<8, 1, F>(w, a, t, r, out, w.n),
        9 => qgemm_kernel::<9, 1, F>(w, a, t, r, out, w.n),
        10 => qgemm_kernel::<10, 1, F>(w, a, t, r, out, w.n),
        11 => qgemm_kernel::<11, 1, F>(w, a, t, r, out, w.n),
        _ => qgemm_kernel::<12, 1, F>(w, a, t, r, out, w.n),
    }
}

// ---- dense GEMM

/// # Safety
/// As `DenseUnitFn`; AVX-512 F and F16C available, and AVX512_BF16 for BF16 weights.
pub unsafe fn dense_unit(
    w: &PackedDense,
    x: &[f32],
    xb: &[u32],
    tiles: Range<usize>,
    r0: usize,
    r1: usize,
    out: *mut f32,
) {
    let (t0, nv) = (tiles.start, tiles.len());
    {
        macro_rules! go {
            ($mr:literal, $nv:literal, $r:expr) => {
                match w.kind {
                    DenseKind::F16 => float_kernel::<$mr, $nv, true>(w, x, t0, $r, out),
                    DenseKind::Bf16 => bf16_kernel::<$mr, $nv>(w, xb, t0, $r, out),
                    DenseKind::F32 => float_kernel::<$mr, $nv, false>(w, x, t0, $r, out),
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
}

/// F16 weights (`F16`) or F32 weights, f32 activations.
///
/// # Safety
/// The CPU must have the target features named below (the kernel table holds this function only
/// where it does), and the pointers and lengths given must describe valid buffers.
#[target_feature(enable = "avx512f,f16c")]
unsafe fn float_kernel<const R: usize, const V: usize, const F16: bool>(
    w: &PackedDense,
    x: &[f32],
    t0: usize,
    r0: usize,
    out: *mut f32,
) {
    let k = w.k;
    let (wp16, wp32) = (w.data.as_ptr(), w.data32.as_ptr());
    let xp = x.as_ptr();
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for kk in 0..k {
        let wv: [__m512; V] = std::array::from_fn(|v| {
            let at = (t0 + v) * NR * k + kk * NR;
            if F16 {
                _mm512_cvtph_ps(_mm256_loadu_si256(wp16.add(at) as *const __m256i))
            } else {
                _mm512_loadu_ps(wp32.add(at))
            }
        });
        for (r, acc) in acc.iter_mut().enumerate() {
            let a = _mm512_set1_ps(*xp.add((r0 + r) * k + kk));
            for v in 0..V {
                acc[v] = _mm512_fmadd_ps(a, wv[v], acc[v]);
            }
        }
    }
    store_tile(&acc, w.n, t0, r0, out)
}

/// # Safety
/// The CPU must have the target features named below (the kernel table holds this function only
/// where it does), and the pointers and lengths given must describe valid buffers.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf16_kernel<const R: usize, const V: usize>(
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
        let wv: [__m512i; V] =
            std::array::from_fn(|v| _mm512_loadu_si512(wp.add((t0 + v) * NR * k + kp * NR * 2) as *const _));
        for (r, acc) in acc.iter_mut().enumerate() {
            let a = _mm512_set1_epi32(*xp.add((r0 + r) * k2 + kp) as i32);
            for v in 0..V {
                acc[v] = _mm512_dpbf16_ps(
                    acc[v],
                    std::mem::transmute::<__m512i, __m512bh>(a),
                    std::mem::transmute::<__m512i, __m512bh>(wv[v]),
                );
            }
        }
    }
    store_tile(&acc, w.n, t0, r0, out)
}

/// A dense kernel's `R` rows x `V` vectors of results into `out` (rows `n` long).
#[inline(always)]
unsafe fn store_tile<const R: usize, const V: usize>(
    acc: &[[__m512; V]; R],
    n: usize,
    t0: usize,
    r0: usize,
    out: *mut f32,
) {
    for (r, acc) in acc.iter().enumerate() {
        for (v, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add((r0 + r) * n + (t0 + v) * NR), *acc);
        }
    }
}

// ---- attention and elementwise kernels

super::elementwise!("avx512f");

/// Query rows per register tile (6 rows x 4 vectors of keys take 24 of the 32 registers).
const BQ: usize = 6;

/// Causal attention: sequences of at least [`INT16_MIN_KEYS`] keys take the 16-bit fixed-point
/// products (`attention_int16`); shorter ones, whose attention is a small part of their pass,
/// keep f32's.
///
/// # Safety
/// AVX-512 F/BW and VNNI available; `a` as `ops::attention` checks it.
pub unsafe fn attention(a: &Attention, out: &mut [f32]) {
    let (long, short): (Vec<Span>, Vec<Span>) = a.spans.iter().partition(|sp| sp.k_len >= INT16_MIN_KEYS);
    if !short.is_empty() {
        lanes::attention::<F32x16, F32Products, BQ>(&Attention { spans: &short, ..*a }, out, attention_unit);
    }
    if !long.is_empty() {
        super::attention_int16::attention(&Attention { spans: &long, ..*a }, out);
    }
}

/// The shortest sequence whose attention runs in 16-bit fixed point (at 512 keys it already
/// takes 0.75 of f32's time, at 64 it would take longer).
pub const INT16_MIN_KEYS: usize = 512;

#[target_feature(enable = "avx512f")]
unsafe fn attention_unit(a: &Attention, kv: &KvPerHead, sp: &Span, kvh: usize, i0: usize, out: *mut f32) {
    lanes::attention_unit::<F32x16, F32Products, BQ, 64>(a, kv, sp, kvh, i0, out)
}

/// # Safety
/// AVX-512F available.
#[target_feature(enable = "avx512f")]
pub unsafe fn silu_mul(g: &mut [f32], u: &[f32]) {
    lanes::silu_mul::<F32x16>(g, u)
}
