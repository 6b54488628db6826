//! Terraform phases under supervision: each phase runs under `gantry supervise` (see
//! [`process`]), a process of its own session that writes the phase's output to a log file
//! and how it ended to a status file, and holds the phase's lock while any process of the
//! phase lives. Gantry follows the files, not a pipe, so it need not be the parent: a
//! restarted Gantry finds a phase running (lock held), finished (status written) or lost
//! (neither: the supervisor was killed, and bubblewrap killed Terraform with it), and
//! carries on from there.
//!
//! Files of a phase, in the run's `phases/` directory (never shown to the sandbox):
//! `NAME.lock`, `NAME.log`, `NAME.status`, `NAME.pid` (the supervisor's), `NAME.offset`
//! (how much of the log Gantry has taken).

pub mod process;

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// How often a followed phase's files are looked at.
const POLL: Duration = Duration::from_millis(50);
/// The longest line kept whole; a longer one is cut (Terraform's lines are far shorter).
const MAX_LINE_BYTES: usize = 64 * 1024;

/// How a phase ended, as its supervisor wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub ended_by: EndedBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// The command exited (or died) by itself, or after a SIGINT it was sent.
    Exit,
    /// Killed at the phase's timeout.
    TimedOut,
    /// Killed on request (SIGTERM to the supervisor: a force-cancel).
    Killed,
    /// The command could not be started.
    NotStarted,
}

/// The files of one phase.
#[derive(Debug, Clone)]
pub struct PhaseFiles {
    dir: PathBuf,
    name: String,
}

impl PhaseFiles {
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }
    }

    fn path(&self, extension: &str) -> PathBuf {
        self.dir.join(format!("{}.{extension}", self.name))
    }

    pub fn lock(&self) -> PathBuf {
        self.path("lock")
    }

    pub fn log(&self) -> PathBuf {
        self.path("log")
    }

    pub fn status(&self) -> PathBuf {
        self.path("status")
    }

    pub fn pid(&self) -> PathBuf {
        self.path("pid")
    }

    fn offset(&self) -> PathBuf {
        self.path("offset")
    }

    /// Written whole or not at all (a rename), so a reader never sees half a status.
    pub fn write_status(&self, status: &PhaseStatus) -> std::io::Result<()> {
        let temporary = self.path("status.tmp");
        std::fs::write(&temporary, serde_json::to_vec(status)?)?;
        std::fs::rename(&temporary, self.status())
    }

    pub fn read_status(&self) -> Option<PhaseStatus> {
        let bytes = std::fs::read(self.status()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// What is left of this phase from before: nothing, a live supervisor, a result, or a
    /// supervisor gone without one.
    pub fn find(&self) -> Found {
        if !self.lock().exists() {
            return Found::NotStarted;
        }
        if let Some(status) = self.read_status() {
            return Found::Finished(status);
        }
        if self.lock_is_held() {
            return Found::Running;
        }
        // The status is written before the lock is let go: look again, it may have just come.
        match self.read_status() {
            Some(status) => Found::Finished(status),
            None => Found::Lost,
        }
    }

    /// Whether some process of the phase still holds its lock. A lock file that cannot be
    /// opened for another reason than being gone (no descriptor left, say) may well be held:
    /// taking it for free would declare a live phase lost.
    pub fn lock_is_held(&self) -> bool {
        let file = match std::fs::File::open(self.lock()) {
            Ok(file) => file,
            Err(error) => return error.kind() != std::io::ErrorKind::NotFound,
        };
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(_) => true,
        }
    }
}

/// What a phase's files say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    NotStarted,
    Running,
    Finished(PhaseStatus),
    Lost,
}

/// A phase to start: the command line (bubblewrap's, or Terraform's own when unsandboxed) and
/// the only environment it gets.
pub struct Launch<'a> {
    pub supervisor: &'a Path,
    pub files: &'a PhaseFiles,
    pub command: Vec<OsString>,
    pub env: Vec<(String, String)>,
    /// Where an unsandboxed command starts (a sandboxed one is moved by bubblewrap).
    pub cwd: &'a Path,
    pub timeout: Duration,
    pub sandboxed: bool,
}

