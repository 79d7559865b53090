//! Compute kernels of our own: every kernel kind has a scalar reference in `generic` (the
//! test oracle and the fallback) and SIMD versions in per-architecture files. The instruction
//! set is picked once, at the first model load, into one table of function pointers
//! ([`Kernels`]); `QWEN3_EMBED_ISA=generic|avx2|avx512` (or another table's code) forces one, and
//! asking for one this CPU lacks is an error, not a silent fallback.

pub(crate) mod blocks;
pub(crate) mod dense;
pub(crate) mod generic;
pub(crate) mod ops;
pub(crate) mod qgemm;
pub(crate) mod qpack;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

use std::ops::Range;
use std::sync::OnceLock;

/// An output buffer's pointer handed to parallel units that each write their own disjoint part
/// of it (the buffer outlives the parallel loop).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: the units write disjoint parts, and the owner waits for all of them.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `SendPtr`, not its field).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

use crate::error::{EngineError, Result};

/// An instruction set the kernels are written for, from the most portable up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, any CPU: the reference every SIMD kernel is tested against.
    Generic,
    /// AVX2 + FMA + F16C (x86-64-v3); uses AVX-VNNI where the CPU has it.
    Avx2,
    /// AVX-512 F/BW/VL + VNNI; BF16 weights use `vdpbf16ps` where the CPU has AVX512_BF16.
    Avx512,
}

/// The environment variable that forces an instruction set.
pub(crate) const ISA_ENV: &str = "QWEN3_EMBED_ISA";

/// Version of the packed weight layouts (`qgemm::PackedQ`, `dense::PackedDense`, their
/// `parts()`): a packed-weight cache file written under another version is never used. Bump
/// it with every change to what `parts()` returns or how the kernels read it.
pub(crate) const PACK_LAYOUT: u32 = 2;

