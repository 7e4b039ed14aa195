//! Offline verification of JWT access tokens against configured issuers.
//!
//! The checks follow RFC 8725 and the sia design: the algorithm must be on the issuer's
//! allow-list (never `none`, HMAC only for an issuer configured with a shared secret);
//! `kid` selects exactly one key whose `kty` (and curve) fits the algorithm and whose
//! own `alg`, if present, is the same; keys named in the header (`jwk`, `jku`, `x5u`,
//! `x5c`) are never used; `exp` is required and numeric; `nbf`/`iat` are numeric and not
//! in the future; `iss` is exact; `aud` (string or array of strings) must contain a
//! configured audience; a malformed standard claim rejects the token. jsonwebtoken
//! checks only the signature: every claim rule is here, typed strictly (its older
//! releases skipped wrongly typed `exp`, CVE-2026-25537).

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::jws::JwsAlgorithm;
use serde_json::Value;

/// How an issuer's tokens are checked. Build one with [`IssuerPolicy::new`].
#[derive(Clone)]
#[non_exhaustive]
pub struct IssuerPolicy {
    /// `iss`, exactly.
    pub iss: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// Allowed algorithms.
    pub algorithms: Vec<JwsAlgorithm>,
    /// Clock skew allowed, seconds.
    pub leeway: i64,
    /// Required `typ` (e.g. `at+jwt`), if any.
    pub require_typ: Option<String>,
    /// Claim holding the FHIR Patient id.
    pub patient_claim: String,
    /// Claim holding the scopes.
    pub scope_claim: String,
    /// Verification keys.
    pub keys: Keys,
}

impl IssuerPolicy {
    /// A policy for issuer `iss` (exactly its tokens' `iss`) whose tokens are for one of
    /// `audiences`, signed with one of `algorithms` (`"RS256"`, `"ES256"`, `"HS256"`, ...,
    /// RFC 7518 §3.1) and verified with `keys`; the other settings are a configuration
    /// file's defaults: 30 s leeway, no required `typ`, the `patient` and `scope` claims.
    ///
    /// # Errors
    /// `InvalidInput` for an unknown algorithm, none at all, or a shared secret with an
    /// algorithm other than HS256/384/512.
    pub fn new(
        iss: &str,
        audiences: &[&str],
        algorithms: &[&str],
        keys: Keys,
    ) -> crate::Result<IssuerPolicy> {
        let algorithms = algorithms
            .iter()
            .map(|a| a.parse::<JwsAlgorithm>())
            .collect::<crate::Result<Vec<_>>>()?;
        if algorithms.is_empty() {
            return Err(crate::Error::invalid(
                "an issuer needs at least one algorithm",
            ));
        }
        if keys.is_shared_secret() && !algorithms.iter().all(|a| a.is_hmac()) {
            return Err(crate::Error::invalid(
                "a shared secret allows HS256/384/512 only",
            ));
        }
        Ok(IssuerPolicy {
            iss: iss.to_string(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            algorithms,
            leeway: 30,
            require_typ: None,
            patient_claim: "patient".into(),
            scope_claim: "scope".into(),
            keys,
        })
    }
}

/// Where an issuer's verification keys come from: a JWKS (RFC 7517 §5) or an HMAC shared
/// secret. Opaque, so the JWT library sia verifies with is not part of the API.
#[derive(Clone)]
pub struct Keys(pub(crate) KeySource);

/// What [`Keys`] holds.
#[derive(Clone)]
pub(crate) enum KeySource {
    /// A JWKS (from a file, or handed over by the host for `jwks_url`).
    Jwks(JwkSet),
    /// An HMAC shared secret (HS256/384/512 only).
    Secret(Vec<u8>),
}

impl Keys {
    /// An HMAC shared secret (HS256/384/512; RFC 7518 §3.2 wants at least as many
    /// bytes as the hash has).
    pub fn shared_secret(secret: &[u8]) -> Keys {
        Keys(KeySource::Secret(secret.to_vec()))
    }

    /// A JWKS (RFC 7517 §5) from its JSON text (`{"keys": [...]}`).
    ///
    /// # Errors
    /// `InvalidInput` when it is not a JWKS.
    pub fn jwks_json(json: &str) -> crate::Result<Keys> {
        serde_json::from_str::<JwkSet>(json)
            .map(|set| Keys(KeySource::Jwks(set)))
            .map_err(|e| crate::Error::invalid(format!("not a JWKS: {e}")))
    }

    /// A JWKS with no key yet: an issuer whose keys the host fetches from its `jwks_url`
    /// later ([`crate::Engine::unknown_kid`]), or one whose tokens are only introspected.
    pub fn empty_jwks() -> Keys {
        Keys(KeySource::Jwks(JwkSet { keys: Vec::new() }))
    }

