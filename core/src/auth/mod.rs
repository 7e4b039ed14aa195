//! SMART authorization, evaluated offline on every FHIR and DICOMweb request.
//!
//! The decision (sia design, "Authorization decision"): no bearer token is 401; a token
//! that does not verify ([`token::verify`]) is 401 `invalid_token`; scopes that do not
//! cover the interaction on ImagingStudy are 403 `insufficient_scope`; a patient-level
//! grant without a patient in context is 403; the study's patient must be linked to the
//! token's patient, else 403 (never an empty result, never part of a study).

mod access;
pub mod capability;
mod compartment;
mod denial;
pub mod jws;
pub mod scope;
pub mod token;

pub(crate) use access::meets_restrictions;
pub use access::{Access, Credentials, GRANT_RECHECK_AFTER, Grant, ResourceKind};
pub(crate) use compartment::AskedPatient;
pub use denial::Denial;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub use jws::JwsAlgorithm;
pub use scope::{Interaction, Restriction, ScopeSet};
pub use token::{IssuerPolicy, Keys, VerifiedToken};

use crate::http::Request;

/// How FHIR Patient ids map to DICOM patients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatientPolicy {
    /// Through the link table (`sia link`, Patient import).
    Links,
    /// FHIR Patient id == DICOM Patient ID, any issuer (development only).
    Identity,
}

/// What a backend-services client may see (`[[backend_clients]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendAccess {
    /// The studies of these FHIR Patients of the client's issuer (through the links).
    Patients(Vec<String>),
    /// Every study (a research role).
    AllStudies,
}

/// A Backend Services policy: tokens of issuer `iss` for client `client_id` with
/// `system/` scopes on ImagingStudy see `access`. Without a policy for its client, a
/// token's system scopes grant nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendClient {
    /// The issuer of the client's tokens.
    pub iss: String,
    /// The token's `client_id`.
    pub client_id: String,
    /// What the client may see.
    pub access: BackendAccess,
}

/// What a verified token allows for one interaction, before the patient compartment
/// (see [`Grant`] for the whole decision).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenGrant {
    /// The verified token.
    pub token: VerifiedToken,
    /// The FHIR Patient id whose studies may be seen.
    pub patient: String,
    /// Granular restrictions: `None` = none; else a study must satisfy one of the sets.
    pub restrictions: Option<Vec<Vec<Restriction>>>,
    /// A Backend Services grant (`system/` scopes under a policy): what it reaches,
    /// instead of `patient` (then empty).
    pub backend: Option<BackendAccess>,
}

/// Most verified tokens remembered.
const TOKEN_CACHE: usize = 10_000;

/// A verified token as the cache keeps it, with its grants for reading and for
/// searching once evaluated: they follow from the token's claims and this authorizer's
/// Backend Services policies alone (fixed when it is made), so the requests of one token
/// parse and evaluate its scopes once, and share the result instead of copying it.
struct CachedToken {
    token: VerifiedToken,
    /// Indexed by [`grant_slot`].
    grants: [OnceLock<Result<Arc<TokenGrant>, Denial>>; 2],
}

/// The [`CachedToken::grants`] slot of an interaction.
fn grant_slot(interaction: Interaction) -> usize {
    match interaction {
        Interaction::Read => 0,
        Interaction::Search => 1,
    }
}

/// Least time between two JWKS refreshes of one issuer asked for by unknown `kid`s, so
/// tokens with random `kid`s cannot make the host fetch keys in a loop.
pub const JWKS_REFRESH_COOLDOWN: std::time::Duration = std::time::Duration::from_secs(60);

/// Verifies tokens and evaluates scopes; holds the verified-token cache.
pub struct Authorizer {
    issuers: std::sync::RwLock<Vec<IssuerPolicy>>,
    refreshed: Mutex<HashMap<String, std::time::Instant>>,
    /// How FHIR Patient ids map to DICOM patients.
    pub patients: PatientPolicy,
    /// Verified tokens by their text. Hashed with foldhash rather than SipHash (a third
    /// of the cost over a 600-byte token): only tokens that verified become keys, so no
    /// one can fill the map with colliding ones.
    cache: Mutex<HashMap<String, Arc<CachedToken>, foldhash::quality::RandomState>>,
    /// The issuer that links made without one ("unassigned") serve: the only issuer
    /// configured when this authorizer was made, if there was exactly one (issuers
    /// added later do not change it).
    sole_issuer: Option<String>,
    /// Backend Services policies (none: system scopes grant nothing).
    backend_clients: Vec<BackendClient>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers = self.issuers.read().unwrap_or_else(|e| e.into_inner());
        let iss: Vec<&str> = issuers.iter().map(|i| i.iss.as_str()).collect();
        f.debug_struct("Authorizer")
            .field("issuers", &iss)
            .field("patients", &self.patients)
            .finish()
    }
}