impl Isa {
    pub const ALL: [Isa; 3] = [Isa::Generic, Isa::Avx2, Isa::Avx512];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    pub fn parse(s: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name().eq_ignore_ascii_case(s.trim()))
    }

    /// The CPU features this instruction set needs that this CPU lacks (empty: it runs here).
    pub fn missing_features(self) -> Vec<&'static str> {
        #[cfg(target_arch = "x86_64")]
        {
            let needed: &[(&str, bool)] = match self {
                Isa::Generic => &[],
                Isa::Avx2 => &[
                    ("avx2", std::is_x86_feature_detected!("avx2")),
                    ("fma", std::is_x86_feature_detected!("fma")),
                    ("f16c", std::is_x86_feature_detected!("f16c")),
                ],
                Isa::Avx512 => &[
                    ("avx2", std::is_x86_feature_detected!("avx2")),
                    ("fma", std::is_x86_feature_detected!("fma")),
                    ("f16c", std::is_x86_feature_detected!("f16c")),
                    ("avx512f", std::is_x86_feature_detected!("avx512f")),
                    ("avx512bw", std::is_x86_feature_detected!("avx512bw")),
                    ("avx512vl", std::is_x86_feature_detected!("avx512vl")),
                    ("avx512vnni", std::is_x86_feature_detected!("avx512vnni")),
                ],
            };
            needed.iter().filter(|(_, has)| !has).map(|(name, _)| *name).collect()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            match self {
                Isa::Generic => vec![],
                _ => vec!["x86_64"],
            }
        }
    }

    pub fn supported(self) -> bool {
        self.missing_features().is_empty()
    }

    /// The instruction sets this CPU runs, generic first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.supported()).collect()
    }

    /// The fastest instruction set this CPU runs.
    pub fn best() -> Isa {
        *Isa::available().last().expect("generic always runs")
    }

    /// `QWEN3_EMBED_ISA`'s value (`None`: unset or empty, the best one), checked against this CPU.
    pub fn from_setting(setting: Option<&str>) -> std::result::Result<Isa, String> {
        let Some(s) = setting.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(Isa::best());
        };
        let Some(isa) = Isa::parse(s) else {
            return Err(format!(
                "{ISA_ENV}={s:?} is not an instruction set: use generic, avx2 or avx512, or a kernel table's code ({})",
                codes().join(", ")
            ));
        };
        let missing = isa.missing_features();
        if !missing.is_empty() {
            return Err(format!(
                "{ISA_ENV}={s}: this CPU lacks {}; it runs {}",
                missing.join(", "),
                Isa::available().iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(isa)
    }

    /// The kernel table of this instruction set, which must run on this CPU.
    pub fn kernels(self) -> &'static Kernels {
        assert!(self.supported(), "{} kernels on a CPU without {:?}", self.name(), self.missing_features());
        match self {
            Isa::Generic => &generic::KERNELS,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86_64::avx2_kernels(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86_64::avx512_kernels(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("supported() is false off x86_64"),
        }
    }
}

/// Longest [`Kernels::code`]: the packed-weight cache's header keeps this many bytes.
pub(crate) const CODE_MAX: usize = 16;

/// Every kernel table's code, whether or not this CPU runs it.
pub(crate) fn codes() -> Vec<&'static str> {
    let mut v = vec![generic::KERNELS.code];
    #[cfg(target_arch = "x86_64")]
    v.extend(x86_64::all_tables().iter().map(|t| t.code));
    v
}

/// The table `QWEN3_EMBED_ISA` asks for: one table by its code where this CPU runs it
/// (`avx2`: the AVX2 kernels without AVX-VNNI, on any AVX2 CPU; `avx512_nobf16`: AVX-512
/// without its BF16 kernel, as on Skylake-X to Ice Lake), else an instruction set's best table
/// on this CPU (`avx512` on a CPU without AVX512_BF16); unset or empty: the best this CPU runs.
pub(crate) fn select(setting: Option<&str>) -> std::result::Result<&'static Kernels, String> {
    let setting = setting.map(str::trim);
    if let Some(t) = setting.and_then(|s| tables().into_iter().find(|t| t.code.eq_ignore_ascii_case(s))) {
        return Ok(t);
    }
    let code = setting.filter(|s| Isa::parse(s).is_none() && codes().contains(s));
    let Some(code) = code else {
        return Isa::from_setting(setting).map(Isa::kernels);
    };
    tables().into_iter().find(|t| t.code == code).ok_or_else(|| {
        format!(
            "{ISA_ENV}={code}: this CPU does not run that kernel table; it runs {}",
            tables().iter().map(|t| t.code).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The kernels chosen for this process: the best the CPU runs, or what `QWEN3_EMBED_ISA`
/// names ([`select`]). Decided on the first call; an invalid setting is an error at every
/// model load.
pub fn active() -> Result<&'static Kernels> {
    static ACTIVE: OnceLock<std::result::Result<&'static Kernels, String>> = OnceLock::new();
    ACTIVE.get_or_init(|| select(std::env::var(ISA_ENV).ok().as_deref())).clone().map_err(EngineError::Isa)
}

/// Every kernel table this CPU runs, including the variants one instruction set picks between
/// by optional extensions (AVX2 with and without AVX-VNNI, ...): what kernel tests loop over.
pub fn tables() -> Vec<&'static Kernels> {
    let mut v = vec![&generic::KERNELS];
    #[cfg(target_arch = "x86_64")]
    v.extend(x86_64::tables());
    v
}

/// The active kernels for code past a model load. A load fails while `QWEN3_EMBED_ISA` is
/// invalid, so no forward pass reaches the generic fallback here.
pub(crate) fn table() -> &'static Kernels {
    active().unwrap_or(&generic::KERNELS)
}

/// Rows `r0..r1` of the quantized activations times tiles `tiles` of a packed quantized
/// weight, into `out` (`[m, w.n]` row-major).
pub(crate) type QUnitFn =
    unsafe fn(w: &qgemm::PackedQ, a: &qgemm::QuantAct, tiles: Range<usize>, r0: usize, r1: usize, out: *mut f32);
/// Rows `r0..r1` of `x` (f32) or `xb` (bf16 pairs) times tiles `tiles` of a packed dense
/// weight, into `out` (`[m, w.n]` row-major).
pub(crate) type DenseUnitFn =
    unsafe fn(w: &dense::PackedDense, x: &[f32], xb: &[u32], tiles: Range<usize>, r0: usize, r1: usize, out: *mut f32);

/// One kernel of every kind, for one instruction set. The functions are `unsafe` because the
/// SIMD ones need their CPU features: a table is only handed out (`Isa::kernels`) for an
/// instruction set the CPU runs, which is what makes calling through it sound.
pub struct Kernels {
    pub isa: Isa,
    /// The instruction set and the optional extensions this table uses, for people.
    pub name: &'static str,
    /// A fixed code naming this table in packed-weight cache keys and file names and in
    /// `QWEN3_EMBED_ISA`: at most [`CODE_MAX`] bytes of `[a-z0-9_]`, never changed once used.
    pub code: &'static str,
    /// Quantizes 256 activations to i8 (`shift`: stored as `q + 128`), returns the scale.
    pub(crate) quantize_block: unsafe fn(x: &[f32], q: &mut [i8], shift: bool) -> f32,
    /// Whether this table's quantized GEMM takes the activations shifted to unsigned bytes
    /// for Q6_K and Q8_0, whose weights it multiplies as signed bytes (`vpdpbusd` takes one
    /// unsigned operand); the shift is removed with per-column weight sums.
    pub(crate) shift_signed: bool,
    pub(crate) qgemm_unit: QUnitFn,
    /// Indexed by `DenseKind as usize`.
    pub(crate) dense_unit: [DenseUnitFn; 3],
    pub(crate) attention: unsafe fn(a: &ops::Attention, out: &mut [f32]),
    /// Whether `attention` multiplies long sequences' products in 16-bit fixed point (queries,
    /// keys, weights and values scaled to integers of about 13 bits, exact integer sums) rather
    /// than in f32.
    pub attention_int16: bool,
    /// RMSNorm of every row (rows are `w.len()` long).
    pub(crate) rms_rows: unsafe fn(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]),
    /// `g = silu(g) * u`.
    pub(crate) silu_mul: unsafe fn(g: &mut [f32], u: &[f32]),
    /// NeoX rotary embedding of one row of heads (`cos`/`sin` are `hd/2` long).
    pub(crate) rope_row: unsafe fn(row: &mut [f32], hd: usize, cos: &[f32], sin: &[f32]),
    /// `a += b`.
    pub(crate) add: unsafe fn(a: &mut [f32], b: &[f32]),
}

