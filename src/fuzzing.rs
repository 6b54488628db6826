//! Fuzz harnesses: one function per cargo-fuzz target in `fuzz/`, taking the fuzzer's raw bytes.
//! `tests/fuzz_replay.rs` runs the committed corpora through the same functions, so the suite
//! checks what the fuzzers checked. Each function panics only when an invariant is broken;
//! inputs that Gantry refuses with an error are fine. See `docs/fuzzing.md`.

use std::borrow::Cow;

use secrecy::SecretString;
use serde_json::Value;

use crate::core::commands::{self, Command, CommandLine};
use crate::core::workspace::WorkspaceName;
use crate::events::{self, Event, EventError};
use crate::webhook::envelope::{self, Envelope};
use crate::webhook::signature::{self, SignatureError, WebhookSecrets};

/// Splits the input into `secret \0 header \0 body`; without a second part there is no header.
/// Checks `verify` against a model of the header format and HMAC, then skims the body as ingest
/// does (`envelope::read`).
pub fn signature(data: &[u8]) {
    let mut parts = data.splitn(3, |&b| b == 0);
    let secret = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let header = parts.next();
    let body = parts.next().unwrap_or_default();

    let genuine = signature::sign(&secret, body);
    let genuine_digits = genuine
        .strip_prefix("sha256=")
        .expect("sign writes sha256=");
    let secrets = WebhookSecrets::new(&[SecretString::from(secret.clone())]);
    assert_eq!(
        secrets.verify(header, body),
        expected_verdict(header, genuine_digits),
        "header {:?}",
        header.map(String::from_utf8_lossy)
    );

    // The genuine signature passes, in either hex case and beside another secret (rotation).
    assert_eq!(secrets.verify(Some(genuine.as_bytes()), body), Ok(()));
    let upper = format!("sha256={}", genuine_digits.to_ascii_uppercase());
    assert_eq!(secrets.verify(Some(upper.as_bytes()), body), Ok(()));
    let rotating = WebhookSecrets::new(&[
        SecretString::from(format!("{secret}-next")),
        SecretString::from(secret.clone()),
    ]);
    assert_eq!(rotating.verify(Some(genuine.as_bytes()), body), Ok(()));
    // No secrets accept nothing.
    assert!(WebhookSecrets::new(&[]).verify(header, body).is_err());
    // Any change to the body breaks the signature.
    let mut longer = body.to_vec();
    longer.push(b' ');
    assert_eq!(
        secrets.verify(Some(genuine.as_bytes()), &longer),
        Err(SignatureError::Mismatch)
    );
    if let Some((last, rest)) = body.split_last() {
        let mut flipped = body.to_vec();
        *flipped.last_mut().expect("body is not empty") = last ^ 1;
        for tampered in [&flipped[..], rest] {
            assert_eq!(
                secrets.verify(Some(genuine.as_bytes()), tampered),
                Err(SignatureError::Mismatch)
            );
        }
    }

    check_envelope(body);
}

