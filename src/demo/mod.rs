//! `gantry demo`: Gantry on the embedded default (SQLite in a temporary data dir) with a local
//! stand-in for GitHub and a sample repository of two workspaces. It sends a push and a pull
//! request, and prints where to watch and confirm the runs. Terraform is the real one, found on
//! PATH or in `.tools/bin` (scripts/install-terraform puts it there).

mod fake_github;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::store::Store;
use crate::web::api::auth::{new_token, token_hash};
use crate::webhook::signature::sign;
use fake_github::FakeGitHub;

/// A key that signs the demo app's JWTs for the stand-in GitHub, which checks nothing. It is
/// the test suite's key and must never be trusted by a real GitHub App.
const DEMO_ONLY_KEY: &str = include_str!("../../fixtures/keys/test-app.pem");
const PUSH_EXAMPLE: &[u8] = include_bytes!("../../fixtures/webhooks/push.5.json");
const PR_EXAMPLE: &[u8] = include_bytes!("../../fixtures/webhooks/pull_request.opened.json");
const APP_TF: &str = include_str!("sample/app/main.tf");
const NETWORK_TF: &str = include_str!("sample/network/main.tf");
/// The sample repository.
pub const REPO: &str = "demo-org/infrastructure";
/// The App and its installation, as the sample's webhooks name them.
pub const APP_ID: u64 = 1;
pub const INSTALLATION: u64 = 1;
/// The commit pushed to main.
pub const MAIN_SHA: &str = "c0ffee0000000000000000000000000000000001";
/// Pull request #1: its head and the files it changes.
pub const PR_NUMBER: u64 = 1;
pub const PR_SHA: &str = "beef000000000000000000000000000000000002";
pub const PR_FILES: &[&str] = &["network/main.tf"];
/// Set to a GitHub API URL, the demo talks to that GitHub instead of its own stand-in (which
/// must then serve [`sample_commits`] and the pull request): how a test holds the demo's flow
/// to GitHub's contract.
pub const GITHUB_URL_ENV: &str = "GANTRY_DEMO_GITHUB_URL";

/// Finds the Terraform to run: on PATH, else where scripts/install-terraform puts it.
fn find_terraform() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("terraform"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let local = PathBuf::from(".tools/bin/terraform");
        local
            .is_file()
            .then(|| std::path::absolute(&local).unwrap_or(local))
    })
}

/// The version a Terraform binary reports (`terraform version -json`).
async fn terraform_version(binary: &Path) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(binary)
        .args(["version", "-json"])
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .await
        .with_context(|| format!("running {}", binary.display()))?;
    let version: Value = serde_json::from_slice(&output.stdout).context("terraform version")?;
    version["terraform_version"]
        .as_str()
        .map(str::to_string)
        .context("terraform did not say its version")
}

/// The sample repository at a commit, as GitHub's tarball (wrapped in one directory).
fn tarball(network_tf: &str) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, text) in [("app/main.tf", APP_TF), ("network/main.tf", network_tf)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(
            &mut header,
            format!("demo-org-infrastructure-dea0000/{path}"),
            text.as_bytes(),
        )?;
    }
    Ok(builder.into_inner()?.finish()?)
}

/// The host name the demo's Terraform CLI gives Gantry (its CLI configuration maps it).
const CLI_HOST: &str = "gantry.demo";

/// A checkout of demo-app set up for the Terraform CLI, and what to show about it.
struct TerminalCheckout {
    /// The `cloud` block (Terraform ≥ 1.1) or `remote` backend that names Gantry.
    block: String,
    /// The one command that plans it.
    command: String,
}

