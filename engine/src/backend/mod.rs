//! Where the forward pass runs. The embedding core (`embedder.rs`) packs token sequences into
//! batches and hands each one to a backend, which returns each sequence's final-norm hidden
//! state of its last token; pooling, MRL and normalization stay in the core, the same for every
//! backend. A device spelling (`DeviceSpec`) resolves to a `Device`, and a `Device` opens its
//! backend: a new device is one new module here.

pub mod cpu;

use crate::error::{EngineError, Result};

/// The stop test of a forward pass, polled before every layer.
pub type Cancelled<'a> = &'a (dyn Fn() -> bool + Sync);

pub trait Backend: Send + Sync {
    /// One packed batch: the last token's final-norm hidden state of each sequence, in order.
    fn forward(&self, batch: &[&[u32]], cancelled: Cancelled) -> Result<Vec<Vec<f32>>>;
    fn device(&self) -> Device;
    /// Compute threads it runs on.
    fn threads(&self) -> usize;
}

/// Where the forward pass runs, as the user spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    Auto,
}

/// A device this build can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
        match self {
            DeviceSpec::Cpu | DeviceSpec::Auto => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => Err(EngineError::NoCuda(format!("cuda:{n}"))),
        }
    }
}
