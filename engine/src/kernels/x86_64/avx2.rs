//! The AVX2 kernels (with FMA and F16C; x86-64-v3). The quantized GEMM uses AVX-VNNI's
//! `vpdpbusd` where the CPU has it, `vpmaddubsw` + `vpmaddwd` otherwise.
// Register tiles (`acc[r][v]`, `f[r][v]`) are indexed in step with their rows and vectors.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;
use std::ops::Range;

use super::lanes::{self, F32Products, Lanes};
use crate::kernels::dense::{DenseKind, PackedDense};
use crate::kernels::ops::{Attention, KvPerHead, Span};
use crate::kernels::qgemm::{PackedQ, QuantAct, NR, QK};
use crate::kernels::qpack::Format;
use crate::kernels::{generic, Isa, Kernels};

pub const KERNELS: Kernels = Kernels {
    isa: Isa::Avx2,
    name: "avx2",
    code: "avx2",
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

/// As [`KERNELS`], with the quantized GEMM on AVX-VNNI.
pub const KERNELS_VNNI: Kernels =
    Kernels { name: "avx2+avxvnni", code: "avx2_vnni", qgemm_unit: qgemm_unit_vnni, ..KERNELS };

// ---- quantized GEMM

/// Activation rows per quantized kernel call.
const QMR: usize = 4;

/// Horizontal maximum of 8 floats.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hmax(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_shuffle_ps::<0b01>(m, m));
    _mm_cvtss_f32(m)
}

/// Horizontal sum of 8 floats.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

/// # Safety
/// AVX2 available; `x` and `q` are as long, a multiple of 32.
#[target_feature(enable = "avx2")]
pub unsafe fn quantize_block(x: &[f32], q: &mut [i8], shift: bool) -> f32 {
    assert!(x.len() == q.len() && x.len().is_multiple_of(32));
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    let mut mx = _mm256_setzero_ps();
    for i in 0..x.len() / 8 {
        mx = _mm256_max_ps(mx, _mm256_and_ps(abs, _mm256_loadu_ps(x.as_ptr().add(i * 8))));
    }
    let amax = hmax(mx);
    let inv = _mm256_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
    let flip = _mm256_set1_epi8(if shift { i8::MIN } else { 0 });
    // packs interleaves 128-bit lanes; this puts the 8 groups of 4 back in order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for i in 0..x.len() / 32 {
        // round to nearest even (MXCSR default); |v| <= 127 by construction
        let r: [__m256i; 4] = std::array::from_fn(|j| {
            _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i * 32 + j * 8)), inv))
        });
        let b = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
        let b = _mm256_xor_si256(_mm256_permutevar8x32_epi32(b, order), flip);
        _mm256_storeu_si256(q.as_mut_ptr().add(i * 32) as *mut __m256i, b);
    }
    amax / 127.0
}

/// `sum_4(w * a)` of each 32-bit lane added to `acc`: `w` unsigned bytes, `a` signed ones
/// (`vpdpbusd` with AVX-VNNI; without it the i16 pair sums cannot saturate for our operands:
/// unsigned weights are at most 63, Q8_0 passes `|w|` and `a` carrying `w`'s sign).
#[inline(always)]
unsafe fn dot4<const VNNI: bool>(acc: __m256i, w: __m256i, a: __m256i, ones: __m256i) -> __m256i {
    if VNNI {
        _mm256_dpbusd_avx_epi32(acc, w, a)
    } else {
        _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), ones))
    }
}

/// The bits of `h` from bit `pos` moved to bit 4, as in the AVX-512 kernel.
#[inline(always)]
unsafe fn bits_to_4(h: __m256i, pos: usize) -> __m256i {
    match pos {
        0 => _mm256_slli_epi16::<4>(h),
        1 => _mm256_slli_epi16::<3>(h),
        2 => _mm256_slli_epi16::<2>(h),
        3 => _mm256_slli_epi16::<1>(h),
        4 => h,
        5 => _mm256_srli_epi16::<1>(h),
        6 => _mm256_srli_epi16::<2>(h),
        _ => _mm256_srli_epi16::<3>(h),
    }
}

