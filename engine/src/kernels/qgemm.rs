//! Quantized GEMM for GGUF weights (Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q8_0).
//!
//! # Weight layout
//! At load time every quantized weight `[n, k]` is regrouped once into tiles of 16 output rows
//! at (nearly) the file's bit width: see [`super::qpack`]. Each weight is
//! `s * (q - offset) - min` with `q` a quant and `(s, min)` per output row and group of `G`
//! consecutive `k` (16 for Q6_K, 32 otherwise), exactly GGML's dequantized value.
//!
//! # Product
//! Activations are quantized per row and per 256 values to i8 with one f32 scale (`ad`), and
//! the sum of the i8 values of every group is kept (`asum`). Then
//! `y[r][c] = sum_blocks ad * sum_groups (s * (sum_k(q * a) - offset * asum) - min * asum)`,
//! where the inner sum is exact integer arithmetic (`vpdpbusd`: unsigned `q` times signed `a`,
//! or Q8_0's signed `q` times `a + 128`) started at `-offset * asum` (`QuantAct::bias`), or at
//! `-128 * sum(q)` for Q8_0 (`PackedQ::corr`). This is the same activation
//! quantization (8 bits per 256 values) that GGML's own k-quant dot products use.
//!
//! Q8_0 weights meet activations with a scale per 32 values (`Format::group_act_scales`), as in GGML's own Q8_0 dot
//! product: its 8-bit weights leave the activations' rounding as the product's main error, and
//! one scale per 256 values rounds small values coarsely wherever a large one shares the block
//! (twice llama.cpp's error on the reranker goldens). Each group then adds
//! `ad[group] * s * sum_k(q * a)`: one more multiply per group.

use rayon::prelude::*;

pub use super::qpack::{supports, PackedQ, QKind, NR, QK};
use super::{Kernels, SendPtr};

/// Activation rows per work item.
const ROW_BLOCK: usize = 72;
/// Bytes of weights one work item keeps in L2 while its rows pass over them: the item covers
/// as many 32-row tile pairs as fit, so each strip of activation rows is read from L1 for all
/// of them instead of once per tile pair (gate/up of the 4B model, `k` = 2560: 4 pairs).
const L2_WEIGHT_BYTES: usize = 384 << 10;

impl PackedQ {
    /// `x` is `[m, k]` row-major f32; returns `[m, n]` row-major f32.
    pub fn matmul(&self, kn: &Kernels, x: &[f32], m: usize) -> Vec<f32> {
        matmul_many(kn, &[self], x, m).pop().expect("one output")
    }
}

/// Activations quantized for the kernel: i8 values, one scale per 256 (per 32 for Q8_0), one
/// sum per group.
pub struct QuantAct {
    pub(in crate::kernels) q: Vec<i8>,
    /// `[m][k/block]`
    pub(in crate::kernels) d: Vec<f32>,
    /// `[m][k/group]`, integer-valued (empty when shifted)
    pub(in crate::kernels) sum: Vec<f32>,
    /// `sum` as i16 (`|sum| <= 32 * 127`), two groups per 32-bit load for `vpmaddwd`.
    pub(in crate::kernels) sum16: Vec<i16>,
    /// `[m][k/group]`: `-offset * sum`, where each group's integer sum starts for weights
    /// stored with an offset (empty for offset 0).
    pub(in crate::kernels) bias: Vec<i32>,
}

/// What a weight needs of its activations: the group size of the sums, the offset of its
/// quants, whether they are shifted to unsigned bytes (then without sums), and the values per
/// scale.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ActKey {
    pub group: usize,
    pub offset: i32,
    pub shifted: bool,
    pub block: usize,
}

impl ActKey {
    pub fn of(kn: &Kernels, w: &PackedQ) -> ActKey {
        let shifted = kn.shift_signed && w.signed();
        let block = if super::qpack::Format::group_act_scales(w.format as u8) { w.group } else { QK };
        ActKey { group: w.group, offset: if shifted { 0 } else { w.offset() }, shifted, block }
    }
}

