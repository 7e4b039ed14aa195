//! The whole authorization decision for a host: [`Credentials`] in, a [`Grant`] (or an
//! [`Error`] of kind `Unauthorized`/`Forbidden` with its `WWW-Authenticate` challenge)
//! out — token, scopes, patient compartment and capability URLs — and the search
//! conditions and study checks every typed read applies with its grant.
//!
//! SMART App Launch 2.x scopes (`patient/ImagingStudy.rs`, granular `?modality=`),
//! SMART Backend Services (`system/` scopes under a `[[backend_clients]]` policy) and
//! the patient compartment of the SMART Imaging Access profile: a study is reached only
//! when its DICOM patient is linked to the token's FHIR Patient.

use std::sync::Arc;
use std::time::Instant;

use super::{BackendAccess, Denial, Interaction, PatientPolicy, Restriction, TokenGrant};
use crate::http::Request;
use crate::{Engine, Error, Result};

/// What a caller presents: the `Authorization` header field(s) of its request, or an
/// RFC 7662 introspection response the host obtained for its token.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    authorization: Vec<String>,
    introspection: Option<serde_json::Value>,
}

impl Credentials {
    /// No credentials (answered 401 when issuers are configured).
    pub fn none() -> Credentials {
        Credentials::default()
    }

    /// An OAuth 2.0 bearer token (RFC 6750), as `Authorization: Bearer <token>` carries it.
    pub fn bearer(token: &str) -> Credentials {
        Credentials {
            authorization: vec![format!("Bearer {token}")],
            introspection: None,
        }
    }

    /// An RFC 7662 introspection response for the caller's token (for hosts that
    /// introspect at the EHR instead of letting sia verify the JWT); checked with the
    /// claim rules of a token.
    pub fn introspected(response: serde_json::Value) -> Credentials {
        Credentials {
            authorization: Vec::new(),
            introspection: Some(response),
        }
    }

    /// The credentials of a request: its `Authorization` fields and its
    /// [`Request::introspection`].
    pub fn from_request(req: &Request) -> Credentials {
        Credentials {
            authorization: req
                .header_values("authorization")
                .map(str::to_string)
                .collect(),
            introspection: req.introspection.clone(),
        }
    }

    pub(crate) fn authorization(&self) -> &[String] {
        &self.authorization
    }

    pub(crate) fn introspection(&self) -> Option<&serde_json::Value> {
        self.introspection.as_ref()
    }
}

/// A kind of FHIR resource a search is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceKind {
    /// `ImagingStudy`, and the DICOMweb studies it points to (QIDO-RS searches).
    ImagingStudy,
}

/// What a caller wants to do, for [`Engine::authorize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access(AccessKind);

#[derive(Clone, Debug, PartialEq, Eq)]
enum AccessKind {
    /// Read (`r`) a study, or a series or instance in it.
    Study(String),
    /// Search (`s`).
    Search,
    /// Read something that belongs to no study (the FHIR Endpoint).
    Read,
}

impl Access {
    /// Reading study `study_uid` (its FHIR ImagingStudy, metadata, frames, files).
    pub fn study(study_uid: &str) -> Access {
        Access(AccessKind::Study(study_uid.to_string()))
    }

    /// Reading a series: decided on its study (the compartment is the study's patient).
    pub fn series(study_uid: &str, _series_uid: &str) -> Access {
        Access::study(study_uid)
    }

    /// Reading an instance: decided on its study.
    pub fn instance(study_uid: &str, _series_uid: &str, _sop_instance_uid: &str) -> Access {
        Access::study(study_uid)
    }

    /// Searching resources of `kind` (FHIR search, QIDO-RS).
    pub fn search(kind: ResourceKind) -> Access {
        match kind {
            ResourceKind::ImagingStudy => Access(AccessKind::Search),
        }
    }

    /// Reading what belongs to no study (the FHIR Endpoint resource).
    pub fn read() -> Access {
        Access(AccessKind::Read)
    }
}

