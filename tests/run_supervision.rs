//! Runs survive Gantry: with real `gantry serve` processes, real supervisors and the real
//! Terraform (behind a stand-in that holds a plan or an apply while a marker file exists),
//! Gantry is killed (SIGKILL) or stopped (SIGTERM) during a plan and during an apply, and the
//! supervisors themselves are killed. A run never fails because Gantry stopped; a lost plan is
//! planned again; a lost apply errors with the state it wrote kept; and at no moment do two
//! Terraform processes work on one workspace (checked from the process table and the locks).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::fleet;
use common::process::{GantryProcess, send};
use common::runs::{REPO, marker, real_terraform, tarball_of, tool_cache_with};
use common::{push_payload, wait_until};
use gantry::core::RunId;
use gantry::core::run::RunState;
use gantry::executor::supervisor::PhaseFiles;
use gantry::store::Store;

/// A Terraform that holds its plan while `plan` exists, holds its apply (before applying)
/// while `apply` exists, and lingers after a real apply while `after` exists.
fn held_terraform(plan: &Path, apply: &Path, after: &Path) -> String {
    let script = r#"#!/bin/sh
if [ "$1" = plan ]; then
  echo "held plan: waiting"
  while [ -e 'PLAN' ]; do sleep 0.05; done
fi
if [ "$1" = apply ]; then
  echo "held apply: waiting"
  while [ -e 'APPLY' ]; do sleep 0.05; done
  'REAL' "$@"
  code=$?
  echo "applied; lingering"
  while [ -e 'AFTER' ]; do sleep 0.05; done
  exit $code
fi
exec 'REAL' "$@"
"#;
    script
        .replace("PLAN", &plan.display().to_string())
        .replace("APPLY", &apply.display().to_string())
        .replace("AFTER", &after.display().to_string())
        .replace("REAL", &real_terraform().display().to_string())
}

/// One auto-applying workspace, `prod/`, with the held Terraform.
struct Scenario {
    _dir: tempfile::TempDir,
    data: PathBuf,
    log: PathBuf,
    config: PathBuf,
    tool_cache: PathBuf,
    github: common::FakeGitHub,
    database_url: String,
    store: Store,
    plan: tempfile::NamedTempFile,
    apply: tempfile::NamedTempFile,
    after: tempfile::NamedTempFile,
}

