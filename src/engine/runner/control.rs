//! What people do to runs and workspaces (confirm, discard, cancel, lock, unlock), checked
//! against the state machine and handed to the scheduler. Cancels reach the Terraform process
//! of a run executing in this process through its [`Stop`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::signal::RunSignal;
use crate::core::policy::self_override_refusal;
use crate::core::run::RunState;
use crate::core::{RunId, WorkspaceId};
use crate::executor::terraform::Stop;
use crate::store::{Cause, Move, NewRuns, PolicyOverride, RunDetail, Store, WorkspaceLock};

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0} not found")]
    NotFound(String),
    /// The run or workspace is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// Not by this person (the author of a change overriding its guarded check).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The run was not executing and is now canceled (or force-canceled).
    Done(RunState),
    /// Terraform was told to stop; the run ends when it has.
    Requested,
}

pub struct RunControl {
    store: Store,
    signal: Arc<RunSignal>,
    executing: Mutex<HashMap<RunId, Stop>>,
    /// Why a run was canceled, when it was not a person (e.g. "superseded").
    reasons: Mutex<HashMap<RunId, String>>,
    /// Who asked to cancel a run executing here: its end is recorded as theirs.
    cancelers: Mutex<HashMap<RunId, String>>,
    /// Policy sets whose failures the change's author may not override.
    guarded_sets: Vec<String>,
}

impl RunControl {
    pub fn new(store: Store, signal: Arc<RunSignal>, guarded_sets: Vec<String>) -> Self {
        Self {
            store,
            signal,
            executing: Mutex::new(HashMap::new()),
            reasons: Mutex::new(HashMap::new()),
            cancelers: Mutex::new(HashMap::new()),
            guarded_sets,
        }
    }

    pub fn signal(&self) -> &Arc<RunSignal> {
        &self.signal
    }

    /// Confirms a plan waiting for confirmation: the apply starts. `by`: the person's name.
    pub async fn confirm(&self, run_id: RunId, by: &str) -> Result<RunDetail, ActionError> {
        let run = self.run(run_id).await?;
        let confirm = Move::new(run.id, RunState::Planned, RunState::Confirmed, person(by));
        self.move_run(&run, &confirm, "confirmed").await
    }

    /// Overrides the failed policy check of a run waiting for one: it goes on as if its check
    /// had passed (to wait for confirmation, or to apply by itself on an auto-apply
    /// workspace). Who and why are kept on the run's timeline. Only the check a run waits on
    /// now: there is nothing to override in advance.
    pub async fn override_policy(
        &self,
        run_id: RunId,
        by: &str,
        reason: &str,
    ) -> Result<RunDetail, ActionError> {
        let run = self.run(run_id).await?;
        if run.state != RunState::PolicyOverride {
            return Err(ActionError::Conflict(format!(
                "a run that is {} cannot be overridden",
                run.state
            )));
        }
        let outcomes = self.store.policy_checks(run.id).await?;
        let guarded: Vec<&str> = self.guarded_sets.iter().map(String::as_str).collect();
        if let Some(why) = self_override_refusal(&outcomes, &guarded, &[&run.author], by) {
            return Err(ActionError::Forbidden(why));
        }
        let auto_apply = (self.store.workspace(run.workspace_id).await?)
            .is_some_and(|w| run.applies_automatically(&w.spec));
        let order = PolicyOverride {
            run_id: run.id,
            by: by.to_string(),
            reason: reason.to_string(),
            auto_apply,
        };
        if !self.store.override_policy(&order).await? {
            return Err(ActionError::Conflict(
                "the run changed state meanwhile; it could not be overridden".into(),
            ));
        }
        self.signal.workspace_changed(run.workspace_id);
        self.store
            .announce_workspaces_changed(&[run.workspace_id])
            .await;
        self.run(run.id).await
    }

    /// Discards a run that waits: in the queue, or for confirmation.
    pub async fn discard(&self, run_id: RunId, by: &str) -> Result<RunDetail, ActionError> {
        let run = self.run(run_id).await?;
        let from = match run.state {
            RunState::Pending | RunState::Planned | RunState::PolicyOverride => run.state,
            other => {
                return Err(ActionError::Conflict(format!(
                    "a run that is {other} cannot be discarded"
                )));
            }
        };
        let discard = Move::new(run.id, from, RunState::Discarded, person(by));
        self.move_run(&run, &discard, "discarded").await
    }

