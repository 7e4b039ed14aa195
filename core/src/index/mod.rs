//! The SQLite index: schema, ingest, and the readers the FHIR layer uses.
//!
//! One writer at a time (ingest holds a dedicated connection), many readers (a small
//! pool of read connections). WAL mode lets readers run while an ingest commits.

mod ingest;
mod patients;
mod read;
mod run;
pub mod schema;
pub mod search;
mod walk;

pub use patients::PatientRow;
pub use read::{
    InstanceFile, InstanceLocation, InstanceRow, PixelDescription, SeriesRow, StudyFilter, StudyRow,
};
pub use run::{Conflict, ConflictPatient};
pub use run::{
    Duplicate, IndexOptions, IndexReport, NonconformantUid, NormalizedCharset, Progress, Skipped,
};

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

/// An open index file.
pub struct Index {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    /// The connection [`Index::generation`] reads `data_version` on; opened once and
    /// never replaced (its numbers are comparable only with its own).
    watcher: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Most idle read connections kept.
const MAX_IDLE_READERS: usize = 8;

impl Index {
    /// Opens the index at `path`, creating it (and running migrations) if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Index> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open_writer(&path)?;
        schema::migrate(&mut conn)?;
        drop(conn);
        Ok(Index {
            path,
            readers: Mutex::new(Vec::new()),
            watcher: Mutex::new(None),
        })
    }

    /// A number that changes whenever anything commits to the index: this process,
    /// another `sia index`, another host on the same file (SQLite's `PRAGMA
    /// data_version`, read on a connection that never writes, so every commit is
    /// another connection's). Answers computed from the index stay valid while it is
    /// the same. `None` when it cannot be read (then nothing may be cached).
    pub fn generation(&self) -> Option<u64> {
        let mut watcher = self.watcher.lock().unwrap_or_else(|e| e.into_inner());
        if watcher.is_none() {
            *watcher = Some(open_reader(&self.path).ok()?);
        }
        let conn = watcher.as_ref()?;
        let v: i64 = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut q| q.query_row([], |r| r.get(0)))
            .ok()?;
        u64::try_from(v).ok()
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with a read connection from the pool.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let out = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < MAX_IDLE_READERS {
            pool.push(conn);
        }
        out
    }

    /// Adds a link from a FHIR Patient id to a DICOM (PatientID, IssuerOfPatientID)
    /// without naming the token issuer whose Patient id it is: an "unassigned" link,
    /// which serves tokens only while exactly one issuer is configured (with two or more,
    /// it serves no one). Prefer [`Index::link_patient_for`].
    pub fn link_patient(&self, fhir_patient: &str, patient_id: &str, issuer: &str) -> Result<()> {
        self.link_patient_for("", fhir_patient, patient_id, issuer)
    }

    /// Adds a link from FHIR Patient `fhir_patient` of token issuer `fhir_issuer` (the
    /// `iss` of its tokens) to a DICOM (PatientID, IssuerOfPatientID).
    pub fn link_patient_for(
        &self,
        fhir_issuer: &str,
        fhir_patient: &str,
        patient_id: &str,
        issuer: &str,
    ) -> Result<()> {
        if fhir_patient.is_empty() || patient_id.is_empty() {
            return Err(Error::invalid(
                "a link needs a FHIR Patient id and a DICOM Patient ID",
            ));
        }
        let conn = open_writer(&self.path)?;
        conn.execute(
            "INSERT OR IGNORE INTO patient_links (fhir_issuer, fhir_patient, patient_id, issuer) VALUES (?1, ?2, ?3, ?4)",
            (fhir_issuer, fhir_patient, patient_id, issuer),
        )?;
        Ok(())
    }
}

