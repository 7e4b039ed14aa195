//! Ingest: walk folders, scan changed files in parallel, write them with one writer.
//!
//! Crash consistency: a file's row and its instance are written in the same transaction,
//! so a run killed at any moment leaves an index where every file row tells the truth
//! about what is indexed; the next run skips what was committed and redoes the rest.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use super::schema::{STATE_DUPLICATE, STATE_INDEXED, STATE_SKIPPED};
use super::{Index, open_writer};
use crate::dicom::{InstanceRecord, ScanError, Scanned, scan_file};
use crate::error::{Error, Result};

/// What an index run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IndexReport {
    /// Files read and indexed in this run.
    pub indexed: u64,
    /// Files skipped because their size, mtime and inode had not changed.
    pub unchanged: u64,
    /// Files that vanished and were removed from the index.
    pub removed: u64,
    /// Files whose SOP Instance UID another file already provides (the file with the
    /// smaller path is kept, whatever the order they were read in).
    pub duplicates: Vec<Duplicate>,
    /// Files that could not be indexed, with the reason.
    pub skipped: Vec<Skipped>,
    /// Wall-clock duration of the run.
    pub seconds: f64,
}

/// A file not indexed because another file has the same SOP Instance UID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Duplicate {
    /// The duplicate file.
    pub path: String,
    /// The shared SOP Instance UID.
    pub sop_instance_uid: String,
}

/// A file that could not be indexed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// Where an index run is.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// Files read so far in this run.
    pub files_done: u64,
    /// Files this run reads (changed and new ones).
    pub files_total: u64,
    /// Bytes of the files read so far.
    pub bytes_done: u64,
    /// Bytes of all files this run reads.
    pub bytes_total: u64,
    /// The file just written.
    pub current: &'a Path,
}

/// How to run an index.
pub struct IndexOptions<'a> {
    /// Called after each file is written.
    pub progress: Option<&'a (dyn Fn(&Progress<'_>) + Sync)>,
    /// Files per transaction.
    pub batch_size: usize,
}

impl Default for IndexOptions<'_> {
    fn default() -> Self {
        IndexOptions {
            progress: None,
            batch_size: 2000,
        }
    }
}

/// A file found by the walk.
#[derive(Clone, Debug)]
struct Entry {
    path: String,
    size: u64,
    mtime_ns: i64,
    inode: u64,
}

/// A file row already in the index.
struct Known {
    id: i64,
    size: i64,
    mtime_ns: i64,
    inode: i64,
    state: i64,
    sop: Option<String>,
}

