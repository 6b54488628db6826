//! The sandbox every Terraform process runs in. A configuration is code written by whoever can
//! push a branch (`file()`, data sources, provider plugins), so Terraform sees, through Linux
//! namespaces made by bubblewrap: its run's work dir read-write, a private `/tmp` and `HOME`,
//! and read-only the system's programs, libraries and CA certificates, the Terraform binary and
//! the paths the operator names. Nothing of Gantry's: not the data dir (database, keys, other
//! runs), not Gantry's environment or processes (own PID namespace), no capabilities.
//!
//! This module only builds command lines and checks that a sandbox can be made; it starts no
//! Terraform (that is the supervisor's job).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where the sandbox's fresh, empty home directory is.
pub const SANDBOX_HOME: &str = "/home/terraform";
/// The `PATH` inside the sandbox: the system's programs only.
pub const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The system paths a sandboxed Terraform may read: programs and libraries (or, on a merged
/// `/usr`, the links to them), CA certificates, and what name resolution reads.
const SYSTEM_READ_ONLY: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/localtime",
];

/// How runs are isolated, decided once at start.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// Every Terraform process in a bubblewrap sandbox.
    Sandboxed(Sandbox),
    /// `runner.isolation = "none"`, set on purpose: Terraform runs as Gantry's user and sees
    /// what Gantry sees.
    Unsandboxed,
}

impl Isolation {
    pub fn is_sandboxed(&self) -> bool {
        matches!(self, Isolation::Sandboxed(_))
    }
}

/// bubblewrap, found and known to work on this machine.
#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
    /// Extra read-only paths the operator named (`runner.sandbox_read_only`).
    read_only: Vec<PathBuf>,
}

/// What one sandboxed process may see and where it starts.
#[derive(Debug, Clone)]
pub struct Confinement<'a> {
    /// The program to run (Terraform); shown read-only at its own (canonical) path.
    pub program: &'a Path,
    /// The run's work dir: the only place it may write (besides its private /tmp and HOME).
    pub work_dir: &'a Path,
    /// Where it starts, inside `work_dir`.
    pub cwd: &'a Path,
    /// Off: no network at all (a workspace with `network = false`).
    pub network: bool,
}

/// Why no sandbox can be made here.
#[derive(Debug, thiserror::Error)]
#[error("runs cannot be sandboxed here: {0}")]
pub struct Unavailable(pub String);

impl Sandbox {
    /// Finds `bwrap` on `PATH` and makes one sandbox with it, so that a machine without user
    /// namespaces is found out at start rather than by the first run.
    pub fn probe(read_only: Vec<PathBuf>) -> Result<Self, Unavailable> {
        let bwrap = find_on_path("bwrap").ok_or_else(|| {
            Unavailable(
                "bubblewrap (`bwrap`) is not installed (Debian/Ubuntu: apt-get install \
                 bubblewrap)"
                    .into(),
            )
        })?;
        for path in &read_only {
            if !path.is_absolute() {
                return Err(Unavailable(format!(
                    "runner.sandbox_read_only: {} is not an absolute path",
                    path.display()
                )));
            }
        }
        let sandbox = Self { bwrap, read_only };
        let root = Path::new("/");
        let probe = sandbox.command_line(
            &Confinement {
                program: Path::new("/bin/true"),
                work_dir: root,
                cwd: root,
                network: false,
            },
            &[],
        );
        let output = std::process::Command::new(&probe[0])
            .args(&probe[1..])
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Unavailable(format!("starting bwrap: {e}")))?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr);
            let said = said.lines().next().unwrap_or("no message").trim();
            return Err(Unavailable(format!(
                "bwrap could not make a sandbox ({said}); are unprivileged user namespaces \
                 disabled (sysctl kernel.unprivileged_userns_clone, \
                 user.max_user_namespaces)?"
            )));
        }
        Ok(sandbox)
    }

    /// The whole command line (bwrap first) that runs `confinement.program` with `args`
    /// inside a fresh sandbox. The environment is not on it: bwrap passes its own on, and
    /// the caller starts it with the run's environment only (values on a command line are
    /// readable by every local user).
    pub fn command_line(&self, confinement: &Confinement<'_>, args: &[&str]) -> Vec<OsString> {
        let mut line: Vec<OsString> = vec![self.bwrap.clone().into()];
        let mut arg = |a: &str| line.push(a.into());
        // New user, PID, mount, IPC, UTS, cgroup (and network) namespaces; no capabilities,
        // even when Gantry runs as root; no user namespaces of its own inside; killed when
        // its supervisor dies.
        arg("--unshare-all");
        if confinement.network {
            arg("--share-net");
        }
        for a in ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"] {
            arg(a);
        }
        arg("--die-with-parent");
        for a in ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"] {
            arg(a);
        }
        for a in ["--dir", SANDBOX_HOME] {
            arg(a);
        }
        for path in SYSTEM_READ_ONLY {
            line.extend(read_only_system_path(Path::new(path)));
        }
        for path in &self.read_only {
            line.extend(bind("--ro-bind-try", path));
        }
        line.extend(bind("--ro-bind", confinement.program));
        line.extend(bind("--bind", confinement.work_dir));
        line.push("--chdir".into());
        line.push(confinement.cwd.into());
        line.push("--".into());
        line.push(confinement.program.into());
        line.extend(args.iter().map(OsString::from));
        line
    }
}

