//! Sensitive variable values at rest: sealed with AES-256-GCM under a key that lives outside
//! the database (a file in the data dir, mode 0600, made on first start, or
//! `GANTRY_ENCRYPTION_KEY`), so that a copy of the database alone reveals no secret. A value
//! sealed under another key cannot be opened: it is unreadable, never silently wrong.
//!
//! Stored form: `enc:v1:<hex of 12-byte nonce ‖ ciphertext and tag>`.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, rand_core::RngCore};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use secrecy::{ExposeSecret, SecretString};

use super::{on_pool, on_read_pool};

/// The key file in the data dir.
pub const KEY_FILE: &str = "encryption-key";
const PREFIX: &str = "enc:v1:";
const NONCE_BYTES: usize = 12;

/// Seals and opens sensitive values.
#[derive(Clone)]
pub struct Cipher {
    key: Aes256Gcm,
    /// Signs the URLs the Terraform CLI uploads to and reads from without a token; derived
    /// from the encryption key, so every replica signs alike and no second secret is kept.
    url_signing_key: [u8; 32],
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(<key redacted>)")
    }
}

/// A sealed value that cannot be opened with this key.
#[derive(Debug, thiserror::Error)]
#[error("a sensitive value cannot be decrypted: it was sealed under another encryption key")]
pub struct Unreadable;

impl Cipher {
    /// The key from `configured` (64 hex digits) or, without one, from the data dir's key
    /// file, made with a fresh random key (mode 0600) the first time.
    pub fn load(data_dir: &Path, configured: Option<&SecretString>) -> anyhow::Result<Self> {
        let hex_key = match configured {
            Some(key) => key.expose_secret().trim().to_string(),
            None => read_or_create_key_file(&data_dir.join(KEY_FILE))?,
        };
        let bytes: [u8; 32] = hex::decode(&hex_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| anyhow::anyhow!("the encryption key must be 64 hexadecimal digits"))?;
        Ok(Self::from_key(&bytes))
    }

    fn from_key(bytes: &[u8; 32]) -> Self {
        use hmac::Mac;
        let mut derive = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(bytes)
            .expect("HMAC takes a key of any length");
        derive.update(b"gantry: signed URLs v1");
        Self {
            key: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*bytes)),
            url_signing_key: derive.finalize().into_bytes().into(),
        }
    }

    /// The key that signs URLs handed out without a token (never the encryption key itself).
    pub fn url_signing_key(&self) -> &[u8; 32] {
        &self.url_signing_key
    }

    pub fn seal(&self, value: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .key
            .encrypt(&Nonce::from(nonce), value.as_bytes())
            .expect("AES-GCM encrypts any message under 64 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", hex::encode(bytes))
    }

    pub fn open(&self, stored: &str) -> Result<String, Unreadable> {
        let bytes = stored
            .strip_prefix(PREFIX)
            .and_then(|hex_text| hex::decode(hex_text).ok())
            .filter(|b| b.len() > NONCE_BYTES)
            .ok_or(Unreadable)?;
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| Unreadable)?;
        let plain = self
            .key
            .decrypt(&Nonce::from(nonce), sealed)
            .map_err(|_| Unreadable)?;
        String::from_utf8(plain).map_err(|_| Unreadable)
    }
}

/// Whether a stored value is sealed already (values from before encryption are not).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

fn read_or_create_key_file(path: &Path) -> anyhow::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(text) = std::fs::read_to_string(path) {
        return Ok(text.trim().to_string());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    let text = hex::encode(key);
    // create_new: two servers starting at once on one data dir agree on the first key.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            Ok(text)
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().to_string())
        }
        Err(error) => Err(anyhow::anyhow!("writing {}: {error}", path.display())),
    }
}

impl super::Store {
    /// Seals the sensitive values stored in clear text (by a Gantry from before encryption);
    /// returns how many. Run at start, before a run reads them.
    pub async fn seal_clear_secrets(&self) -> anyhow::Result<usize> {
        let cipher = self.cipher()?;
        let mut sealed = 0;
        for (table, owner) in [
            ("workspace_variables", "workspace_id"),
            ("run_variables", "run_id"),
        ] {
            let rows: Vec<(i64, String, String, String)> = on_read_pool!(self, pool => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {owner}, category, key, value FROM {table} \
                     WHERE sensitive <> 0 AND value NOT LIKE '{PREFIX}%'"
                )))
                .fetch_all(pool)
                .await?
            });
            for (id, category, key, value) in rows {
                on_pool!(self, pool => {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE {table} SET value = $1 WHERE {owner} = $2 AND category = $3 \
                         AND key = $4 AND value = $5"
                    )))
                    .bind(cipher.seal(&value))
                    .bind(id)
                    .bind(&category)
                    .bind(&key)
                    .bind(&value)
                    .execute(pool)
                    .await?;
                });
                sealed += 1;
            }
        }
        Ok(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_only() {
        let cipher = Cipher::from_key(&[7; 32]);
        let sealed = cipher.seal("hunter2");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, cipher.seal("hunter2"), "a fresh nonce each time");
        assert_eq!(cipher.open(&sealed).unwrap(), "hunter2");
        let other = Cipher::from_key(&[8; 32]);
        assert!(other.open(&sealed).is_err(), "unreadable, not wrong");
        assert!(cipher.open("hunter2").is_err());
    }

    #[tokio::test]
    async fn values_stored_in_clear_text_are_sealed_once_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("gantry.toml");
        std::fs::write(
            &config,
            "[[workspaces]]\nname = \"prod\"\nrepo = \"o/r\"\n\
             [workspaces.vars]\npassword = \"hunter2\"\n",
        )
        .unwrap();
        let config =
            crate::config::Config::load(Some(&config), &std::collections::HashMap::new()).unwrap();
        let url = format!("sqlite:{}", dir.path().join("gantry.db").display());
        let cipher = Cipher::load(dir.path(), None).unwrap();
        let store = crate::store::Store::open(&SecretString::from(url))
            .await
            .unwrap()
            .with_cipher(cipher.clone());
        store
            .sync_config_workspaces(&config.workspaces)
            .await
            .unwrap();
        // As a Gantry from before encryption left it: sensitive, in clear text.
        on_pool!(store, pool => {
            sqlx::query("UPDATE workspace_variables SET sensitive = 1")
                .execute(pool)
                .await
                .map(|_| ())
                .unwrap()
        });
        assert_eq!(store.seal_clear_secrets().await.unwrap(), 1);
        let stored: String = on_read_pool!(store, pool => {
            sqlx::query_scalar("SELECT value FROM workspace_variables")
                .fetch_one(pool)
                .await
                .unwrap()
        });
        assert!(
            is_sealed(&stored) && !stored.contains("hunter2"),
            "{stored}"
        );
        assert_eq!(cipher.open(&stored).unwrap(), "hunter2");
        assert_eq!(store.seal_clear_secrets().await.unwrap(), 0, "sealed once");
    }

    #[test]
    fn the_key_file_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = Cipher::load(dir.path(), None).unwrap();
        let sealed = first.seal("x");
        let again = Cipher::load(dir.path(), None).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "x");
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let configured = SecretString::from("ab".repeat(32));
        let from_env = Cipher::load(dir.path(), Some(&configured)).unwrap();
        assert!(from_env.open(&sealed).is_err());
        assert!(Cipher::load(dir.path(), Some(&SecretString::from("short"))).is_err());
    }
}
