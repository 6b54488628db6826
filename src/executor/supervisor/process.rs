//! `gantry supervise`: the small process that owns one Terraform phase, so that the phase
//! outlives Gantry and never outlives supervision. Gantry starts it in a session of its own
//! with the phase's lock already held on fd 3 and its log file as stdout and stderr; it
//! starts the (sandboxed) command, passes a cancel on as SIGINT to Terraform, kills the
//! sandbox on SIGTERM or at the phase's timeout, and writes how the phase ended to the status
//! file before it exits. The lock is inherited by the command too, so it is free only when no
//! process of the phase is left. If the supervisor itself is killed, bubblewrap kills the
//! sandbox (`--die-with-parent`): Terraform is never left running unwatched.
//!
//! It must not read the database or anything of Gantry's: it knows only its phase's files.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

use super::{EndedBy, PhaseFiles, PhaseStatus};

/// The descriptor Gantry hands the phase's lock on.
pub const LOCK_FD: i32 = 3;
/// The descriptor bubblewrap writes the sandbox's pid to.
const INFO_FD: i32 = 4;

/// What `gantry supervise` is told.
#[derive(Debug, Clone)]
pub struct SuperviseArgs {
    pub phase_dir: PathBuf,
    pub phase: String,
    pub timeout: Duration,
    /// The command is bubblewrap: Terraform is the child of the sandbox's first process.
    pub sandboxed: bool,
    pub command: Vec<OsString>,
}

/// Runs the phase to its end and records how it ended; the exit code says whether the
/// supervisor itself worked (0) or not (1).
pub fn supervise(args: SuperviseArgs) -> std::process::ExitCode {
    let files = PhaseFiles::new(&args.phase_dir, &args.phase);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gantry supervise: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let status = runtime.block_on(run(&args, &files));
    let status = match status {
        Ok(status) => status,
        Err(error) => {
            // Said in the phase's log (our stderr), and the phase counts as failed.
            eprintln!("Gantry: the phase could not be run: {error}");
            PhaseStatus {
                code: None,
                signal: None,
                ended_by: EndedBy::NotStarted,
            }
        }
    };
    match files.write_status(&status) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Gantry: recording how the phase ended failed: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &SuperviseArgs, files: &PhaseFiles) -> std::io::Result<PhaseStatus> {
    std::fs::write(files.pid(), std::process::id().to_string())?;
    let mut interrupts = signal(SignalKind::interrupt())?;
    let mut terminations = signal(SignalKind::terminate())?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command"))?;
    let mut command = tokio::process::Command::new(program);
    let info = if args.sandboxed {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        command.arg("--info-fd").arg(INFO_FD.to_string());
        Some((read, write))
    } else {
        None
    };
    command.args(rest).stdin(std::process::Stdio::null());
    let info_write = info.as_ref().map(|(_, write)| write.as_raw_fd());
    // SAFETY: only dup2 and sigaction, async-signal-safe, run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = info_write {
                nix::libc::dup2(fd, INFO_FD);
            }
            // A signal ignored on entry stays ignored across exec: Terraform must hear SIGINT.
            for signal in [Signal::SIGINT, Signal::SIGTERM] {
                nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl)
                    .map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let sandbox_init = match info {
        Some((read, write)) => {
            drop(write);
            tokio::task::spawn_blocking(move || read_child_pid(read))
                .await
                .ok()
                .flatten()
        }
        None => None,
    };
    let child_pid = child.id().and_then(|id| i32::try_from(id).ok());
    let terraform = || match sandbox_init {
        // bubblewrap's first process in the sandbox reaps; the command is its child.
        Some(init) => first_child(init),
        None => child_pid,
    };
    // Killing bubblewrap alone is not enough: killed while it sets the sandbox up, it leaves
    // the sandbox's first process orphaned (its die-with-parent not armed yet), waiting for ever
    // and holding the phase's lock. Killed itself, that process takes the whole sandbox (its
    // PID namespace) with it.
    let kill_all = |child: &mut tokio::process::Child| {
        if let Some(init) = sandbox_init {
            let _ = kill(Pid::from_raw(init), Signal::SIGKILL);
        }
        let _ = child.start_kill();
    };
    let deadline = tokio::time::sleep(args.timeout);
    tokio::pin!(deadline);
    let mut ended_by = EndedBy::Exit;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = interrupts.recv() => {
                if let Some(pid) = terraform() {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
                }
            }
            _ = terminations.recv() => {
                ended_by = EndedBy::Killed;
                kill_all(&mut child);
            }
            _ = &mut deadline, if ended_by == EndedBy::Exit => {
                // A phase past its time is stuck: killed, no grace.
                ended_by = EndedBy::TimedOut;
                kill_all(&mut child);
            }
        }
    };
    use std::os::unix::process::ExitStatusExt;
    Ok(PhaseStatus {
        code: status.code(),
        signal: status.signal(),
        ended_by,
    })
}

/// bubblewrap's `--info-fd` JSON, read to its end: the pid of the sandbox's first process.
fn read_child_pid(read: OwnedFd) -> Option<i32> {
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(rename = "child-pid")]
        child_pid: i32,
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(read), &mut text).ok()?;
    serde_json::from_str::<Info>(&text)
        .ok()
        .map(|i| i.child_pid)
}

fn first_child(pid: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
