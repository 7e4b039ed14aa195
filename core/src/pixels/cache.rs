//! Decoded frames kept so that a viewer scrolling back and forth, or a thumbnail asked
//! for again, does not decode the same frame twice. Bounded in bytes; least recently
//! used entries go first.
//!
//! Keyed by the file's full identity as indexed (row id, path, size, mtime, inode) and
//! the frame number, so a file changed or replaced since indexing (which gets a new
//! identity at the next index run, and a 410 before it) never answers from the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::storage::FileIdentity;

/// A frame's key: the file as indexed (row id, path, size, mtime, inode) and the
/// 1-based frame number.
pub(crate) type Key = (i64, String, u64, i64, u64, u32);

/// The key of frame `n` of `file`.
pub(crate) fn key(file: &FileIdentity, n: u32) -> Key {
    (
        file.id,
        file.path.clone(),
        file.size,
        file.mtime_ns,
        file.inode,
        n,
    )
}

struct Entry {
    frame: Arc<[u8]>,
    used: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Entry>,
    bytes: usize,
    tick: u64,
}

/// The cache; `Send + Sync`.
pub(crate) struct FrameCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

impl FrameCache {
    /// A cache of at most `max_bytes` of decoded frames (0 disables it).
    pub(crate) fn new(max_bytes: usize) -> FrameCache {
        FrameCache {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The decoded frame, if kept.
    pub(crate) fn get(&self, key: &Key) -> Option<Arc<[u8]>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tick += 1;
        let tick = inner.tick;
        let e = inner.map.get_mut(key)?;
        e.used = tick;
        Some(e.frame.clone())
    }

    /// Keeps `frame`, evicting the least recently used frames to stay within the bound.
    /// A frame larger than a quarter of the bound is not kept: it would flush the rest.
    pub(crate) fn put(&self, key: Key, frame: Arc<[u8]>) {
        if frame.len() > self.max_bytes / 4 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tick += 1;
        let tick = inner.tick;
        let len = frame.len();
        if let Some(old) = inner.map.insert(key, Entry { frame, used: tick }) {
            inner.bytes -= old.frame.len();
        }
        inner.bytes += len;
        while inner.bytes > self.max_bytes {
            // O(n) over entries of at least a few KiB each; eviction is rare next to
            // the decode it follows.
            let Some(oldest) = inner
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = inner.map.remove(&oldest) {
                inner.bytes -= e.frame.len();
            }
        }
    }
}

impl std::fmt::Debug for FrameCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameCache")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: i64) -> FileIdentity {
        FileIdentity {
            id,
            path: format!("/f{id}"),
            size: 1,
            mtime_ns: 1,
            inode: 1,
        }
    }

    fn key(id: i64, n: u32) -> Key {
        super::key(&file(id), n)
    }

    #[test]
    fn bounded_in_bytes_least_recently_used_first() {
        let c = FrameCache::new(400);
        c.put(key(1, 1), vec![0u8; 100].into());
        c.put(key(1, 2), vec![0u8; 100].into());
        c.put(key(1, 3), vec![0u8; 100].into());
        assert!(c.get(&key(1, 1)).is_some());
        c.put(key(1, 4), vec![0u8; 100].into());
        c.put(key(1, 5), vec![0u8; 100].into());
        assert!(
            c.get(&key(1, 2)).is_none(),
            "least recently used went first"
        );
        assert!(c.get(&key(1, 1)).is_some());
        assert!(c.inner.lock().unwrap().bytes <= 400);
        c.put(key(2, 1), vec![0u8; 101].into());
        assert!(
            c.get(&key(2, 1)).is_none(),
            "over a quarter of the bound: not kept"
        );
        let changed = FileIdentity { size: 2, ..file(1) };
        assert!(
            c.get(&super::key(&changed, 1)).is_none(),
            "a changed file is another key"
        );
    }
}
