//! Ingest: walk folders, scan changed files in parallel, write them with one writer.
//!
//! Three stages joined by bounded channels, so memory does not grow with the corpus:
//! 1. the walker lists each folder in name order and merges it with the index's file
//!    rows read in the same order (`files.walk_key`), emitting only new, changed and
//!    vanished files;
//! 2. rayon scans the new and changed files;
//! 3. one writer applies the results in batched transactions.
//!
//! Crash consistency: a file's row and its instance are written in the same transaction,
//! and so are a removal and the promotion of the removed instance's duplicate, so a run
//! killed at any moment leaves an index where every file row tells the truth; the next
//! run skips what was committed and redoes the rest.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use rayon::iter::{ParallelBridge, ParallelIterator};

use super::db::Db;
use super::run::{IndexOptions, IndexReport};
use super::walk::{Done, Work, own_files, walk_and_diff};
use super::writer::{Writer, now_ms};
use super::{Index, WRITER_LOCK};
use crate::dicom::{ScanError, scan_file};
use crate::error::{Error, Result};

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
        let mut canonical = Vec::with_capacity(roots.len());
        for root in roots {
            let root = root.as_ref();
            canonical.push(root.canonicalize().map_err(|e| Error::io(root, e))?);
        }
        // A root inside another root would be walked twice.
        canonical.sort();
        canonical.dedup();
        let mut roots: Vec<PathBuf> = canonical
            .iter()
            .filter(|r| {
                !canonical
                    .iter()
                    .any(|other| *r != other && r.starts_with(other))
            })
            .cloned()
            .collect();
        // A storage root inside a folder to walk is walked on its own, and the walk of
        // the folder skips it: the root's files are stored relative to it, in a key
        // form of their own, and one walk merges rows of one form only.
        let nested: Vec<PathBuf> = self
            .storage
            .iter()
            .map(|(_, folder)| folder.to_path_buf())
            .filter(|f| roots.iter().any(|r| f != r && f.starts_with(r)) && f.is_dir())
            .collect();
        roots.extend(nested);
        roots.sort();
        roots.dedup();
        let own = self.path().map(own_files).unwrap_or_default();
        // One index run at a time per index: a second run (another process, another
        // host) waits for the first to end, then walks what it committed and finds it
        // unchanged, so both converge on the index one run would have made. On SQLite
        // the lock is a file lock beside the index; on PostgreSQL an advisory lock per
        // schema, below.
        let _turn = self.path().map(sqlite_run_lock).transpose()?;
        self.write(|conn| {
            let postgres = conn.is_postgres();
            if postgres {
                conn.query_one(
                    &format!(
                        "SELECT pg_advisory_lock({WRITER_LOCK}, hashtext(current_schema()))::text"
                    ),
                    &[],
                    |_| Ok(()),
                )?;
            }
            let walk = self.walk_connection()?;
            let out = self.run_index(conn, walk, &roots, &own, opts, started);
            if postgres
                && let Ok(report) = &out
                && report.indexed + report.removed > 0
            {
                // PostgreSQL plans from table statistics, which autovacuum refreshes only
                // some time after a bulk load: until then a search for one patient over
                // a freshly indexed archive runs as sequential scans (measured: 50,000
                // instances just indexed, FHIR patient search 114 ms p50 under load
                // instead of well under 1 ms). A run that changed rows refreshes them
                // itself; ANALYZE samples a bounded number of rows per table, so this
                // costs milliseconds to a few seconds whatever the archive's size.
                // SQLite plans from its indexes alone, without statistics. A failure
                // here loses nothing (the run is committed; autovacuum analyzes later),
                // so it does not turn the run's report into an error.
                let _ = conn
                    .batch("ANALYZE files, patients, studies, series, instances, patient_links");
            }
            if postgres {
                // A session that died has released its locks already; the run's own
                // error is the one to report.
                let unlocked = conn.query_one(
                    &format!(
                        "SELECT pg_advisory_unlock({WRITER_LOCK}, hashtext(current_schema()))::text"
                    ),
                    &[],
                    |_| Ok(()),
                );
                return out.and_then(|report| unlocked.map(|()| report));
            }
            out
        })
    }

    fn run_index(
        &self,
        conn: &mut Db,
        walk: Db,
        roots: &[PathBuf],
        own: &HashSet<PathBuf>,
        opts: &IndexOptions<'_>,
        started: Instant,
    ) -> Result<IndexReport> {
        let cancel = AtomicBool::new(false);
        let found = AtomicU64::new(0);
        let walk_done = AtomicBool::new(false);
        let mut report = IndexReport::default();
        let mut writer = Writer::new(now_ms(), roots, &self.storage);
        let (walked, written) = std::thread::scope(|s| {
            let (work_tx, work_rx) = sync_channel::<Work>(4096);
            let (done_tx, done_rx) = sync_channel::<Done>(1024);
            let (cancel, found, walk_done) = (&cancel, &found, &walk_done);
            let storage = &self.storage;
            let walker = s.spawn(move || {
                let r = walk_and_diff(walk, roots, storage, own, &work_tx, found, cancel);
                walk_done.store(true, Ordering::Release);
                if r.is_err() {
                    cancel.store(true, Ordering::Relaxed);
                }
                r
            });
            s.spawn(move || {
                work_rx
                    .into_iter()
                    .par_bridge()
                    .for_each_with(done_tx, |tx, work| {
                        let done = match work {
                            Work::Vanished(k) => Done::Vanished(k),
                            Work::Scan { entry, known } => {
                                let result = if cancel.load(Ordering::Relaxed) {
                                    Err(ScanError::io(std::io::Error::other("run cancelled")))
                                } else {
                                    scan_file(Path::new(&entry.path))
                                };
                                Done::Scanned {
                                    entry,
                                    known,
                                    result,
                                }
                            }
                        };
                        if tx.send(done).is_err() {
                            cancel.store(true, Ordering::Relaxed);
                        }
                    });
            });
            let written = writer.run(conn, done_rx, opts, found, walk_done, &mut report);
            if written.is_err() {
                cancel.store(true, Ordering::Relaxed);
            }
            let walked = walker
                .join()
                .unwrap_or_else(|_| Err(Error::internal("the walk panicked")));
            (walked, written)
        });
        written?;
        let walked = walked?;
        report.unchanged = walked.unchanged.saturating_sub(writer.promoted_unchanged);
        report.skipped.extend(walked.skipped);
        report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
        report.duplicates.sort_by(|a, b| a.path.cmp(&b.path));
        report
            .nonconformant_uids
            .sort_by(|a, b| (&a.path, &a.attribute).cmp(&(&b.path, &b.attribute)));
        report
            .normalized_charsets
            .sort_by(|a, b| a.path.cmp(&b.path));
        report.conflicts.sort_by(|a, b| a.path.cmp(&b.path));
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }
}

/// Waits for, then holds until dropped, the turn of an index run over the SQLite index at
/// `db`: an exclusive lock (`flock`) of `<index>-lock`, an empty file beside the index,
/// created once and kept. The kernel releases the lock when its holder ends, killed or
/// not, like PostgreSQL's session advisory lock. Without it two runs would interleave
/// batch by batch: both would read every file, and the second's writes would wait
/// for the busy timeout behind the first's back-to-back transactions and could fail.
fn sqlite_run_lock(db: &Path) -> Result<std::fs::File> {
    let mut name = db.as_os_str().to_owned();
    name.push(RUN_LOCK_SUFFIX);
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    file.lock().map_err(|e| Error::io(&path, e))?;
    Ok(file)
}

/// What [`sqlite_run_lock`] adds to the index's path.
pub(super) const RUN_LOCK_SUFFIX: &str = "-lock";
