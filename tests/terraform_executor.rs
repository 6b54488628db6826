//! The terraform process with the real Terraform 1.0.3 on offline configurations (outputs and
//! variables only): plan, apply of the saved plan, no-change plans, errors in the log, masked
//! sensitive values; and cancel, force-cancel and timeouts on a stand-in process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gantry::executor::sandbox::{Isolation, Sandbox};
use gantry::executor::terraform::{PhaseError, Phases, Stop, Terraform, write_variables};

fn real_terraform() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/terraform");
    assert!(
        path.exists(),
        "{} missing: run scripts/install-terraform",
        path.display()
    );
    path
}

/// A fresh copy of a fixture configuration.
fn workdir(fixture: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/terraform")
        .join(fixture);
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// Terraform in `dir`, sandboxed and supervised as in a run; its phases' files in a directory
/// of their own (each phase name once: a second plan needs a second `Terraform`).
fn terraform(binary: PathBuf, dir: &Path, sensitive: &[&str], timeout: Duration) -> Terraform {
    let phases = tempfile::tempdir().unwrap().keep();
    terraform_with_phases(binary, dir, sensitive, timeout, phases)
}

/// [`terraform`] with its phases' files in `phases`: a second one over the same directory is
/// what a restarted Gantry makes.
fn terraform_with_phases(
    binary: PathBuf,
    dir: &Path,
    sensitive: &[&str],
    timeout: Duration,
    phases: PathBuf,
) -> Terraform {
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools");
    Terraform {
        binary,
        dir: dir.to_path_buf(),
        env: vec![],
        sensitive: sensitive.iter().map(|s| s.to_string()).collect(),
        phase_timeout: timeout,
        phases: Phases {
            supervisor: PathBuf::from(env!("CARGO_BIN_EXE_gantry")),
            isolation: Isolation::Sandboxed(Sandbox::probe(vec![tools]).expect("bubblewrap")),
            dir: phases,
            work_dir: dir.to_path_buf(),
            network: false,
        },
    }
}

const SECRET: &str = "s3cr3t-value-42";

#[tokio::test]
async fn plan_then_apply_the_saved_plan_then_no_changes() {
    let dir = workdir("outputs");
    write_variables(
        dir.path(),
        &[
            ("name".into(), "world".into()),
            ("secret".into(), SECRET.into()),
        ],
    )
    .unwrap();
    let tf = terraform(
        real_terraform(),
        dir.path(),
        &[SECRET],
        Duration::from_secs(120),
    );
    let stop = Stop::default();
    let mut log: Vec<String> = Vec::new();
    tf.init(&mut log, &stop).await.unwrap();
    let plan_file = dir.path().join("run.tfplan");
    let summary = tf.plan(&plan_file, &[], &mut log, &stop).await.unwrap();
    assert!(summary.has_changes, "new outputs are changes: {log:#?}");
    assert_eq!((summary.add, summary.change, summary.destroy), (0, 0, 0));
    tf.apply(&plan_file, &mut log, &stop).await.unwrap();

    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("terraform.tfstate")).unwrap())
            .unwrap();
    assert_eq!(state["outputs"]["greeting"]["value"], "hello world");
    assert_eq!(state["serial"], 1);

    let text = log.join("\n");
    assert!(text.contains("Apply complete!"), "{text}");
    assert!(
        !text.contains(SECRET),
        "the sensitive value leaked into the log"
    );
    assert!(text.contains("***"), "{text}");

    let mut again = Vec::new();
    let tf = terraform(
        real_terraform(),
        dir.path(),
        &[SECRET],
        Duration::from_secs(120),
    );
    let second = tf
        .plan(&dir.path().join("second.tfplan"), &[], &mut again, &stop)
        .await
        .unwrap();
    assert!(!second.has_changes, "{again:#?}");
}

#[tokio::test]
async fn a_broken_configuration_fails_with_its_error_in_the_log() {
    let dir = workdir("broken");
    let tf = terraform(real_terraform(), dir.path(), &[], Duration::from_secs(120));
    let stop = Stop::default();
    let mut log: Vec<String> = Vec::new();
    let result = async {
        tf.init(&mut log, &stop).await?;
        tf.plan(&dir.path().join("p.tfplan"), &[], &mut log, &stop)
            .await
    }
    .await;
    assert!(
        matches!(result, Err(PhaseError::Failed { .. })),
        "{result:?}"
    );
    // Terraform's colors are kept in the log.
    let text = gantry::core::status::plain_text(&log.join("\n"));
    assert!(
        text.contains("Error: Reference to undeclared resource"),
        "{text}"
    );
}

