//! What an index run is given ([`IndexOptions`]: progress, cancellation, batching) and
//! what it gives back ([`IndexReport`] and the per-file findings it lists).

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

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
    /// Files read in this run whose Study, Series or SOP Instance UID is not a DICOM UID
    /// but a safe identifier (see [`crate::dicom::is_safe_uid`]): indexed, and named here.
    pub nonconformant_uids: Vec<NonconformantUid>,
    /// Files read in this run whose Specific Character Set misspells a defined term
    /// (`ISO IR 192`): their text was decoded with the term it stands for.
    pub normalized_charsets: Vec<NormalizedCharset>,
    /// Files not indexed because a UID they name is indexed for another patient (data
    /// never moves to another patient; the file is read again on every run until the
    /// conflict is resolved).
    pub conflicts: Vec<Conflict>,
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

/// A UID that is not a DICOM UID, indexed because it is a safe identifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NonconformantUid {
    /// The file.
    pub path: String,
    /// `StudyInstanceUID`, `SeriesInstanceUID` or `SOPInstanceUID`.
    pub attribute: String,
    /// The value.
    pub uid: String,
}

/// A file whose Specific Character Set needed normalising.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NormalizedCharset {
    /// The file.
    pub path: String,
    /// Specific Character Set as written.
    pub value: String,
}

/// A file not indexed because its study, series or instance is indexed for another
/// patient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The file not indexed.
    pub path: String,
    /// `study`, `series` or `instance`: the level of the UID in conflict.
    pub level: &'static str,
    /// The Study, Series or SOP Instance UID in conflict.
    pub uid: String,
    /// The patient the index holds that UID for.
    pub indexed_patient: ConflictPatient,
    /// The patient the file names.
    pub file_patient: ConflictPatient,
}

impl std::fmt::Display for Conflict {
    /// `path: study UID is indexed for patient "A" (issuer "X"), the file names "B" (issuer "Y")`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} {} is indexed for patient {:?} (issuer {:?}), the file names {:?} (issuer {:?})",
            self.path,
            self.level,
            self.uid,
            self.indexed_patient.patient_id,
            self.indexed_patient.issuer,
            self.file_patient.patient_id,
            self.file_patient.issuer
        )
    }
}

/// A DICOM patient in a [`Conflict`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConflictPatient {
    /// Patient ID (0010,0020).
    pub patient_id: String,
    /// Issuer of Patient ID (0010,0021).
    pub issuer: String,
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
    /// Files read and written so far in this run.
    pub files_done: u64,
    /// Files found so far that this run reads (new and changed ones); final once
    /// `walk_done` is true.
    pub files_found: u64,
    /// Whether the walk has finished, so `files_found` is the total.
    pub walk_done: bool,
    /// Bytes of the files read so far.
    pub bytes_done: u64,
    /// The file written last (empty before the first): a call made while the walk finds
    /// only unchanged files repeats it.
    pub current: &'a Path,
}

/// The callback of [`IndexOptions::progress`]: `Continue` goes on, `Break` cancels.
type ProgressFn<'a> = dyn Fn(&Progress<'_>) -> ControlFlow<()> + Send + Sync + 'a;

/// How to run an index: progress reporting and cancellation, batching.
#[non_exhaustive]
pub struct IndexOptions<'a> {
    pub(super) progress: Option<Box<ProgressFn<'a>>>,
    /// Most files per transaction.
    pub batch_size: usize,
    /// Longest time between commits, so a killed run loses little work.
    pub commit_interval: Duration,
    /// Longest time between two calls of the progress callback while the run goes on,
    /// also when nothing is written (a walk over unchanged files), so that a host
    /// notices a cancel request (Ctrl-C, a closed window) within about this long.
    pub progress_interval: Duration,
}

impl std::fmt::Debug for IndexOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexOptions")
            .field("progress", &self.progress.is_some())
            .field("batch_size", &self.batch_size)
            .field("commit_interval", &self.commit_interval)
            .field("progress_interval", &self.progress_interval)
            .finish()
    }
}

impl Default for IndexOptions<'_> {
    fn default() -> Self {
        IndexOptions {
            progress: None,
            batch_size: 2000,
            commit_interval: Duration::from_secs(1),
            progress_interval: Duration::from_millis(100),
        }
    }
}

impl<'a> IndexOptions<'a> {
    /// Calls `f` after each file is written, and at least every `progress_interval`
    /// (100 ms by default) while the run goes on without writing (a walk over unchanged
    /// files, a slow file), always from the run's writer thread, one call at a time.
    /// Answering
    /// `ControlFlow::Break(())` cancels the run: it stops reading files, rolls back the
    /// files written since the last commit (committed batches stay: the index is
    /// consistent, and the next run completes the work) and fails with
    /// [`crate::ErrorKind::Cancelled`].
    pub fn progress(
        mut self,
        f: impl Fn(&Progress<'_>) -> ControlFlow<()> + Send + Sync + 'a,
    ) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// At most `files` files per transaction (at least 1).
    pub fn batch_size(mut self, files: usize) -> Self {
        self.batch_size = files.max(1);
        self
    }

    /// At most `interval` between commits.
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// At most `interval` (at least 1 ms) between two progress calls; see
    /// [`IndexOptions::progress`].
    pub fn progress_interval(mut self, interval: Duration) -> Self {
        self.progress_interval = interval.max(Duration::from_millis(1));
        self
    }
}