/// Writes a copy of the sample repository whose demo-app names Gantry, and a CLI
/// configuration that maps the demo's host to Gantry's plain-HTTP address (a `host` block:
/// no service discovery, which needs HTTPS) and holds the demo's token.
fn terminal_checkout(
    data: &Path,
    url: &str,
    token: &str,
    version: &str,
) -> anyhow::Result<TerminalCheckout> {
    let cli = data.join("cli");
    let app = cli.join("infrastructure").join("app");
    std::fs::create_dir_all(&app)?;
    let has_cloud_block = {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (1, 1)
    };
    let workspace = "demo-app";
    let block = if has_cloud_block {
        format!(
            "terraform {{\n  cloud {{\n    hostname     = \"{CLI_HOST}\"\n    organization = \
             \"gantry\"\n    workspaces {{ name = \"{workspace}\" }}\n  }}\n}}\n"
        )
    } else {
        format!(
            "terraform {{\n  backend \"remote\" {{\n    hostname     = \"{CLI_HOST}\"\n    \
             organization = \"gantry\"\n    workspaces {{ name = \"{workspace}\" }}\n  }}\n}}\n"
        )
    };
    std::fs::write(app.join("gantry.tf"), &block)?;
    std::fs::write(app.join("main.tf"), APP_TF)?;
    let rc = cli.join("terraform.rc");
    std::fs::write(
        &rc,
        format!(
            "host \"{CLI_HOST}\" {{\n  services = {{\n    \"tfe.v2\"   = \"{url}api/v2/\"\n    \
             \"tfe.v2.1\" = \"{url}api/v2/\"\n  }}\n}}\n\ncredentials \"{CLI_HOST}\" {{\n  \
             token = \"{token}\"\n}}\n"
        ),
    )?;
    let command = format!(
        "cd {} && export TF_CLI_CONFIG_FILE={} && terraform init -input=false && terraform plan",
        app.display(),
        rc.display()
    );
    Ok(TerminalCheckout { block, command })
}

fn workspaces_toml(terraform_version: &str) -> String {
    ["app", "network"]
        .iter()
        .map(|name| {
            format!(
                "[[workspaces]]\nname = \"demo-{name}\"\nrepo = \"{REPO}\"\n\
                 working_directory = \"{name}\"\nterraform_version = \"{terraform_version}\"\n\
                 [workspaces.vars]\nenvironment = \"demo\"\n\n"
            )
        })
        .collect()
}

fn push_payload() -> anyhow::Result<Vec<u8>> {
    let mut push: Value = serde_json::from_slice(PUSH_EXAMPLE)?;
    push["ref"] = "refs/heads/main".into();
    push["before"] = "0000000000000000000000000000000000000001".into();
    push["after"] = MAIN_SHA.into();
    push["created"] = false.into();
    push["deleted"] = false.into();
    push["forced"] = false.into();
    push["repository"]["full_name"] = REPO.into();
    push["repository"]["default_branch"] = "main".into();
    push["installation"] = json!({ "id": INSTALLATION, "node_id": "demo" });
    push["commits"][0]["id"] = MAIN_SHA.into();
    push["commits"][0]["added"] = json!(["app/main.tf", "network/main.tf"]);
    push["commits"][0]["modified"] = json!([]);
    push["commits"][0]["removed"] = json!([]);
    Ok(serde_json::to_vec(&push)?)
}

fn pull_request_payload() -> anyhow::Result<Vec<u8>> {
    let mut pr: Value = serde_json::from_slice(PR_EXAMPLE)?;
    pr["number"] = PR_NUMBER.into();
    pr["pull_request"]["number"] = PR_NUMBER.into();
    pr["pull_request"]["title"] = "Widen the private network".into();
    pr["pull_request"]["head"]["sha"] = PR_SHA.into();
    pr["pull_request"]["head"]["repo"]["full_name"] = REPO.into();
    pr["pull_request"]["base"]["ref"] = "main".into();
    pr["pull_request"]["base"]["repo"]["full_name"] = REPO.into();
    pr["repository"]["full_name"] = REPO.into();
    pr["repository"]["default_branch"] = "main".into();
    pr["installation"] = json!({ "id": INSTALLATION, "node_id": "demo" });
    Ok(serde_json::to_vec(&pr)?)
}

/// The sample repository's tarball at each commit the demo sends.
pub fn sample_commits() -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
    Ok(vec![
        (MAIN_SHA, tarball(NETWORK_TF)?),
        (
            PR_SHA,
            tarball(&NETWORK_TF.replace("10.0.16.0/20", "10.0.16.0/19"))?,
        ),
    ])
}

