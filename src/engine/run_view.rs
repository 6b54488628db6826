//! What a run looks like wherever it is shown: its commit status line, its check run and its
//! link, for the outbox (statuses, check runs, the PR comment), the API and the UI. The words
//! are `core::status` and `core::checks`, from the run's facts as stored (the reason for an
//! error is Terraform's own first error line, kept when the run ended); this adds Gantry's
//! address.

use url::Url;

use crate::core::RunId;
use crate::core::checks::{CheckView, changes_from_json, check_view};
use crate::core::status::{self, StatusView};
use crate::store::RunDetail;

/// The page of a run in Gantry, which statuses, checks and comments link to.
pub fn run_url(public_url: &Url, run_id: RunId) -> String {
    format!("{}runs/{run_id}", public_url.as_str())
}

/// An assessment's page in the UI.
pub fn assessment_url(public_url: &Url, workspace: &str, id: i64) -> String {
    format!(
        "{}workspaces/{workspace}/assessments/{id}",
        public_url.as_str()
    )
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

/// How `run` looks.
pub fn look(public_url: &Url, run: &RunDetail) -> RunLook {
    let facts = run.facts();
    let changes = run
        .plan
        .as_ref()
        .map(|p| changes_from_json(&p.resource_changes))
        .unwrap_or_default();
    let url = run_url(public_url, run.id);
    RunLook {
        status: status::run_status(&facts),
        check: check_view(&facts, &changes, &url),
        url,
    }
}
