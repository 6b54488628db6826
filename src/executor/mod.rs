//! The Terraform side of a run: its configuration on disk and, later, the terraform process.
//! Knows nothing of GitHub or the store; it is handed bytes and directories.

pub mod extract;
pub mod sandbox;
pub mod supervisor;
pub mod terraform;
pub mod terraform_install;
