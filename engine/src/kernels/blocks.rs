//! GGML's quantized block layouts, as `ggml-common.h` defines them. GGUF data is a byte
//! stream with no alignment promise, so blocks are read with [`read`], never cast in place.

use half::f16;

/// Values per k-quant super-block.
pub const QK_K: usize = 256;
/// Values per Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 block.
pub const QK32: usize = 32;
/// Bytes of packed 6-bit scales and mins in a Q4_K/Q5_K block.
pub const K_SCALE_SIZE: usize = 12;

/// `d * (q - 8)`, `q` 4 bits: value `j` is the low nibble of `qs[j]`, value `j + 16` the high.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK32 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

/// `d * q + m`, `q` 4 bits, nibbles as in Q4_0.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK32 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

/// `d * (q - 16)`, `q` 5 bits: nibbles as in Q4_0, fifth bit of value `j` is bit `j` of the
/// little-endian `qh`.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK32 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

/// `d * q + m`, `q` 5 bits as in Q5_0.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK32 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);

/// `d * q`, `q` a signed byte.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK32],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// 8 groups of 32: `d * sc[j] * q - dmin * m[j]`, 6-bit `sc`/`m` packed in `scales`.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

/// As Q4_K with a fifth bit per value in `qh`.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);

/// 16 groups of 16: `d * sc[j] * (q - 32)`, `q` 6 bits (low 4 in `ql`, high 2 in `qh`).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

/// A GGML block type: plain bytes, every bit pattern valid.
///
/// # Safety
/// Implementors are `#[repr(C)]` structs of integers, byte arrays and `f16`, with no padding.
pub unsafe trait Block: Copy {}
// SAFETY: each is #[repr(C)] of u8/i8 arrays and f16, and its size assertion above rules out
// padding.
unsafe impl Block for BlockQ4_0 {}
// SAFETY: as above.
unsafe impl Block for BlockQ4_1 {}
// SAFETY: as above.
unsafe impl Block for BlockQ5_0 {}
// SAFETY: as above.
unsafe impl Block for BlockQ5_1 {}
// SAFETY: as above.
unsafe impl Block for BlockQ8_0 {}
// SAFETY: as above.
unsafe impl Block for BlockQ4K {}
// SAFETY: as above.
unsafe impl Block for BlockQ5K {}
// SAFETY: as above.
unsafe impl Block for BlockQ6K {}

/// The block at the start of `b`.
pub fn read<B: Block>(b: &[u8]) -> B {
    assert!(b.len() >= std::mem::size_of::<B>());
    // SAFETY: the length is checked, the read is unaligned, and every bit pattern is a valid
    // `B` (`Block`).
    unsafe { std::ptr::read_unaligned(b.as_ptr() as *const B) }
}
