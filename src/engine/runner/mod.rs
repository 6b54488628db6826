//! Executes runs. The scheduler looks at the workspaces whose queue may have changed (see
//! [`RunSignal`]), asks the queue policy (`core::queue`) which run may start, moves it from
//! pending to fetching in the store (a compare-and-set, so a run starts once) and executes it
//! in a task of its own. Confirmed runs (by a person, by auto-apply, or left confirmed by a
//! restart) are applied the same way. Terraform processes share a fixed number of slots.

mod control;
mod execute;
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

use crate::config::Config;
use crate::core::RunId;
use crate::core::queue::{QueueDecision, QueuedRun, next_to_start};
use crate::core::run::RunState;
use crate::executor::terraform_install::Installer;
use crate::github::GitHub;
use crate::store::Store;
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
}

impl Shared {
    /// A stored configuration tarball, by its SHA-256.
    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.blobs_dir.join(format!("{sha256}.tar.gz"))
    }
}

pub struct Runner {
    shared: Arc<Shared>,
    tasks: TaskTracker,
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
        };
        Self {
            shared: Arc::new(shared),
            tasks: TaskTracker::new(),
        }
    }

    /// Schedules until `cancel` fires. Runs executing then are stopped where they are (their
    /// Terraform killed); the next start marks them interrupted.
    pub async fn run(self, cancel: CancellationToken) {
        let signal = self.shared.control.signal().clone();
        tracing::info!("runner started");
        // The first tick is at once: the sweep at start.
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
        loop {
            for workspace_id in signal.take() {
                if let Err(error) = self.schedule(workspace_id, &cancel).await {
                    tracing::error!(
                        workspace_id,
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
            }
        }
        let executing = self.shared.control.executing_runs();
        if !executing.is_empty() {
            tracing::warn!(
                ?executing,
                "stopping: runs under way are left for the next start"
            );
        }
        self.tasks.close();
        self.tasks.wait().await;
        tracing::info!("runner stopped");
    }

    /// Says this server still holds its runs, and errors the runs of servers that stopped
    /// saying so (they died), so that their workspaces' queues move on.
    async fn heartbeat(&self, signal: &RunSignal) {
        let store = &self.shared.store;
        if let Err(error) = store.heartbeat_runs(&self.shared.owner).await {
            tracing::error!(error = format!("{error:#}"), "heartbeat failed");
        }
        if !store.is_shared() {
            return; // one server per database: nobody else's runs to take over
        }
        match store
            .interrupt_stale_runs(&self.shared.owner, stale_before(store))
            .await
        {
            Ok(ids) if ids.is_empty() => {}
            Ok(ids) => {
                tracing::warn!(?ids, "runs of a server that stopped: errored");
                self.sweep(signal).await;
            }
            Err(error) => tracing::error!(error = format!("{error:#}"), "takeover failed"),
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
        let Ok(entries) = std::fs::read_dir(&self.shared.runs_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(run_id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i64>().ok())
            else {
                continue;
            };
            if self.shared.control.is_executing(run_id) {
                continue;
            }
            if let Ok(Some(run)) = self.shared.store.run(run_id).await
                && run.state.is_final()
                && !entry.path().join(execute::KEEP_MARKER).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Starts what the queue of one workspace allows: the confirmed run's apply, or the next
    /// pending run.
    async fn schedule(&self, workspace_id: i64, cancel: &CancellationToken) -> anyhow::Result<()> {
        let (runs, locked) = self.shared.store.workspace_queue(workspace_id).await?;
        if let Some((id, _)) = runs.iter().find(|(_, s)| *s == RunState::Confirmed)
            && !self.shared.control.is_executing(*id)
        {
            // Only the server that planned it has the plan file: another replica leaves it.
            let owner = self.shared.store.run_owner(*id).await?;
            if owner.is_none_or(|owner| owner == self.shared.owner) {
                self.spawn(*id, RunState::Confirmed, cancel).await?;
            }
            return Ok(());
        }
        let queued: Vec<QueuedRun> = runs
            .iter()
            .map(|(id, state)| QueuedRun {
                id: RunId(*id),
                state: *state,
            })
            .collect();
        if let QueueDecision::Start(RunId(id)) = next_to_start(&queued, locked)
            && self
                .shared
                .store
                .start_queued_run(id, &self.shared.owner)
                .await?
            && let Err(error) = self.spawn(id, RunState::Fetching, cancel).await
        {
            // Started in the store but not executing: end it rather than hold the workspace.
            let reason = format!("the run could not be started: {error:#}");
            self.shared
                .store
                .end_run(id, RunState::Fetching, RunState::Errored, &reason)
                .await?;
            return Err(error);
        }
        Ok(())
    }

    /// Speculative plans do not queue: each pending one gets a task at once, which waits for a
    /// speculative slot (in order) and then plans.
    async fn start_speculative(&self, cancel: &CancellationToken) -> anyhow::Result<()> {
        for run_id in self.shared.store.pending_speculative_runs().await? {
            if !self.shared.control.is_executing(run_id) {
                self.spawn(run_id, RunState::Pending, cancel).await?;
            }
        }
        Ok(())
    }

    /// Executes run `id`, now in `state` (fetching: plan; confirmed: apply; pending: a
    /// speculative plan, once it has a slot), in its own task.
    async fn spawn(
        &self,
        run_id: i64,
        state: RunState,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let store = &self.shared.store;
        let run = store
            .run(run_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("run {run_id} vanished"))?;
        let workspace = store
            .workspace(run.workspace_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("workspace {} vanished", run.workspace_id))?;
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
        };
        let shared = self.shared.clone();
        let cancel = cancel.clone();
        let span = tracing::info_span!("run", run_id, workspace_id);
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                tracing::info!(%state, "run executing");
                let work = async {
                    match state {
                        RunState::Confirmed => execution.apply().await,
                        RunState::Pending => execution.speculative_plan().await,
                        _ => execution.plan().await,
                    }
                };
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = work => {}
                }
                shared.control.unregister(run_id);
                shared.control.signal().workspace_changed(workspace_id);
            },
            span,
        ));
        Ok(())
    }
}