/// `MR` activation rows from `r0` times tile `t`, 8 columns (`half`) at a time, over all of
/// `k`, for weights of format `F`; the sum over activation blocks runs in the output as in the
/// AVX-512 kernel. Q8_0's signed quants are multiplied by magnitude and sign, and its
/// activation scales (one per group) multiply the group's weight scales.
#[inline(always)]
unsafe fn qgemm_kernel<const MR: usize, const F: u8, const VNNI: bool>(
    w: &PackedQ,
    a: &QuantAct,
    t: usize,
    r0: usize,
    out: *mut f32,
) {
    let g = Format::group(F);
    let (nib, hb) = (Format::nibbles(F), Format::high_bits(F));
    let signed = F == Format::Q8 as u8;
    let per_group = Format::group_act_scales(F);
    let (k, ng, gpb, nblocks) = (w.k, w.k / g, QK / g, w.k / QK);
    // This tile's part of each array (`wrapping_add`: arrays the format lacks are empty).
    let qs = w.qs.as_ptr().wrapping_add(t * if nib { NR * k / 2 } else { NR * k });
    let qh = w.qh.as_ptr().wrapping_add(t * NR * ng * 4);
    let pairs = Format::pairs(F);
    let sub = w.sub.as_ptr().wrapping_add(t * ng * pairs * NR);
    let scale_min = w.scale_min.as_ptr().wrapping_add(t * ng * pairs * NR);
    let dp = w.d.as_ptr().wrapping_add(t * pairs * NR * if F == Format::Q8 as u8 { ng } else { nblocks });
    let (aq, ad, asum, bias) = (a.q.as_ptr(), a.d.as_ptr(), a.sum.as_ptr(), a.bias.as_ptr());
    let ones = _mm256_set1_epi16(1);
    let low4 = _mm256_set1_epi8(0x0F);
    let high = _mm256_set1_epi8((((1 << hb) - 1) << 4) as i8);
    let act = |r: usize, gi: usize, o: usize| {
        _mm256_set1_epi32(std::ptr::read_unaligned(aq.add((r0 + r) * k + gi * g + o * 4) as *const i32))
    };
    let f16s = |p: *const u16| _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
    let bytes_ps = |p: *const u8, signed: bool| {
        let b = _mm_loadl_epi64(p as *const __m128i);
        _mm256_cvtepi32_ps(if signed { _mm256_cvtepi8_epi32(b) } else { _mm256_cvtepu8_epi32(b) })
    };
    for half in 0..2 {
        let h8 = half * 8;
        for blk in 0..nblocks {
            let mut f = [_mm256_setzero_ps(); MR];
            let at = blk * pairs * NR + h8;
            let dv = if nib { f16s(dp.add(at)) } else { _mm256_setzero_ps() };
            let dminv = if nib && pairs == 2 { f16s(dp.add(at + NR)) } else { _mm256_setzero_ps() };
            for gb in 0..gpb {
                let gi = blk * gpb + gb;
                let mut acc = [_mm256_setzero_si256(); MR];
                if Format::offset(F) != 0 {
                    for (r, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm256_set1_epi32(*bias.add((r0 + r) * ng + gi));
                    }
                }
                if nib {
                    let hv = if hb > 0 {
                        _mm256_loadu_si256(qh.add(gi * NR * 4 + half * 32) as *const __m256i)
                    } else {
                        _mm256_setzero_si256()
                    };
                    let hg = g / 8;
                    for j in 0..hg {
                        let n = _mm256_loadu_si256(qs.add((gi * hg + j) * NR * 4 + half * 32) as *const __m256i);
                        let mut lo = _mm256_and_si256(n, low4);
                        let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(n), low4);
                        if hb > 0 {
                            lo = _mm256_or_si256(lo, _mm256_and_si256(bits_to_4(hv, j * hb), high));
                            hi = _mm256_or_si256(hi, _mm256_and_si256(bits_to_4(hv, (j + hg) * hb), high));
                        }
                        for (r, acc) in acc.iter_mut().enumerate() {
                            *acc = dot4::<VNNI>(*acc, lo, act(r, gi, j), ones);
                            *acc = dot4::<VNNI>(*acc, hi, act(r, gi, j + hg), ones);
                        }
                    }
                } else {
                    for o in 0..g / 4 {
                        let wv = _mm256_loadu_si256(qs.add((gi * (g / 4) + o) * NR * 4 + half * 32) as *const __m256i);
                        let wu = if signed { _mm256_abs_epi8(wv) } else { wv };
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let av = if signed { _mm256_sign_epi8(act(r, gi, o), wv) } else { act(r, gi, o) };
                            *acc = dot4::<VNNI>(*acc, wu, av, ones);
                        }
                    }
                }
                let at = gi * pairs * NR + h8;
                let (s, mi) = match F {
                    0 => (_mm256_loadu_ps(scale_min.add(at)), _mm256_loadu_ps(scale_min.add(at + NR))),
                    1 => (f16s(dp.add(at)), _mm256_setzero_ps()),
                    5 => (_mm256_loadu_ps(scale_min.add(at)), _mm256_setzero_ps()),
                    4 => (_mm256_mul_ps(dv, bytes_ps(sub.add(at), true)), _mm256_setzero_ps()),
                    _ => (
                        _mm256_mul_ps(dv, bytes_ps(sub.add(at), false)),
                        _mm256_mul_ps(dminv, bytes_ps(sub.add(at + NR), false)),
                    ),
                };
                for r in 0..MR {
                    let s = if per_group { _mm256_mul_ps(s, _mm256_set1_ps(*ad.add((r0 + r) * ng + gi))) } else { s };
                    f[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r]), s, f[r]);
                    if Format::has_min(F) {
                        let sum = _mm256_set1_ps(*asum.add((r0 + r) * ng + gi));
                        f[r] = _mm256_fnmadd_ps(mi, sum, f[r]);
                    }
                }
            }
            for (r, f) in f.iter().enumerate() {
                let d = _mm256_set1_ps(if per_group { 1.0 } else { *ad.add((r0 + r) * nblocks + blk) });
                let o = out.add((r0 + r) * w.n + t * NR + h8);
                let y = if blk == 0 { _mm256_mul_ps(*f, d) } else { _mm256_fmadd_ps(*f, d, _mm256_loadu_ps(o)) };
                _mm256_storeu_ps(o, y);
            }
        }
    }
}