    /// Cancels a run: a pending one at once; an executing one by stopping Terraform (SIGINT, or
    /// a kill when `force`), which its runner records as it ends.
    pub async fn cancel(
        &self,
        run_id: RunId,
        force: bool,
        by: &str,
    ) -> Result<CancelOutcome, ActionError> {
        let run = self.run(run_id).await?;
        let to = if force {
            RunState::ForceCanceled
        } else {
            RunState::Canceled
        };
        if let Some(stop) = self.stop_of(run_id) {
            self.cancelers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(run_id, by.to_string());
            if force {
                stop.force.cancel();
            } else {
                stop.cancel.cancel();
            }
            return Ok(CancelOutcome::Requested);
        }
        match run.state {
            RunState::Planned => Err(ActionError::Conflict(
                "the run waits for confirmation: discard it instead".into(),
            )),
            from if from.can_become(to) => {
                let cancel = Move::new(run.id, from, to, person(by));
                self.move_run(&run, &cancel, "canceled").await?;
                Ok(CancelOutcome::Done(to))
            }
            other => Err(ActionError::Conflict(format!(
                "a run that is {other} cannot be canceled"
            ))),
        }
    }

    /// Cancels a run executing here for `reason` (a newer commit superseded it, its pull
    /// request closed); the run ends canceled with that reason.
    pub fn cancel_executing(&self, run_id: RunId, reason: &str) {
        if let Some(stop) = self.stop_of(run_id) {
            self.reasons
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(run_id, reason.to_string());
            stop.cancel.cancel();
        }
    }

    /// Who asked to cancel a run executing here ([`RunControl::cancel`]), once: the cause of
    /// its end.
    pub(super) fn take_canceler(&self, run_id: RunId) -> Cause {
        let by = (self.cancelers.lock().unwrap_or_else(|e| e.into_inner())).remove(&run_id);
        by.map_or(Cause::Runner, Cause::Person)
    }

