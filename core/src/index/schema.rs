//! The index schema and its forward migrations, one list for both backends.
//!
//! The number of migrations applied is SQLite's `PRAGMA user_version`, or the one row of
//! PostgreSQL's `sia_schema` table. Opening an index runs the missing ones in one
//! transaction (on PostgreSQL under an advisory lock, so hosts starting together
//! migrate once); an index from a newer sia is refused rather than misread. The DDL is
//! written with SQLite's type names; `db::dialect::postgres_ddl` maps them.
//!
//! `files.walk_key` is the path with each `/` replaced by a NUL byte: ordered by it, the
//! rows come in the order of a depth-first walk that sorts each folder by name, so a
//! re-index merges the walk with the index in one pass instead of holding either in
//! memory. `instances.frame_table` holds [`crate::dicom::FrameTable::to_bytes`]; see there for
//! the layout. `files.state` is one of the `STATE_*` constants. `patient_links` maps
//! (token issuer, FHIR Patient id) to a DICOM (Patient ID, Issuer of Patient ID); the
//! token issuer '' marks a link made without one (see [`crate::index::Index::link_patient`]).
//! `patients.name_key` and `studies.referring_physician_key` hold the names folded by
//! [`super::fold_name`], which case-insensitive person-name matching compares.
//! `files.root` names the storage root a file's `path` is relative to ('' when the
//! path is absolute; see [`super::StorageRoots`]).

use super::db::dialect::{fold_name, postgres_ddl};
use super::db::{Db, params};
use crate::error::{Error, Result};

/// The file's instance is in the index.
pub const STATE_INDEXED: i64 = 0;
/// The file holds a SOP Instance UID that another file (with a smaller path) provides.
pub const STATE_DUPLICATE: i64 = 1;
/// The file could not be indexed; `reason` says why.
pub const STATE_SKIPPED: i64 = 2;
/// The file names a study, series or SOP Instance UID that the index holds for another
/// patient; it is not indexed (`reason` says which), and is read again on every run until
/// the conflict is gone.
pub const STATE_CONFLICT: i64 = 3;

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL,
        walk_key BLOB NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        state INTEGER NOT NULL,
        sop_instance_uid TEXT,
        reason TEXT
    );
    CREATE INDEX files_sop ON files(sop_instance_uid);
    CREATE TABLE patients (
        id INTEGER PRIMARY KEY,
        patient_id TEXT NOT NULL,
        issuer TEXT NOT NULL,
        name TEXT NOT NULL,
        birth_date TEXT NOT NULL,
        sex TEXT NOT NULL,
        UNIQUE (patient_id, issuer)
    );
    CREATE TABLE studies (
        id INTEGER PRIMARY KEY,
        study_uid TEXT NOT NULL UNIQUE,
        patient INTEGER NOT NULL REFERENCES patients(id),
        date TEXT NOT NULL,
        time TEXT NOT NULL,
        timezone_offset TEXT NOT NULL,
        accession_number TEXT NOT NULL,
        description TEXT NOT NULL,
        referring_physician TEXT NOT NULL,
        study_id TEXT NOT NULL,
        modalities TEXT NOT NULL DEFAULT '',
        num_series INTEGER NOT NULL DEFAULT 0,
        num_instances INTEGER NOT NULL DEFAULT 0,
        updated_ms INTEGER NOT NULL
    );
    CREATE INDEX studies_patient ON studies(patient);
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        series_uid TEXT NOT NULL UNIQUE,
        study INTEGER NOT NULL REFERENCES studies(id),
        modality TEXT NOT NULL,
        number INTEGER,
        description TEXT NOT NULL,
        body_part TEXT NOT NULL,
        laterality TEXT NOT NULL,
        date TEXT NOT NULL,
        time TEXT NOT NULL,
        num_instances INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX series_study ON series(study);
    CREATE TABLE instances (
        id INTEGER PRIMARY KEY,
        sop_instance_uid TEXT NOT NULL UNIQUE,
        series INTEGER NOT NULL REFERENCES series(id),
        file INTEGER NOT NULL UNIQUE REFERENCES files(id),
        sop_class_uid TEXT NOT NULL,
        transfer_syntax TEXT NOT NULL,
        number INTEGER,
        title TEXT NOT NULL,
        rows INTEGER,
        columns INTEGER,
        samples_per_pixel INTEGER,
        bits_allocated INTEGER,
        bits_stored INTEGER,
        pixel_representation INTEGER,
        photometric TEXT,
        planar_configuration INTEGER,
        number_of_frames INTEGER NOT NULL,
        frame_table BLOB NOT NULL
    );
    CREATE INDEX instances_series ON instances(series);
    CREATE TABLE patient_links (
        fhir_patient TEXT NOT NULL,
        patient_id TEXT NOT NULL,
        issuer TEXT NOT NULL,
        PRIMARY KEY (fhir_patient, patient_id, issuer)
    );
    CREATE INDEX patient_links_dicom ON patient_links(patient_id, issuer);
    "#,
    // 2: links are keyed by the token issuer too: a FHIR Patient id means something only
    // on its EHR. Links made before carry the issuer '' ("unassigned"), which serves a
    // token only while exactly one issuer is configured.
    r#"
    CREATE TABLE patient_links_2 (
        fhir_issuer TEXT NOT NULL,
        fhir_patient TEXT NOT NULL,
        patient_id TEXT NOT NULL,
        issuer TEXT NOT NULL,
        PRIMARY KEY (fhir_issuer, fhir_patient, patient_id, issuer)
    );
    INSERT INTO patient_links_2 (fhir_issuer, fhir_patient, patient_id, issuer)
        SELECT '', fhir_patient, patient_id, issuer FROM patient_links;
    DROP TABLE patient_links;
    ALTER TABLE patient_links_2 RENAME TO patient_links;
    CREATE INDEX patient_links_dicom ON patient_links(patient_id, issuer);
    "#,
    // 3: before this version a file could move a study, series or instance to its own
    // patient (a reused UID), and the index keeps no trace of whose files were under
    // it. `files.reread` = 1 makes the next index run read the file again whatever its
    // stat, which puts each instance back with its own patient and reports conflicts.
    r#"
    ALTER TABLE files ADD COLUMN reread INTEGER NOT NULL DEFAULT 0;
    UPDATE files SET reread = 1;
    "#,
    // 4: folded person names, so that case-insensitive matching answers alike on
    // SQLite and PostgreSQL, beyond ASCII (filled for existing rows by `backfill`).
    r#"
    ALTER TABLE patients ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
    ALTER TABLE studies ADD COLUMN referring_physician_key TEXT NOT NULL DEFAULT '';
    "#,
    // 5: named storage roots. A file under a root is stored as (root, path relative to
    // it) with a walk key of its own form (see `index::roots`); rows written before
    // keep root '' and their absolute path, which is still read as it was.
    r#"
    ALTER TABLE files ADD COLUMN root TEXT NOT NULL DEFAULT '';
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Advisory lock class under which PostgreSQL migrations run ("sia" + 1), with the
/// schema's hash as the second key: one migration at a time per schema.
const MIGRATION_LOCK: i32 = 0x7369_6101;

