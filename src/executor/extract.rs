//! Unpacks a configuration tarball (a GitHub repository tarball, or one uploaded through the
//! API) into a run's work dir, refusing anything that could write outside it or exhaust the
//! disk: absolute paths, `..`, links pointing out of the tree, hard links, device files and
//! FIFOs, and archives past a size or file-count limit. Each refusal is a clear error.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use tar::EntryType;

/// How much an archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 512 * 1024 * 1024,
            max_files: 50_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("the archive has an absolute path: {0}")]
    AbsolutePath(String),
    #[error("the archive has a path that leaves its directory: {0}")]
    Traversal(String),
    #[error("the archive has a link that points out of the tree: {path} -> {target}")]
    LinkEscapes { path: String, target: String },
    #[error("the archive has a hard link, which configurations never need: {0}")]
    HardLink(String),
    #[error("the archive has a device file or FIFO: {0}")]
    SpecialFile(String),
    #[error("the archive unpacks to more than {0} bytes")]
    TooLarge(u64),
    #[error("the archive has more than {0} files")]
    TooManyFiles(u64),
    #[error("the archive has the same path twice: {0}")]
    Duplicate(String),
    #[error("the archive is not a valid .tar.gz: {0}")]
    Corrupt(String),
    #[error("writing the configuration failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What was unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extracted {
    pub files: u64,
    pub bytes: u64,
}

/// Unpacks the gzipped tar `archive` into `dest` (which must exist and be empty), dropping the
/// first `strip` path components (GitHub wraps a repository in `owner-repo-sha/`).
pub fn extract_tar_gz(
    archive: impl Read,
    dest: &Path,
    strip: usize,
    limits: Limits,
) -> Result<Extracted, ExtractError> {
    let mut tar = tar::Archive::new(GzDecoder::new(archive));
    let mut stats = Extracted { files: 0, bytes: 0 };
    // Links are made last, so that no file is ever written through a link from the archive.
    let mut links: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    let entries = tar
        .entries()
        .map_err(|e| ExtractError::Corrupt(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ExtractError::Corrupt(e.to_string()))?;
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            continue; // metadata (GitHub adds a pax global header with the commit id)
        }
        let raw = entry
            .path()
            .map_err(|e| ExtractError::Corrupt(e.to_string()))?
            .into_owned();
        let shown = raw.display().to_string();
        let Some(relative) = checked_relative(&raw, strip)? else {
            continue; // the wrapping directory itself
        };
        stats.files += 1;
        if stats.files > limits.max_files {
            return Err(ExtractError::TooManyFiles(limits.max_files));
        }
        let target = dest.join(&relative);
        match kind {
            EntryType::Directory => std::fs::create_dir_all(&target)?,
            EntryType::Regular | EntryType::Continuous => {
                if target.exists() || links.contains_key(&relative) {
                    return Err(ExtractError::Duplicate(shown));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mode = entry.header().mode().unwrap_or(0o644);
                stats.bytes += write_file(
                    &mut entry,
                    &target,
                    mode,
                    limits.max_bytes - stats.bytes.min(limits.max_bytes),
                )
                .map_err(|e| match e {
                    WriteError::TooLarge => ExtractError::TooLarge(limits.max_bytes),
                    WriteError::Read(e) => ExtractError::Corrupt(e.to_string()),
                    WriteError::Io(e) => ExtractError::Io(e),
                })?;
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(|e| ExtractError::Corrupt(e.to_string()))?
                    .ok_or_else(|| {
                        ExtractError::Corrupt(format!("link without a target: {shown}"))
                    })?
                    .into_owned();
                check_link_stays_inside(&relative, &link).map_err(|()| {
                    ExtractError::LinkEscapes {
                        path: shown.clone(),
                        target: link.display().to_string(),
                    }
                })?;
                if links.insert(relative, link).is_some() {
                    return Err(ExtractError::Duplicate(shown));
                }
            }
            EntryType::Link => return Err(ExtractError::HardLink(shown)),
            _ => return Err(ExtractError::SpecialFile(shown)),
        }
    }
    // A link inside another link's path would be made through that link, somewhere its own
    // check did not look (`a -> .` then `a/e -> ../x` lands at `e` and points outside).
    for (relative, link) in &links {
        if relative.ancestors().skip(1).any(|a| links.contains_key(a)) {
            return Err(ExtractError::LinkEscapes {
                path: relative.display().to_string(),
                target: link.display().to_string(),
            });
        }
    }
    for (relative, link) in links {
        let path = dest.join(&relative);
        if path.symlink_metadata().is_ok() {
            return Err(ExtractError::Duplicate(relative.display().to_string()));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(&link, &path)?;
    }
    Ok(stats)
}

/// The entry's path below `dest` with `strip` components dropped; `None` for what stripping
/// removes entirely. Refuses absolute paths and `..`.
fn checked_relative(path: &Path, strip: usize) -> Result<Option<PathBuf>, ExtractError> {
    let shown = || path.display().to_string();
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(ExtractError::Traversal(shown())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(ExtractError::AbsolutePath(shown()));
            }
        }
    }
    if parts.len() <= strip {
        return Ok(None);
    }
    Ok(Some(parts[strip..].iter().collect()))
}

/// A link at `path` (relative to the tree) pointing at `target` must resolve inside the tree.
fn check_link_stays_inside(path: &Path, target: &Path) -> Result<(), ()> {
    if target.is_absolute() {
        return Err(());
    }
    let mut depth: i64 = path.components().count() as i64 - 1; // the link's directory
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(());
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(()),
        }
    }
    Ok(())
}

enum WriteError {
    TooLarge,
    /// The archive could not be read (a truncated or corrupt stream): the sender's fault.
    Read(std::io::Error),
    /// The file could not be written (a full disk): ours.
    Io(std::io::Error),
}

/// Copies the entry into a new file, stopping past `budget` bytes whatever the header claims
/// (a decompression bomb is caught as it inflates, not after).
fn write_file(
    entry: &mut impl Read,
    path: &Path,
    mode: u32,
    budget: u64,
) -> Result<u64, WriteError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o755 | 0o600)
        .open(path)
        .map_err(WriteError::Io)?;
    // Not io::copy: it would not tell a bad archive (read) from a full disk (write).
    let mut limited = entry.take(budget + 1);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let read = match limited.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(WriteError::Read(e)),
        };
        file.write_all(&buffer[..read]).map_err(WriteError::Io)?;
        written += read as u64;
    }
    if written > budget {
        return Err(WriteError::TooLarge);
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
