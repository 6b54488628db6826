//! The terraform process: `init`, `plan -out` with `-detailed-exitcode`, `show -json` of the saved
//! plan, and `apply` of that plan file (never a new plan). Each phase runs under its supervisor
//! (`supervisor`), in the run's sandbox (`sandbox`) with a clean environment (only the run's
//! variables, no user CLI config or shared plugin cache); its output reaches a sink line by line
//! with sensitive values masked; it has a timeout, and stops on cancel: SIGINT first
//! (graceful), a kill when forced.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::sandbox::{Confinement, Isolation, SANDBOX_HOME, SANDBOX_PATH, find_on_path};
use super::supervisor::{self, EndedBy, Found, Launch, PhaseFiles, PhaseStatus, Progress};

/// The file Terraform reads the run's input variables from.
pub const VARIABLES_FILE: &str = "zz_gantry.auto.tfvars.json";
/// How long Terraform may take to stop after SIGINT before it is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(120);
/// The phase whose output is the saved plan as JSON.
const SHOW: &str = "show";
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
    /// Its supervisor is gone without saying how the phase ended (killed, or the machine
    /// went down): Terraform was killed with it.
    #[error("terraform {0} was lost: its supervisor stopped before it finished")]
    Lost(&'static str),
}

/// What a plan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSummary {
    /// `terraform show -json` of the saved plan, as Terraform printed it (policies read it).
    pub json: String,
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
    /// Where and how its phases run.
    pub phases: Phases,
}

/// How a run's phases are run: under which supervisor, in which sandbox, with their files
/// where.
#[derive(Debug, Clone)]
pub struct Phases {
    /// The `gantry` binary that supervises each phase.
    pub supervisor: PathBuf,
    pub isolation: Isolation,
    /// The phases' logs, statuses and locks: outside `work_dir`, never shown to Terraform.
    pub dir: PathBuf,
    /// What the sandbox may write: the run's configuration, plan file and state.
    pub work_dir: PathBuf,
    pub network: bool,
}

impl Terraform {
    pub async fn init(&self, log: &mut dyn LogSink, stop: &Stop) -> Result<(), PhaseError> {
        // Colors are kept: the run page renders them; comments and statuses strip them.
        self.run("init", &["init", "-input=false"], log, stop)
            .await
            .map(|_| ())
    }

    /// Plans into `plan_file`; the summary comes from `show -json` of the saved plan.
    /// `options`: more arguments (`-destroy`, `-target=…`), each one argument.
    pub async fn plan(
        &self,
        plan_file: &Path,
        options: &[String],
        log: &mut dyn LogSink,
        stop: &Stop,
    ) -> Result<PlanSummary, PhaseError> {
        let out = format!("-out={}", plan_file.display());
        let mut args = vec!["plan", "-input=false", "-detailed-exitcode", &out];
        args.extend(options.iter().map(String::as_str));
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
            SHOW,
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

    /// Runs one terraform command under its supervisor; `ok_codes` are the exit codes that
    /// mean success. A phase an earlier Gantry started (its files say so) is followed from
    /// where it is rather than started again.
    async fn run_allowing(
        &self,
        phase: &'static str,
        args: &[&str],
        ok_codes: &[i32],
        log: &mut dyn LogSink,
        stop: &Stop,
    ) -> Result<i32, PhaseError> {
        let files = PhaseFiles::new(&self.phases.dir, phase);
        let mut followed = match files.find() {
            Found::NotStarted => {
                supervisor::start(self.launch(&files, args)?).map_err(PhaseError::Spawn)?
            }
            // `show` prints data, not a log: an adopting Gantry needs all of it, whatever the
            // Gantry before it had read.
            Found::Running | Found::Finished(_) if phase == SHOW => {
                supervisor::adopt_from_start(&files)
            }
            Found::Running | Found::Finished(_) => supervisor::adopt(&files),
            Found::Lost => return Err(PhaseError::Lost(phase)),
        };
        let grace = tokio::time::sleep(CANCEL_GRACE);
        tokio::pin!(grace);
        let mut asked: Option<PhaseError> = None;
        let mut interrupted = false;
        let ended = loop {
            let mut lines = Vec::new();
            let progress = tokio::select! {
                progress = followed.next(&mut lines) => Some(progress),
                _ = stop.force.cancelled(), if asked.is_none() || interrupted => {
                    followed.kill();
                    asked = Some(PhaseError::ForceCanceled(phase));
                    interrupted = false;
                    None
                }
                _ = stop.cancel.cancelled(), if asked.is_none() => {
                    followed.interrupt();
                    asked = Some(PhaseError::Canceled(phase));
                    interrupted = true;
                    // A Terraform that does not stop after SIGINT is killed after a grace.
                    grace.as_mut().reset(tokio::time::Instant::now() + CANCEL_GRACE);
                    None
                }
                _ = &mut grace, if interrupted => {
                    followed.kill();
                    interrupted = false;
                    None
                }
            };
            for line in &lines {
                log.line(&mask(line, &self.sensitive));
            }
            match progress {
                Some(Progress::Ended(status)) => break Some(status),
                Some(Progress::Lost) => break None,
                Some(Progress::Running) | None => {}
            }
        };
        let Some(status) = ended else {
            return Err(asked.unwrap_or(PhaseError::Lost(phase)));
        };
        phase_result(phase, status, asked, ok_codes)
    }

    /// How the supervisor starts this phase: in the sandbox with the run's environment only,
    /// or (isolation off) as Gantry's user in the configuration's directory.
    fn launch<'a>(
        &'a self,
        files: &'a PhaseFiles,
        args: &[&str],
    ) -> Result<Launch<'a>, PhaseError> {
        let program = resolve_program(&self.binary).map_err(PhaseError::Spawn)?;
        let mut env: Vec<(String, String)> = vec![
            ("TF_IN_AUTOMATION".into(), "1".into()),
            ("TF_INPUT".into(), "0".into()),
            ("CHECKPOINT_DISABLE".into(), "1".into()),
        ];
        let command = match &self.phases.isolation {
            Isolation::Sandboxed(sandbox) => {
                env.push(("PATH".into(), SANDBOX_PATH.into()));
                env.push(("HOME".into(), SANDBOX_HOME.into()));
                sandbox.command_line(
                    &Confinement {
                        program: &program,
                        work_dir: &self.phases.work_dir,
                        cwd: &self.dir,
                        network: self.phases.network,
                    },
                    args,
                )
            }
            Isolation::Unsandboxed => {
                let path = std::env::var("PATH").unwrap_or_default();
                env.push(("PATH".into(), path));
                env.push(("HOME".into(), self.dir.display().to_string()));
                let mut line: Vec<OsString> = vec![program.into()];
                line.extend(args.iter().map(OsString::from));
                line
            }
        };
        env.extend(self.env.iter().cloned());
        Ok(Launch {
            supervisor: &self.phases.supervisor,
            files,
            command,
            env,
            cwd: &self.dir,
            timeout: self.phase_timeout,
            sandboxed: self.phases.isolation.is_sandboxed(),
        })
    }
}

