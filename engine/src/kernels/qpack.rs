//! The packed layout of quantized weights: GGUF blocks regrouped, once at load, into tiles of
//! 16 output rows, at (nearly) the bit width of the file.
//!
//! Every weight is `s * (q - offset) - min` with `q` a quant and `(s, min)` per output row `c`
//! and group `g` of `G` consecutive `k` (`G` = 16 for Q6_K, 32 otherwise), computed in f32
//! exactly as GGML dequantizes:
//!
//! | kind | q | offset | s | min | bytes per weight (GGUF) |
//! |---|---|---|---|---|---|
//! | Q4_K | 4 bits | 0 | `d * sc` | `dmin * m` | 0.578 (0.5625) |
//! | Q5_K | 5 bits | 0 | `d * sc` | `dmin * m` | 0.703 (0.6875) |
//! | Q6_K | 6 bits | 32 | `d * sc` (sc signed) | 0 | 0.820 (0.8203) |
//! | Q8_0 | signed byte | 0 | `d` | 0 | 1.125 (1.0625) |
//! | Q4_0, Q5_0 | 4/5 bits | 0 | `d` | `8 d`, `16 d` | 1.25 |
//! | Q4_1, Q5_1 | 4/5 bits | 0 | `d` | `-m` | 1.25 |
//!
//! Kernels multiply unsigned bytes with signed ones (`vpdpbusd`'s operands). Unsigned quants
//! (all but Q8_0) meet signed activations, and Q6_K's offset is taken out by starting each
//! group's integer sum at `-32 * sum(a)` (`QuantAct::bias`). Q8_0 meets activations shifted
//! to unsigned bytes (`a + 128`) where the kernels take them so (`Kernels::shift_signed`),
//! and its stored `corr` removes the shift; elsewhere it is multiplied by magnitude and sign.
//!
//! A kernel operand is `[16 rows][4 k]` bytes, the quants of 16 rows at `k4`, one of the `G/4`
//! runs of 4 `k` of a group. Arrays, each `[n/16]` tiles of:
//! * `qs`: legacy kinds and Q8_0 one byte per quant, `[k/G][G/4][16][4]`; K-quants nibbles,
//!   `[k/G][G/8][16][4]`, where byte `j` holds operand `j` in its low nibble and operand
//!   `j + G/8` in its high one, so one load and two masks give two operands.
//! * `qh` (Q5_K, Q6_K): `[k/G][16][4]`, the bits above the nibble of all the group's operands:
//!   bits `o*h..(o+1)*h` of a byte belong to operand `o` (`h` = 1 for Q5_K: 8 operands; 2 for
//!   Q6_K: 4 operands), so one shift and one mask put them above operand `o`'s nibble.
//! * `sub` (K-quants): `[k/G][16]` sub-block scales as the block stores them (Q6_K's are i8
//!   bits), followed in Q4_K/Q5_K by `[16]` sub-block mins: `[k/G][2][16]`.
//! * `d` (f16 bits): K-quants `[k/256][16]` super-block scales, followed in Q4_K/Q5_K by
//!   `[16]` `dmin`; Q8_0 `[k/G][16]`.
//! * `corr` (Q8_0): `[k/G][16]`, `-sum(q)` of each row's group, in `[-4064, 4096]`.
//! * `scale_min` (legacy kinds): f32 `[k/G][2][16]`.

use half::f16;
use rayon::prelude::*;

use super::blocks::{self, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0};
use crate::buf::{Buf, Region};
use candle_core::quantized::GgmlDType;

/// Output rows per tile (one zmm of f32).
pub const NR: usize = 16;
/// Activation quantization block (values per scale), and the `k` every packed weight divides.
pub const QK: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QKind {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q4K,
    Q5K,
    Q6K,
    Q8_0,
}

impl QKind {
    pub const ALL: [QKind; 8] =
        [QKind::Q4_0, QKind::Q4_1, QKind::Q5_0, QKind::Q5_1, QKind::Q4K, QKind::Q5K, QKind::Q6K, QKind::Q8_0];

