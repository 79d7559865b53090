//! x86-64 kernels: AVX2 (+FMA, F16C) and AVX-512.

pub mod avx2;
pub mod avx512;

use super::Kernels;

static AVX2: Kernels = avx2::KERNELS;
static AVX512: Kernels = avx512::KERNELS;
/// AVX-512 without AVX512_BF16 (Skylake-X to Ice Lake): BF16 weights take the AVX2 kernel.
static AVX512_NO_BF16: Kernels = Kernels {
    dense_unit: [avx512::dense_unit, avx2::dense_unit, avx512::dense_unit],
    ..avx512::KERNELS
};

pub fn avx2_kernels() -> &'static Kernels {
    &AVX2
}

pub fn avx512_kernels() -> &'static Kernels {
    if std::is_x86_feature_detected!("avx512bf16") {
        &AVX512
    } else {
        &AVX512_NO_BF16
    }
}
