//! The terraform process: `init`, `plan -out` with `-detailed-exitcode`, `show -json` of the saved
//! plan, and `apply` of that plan file (never a new plan). Each phase runs in the run's own work
//! dir with a clean environment (only the run's variables, no user CLI config or shared plugin
//! cache), streams its output line by line to a sink with sensitive values masked, has a
//! timeout, and stops on cancel: SIGINT first (graceful), a kill when forced.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// The file Terraform reads the run's input variables from.
pub const VARIABLES_FILE: &str = "zz_gantry.auto.tfvars.json";
/// How long the output of a process that has exited may take to arrive.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long Terraform may take to stop after SIGINT before it is killed.
const CANCEL_GRACE: Duration = Duration::from_secs(120);
/// What a masked value is replaced by in logs.
pub const MASK: &str = "***";

/// Where a run's output goes, one line at a time (already masked).
pub trait LogSink: Send {
    fn line(&mut self, line: &str);
}

impl LogSink for Vec<String> {
    fn line(&mut self, line: &str) {
        self.push(line.to_string());
    }
}

/// How a phase can be stopped from outside.
#[derive(Clone, Default)]
pub struct Stop {
    /// Graceful: Terraform gets SIGINT and finishes what it must.
    pub cancel: CancellationToken,
    /// Forced: Terraform is killed.
    pub force: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum PhaseError {
    #[error("terraform {phase} failed (exit code {code:?})")]
    Failed {
        phase: &'static str,
        code: Option<i32>,
    },
    #[error("terraform {0} timed out")]
    TimedOut(&'static str),
    #[error("terraform {0} was canceled")]
    Canceled(&'static str),
    #[error("terraform {0} was force-canceled")]
    ForceCanceled(&'static str),
    #[error("could not run terraform: {0}")]
    Spawn(std::io::Error),
    #[error("unexpected output from terraform show: {0}")]
    BadPlanJson(String),
}

/// What a plan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSummary {
    pub has_changes: bool,
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    pub resource_changes: Vec<ResourceChange>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceChange {
    pub address: String,
    /// Terraform's action names: create, update, delete, replace (delete+create), read, no-op.
    pub actions: Vec<String>,
}

/// One run's Terraform: the binary, the directory with the configuration, and its environment.
#[derive(Debug, Clone)]
pub struct Terraform {
    pub binary: PathBuf,
    /// The configuration's working directory inside the run's work dir.
    pub dir: PathBuf,
    /// Environment variables for Terraform (the workspace's `env` variables).
    pub env: Vec<(String, String)>,
    /// Values to mask in every line of output.
    pub sensitive: Vec<String>,
    pub phase_timeout: Duration,
}

impl Terraform {
    pub async fn init(&self, log: &mut dyn LogSink, stop: &Stop) -> Result<(), PhaseError> {
        // Colors are kept: the run page renders them; comments and statuses strip them.
        self.run("init", &["init", "-input=false"], log, stop)
            .await
            .map(|_| ())
    }

    /// Plans into `plan_file`; the summary comes from `show -json` of the saved plan.
    pub async fn plan(
        &self,
        plan_file: &Path,
        log: &mut dyn LogSink,
        stop: &Stop,
    ) -> Result<PlanSummary, PhaseError> {
        let out = format!("-out={}", plan_file.display());
        let args = ["plan", "-input=false", "-detailed-exitcode", &out];
        let code = self.run_allowing("plan", &args, &[0, 2], log, stop).await?;
        let mut summary = self.show_json(plan_file, stop).await?;
        // -detailed-exitcode: 2 means changes (output-only changes included), 0 none.
        summary.has_changes = code == 2;
        Ok(summary)
    }

    /// Applies exactly the saved plan.
    pub async fn apply(
        &self,
        plan_file: &Path,
        log: &mut dyn LogSink,
        stop: &Stop,
    ) -> Result<(), PhaseError> {
        let plan = plan_file.display().to_string();
        self.run(
            "apply",
            &["apply", "-input=false", "-auto-approve", &plan],
            log,
            stop,
        )
        .await
        .map(|_| ())
    }

    async fn show_json(&self, plan_file: &Path, stop: &Stop) -> Result<PlanSummary, PhaseError> {
        let mut json = Vec::new();
        let plan = plan_file.display().to_string();
        self.run(
            "show",
            &["show", "-json", "-no-color", &plan],
            &mut json,
            stop,
        )
        .await?;
        parse_plan_json(&json.concat())
    }

    async fn run(
        &self,
        phase: &'static str,
        args: &[&str],
        log: &mut dyn LogSink,
        stop: &Stop,
    ) -> Result<i32, PhaseError> {
        self.run_allowing(phase, args, &[0], log, stop).await
    }

    /// Runs one terraform command; `ok_codes` are the exit codes that mean success.
    async fn run_allowing(
        &self,
        phase: &'static str,
        args: &[&str],
        ok_codes: &[i32],
        log: &mut dyn LogSink,
        stop: &Stop,
    ) -> Result<i32, PhaseError> {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // A process started with SIGINT ignored (`nohup … &`, a background job) passes that on
        // to its children, and a shell cannot trap a signal ignored on entry: Terraform would
        // not hear a cancel. Children start with the default disposition instead.
        // SAFETY: only sigaction, which is async-signal-safe, runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                for signal in [Signal::SIGINT, Signal::SIGTERM] {
                    nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl)
                        .map_err(std::io::Error::from)?;
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(PhaseError::Spawn)?;
        let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        forward_lines(child.stdout.take(), lines_tx.clone());
        forward_lines(child.stderr.take(), lines_tx);

        let deadline = tokio::time::sleep(self.phase_timeout);
        tokio::pin!(deadline);
        let mut ended_by: Option<PhaseError> = None;
        let mut interrupted = false;
        let status = loop {
            tokio::select! {
                Some(line) = lines.recv() => log.line(&mask(&line, &self.sensitive)),
                status = child.wait() => break status.map_err(PhaseError::Spawn)?,
                _ = stop.force.cancelled(), if ended_by.is_none() || interrupted => {
                    let _ = child.start_kill();
                    ended_by = Some(PhaseError::ForceCanceled(phase));
                    interrupted = false;
                }
                _ = stop.cancel.cancelled(), if ended_by.is_none() => {
                    interrupt(&child);
                    ended_by = Some(PhaseError::Canceled(phase));
                    interrupted = true;
                    // A Terraform that does not stop after SIGINT is killed after a grace.
                    deadline.as_mut().reset(tokio::time::Instant::now() + CANCEL_GRACE);
                }
                _ = &mut deadline, if ended_by.is_none() || interrupted => {
                    // A phase past its time is stuck: no grace.
                    let _ = child.start_kill();
                    if !interrupted {
                        ended_by = Some(PhaseError::TimedOut(phase));
                    }
                    interrupted = false;
                }
            }
        };
        // The last lines may still be on their way; a leftover child holding the pipes open
        // must not hold the phase, hence the bound.
        while let Ok(Some(line)) = tokio::time::timeout(DRAIN_GRACE, lines.recv()).await {
            log.line(&mask(&line, &self.sensitive));
        }
        if let Some(error) = ended_by {
            return Err(error);
        }
        match status.code() {
            Some(code) if ok_codes.contains(&code) => Ok(code),
            code => Err(PhaseError::Failed { phase, code }),
        }
    }
}

/// SIGINT: Terraform stops at a safe point and saves what it has.
fn interrupt(child: &tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
    }
}

fn forward_lines(
    stream: Option<impl AsyncRead + Unpin + Send + 'static>,
    to: tokio::sync::mpsc::UnboundedSender<String>,
) {
    let Some(stream) = stream else { return };
    // Ends with the stream (the process exiting); owned by the phase through the channel.
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if to.send(line).is_err() {
                break;
            }
        }
    });
}