    /// The GGML type it packs: the one mapping between the two.
    pub fn ggml(self) -> GgmlDType {
        match self {
            QKind::Q4_0 => GgmlDType::Q4_0,
            QKind::Q4_1 => GgmlDType::Q4_1,
            QKind::Q5_0 => GgmlDType::Q5_0,
            QKind::Q5_1 => GgmlDType::Q5_1,
            QKind::Q4K => GgmlDType::Q4K,
            QKind::Q5K => GgmlDType::Q5K,
            QKind::Q6K => GgmlDType::Q6K,
            QKind::Q8_0 => GgmlDType::Q8_0,
        }
    }

    /// The kind that packs a GGML type, if our kernels take it.
    pub fn of(t: GgmlDType) -> Option<QKind> {
        QKind::ALL.into_iter().find(|k| k.ggml() == t)
    }

    /// Values and bytes of one GGML block.
    pub fn block(self) -> (usize, usize) {
        (self.ggml().block_size(), self.ggml().type_size())
    }
}

/// Whether a `[n, k]` weight of `kind` can be packed.
pub fn supports(kind: QKind, n: usize, k: usize) -> bool {
    n > 0 && n.is_multiple_of(NR) && k > 0 && k.is_multiple_of(QK) && k.is_multiple_of(kind.block().0)
}

/// How a kind's quants and scales are stored (the module docs); kernels take it as a const
/// generic (`Format::X as u8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Q4_0, Q4_1, Q5_0, Q5_1: a byte per quant, f32 `scale` and `min`.
    Bytes = 0,
    /// Q8_0: a byte per quant, f16 `d` per group.
    Q8 = 1,
    /// Q4_K: nibbles, `sc`, `m`, `d`, `dmin`.
    K4 = 2,
    /// Q5_K: as Q4_K with one bit per quant in `qh`.
    K5 = 3,
    /// Q6_K: nibbles, two bits per quant in `qh`, `sc`, `d`.
    K6 = 4,
    /// Never stored: the AVX-512 kernel's copy of Q6_K tiles decoded for many rows,
    /// a byte per quant (as `Bytes`) and the f32 `d * sc` in `scale_min`.
    K6Bytes = 5,
}

impl Format {
    pub fn of(kind: QKind) -> Format {
        match kind {
            QKind::Q4K => Format::K4,
            QKind::Q5K => Format::K5,
            QKind::Q6K => Format::K6,
            QKind::Q8_0 => Format::Q8,
            _ => Format::Bytes,
        }
    }

    /// Values per group (`s`, `min` pair).
    pub const fn group(f: u8) -> usize {
        if f == Format::K6 as u8 || f == Format::K6Bytes as u8 {
            16
        } else {
            32
        }
    }

    /// Subtracted from every stored quant.
    pub const fn offset(f: u8) -> i32 {
        if f == Format::K6 as u8 || f == Format::K6Bytes as u8 {
            32
        } else {
            0
        }
    }

    /// Multiplied as signed bytes by kernels with shifted activations (`shift_signed`).
    pub const fn signed(f: u8) -> bool {
        f == Format::Q8 as u8
    }

    /// Meets activations with a scale per group (Q8_0, as GGML's Q8_0 dot product), which then
    /// multiplies the group's weight scale; the others take one per 256 values.
    pub const fn group_act_scales(f: u8) -> bool {
        f == Format::Q8 as u8
    }

    /// Quants stored as nibbles, two operands per byte.
    pub const fn nibbles(f: u8) -> bool {
        f == Format::K4 as u8 || f == Format::K5 as u8 || f == Format::K6 as u8
    }

    /// Bits per quant above the nibble, in `qh`.
    pub const fn high_bits(f: u8) -> usize {
        match f {
            3 => 1,
            4 => 2,
            _ => 0,
        }
    }