/// An empty vector with room for `n` values, for a large output that the caller fills
/// completely through `as_mut_ptr()` and then `set_len(n)`.
///
/// A buffer handed back with [`recycle`] on this thread is reused when one is large enough:
/// the forward pass needs the same few hundred MB of activations in every layer, and taking
/// fresh memory each time means the kernel zeroes it page by page (Q8_0 4B, 1,631 tokens, 2
/// threads: about 300 MB per layer). Otherwise, on Linux, buffers of 4 MiB and more are marked
/// for transparent huge pages, which makes the remaining page faults 512 times fewer.
pub(crate) fn alloc_vec<T: Spare>(n: usize) -> Vec<T> {
    if let Some(mut v) = T::take(n) {
        v.clear();
        return v;
    }
    let v = Vec::<T>::with_capacity(n);
    let bytes = n * std::mem::size_of::<T>();
    #[cfg(target_os = "linux")]
    if bytes >= SPARE_MIN_BYTES {
        const HUGE: usize = 2 << 20;
        const MADV_HUGEPAGE: i32 = 14;
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        let start = (v.as_ptr() as usize).next_multiple_of(HUGE);
        let end = (v.as_ptr() as usize + bytes) & !(HUGE - 1);
        if end > start {
            // SAFETY: the range lies inside this allocation; the advice changes no contents.
            // A failure (THP off) only loses the speed-up.
            unsafe { madvise(start as *mut std::ffi::c_void, end - start, MADV_HUGEPAGE) };
        }
    }
    let _ = bytes;
    v
}

