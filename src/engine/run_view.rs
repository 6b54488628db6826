//! What a run looks like wherever it is shown: its commit status line, its check run and its
//! link, for the outbox (statuses, check runs, the PR comment), the API and the UI. The words
//! are `core::status` and `core::checks`; this adds what they need from the store (Terraform's
//! own reason for an error, from the log) and Gantry's address.

use url::Url;

use crate::core::RunId;
use crate::core::checks::{CheckView, changes_from_json, check_view};
use crate::core::run::RunState;
use crate::core::status::{self, StatusView, first_error_line};
use crate::store::{RunDetail, Store};

/// The page of a run in Gantry, which statuses, checks and comments link to.
pub fn run_url(public_url: &Url, run_id: RunId) -> String {
    format!("{}runs/{run_id}", public_url.as_str())
}

/// A run as every place shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLook {
    /// Its commit status: GitHub's state and the one-line summary.
    pub status: StatusView,
    /// Its check run.
    pub check: CheckView,
    pub url: String,
}

impl RunLook {
    /// The run in one line ("Apply failed: …").
    pub fn summary(&self) -> &str {
        &self.status.description
    }
}

/// How `run` looks now.
pub async fn look(store: &Store, public_url: &Url, run: &RunDetail) -> anyhow::Result<RunLook> {
    let error = terraform_error(store, run).await?;
    let facts = run.facts(error.as_deref());
    let changes = run
        .plan
        .as_ref()
        .map(|p| changes_from_json(&p.resource_changes))
        .unwrap_or_default();
    let url = run_url(public_url, run.id);
    Ok(RunLook {
        status: status::run_status(&facts),
        check: check_view(&facts, &changes, &url),
        url,
    })
}

/// Terraform's first error line in the log of the phase an errored run failed in: a better
/// reason than the stored one.
async fn terraform_error(store: &Store, run: &RunDetail) -> anyhow::Result<Option<String>> {
    if run.state != RunState::Errored {
        return Ok(None);
    }
    let phase = if run.reached_apply { "apply" } else { "plan" };
    let log: String = store
        .run_log(run.id, phase, 0)
        .await?
        .into_iter()
        .map(|c| c.chunk)
        .collect();
    Ok(first_error_line(&log))
}
