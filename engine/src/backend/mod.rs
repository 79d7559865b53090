//! Where the forward pass runs. The embedding core (`embedder.rs`) packs token sequences into
//! batches and hands each one to a backend, which returns each sequence's final-norm hidden
//! state of its last token; pooling, MRL and normalization stay in the core, the same for every
//! backend. A device spelling (`DeviceSpec`) resolves to a `Device`, and a `Device` opens its
//! backend: a new device is one new module here.
//!
//! Two backends: `cpu` (our own kernels, CPU only) and `candle` (the forward pass on candle
//! tensors: a portable reference on the CPU, and the only backend on CUDA, which a build gets
//! with the `cuda` cargo feature).

pub(crate) mod candle;
pub(crate) mod cpu;

use crate::cancel::Cancel;
use crate::error::{EngineError, Result};

pub trait Backend: Send + Sync {
    /// One packed batch: the last token's final-norm hidden state of each sequence, in order.
    /// `cancel` is asked before every layer.
    fn forward(&self, batch: &[&[u32]], cancel: &dyn Cancel) -> Result<Vec<Vec<f32>>>;
    fn device(&self) -> Device;
    /// "kernels" or "candle".
    fn name(&self) -> &'static str;
    /// Compute threads it runs on.
    fn threads(&self) -> usize;
    /// The bytes of the weights as it holds them (`ModelInfo::resident_bytes`).
    fn weight_bytes(&self) -> u64;
}

/// The bytes of a candle tensor's elements, on whatever device it lives.
pub(crate) fn tensor_bytes(t: &candle_core::Tensor) -> u64 {
    (t.elem_count() * t.dtype().size_in_bytes()) as u64
}

/// The bytes of a candle quantized product's weight.
pub(crate) fn qmatmul_bytes(q: &candle_core::quantized::QMatMul) -> u64 {
    use candle_core::quantized::QMatMul;
    match q {
        QMatMul::QTensor(q) => q.storage_size_in_bytes() as u64,
        QMatMul::Tensor(t) | QMatMul::TensorF16(t) => tensor_bytes(t),
    }
}

/// Where the forward pass runs, as the user spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    Auto,
}

/// A device to run on. `DeviceSpec::resolve` yields `Cuda` only in a build with the `cuda`
/// feature; the variant exists in every build so that the code around it is compiled (and
/// tested) everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Which backend runs the model. CUDA devices always run the candle backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendChoice {
    /// Our kernels on the CPU, candle on CUDA.
    #[default]
    Auto,
    /// Our kernels (`backend::cpu`); CPU only.
    Kernels,
    /// The candle backend (`backend::candle`), on any device: on the CPU it is the reference
    /// the CUDA path is tested by.
    Candle,
}

impl BackendChoice {
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Kernels => "kernels",
            BackendChoice::Candle => "candle",
        }
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "kernels" | "cpu" => Ok(BackendChoice::Kernels),
            "candle" => Ok(BackendChoice::Candle),
            other => Err(EngineError::Device(other.to_string(), "expected backend auto, kernels or candle".into())),
        }
    }
}

/// Where a model runs and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub device: Device,
    pub reason: String,
}

impl std::str::FromStr for DeviceSpec {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "auto" => Ok(DeviceSpec::Auto),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| EngineError::Device(s.clone(), "expected cpu, cuda, cuda:N or auto".into())),
        }
    }
}

impl DeviceSpec {
    /// The device this build runs the spec on: every spelling of one device resolves the same.
    pub fn resolve(self) -> Result<Device> {
        self.place().map(|p| p.device)
    }

    /// The device this build runs the spec on, and why. `cuda:N` is checked against the devices
    /// the driver reports (no driver, no device, a bad ordinal: an error); `auto` is CUDA device
    /// 0 when this build has CUDA and the driver shows a device, else the CPU. A spec never
    /// falls back to another device than the one it names.
    pub fn place(self) -> Result<Placement> {
        match self {
            DeviceSpec::Cpu => Ok(Placement { device: Device::Cpu, reason: "device 'cpu' was asked for".into() }),
            DeviceSpec::Cuda(n) => {
                let device = format!("cuda:{n}");
                if !cfg!(feature = "cuda") {
                    return Err(EngineError::NoCuda(device));
                }
                match candle::cuda_device_count() {
                    Err(detail) => Err(EngineError::DeviceUnavailable { device, detail }),
                    Ok(0) => Err(EngineError::DeviceUnavailable {
                        device,
                        detail: "the CUDA driver reports no device".into(),
                    }),
                    Ok(c) if n >= c => Err(EngineError::Device(
                        device,
                        format!("the CUDA driver reports {c} device(s), numbered from 0"),
                    )),
                    Ok(_) => {
                        Ok(Placement { device: Device::Cuda(n), reason: format!("device '{device}' was asked for") })
                    }
                }
            }
            DeviceSpec::Auto => Ok(match candle::cuda_device_count() {
                Ok(0) => Placement { device: Device::Cpu, reason: "auto: the CUDA driver reports no device".into() },
                Ok(c) => Placement {
                    device: Device::Cuda(0),
                    reason: format!("auto: {c} CUDA device(s) visible, using cuda:0"),
                },
                Err(why) => Placement { device: Device::Cpu, reason: format!("auto: no CUDA device ({why})") },
            }),
        }
    }
}
