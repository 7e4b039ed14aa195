//! JWS signature algorithms (RFC 7518 §3.1) as sia names them in its public API, and the
//! signing sia does itself: client assertions for an issuer's token and introspection
//! endpoints (RFC 7523 §2.2, SMART Backend Services).
//!
//! The JWT library sia verifies with stays out of every public signature: a host names an
//! algorithm as [`JwsAlgorithm`] (or its RFC 7518 name) and never needs that library's
//! types, so upgrading or replacing it is not a breaking change.

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// A JWS signature algorithm an issuer may sign access tokens with, or a host may sign its
/// client assertions with (RFC 7518 §3.1; `EdDSA` from RFC 8037). `none` is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwsAlgorithm {
    /// HMAC with SHA-256 (a shared secret of at least 32 bytes).
    HS256,
    /// HMAC with SHA-384 (at least 48 bytes).
    HS384,
    /// HMAC with SHA-512 (at least 64 bytes).
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

const ALL: [JwsAlgorithm; 12] = [
    JwsAlgorithm::HS256,
    JwsAlgorithm::HS384,
    JwsAlgorithm::HS512,
    JwsAlgorithm::RS256,
    JwsAlgorithm::RS384,
    JwsAlgorithm::RS512,
    JwsAlgorithm::PS256,
    JwsAlgorithm::PS384,
    JwsAlgorithm::PS512,
    JwsAlgorithm::ES256,
    JwsAlgorithm::ES384,
    JwsAlgorithm::EdDSA,
];

