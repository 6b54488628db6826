//! The GitHub App's own identity: its id and private key, and the short-lived RS256 JWT signed
//! with that key. Must not log, format or hand out the private key; `Debug` redacts it.

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::GitHubError;

/// How far back `iat` is set, so a GitHub clock slightly behind ours still accepts the JWT
/// (GitHub recommends 60 seconds).
const CLOCK_DRIFT: TimeDelta = TimeDelta::seconds(60);

/// How long after `now` the JWT expires. GitHub refuses an `exp` more than 10 minutes ahead of
/// its own clock; 9 minutes leaves a minute for drift the other way.
const JWT_LIFETIME: TimeDelta = TimeDelta::minutes(9);

/// A GitHub App's id and private key, with the key already parsed: a value of this type always
/// holds a key that can sign.
#[derive(Clone)]
pub struct AppCredentials {
    app_id: u64,
    key: EncodingKey,
}

/// The claims GitHub reads from an app JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppJwtClaims {
    /// The app id, as a string: a JWT `iss` is a StringOrURI (RFC 7519) and GitHub's examples
    /// send a string (GitHub accepts the app id or the client id here).
    pub iss: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
}

impl AppCredentials {
    /// Parses the PEM private key (PKCS#1 `BEGIN RSA PRIVATE KEY`, as GitHub issues it, or
    /// PKCS#8) and checks it can sign, so a bad key fails at start rather than on the first call.
    pub fn new(app_id: u64, private_key: &SecretString) -> Result<Self, GitHubError> {
        let pem = private_key.expose_secret().as_bytes();
        let key = EncodingKey::from_rsa_pem(pem).map_err(|_| GitHubError::BadPrivateKey)?;
        let credentials = Self { app_id, key };
        // `from_rsa_pem` only decodes the PEM armour; signing once checks the RSA key inside.
        credentials
            .sign(&AppJwtClaims::at(app_id, DateTime::UNIX_EPOCH))
            .map_err(|_| GitHubError::BadPrivateKey)?;
        Ok(credentials)
    }

    /// The GitHub App id.
    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    /// A JWT that authenticates as the app, valid from a minute before `now` to 9 minutes after.
    pub fn app_jwt(&self, now: DateTime<Utc>) -> Result<SecretString, GitHubError> {
        let jwt = self
            .sign(&AppJwtClaims::at(self.app_id, now))
            .map_err(GitHubError::Signing)?;
        Ok(SecretString::from(jwt))
    }

    fn sign(&self, claims: &AppJwtClaims) -> jsonwebtoken::errors::Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &self.key)
    }
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("app_id", &self.app_id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl AppJwtClaims {
    /// The claims for a JWT made at `now`.
    pub fn at(app_id: u64, now: DateTime<Utc>) -> Self {
        Self {
            iss: app_id.to_string(),
            iat: (now - CLOCK_DRIFT).timestamp(),
            exp: (now + JWT_LIFETIME).timestamp(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const PRIVATE_KEY: &str = include_str!("../../fixtures/keys/test-app.pem");
    const PUBLIC_KEY: &str = include_str!("../../fixtures/keys/test-app.pub.pem");

    fn credentials() -> AppCredentials {
        AppCredentials::new(42, &SecretString::from(PRIVATE_KEY)).expect("fixture key is valid")
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("valid timestamp")
    }

    fn decode(jwt: &SecretString) -> AppJwtClaims {
        let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).expect("fixture public key");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        jsonwebtoken::decode::<AppJwtClaims>(jwt.expose_secret(), &key, &validation)
            .expect("signature verifies with the public key")
            .claims
    }

    #[test]
    fn claims_start_a_minute_early_and_last_nine_minutes() {
        let claims = AppJwtClaims::at(42, at(1_700_000_000));
        assert_eq!(
            claims,
            AppJwtClaims {
                iss: "42".to_owned(),
                iat: 1_700_000_000 - 60,
                exp: 1_700_000_000 + 9 * 60,
            }
        );
    }

    #[test]
    fn jwt_lifetime_stays_within_githubs_ten_minutes() {
        let claims = AppJwtClaims::at(42, at(1_700_000_000));
        assert!(claims.exp - claims.iat <= 600);
    }

    #[test]
    fn app_jwt_is_rs256_and_verifies_with_the_public_key() {
        let jwt = credentials().app_jwt(at(1_700_000_000)).unwrap();
        let header = jsonwebtoken::decode_header(jwt.expose_secret()).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(decode(&jwt), AppJwtClaims::at(42, at(1_700_000_000)));
    }

    #[test]
    fn pkcs8_keys_are_accepted_too() {
        let pkcs8 = include_str!("../../fixtures/keys/test-app.pkcs8.pem");
        let jwt = AppCredentials::new(42, &SecretString::from(pkcs8))
            .expect("PKCS#8 key is valid")
            .app_jwt(at(1_700_000_000))
            .unwrap();
        assert_eq!(decode(&jwt).iss, "42");
    }

    #[test]
    fn not_a_pem_is_a_bad_private_key() {
        let error = AppCredentials::new(42, &SecretString::from("not a key")).unwrap_err();
        assert!(matches!(error, GitHubError::BadPrivateKey));
    }

    #[test]
    fn pem_armour_around_garbage_is_a_bad_private_key() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nAAAAAAAAAAAA\n-----END RSA PRIVATE KEY-----\n";
        let error = AppCredentials::new(42, &SecretString::from(pem)).unwrap_err();
        assert!(matches!(error, GitHubError::BadPrivateKey));
    }

    #[test]
    fn bad_key_message_carries_no_key_material() {
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END RSA PRIVATE KEY-----\n";
        let error = AppCredentials::new(42, &SecretString::from(pem)).unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("c2VjcmV0LWJ5dGVz"), "{shown}");
    }

    #[test]
    fn debug_redacts_the_key() {
        let shown = format!("{:?}", credentials());
        assert!(
            shown.contains("REDACTED") && shown.contains("42"),
            "{shown}"
        );
        assert!(!shown.contains("MII"), "{shown}");
    }
}
