//! One run, executed: fetch and extract its configuration version, plan with real Terraform,
//! record the plan summary and move through the state machine; later (once confirmed) apply the
//! saved plan and record the new state version. Every failure ends the run with a reason in its
//! log and its events.

mod assessment;
mod ending;
mod fetch;
mod policy;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::Shared;
use super::log::PhaseLog;
use crate::core::policy::after_policy_check;
use crate::core::run::{PlanResult, RunKind, RunState, after_plan};
use crate::core::state::check_new_state;
use crate::executor::sandbox::Isolation;
use crate::executor::terraform::{
    LogSink, PhaseError, Phases, PlanSummary, Stop, Terraform, mask_needles,
};
use crate::store::Author;
use crate::store::{Also, Cause, Move, PlanCounts, RunDetail, Workspace};

/// What the run's sandbox may see and write, inside the run's directory.
const WORK_DIR: &str = "work";
/// The plan file, beside the configuration in the work dir; it outlives a restart.
const PLAN_FILE: &str = "work/plan.tfplan";
/// Where the configuration is unpacked inside the run's directory.
const CONFIG_DIR: &str = "work/config";
/// The phases' logs, statuses and locks, outside what the sandbox sees.
pub(super) const PHASES_DIR: &str = "phases";
/// Said in the log of every run on a server with `runner.isolation = "none"`.
const UNSANDBOXED_WARNING: &str = "Gantry: WARNING: this run is not sandboxed \
    (runner.isolation = \"none\"): its Terraform can read Gantry's database, keys and environment";
/// How many times a plan lost to a stopped Gantry or supervisor is started again.
pub const MAX_PLAN_ATTEMPTS: i64 = 3;
/// Terraform's local state file, in the working directory.
const STATE_FILE: &str = "terraform.tfstate";
/// Left in a run's directory whose state file could not be stored: the directory is kept.
pub const KEEP_MARKER: &str = "KEEP-unstored-state";

/// Whether a run's execution starts now or follows on what a stopped Gantry left running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Fresh,
    Resumed,
}

/// How a run ended early.
#[derive(Debug)]
pub enum Failure {
    Errored(String),
    Canceled(String),
    ForceCanceled(String),
    /// Terraform's supervisor stopped before the phase ended (killed, the machine restarted).
    Lost(String),
}

impl Failure {
    fn state(&self) -> RunState {
        match self {
            Failure::Errored(_) | Failure::Lost(_) => RunState::Errored,
            Failure::Canceled(_) => RunState::Canceled,
            Failure::ForceCanceled(_) => RunState::ForceCanceled,
        }
    }

    fn reason(&self) -> &str {
        match self {
            Failure::Errored(r)
            | Failure::Canceled(r)
            | Failure::ForceCanceled(r)
            | Failure::Lost(r) => r,
        }
    }
}

impl From<PhaseError> for Failure {
    fn from(error: PhaseError) -> Self {
        match error {
            PhaseError::Canceled(_) => Failure::Canceled(error.to_string()),
            PhaseError::ForceCanceled(_) => Failure::ForceCanceled(error.to_string()),
            PhaseError::Lost(_) => Failure::Lost(error.to_string()),
            other => Failure::Errored(other.to_string()),
        }
    }
}

fn errored(context: &str) -> impl FnOnce(anyhow::Error) -> Failure + '_ {
    move |error| Failure::Errored(format!("{context}: {error:#}"))
}

/// A run being executed, with the state it is in now.
pub struct Execution {
    pub shared: Arc<Shared>,
    pub run: RunDetail,
    pub workspace: Workspace,
    /// The run's pinned variables: (category, key, value, sensitive).
    pub variables: Vec<(String, String, String, bool)>,
    pub stop: Stop,
    pub state: RunState,
    /// Set when the directory holds something not yet stored (a state file): never deleted.
    pub keep_dir: bool,
    /// Its directory: the run's own (`runs/<id>`), or an assessment's.
    pub dir: PathBuf,
}

