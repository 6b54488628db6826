//! Executes runs. The scheduler looks at the workspaces whose queue may have changed (see
//! [`RunSignal`]), asks the queue policy (`core::queue`) which run may start, moves it from
//! pending to fetching in the store (a compare-and-set, so a run starts once) and executes it
//! in a task of its own. Confirmed runs (by a person, by auto-apply, or left confirmed by a
//! restart) are applied the same way. Terraform processes share a fixed number of slots.

mod assessments;
mod control;
mod execute;
mod explain;
mod log;
mod signal;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use control::{ActionError, CancelOutcome, RunControl};
pub use signal::RunSignal;

use crate::config::{Config, IsolationSetting, OnShutdown, RunnerConfig};
use crate::core::queue::{QueueDecision, QueuedRun, next_to_start};
use crate::core::run::RunState;
use crate::core::{RunId, WorkspaceId};
use crate::executor::sandbox::{Isolation, Sandbox};
use crate::executor::terraform_install::Installer;
use crate::github::GitHub;
use crate::store::{Cause, Move, Store};
use execute::Execution;

/// Every workspace with unfinished runs is looked at this often even without a signal, so a
/// missed signal (or a change made by another process) delays a run, never strands it.
const SWEEP: Duration = Duration::from_secs(30);
/// After a store error, the workspace is looked at again this much later.
const RETRY: Duration = Duration::from_secs(2);
/// How often a runner says it still executes (or holds the plans of) its runs.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A run whose runner has been silent this long is taken for orphaned (its server died).
pub const STALE_AFTER: Duration = Duration::from_secs(20);
/// Beyond the phase timeout, how long a dead server's supervisor may take to kill its phase.
const SUPERVISOR_MARGIN: Duration = Duration::from_secs(5);

/// Runs whose runner's last heartbeat is older than this moment are orphaned. On SQLite one
/// server executes everything, so at its start every executing run is its own, orphaned.
pub fn stale_before(store: &Store) -> i64 {
    if store.is_shared() {
        crate::store::now_ms() - STALE_AFTER.as_millis() as i64
    } else {
        i64::MAX
    }
}

/// What the scheduler and every run task share.
pub struct Shared {
    store: Store,
    github: Arc<GitHub>,
    control: Arc<RunControl>,
    installer: Installer,
    slots: Arc<Semaphore>,
    /// Speculative plans executing at once.
    speculative_slots: Arc<Semaphore>,
    runs_dir: PathBuf,
    blobs_dir: PathBuf,
    phase_timeout: Duration,
    /// This server's replica id: the runs it executes are marked with it.
    owner: String,
    /// The sandbox every Terraform process runs in, or why none can be made here (then no
    /// Terraform is started at all).
    isolation: Result<Isolation, String>,
    /// The program that supervises each Terraform phase.
    supervisor: PathBuf,
    on_shutdown: OnShutdown,
    /// The policy sets plans are checked against.
    policies: crate::config::PolicyConfig,
    /// Gantry's organization, as policies see it.
    organization: String,
    /// Where assessments run, each in a directory of its own.
    assessments_dir: PathBuf,
    /// Assessments running at once, across all servers.
    max_assessments: usize,
    /// What assessments are scheduled by.
    clock: crate::clock::Clock,
    /// The assessments executing here, by workspace: canceled when a run of it starts.
    assessing: std::sync::Mutex<std::collections::HashMap<WorkspaceId, (i64, CancellationToken)>>,
}

impl Shared {
    /// A run to execute (or assess) and its workspace, both still there.
    async fn run_and_workspace(
        &self,
        run_id: RunId,
    ) -> anyhow::Result<(crate::store::RunDetail, crate::store::Workspace)> {
        let run = (self.store.run(run_id).await?)
            .ok_or_else(|| anyhow::anyhow!("run {run_id} vanished"))?;
        let workspace = (self.store.workspace(run.workspace_id).await?)
            .ok_or_else(|| anyhow::anyhow!("workspace {} vanished", run.workspace_id))?;
        Ok((run, workspace))
    }

    /// A stored configuration tarball, by its SHA-256.
    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.blobs_dir.join(format!("{sha256}.tar.gz"))
    }
}

/// What a run task does.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// Plan a run just started (fetching), and apply it if auto-apply confirms it.
    Plan,
    /// Apply a confirmed run.
    Apply,
    /// Wait for a speculative slot, then plan (pending).
    Speculative,
    /// Take back a run this server executed before it stopped, in the state it is in.
    Resume(RunState),
}

