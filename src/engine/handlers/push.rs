//! A push: which workspaces it runs (their branch, the files it touches), asking GitHub's
//! compare API when the push's own file list cannot be trusted.

use super::{Context, Handled, Stop};
use crate::core::InstallationId;
use crate::core::push::{self, Candidate, ChangedFiles, Comparison, PushDecision};
use crate::events;
use crate::store::{DeliveryEffect, NewRuns};

pub(super) async fn handle_push(
    ctx: &Context,
    delivery_id: &str,
    e: &events::PushEvent,
) -> Handled {
    let repo = &e.repository.full_name;
    let workspaces = (ctx.store.workspaces_for_repo(repo).await)
        .map_err(|e| Stop::retry("reading workspaces", e))?;
    if workspaces.is_empty() {
        return Err(Stop::ignored("no workspace tracks this repository"));
    }
    let triggers: Vec<_> = (workspaces.iter().map(|w| w.spec.triggers()))
        .collect::<Result<_, _>>()
        .map_err(|e| Stop::failed(e.to_string()))?;
    let candidates: Vec<Candidate<'_>> = workspaces
        .iter()
        .zip(&triggers)
        .map(|(w, triggers)| Candidate {
            id: w.id,
            branch: w.spec.branch.as_deref(),
            triggers,
        })
        .collect();
    let facts = push::Push {
        git_ref: &e.git_ref,
        before: &e.before,
        after: &e.after,
        created: e.created,
        deleted: e.deleted,
        forced: e.forced,
        commit_count: e.commits.len(),
        default_branch: &e.repository.default_branch,
    };
    let payload_files = e.changed_files();
    let mut decision = push::decide(&facts, &candidates, ChangedFiles::Payload(&payload_files));
    if let PushDecision::NeedCompare(comparisons) = &decision {
        let Some(installation) = e.installation.as_ref().map(|i| i.id) else {
            return Err(Stop::failed(
                "the push names no installation to ask GitHub with",
            ));
        };
        let compared = compare(ctx, installation, repo, comparisons).await?;
        let files: Vec<&str> = match &compared {
            Compared::Files(files) => files.iter().map(String::as_str).collect(),
            Compared::TooMany | Compared::Unknown => Vec::new(),
        };
        let changed = match compared {
            Compared::Files(_) => ChangedFiles::Compared(&files),
            Compared::TooMany => ChangedFiles::TooMany,
            Compared::Unknown => ChangedFiles::Unknown,
        };
        decision = push::decide(&facts, &candidates, changed);
    }
    match decision {
        PushDecision::Ignore(reason) => Err(Stop::ignored(reason)),
        PushDecision::NeedCompare { .. } => {
            Err(Stop::failed("the comparison did not settle the push"))
        }
        PushDecision::Run {
            commit,
            workspace_ids,
        } => Ok(vec![DeliveryEffect::CreateRuns(NewRuns::push(
            repo.clone(),
            commit,
            workspace_ids,
            delivery_id.to_string(),
            e.installation.as_ref().map(|i| i.id),
            e.sender.login.clone(),
        ))]),
    }
}

/// What GitHub's comparisons of a push say.
enum Compared {
    /// Every file they list.
    Files(Vec<String>),
    /// More files changed than GitHub lists.
    TooMany,
    /// GitHub cannot compare: it no longer has a commit, or the commits share no history.
    Unknown,
}

async fn compare(
    ctx: &Context,
    installation: InstallationId,
    repo: &str,
    comparisons: &[Comparison],
) -> Result<Compared, Stop> {
    let mut files = Vec::new();
    for Comparison { base, head } in comparisons {
        match ctx
            .github
            .compare_files(installation, repo, base, head)
            .await
        {
            Ok(compared) if compared.truncated => return Ok(Compared::TooMany),
            Ok(compared) => files.extend(compared.files),
            Err(error) if matches!(error.status(), Some(404 | 422)) => {
                tracing::info!(%error, base, head, "GitHub cannot compare: every workspace runs");
                return Ok(Compared::Unknown);
            }
            Err(error) => return Err(Stop::retry(&format!("comparing {base}...{head}"), error)),
        }
    }
    files.sort();
    files.dedup();
    Ok(Compared::Files(files))
}