/// Operands (4 quants each) whose `vpmaddubsw` products one 16-bit sum can hold without
/// overflow, `2 * operands * max_q * 127 <= i16::MAX`: Q4_K 8, Q5_K 4, Q6_K 2.
const fn plain_chunk(f: u8) -> usize {
    match Format::high_bits(f) {
        0 => 8,
        1 => 4,
        _ => 2,
    }
}

/// The K-quants without VNNI, as GGML's AVX2 dot products: a group's `vpmaddubsw` products
/// are summed in 16 bits as far as they cannot overflow ([`plain_chunk`]), and `vpmaddwd`
/// with the group's scale takes them to 32 bits, so a block is one exact integer sum per row
/// and column, converted to f32 once. The mins (Q4_K, Q5_K) and the offset (Q6_K) are the
/// activations' group sums times the group's min or scale, `vpmaddwd` two groups at a time.
/// `MR` rows times `H` halves (8 columns each) of tile `t`, the halves sharing each broadcast.
#[inline(always)]
unsafe fn kquant_kernel_plain<const MR: usize, const H: usize, const F: u8>(
    w: &PackedQ,
    a: &QuantAct,
    t: usize,
    r0: usize,
    out: *mut f32,
) {
    let (g, hb, pairs) = (Format::group(F), Format::high_bits(F), Format::pairs(F));
    let (k, ng, gpb, nblocks) = (w.k, w.k / g, QK / g, w.k / QK);
    let (hg, loads) = (g / 8, plain_chunk(F) / 2);
    let signed_scales = F == Format::K6 as u8;
    let qs = w.qs.as_ptr().add(t * NR * k / 2);
    let qh = w.qh.as_ptr().wrapping_add(t * NR * ng * 4);
    let sub = w.sub.as_ptr().add(t * ng * pairs * NR);
    let dp = w.d.as_ptr().add(t * pairs * NR * nblocks);
    let (aq, ad, s16) = (a.q.as_ptr(), a.d.as_ptr(), a.sum16.as_ptr());
    let low4 = _mm256_set1_epi8(0x0F);
    let high = _mm256_set1_epi8((((1 << hb) - 1) << 4) as i8);
    let act = |r: usize, gi: usize, o: usize| {
        _mm256_set1_epi32(std::ptr::read_unaligned(aq.add((r0 + r) * k + gi * g + o * 4) as *const i32))
    };
    let f16s = |p: *const u16| _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
    // 8 columns' scale bytes as i16, repeated in both halves of each 32-bit lane.
    let scales = |p: *const u8| {
        let b = _mm_loadl_epi64(p as *const __m128i);
        let v = if signed_scales { _mm256_cvtepi8_epi32(b) } else { _mm256_cvtepu8_epi32(b) };
        _mm256_blend_epi16::<0b1010_1010>(v, _mm256_slli_epi32::<16>(v))
    };
    // 8 columns' bytes of two groups as i16 pairs, one pair per 32-bit lane.
    let two_groups = |p: *const u8| {
        let b = _mm_unpacklo_epi8(
            _mm_loadl_epi64(p as *const __m128i),
            _mm_loadl_epi64(p.add(pairs * NR) as *const __m128i),
        );
        if signed_scales {
            _mm256_cvtepi8_epi16(b)
        } else {
            _mm256_cvtepu8_epi16(b)
        }
    };
    for h0 in (0..2).step_by(H) {
        for blk in 0..nblocks {
            let mut acc = [[_mm256_setzero_si256(); H]; MR];
            for gb in 0..gpb {
                let gi = blk * gpb + gb;
                let sc: [__m256i; H] = std::array::from_fn(|h| scales(sub.add(gi * pairs * NR + (h0 + h) * 8)));
                let hv: [__m256i; H] = std::array::from_fn(|h| {
                    if hb > 0 {
                        _mm256_loadu_si256(qh.add(gi * NR * 4 + (h0 + h) * 32) as *const __m256i)
                    } else {
                        _mm256_setzero_si256()
                    }
                });
                let mut p = [[_mm256_setzero_si256(); H]; MR];
                for j in 0..hg {
                    let mut lo = [_mm256_setzero_si256(); H];
                    let mut hi = [_mm256_setzero_si256(); H];
                    for h in 0..H {
                        let n = _mm256_loadu_si256(qs.add((gi * hg + j) * NR * 4 + (h0 + h) * 32) as *const __m256i);
                        lo[h] = _mm256_and_si256(n, low4);
                        hi[h] = _mm256_and_si256(_mm256_srli_epi16::<4>(n), low4);
                        if hb > 0 {
                            lo[h] = _mm256_or_si256(lo[h], _mm256_and_si256(bits_to_4(hv[h], j * hb), high));
                            hi[h] = _mm256_or_si256(hi[h], _mm256_and_si256(bits_to_4(hv[h], (j + hg) * hb), high));
                        }
                    }
                    for r in 0..MR {
                        let (al, ah) = (act(r, gi, j), act(r, gi, j + hg));
                        for h in 0..H {
                            let s = _mm256_add_epi16(_mm256_maddubs_epi16(lo[h], al), _mm256_maddubs_epi16(hi[h], ah));
                            p[r][h] = if j % loads == 0 { s } else { _mm256_add_epi16(p[r][h], s) };
                        }
                    }
                    if (j + 1) % loads == 0 {
                        for r in 0..MR {
                            for h in 0..H {
                                acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(p[r][h], sc[h]));
                            }
                        }
                    }
                }
            }
            for h in 0..H {
                let h8 = (h0 + h) * 8;
                // Q4_K/Q5_K: sum(m * asum) from the mins; Q6_K: sum(sc * asum) from the scales.
                let mut ms = [_mm256_setzero_si256(); MR];
                for gb in (0..gpb).step_by(2) {
                    let gi = blk * gpb + gb;
                    let wv = two_groups(sub.add(gi * pairs * NR + (pairs - 1) * NR + h8));
                    for r in 0..MR {
                        let sv = std::ptr::read_unaligned(s16.add((r0 + r) * ng + gi) as *const i32);
                        ms[r] = _mm256_add_epi32(ms[r], _mm256_madd_epi16(wv, _mm256_set1_epi32(sv)));
                    }
                }
                let at = blk * pairs * NR + h8;
                let dv = f16s(dp.add(at));
                let dminv = if pairs == 2 { f16s(dp.add(at + NR)) } else { _mm256_setzero_ps() };
                for r in 0..MR {
                    let o = out.add((r0 + r) * w.n + t * NR + h8);
                    let adr = _mm256_set1_ps(*ad.add((r0 + r) * nblocks + blk));
                    let prev = if blk == 0 { _mm256_setzero_ps() } else { _mm256_loadu_ps(o) };
                    let y = if pairs == 2 {
                        let y = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][h]), _mm256_mul_ps(dv, adr), prev);
                        _mm256_fnmadd_ps(_mm256_cvtepi32_ps(ms[r]), _mm256_mul_ps(dminv, adr), y)
                    } else {
                        let q = _mm256_sub_epi32(acc[r][h], _mm256_slli_epi32::<5>(ms[r]));
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), _mm256_mul_ps(dv, adr), prev)
                    };
                    _mm256_storeu_ps(o, y);
                }
            }
        }
    }
}

