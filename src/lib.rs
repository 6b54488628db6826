//! Gantry: a self-hosted GitHub App that runs Terraform the way Terraform Cloud's VCS-driven
//! workflow does. The binary (`src/main.rs`) only parses the command line and calls in here.
//!
//! Data flows one way: GitHub → `webhook` (verify, store) → `store` → `engine` (dispatch,
//! decide with `core`) → `github` (through the outbox). See `docs/design.md`.

pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod demo;
pub mod engine;
pub mod events;
pub mod executor;
#[doc(hidden)]
pub mod fuzzing;
pub mod github;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod server;
pub mod store;
pub mod web;
pub mod webhook;

/// How every HTTP request Gantry sends names itself. GitHub refuses API requests without a
/// `User-Agent` (403), and a download host or a Terraform mirror may too.
pub const USER_AGENT: &str = concat!("gantry/", env!("CARGO_PKG_VERSION"));
