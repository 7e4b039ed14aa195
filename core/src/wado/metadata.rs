//! WADO-RS metadata (PS3.18 10.4.1.1.2): a JSON array of DICOM JSON objects (PS3.18
//! F.2) for a study, series or instance, written from each file's header at request
//! time and then shared from the metadata cache while the file keeps its identity.

use std::sync::Arc;

use super::AcceptHeader;
use super::refs::{DicomJson, DicomRef, LeftOut};
use crate::auth::Grant;
use crate::http::{Body, Chunk};
use crate::{Engine, Error, Result};

impl Engine {
    /// The metadata of `what` (a study, series or instance): one DICOM JSON object per
    /// instance, `BulkDataURI`s under the DICOMweb base. At study and series level an
    /// instance that cannot be read (malformed, changed or gone since indexing) is left
    /// out and named in a warning ([`DicomJson::is_partial`]), never failing the others.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound` (nothing indexed there), `Gone` (an instance-level file
    /// changed), `Internal`.
    pub fn metadata(&self, what: &DicomRef, grant: &Grant) -> Result<DicomJson> {
        self.require_study(grant, what.study_uid())?;
        let base = self.fhir.dicomweb_base.clone();
        self.metadata_with(what, &base)
    }

    /// [`Engine::metadata`] after the grant check, with addresses under `base`.
    pub(crate) fn metadata_with(&self, what: &DicomRef, base: &str) -> Result<DicomJson> {
        let (study, series, instance) =
            (what.study_uid(), what.series_uid(), what.sop_instance_uid());
        let listing = format!(
            "{study}/{}/{}\n{base}",
            series.unwrap_or(""),
            instance.unwrap_or("")
        );
        if let Some(body) = self.metadata_cache.fresh_listing(&listing) {
            return Ok(DicomJson::new(
                Body::from_chunk(Chunk::from_shared(body)),
                Vec::new(),
                false,
            ));
        }
        // Checking or writing a listing reads the index and makes a `stat` per file, or
        // reads headers: slow work, left to where blocking is fine (a kept answer above
        // is handed out on any thread; see `Engine::handle_without_decoding`).
        if !crate::pixels::may_work_slowly() {
            return Err(super::decoded::deferred());
        }
        let instances = self.index.instance_files(study, series, instance)?;
        if instances.is_empty() {
            let what = match (series, instance) {
                (_, Some(i)) => format!("instance {i}"),
                (Some(se), None) => format!("series {se}"),
                _ => format!("study {study}"),
            };
            return Err(Error::not_found(format!("no {what} in the index")));
        }
        // Each instance's JSON is written from its header once and then shared from the
        // cache while its file keeps the indexed identity (see `metadata_cache`).
        let mut jsons: Vec<Arc<[u8]>> = Vec::with_capacity(instances.len());
        let mut left_out = LeftOut::new(instance.is_none());
        for inst in &instances {
            if let Some(json) = self.metadata_cache.get(&inst.file, base) {
                jsons.push(json);
                continue;
            }
            let read = self.files.open(&inst.file).and_then(|f| {
                f.whole().map(|b| {
                    let url = format!(
                        "{}/studies/{}/series/{}/instances/{}",
                        base, inst.study_uid, inst.series_uid, inst.sop_instance_uid
                    );
                    let ctx = crate::dicom::json::JsonContext { instance_url: &url };
                    crate::dicom::json::instance_json(&b, &ctx)
                })
            });
            let failure = match read {
                Ok(Ok(json)) => {
                    let json: Arc<[u8]> = json.into();
                    self.metadata_cache.put(&inst.file, base, json.clone());
                    jsons.push(json);
                    continue;
                }
                Err(e) => Error::from(e),
                Ok(Err(e)) => {
                    Error::new(crate::ErrorKind::InvalidDicom, crate::error::INTERNAL_ERROR)
                        .with_detail(format!(
                            "{}: cannot read the header again: {e}",
                            inst.file.path
                        ))
                }
            };
            if let Some(e) = left_out.add(&inst.sop_instance_uid, failure) {
                return Err(e);
            }
        }
        if jsons.is_empty() {
            return Err(left_out.all_failed());
        }
        let warning = left_out.warning();
        if left_out.is_empty() {
            let files = instances.into_iter().map(|i| i.file).collect();
            let body = self.metadata_cache.put_listing(listing, files, &jsons);
            return Ok(DicomJson::new(
                Body::from_chunk(Chunk::from_shared(body)),
                Vec::new(),
                false,
            ));
        }
        let mut out = DicomJson::array(jsons.into_iter().map(Chunk::from_shared));
        if let Some(w) = warning {
            out = DicomJson::new(out.into_body(), vec![w], true);
        }
        Ok(out)
    }
}

/// Whether the client accepts DICOM JSON; else the 406.
pub(crate) fn require_json(accept: &AcceptHeader) -> Result<()> {
    let ok = accept
        .ranges
        .iter()
        .any(|r| r.q > 0 && (r.matches("application/dicom+json") || r.matches("application/json")));
    if ok {
        Ok(())
    } else {
        Err(Error::not_acceptable(
            "this resource is sent as application/dicom+json",
        ))
    }
}
