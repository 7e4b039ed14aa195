//! The patient compartment of searches: which studies a grant's FHIR ImagingStudy
//! search or QIDO-RS query may return, as index conditions. A token sees its own
//! patient's studies (SMART App Launch 2 `patient/` scopes; the SMART Imaging Access
//! profile links a DICOM patient to the token's FHIR Patient), a Backend Services
//! client those of its policy, a capability URL its one study; granular scopes
//! (`?modality=`) narrow each. A search that names another patient is refused
//! (`Forbidden`), never answered with an empty result.

use super::access::Grant;
use super::{BackendAccess, PatientPolicy, Restriction, TokenGrant};
use crate::index::search::Condition;
use crate::{Engine, Error, Result};

/// The patient a FHIR ImagingStudy search names: by reference (`patient=`,
/// `subject=`, resolved to a FHIR Patient id) and by DICOM identifier
/// (`patient.identifier=system|value`: Patient ID and its issuer).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AskedPatient<'a> {
    /// The FHIR Patient id of `patient=` / `subject=`.
    pub reference: Option<&'a str>,
    /// (Patient ID, Issuer of Patient ID) of `patient.identifier=`.
    pub identifier: Option<(&'a str, &'a str)>,
}

impl Engine {
    /// The conditions limiting a FHIR ImagingStudy search to what `token` reaches
    /// (`None`: the local administrator), for the patient the query `asked` for. A
    /// patient-level token asking for another patient, by reference or identifier, and
    /// a Backend Services client asking for a patient outside its policy are
    /// `Forbidden` (FHIR R4 search 3.1.1.4.3: not an empty Bundle, which would say the
    /// patient has no studies). The identifier's own condition is the caller's (it is a
    /// search parameter as well as a compartment question).
    pub(crate) fn fhir_search_conditions(
        &self,
        token: Option<&TokenGrant>,
        asked: AskedPatient<'_>,
    ) -> Result<Vec<Condition>> {
        if let (Some(g), Some((pid, issuer))) = (token, asked.identifier)
            && !self.grant_reaches_patient(g, pid, issuer)?
        {
            return Err(Error::forbidden(
                "the patient identifier asked for is not the token's patient",
            ));
        }
        Ok(match (token, asked.reference) {
            (Some(g), asked) if g.backend.is_some() => match asked {
                None => self.conditions_of(g),
                Some(p)
                    if match &g.backend {
                        Some(BackendAccess::Patients(list)) => list.iter().any(|x| x == p),
                        _ => true,
                    } =>
                {
                    self.grant_conditions(Some(&g.token.iss), p, g.restrictions.as_deref())
                }
                Some(_) => {
                    return Err(Error::forbidden(
                        "the patient asked for is outside the backend client's policy",
                    ));
                }
            },
            (Some(g), Some(p)) if p != g.patient => {
                return Err(Error::forbidden(
                    "the patient asked for is not the token's patient",
                ));
            }
            (Some(g), _) => {
                self.grant_conditions(Some(&g.token.iss), &g.patient, g.restrictions.as_deref())
            }
            (None, Some(p)) => self.grant_conditions(None, p, None),
            (None, None) => Vec::new(),
        })
    }

    /// The conditions that limit a search to what `grant` reaches.
    pub(crate) fn search_conditions(&self, grant: &Grant) -> Result<Vec<Condition>> {
        if let Some(study) = grant.capability_study() {
            return Ok(vec![Condition::study_is(study)]);
        }
        Ok(match grant.search_grant()? {
            None => Vec::new(),
            Some(g) => self.conditions_of(g),
        })
    }

    /// Whether token grant `g` reaches DICOM patient (`pid`, `issuer`): its one
    /// patient, a Backend Services policy's patients, or every patient for "all".
    pub(crate) fn grant_reaches_patient(
        &self,
        g: &TokenGrant,
        pid: &str,
        issuer: &str,
    ) -> Result<bool> {
        let patients: Vec<&str> = match &g.backend {
            None => vec![g.patient.as_str()],
            Some(BackendAccess::Patients(list)) => list.iter().map(String::as_str).collect(),
            Some(BackendAccess::AllStudies) => return Ok(true),
        };
        for p in patients {
            if self.patient_linked(&g.token.iss, p, pid, issuer)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The search conditions of a grant: its patient's studies, or for a Backend
    /// Services grant those its policy reaches; within its granular restrictions.
    pub(crate) fn conditions_of(&self, g: &TokenGrant) -> Vec<Condition> {
        let Some(access) = &g.backend else {
            return self.grant_conditions(
                Some(&g.token.iss),
                &g.patient,
                g.restrictions.as_deref(),
            );
        };
        let mut out: Vec<Condition> = restriction_condition(g.restrictions.as_deref())
            .into_iter()
            .collect();
        if let BackendAccess::Patients(patients) = access {
            out.push(Condition::any(
                patients
                    .iter()
                    .map(|p| self.patient_condition(Some(&g.token.iss), p))
                    .collect(),
            ));
        }
        out
    }

    /// The condition (over `st` and `p`) for the studies of FHIR Patient `patient` of
    /// token issuer `iss` (`None`: of any issuer, for the local administrator).
    fn patient_condition(&self, iss: Option<&str>, patient: &str) -> Condition {
        let identity = self
            .auth
            .as_ref()
            .is_some_and(|a| a.patients == PatientPolicy::Identity);
        if identity {
            return Condition::patient_is(patient, None);
        }
        match iss {
            Some(iss) => {
                let other = if self.unassigned_links_serve(iss) {
                    ""
                } else {
                    iss
                };
                Condition::linked_to(Some((iss, other)), patient)
            }
            None => Condition::linked_to(None, patient),
        }
    }

    /// Conditions for the studies of FHIR Patient `patient` of token issuer `iss`
    /// (`None`: of any issuer), within granular `restrictions` when there are any.
    pub(crate) fn grant_conditions(
        &self,
        iss: Option<&str>,
        patient: &str,
        restrictions: Option<&[Vec<Restriction>]>,
    ) -> Vec<Condition> {
        let mut out = vec![self.patient_condition(iss, patient)];
        out.extend(restriction_condition(restrictions));
        out
    }
}

/// The condition granular `restrictions` put on studies: one of the sets in full.
fn restriction_condition(restrictions: Option<&[Vec<Restriction>]>) -> Option<Condition> {
    let sets = restrictions?;
    Some(Condition::any(
        sets.iter()
            .map(|set| {
                Condition::all(
                    set.iter()
                        .map(|r| match r {
                            Restriction::Modality(m) => {
                                Condition::study_has_modality_code(std::slice::from_ref(m))
                            }
                        })
                        .collect(),
                )
            })
            .collect(),
    ))
}
