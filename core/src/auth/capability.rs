//! Capability URLs (off by default): for viewers that cannot send an `Authorization`
//! header, an ImagingStudy's Endpoint address can carry a signed, study-bound capability
//! `{dicomweb}/cap/{capability}`. It names one study and carries what the granting token
//! allowed on it: the token's issuer, its patient and its granular restrictions. It is
//! issued only when that token could itself read (`r`) the study, and every use checks
//! again that the study still belongs to that (issuer, patient) and meets those
//! restrictions, so removing a patient link ends the capabilities that relied on it. It
//! expires when the token does, and at the latest [`CapabilityKey::max_lifetime`] after
//! it was issued. The router serves only that study's resources under it, so appending
//! path segments cannot reach anything else.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use super::Restriction;

const AUDIENCE: &str = "sia:capability";

/// Default upper bound on a capability's lifetime, whatever the token's: 5 minutes.
pub const DEFAULT_MAX_LIFETIME: i64 = 300;

#[derive(Serialize, Deserialize)]
struct Claims {
    aud: String,
    /// The study.
    sub: String,
    exp: i64,
    iat: i64,
    /// The granting token's issuer.
    iss: String,
    /// The granting token's FHIR Patient id.
    pat: String,
    /// The granting token's granular restrictions (modality codes; a study must have
    /// every code of at least one set); absent = unrestricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rst: Option<Vec<Vec<String>>>,
}

/// What a genuine, unexpired capability grants: one study, for what the token that
/// produced it allowed (the router checks this again on every use).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapabilityGrant {
    /// Study Instance UID.
    pub study: String,
    /// The granting token's issuer.
    pub iss: String,
    /// The granting token's FHIR Patient id.
    pub patient: String,
    /// The granting token's granular restrictions.
    pub restrictions: Option<Vec<Vec<Restriction>>>,
}

/// Signs and checks capabilities with a key of this process (or from a file).
#[derive(Clone)]
pub struct CapabilityKey {
    secret: Vec<u8>,
    max_lifetime: i64,
}