    /// Has a per-group min term (and no offset).
    pub const fn has_min(f: u8) -> bool {
        f == Format::Bytes as u8 || f == Format::K4 as u8 || f == Format::K5 as u8
    }

    /// Scales per row and group (or block) in `sub`, `d` and `scale_min`: 2 with a min term.
    pub const fn pairs(f: u8) -> usize {
        if Format::has_min(f) {
            2
        } else {
            1
        }
    }
}

/// A weight `[n, k]` in the layout described in the module docs.
pub struct PackedQ {
    pub kind: QKind,
    pub n: usize,
    pub k: usize,
    /// Unique in this process: what a kernel's decoded copy of some tiles is keyed by.
    pub(in crate::kernels) id: u64,
    pub(in crate::kernels) format: Format,
    pub(in crate::kernels) group: usize,
    pub(in crate::kernels) qs: Buf<u8>,
    pub(in crate::kernels) qh: Buf<u8>,
    pub(in crate::kernels) sub: Buf<u8>,
    pub(in crate::kernels) d: Buf<u16>,
    pub(in crate::kernels) scale_min: Buf<f32>,
    pub(in crate::kernels) corr: Buf<i16>,
}

fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The scales of one GGML block: `d`/`dmin` as f16 bits, the sub-block scales and mins
/// (K-quants), and the f32 scale and min of the legacy kinds' single group.
#[derive(Default)]
struct BlockScales {
    d: u16,
    dmin: u16,
    sc: [u8; 16],
    m: [u8; 16],
    scale: f32,
    min: f32,
}

