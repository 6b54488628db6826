//! Gantry's overhead per run over bare Terraform, on the same offline fixture
//! (`fixtures/terraform/outputs`) with the same Terraform 1.0.3:
//!
//! - bare: `terraform init && terraform plan -out=…` in a fresh copy of the fixture;
//! - Gantry: from the signed push webhook's 202 to the run being `planned`: delivery stored and
//!   dispatched, run created and scheduled, tarball fetched from a fake GitHub (through its
//!   redirect) and extracted, `init`, `plan`, `show -json` of the saved plan, summary stored.
//!
//! - the sandbox and supervisor per phase: a phase whose "Terraform" is `/bin/true`, started
//!   bare, under its supervisor without a sandbox, and under its supervisor in the sandbox;
//!   and `init`, `plan` and `show -json` (as a run makes them) supervised, with and without
//!   the sandbox;
//! - Gantry again with `runner.isolation = "none"`.
//!
//! Prints the medians and their differences. Run: `cargo bench --bench run_overhead`
//! (under `cargo test --all-targets` it does one round of each, as a smoke test).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestGantry, fixture_path, push_payload, wait_until};
use gantry::executor::sandbox::{Isolation, Sandbox};
use gantry::executor::terraform::{Phases, Stop, Terraform};

const WORKSPACE: &str = r#"
[[workspaces]]
name = "prod"
repo = "octo-org/infra"
terraform_version = "1.0.3"
[workspaces.vars]
name = "world"
"#;

fn real_terraform() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/terraform")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn bare_round(fixture: &Path) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture.join("main.tf"), dir.path().join("main.tf")).unwrap();
    std::fs::write(
        dir.path().join("vars.auto.tfvars.json"),
        r#"{"name":"world"}"#,
    )
    .unwrap();
    let terraform = |args: &[&str]| {
        let status = Command::new(real_terraform())
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("HOME", dir.path())
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    };
    let start = Instant::now();
    terraform(&["init", "-input=false"]);
    terraform(&["plan", "-input=false", "-out=plan.tfplan"]);
    start.elapsed()
}

fn tarball(commit: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    builder
        .append_dir_all(
            format!("octo-org-infra-{}", &commit[..7]),
            fixture_path("terraform/outputs"),
        )
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

async fn gantry_rounds(rounds: usize, isolation: &str) -> Vec<Duration> {
    let tools = tempfile::tempdir().unwrap();
    let version = tools.path().join("1.0.3");
    std::fs::create_dir_all(&version).unwrap();
    std::os::unix::fs::symlink(real_terraform(), version.join("terraform")).unwrap();
    let cache = tools.path().display().to_string();
    let gantry = TestGantry::start_configured(Some(WORKSPACE), |env| {
        env.insert("GANTRY_RUNNER_ENABLED".into(), "true".into());
        env.insert("GANTRY_TERRAFORM_TOOL_CACHE".into(), cache);
        env.insert("GANTRY_RUNNER_ISOLATION".into(), isolation.into());
    })
    .await;
    let workspace = gantry.store.workspace_named("prod").await.unwrap().unwrap();
    let mut samples = Vec::new();
    for round in 0..rounds {
        let commit = format!("{:040x}", round + 1);
        gantry
            .github
            .serve_tarball("octo-org/infra", &commit, tarball(&commit));
        let body = push_payload("octo-org/infra", "main", &commit, &["main.tf"], |_| {});
        let start = Instant::now();
        assert_eq!(
            gantry
                .send("push", &format!("bench-{round}"), &body)
                .await
                .status(),
            202
        );
        let run = wait_until(Duration::from_secs(60), || async {
            let runs = gantry.store.workspace_runs(workspace.id).await.ok()?;
            let run = runs.into_iter().find(|r| r.commit_sha == commit)?;
            (run.state == "planned").then_some(run.id)
        })
        .await
        .expect("the run was planned");
        samples.push(start.elapsed());
        // Hand the workspace to the next round's run.
        gantry
            .store
            .move_run(&gantry::store::Move::new(
                run,
                gantry::core::run::RunState::Planned,
                gantry::core::run::RunState::Discarded,
                gantry::store::Cause::Runner,
            ))
            .await
            .unwrap();
    }
    samples
}

/// How a phase is started, for the per-phase figures.
#[derive(Clone, Copy)]
enum Start {
    Bare,
    Supervised,
    Sandboxed,
}

fn terraform_in(dir: &Path, binary: PathBuf, start: Start) -> Terraform {
    let isolation = match start {
        Start::Sandboxed => Isolation::Sandboxed(
            Sandbox::probe(vec![
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools"),
            ])
            .expect("bubblewrap"),
        ),
        _ => Isolation::Unsandboxed,
    };
    Terraform {
        binary,
        dir: dir.to_path_buf(),
        env: vec![("TF_VAR_name".into(), "world".into())],
        sensitive: vec![],
        phase_timeout: Duration::from_secs(120),
        phases: Phases {
            supervisor: PathBuf::from(env!("CARGO_BIN_EXE_gantry")),
            isolation,
            dir: tempfile::tempdir().unwrap().keep(),
            work_dir: dir.to_path_buf(),
            network: false,
        },
    }
}

/// One phase whose program does nothing: what starting a phase costs.
async fn empty_phase(start: Start) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let began = Instant::now();
    match start {
        Start::Bare => {
            assert!(Command::new("/bin/true").status().unwrap().success());
        }
        _ => {
            let tf = terraform_in(dir.path(), PathBuf::from("/bin/true"), start);
            let mut log: Vec<String> = Vec::new();
            tf.init(&mut log, &Stop::default()).await.unwrap();
        }
    }
    began.elapsed()
}