/// `vec![T::default(); n]` in memory from `alloc_vec`.
pub(crate) fn zeroed_vec<T: Spare + Copy + Default>(n: usize) -> Vec<T> {
    let mut v = alloc_vec(n);
    v.resize(n, T::default());
    v
}

/// Buffers smaller than this are left to the allocator.
const SPARE_MIN_BYTES: usize = 4 << 20;
/// At most this many spare buffers of each type per thread.
const SPARE_MAX: usize = 24;

/// Element types whose large buffers are kept for reuse by [`alloc_vec`].
pub(crate) trait Spare: Sized {
    /// The smallest spare buffer of this thread with room for `n` values.
    fn take(n: usize) -> Option<Vec<Self>>;
    fn put(v: Vec<Self>);
    fn clear_spares();
}

macro_rules! spare_pool {
    ($t:ty, $pool:ident) => {
        thread_local! {
            static $pool: std::cell::RefCell<Vec<Vec<$t>>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        impl Spare for $t {
            fn take(n: usize) -> Option<Vec<$t>> {
                $pool.with_borrow_mut(|p| {
                    let i = (0..p.len()).filter(|&i| p[i].capacity() >= n).min_by_key(|&i| p[i].capacity())?;
                    Some(p.swap_remove(i))
                })
            }
            fn put(v: Vec<$t>) {
                if v.capacity() * std::mem::size_of::<$t>() >= SPARE_MIN_BYTES {
                    $pool.with_borrow_mut(|p| {
                        if p.len() < SPARE_MAX {
                            p.push(v)
                        }
                    });
                }
            }
            fn clear_spares() {
                $pool.with_borrow_mut(|p| p.clear());
            }
        }
    };
}
spare_pool!(f32, SPARE_F32);
spare_pool!(i8, SPARE_I8);

/// Hands a large buffer that is no longer needed back to this thread's spares.
pub(crate) fn recycle<T: Spare>(v: Vec<T>) {
    T::put(v);
}

/// Frees this thread's spare buffers (the end of a forward pass).
pub(crate) fn release_spares() {
    f32::clear_spares();
    i8::clear_spares();
}

/// `n` test values in [-1, 1) from a seeded linear congruential generator.
#[cfg(test)]
pub(crate) fn lcg(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// CPU seconds used so far by all threads of this process (Linux, from schedstat; 0 elsewhere).
/// Benchmarks on a shared machine divide work by this instead of wall time.
#[cfg(test)]
pub(crate) fn process_cpu_seconds() -> f64 {
    let mut ns = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(e.path().join("schedstat")) {
                ns += s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    ns as f64 / 1e9
}

#[cfg(all(test, target_arch = "x86_64"))]
mod peak {
    //! The machine's peak, measured: independent chains of one instruction (or of the short
    //! sequence a kernel repeats) per thread, on 1 and on 2 threads at once: the AVX-512 ones
    //! where the CPU has them, and the plain AVX2 ones (the `avx2` table's instruction mix) on
    //! every x86 CPU with AVX2, FMA and F16C.
    //! `cargo test --release -p qwen3-embed-engine --lib peak_throughput -- --ignored --nocapture`
    use std::arch::x86_64::*;

    const ITERS: usize = 200_000_000;

    /// The plain AVX2 mixes, per 256-bit step of one of 12 chains (AVX2 has 16 registers): int8
    /// as Q8_0 multiplies (weights loaded, `vpmaddubsw`, `vpmaddwd` by ones into the chain's
    /// `vpaddd`: 32 multiply-adds) and as the K-quants do (`vpmaddubsw` into 16-bit sums with
    /// `vpaddw`: 32), int16 (`vpmaddwd` into `vpaddd`: 16, what fixed-point attention would use),
    /// f32 `vfmadd231ps` (8), and F16 weights as the dense kernel reads them (loaded,
    /// `vcvtph2ps`, `vfmadd231ps`: 8). The weights sit in L1.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn run_avx2(kind: usize) -> f64 {
        let t = std::time::Instant::now();
        let bytes = [3u8; AVX2_CHAINS * 32];
        let halves = [0x3c00u16; AVX2_CHAINS * 8];
        let a = _mm256_set1_epi8(5);
        let ones = _mm256_set1_epi16(1);
        let fa = _mm256_set1_ps(1.0);
        let fb = _mm256_set1_ps(1e-9);
        let mut acc_i = [_mm256_setzero_si256(); AVX2_CHAINS];
        let mut acc_f = [_mm256_setzero_ps(); AVX2_CHAINS];
        for _ in 0..ITERS {
            // Opaque each time round: the loads, and what is computed from them, stay in the loop.
            let (bytes, halves) = std::hint::black_box((&bytes, &halves));
            for j in 0..AVX2_CHAINS {
                match kind {
                    0 => {
                        let w = _mm256_loadu_si256(bytes.as_ptr().add(j * 32).cast());
                        acc_i[j] = _mm256_add_epi32(acc_i[j], _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), ones));
                    }
                    1 => acc_f[j] = _mm256_fmadd_ps(fa, fb, acc_f[j]),
                    3 => {
                        let w = _mm256_loadu_si256(bytes.as_ptr().add(j * 32).cast());
                        acc_i[j] = _mm256_add_epi16(acc_i[j], _mm256_maddubs_epi16(w, a));
                    }
                    4 => {
                        let w = _mm256_loadu_si256(bytes.as_ptr().add(j * 32).cast());
                        acc_i[j] = _mm256_add_epi32(acc_i[j], _mm256_madd_epi16(w, a));
                    }
                    _ => {
                        let w = _mm256_cvtph_ps(_mm_loadu_si128(halves.as_ptr().add(j * 8).cast()));
                        acc_f[j] = _mm256_fmadd_ps(w, fb, acc_f[j]);
                    }
                }
            }
        }
        std::hint::black_box((acc_i, acc_f));
        t.elapsed().as_secs_f64()
    }

    const AVX2_CHAINS: usize = 12;

    fn report(name: &str, flops: f64, chains: usize, run: fn(usize) -> f64, kind: usize) {
        for threads in [1usize, 2] {
            let secs: Vec<f64> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads).map(|_| s.spawn(move || run(kind))).collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let worst = secs.iter().cloned().fold(0.0, f64::max);
            let ops = (ITERS * chains * threads) as f64;
            println!(
                "{name}: {threads} thread(s): {:.2} steps/ns per thread, {:.0} GOP/s",
                ops / threads as f64 / worst / 1e9,
                ops * flops / worst / 1e9
            );
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512bf16")]
    unsafe fn run(kind: usize) -> f64 {
        let t = std::time::Instant::now();
        let a = _mm512_set1_epi8(3);
        let b = _mm512_set1_epi8(5);
        let fa = _mm512_set1_ps(1.0);
        let fb = _mm512_set1_ps(1e-9);
        let mut acc_i = [_mm512_setzero_si512(); 24];
        let mut acc_f = [_mm512_setzero_ps(); 24];
        for _ in 0..ITERS {
            for j in 0..24 {
                match kind {
                    0 => acc_i[j] = _mm512_dpbusd_epi32(acc_i[j], a, b),
                    1 => acc_f[j] = _mm512_fmadd_ps(fa, fb, acc_f[j]),
                    3 => acc_i[j] = _mm512_dpwssd_epi32(acc_i[j], a, b),
                    _ => {
                        acc_f[j] = _mm512_dpbf16_ps(
                            acc_f[j],
                            std::mem::transmute::<__m512i, __m512bh>(a),
                            std::mem::transmute::<__m512i, __m512bh>(b),
                        )
                    }
                }
            }
        }
        std::hint::black_box((acc_i, acc_f));
        t.elapsed().as_secs_f64()
    }

    #[test]
    #[ignore]
    fn peak_throughput() {
        if std::is_x86_feature_detected!("avx512bf16") && std::is_x86_feature_detected!("avx512vnni") {
            for (kind, name, flops) in [
                (0, "vpdpbusd (int8)", 128.0),
                (3, "vpdpwssd (int16)", 64.0),
                (1, "vfmadd231ps (f32)", 32.0),
                (2, "vdpbf16ps (bf16)", 64.0),
            ] {
                // SAFETY: the CPU has the features `run` is compiled for (checked above).
                report(name, flops, 24, |k| unsafe { run(k) }, kind);
            }
        }
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            for (kind, name, flops) in [
                (0, "AVX2 vpmaddubsw+vpmaddwd+vpaddd (int8)", 64.0),
                (3, "AVX2 vpmaddubsw+vpaddw (int8, 16-bit sums)", 64.0),
                (4, "AVX2 vpmaddwd+vpaddd (int16)", 32.0),
                (1, "AVX2 vfmadd231ps (f32)", 16.0),
                (2, "AVX2 vcvtph2ps+vfmadd231ps (f16 weights)", 16.0),
            ] {
                // SAFETY: the CPU has the features `run_avx2` is compiled for (checked above).
                report(name, flops, AVX2_CHAINS, |k| unsafe { run_avx2(k) }, kind);
            }
        }
    }
}

