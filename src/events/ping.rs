//! The `ping` event GitHub sends once when a webhook is created: nothing to do but answer, which
//! proves the webhook secret and address work.

use serde::Deserialize;

use super::common::{Account, Repository};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PingEvent {
    pub zen: Option<String>,
    pub hook_id: Option<u64>,
    pub hook: Option<Hook>,
    /// Absent when the hook is not a repository's (e.g. an organization hook).
    pub repository: Option<Repository>,
    pub sender: Option<Account>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Hook {
    /// `Repository`, `Organization` or `App`.
    pub r#type: String,
    /// Set when the hook is a GitHub App's webhook.
    pub app_id: Option<u64>,
}