    /// Whether these keys are a shared secret (else a JWKS).
    pub fn is_shared_secret(&self) -> bool {
        matches!(self.0, KeySource::Secret(_))
    }

    /// The `kid` of each JWKS key, in order (`""` for a key without one); empty for a
    /// shared secret.
    pub fn key_ids(&self) -> Vec<String> {
        match &self.0 {
            KeySource::Jwks(set) => set
                .keys
                .iter()
                .map(|k| k.common.key_id.clone().unwrap_or_default())
                .collect(),
            KeySource::Secret(_) => Vec::new(),
        }
    }

    /// Whether a JWKS key has `kid` (false for a shared secret).
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        match &self.0 {
            KeySource::Jwks(set) => set
                .keys
                .iter()
                .any(|k| k.common.key_id.as_deref() == Some(kid)),
            KeySource::Secret(_) => false,
        }
    }

    /// These keys without the JWKS keys that must not verify tokens of `iss`
    /// ([`screen_jwks`]); a shared secret unchanged.
    pub(crate) fn screened(self, iss: &str) -> Keys {
        match self.0 {
            KeySource::Jwks(set) => Keys(KeySource::Jwks(screen_jwks(iss, set))),
            secret => Keys(secret),
        }
    }
}

/// What a verified access token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `iss`.
    pub iss: String,
    /// `sub`, if present.
    pub sub: Option<String>,
    /// `client_id`, if present.
    pub client_id: Option<String>,
    /// The scope string.
    pub scope: String,
    /// The FHIR Patient id in context, if any.
    pub patient: Option<String>,
    /// `fhirUser`, if present.
    pub fhir_user: Option<String>,
    /// `exp`, seconds since the epoch.
    pub exp: i64,
    /// `aud` (one or more audiences, one of them this server's).
    pub aud: Vec<String>,
}

fn b64(part: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| "token part is not base64url".to_string())
}

fn number(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f as i64)
    })
}

/// At most 64 characters of attacker-supplied text, for error messages (which end up in
/// `WWW-Authenticate` and logs): never the whole of a 60 kB `kid`.
pub fn clip(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => s.to_string(),
        Some((at, _)) => format!("{}...", &s[..at]),
    }
}

/// A whole message bounded to 256 characters (a backstop for what [`clip`] missed).
pub fn clip_message(s: &str) -> String {
    match s.char_indices().nth(256) {
        None => s.to_string(),
        Some((at, _)) => format!("{}...", &s[..at]),
    }
}

/// Least RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Why a JWK must not verify tokens, if it must not: an RSA key with a public exponent
/// below 65537 or even, or a modulus under [`MIN_RSA_BITS`]; a key whose `use` is not
/// `sig`, or whose `key_ops` lack `verify`.
pub fn refuse_key(jwk: &Jwk) -> Option<String> {
    use jsonwebtoken::jwk::{KeyOperations, PublicKeyUse};
    if let Some(u) = &jwk.common.public_key_use
        && !matches!(u, PublicKeyUse::Signature)
    {
        return Some("its use is not sig".into());
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.iter().any(|o| matches!(o, KeyOperations::Verify))
    {
        return Some("its key_ops do not include verify".into());
    }
    if let AlgorithmParameters::RSA(rsa) = &jwk.algorithm {
        let unsigned = |v: &str| -> Option<Vec<u8>> {
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(v.trim_end_matches('='))
                .ok()?;
            let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
            Some(b[first..].to_vec())
        };
        let (Some(n), Some(e)) = (unsigned(&rsa.n), unsigned(&rsa.e)) else {
            return Some("its n or e is not base64url".into());
        };
        let bits = n
            .first()
            .map_or(0, |&top| n.len() * 8 - top.leading_zeros() as usize);
        if bits < MIN_RSA_BITS {
            return Some(format!(
                "its RSA modulus has {bits} bits (at least {MIN_RSA_BITS})"
            ));
        }
        let odd = e.last().is_some_and(|&b| b & 1 == 1);
        let small =
            e.len() < 3 || (e.len() == 3 && u32::from_be_bytes([0, e[0], e[1], e[2]]) < 65_537);
        if !odd || small {
            return Some("its RSA public exponent is even or below 65537".into());
        }
    }
    None
}

/// The keys of `set` that may verify tokens of issuer `iss`; each refused key is logged
/// (to standard error) by `kid` with the reason.
pub fn screen_jwks(iss: &str, set: JwkSet) -> JwkSet {
    JwkSet {
        keys: set
            .keys
            .into_iter()
            .filter(|k| match refuse_key(k) {
                None => true,
                Some(why) => {
                    eprintln!(
                        "sia: refused key {:?} of issuer {:?}: {why}",
                        clip(k.common.key_id.as_deref().unwrap_or("")),
                        clip(iss)
                    );
                    false
                }
            })
            .collect(),
    }
}

fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use Algorithm::*;
    let kty_ok = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), RS256 | RS384 | RS512 | PS256 | PS384 | PS512) => true,
        (AlgorithmParameters::EllipticCurve(ec), ES256) => ec.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(ec), ES384) => ec.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(okp), EdDSA) => okp.curve == EllipticCurve::Ed25519,
        _ => false,
    };
    // The JWK's own alg, when stated, pins the algorithm (jsonwebtoken does not check it).
    let alg_ok = match jwk.common.key_algorithm {
        None => true,
        Some(ka) => key_algorithm_name(ka) == Some(alg),
    };
    let use_ok = jwk
        .common
        .public_key_use
        .as_ref()
        .is_none_or(|u| matches!(u, jsonwebtoken::jwk::PublicKeyUse::Signature));
    kty_ok && alg_ok && use_ok && refuse_key(jwk).is_none()
}

