//! Capability URLs (off by default): for viewers that cannot send an `Authorization`
//! header, an ImagingStudy's Endpoint address can carry a signed, study-bound capability
//! `{dicomweb}/cap/{capability}`. It names one study and expires when the token that
//! produced it does; the router serves only that study's resources under it, so
//! appending path segments cannot reach anything else.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

const AUDIENCE: &str = "sia:capability";

#[derive(Serialize, Deserialize)]
struct Claims {
    aud: String,
    /// The study.
    sub: String,
    exp: i64,
}

/// Signs and checks capabilities with a key of this process (or from a file).
#[derive(Clone)]
pub struct CapabilityKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for CapabilityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CapabilityKey(..)")
    }
}

impl CapabilityKey {
    /// A key from secret bytes (at least 32).
    pub fn new(secret: Vec<u8>) -> Result<CapabilityKey, String> {
        if secret.len() < 32 {
            return Err("a capability secret must be at least 32 bytes".into());
        }
        Ok(CapabilityKey { secret })
    }

    /// A random key for this process (capabilities then end with it).
    pub fn random() -> std::io::Result<CapabilityKey> {
        use std::io::Read;
        let mut secret = vec![0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
        Ok(CapabilityKey { secret })
    }

    /// A capability for `study`, valid until `exp` (the granting token's expiry).
    pub fn issue(&self, study: &str, exp: i64) -> String {
        let claims = Claims {
            aud: AUDIENCE.into(),
            sub: study.into(),
            exp,
        };
        let key = EncodingKey::from_secret(&self.secret).expect("the secret is not empty");
        encode(&Header::new(Algorithm::HS256), &claims, &key).expect("serialisable claims")
    }

    /// The study a capability grants, if it is genuine and unexpired.
    pub fn check(&self, capability: &str) -> Result<String, String> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["exp", "aud", "sub"]);
        let key = DecodingKey::from_secret(&self.secret).map_err(|_| "bad key".to_string())?;
        decode::<Claims>(capability, &key, &v)
            .map(|d| d.claims.sub)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "the capability has expired".to_string()
                }
                _ => "the capability is not valid".to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_name_one_study_and_expire() {
        let k = CapabilityKey::new(vec![7; 32]).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert_eq!(k.check(&k.issue("1.2.3", now + 60)).unwrap(), "1.2.3");
        assert!(
            k.check(&k.issue("1.2.3", now - 1))
                .unwrap_err()
                .contains("expired")
        );
        let other = CapabilityKey::new(vec![8; 32]).unwrap();
        assert!(other.check(&k.issue("1.2.3", now + 60)).is_err());
        assert!(k.check("a.b.c").is_err());
    }
}