/// What a phase's end means: a cancel or kill Gantry asked for, a timeout, or Terraform's own
/// exit code.
fn phase_result(
    phase: &'static str,
    status: PhaseStatus,
    asked: Option<PhaseError>,
    ok_codes: &[i32],
) -> Result<i32, PhaseError> {
    match (status.ended_by, asked) {
        (EndedBy::TimedOut, _) => Err(PhaseError::TimedOut(phase)),
        (EndedBy::NotStarted, _) => Err(PhaseError::Spawn(std::io::Error::other(
            "the supervisor could not start terraform (see the log)",
        ))),
        (_, Some(asked)) => Err(asked),
        (EndedBy::Killed, None) => Err(PhaseError::ForceCanceled(phase)),
        (EndedBy::Exit, None) => match status.code {
            Some(code) if ok_codes.contains(&code) => Ok(code),
            code => Err(PhaseError::Failed { phase, code }),
        },
    }
}

/// The program's absolute, canonical path (a bare name is looked up on `PATH`): what the
/// sandbox shows read-only at that same place.
fn resolve_program(binary: &Path) -> std::io::Result<PathBuf> {
    let found = if binary.components().count() == 1 && !binary.is_absolute() {
        find_on_path(binary.as_os_str()).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not on PATH", binary.display()),
            )
        })?
    } else {
        binary.to_path_buf()
    };
    std::fs::canonicalize(found)
}

/// The override file that makes Terraform keep a run's state where Gantry stores it.
pub const BACKEND_OVERRIDE_FILE: &str = "zz_gantry_backend_override.tf";

/// Gantry owns its workspaces' state (as Terraform Cloud does for its runs): an override file
/// replaces whatever `backend` or `cloud` block the configuration has with the local backend,
/// whose `terraform.tfstate` Gantry fills before a run and stores after an apply. Returns
/// whether the configuration declared a backend or cloud block of its own (ignored now).
pub fn override_backend(dir: &Path) -> std::io::Result<bool> {
    let mut declared = false;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tf") && path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            declared |= declares_backend(&text);
        }
    }
    std::fs::write(
        dir.join(BACKEND_OVERRIDE_FILE),
        "# Written by Gantry: it keeps this workspace's state itself.\n\
         terraform {\n  backend \"local\" {}\n}\n",
    )?;
    Ok(declared)
}

/// Whether Terraform source text has a `backend "…"` or `cloud {` block (comments aside).
fn declares_backend(text: &str) -> bool {
    text.lines()
        .map(|line| line.split(['#']).next().unwrap_or("").trim())
        .filter(|line| !line.starts_with("//"))
        .any(|line| {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("backend") => words.next().is_some_and(|w| w.starts_with('"')),
                Some("cloud") => words.next().is_some_and(|w| w.starts_with('{')),
                Some("cloud{") => true,
                _ => false,
            }
        })
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
        json: json.to_string(),
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
    fn backend_and_cloud_blocks_are_found_but_not_in_comments() {
        assert!(declares_backend("terraform {\n  backend \"s3\" {\n  }\n}"));
        assert!(declares_backend(
            "terraform {\n  cloud {\n    organization = \"o\"\n  }\n}"
        ));
        assert!(!declares_backend(
            "# backend \"s3\" {}\n// cloud {\noutput \"x\" {}"
        ));
        assert!(!declares_backend("variable \"backend\" {}"));
    }

    #[test]
    fn a_plan_without_resources_counts_nothing() {
        let summary = parse_plan_json(r#"{"format_version":"0.2"}"#).unwrap();
        assert_eq!((summary.add, summary.change, summary.destroy), (0, 0, 0));
        assert!(parse_plan_json("not json").is_err());
    }
}
