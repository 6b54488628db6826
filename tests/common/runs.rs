//! Executing runs in tests: a tool cache with the real Terraform 1.0.3 (or a stand-in script
//! around it), fixture configurations served as repository tarballs through GitHub's redirect,
//! a local releases mirror, and the JSON API to watch and steer runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gantry::executor::terraform_install::platform;
use gantry::web::api::auth::{new_token, token_hash};
use serde_json::Value;
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{TestGantry, fixture, fixture_path, push_payload, wait_until};

pub const REPO: &str = "octo-org/infra";

/// One workspace at the repository's root, Terraform 1.0.3 from the tool cache.
pub const ROOT_WORKSPACE: &str = r#"
[[workspaces]]
name = "prod"
repo = "octo-org/infra"
terraform_version = "1.0.3"
[workspaces.vars]
name = "world"
"#;

/// Three workspaces in one repository (`fixtures/terraform/monorepo`): prod, staging, network.
pub const MONOREPO: &str = r#"
[[workspaces]]
name = "prod"
repo = "octo-org/infra"
working_directory = "prod"
terraform_version = "1.0.3"
[workspaces.vars]
name = "prod"

[[workspaces]]
name = "staging"
repo = "octo-org/infra"
working_directory = "staging"
terraform_version = "1.0.3"
[workspaces.vars]
name = "staging"

[[workspaces]]
name = "network"
repo = "octo-org/infra"
working_directory = "network"
terraform_version = "1.0.3"
[workspaces.vars]
name = "network"
"#;

