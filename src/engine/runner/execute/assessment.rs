//! A health assessment, executed like a run's plan (its configuration fetched and unpacked,
//! the workspace's state and variables, the same sandbox, supervisor and Terraform slots) but
//! in a directory of its own and refresh-only: it reads the real infrastructure and changes
//! nothing, not even the stored state. What it found is ended in the store with its news.

use super::{Execution, Failure, PLAN_FILE, UNSANDBOXED_WARNING};
use crate::core::assessments::{Outcome, masked, read_plan};
use crate::core::status::first_error_line;
use crate::executor::sandbox::Isolation;
use crate::executor::terraform::{LogSink, mask};

/// How often a running assessment says it is watched, and finds out it was canceled.
const ALIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// The most of an assessment's output kept (its end, where the drift and errors are).
const MAX_LOG_BYTES: usize = 512 * 1024;

impl Execution {
    /// Runs assessment `id` of this (applied) run's configuration and records how it ended.
    pub async fn assess(mut self, id: i64) {
        let store = self.shared.store.clone();
        let cancel = self.stop.cancel.clone();
        // Canceled in the store (a run of the workspace started, here or on another server):
        // stop Terraform.
        let watcher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ALIVE_EVERY).await;
                if let Ok(false) = store.assessment_alive(id).await {
                    cancel.cancel();
                    return;
                }
            }
        });
        let mut log: Vec<String> = Vec::new();
        let result = self.assessment_phases(id, &mut log).await;
        watcher.abort();
        crate::executor::supervisor::stop_running_phases(
            &self.run_dir().join(super::PHASES_DIR),
            true,
            crate::executor::terraform::CANCEL_GRACE,
        )
        .await;
        let outcome = match result {
            Ok(outcome) => Some(outcome),
            Err(Failure::Canceled(_) | Failure::ForceCanceled(_)) => None,
            Err(failure) => {
                let text = log.join("\n");
                let reason =
                    first_error_line(&text).unwrap_or_else(|| failure.reason().to_string());
                Some(Outcome::Errored(mask(&reason, &self.sensitive_values())))
            }
        };
        let store = &self.shared.store;
        let recorded = match &outcome {
            Some(outcome) => {
                let text = kept_log(&log);
                store
                    .finish_assessment(id, outcome, &text)
                    .await
                    .map(|e| e.is_some())
            }
            // Canceled by a run of the workspace (already so in the store), or by Gantry
            // stopping: then it runs again after the restart.
            None => store.interrupt_assessment(id).await.map(|_| false),
        };
        match recorded {
            Ok(true) => tracing::info!(assessment = id, "assessment finished"),
            Ok(false) => tracing::info!(assessment = id, "assessment canceled"),
            Err(error) => tracing::error!(
                assessment = id,
                error = format!("{error:#}"),
                "recording the assessment failed"
            ),
        }
        let _ = tokio::fs::remove_dir_all(self.run_dir()).await;
    }

    async fn assessment_phases(
        &mut self,
        id: i64,
        log: &mut Vec<String>,
    ) -> Result<Outcome, Failure> {
        if let Isolation::Unsandboxed = self.isolation()? {
            log.line(UNSANDBOXED_WARNING);
        }
        log.line(&format!(
            "Gantry: assessment {id} of {}: a refresh-only plan of run {} at {}",
            self.workspace.spec.name, self.run.id, self.run.commit_sha
        ));
        let archive = self.fetch_configuration().await?;
        self.unpack(&archive).await?;
        crate::executor::terraform::override_backend(&self.working_dir())
            .map_err(|e| Failure::Errored(format!("writing the backend override: {e}")))?;
        let terraform = self.terraform().await?;
        self.write_current_state().await?;
        let summary = {
            let _slot = self.slot(log).await?;
            terraform.init(log, &self.stop).await?;
            let refresh_only = ["-refresh-only".to_string()];
            terraform
                .plan(
                    &self.run_dir().join(PLAN_FILE),
                    &refresh_only,
                    log,
                    &self.stop,
                )
                .await?
        };
        let findings = read_plan(&summary.json)
            .map_err(|e| Failure::Errored(format!("reading the plan: {e}")))?;
        let sensitive = self.sensitive_values();
        let findings = masked(findings, |text| mask(text, &sensitive));
        log.line(&format!(
            "Gantry: {} of {} resources drifted; {} check(s) failed",
            findings.drifted.len(),
            findings.resources_total,
            findings.failed_checks.len()
        ));
        Ok(Outcome::Found(findings))
    }
}

/// The log as kept: its end, when it is long.
fn kept_log(lines: &[String]) -> String {
    let text = lines.join("\n");
    if text.len() <= MAX_LOG_BYTES {
        return text;
    }
    let mut start = text.len() - MAX_LOG_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…\n{}", &text[start..])
}