impl Index {
    /// Indexes the files and folders in `roots` (folders recursively). Unchanged files are
    /// skipped, changed ones re-read, vanished ones removed. Problems with single files
    /// are reported in the result; only a failure of the run itself is an error.
    pub fn index(
        &self,
        roots: &[impl AsRef<Path>],
        opts: &IndexOptions<'_>,
    ) -> Result<IndexReport> {
        let started = Instant::now();
        let mut report = IndexReport::default();
        let mut canonical = Vec::with_capacity(roots.len());
        for root in roots {
            let root = root.as_ref();
            canonical.push(root.canonicalize().map_err(|e| Error::io(root, e))?);
        }
        let own_files = own_files(self.path());
        let found = walk(&canonical, &own_files, &mut report.skipped);

        let mut conn = open_writer(self.path())?;
        let known = known_files(&conn, &canonical)?;

        // Classify.
        let mut to_scan: Vec<(Entry, Option<i64>)> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::with_capacity(found.len());
        for e in &found {
            seen.insert(e.path.as_str());
            match known.get(&e.path) {
                Some(k)
                    if k.size == e.size as i64
                        && k.mtime_ns == e.mtime_ns
                        && k.inode == e.inode as i64 =>
                {
                    report.unchanged += 1;
                }
                Some(k) => to_scan.push((e.clone(), Some(k.id))),
                None => to_scan.push((e.clone(), None)),
            }
        }
        let vanished: Vec<(&String, &Known)> = known
            .iter()
            .filter(|(p, _)| !seen.contains(p.as_str()))
            .collect();

        // SOP Instance UIDs whose indexed file vanishes or changes: their duplicates must be
        // read again so one of them takes over. Marking them stale in the same transaction
        // as the removal keeps that true even if this run is killed.
        let mut released: HashSet<String> = HashSet::new();
        for (_, k) in &vanished {
            if k.state == STATE_INDEXED
                && let Some(s) = &k.sop
            {
                released.insert(s.clone());
            }
        }
        for (e, id) in &to_scan {
            if id.is_some()
                && let Some(k) = known.get(&e.path)
                && k.state == STATE_INDEXED
                && let Some(s) = &k.sop
            {
                released.insert(s.clone());
            }
        }
        {
            let tx = conn.transaction()?;
            let mut touched = Touched::default();
            for (_, k) in &vanished {
                delete_instance_of_file(&tx, k.id, &mut touched)?;
                tx.execute("DELETE FROM files WHERE id = ?1", [k.id])?;
                report.removed += 1;
            }
            touched.settle(&tx, now_ms())?;
            let mut stale = Vec::new();
            {
                let mut q = tx.prepare(
                    "SELECT id, path FROM files WHERE state = ?1 AND sop_instance_uid = ?2",
                )?;
                for sop in &released {
                    let rows = q.query_map(params![STATE_DUPLICATE, sop], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })?;
                    for row in rows {
                        stale.push(row?);
                    }
                }
            }
            let queued: HashSet<String> = to_scan.iter().map(|(e, _)| e.path.clone()).collect();
            for (id, path) in stale {
                tx.execute("UPDATE files SET size = -1 WHERE id = ?1", [id])?;
                if !queued.contains(&path)
                    && let Some(e) = stat_entry(Path::new(&path))
                {
                    if known.contains_key(&path) {
                        report.unchanged = report.unchanged.saturating_sub(1);
                    }
                    to_scan.push((e, Some(id)));
                }
            }
            tx.commit()?;
        }

        self.scan_and_write(&mut conn, to_scan, opts, &mut report)?;
        report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        report.duplicates.sort_by(|a, b| a.path.cmp(&b.path));
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    fn scan_and_write(
        &self,
        conn: &mut Connection,
        to_scan: Vec<(Entry, Option<i64>)>,
        opts: &IndexOptions<'_>,
        report: &mut IndexReport,
    ) -> Result<()> {
        let files_total = to_scan.len() as u64;
        let bytes_total: u64 = to_scan.iter().map(|(e, _)| e.size).sum();
        let cancel = AtomicBool::new(false);
        let updated_ms = now_ms();
        std::thread::scope(|s| -> Result<()> {
            let (tx, rx) = sync_channel::<((Entry, Option<i64>), Result<Scanned, ScanError>)>(1024);
            let cancel = &cancel;
            let to_scan = &to_scan;
            s.spawn(move || {
                to_scan.par_iter().for_each_with(tx, |tx, item| {
                    if cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    let result = scan_file(Path::new(&item.0.path));
                    if tx.send((item.clone(), result)).is_err() {
                        cancel.store(true, Ordering::Relaxed);
                    }
                });
            });
            let outcome = (|| -> Result<()> {
                let mut writer = Writer::new(updated_ms);
                let mut batch = 0usize;
                let (mut files_done, mut bytes_done) = (0u64, 0u64);
                let mut tx = conn.transaction()?;
                for ((entry, id), result) in rx.iter() {
                    writer.apply(&tx, &entry, id, result, report)?;
                    files_done += 1;
                    bytes_done += entry.size;
                    batch += 1;
                    if batch >= opts.batch_size.max(1) {
                        writer.touched.settle(&tx, updated_ms)?;
                        writer.after_commit();
                        tx.commit()?;
                        tx = conn.transaction()?;
                        batch = 0;
                    }
                    if let Some(cb) = opts.progress {
                        cb(&Progress {
                            files_done,
                            files_total,
                            bytes_done,
                            bytes_total,
                            current: Path::new(&entry.path),
                        });
                    }
                }
                writer.touched.settle(&tx, updated_ms)?;
                tx.commit()?;
                report.indexed = writer.indexed.len() as u64;
                Ok(())
            })();
            if outcome.is_err() {
                cancel.store(true, Ordering::Relaxed);
            }
            outcome
        })
    }
}