impl Execution {
    fn run_dir(&self) -> PathBuf {
        self.dir.clone()
    }

    fn working_dir(&self) -> PathBuf {
        let wd = &self.workspace.spec.working_directory;
        let config = self.run_dir().join(CONFIG_DIR);
        if wd.is_empty() {
            config
        } else {
            config.join(wd)
        }
    }

    /// Moves the run on, failing if someone else moved it meanwhile (a discard, a restart).
    async fn advance(&mut self, to: RunState) -> Result<(), Failure> {
        // A cancel that arrived between Terraform's phases stops the run here.
        if self.stop.force.is_cancelled() {
            return Err(Failure::ForceCanceled("force-canceled".into()));
        }
        if self.stop.cancel.is_cancelled() {
            return Err(Failure::Canceled("canceled".into()));
        }
        let moved = self
            .shared
            .store
            .move_run(&Move::new(self.run.id, self.state, to, Cause::Runner))
            .await
            .map_err(errored("storing the run's state"))?;
        if !moved {
            return Err(Failure::Errored(format!(
                "the run left {} meanwhile; not moving it to {to}",
                self.state
            )));
        }
        self.state = to;
        Ok(())
    }

    /// A speculative plan: waits for a speculative slot, starts (unless it was canceled
    /// meanwhile) and plans; it never applies.
    pub async fn speculative_plan(mut self) {
        let slots = self.shared.speculative_slots.clone();
        let _slot = match until_stopped(&self.stop, slots.acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => return, // the runner is stopping
            Err(_) => {
                // Canceled while waiting for a slot: it never started.
                let reason = self
                    .shared
                    .control
                    .take_reason(self.run.id)
                    .unwrap_or_else(|| "canceled".into());
                let ended = self
                    .shared
                    .store
                    .move_run(
                        &Move::new(
                            self.run.id,
                            RunState::Pending,
                            RunState::Canceled,
                            self.shared.control.take_canceler(self.run.id),
                        )
                        .because(&reason),
                    )
                    .await;
                if let Err(error) = ended {
                    tracing::error!(
                        run_id = %self.run.id,
                        error = format!("{error:#}"),
                        "canceling failed"
                    );
                }
                return;
            }
        };
        match self
            .shared
            .store
            .move_run(
                &Move::new(
                    self.run.id,
                    RunState::Pending,
                    RunState::Fetching,
                    Cause::Runner,
                )
                .also(Also::Own {
                    owner: &self.shared.owner,
                }),
            )
            .await
        {
            Ok(true) => {
                self.state = RunState::Fetching;
                self.plan().await;
            }
            Ok(false) => {} // canceled (superseded) before it started
            Err(error) => tracing::error!(
                run_id = %self.run.id,
                error = format!("{error:#}"),
                "starting a speculative plan failed"
            ),
        }
    }

    /// Fetching → planning → planned (or planned_and_finished); an auto-apply run goes on to
    /// confirmed and applies.
    pub async fn plan(self) {
        self.plan_from(Start::Fresh).await
    }

    /// Takes back a run this server was executing before it stopped: a phase still running
    /// under its supervisor is followed on, one that finished meanwhile is recorded, and one
    /// lost with its supervisor is planned again (or, in an apply, errors with the state it
    /// wrote kept). A run still fetching had started no Terraform: it starts over.
    pub async fn resume(mut self) {
        let note = "taken back by a restarted Gantry: its Terraform was left to its supervisor";
        if let Err(error) = self
            .shared
            .store
            .note_run_event(self.run.id, self.state, note)
            .await
        {
            tracing::error!(
                run_id = %self.run.id,
                error = format!("{error:#}"),
                "noting failed"
            );
        }
        match self.state {
            RunState::Planning => self.plan_from(Start::Resumed).await,
            RunState::Applying => self.apply_from(Start::Resumed).await,
            // Its policies are checked in Gantry, not under a supervisor: plan it again.
            RunState::PolicyChecking | RunState::PolicyChecked => {
                let mut log = PhaseLog::start(self.shared.store.clone(), self.run.id, "plan");
                let lost = Failure::Lost("its policy check stopped with Gantry".into());
                self.finish(Err(lost), &mut log).await;
                log.finish().await;
                self.cleanup_if_final().await;
            }
            _ => self.plan().await,
        }
    }

