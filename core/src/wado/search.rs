//! QIDO-RS (PS3.18 10.6): searches for studies, series and instances, answered as a
//! JSON array of matches (an empty array when nothing matches, as amended by CP-2473),
//! limited to what the caller's grant reaches.

use super::qido;
use super::refs::DicomJson;
use crate::auth::Grant;
use std::sync::Arc;

use crate::http::{Body, Chunk};
use crate::index::search::{Condition, Level};
use crate::search_cache::{Answer, CacheKey, search_key};
use crate::{Engine, Error, Result};

/// The level of a QIDO-RS search (PS3.18 10.6.1.2).
pub type QidoLevel = Level;

/// An error of the query parser as the engine's error (all 400).
pub(crate) fn query_error((status, message): (u16, String)) -> Error {
    match status {
        400 => Error::invalid(message),
        _ => Error::internal(message),
    }
}

impl Engine {
    /// Searches at `level` within `study` (and `series`) given in the path, with the
    /// decoded query parameters (`PatientID=...`, `limit`, `includefield`, ...; PS3.18
    /// 10.6.1.2), limited to the studies `grant` reaches. At most
    /// [`qido::MAX_RESULTS`] matches; warnings say when more exist or fields were not
    /// returned.
    ///
    /// # Errors
    /// `InvalidInput` (an unsupported or malformed parameter), `Forbidden` (the grant
    /// does not allow search), `Internal`.
    pub fn qido(
        &self,
        level: QidoLevel,
        study: Option<&str>,
        series: Option<&str>,
        query: &[(String, String)],
        grant: &Grant,
    ) -> Result<DicomJson> {
        let filter = self.search_conditions(grant)?;
        let base = self.fhir.dicomweb_base.clone();
        self.qido_with(level, study, series, query, filter, &base)
    }

    /// [`Engine::qido`] with the grant's conditions, with addresses under `base`.
    pub(crate) fn qido_with(
        &self,
        level: QidoLevel,
        study: Option<&str>,
        series: Option<&str>,
        query: &[(String, String)],
        filter: Vec<Condition>,
        base: &str,
    ) -> Result<DicomJson> {
        // The answer depends on these inputs (the grant's compartment is in `filter`)
        // and the index's contents only: kept while the index generation holds.
        let answer = self.search_answer(
            || {
                let head = format!("qido {level:?} {study:?} {series:?}");
                let parts = query.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]);
                Some(CacheKey::lasting(search_key(
                    &head,
                    std::iter::once(base).chain(parts),
                    &filter,
                )))
            },
            || {
                let (body, warnings) =
                    self.qido_from_index(level, study, series, query, &filter, base)?;
                Ok(Answer {
                    body: Arc::from(body),
                    warnings,
                })
            },
        )?;
        let mut out = Body::new();
        out.push(Chunk::from_shared(answer.body.clone()));
        Ok(DicomJson::new(out, answer.warnings.clone(), false))
    }

    /// The JSON array and warnings of a search, read from the index.
    fn qido_from_index(
        &self,
        level: QidoLevel,
        study: Option<&str>,
        series: Option<&str>,
        query: &[(String, String)],
        filter: &[Condition],
        base: &str,
    ) -> Result<(Vec<u8>, Vec<String>)> {
        let mut q = qido::parse_pairs(level, study, series, query).map_err(query_error)?;
        q.search.conditions.extend_from_slice(filter);
        let mut rows = self.index.search(&q.search)?;
        let more = rows.len() as u64 > q.search.limit;
        rows.truncate(q.search.limit as usize);
        let mut out = Vec::with_capacity(rows.len() * 1024 + 2);
        out.push(b'[');
        for (k, row) in rows.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            qido::row_json(row, &q.returned, base, &mut out);
        }
        out.push(b']');
        let mut warnings = Vec::new();
        if more && q.asked_limit.is_none_or(|l| l > qido::MAX_RESULTS) {
            warnings.push(format!(
                "The number of results exceeded the maximum supported by the server ({}). Additional results can be requested.",
                qido::MAX_RESULTS
            ));
        }
        if !q.ignored_fields.is_empty() {
            warnings.push(format!(
                "The fields {} are not supported and were not returned.",
                q.ignored_fields.join(",")
            ));
        }
        Ok((out, warnings))
    }
}
