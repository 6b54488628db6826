//! Orchestration: turns stored deliveries into decisions and applies them through the store,
//! and executes runs. Decisions that need no I/O live in `crate::core`; this layer only wires
//! them to the world.

pub mod catch_up;
pub mod dispatcher;
mod handlers;
pub mod notifications;
pub mod outbox;
pub mod run_view;
pub mod runner;

pub use dispatcher::Dispatcher;
pub use outbox::OutboxWorker;
pub use runner::{RunControl, RunSignal, Runner};