    async fn plan_from(mut self, start: Start) {
        let mut log = PhaseLog::start(self.shared.store.clone(), self.run.id, "plan");
        if start == Start::Resumed {
            log.line("Gantry: restarted; following the plan on");
        }
        let result = self.plan_phases(&mut log, start).await;
        let result = match result {
            Ok(()) if self.state == RunState::Confirmed => {
                log.finish().await;
                return self.apply().await;
            }
            other => other,
        };
        self.finish(result, &mut log).await;
        log.finish().await;
        self.cleanup_if_final().await;
    }

    async fn plan_phases(&mut self, log: &mut PhaseLog, start: Start) -> Result<(), Failure> {
        if let Isolation::Unsandboxed = self.isolation()? {
            log.line(UNSANDBOXED_WARNING);
        }
        if start == Start::Fresh {
            log.line(&format!(
                "Gantry: run {} of {} at {}",
                self.run.id, self.workspace.spec.name, self.run.commit_sha
            ));
            let archive = self.fetch_configuration().await?;
            self.unpack(&archive).await?;
            let declared = crate::executor::terraform::override_backend(&self.working_dir())
                .map_err(|e| Failure::Errored(format!("writing the backend override: {e}")))?;
            if declared {
                log.line(
                    "Gantry: the configuration's own backend (or cloud block) is overridden: \
                     Gantry keeps this workspace's state, as Terraform Cloud does for its runs",
                );
            }
        }
        if start == Start::Resumed && !self.working_dir().is_dir() {
            // Stopped between starting the run and unpacking it: no Terraform ever ran.
            return Err(Failure::Lost(
                "Gantry stopped before the plan started".into(),
            ));
        }
        let terraform = self.terraform().await?;
        if start == Start::Fresh {
            self.write_current_state().await?;
            self.advance(RunState::Planning).await?;
        }
        let summary = {
            let _slot = self.slot(log).await?;
            terraform.init(log, &self.stop).await?;
            let options = self.run.options.plan_args();
            if !options.is_empty() {
                log.line(&format!("Gantry: planning with {}", options.join(" ")));
            }
            terraform
                .plan(&self.run_dir().join(PLAN_FILE), &options, log, &self.stop)
                .await?
        };
        log.line(&plan_line(&summary));
        self.shared
            .store
            .record_plan(self.run.id, &plan_counts(&summary))
            .await
            .map_err(errored("storing the plan summary"))?;
        let kind = RunKind {
            speculative: self.run.speculative,
            auto_apply: self.run.applies_automatically(&self.workspace.spec),
        };
        let plan = PlanResult {
            has_changes: summary.has_changes,
        };
        // Readers of the next state (a status, the PR comment) find the whole plan log.
        log.flush().await;
        let next = match self.check_policies(&summary, log).await? {
            Some(verdict) => after_policy_check(kind, verdict),
            None => after_plan(kind, plan),
        };
        for next in next {
            self.advance(*next).await?;
        }
        if self.state == RunState::Confirmed {
            log.line("Gantry: auto-apply confirmed the plan");
        }
        Ok(())
    }

    /// Confirmed → applying → applied, with the new state version.
    pub async fn apply(self) {
        self.apply_from(Start::Fresh).await
    }

