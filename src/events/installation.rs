//! The `installation` and `installation_repositories` events: Gantry was installed, removed,
//! suspended, or given access to more or fewer repositories. Gantry keeps its list of
//! installations and their repositories from these.

use serde::Deserialize;

use super::common::Account;
use crate::core::InstallationId;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstallationEvent {
    /// `created`, `deleted`, `suspend`, `unsuspend` or `new_permissions_accepted`.
    pub action: String,
    pub installation: Installation,
    /// The repositories the installation can reach; GitHub lists them on `created`, `deleted`
    /// and `new_permissions_accepted`, not on `suspend` or `unsuspend`.
    pub repositories: Option<Vec<InstallationRepository>>,
    pub sender: Account,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Installation {
    pub id: InstallationId,
    /// The user or organization the app is installed on.
    pub account: Account,
    pub app_id: Option<u64>,
}

/// A repository as installation payloads list it: a few fields, not the full repository.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstallationRepository {
    pub id: u64,
    pub name: String,
    pub full_name: String,
    pub private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstallationRepositoriesEvent {
    /// `added` or `removed`.
    pub action: String,
    pub installation: Installation,
    /// `all` or `selected`.
    pub repository_selection: Option<String>,
    #[serde(default)]
    pub repositories_added: Vec<InstallationRepository>,
    #[serde(default)]
    pub repositories_removed: Vec<InstallationRepository>,
    pub sender: Account,
}
