//! The patient each study belongs to (and its modalities), as the compartment check of
//! every study-level request asks it, kept while the index generation holds.
//!
//! A frame request is otherwise dominated by this one lookup: a read transaction on a
//! pooled SQLite connection for a row that changes only when the index does. It is a
//! function of the index's contents alone, so it is kept under the index *generation*
//! ([`crate::index::Index::generation`]), exactly as search answers are: a lookup under
//! another generation empties the map first, so a decision never rests on an owner from
//! before a write (a study re-indexed under another patient, removed, or indexed for the
//! first time under a UID that was asked for before). Nothing is kept on a backend that
//! cannot tell its generation (PostgreSQL).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::{Engine, Result};

/// A study's patient: DICOM Patient ID, Issuer of Patient ID, and the study's modalities.
pub(crate) type Owner = (String, String, Vec<String>);

/// Most studies remembered; past it the map starts over (a full scan for the least used
/// would cost every miss, and refilling costs one query per study).
const MAX_STUDIES: usize = 16_384;

#[derive(Default)]
struct Inner {
    generation: Option<u64>,
    /// `None`: the index holds no such study.
    map: HashMap<String, Option<Arc<Owner>>>,
}

/// The map; `Send + Sync`.
#[derive(Default)]
pub(crate) struct StudyOwners {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for StudyOwners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StudyOwners").finish_non_exhaustive()
    }
}

impl StudyOwners {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is kept for `study` under `generation` (outer `None`: nothing); entries of
    /// another generation are dropped, all at once.
    fn get(&self, generation: u64, study: &str) -> Option<Option<Arc<Owner>>> {
        let mut inner = self.lock();
        if inner.generation != Some(generation) {
            inner.map.clear();
            inner.generation = Some(generation);
            return None;
        }
        inner.map.get(study).cloned()
    }

    /// Keeps `owner` of `study`, read from the index at `generation` (read before the
    /// query: a write committed meanwhile moves the generation, so it is never found).
    fn put(&self, generation: u64, study: &str, owner: Option<Arc<Owner>>) {
        let mut inner = self.lock();
        if inner.generation != Some(generation) {
            return;
        }
        if inner.map.len() >= MAX_STUDIES {
            inner.map.clear();
        }
        inner.map.insert(study.to_string(), owner);
    }
}

impl Engine {
    /// The owner of `study` ([`crate::index::Index::study_owner`]), from the map while
    /// the index is unchanged.
    pub(crate) fn study_owner(&self, study: &str) -> Result<Option<Arc<Owner>>> {
        let Some(generation) = self.index.generation() else {
            return Ok(self.index.study_owner(study)?.map(Arc::new));
        };
        if let Some(kept) = self.study_owners.get(generation, study) {
            return Ok(kept);
        }
        let owner = self.index.study_owner(study)?.map(Arc::new);
        self.study_owners.put(generation, study, owner.clone());
        Ok(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(pid: &str) -> Option<Arc<Owner>> {
        Some(Arc::new((pid.into(), String::new(), vec!["CT".into()])))
    }

    #[test]
    fn another_generation_empties_the_map() {
        let owners = StudyOwners::default();
        assert!(owners.get(1, "1.2").is_none());
        owners.put(1, "1.2", owner("A"));
        owners.put(1, "1.3", None);
        assert_eq!(owners.get(1, "1.2").unwrap().unwrap().0, "A");
        assert!(owners.get(1, "1.3").unwrap().is_none(), "kept as absent");
        assert!(owners.get(2, "1.2").is_none(), "generation moved");
        // An answer read under the old generation is not kept under the new one.
        owners.put(1, "1.2", owner("A"));
        assert!(owners.get(2, "1.2").is_none());
    }

    #[test]
    fn the_map_is_bounded() {
        let owners = StudyOwners::default();
        owners.get(7, "x");
        for i in 0..MAX_STUDIES + 10 {
            owners.put(7, &format!("1.{i}"), owner("P"));
            assert!(owners.lock().map.len() <= MAX_STUDIES);
        }
    }
}