impl Scenario {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (plan, apply, after) = (marker(), marker(), marker());
        let tools = dir.path().join("tools");
        std::fs::create_dir_all(&tools).unwrap();
        let script = held_terraform(plan.path(), apply.path(), after.path());
        let tool_cache = tool_cache_with(&tools, Some(&script));
        let config = dir.path().join("gantry.toml");
        std::fs::write(
            &config,
            format!(
                "[terraform]\ntool_cache = \"{}\"\n\n[runner]\nphase_timeout_secs = 300\n\n\
                 [[workspaces]]\nname = \"prod\"\nrepo = \"{REPO}\"\n\
                 working_directory = \"prod\"\nterraform_version = \"1.0.3\"\n\
                 auto_apply = true\n[workspaces.vars]\nname = \"prod\"\n",
                tool_cache.display()
            ),
        )
        .unwrap();
        let github = fleet::fake_github(
            &"1".repeat(40),
            &[],
            tarball_of("monorepo", &"0".repeat(40)),
        )
        .await;
        let database_url = match common::fresh_postgres_database().await {
            Some(url) => url,
            None => format!("sqlite://{}/gantry.db", data.display()),
        };
        std::fs::create_dir_all(&data).unwrap();
        let store = Store::open(&database_url.clone().into()).await.unwrap();
        Self {
            log: dir.path().join("gantry.log"),
            _dir: dir,
            data,
            config,
            tool_cache,
            github,
            database_url,
            store,
            plan,
            apply,
            after,
        }
    }

    fn start(&self) -> GantryProcess {
        self.start_with(&[])
    }

    fn start_with(&self, extra: &[(&str, &str)]) -> GantryProcess {
        let env = [
            ("GANTRY_GITHUB_API_URL", self.github.uri()),
            ("GANTRY_DATABASE_URL", self.database_url.clone()),
            ("GANTRY_PUBLIC_URL", "https://gantry.test/".to_string()),
        ];
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend_from_slice(extra);
        GantryProcess::start_configured(&self.data, &self.log, Some(&self.config), &env)
    }

    /// Pushes `commit` to prod; returns its run.
    async fn push(&self, gantry: &GantryProcess, commit: &str) -> RunId {
        let body = push_payload(REPO, "main", commit, &["prod/main.tf"], |_| {});
        let http = reqwest::Client::new();
        let id = format!("push-{commit}");
        assert_eq!(send(&http, &gantry.url, "push", &id, &body).await, 202);
        wait_until(Duration::from_secs(30), || async {
            let runs = fleet::all_runs(&self.store).await;
            runs.iter().find(|r| r.commit_sha == commit).map(|r| r.id)
        })
        .await
        .expect("the push made a run")
    }

    fn phase(&self, run: i64, phase: &str) -> PhaseFiles {
        PhaseFiles::new(
            &self.data.join("runs").join(run.to_string()).join("phases"),
            phase,
        )
    }

    /// Waits until `phase` of `run` is held under its supervisor (its Terraform running).
    async fn wait_for_phase(&self, run: i64, phase: &str) {
        let files = self.phase(run, phase);
        wait_until(Duration::from_secs(60), || async {
            (files.lock_is_held() && processes_running(&self.tool_cache) == 1).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("{phase} of run {run} never ran\n{}", self.gantry_log()));
        self.assert_one_terraform();
    }

    async fn wait_for_state(&self, run: i64, state: RunState) -> gantry::store::RunDetail {
        let found = wait_until(Duration::from_secs(120), || async {
            let detail = self.store.run(RunId(run)).await.ok()??;
            self.assert_one_terraform();
            (detail.state == state || detail.state.is_final()).then_some(detail)
        })
        .await
        .unwrap_or_else(|| panic!("run {run} never became {state}\n{}", self.gantry_log()));
        assert_eq!(found.state, state, "{found:?}\n{}", self.gantry_log());
        found
    }

    /// Never two Terraform processes for the workspace (its only Terraform is the held one).
    fn assert_one_terraform(&self) {
        let running = processes_running(&self.tool_cache);
        assert!(running <= 1, "{running} Terraform processes at once");
    }

    /// Every state GitHub was told for the commit.
    async fn statuses(&self, commit: &str) -> Vec<String> {
        self.github
            .statuses(REPO, commit)
            .into_iter()
            .map(|s| s.state)
            .collect()
    }

    fn gantry_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// How many Terraform processes run for the workspace: processes of the held Terraform (the
/// tool cache's script, by its path), not counting the shell's own forks (a fork shows its
/// parent's command line until it execs `sleep`).
fn processes_running(tool_cache: &Path) -> usize {
    let script = tool_cache.join("1.0.3/terraform");
    let needle = script.display().to_string();
    let runs_script = |pid: &str| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            // `/bin/sh <script> <args>`; bwrap's own command line names the script too, so
            // only the interpreter's counts.
            args.first().is_some_and(|a| a.ends_with(b"sh"))
                && args.get(1).is_some_and(|a| *a == needle.as_bytes())
        })
    };
    let parent = |pid: &str| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // pid (comm) state ppid …: the command may hold spaces, so read after the last ')'.
        stat.rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .unwrap_or("0")
            .to_string()
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|pid| pid.parse::<u32>().is_ok())
        .filter(|pid| runs_script(pid) && !runs_script(&parent(pid)))
        .count()
}

