//! Files kept open between requests in read mode `pread`, so that a frame costs one
//! `pread` and one `fstat` instead of `open`, `fstat`, `pread`, `fstat` and `close`.
//!
//! A kept descriptor is used only while everything that made the first open trustworthy
//! still holds:
//!
//! - The index gives the same identity (size, mtime, inode): entries are keyed by the
//!   file's row and compared with the identity the request found in the index.
//! - The file has not changed since it was checked: every read is followed by an
//!   `fstat` of the descriptor comparing size, mtime *and* status-change time (ctime),
//!   which every write, truncation, `utimes`, `chmod`, rename, link and unlink moves and
//!   no process can set back. A kept descriptor that fails this is dropped and the read
//!   done again on a freshly opened file, under the rules of a first open (so a file
//!   that was only `chmod`ed still serves, and one that changed answers 410).
//! - The path still names it: checked with one `stat` at most [`PATH_RECHECK`] apart.
//!   Removing or replacing the file itself moves its ctime and is seen at once; only a
//!   path re-pointed without touching the file (its directory renamed and another put
//!   in its place) goes unseen, for at most that long, and the bytes served are then
//!   still exactly those of the file the index describes.
//! - It was not changed just before it was opened: file times advance by clock ticks
//!   (up to 10 ms), so a change within the tick of the check could leave the ctime as
//!   it was. A file whose ctime is less than [`SETTLED`] old is used once, not kept.
//!
//! At most [`KEPT_FILES`] descriptors are kept (least recently used go first), well
//! under the usual soft limit of 1,024 descriptors of a host process.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{FileError, FileIdentity, check_metadata, open, status_changed_ns};

/// Longest a kept descriptor is trusted to be the file its path names without a `stat`.
pub(crate) const PATH_RECHECK: Duration = Duration::from_secs(1);
/// Youngest ctime a kept descriptor may have when it is checked (see the module docs).
const SETTLED: Duration = Duration::from_millis(50);
/// Most descriptors kept open.
pub(crate) const KEPT_FILES: usize = 128;

/// An open file that was checked against the index identity.
#[derive(Debug)]
pub(crate) struct CheckedFile {
    pub(super) file: File,
    pub(super) identity: FileIdentity,
    /// The file's ctime (ns since the epoch) when it was checked.
    pub(super) ctime_ns: i64,
    /// Device and inode of the open descriptor: what its path must still name. Not the
    /// index's inode, which is 0 for a file under a storage root (mounts number files
    /// differently).
    dev_ino: (u64, u64),
    /// Set when a read found the file changed: the cache drops it at the next lookup.
    stale: AtomicBool,
}

impl CheckedFile {
    /// Opens the file at `id.path` and checks it is the one indexed (`Gone`,
    /// `Changed` or `Io` when not).
    pub(super) fn open(id: &FileIdentity) -> Result<CheckedFile, FileError> {
        let file = open(id)?;
        let md = file
            .metadata()
            .map_err(|e| FileError::Io(format!("{}: {e}", id.path)))?;
        check_metadata(&md, id)?;
        Ok(CheckedFile {
            file,
            identity: id.clone(),
            ctime_ns: status_changed_ns(&md),
            dev_ino: (md.dev(), md.ino()),
            stale: AtomicBool::new(false),
        })
    }

    /// Marks the file changed since its check, so it is not handed out again.
    pub(super) fn mark_stale(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }

    /// Whether its ctime lies at least [`SETTLED`] in the past (a ctime in the future,
    /// from a skewed clock or a network file system, is not).
    fn settled(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        now.saturating_sub(self.ctime_ns) >= SETTLED.as_nanos() as i64
    }

    /// Whether `id.path` still names this file, unchanged (one `stat`).
    fn path_still_names(&self) -> bool {
        std::fs::metadata(&self.identity.path).is_ok_and(|md| {
            md.is_file()
                && (md.dev(), md.ino()) == self.dev_ino
                && check_metadata(&md, &self.identity).is_ok()
                && status_changed_ns(&md) == self.ctime_ns
        })
    }
}

struct Kept {
    file: Arc<CheckedFile>,
    /// When the path was last seen to name the file.
    path_checked: Instant,
    used: u64,
}

/// Least-recently-used open files keyed by file row id; `Send + Sync`.
#[derive(Default)]
pub(super) struct KeptFiles {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<i64, Kept>,
    tick: u64,
}

impl KeptFiles {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file for `id`: a kept one still trustworthy (`true`: from the cache), or
    /// one opened and checked now (`false`), kept for the next requests when settled.
    pub(super) fn open(&self, id: &FileIdentity) -> Result<(Arc<CheckedFile>, bool), FileError> {
        if let Some((file, path_checked)) = self.get(id) {
            if path_checked.elapsed() < PATH_RECHECK {
                return Ok((file, true));
            }
            // The `stat` is made outside the lock: other requests go on meanwhile.
            if file.path_still_names() {
                if let Some(k) = self.lock().map.get_mut(&id.id)
                    && Arc::ptr_eq(&k.file, &file)
                {
                    k.path_checked = Instant::now();
                }
                return Ok((file, true));
            }
            self.remove(id.id, &file);
        }
        let file = Arc::new(CheckedFile::open(id)?);
        if file.settled() {
            self.insert(file.clone());
        }
        Ok((file, false))
    }

