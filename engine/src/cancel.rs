//! Stopping work early, in one shape: every long step (a load waiting on the packed-weight
//! cache's lock, tokenizing a long input, a forward pass before each layer) asks a [`Cancel`]
//! whether to stop, and then returns `EngineError::Cancelled`. A [`CancelFlag`] is the one to
//! hand to another thread; a closure is one too (the model server stops a pass when every caller
//! in it has withdrawn). This module depends on nothing else in the crate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Asked between steps: stop now?
pub trait Cancel: Sync {
    fn is_cancelled(&self) -> bool;
}

/// A flag another thread sets to stop a running load or embedding.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Cancel for CancelFlag {
    fn is_cancelled(&self) -> bool {
        CancelFlag::is_cancelled(self)
    }
}

impl<F: Fn() -> bool + Sync> Cancel for F {
    fn is_cancelled(&self) -> bool {
        self()
    }
}

/// Never stops.
pub struct Never;

impl Cancel for Never {
    fn is_cancelled(&self) -> bool {
        false
    }
}
