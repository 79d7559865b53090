//! Models for many callers: the model server, its wire format, and the client side.
//! Plain Unix-socket I/O and threads; whoever runs the server decides where the socket lives
//! and who may reach it.

pub(crate) mod client;
pub(crate) mod server;
pub mod wire;

pub use client::call;
pub use server::{serve, ServerOptions};
pub use wire::{Caller, InfoSummary, ModelKey, Reply, Request, ResidentModel, Stats};
