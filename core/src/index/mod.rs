//! The index: schema, ingest, and the readers the FHIR and DICOMweb layers use, on one
//! of two backends: an SQLite file (the embedded default) or a PostgreSQL database (for
//! several hosts over one shared index).
//!
//! One writer at a time per index run (ingest holds a dedicated connection), many
//! readers (a pool of read connections). SQLite's WAL mode lets readers run while an
//! ingest commits; PostgreSQL's MVCC does the same.
//!
//! # One SQL text, two dialects
//!
//! Every statement is written once, in the subset of SQL both engines answer alike,
//! and runs over one connection interface ([`db::Db`]); the logic (ingest merge, the
//! duplicates rule, conflicts, links, searches) exists once. What differs is small and
//! lives in `db`:
//!
//! - placeholders: written `?N` (or `?` in built searches), run as written on SQLite
//!   and rendered to `$N` for PostgreSQL once per statement and connection;
//! - DDL: migrations are written with SQLite's type names and mapped word by word for
//!   PostgreSQL (`INTEGER PRIMARY KEY` -> BIGINT identity, `INTEGER` -> BIGINT, `BLOB`
//!   -> BYTEA, `TEXT` -> `TEXT COLLATE "C"`);
//! - connections, pooling (SQLite: idle read connections kept here; PostgreSQL: an r2d2
//!   pool, whose bound on open connections matters when many hosts share one server),
//!   transactions' isolation and error mapping.
//!
//! The SQLite path pays one `match` per call on the backend and binds borrowed values
//! (no copy per parameter); its statements come from rusqlite's cache as before.
//!
//! The common subset, and why each answer is identical on both:
//!
//! - upserts are `INSERT ... ON CONFLICT (...) DO UPDATE/DO NOTHING ... RETURNING id`
//!   (SQLite >= 3.35, bundled here); no `INSERT OR IGNORE`, no `group_concat`;
//! - text compares bytewise: SQLite's BINARY collation, PostgreSQL's `COLLATE "C"` on
//!   every text column, so equality, DICOM date and time ranges (`YYYYMMDD` text
//!   compared with `>=`/`<=`) and ORDER BY agree whatever the database's locale;
//! - pattern matching is `LIKE ? ESCAPE '\'`, case-sensitive on both (SQLite
//!   connections set `PRAGMA case_sensitive_like = ON`), with `%`, `_` and `\` in values
//!   escaped by the caller; case-insensitive person-name matching compares a folded key
//!   stored beside each name (`patients.name_key`, `studies.referring_physician_key`,
//!   [`db::dialect::fold_name`]: Unicode lower case, computed in Rust) with a pattern
//!   folded the same way, so `müller` finds `MÜLLER` on both engines;
//! - every ORDER BY ends with a unique column (a UID, a walk key, a primary key), and
//!   nullable numbers sort as `n IS NULL, n` (SQLite puts NULL first, PostgreSQL last),
//!   so pages (`LIMIT ? OFFSET ?`) hold the same rows in the same order;
//! - integers are 64-bit everywhere (BIGINT columns; [`db::Row::get`] reads
//!   PostgreSQL's narrower integers too), and sums are `CAST(... AS BIGINT)`;
//! - a parameter that may be NULL is tested as `CAST(?N AS TEXT) IS NULL`: PostgreSQL
//!   types a parameter from its first use, and a bare `?N IS NULL` gives it none;
//! - IN-lists are bound one value per placeholder, at most
//!   [`search::MAX_LIST_VALUES`] per list, far under both engines' limits (SQLite
//!   32,766, PostgreSQL 65,535 parameters per statement).
//!
//! Why not a query builder (`sea-query`): the searches are a fixed set of shapes over
//! five tables whose only dialect points are the ones above; a builder would rewrite
//! every statement into builder calls (hundreds of lines, each a chance to change an
//! answer), add a dependency tree, and build strings per query in the hot reader path,
//! where the SQLite path now runs its text as written from rusqlite's statement cache.
//! Placeholder rendering is ~40 lines with unit tests; the cross-backend tests
//! (`core/tests/backends.rs`) check the answers.

pub(crate) mod db;
mod ingest;
mod patients;
mod pending;
mod read;
mod roots;
mod run;
pub mod schema;
pub mod search;
mod walk;
mod writer;

pub use db::Value;
pub use db::dialect::fold_name;
pub use patients::PatientRow;
pub use read::{
    InstanceFile, InstanceLocation, InstanceRow, PixelDescription, SeriesRow, StudyFilter, StudyRow,
};
pub use roots::StorageRoots;
pub use run::{Conflict, ConflictPatient};
pub use run::{
    Duplicate, IndexOptions, IndexReport, NonconformantUid, NormalizedCharset, Progress, Skipped,
};