/// `init` + `plan` of the fixture under the supervisor, with or without the sandbox.
async fn supervised_plan(fixture: &Path, start: Start) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture.join("main.tf"), dir.path().join("main.tf")).unwrap();
    let tf = terraform_in(dir.path(), real_terraform(), start);
    let mut log: Vec<String> = Vec::new();
    let began = Instant::now();
    tf.init(&mut log, &Stop::default()).await.unwrap();
    tf.plan(
        &dir.path().join("plan.tfplan"),
        &[],
        &mut log,
        &Stop::default(),
    )
    .await
    .unwrap();
    began.elapsed()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 15 } else { 1 };
    let fixture = fixture_path("terraform/outputs");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut phase = Vec::new();
    for start in [Start::Bare, Start::Supervised, Start::Sandboxed] {
        let samples = (0..rounds * 2)
            .map(|_| runtime.block_on(empty_phase(start)))
            .collect();
        phase.push(median(samples));
    }
    let bare: Vec<Duration> = (0..rounds).map(|_| bare_round(&fixture)).collect();
    let bare = median(bare);
    let mut plans = Vec::new();
    for start in [Start::Supervised, Start::Sandboxed] {
        let samples = (0..rounds)
            .map(|_| runtime.block_on(supervised_plan(&fixture, start)))
            .collect();
        plans.push(median(samples));
    }
    let gantry = median(runtime.block_on(gantry_rounds(rounds, "sandbox")));
    let unsandboxed = median(runtime.block_on(gantry_rounds(rounds, "none")));
    let over = |a: Duration, b: Duration| a.saturating_sub(b);
    println!("run_overhead ({rounds} rounds each, medians)");
    println!(
        "  one empty phase, bare:                 {:>8.1?}",
        phase[0]
    );
    println!(
        "  one empty phase, supervised:           {:>8.1?}",
        phase[1]
    );
    println!(
        "  one empty phase, supervised+sandboxed: {:>8.1?}",
        phase[2]
    );
    println!(
        "  added per phase (sandbox + supervisor): {:>7.1?}",
        over(phase[2], phase[0])
    );
    println!("  bare terraform init + plan:            {bare:>8.1?}");
    println!(
        "  supervised init + plan:                {:>8.1?}",
        plans[0]
    );
    println!(
        "  supervised+sandboxed init + plan:      {:>8.1?}",
        plans[1]
    );
    println!("  gantry push webhook -> planned:        {gantry:>8.1?}");
    println!("  the same, isolation = \"none\":         {unsandboxed:>8.1?}");
    println!(
        "  gantry overhead per run:               {:>8.1?}",
        over(gantry, bare)
    );
}