impl Work {
    fn state(self) -> RunState {
        match self {
            Work::Plan => RunState::Fetching,
            Work::Apply => RunState::Confirmed,
            Work::Speculative => RunState::Pending,
            Work::Resume(state) => state,
        }
    }
}

pub struct Runner {
    shared: Arc<Shared>,
    tasks: TaskTracker,
}

/// The isolation the configuration asks for, checked on this machine.
fn isolation(runner: &RunnerConfig) -> Result<Isolation, String> {
    match runner.isolation {
        IsolationSetting::None => {
            tracing::warn!(
                "runner.isolation = \"none\": Terraform runs unsandboxed and can read Gantry's \
                 database, keys and environment"
            );
            Ok(Isolation::Unsandboxed)
        }
        IsolationSetting::Sandbox => match Sandbox::probe(runner.sandbox_read_only.clone()) {
            Ok(sandbox) => Ok(Isolation::Sandboxed(sandbox)),
            Err(error) => {
                tracing::error!(%error, "no run will be executed");
                Err(error.to_string())
            }
        },
    }
}

impl Runner {
    pub fn new(
        config: &Config,
        store: Store,
        github: Arc<GitHub>,
        control: Arc<RunControl>,
        owner: String,
    ) -> Self {
        // Terraform runs in each run's own directory: every path handed to it must be absolute.
        let absolute = |path: PathBuf| std::path::absolute(&path).unwrap_or(path);
        let shared = Shared {
            store,
            github,
            control,
            installer: Installer::new(
                config.terraform.releases_url.clone(),
                absolute(config.terraform.tool_cache.clone()),
            ),
            slots: Arc::new(Semaphore::new(config.runner.max_processes)),
            speculative_slots: Arc::new(Semaphore::new(config.pull_requests.max_concurrent_plans)),
            runs_dir: absolute(config.data_dir.join("runs")),
            blobs_dir: absolute(config.data_dir.join("blobs").join("sha256")),
            phase_timeout: config.runner.phase_timeout,
            owner,
            isolation: isolation(&config.runner),
            supervisor: config.runner.supervisor.clone(),
            on_shutdown: config.runner.on_shutdown,
            policies: config.policies.clone(),
            organization: config.organization.clone(),
            assessments_dir: absolute(config.data_dir.join("assessments")),
            max_assessments: config.runner.max_assessments,
            clock: config.clock.clone(),
            assessing: Default::default(),
        };
        Self {
            shared: Arc::new(shared),
            tasks: TaskTracker::new(),
        }
    }

    /// Why no run can be executed here (no sandbox can be made), if so.
    pub fn refusal(&self) -> Option<String> {
        self.shared.isolation.as_ref().err().cloned()
    }