#[cfg(test)]
mod isa_tests {
    use super::*;

    #[test]
    fn setting_parses_and_checks_the_cpu() {
        assert_eq!(Isa::from_setting(None), Ok(Isa::best()));
        assert_eq!(Isa::from_setting(Some(" ")), Ok(Isa::best()));
        assert_eq!(Isa::from_setting(Some("GENERIC")), Ok(Isa::Generic));
        let e = Isa::from_setting(Some("sse9")).unwrap_err();
        assert!(e.contains("QWEN3_EMBED_ISA") && e.contains("generic, avx2 or avx512"), "{e}");
        for isa in Isa::ALL {
            match Isa::from_setting(Some(isa.name())) {
                Ok(got) => assert!(got == isa && isa.supported()),
                Err(e) => assert!(!isa.supported() && e.contains("lacks"), "{e}"),
            }
        }
    }

    /// The kernel tests loop over `tables()`: it holds a table of every instruction set this
    /// CPU runs, and the active one.
    #[test]
    fn tables_cover_every_available_isa() {
        let tables = tables();
        for isa in Isa::available() {
            assert!(tables.iter().any(|t| t.isa == isa), "{isa:?}");
            assert!(tables.iter().any(|t| std::ptr::eq(*t, isa.kernels())), "{isa:?}");
        }
        eprintln!("kernel tables: {:?}", tables.iter().map(|t| t.name).collect::<Vec<_>>());
    }

