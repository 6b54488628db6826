//! Signed URLs for what the Terraform CLI sends or reads without a token: configuration
//! uploads, state downloads and uploads, and logs. The signature and its expiry live in the
//! path, because the CLI replaces a log URL's query with its own `offset` and `limit` and
//! re-encodes a state URL's query. The key is derived from the encryption key, so every
//! replica checks what another signed.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::Url;

use super::error::TfeError;
use crate::store::now_ms;

/// What a signed URL leads to; its name is the URL's first segment after `/_tfe/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    ConfigurationUpload,
    StateDownload,
    StateUpload,
    JsonStateUpload,
    PlanLog,
    ApplyLog,
}

impl Signed {
    pub fn as_str(self) -> &'static str {
        match self {
            Signed::ConfigurationUpload => "configuration-upload",
            Signed::StateDownload => "state",
            Signed::StateUpload => "state-upload",
            Signed::JsonStateUpload => "json-state-upload",
            Signed::PlanLog => "plan-log",
            Signed::ApplyLog => "apply-log",
        }
    }

    /// How long a URL works: a state's only briefly (it holds secrets); a log's as long as a
    /// slow plan may stream.
    fn valid_ms(self) -> i64 {
        match self {
            Signed::StateDownload => 10 * 60 * 1000,
            Signed::ConfigurationUpload | Signed::StateUpload | Signed::JsonStateUpload => {
                60 * 60 * 1000
            }
            Signed::PlanLog | Signed::ApplyLog => 24 * 60 * 60 * 1000,
        }
    }
}

/// Makes and checks signed URLs under Gantry's public URL.
pub struct Signer {
    key: [u8; 32],
    base: Url,
}

impl Signer {
    pub fn new(key: [u8; 32], base: Url) -> Self {
        Self { key, base }
    }

    /// The absolute URL of `what` number `id`.
    pub fn url(&self, what: Signed, id: i64) -> String {
        let expires = now_ms() + what.valid_ms();
        let signature = self.signature(what, id, expires);
        let path = format!("_tfe/{}/{id}/{expires}/{signature}", what.as_str());
        self.base
            .join(&path)
            .map(String::from)
            .unwrap_or_else(|_| format!("{}{path}", self.base))
    }

    /// Whether `signature` signs `what` number `id` until `expires`, which has not passed.
    /// Refused as not found: a wrong URL and an expired one look alike from outside.
    pub fn check(
        &self,
        what: Signed,
        id: i64,
        expires: i64,
        signature: &str,
    ) -> Result<(), TfeError> {
        let valid = hex::decode(signature)
            .is_ok_and(|given| self.mac(what, id, expires).verify_slice(&given).is_ok());
        if !valid || expires < now_ms() {
            return Err(TfeError::not_found(
                "this URL is not valid or has expired; ask the API for a new one",
            ));
        }
        Ok(())
    }

    fn signature(&self, what: Signed, id: i64, expires: i64) -> String {
        hex::encode(self.mac(what, id, expires).finalize().into_bytes())
    }

    fn mac(&self, what: Signed, id: i64, expires: i64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .expect("HMAC takes a key of any length");
        mac.update(format!("{}/{id}/{expires}", what.as_str()).as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new([7; 32], Url::parse("https://gantry.example/").unwrap())
    }

    fn parts(url: &str) -> (i64, i64, String) {
        let parts: Vec<&str> = url.rsplit('/').take(3).collect();
        (
            parts[2].parse().unwrap(),
            parts[1].parse().unwrap(),
            parts[0].to_string(),
        )
    }

    #[test]
    fn a_url_opens_what_it_was_signed_for_and_nothing_else() {
        let signer = signer();
        let url = signer.url(Signed::StateDownload, 12);
        assert!(url.starts_with("https://gantry.example/_tfe/state/12/"));
        let (id, expires, signature) = parts(&url);
        assert!(
            signer
                .check(Signed::StateDownload, id, expires, &signature)
                .is_ok()
        );
        assert!(
            signer
                .check(Signed::StateDownload, 13, expires, &signature)
                .is_err()
        );
        assert!(
            signer
                .check(Signed::StateUpload, id, expires, &signature)
                .is_err()
        );
        assert!(
            signer
                .check(Signed::StateDownload, id, expires + 1, &signature)
                .is_err()
        );
        let other = Signer::new([8; 32], Url::parse("https://gantry.example/").unwrap());
        assert!(
            other
                .check(Signed::StateDownload, id, expires, &signature)
                .is_err()
        );
    }

    #[test]
    fn an_expired_url_is_refused() {
        let signer = signer();
        let expires = now_ms() - 1;
        let signature = signer.signature(Signed::PlanLog, 1, expires);
        assert!(
            signer
                .check(Signed::PlanLog, 1, expires, &signature)
                .is_err()
        );
    }
}
