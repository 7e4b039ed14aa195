//! The walk of an index run: each root in name order, merged with the index rows under
//! it (read in the same order from a snapshot), sending what changed to the scanners.

use std::collections::{HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;

use super::db::{Db, Row, params};
use super::roots::{StorageRoots, StoredPath};

use super::run::Skipped;
use super::schema::STATE_CONFLICT;
use crate::dicom::{ScanError, Scanned};
use crate::error::{Error, Result};

/// A file found by the walk.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    /// The absolute path on this host (read by the scan, named in reports).
    pub(super) path: String,
    /// The path as the index stores it (under a storage root, or absolute).
    pub(super) stored: StoredPath,
    /// `stored`'s walk key.
    pub(super) key: Vec<u8>,
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    /// The inode number; 0 under a storage root (see [`super::roots`]).
    pub(super) inode: u64,
}

/// A file row already in the index.
#[derive(Clone, Debug)]
pub(super) struct Known {
    pub(super) id: i64,
    pub(super) key: Vec<u8>,
    pub(super) size: i64,
    pub(super) mtime_ns: i64,
    pub(super) inode: i64,
    pub(super) state: i64,
    pub(super) sop: Option<String>,
    /// Read again whatever the stat (set by schema migration 3).
    pub(super) reread: bool,
}

impl Known {
    pub(super) fn same_stat(&self, e: &Entry) -> bool {
        self.size == e.size as i64 && self.mtime_ns == e.mtime_ns && self.inode == e.inode as i64
    }
}

/// What the walker asks of the later stages.
pub(super) enum Work {
    /// A new (`known` is `None`) or changed file to read.
    Scan { entry: Entry, known: Option<Known> },
    /// A file in the index that is no longer there.
    Vanished(Known),
}

/// What reaches the writer.
pub(super) enum Done {
    Scanned {
        entry: Entry,
        known: Option<Known>,
        result: Result<Scanned, ScanError>,
    },
    Vanished(Known),
}

/// The walk's own findings.
#[derive(Default)]
pub(super) struct WalkSummary {
    pub(super) unchanged: u64,
    pub(super) skipped: Vec<Skipped>,
}

/// The key that orders file rows like a name-sorted depth-first walk.
pub(super) fn walk_key(path: &str) -> Vec<u8> {
    path.bytes()
        .map(|b| if b == b'/' { 0 } else { b })
        .collect()
}

/// The index file and its WAL/SHM/journal companions, which a walk must not read.
pub(super) fn own_files(db: &Path) -> HashSet<PathBuf> {
    let base = db.canonicalize().unwrap_or_else(|_| db.to_path_buf());
    [
        "",
        "-wal",
        "-shm",
        "-journal",
        super::ingest::RUN_LOCK_SUFFIX,
    ]
    .iter()
    .map(|suffix| {
        let mut s = base.clone().into_os_string();
        s.push(suffix);
        PathBuf::from(s)
    })
    .collect()
}

pub(super) fn entry_from(path: &str, md: &std::fs::Metadata, storage: &StorageRoots) -> Entry {
    let stored = storage.store(path);
    Entry {
        path: path.to_string(),
        key: stored.walk_key(),
        inode: if stored.is_rooted() { 0 } else { md.ino() },
        stored,
        size: md.len(),
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
    }
}

pub(super) fn known_from(r: &Row<'_>) -> Result<Known> {
    Ok(Known {
        id: r.get(0)?,
        key: r.get(1)?,
        size: r.get(2)?,
        mtime_ns: r.get(3)?,
        inode: r.get(4)?,
        state: r.get(5)?,
        sop: r.get(6)?,
        reread: r.get::<i64>(7)? != 0,
    })
}

pub(super) const KNOWN_COLUMNS: &str =
    "id, walk_key, size, mtime_ns, inode, state, sop_instance_uid, reread";

/// File rows read per query of the walk.
const PAGE: i64 = 4096;

/// The index's file rows under one root, in walk-key order, read a page at a time
/// (keyset paging: the statement is the same on both backends, and memory stays
/// bounded) inside the walk's snapshot transaction. The rows under a root are the keys
/// in `[root, root + 0x01)`: the root itself and every `root + 0x00 + ...`.
struct KnownRows {
    /// The smallest key of the next page: the root, then the successor of the last
    /// key read (that key followed by a 0 byte).
    from: Vec<u8>,
    /// The first key past the root's rows.
    end: Vec<u8>,
    page: VecDeque<Known>,
    done: bool,
}

impl KnownRows {
    fn new(root_key: Vec<u8>) -> Self {
        let mut end = root_key.clone();
        end.push(1);
        KnownRows {
            from: root_key,
            end,
            page: VecDeque::new(),
            done: false,
        }
    }

    fn next(&mut self, conn: &mut Db) -> Result<Option<Known>> {
        if self.page.is_empty() && !self.done {
            let sql = format!(
                "SELECT {KNOWN_COLUMNS} FROM files WHERE walk_key >= ?1 AND walk_key < ?2
                 ORDER BY walk_key LIMIT ?3"
            );
            let rows = conn.query_map(&sql, params![&self.from, &self.end, PAGE], known_from)?;
            self.done = (rows.len() as i64) < PAGE;
            if let Some(last) = rows.last() {
                self.from.clone_from(&last.key);
                self.from.push(0);
            }
            self.page = rows.into();
        }
        Ok(self.page.pop_front())
    }
}

