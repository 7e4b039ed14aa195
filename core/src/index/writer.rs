//! The writer of an index run (stage 3 of [`super::ingest`]): applies each scanned,
//! changed or vanished file to the index inside the run's batched transactions — file
//! rows, the patient / study / series / instance hierarchy, the duplicates rule (the
//! smallest path provides a SOP Instance UID), conflicts (a UID the index holds for
//! another patient), and the counts and modalities of every study and series touched.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::db::dialect::fold_name;
use super::db::{Db, params};
use super::pending::PendingInstances;
use super::roots::StorageRoots;
use super::run::{
    Conflict, ConflictPatient, Duplicate, IndexOptions, IndexReport, NonconformantUid,
    NormalizedCharset, Progress, Skipped,
};
use super::schema::{STATE_CONFLICT, STATE_DUPLICATE, STATE_INDEXED, STATE_SKIPPED};
use super::walk::{Done, Entry, KNOWN_COLUMNS, Known, known_from, stat_entry};
use crate::dicom::{InstanceRecord, ScanError, Scanned, scan_file};
use crate::error::{Error, Result};

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Studies, series and patients whose derived counts or existence may have changed.
#[derive(Default)]
struct Touched {
    series: HashSet<i64>,
    studies: HashSet<i64>,
    patients: HashSet<i64>,
}

