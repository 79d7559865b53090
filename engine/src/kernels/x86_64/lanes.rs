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

/// Query rows per unit of work for register tiles of `bq` rows: every tile of every query head
/// that shares a key/value head meets one block of `BK` keys in turn while that block's keys and
/// values are in L1 (32 KiB in 16-bit fixed point for 128 dimensions, 64 KiB in f32), so a long
/// sequence's keys and values are read from memory once per unit and per key/value head, and
/// from L2 once per block, not per tile.
const fn unit_rows(bq: usize) -> usize {
    bq * 32usize.div_ceil(bq)
}

/// Attention's two products, S = Q Kᵀ and O += P V, for register tiles of `BQ` rows and four
/// vectors of keys, and the online softmax between them: in f32 ([`F32Products`]) or in a
/// table's own number format (16-bit fixed point), which also owns its weights' form.
pub(in crate::kernels) trait Products<V: Lanes> {
    /// One element of a query row as [`Products::scores`] reads it.
    type Q: Copy + Default;
    /// The keys and values of every key/value head, laid out for blocks of `4 * V::W` keys.
    type Kv: Sync;
    /// The weights of a tile of `BQ` rows for one block of `BK` keys, as [`Products::add_pv`]
    /// reads them.
    type P<const BQ: usize, const BK: usize>;
    /// A row's running sum of weights.
    type Sum: Copy;
    /// Elements of `Q` per query row of `hd` dimensions.
    fn q_len(hd: usize) -> usize;
    fn kv(a: &Attention) -> Self::Kv;
    /// # Safety
    /// The CPU has `V`'s instruction set.
    unsafe fn query(src: &[f32], dst: &mut [Self::Q]);
    /// Q Kᵀ for the tile's `BQ` query rows (`q_len(hd)` apart) and keys `kb..kb + 4 * V::W` of
    /// span `sp`, unmasked, in the units [`Products::softmax`] reads.
    ///
    /// # Safety
    /// The CPU has `V`'s instruction set; `kv` is the attention's; `q` holds `BQ` rows.
    unsafe fn scores<const BQ: usize>(
        q: *const Self::Q,
        hd: usize,
        kv: &Self::Kv,
        kvh: usize,
        sp: &Span,
        kb: usize,
    ) -> [[V; 4]; BQ];
    /// # Safety
    /// The CPU has `V`'s instruction set.
    unsafe fn sum_zero() -> Self::Sum;
    /// A finished row: `dst = o / l`, `o` the row's accumulated output in the format's units.
    ///
    /// # Safety
    /// As `scores`; `o` and `dst` hold `hd` floats.
    unsafe fn finish(l: Self::Sum, o: *const f32, hd: usize, kv: &Self::Kv, kvh: usize, sp: &Span, dst: *mut f32);
    /// The online softmax over keys `kb..kb + BK` of a tile's scores `s` (those past each
    /// row's last visible key masked; `q` the tile's query rows, `scale` the attention's):
    /// updates the running maximum and sum, rescales the rows of `o` when the maximum grows,
    /// and returns the rows' weights (0 where masked).
    ///
    /// # Safety
    /// As `scores`; `o` holds `BQ` rows of `hd`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn softmax<const BQ: usize, const BK: usize>(
        tile: &mut Tile<Self::Sum, BQ>,
        s: [[V; 4]; BQ],
        q: *const Self::Q,
        o: *mut f32,
        scale: f32,
        hd: usize,
        kb: usize,
    ) -> Self::P<BQ, BK>;
    /// `o[r] += Σ_j p[r][j] v[kb + j]` for `j < nk` (rows of `o` are `hd` apart; `p` is 0 past
    /// the visible keys of each row, and up to `BK`).
    ///
    /// # Safety
    /// As `scores`; `o` holds `BQ` rows.
    #[allow(clippy::too_many_arguments)]
    unsafe fn add_pv<const BQ: usize, const BK: usize>(
        p: &Self::P<BQ, BK>,
        nk: usize,
        o: *mut f32,
        hd: usize,
        kv: &Self::Kv,
        kvh: usize,
        sp: &Span,
        kb: usize,
    );
}

/// Both products in f32 with FMA, query values broadcast against four vectors of keys (or of
/// value dimensions).
pub(in crate::kernels) struct F32Products;

impl<V: Lanes> Products<V> for F32Products {
    type Q = f32;
    type Kv = KvPerHead;
    type P<const BQ: usize, const BK: usize> = [[f32; BK]; BQ];
    type Sum = f32;

    fn q_len(hd: usize) -> usize {
        hd
    }

    fn kv(a: &Attention) -> KvPerHead {
        KvPerHead::new(a, 4 * V::W)
    }

