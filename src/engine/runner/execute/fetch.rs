//! A run's configuration: its tarball from the blob store, GitHub (waiting out rate limits)
//! or the database (an upload), kept under its SHA-256, and unpacked safely into the run's
//! directory. File work happens off the async workers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{CONFIG_DIR, Execution, Failure, errored, until_stopped};
use crate::core::InstallationId;
use crate::executor::extract::{Limits, extract_tar_gz};

/// The largest tarball Gantry downloads.
const MAX_TARBALL_BYTES: usize = 256 * 1024 * 1024;

/// The longest a run waits out GitHub's rate limits to fetch its commit: a primary limit
/// resets within the hour.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);

impl Execution {
    /// The configuration tarball: from the blob store, or downloaded from GitHub (read from
    /// the database, for an upload) and kept there under its SHA-256.
    pub(super) async fn fetch_configuration(&self) -> Result<PathBuf, Failure> {
        if let Some(sha) = &self.run.archive_sha256 {
            let path = self.shared.blob_path(sha);
            if tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
                return Ok(path);
            }
        }
        let bytes = if self.run.uploaded {
            // Uploaded through the API: in the database, for whichever replica runs it.
            self.shared
                .store
                .uploaded_archive(self.run.configuration_version_id)
                .await
                .map_err(errored("reading the uploaded configuration"))?
        } else {
            let installation = self.run.installation_id.ok_or_else(|| {
                Failure::Errored("the configuration version names no GitHub installation".into())
            })?;
            self.download_tarball(installation).await?
        };
        let sha = hex::encode(Sha256::digest(&bytes));
        let path = self.shared.blob_path(&sha);
        let target = path.clone();
        let stored = tokio::task::spawn_blocking(move || write_atomically(&target, &bytes)).await;
        stored
            .map_err(std::io::Error::other)
            .and_then(|written| written)
            .map_err(|e| Failure::Errored(format!("storing the configuration: {e}")))?;
        self.shared
            .store
            .set_configuration_archive(self.run.configuration_version_id, &sha)
            .await
            .map_err(errored("recording the configuration"))?;
        Ok(path)
    }

    /// The run's commit from GitHub. A rate limit is waited out (GitHub resets one within the
    /// hour), not taken for a failure of the run.
    async fn download_tarball(&self, installation: InstallationId) -> Result<Vec<u8>, Failure> {
        let mut waited = Duration::ZERO;
        loop {
            let download = self.shared.github.download_tarball(
                installation,
                &self.run.repo,
                &self.run.commit_sha,
                MAX_TARBALL_BYTES,
            );
            match until_stopped(&self.stop, download).await? {
                Ok(bytes) => return Ok(bytes),
                Err(error)
                    if error
                        .retry_after()
                        .is_some_and(|wait| waited + wait <= MAX_RATE_LIMIT_WAIT) =>
                {
                    let wait = error.retry_after().unwrap_or_default();
                    tracing::info!(
                        run_id = %self.run.id,
                        wait_secs = wait.as_secs(),
                        "fetching the configuration after GitHub's rate limit"
                    );
                    until_stopped(&self.stop, tokio::time::sleep(wait)).await?;
                    waited += wait;
                }
                Err(error) => {
                    return Err(Failure::Errored(format!(
                        "fetching the configuration: {error}"
                    )));
                }
            }
        }
    }

    /// A fresh copy of the configuration in the run's own directory. Unpacking is blocking file
    /// work (a repository's tarball can take a while), so it runs off the async workers: on a
    /// small machine there may be only one, and webhooks wait for it.
    pub(super) async fn unpack(&self, archive: &Path) -> Result<(), Failure> {
        let run_dir = self.run_dir();
        let archive = archive.to_path_buf();
        // GitHub wraps the repository in one directory (owner-repo-sha/); an upload holds
        // the files at its root.
        let strip = if self.run.uploaded { 0 } else { 1 };
        tokio::task::spawn_blocking(move || unpack_into(&run_dir, &archive, strip))
            .await
            .map_err(|e| Failure::Errored(format!("unpacking the configuration: {e}")))??;
        if !self.working_dir().is_dir() {
            return Err(Failure::Errored(format!(
                "the working directory {:?} is not in the configuration",
                self.workspace.spec.working_directory
            )));
        }
        Ok(())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.is_file() {
        return Ok(()); // content-addressed: the same name holds the same bytes
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let mut temp = tempfile::NamedTempFile::new_in(parent)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Empties `run_dir` and unpacks `archive` into its configuration directory.
fn unpack_into(run_dir: &Path, archive: &Path, strip: usize) -> Result<(), Failure> {
    let dir = run_dir.join(CONFIG_DIR);
    let _ = std::fs::remove_dir_all(run_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Errored(format!("creating the run's directory: {e}")))?;
    let file = std::fs::File::open(archive)
        .map_err(|e| Failure::Errored(format!("opening the configuration: {e}")))?;
    extract_tar_gz(
        std::io::BufReader::new(file),
        &dir,
        strip,
        Limits::default(),
    )
    .map_err(|e| Failure::Errored(format!("the configuration was rejected: {e}")))?;
    Ok(())
}