/// Walks each root in name order and merges it with the index rows under that root,
/// read in the same order from a snapshot, sending what changed.
pub(super) fn walk_and_diff(
    mut conn: Db,
    roots: &[PathBuf],
    storage: &StorageRoots,
    own: &HashSet<PathBuf>,
    tx: &SyncSender<Work>,
    found: &AtomicU64,
    cancel: &AtomicBool,
) -> Result<WalkSummary> {
    // One snapshot for the whole walk: the writer commits rows for files the walk has
    // already passed, which must not come back as rows still to merge.
    let mut snapshot = conn.begin(true)?;
    let mut summary = WalkSummary::default();
    let send = |w: Work| tx.send(w).map_err(|_| Error::cancelled());
    for root in roots {
        let Some(root_str) = root.to_str() else {
            summary.skipped.push(Skipped {
                path: root.display().to_string(),
                reason: "path is not valid UTF-8".into(),
            });
            continue;
        };
        let root_str = root_str.trim_end_matches('/');
        let stored_root = storage.store(root_str);
        // Storage roots inside this folder are walked on their own (see
        // `Index::index`): their files are stored in another key form, which must not
        // interleave with this walk's keys.
        let nested: Vec<&Path> = storage
            .iter()
            .map(|(_, folder)| folder)
            .filter(|f| *f != root.as_path() && f.starts_with(root))
            .collect();
        let nested_keys: Vec<Vec<u8>> = nested
            .iter()
            .filter_map(|f| f.to_str())
            .map(walk_key)
            .collect();
        let under = |k: &Known, prefixes: &[Vec<u8>]| {
            prefixes
                .iter()
                .any(|u| k.key.starts_with(u) && k.key.get(u.len()).is_none_or(|&b| b == 0))
        };
        if stored_root.is_rooted() {
            // Rows an earlier run stored with this folder's absolute path (before the
            // storage root was configured) are no longer how the index keeps these
            // files: they go, and the files come back under the root in this run. Those
            // under a nested root go in that root's own walk.
            let mut legacy = KnownRows::new(walk_key(root_str));
            while let Some(k) = legacy.next(&mut snapshot)? {
                if !under(&k, &nested_keys) {
                    send(Work::Vanished(k))?;
                }
            }
        }
        let mut rows = KnownRows::new(stored_root.walk_key());
        let mut next_known = || rows.next(&mut snapshot);
        let mut pending = next_known()?;
        // Folders that could not be listed: their index rows are kept, not removed.
        // So are absolute rows under a nested root: its own walk moves them under it.
        let mut unlisted: Vec<Vec<u8>> = if stored_root.is_rooted() {
            Vec::new()
        } else {
            nested_keys.clone()
        };
        let keep = under;
        for item in walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| !nested.contains(&e.path()))
        {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::cancelled());
            }
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    let path = e
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| root.display().to_string());
                    unlisted.push(storage.store(&path).walk_key());
                    summary.skipped.push(Skipped {
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
                summary.skipped.push(Skipped {
                    path: item.path().display().to_string(),
                    reason: "path is not valid UTF-8".into(),
                });
                continue;
            };
            let md = match item.metadata() {
                Ok(m) => m,
                Err(e) => {
                    unlisted.push(storage.store(path).walk_key());
                    summary.skipped.push(Skipped {
                        path: path.to_string(),
                        reason: format!("cannot stat: {e}"),
                    });
                    continue;
                }
            };
            let entry = entry_from(path, &md, storage);
            while let Some(k) = pending.take_if(|k| k.key < entry.key) {
                if !keep(&k, &unlisted) {
                    send(Work::Vanished(k))?;
                }
                pending = next_known()?;
            }
            match pending.take_if(|k| k.key == entry.key) {
                Some(k) => {
                    pending = next_known()?;
                    // A file in conflict is read again until the conflict is gone.
                    if k.same_stat(&entry) && k.state != STATE_CONFLICT && !k.reread {
                        summary.unchanged += 1;
                    } else {
                        found.fetch_add(1, Ordering::Relaxed);
                        send(Work::Scan {
                            entry,
                            known: Some(k),
                        })?;
                    }
                }
                None => {
                    found.fetch_add(1, Ordering::Relaxed);
                    send(Work::Scan { entry, known: None })?;
                }
            }
        }
        while let Some(k) = pending.take() {
            if !keep(&k, &unlisted) {
                send(Work::Vanished(k))?;
            }
            pending = next_known()?;
        }
    }
    drop(snapshot);
    Ok(summary)
}

pub(super) fn stat_entry(path: &str, storage: &StorageRoots) -> Option<Entry> {
    let md = std::fs::metadata(path).ok()?;
    md.is_file().then(|| entry_from(path, &md, storage))
}