    /// Codes are what cache keys store: short enough for the header, distinct, plain.
    #[test]
    fn table_codes_are_short_distinct_and_plain() {
        let codes = codes();
        for c in &codes {
            assert!(!c.is_empty() && c.len() <= CODE_MAX, "{c:?}");
            assert!(c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{c:?}");
            assert_eq!(codes.iter().filter(|d| *d == c).count(), 1, "{c:?}");
        }
        assert!(tables().iter().all(|t| codes.contains(&t.code)));
    }

    #[test]
    fn a_table_is_selected_by_its_code() {
        for t in tables() {
            assert!(std::ptr::eq(select(Some(t.code)).unwrap(), t), "{}", t.code);
            assert!(std::ptr::eq(select(Some(&t.code.to_uppercase())).unwrap(), t), "{}", t.code);
        }
        // The plain AVX2 kernels are forced by their code even where AVX-VNNI is the best.
        if Isa::Avx2.supported() {
            assert!(!select(Some("avx2")).unwrap().name.contains("vnni"));
        }
        for c in codes().into_iter().filter(|c| !tables().iter().any(|t| t.code == *c)) {
            let Err(e) = select(Some(c)) else { panic!("{c}: selected on a CPU that does not run it") };
            let why = if Isa::parse(c).is_some() { "lacks" } else { "does not run that kernel table" };
            assert!(e.contains(why), "{e}");
        }
        let Err(e) = select(Some("sse9")) else { panic!("sse9 selected") };
        assert!(e.contains("avx512_nobf16"), "{e}");
    }
}
