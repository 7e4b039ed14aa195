//! Answers of FHIR ImagingStudy and QIDO-RS searches, kept while the index is unchanged.
//!
//! A viewer, an app or a load test repeats the same search with the same token; each
//! costs a few SQL statements and a JSON document, about ten times what handing back
//! the bytes costs. An answer is a function of the search's inputs *after* the
//! authorization decision (the conditions of the grant's patient compartment, paging,
//! the decoded parameters, the base URL) and of the index's contents, so it is cached
//! under a key made of exactly those inputs and under the index's *generation*
//! ([`crate::index::Index::generation`]): a number that changes whenever anything —
//! this process, another `sia index`, another host on the same database — commits to
//! the index. A lookup under another generation empties the cache first, so an answer
//! is never served from before a write (links, removals and re-indexing included).
//!
//! The token is verified and the decision made on every request before the cache is
//! asked; the key holds the compartment the decision produced, so two grants share an
//! answer only when they would get the same one. An answer that depends on the clock
//! (FHIR searches whose studies carry capability URLs, which hold their issue time and
//! expiry) is kept for a short time only ([`CacheKey::for_at_most`]): whoever gets it
//! gets capabilities issued at most that long ago. A backend that cannot tell its
//! generation cheaply and exactly (`None`) gets no caching at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Engine;
use crate::index::search::Condition;

/// A cached answer: the body and the `Warning` texts that go with it.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The JSON body.
    pub(crate) body: Arc<[u8]>,
    /// QIDO-RS warnings (PS3.18 8.3.5.1, `Warning: 299`), empty for FHIR.
    pub(crate) warnings: Vec<String>,
}

/// Where an answer is kept: its key, and for how long when not for the whole generation.
#[derive(Debug)]
pub(crate) struct CacheKey {
    text: String,
    ttl: Option<Duration>,
}

impl CacheKey {
    /// A key (from [`search_key`]) whose answer holds while the index generation does.
    pub(crate) fn lasting(text: String) -> CacheKey {
        CacheKey { text, ttl: None }
    }

    /// A key whose answer also depends on the clock: kept at most `ttl` after it was
    /// computed (and not past the generation).
    pub(crate) fn for_at_most(text: String, ttl: Duration) -> CacheKey {
        CacheKey {
            text,
            ttl: Some(ttl),
        }
    }
}

struct Entry {
    answer: Arc<Answer>,
    /// When the answer stops being served, for an answer that depends on the clock.
    until: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    generation: Option<u64>,
    bytes: usize,
    map: HashMap<String, Entry>,
}