fn key_algorithm_name(ka: KeyAlgorithm) -> Option<Algorithm> {
    use Algorithm::*;
    Some(match ka {
        KeyAlgorithm::RS256 => RS256,
        KeyAlgorithm::RS384 => RS384,
        KeyAlgorithm::RS512 => RS512,
        KeyAlgorithm::PS256 => PS256,
        KeyAlgorithm::PS384 => PS384,
        KeyAlgorithm::PS512 => PS512,
        KeyAlgorithm::ES256 => ES256,
        KeyAlgorithm::ES384 => ES384,
        KeyAlgorithm::EdDSA => EdDSA,
        KeyAlgorithm::HS256 => HS256,
        KeyAlgorithm::HS384 => HS384,
        KeyAlgorithm::HS512 => HS512,
        _ => return None,
    })
}

/// The `iss` claim and header `kid` of a compact JWS, read without verifying it; `None`
/// when the token is not three base64url parts of JSON objects or either is missing.
/// Bounded: tokens over 16 KiB are not looked into.
pub fn unverified_iss_kid(token: &str) -> Option<(String, String)> {
    if token.len() > 16 * 1024 {
        return None;
    }
    let mut parts = token.split('.');
    let (h, p, _s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&b64(h).ok()?).ok()?;
    let payload: Value = serde_json::from_slice(&b64(p).ok()?).ok()?;
    let kid = header.get("kid")?.as_str()?;
    let iss = payload.get("iss")?.as_str()?;
    Some((iss.to_string(), kid.to_string()))
}

/// Verifies `token` against the issuer it names; the error is the reason, for the
/// `error_description` of a 401.
pub fn verify(token: &str, issuers: &[IssuerPolicy], now: i64) -> Result<VerifiedToken, String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err("not a signed JWT (three base64url parts)".into());
    }
    let header: Value =
        serde_json::from_slice(&b64(parts[0])?).map_err(|_| "token header is not JSON")?;
    let claims: Value =
        serde_json::from_slice(&b64(parts[1])?).map_err(|_| "token claims are not JSON")?;
    let (Some(header), Some(claims)) = (header.as_object(), claims.as_object()) else {
        return Err("token header and claims must be JSON objects".into());
    };
    // The issuer is read before the signature is checked, only to pick whose keys check it.
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or("token has no iss")?;
    let policy = issuers
        .iter()
        .find(|p| p.iss == iss)
        .ok_or_else(|| format!("issuer {:?} is not trusted", clip(iss)))?;
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("token header has no alg")?;
    let jws: JwsAlgorithm = alg_name
        .parse()
        .map_err(|_| format!("algorithm {:?} is not accepted", clip(alg_name)))?;
    if !policy.algorithms.contains(&jws) {
        return Err(format!(
            "algorithm {alg_name} is not allowed for this issuer"
        ));
    }
    if let Some(want) = &policy.require_typ {
        let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        if !typ.eq_ignore_ascii_case(want) {
            return Err(format!("token typ must be {want}"));
        }
    }
    let alg = jws.to_jwt();
    let key = match (&policy.keys.0, jws.is_hmac()) {
        (KeySource::Secret(secret), true) => {
            DecodingKey::from_secret(secret).map_err(|_| "empty shared secret")?
        }
        (KeySource::Jwks(set), false) => {
            let kid = header
                .get("kid")
                .and_then(Value::as_str)
                .ok_or("token header has no kid")?;
            let matching: Vec<&Jwk> = set
                .keys
                .iter()
                .filter(|k| k.common.key_id.as_deref() == Some(kid) && key_fits(k, alg))
                .collect();
            match matching.as_slice() {
                [one] => {
                    DecodingKey::from_jwk(one).map_err(|_| "the issuer's key cannot be used")?
                }
                [] => {
                    return Err(format!(
                        "no key {:?} of this issuer fits {alg_name}",
                        clip(kid)
                    ));
                }
                _ => return Err(format!("several keys {:?} fit {alg_name}", clip(kid))),
            }
        }
        // HMAC with a public key, or a signature where a shared secret is configured.
        _ => {
            return Err(format!(
                "algorithm {alg_name} does not fit this issuer's keys"
            ));
        }
    };
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    super::crypto_provider();
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|_| "signature does not verify")?;
    check_claims(claims, policy, now)
}

