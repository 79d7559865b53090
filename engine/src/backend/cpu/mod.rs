//! The CPU backend: our own kernels (`crate::kernels`) on a rayon thread pool of its own.
//! `weights.rs` holds the weights as the kernels take them (repacked, or mapped from the
//! packed-weight cache), `forward.rs` the forward pass over them.

mod forward;
pub(crate) mod weights;

use super::{Backend, Device};
use crate::cancel::Cancel;
use crate::error::{EngineError, Result};
use forward::{rows, Qwen3};
use weights::ModelWeights;

pub struct CpuBackend {
    model: Qwen3,
    pool: rayon::ThreadPool,
}

impl CpuBackend {
    /// Starts `threads` compute threads (0: one per core), runs `load` on them (loading repacks
    /// weights in parallel) and builds the model from the weights it returns, with whatever
    /// else `load` returns.
    pub fn load<T>(threads: usize, load: impl FnOnce() -> Result<(ModelWeights, T)> + Send) -> Result<(Self, T)>
    where
        T: Send,
    {
        let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("qwen3-embed-{i}"))
            .build()
            .map_err(|e| EngineError::Compute(format!("cannot start {threads} threads: {e}")))?;
        let (weights, extra) = pool.install(load)?;
        Ok((CpuBackend { model: Qwen3::new(weights)?, pool }, extra))
    }
}

impl Backend for CpuBackend {
    fn forward(&self, batch: &[&[u32]], cancel: &dyn Cancel) -> Result<Vec<Vec<f32>>> {
        let states = self.pool.install(|| self.model.forward(batch, cancel))?;
        rows(&states)
    }

    fn device(&self) -> Device {
        Device::Cpu
    }

    fn name(&self) -> &'static str {
        "kernels"
    }

    fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    fn weight_bytes(&self) -> u64 {
        self.model.weight_bytes()
    }
}