/// Brings the schema of `conn` up to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Db) -> Result<()> {
    let postgres = conn.is_postgres();
    let mut tx = conn.begin(false)?;
    if postgres {
        tx.query_one(
            &format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK}, hashtext(current_schema()))::text"
            ),
            &[],
            |_| Ok(()),
        )?;
        tx.batch("CREATE TABLE IF NOT EXISTS sia_schema (version BIGINT NOT NULL)")?;
    }
    let version = version(&mut tx)?;
    if version > SCHEMA_VERSION {
        return Err(Error::schema(format!(
            "the index has schema version {version}, newer than this sia ({SCHEMA_VERSION}); use a newer sia"
        )));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    if version == 0 {
        let tables: i64 = if postgres {
            tx.query_one(
                "SELECT count(*) FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name != 'sia_schema'",
                &[],
                |r| r.get(0),
            )?
        } else {
            tx.query_one(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                &[],
                |r| r.get(0),
            )?
        };
        if tables > 0 {
            return Err(Error::schema(if postgres {
                "the PostgreSQL schema holds tables but not a sia index"
            } else {
                "the file is an SQLite database but not a sia index"
            }));
        }
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        if postgres {
            tx.batch(&postgres_ddl(sql))?;
        } else {
            tx.batch(sql)?;
        }
        if i + 1 == 4 {
            backfill_name_keys(&mut tx)?;
        }
        set_version(&mut tx, (i + 1) as i64)?;
    }
    tx.commit()
}

fn version(conn: &mut Db) -> Result<i64> {
    if conn.is_postgres() {
        Ok(conn
            .query_opt("SELECT version FROM sia_schema", &[], |r| r.get(0))?
            .unwrap_or(0))
    } else {
        conn.query_one("PRAGMA user_version", &[], |r| r.get(0))
    }
}

fn set_version(conn: &mut Db, version: i64) -> Result<()> {
    if conn.is_postgres() {
        conn.execute("DELETE FROM sia_schema", &[])?;
        conn.execute(
            "INSERT INTO sia_schema (version) VALUES (?1)",
            params![version],
        )?;
    } else {
        // PRAGMA takes no bound values; the version is a number this code computed.
        conn.batch(&format!("PRAGMA user_version = {version}"))?;
    }
    Ok(())
}

/// Fills the folded name keys of rows written before migration 4.
fn backfill_name_keys(conn: &mut Db) -> Result<()> {
    let patients: Vec<(i64, String)> =
        conn.query_map("SELECT id, name FROM patients", &[], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    for (id, name) in patients {
        conn.execute(
            "UPDATE patients SET name_key = ?2 WHERE id = ?1",
            params![id, &fold_name(&name)],
        )?;
    }
    let studies: Vec<(i64, String)> =
        conn.query_map("SELECT id, referring_physician FROM studies", &[], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    for (id, name) in studies {
        conn.execute(
            "UPDATE studies SET referring_physician_key = ?2 WHERE id = ?1",
            params![id, &fold_name(&name)],
        )?;
    }
    Ok(())
}
