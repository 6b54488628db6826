//! `X-Hub-Signature-256`: HMAC-SHA256 of the raw body, compared in constant time, against every
//! configured secret (several during a rotation). Knows nothing of HTTP or payloads.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused; the text is safe to show the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("malformed X-Hub-Signature-256 header (expected sha256=<64 hex digits>)")]
    Malformed,
    #[error("signature does not match the payload")]
    Mismatch,
}

/// The webhook secrets, each already keyed into an HMAC state so a request only hashes its body.
#[derive(Clone)]
pub struct WebhookSecrets {
    keyed: Vec<HmacSha256>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets({} redacted)", self.keyed.len())
    }
}

impl WebhookSecrets {
    pub fn new(secrets: &[SecretString]) -> Self {
        let keyed = secrets
            .iter()
            .map(|s| {
                HmacSha256::new_from_slice(s.expose_secret().as_bytes())
                    .expect("HMAC accepts keys of any length")
            })
            .collect();
        Self { keyed }
    }

    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty()
    }

    /// Checks `header` (the value of `X-Hub-Signature-256`) against `body`.
    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let expected = parse_header(header)?;
        let matches = self.keyed.iter().any(|keyed| {
            let mut mac = keyed.clone();
            mac.update(body);
            // verify_slice compares in constant time.
            mac.verify_slice(&expected).is_ok()
        });
        if matches {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

fn parse_header(header: &[u8]) -> Result<[u8; 32], SignatureError> {
    let hex_digest = header
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed)?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| SignatureError::Malformed)?;
    Ok(digest)
}

/// The header value GitHub would send for `body` signed with `secret`; for tests, the load
/// generator and the demo's stand-in GitHub.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's documented example ("Validating webhook deliveries").
    const DOC_SECRET: &str = "It's a Secret to Everybody";
    const DOC_BODY: &[u8] = b"Hello, World!";
    const DOC_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn secrets(list: &[&str]) -> WebhookSecrets {
        let list: Vec<SecretString> = list.iter().map(|s| SecretString::from(*s)).collect();
        WebhookSecrets::new(&list)
    }

    #[test]
    fn signs_githubs_documented_vector() {
        assert_eq!(sign(DOC_SECRET, DOC_BODY), DOC_SIGNATURE);
    }

    #[test]
    fn accepts_githubs_documented_vector() {
        let verified = secrets(&[DOC_SECRET]).verify(Some(DOC_SIGNATURE.as_bytes()), DOC_BODY);
        assert_eq!(verified, Ok(()));
    }

    #[test]
    fn accepts_any_of_several_secrets_during_rotation() {
        let s = secrets(&["new secret", DOC_SECRET]);
        assert_eq!(s.verify(Some(DOC_SIGNATURE.as_bytes()), DOC_BODY), Ok(()));
    }

    #[test]
    fn refuses_a_body_changed_by_one_byte() {
        let s = secrets(&[DOC_SECRET]);
        let verified = s.verify(Some(DOC_SIGNATURE.as_bytes()), b"Hello, World?");
        assert_eq!(verified, Err(SignatureError::Mismatch));
    }

    #[test]
    fn refuses_the_wrong_secret() {
        let s = secrets(&["another secret"]);
        let verified = s.verify(Some(DOC_SIGNATURE.as_bytes()), DOC_BODY);
        assert_eq!(verified, Err(SignatureError::Mismatch));
    }

    #[test]
    fn refuses_a_missing_header() {
        assert_eq!(
            secrets(&[DOC_SECRET]).verify(None, DOC_BODY),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn refuses_malformed_headers() {
        let s = secrets(&[DOC_SECRET]);
        for header in [
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=757107ea",
            "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=",
        ] {
            assert_eq!(
                s.verify(Some(header.as_bytes()), DOC_BODY),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
    }

    #[test]
    fn debug_does_not_show_the_secrets() {
        assert_eq!(
            format!("{:?}", secrets(&[DOC_SECRET])),
            "WebhookSecrets(1 redacted)"
        );
    }
}
