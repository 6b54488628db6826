//! What each event means to Gantry, one file per event (after rust-lang/bors's
//! `src/bors/handlers/`): `handle` parses the payload into its typed event and hands it to its
//! `handle_<event>`, which gathers what the decision needs (workspaces from the store, changed
//! files from GitHub), lets `core` decide, and returns the effects the store applies when it
//! closes the delivery, or why there are none ([`Stop`]). Handlers change nothing themselves.

mod checks;
mod comment;
mod installation;
mod merge_group;
mod pull_request;
mod push;

use std::sync::Arc;

use crate::config::{FeedbackConfig, PullRequestConfig};
use crate::events::{self, Event};
use crate::github::GitHub;
use crate::store::{DeliveryEffect, DeliveryOutcome, Store};

/// What handlers may read from: the store and GitHub.
#[derive(Clone)]
pub struct Context {
    pub store: Store,
    pub github: Arc<GitHub>,
    pub pull_requests: PullRequestConfig,
    /// What workspaces get on GitHub (untouched ones' statuses or the one aggregate).
    pub feedback: FeedbackConfig,
    /// Where people reach Gantry (links in what Gantry posts).
    pub public_url: url::Url,
    /// Policy sets whose failures the change's author may not override.
    pub guarded_sets: Vec<String>,
}

/// Why a handler ends without effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The event asks nothing of Gantry, for this reason.
    Ignored(String),
    /// The event cannot be processed, now or later (a payload Gantry cannot read, a workspace
    /// pattern that does not parse).
    Failed(String),
    /// A passing failure (GitHub or the store did not answer): try again later.
    RetryLater(String),
}

impl Stop {
    pub(crate) fn ignored(reason: impl Into<String>) -> Self {
        Stop::Ignored(reason.into())
    }

    pub(crate) fn failed(error: impl Into<String>) -> Self {
        Stop::Failed(error.into())
    }

    /// A passing failure while `doing` something.
    pub(crate) fn retry(doing: &str, error: impl std::fmt::Display) -> Self {
        Stop::RetryLater(format!("{doing}: {error:#}"))
    }

    /// What a person is told when a command of theirs stops here; None for a passing failure
    /// (the delivery is tried again instead).
    pub(crate) fn reason(&self) -> Option<&str> {
        match self {
            Stop::Ignored(reason) | Stop::Failed(reason) => Some(reason),
            Stop::RetryLater(_) => None,
        }
    }
}

/// A delivery's effects, or why there are none.
pub type Handled = Result<Vec<DeliveryEffect>, Stop>;

/// How a handled delivery closes: its outcome and effects, or None to try again later.
pub fn closing(handled: Handled) -> Result<(DeliveryOutcome, Vec<DeliveryEffect>), String> {
    match handled {
        Ok(effects) => Ok((DeliveryOutcome::Processed, effects)),
        Err(Stop::Ignored(reason)) => Ok((DeliveryOutcome::Ignored(reason), Vec::new())),
        Err(Stop::Failed(error)) => Ok((DeliveryOutcome::Failed(error), Vec::new())),
        Err(Stop::RetryLater(error)) => Err(error),
    }
}

pub async fn handle(ctx: &Context, delivery_id: &str, event: &str, payload: &[u8]) -> Handled {
    let event = events::parse(event, payload).map_err(|e| Stop::failed(e.to_string()))?;
    match event {
        Event::Ping(_) => Ok(Vec::new()),
        Event::Installation(e) => installation::handle_installation(&e),
        Event::InstallationRepositories(e) => installation::handle_installation_repositories(&e),
        Event::Push(e) => push::handle_push(ctx, delivery_id, &e).await,
        Event::PullRequest(e) => pull_request::handle_pull_request(ctx, delivery_id, &e).await,
        Event::IssueComment(e) => comment::handle_issue_comment(ctx, delivery_id, &e).await,
        Event::CheckRun(e) => checks::handle_check_run(ctx, delivery_id, &e).await,
        Event::CheckSuite(e) => checks::handle_check_suite(ctx, delivery_id, &e).await,
        Event::MergeGroup(e) => merge_group::handle_merge_group(ctx, delivery_id, &e).await,
        Event::Unsupported { event } => {
            Err(Stop::ignored(format!("Gantry does not use {event} events")))
        }
    }
}