    /// The reason given to [`RunControl::cancel_executing`], once.
    pub(super) fn take_reason(&self, run_id: RunId) -> Option<String> {
        self.reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&run_id)
    }

    /// Retries a run that ended without success (errored, canceled, discarded): a new run of
    /// the same configuration version, pinned to the workspace's variables as they are now,
    /// at the end of the queue (or, for a speculative plan, planned at once). Only the
    /// latest run is retried: an older one would plan (and might apply) code that a newer
    /// commit replaced. A run is retried once. Returns the new run's id.
    pub async fn retry(&self, run_id: RunId, by: &str) -> Result<RunId, ActionError> {
        let run = self.run(run_id).await?;
        if !run.state.can_be_retried() {
            return Err(ActionError::Conflict(format!(
                "a run that is {} cannot be retried (errored, canceled or discarded ones can)",
                run.state
            )));
        }
        let workspace = self.store.workspace(run.workspace_id).await?;
        if workspace.is_none_or(|w| w.archived) {
            return Err(ActionError::Conflict(
                "the run's workspace left the configuration file; its runs are not retried".into(),
            ));
        }
        if !run.speculative && self.store.has_newer_run(run.workspace_id, run.id).await? {
            return Err(ActionError::Conflict(
                "the workspace has a newer run; retry that one, or push again".into(),
            ));
        }
        if let Some(pr) = run.pr_number
            && !self
                .store
                .pull_request_runs(&run.repo, pr)
                .await?
                .contains(&run.id)
        {
            return Err(ActionError::Conflict(
                "a newer plan of this pull request exists; retry that one".into(),
            ));
        }
        // The retry is still the same change: its author stays (prevent_self_override holds),
        // and who asked for it is logged.
        tracing::info!(%run_id, by, "retry asked for");
        let retry = NewRuns::retry_of(&run, "", None);
        self.create_run(&retry).await.map_err(|error| match error {
            ActionError::Conflict(_) => {
                ActionError::Conflict(format!("run {run_id} has been retried already"))
            }
            other => other,
        })
    }

    /// Creates one run asked for by a person (a retry, an uploaded configuration) and wakes
    /// the runners. Returns its id.
    pub async fn create_run(&self, new: &NewRuns) -> Result<RunId, ActionError> {
        let created = self.store.create_runs(new).await?;
        let id = created
            .first()
            .copied()
            .ok_or_else(|| ActionError::Conflict("the run could not be created".into()))?;
        self.signal
            .workspaces_changed(new.workspace_ids.iter().copied());
        self.store
            .announce_workspaces_changed(&new.workspace_ids)
            .await;
        Ok(id)
    }

    /// Locks a workspace by hand; its queued runs wait until it is unlocked.
    pub async fn lock(&self, workspace: &str, by: &str, reason: &str) -> Result<(), ActionError> {
        let ws = self.workspace_id(workspace).await?;
        match self.store.lock_workspace(ws, by, reason).await? {
            None => Ok(()),
            Some(WorkspaceLock { by, reason, .. }) => Err(ActionError::Conflict(format!(
                "{workspace} is already locked by {by}: {reason}"
            ))),
        }
    }

    pub async fn unlock(&self, workspace: &str, by: &str) -> Result<(), ActionError> {
        let ws = self.workspace_id(workspace).await?;
        self.store.unlock_workspace(ws, by).await?;
        self.signal.workspace_changed(ws);
        Ok(())
    }

    /// Unlocks a workspace that `by` locked (the Terraform CLI's own lock); false, and still
    /// locked, when someone else holds it.
    pub async fn unlock_held_by(&self, workspace: &str, by: &str) -> Result<bool, ActionError> {
        let ws = self.workspace_id(workspace).await?;
        let unlocked = self.store.unlock_workspace_held_by(ws, by).await?;
        if unlocked {
            self.signal.workspace_changed(ws);
        }
        Ok(unlocked)
    }

    /// Asks for a health assessment of `workspace` now: it starts as soon as a place under
    /// the cap is free. Refused, with why, when the workspace cannot be assessed now
    /// (assessments off, nothing applied, its latest run errored or under way, one running).
    pub async fn request_assessment(&self, workspace: &str, by: &str) -> Result<(), ActionError> {
        let found = self
            .store
            .workspace_named(workspace)
            .await?
            .filter(|w| !w.archived)
            .ok_or_else(|| ActionError::NotFound(format!("workspace {workspace}")))?;
        if !found.spec.assessments {
            return Err(ActionError::Conflict(format!(
                "assessments are off for workspace {workspace} (assessments = true turns them on)"
            )));
        }
        let schedules = self.store.assessment_schedules(Some(found.id)).await?;
        let schedule = schedules.into_iter().next().ok_or_else(|| {
            ActionError::Conflict(format!(
                "workspace {workspace} cannot be assessed: Gantry does not run its Terraform"
            ))
        })?;
        let now = crate::store::now_ms();
        if let crate::core::assessments::Due::Paused(why) =
            crate::core::assessments::due(&schedule, now)
        {
            return Err(ActionError::Conflict(format!(
                "workspace {workspace} cannot be assessed now: {why}"
            )));
        }
        self.store.request_assessment(found.id).await?;
        self.signal.assessment_requested();
        tracing::info!(%workspace, %by, "assessment asked for");
        Ok(())
    }

    /// Registers a run that starts executing here; `None` if it already is.
    pub(super) fn register(&self, run_id: RunId) -> Option<Stop> {
        let mut executing = self.executing.lock().unwrap_or_else(|e| e.into_inner());
        if executing.contains_key(&run_id) {
            return None;
        }
        let stop = Stop::default();
        executing.insert(run_id, stop.clone());
        Some(stop)
    }

    pub(super) fn unregister(&self, run_id: RunId) {
        self.executing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&run_id);
        // A cancel that came too late to matter leaves nothing behind.
        (self.cancelers.lock().unwrap_or_else(|e| e.into_inner())).remove(&run_id);
        (self.reasons.lock().unwrap_or_else(|e| e.into_inner())).remove(&run_id);
    }

    pub(super) fn is_executing(&self, run_id: RunId) -> bool {
        self.stop_of(run_id).is_some()
    }

    /// Every run executing here, for shutdown.
    pub(super) fn executing_runs(&self) -> Vec<RunId> {
        let executing = self.executing.lock().unwrap_or_else(|e| e.into_inner());
        executing.keys().copied().collect()
    }

    fn stop_of(&self, run_id: RunId) -> Option<Stop> {
        self.executing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&run_id)
            .cloned()
    }

    async fn run(&self, run_id: RunId) -> Result<RunDetail, ActionError> {
        self.store
            .run(run_id)
            .await?
            .ok_or_else(|| ActionError::NotFound(format!("run {run_id}")))
    }

    async fn workspace_id(&self, name: &str) -> Result<WorkspaceId, ActionError> {
        self.store
            .workspace_named(name)
            .await?
            .map(|w| w.id)
            .ok_or_else(|| ActionError::NotFound(format!("workspace {name}")))
    }

    /// Makes a person's move of `run` (other replicas hear of it from the store).
    async fn move_run(
        &self,
        run: &RunDetail,
        mv: &Move<'_>,
        verb: &str,
    ) -> Result<RunDetail, ActionError> {
        if run.state != mv.from || !mv.from.can_become(mv.to) {
            return Err(ActionError::Conflict(format!(
                "a run that is {} cannot be {verb}",
                run.state
            )));
        }
        if !self.store.move_run(mv).await? {
            return Err(ActionError::Conflict(format!(
                "the run changed state meanwhile; it could not be {verb}"
            )));
        }
        self.signal.workspace_changed(run.workspace_id);
        self.run(run.id).await
    }
}

fn person(name: &str) -> Cause {
    Cause::Person(name.to_string())
}