/// The cache; `Send + Sync`, bounded in bytes (keys and bodies).
pub(crate) struct SearchCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for SearchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchCache")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl SearchCache {
    /// A cache of at most `max_bytes` (0 disables it).
    pub(crate) fn new(max_bytes: usize) -> SearchCache {
        SearchCache {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether answers are kept at all.
    pub(crate) fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer kept for `key` under index generation `generation`. Entries of another
    /// generation are dropped, all at once.
    pub(crate) fn get(&self, generation: u64, key: &str) -> Option<Arc<Answer>> {
        if !self.enabled() {
            return None;
        }
        let mut inner = self.lock();
        if inner.generation != Some(generation) {
            inner.map.clear();
            inner.bytes = 0;
            inner.generation = Some(generation);
            return None;
        }
        let entry = inner.map.get(key)?;
        if entry.until.is_some_and(|until| Instant::now() >= until) {
            let size = size_of(key, &entry.answer);
            inner.map.remove(key);
            inner.bytes = inner.bytes.saturating_sub(size);
            return None;
        }
        Some(entry.answer.clone())
    }

    /// Keeps `answer` for `key`, computed from the index at generation `generation`
    /// (read before the search ran: a write committed meanwhile moves the generation,
    /// so the entry is never found after it). An answer larger than an eighth of the
    /// budget is not kept; when the budget is full the cache starts over (answers are
    /// cheap to recompute once, and a full scan for the least used costs every miss).
    /// A key made [`CacheKey::for_at_most`] bounds how long the answer is served (from now).
    pub(crate) fn put(&self, generation: u64, key: CacheKey, answer: Arc<Answer>) {
        if !self.enabled() {
            return;
        }
        let CacheKey { text: key, ttl } = key;
        let size = size_of(&key, &answer);
        if size > self.max_bytes / 8 {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != Some(generation) {
            // The index moved on since this answer's search began (or the cache was
            // emptied for a newer generation): keep nothing from the older one.
            if inner.generation.is_some_and(|g| g != generation) {
                return;
            }
            inner.generation = Some(generation);
        }
        if inner.bytes + size > self.max_bytes {
            inner.map.clear();
            inner.bytes = 0;
        }
        if let Some(old) = inner.map.get(&key) {
            // Two requests computed the same answer at once; count the bytes once.
            let old = size_of(&key, &old.answer);
            inner.bytes = inner.bytes.saturating_sub(old);
        }
        let until = ttl.map(|ttl| Instant::now() + ttl);
        inner.map.insert(key, Entry { answer, until });
        inner.bytes += size;
    }
}

/// The bytes an entry holds: its key, body and warnings.
fn size_of(key: &str, answer: &Answer) -> usize {
    key.len() + answer.body.len() + answer.warnings.iter().map(String::len).sum::<usize>()
}

/// The cache key of a search: `head` (what is searched), then each of `parts` (the
/// decoded parameters and whatever else decides the answer), then the grant's compartment
/// `conditions` (SQL and bound values). Each part ends with a separator no part can
/// contain unescaped (parts are UTF-8 text; NUL is written as `\0\1`), and an empty part
/// closes the list, so distinct inputs give distinct keys.
pub(crate) fn search_key<'a>(
    head: &str,
    parts: impl IntoIterator<Item = &'a str>,
    conditions: &[Condition],
) -> String {
    use std::fmt::Write;
    let mut key = String::with_capacity(128);
    push_key(&mut key, head);
    for part in parts {
        push_key(&mut key, part);
    }
    push_key(&mut key, "");
    for c in conditions {
        push_key(&mut key, &c.sql);
        // `Debug` quotes and escapes texts, so values cannot run into each other.
        let _ = write!(key, "{:?}", c.params);
        key.push_str("\0\0");
    }
    key
}

fn push_key(key: &mut String, part: &str) {
    if part.contains('\0') {
        key.push_str(&part.replace('\0', "\0\u{1}"));
    } else {
        key.push_str(part);
    }
    key.push_str("\0\0");
}

impl Engine {
    /// The index generation answers are cached under; `None` (no caching) when the
    /// cache is off or the backend cannot tell.
    fn search_generation(&self) -> Option<u64> {
        if !self.search_cache.enabled() {
            return None;
        }
        self.index.generation()
    }

    /// A search's answer: the one kept under `key` for the index's current generation,
    /// else `compute`d from the index and kept. `key` is asked for only when the cache
    /// can be used; `None` from it (an answer that may not be kept) computes without
    /// keeping.
    pub(crate) fn search_answer(
        &self,
        key: impl FnOnce() -> Option<CacheKey>,
        compute: impl FnOnce() -> crate::Result<Answer>,
    ) -> crate::Result<Arc<Answer>> {
        let cached = self
            .search_generation()
            .and_then(|generation| Some((generation, key()?)));
        if let Some((generation, key)) = &cached
            && let Some(answer) = self.search_cache.get(*generation, &key.text)
        {
            return Ok(answer);
        }
        let answer = Arc::new(compute()?);
        if let Some((generation, key)) = cached {
            self.search_cache.put(generation, key, answer.clone());
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> Arc<Answer> {
        Arc::new(Answer {
            body: Arc::from(body.as_bytes()),
            warnings: Vec::new(),
        })
    }

    #[test]
    fn answers_are_kept_per_generation_only() {
        let c = SearchCache::new(1 << 20);
        assert!(c.get(1, "k").is_none());
        c.put(1, CacheKey::lasting("k".into()), answer("[1]"));
        assert_eq!(&*c.get(1, "k").unwrap().body, b"[1]");
        // A write moved the generation: the old answer is gone for good.
        assert!(c.get(2, "k").is_none());
        assert!(c.get(1, "k").is_none());
        // An answer computed under an older generation than the cache's is not kept.
        c.get(3, "x");
        c.put(2, CacheKey::lasting("k".into()), answer("[2]"));
        assert!(c.get(3, "k").is_none());
    }

    #[test]
    fn the_budget_bounds_the_cache() {
        let c = SearchCache::new(800);
        c.put(1, CacheKey::lasting("big".into()), answer(&"x".repeat(200)));
        assert!(c.get(1, "big").is_none(), "over an eighth of the budget");
        for i in 0..100 {
            c.put(
                1,
                CacheKey::lasting(format!("k{i}")),
                answer(&"y".repeat(50)),
            );
        }
        let inner = c.lock();
        assert!(inner.bytes <= 800 && !inner.map.is_empty());
    }

    #[test]
    fn disabled_keeps_nothing() {
        let c = SearchCache::new(0);
        c.put(1, CacheKey::lasting("k".into()), answer("[]"));
        assert!(c.get(1, "k").is_none());
    }

    #[test]
    fn keys_of_different_parts_differ() {
        let (mut a, mut b) = (String::new(), String::new());
        push_key(&mut a, "x\0\0y");
        push_key(&mut b, "x");
        push_key(&mut b, "y");
        assert_ne!(a, b);
    }

    #[test]
    fn an_answer_that_depends_on_the_clock_is_served_for_its_time_only() {
        let c = SearchCache::new(1 << 20);
        let cap = CacheKey::for_at_most("cap".into(), Duration::from_millis(50));
        c.put(1, cap, answer("[1]"));
        c.put(1, CacheKey::lasting("lasting".into()), answer("[2]"));
        assert!(c.get(1, "cap").is_some(), "served within its time");
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get(1, "cap").is_none(), "served past its time");
        assert!(c.get(1, "lasting").is_some());
        assert_eq!(
            c.lock().bytes,
            size_of("lasting", &answer("[2]")),
            "an expired entry's bytes are given back"
        );
    }
}
