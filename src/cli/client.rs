//! The CLI's side of the JSON API: `runs watch`, `workspaces list`, `lock`, `unlock`. Talks to
//! a running Gantry with a token (flags or GANTRY_URL / GANTRY_TOKEN); never opens the database.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::Value;

/// Exit codes of `runs watch`: how the run ended.
pub const EXIT_ERRORED: u8 = 1;
pub const EXIT_CANCELED: u8 = 3;
/// The API could not be reached or refused the request.
pub const EXIT_API: u8 = 4;

pub struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach Gantry at {url}: {error}")]
    Unreachable { url: String, error: String },
    #[error("Gantry answered {status}: {message}")]
    Refused { status: u16, message: String },
    /// Something on this side: the directory to pack, say.
    #[error("{0}")]
    Local(String),
    /// A success whose body is not what the API answers (a proxy's page, say).
    #[error("Gantry's answer was not understood: {0}")]
    Unexpected(String),
}

impl Client {
    pub fn new(url: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .user_agent(crate::USER_AGENT)
                .build()
                .unwrap_or_default(),
            url: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request.bearer_auth(&self.token).send().await.map_err(|e| {
            ClientError::Unreachable {
                url: self.url.clone(),
                error: e.without_url().to_string(),
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Err(ClientError::Refused {
            status,
            message: body["error"].as_str().unwrap_or("no message").to_string(),
        })
    }

    async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        let response = self
            .send(self.http.get(format!("{}{path}", self.url)))
            .await?;
        response.json().await.map_err(|e| ClientError::Unreachable {
            url: self.url.clone(),
            error: e.to_string(),
        })
    }

    async fn post_json(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        let response = self
            .send(self.http.post(format!("{}{path}", self.url)).json(&body))
            .await?;
        Ok(response.json().await.unwrap_or(Value::Null))
    }

    pub async fn workspaces(&self) -> Result<(), ClientError> {
        let list = self.get_json("/api/v1/workspaces").await?;
        println!("{:<24} {:<32} {:<12} LOCK", "NAME", "REPOSITORY", "BRANCH");
        for w in list.as_array().into_iter().flatten() {
            let lock = match w["locked_by"].as_str() {
                Some(by) => format!(
                    "locked by {by}: {}",
                    w["lock_reason"].as_str().unwrap_or("")
                ),
                None => "-".into(),
            };
            println!(
                "{:<24} {:<32} {:<12} {lock}",
                w["name"].as_str().unwrap_or(""),
                w["repo"].as_str().unwrap_or(""),
                w["branch"].as_str().unwrap_or("(default)"),
            );
        }
        Ok(())
    }

    pub async fn lock(&self, workspace: &str, reason: &str) -> Result<(), ClientError> {
        self.post_json(
            &format!("/api/v1/workspaces/{workspace}/actions/lock"),
            serde_json::json!({ "reason": reason }),
        )
        .await?;
        println!("{workspace} locked: {reason}");
        Ok(())
    }

    pub async fn unlock(&self, workspace: &str) -> Result<(), ClientError> {
        self.post_json(
            &format!("/api/v1/workspaces/{workspace}/actions/unlock"),
            Value::Null,
        )
        .await?;
        println!("{workspace} unlocked");
        Ok(())
    }

    /// `gantry runs create`: starts a run in `workspace` — of its branch's head on GitHub, or
    /// of the configuration in `dir`, packed and uploaded — and streams it (the exit code says
    /// how it ended).
    pub async fn create_run(
        &self,
        workspace: &str,
        dir: Option<&std::path::Path>,
        speculative: bool,
        options: &super::RunOptionArgs,
    ) -> Result<ExitCode, ClientError> {
        let version = match dir {
            Some(dir) => Some(self.upload(workspace, dir).await?),
            None => None,
        };
        let run = self
            .post_json(
                &format!("/api/v1/workspaces/{workspace}/runs"),
                serde_json::json!({
                    "configuration_version": version,
                    "speculative": speculative,
                    "is_destroy": options.destroy,
                    "refresh_only": options.refresh_only,
                    "target_addrs": options.targets,
                    "replace_addrs": options.replaces,
                    "message": options.message,
                }),
            )
            .await?;
        let run_id = run["id"]
            .as_i64()
            .ok_or_else(|| ClientError::Unexpected("the new run's answer named no run".into()))?;
        eprintln!("== run {run_id} created: {}/runs/{run_id}", self.url);
        self.watch(run_id).await
    }

    /// Packs the configuration in `dir` for `workspace` and uploads it; returns the
    /// configuration version.
    async fn upload(&self, workspace: &str, dir: &std::path::Path) -> Result<i64, ClientError> {
        let settings = self
            .get_json(&format!("/api/v1/workspaces/{workspace}"))
            .await?;
        let working_directory = settings["working_directory"].as_str().unwrap_or("");
        let packed = super::pack::upload_root(dir, working_directory)
            .and_then(|root| {
                let packed = super::pack::pack(&root)?;
                eprintln!(
                    "== packed {} files from {} ({} bytes)",
                    packed.files,
                    root.display(),
                    packed.archive.len()
                );
                Ok(packed)
            })
            .map_err(|e| ClientError::Local(format!("{e:#}")))?;
        let upload = self
            .send(
                self.http
                    .post(format!(
                        "{}/api/v1/workspaces/{workspace}/configuration-versions",
                        self.url
                    ))
                    .header(reqwest::header::CONTENT_TYPE, "application/gzip")
                    .body(packed.archive),
            )
            .await?;
        let version = upload
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["id"].as_i64())
            .ok_or_else(|| {
                ClientError::Unexpected("the upload named no configuration version".into())
            })?;
        Ok(version)
    }

    /// Streams a run's logs and state changes until it ends; the exit code says how it ended.
    pub async fn watch(&self, run_id: i64) -> Result<ExitCode, ClientError> {
        let mut last_state = String::new();
        let mut streamed = (false, false);
        loop {
            let run = self.get_json(&format!("/api/v1/runs/{run_id}")).await?;
            let state = run["state"].as_str().unwrap_or("unknown").to_string();
            if state != last_state {
                eprintln!(
                    "== run {run_id} ({}): {state}",
                    run["workspace"].as_str().unwrap_or("")
                );
                if state == "planned" {
                    eprintln!(
                        "   waiting for confirmation (the run page, or POST …/actions/confirm)"
                    );
                }
                last_state = state.clone();
            }
            match state.as_str() {
                "applied" | "planned_and_finished" => {
                    self.stream_rest(run_id, &mut streamed).await?;
                    return Ok(ExitCode::SUCCESS);
                }
                "errored" => {
                    self.stream_rest(run_id, &mut streamed).await?;
                    eprintln!(
                        "== run {run_id} errored: {}",
                        run["error"].as_str().unwrap_or("")
                    );
                    return Ok(ExitCode::from(EXIT_ERRORED));
                }
                "canceled" | "force_canceled" | "discarded" => {
                    return Ok(ExitCode::from(EXIT_CANCELED));
                }
                "pending" => tokio::time::sleep(Duration::from_millis(500)).await,
                "fetching" | "planning" if !streamed.0 => {
                    eprintln!("== plan");
                    let ended_in = self.stream(run_id, "plan").await?;
                    streamed.0 = true;
                    if ended_in.as_deref() == Some("planned") {
                        eprintln!("== run {run_id}: planned");
                        eprintln!(
                            "   waiting for confirmation (the run page, or POST …/actions/confirm)"
                        );
                        last_state = "planned".into();
                    }
                }
                "confirmed" | "applying" if !streamed.1 => {
                    self.stream_rest(run_id, &mut streamed).await?;
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// The phases not streamed yet, in order.
    async fn stream_rest(
        &self,
        run_id: i64,
        streamed: &mut (bool, bool),
    ) -> Result<(), ClientError> {
        if !streamed.0 {
            eprintln!("== plan");
            self.stream(run_id, "plan").await?;
            streamed.0 = true;
        }
        if !streamed.1 {
            let run = self.get_json(&format!("/api/v1/runs/{run_id}")).await?;
            let reached_apply = run["events"]
                .as_array()
                .is_some_and(|events| events.iter().any(|e| e["state"] == "applying"));
            if reached_apply {
                eprintln!("== apply");
                self.stream(run_id, "apply").await?;
                streamed.1 = true;
            }
        }
        Ok(())
    }

    /// Prints one phase's log as it comes, until the phase ends; returns the run's state then.
    async fn stream(&self, run_id: i64, phase: &str) -> Result<Option<String>, ClientError> {
        let response = self
            .send(self.http.get(format!(
                "{}/api/v1/runs/{run_id}/logs/{phase}/stream",
                self.url
            )))
            .await?;
        let mut events = response.bytes_stream().eventsource();
        let mut out = std::io::stdout().lock();
        while let Some(event) = events.next().await {
            let Ok(event) = event else { break };
            if event.event == "end" {
                let end: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                return Ok(end["state"].as_str().map(str::to_string));
            }
            if let Ok(chunk) = serde_json::from_str::<Value>(&event.data) {
                let _ = out.write_all(chunk["text"].as_str().unwrap_or("").as_bytes());
                let _ = out.flush();
            }
        }
        Ok(None)
    }
}
