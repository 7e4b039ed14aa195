//! SMART authorization, evaluated offline on every FHIR and DICOMweb request.
//!
//! The decision (sia design, "Authorization decision"): no bearer token is 401; a token
//! that does not verify ([`token::verify`]) is 401 `invalid_token`; scopes that do not
//! cover the interaction on ImagingStudy are 403 `insufficient_scope`; a patient-level
//! grant without a patient in context is 403; the study's patient must be linked to the
//! token's patient, else 403 (never an empty result, never part of a study).

pub mod scope;
pub mod token;

use std::collections::HashMap;
use std::sync::Mutex;

pub use scope::{Interaction, Restriction, ScopeSet};
pub use token::{IssuerPolicy, Keys, VerifiedToken};

use crate::http::{Request, Response};

/// How FHIR Patient ids map to DICOM patients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatientPolicy {
    /// Through the link table (`sia link`, Patient import).
    Links,
    /// FHIR Patient id == DICOM Patient ID, any issuer (development only).
    Identity,
}

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// 401 or 403.
    pub status: u16,
    /// The RFC 6750 error code, when there is one.
    pub error: Option<&'static str>,
    /// Human-readable reason.
    pub reason: String,
}

impl Denial {
    fn unauthorized(reason: impl Into<String>) -> Denial {
        Denial {
            status: 401,
            error: Some("invalid_token"),
            reason: reason.into(),
        }
    }
    fn forbidden(reason: impl Into<String>) -> Denial {
        Denial {
            status: 403,
            error: Some("insufficient_scope"),
            reason: reason.into(),
        }
    }
    /// A patient-compartment refusal (403 without a scope error: the scopes were fine).
    pub fn patient_mismatch(reason: impl Into<String>) -> Denial {
        Denial {
            status: 403,
            error: None,
            reason: reason.into(),
        }
    }

    /// The HTTP response, with `WWW-Authenticate` as RFC 6750 asks.
    pub fn response(&self) -> Response {
        let mut r = Response::error(self.status, &self.reason);
        let challenge = match self.error {
            Some(code) => {
                let desc = self.reason.replace(['"', '\\'], "'");
                format!("Bearer realm=\"sia\", error=\"{code}\", error_description=\"{desc}\"")
            }
            None => "Bearer realm=\"sia\"".to_string(),
        };
        if self.status == 401 || self.error.is_some() {
            r.headers.push(("WWW-Authenticate".into(), challenge));
        }
        r
    }
}

/// What a token allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The verified token.
    pub token: VerifiedToken,
    /// The FHIR Patient id whose studies may be seen.
    pub patient: String,
    /// Granular restrictions: `None` = none; else a study must satisfy one of the sets.
    pub restrictions: Option<Vec<Vec<Restriction>>>,
}

/// Most verified tokens remembered.
const TOKEN_CACHE: usize = 10_000;

/// Verifies tokens and evaluates scopes; holds the verified-token cache.
pub struct Authorizer {
    issuers: Vec<IssuerPolicy>,
    /// How FHIR Patient ids map to DICOM patients.
    pub patients: PatientPolicy,
    cache: Mutex<HashMap<String, VerifiedToken>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let iss: Vec<&str> = self.issuers.iter().map(|i| i.iss.as_str()).collect();
        f.debug_struct("Authorizer")
            .field("issuers", &iss)
            .field("patients", &self.patients)
            .finish()
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Authorizer {
    /// An authorizer for these issuers and patient policy.
    pub fn new(issuers: Vec<IssuerPolicy>, patients: PatientPolicy) -> Authorizer {
        Authorizer {
            issuers,
            patients,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Every configured audience (the FHIR bases tokens are issued for).
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.issuers
            .iter()
            .flat_map(|i| i.audiences.iter().map(String::as_str))
    }

    /// Verifies a bearer token (cached until it expires).
    pub fn verify(&self, bearer: &str) -> Result<VerifiedToken, Denial> {
        let t = now();
        if let Some(v) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(bearer)
            && v.exp >= t
        {
            return Ok(v.clone());
        }
        let v = token::verify(bearer, &self.issuers, t).map_err(Denial::unauthorized)?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= TOKEN_CACHE {
            cache.retain(|_, v| v.exp >= t);
            if cache.len() >= TOKEN_CACHE {
                cache.clear();
            }
        }
        cache.insert(bearer.to_string(), v.clone());
        Ok(v)
    }

    /// The decision for a request needing `interaction` on ImagingStudy, up to the
    /// patient compartment (which needs the index; see the router).
    pub fn authorize(&self, req: &Request, interaction: Interaction) -> Result<Grant, Denial> {
        let mut values = req.header_values("authorization");
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
        let bearer = match value.trim().split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
                t.trim()
            }
            _ => {
                return Err(Denial::unauthorized(
                    "the Authorization header is not `Bearer <token>`",
                ));
            }
        };
        let token = self.verify(bearer)?;
        let scopes = ScopeSet::parse(&token.scope);
        let restrictions = match scope::evaluate(&scopes, interaction) {
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
        Ok(Grant {
            token,
            patient,
            restrictions,
        })
    }
}
