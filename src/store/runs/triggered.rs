//! Run triggers at work: when a run applied with changes, one run is queued in each workspace
//! that names the run's workspace as a source, at that workspace's current configuration
//! version (its latest run's), in the transaction that records the apply — so a crash never
//! loses a triggered run, and none is queued twice.

use super::{NewRuns, RunSource};
use crate::core::{RunId, WorkspaceId};
use crate::store::{Conn, on_conn};

/// Queues the runs `source_run`'s apply triggers; returns their workspaces (to wake).
pub(super) async fn queue_triggered_runs(
    conn: Conn<'_>,
    source_run: RunId,
) -> Result<Vec<WorkspaceId>, sqlx::Error> {
    let mut queued = Vec::new();
    on_conn!(conn, c => {
        let source: Option<(String, i32, i32, String)> = sqlx::query_as(
            "SELECT w.name, r.speculative, COALESCE(r.plan_has_changes, 0), r.author FROM runs r \
             JOIN workspaces w ON w.id = r.workspace_id WHERE r.id = $1",
        )
        .bind(source_run)
        .fetch_optional(&mut *c)
        .await?;
        let Some((source_name, speculative, has_changes, author)) = source else {
            return Ok(queued);
        };
        // A plan only, or an apply that changed nothing, triggers nothing.
        if speculative != 0 || has_changes == 0 {
            return Ok(queued);
        }
        // Local-execution workspaces run Terraform on people's machines: nothing to queue.
        let workspaces: Vec<(WorkspaceId, String, i32)> = sqlx::query_as(
            "SELECT id, run_triggers, auto_apply_run_trigger FROM workspaces \
             WHERE archived = 0 AND run_triggers <> '[]' AND execution_mode = 'remote' \
             ORDER BY id",
        )
        .fetch_all(&mut *c)
        .await?;
        // The workspaces of the chain of triggers that led here: a cycle made by two
        // changes at once (each checked alone) must not loop.
        let mut chain = Vec::new();
        let mut link = Some(source_run);
        while let Some(run) = link.take() {
            let row: Option<(WorkspaceId, Option<RunId>)> =
                sqlx::query_as("SELECT workspace_id, triggered_by FROM runs WHERE id = $1")
                    .bind(run)
                    .fetch_optional(&mut *c)
                    .await?;
            if let Some((workspace, up)) = row {
                chain.push(workspace);
                // Bounded: a chain this long is a pipeline no one writes, or a loop.
                link = up.filter(|_| chain.len() < 100);
            }
        }
        for (workspace_id, triggers, auto_apply) in workspaces {
            let sources: Vec<String> = serde_json::from_str(&triggers).unwrap_or_default();
            if !sources.contains(&source_name) {
                continue;
            }
            if chain.contains(&workspace_id) {
                tracing::warn!(%workspace_id, %source_run, "run trigger: a cycle; nothing queued");
                continue;
            }
            let current: Option<(String, String, Option<i64>)> = sqlx::query_as(
                "SELECT c.repo, r.commit_sha, c.installation_id FROM runs r \
                 JOIN configuration_versions c ON c.id = r.configuration_version_id \
                 WHERE r.workspace_id = $1 AND r.speculative = 0 ORDER BY r.id DESC LIMIT 1",
            )
            .bind(workspace_id)
            .fetch_optional(&mut *c)
            .await?;
            let Some((repo, commit_sha, installation_id)) = current else {
                tracing::info!(
                    %workspace_id,
                    %source_run,
                    "run trigger: the workspace has no configuration version yet; nothing queued"
                );
                continue;
            };
            let triggered = NewRuns {
                repo,
                commit_sha: commit_sha.into(),
                workspace_ids: vec![workspace_id],
                source: RunSource::RunTrigger,
                delivery_id: String::new(),
                installation_id: installation_id.map(crate::core::InstallationId),
                speculative: false,
                pr_number: None,
                retry_of: Vec::new(),
                auto_apply: auto_apply != 0,
                // The change that caused it: its author may not override its checks either.
                author: author.clone(),
                triggered_by: Some(source_run),
                options: crate::core::plan_options::PlanOptions::default(),
                message: String::new(),
            };
            if !triggered.create((&mut *c).into()).await?.is_empty() {
                queued.push(workspace_id);
            }
        }
    });
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use crate::core::RunId;
    use crate::core::run::RunState;
    use crate::core::workspace::{RepoName, WorkspaceName, WorkspaceSpec};
    use crate::store::{Cause, Move, NewRuns, PlanCounts, Store};

    /// A run of `workspace` at commit `sha`, moved to applying with a plan that has changes.
    async fn applying_run(store: &Store, workspace: crate::core::WorkspaceId, sha: &str) -> RunId {
        let new = NewRuns::push(
            "o/r".into(),
            sha.into(),
            vec![workspace],
            String::new(),
            None,
            "octocat".into(),
        );
        let run = store.create_runs(&new).await.unwrap()[0];
        let plan = PlanCounts {
            add: 1,
            change: 0,
            destroy: 0,
            has_changes: true,
            resource_changes: serde_json::json!([]),
        };
        store.record_plan(run, &plan).await.unwrap();
        let path = [
            RunState::Pending,
            RunState::Fetching,
            RunState::Planning,
            RunState::Planned,
            RunState::Confirmed,
            RunState::Applying,
        ];
        for pair in path.windows(2) {
            let mv = Move::new(run, pair[0], pair[1], Cause::Runner);
            assert!(store.move_run(&mv).await.unwrap(), "{pair:?}");
        }
        run
    }

    #[tokio::test]
    async fn an_apply_queues_the_destinations_run_and_the_source_can_still_be_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("gantry.db").display());
        let store = Store::open(&SecretString::from(url)).await.unwrap();
        let name = |n: &str| WorkspaceName::parse(n).unwrap();
        let repo = RepoName::parse("o/r").unwrap();
        let source = store
            .create_workspace(&WorkspaceSpec::new(name("network"), repo.clone()))
            .await
            .unwrap();
        let mut app = WorkspaceSpec::new(name("app"), repo);
        app.run_triggers = vec![name("network")];
        let destination = store.create_workspace(&app).await.unwrap();
        // The destination's current configuration version comes from a run of its own.
        let own = NewRuns::push(
            "o/r".into(),
            "a1".into(),
            vec![destination],
            String::new(),
            None,
            "octocat".into(),
        );
        store.create_runs(&own).await.unwrap();

        let run = applying_run(&store, source, "n1").await;
        let triggered = store.finish_apply(run, None).await.unwrap();
        assert_eq!(triggered, [destination]);
        let queued = store.triggered_runs(run).await.unwrap();
        assert_eq!(queued.len(), 1);
        let queued = store.run(queued[0].0).await.unwrap().unwrap();
        assert_eq!(
            queued.commit_sha.as_str(),
            "a1",
            "at the destination's own version"
        );
        assert_eq!(queued.triggered_by, Some(run));
        assert_eq!(queued.author, "octocat", "the source change's author");

        // Deleting the source keeps the triggered run, without its link.
        assert!(store.delete_workspace(source).await.unwrap());
        let kept = store.run(queued.id).await.unwrap().unwrap();
        assert_eq!(kept.triggered_by, None);
    }
}