/// GGML's 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K block.
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Unpacks one GGML block into `q` (the block's unsigned quants, in `k` order) and its scales.
fn unpack_block(kind: QKind, b: &[u8], q: &mut [u8]) -> BlockScales {
    // The 32-value kinds: nibbles (value j low, j + 16 high) and an optional fifth bit.
    let q32 = |q: &mut [u8], qs: &[u8; 16], qh: Option<[u8; 4]>| {
        let qh = qh.map_or(0, u32::from_le_bytes);
        for j in 0..16 {
            q[j] = (qs[j] & 0xF) | (((qh >> j) & 1) << 4) as u8;
            q[j + 16] = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4) as u8;
        }
    };
    let legacy = |d: f16, min: f32| BlockScales { scale: d.to_f32(), min, ..Default::default() };
    match kind {
        QKind::Q4_0 => {
            let b: BlockQ4_0 = blocks::read(b);
            q32(q, &b.qs, None);
            legacy(b.d, 8.0 * b.d.to_f32())
        }
        QKind::Q4_1 => {
            let b: BlockQ4_1 = blocks::read(b);
            q32(q, &b.qs, None);
            legacy(b.d, -b.m.to_f32())
        }
        QKind::Q5_0 => {
            let b: BlockQ5_0 = blocks::read(b);
            q32(q, &b.qs, Some(b.qh));
            legacy(b.d, 16.0 * b.d.to_f32())
        }
        QKind::Q5_1 => {
            let b: BlockQ5_1 = blocks::read(b);
            q32(q, &b.qs, Some(b.qh));
            legacy(b.d, -b.m.to_f32())
        }
        QKind::Q4K | QKind::Q5K => {
            let (d, dmin, scales, qs, qh) = if kind == QKind::Q5K {
                let b: BlockQ5K = blocks::read(b);
                (b.d, b.dmin, b.scales, b.qs, Some(b.qh))
            } else {
                let b: BlockQ4K = blocks::read(b);
                (b.d, b.dmin, b.scales, b.qs, None)
            };
            for c in 0..4 {
                for l in 0..32 {
                    let byte = qs[c * 32 + l];
                    let (mut lo, mut hi) = (byte & 0xF, byte >> 4);
                    if let Some(qh) = qh {
                        lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                        hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
                    }
                    q[c * 64 + l] = lo;
                    q[c * 64 + 32 + l] = hi;
                }
            }
            let mut s = BlockScales { d: d.to_bits(), dmin: dmin.to_bits(), ..Default::default() };
            for j in 0..8 {
                (s.sc[j], s.m[j]) = scale_min_k4(j, &scales);
            }
            s
        }
        QKind::Q6K => {
            let b: BlockQ6K = blocks::read(b);
            for h in 0..2 {
                let (ql, qh) = (&b.ql[h * 64..], &b.qh[h * 32..]);
                let o = h * 128;
                for l in 0..32 {
                    q[o + l] = (ql[l] & 0xF) | ((qh[l] & 3) << 4);
                    q[o + l + 32] = (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4);
                    q[o + l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                    q[o + l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                }
            }
            BlockScales { d: b.d.to_bits(), sc: b.scales.map(|s| s as u8), ..Default::default() }
        }
        QKind::Q8_0 => {
            let b: BlockQ8_0 = blocks::read(b);
            for (q, &v) in q.iter_mut().zip(&b.qs) {
                *q = v as u8;
            }
            BlockScales { d: b.d.to_bits(), ..Default::default() }
        }
    }
}

/// Sizes of the arrays of one tile (16 rows), in elements, in `parts()` order.
fn tile_sizes(f: Format, k: usize) -> [usize; 6] {
    let fu = f as u8;
    let (ng, nb) = (k / Format::group(fu), k / blocks::QK_K);
    let (kq, pairs) = (Format::nibbles(fu), Format::pairs(fu));
    [
        if kq { NR * k / 2 } else { NR * k },
        if Format::high_bits(fu) > 0 { NR * ng * 4 } else { 0 },
        if kq { NR * ng * pairs } else { 0 },
        match f {
            Format::Q8 => NR * ng,
            _ if kq => NR * nb * pairs,
            _ => 0,
        },
        if f == Format::Bytes { NR * ng * 2 } else { 0 },
        if f == Format::Q8 { NR * ng } else { 0 },
    ]
}

/// One tile's arrays while packing.
struct Tile {
    qs: Vec<u8>,
    qh: Vec<u8>,
    sub: Vec<u8>,
    d: Vec<u16>,
    scale_min: Vec<f32>,
    corr: Vec<i16>,
}

impl Tile {
    /// Packs the 16 rows `rows(r)` (GGML row-major data) of a tile.
    fn pack<'a>(kind: QKind, k: usize, rows: impl Fn(usize) -> &'a [u8]) -> Tile {
        let f = Format::of(kind);
        let fu = f as u8;
        let (bv, bb) = kind.block();
        let g = Format::group(fu);
        let [qs, qh, sub, d, scale_min, corr] = tile_sizes(f, k);
        let mut t = Tile {
            qs: vec![0; qs],
            qh: vec![0; qh],
            sub: vec![0; sub],
            d: vec![0; d],
            scale_min: vec![0.0; scale_min],
            corr: vec![0; corr],
        };
        let (gpb, ops, hb, pairs) = (bv / g, g / 4, Format::high_bits(fu), Format::pairs(fu));
        let mut q = vec![0u8; k];
        for r in 0..NR {
            for (bi, b) in rows(r).chunks_exact(bb).enumerate() {
                let s = unpack_block(kind, b, &mut q[bi * bv..][..bv]);
                for j in 0..gpb {
                    let at = (bi * gpb + j) * pairs * NR + r;
                    match f {
                        Format::Bytes => (t.scale_min[at], t.scale_min[at + NR]) = (s.scale, s.min),
                        Format::Q8 => {
                            t.d[at] = s.d;
                            let sum: i16 = q[bi * bv..][..bv].iter().map(|&v| v as i8 as i16).sum();
                            t.corr[at] = -sum;
                        }
                        _ => {
                            t.sub[at] = s.sc[j];
                            if pairs == 2 {
                                t.sub[at + NR] = s.m[j];
                            }
                        }
                    }
                }
                if Format::nibbles(fu) {
                    let at = bi * pairs * NR + r;
                    t.d[at] = s.d;
                    if pairs == 2 {
                        t.d[at + NR] = s.dmin;
                    }
                }
            }
            for gi in 0..k / g {
                let quant = |o: usize, j: usize| q[gi * g + o * 4 + j];
                for j in 0..4 {
                    if Format::nibbles(fu) {
                        for o in 0..ops / 2 {
                            let byte = (quant(o, j) & 0xF) | ((quant(o + ops / 2, j) & 0xF) << 4);
                            t.qs[((gi * (ops / 2) + o) * NR + r) * 4 + j] = byte;
                        }
                        if hb > 0 {
                            t.qh[(gi * NR + r) * 4 + j] = (0..ops).fold(0, |h, o| h | ((quant(o, j) >> 4) << (o * hb)));
                        }
                    } else {
                        for o in 0..ops {
                            t.qs[((gi * ops + o) * NR + r) * 4 + j] = quant(o, j);
                        }
                    }
                }
            }
        }
        t
    }
}

impl PackedQ {
    /// Packs GGML row-major data of a `[n, k]` tensor (`n` rows of `k` values).
    pub fn pack(kind: QKind, n: usize, k: usize, data: &[u8]) -> Option<PackedQ> {
        let (bv, bb) = kind.block();
        if !supports(kind, n, k) || data.len() != n * (k / bv) * bb {
            return None;
        }
        let row_bytes = (k / bv) * bb;
        let tiles: Vec<Tile> = (0..n / NR)
            .into_par_iter()
            .map(|t| Tile::pack(kind, k, |r| &data[(t * NR + r) * row_bytes..][..row_bytes]))
            .collect();
        fn cat<T: crate::buf::Plain>(tiles: &[Tile], f: impl Fn(&Tile) -> &Vec<T>) -> Buf<T> {
            tiles.iter().flat_map(|t| f(t).iter().copied()).collect::<Vec<T>>().into()
        }
        let format = Format::of(kind);
        Some(PackedQ {
            kind,
            n,
            k,
            id: next_id(),
            format,
            group: Format::group(format as u8),
            qs: cat(&tiles, |t| &t.qs),
            qh: cat(&tiles, |t| &t.qh),
            sub: cat(&tiles, |t| &t.sub),
            d: cat(&tiles, |t| &t.d),
            scale_min: cat(&tiles, |t| &t.scale_min),
            corr: cat(&tiles, |t| &t.corr),
        })
    }

    /// The stored arrays, in the order `from_parts` takes them (the packed-weight cache).
    pub fn parts(&self) -> Vec<&[u8]> {
        vec![
            self.qs.as_bytes(),
            self.qh.as_bytes(),
            self.sub.as_bytes(),
            self.d.as_bytes(),
            self.scale_min.as_bytes(),
            self.corr.as_bytes(),
        ]
    }

    /// A weight read back from `parts()` written by the same layout version; `None` when a
    /// part's size does not fit `(kind, n, k)`.
    pub fn from_parts(kind: QKind, n: usize, k: usize, parts: &[Region]) -> Option<PackedQ> {
        let [qs, qh, sub, d, scale_min, corr] = parts else { return None };
        if !supports(kind, n, k) {
            return None;
        }
        let format = Format::of(kind);
        let p = PackedQ {
            kind,
            n,
            k,
            id: next_id(),
            format,
            group: Format::group(format as u8),
            qs: qs.typed()?,
            qh: qh.typed()?,
            sub: sub.typed()?,
            d: d.typed()?,
            scale_min: scale_min.typed()?,
            corr: corr.typed()?,
        };
        (p.lens() == tile_sizes(format, k).map(|s| s * (n / NR))).then_some(p)
    }

    fn lens(&self) -> [usize; 6] {
        [self.qs.len(), self.qh.len(), self.sub.len(), self.d.len(), self.scale_min.len(), self.corr.len()]
    }

    /// Whether the arrays are read from a mapped cache file.
    #[cfg(test)]
    pub fn is_mapped(&self) -> bool {
        self.qs.is_mapped()
    }

    /// The bytes the packed weight holds (owned, or mapped from the packed-weight cache).
    pub fn bytes(&self) -> u64 {
        self.parts().iter().map(|p| p.len() as u64).sum()
    }

    /// Subtracted from every stored quant (see the module docs).
    pub fn offset(&self) -> i32 {
        Format::offset(self.format as u8)
    }

    /// A `Format::K6Bytes` weight of `n` rows over the vectors `qs` and `scales`.
    pub(in crate::kernels) fn k6_bytes(n: usize, k: usize, qs: Vec<u8>, scales: Vec<f32>) -> PackedQ {
        debug_assert!(qs.len() == n * k && scales.len() == n * k / 16);
        PackedQ {
            kind: QKind::Q6K,
            n,
            k,
            id: next_id(),
            format: Format::K6Bytes,
            group: 16,
            qs: qs.into(),
            qh: Buf::default(),
            sub: Buf::default(),
            d: Buf::default(),
            scale_min: scales.into(),
            corr: Buf::default(),
        }
    }

    /// A `Format::Bytes` Q5_K weight of `n` rows over the vectors `qs` and `scale_min` (the
    /// AVX-512 kernel's decoded copy of some tiles).
    pub(in crate::kernels) fn k5_bytes(n: usize, k: usize, qs: Vec<u8>, scale_min: Vec<f32>) -> PackedQ {
        debug_assert!(qs.len() == n * k && scale_min.len() == n * k / 32 * 2);
        PackedQ {
            kind: QKind::Q5K,
            n,
            k,
            id: next_id(),
            format: Format::Bytes,
            group: 32,
            qs: qs.into(),
            qh: Buf::default(),
            sub: Buf::default(),
            d: Buf::default(),
            scale_min: scale_min.into(),
            corr: Buf::default(),
        }
    }

    /// Whether kernels with shifted activations multiply this weight as signed bytes.
    pub fn signed(&self) -> bool {
        Format::signed(self.format as u8)
    }

    /// `q - offset` of row `c` at `kk`.
    pub(in crate::kernels) fn value(&self, c: usize, kk: usize) -> i32 {
        let q = self.quant(c, kk);
        if self.format == Format::Q8 {
            q as i8 as i32
        } else {
            q as i32 - self.offset()
        }
    }

    /// The stored quant of row `c` at `kk` (Q8_0: an i8's bits).
    pub(in crate::kernels) fn quant(&self, c: usize, kk: usize) -> u8 {
        let (t, r, g) = (c / NR, c % NR, self.group);
        let (gi, o, j) = (kk / g, (kk % g) / 4, kk % 4);
        let f = self.format as u8;
        if !Format::nibbles(f) {
            return self.qs[t * NR * self.k + ((gi * (g / 4) + o) * NR + r) * 4 + j];
        }
        let half = g / 8;
        let byte = self.qs[t * NR * self.k / 2 + ((gi * half + o % half) * NR + r) * 4 + j];
        let nib = if o < half { byte & 0xF } else { byte >> 4 };
        let hb = Format::high_bits(f);
        if hb == 0 {
            return nib;
        }
        let h = self.qh[(t * (self.k / g) + gi) * NR * 4 + r * 4 + j];
        nib | (((h >> (o * hb)) & ((1 << hb) - 1)) << 4)
    }

    /// `(s, min)` of row `c` and group `gi`, in f32 as GGML computes them.
    pub(in crate::kernels) fn scale_min(&self, c: usize, gi: usize) -> (f32, f32) {
        let (t, r) = (c / NR, c % NR);
        let (ng, pairs) = (self.k / self.group, Format::pairs(self.format as u8));
        let i = (t * ng + gi) * pairs * NR + r;
        let h = |v: u16| f16::from_bits(v).to_f32();
        match self.format {
            Format::Bytes => (self.scale_min[i], self.scale_min[i + NR]),
            Format::K6Bytes => (self.scale_min[i], 0.0),
            Format::Q8 => (h(self.d[i]), 0.0),
            Format::K6 => {
                let b = (t * (self.k / blocks::QK_K) + gi * self.group / blocks::QK_K) * NR + r;
                (h(self.d[b]) * self.sub[i] as i8 as f32, 0.0)
            }
            _ => {
                let b = (t * (self.k / blocks::QK_K) + gi * self.group / blocks::QK_K) * 2 * NR + r;
                (h(self.d[b]) * self.sub[i] as f32, h(self.d[b + NR]) * self.sub[i + NR] as f32)
            }
        }
    }

    /// Dequantized row `c` (for tests).
    #[cfg(test)]
    pub fn dequantize_row(&self, c: usize) -> Vec<f32> {
        (0..self.k)
            .map(|kk| {
                let (s, m) = self.scale_min(c, kk / self.group);
                s * self.value(c, kk) as f32 - m
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};

    use super::*;

    fn quantized(kind: QKind, n: usize, k: usize) -> Vec<u8> {
        let dtype = kind.ggml();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        let wt = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        QTensor::quantize(&wt, dtype).unwrap().data().unwrap().to_vec()
    }

    /// The K-quants and Q8_0 stay within 6% of their GGUF bytes (the legacy kinds keep a
    /// byte per quant).
    #[test]
    fn packed_size_near_the_file() {
        let (n, k) = (64, 1024);
        for kind in [QKind::Q4K, QKind::Q5K, QKind::Q6K, QKind::Q8_0] {
            let data = quantized(kind, n, k);
            let p = PackedQ::pack(kind, n, k, &data).unwrap();
            let ratio = p.bytes() as f64 / data.len() as f64;
            assert!(ratio <= 1.06, "{kind:?}: {} bytes for {} in the file ({ratio:.3}x)", p.bytes(), data.len());
        }
    }

    /// `from_parts` of a weight's own `parts()`, written to a file and mapped (64-byte aligned,
    /// as the cache writes them), multiplies exactly as the packed weight; parts that do not fit
    /// the shape are refused.
    #[test]
    fn parts_round_trip_through_a_mapped_file() {
        let (n, k, m) = (48, 512, 5);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 104729 % 2000) as f32 / 1000.0) - 1.0).collect();
        for kind in QKind::ALL {
            let p = PackedQ::pack(kind, n, k, &quantized(kind, n, k)).unwrap();
            let mut file = tempfile::tempfile().unwrap();
            let mut spans = Vec::new();
            let mut at = 0usize;
            for part in p.parts() {
                let pad = at.next_multiple_of(64) - at;
                file.write_all(&vec![0u8; pad]).unwrap();
                file.write_all(part).unwrap();
                spans.push((at + pad, part.len()));
                at += pad + part.len();
            }
            file.write_all(&[0u8; 64]).unwrap();
            // SAFETY: the temporary file is private to this test and not modified while mapped.
            let map = Arc::new(unsafe { memmap2::Mmap::map(&file) }.unwrap());
            let regions: Vec<Region> = spans.iter().map(|&(o, b)| Region::new(map.clone(), o, b).unwrap()).collect();
            let q = PackedQ::from_parts(kind, n, k, &regions).unwrap();
            assert!(q.is_mapped() && q.bytes() == p.bytes(), "{kind:?}");
            for kn in crate::kernels::tables() {
                let (want, got) = (p.matmul(kn, &x, m), q.matmul(kn, &x, m));
                assert!(want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()), "{} {kind:?}", kn.name);
            }
            assert!(PackedQ::from_parts(kind, n + NR, k, &regions).is_none(), "{kind:?}");
            assert!(PackedQ::from_parts(kind, n, k, &regions[1..]).is_none(), "{kind:?}");
        }
    }
}