impl JwsAlgorithm {
    /// Its `alg` header value (`"RS256"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlgorithm::HS256 => "HS256",
            JwsAlgorithm::HS384 => "HS384",
            JwsAlgorithm::HS512 => "HS512",
            JwsAlgorithm::RS256 => "RS256",
            JwsAlgorithm::RS384 => "RS384",
            JwsAlgorithm::RS512 => "RS512",
            JwsAlgorithm::PS256 => "PS256",
            JwsAlgorithm::PS384 => "PS384",
            JwsAlgorithm::PS512 => "PS512",
            JwsAlgorithm::ES256 => "ES256",
            JwsAlgorithm::ES384 => "ES384",
            JwsAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// Whether it is an HMAC (a shared secret, not a key pair).
    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            JwsAlgorithm::HS256 | JwsAlgorithm::HS384 | JwsAlgorithm::HS512
        )
    }

    /// Whether it signs with an RSA key.
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            JwsAlgorithm::RS256
                | JwsAlgorithm::RS384
                | JwsAlgorithm::RS512
                | JwsAlgorithm::PS256
                | JwsAlgorithm::PS384
                | JwsAlgorithm::PS512
        )
    }

    /// The least shared-secret length in bytes for an HMAC (RFC 7518 §3.2: at least the
    /// hash's output); `None` for the others.
    pub fn min_secret_len(self) -> Option<usize> {
        match self {
            JwsAlgorithm::HS256 => Some(32),
            JwsAlgorithm::HS384 => Some(48),
            JwsAlgorithm::HS512 => Some(64),
            _ => None,
        }
    }

    /// The JWT library's name for it.
    pub(crate) fn to_jwt(self) -> Algorithm {
        match self {
            JwsAlgorithm::HS256 => Algorithm::HS256,
            JwsAlgorithm::HS384 => Algorithm::HS384,
            JwsAlgorithm::HS512 => Algorithm::HS512,
            JwsAlgorithm::RS256 => Algorithm::RS256,
            JwsAlgorithm::RS384 => Algorithm::RS384,
            JwsAlgorithm::RS512 => Algorithm::RS512,
            JwsAlgorithm::PS256 => Algorithm::PS256,
            JwsAlgorithm::PS384 => Algorithm::PS384,
            JwsAlgorithm::PS512 => Algorithm::PS512,
            JwsAlgorithm::ES256 => Algorithm::ES256,
            JwsAlgorithm::ES384 => Algorithm::ES384,
            JwsAlgorithm::EdDSA => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwsAlgorithm {
    type Err = crate::Error;

    /// Parses an `alg` value exactly as RFC 7518 spells it (case-sensitive, RFC 7515
    /// §4.1.1).
    ///
    /// # Errors
    /// `InvalidInput` for anything else, `none` included.
    fn from_str(s: &str) -> crate::Result<JwsAlgorithm> {
        ALL.into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| crate::Error::invalid(format!("{s:?} is not a JWS algorithm")))
    }
}

/// The signing key of a PEM private key for `alg` (PKCS#8, or PKCS#1 for RSA / SEC1 for
/// EC).
fn encoding_key(pem: &str, alg: JwsAlgorithm) -> Result<EncodingKey, String> {
    let key = match alg {
        a if a.is_rsa() => EncodingKey::from_rsa_pem(pem.as_bytes()),
        JwsAlgorithm::ES256 | JwsAlgorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
        other => return Err(format!("{other} is not an algorithm for a client key")),
    };
    key.map_err(|e| format!("not a private key for {alg}: {e}"))
}

/// The algorithm a client key signs with: `asked`, else RS384 for an RSA key and ES384
/// for an EC key (what SMART Backend Services servers must support); the key must
/// really sign with it (checked by signing once).
pub(crate) fn client_key_alg(pem: &str, asked: Option<&str>) -> Result<JwsAlgorithm, String> {
    let alg = match asked {
        Some(a) => a
            .parse::<JwsAlgorithm>()
            .map_err(|_| format!("unknown algorithm {a}"))?,
        None if EncodingKey::from_rsa_pem(pem.as_bytes()).is_ok() => JwsAlgorithm::RS384,
        None => JwsAlgorithm::ES384,
    };
    let key = encoding_key(pem, alg)?;
    super::crypto_provider();
    jsonwebtoken::encode(
        &Header::new(alg.to_jwt()),
        &serde_json::json!({"test": true}),
        &key,
    )
    .map_err(|e| format!("the key cannot sign {alg}: {e}"))?;
    Ok(alg)
}

/// A client assertion (RFC 7523 §2.2): `iss` and `sub` `client_id`, `aud`, `iat` now,
/// `exp` five minutes later, `jti` as given (the caller makes it unique), signed with the
/// PEM key for `alg`, with `kid` in the header when given.
pub(crate) fn client_assertion(
    client_id: &str,
    key_pem: &str,
    alg: JwsAlgorithm,
    kid: Option<&str>,
    aud: &str,
    jti: &str,
) -> crate::Result<String> {
    let key =
        encoding_key(key_pem, alg).map_err(|e| crate::Error::new(crate::ErrorKind::Config, e))?;
    let mut header = Header::new(alg.to_jwt());
    header.kid = kid.map(str::to_string);
    header.typ = Some("JWT".into());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + 300,
        "jti": jti,
    });
    super::crypto_provider();
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| crate::Error::internal(format!("client assertion: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_none_is_refused() {
        for a in ALL {
            assert_eq!(a.as_str().parse::<JwsAlgorithm>().unwrap(), a);
            assert_eq!(
                format!("{:?}", a.to_jwt()),
                a.as_str(),
                "same name in the JWT library"
            );
        }
        for bad in ["none", "NONE", "rs256", "RS256 ", "", "HS1"] {
            assert!(bad.parse::<JwsAlgorithm>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn families() {
        assert!(JwsAlgorithm::HS384.is_hmac() && !JwsAlgorithm::HS384.is_rsa());
        assert!(JwsAlgorithm::PS512.is_rsa() && !JwsAlgorithm::PS512.is_hmac());
        assert!(!JwsAlgorithm::ES256.is_rsa() && !JwsAlgorithm::EdDSA.is_hmac());
        assert_eq!(JwsAlgorithm::HS512.min_secret_len(), Some(64));
        assert_eq!(JwsAlgorithm::RS256.min_secret_len(), None);
    }
}