impl std::fmt::Debug for CapabilityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CapabilityKey(..)")
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl CapabilityKey {
    /// A key from secret bytes (at least 32).
    pub fn new(secret: Vec<u8>) -> Result<CapabilityKey, String> {
        if secret.len() < 32 {
            return Err("a capability secret must be at least 32 bytes".into());
        }
        Ok(CapabilityKey {
            secret,
            max_lifetime: DEFAULT_MAX_LIFETIME,
        })
    }

    /// A random key for this process (capabilities then end with it).
    pub fn random() -> std::io::Result<CapabilityKey> {
        use std::io::Read;
        let mut secret = vec![0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
        Ok(CapabilityKey {
            secret,
            max_lifetime: DEFAULT_MAX_LIFETIME,
        })
    }

    /// The same key with another upper bound on lifetimes (seconds, at least 1).
    pub fn with_max_lifetime(mut self, seconds: i64) -> CapabilityKey {
        self.max_lifetime = seconds.max(1);
        self
    }

    /// The longest a capability lives, whatever its token's expiry (seconds).
    pub fn max_lifetime(&self) -> i64 {
        self.max_lifetime
    }

    /// A capability for `study` on behalf of a token of issuer `iss` for FHIR Patient
    /// `patient` with granular `restrictions`, valid until the token's `token_exp` or
    /// [`Self::max_lifetime`] from now, whichever comes first. The caller must have
    /// checked that the token may read the study.
    pub fn issue(
        &self,
        study: &str,
        iss: &str,
        patient: &str,
        restrictions: Option<&[Vec<Restriction>]>,
        token_exp: i64,
    ) -> String {
        let iat = now();
        let claims = Claims {
            aud: AUDIENCE.into(),
            sub: study.into(),
            exp: token_exp.min(iat.saturating_add(self.max_lifetime)),
            iat,
            iss: iss.into(),
            pat: patient.into(),
            rst: restrictions.map(|sets| {
                sets.iter()
                    .map(|set| {
                        set.iter()
                            .map(|r| match r {
                                Restriction::Modality(m) => m.clone(),
                            })
                            .collect()
                    })
                    .collect()
            }),
        };
        let key = EncodingKey::from_secret(&self.secret).expect("the secret is not empty");
        super::crypto_provider();
        encode(&Header::new(Algorithm::HS256), &claims, &key).expect("serialisable claims")
    }

    /// What a capability grants, if it is genuine, unexpired and within the lifetime bound.
    pub fn check(&self, capability: &str) -> Result<CapabilityGrant, String> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["exp", "aud", "sub"]);
        let key = DecodingKey::from_secret(&self.secret).map_err(|_| "bad key".to_string())?;
        super::crypto_provider();
        let c = decode::<Claims>(capability, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "the capability has expired".to_string()
                }
                _ => "the capability is not valid".to_string(),
            })?;
        // jsonwebtoken accepts a token in the very second of its exp; RFC 7519 §4.1.4
        // does not. The bound holds even for capabilities issued under a longer one.
        let t = now();
        if t >= c.exp || t >= c.iat.saturating_add(self.max_lifetime) {
            return Err("the capability has expired".into());
        }
        if c.iss.is_empty() || c.pat.is_empty() {
            return Err("the capability is not valid".into());
        }
        Ok(CapabilityGrant {
            study: c.sub,
            iss: c.iss,
            patient: c.pat,
            restrictions: c.rst.map(|sets| {
                sets.into_iter()
                    .map(|set| set.into_iter().map(Restriction::Modality).collect())
                    .collect()
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_name_one_study_and_expire() {
        let k = CapabilityKey::new(vec![7; 32]).unwrap();
        let now = now();
        let g = k
            .check(&k.issue("1.2.3", "https://ehr", "123", None, now + 60))
            .unwrap();
        assert_eq!(
            (g.study.as_str(), g.iss.as_str(), g.patient.as_str()),
            ("1.2.3", "https://ehr", "123")
        );
        assert!(
            k.check(&k.issue("1.2.3", "https://ehr", "123", None, now - 1))
                .unwrap_err()
                .contains("expired")
        );
        // RFC 7519 §4.1.4: not accepted in the second of its exp (leeway 0), accepted
        // the second before.
        assert!(
            k.check(&k.issue("1.2.3", "https://ehr", "123", None, now))
                .unwrap_err()
                .contains("expired")
        );
        assert!(
            k.check(&k.issue("1.2.3", "https://ehr", "123", None, now + 2))
                .is_ok()
        );
        let other = CapabilityKey::new(vec![8; 32]).unwrap();
        assert!(
            other
                .check(&k.issue("1.2.3", "https://ehr", "123", None, now + 60))
                .is_err()
        );
        assert!(k.check("a.b.c").is_err());
        // Restrictions travel with the capability.
        let r = vec![vec![Restriction::Modality("CT".into())]];
        let g = k
            .check(&k.issue("1.2.3", "i", "p", Some(&r), now + 60))
            .unwrap();
        assert_eq!(g.restrictions, Some(r));
    }

    #[test]
    fn capabilities_live_no_longer_than_the_bound() {
        let long = CapabilityKey::new(vec![7; 32])
            .unwrap()
            .with_max_lifetime(3600);
        let short = long.clone().with_max_lifetime(1);
        // Issued under the long bound (backdated past the short one): the short bound wins.
        let mut claims: serde_json::Value = serde_json::json!({
            "aud": AUDIENCE, "sub": "1.2.3", "exp": now() + 3000, "iat": now() - 10,
            "iss": "i", "pat": "p"});
        let key = EncodingKey::from_secret(&[7; 32]).unwrap();
        let cap = encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
        assert!(long.check(&cap).is_ok());
        assert!(short.check(&cap).unwrap_err().contains("expired"));
        // A token that lives a day yields a capability that lives the bound.
        let cap = short.issue("1.2.3", "i", "p", None, now() + 86_400);
        let payload = cap.split('.').nth(1).unwrap();
        use base64::Engine as _;
        claims = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert!(claims["exp"].as_i64().unwrap() <= now() + 1);
    }
}