/// Installs AWS-LC as jsonwebtoken's process-wide crypto provider, once, before any
/// signature is made or checked. jsonwebtoken chooses a provider by itself only when
/// exactly one of its backend features is enabled in the whole build: a host whose own
/// dependencies also enable `rust_crypto` would otherwise make every token check panic
/// (caught by `handle`, but a 500 for every request). A provider the host installed
/// first stays.
pub(crate) fn crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    });
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Authorizer {
    /// An authorizer for these issuers and patient policy.
    ///
    /// JWKS keys that must not verify tokens ([`token::refuse_key`]) are dropped and
    /// logged by `kid`.
    pub fn new(issuers: Vec<IssuerPolicy>, patients: PatientPolicy) -> Authorizer {
        let issuers = issuers
            .into_iter()
            .map(|mut i| {
                i.keys = i.keys.screened(&i.iss);
                i
            })
            .collect::<Vec<_>>();
        let sole_issuer = match issuers.as_slice() {
            [only] => Some(only.iss.clone()),
            _ => None,
        };
        Authorizer {
            sole_issuer,
            issuers: std::sync::RwLock::new(issuers),
            refreshed: Mutex::new(HashMap::new()),
            patients,
            cache: Mutex::new(HashMap::default()),
            backend_clients: Vec::new(),
        }
    }

    /// This authorizer with Backend Services policies: `system/` scopes of a token
    /// whose (`iss`, `client_id`) has a policy reach what the policy allows.
    pub fn with_backend_clients(mut self, clients: Vec<BackendClient>) -> Authorizer {
        self.backend_clients = clients;
        self
    }

    /// The Backend Services policies.
    pub fn backend_clients(&self) -> &[BackendClient] {
        &self.backend_clients
    }

    /// Every configured audience (the FHIR bases tokens are issued for).
    pub fn audiences(&self) -> Vec<String> {
        let issuers = self.issuers.read().unwrap_or_else(|e| e.into_inner());
        issuers
            .iter()
            .flat_map(|i| i.audiences.iter().cloned())
            .collect()
    }

    /// The configured issuers (`iss` values), in configuration order.
    pub fn issuer_names(&self) -> Vec<String> {
        let issuers = self.issuers.read().unwrap_or_else(|e| e.into_inner());
        issuers.iter().map(|i| i.iss.clone()).collect()
    }

    /// The audiences (FHIR bases) of issuer `iss`; empty when it is not configured.
    pub fn audiences_of(&self, iss: &str) -> Vec<String> {
        let issuers = self.issuers.read().unwrap_or_else(|e| e.into_inner());
        issuers
            .iter()
            .filter(|i| i.iss == iss)
            .flat_map(|i| i.audiences.iter().cloned())
            .collect()
    }

    /// Whether links made without a token issuer ("unassigned") serve tokens of `iss`:
    /// only when `iss` was the one and only issuer this authorizer was made with.
    pub fn unassigned_links_serve(&self, iss: &str) -> bool {
        self.sole_issuer.as_deref() == Some(iss)
    }

    /// Replaces the keys of issuer `iss` with the JWKS `jwks_json` (the host fetched it
    /// from the issuer's `jwks_url`). Tokens already verified stay cached until they expire.
    pub fn set_jwks(&self, iss: &str, jwks_json: &str) -> Result<(), String> {
        let keys = Keys::jwks_json(jwks_json).map_err(|e| e.message().to_string())?;
        let mut issuers = self.issuers.write().unwrap_or_else(|e| e.into_inner());
        let issuer = issuers
            .iter_mut()
            .find(|i| i.iss == iss)
            .ok_or_else(|| format!("issuer {iss:?} is not configured"))?;
        if issuer.keys.is_shared_secret() {
            return Err(format!("issuer {iss:?} uses a shared secret, not a JWKS"));
        }
        issuer.keys = keys.screened(iss);
        Ok(())
    }

    /// Whether the host should fetch issuer `iss`'s JWKS again because a token names a
    /// `kid` it does not have: true at most once per [`JWKS_REFRESH_COOLDOWN`].
    pub fn wants_jwks_refresh(&self, iss: &str, kid: &str) -> bool {
        let known = {
            let issuers = self.issuers.read().unwrap_or_else(|e| e.into_inner());
            match issuers.iter().find(|i| i.iss == iss) {
                None => return false,
                Some(i) if i.keys.is_shared_secret() => return false,
                Some(i) => i.keys.has_kid(kid),
            }
        };
        if known {
            return false;
        }
        let mut last = self.refreshed.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match last.get(iss) {
            Some(t) if now.duration_since(*t) < JWKS_REFRESH_COOLDOWN => false,
            _ => {
                last.insert(iss.to_string(), now);
                true
            }
        }
    }

    /// Trusts one more issuer (a host's own development issuer, say). Refused when an
    /// issuer with the same `iss` is already configured.
    pub fn add_issuer(&self, policy: IssuerPolicy) -> Result<(), String> {
        let mut issuers = self.issuers.write().unwrap_or_else(|e| e.into_inner());
        if issuers.iter().any(|i| i.iss == policy.iss) {
            return Err(format!("issuer {:?} is already configured", policy.iss));
        }
        let mut policy = policy;
        policy.keys = policy.keys.screened(&policy.iss);
        issuers.push(policy);
        Ok(())
    }

    /// The (`iss`, `kid`) a bearer token names when `iss` is a configured JWKS issuer
    /// that has no key with that `kid`: the host's cue to fetch the issuer's JWKS again
    /// (ask [`Authorizer::wants_jwks_refresh`] first, for the cooldown). Reads the
    /// token's header and payload without verifying anything; `None` for anything else.
    pub fn unknown_kid(&self, bearer: &str) -> Option<(String, String)> {
        let (iss, kid) = token::unverified_iss_kid(bearer)?;
        let issuers = self.issuers.read().unwrap_or_else(|e| e.into_inner());
        let issuer = issuers.iter().find(|i| i.iss == iss)?;
        (!issuer.keys.is_shared_secret() && !issuer.keys.has_kid(&kid)).then_some((iss, kid))
    }

    /// The `kid`s of issuer `iss`'s current keys (empty for a shared secret or an
    /// unknown issuer), so a host can log key rotation.
    pub fn key_ids(&self, iss: &str) -> Vec<String> {
        let issuers = self.issuers.read().unwrap_or_else(|e| e.into_inner());
        issuers
            .iter()
            .find(|i| i.iss == iss)
            .map(|i| i.keys.key_ids())
            .unwrap_or_default()
    }

    /// An RFC 7662 introspection response for `bearer`: the token's fields when it
    /// verifies, `{"active": false}` (and nothing else) when it does not.
    pub fn introspect(&self, bearer: &str) -> serde_json::Value {
        match self.verify(bearer) {
            Err(_) => serde_json::json!({ "active": false }),
            Ok(t) => {
                let mut v = serde_json::json!({ "active": true, "scope": t.scope, "exp": t.exp, "iss": t.iss });
                match t.aud.as_slice() {
                    [] => {}
                    [one] => v["aud"] = serde_json::Value::String(one.clone()),
                    all => v["aud"] = serde_json::json!(all),
                }
                for (k, val) in [
                    ("client_id", &t.client_id),
                    ("patient", &t.patient),
                    ("sub", &t.sub),
                    ("fhirUser", &t.fhir_user),
                ] {
                    if let Some(x) = val {
                        v[k] = serde_json::Value::String(x.clone());
                    }
                }
                v
            }
        }
    }

    /// The grant an RFC 7662 introspection response (from a host that introspects at the
    /// EHR) allows, checked with the same rules as a token: `active` must be `true`,
    /// `exp` numeric and ahead, `iss` and `aud` (when present) configured, and the scopes
    /// and patient context evaluated as for a token.
    pub fn authorize_introspection(
        &self,
        response: &serde_json::Value,
        interaction: Interaction,
    ) -> Result<TokenGrant, Denial> {
        let token = self.introspected_token(response)?;
        self.grant_for(token, interaction)
    }

    /// The token an RFC 7662 introspection response describes, checked with the claim
    /// rules of a token (see [`Authorizer::authorize_introspection`]).
    fn introspected_token(&self, response: &serde_json::Value) -> Result<VerifiedToken, Denial> {
        use serde_json::Value;
        let o = response
            .as_object()
            .ok_or_else(|| Denial::unauthorized("introspection response is not a JSON object"))?;
        if o.get("active") != Some(&Value::Bool(true)) {
            return Err(Denial::unauthorized("the token is not active"));
        }
        let issuers = self.issuers.read().unwrap_or_else(|e| e.into_inner());
        // Patient ids are per issuer: a response without `iss` is attributed to the
        // only configured issuer, and refused when there are several.
        let policy = match (o.get("iss"), issuers.as_slice()) {
            (Some(Value::String(iss)), _) => {
                issuers.iter().find(|p| &p.iss == iss).ok_or_else(|| {
                    Denial::unauthorized(format!("issuer {:?} is not trusted", token::clip(iss)))
                })?
            }
            (Some(_), _) => return Err(Denial::unauthorized("iss is not a string")),
            (None, [only]) => only,
            (None, _) => {
                return Err(Denial::unauthorized(
                    "the introspection response has no iss, and several issuers are configured",
                ));
            }
        };
        // The same claim rules as a JWT's: exp, nbf, iat, aud, scope, string claims.
        token::check_claims(o, policy, now()).map_err(Denial::unauthorized)
    }

    /// Verifies a bearer token (cached until it expires).
    pub fn verify(&self, bearer: &str) -> Result<VerifiedToken, Denial> {
        self.verified(bearer).map(|c| c.token.clone())
    }

    /// The cache entry of a verified bearer token: found, or verified and added.
    fn verified(&self, bearer: &str) -> Result<Arc<CachedToken>, Denial> {
        let t = now();
        if let Some(v) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(bearer)
            && v.token.exp > t
        {
            return Ok(v.clone());
        }
        let token = {
            let issuers = self.issuers.read().unwrap_or_else(|e| e.into_inner());
            token::verify(bearer, &issuers, t).map_err(Denial::unauthorized)?
        };
        let entry = Arc::new(CachedToken {
            token,
            grants: Default::default(),
        });
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= TOKEN_CACHE {
            cache.retain(|_, v| v.token.exp > t);
            if cache.len() >= TOKEN_CACHE {
                cache.clear();
            }
        }
        cache.insert(bearer.to_string(), entry.clone());
        Ok(entry)
    }

    /// The time (seconds since the epoch) from which a grant made from `token` no
    /// longer holds: its `exp` plus its issuer's leeway, as [`token::verify`] accepts it.
    pub(crate) fn valid_until(&self, token: &VerifiedToken) -> i64 {
        let issuers = self.issuers.read().unwrap_or_else(|e| e.into_inner());
        let leeway = issuers
            .iter()
            .find(|i| i.iss == token.iss)
            .map_or(0, |i| i.leeway);
        token.exp.saturating_add(leeway)
    }

    /// The decision for a request needing `interaction` on ImagingStudy, up to the
    /// patient compartment (which needs the index; see the router).
    pub fn authorize(&self, req: &Request, interaction: Interaction) -> Result<TokenGrant, Denial> {
        let token = self.token(req)?;
        self.grant_for(token, interaction)
    }

    /// [`Authorizer::authorize`] for credentials a host holds outside a request.
    pub fn authorize_credentials(
        &self,
        credentials: &Credentials,
        interaction: Interaction,
    ) -> Result<TokenGrant, Denial> {
        self.shared_grant(credentials, interaction)
            .map(|g| TokenGrant::clone(&g))
    }

    /// [`Authorizer::authorize_credentials`] without copying: a bearer token's grants
    /// are evaluated once per cached token and shared; an introspection response's are
    /// evaluated anew (the host hands a fresh response with each request).
    pub(crate) fn shared_grant(
        &self,
        credentials: &Credentials,
        interaction: Interaction,
    ) -> Result<Arc<TokenGrant>, Denial> {
        if let Some(introspection) = credentials.introspection() {
            let token = self.introspected_token(introspection)?;
            return self.grant_for(token, interaction).map(Arc::new);
        }
        let bearer = bearer_of(credentials.authorization().iter().map(String::as_str))?;
        let entry = self.verified(bearer)?;
        entry.grants[grant_slot(interaction)]
            .get_or_init(|| {
                self.grant_for(entry.token.clone(), interaction)
                    .map(Arc::new)
            })
            .clone()
    }

    /// The request's token, checked (its introspection response when the host put one
    /// in, else the verified bearer token), before scopes are evaluated: what a host
    /// needs to know whose patient a request is about (patient resolution).
    pub fn token(&self, req: &Request) -> Result<VerifiedToken, Denial> {
        if let Some(introspection) = &req.introspection {
            // The host introspected the token at the EHR and hands over the response.
            return self.introspected_token(introspection);
        }
        self.authorization_token(req.header_values("authorization"))
    }

    /// [`Authorizer::token`] for credentials a host holds outside a request.
    pub fn credentials_token(&self, credentials: &Credentials) -> Result<VerifiedToken, Denial> {
        if let Some(introspection) = credentials.introspection() {
            return self.introspected_token(introspection);
        }
        self.authorization_token(credentials.authorization().iter().map(String::as_str))
    }

    /// The verified token of `Authorization` field values (exactly one, `Bearer`).
    fn authorization_token<'a>(
        &self,
        values: impl Iterator<Item = &'a str>,
    ) -> Result<VerifiedToken, Denial> {
        self.verify(bearer_of(values)?)
    }

    /// Scopes and patient context of a verified token, for `interaction`.
    fn grant_for(
        &self,
        token: VerifiedToken,
        interaction: Interaction,
    ) -> Result<TokenGrant, Denial> {
        let scopes = ScopeSet::parse(&token.scope);
        let permission = scope::evaluate(&scopes, interaction);
        let in_patient_context = token.patient.as_deref().is_some_and(|p| !p.is_empty());
        // Backend Services: system/ scopes, only under a policy for the token's client
        // (and never instead of a patient grant the token has).
        if !(in_patient_context && permission != scope::Permission::Denied)
            && let Some(policy) = self.backend_clients.iter().find(|b| {
                b.iss == token.iss && token.client_id.as_deref() == Some(b.client_id.as_str())
            })
            && let scope::Permission::Patient(restrictions) =
                scope::evaluate_system(&scopes, interaction)
        {
            return Ok(TokenGrant {
                token,
                patient: String::new(),
                restrictions,
                backend: Some(policy.access.clone()),
            });
        }
        let restrictions = match permission {
            scope::Permission::Denied => {
                let need = match interaction {
                    Interaction::Read => "read (r)",
                    Interaction::Search => "search (s)",
                };
                return Err(Denial::forbidden(format!(
                    "the token's scopes do not allow {need} on ImagingStudy"
                )));
            }
            scope::Permission::Patient(r) => r,
        };
        let Some(patient) = token.patient.clone().filter(|p| !p.is_empty()) else {
            return Err(Denial::forbidden(
                "patient-level scopes need a patient in the token's context",
            ));
        };
        Ok(TokenGrant {
            token,
            patient,
            restrictions,
            backend: None,
        })
    }
}