#[inline(always)]
unsafe fn qgemm_unit_any<const VNNI: bool>(
    w: &PackedQ,
    a: &QuantAct,
    tiles: Range<usize>,
    r0: usize,
    r1: usize,
    out: *mut f32,
) {
    // Timed on a Zen 4 with the plain table forced (2 to 5 rows, one or two halves): plain
    // Q4_K runs best with 3 rows and both halves of a tile (one activation broadcast feeds two
    // registers of weights); Q5_K and Q6_K, whose high bits take registers to decode, with 4
    // rows and one half.
    let mr = if !VNNI && w.format == Format::K4 { 3 } else { QMR };
    macro_rules! go {
        ($mr:literal, $t:expr, $r:expr) => {
            match w.format {
                Format::Bytes => qgemm_kernel::<$mr, 0, VNNI>(w, a, $t, $r, out),
                Format::Q8 => qgemm_kernel::<$mr, 1, VNNI>(w, a, $t, $r, out),
                Format::K4 if !VNNI => kquant_kernel_plain::<$mr, 2, 2>(w, a, $t, $r, out),
                Format::K5 if !VNNI => kquant_kernel_plain::<$mr, 1, 3>(w, a, $t, $r, out),
                Format::K6 if !VNNI => kquant_kernel_plain::<$mr, 1, 4>(w, a, $t, $r, out),
                Format::K4 => qgemm_kernel::<$mr, 2, VNNI>(w, a, $t, $r, out),
                Format::K5 => qgemm_kernel::<$mr, 3, VNNI>(w, a, $t, $r, out),
                Format::K6 => qgemm_kernel::<$mr, 4, VNNI>(w, a, $t, $r, out),
                Format::K6Bytes => qgemm_kernel::<$mr, 5, VNNI>(w, a, $t, $r, out),
            }
        };
    }
    for r in (r0..r1).step_by(mr) {
        for t in tiles.clone() {
            match (r1 - r).min(mr) {
                1 => go!(1, t, r),
                2 => go!(2, t, r),
                3 => go!(3, t, r),
                _ => go!(4, t, r),
            }
        }
    }
}