/// The index file and its WAL/SHM/journal companions, which a walk must not read.
fn own_files(db: &Path) -> HashSet<PathBuf> {
    let base = db.canonicalize().unwrap_or_else(|_| db.to_path_buf());
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| {
            let mut s = base.clone().into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        })
        .collect()
}

fn stat_entry(path: &Path) -> Option<Entry> {
    let md = std::fs::metadata(path).ok()?;
    if !md.is_file() {
        return None;
    }
    Some(Entry {
        path: path.to_str()?.to_string(),
        size: md.len(),
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        inode: md.ino(),
    })
}

/// Lists the regular files under `roots` (following links, with loop detection).
fn walk(roots: &[PathBuf], own: &HashSet<PathBuf>, skipped: &mut Vec<Skipped>) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for root in roots {
        for item in walkdir::WalkDir::new(root).follow_links(true) {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    let path = e
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| root.display().to_string());
                    skipped.push(Skipped {
                        path,
                        reason: format!("cannot list: {e}"),
                    });
                    continue;
                }
            };
            if !item.file_type().is_file() || own.contains(item.path()) {
                continue;
            }
            let Some(path) = item.path().to_str() else {
                skipped.push(Skipped {
                    path: item.path().display().to_string(),
                    reason: "path is not valid UTF-8".into(),
                });
                continue;
            };
            let md = match item.metadata() {
                Ok(m) => m,
                Err(e) => {
                    skipped.push(Skipped {
                        path: path.to_string(),
                        reason: format!("cannot stat: {e}"),
                    });
                    continue;
                }
            };
            if !seen.insert(path.to_string()) {
                continue;
            }
            out.push(Entry {
                path: path.to_string(),
                size: md.len(),
                mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
                inode: md.ino(),
            });
        }
    }
    out
}

/// File rows at or under any of `roots`.
fn known_files(conn: &Connection, roots: &[PathBuf]) -> Result<HashMap<String, Known>> {
    let mut out = HashMap::new();
    let mut q = conn.prepare(
        "SELECT id, path, size, mtime_ns, inode, state, sop_instance_uid FROM files
         WHERE path = ?1 OR (path >= ?2 AND path < ?3)",
    )?;
    for root in roots {
        let root = root.to_string_lossy();
        let root = root.trim_end_matches('/');
        // Every path under "root/" sorts between "root/" and "root0" ('0' follows '/').
        let rows = q.query_map(params![root, format!("{root}/"), format!("{root}0")], |r| {
            Ok((
                r.get::<_, String>(1)?,
                Known {
                    id: r.get(0)?,
                    size: r.get(2)?,
                    mtime_ns: r.get(3)?,
                    inode: r.get(4)?,
                    state: r.get(5)?,
                    sop: r.get(6)?,
                },
            ))
        })?;
        for row in rows {
            let (path, k) = row?;
            out.insert(path, k);
        }
    }
    Ok(out)
}

fn now_ms() -> i64 {
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
    deleted_any: bool,
}