    async fn apply_from(mut self, start: Start) {
        let mut log = PhaseLog::start(self.shared.store.clone(), self.run.id, "apply");
        if start == Start::Resumed {
            log.line("Gantry: restarted; following the apply on");
        }
        let result = self.apply_phases(&mut log, start).await;
        self.finish(result, &mut log).await;
        log.finish().await;
        self.cleanup_if_final().await;
    }

    async fn apply_phases(&mut self, log: &mut PhaseLog, start: Start) -> Result<(), Failure> {
        let plan_file = self.run_dir().join(PLAN_FILE);
        if start == Start::Fresh {
            self.advance(RunState::Applying).await?;
        }
        if !plan_file.is_file() {
            return Err(Failure::Errored(
                "the saved plan is gone (the run's directory was removed); nothing applied".into(),
            ));
        }
        let terraform = self.terraform().await?;
        let applied = {
            let _slot = self.slot(log).await?;
            terraform.apply(&plan_file, log, &self.stop).await
        };
        // Whatever the apply's outcome (an error half-way, a cancel, a timeout), the state it
        // wrote describes real infrastructure: keep it before anything else.
        let stored = self.store_written_state(log).await;
        if let Err(failure) = &stored {
            self.keep_dir = true;
            let _ = tokio::fs::write(self.run_dir().join(KEEP_MARKER), failure.reason()).await;
            tracing::error!(
                run_id = %self.run.id,
                reason = failure.reason(),
                "the state an apply wrote was not stored; the run's directory is kept"
            );
        }
        let applied = applied.map_err(|error| match error {
            PhaseError::Lost(_) => Failure::Errored(
                "Gantry stopped during apply; state written up to that point is saved".into(),
            ),
            other => other.into(),
        });
        applied?;
        let new_version = stored?;
        log.flush().await;
        let triggered = self
            .shared
            .store
            .finish_apply(self.run.id, new_version)
            .await
            .map_err(errored("recording the applied run"))?;
        self.state = RunState::Applied;
        if !triggered.is_empty() {
            log.line(&format!(
                "Gantry: run triggers queued a run in {} workspace(s)",
                triggered.len()
            ));
            log.flush().await;
            let signal = self.shared.control.signal();
            signal.workspaces_changed(triggered.iter().copied());
            self.shared
                .store
                .announce_workspaces_changed(&triggered)
                .await;
        }
        Ok(())
    }

