//! The kernels written once over the vector width: causal attention and SiLU. Each instruction
//! set gives its f32 vector as a [`Lanes`] and instantiates them in a function that enables its
//! features (the bodies are `#[inline(always)]`, so they compile for those features).
// Register tiles (`acc[r][c]`) are indexed in step with their rows and vectors.
#![allow(clippy::needless_range_loop)]

use crate::kernels::generic;
use crate::kernels::ops::{self, Attention, KvPerHead, Span};

/// An instruction set's vector of f32. Every method needs that instruction set.
pub trait Lanes: Copy {
    /// Floats per vector.
    const W: usize;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// `self * b + c`, rounded once.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    unsafe fn mul(self, b: Self) -> Self;
    unsafe fn div(self, b: Self) -> Self;
    unsafe fn add(self, b: Self) -> Self;
    unsafe fn sub(self, b: Self) -> Self;
    unsafe fn max(self, b: Self) -> Self;
    /// e^x, |relative error| about 2e-7; 0 for x < -104 (and for -inf).
    unsafe fn exp(self) -> Self;
    unsafe fn reduce_max(self) -> f32;
    unsafe fn reduce_add(self) -> f32;
    /// `self * scale` in lane `i` where `first + i < visible`, -inf in the others.
    unsafe fn scale_visible(self, scale: Self, first: usize, visible: usize) -> Self;
}

/// `g = silu(g) * u`.
///
/// # Safety
/// The CPU has `V`'s instruction set.
#[inline(always)]
pub unsafe fn silu_mul<V: Lanes>(g: &mut [f32], u: &[f32]) {
    assert_eq!(g.len(), u.len());
    let n = g.len() / V::W * V::W;
    let one = V::splat(1.0);
    for i in (0..n).step_by(V::W) {
        let x = V::load(g.as_ptr().add(i));
        let y = V::load(u.as_ptr().add(i));
        let e = V::splat(0.0).sub(x).exp();
        x.mul(y).div(one.add(e)).store(g.as_mut_ptr().add(i));
    }
    generic::silu_mul(&mut g[n..], &u[n..]);
}

/// Keys per block held in L2: 256 keys of 128 dimensions are 128 KiB of keys and of values.
const KB: usize = 256;

/// Query rows per unit of work for register tiles of `bq` rows: every query head that shares a
/// key/value head runs its rows of the unit against one block of `KB` keys while that block is
/// in L2, so a long sequence's keys and values are read from memory once per unit and per
/// key/value head, not per tile.
const fn unit_rows(bq: usize) -> usize {
    bq * 32usize.div_ceil(bq)
}

/// One instantiation of [`attention_unit`], compiled for its instruction set.
pub type UnitFn = unsafe fn(&Attention, &KvPerHead, &Span, usize, usize, *mut f32);

/// Causal attention with register tiles of `BQ` rows x 4 vectors of keys; `unit` is
/// `attention_unit::<V, BQ, {4 * V::W}>` compiled for `V`'s instruction set. Head dimensions
/// that are not a multiple of 4 vectors take the generic kernel.
///
/// # Safety
/// The CPU has `V`'s instruction set; `a` as `ops::attention` checks it.
pub unsafe fn attention<V: Lanes, const BQ: usize>(a: &Attention, out: &mut [f32], unit: UnitFn) {
    if !a.hd.is_multiple_of(4 * V::W) {
        return generic::attention(a, out);
    }
    let kv = KvPerHead::new(a, 4 * V::W);
    let group = a.nh / a.nkv;
    ops::par_units(a, unit_rows(BQ), group, out, |sp, h, i0, out| {
        // SAFETY: the CPU has the instruction set; every unit writes its own rows of its heads.
        unsafe { unit(a, &kv, sp, h / group, i0, out) }
    });
}

/// One register tile's running softmax state: `BQ` rows of one head (their queries and outputs
/// are `BQ * hd` floats at the tile's place in the unit's buffers).
struct Tile<const BQ: usize> {
    m: [f32; BQ],
    l: [f32; BQ],
    /// The last visible key of each row, inclusive (rows past the span repeat the last one).
    lim: [usize; BQ],
}