    /// Schedules until `cancel` fires. First it takes back the runs it was executing before it
    /// stopped. When it stops, the phases under way are left to their supervisors (the next
    /// start follows them on), or with `on_shutdown = "cancel"` canceled and waited for.
    pub async fn run(self, cancel: CancellationToken) {
        let signal = self.shared.control.signal().clone();
        tracing::info!("runner started");
        // The first tick is at once: the sweep at start.
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut assessment_tick = tokio::time::interval(assessments::TICK);
        assessment_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Other replicas' changes (a run confirmed there, runs created by its dispatcher).
        let heard = signal.clone();
        if let Err(error) = self
            .shared
            .store
            .on_workspace_changes(move |id| heard.workspace_changed(id))
            .await
        {
            tracing::error!(
                error = format!("{error:#}"),
                "listening for other replicas failed"
            );
        }
        self.adopt(&cancel).await;
        self.take_back_assessments().await;
        // Once per start, beside the scheduler rather than ahead of it.
        let store = self.shared.store.clone();
        tokio::spawn(async move {
            match explain::explain_errored_runs(&store).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(runs = n, "errored runs now show Terraform's own reason"),
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "explaining errored runs failed"
                ),
            }
        });
        loop {
            for workspace_id in signal.take() {
                if let Err(error) = self.schedule(workspace_id, &cancel).await {
                    tracing::error!(
                        %workspace_id,
                        error = format!("{error:#}"),
                        "scheduling failed"
                    );
                    let signal = signal.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(RETRY).await;
                        signal.workspace_changed(workspace_id);
                    });
                }
            }
            if let Err(error) = self.start_speculative(&cancel).await {
                tracing::error!(
                    error = format!("{error:#}"),
                    "starting speculative plans failed"
                );
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = signal.changed() => {}
                _ = sweep.tick() => self.sweep(&signal).await,
                _ = heartbeat.tick() => self.heartbeat(&signal).await,
                _ = assessment_tick.tick() => {
                    self.assess_due(self.shared.clock.now_ms(), &cancel).await;
                }
                _ = signal.assessments_wanted() => {
                    self.assess_due(self.shared.clock.now_ms(), &cancel).await;
                }
                _ = self.shared.clock.moved() => {
                    self.assess_due(self.shared.clock.now_ms(), &cancel).await;
                }
            }
        }
        let executing = self.shared.control.executing_runs();
        if !executing.is_empty() {
            match self.shared.on_shutdown {
                OnShutdown::Detach => tracing::warn!(
                    ?executing,
                    "stopping: runs under way are left to their supervisors for the next start"
                ),
                OnShutdown::Cancel => {
                    tracing::warn!(?executing, "stopping: canceling the runs under way");
                    for run_id in executing {
                        self.shared
                            .control
                            .cancel_executing(run_id, "canceled: Gantry was stopping");
                    }
                }
            }
        }
        self.tasks.close();
        self.tasks.wait().await;
        tracing::info!("runner stopped");
    }

    /// Says this server still holds its runs, and takes over the runs of servers that stopped
    /// saying so (they died): their plans are planned again and their waiting plans errored
    /// once they are stale, but a run whose Terraform may still be working under the dead
    /// server's supervisor is left alone until the phase timeout has surely ended it.
    async fn heartbeat(&self, signal: &RunSignal) {
        let store = &self.shared.store;
        if let Err(error) = store.heartbeat_runs(&self.shared.owner).await {
            tracing::error!(error = format!("{error:#}"), "heartbeat failed");
        }
        if !store.is_shared() {
            return; // one server per database: nobody else's runs to take over
        }
        let stale_before = stale_before(store);
        // Another server's assessments it stopped watching: they run again (here or there).
        match store.cancel_abandoned_assessments("", stale_before).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(?ids, "assessments of a server that stopped: they run again");
            }
            Ok(_) => {}
            Err(error) => tracing::error!(error = format!("{error:#}"), "takeover failed"),
        }
        let terraform_gone_before =
            stale_before - (self.shared.phase_timeout + SUPERVISOR_MARGIN).as_millis() as i64;
        let owner = &self.shared.owner;
        match store
            .interrupt_stale_runs(owner, stale_before, terraform_gone_before)
            .await
        {
            Ok(ids) if ids.is_empty() => {}
            Ok(ids) => {
                tracing::warn!(?ids, "runs of a server that stopped: errored");
                self.sweep(signal).await;
            }
            Err(error) => tracing::error!(error = format!("{error:#}"), "takeover failed"),
        }
        let plans = match store
            .stale_plans(owner, stale_before, terraform_gone_before)
            .await
        {
            Ok(plans) => plans,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "takeover failed");
                return;
            }
        };
        for (run_id, state) in plans {
            let detail = "planned again: the server planning it stopped";
            let requeued = store
                .requeue_lost_plan(run_id, state, detail, execute::MAX_PLAN_ATTEMPTS)
                .await;
            let ended = match requeued {
                Ok(true) => Ok(true),
                Ok(false) => {
                    let reason = "interrupted: the server planning it stopped, too often";
                    let interrupted = Move::new(run_id, state, RunState::Errored, Cause::Recovery);
                    store.move_run(&interrupted.because(reason)).await
                }
                Err(error) => Err(error),
            };
            match ended {
                Ok(_) => tracing::warn!(%run_id, "a plan of a server that stopped: taken over"),
                Err(error) => tracing::error!(error = format!("{error:#}"), "takeover failed"),
            }
        }
    }

    async fn sweep(&self, signal: &RunSignal) {
        match self.shared.store.workspaces_with_active_runs().await {
            Ok(ids) => signal.workspaces_changed(ids),
            Err(error) => tracing::error!(error = format!("{error:#}"), "sweep failed"),
        }
        self.remove_finished_run_dirs().await;
    }

    /// Run directories hold plan files and variables in clear text: a run that ended outside
    /// its task (discarded, canceled while queued, interrupted) leaves one behind; remove it.
    async fn remove_finished_run_dirs(&self) {
        let Ok(mut entries) = tokio::fs::read_dir(&self.shared.runs_dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Some(run_id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<RunId>().ok())
            else {
                continue;
            };
            if self.shared.control.is_executing(run_id) {
                continue;
            }
            let kept = tokio::fs::try_exists(entry.path().join(execute::KEEP_MARKER)).await;
            if let Ok(Some(run)) = self.shared.store.run(run_id).await
                && run.state.is_final()
                && !kept.unwrap_or(true)
            {
                let _ = tokio::fs::remove_dir_all(entry.path()).await;
            }
        }
    }

    /// Starts what the queue of one workspace allows: the confirmed run's apply, or the next
    /// pending run.
    async fn schedule(
        &self,
        workspace_id: WorkspaceId,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let (runs, locked) = self.shared.store.workspace_queue(workspace_id).await?;
        if let Some((id, _)) = runs.iter().find(|(_, s)| *s == RunState::Confirmed)
            && !self.shared.control.is_executing(*id)
        {
            // Only the server that planned it has the plan file: another replica leaves it.
            let owner = self.shared.store.run_owner(*id).await?;
            if owner.is_none_or(|owner| owner == self.shared.owner) {
                self.spawn(*id, Work::Apply, cancel).await?;
            }
            return Ok(());
        }
        let queued: Vec<QueuedRun> = runs
            .iter()
            .map(|(id, state)| QueuedRun {
                id: *id,
                state: *state,
            })
            .collect();
        // A run whose task here is still ending (a lost plan just queued again) is started
        // when that task is done: it says so as it ends. Started now, its new task would not
        // be registered, and the run would stay fetching with nobody executing it.
        if let QueueDecision::Start(id) = next_to_start(&queued, locked)
            && !self.shared.control.is_executing(id)
            && self
                .shared
                .store
                .start_queued_run(id, &self.shared.owner)
                .await?
            && let Err(error) = {
                self.shared.stop_assessment_of(workspace_id);
                self.spawn(id, Work::Plan, cancel).await
            }
        {
            // Started in the store but not executing: end it rather than hold the workspace.
            let reason = format!("the run could not be started: {error:#}");
            let errored = Move::new(id, RunState::Fetching, RunState::Errored, Cause::Runner);
            self.shared
                .store
                .move_run(&errored.because(&reason))
                .await?;
            return Err(error);
        }
        Ok(())
    }

    /// At start: the runs this server was executing when it stopped are executing still (their
    /// Terraform under its supervisor) or have ended meanwhile; each is taken back and followed
    /// to its end.
    async fn adopt(&self, cancel: &CancellationToken) {
        let runs = match self.shared.store.runs_to_adopt(&self.shared.owner).await {
            Ok(runs) => runs,
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "finding runs to take back failed"
                );
                return;
            }
        };
        for (run_id, state) in runs {
            tracing::warn!(%run_id, %state, "taking back a run from before the restart");
            if let Err(error) = self.spawn(run_id, Work::Resume(state), cancel).await {
                tracing::error!(%run_id, error = format!("{error:#}"), "taking back failed");
            }
        }
    }

    /// Speculative plans do not queue: each pending one gets a task at once, which waits for a
    /// speculative slot (in order) and then plans.
    async fn start_speculative(&self, cancel: &CancellationToken) -> anyhow::Result<()> {
        for run_id in self.shared.store.pending_speculative_runs().await? {
            if !self.shared.control.is_executing(run_id) {
                self.spawn(run_id, Work::Speculative, cancel).await?;
            }
        }
        Ok(())
    }

    /// Executes run `id` in its own task: `work` says from where.
    async fn spawn(
        &self,
        run_id: RunId,
        work: Work,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let state = work.state();
        let store = &self.shared.store;
        let (run, workspace) = self.shared.run_and_workspace(run_id).await?;
        let variables = store.run_variables(run_id).await?;
        let Some(stop) = self.shared.control.register(run_id) else {
            return Ok(()); // already executing here
        };
        let workspace_id = run.workspace_id;
        let execution = Execution {
            shared: self.shared.clone(),
            run,
            workspace,
            variables,
            stop,
            state,
            keep_dir: false,
            dir: self.shared.runs_dir.join(run_id.to_string()),
        };
        let shared = self.shared.clone();
        let cancel = cancel.clone();
        let span = tracing::info_span!("run", %run_id, %workspace_id);
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                tracing::info!(%state, "run executing");
                let work = async {
                    match work {
                        Work::Apply => execution.apply().await,
                        Work::Speculative => execution.speculative_plan().await,
                        Work::Plan => execution.plan().await,
                        Work::Resume(_) => execution.resume().await,
                    }
                };
                // Detaching drops the work where it waits: its Terraform goes on under its
                // supervisor. Canceling lets the work see the cancel through to the end.
                match shared.on_shutdown {
                    OnShutdown::Detach => tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = work => {}
                    },
                    OnShutdown::Cancel => work.await,
                }
                shared.control.unregister(run_id);
                shared.control.signal().workspace_changed(workspace_id);
            },
            span,
        ));
        Ok(())
    }
}