impl Touched {
    /// Recomputes counts and ModalitiesInStudy, and deletes what became empty.
    fn settle(&mut self, tx: &Transaction<'_>, updated_ms: i64) -> Result<()> {
        for id in self.series.drain() {
            let n: i64 = tx.query_row(
                "SELECT count(*) FROM instances WHERE series = ?1",
                [id],
                |r| r.get(0),
            )?;
            if n == 0 {
                let study: Option<i64> = tx
                    .query_row("SELECT study FROM series WHERE id = ?1", [id], |r| r.get(0))
                    .optional()?;
                tx.execute("DELETE FROM series WHERE id = ?1", [id])?;
                self.studies.extend(study);
                self.deleted_any = true;
            } else {
                tx.execute(
                    "UPDATE series SET num_instances = ?2 WHERE id = ?1",
                    [id, n],
                )?;
            }
        }
        for id in self.studies.drain() {
            let (series, instances): (i64, i64) = tx.query_row(
                "SELECT count(*), coalesce(sum(num_instances), 0) FROM series WHERE study = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let patient: Option<i64> = tx
                .query_row("SELECT patient FROM studies WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            if series == 0 {
                tx.execute("DELETE FROM studies WHERE id = ?1", [id])?;
                self.patients.extend(patient);
                self.deleted_any = true;
                continue;
            }
            let modalities: String = tx.query_row(
                "SELECT coalesce(group_concat(m, '\\'), '') FROM
                   (SELECT DISTINCT modality AS m FROM series WHERE study = ?1 AND modality != '' ORDER BY m)",
                [id],
                |r| r.get(0),
            )?;
            tx.execute(
                "UPDATE studies SET num_series = ?2, num_instances = ?3, modalities = ?4, updated_ms = ?5 WHERE id = ?1",
                params![id, series, instances, modalities, updated_ms],
            )?;
        }
        for id in self.patients.drain() {
            let n = tx.execute("DELETE FROM patients WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM studies WHERE patient = ?1)", [id])?;
            self.deleted_any |= n > 0;
        }
        Ok(())
    }
}

/// Deletes the instance stored for file `file_id`, if any.
fn delete_instance_of_file(
    tx: &Transaction<'_>,
    file_id: i64,
    touched: &mut Touched,
) -> Result<()> {
    let series: Option<i64> = tx
        .query_row(
            "DELETE FROM instances WHERE file = ?1 RETURNING series",
            [file_id],
            |r| r.get(0),
        )
        .optional()?;
    touched.series.extend(series);
    Ok(())
}

/// The single writer: applies scan results inside the current batch transaction.
struct Writer {
    updated_ms: i64,
    touched: Touched,
    patients: HashMap<(String, String), (i64, [String; 3])>,
    studies: HashMap<String, (i64, i64)>,
    series: HashMap<String, (i64, i64)>,
    /// Files indexed by this run and still holding their instance (a file indexed early
    /// in the run can be displaced by a duplicate with a smaller path).
    indexed: HashSet<i64>,
}

impl Writer {
    fn new(updated_ms: i64) -> Self {
        Writer {
            updated_ms,
            touched: Touched::default(),
            patients: HashMap::new(),
            studies: HashMap::new(),
            series: HashMap::new(),
            indexed: HashSet::new(),
        }
    }

    /// Forgets cached row ids once rows may have been deleted.
    fn after_commit(&mut self) {
        if self.touched.deleted_any {
            self.patients.clear();
            self.studies.clear();
            self.series.clear();
            self.touched.deleted_any = false;
        }
    }

    fn file_row(
        &self,
        tx: &Transaction<'_>,
        e: &Entry,
        state: i64,
        sop: Option<&str>,
        reason: Option<&str>,
    ) -> Result<i64> {
        let mut q = tx.prepare_cached(
            "INSERT INTO files (path, size, mtime_ns, inode, state, sop_instance_uid, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
               inode = excluded.inode, state = excluded.state, sop_instance_uid = excluded.sop_instance_uid,
               reason = excluded.reason
             RETURNING id",
        )?;
        Ok(q.query_row(
            params![
                e.path,
                e.size as i64,
                e.mtime_ns,
                e.inode as i64,
                state,
                sop,
                reason
            ],
            |r| r.get(0),
        )?)
    }

