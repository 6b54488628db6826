//! One run, executed: fetch and extract its configuration version, plan with real Terraform,
//! record the plan summary and move through the state machine; later (once confirmed) apply the
//! saved plan and record the new state version. Every failure ends the run with a reason in its
//! log and its events.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::OwnedSemaphorePermit;

use super::Shared;
use super::log::PhaseLog;
use crate::core::InstallationId;
use crate::core::run::{PlanResult, RunKind, RunState, after_plan};
use crate::core::state::check_new_state;
use crate::executor::extract::{Limits, extract_tar_gz};
use crate::executor::sandbox::Isolation;
use crate::executor::terraform::{
    LogSink, PhaseError, Phases, PlanSummary, Stop, Terraform, mask, mask_needles,
};
use crate::store::{Also, Cause, Move, PlanCounts, RunDetail, Workspace};

/// What the run's sandbox may see and write, inside the run's directory.
const WORK_DIR: &str = "work";
/// The plan file, beside the configuration in the work dir; it outlives a restart.
const PLAN_FILE: &str = "work/plan.tfplan";
/// Where the configuration is unpacked inside the run's directory.
const CONFIG_DIR: &str = "work/config";
/// The phases' logs, statuses and locks, outside what the sandbox sees.
const PHASES_DIR: &str = "phases";
/// Said in the log of every run on a server with `runner.isolation = "none"`.
const UNSANDBOXED_WARNING: &str = "Gantry: WARNING: this run is not sandboxed \
    (runner.isolation = \"none\"): its Terraform can read Gantry's database, keys and environment";
/// How many times a plan lost to a stopped Gantry or supervisor is started again.
pub const MAX_PLAN_ATTEMPTS: i64 = 3;
/// Terraform's local state file, in the working directory.
const STATE_FILE: &str = "terraform.tfstate";
/// Left in a run's directory whose state file could not be stored: the directory is kept.
pub const KEEP_MARKER: &str = "KEEP-unstored-state";
/// The largest tarball Gantry downloads.
const MAX_TARBALL_BYTES: usize = 256 * 1024 * 1024;
/// The longest a run waits out GitHub's rate limits to fetch its commit: a primary limit
/// resets within the hour.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);

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
}

