//! Pieces shared by several webhook payloads: the repository, the installation a delivery is for
//! and the account that caused it. Only the fields Gantry reads; everything else is ignored.
//!
//! GitHub's open vocabularies (actions, account types, check statuses, …) stay `String`s, as
//! GitHub spells them: GitHub adds values over time, so every match on them needs a catch-all arm
//! anyway, and the string keeps an unknown value's name for logs.

use crate::core::InstallationId;
use serde::Deserialize;

/// The repository an event happened in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Repository {
    pub id: u64,
    /// The name without the owner, e.g. `Hello-World`.
    pub name: String,
    /// `owner/name`, e.g. `Codertocat/Hello-World`.
    pub full_name: String,
    pub owner: Account,
    pub default_branch: String,
    pub private: bool,
    pub html_url: String,
    /// The HTTPS clone address; GitHub sends it, but Gantry can build it from `full_name`.
    pub clone_url: Option<String>,
}

/// The GitHub App installation a delivery belongs to. Absent when the payload comes from a plain
/// repository or organization webhook rather than from an App.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct InstallationRef {
    pub id: InstallationId,
}

/// A user, bot or organization: a sender, a comment author, a repository owner.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub login: String,
    /// `User`, `Bot` or `Organization`.
    pub r#type: String,
}

impl Account {
    /// Bots include GitHub Apps, Gantry itself among them.
    pub fn is_bot(&self) -> bool {
        self.r#type == "Bot"
    }
}
