//! A small cache of instance locations (file identity + parsed frame table), so a frame
//! request costs no SQL and no frame-table parse. Entries live at most a second, which
//! bounds how stale a location can be when another process re-indexes; the file itself
//! is re-checked on every use anyway (see `storage`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::index::InstanceLocation;

const TTL: Duration = Duration::from_secs(1);

/// Cached locations by SOP Instance UID.
#[derive(Debug)]
pub(crate) struct LocationCache {
    capacity: usize,
    map: Mutex<HashMap<String, (Arc<InstanceLocation>, Instant)>>,
}

impl LocationCache {
    pub(crate) fn new(capacity: usize) -> Self {
        LocationCache {
            capacity: capacity.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, sop: &str) -> Option<Arc<InstanceLocation>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(sop)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(l, _)| l.clone())
    }

    pub(crate) fn put(&self, sop: &str, loc: Arc<InstanceLocation>) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity {
            // Expired entries go first; if none, the map is cleared (cheaper than LRU
            // bookkeeping on every hit, and refilling costs one query per instance).
            map.retain(|_, (_, at)| at.elapsed() < TTL);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(sop.to_string(), (loc, Instant::now()));
    }

    pub(crate) fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