impl Execution {
    fn run_dir(&self) -> PathBuf {
        self.shared.runs_dir.join(self.run.id.to_string())
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
                            Cause::Runner,
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
            .move_run(&Move::new(
                self.run.id,
                RunState::Pending,
                RunState::Fetching,
                Cause::Runner,
            ))
            .await
        {
            Ok(true) => {
                self.state = RunState::Fetching;
                let owner = &self.shared.owner;
                if let Err(error) = self.shared.store.own_run(self.run.id, owner).await {
                    tracing::error!(error = format!("{error:#}"), "marking the run ours failed");
                }
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
    pub async fn resume(self) {
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
            terraform
                .plan(&self.run_dir().join(PLAN_FILE), log, &self.stop)
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
            auto_apply: self.workspace.spec.auto_apply,
        };
        let plan = PlanResult {
            has_changes: summary.has_changes,
        };
        // Readers of the next state (a status, the PR comment) find the whole plan log.
        log.flush().await;
        for next in after_plan(kind, plan) {
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
        self.shared
            .store
            .finish_apply(self.run.id, new_version)
            .await
            .map_err(errored("recording the applied run"))?;
        self.state = RunState::Applied;
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
            .record_state_version(self.workspace.id, self.run.id, &meta, &written)
            .await
            .map_err(errored("storing the new state version"))?;
        log.line(&format!("Gantry: state version serial {}", meta.serial));
        Ok(Some(id))
    }

    /// Ends the run in the failure's state (when the state machine allows it) with its reason.
    async fn finish(&mut self, result: Result<(), Failure>, log: &mut PhaseLog) {
        let Err(failure) = result else { return };
        let given = self.shared.control.take_reason(self.run.id);
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
        if !self.state.can_become(to) {
            tracing::warn!(run_id = %self.run.id, state = %self.state, %reason, "run not ended");
            return;
        }
        let terraform_error = match to {
            RunState::Errored => self.terraform_error().await,
            _ => None,
        };
        let mut end = Move::new(self.run.id, self.state, to, Cause::Runner).because(&reason);
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
        let log = self
            .shared
            .store
            .run_log(self.run.id, phase, 0)
            .await
            .ok()?;
        let text: String = log.into_iter().map(|c| c.chunk).collect();
        crate::core::status::first_error_line(&text)
    }

    /// A plan lost with its supervisor starts again from pending, unless it was lost too
    /// often already. Returns whether it was queued again.
    async fn requeue_lost_plan(&mut self, reason: &str, log: &mut PhaseLog) -> bool {
        if !matches!(self.state, RunState::Fetching | RunState::Planning) {
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
    async fn cleanup_if_final(&self) {
        if self.state.is_final() && !self.keep_dir {
            let dir = self.run_dir();
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
        }
    }

    /// The configuration tarball: from the blob store, or downloaded from GitHub (read from
    /// the database, for an upload) and kept there under its SHA-256.
    async fn fetch_configuration(&self) -> Result<PathBuf, Failure> {
        if let Some(sha) = &self.run.archive_sha256 {
            let path = self.shared.blob_path(sha);
            if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
                return Ok(path);
            }
        }
        let bytes = if self.run.uploaded {
            // Uploaded through the API: in the database, for whichever replica runs it.
            self.shared
                .store
                .uploaded_archive(self.run.configuration_version_id)
                .await
                .map_err(errored("reading the uploaded configuration"))?
        } else {
            let installation = self.run.installation_id.ok_or_else(|| {
                Failure::Errored("the configuration version names no GitHub installation".into())
            })?;
            self.download_tarball(installation).await?
        };
        let sha = hex::encode(Sha256::digest(&bytes));
        let path = self.shared.blob_path(&sha);
        let target = path.clone();
        let stored = tokio::task::spawn_blocking(move || write_atomically(&target, &bytes)).await;
        stored
            .map_err(std::io::Error::other)
            .and_then(|written| written)
            .map_err(|e| Failure::Errored(format!("storing the configuration: {e}")))?;
        self.shared
            .store
            .set_configuration_archive(self.run.configuration_version_id, &sha)
            .await
            .map_err(errored("recording the configuration"))?;
        Ok(path)
    }

    /// The run's commit from GitHub. A rate limit is waited out (GitHub resets one within the
    /// hour), not taken for a failure of the run.
    async fn download_tarball(&self, installation: InstallationId) -> Result<Vec<u8>, Failure> {
        let mut waited = Duration::ZERO;
        loop {
            let download = self.shared.github.download_tarball(
                installation,
                &self.run.repo,
                &self.run.commit_sha,
                MAX_TARBALL_BYTES,
            );
            match until_stopped(&self.stop, download).await? {
                Ok(bytes) => return Ok(bytes),
                Err(error)
                    if error
                        .retry_after()
                        .is_some_and(|wait| waited + wait <= MAX_RATE_LIMIT_WAIT) =>
                {
                    let wait = error.retry_after().unwrap_or_default();
                    tracing::info!(
                        run_id = %self.run.id,
                        wait_secs = wait.as_secs(),
                        "fetching the configuration after GitHub's rate limit"
                    );
                    until_stopped(&self.stop, tokio::time::sleep(wait)).await?;
                    waited += wait;
                }
                Err(error) => {
                    return Err(Failure::Errored(format!(
                        "fetching the configuration: {error}"
                    )));
                }
            }
        }
    }

    /// A fresh copy of the configuration in the run's own directory. Unpacking is blocking file
    /// work (a repository's tarball can take a while), so it runs off the async workers: on a
    /// small machine there may be only one, and webhooks wait for it.
    async fn unpack(&self, archive: &Path) -> Result<(), Failure> {
        let run_dir = self.run_dir();
        let archive = archive.to_path_buf();
        // GitHub wraps the repository in one directory (owner-repo-sha/); an upload holds
        // the files at its root.
        let strip = if self.run.uploaded { 0 } else { 1 };
        tokio::task::spawn_blocking(move || unpack_into(&run_dir, &archive, strip))
            .await
            .map_err(|e| Failure::Errored(format!("unpacking the configuration: {e}")))??;
        if !self.working_dir().is_dir() {
            return Err(Failure::Errored(format!(
                "the working directory {:?} is not in the configuration",
                self.workspace.spec.working_directory
            )));
        }
        Ok(())
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
        let values: Vec<String> = self
            .variables
            .iter()
            .filter(|v| v.3)
            .map(|v| v.2.clone())
            .collect();
        mask_needles(&values)
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
    async fn slot(&self, log: &mut PhaseLog) -> Result<OwnedSemaphorePermit, Failure> {
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

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.is_file() {
        return Ok(()); // content-addressed: the same name holds the same bytes
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let mut temp = tempfile::NamedTempFile::new_in(parent)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Empties `run_dir` and unpacks `archive` into its configuration directory.
fn unpack_into(run_dir: &Path, archive: &Path, strip: usize) -> Result<(), Failure> {
    let dir = run_dir.join(CONFIG_DIR);
    let _ = std::fs::remove_dir_all(run_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Errored(format!("creating the run's directory: {e}")))?;
    let file = std::fs::File::open(archive)
        .map_err(|e| Failure::Errored(format!("opening the configuration: {e}")))?;
    extract_tar_gz(
        std::io::BufReader::new(file),
        &dir,
        strip,
        Limits::default(),
    )
    .map_err(|e| Failure::Errored(format!("the configuration was rejected: {e}")))?;
    Ok(())
}
