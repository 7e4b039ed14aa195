//! `sia_index`: index files and folders, with a progress callback that can cancel.

use std::ffi::{c_char, c_void};
use std::ops::ControlFlow;
use std::path::PathBuf;

use crate::engine::{engine_of, sia_engine};
use crate::error::*;

/// Where an index run is, passed to the progress callback.
#[repr(C)]
pub struct sia_index_progress {
    /// Files read and written so far in this run.
    pub files_done: u64,
    /// Files found so far that this run reads; final once `walk_done` is true.
    pub files_found: u64,
    /// Bytes of the files read so far.
    pub bytes_done: u64,
    /// Whether the walk has finished, so `files_found` is the total.
    pub walk_done: bool,
    /// The file written last (UTF-8 when the file name is; not NUL-terminated; empty
    /// before the first). Valid only during the callback.
    pub current_path: *const c_char,
    /// Length of `current_path` in bytes.
    pub current_path_len: usize,
}

/// A progress callback: called after each file is written, and at least every 100 ms
/// while the run writes nothing (a walk over unchanged files), on the thread that writes
/// the index (one call at a time, never concurrently), with the `user_data` given to
/// `sia_index`. Return 0 to continue, anything else to cancel the run: `sia_index` then
/// returns `SIA_ERR_CANCELLED`, the files committed so far stay indexed, and running
/// `sia_index` again completes the work.
pub type sia_progress_callback = Option<
    unsafe extern "C" fn(progress: *const sia_index_progress, user_data: *mut c_void) -> i32,
>;

/// What an index run did.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct sia_index_report {
    /// Files read and indexed.
    pub indexed: u64,
    /// Files skipped because their size, mtime and inode had not changed.
    pub unchanged: u64,
    /// Files that vanished and were removed from the index.
    pub removed: u64,
    /// Files not indexed because another file has the same SOP Instance UID.
    pub duplicates: u64,
    /// Files that could not be indexed (not DICOM, truncated, unreadable).
    pub skipped: u64,
    /// Files not indexed because a UID they name belongs to another patient.
    pub conflicts: u64,
    /// Wall-clock duration of the run, in seconds.
    pub seconds: f64,
}

/// The callback and its user data, shared with the index writer thread.
struct Callback {
    f: unsafe extern "C" fn(*const sia_index_progress, *mut c_void) -> i32,
    user_data: *mut c_void,
}

// SAFETY: the engine calls the progress closure from one thread at a time (its writer),
// and the header tells the caller that the callback runs on that thread with
// `user_data`; handing the pointer to that thread is what the caller asked for.
unsafe impl Sync for Callback {}
// SAFETY: as for Sync: the pointer is only passed back to the caller's callback.
unsafe impl Send for Callback {}

/// Indexes `path_count` files or folders (NUL-terminated UTF-8 paths): new and changed
/// DICOM files are read, unchanged ones skipped, vanished ones removed. Per-file problems
/// are counted in the report, not errors of the run.
///
/// `progress` may be NULL. Writes `*report` on success.
/// Errors: `SIA_ERR_NULL_ARGUMENT`, `SIA_ERR_INVALID_UTF8`, `SIA_ERR_INVALID_ARGUMENT`
/// (no paths), `SIA_ERR_NOT_FOUND` (a path does not exist), `SIA_ERR_CLOSED`,
/// `SIA_ERR_CANCELLED` (the callback returned non-zero), `SIA_ERR_UNAVAILABLE` (another
/// index run holds the index, or its PostgreSQL server cannot be reached), `SIA_ERR_IO`,
/// `SIA_ERR_DATABASE`.
/// Thread safety: any thread; runs concurrently with reads on other threads (they see
/// each committed batch), and index runs on one engine are serialised.
///
/// # Safety
/// `paths` is NULL or points to `path_count` pointers, each NULL or NUL-terminated;
/// `report` is NULL or writable; `progress` is NULL or a function safe to call with
/// `user_data` from the writer thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sia_index(
    engine: *const sia_engine,
    paths: *const *const c_char,
    path_count: usize,
    progress: sia_progress_callback,
    user_data: *mut c_void,
    report: *mut sia_index_report,
) -> sia_status {
    boundary(|| {
        check_out(report, "report")?;
        let engine = engine_of(engine)?;
        if path_count == 0 {
            return Err(Failure::new(SIA_ERR_INVALID_ARGUMENT, "no paths to index"));
        }
        if paths.is_null() {
            return Err(Failure::new(SIA_ERR_NULL_ARGUMENT, "paths is NULL"));
        }
        if path_count > isize::MAX as usize / size_of::<*const c_char>() {
            return Err(Failure::new(
                SIA_ERR_INVALID_ARGUMENT,
                "path_count is too large",
            ));
        }
        // SAFETY: non-NULL, bounded above, and the caller promises path_count pointers.
        let raw = unsafe { std::slice::from_raw_parts(paths, path_count) };
        let mut roots = Vec::with_capacity(raw.len());
        for (i, p) in raw.iter().enumerate() {
            // SAFETY: each entry is NULL or NUL-terminated by contract.
            roots.push(PathBuf::from(unsafe { c_str(*p, &format!("paths[{i}]")) }?));
        }
        let callback = progress.map(|f| Callback { f, user_data });
        let result = run_index(&engine, &roots, callback.as_ref())?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(report, result) };
        Ok(())
    })
}

fn run_index(
    engine: &sia::Engine,
    roots: &[PathBuf],
    callback: Option<&Callback>,
) -> Result<sia_index_report, Failure> {
    let mut opts = sia::IndexOptions::default();
    if let Some(cb) = callback {
        opts = opts.progress(move |p: &sia::IndexProgress<'_>| {
            let path = p.current.as_os_str().as_encoded_bytes();
            let view = sia_index_progress {
                files_done: p.files_done,
                files_found: p.files_found,
                bytes_done: p.bytes_done,
                walk_done: p.walk_done,
                current_path: path.as_ptr().cast(),
                current_path_len: path.len(),
            };
            // SAFETY: the caller supplied a function safe to call with its user data;
            // `view` and the path bytes outlive the call.
            if unsafe { (cb.f)(&view, cb.user_data) } == 0 {
                ControlFlow::Continue(())
            } else {
                ControlFlow::Break(())
            }
        });
    }
    let r = engine.index(roots, &opts).map_err(|e| {
        if e.kind() == sia::ErrorKind::Cancelled {
            Failure::new(
                SIA_ERR_CANCELLED,
                "indexing cancelled by the progress callback; committed files stay indexed",
            )
        } else {
            Failure::from(e)
        }
    })?;
    Ok(sia_index_report {
        indexed: r.indexed,
        unchanged: r.unchanged,
        removed: r.removed,
        duplicates: r.duplicates.len() as u64,
        skipped: r.skipped.len() as u64,
        conflicts: r.conflicts.len() as u64,
        seconds: r.seconds,
    })
}