impl Touched {
    /// Recomputes counts and ModalitiesInStudy, and deletes what became empty.
    fn settle(&mut self, tx: &mut Db, updated_ms: i64) -> Result<()> {
        for id in self.series.drain() {
            // The count and the parent in one statement: each is a round trip on
            // PostgreSQL. No row: the series went already (nothing refers to it).
            let Some((n, study)): Option<(i64, i64)> = tx.query_opt(
                "SELECT (SELECT count(*) FROM instances WHERE series = ?1), study FROM series WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            else {
                continue;
            };
            // Whether the series shrank or went, its study's counts change too.
            self.studies.insert(study);
            if n == 0 {
                tx.execute("DELETE FROM series WHERE id = ?1", params![id])?;
            } else {
                tx.execute(
                    "UPDATE series SET num_instances = ?2 WHERE id = ?1",
                    params![id, n],
                )?;
            }
        }
        for id in self.studies.drain() {
            let Some((series, instances, patient)): Option<(i64, i64, i64)> = tx.query_opt(
                "SELECT (SELECT count(*) FROM series WHERE study = ?1),
                        (SELECT CAST(coalesce(sum(num_instances), 0) AS BIGINT) FROM series WHERE study = ?1),
                        patient
                 FROM studies WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?
            else {
                continue;
            };
            if series == 0 {
                tx.execute("DELETE FROM studies WHERE id = ?1", params![id])?;
                self.patients.insert(patient);
                continue;
            }
            // ModalitiesInStudy: the distinct codes in byte order, joined here rather
            // than by an aggregate whose name differs per engine.
            let modalities = tx
                .query_map(
                    "SELECT DISTINCT modality FROM series WHERE study = ?1 AND modality != '' ORDER BY modality",
                    params![id],
                    |r| r.get::<String>(0),
                )?
                .join("\\");
            tx.execute(
                "UPDATE studies SET num_series = ?2, num_instances = ?3, modalities = ?4, updated_ms = ?5 WHERE id = ?1",
                params![id, series, instances, &modalities, updated_ms],
            )?;
        }
        for id in self.patients.drain() {
            tx.execute(
                "DELETE FROM patients WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM studies WHERE patient = ?1)",
                params![id],
            )?;
        }
        Ok(())
    }
}

/// Deletes the instance stored for file `file_id`, if any.
fn delete_instance_of_file(tx: &mut Db, file_id: i64, touched: &mut Touched) -> Result<()> {
    let series: Option<i64> = tx.query_opt(
        "DELETE FROM instances WHERE file = ?1 RETURNING series",
        params![file_id],
        |r| r.get(0),
    )?;
    touched.series.extend(series);
    Ok(())
}

/// The file that holds an instance in the index: instance row id, file row id, stored
/// path, walk key and storage root.
type Holder = (i64, i64, String, Vec<u8>, String);

/// What the index holds for the UIDs of `r`, read in one statement (each statement is
/// a round trip on PostgreSQL): for each level (instance, series, study) whose UID the
/// index holds with instances, that DICOM patient (ID, issuer); and the file holding
/// the SOP Instance UID.
struct Held {
    owners: [Option<(String, String)>; 3],
    holder: Option<Holder>,
}

/// The levels of [`Held::owners`], in the order conflicts are reported.
const LEVELS: [&str; 3] = ["instance", "series", "study"];

fn held(tx: &mut Db, r: &InstanceRecord) -> Result<Held> {
    // UNION ALL of three lookups by unique UID, so at most one row per level; the level
    // number orders them (a UNION's row order is not defined).
    let rows = tx.query_map(
        "SELECT 0, p.patient_id, p.issuer, i.id, f.id, f.path, f.walk_key, f.root
           FROM instances i JOIN series se ON se.id = i.series JOIN studies st ON st.id = se.study
           JOIN patients p ON p.id = st.patient JOIN files f ON f.id = i.file
          WHERE i.sop_instance_uid = ?1
         UNION ALL
         SELECT 1, p.patient_id, p.issuer, NULL, NULL, NULL, NULL, NULL
           FROM series se JOIN studies st ON st.id = se.study JOIN patients p ON p.id = st.patient
          WHERE se.series_uid = ?2 AND EXISTS (SELECT 1 FROM instances i WHERE i.series = se.id)
         UNION ALL
         SELECT 2, p.patient_id, p.issuer, NULL, NULL, NULL, NULL, NULL
           FROM studies st JOIN patients p ON p.id = st.patient
          WHERE st.study_uid = ?3 AND EXISTS (SELECT 1 FROM series se JOIN instances i ON i.series = se.id
            WHERE se.study = st.id)",
        params![&r.sop_instance_uid, &r.series.uid, &r.study.uid],
        |row| {
            let level: i64 = row.get(0)?;
            let owner = (row.get::<String>(1)?, row.get::<String>(2)?);
            let holder = if level == 0 {
                Some((
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                ))
            } else {
                None
            };
            Ok((level, owner, holder))
        },
    )?;
    let mut held = Held {
        owners: [None, None, None],
        holder: None,
    };
    for (level, owner, holder) in rows {
        let slot = usize::try_from(level)
            .ok()
            .and_then(|l| held.owners.get_mut(l))
            .ok_or_else(|| Error::internal("index: a lookup answered an unknown level"))?;
        *slot = Some(owner);
        if holder.is_some() {
            held.holder = holder;
        }
    }
    Ok(held)
}

impl Held {
    /// The first UID of `r` (instance, series, study) that the index holds, with
    /// instances, for another DICOM patient: its level, the UID and that patient.
    fn conflict(&self, r: &InstanceRecord) -> Option<(&'static str, String, ConflictPatient)> {
        let uids = [&r.sop_instance_uid, &r.series.uid, &r.study.uid];
        for ((level, uid), owner) in LEVELS.iter().zip(uids).zip(&self.owners) {
            if let Some((patient_id, issuer)) = owner
                && (*patient_id != r.patient.id || *issuer != r.patient.issuer)
            {
                return Some((
                    level,
                    uid.to_string(),
                    ConflictPatient {
                        patient_id: patient_id.clone(),
                        issuer: issuer.clone(),
                    },
                ));
            }
        }
        None
    }
}

/// The single writer: applies scan results inside the current batch transaction.
pub(super) struct Writer<'r> {
    updated_ms: i64,
    roots: &'r [PathBuf],
    /// How paths are stored, and stored paths found again on this host.
    storage: &'r StorageRoots,
    touched: Touched,
    patients: HashMap<(String, String), (i64, [String; 3])>,
    studies: HashMap<String, (i64, i64)>,
    series: HashMap<String, (i64, i64)>,
    /// Files indexed by this run and still holding their instance (a file indexed early
    /// in the run can be displaced by a duplicate with a smaller path).
    indexed: HashSet<i64>,
    /// Promoted duplicates that the walk also counted as unchanged.
    pub(super) promoted_unchanged: u64,
    /// Files found in conflict in this run, tried once more at its end (the other
    /// patient's data may have gone later in the same run).
    conflicted: Vec<(Entry, Box<InstanceRecord>)>,
    /// Instance rows of this transaction not yet written.
    pending: PendingInstances,
}