    #[inline(always)]
    unsafe fn query(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src)
    }

    #[inline(always)]
    unsafe fn scores<const BQ: usize>(
        q: *const f32,
        hd: usize,
        kv: &KvPerHead,
        kvh: usize,
        sp: &Span,
        kb: usize,
    ) -> [[V; 4]; BQ] {
        let w = V::W;
        let kt = kv.kt.as_ptr().add(kvh * hd * kv.ld + sp.k_start + kb);
        let mut acc = [[V::splat(0.0); 4]; BQ];
        for d in 0..hd {
            let kr = kt.add(d * kv.ld);
            let k: [V; 4] = std::array::from_fn(|c| V::load(kr.add(w * c)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let qv = V::splat(*q.add(r * hd + d));
                for c in 0..4 {
                    acc[c] = qv.mul_add(k[c], acc[c]);
                }
            }
        }
        acc
    }

    #[inline(always)]
    unsafe fn sum_zero() -> f32 {
        0.0
    }

    #[inline(always)]
    unsafe fn finish(l: f32, o: *const f32, hd: usize, _: &KvPerHead, _: usize, _: &Span, dst: *mut f32) {
        let inv = V::splat(1.0 / l);
        for x in 0..hd / V::W {
            V::load(o.add(V::W * x)).mul(inv).store(dst.add(V::W * x));
        }
    }

    #[inline(always)]
    unsafe fn softmax<const BQ: usize, const BK: usize>(
        tile: &mut Tile<f32, BQ>,
        s: [[V; 4]; BQ],
        _q: *const f32,
        o: *mut f32,
        scale: f32,
        hd: usize,
        kb: usize,
    ) -> [[f32; BK]; BQ] {
        softmax_step::<V, BQ, BK>(tile, s, o, scale, hd, kb)
    }

    #[inline(always)]
    unsafe fn add_pv<const BQ: usize, const BK: usize>(
        p: &[[f32; BK]; BQ],
        nk: usize,
        o: *mut f32,
        hd: usize,
        kv: &KvPerHead,
        kvh: usize,
        sp: &Span,
        kb: usize,
    ) {
        let w = V::W;
        let vp = kv.vt.as_ptr().add((kvh * kv.tk + sp.k_start + kb) * hd);
        for x0 in (0..hd / w).step_by(4) {
            let mut acc = [[V::splat(0.0); 4]; BQ];
            for (r, acc) in acc.iter_mut().enumerate() {
                let op = o.add(r * hd + w * x0);
                for x in 0..4 {
                    acc[x] = V::load(op.add(w * x));
                }
            }
            for j in 0..nk {
                let vr = vp.add(j * hd + w * x0);
                let vv: [V; 4] = std::array::from_fn(|x| V::load(vr.add(w * x)));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let pv = V::splat(p[r][j]);
                    for x in 0..4 {
                        acc[x] = pv.mul_add(vv[x], acc[x]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let op = o.add(r * hd + w * x0);
                for x in 0..4 {
                    acc[x].store(op.add(w * x));
                }
            }
        }
    }
}

/// One instantiation of [`attention_unit`], compiled for its instruction set.
pub(in crate::kernels) type UnitFn<Kv> = unsafe fn(&Attention, &Kv, &Span, usize, usize, *mut f32);

/// Causal attention with register tiles of `BQ` rows x 4 vectors of keys; `unit` is
/// `attention_unit::<V, P, BQ, {4 * V::W}>` compiled for `V`'s instruction set. Head dimensions
/// that are not a multiple of 4 vectors take the generic kernel.
///
/// # Safety
/// The CPU has `V`'s instruction set; `a` as `ops::attention` checks it.
pub(in crate::kernels) unsafe fn attention<V: Lanes, P: Products<V>, const BQ: usize>(
    a: &Attention,
    out: &mut [f32],
    unit: UnitFn<P::Kv>,
) {
    if !a.hd.is_multiple_of(4 * V::W) {
        return generic::attention(a, out);
    }
    let kv = P::kv(a);
    let group = a.nh / a.nkv;
    ops::par_units(a, unit_rows(BQ), group, out, |sp, h, i0, out| {
        // SAFETY: the CPU has the instruction set; every unit writes its own rows of its heads.
        unsafe { unit(a, &kv, sp, h / group, i0, out) }
    });
}

/// One register tile's running softmax state: `BQ` rows of one head (their queries and outputs
/// are at the tile's place in the unit's buffers), each row's sum of weights an `S`.
pub(in crate::kernels) struct Tile<S, const BQ: usize> {
    pub m: [f32; BQ],
    pub l: [S; BQ],
    /// The last visible key of each row, inclusive (rows past the span repeat the last one).
    pub lim: [usize; BQ],
}

/// Query rows `i0..` (one unit, clipped to the span) of every head reading key/value head
/// `kvh`, in span `sp`: blocks of `BK` keys in the outer loop, the unit's tiles of `BQ` rows
/// inside. Each row meets its keys in the same order and blocks as a row-by-row pass would, so
/// the result does not depend on the unit's size.
///
/// # Safety
/// The CPU has `V`'s instruction set; `BK` is 4 vectors; `kv` is `a`'s keys and values as `P`
/// lays them out; `out` as `attention` gives it.
#[inline(always)]
pub(in crate::kernels) unsafe fn attention_unit<V: Lanes, P: Products<V>, const BQ: usize, const BK: usize>(
    a: &Attention,
    kv: &P::Kv,
    sp: &Span,
    kvh: usize,
    i0: usize,
    out: *mut f32,
) {
    debug_assert_eq!(BK, 4 * V::W);
    let (nh, hd) = (a.nh, a.hd);
    let ql = P::q_len(hd);
    let group = nh / a.nkv;
    let rows = (sp.q_len - i0).min(unit_rows(BQ));
    let per_head = rows.div_ceil(BQ);
    let mut tiles: Vec<Tile<P::Sum, BQ>> = Vec::with_capacity(group * per_head);
    let mut q = vec![P::Q::default(); group * per_head * BQ * ql];
    let mut o = vec![0f32; group * per_head * BQ * hd];
    for g in 0..group {
        let h = kvh * group + g;
        for t in 0..per_head {
            let mut tile = Tile { m: [f32::NEG_INFINITY; BQ], l: [P::sum_zero(); BQ], lim: [0; BQ] };
            for r in 0..BQ {
                let row = i0 + (t * BQ + r).min(rows - 1);
                tile.lim[r] = sp.k_len - sp.q_len + row;
                P::query(
                    &a.q[((sp.q_start + row) * nh + h) * hd..][..hd],
                    &mut q[((g * per_head + t) * BQ + r) * ql..][..ql],
                );
            }
            tiles.push(tile);
        }
    }
    let last = tiles.iter().map(|t| t.lim[BQ - 1]).max().unwrap_or(0);
    for kb in (0..=last).step_by(BK) {
        for (n, tile) in tiles.iter_mut().enumerate() {
            if kb > tile.lim[BQ - 1] {
                continue;
            }
            let (qp, op) = (q.as_ptr().add(n * BQ * ql), o.as_mut_ptr().add(n * BQ * hd));
            let s = P::scores::<BQ>(qp, hd, kv, kvh, sp, kb);
            let p = P::softmax::<BQ, BK>(tile, s, qp, op, a.scale, hd, kb);
            let nk = (tile.lim[BQ - 1] + 1 - kb).min(BK);
            P::add_pv::<BQ, BK>(&p, nk, op, hd, kv, kvh, sp, kb);
        }
    }
    for (n, tile) in tiles.iter().enumerate() {
        let h = kvh * group + n / per_head;
        for r in 0..BQ {
            let row = (n % per_head) * BQ + r;
            if row >= rows {
                break;
            }
            let dst = out.add(((sp.q_start + i0 + row) * nh + h) * hd);
            P::finish(tile.l[r], o.as_ptr().add((n * BQ + r) * hd), hd, kv, kvh, sp, dst);
        }
    }
}

/// [`Products::softmax`] in f32: the rows' weights are e^(s - max) (0 where masked).
#[inline(always)]
unsafe fn softmax_step<V: Lanes, const BQ: usize, const BK: usize>(
    tile: &mut Tile<f32, BQ>,
    s: [[V; 4]; BQ],
    o: *mut f32,
    scale: f32,
    hd: usize,
    kb: usize,
) -> [[f32; BK]; BQ] {
    let w = V::W;
    let mut p = [[0f32; BK]; BQ];
    let scale_v = V::splat(scale);
    for r in 0..BQ {
        let visible = (tile.lim[r] + 1).saturating_sub(kb);
        let mut sr = [V::splat(0.0); 4];
        let mut bm = V::splat(f32::NEG_INFINITY);
        for c in 0..4 {
            sr[c] = s[r][c].scale_visible(scale_v, w * c, visible);
            bm = bm.max(sr[c]);
        }
        let m_new = tile.m[r].max(bm.reduce_max());
        let alpha = if tile.m[r] == f32::NEG_INFINITY { 0.0 } else { (tile.m[r] - m_new).exp() };
        let mv = V::splat(m_new);
        let mut sum = V::splat(0.0);
        for (c, s) in sr.iter().enumerate() {
            let e = s.sub(mv).exp();
            sum = sum.add(e);
            e.store(p[r].as_mut_ptr().add(w * c));
        }
        tile.l[r] = tile.l[r] * alpha + sum.reduce_add();
        tile.m[r] = m_new;
        if alpha != 1.0 {
            let av = V::splat(alpha);
            for x in 0..hd / w {
                let op = o.add(r * hd + w * x);
                V::load(op).mul(av).store(op);
            }
        }
    }
    p
}