/// A repository tarball with `count` workspace directories `ws-N/` of the offline outputs
/// fixture.
pub fn monorepo_tarball(count: usize) -> Vec<u8> {
    let main_tf = fixture("terraform/outputs/main.tf");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for i in 0..count {
        let mut header = tar::Header::new_gnu();
        header.set_size(main_tf.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(
                &mut header,
                format!("octo-org-infra-0000001/ws-{i}/main.tf"),
                &main_tf[..],
            )
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

pub fn sha(n: u32) -> String {
    format!("{n:040x}")
}

pub fn real_terraform() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/terraform");
    assert!(
        path.exists(),
        "{} missing: run scripts/install-terraform",
        path.display()
    );
    path
}

/// A tool cache holding "Terraform 1.0.3": the real binary, or a stand-in script that runs it.
pub fn tool_cache_with(dir: &Path, terraform: Option<&str>) -> PathBuf {
    let cache = dir.join("tool-cache");
    let version = cache.join("1.0.3");
    std::fs::create_dir_all(&version).unwrap();
    match terraform {
        None => std::os::unix::fs::symlink(real_terraform(), version.join("terraform")).unwrap(),
        Some(script) => {
            use std::os::unix::fs::PermissionsExt;
            let file = version.join("terraform");
            std::fs::write(&file, script).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    cache
}

/// What the tests' sandboxed Terraform may read besides the system: the Terraform from PyPI
/// (stand-in scripts call it by path) and the markers that hold a plan (see [`marker`]).
pub fn sandbox_read_only() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::join_paths([root.join(".tools"), markers_dir()])
        .unwrap()
        .into_string()
        .unwrap()
}

fn markers_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-markers");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A marker file for [`slow_plan_terraform`], where a sandboxed Terraform can see it (not in
/// `/tmp`: the sandbox has a private one).
pub fn marker() -> tempfile::NamedTempFile {
    tempfile::NamedTempFile::new_in(markers_dir()).unwrap()
}

/// A Terraform whose plan waits while `marker` exists (a plan that takes long, to cancel or to
/// restart under); then it is the real one. SIGINT ends the wait the way it ends a real plan.
pub fn slow_plan_terraform(marker: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         trap 'echo interrupted; exit 130' INT TERM\n\
         if [ \"$1\" = plan ] && [ -e '{marker}' ]; then\n\
           echo 'slow plan: waiting'\n\
           while [ -e '{marker}' ]; do sleep 0.1; done\n\
         fi\n\
         exec '{real}' \"$@\"\n",
        marker = marker.display(),
        real = real_terraform().display()
    )
}

pub struct Harness {
    pub gantry: TestGantry,
    pub token: String,
}

impl Harness {
    /// Gantry with the runner off (runs stay where the test puts them) and no API token.
    pub async fn without_runner(toml: &str) -> Self {
        let gantry = TestGantry::start_with_config(toml).await;
        Self {
            gantry,
            token: String::new(),
        }
    }

    /// Gantry with the runner on, the workspaces of `toml`, and an admin API token.
    /// `terraform`: None for the real binary in the tool cache, or a stand-in script.
    pub async fn start(toml: &str, terraform: Option<&str>) -> Self {
        let tools = tempfile::tempdir().unwrap().keep();
        let cache = tool_cache_with(&tools, terraform);
        Self::start_with(toml, move |env| {
            env.insert(
                "GANTRY_TERRAFORM_TOOL_CACHE".into(),
                cache.display().to_string(),
            );
        })
        .await
    }

    pub async fn start_with(
        toml: &str,
        adjust: impl FnOnce(&mut std::collections::HashMap<String, String>),
    ) -> Self {
        let gantry = TestGantry::start_configured(Some(toml), |env| {
            env.insert("GANTRY_RUNNER_ENABLED".into(), "true".into());
            adjust(env);
        })
        .await;
        let token = new_token();
        gantry
            .store
            .create_api_token("tester", "admin", &token_hash(&token))
            .await
            .unwrap();
        Self { gantry, token }
    }

    /// The fake GitHub serves `fixture` as the repository's tarball at `commit`: the API
    /// redirects to a URL on the download host, as GitHub does.
    pub async fn serve_tarball(&self, commit: &str, fixture: &str) {
        self.serve_tarball_bytes(commit, tarball_of(fixture, commit))
            .await;
    }

    pub async fn serve_tarball_bytes(&self, commit: &str, bytes: Vec<u8>) {
        self.gantry.github.serve_tarball(REPO, commit, bytes);
    }

    /// Pushes `commit` to main touching main.tf; returns the run it created.
    pub async fn push(&self, commit: &str) -> i64 {
        let delivery = format!("push-{commit}");
        let body = push_payload(REPO, "main", commit, &["main.tf"], |_| {});
        assert_eq!(
            self.gantry.send("push", &delivery, &body).await.status(),
            202
        );
        let done = self.gantry.wait_for_outcome(&delivery).await;
        assert_eq!(done.status, "processed", "{done:?}");
        let runs = self.api_get("/api/v1/workspaces/prod/runs").await;
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["commit_sha"] == commit)
            .expect("the push made a run")["id"]
            .as_i64()
            .unwrap()
    }

    pub async fn api_get(&self, route: &str) -> Value {
        let response = self
            .gantry
            .http
            .get(format!("{}{route}", self.gantry.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET {route}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub async fn api_post(&self, route: &str, body: Value) -> (u16, Value) {
        let response = self
            .gantry
            .http
            .post(format!("{}{route}", self.gantry.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn action(&self, run: i64, action: &str) -> (u16, Value) {
        self.api_post(&format!("/api/v1/runs/{run}/actions/{action}"), Value::Null)
            .await
    }

    pub async fn run(&self, run: i64) -> Value {
        self.api_get(&format!("/api/v1/runs/{run}")).await
    }

    pub async fn log(&self, run: i64, phase: &str) -> String {
        self.gantry
            .http
            .get(format!(
                "{}/api/v1/runs/{run}/logs/{phase}",
                self.gantry.url
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until the run is in `state`; fails early if it ends elsewhere.
    pub async fn wait_for(&self, run: i64, state: &str) -> Value {
        let reached = wait_until(Duration::from_secs(90), || async {
            let current = self.run(run).await;
            let now = current["state"].as_str().unwrap().to_string();
            let final_states = [
                "applied",
                "planned_and_finished",
                "errored",
                "discarded",
                "canceled",
                "force_canceled",
            ];
            if now == state || final_states.contains(&now.as_str()) {
                Some(current)
            } else {
                None
            }
        })
        .await;
        let Some(current) = reached else {
            panic!(
                "run {run} never reached {state}: {:#}\nplan log:\n{}\nphases:\n{}",
                self.run(run).await,
                self.log(run, "plan").await,
                self.phase_files(run)
            );
        };
        assert_eq!(
            current["state"],
            state,
            "run {run}: {current:#}\nplan log:\n{}",
            self.log(run, "plan").await
        );
        current
    }

    /// What a run's phase files say (for a failure message): each file's size, the pid and
    /// status files' text, and whether that pid is alive.
    pub fn phase_files(&self, run: i64) -> String {
        let dir = self
            .gantry
            .data_dir
            .path()
            .join(format!("runs/{run}/phases"));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return format!("{} is gone", dir.display());
        };
        let mut lines = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            let name = entry.file_name().to_string_lossy().into_owned();
            let mut line = format!("{name} ({size} bytes)");
            if name.ends_with(".pid") || name.ends_with(".status") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                line.push_str(&format!(": {}", text.trim()));
                if name.ends_with(".pid") {
                    let alive = Path::new(&format!("/proc/{}", text.trim())).exists();
                    line.push_str(if alive { " (alive)" } else { " (gone)" });
                }
            }
            lines.push(line);
        }
        lines.sort();
        lines.join("\n")
    }

    pub fn states(run: &Value) -> Vec<String> {
        run["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["state"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Scenario verbs: what happens on GitHub, as GitHub tells Gantry (a signed webhook, waited
/// for until Gantry has processed it) and as the fake GitHub then holds it.
impl Harness {
    /// Sends `event` with a fresh delivery id and waits until Gantry processed it.
    pub async fn deliver(&self, event: &str, body: &[u8]) {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let delivery = format!("{event}-{n}");
        assert_eq!(self.gantry.send(event, &delivery, body).await.status(), 202);
        self.gantry.wait_for_outcome(&delivery).await;
    }

    /// Someone opens pull request `number` from `head` (in the repository itself), changing
    /// `files`.
    pub async fn open_pull_request(&self, number: u64, head: &str, files: &[&str]) {
        let pull = super::github::PullRequest::open(head, files);
        self.gantry.github.open_pull_request(REPO, number, pull);
        let body = pull_request_payload(number, "opened", head, REPO);
        self.deliver("pull_request", &body).await;
    }

    /// Someone pushes `head` to pull request `number`, which now changes `files`.
    pub async fn synchronize_pull_request(&self, number: u64, head: &str, files: &[&str]) {
        self.gantry
            .github
            .push_to_pull_request(REPO, number, head, files);
        let body = pull_request_payload(number, "synchronize", head, REPO);
        self.deliver("pull_request", &body).await;
    }

    /// Someone closes pull request `number` (at `head`), merged or not.
    pub async fn close_pull_request(&self, number: u64, head: &str, merged: bool) {
        self.gantry.github.close_pull_request(REPO, number, merged);
        let mut body: Value =
            serde_json::from_slice(&pull_request_payload(number, "closed", head, REPO)).unwrap();
        body["pull_request"]["state"] = "closed".into();
        body["pull_request"]["merged"] = merged.into();
        self.deliver("pull_request", &serde_json::to_vec(&body).unwrap())
            .await;
    }

    /// `user` comments `body` on pull request `number`; returns the comment's id.
    pub async fn comment(&self, number: u64, user: &str, body: &str) -> i64 {
        let id = self.gantry.github.comment_by(REPO, number, user, body);
        let payload = comment_payload(number, id as u64, user, body);
        self.deliver("issue_comment", &payload).await;
        id
    }

    /// Someone presses "Re-run" on the check run of run `run` at `head`.
    pub async fn rerun_check(&self, run: i64, head: &str) {
        let mut rerun: Value =
            serde_json::from_slice(&fixture("webhooks/check_run.rerequested.json")).unwrap();
        rerun["check_run"]["external_id"] = run.to_string().into();
        rerun["check_run"]["head_sha"] = head.into();
        rerun["repository"]["full_name"] = REPO.into();
        rerun["installation"] = serde_json::json!({ "id": 99, "node_id": "x" });
        self.deliver("check_run", &serde_json::to_vec(&rerun).unwrap())
            .await;
    }

    /// Waits until Gantry has sent GitHub everything it had to say.
    pub async fn outbox_drained(&self) {
        wait_until(Duration::from_secs(30), || async {
            (self.gantry.store.outbox_pending().await.unwrap() == 0).then_some(())
        })
        .await
        .expect("the outbox drained");
    }
}

/// A repository tarball at `commit` holding `files` (path, text), wrapped in `owner-repo-sha/`
/// as GitHub does.
pub fn tarball_of_files(commit: &str, files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(
                &mut header,
                format!("octo-org-infra-{}/{path}", &commit[..7]),
                text.as_bytes(),
            )
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// A gzipped tar of a fixture configuration, wrapped in `owner-repo-sha/` as GitHub does.
pub fn tarball_of(fixture: &str, commit: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    builder
        .append_dir_all(
            format!("octo-org-infra-{}", &commit[..7]),
            fixture_path(&format!("terraform/{fixture}")),
        )
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// A local releases mirror serving the real Terraform 1.0.3 with its SHA256SUMS.
pub async fn terraform_mirror() -> MockServer {
    use std::io::Write;
    let binary = std::fs::read(real_terraform()).unwrap();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o755);
    zip.start_file("terraform", options).unwrap();
    zip.write_all(&binary).unwrap();
    let archive = zip.finish().unwrap().into_inner();
    let zip_name = format!("terraform_1.0.3_{}.zip", platform());
    let sums = format!("{}  {zip_name}\n", hex::encode(Sha256::digest(&archive)));
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/terraform/1.0.3/terraform_1.0.3_SHA256SUMS"))
        .respond_with(ResponseTemplate::new(200).set_body_string(sums))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/terraform/1.0.3/{zip_name}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(archive))
        .expect(1)
        .mount(&server)
        .await;
    server
}

/// GitHub's example pull_request payload, moved to our repository, pull request `number`,
/// `action` and `head`; `head_repo` is where the head lives (a fork's name for a fork).
pub fn pull_request_payload(number: u64, action: &str, head: &str, head_repo: &str) -> Vec<u8> {
    let mut p: Value =
        serde_json::from_slice(&fixture("webhooks/pull_request.opened.json")).unwrap();
    p["action"] = action.into();
    p["number"] = number.into();
    p["pull_request"]["number"] = number.into();
    p["pull_request"]["head"]["sha"] = head.into();
    p["pull_request"]["head"]["repo"]["full_name"] = head_repo.into();
    p["pull_request"]["base"]["ref"] = "main".into();
    p["pull_request"]["base"]["repo"]["full_name"] = REPO.into();
    p["repository"]["full_name"] = REPO.into();
    p["repository"]["default_branch"] = "main".into();
    p["installation"] = serde_json::json!({ "id": 99, "node_id": "x" });
    serde_json::to_vec(&p).unwrap()
}

/// GitHub's example issue_comment payload, as comment `id` by `user` on pull request `number`.
pub fn comment_payload(number: u64, id: u64, user: &str, body: &str) -> Vec<u8> {
    let mut p: Value =
        serde_json::from_slice(&fixture("webhooks/issue_comment.created.json")).unwrap();
    p["issue"]["number"] = number.into();
    p["issue"]["pull_request"] = serde_json::json!({
        "url": format!("https://api.github.com/repos/{REPO}/pulls/{number}")
    });
    p["comment"]["id"] = id.into();
    p["comment"]["body"] = body.into();
    p["comment"]["user"]["login"] = user.into();
    p["sender"]["login"] = user.into();
    p["repository"]["full_name"] = REPO.into();
    p["repository"]["default_branch"] = "main".into();
    p["installation"] = serde_json::json!({ "id": 99, "node_id": "x" });
    serde_json::to_vec(&p).unwrap()
}

/// A gzipped tar of a fixture configuration with its files at the root, as the API takes an
/// uploaded configuration.
pub fn upload_of(fixture: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    builder
        .append_dir_all(".", fixture_path(&format!("terraform/{fixture}")))
        .unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// One API answer: status, headers and JSON body (Null when there is none).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Harness {
    /// Any API request with any token (`""` for none); a JSON body when `body` is not Null.
    pub async fn call(&self, method: &str, route: &str, token: &str, body: Value) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .gantry
            .http
            .request(method, format!("{}{route}", self.gantry.url));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        // A live event stream runs until its phase ends: its body is not waited for.
        let streaming = headers
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
        let text = if streaming {
            String::new()
        } else {
            response.text().await.unwrap()
        };
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Uploads `archive` to `workspace`; returns the configuration version's id.
    pub async fn upload(&self, workspace: &str, archive: Vec<u8>) -> i64 {
        let response = self
            .gantry
            .http
            .post(format!(
                "{}/api/v1/workspaces/{workspace}/configuration-versions",
                self.gantry.url
            ))
            .bearer_auth(&self.token)
            .header("content-type", "application/gzip")
            .body(archive)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["id"].as_i64().unwrap()
    }

    /// A run of an uploaded configuration; returns its id.
    pub async fn run_upload(&self, workspace: &str, version: i64, speculative: bool) -> i64 {
        let answer = self
            .call(
                "POST",
                &format!("/api/v1/workspaces/{workspace}/runs"),
                &self.token,
                serde_json::json!({ "configuration_version": version, "speculative": speculative }),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.body["id"].as_i64().unwrap()
    }

    /// A token of `role` named after it.
    pub async fn token_for(&self, role: &str) -> String {
        let token = new_token();
        self.gantry
            .store
            .create_api_token(
                &format!("{role}-{}", &token[7..13]),
                role,
                &token_hash(&token),
            )
            .await
            .unwrap();
        token
    }
}
