//! Wall time and arithmetic per forward-pass stage, for benchmarks: off unless
//! `QWEN3_EMBED_PROFILE` is set when the process starts (then one clock read per stage).
//! `report()` returns the times, `arithmetic()` the floating-point operations each stage's
//! products did (a multiply-add counts two), so a stage's share of the time can be set beside
//! its share of the work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub enum Stage {
    Embed,
    Norm,
    Qkv,
    Rope,
    Attention,
    OutProj,
    GateUp,
    Act,
    Down,
    Residual,
    Other,
}

const STAGES: [&str; 11] =
    ["embed", "norm", "qkv", "rope", "attention", "o_proj", "gate_up", "silu_mul", "down", "residual", "other"];

static TOTALS: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];
static FLOPS: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];

pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("QWEN3_EMBED_PROFILE").is_some())
}

/// A started clock, or nothing when profiling is off.
pub fn start() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// Adds the time since `t` to `stage` and restarts the clock.
pub fn lap(t: &mut Option<Instant>, stage: Stage) {
    if let Some(s) = t {
        let now = Instant::now();
        TOTALS[stage as usize].fetch_add((now - *s).as_nanos() as u64, Ordering::Relaxed);
        *s = now;
    }
}

/// (stage, seconds) for every stage with time on it.
pub fn report() -> Vec<(&'static str, f64)> {
    STAGES
        .iter()
        .zip(&TOTALS)
        .map(|(n, t)| (*n, t.load(Ordering::Relaxed) as f64 / 1e9))
        .filter(|(_, s)| *s > 0.0)
        .collect()
}

/// Adds `flops` operations of arithmetic to `stage` (when profiling).
pub fn count(stage: Stage, flops: u64) {
    if enabled() {
        FLOPS[stage as usize].fetch_add(flops, Ordering::Relaxed);
    }
}

/// (stage, GFLOP) for every stage with arithmetic counted.
pub fn arithmetic() -> Vec<(&'static str, f64)> {
    STAGES
        .iter()
        .zip(&FLOPS)
        .map(|(n, f)| (*n, f.load(Ordering::Relaxed) as f64 / 1e9))
        .filter(|(_, f)| *f > 0.0)
        .collect()
}