impl<'r> Writer<'r> {
    pub(super) fn new(updated_ms: i64, roots: &'r [PathBuf], storage: &'r StorageRoots) -> Self {
        Writer {
            updated_ms,
            roots,
            storage,
            touched: Touched::default(),
            patients: HashMap::new(),
            studies: HashMap::new(),
            pending: PendingInstances::default(),
            series: HashMap::new(),
            indexed: HashSet::new(),
            promoted_unchanged: 0,
            conflicted: Vec::new(),
        }
    }

    /// Applies everything that arrives on `rx`, committing every `batch_size` files or
    /// `commit_interval`, whichever comes first.
    pub(super) fn run(
        &mut self,
        conn: &mut Db,
        rx: std::sync::mpsc::Receiver<Done>,
        opts: &IndexOptions<'_>,
        found: &AtomicU64,
        walk_done: &AtomicBool,
        report: &mut IndexReport,
    ) -> Result<()> {
        let (mut files_done, mut bytes_done, mut batch) = (0u64, 0u64, 0usize);
        let mut last_commit = Instant::now();
        // The file written last, and when the callback was last called: a walk that finds
        // nothing to write still calls it every `progress_interval`, so a host can cancel.
        let (mut current, mut last_call) = (String::new(), Instant::now());
        let interval = opts.progress_interval.max(Duration::from_millis(1));
        let mut tx = conn.begin(false)?;
        loop {
            let done = match rx.recv_timeout(interval) {
                Ok(done) => Some(done),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let wrote = match done {
                Some(Done::Vanished(k)) => {
                    self.remove(&mut tx, &k, report)?;
                    batch += 1;
                    false
                }
                Some(Done::Scanned {
                    entry,
                    known,
                    result,
                }) => {
                    self.apply(&mut tx, &entry, known.as_ref(), result, report)?;
                    files_done += 1;
                    bytes_done += entry.size;
                    batch += 1;
                    current = entry.path;
                    true
                }
                None => false,
            };
            if let Some(cb) = &opts.progress
                && (wrote || last_call.elapsed() >= interval)
            {
                last_call = Instant::now();
                let flow = cb(&Progress {
                    files_done,
                    files_found: found.load(Ordering::Relaxed),
                    walk_done: walk_done.load(Ordering::Acquire),
                    bytes_done,
                    current: Path::new(&current),
                });
                if flow.is_break() {
                    // Dropping the transaction rolls back the files written since the
                    // last commit; committed batches are consistent.
                    drop(tx);
                    return Err(Error::cancelled());
                }
            }
            // Nothing to commit after a mere wait (batch 0): a no-op walk commits nothing.
            if batch >= opts.batch_size.max(1)
                || (batch > 0 && last_commit.elapsed() >= opts.commit_interval)
            {
                self.pending.flush(&mut tx)?;
                self.touched.settle(&mut tx, self.updated_ms)?;
                tx.commit()?;
                self.after_commit();
                tx = conn.begin(false)?;
                batch = 0;
                last_commit = Instant::now();
            }
        }
        let retry = std::mem::take(&mut self.conflicted);
        if !retry.is_empty() {
            report
                .conflicts
                .retain(|c| !retry.iter().any(|(e, _)| e.path == c.path));
            for (e, record) in retry {
                self.write_result(&mut tx, &e, Ok(Scanned::Instance(record)), report)?;
            }
            self.conflicted.clear();
        }
        self.pending.flush(&mut tx)?;
        self.touched.settle(&mut tx, self.updated_ms)?;
        tx.commit()?;
        report.indexed = self.indexed.len() as u64;
        Ok(())
    }

    /// Forgets cached row ids: rows may have been deleted, and the caches stay small.
    fn after_commit(&mut self) {
        self.patients.clear();
        self.studies.clear();
        self.series.clear();
    }

    fn file_row(
        &self,
        tx: &mut Db,
        e: &Entry,
        state: i64,
        sop: Option<&str>,
        reason: Option<&str>,
    ) -> Result<i64> {
        tx.query_one(
            "INSERT INTO files (path, walk_key, size, mtime_ns, inode, state, sop_instance_uid, reason, root)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (walk_key) DO UPDATE SET path = excluded.path, root = excluded.root, size = excluded.size,
               mtime_ns = excluded.mtime_ns, inode = excluded.inode, state = excluded.state,
               sop_instance_uid = excluded.sop_instance_uid, reason = excluded.reason, reread = 0
             RETURNING id",
            params![
                &e.stored.path,
                &e.key,
                e.size as i64,
                e.mtime_ns,
                e.inode as i64,
                state,
                sop,
                reason,
                &e.stored.root
            ],
            |r| r.get(0),
        )
    }

    /// Removes a vanished file and, if it held an instance, lets a duplicate take over.
    fn remove(&mut self, tx: &mut Db, k: &Known, report: &mut IndexReport) -> Result<()> {
        if self.pending.holds_file(k.id) {
            self.pending.flush(tx)?;
        }
        delete_instance_of_file(tx, k.id, &mut self.touched)?;
        tx.execute("DELETE FROM files WHERE id = ?1", params![k.id])?;
        report.removed += 1;
        if k.state == STATE_INDEXED
            && let Some(sop) = &k.sop
        {
            self.promote(tx, sop, report)?;
        }
        Ok(())
    }

    /// When no file holds `sop` any more, re-reads the files that were its duplicates (in
    /// path order, so the smallest path that still has it wins), in this transaction.
    fn promote(&mut self, tx: &mut Db, sop: &str, report: &mut IndexReport) -> Result<()> {
        if self.pending.holds_sop(sop) {
            self.pending.flush(tx)?;
        }
        if tx.exists(
            "SELECT 1 FROM instances WHERE sop_instance_uid = ?1",
            params![sop],
        )? {
            return Ok(());
        }
        let candidates: Vec<(Known, String, String)> = tx.query_map(
            &format!(
                "SELECT {KNOWN_COLUMNS}, path, root FROM files WHERE state = ?1 AND sop_instance_uid = ?2 ORDER BY walk_key"
            ),
            params![STATE_DUPLICATE, sop],
            |r| Ok((known_from(r)?, r.get::<String>(8)?, r.get::<String>(9)?)),
        )?;
        for (k, stored, root) in candidates {
            // A duplicate under a root this host does not mount stays a duplicate
            // here; a host that mounts it promotes it on its next run.
            let Ok(path) = self.storage.resolve(&root, &stored) else {
                continue;
            };
            let Some(entry) = stat_entry(&path, self.storage) else {
                continue;
            };
            if k.same_stat(&entry) && self.roots.iter().any(|r| Path::new(&path).starts_with(r)) {
                self.promoted_unchanged += 1;
            }
            let result = scan_file(Path::new(&path));
            self.apply(tx, &entry, Some(&k), result, report)?;
        }
        Ok(())
    }

    fn apply(
        &mut self,
        tx: &mut Db,
        e: &Entry,
        known: Option<&Known>,
        result: Result<Scanned, ScanError>,
        report: &mut IndexReport,
    ) -> Result<()> {
        let released = match known {
            Some(k) => {
                if self.pending.holds_file(k.id) {
                    self.pending.flush(tx)?;
                }
                delete_instance_of_file(tx, k.id, &mut self.touched)?;
                k.sop.as_deref().filter(|_| k.state == STATE_INDEXED)
            }
            None => None,
        };
        self.write_result(tx, e, result, report)?;
        if let Some(sop) = released {
            self.promote(tx, sop, report)?;
        }
        Ok(())
    }

    fn write_result(
        &mut self,
        tx: &mut Db,
        e: &Entry,
        result: Result<Scanned, ScanError>,
        report: &mut IndexReport,
    ) -> Result<()> {
        let record = match result {
            Ok(Scanned::Instance(r)) => r,
            Ok(Scanned::Dicomdir) => {
                let reason = "DICOMDIR: a media directory, not an instance";
                self.file_row(tx, e, STATE_SKIPPED, None, Some(reason))?;
                report.skipped.push(Skipped {
                    path: e.path.clone(),
                    reason: reason.into(),
                });
                return Ok(());
            }
            Err(err) => {
                let reason = err.to_string();
                self.file_row(tx, e, STATE_SKIPPED, None, Some(&reason))?;
                report.skipped.push(Skipped {
                    path: e.path.clone(),
                    reason,
                });
                return Ok(());
            }
        };
        let sop = record.sop_instance_uid.as_str();
        // Data never moves to another patient: a file whose instance, series or study is
        // indexed (with instances) for another patient is not indexed, and reported.
        if self.pending.affects(&record) {
            self.pending.flush(tx)?;
        }
        let held = held(tx, &record)?;
        if let Some((level, uid, indexed_patient)) = held.conflict(&record) {
            let reason = format!(
                "conflict: {level} {uid} is indexed for patient {:?} (issuer {:?}); this file names patient {:?} (issuer {:?})",
                indexed_patient.patient_id,
                indexed_patient.issuer,
                record.patient.id,
                record.patient.issuer
            );
            self.file_row(tx, e, STATE_CONFLICT, Some(sop), Some(&reason))?;
            report.conflicts.push(Conflict {
                path: e.path.clone(),
                level,
                uid,
                indexed_patient,
                file_patient: ConflictPatient {
                    patient_id: record.patient.id.clone(),
                    issuer: record.patient.issuer.clone(),
                },
            });
            self.conflicted.push((e.clone(), record));
            return Ok(());
        }
        for (attribute, uid) in [
            ("StudyInstanceUID", &record.study.uid),
            ("SeriesInstanceUID", &record.series.uid),
            ("SOPInstanceUID", &record.sop_instance_uid),
        ] {
            if !crate::dicom::is_conformant_uid(uid) {
                report.nonconformant_uids.push(NonconformantUid {
                    path: e.path.clone(),
                    attribute: attribute.into(),
                    uid: uid.clone(),
                });
            }
        }
        if let Some(value) = &record.normalized_charset {
            report.normalized_charsets.push(NormalizedCharset {
                path: e.path.clone(),
                value: value.clone(),
            });
        }
        if let Some((instance_id, other_file, other_path, other_key, other_root)) = held.holder {
            // The report names the file as this host sees it, or as stored under a
            // root this host does not mount.
            let other_path = self
                .storage
                .resolve(&other_root, &other_path)
                .unwrap_or_else(|_| format!("{other_root}:{other_path}"));
            // Keep the file that comes first in walk order, so the outcome does not
            // depend on the order in which parallel scans finish.
            if e.key < other_key {
                let series: i64 = tx.query_one(
                    "DELETE FROM instances WHERE id = ?1 RETURNING series",
                    params![instance_id],
                    |r| r.get(0),
                )?;
                self.touched.series.insert(series);
                tx.execute(
                    "UPDATE files SET state = ?2 WHERE id = ?1",
                    params![other_file, STATE_DUPLICATE],
                )?;
                self.indexed.remove(&other_file);
                report.duplicates.push(Duplicate {
                    path: other_path,
                    sop_instance_uid: sop.to_string(),
                });
            } else {
                self.file_row(tx, e, STATE_DUPLICATE, Some(sop), None)?;
                report.duplicates.push(Duplicate {
                    path: e.path.clone(),
                    sop_instance_uid: sop.to_string(),
                });
                return Ok(());
            }
        }
        let file_id = self.file_row(tx, e, STATE_INDEXED, Some(sop), None)?;
        let series_id = self.upsert_hierarchy(tx, &record)?;
        self.pending.push(tx, record, series_id, file_id)?;
        self.touched.series.insert(series_id);
        self.indexed.insert(file_id);
        Ok(())
    }

    /// Inserts or updates patient, study and series rows; returns the series row id.
    /// Rows seen earlier in this batch with the same values are not written again.
    fn upsert_hierarchy(&mut self, tx: &mut Db, r: &InstanceRecord) -> Result<i64> {
        let p = &r.patient;
        let pkey = (p.id.clone(), p.issuer.clone());
        let pvals = [p.name.clone(), p.birth_date.clone(), p.sex.clone()];
        let patient_id = match self.patients.get(&pkey) {
            Some((id, vals)) if *vals == pvals => *id,
            _ => {
                let id: i64 = tx.query_one(
                    "INSERT INTO patients (patient_id, issuer, name, birth_date, sex, name_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (patient_id, issuer) DO UPDATE SET name = excluded.name,
                       birth_date = excluded.birth_date, sex = excluded.sex, name_key = excluded.name_key
                     RETURNING id",
                    params![&p.id, &p.issuer, &p.name, &p.birth_date, &p.sex, &fold_name(&p.name)],
                    |row| row.get(0),
                )?;
                self.patients.insert(pkey, (id, pvals));
                id
            }
        };

        let s = &r.study;
        let study_id = match self.studies.get(&s.uid) {
            Some(&(id, pat)) if pat == patient_id => id,
            _ => {
                let old: Option<(i64, i64)> = tx.query_opt(
                    "SELECT id, patient FROM studies WHERE study_uid = ?1",
                    params![&s.uid],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?;
                let id: i64 = tx.query_one(
                    "INSERT INTO studies (study_uid, patient, date, time, timezone_offset, accession_number,
                       description, referring_physician, study_id, updated_ms, referring_physician_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (study_uid) DO UPDATE SET patient = excluded.patient, date = excluded.date,
                       time = excluded.time, timezone_offset = excluded.timezone_offset,
                       accession_number = excluded.accession_number, description = excluded.description,
                       referring_physician = excluded.referring_physician, study_id = excluded.study_id,
                       updated_ms = excluded.updated_ms, referring_physician_key = excluded.referring_physician_key
                     RETURNING id",
                    params![
                        &s.uid,
                        patient_id,
                        &s.date,
                        &s.time,
                        &s.timezone_offset,
                        &s.accession_number,
                        &s.description,
                        &s.referring_physician,
                        &s.study_id,
                        self.updated_ms,
                        &fold_name(&s.referring_physician)
                    ],
                    |row| row.get(0),
                )?;
                if let Some((_, old_patient)) = old
                    && old_patient != patient_id
                {
                    self.touched.patients.insert(old_patient);
                }
                self.studies.insert(s.uid.clone(), (id, patient_id));
                id
            }
        };
        self.touched.studies.insert(study_id);

        let se = &r.series;
        match self.series.get(&se.uid) {
            Some(&(id, st)) if st == study_id => Ok(id),
            _ => {
                let old: Option<i64> = tx.query_opt(
                    "SELECT study FROM series WHERE series_uid = ?1",
                    params![&se.uid],
                    |row| row.get(0),
                )?;
                let id: i64 = tx.query_one(
                    "INSERT INTO series (series_uid, study, modality, number, description, body_part, laterality, date, time)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (series_uid) DO UPDATE SET study = excluded.study, modality = excluded.modality,
                       number = excluded.number, description = excluded.description, body_part = excluded.body_part,
                       laterality = excluded.laterality, date = excluded.date, time = excluded.time
                     RETURNING id",
                    params![&se.uid, study_id, &se.modality, se.number, &se.description, &se.body_part, &se.laterality, &se.date, &se.time],
                    |row| row.get(0),
                )?;
                if let Some(old_study) = old
                    && old_study != study_id
                {
                    self.touched.studies.insert(old_study);
                }
                self.series.insert(se.uid.clone(), (id, study_id));
                Ok(id)
            }
        }
    }
}
