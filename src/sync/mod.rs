//! The sync queue's Rust side: the background workers that drain it (`worker`) and the drain
//! itself, which runs each sync as its table's owner (`drain`).

mod drain;
mod worker;

pub use worker::register;
