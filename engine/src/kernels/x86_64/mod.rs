//! x86-64 kernels: AVX2 (+FMA, F16C) and AVX-512; attention and SiLU written once over the
//! vector width (`lanes.rs`).

/// The elementwise kernels whose one body (`generic::*_inline`) the compiler vectorizes for
/// the instruction set `$features` enables: `rms_rows`, `rope_row`, `add`.
macro_rules! elementwise {
    ($features:literal) => {
        /// # Safety
        /// The CPU has the instruction set of this table; `out` as long as `x`.
        #[target_feature(enable = $features)]
        pub unsafe fn rms_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
            generic::rms_rows_inline(x, w, eps, out)
        }

        /// # Safety
        /// The CPU has the instruction set of this table.
        #[target_feature(enable = $features)]
        pub unsafe fn rope_row(row: &mut [f32], hd: usize, cos: &[f32], sin: &[f32]) {
            generic::rope_row_inline(row, hd, cos, sin)
        }

        /// # Safety
        /// The CPU has the instruction set of this table.
        #[target_feature(enable = $features)]
        pub unsafe fn add(a: &mut [f32], b: &[f32]) {
            generic::add_inline(a, b)
        }
    };
}
use elementwise;

mod attention_int16;
pub mod avx2;
pub mod avx512;
mod lanes;
mod lanes512;

use super::Kernels;

static AVX2: Kernels = avx2::KERNELS;
static AVX2_VNNI: Kernels = avx2::KERNELS_VNNI;
static AVX512: Kernels = avx512::KERNELS;
/// AVX-512 without AVX512_BF16 (Skylake-X to Ice Lake): BF16 weights take the AVX2 kernel.
static AVX512_NO_BF16: Kernels = Kernels {
    name: "avx512 (bf16 on avx2)",
    code: "avx512_nobf16",
    dense_unit: [avx512::dense_unit, avx2::dense_unit, avx512::dense_unit],
    ..avx512::KERNELS
};

pub fn avx2_kernels() -> &'static Kernels {
    if std::is_x86_feature_detected!("avxvnni") {
        &AVX2_VNNI
    } else {
        &AVX2
    }
}

pub fn avx512_kernels() -> &'static Kernels {
    if std::is_x86_feature_detected!("avx512bf16") {
        &AVX512
    } else {
        &AVX512_NO_BF16
    }
}

/// Every table of this architecture, whether or not this CPU runs it (never call through one
/// that `tables()` does not return).
pub fn all_tables() -> [&'static Kernels; 4] {
    [&AVX2, &AVX2_VNNI, &AVX512_NO_BF16, &AVX512]
}

/// Every table this CPU runs.
pub fn tables() -> Vec<&'static Kernels> {
    let mut v = Vec::new();
    if super::Isa::Avx2.supported() {
        v.push(&AVX2);
        if std::is_x86_feature_detected!("avxvnni") {
            v.push(&AVX2_VNNI);
        }
    }
    if super::Isa::Avx512.supported() {
        v.push(&AVX512_NO_BF16);
        if std::is_x86_feature_detected!("avx512bf16") {
            v.push(&AVX512);
        }
    }
    v
}