pub(crate) use db::{Db, params};

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

/// Where an index lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexLocation {
    /// An SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database: a `postgres://` / `postgresql://` URL (or libpq's
    /// `key=value` form), and the most connections this host opens to it.
    Postgres {
        /// The connection URL; a schema other than `public` is chosen with
        /// `?options=-c%20search_path%3D<schema>`.
        url: String,
        /// Most connections open at once (readers and writers together).
        max_connections: u32,
    },
}

/// Default of [`IndexLocation::Postgres::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

impl IndexLocation {
    /// The location `db` names: a PostgreSQL URL when it starts with `postgres://` or
    /// `postgresql://`, else an SQLite file.
    pub fn from_db(db: &Path) -> IndexLocation {
        match db.to_str() {
            Some(s) if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                IndexLocation::Postgres {
                    url: s.to_string(),
                    max_connections: DEFAULT_MAX_CONNECTIONS,
                }
            }
            _ => IndexLocation::Sqlite(db.to_path_buf()),
        }
    }
}

enum Backend {
    Sqlite {
        path: PathBuf,
        readers: Mutex<Vec<Db>>,
        /// The connection [`Index::generation`] reads `data_version` on; opened once
        /// and never replaced (its numbers are comparable only with its own).
        watcher: Mutex<Option<Connection>>,
    },
    Postgres(db::pg::Pool),
}

/// An open index.
pub struct Index {
    backend: Backend,
    /// This host's storage roots: how file paths are stored and found again.
    storage: StorageRoots,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Index");
        match &self.backend {
            Backend::Sqlite { path, .. } => d.field("path", path),
            Backend::Postgres(_) => d.field("backend", &"postgres"),
        };
        d.finish_non_exhaustive()
    }
}

/// PostgreSQL advisory lock class held by an index run for its whole length ("sia" +
/// 2), with the schema's hash as the second key: one run at a time per index.
pub(crate) const WRITER_LOCK: i32 = 0x7369_6102;

/// Most idle SQLite read connections kept.
const MAX_IDLE_READERS: usize = 8;

impl Index {
    /// Opens the SQLite index at `path`, creating it (and running migrations) if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Index> {
        Index::open_at(&IndexLocation::Sqlite(path.as_ref().to_path_buf()))
    }

    /// Opens the index at `location`, creating its tables (and running migrations) if
    /// needed. A PostgreSQL database that cannot be reached is
    /// [`crate::ErrorKind::Unavailable`]; one whose schema is newer than this sia, or that holds
    /// other tables and no sia schema, is [`crate::ErrorKind::Config`].
    pub fn open_at(location: &IndexLocation) -> Result<Index> {
        match location {
            IndexLocation::Sqlite(path) => {
                let mut conn = Db::Sqlite(open_writer(path)?);
                schema::migrate(&mut conn)?;
                Ok(Index {
                    backend: Backend::Sqlite {
                        path: path.clone(),
                        readers: Mutex::new(Vec::new()),
                        watcher: Mutex::new(None),
                    },
                    storage: StorageRoots::default(),
                })
            }
            IndexLocation::Postgres {
                url,
                max_connections,
            } => db::pg::off_runtime(|| {
                let pool = db::pg::pool(url, *max_connections)?;
                db::pg::with_connection(&pool, schema::migrate)?;
                Ok(Index {
                    backend: Backend::Postgres(pool),
                    storage: StorageRoots::default(),
                })
            }),
        }
    }

    /// This index as seen by a host with storage roots `storage`: files under a root
    /// are indexed as (root name, relative path), and such rows are read through the
    /// root's folder on this host (see [`StorageRoots`]). Without roots every path is
    /// stored absolute.
    pub fn with_storage_roots(mut self, storage: StorageRoots) -> Index {
        self.storage = storage;
        self
    }

    /// The storage roots this index resolves stored paths through.
    pub fn storage_roots(&self) -> &StorageRoots {
        &self.storage
    }

    /// A number that changes whenever anything commits to the index: this process,
    /// another `sia index`, another host on the same file (SQLite's `PRAGMA
    /// data_version`, read on a connection that never writes, so every commit is
    /// another connection's). Answers computed from the index stay valid while it is
    /// the same. `None` when it cannot be read (then nothing may be cached), and on
    /// PostgreSQL, where several hosts write and no such number is kept yet: there
    /// search answers are not cached.
    pub fn generation(&self) -> Option<u64> {
        let Backend::Sqlite { path, watcher, .. } = &self.backend else {
            return None;
        };
        let mut watcher = watcher.lock().unwrap_or_else(|e| e.into_inner());
        if watcher.is_none() {
            *watcher = Some(open_reader(path).ok()?);
        }
        let conn = watcher.as_ref()?;
        let v: i64 = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut q| q.query_row([], |r| r.get(0)))
            .ok()?;
        u64::try_from(v).ok()
    }

    /// The index file (`None` for an index on PostgreSQL).
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite { path, .. } => Some(path),
            Backend::Postgres(_) => None,
        }
    }

    /// Runs `f` with a read connection from the pool (off any async runtime's thread on
    /// PostgreSQL, whose sync client must not block one). On PostgreSQL `f` runs again
    /// on another connection when the first one had died while idle in the pool (see
    /// [`db::pg::with_connection`]).
    pub(crate) fn read<R: Send>(
        &self,
        mut f: impl FnMut(&mut Db) -> Result<R> + Send,
    ) -> Result<R> {
        match &self.backend {
            Backend::Sqlite { path, readers, .. } => {
                let pooled = readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let mut conn = match pooled {
                    Some(c) => c,
                    None => Db::Sqlite(open_reader(path)?),
                };
                let out = f(&mut conn);
                let mut pool = readers.lock().unwrap_or_else(|e| e.into_inner());
                if pool.len() < MAX_IDLE_READERS {
                    pool.push(conn);
                }
                out
            }
            Backend::Postgres(pool) => {
                db::pg::off_runtime(|| db::pg::with_connection(pool, &mut f))
            }
        }
    }

    /// Runs `f` with a writing connection (a new SQLite connection, or one from the
    /// PostgreSQL pool), off any async runtime's thread; on PostgreSQL again on another
    /// connection when the first had died while idle, before any statement answered.
    pub(crate) fn write<R: Send>(
        &self,
        mut f: impl FnMut(&mut Db) -> Result<R> + Send,
    ) -> Result<R> {
        match &self.backend {
            Backend::Sqlite { path, .. } => f(&mut Db::Sqlite(open_writer(path)?)),
            Backend::Postgres(pool) => {
                db::pg::off_runtime(|| db::pg::with_connection(pool, &mut f))
            }
        }
    }

    /// A connection for the walk of an index run: read-only where the backend has it.
    pub(crate) fn walk_connection(&self) -> Result<Db> {
        match &self.backend {
            Backend::Sqlite { path, .. } => {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(Duration::from_secs(30))?;
                conn.pragma_update(None, "case_sensitive_like", "ON")?;
                Ok(Db::Sqlite(conn))
            }
            Backend::Postgres(pool) => Ok(Db::Pg(Box::new(db::pg::checkout(pool)?))),
        }
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
        self.write(|conn| {
            conn.execute(
                INSERT_LINK,
                params![fhir_issuer, fhir_patient, patient_id, issuer],
            )?;
            Ok(())
        })
    }
}