/// The demo's stand-in GitHub on loopback, holding the sample; returns its URL.
async fn start_stand_in() -> anyhow::Result<String> {
    let fake = Arc::new(FakeGitHub::default());
    {
        let mut tarballs = fake.tarballs.lock().unwrap_or_else(|e| e.into_inner());
        for (sha, bytes) in sample_commits()? {
            tarballs.insert(sha.into(), bytes);
        }
        fake.pull_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(PR_NUMBER, PR_FILES.iter().map(|f| f.to_string()).collect());
    }
    let github_listener = TcpListener::bind("127.0.0.1:0").await?;
    let github_url = format!("http://{}", github_listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(github_listener, fake_github::router(fake)).await;
    });
    Ok(github_url)
}

/// Runs the demo until Ctrl-C.
pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let Some(terraform) = find_terraform() else {
        anyhow::bail!(
            "the demo runs the real Terraform, and none was found on PATH or in .tools/bin: \
             install it (https://developer.hashicorp.com/terraform/install), or run \
             scripts/install-terraform from Gantry's repository"
        );
    };
    let version = terraform_version(&terraform).await?;
    let data = tempfile::Builder::new().prefix("gantry-demo-").tempdir()?;
    // The tool cache holds the Terraform found, under its version.
    let cache = data.path().join("tools");
    std::fs::create_dir_all(cache.join(&version))?;
    std::os::unix::fs::symlink(&terraform, cache.join(&version).join("terraform"))?;

    let github_url = match std::env::var(GITHUB_URL_ENV) {
        Ok(url) => url,
        Err(_) => start_stand_in().await?,
    };

    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let url = format!("http://{}/", listener.local_addr()?);
    let config_path = data.path().join("gantry.toml");
    std::fs::write(&config_path, workspaces_toml(&version))?;
    let secret = hex::encode(rand::random::<[u8; 16]>());
    // The demo runs only its own sample configuration: without bubblewrap it runs it
    // unsandboxed rather than not at all, and says so.
    let isolation = match crate::executor::sandbox::Sandbox::probe(Vec::new()) {
        Ok(_) => "sandbox",
        Err(why) => {
            println!("Note: {why}; the demo runs its own sample Terraform unsandboxed.");
            "none"
        }
    };
    let env: HashMap<String, String> = [
        ("GANTRY_DATA_DIR", data.path().display().to_string()),
        ("GANTRY_PUBLIC_URL", url.clone()),
        ("GANTRY_GITHUB_API_URL", github_url.clone()),
        ("GANTRY_GITHUB_WEB_URL", github_url),
        ("GANTRY_APP_ID", APP_ID.to_string()),
        ("GANTRY_APP_PRIVATE_KEY", DEMO_ONLY_KEY.into()),
        ("GANTRY_WEBHOOK_SECRET", secret.clone()),
        ("GANTRY_TERRAFORM_TOOL_CACHE", cache.display().to_string()),
        ("GANTRY_RUNNER_ISOLATION", isolation.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = Config::load(Some(&config_path), &env)?;

    let token = new_token();
    let store = Store::open(&config.database_url).await?;
    store
        .create_api_token("demo", "admin", &token_hash(&token))
        .await?;
    store.close().await;

    let server = tokio::spawn(crate::server::serve_on(
        listener,
        config,
        crate::server::shutdown_signal(),
        None,
    ));
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("{url}readyz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (event, delivery, body) in [
        ("push", "demo-push", push_payload()?),
        ("pull_request", "demo-pull-request", pull_request_payload()?),
    ] {
        http.post(format!("{url}webhooks/github"))
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", sign(&secret, &body))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .context("sending the demo's webhooks")?;
    }
    println!(
        "Gantry demo is running (Terraform {version}, data in {}).",
        data.path().display()
    );
    println!("  UI:    {url}");
    println!("  token: {token}");
    println!(
        "Sign in with the token. A push to main is planning demo-app and demo-network (confirm"
    );
    println!(
        "them on their run pages); pull request #1 is being planned too. Ctrl-C stops the demo."
    );
    let cli = terminal_checkout(data.path(), &url, &token, &version)?;
    println!();
    println!("From a terminal, the Terraform CLI plans demo-app in Gantry's sandbox. Its checkout");
    println!("names Gantry with this block:");
    for line in cli.block.lines() {
        println!("    {line}");
    }
    println!("and this command plans it (a speculative plan, streamed back):");
    println!("  {}", cli.command);
    server.await??;
    Ok(())
}