/// SIGKILL to a phase's supervisor (once it has said its pid).
async fn kill_supervisor(files: &PhaseFiles) {
    let pid: i32 = wait_until(Duration::from_secs(10), || async {
        std::fs::read_to_string(files.pid())
            .ok()?
            .trim()
            .parse()
            .ok()
    })
    .await
    .expect("the supervisor wrote its pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_of_gantry_during_plan_and_apply_fail_nothing() {
    let s = Scenario::new().await;
    let commit = "a".repeat(40);
    let gantry = s.start();
    let run = s.push(&gantry, &commit).await;
    s.wait_for_phase(run.0, "plan").await;

    // Killed during the plan: Terraform goes on under its supervisor, and the restarted Gantry
    // follows it to its end.
    gantry.kill();
    assert!(
        s.phase(run.0, "plan").lock_is_held(),
        "the supervisor outlived Gantry"
    );
    assert_eq!(
        processes_running(&s.tool_cache),
        1,
        "Terraform is still planning"
    );
    let gantry = s.start();
    std::fs::remove_file(s.plan.path()).unwrap();
    s.wait_for_phase(run.0, "apply").await;

    // Killed during the apply, which then finishes while no Gantry runs: the next Gantry
    // records it.
    gantry.kill();
    std::fs::remove_file(s.apply.path()).unwrap();
    std::fs::remove_file(s.after.path()).unwrap();
    let apply = s.phase(run.0, "apply");
    wait_until(Duration::from_secs(60), || async {
        apply.read_status().map(|_| ())
    })
    .await
    .expect("the apply ended under its supervisor");
    let gantry = s.start();
    let applied = s.wait_for_state(run.0, RunState::Applied).await;
    assert!(applied.error.is_none(), "{applied:?}");
    let versions = s.store.state_versions(applied.workspace_id).await.unwrap();
    assert_eq!(versions.len(), 1, "the apply's state was stored");
    let told = s.statuses(&commit).await;
    assert!(
        told.iter()
            .all(|state| state == "pending" || state == "success"),
        "no failure ever reached GitHub: {told:?}"
    );
    let events = s.store.run_events(RunId(run.0)).await.unwrap();
    assert!(
        events
            .iter()
            .filter(|(_, detail)| detail.as_deref().unwrap_or("").contains("taken back"))
            .count()
            >= 2,
        "the run shows it was taken back: {events:?}"
    );
    gantry.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_apply_exits_promptly_and_the_apply_completes() {
    let s = Scenario::new().await;
    std::fs::remove_file(s.plan.path()).unwrap();
    let commit = "b".repeat(40);
    let gantry = s.start();
    let run = s.push(&gantry, &commit).await;
    s.wait_for_phase(run.0, "apply").await;

    let took = gantry.terminate();
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM took {took:?}\n{}",
        s.gantry_log()
    );
    assert!(
        s.phase(run.0, "apply").lock_is_held(),
        "the apply goes on without Gantry"
    );
    std::fs::remove_file(s.apply.path()).unwrap();
    std::fs::remove_file(s.after.path()).unwrap();
    let gantry = s.start();
    let applied = s.wait_for_state(run.0, RunState::Applied).await;
    let versions = s.store.state_versions(applied.workspace_id).await.unwrap();
    assert_eq!(versions.len(), 1, "{}", s.gantry_log());
    gantry.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_supervisor_means_a_new_plan_or_an_errored_apply_with_its_state_kept() {
    let s = Scenario::new().await;
    let gantry = s.start();

    // The plan's supervisor dies (and bubblewrap kills Terraform with it): planned again.
    let commit = "c".repeat(40);
    let run = s.push(&gantry, &commit).await;
    s.wait_for_phase(run.0, "plan").await;
    kill_supervisor(&s.phase(run.0, "plan")).await;
    wait_until(Duration::from_secs(30), || async {
        let events = s.store.run_events(RunId(run.0)).await.ok()?;
        events
            .iter()
            .any(|(state, detail)| {
                state == "pending" && detail.as_deref().unwrap_or("").contains("planned again")
            })
            .then_some(())
    })
    .await
    .expect("the lost plan was queued again");
    s.wait_for_phase(run.0, "plan").await;
    std::fs::remove_file(s.plan.path()).unwrap();

    // The apply's supervisor dies after Terraform wrote the state: errored, state kept.
    s.wait_for_phase(run.0, "apply").await;
    std::fs::remove_file(s.apply.path()).unwrap();
    let apply = s.phase(run.0, "apply");
    wait_until(Duration::from_secs(60), || async {
        std::fs::read_to_string(apply.log())
            .ok()?
            .contains("applied; lingering")
            .then_some(())
    })
    .await
    .expect("Terraform applied");
    kill_supervisor(&apply).await;
    let errored = s.wait_for_state(run.0, RunState::Errored).await;
    assert_eq!(
        errored.error.as_deref(),
        Some("Gantry stopped during apply; state written up to that point is saved"),
    );
    let versions = s.store.state_versions(errored.workspace_id).await.unwrap();
    assert_eq!(versions.len(), 1, "the state the apply wrote was stored");
    assert_eq!(
        processes_running(&s.tool_cache),
        0,
        "Terraform died with its supervisor"
    );
    gantry.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_bubblewrap_gantry_refuses_runs_and_says_why() {
    let s = Scenario::new().await;
    let env = [
        ("GANTRY_GITHUB_API_URL", s.github.uri()),
        ("GANTRY_DATABASE_URL", s.database_url.clone()),
        // No bwrap on this PATH: no sandbox can be made.
        ("PATH", "/nonexistent".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gantry = GantryProcess::start_configured(&s.data, &s.log, Some(&s.config), &env);
    let ready = reqwest::get(format!("{}/readyz", gantry.url))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("bubblewrap"),
        "{body}"
    );
    assert!(s.gantry_log().contains("no run will be executed"));
    let run = s.push(&gantry, &"d".repeat(40)).await;
    let errored = s.wait_for_state(run.0, RunState::Errored).await;
    let reason = errored.error.unwrap_or_default();
    assert!(
        reason.starts_with("Terraform was not started: runs cannot be sandboxed here"),
        "{reason}"
    );
    assert_eq!(processes_running(&s.tool_cache), 0);
    gantry.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_shutdown_cancel_a_sigterm_cancels_the_plan_and_waits_for_it() {
    let s = Scenario::new().await;
    let gantry = s.start_with(&[("GANTRY_RUNNER_ON_SHUTDOWN", "cancel")]);
    let run = s.push(&gantry, &"e".repeat(40)).await;
    s.wait_for_phase(run.0, "plan").await;
    let took = gantry.terminate();
    assert!(
        took < Duration::from_secs(10),
        "SIGTERM took {took:?}\n{}",
        s.gantry_log()
    );
    // Gantry waited for the canceled run before it exited.
    let detail = s.store.run(RunId(run.0)).await.unwrap().unwrap();
    assert_eq!(
        detail.state,
        RunState::Canceled,
        "{detail:?}\n{}",
        s.gantry_log()
    );
    assert_eq!(processes_running(&s.tool_cache), 0, "Terraform stopped");
    assert!(!s.phase(run.0, "plan").lock_is_held());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_taken_back_after_a_restart_can_still_be_canceled() {
    let s = Scenario::new().await;
    let token = gantry::web::api::auth::new_token();
    s.store
        .create_api_token(
            "tester",
            "admin",
            &gantry::web::api::auth::token_hash(&token),
        )
        .await
        .unwrap();
    let gantry = s.start();
    let run = s.push(&gantry, &"f".repeat(40)).await;
    s.wait_for_phase(run.0, "plan").await;
    gantry.kill();
    // The restarted Gantry did not start this plan: it reaches Terraform through the
    // supervisor named in the phase's files.
    let gantry = s.start();
    wait_until(Duration::from_secs(30), || async {
        let events = s.store.run_events(RunId(run.0)).await.ok()?;
        events
            .iter()
            .any(|(_, detail)| detail.as_deref().unwrap_or("").contains("taken back"))
            .then_some(())
    })
    .await
    .expect("the run was taken back");
    let canceled = reqwest::Client::new()
        .post(format!("{}/api/v1/runs/{run}/actions/cancel", gantry.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(canceled.status(), 202, "Terraform was told to stop");
    s.wait_for_state(run.0, RunState::Canceled).await;
    assert_eq!(processes_running(&s.tool_cache), 0, "Terraform stopped");
    assert!(!s.phase(run.0, "plan").lock_is_held());
    gantry.kill();
}