/// What `verify` must answer: the header is `sha256=` and 64 hex digits (either case), and it
/// passes only when those digits are the body's HMAC.
fn expected_verdict(header: Option<&[u8]>, genuine_digits: &str) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let digits = header
        .strip_prefix(b"sha256=")
        .filter(|d| d.len() == 64 && d.iter().all(u8::is_ascii_hexdigit))
        .ok_or(SignatureError::Malformed)?;
    if digits.eq_ignore_ascii_case(genuine_digits.as_bytes()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The envelope ingest stores must say what a full JSON parse of the same object says.
fn check_envelope(payload: &[u8]) {
    let Ok(envelope) = envelope::read(payload) else {
        return;
    };
    // A full parse refuses nesting the skim skips over; and serde also reads a struct from a JSON
    // array, positionally, which there is no field-by-field answer to compare with.
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(payload) else {
        return;
    };
    let expected = Envelope {
        action: object.get("action").and_then(Value::as_str).map(Into::into),
        installation_id: object
            .get("installation")
            .and_then(|i| i.get("id"))
            .and_then(Value::as_i64),
        repository: object
            .get("repository")
            .and_then(|r| r.get("full_name"))
            .and_then(Value::as_str)
            .map(Into::into),
    };
    assert_eq!(envelope, expected);
}

/// An event Gantry does not handle, so that the fuzzer also sends one.
const UNSUPPORTED_EVENT: &str = "workflow_run";

/// The events the selector byte picks from: every event Gantry reads, and one it does not.
pub const EVENT_NAMES: [&str; 10] = [
    "push",
    "pull_request",
    "issue_comment",
    "check_run",
    "check_suite",
    "merge_group",
    "installation",
    "installation_repositories",
    "ping",
    UNSUPPORTED_EVENT,
];

/// The first byte picks the event name (modulo [`EVENT_NAMES`]), the rest is the payload.
/// A parsed event keeps its name, an error names the event, an unknown event is never read, and
/// what ingest stored about the delivery (its envelope) agrees with the typed parse.
pub fn event(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let name = EVENT_NAMES[usize::from(selector) % EVENT_NAMES.len()];
    let parsed = events::parse(name, payload);
    if name == UNSUPPORTED_EVENT {
        let unsupported = Event::Unsupported {
            event: name.to_owned(),
        };
        assert_eq!(parsed.ok(), Some(unsupported));
        return;
    }
    let event = match parsed {
        Ok(event) => event,
        Err(EventError::Invalid { event, .. }) => {
            assert_eq!(event, name);
            return;
        }
    };
    assert_eq!(event.name(), name);
    assert!(!matches!(event, Event::Unsupported { .. }));

    check_envelope(payload);
    if let Ok(envelope) = envelope::read(payload) {
        if let Some(id) = event.installation_id() {
            let stored = envelope.installation_id.map(crate::core::InstallationId);
            assert_eq!(stored, Some(id));
        }
        if let Some(full_name) = event.repository_full_name() {
            assert_eq!(envelope.repository.as_deref(), Some(full_name));
        }
    }
}

/// Command prefixes the selector byte picks from: the default and two custom ones.
pub const COMMAND_PREFIXES: [&str; 3] = ["/gantry", "/tf", "@gantry-bot"];

/// The first byte picks the prefix (modulo [`COMMAND_PREFIXES`]), the rest is the comment body
/// (invalid UTF-8 replaced, as a body always arrives as a JSON string). Every command line
/// returned is a line of the body starting with the prefix, in order (lines in quoted Markdown
/// are left out), and what it parsed to is made only of words on that line.
pub fn command(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let prefix = COMMAND_PREFIXES[usize::from(selector) % COMMAND_PREFIXES.len()];
    let body = String::from_utf8_lossy(body);
    let found = commands::parse_comment(&body, prefix);

    let command_lines: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|line| {
            line.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        })
        .collect();
    let mut candidates = command_lines.iter();
    for line in &found {
        assert!(
            candidates.any(|candidate| *candidate == line.line),
            "{:?} is not a command line of the body, in order",
            line.line
        );
    }
    for line in &found {
        check_command(line, prefix);
    }
}

fn check_command(line: &CommandLine, prefix: &str) {
    let words: Vec<&str> = line.line[prefix.len()..].split_whitespace().collect();
    let (verb, workspaces) = match &line.parsed {
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
        Ok(Command::Help) => {
            assert_eq!(words, ["help"]);
            return;
        }
        Ok(Command::Plan { workspaces }) => ("plan", workspaces),
        Ok(Command::Retry { workspaces }) => ("retry", workspaces),
        Ok(Command::Override { workspaces, reason }) => {
            // The reason is the line's last words, never empty.
            let reason_words: Vec<&str> = reason.split(' ').collect();
            assert!(!reason.is_empty() && words.ends_with(&reason_words));
            ("override", workspaces)
        }
    };
    assert_eq!(words.first(), Some(&verb));
    assert!(workspaces.len() <= commands::MAX_WORKSPACE_OPTIONS);
    assert!(workspaces.len() < words.len());
    for workspace in workspaces {
        let name = workspace.as_str();
        assert_eq!(WorkspaceName::parse(name).as_ref(), Ok(workspace));
        assert!(
            words
                .iter()
                .any(|w| *w == name || w.strip_suffix(name).is_some_and(|o| o.ends_with('='))),
            "workspace {name:?} is not a word of {:?}",
            line.line
        );
    }
}

/// Small limits, so that the fuzzer reaches them and an input never fills the disk.
const TAR_LIMITS: crate::executor::extract::Limits = crate::executor::extract::Limits {
    max_bytes: 1 << 20,
    max_files: 256,
};