/// Writes the run's Terraform input variables where Terraform reads them by itself.
pub fn write_variables(dir: &Path, variables: &[(String, String)]) -> std::io::Result<()> {
    let map: serde_json::Map<String, serde_json::Value> = variables
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    std::fs::write(dir.join(VARIABLES_FILE), serde_json::to_vec_pretty(&map)?)
}

/// What to mask for these sensitive values: each value, its JSON-escaped form (Terraform shows
/// strings escaped), and each line of a multi-line value (Terraform prints those line by line);
/// longest first, so that a value containing another is masked whole.
pub fn mask_needles(values: &[String]) -> Vec<String> {
    let mut needles: Vec<String> = Vec::new();
    for value in values.iter().filter(|v| !v.is_empty()) {
        needles.push(value.clone());
        if let Ok(quoted) = serde_json::to_string(value) {
            let escaped = &quoted[1..quoted.len() - 1];
            if escaped != value {
                needles.push(escaped.to_string());
            }
        }
        if value.contains('\n') {
            // Short lines ("}", "") would mask too much; the long ones carry the secret.
            needles.extend(
                value
                    .lines()
                    .map(str::trim)
                    .filter(|line| line.chars().count() >= 8)
                    .map(str::to_string),
            );
        }
    }
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    needles.dedup();
    needles
}