impl QuantAct {
    pub fn new(kn: &Kernels, x: &[f32], m: usize, k: usize, key: ActKey) -> QuantAct {
        let ActKey { group, offset, shifted, block } = key;
        assert!(k.is_multiple_of(QK) && QK.is_multiple_of(group) && QK.is_multiple_of(block) && x.len() == m * k);
        let mut q: Vec<i8> = super::alloc_vec(m * k);
        // SAFETY: every block is written below.
        unsafe { q.set_len(m * k) };
        let mut d = vec![0f32; m * k / block];
        let ng = if shifted { 0 } else { k / group };
        let mut sum = vec![0f32; m * ng];
        let sum_ptr = SendPtr(sum.as_mut_ptr());
        let rows = q.par_chunks_mut(k).zip(d.par_chunks_mut(k / block)).zip(x.par_chunks(k)).enumerate();
        rows.with_min_len(8).for_each(|(r, ((q, d), x))| {
            for (b, (xb, qb)) in x.chunks_exact(block).zip(q.chunks_exact_mut(block)).enumerate() {
                // SAFETY: both blocks are `block` long, a multiple of 32; `kn` runs on this CPU.
                d[b] = unsafe { (kn.quantize_block)(xb, qb, shifted) };
            }
            // SAFETY: row r's sums are written by this row only (none when shifted).
            let sum = unsafe { std::slice::from_raw_parts_mut(sum_ptr.get().add(r * ng), ng) };
            for (s, g) in sum.iter_mut().zip(q.chunks_exact(group)) {
                *s = g.iter().map(|&v| v as i32).sum::<i32>() as f32;
            }
        });
        let bias = if offset == 0 { Vec::new() } else { sum.iter().map(|&s| -offset * s as i32).collect() };
        let sum16 = sum.iter().map(|&s| s as i16).collect();
        QuantAct { q, d, sum, sum16, bias }
    }
}

