//! The GitHub App's credentials and the setup token that the manifest flow leaves in the data
//! directory (private files), written here and read back by `validate.rs`.

use std::path::{Path, PathBuf};

use super::*;

/// Writes the app credentials the manifest flow received, readable only by the owner. Refuses
/// to replace credentials that exist already. Each file is written beside its final name and
/// renamed into place, so a crash leaves either the old file or the new one, never half of one.
pub fn store_app_credentials(
    data_dir: &Path,
    app_id: u64,
    private_key_pem: &str,
    webhook_secret: &str,
) -> std::io::Result<PathBuf> {
    let dir = data_dir.join(APP_CREDENTIALS_DIR);
    std::fs::create_dir_all(&dir)?;
    if dir.join(APP_ID_FILE).exists() || dir.join(PRIVATE_KEY_FILE).exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "GitHub App credentials exist already",
        ));
    }
    // The id goes last: until it is there, the next start sees no app.
    write_private(&dir.join(PRIVATE_KEY_FILE), private_key_pem)?;
    write_private(&dir.join(WEBHOOK_SECRET_FILE), webhook_secret)?;
    write_private(&dir.join(APP_ID_FILE), &app_id.to_string())?;
    std::fs::File::open(&dir)?.sync_all()?;
    Ok(dir)
}

/// Writes the one-time token that opens the GitHub App setup page, and returns where.
pub fn store_setup_token(data_dir: &Path, token: &str) -> std::io::Result<PathBuf> {
    let dir = data_dir.join(APP_CREDENTIALS_DIR);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(SETUP_TOKEN_FILE);
    write_private(&path, token)?;
    Ok(path)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    // `mode` only applies when the file is created; tighten a leftover one too.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}