/// # Safety
/// As `QUnitFn`; AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn qgemm_unit(w: &PackedQ, a: &QuantAct, tiles: Range<usize>, r0: usize, r1: usize, out: *mut f32) {
    qgemm_unit_any::<false>(w, a, tiles, r0, r1, out)
}

/// # Safety
/// As `QUnitFn`; AVX2, FMA and AVX-VNNI available.
#[target_feature(enable = "avx2,fma,avxvnni")]
pub unsafe fn qgemm_unit_vnni(w: &PackedQ, a: &QuantAct, tiles: Range<usize>, r0: usize, r1: usize, out: *mut f32) {
    qgemm_unit_any::<true>(w, a, tiles, r0, r1, out)
}

// ---- dense GEMM

/// Activation rows per dense kernel call; one call covers one tile (two registers of 8).
const DMR: usize = 6;

/// `R` rows from `r0` times tile `t`. F16/F32: f32 FMA of the widened weights; BF16: the
/// weights widened exactly (a bf16 is the top half of an f32) against the bf16-rounded
/// activations, so each product is exact and sums run in f32 as with `vdpbf16ps`.
#[inline(always)]
unsafe fn dense_kernel<const R: usize>(w: &PackedDense, x: &[f32], xb: &[u32], t: usize, r0: usize, out: *mut f32) {
    let k = w.k;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    match w.kind {
        DenseKind::F16 | DenseKind::F32 => {
            for kk in 0..k {
                let i = t * NR * k + kk * NR;
                let wv: [__m256; 2] = if w.kind == DenseKind::F16 {
                    let p = w.data.as_ptr().add(i);
                    [
                        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)),
                        _mm256_cvtph_ps(_mm_loadu_si128(p.add(8) as *const __m128i)),
                    ]
                } else {
                    let p = w.data32.as_ptr().add(i);
                    [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))]
                };
                for (r, acc) in acc.iter_mut().enumerate() {
                    let a = _mm256_set1_ps(*x.get_unchecked((r0 + r) * k + kk));
                    acc[0] = _mm256_fmadd_ps(a, wv[0], acc[0]);
                    acc[1] = _mm256_fmadd_ps(a, wv[1], acc[1]);
                }
            }
        }
        DenseKind::Bf16 => {
            let hi = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
            for kp in 0..k / 2 {
                let p = w.data.as_ptr().add(t * NR * k + kp * NR * 2);
                // 8 (even, odd) pairs per load: even weights to the top half, odd ones masked.
                let raw = [_mm256_loadu_si256(p as *const __m256i), _mm256_loadu_si256(p.add(16) as *const __m256i)];
                let we = raw.map(|v| _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v)));
                let wo = raw.map(|v| _mm256_castsi256_ps(_mm256_and_si256(v, hi)));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let pair = *xb.get_unchecked((r0 + r) * (k / 2) + kp);
                    let x0 = _mm256_set1_ps(f32::from_bits(pair << 16));
                    let x1 = _mm256_set1_ps(f32::from_bits(pair & 0xFFFF_0000));
                    for h in 0..2 {
                        acc[h] = _mm256_fmadd_ps(x0, we[h], acc[h]);
                        acc[h] = _mm256_fmadd_ps(x1, wo[h], acc[h]);
                    }
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let o = out.add((r0 + r) * w.n + t * NR);
        _mm256_storeu_ps(o, acc[0]);
        _mm256_storeu_ps(o.add(8), acc[1]);
    }
}