/// `x [m, k] @ w.T` for several weights sharing the input (q/k/v, gate/up): activations are
/// quantized once per group size and all products run in one parallel loop.
pub fn matmul_many(kn: &Kernels, ws: &[&PackedQ], x: &[f32], m: usize) -> Vec<Vec<f32>> {
    let k = ws[0].k;
    assert!(ws.iter().all(|w| w.k == k) && x.len() == m * k);
    let mut acts: Vec<(ActKey, QuantAct)> = Vec::new();
    for w in ws {
        let key = ActKey::of(kn, w);
        if !acts.iter().any(|(g, _)| *g == key) {
            acts.push((key, QuantAct::new(kn, x, m, k, key)));
        }
    }
    // Every (row, column) of every output is written by exactly one unit below.
    let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| super::alloc_vec(m * w.n)).collect();
    let rb = m.clamp(1, ROW_BLOCK);
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
        let a = &acts.iter().find(|(g, _)| *g == ActKey::of(kn, w)).expect("quantized").1;
        let r0 = b * rb;
        let r1 = (r0 + rb).min(m);
        let ptr = ptrs[*i];
        // SAFETY: units write disjoint (row, column) blocks of their output, which has room
        // for m * n values; `kn` runs on this CPU.
        unsafe { (kn.qgemm_unit)(w, a, tiles.clone(), r0, r1, ptr.get()) };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::lcg;
    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};

    /// Unpacking against candle's dequantization, and every kernel this CPU runs against an
    /// exact f64 product of the same quantized activations, on shapes with ragged tile pairs
    /// (odd tile counts), row strips and row blocks.
    fn check(kind: QKind) {
        for (n, k, m) in [(48, 512, 7), (16, 256, 1), (80, 768, 13), (32, 256, 75)] {
            check_values(kind, (n, k, m), &lcg(1, n * k), &lcg(2, m * k));
        }
    }

    /// `check` for the weights `wv` (`[n, k]`) and activations `x` (`[m, k]`).
    fn check_values(kind: QKind, (n, k, m): (usize, usize, usize), wv: &[f32], x: &[f32]) {
        {
            let wt = Tensor::from_vec(wv.to_vec(), (n, k), &Device::Cpu).unwrap();
            let qt = QTensor::quantize(&wt, kind.ggml()).unwrap();
            let deq = qt.dequantize(&Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
            let p = PackedQ::pack(kind, n, k, &qt.data().unwrap()).unwrap();
            for (c, row) in deq.iter().enumerate() {
                assert_eq!(&p.dequantize_row(c), row, "{kind:?} row {c}");
            }
            let a = QuantAct::new(
                &crate::kernels::generic::KERNELS,
                x,
                m,
                k,
                ActKey::of(&crate::kernels::generic::KERNELS, &p),
            );
            let mut want = vec![0f64; m * n];
            let mut plain = vec![0f64; m * n];
            let block = ActKey::of(&crate::kernels::generic::KERNELS, &p).block;
            for r in 0..m {
                for (c, row) in deq.iter().enumerate() {
                    for kk in 0..k {
                        let ad = a.d[r * (k / block) + kk / block] as f64;
                        want[r * n + c] += row[kk] as f64 * a.q[r * k + kk] as f64 * ad;
                        plain[r * n + c] += row[kk] as f64 * x[r * k + kk] as f64;
                    }
                }
            }
            for kn in crate::kernels::tables() {
                let y = p.matmul(kn, x, m);
                for i in 0..m * n {
                    let (got, want, plain) = (y[i] as f64, want[i], plain[i]);
                    let at = format!("{} {kind:?} {n}x{k} m={m} ({}, {})", kn.name, i / n, i % n);
                    assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{at}: {got} vs {want}");
                    assert!((got - plain).abs() < 0.15 * (1.0 + plain.abs()), "{at}: {got} vs {plain}");
                }
            }
        }
    }

    /// The largest quants against the largest activations, of one sign and of both: the
    /// kernels that sum products in 16 bits must not overflow (plain AVX2's K-quants).
    #[test]
    fn extreme_values() {
        let (n, k, m) = (32, 512, 5);
        // Per group of 16: one small value and the rest at the top, so most quants are the
        // largest the format stores (unsigned ones: the minimum is the small value); Q6_K's
        // largest stored quant is 31 steps against a value of the other sign at -32; and
        // signs mixed.
        let top = |i: usize| if i.is_multiple_of(16) { 0.0 } else { 1.0 };
        let weights: [Vec<f32>; 4] = [
            (0..n * k).map(top).collect(),
            (0..n * k).map(|i| if i.is_multiple_of(16) { 1.0 } else { -31.0 / 32.0 }).collect(),
            (0..n * k).map(|i| -top(i)).collect(),
            (0..n * k).map(|i| if (i / 64) % 2 == 0 { top(i) } else { -top(i) }).collect(),
        ];
        let acts: [Vec<f32>; 3] =
            [vec![1.0; m * k], vec![-1.0; m * k], (0..m * k).map(|i| [1.0, -1.0][(i / 7) % 2]).collect()];
        for kind in QKind::ALL {
            for wv in &weights {
                for x in &acts {
                    check_values(kind, (n, k, m), wv, x);
                }
            }
        }
    }

    #[test]
    fn q4_0() {
        check(QKind::Q4_0)
    }
    #[test]
    fn q4_1() {
        check(QKind::Q4_1)
    }
    #[test]
    fn q5_0() {
        check(QKind::Q5_0)
    }
    #[test]
    fn q5_1() {
        check(QKind::Q5_1)
    }
    #[test]
    fn q4k() {
        check(QKind::Q4K)
    }
    #[test]
    fn q5k() {
        check(QKind::Q5K)
    }
    #[test]
    fn q6k() {
        check(QKind::Q6K)
    }

    /// Many rows take a decoded copy of the tiles on AVX-512 (Q5_K), few rows decode in
    /// registers: the same rows give the same bits either way, on every table. (Q6_K's copy
    /// sums its sub-blocks in f32 where the register decode sums them in integers: `check`.)
    #[test]
    fn many_rows_match_few_rows_to_the_bit() {
        let (n, k) = (64, 512);
        for kind in [QKind::Q5K, QKind::Q4K, QKind::Q8_0] {
            let wt = Tensor::from_vec(lcg(3, n * k), (n, k), &Device::Cpu).unwrap();
            let qt = QTensor::quantize(&wt, kind.ggml()).unwrap();
            let p = PackedQ::pack(kind, n, k, &qt.data().unwrap()).unwrap();
            let x = lcg(4, 40 * k);
            for kn in crate::kernels::tables() {
                let many = p.matmul(kn, &x, 40);
                let few = p.matmul(kn, &x[..5 * k], 5);
                assert_eq!(&many[..5 * n], &few[..], "{} {kind:?}", kn.name);
            }
        }
    }
    #[test]
    fn q8_0() {
        check(QKind::Q8_0)
    }

    /// Every instruction set quantizes activations to the same bytes and scales, in blocks of
    /// 256 and of 32.
    #[test]
    fn quantize_block_matches_generic() {
        let x: Vec<f32> = lcg(5, QK * 4).iter().enumerate().map(|(i, v)| v * (1 + i % 7) as f32).collect();
        for (kn, block) in crate::kernels::tables().into_iter().flat_map(|kn| [(kn, QK), (kn, 32)]) {
            for shift in [false, true] {
                for (b, xb) in x.chunks_exact(block).enumerate() {
                    let xb: Vec<f32> = if b == 3 { vec![0.0; block] } else { xb.to_vec() };
                    let (mut q0, mut q1) = (vec![0i8; block], vec![0i8; block]);
                    let d0 = crate::kernels::generic::quantize_block(&xb, &mut q0, shift);
                    // SAFETY: available() lists instruction sets this CPU runs.
                    let d1 = unsafe { (kn.quantize_block)(&xb, &mut q1, shift) };
                    assert_eq!((d0, &q0), (d1, &q1), "{} shift={shift} block {b}", kn.name);
                }
            }
        }
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
        let kn = crate::kernels::table();
        println!("instruction set: {:?}", kn.isa);
        let kinds = [
            (QKind::Q4K, "q4k"),
            (QKind::Q5K, "q5k"),
            (QKind::Q6K, "q6k"),
            (QKind::Q8_0, "q8_0"),
            (QKind::Q5_0, "q5_0"),
        ]
        .map(|(kind, name)| (kind.ggml(), kind, name))
        .into_iter()
        .filter(|(_, _, name)| wanted.iter().any(|k| k == name));
        let shapes = [(9728, 2560), (2560, 9728)];
        let wts = shapes.map(|(n, k)| Tensor::from_vec(lcg(3, n * k), (n, k), &Device::Cpu).unwrap());
        for (((n, k), wt), (dtype, kind, _)) in
            shapes.into_iter().zip(&wts).flat_map(|s| kinds.clone().map(move |c| (s, c)))
        {
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
                    std::hint::black_box(QuantAct::new(kn, &x, m, k, ActKey::of(kn, &p)));
                });
                println!("  quantize activations: {:.2} ms", quant * 1e3);
                // Outputs go back to the spares, as in the forward pass.
                let ours = time(&|| {
                    crate::kernels::recycle(std::hint::black_box(p.matmul(kn, &x, m)));
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
    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};

    #[test]
    #[ignore]
    fn kernel_speed() {
        let kn = crate::kernels::table();
        println!("instruction set: {:?}", kn.isa);
        let (n, k) = (32, 2560);
        for kind in [QKind::Q8_0, QKind::Q4K, QKind::Q5K, QKind::Q6K] {
            let dtype = kind.ggml();
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
            let wt = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
            let qt = QTensor::quantize(&wt, dtype).unwrap();
            let p = PackedQ::pack(kind, n, k, &qt.data().unwrap()).unwrap();
            for m in [6usize, 72] {
                let x: Vec<f32> = (0..m * k).map(|i| ((i * 104729 % 2000) as f32 / 1000.0) - 1.0).collect();
                let a = QuantAct::new(kn, &x, m, k, ActKey::of(kn, &p));
                let calls = 20_000_000 / m / 5 / (k / 256);
                // Seconds per call, best of 5 runs of `calls` calls, on this thread.
                let per_call = || {
                    let mut out = vec![0f32; m * n];
                    (0..5)
                        .map(|_| {
                            let t = std::time::Instant::now();
                            for _ in 0..calls {
                                // SAFETY: `out` is `[m, n]`; the table runs on this CPU.
                                unsafe { (kn.qgemm_unit)(&p, &a, 0..2, 0, m, out.as_mut_ptr()) };
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
                println!(
                    "{kind:?} m={m}: {:.0} GOP/s on two threads",
                    2.0 * ops / two.iter().cloned().fold(0.0, f64::max) / 1e9
                );
            }
        }
    }
}
