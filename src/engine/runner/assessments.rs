//! Health assessments, scheduled beside runs: at every tick (and when someone asks for one)
//! the due workspaces (`core::assessments`) get an assessment each, under a global cap. An
//! assessment takes no lock and no queue slot; a run of its workspace that starts cancels it.
//! At start, those a stopped Gantry left are canceled (they run again) and their Terraform
//! stopped.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::execute::Execution;
use super::{Runner, Shared};
use crate::core::WorkspaceId;
use crate::core::assessments::pick_due;
use crate::core::run::RunState;
use crate::executor::terraform::Stop;

/// How often the scheduler looks for due workspaces (an interval is at least an hour).
pub const TICK: Duration = Duration::from_secs(60);

impl Shared {
    /// A run of `workspace` started (its start canceled the assessment in the store): the
    /// assessment executing here, if any, stops at once.
    pub(super) fn stop_assessment_of(&self, workspace: WorkspaceId) {
        let assessing = self.assessing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, stop)) = assessing.get(&workspace) {
            stop.cancel();
        }
    }
}

impl Runner {
    /// Starts the assessments due at `now_ms`, as many as the cap leaves room for.
    pub(super) async fn assess_due(&self, now_ms: i64, cancel: &CancellationToken) {
        if self.shared.max_assessments == 0 || self.shared.isolation.is_err() {
            return;
        }
        if let Err(error) = self.try_assess_due(now_ms, cancel).await {
            tracing::error!(
                error = format!("{error:#}"),
                "scheduling assessments failed"
            );
        }
    }

    async fn try_assess_due(&self, now_ms: i64, cancel: &CancellationToken) -> anyhow::Result<()> {
        let store = &self.shared.store;
        let running = store.assessments_running().await?;
        let free = self.shared.max_assessments.saturating_sub(running);
        if free == 0 {
            return Ok(());
        }
        let schedules = store.assessment_schedules(None).await?;
        for workspace_id in pick_due(&schedules, now_ms, free) {
            let cap = self.shared.max_assessments;
            let Some((id, run_id)) = store
                .start_assessment(workspace_id, &self.shared.owner, cap)
                .await?
            else {
                continue; // the cap is reached, another server started one, or a run started
            };
            if let Err(error) = self
                .spawn_assessment(id, workspace_id, run_id, cancel)
                .await
            {
                let reason = format!("the assessment could not be started: {error:#}");
                store
                    .finish_assessment(id, &crate::core::assessments::Outcome::Errored(reason), "")
                    .await?;
            }
        }
        Ok(())
    }

    async fn spawn_assessment(
        &self,
        id: i64,
        workspace_id: WorkspaceId,
        run_id: crate::core::RunId,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let (run, workspace) = self.shared.run_and_workspace(run_id).await?;
        // The workspace's variables as they are now (credentials may have been rotated since
        // the apply); one that cannot be opened fails the assessment rather than go empty.
        let variables = self.shared.store.current_variables(workspace_id).await?;
        // An assessment has nothing to save (its state is a private copy): stopped, its
        // Terraform is killed at once rather than given time to finish.
        let stopped = cancel.child_token();
        let stop = Stop {
            cancel: stopped.clone(),
            force: stopped,
        };
        self.shared
            .assessing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(workspace_id, (id, stop.cancel.clone()));
        let execution = Execution {
            shared: self.shared.clone(),
            run,
            workspace,
            variables,
            stop,
            state: RunState::Applied,
            keep_dir: false,
            dir: self.shared.assessments_dir.join(id.to_string()),
        };
        let shared = self.shared.clone();
        let span = tracing::info_span!("assessment", assessment = id, %workspace_id);
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                tracing::info!("assessment started");
                execution.assess(id).await;
                let mut assessing = shared.assessing.lock().unwrap_or_else(|e| e.into_inner());
                // Only its own entry: a newer assessment of the workspace may hold it now.
                if assessing
                    .get(&workspace_id)
                    .is_some_and(|(held, _)| *held == id)
                {
                    assessing.remove(&workspace_id);
                }
            },
            span,
        ));
        Ok(())
    }

    /// At start: assessments this server (or, on a shared database, a server that stopped
    /// heartbeating) left running are canceled, to run again, and whatever Terraform they left
    /// under a supervisor is stopped; their directories go.
    pub(super) async fn take_back_assessments(&self) {
        let stale = super::stale_before(&self.shared.store).min(crate::store::now_ms());
        match self
            .shared
            .store
            .cancel_abandoned_assessments(&self.shared.owner, stale)
            .await
        {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(?ids, "assessments a stop interrupted: they run again");
            }
            Ok(_) => {}
            Err(error) => tracing::error!(error = format!("{error:#}"), "taking back failed"),
        }
        let Ok(mut entries) = tokio::fs::read_dir(&self.shared.assessments_dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            crate::executor::supervisor::stop_running_phases(
                &entry.path().join(super::execute::PHASES_DIR),
                true,
                crate::executor::terraform::CANCEL_GRACE,
            )
            .await;
            let _ = tokio::fs::remove_dir_all(entry.path()).await;
        }
    }
}