/// # Safety
/// As `DenseUnitFn`; AVX2, FMA and F16C available.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dense_unit(
    w: &PackedDense,
    x: &[f32],
    xb: &[u32],
    tiles: Range<usize>,
    r0: usize,
    r1: usize,
    out: *mut f32,
) {
    for t in tiles {
        let mut r = r0;
        while r < r1 {
            let step = (r1 - r).min(DMR);
            match step {
                1 => dense_kernel::<1>(w, x, xb, t, r, out),
                2 => dense_kernel::<2>(w, x, xb, t, r, out),
                3 => dense_kernel::<3>(w, x, xb, t, r, out),
                4 => dense_kernel::<4>(w, x, xb, t, r, out),
                5 => dense_kernel::<5>(w, x, xb, t, r, out),
                _ => dense_kernel::<6>(w, x, xb, t, r, out),
            }
            r += step;
        }
    }
}

// ---- attention and elementwise kernels

/// e^x, |relative error| about 2e-7; e^x = 0 for x < -104 (and for -inf). 2^n is applied in
/// two halves so that results below the smallest normal float come out right.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp(x: __m256) -> __m256 {
    let x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.5)), _mm256_set1_ps(-104.0));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_145_75), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428_606_8e-6), r);
    let mut p = _mm256_set1_ps(1.0 / 5040.0);
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(ni);
    let n2 = _mm256_sub_epi32(ni, n1);
    let pow2 = |e: __m256i| _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(e, _mm256_set1_epi32(127))));
    _mm256_mul_ps(_mm256_mul_ps(p, pow2(n1)), pow2(n2))
}