/// A system path as the sandbox shows it: a link stays a link (`/bin` → `usr/bin` on a merged
/// `/usr`), a directory or file is bound read-only, a missing one is left out.
fn read_only_system_path(path: &Path) -> Vec<OsString> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => match std::fs::read_link(path) {
            Ok(target) => vec!["--symlink".into(), target.into(), path.into()],
            Err(_) => Vec::new(),
        },
        Ok(_) => bind("--ro-bind", path),
        Err(_) => Vec::new(),
    }
}

fn bind(how: &str, path: &Path) -> Vec<OsString> {
    vec![how.into(), path.into(), path.into()]
}

/// Where `program` is on Gantry's `PATH`.
pub(crate) fn find_on_path(program: impl AsRef<std::ffi::OsStr>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program.as_ref()))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> Sandbox {
        Sandbox {
            bwrap: PathBuf::from("/usr/bin/bwrap"),
            read_only: vec![PathBuf::from("/opt/python")],
        }
    }

    #[test]
    fn the_work_dir_is_the_only_writable_bind() {
        let line = sandbox().command_line(
            &Confinement {
                program: Path::new("/opt/tf/terraform"),
                work_dir: Path::new("/data/runs/7/work"),
                cwd: Path::new("/data/runs/7/work/config"),
                network: true,
            },
            &["plan", "-input=false"],
        );
        let line: Vec<String> = line
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let writable: Vec<&String> = line
            .iter()
            .enumerate()
            .filter(|(_, a)| *a == "--bind")
            .map(|(i, _)| &line[i + 1])
            .collect();
        assert_eq!(writable, ["/data/runs/7/work"]);
        for must in [
            "--unshare-all",
            "--share-net",
            "--cap-drop",
            "--die-with-parent",
        ] {
            assert!(line.iter().any(|a| a == must), "{must} missing: {line:?}");
        }
        let tail = &line[line.len() - 4..];
        assert_eq!(tail, ["--", "/opt/tf/terraform", "plan", "-input=false"]);
        assert!(
            line.windows(2)
                .any(|w| w[0] == "--ro-bind-try" && w[1] == "/opt/python")
        );
    }

    #[test]
    fn without_network_the_network_namespace_stays_private() {
        let line = sandbox().command_line(
            &Confinement {
                program: Path::new("/t"),
                work_dir: Path::new("/w"),
                cwd: Path::new("/w"),
                network: false,
            },
            &[],
        );
        assert!(!line.iter().any(|a| a == "--share-net"));
    }
}