impl Index {
    /// Removes the link from FHIR Patient `fhir_patient` of token issuer `fhir_issuer`
    /// ('' for an unassigned link) to DICOM patient (`patient_id`, `issuer`); returns how
    /// many links were removed (0 or 1). Every decision reads the links from the index,
    /// so the removal takes effect on the next request, capability URLs that relied on
    /// the link included.
    pub fn unlink_patient(
        &self,
        fhir_issuer: &str,
        fhir_patient: &str,
        patient_id: &str,
        issuer: &str,
    ) -> Result<u64> {
        let conn = open_writer(&self.path)?;
        let n = conn.execute(
            "DELETE FROM patient_links WHERE fhir_issuer = ?1 AND fhir_patient = ?2 AND patient_id = ?3 AND issuer = ?4",
            (fhir_issuer, fhir_patient, patient_id, issuer),
        )?;
        Ok(n as u64)
    }
}

/// A read-only connection with the settings every reader uses.
fn open_reader(path: &Path) -> Result<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    c.busy_timeout(Duration::from_secs(10))?;
    // Searches build their SQL from the query; the same shapes recur.
    c.set_prepared_statement_cache_capacity(128);
    // Without the query planner stability guarantee, SQLite lets the value
    // bound to `LIMIT ?` steer the plan and so expires the statement at every
    // bind: each cached search was parsed and planned again per request (40%
    // of a FHIR search's instructions). With it, a cached statement runs as
    // prepared, with a plan that does not depend on the page size.
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(c)
}

/// Opens the writing connection with the settings every writer uses.
pub(crate) fn open_writer(path: &Path) -> Result<Connection> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.exists()
    {
        return Err(Error::io(
            parent,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "folder of the index does not exist",
            ),
        ));
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    // WAL: readers never block the writer; a crash loses at most the open transaction.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// What an import of FHIR Patient resources did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PatientImport {
    /// Patients read.
    pub patients: u64,
    /// Links written (new or already there).
    pub links: u64,
    /// Identifiers or resources not linked, with the reason.
    pub skipped: Vec<String>,
}

impl Index {
    /// Links FHIR Patients to DICOM patients from Patient resources (one per line of
    /// NDJSON, a Bundle, or one resource). An identifier is linked when its `system` maps
    /// to a DICOM Issuer of Patient ID: through `systems` (FHIR system -> DICOM issuer),
    /// else a `urn:oid:` system whose OID is the issuer. Identifiers typed `MR` (the MRN)
    /// whose system cannot be mapped are reported; the value alone is never matched.
    ///
    /// The links are unassigned (no token issuer; see [`Index::link_patient`]); prefer
    /// [`Index::import_patients_for`].
    pub fn import_patients(
        &self,
        text: &str,
        systems: &std::collections::HashMap<String, String>,
    ) -> Result<PatientImport> {
        self.import_patients_for("", text, systems)
    }

    /// [`Index::import_patients`] for the Patients of token issuer `fhir_issuer`.
    pub fn import_patients_for(
        &self,
        fhir_issuer: &str,
        text: &str,
        systems: &std::collections::HashMap<String, String>,
    ) -> Result<PatientImport> {
        use serde_json::Value;
        let trimmed = text.trim();
        let mut resources: Vec<Value> = Vec::new();
        match serde_json::from_str::<Value>(trimmed) {
            Ok(v) if v["resourceType"] == "Bundle" => {
                for e in v["entry"].as_array().into_iter().flatten() {
                    resources.push(e["resource"].clone());
                }
            }
            Ok(v) => resources.push(v),
            Err(_) => {
                for (n, line) in trimmed
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                {
                    let v: Value = serde_json::from_str(line)
                        .map_err(|e| Error::invalid(format!("line {}: not JSON: {e}", n + 1)))?;
                    resources.push(v);
                }
            }
        }
        let mut report = PatientImport::default();
        let mut links: Vec<(String, String, String)> = Vec::new();
        for r in resources {
            if r["resourceType"] != "Patient" {
                continue;
            }
            let Some(id) = r["id"].as_str().filter(|s| !s.is_empty()) else {
                report.skipped.push("a Patient without an id".into());
                continue;
            };
            report.patients += 1;
            let (mapped, skipped) = mapped_identifiers(&r, systems);
            for (value, issuer) in mapped {
                links.push((id.to_string(), value, issuer));
            }
            report.skipped.extend(skipped);
        }
        let mut conn = open_writer(&self.path)?;
        let tx = conn.transaction()?;
        {
            let mut q = tx.prepare("INSERT OR IGNORE INTO patient_links (fhir_issuer, fhir_patient, patient_id, issuer) VALUES (?1, ?2, ?3, ?4)")?;
            for (fhir, pid, issuer) in &links {
                q.execute((fhir_issuer, fhir, pid, issuer))?;
                report.links += 1;
            }
        }
        tx.commit()?;
        Ok(report)
    }
}

