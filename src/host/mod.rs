//! Where the engine runs. Today: in the calling backend, loaded once per backend on first use
//! and reloaded when the model settings change.

mod backend;
mod offthread;

pub use backend::engine;
pub use offthread::run_cancellable;
