//! Gets the Terraform version a workspace asks for: from the tool cache, or downloaded from a
//! releases mirror (the official one by default) and checked against the release's SHA256SUMS
//! before it is cached. A binary that does not match is never kept, let alone run.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use url::Url;

/// The official releases site; a mirror has the same layout.
pub const DEFAULT_RELEASES_URL: &str = "https://releases.hashicorp.com/terraform/";
/// Terraform's zip is well under this; anything bigger is not a Terraform release.
const MAX_DOWNLOAD_BYTES: usize = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("Terraform {version} has no build for {platform} on the mirror")]
    NoBuild { version: String, platform: String },
    #[error("the download of Terraform {0} does not match its SHA256SUMS; not installed")]
    ChecksumMismatch(String),
    #[error("downloading {what} failed: {error}")]
    Download { what: String, error: String },
    #[error("the Terraform {0} archive has no terraform binary")]
    NoBinary(String),
    #[error("installing Terraform failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Installs Terraform versions into a cache directory.
#[derive(Debug, Clone)]
pub struct Installer {
    releases: Url,
    cache_dir: PathBuf,
    http: reqwest::Client,
}

impl Installer {
    /// `releases` is the mirror's base (…/terraform/); `cache_dir` keeps one directory per version.
    pub fn new(releases: Url, cache_dir: PathBuf) -> Self {
        let releases = if releases.path().ends_with('/') {
            releases
        } else {
            let mut with_slash = releases;
            with_slash.set_path(&format!("{}/", with_slash.path()));
            with_slash
        };
        Self {
            releases,
            cache_dir,
            http: reqwest::Client::builder()
                .user_agent(crate::USER_AGENT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// The path of Terraform `version` (a checked `x.y.z`), downloading it the first time.
    pub async fn ensure(&self, version: &str) -> Result<PathBuf, InstallError> {
        let installed = self.cache_dir.join(version).join("terraform");
        if installed.is_file() {
            return Ok(installed);
        }
        let platform = platform();
        let zip_name = format!("terraform_{version}_{platform}.zip");
        let sums = self
            .get(&format!("{version}/terraform_{version}_SHA256SUMS"))
            .await?;
        let expected =
            expected_sha256(&String::from_utf8_lossy(&sums), &zip_name).ok_or_else(|| {
                InstallError::NoBuild {
                    version: version.to_string(),
                    platform: platform.clone(),
                }
            })?;
        let archive = self.get(&format!("{version}/{zip_name}")).await?;
        if hex::encode(Sha256::digest(&archive)) != expected {
            return Err(InstallError::ChecksumMismatch(version.to_string()));
        }
        install_from_zip(&archive, &installed, version)?;
        tracing::info!(version, path = %installed.display(), "Terraform installed");
        Ok(installed)
    }

    async fn get(&self, relative: &str) -> Result<Vec<u8>, InstallError> {
        let failed = |error: String| InstallError::Download {
            what: relative.to_string(),
            error,
        };
        let url = self
            .releases
            .join(relative)
            .map_err(|e| failed(e.to_string()))?;
        let response = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(e.without_url().to_string()))?;
        if response
            .content_length()
            .is_some_and(|len| len > MAX_DOWNLOAD_BYTES as u64)
        {
            return Err(failed("too large".into()));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        if body.len() > MAX_DOWNLOAD_BYTES {
            return Err(failed("too large".into()));
        }
        Ok(body.to_vec())
    }
}

/// Terraform's name for this machine, e.g. `linux_amd64`.
pub fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{}_{arch}", std::env::consts::OS)
}

/// The checksum SHA256SUMS gives for `file` (lines of `<hex>  <file>`).
fn expected_sha256(sums: &str, file: &str) -> Option<String> {
    sums.lines().find_map(|line| {
        let (sum, name) = line.split_once(char::is_whitespace)?;
        (name.trim() == file && sum.len() == 64).then(|| sum.to_ascii_lowercase())
    })
}

/// Writes the `terraform` binary from the zip next to `target`, then renames it into place, so
/// that a half-written binary is never found in the cache.
fn install_from_zip(archive: &[u8], target: &Path, version: &str) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive))
        .map_err(|_| InstallError::NoBinary(version.to_string()))?;
    let mut binary = zip
        .by_name("terraform")
        .map_err(|_| InstallError::NoBinary(version.to_string()))?;
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(format!(".terraform.partial-{}", std::process::id()));
    let mut file = std::fs::File::create(&partial)?;
    std::io::copy(&mut binary, &mut file)?;
    file.sync_all()?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&partial, target)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_read_from_the_line_for_the_file() {
        let sums = "aaaa  other\n\
            0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF  terraform_1.0.3_linux_amd64.zip\n";
        assert_eq!(
            expected_sha256(sums, "terraform_1.0.3_linux_amd64.zip").as_deref(),
            Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        );
        assert_eq!(
            expected_sha256(sums, "terraform_1.0.3_darwin_arm64.zip"),
            None
        );
    }

    #[test]
    fn the_platform_is_named_as_terraform_names_it() {
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(platform(), "linux_amd64");
        }
    }
}