/// The DICOM (Patient ID, Issuer of Patient ID) pairs a FHIR Patient's identifiers name:
/// each identifier whose `system` maps to a DICOM issuer (through `systems`, else a
/// `urn:oid:` system whose OID is the issuer), with its value; and a message for each MRN
/// (type `MR`) whose system maps to nothing. A value is never matched alone.
fn mapped_identifiers(
    patient: &serde_json::Value,
    systems: &std::collections::HashMap<String, String>,
) -> (Vec<(String, String)>, Vec<String>) {
    let id = patient["id"].as_str().unwrap_or("");
    let mut mapped = Vec::new();
    let mut skipped = Vec::new();
    for ident in patient["identifier"].as_array().into_iter().flatten() {
        let (Some(system), Some(value)) = (ident["system"].as_str(), ident["value"].as_str())
        else {
            continue;
        };
        let mrn = ident["type"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["code"] == "MR");
        let issuer = systems
            .get(system)
            .cloned()
            .or_else(|| system.strip_prefix("urn:oid:").map(str::to_string));
        match issuer {
            Some(issuer) => mapped.push((value.to_string(), issuer)),
            None if mrn => skipped.push(format!(
                "Patient/{id}: MRN system {system:?} maps to no DICOM issuer (add it to [patients] identifier_systems)"
            )),
            None => {}
        }
    }
    (mapped, skipped)
}

/// What [`Index::resolve_patient_for`] linked.
#[derive(Clone, Debug, Default)]
pub struct PatientResolution {
    /// The DICOM (Patient ID, Issuer of Patient ID) pairs now linked.
    pub linked: Vec<(String, String)>,
    /// Why identifiers were not linked.
    pub skipped: Vec<String>,
}

impl Index {
    /// Whether FHIR Patient `fhir_patient` of token issuer `fhir_issuer` has any link
    /// (unassigned links counted when `unassigned`).
    pub fn has_links(
        &self,
        fhir_issuer: &str,
        unassigned: bool,
        fhir_patient: &str,
    ) -> Result<bool> {
        let other = if unassigned { "" } else { fhir_issuer };
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT 1 FROM patient_links WHERE fhir_issuer IN (?1, ?2) AND fhir_patient = ?3",
                )?
                .exists([fhir_issuer, other, fhir_patient])?)
        })
    }

    /// Links one FHIR `Patient` resource of token issuer `fhir_issuer` (read at the
    /// issuer's FHIR server by a host resolving a token's patient) to the indexed DICOM
    /// patients its identifiers name, with the mapping of [`Index::import_patients`]; an
    /// identifier that names no indexed DICOM patient links nothing. An empty
    /// `linked` means no match: the patient sees nothing.
    pub fn resolve_patient_for(
        &self,
        fhir_issuer: &str,
        patient: &serde_json::Value,
        systems: &std::collections::HashMap<String, String>,
    ) -> Result<PatientResolution> {
        let Some(id) = patient["id"]
            .as_str()
            .filter(|s| !s.is_empty() && patient["resourceType"] == "Patient")
        else {
            return Err(Error::invalid("not a Patient with an id"));
        };
        let (mapped, mut skipped) = mapped_identifiers(patient, systems);
        let mut linked = Vec::new();
        for (value, issuer) in mapped {
            if self.patients_with_id(&value, Some(&issuer))?.is_empty() {
                skipped.push(format!(
                    "Patient/{id}: identifier {value} of DICOM issuer {issuer:?} names no indexed patient"
                ));
                continue;
            }
            self.link_patient_for(fhir_issuer, id, &value, &issuer)?;
            linked.push((value, issuer));
        }
        Ok(PatientResolution { linked, skipped })
    }
}
