//! The candle backend: the forward pass (`forward.rs`) on candle tensors, on the CPU or on a
//! CUDA device (in a build with the `cuda` feature). On the CPU it is the reference the CUDA
//! path is tested by: the same code, only the device differs.
//!
//! A batch is cut into groups of similar length (longest first), and each group runs padded
//! to its longest sequence, so padding stays small.

mod forward;
mod weights;

use super::{Backend, Device};
use crate::cancel::Cancel;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::tensors::Assemble;
use forward::{rows, Model};

/// A sequence joins a padded group while the group's padded size stays within this factor of
/// its real tokens, plus `PAD_SLACK` tokens: short sequences batch together even when they
/// differ a lot in relative terms, long ones only when close in length.
const PAD_FACTOR: f64 = 1.25;
const PAD_SLACK: usize = 64;

pub struct CandleBackend {
    model: Model,
    device: Device,
}

/// The number of CUDA devices the driver reports, or why the driver cannot say.
#[cfg(feature = "cuda")]
pub(crate) fn cuda_device_count() -> std::result::Result<usize, String> {
    use candle_core::cuda_backend::cudarc::driver::CudaContext;
    match std::panic::catch_unwind(CudaContext::device_count) {
        Ok(Ok(n)) => Ok(n.max(0) as usize),
        Ok(Err(e)) => Err(format!("CUDA driver: {e:?}")),
        Err(_) => Err("the CUDA driver library could not be used".into()),
    }
}

/// A build without CUDA sees no CUDA device.
#[cfg(not(feature = "cuda"))]
pub(crate) fn cuda_device_count() -> std::result::Result<usize, String> {
    Err("this build has no CUDA support (cargo feature `cuda`)".into())
}

/// A candle error on `device` as an engine error: out of memory and a missing or failed
/// device get their own types, anything else is a compute error.
pub(crate) fn device_error(device: Device, e: candle_core::Error) -> EngineError {
    let msg = crate::error::candle_message(&e);
    let upper = msg.to_ascii_uppercase();
    if ["OUT_OF_MEMORY", "OUT OF MEMORY", "ALLOC_FAILED"].iter().any(|p| upper.contains(p)) {
        return EngineError::DeviceOutOfMemory { device: device.to_string(), detail: msg };
    }
    if let candle_core::Error::NotCompiledWithCudaSupport = e {
        return EngineError::NoCuda(device.to_string());
    }
    if ["NO_DEVICE", "INVALID_DEVICE", "NOT_INITIALIZED", "NO_BINARY_FOR_GPU", "INSUFFICIENT_DRIVER"]
        .iter()
        .any(|code| upper.contains(code))
    {
        return EngineError::DeviceUnavailable { device: device.to_string(), detail: msg };
    }
    EngineError::Compute(msg)
}

/// Candle errors inside `f` as `device_error`s; engine errors pass through.
fn on_device<T>(device: Device, f: impl FnOnce() -> Result<T>) -> Result<T> {
    f().map_err(|e| match e {
        EngineError::Compute(msg) => device_error(device, candle_core::Error::Msg(msg)),
        other => other,
    })
}

fn open(device: Device) -> Result<candle_core::Device> {
    match device {
        Device::Cpu => Ok(candle_core::Device::Cpu),
        Device::Cuda(n) => {
            // A driver library that cannot be loaded panics inside cudarc: an error here.
            let opened = std::panic::catch_unwind(|| candle_core::Device::new_cuda(n)).unwrap_or_else(|_| {
                Err(candle_core::Error::Msg(
                    "CUDA_ERROR_NOT_INITIALIZED: the CUDA driver library could not be used".into(),
                ))
            });
            opened.map_err(|e| match device_error(device, e) {
                EngineError::Compute(detail) => EngineError::DeviceUnavailable { device: device.to_string(), detail },
                other => other,
            })
        }
    }
}

/// The weights a loader assembled for this backend.
pub struct CandleWeights(weights::Weights);

impl CandleWeights {
    pub fn config(&self) -> &ModelConfig {
        &self.0.config
    }
}

impl CandleBackend {
    /// Opens `device`, runs `load` with the candle device the tensors must be read onto, and
    /// builds the model from the weights it returns, with whatever else it returns.
    pub fn load<T>(
        device: Device,
        load: impl FnOnce(&candle_core::Device) -> Result<(CandleWeights, T)>,
    ) -> Result<(Self, T)> {
        let dev = open(device)?;
        let (w, extra) = on_device(device, || load(&dev))?;
        Ok((CandleBackend { model: Model::new(w.0, dev), device }, extra))
    }

    /// The assembly step for `gguf::load_with` / `hf::load_with` onto `dev`.
    pub fn assembler(dev: &candle_core::Device) -> impl Assemble<CandleWeights> + '_ {
        move |path, config, fetch, counts| weights::assemble(path, config, dev, fetch, counts).map(CandleWeights)
    }

    fn forward_groups(&self, batch: &[&[u32]], cancel: &dyn Cancel) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(batch[i].len()));
        let mut out: Vec<Option<Vec<f32>>> = vec![None; batch.len()];
        let mut start = 0;
        while start < order.len() {
            let longest = batch[order[start]].len();
            let (mut end, mut real) = (start + 1, longest);
            while end < order.len() {
                let with = real + batch[order[end]].len();
                if ((end + 1 - start) * longest) as f64 > with as f64 * PAD_FACTOR + PAD_SLACK as f64 {
                    break;
                }
                real = with;
                end += 1;
            }
            let group: Vec<&[u32]> = order[start..end].iter().map(|&i| batch[i]).collect();
            let states = rows(&self.model.forward(&group, cancel)?)?;
            for (&i, s) in order[start..end].iter().zip(states) {
                out[i] = Some(s);
            }
            start = end;
        }
        Ok(out.into_iter().map(|s| s.expect("every sequence is in one group")).collect())
    }
}

impl Backend for CandleBackend {
    fn forward(&self, batch: &[&[u32]], cancel: &dyn Cancel) -> Result<Vec<Vec<f32>>> {
        on_device(self.device, || self.forward_groups(batch, cancel))
    }

    fn device(&self) -> Device {
        self.device
    }

    fn name(&self) -> &'static str {
        "candle"
    }

    /// Candle's CPU kernels run on its own process-wide thread pools, sized by
    /// `CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS` (else one per core), not by the engine's
    /// `threads`; on CUDA one host thread drives the device.
    fn threads(&self) -> usize {
        match self.device {
            Device::Cpu => candle_core::utils::get_num_threads(),
            Device::Cuda(_) => 1,
        }
    }

    fn weight_bytes(&self) -> u64 {
        self.model.weights.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_errors_get_their_types() {
        let oom = candle_core::Error::Msg("DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into());
        assert!(matches!(device_error(Device::Cuda(0), oom), EngineError::DeviceOutOfMemory { .. }));
        let bad = candle_core::Error::Msg("DriverError(CUDA_ERROR_INVALID_DEVICE, \"invalid device ordinal\")".into());
        assert!(matches!(device_error(Device::Cuda(3), bad), EngineError::DeviceUnavailable { .. }));
        let other = candle_core::Error::Msg("shape mismatch".into());
        assert!(matches!(device_error(Device::Cpu, other), EngineError::Compute(_)));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_typed() {
        assert!(matches!(open(Device::Cuda(0)), Err(EngineError::NoCuda(_))));
        assert!(cuda_device_count().is_err());
    }
}
