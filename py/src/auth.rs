//! `Engine.authorize`: the engine's whole decision (token, scopes, patient compartment)
//! for a bearer token and a study, or a search, as a `Decision` object.

use pyo3::prelude::*;
use sia::{Access, Credentials, Engine, ErrorKind, ResourceKind};

use crate::engine::dicom_ref;
use crate::errors::{self, engine_error};

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

/// The engine's decision for bearer `token` (None: no credentials) on a study (series and
/// instances are decided on their study), or on searching ImagingStudy.
pub fn decide(
    py: Python<'_>,
    engine: &Engine,
    token: Option<&str>,
    study: Option<&str>,
    series: Option<&str>,
    sop: Option<&str>,
) -> PyResult<Decision> {
    let access = match study {
        Some(s) => {
            // Validates every UID given, and refuses an instance without its series.
            let what = dicom_ref(py, s, series, sop)?;
            Access::study(what.study_uid())
        }
        None if series.is_some() || sop.is_some() => {
            return Err(errors::invalid(py, "a series or instance needs its study"));
        }
        None => Access::search(ResourceKind::ImagingStudy),
    };
    let credentials = token.map_or_else(Credentials::none, Credentials::bearer);
    match py.detach(|| engine.authorize(&credentials, &access)) {
        Ok(grant) => Ok(Decision {
            allowed: true,
            status: 200,
            patient: grant.patient().map(str::to_string),
            issuer: grant.issuer().map(str::to_string),
            expires_at: grant.expires_at(),
            ..Decision::default()
        }),
        Err(e) if matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::Forbidden) => {
            Ok(Decision {
                allowed: false,
                status: e.status(),
                message: e.message().to_string(),
                challenge: e.challenge().map(str::to_string),
                ..Decision::default()
            })
        }
        Err(e) => Err(engine_error(py, &e)),
    }
}