/// Adds a link; one already there stays as it is.
const INSERT_LINK: &str = "INSERT INTO patient_links (fhir_issuer, fhir_patient, patient_id, issuer) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT DO NOTHING";

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
        self.write(|conn| {
            conn.execute(
                "DELETE FROM patient_links WHERE fhir_issuer = ?1 AND fhir_patient = ?2 AND patient_id = ?3 AND issuer = ?4",
                params![fhir_issuer, fhir_patient, patient_id, issuer],
            )
        })
    }
}

/// Opens an SQLite read connection with the settings every reader uses.
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
    // LIKE compares as PostgreSQL's does (see the module docs).
    c.pragma_update(None, "case_sensitive_like", "ON")?;
    Ok(c)
}

/// Opens the SQLite writing connection with the settings every writer uses.
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
    conn.busy_timeout(WRITER_BUSY_TIMEOUT)?;
    // WAL: readers never block the writer; a crash loses at most the open transaction.
    set_wal(&conn)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "case_sensitive_like", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// How long a writer waits for another process's write lock.
const WRITER_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Puts the index in WAL mode. Switching a new file's journal needs an exclusive lock for
/// which SQLite answers "database is locked" at once instead of calling the busy
/// handler: two processes (or engines) creating the same index at the same moment had
/// one of them fail. The switch is retried within the writer's busy timeout; once one of
/// them has made the file WAL, the others' pragma finds it so and needs no lock.
fn set_wal(conn: &Connection) -> Result<()> {
    let deadline = std::time::Instant::now() + WRITER_BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            r => return Ok(r?),
        }
    }
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
        report.links += self.write(|conn| {
            let mut tx = conn.begin(false)?;
            for (fhir, pid, issuer) in &links {
                tx.execute(INSERT_LINK, params![fhir_issuer, fhir, pid, issuer])?;
            }
            tx.commit()?;
            Ok(links.len() as u64)
        })?;
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
            conn.exists(
                "SELECT 1 FROM patient_links WHERE fhir_issuer IN (?1, ?2) AND fhir_patient = ?3",
                params![fhir_issuer, other, fhir_patient],
            )
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
