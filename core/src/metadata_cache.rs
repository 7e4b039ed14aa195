//! Instance metadata (DICOM JSON) as written from each file's header, kept so that a
//! viewer opening a series pays the header re-read once, not on every request.
//!
//! Bounded in bytes; keyed by the file's index row and the base URL the JSON's
//! `BulkDataURI`s were written for (a capability URL has its own). An entry is used only
//! while the index still names the same file identity (size, mtime, inode) *and* the file
//! on disk still has it — the same check the frame path makes — so a changed or replaced
//! file is never described by stale JSON.
//!
//! A study- or series-level answer lists up to thousands of instances, and one `stat`
//! per file (about 1.5 µs each) would cost more than the answer itself. So each answer's
//! *listing* (which files, in which order) is remembered too, with the answer's whole
//! body (the JSON array, one buffer: a thousand objects gathered for every request cost
//! more than sending them), and for [`LISTING_TTL`] after it was checked against the
//! index and the disk it is served without checking again. A file changed in place can
//! therefore be described by its old metadata for at most one second (the same bound the
//! instance-location cache has); frames are checked on every request and are never
//! stale. An index run in this process drops every listing at once. When a listing is
//! checked again and names the same files with the same identities, its body is kept.
//!
//! Bodies of listings hold at most a quarter of the byte budget and instances' JSON the
//! rest, so the whole cache stays within it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::storage::FileIdentity;

struct Entry {
    identity: FileIdentity,
    json: Arc<[u8]>,
    used: u64,
}

/// How long a checked listing is served without checking its files again.
pub(crate) const LISTING_TTL: Duration = Duration::from_secs(1);
/// Most listings remembered.
const MAX_LISTINGS: usize = 4096;

/// An answer's instances, when they were last checked, and the answer's body.
struct Listing {
    files: Vec<FileIdentity>,
    checked: Instant,
    body: Arc<[u8]>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<(i64, Arc<str>), Entry>,
    /// Bytes of instance JSON in `map`.
    bytes: usize,
    tick: u64,
    listings: HashMap<String, Listing>,
    /// Bytes of bodies in `listings`.
    listing_bytes: usize,
}