    fn apply(
        &mut self,
        tx: &Transaction<'_>,
        e: &Entry,
        existing: Option<i64>,
        result: Result<Scanned, ScanError>,
        report: &mut IndexReport,
    ) -> Result<()> {
        if let Some(id) = existing {
            delete_instance_of_file(tx, id, &mut self.touched)?;
        }
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
        let holder: Option<(i64, i64, String)> = tx
            .prepare_cached("SELECT i.id, f.id, f.path FROM instances i JOIN files f ON f.id = i.file WHERE i.sop_instance_uid = ?1")?
            .query_row([sop], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        if let Some((instance_id, other_file, other_path)) = holder {
            // Keep the file with the smaller path, so the outcome does not depend on the
            // order in which parallel scans finish.
            if e.path < other_path {
                let series: i64 = tx.query_row(
                    "DELETE FROM instances WHERE id = ?1 RETURNING series",
                    [instance_id],
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
        let image = record.image.as_ref();
        tx.prepare_cached(
            "INSERT INTO instances (sop_instance_uid, series, file, sop_class_uid, transfer_syntax, number, title,
               rows, columns, samples_per_pixel, bits_allocated, bits_stored, pixel_representation, photometric,
               planar_configuration, number_of_frames, frame_table)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?
        .execute(params![
            sop,
            series_id,
            file_id,
            record.sop_class_uid,
            record.transfer_syntax,
            record.instance_number,
            record.title,
            image.map(|i| i.rows),
            image.map(|i| i.columns),
            image.map(|i| i.samples_per_pixel),
            image.map(|i| i.bits_allocated),
            image.map(|i| i.bits_stored),
            image.map(|i| i.pixel_representation),
            image.map(|i| i.photometric.as_str()),
            image.map(|i| i.planar_configuration),
            record.frames.count(),
            record.frames.to_bytes(),
        ])?;
        self.touched.series.insert(series_id);
        self.indexed.insert(file_id);
        Ok(())
    }

    /// Inserts or updates patient, study and series rows; returns the series row id.
    /// Rows seen earlier in this batch with the same values are not written again.
    fn upsert_hierarchy(&mut self, tx: &Transaction<'_>, r: &InstanceRecord) -> Result<i64> {
        let p = &r.patient;
        let pkey = (p.id.clone(), p.issuer.clone());
        let pvals = [p.name.clone(), p.birth_date.clone(), p.sex.clone()];
        let patient_id = match self.patients.get(&pkey) {
            Some((id, vals)) if *vals == pvals => *id,
            _ => {
                let id: i64 = tx
                    .prepare_cached(
                        "INSERT INTO patients (patient_id, issuer, name, birth_date, sex) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (patient_id, issuer) DO UPDATE SET name = excluded.name,
                           birth_date = excluded.birth_date, sex = excluded.sex
                         RETURNING id",
                    )?
                    .query_row(params![p.id, p.issuer, p.name, p.birth_date, p.sex], |row| row.get(0))?;
                self.patients.insert(pkey, (id, pvals));
                id
            }
        };

        let s = &r.study;
        let study_id = match self.studies.get(&s.uid) {
            Some(&(id, pat)) if pat == patient_id => id,
            _ => {
                let old: Option<(i64, i64)> = tx
                    .prepare_cached("SELECT id, patient FROM studies WHERE study_uid = ?1")?
                    .query_row([&s.uid], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                let id: i64 = tx
                    .prepare_cached(
                        "INSERT INTO studies (study_uid, patient, date, time, timezone_offset, accession_number,
                           description, referring_physician, study_id, updated_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT (study_uid) DO UPDATE SET patient = excluded.patient, date = excluded.date,
                           time = excluded.time, timezone_offset = excluded.timezone_offset,
                           accession_number = excluded.accession_number, description = excluded.description,
                           referring_physician = excluded.referring_physician, study_id = excluded.study_id,
                           updated_ms = excluded.updated_ms
                         RETURNING id",
                    )?
                    .query_row(
                        params![
                            s.uid,
                            patient_id,
                            s.date,
                            s.time,
                            s.timezone_offset,
                            s.accession_number,
                            s.description,
                            s.referring_physician,
                            s.study_id,
                            self.updated_ms
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
                let old: Option<i64> = tx
                    .prepare_cached("SELECT study FROM series WHERE series_uid = ?1")?
                    .query_row([&se.uid], |row| row.get(0))
                    .optional()?;
                let id: i64 = tx
                    .prepare_cached(
                        "INSERT INTO series (series_uid, study, modality, number, description, body_part, laterality, date, time)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                         ON CONFLICT (series_uid) DO UPDATE SET study = excluded.study, modality = excluded.modality,
                           number = excluded.number, description = excluded.description, body_part = excluded.body_part,
                           laterality = excluded.laterality, date = excluded.date, time = excluded.time
                         RETURNING id",
                    )?
                    .query_row(
                        params![se.uid, study_id, se.modality, se.number, se.description, se.body_part, se.laterality, se.date, se.time],
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
