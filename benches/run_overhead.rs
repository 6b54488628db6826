//! Gantry's overhead per run over bare Terraform, on the same offline fixture
//! (`fixtures/terraform/outputs`) with the same Terraform 1.0.3:
//!
//! - bare: `terraform init && terraform plan -out=…` in a fresh copy of the fixture;
//! - Gantry: from the signed push webhook's 202 to the run being `planned`: delivery stored and
//!   dispatched, run created and scheduled, tarball fetched from a fake GitHub (through its
//!   redirect) and extracted, `init`, `plan`, `show -json` of the saved plan, summary stored.
//!
//! Prints the medians and their difference. Run: `cargo bench --bench run_overhead`
//! (under `cargo test --all-targets` it does one round of each, as a smoke test).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestGantry, fixture_path, push_payload, wait_until};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

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

async fn gantry_rounds(rounds: usize) -> Vec<Duration> {
    let tools = tempfile::tempdir().unwrap();
    let version = tools.path().join("1.0.3");
    std::fs::create_dir_all(&version).unwrap();
    std::os::unix::fs::symlink(real_terraform(), version.join("terraform")).unwrap();
    let cache = tools.path().display().to_string();
    let gantry = TestGantry::start_configured(Some(WORKSPACE), |env| {
        env.insert("GANTRY_RUNNER_ENABLED".into(), "true".into());
        env.insert("GANTRY_TERRAFORM_TOOL_CACHE".into(), cache);
    })
    .await;
    Mock::given(method("POST"))
        .and(path("/app/installations/99/access_tokens"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
            "token": "ghs_bench", "expires_at": "2099-01-01T00:00:00Z"
        })))
        .mount(&gantry.github)
        .await;
    let workspace = gantry.store.workspace_named("prod").await.unwrap().unwrap();
    let mut samples = Vec::new();
    for round in 0..rounds {
        let commit = format!("{:040x}", round + 1);
        let download = format!("/download/{commit}");
        Mock::given(method("GET"))
            .and(path(format!("/repos/octo-org/infra/tarball/{commit}")))
            .respond_with(
                ResponseTemplate::new(302)
                    .insert_header("location", format!("{}{download}", gantry.github.uri())),
            )
            .mount(&gantry.github)
            .await;
        Mock::given(method("GET"))
            .and(path(download))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(tarball(&commit)))
            .mount(&gantry.github)
            .await;
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
            .transition_run(
                run,
                gantry::core::run::RunState::Planned,
                gantry::core::run::RunState::Discarded,
                None,
            )
            .await
            .unwrap();
    }
    samples
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 15 } else { 1 };
    let fixture = fixture_path("terraform/outputs");
    let bare: Vec<Duration> = (0..rounds).map(|_| bare_round(&fixture)).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let gantry = runtime.block_on(gantry_rounds(rounds));
    let (bare, gantry) = (median(bare), median(gantry));
    println!("run_overhead ({rounds} rounds each, medians)");
    println!("  bare terraform init + plan:            {bare:>8.1?}");
    println!("  gantry push webhook -> planned:        {gantry:>8.1?}");
    println!(
        "  gantry overhead per run:               {:>8.1?}",
        gantry.saturating_sub(bare)
    );
}