/// The cache; `Send + Sync`.
pub(crate) struct MetadataCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MetadataCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataCache")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl MetadataCache {
    /// A cache of at most `max_bytes` of JSON (0 disables it).
    pub(crate) fn new(max_bytes: usize) -> MetadataCache {
        MetadataCache {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The JSON cached for `file` under `base`, if the index and the disk still agree
    /// that it is the same file.
    pub(crate) fn get(&self, file: &FileIdentity, base: &str) -> Option<Arc<[u8]>> {
        if self.max_bytes == 0 {
            return None;
        }
        let json = {
            let mut inner = self.lock();
            inner.tick += 1;
            let tick = inner.tick;
            let e = inner.map.get_mut(&(file.id, Arc::from(base)))?;
            if e.identity != *file {
                return None;
            }
            e.used = tick;
            e.json.clone()
        };
        crate::storage::still_indexed(file).then_some(json)
    }

    /// The body of the answer `key` (study, series, instance and base: a JSON array of
    /// its instances' objects), when its listing was checked less than [`LISTING_TTL`]
    /// ago.
    pub(crate) fn fresh_listing(&self, key: &str) -> Option<Arc<[u8]>> {
        if self.max_bytes == 0 {
            return None;
        }
        let inner = self.lock();
        let listing = inner.listings.get(key)?;
        (listing.checked.elapsed() < LISTING_TTL).then(|| listing.body.clone())
    }

    /// Remembers that answer `key` lists `files`, checked just now, whose objects are
    /// `jsons` (in order), and returns the answer's body: the JSON array, kept from the
    /// last listing when it named the same files, else written now.
    pub(crate) fn put_listing(
        &self,
        key: String,
        files: Vec<FileIdentity>,
        jsons: &[Arc<[u8]>],
    ) -> Arc<[u8]> {
        {
            let mut inner = self.lock();
            if let Some(l) = inner.listings.get_mut(&key)
                && l.files == files
            {
                l.checked = Instant::now();
                return l.body.clone();
            }
        }
        // Written outside the lock: a series' array is megabytes.
        let len = jsons.iter().map(|j| j.len() + 1).sum::<usize>() + 1;
        let mut body = Vec::with_capacity(len);
        body.push(b'[');
        for (k, json) in jsons.iter().enumerate() {
            if k > 0 {
                body.push(b',');
            }
            body.extend_from_slice(json);
        }
        body.push(b']');
        let body: Arc<[u8]> = body.into();
        let budget = self.max_bytes / 4;
        if body.len() > budget / 4 {
            return body; // too large to keep: a few such answers would fill the budget
        }
        let mut inner = self.lock();
        if inner.listings.len() >= MAX_LISTINGS || inner.listing_bytes + body.len() > budget {
            // Start over rather than scan for the least used: listings are cheap to
            // make again once their instances are cached.
            inner.listings.clear();
            inner.listing_bytes = 0;
        }
        let listing = Listing {
            files,
            checked: Instant::now(),
            body: body.clone(),
        };
        inner.listing_bytes += body.len();
        if let Some(old) = inner.listings.insert(key, listing) {
            inner.listing_bytes -= old.body.len();
        }
        body
    }

    /// Drops every listing (the index changed).
    pub(crate) fn forget_listings(&self) {
        let mut inner = self.lock();
        inner.listings.clear();
        inner.listing_bytes = 0;
    }

    /// Remembers `json` for `file` under `base`, evicting the least recently used
    /// entries past the byte budget.
    pub(crate) fn put(&self, file: &FileIdentity, base: &str, json: Arc<[u8]>) {
        // Three quarters of the budget: the rest is for listings' bodies.
        let budget = self.max_bytes / 4 * 3;
        if json.len() > budget / 4 {
            return;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let used = inner.tick;
        let len = json.len();
        if let Some(old) = inner.map.insert(
            (file.id, Arc::from(base)),
            Entry {
                identity: file.clone(),
                json,
                used,
            },
        ) {
            inner.bytes -= old.json.len();
        }
        inner.bytes += len;
        if inner.bytes > budget {
            // Drop the least recently used quarter of the budget at once, so eviction
            // is rare rather than on every insert.
            let mut by_age: Vec<(u64, (i64, Arc<str>))> =
                inner.map.iter().map(|(k, e)| (e.used, k.clone())).collect();
            by_age.sort_unstable_by_key(|(u, _)| *u);
            let target = budget / 4 * 3;
            for (_, key) in by_age {
                if inner.bytes <= target {
                    break;
                }
                if let Some(e) = inner.map.remove(&key) {
                    inner.bytes -= e.json.len();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(dir: &std::path::Path, id: i64, name: &str, bytes: &[u8]) -> FileIdentity {
        FileIdentity::written(&dir.join(name), id, bytes)
    }

    #[test]
    fn entries_need_the_same_file_in_the_index_and_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MetadataCache::new(1 << 20);
        let f = identity(dir.path(), 1, "a.dcm", b"abc");
        cache.put(&f, "http://x/dicom-web", Arc::from(&b"{}"[..]));
        assert_eq!(
            cache.get(&f, "http://x/dicom-web").as_deref(),
            Some(&b"{}"[..])
        );
        assert!(
            cache.get(&f, "http://x/dicom-web/cap/1").is_none(),
            "other base"
        );
        let mut reindexed = f.clone();
        reindexed.size += 1;
        assert!(
            cache.get(&reindexed, "http://x/dicom-web").is_none(),
            "index differs"
        );
        std::fs::write(&f.path, b"abcd").unwrap();
        assert!(
            cache.get(&f, "http://x/dicom-web").is_none(),
            "file changed on disk"
        );
        std::fs::remove_file(&f.path).unwrap();
        assert!(
            cache.get(&f, "http://x/dicom-web").is_none(),
            "file removed"
        );
    }

    #[test]
    fn the_byte_budget_holds_and_recent_entries_stay() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MetadataCache::new(4000);
        let files: Vec<_> = (0..40)
            .map(|i| identity(dir.path(), i, &format!("{i}.dcm"), b"x"))
            .collect();
        for f in &files {
            cache.put(f, "b", Arc::from(vec![b'x'; 500]));
            assert!(cache.get(&files[0], "b").is_some(), "kept in use");
            assert!(cache.lock().bytes <= 4000);
        }
        assert!(cache.get(&files[39], "b").is_some());
        assert!(
            cache.get(&files[1], "b").is_none(),
            "least recently used went"
        );
    }

    #[test]
    fn a_listing_keeps_its_body_while_it_names_the_same_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MetadataCache::new(1 << 20);
        let a = identity(dir.path(), 1, "a.dcm", b"a");
        let b = identity(dir.path(), 2, "b.dcm", b"b");
        let jsons: [Arc<[u8]>; 2] = [Arc::from(&b"{\"a\":1}"[..]), Arc::from(&b"{}"[..])];
        let body = cache.put_listing("k".into(), vec![a.clone(), b.clone()], &jsons);
        assert_eq!(&*body, b"[{\"a\":1},{}]");
        assert!(Arc::ptr_eq(&cache.fresh_listing("k").unwrap(), &body));
        assert!(cache.fresh_listing("other").is_none());
        // Checked again, same files and identities: the same body, not written again.
        let again = cache.put_listing("k".into(), vec![a.clone(), b.clone()], &[]);
        assert!(Arc::ptr_eq(&again, &body));
        // One file re-indexed with another identity: written from the new objects.
        let mut changed = b.clone();
        changed.size += 1;
        let other = cache.put_listing("k".into(), vec![a, changed], &jsons[..1]);
        assert_eq!(&*other, b"[{\"a\":1}]");
        cache.forget_listings();
        assert!(cache.fresh_listing("k").is_none());
    }

    #[test]
    fn listing_bodies_stay_within_a_quarter_of_the_budget() {
        let cache = MetadataCache::new(4000);
        for i in 0..40 {
            let body =
                cache.put_listing(format!("k{i}"), Vec::new(), &[Arc::from(vec![b'x'; 200])]);
            assert_eq!(body.len(), 202);
            assert!(cache.lock().listing_bytes <= 1000);
        }
        // Larger than a quarter of the listings' share: answered, not kept.
        cache.put_listing("big".into(), Vec::new(), &[Arc::from(vec![b'x'; 300])]);
        assert!(cache.fresh_listing("big").is_none());
    }
}