/// What a caller may see, as decided by [`Engine::authorize`]; every typed read takes
/// one and answers exactly as [`Engine::handle`] answers the same caller. Cheap to clone.
///
/// A host may keep a grant and use it for many reads (a C++ PACS authorizes once and
/// reads frames from many threads), so a grant is re-checked where it is used, never
/// trusted for longer than what it came from: a token grant stops at the token's `exp`
/// (plus its issuer's leeway, as verification allows: 401 `invalid_token` after that),
/// and a study's patient compartment is looked up again once the last check is older
/// than [`GRANT_RECHECK_AFTER`], so an unlinked patient or a study indexed since (under
/// a UID the token asked for before it existed) is refused like a fresh decision.
#[derive(Clone, Debug)]
pub struct Grant {
    scope: Scope,
    /// The study whose compartment check this grant passed, and when; only for a study
    /// the index held then (a missing study passes the check, and must not keep passing
    /// once it is indexed).
    checked: Option<(Arc<str>, Instant)>,
    /// Not valid from this time on (seconds since the epoch): the token's `exp` plus its
    /// issuer's leeway.
    valid_until: Option<i64>,
}

/// How long a grant's compartment check of a study is reused before it is looked up
/// again: one request's worth (the router authorizes and then reads), not a session's.
pub const GRANT_RECHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Clone, Debug)]
enum Scope {
    /// Everything (no issuers configured: the local administrator).
    Local,
    /// A verified token's grants for reading and for searching, where it has them.
    Token {
        read: Option<Arc<TokenGrant>>,
        search: Option<Arc<TokenGrant>>,
    },
    /// A capability URL: one study.
    Capability { study: String },
}

impl Grant {
    /// Everything: what a host uses when no `[[issuers]]` are configured (the local
    /// administrator, as `sia get` without `--config`).
    pub fn local() -> Grant {
        Grant {
            scope: Scope::Local,
            checked: None,
            valid_until: None,
        }
    }

    /// `Unauthorized` (`invalid_token`) once the token behind the grant has expired.
    fn ensure_current(&self) -> Result<()> {
        match self.valid_until {
            Some(until) if super::now() >= until => {
                Err(Denial::unauthorized("the token has expired").into())
            }
            _ => Ok(()),
        }
    }

    /// Whether this is [`Grant::local`].
    pub fn is_local(&self) -> bool {
        matches!(self.scope, Scope::Local)
    }

    fn token(&self) -> Option<&TokenGrant> {
        match &self.scope {
            Scope::Token { read, search } => read.as_deref().or(search.as_deref()),
            _ => None,
        }
    }

    /// The FHIR Patient id whose studies a patient-level token grant reaches.
    pub fn patient(&self) -> Option<&str> {
        self.token()
            .filter(|g| g.backend.is_none())
            .map(|g| g.patient.as_str())
    }

    /// The issuer (`iss`) of the token behind the grant.
    pub fn issuer(&self) -> Option<&str> {
        self.token().map(|g| g.token.iss.as_str())
    }

    /// When the token behind the grant expires (seconds since the epoch).
    pub fn expires_at(&self) -> Option<i64> {
        self.token().map(|g| g.token.exp)
    }

    /// The one study of a capability URL's grant.
    pub(crate) fn capability_study(&self) -> Option<&str> {
        match &self.scope {
            Scope::Capability { study } => Some(study),
            _ => None,
        }
    }

    pub(crate) fn read_grant(&self) -> Option<&TokenGrant> {
        match &self.scope {
            Scope::Token { read, .. } => read.as_deref(),
            _ => None,
        }
    }

    /// The token grant for searching: `Ok(None)` for the local grant; `Unauthorized`
    /// once the token expired.
    pub(crate) fn search_grant(&self) -> Result<Option<&TokenGrant>> {
        self.ensure_current()?;
        match &self.scope {
            Scope::Local => Ok(None),
            Scope::Token {
                search: Some(g), ..
            } => Ok(Some(g)),
            Scope::Token { search: None, .. } => Err(Denial::forbidden(
                "the token's scopes do not allow search (s) on ImagingStudy",
            )
            .into()),
            Scope::Capability { .. } => Err(Error::forbidden(
                "a capability URL grants DICOMweb access to its one study only",
            )),
        }
    }
}

impl From<Denial> for Error {
    /// 401 or 403 with the RFC 6750 challenge.
    fn from(d: Denial) -> Error {
        let kind = if d.status == 401 {
            crate::ErrorKind::Unauthorized
        } else {
            crate::ErrorKind::Forbidden
        };
        Error::new(kind, d.reason.clone()).with_challenge(d.challenge())
    }
}