/// AVX2's vector of 8 floats.
#[derive(Clone, Copy)]
pub struct F32x8(__m256);

impl Lanes for F32x8 {
    const W: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        F32x8(_mm256_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        F32x8(_mm256_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm256_storeu_ps(p, self.0)
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        F32x8(_mm256_fmadd_ps(self.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        F32x8(_mm256_mul_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn div(self, b: Self) -> Self {
        F32x8(_mm256_div_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        F32x8(_mm256_add_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        F32x8(_mm256_sub_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn max(self, b: Self) -> Self {
        F32x8(_mm256_max_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn exp(self) -> Self {
        F32x8(exp(self.0))
    }
    #[inline(always)]
    unsafe fn reduce_max(self) -> f32 {
        hmax(self.0)
    }
    #[inline(always)]
    unsafe fn reduce_add(self) -> f32 {
        hsum(self.0)
    }
    #[inline(always)]
    unsafe fn scale_visible(self, scale: Self, first: usize, visible: usize) -> Self {
        let idx = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(first as i32));
        let mask = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(visible as i32), idx));
        F32x8(_mm256_blendv_ps(_mm256_set1_ps(f32::NEG_INFINITY), _mm256_mul_ps(self.0, scale.0), mask))
    }
}

/// # Safety
/// AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn silu_mul(g: &mut [f32], u: &[f32]) {
    lanes::silu_mul::<F32x8>(g, u)
}

/// Query rows per register tile (2 rows x 4 vectors of keys take 8 of the 16 registers).
const BQ: usize = 2;

/// # Safety
/// AVX2 and FMA available; `a` as `ops::attention` checks it.
pub unsafe fn attention(a: &Attention, out: &mut [f32]) {
    lanes::attention::<F32x8, F32Products, BQ>(a, out, attention_unit)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn attention_unit(a: &Attention, kv: &KvPerHead, sp: &Span, kvh: usize, i0: usize, out: *mut f32) {
    lanes::attention_unit::<F32x8, F32Products, BQ, 32>(a, kv, sp, kvh, i0, out)
}

super::elementwise!("avx2,fma");
