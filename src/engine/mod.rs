//! Orchestration: turns stored deliveries into decisions and applies them through the store.
//! Decisions that need no I/O live in `crate::core`; this layer only wires them to the world.

pub mod dispatcher;
mod handlers;

pub use dispatcher::Dispatcher;
