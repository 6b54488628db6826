//! What planning through Gantry costs a Terraform CLI user: `terraform plan` (1.15.5) of a small
//! configuration (five `terraform_data` resources, one output) with a `cloud` block naming
//! Gantry — configuration packed and uploaded, a speculative run made, planned in Gantry's
//! sandbox, the log streamed back — against `terraform plan` of the same configuration run
//! locally. Both are initialized once before the rounds (`init` makes the workspace, pinned
//! to the CLI's version, which Gantry then runs).
//!
//! Prints the medians and their difference. Run: `cargo bench --bench terraform_cli` (under
//! `cargo test --all-targets` it does one round of each, as a smoke test).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::terraform_cli::{Cli, NO_WORKSPACES, Version};

fn configuration() -> String {
    let mut text = String::new();
    for n in 0..5 {
        text.push_str(&format!(
            "resource \"terraform_data\" \"r{n}\" {{\n  input = \"value {n}\"\n}}\n\n"
        ));
    }
    text.push_str("output \"first\" {\n  value = terraform_data.r0.output\n}\n");
    text
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn plan_rounds(cli: &Cli, dir: &Path, rounds: usize) -> Vec<Duration> {
    let init = cli
        .run(Version::Cloud, dir, &["init", "-input=false"], "")
        .await;
    assert_eq!(init.code, Some(0), "{}", init.output);
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let plan = cli
            .run(Version::Cloud, dir, &["plan", "-input=false"], "")
            .await;
        samples.push(start.elapsed());
        assert_eq!(plan.code, Some(0), "{}", plan.output);
        assert!(plan.output.contains("Plan: 5 to add"), "{}", plan.output);
    }
    samples
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 15 } else { 1 };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (local, remote) = runtime.block_on(async {
        let cli = Cli::start(NO_WORKSPACES).await;
        let local = cli.configuration("local", &configuration());
        let remote = cli.configuration(
            "remote",
            &format!("{}{}", cli.cloud_block("name = \"bench\""), configuration()),
        );
        (
            median(plan_rounds(&cli, &local, rounds).await),
            median(plan_rounds(&cli, &remote, rounds).await),
        )
    });
    println!("terraform_cli ({rounds} rounds each, medians)");
    println!("  terraform plan, local:               {local:>8.1?}");
    println!("  terraform plan, remote on Gantry:    {remote:>8.1?}");
    println!(
        "  overhead of the remote plan:         {:>8.1?}",
        remote.saturating_sub(local)
    );
}