impl Engine {
    /// The whole decision for `credentials` wanting `access`: the token verified (or its
    /// introspection response checked), its scopes evaluated for read (`r`) or search
    /// (`s`) on ImagingStudy, and for a study its patient compartment (the study's DICOM
    /// patient linked to the token's FHIR Patient, within granular scopes; or a Backend
    /// Services policy). Without configured issuers everything is granted
    /// ([`Grant::local`]).
    ///
    /// A study not in the index passes (its read answers 404).
    ///
    /// # Errors
    /// `Unauthorized` (no or invalid token; with a challenge), `Forbidden` (scopes or
    /// compartment; with a challenge for scopes), `Internal` (index).
    pub fn authorize(&self, credentials: &Credentials, access: &Access) -> Result<Grant> {
        let Some(auth) = self.auth.as_ref() else {
            return Ok(Grant::local());
        };
        match &access.0 {
            AccessKind::Study(study) => {
                let g = auth.shared_grant(credentials, Interaction::Read)?;
                let found = self.check_study_token(&g, study)?;
                let valid_until = auth.valid_until(&g.token);
                Ok(Grant {
                    scope: Scope::Token {
                        read: Some(g),
                        search: None,
                    },
                    checked: found.then(|| (study.as_str().into(), Instant::now())),
                    valid_until: Some(valid_until),
                })
            }
            AccessKind::Search => {
                let search = auth.shared_grant(credentials, Interaction::Search)?;
                // The read grant too, where the token has one: capability URLs are
                // issued only for studies the token could read itself.
                let read = if self.capabilities.is_some() {
                    auth.shared_grant(credentials, Interaction::Read).ok()
                } else {
                    None
                };
                let valid_until = auth.valid_until(&search.token);
                Ok(Grant {
                    scope: Scope::Token {
                        read,
                        search: Some(search),
                    },
                    checked: None,
                    valid_until: Some(valid_until),
                })
            }
            AccessKind::Read => {
                let g = auth.shared_grant(credentials, Interaction::Read)?;
                let valid_until = auth.valid_until(&g.token);
                Ok(Grant {
                    scope: Scope::Token {
                        read: Some(g),
                        search: None,
                    },
                    checked: None,
                    valid_until: Some(valid_until),
                })
            }
        }
    }

    /// The grant of a capability URL's `capability` (its path segment): one study,
    /// checked again at every use (the study must still belong to the granting token's
    /// patient and meet its granular restrictions, so an unlinked patient ends it).
    ///
    /// # Errors
    /// `NotFound` when capability URLs are off; `Unauthorized` when forged, expired or
    /// no longer granting its study.
    pub(crate) fn authorize_capability(&self, capability: &str) -> Result<Grant> {
        let Some(key) = &self.capabilities else {
            return Err(Error::not_found("capability URLs are not enabled"));
        };
        let granted = key
            .check(capability)
            .map_err(|m| Error::from(Denial::unauthorized_capability(m)))?;
        match self.check_study_for(
            &granted.study,
            &granted.iss,
            &granted.patient,
            granted.restrictions.as_deref(),
        ) {
            Ok(_) => {}
            Err(e) if is_denial(&e) => {
                return Err(Denial::unauthorized_capability(
                    "the capability no longer grants its study",
                )
                .into());
            }
            Err(e) => return Err(e),
        }
        // Checked at every use: a capability grant lives for one request.
        Ok(Grant {
            checked: None,
            scope: Scope::Capability {
                study: granted.study,
            },
            valid_until: None,
        })
    }

    /// The (`iss`, `kid`) a bearer token names when `iss` is a configured JWKS issuer
    /// without a key of that `kid`: the host's cue to fetch that issuer's JWKS again
    /// (and hand it over with `Authorizer::set_jwks`). `None` without issuers, for a
    /// known key, or for anything that is not such a token. Nothing is verified.
    pub fn unknown_kid(&self, token: &str) -> Option<(String, String)> {
        let auth = self.auth.as_ref()?;
        let (iss, kid) = auth.unknown_kid(token)?;
        auth.wants_jwks_refresh(&iss, &kid).then_some((iss, kid))
    }

    /// Whether `grant` reaches `study` (`Forbidden` when not).
    pub(crate) fn require_study(&self, grant: &Grant, study: &str) -> Result<()> {
        grant.ensure_current()?;
        if let Some((checked, at)) = &grant.checked
            && **checked == *study
            && at.elapsed() < GRANT_RECHECK_AFTER
        {
            return Ok(());
        }
        match &grant.scope {
            Scope::Local => Ok(()),
            // Its one study was checked when the capability was presented (this request).
            Scope::Capability { study: granted } if granted == study => Ok(()),
            Scope::Capability { .. } => {
                Err(Denial::patient_mismatch("this capability grants one study only").into())
            }
            Scope::Token { read: Some(g), .. } => self.check_study_token(g, study).map(|_| ()),
            Scope::Token { read: None, .. } => Err(Denial::forbidden(
                "the token's scopes do not allow read (r) on ImagingStudy",
            )
            .into()),
        }
    }

