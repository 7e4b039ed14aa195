//! Reading DICOM patients back out of the index, for hosts that present them (the
//! development EHR builds FHIR `Patient` resources from these rows).

use super::Index;
use super::db::{Row, params};
use crate::dicom::PatientInfo;
use crate::error::Result;

/// A DICOM patient (Patient ID + Issuer of Patient ID) with how many studies it has.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PatientRow {
    /// The demographics as indexed (from the most recently written instance).
    pub patient: PatientInfo,
    /// How many studies of this patient are indexed.
    pub studies: u64,
}

fn patient_row(r: &Row<'_>) -> Result<PatientRow> {
    Ok(PatientRow {
        patient: PatientInfo {
            id: r.get(0)?,
            issuer: r.get(1)?,
            name: r.get(2)?,
            birth_date: r.get(3)?,
            sex: r.get(4)?,
        },
        studies: r.get::<i64>(5)?.max(0) as u64,
    })
}

const SELECT: &str = "SELECT p.patient_id, p.issuer, p.name, p.birth_date, p.sex,
        (SELECT COUNT(*) FROM studies st WHERE st.patient = p.id)
     FROM patients p";

impl Index {
    /// Patients with at least one study, by Patient ID then issuer; at most `limit`.
    pub fn patients(&self, limit: u64) -> Result<Vec<PatientRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let sql = format!(
                "{SELECT} WHERE EXISTS (SELECT 1 FROM studies st WHERE st.patient = p.id)
                 ORDER BY p.patient_id, p.issuer LIMIT ?1"
            );
            conn.query_map(&sql, params![limit], patient_row)
        })
    }

    /// The patients with DICOM Patient ID `patient_id` (one per issuer), and with issuer
    /// `issuer` when given.
    pub fn patients_with_id(
        &self,
        patient_id: &str,
        issuer: Option<&str>,
    ) -> Result<Vec<PatientRow>> {
        self.read(|conn| {
            let sql = format!(
                "{SELECT} WHERE p.patient_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR p.issuer = ?2)
                   AND EXISTS (SELECT 1 FROM studies st WHERE st.patient = p.id)
                 ORDER BY p.issuer"
            );
            conn.query_map(&sql, params![patient_id, issuer], patient_row)
        })
    }
}