/// The bearer token of `Authorization` field values: exactly one field, `Bearer <token>`
/// (RFC 6750 §2.1).
fn bearer_of<'a>(mut values: impl Iterator<Item = &'a str>) -> Result<&'a str, Denial> {
    let Some(value) = values.next() else {
        return Err(Denial {
            status: 401,
            error: None,
            reason: "a bearer token is required".into(),
        });
    };
    if values.next().is_some() {
        return Err(Denial::unauthorized("more than one Authorization header"));
    }
    match value.trim().split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
            Ok(t.trim())
        }
        _ => Err(Denial::unauthorized(
            "the Authorization header is not `Bearer <token>`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn authorizer() -> Authorizer {
        let policy = |iss: &str, keys| IssuerPolicy {
            iss: iss.into(),
            audiences: vec!["https://ehr/fhir".into()],
            algorithms: vec![JwsAlgorithm::HS256, JwsAlgorithm::RS256],
            leeway: 30,
            require_typ: None,
            patient_claim: "patient".into(),
            scope_claim: "scope".into(),
            keys,
        };
        Authorizer::new(
            vec![
                policy("https://hs", Keys::shared_secret(SECRET)),
                policy("https://rsa", Keys::empty_jwks()),
            ],
            PatientPolicy::Links,
        )
    }

    fn token(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap()
    }

    fn valid() -> serde_json::Value {
        json!({"iss": "https://hs", "aud": "https://ehr/fhir", "exp": now() + 300, "scope": "patient/ImagingStudy.rs",
               "patient": "123", "client_id": "app", "sub": "u1"})
    }

    #[test]
    fn a_cached_tokens_grants_are_evaluated_once_and_shared() {
        let a = authorizer();
        let creds = Credentials::bearer(&token(valid()));
        let read = a.shared_grant(&creds, Interaction::Read).unwrap();
        let again = a.shared_grant(&creds, Interaction::Read).unwrap();
        assert!(
            Arc::ptr_eq(&read, &again),
            "the second request reuses the grant"
        );
        let search = a.shared_grant(&creds, Interaction::Search).unwrap();
        assert!(!Arc::ptr_eq(&read, &search), "one grant per interaction");
        assert_eq!(
            (read.patient.as_str(), read.token.sub.as_deref()),
            ("123", Some("u1"))
        );
        // What the shared grant says is what a fresh evaluation says, denials included.
        let fresh = |t: &str, i| a.grant_for(a.verify(t).unwrap(), i);
        assert_eq!(*read, fresh(&token(valid()), Interaction::Read).unwrap());
        let mut search_only = valid();
        search_only["scope"] = json!("patient/ImagingStudy.s");
        let creds = Credentials::bearer(&token(search_only.clone()));
        for _ in 0..2 {
            let denied = a.shared_grant(&creds, Interaction::Read).unwrap_err();
            assert_eq!(
                denied,
                fresh(&token(search_only.clone()), Interaction::Read).unwrap_err()
            );
            assert_eq!(denied.status, 403);
        }
        // An introspection response is evaluated anew each time (nothing keyed by it).
        let mut active = valid();
        active["active"] = json!(true);
        let introspected = Credentials::introspected(active);
        let (x, y) = (
            a.shared_grant(&introspected, Interaction::Read).unwrap(),
            a.shared_grant(&introspected, Interaction::Read).unwrap(),
        );
        assert!(!Arc::ptr_eq(&x, &y));
        assert_eq!(x, y);
    }

    #[test]
    fn introspection_responses_are_produced_for_verifiable_tokens_only() {
        let a = authorizer();
        let r = a.introspect(&token(valid()));
        assert_eq!(r["active"], true);
        assert_eq!(r["aud"], "https://ehr/fhir");
        // What sia produces, sia accepts (the same claim rules both ways).
        assert!(a.authorize_introspection(&r, Interaction::Read).is_ok());
        assert_eq!(
            (
                r["patient"].as_str(),
                r["client_id"].as_str(),
                r["scope"].as_str()
            ),
            (Some("123"), Some("app"), Some("patient/ImagingStudy.rs"))
        );
        assert_eq!(a.introspect("garbage"), json!({"active": false}));
        let mut expired = valid();
        expired["exp"] = json!(now() - 3600);
        assert_eq!(a.introspect(&token(expired)), json!({"active": false}));
    }

    #[test]
    fn introspection_responses_from_a_host_follow_the_token_rules() {
        let a = authorizer();
        let mut ok = valid();
        ok["active"] = json!(true);
        let g = a.authorize_introspection(&ok, Interaction::Search).unwrap();
        assert_eq!(g.patient, "123");
        let check = |change: &dyn Fn(&mut serde_json::Value), status: u16| {
            let mut v = ok.clone();
            change(&mut v);
            assert_eq!(
                a.authorize_introspection(&v, Interaction::Search)
                    .map(|_| 200)
                    .unwrap_or_else(|d| d.status),
                status,
                "{v}"
            );
        };
        check(&|v| v["active"] = json!(false), 401);
        check(&|v| v["active"] = json!("true"), 401);
        check(&|v| v["exp"] = json!(now() - 100), 401); // past the leeway (30 s), as for a JWT
        check(&|v| v["exp"] = json!("soon"), 401);
        check(&|v| v["iss"] = json!("https://evil"), 401);
        check(&|v| v["aud"] = json!("https://other/fhir"), 401);
        check(&|v| v["aud"] = json!(["x", "https://ehr/fhir"]), 200);
        // The same rules as a JWT's (issue 18): aud required, nbf and iat not ahead.
        check(
            &|v| {
                v.as_object_mut().unwrap().remove("aud");
            },
            401,
        );
        check(&|v| v["nbf"] = json!(now() + 3600), 401);
        check(&|v| v["iat"] = json!(now() + 3600), 401);
        check(&|v| v["nbf"] = json!(i64::MIN), 200);
        check(&|v| v["exp"] = json!(1e300), 401);
        check(&|v| v["sub"] = json!(7), 401);
        check(
            &|v| {
                v.as_object_mut().unwrap().remove("iss");
            },
            401, // two issuers are configured: whose patient would it be?
        );
        check(
            &|v| {
                v.as_object_mut().unwrap().remove("patient");
            },
            403,
        );
        check(&|v| v["scope"] = json!("patient/ImagingStudy.r"), 403);
        check(
            &|v| {
                v.as_object_mut().unwrap().remove("scope");
            },
            401,
        );
    }

    #[test]
    fn system_scopes_grant_only_under_a_policy_for_the_tokens_issuer_and_client() {
        let response = |iss: &str, client: &str, scope: &str| {
            json!({"active": true, "iss": iss, "aud": "https://ehr/fhir", "exp": now() + 300,
                   "scope": scope, "client_id": client})
        };
        let status = |a: &Authorizer, r: &serde_json::Value| {
            a.authorize_introspection(r, Interaction::Read)
                .map(|g| g.backend)
                .map_err(|d| d.status)
        };
        let sys = "system/ImagingStudy.rs";
        assert_eq!(
            status(&authorizer(), &response("https://hs", "research", sys)),
            Err(403),
            "no policy: system scopes grant nothing"
        );
        let a = authorizer().with_backend_clients(vec![BackendClient {
            iss: "https://hs".into(),
            client_id: "research".into(),
            access: BackendAccess::AllStudies,
        }]);
        assert_eq!(
            status(&a, &response("https://hs", "research", sys)),
            Ok(Some(BackendAccess::AllStudies))
        );
        assert_eq!(status(&a, &response("https://hs", "other", sys)), Err(403));
        assert_eq!(
            status(&a, &response("https://rsa", "research", sys)),
            Err(403),
            "the same client id at another issuer is another client"
        );
        let mut no_client = response("https://hs", "research", sys);
        no_client.as_object_mut().unwrap().remove("client_id");
        assert_eq!(status(&a, &no_client), Err(403));
        assert_eq!(
            status(
                &a,
                &response("https://hs", "research", "patient/ImagingStudy.rs")
            ),
            Err(403),
            "a policy does not widen patient scopes"
        );
        let mut with_patient = response("https://hs", "research", "patient/ImagingStudy.rs");
        with_patient["patient"] = json!("123");
        assert_eq!(
            status(&a, &with_patient),
            Ok(None),
            "a patient grant stays one"
        );
    }

    #[test]
    fn jwks_refresh_is_asked_for_once_per_cooldown() {
        let a = authorizer();
        assert!(a.wants_jwks_refresh("https://rsa", "k1"));
        assert!(!a.wants_jwks_refresh("https://rsa", "k2"), "cooldown");
        assert!(
            !a.wants_jwks_refresh("https://hs", "k1"),
            "shared-secret issuers have no JWKS"
        );
        assert!(!a.wants_jwks_refresh("https://unknown", "k1"));
        let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        a.set_jwks("https://rsa", jwks).unwrap();
        assert!(!a.wants_jwks_refresh("https://rsa", "k1"), "known now");
        assert!(a.set_jwks("https://hs", jwks).is_err());
        assert!(a.set_jwks("https://rsa", "{}").is_err());
    }
}
