//! How a run's execution ends when it fails: in the failure's state with its reasons
//! (Gantry's, and Terraform's own first error line), or, for a plan lost with its supervisor,
//! queued again; and the run's directory removed once the run is final.

use super::{Execution, Failure, MAX_PLAN_ATTEMPTS, PHASES_DIR};
use crate::core::run::RunState;
use crate::engine::runner::log::PhaseLog;
use crate::executor::terraform::{LogSink, mask};
use crate::store::{Also, Cause, Move};

impl Execution {
    /// Ends the run in the failure's state (when the state machine allows it) with its reason.
    pub(super) async fn finish(&mut self, result: Result<(), Failure>, log: &mut PhaseLog) {
        let Err(failure) = result else { return };
        let given = self.shared.control.take_reason(self.run.id);
        let cause = match failure {
            Failure::Canceled(_) | Failure::ForceCanceled(_) => {
                self.shared.control.take_canceler(self.run.id)
            }
            _ => Cause::Runner,
        };
        let reason = match (&failure, given) {
            (Failure::Canceled(_), Some(given)) => given,
            _ => mask(failure.reason(), &self.sensitive_values()),
        };
        log.line(&format!("Gantry: {reason}"));
        // The status of the ended run quotes the log's first error: store the log first.
        log.flush().await;
        // Nothing of the run may run on once it ends (after a restart, a later phase may
        // have been running beside the one that failed).
        crate::executor::supervisor::stop_running_phases(
            &self.run_dir().join(PHASES_DIR),
            matches!(failure, Failure::ForceCanceled(_)),
            crate::executor::terraform::CANCEL_GRACE,
        )
        .await;
        if matches!(failure, Failure::Lost(_)) && self.requeue_lost_plan(&reason, log).await {
            return;
        }
        let to = failure.state();
        // Only an executing run ends here: a plan waiting for confirmation (auto-apply whose
        // confirmation could not be stored) waits for a person instead.
        if !self.state.is_executing() || !self.state.can_become(to) {
            tracing::warn!(run_id = %self.run.id, state = %self.state, %reason, "run not ended");
            return;
        }
        // Empty when the log has no error line: known, and not looked for again.
        let terraform_error = match to {
            RunState::Errored => Some(self.terraform_error().await.unwrap_or_default()),
            _ => None,
        };
        let mut end = Move::new(self.run.id, self.state, to, cause).because(&reason);
        if let Some(line) = &terraform_error {
            end = end.also(Also::TerraformError(line));
        }
        match self.shared.store.move_run(&end).await {
            Ok(true) => {
                tracing::warn!(run_id = %self.run.id, state = %to, %reason, "run ended");
                self.state = to;
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(
                    run_id = %self.run.id,
                    error = format!("{error:#}"),
                    "ending the run failed"
                )
            }
        }
    }

    /// Terraform's first error line in the log of the phase that failed: what people are shown
    /// as the reason (the log is masked already), beside Gantry's own.
    async fn terraform_error(&self) -> Option<String> {
        let phase = match self.state {
            RunState::Confirmed | RunState::Applying => "apply",
            _ => "plan",
        };
        let log = self.shared.store.phase_log_text(self.run.id, phase).await;
        crate::core::status::first_error_line(&log.ok()?)
    }

    /// A plan lost with its supervisor starts again from pending, unless it was lost too
    /// often already. Returns whether it was queued again.
    async fn requeue_lost_plan(&mut self, reason: &str, log: &mut PhaseLog) -> bool {
        if !self.state.is_planning() {
            return false;
        }
        let detail = format!("planned again: {reason}");
        match self
            .shared
            .store
            .requeue_lost_plan(self.run.id, self.state, &detail, MAX_PLAN_ATTEMPTS)
            .await
        {
            Ok(true) => {
                log.line("Gantry: the plan is queued again");
                tracing::warn!(run_id = %self.run.id, reason, "lost plan queued again");
                self.state = RunState::Pending;
                true
            }
            Ok(false) => {
                log.line(&format!(
                    "Gantry: the plan was lost {MAX_PLAN_ATTEMPTS} times; not trying again"
                ));
                false
            }
            Err(error) => {
                tracing::error!(
                    run_id = %self.run.id,
                    error = format!("{error:#}"),
                    "queueing a lost plan again failed"
                );
                false
            }
        }
    }

    /// Removes the directory of a run that ended (it holds plan files and variables in clear
    /// text), off the async workers.
    pub(super) async fn cleanup_if_final(&self) {
        if self.state.is_final() && !self.keep_dir {
            let dir = self.run_dir();
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        }
    }
}