/// A stand-in for a long Terraform phase: it reports SIGINT and exits, or sleeps on.
fn slow_process(dir: &Path, on_interrupt: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("slow-terraform");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\ntrap '{on_interrupt}' INT\necho started\nwhile true; do sleep 0.05; done\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A log sink that also hands each line to the test, so it can act on what Terraform said.
struct Watched {
    lines: Vec<String>,
    tell: tokio::sync::mpsc::UnboundedSender<String>,
}

impl gantry::executor::terraform::LogSink for Watched {
    fn line(&mut self, line: &str) {
        self.lines.push(line.to_string());
        let _ = self.tell.send(line.to_string());
    }
}

/// Runs `init` on `tf`, calling `react` with each line it prints.
async fn init_reacting(
    tf: &Terraform,
    stop: &Stop,
    mut react: impl FnMut(&str) + Send + 'static,
) -> (Result<(), PhaseError>, Vec<String>) {
    let (tell, mut heard) = tokio::sync::mpsc::unbounded_channel::<String>();
    let watcher = tokio::spawn(async move {
        while let Some(line) = heard.recv().await {
            react(&line);
        }
    });
    let mut sink = Watched {
        lines: Vec::new(),
        tell,
    };
    let result = tf.init(&mut sink, stop).await;
    drop(sink.tell);
    watcher.await.unwrap();
    (result, sink.lines)
}

#[tokio::test]
async fn cancel_interrupts_terraform_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let binary = slow_process(dir.path(), "echo interrupted, saving state; exit 130");
    let tf = terraform(binary, dir.path(), &[], Duration::from_secs(60));
    let stop = Stop::default();
    let cancel = stop.cancel.clone();
    let (result, log) = init_reacting(&tf, &stop, move |line| {
        if line == "started" {
            cancel.cancel();
        }
    })
    .await;
    assert!(
        matches!(result, Err(PhaseError::Canceled("init"))),
        "{result:?}"
    );
    assert_eq!(log, ["started", "interrupted, saving state"]);
}

#[tokio::test]
async fn force_cancel_kills_terraform_that_ignores_the_interrupt() {
    let dir = tempfile::tempdir().unwrap();
    let binary = slow_process(dir.path(), "echo ignoring");
    let tf = terraform(binary, dir.path(), &[], Duration::from_secs(60));
    let stop = Stop::default();
    let (cancel, force) = (stop.cancel.clone(), stop.force.clone());
    let (result, log) = init_reacting(&tf, &stop, move |line| match line {
        "started" => cancel.cancel(),
        "ignoring" => force.cancel(),
        _ => {}
    })
    .await;
    assert!(
        matches!(result, Err(PhaseError::ForceCanceled("init"))),
        "{result:?}"
    );
    assert_eq!(log, ["started", "ignoring"]);
}

#[tokio::test]
async fn a_phase_past_its_timeout_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let binary = slow_process(dir.path(), "echo ignoring");
    let tf = terraform(binary, dir.path(), &[], Duration::from_millis(300));
    let mut log: Vec<String> = Vec::new();
    let result = tf.init(&mut log, &Stop::default()).await;
    assert!(
        matches!(result, Err(PhaseError::TimedOut("init"))),
        "{result:?}"
    );
}

#[tokio::test]
async fn phases_that_ended_without_gantry_are_read_back_whole() {
    let dir = workdir("outputs");
    write_variables(dir.path(), &[("name".into(), "world".into())]).unwrap();
    let phases = tempfile::tempdir().unwrap();
    let timeout = Duration::from_secs(120);
    let plan_file = dir.path().join("run.tfplan");
    let stop = Stop::default();
    let first = terraform_with_phases(
        real_terraform(),
        dir.path(),
        &[],
        timeout,
        phases.path().to_path_buf(),
    );
    let mut log: Vec<String> = Vec::new();
    first.init(&mut log, &stop).await.unwrap();
    let planned = first.plan(&plan_file, &[], &mut log, &stop).await.unwrap();

    // A restarted Gantry over the same phase files: every phase has ended, none runs again,
    // and the plan's summary (from `show`, which the first Gantry had read) comes back whole.
    let again = terraform_with_phases(
        real_terraform(),
        dir.path(),
        &[],
        timeout,
        phases.path().to_path_buf(),
    );
    let mut more: Vec<String> = Vec::new();
    again.init(&mut more, &stop).await.unwrap();
    let summary = again.plan(&plan_file, &[], &mut more, &stop).await.unwrap();
    assert_eq!(summary, planned);
    assert!(
        more.is_empty(),
        "the log was taken already, not repeated: {more:?}"
    );
}