    /// Stores the state file an apply left, if it is new; returns the state version's id.
    async fn store_written_state(&self, log: &mut PhaseLog) -> Result<Option<i64>, Failure> {
        let state_path = self.working_dir().join(STATE_FILE);
        let written = match tokio::fs::read(&state_path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Failure::Errored(format!("reading the new state: {e}"))),
        };
        let current = self
            .shared
            .store
            .current_state(self.workspace.id)
            .await
            .map_err(errored("reading the current state"))?;
        if current.as_ref().map(|c| &c.state) == Some(&written) {
            return Ok(None);
        }
        let meta = check_new_state(current.as_ref().map(|c| &c.meta), &written)
            .map_err(|e| Failure::Errored(format!("the new state was refused: {e}")))?;
        let id = self
            .shared
            .store
            .record_state_version(self.workspace.id, Author::Run(self.run.id), &meta, &written)
            .await
            .map_err(errored("storing the new state version"))?
            .ok_or_else(|| {
                Failure::Errored(format!(
                    "the new state was refused: a state version with serial {} was stored \
                     meanwhile",
                    meta.serial
                ))
            })?;
        log.line(&format!("Gantry: state version serial {}", meta.serial));
        Ok(Some(id))
    }

    /// The workspace's current state, where Terraform's local backend reads it.
    async fn write_current_state(&self) -> Result<(), Failure> {
        let current = self
            .shared
            .store
            .current_state(self.workspace.id)
            .await
            .map_err(errored("reading the current state"))?;
        if let Some(state) = current {
            tokio::fs::write(self.working_dir().join(STATE_FILE), &state.state)
                .await
                .map_err(|e| Failure::Errored(format!("writing the current state: {e}")))?;
        }
        Ok(())
    }

    fn sensitive_values(&self) -> Vec<String> {
        self.sensitive_values_and(Vec::new())
    }

    /// [`Self::sensitive_values`] and `more` values to mask.
    fn sensitive_values_and(&self, mut more: Vec<String>) -> Vec<String> {
        more.extend(self.variables.iter().filter(|v| v.3).map(|v| v.2.clone()));
        mask_needles(&more)
    }

    /// The run's Terraform: its version's binary, its directory, its pinned variables.
    /// How this run's Terraform is isolated, or why it cannot be started here.
    fn isolation(&self) -> Result<Isolation, Failure> {
        self.shared
            .isolation
            .clone()
            .map_err(|why| Failure::Errored(format!("Terraform was not started: {why}")))
    }

    async fn terraform(&self) -> Result<Terraform, Failure> {
        let isolation = self.isolation()?;
        let binary = match &self.workspace.spec.terraform_version {
            Some(version) => until_stopped(&self.stop, self.shared.installer.ensure(version))
                .await?
                .map_err(|e| Failure::Errored(e.to_string()))?,
            None => PathBuf::from("terraform"),
        };
        let dir = self.working_dir();
        let terraform_vars: Vec<(String, String)> = self
            .variables
            .iter()
            .filter(|v| v.0 == "terraform")
            .map(|v| (v.1.clone(), v.2.clone()))
            .collect();
        crate::executor::terraform::write_variables(&dir, &terraform_vars)
            .map_err(|e| Failure::Errored(format!("writing the variables: {e}")))?;
        Ok(Terraform {
            binary,
            env: self
                .variables
                .iter()
                .filter(|v| v.0 == "env")
                .map(|v| (v.1.clone(), v.2.clone()))
                .collect(),
            sensitive: self.sensitive_values(),
            dir,
            phase_timeout: self.shared.phase_timeout,
            phases: Phases {
                supervisor: self.shared.supervisor.clone(),
                isolation,
                dir: self.run_dir().join(PHASES_DIR),
                work_dir: self.run_dir().join(WORK_DIR),
                network: self.workspace.spec.network,
            },
        })
    }

    /// One of the limited Terraform slots; runs get them in the order they asked.
    async fn slot(&self, log: &mut dyn LogSink) -> Result<OwnedSemaphorePermit, Failure> {
        if let Ok(permit) = self.shared.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        log.line("Gantry: waiting for a free Terraform slot");
        until_stopped(&self.stop, self.shared.slots.clone().acquire_owned())
            .await?
            .map_err(|_| Failure::Errored("the runner is shutting down".into()))
    }
}

/// `future`, unless the run is canceled first.
async fn until_stopped<T>(stop: &Stop, future: impl Future<Output = T>) -> Result<T, Failure> {
    tokio::select! {
        value = future => Ok(value),
        _ = stop.force.cancelled() => Err(Failure::ForceCanceled("force-canceled".into())),
        _ = stop.cancel.cancelled() => Err(Failure::Canceled("canceled".into())),
    }
}

fn plan_counts(summary: &PlanSummary) -> PlanCounts {
    PlanCounts {
        add: summary.add as i64,
        change: summary.change as i64,
        destroy: summary.destroy as i64,
        has_changes: summary.has_changes,
        resource_changes: serde_json::Value::Array(
            summary
                .resource_changes
                .iter()
                .map(|rc| serde_json::json!({ "address": rc.address, "actions": rc.actions }))
                .collect(),
        ),
    }
}

fn plan_line(summary: &PlanSummary) -> String {
    format!(
        "Gantry: plan: {} to add, {} to change, {} to destroy{}",
        summary.add,
        summary.change,
        summary.destroy,
        if summary.has_changes {
            ""
        } else {
            " (no changes)"
        }
    )
}
