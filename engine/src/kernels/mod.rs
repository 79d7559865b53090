//! Compute kernels of our own, used instead of candle's where they are faster.

pub mod dense;
pub mod ops;
pub mod qgemm;

use candle_core::{Storage, Tensor};

use crate::error::Result;

/// Runs `f` on the f32 contents of `t` (row-major), without a copy when `t` is contiguous.
pub fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) {
            if let Ok(s) = cpu.as_slice::<f32>() {
                return Ok(f(&s[a..b]));
            }
        }
    }
    let v = t.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&v))
}

/// CPU seconds used so far by all threads of this process (Linux, from schedstat; 0 elsewhere).
/// Benchmarks on a shared machine divide work by this instead of wall time.
pub fn process_cpu_seconds() -> f64 {
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