/// Query rows `i0..` (one unit, clipped to the span) of every head reading key/value head
/// `kvh`, in span `sp`: key blocks of `KB` in the outer loop, tiles of `BQ` rows x `BK` keys
/// inside. Each row meets its keys in the same order and tiles as a row-by-row pass would, so
/// the result does not depend on the unit's size or `KB`.
///
/// # Safety
/// The CPU has `V`'s instruction set; `BK` is 4 vectors; `kv` is `a`'s keys and values laid
/// out for blocks of `BK`; `out` as `attention` gives it.
#[inline(always)]
pub unsafe fn attention_unit<V: Lanes, const BQ: usize, const BK: usize>(
    a: &Attention,
    kv: &KvPerHead,
    sp: &Span,
    kvh: usize,
    i0: usize,
    out: *mut f32,
) {
    const { assert!(KB.is_multiple_of(BK)) };
    debug_assert_eq!(BK, 4 * V::W);
    let (nh, hd) = (a.nh, a.hd);
    let group = nh / a.nkv;
    let rows = (sp.q_len - i0).min(unit_rows(BQ));
    let per_head = rows.div_ceil(BQ);
    let mut tiles: Vec<Tile<BQ>> = Vec::with_capacity(group * per_head);
    let mut q = vec![0f32; group * per_head * BQ * hd];
    let mut o = vec![0f32; q.len()];
    for g in 0..group {
        let h = kvh * group + g;
        for t in 0..per_head {
            let mut tile = Tile { m: [f32::NEG_INFINITY; BQ], l: [0.0; BQ], lim: [0; BQ] };
            for r in 0..BQ {
                let row = i0 + (t * BQ + r).min(rows - 1);
                tile.lim[r] = sp.k_len - sp.q_len + row;
                q[((g * per_head + t) * BQ + r) * hd..][..hd]
                    .copy_from_slice(&a.q[((sp.q_start + row) * nh + h) * hd..][..hd]);
            }
            tiles.push(tile);
        }
    }
    let ktp = kv.kt.as_ptr().add(kvh * hd * kv.ld + sp.k_start);
    let vp = kv.vt.as_ptr().add((kvh * kv.tk + sp.k_start) * hd);
    let last = tiles.iter().map(|t| t.lim[BQ - 1]).max().unwrap_or(0);
    for kb0 in (0..=last).step_by(KB) {
        for (n, tile) in tiles.iter_mut().enumerate() {
            let end = tile.lim[BQ - 1].min(kb0 + KB - 1);
            let (qp, op) = (q.as_ptr().add(n * BQ * hd), o.as_mut_ptr().add(n * BQ * hd));
            let mut kb = kb0;
            while kb <= end {
                tile_keys::<V, BQ, BK>(tile, qp, op, a.scale, hd, ktp, kv.ld, vp, kb);
                kb += BK;
            }
        }
    }
    for (n, tile) in tiles.iter().enumerate() {
        let h = kvh * group + n / per_head;
        for r in 0..BQ {
            let row = (n % per_head) * BQ + r;
            if row >= rows {
                break;
            }
            let inv = V::splat(1.0 / tile.l[r]);
            let dst = out.add(((sp.q_start + i0 + row) * nh + h) * hd);
            for x in 0..hd / V::W {
                V::load(o.as_ptr().add((n * BQ + r) * hd + V::W * x)).mul(inv).store(dst.add(V::W * x));
            }
        }
    }
}

/// Keys `kb..kb+BK` (those past the tile's last visible key masked) into the tile: S = Q K^T,
/// the online softmax, O += P V.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_keys<V: Lanes, const BQ: usize, const BK: usize>(
    tile: &mut Tile<BQ>,
    qp: *const f32,
    op0: *mut f32,
    scale: f32,
    hd: usize,
    ktp: *const f32,
    ld: usize,
    vp: *const f32,
    kb: usize,
) {
    let w = V::W;
    let nk = (tile.lim[BQ - 1] + 1 - kb).min(BK);
    let dv = hd / w;
    let mut p = [[0f32; BK]; BQ];
    let scale_v = V::splat(scale);

    // S = Q K^T for BQ rows x BK keys.
    let mut acc = [[V::splat(0.0); 4]; BQ];
    for d in 0..hd {
        let kr = ktp.add(d * ld + kb);
        let kv: [V; 4] = std::array::from_fn(|c| V::load(kr.add(w * c)));
        for (r, acc) in acc.iter_mut().enumerate() {
            let qv = V::splat(*qp.add(r * hd + d));
            for c in 0..4 {
                acc[c] = qv.mul_add(kv[c], acc[c]);
            }
        }
    }
    // Online softmax.
    for r in 0..BQ {
        let visible = (tile.lim[r] + 1).saturating_sub(kb);
        let mut s = [V::splat(0.0); 4];
        let mut bm = V::splat(f32::NEG_INFINITY);
        for c in 0..4 {
            s[c] = acc[r][c].scale_visible(scale_v, w * c, visible);
            bm = bm.max(s[c]);
        }
        let m_new = tile.m[r].max(bm.reduce_max());
        let alpha = if tile.m[r] == f32::NEG_INFINITY { 0.0 } else { (tile.m[r] - m_new).exp() };
        let mv = V::splat(m_new);
        let mut sum = V::splat(0.0);
        for (c, s) in s.iter().enumerate() {
            let e = s.sub(mv).exp();
            sum = sum.add(e);
            e.store(p[r].as_mut_ptr().add(w * c));
        }
        tile.l[r] = tile.l[r] * alpha + sum.reduce_add();
        tile.m[r] = m_new;
        if alpha != 1.0 {
            let av = V::splat(alpha);
            for x in 0..dv {
                let op = op0.add(r * hd + w * x);
                V::load(op).mul(av).store(op);
            }
        }
    }
    // O += P V, four vectors at a time.
    for x0 in (0..dv).step_by(4) {
        let mut acc = [[V::splat(0.0); 4]; BQ];
        for (r, acc) in acc.iter_mut().enumerate() {
            let op = op0.add(r * hd + w * x0);
            for x in 0..4 {
                acc[x] = V::load(op.add(w * x));
            }
        }
        for j in 0..nk {
            let vr = vp.add((kb + j) * hd + w * x0);
            let vv: [V; 4] = std::array::from_fn(|x| V::load(vr.add(w * x)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let pv = V::splat(p[r][j]);
                for x in 0..4 {
                    acc[x] = pv.mul_add(vv[x], acc[x]);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let op = op0.add(r * hd + w * x0);
            for x in 0..4 {
                acc[x].store(op.add(w * x));
            }
        }
    }
}