/// Starts the phase's supervisor in a session of its own, with the phase's lock taken first
/// and handed over, so the lock is held from before the supervisor exists until the phase's
/// last process ends.
pub fn start(launch: Launch<'_>) -> std::io::Result<Followed> {
    let files = launch.files;
    std::fs::create_dir_all(&files.dir)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(files.lock())?;
    lock.try_lock()
        .map_err(|_| std::io::Error::other("the phase's lock is held: it is running already"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(files.log())?;
    let mut command = std::process::Command::new(launch.supervisor);
    command
        .arg("supervise")
        .arg("--phase-dir")
        .arg(&files.dir)
        .arg("--phase")
        .arg(&files.name)
        .arg("--timeout-ms")
        .arg(launch.timeout.as_millis().max(1).to_string());
    if launch.sandboxed {
        command.arg("--sandboxed");
    }
    command
        .arg("--")
        .args(&launch.command)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(launch.cwd)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let lock_fd = std::os::fd::AsRawFd::as_raw_fd(&lock);
    // SAFETY: only setsid, dup2 and sigaction, async-signal-safe, run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // Its own session: a signal to Gantry's process group does not reach it.
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if nix::libc::dup2(lock_fd, process::LOCK_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
                nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl)
                    .map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
    let child = tokio::process::Command::from(command).spawn()?;
    // Our copy of the lock closes here; the supervisor's (same open file) keeps it held.
    Ok(Followed {
        files: files.clone(),
        own: Some(child),
        reaped: false,
        offset: 0,
        partial: Vec::new(),
    })
}

/// Follows a phase some earlier Gantry started, from where that Gantry had taken its log.
pub fn adopt(files: &PhaseFiles) -> Followed {
    let offset = std::fs::read_to_string(files.offset())
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    Followed {
        files: files.clone(),
        own: None,
        reaped: false,
        offset,
        partial: Vec::new(),
    }
}

/// Follows a phase some earlier Gantry started, reading its output from the beginning.
pub fn adopt_from_start(files: &PhaseFiles) -> Followed {
    Followed {
        offset: 0,
        ..adopt(files)
    }
}

/// Stops every phase in `dir` that still runs (SIGINT, or a kill when `force`; a kill after
/// `grace` regardless) and waits until none holds its lock. A run ends only then: a phase that
/// an earlier Gantry started may run on beside the one this Gantry was following.
pub async fn stop_running_phases(dir: &Path, force: bool, grace: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let running: Vec<Followed> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let phase = name.strip_suffix(".lock")?;
            let files = PhaseFiles::new(dir, phase);
            files.lock_is_held().then(|| adopt(&files))
        })
        .collect();
    for phase in &running {
        if force {
            phase.kill()
        } else {
            phase.interrupt()
        }
    }
    let deadline = tokio::time::Instant::now() + grace;
    while running.iter().any(|p| p.files.lock_is_held()) {
        if tokio::time::Instant::now() >= deadline {
            running.iter().for_each(Followed::kill);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A phase being followed: its log read as it grows, its end learned from the status file.
pub struct Followed {
    files: PhaseFiles,
    /// The supervisor, when this Gantry started it (it learns of its end at once).
    own: Option<tokio::process::Child>,
    /// This Gantry reaped the supervisor: its pid may be another process's by now.
    reaped: bool,
    offset: u64,
    partial: Vec<u8>,
}

/// What one look at a followed phase found.
pub enum Progress {
    Running,
    Ended(PhaseStatus),
    /// The supervisor is gone and left no status.
    Lost,
}

impl Followed {
    /// Waits a moment (less if the supervisor ends), then hands over the log's new complete
    /// lines and says whether the phase has ended.
    pub async fn next(&mut self, lines: &mut Vec<String>) -> Progress {
        match &mut self.own {
            Some(child) => {
                if tokio::time::timeout(POLL, child.wait()).await.is_ok() {
                    // Reaped: from now on the files say the rest.
                    self.own = None;
                    self.reaped = true;
                }
            }
            None => tokio::time::sleep(POLL).await,
        }
        self.read_lines(lines);
        if let Some(status) = self.files.read_status() {
            self.read_lines(lines);
            self.take_partial(lines);
            return Progress::Ended(status);
        }
        // Gone only once nothing of the phase holds its lock: a supervisor killed a moment
        // ago may leave Terraform dying in its sandbox.
        if self.own.is_some() || self.files.lock_is_held() {
            return Progress::Running;
        }
        self.read_lines(lines);
        self.take_partial(lines);
        match self.files.read_status() {
            Some(status) => Progress::Ended(status),
            None => Progress::Lost,
        }
    }

    /// Asks the phase to stop gracefully: Terraform gets SIGINT through its supervisor.
    pub fn interrupt(&self) {
        self.signal(Signal::SIGINT);
    }

    /// Has the phase killed at once.
    pub fn kill(&self) {
        self.signal(Signal::SIGTERM);
    }

    fn signal(&self, signal: Signal) {
        let pid = match &self.own {
            Some(child) => child.id().and_then(|id| i32::try_from(id).ok()),
            None => std::fs::read_to_string(self.files.pid())
                .ok()
                .and_then(|s| s.trim().parse().ok()),
        };
        // A pid read from the file is only trusted while the lock says the phase is alive
        // (once it is not, the number may be another process's).
        if let Some(pid) = pid
            && !self.reaped
            && (self.own.is_some() || self.files.lock_is_held())
        {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    fn read_lines(&mut self, lines: &mut Vec<String>) {
        let Ok(mut file) = std::fs::File::open(self.files.log()) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut fresh = Vec::new();
        let Ok(read) = file.read_to_end(&mut fresh) else {
            return;
        };
        if read == 0 {
            return;
        }
        self.offset += read as u64;
        self.partial.extend_from_slice(&fresh);
        let mut start = 0;
        while let Some(end) = self.partial[start..].iter().position(|b| *b == b'\n') {
            let line = &self.partial[start..start + end];
            lines.push(String::from_utf8_lossy(line).into_owned());
            start += end + 1;
        }
        self.partial.drain(..start);
        if self.partial.len() > MAX_LINE_BYTES {
            self.take_partial(lines);
        }
        // What the log has handed over: an adopting Gantry goes on from the last whole line.
        let taken = self.offset - self.partial.len() as u64;
        let _ = std::fs::write(self.files.offset(), taken.to_string());
    }

    fn take_partial(&mut self, lines: &mut Vec<String>) {
        if !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
    }
}