/// A .tar.gz (input starting with the gzip magic), or a plain tar that is gzipped here so the
/// fuzzer can mutate tar headers directly. Extracts into a fresh directory with the wrapping
/// directory stripped, as runs do, and then checks (whether extraction succeeded or not) that
/// nothing was made beside that directory and nothing inside it reaches out of it.
pub fn tar(data: &[u8]) {
    let archive: Cow<'_, [u8]> = if data.starts_with(&[0x1f, 0x8b]) {
        Cow::Borrowed(data)
    } else {
        Cow::Owned(tar_containment::gzip(data))
    };
    let root = tempfile::tempdir().expect("creating a temporary directory");
    let dest = root.path().join("work");
    std::fs::create_dir(&dest).expect("creating the extraction directory");

    let result = crate::executor::extract::extract_tar_gz(&archive[..], &dest, 1, TAR_LIMITS);

    tar_containment::assert_only_child(root.path(), "work");
    let written = tar_containment::assert_contained(&dest);
    if let Ok(stats) = result {
        assert!(stats.files <= TAR_LIMITS.max_files);
        assert!(stats.bytes <= TAR_LIMITS.max_bytes);
        assert_eq!(stats.bytes, written, "bytes reported vs. bytes on disk");
    }
}

/// Checks on an extracted tree; links are resolved by hand, since a dangling link that points
/// outside is as dangerous as one that resolves (something may later write through it).
mod tar_containment {
    use std::ffi::OsString;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Component, Path, PathBuf};

    /// Linux follows at most 40 links in one lookup; past that nothing can be reached.
    const MAX_LINK_HOPS: usize = 40;

    pub fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
        encoder.write_all(data).expect("gzip into memory");
        encoder.finish().expect("gzip into memory")
    }

    pub fn assert_only_child(dir: &Path, only: &str) {
        let names: Vec<OsString> = std::fs::read_dir(dir)
            .expect("listing the temporary directory")
            .map(|e| e.expect("listing the temporary directory").file_name())
            .collect();
        assert_eq!(
            names,
            [only],
            "something was made beside the extraction directory"
        );
    }

    /// Walks `dest` without following links: only directories, regular files with a single
    /// link, and symbolic links that resolve inside `dest`. Returns the regular files' bytes.
    pub fn assert_contained(dest: &Path) -> u64 {
        let inside = dest.canonicalize().expect("canonical extraction directory");
        let mut bytes = 0;
        let mut pending = vec![inside.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("listing an extracted directory") {
                let path = entry.expect("listing an extracted directory").path();
                let meta = path.symlink_metadata().expect("stat an extracted entry");
                let kind = meta.file_type();
                if kind.is_dir() {
                    pending.push(path);
                } else if kind.is_file() {
                    assert_eq!(meta.nlink(), 1, "hard link at {}", path.display());
                    bytes += meta.len();
                } else if kind.is_symlink() {
                    let target = resolve(&path);
                    assert!(
                        target.starts_with(&inside),
                        "link {} -> {:?} resolves outside, to {}",
                        path.display(),
                        std::fs::read_link(&path),
                        target.display()
                    );
                } else {
                    panic!("special file at {}", path.display());
                }
            }
        }
        bytes
    }

    /// Where an absolute `path` leads, following links like the kernel does but without needing
    /// the last components to exist (`realpath -m`).
    fn resolve(path: &Path) -> PathBuf {
        let mut resolved = PathBuf::from("/");
        let mut pending = reversed_parts(path);
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part {
                Part::Root => resolved = PathBuf::from("/"),
                Part::Up => {
                    resolved.pop();
                }
                Part::Name(name) => {
                    let next = resolved.join(name);
                    match std::fs::read_link(&next) {
                        Ok(target) if hops < MAX_LINK_HOPS => {
                            hops += 1;
                            pending.extend(reversed_parts(&target));
                        }
                        _ => resolved = next,
                    }
                }
            }
        }
        resolved
    }

    enum Part {
        Root,
        Up,
        Name(OsString),
    }

    /// `path`'s components, last first, so that popping yields them in order.
    fn reversed_parts(path: &Path) -> Vec<Part> {
        let mut parts: Vec<Part> = path
            .components()
            .filter_map(|c| match c {
                Component::RootDir | Component::Prefix(_) => Some(Part::Root),
                Component::ParentDir => Some(Part::Up),
                Component::CurDir => None,
                Component::Normal(name) => Some(Part::Name(name.to_owned())),
            })
            .collect();
        parts.reverse();
        parts
    }
}