/// `line` with every sensitive value replaced by [`MASK`]. `sensitive` should come from
/// [`mask_needles`].
pub fn mask(line: &str, sensitive: &[String]) -> String {
    sensitive
        .iter()
        .filter(|s| !s.is_empty())
        .fold(line.to_string(), |masked, secret| {
            masked.replace(secret.as_str(), MASK)
        })
}

#[derive(Deserialize)]
struct PlanJson {
    #[serde(default)]
    resource_changes: Vec<ResourceChangeJson>,
}

#[derive(Deserialize)]
struct ResourceChangeJson {
    address: String,
    change: ChangeJson,
}

#[derive(Deserialize)]
struct ChangeJson {
    actions: Vec<String>,
}

/// Counts what the plan adds, changes and destroys (a replacement counts as one add and one
/// destroy, as Terraform's own summary does).
pub fn parse_plan_json(json: &str) -> Result<PlanSummary, PhaseError> {
    let plan: PlanJson =
        serde_json::from_str(json).map_err(|e| PhaseError::BadPlanJson(e.to_string()))?;
    let mut summary = PlanSummary {
        has_changes: false,
        add: 0,
        change: 0,
        destroy: 0,
        resource_changes: Vec::new(),
    };
    for rc in plan.resource_changes {
        let actions = rc.change.actions;
        let has = |a: &str| actions.iter().any(|x| x == a);
        if has("create") {
            summary.add += 1;
        }
        if has("delete") {
            summary.destroy += 1;
        }
        if has("update") {
            summary.change += 1;
        }
        if actions.iter().all(|a| a == "no-op" || a == "read") {
            continue;
        }
        summary.resource_changes.push(ResourceChange {
            address: rc.address,
            actions,
        });
    }
    summary.has_changes = summary.add + summary.change + summary.destroy > 0;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_replaces_every_sensitive_value() {
        let sensitive = vec!["hunter2".to_string(), String::new()];
        assert_eq!(
            mask("pw=hunter2 again hunter2", &sensitive),
            "pw=*** again ***"
        );
        assert_eq!(mask("nothing here", &sensitive), "nothing here");
    }

    #[test]
    fn escaped_multi_line_and_overlapping_secrets_are_masked() {
        let pem = "-----BEGIN KEY-----\nMIIEowIBAAKCAQEA1234\n-----END KEY-----".to_string();
        let quoted = r#"pa"ss\word"#.to_string();
        let needles = mask_needles(&["abc".into(), "abcdef".into(), pem, quoted]);
        assert_eq!(mask("value abcdef", &needles), "value ***");
        assert_eq!(mask("  MIIEowIBAAKCAQEA1234", &needles), "  ***");
        assert_eq!(mask(r#"x = "pa\"ss\\word""#, &needles), r#"x = "***""#);
    }

    #[test]
    fn the_plan_summary_counts_like_terraform() {
        let json = r#"{"resource_changes":[
            {"address":"a.x","change":{"actions":["create"]}},
            {"address":"a.y","change":{"actions":["delete","create"]}},
            {"address":"a.z","change":{"actions":["update"]}},
            {"address":"a.w","change":{"actions":["no-op"]}},
            {"address":"a.v","change":{"actions":["delete"]}}]}"#;
        let summary = parse_plan_json(json).unwrap();
        assert_eq!((summary.add, summary.change, summary.destroy), (2, 1, 2));
        let addresses: Vec<&str> = summary
            .resource_changes
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(addresses, ["a.x", "a.y", "a.z", "a.v"]);
        assert!(summary.has_changes);
    }

    #[test]
    fn a_plan_without_resources_counts_nothing() {
        let summary = parse_plan_json(r#"{"format_version":"0.2"}"#).unwrap();
        assert_eq!((summary.add, summary.change, summary.destroy), (0, 0, 0));
        assert!(parse_plan_json("not json").is_err());
    }
}