/// The claim rules of [`verify`], for claims whose issuer is `policy`'s (a verified
/// token's, or a host's RFC 7662 introspection response): `exp` numeric and ahead,
/// `nbf`/`iat` numeric and not ahead (with the issuer's leeway, saturating), `aud` a
/// string or an array of strings containing one of the issuer's audiences, the scope
/// claim present, the other standard claims strings.
pub fn check_claims(
    claims: &serde_json::Map<String, Value>,
    policy: &IssuerPolicy,
    now: i64,
) -> Result<VerifiedToken, String> {
    let leeway = policy.leeway;
    let exp = claims.get("exp").ok_or("token has no exp")?;
    let exp = number(exp).ok_or("exp is not a number")?;
    // Saturating: claims are attacker input, and i64::MIN or i64::MAX must not wrap.
    // RFC 7519 §4.1.4: not accepted *on or after* exp (plus the leeway).
    if exp.saturating_add(leeway) <= now {
        return Err("token has expired".into());
    }
    for name in ["nbf", "iat"] {
        if let Some(v) = claims.get(name) {
            let t = number(v).ok_or_else(|| format!("{name} is not a number"))?;
            if t.saturating_sub(leeway) > now {
                return Err(format!("{name} is in the future"));
            }
        }
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => policy.audiences.iter().any(|x| x == a),
        Some(Value::Array(list)) => {
            if !list.iter().all(Value::is_string) {
                return Err("aud must be a string or an array of strings".into());
            }
            list.iter()
                .filter_map(Value::as_str)
                .any(|a| policy.audiences.iter().any(|x| x == a))
        }
        Some(_) => return Err("aud must be a string or an array of strings".into()),
        None => false,
    };
    // The configured audiences the token names (not the whole claim: attacker-sized).
    let aud: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|a| policy.audiences.contains(a))
    .collect();
    if !aud_ok {
        return Err("token is not for this server (aud)".into());
    }
    let string = |name: &str| -> Result<Option<String>, String> {
        match claims.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{name} is not a string")),
        }
    };
    let scope = match claims.get(&policy.scope_claim) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => list
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        // An id_token or a client assertion has no scope: never an access token.
        _ => return Err("token has no scope claim".into()),
    };
    Ok(VerifiedToken {
        iss: policy.iss.clone(),
        sub: string("sub")?,
        client_id: string("client_id")?,
        scope,
        patient: string(&policy.patient_claim)?,
        fhir_user: string("fhirUser")?,
        exp,
        aud,
    })
}

#[cfg(test)]
mod time_boundaries {
    use super::*;

    fn policy(leeway: i64) -> IssuerPolicy {
        IssuerPolicy {
            iss: "https://ehr".into(),
            audiences: vec!["https://ehr/fhir".into()],
            algorithms: vec![JwsAlgorithm::HS256],
            leeway,
            require_typ: None,
            patient_claim: "patient".into(),
            scope_claim: "scope".into(),
            keys: Keys::shared_secret(&[0; 32]),
        }
    }

    fn claims(extra: &[(&str, i64)]) -> serde_json::Map<String, Value> {
        let mut m = serde_json::json!({"iss": "https://ehr", "aud": "https://ehr/fhir",
            "scope": "patient/ImagingStudy.rs", "patient": "p"});
        for (k, v) in extra {
            m[*k] = serde_json::json!(v);
        }
        m.as_object().unwrap().clone()
    }

    /// RFC 7519 §4.1.4/§4.1.5 at each boundary, with leeway 0 and with leeway 30:
    /// valid while now < exp + leeway; nbf and iat valid while now >= t - leeway.
    #[test]
    fn exp_nbf_and_iat_at_their_boundaries() {
        let now = 1_800_000_000;
        for leeway in [0, 30] {
            let p = policy(leeway);
            let ok = |c: &[(&str, i64)]| check_claims(&claims(c), &p, now).is_ok();
            assert!(
                !ok(&[("exp", now - leeway)]),
                "exp reached (leeway {leeway})"
            );
            assert!(ok(&[("exp", now - leeway + 1)]), "one second before exp");
            assert!(!ok(&[("exp", now - leeway - 1)]));
            for name in ["nbf", "iat"] {
                assert!(
                    ok(&[("exp", now + 60), (name, now + leeway)]),
                    "{name} reached"
                );
                assert!(
                    !ok(&[("exp", now + 60), (name, now + leeway + 1)]),
                    "{name} ahead"
                );
            }
        }
    }
}
