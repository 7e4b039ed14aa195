//! `Engine.authorize`: the engine's whole decision (token, scopes, patient compartment)
//! for a bearer token and a study, or a search, as a `Decision` object.

use pyo3::prelude::*;

/// The decision for one token and one access.
#[pyclass(module = "sia._sia", name = "Decision", frozen, get_all)]
#[derive(Clone, Debug, Default)]
pub struct Decision {
    /// Whether the access is granted.
    pub allowed: bool,
    /// 200 when allowed, else the refusal's HTTP status (401 or 403).
    pub status: u16,
    /// Why it was refused (empty when allowed).
    pub message: String,
    /// The `WWW-Authenticate` value of a refusal (RFC 6750 §3).
    pub challenge: Option<String>,
    /// The FHIR Patient id of the token's patient context.
    pub patient: Option<String>,
    /// The token's issuer (`iss`).
    pub issuer: Option<String>,
    /// When the grant ends (Unix seconds).
    pub expires_at: Option<i64>,
}

#[pymethods]
impl Decision {
    fn __bool__(&self) -> bool {
        self.allowed
    }

    fn __repr__(&self) -> String {
        if self.allowed {
            format!(
                "Decision(allowed=True, patient={:?}, issuer={:?}, expires_at={:?})",
                self.patient, self.issuer, self.expires_at
            )
        } else {
            format!(
                "Decision(allowed=False, status={}, message={:?})",
                self.status, self.message
            )
        }
    }
}
