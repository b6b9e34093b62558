//! etcd's JWT tokens (`--auth-token jwt,pub-key=<file>,priv-key=<file>,sign-method=<alg>,
//! ttl=<duration>`): a token is a JWT signed with the member's private key whose claims are
//! the user name, the auth revision it was issued at and its expiry (`username`, `revision`,
//! `exp`, as etcd writes them), so any member with the public key accepts it without having
//! seen it issued. A token issued before an auth change no longer passes the checks (its
//! revision is old): clients authenticate again, as with etcd.
//!
//! Invariant: a token is accepted only with a valid signature by the configured method, before
//! its expiry (wall clock), and names the revision it was issued at.

use crate::auth::AuthInfo;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// etcd's default lifetime of a JWT token.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// The `jwt,...` options of `--auth-token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtOptions {
    /// `pub-key`: the PEM public key tokens are verified with.
    pub pub_key: PathBuf,
    /// `priv-key`: the PEM private key tokens are signed with (a member without one only
    /// verifies).
    pub priv_key: Option<PathBuf>,
    /// `sign-method`: RS256/384/512, PS256/384/512, ES256/384 or EdDSA.
    pub sign_method: String,
    /// `ttl`: how long a token is valid.
    pub ttl: Duration,
}

/// Why JWT tokens cannot be used as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// A malformed or incomplete `--auth-token jwt,...` value.
    #[error("auth: invalid auth options: {0}")]
    Options(String),
    /// A key file that cannot be read or is not a key for the sign method.
    #[error("auth: jwt key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Signing failed (or this member has no private key).
    #[error("auth: cannot sign a jwt token: {0}")]
    Sign(String),
}

impl JwtOptions {
    /// Parses the options after `jwt,` (`key=value` pairs separated by commas).
    pub fn parse(options: &str) -> Result<JwtOptions, JwtError> {
        let (mut pub_key, mut priv_key, mut method, mut ttl) = (None, None, None, DEFAULT_TTL);
        for pair in options.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| JwtError::Options(format!("{pair:?} is not key=value")))?;
            match k {
                "pub-key" => pub_key = Some(PathBuf::from(v)),
                "priv-key" => priv_key = Some(PathBuf::from(v)),
                "sign-method" => method = Some(v.to_owned()),
                "ttl" => {
                    ttl = crate::gofmt::parse_duration(v)
                        .map_err(|e| JwtError::Options(format!("ttl: {e}")))?
                }
                other => return Err(JwtError::Options(format!("unknown option {other:?}"))),
            }
        }
        let pub_key = pub_key.ok_or_else(|| JwtError::Options("pub-key is required".into()))?;
        let sign_method =
            method.ok_or_else(|| JwtError::Options("sign-method is required".into()))?;
        algorithm(&sign_method)?;
        Ok(JwtOptions {
            pub_key,
            priv_key,
            sign_method,
            ttl,
        })
    }
}

fn algorithm(method: &str) -> Result<Algorithm, JwtError> {
    let alg: Algorithm = method
        .parse()
        .map_err(|_| JwtError::Options(format!("unknown sign-method {method:?}")))?;
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Err(JwtError::Options(format!(
            "sign-method {method} is not supported (use RS*, PS*, ES256/384 or EdDSA)"
        ))),
        alg => Ok(alg),
    }
}

/// A token's claims (etcd's names).
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// The keys of one member.
pub struct JwtKeys {
    algorithm: Algorithm,
    verify: DecodingKey,
    sign: Option<EncodingKey>,
    ttl: Duration,
}

fn read(path: &Path) -> Result<Vec<u8>, JwtError> {
    crate::io::read_flag_file(path).map_err(|e| JwtError::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl JwtKeys {
    /// Loads the keys `options` name.
    pub fn load(options: &JwtOptions) -> Result<JwtKeys, JwtError> {
        let algorithm = algorithm(&options.sign_method)?;
        let bad = |path: &Path| {
            let path = path.to_path_buf();
            move |e: jsonwebtoken::errors::Error| JwtError::Key {
                path,
                reason: e.to_string(),
            }
        };
        let pem = read(&options.pub_key)?;
        let verify = match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
            _ => DecodingKey::from_rsa_pem(&pem),
        }
        .map_err(bad(&options.pub_key))?;
        let sign = match &options.priv_key {
            None => None,
            Some(path) => {
                let pem = read(path)?;
                Some(
                    match algorithm {
                        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
                        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                        _ => EncodingKey::from_rsa_pem(&pem),
                    }
                    .map_err(bad(path))?,
                )
            }
        };
        Ok(JwtKeys {
            algorithm,
            verify,
            sign,
            ttl: options.ttl,
        })
    }

    /// A token for `user` at auth revision `revision`, valid for the TTL from now.
    pub fn issue(&self, user: &str, revision: u64) -> Result<String, JwtError> {
        let key = self
            .sign
            .as_ref()
            .ok_or_else(|| JwtError::Sign("this member has no priv-key".into()))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let claims = Claims {
            username: user.to_owned(),
            revision,
            exp: (now + self.ttl).as_secs(),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key)
            .map_err(|e| JwtError::Sign(e.to_string()))
    }

    /// Who `token` names, if its signature and expiry hold.
    pub fn verify(&self, token: &str) -> Option<AuthInfo> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.required_spec_claims = ["exp".to_owned()].into_iter().collect();
        let data = jsonwebtoken::decode::<Claims>(token, &self.verify, &validation).ok()?;
        Some(AuthInfo {
            user: data.claims.username,
            revision: data.claims.revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &Path, ttl: &str) -> JwtKeys {
        let key = rcgen::KeyPair::generate().expect("key");
        let (pub_key, priv_key) = (dir.join("jwt.pub"), dir.join("jwt.key"));
        std::fs::write(&pub_key, key.public_key_pem()).unwrap();
        std::fs::write(&priv_key, key.serialize_pem()).unwrap();
        let flag = format!(
            "pub-key={},priv-key={},sign-method=ES256,ttl={ttl}",
            pub_key.display(),
            priv_key.display()
        );
        JwtKeys::load(&JwtOptions::parse(&flag).unwrap()).unwrap()
    }

    #[test]
    fn tokens_name_their_user_and_revision_and_forgeries_fail() {
        let dir = tempfile::tempdir().unwrap();
        let ours = keys(dir.path(), "5m");
        let token = ours.issue("alice", 7).unwrap();
        let who = ours.verify(&token).unwrap();
        assert_eq!((who.user.as_str(), who.revision), ("alice", 7));
        let other = tempfile::tempdir().unwrap();
        let theirs = keys(other.path(), "5m");
        assert!(theirs.verify(&token).is_none(), "signed with another key");
        assert!(ours.verify(&format!("{token}x")).is_none());
        assert!(ours.verify("not-a-jwt").is_none());
    }

    #[test]
    fn options_are_checked() {
        assert!(JwtOptions::parse("sign-method=RS256").is_err());
        assert!(JwtOptions::parse("pub-key=a,sign-method=HS256").is_err());
        assert!(JwtOptions::parse("pub-key=a,sign-method=XX").is_err());
        assert!(JwtOptions::parse("pub-key=a,sign-method=RS256,bogus=1").is_err());
        let o = JwtOptions::parse("pub-key=a,sign-method=RS256,ttl=10m").unwrap();
        assert_eq!(o.ttl, Duration::from_secs(600));
        assert_eq!(o.priv_key, None);
    }
}