    fn get(&self, id: &FileIdentity) -> Option<(Arc<CheckedFile>, Instant)> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let k = inner.map.get_mut(&id.id)?;
        if k.file.identity != *id || k.file.stale.load(Ordering::Relaxed) {
            // Re-indexed or changed: the next open replaces it.
            inner.map.remove(&id.id);
            return None;
        }
        k.used = tick;
        Some((k.file.clone(), k.path_checked))
    }

    fn remove(&self, id: i64, file: &Arc<CheckedFile>) {
        let mut inner = self.lock();
        if inner
            .map
            .get(&id)
            .is_some_and(|k| Arc::ptr_eq(&k.file, file))
        {
            inner.map.remove(&id);
        }
    }

    fn insert(&self, file: Arc<CheckedFile>) {
        let mut inner = self.lock();
        let id = file.identity.id;
        if inner.map.len() >= KEPT_FILES
            && !inner.map.contains_key(&id)
            && let Some((&oldest, _)) = inner.map.iter().min_by_key(|(_, k)| k.used)
        {
            // A linear scan of at most KEPT_FILES entries, only when a new file comes in.
            inner.map.remove(&oldest);
        }
        inner.tick += 1;
        let used = inner.tick;
        inner.map.insert(
            id,
            Kept {
                file,
                path_checked: Instant::now(),
                used,
            },
        );
    }

    /// How many descriptors are kept (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(dir: &std::path::Path, id: i64, bytes: &[u8]) -> FileIdentity {
        FileIdentity::written(&dir.join(format!("{id}.dcm")), id, bytes)
    }

    #[test]
    fn only_settled_files_are_kept_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let kept = KeptFiles::default();
        let f = identity(dir.path(), 1, b"abc");
        // Just written: used once, not kept.
        let (_, from_cache) = kept.open(&f).unwrap();
        assert!(!from_cache);
        assert_eq!(kept.len(), 0);
        std::thread::sleep(SETTLED + Duration::from_millis(20));
        let (first, from_cache) = kept.open(&f).unwrap();
        assert!(!from_cache);
        let (again, from_cache) = kept.open(&f).unwrap();
        assert!(from_cache);
        assert!(Arc::ptr_eq(&first, &again));
        // Marked changed by a read: dropped and opened afresh.
        again.mark_stale();
        let (fresh, from_cache) = kept.open(&f).unwrap();
        assert!(!from_cache && !Arc::ptr_eq(&fresh, &again));
        // Another identity in the index (re-indexed): not the kept one.
        let mut other = f.clone();
        other.size += 1;
        assert!(matches!(kept.open(&other), Err(FileError::Changed(_))));
    }

    /// A file under a storage root is indexed without an inode (0): its kept descriptor
    /// still passes the path re-check by the descriptor's own device and inode, instead
    /// of being reopened once a second.
    #[test]
    fn a_rooted_file_keeps_its_descriptor_past_the_path_recheck() {
        let dir = tempfile::tempdir().unwrap();
        let kept = KeptFiles::default();
        let mut f = identity(dir.path(), 1, b"abc");
        f.inode = 0;
        std::thread::sleep(SETTLED + Duration::from_millis(20));
        let (first, _) = kept.open(&f).unwrap();
        std::thread::sleep(PATH_RECHECK + Duration::from_millis(50));
        let (again, from_cache) = kept.open(&f).unwrap();
        assert!(from_cache && Arc::ptr_eq(&first, &again));
        // Another file put at the path is still seen at the re-check.
        let moved = dir.path().join("moved.dcm");
        std::fs::rename(&f.path, &moved).unwrap();
        std::fs::copy(&moved, &f.path).unwrap();
        std::thread::sleep(PATH_RECHECK + Duration::from_millis(50));
        let (_, from_cache) = kept.open(&f).map_or((None, false), |(a, b)| (Some(a), b));
        assert!(
            !from_cache,
            "a replaced path is not served from the kept descriptor"
        );
    }

    #[test]
    fn at_most_kept_files_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let kept = KeptFiles::default();
        let files: Vec<_> = (0..KEPT_FILES as i64 + 5)
            .map(|i| identity(dir.path(), i, b"x"))
            .collect();
        std::thread::sleep(SETTLED + Duration::from_millis(20));
        for f in &files {
            kept.open(f).unwrap();
            assert!(kept.len() <= KEPT_FILES);
        }
        assert_eq!(kept.len(), KEPT_FILES);
    }
}