    /// Whether a token grant reaches `study` (its patient and granular scopes): `Ok(true)`
    /// when it does, `Ok(false)` when the index has no such study (its route answers
    /// 404), `Forbidden` when it does not.
    fn check_study_token(&self, g: &TokenGrant, study: &str) -> Result<bool> {
        match &g.backend {
            Some(access) => {
                self.check_study_backend(study, &g.token.iss, access, g.restrictions.as_deref())
            }
            None => {
                self.check_study_for(study, &g.token.iss, &g.patient, g.restrictions.as_deref())
            }
        }
    }

    /// Whether a grant of issuer `iss` for FHIR Patient `patient` within granular
    /// `restrictions` reaches `study`: `Ok(true)`, or `Ok(false)` for a study not in
    /// the index (it passes: its route answers 404), or `Forbidden`.
    fn check_study_for(
        &self,
        study: &str,
        iss: &str,
        patient: &str,
        restrictions: Option<&[Vec<Restriction>]>,
    ) -> Result<bool> {
        let Some(owner) = self.study_owner(study)? else {
            return Ok(false); // nothing there: the route answers 404
        };
        let (pid, issuer, modalities) = &*owner;
        if !self.patient_linked(iss, patient, pid, issuer)? {
            return Err(Denial::patient_mismatch(format!(
                "study {study} does not belong to the token's patient"
            ))
            .into());
        }
        if !meets_restrictions(modalities, restrictions) {
            return Err(Denial::patient_mismatch(format!(
                "study {study} is outside the token's granular scopes"
            ))
            .into());
        }
        Ok(true)
    }

    /// Whether DICOM patient (`pid`, `issuer`) is FHIR Patient `patient` of token issuer
    /// `iss`: by identity under the development policy, else through the link table.
    pub(crate) fn patient_linked(
        &self,
        iss: &str,
        patient: &str,
        pid: &str,
        issuer: &str,
    ) -> Result<bool> {
        match self.auth.as_ref().map(|a| a.patients) {
            Some(PatientPolicy::Identity) => Ok(pid == patient),
            _ => self
                .index
                .is_linked(iss, self.unassigned_links_serve(iss), patient, pid, issuer),
        }
    }

    /// Whether a Backend Services grant of issuer `iss` with policy `access` reaches
    /// `study` (every study, or those of the policy's patients), within `restrictions`.
    fn check_study_backend(
        &self,
        study: &str,
        iss: &str,
        access: &BackendAccess,
        restrictions: Option<&[Vec<Restriction>]>,
    ) -> Result<bool> {
        match access {
            BackendAccess::AllStudies => {
                let Some(owner) = self.study_owner(study)? else {
                    return Ok(false); // nothing there: the route answers 404
                };
                let modalities = &owner.2;
                if !meets_restrictions(modalities, restrictions) {
                    return Err(Denial::patient_mismatch(format!(
                        "study {study} is outside the token's granular scopes"
                    ))
                    .into());
                }
                Ok(true)
            }
            BackendAccess::Patients(patients) => {
                for p in patients {
                    match self.check_study_for(study, iss, p, restrictions) {
                        Ok(found) => return Ok(found),
                        Err(e) if is_denial(&e) => continue,
                        Err(other) => return Err(other),
                    }
                }
                Err(Denial::patient_mismatch(format!(
                    "study {study} is outside the backend client's policy"
                ))
                .into())
            }
        }
    }

    /// Whether links made without a token issuer serve tokens of `iss` (only while it
    /// is the one configured issuer).
    pub(crate) fn unassigned_links_serve(&self, iss: &str) -> bool {
        self.auth
            .as_ref()
            .is_some_and(|a| a.unassigned_links_serve(iss))
    }
}

/// Whether `e` is an authorization refusal (not a failure inside the engine).
fn is_denial(e: &Error) -> bool {
    matches!(
        e.kind(),
        crate::ErrorKind::Unauthorized | crate::ErrorKind::Forbidden
    )
}

/// Whether a study with `modalities` meets granular `restrictions` (one set in full).
pub(crate) fn meets_restrictions(
    modalities: &[String],
    restrictions: Option<&[Vec<Restriction>]>,
) -> bool {
    restrictions.is_none_or(|sets| {
        sets.iter().any(|set| {
            set.iter().all(|r| match r {
                Restriction::Modality(m) => modalities.iter().any(|x| x == m),
            })
        })
    })
}
