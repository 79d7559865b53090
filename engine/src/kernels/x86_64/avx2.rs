//! The AVX2 kernels (with FMA and F16C; x86-64-v3).

use std::ops::Range;

use crate::kernels::dense::PackedDense;
use crate::kernels::ops::Attention;
use crate::kernels::{generic, Isa, Kernels};

pub const KERNELS: Kernels = Kernels {
    isa: Isa::Avx2,
    quantize_block: generic::quantize_block,
    shift_signed: false,
    qgemm_unit: generic::qgemm_unit,
    dense_unit: [dense_unit, dense_unit, dense_unit],
    attention,
    rms_rows,
    silu_mul: generic::silu_mul,
    rope_row,
    add,
};

/// # Safety
/// As `DenseUnitFn`; AVX2, FMA and F16C available.
pub unsafe fn dense_unit(
    w: &PackedDense,
    x: &[f32],
    xb: &[u32],
    tiles: Range<usize>,
    r0: usize,
    r1: usize,
    out: *mut f32,
) {
    // SAFETY: as this function's contract.
    unsafe { generic::dense_unit(w, x, xb, tiles, r0, r1, out) }
}

/// # Safety
/// AVX2 and FMA available.
pub unsafe fn attention(a: &Attention, out: &mut [f32]) {
    generic::attention(a, out)
}

/// # Safety
/// AVX2 available; `out` as long as `x`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn rms_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    generic::rms_rows_inline(x, w, eps, out)
}

/// # Safety
/// AVX2 available.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn rope_row(row: &mut [f32], hd: usize, cos: &[f32], sin: &[f32]) {
    generic::rope_row_inline(row, hd, cos, sin)
}

/// # Safety
/// AVX2 available.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn add(a: &mut [f32], b: &[f32]) {
    generic::add_inline(a, b)
}
