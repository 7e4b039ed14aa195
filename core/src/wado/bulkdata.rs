//! Bulk data (PS3.18 10.4.1.1.6): the value a `BulkDataURI` of the metadata names, as
//! `application/octet-stream` (little endian); encapsulated Pixel Data is sent as its
//! frames.

use super::refs::DicomRef;
use super::{AcceptHeader, Multipart};
use crate::dicom::bulk::{BulkValue, Step};
use crate::http::{Body, Chunk, Response};
use crate::storage::OpenFile;
use crate::{Engine, Error, Result};

impl Engine {
    /// The bulk data at `path` of `instance` (the grant was checked by the caller).
    pub(crate) fn bulkdata_response(
        &self,
        accept: &AcceptHeader,
        base: &str,
        instance: &DicomRef,
        path: &[Step],
    ) -> Result<Response> {
        let (study, series, sop) = instance.as_instance()?;
        let loc = self.located(study, series, sop)?;
        let file = self.files.open(&loc.file)?;
        let bytes = file.whole()?;
        let value = crate::dicom::bulk::find(&bytes, path, loc.bits_allocated)
            .map_err(|e| Error::internal(format!("{}: {e}", loc.file.path)))?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "no bulk data at {}",
                    location(base, instance, path)
                ))
            })?;
        let chunk = match value {
            BulkValue::EncapsulatedPixelData => {
                let all: Vec<u32> = (1..=loc.frames.count()).collect();
                let frames = self.frames_with(instance, &all, accept)?;
                return Ok(super::frames::frames_response(frames, base, instance));
            }
            BulkValue::Bytes {
                data,
                file_offset: Some(at),
            } if matches!(file, OpenFile::Mapped(_)) => file.chunk(at, data.len() as u64)?,
            BulkValue::Bytes { data, .. } => Chunk::from_vec(data.into_owned()),
        };
        drop(bytes);
        let location = location(base, instance, path);
        let ranges: Vec<_> = accept.ranges.iter().filter(|r| r.q > 0).collect();
        let multipart = ranges.iter().any(|r| {
            (r.kind == "multipart"
                && r.param("type")
                    .is_none_or(|t| t == "application/octet-stream" || t == "*/*"))
                || r.kind == "*"
        });
        let single = ranges.iter().any(|r| {
            r.kind != "multipart" && r.kind != "*" && r.matches("application/octet-stream")
        });
        if multipart {
            let mut mp = Multipart::new();
            mp.part(
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Location", &location),
                ],
                [chunk],
            );
            let (boundary, body) = mp.finish();
            Ok(Response::with_body(
                200,
                &format!(
                    "multipart/related; type=\"application/octet-stream\"; boundary={boundary}"
                ),
                body,
            ))
        } else if single {
            let mut body = Body::new();
            body.push(chunk);
            let mut r = Response::with_body(200, "application/octet-stream", body);
            r.headers.push(("Content-Location".into(), location));
            Ok(r)
        } else {
            Err(Error::not_acceptable(
                "bulk data is sent as application/octet-stream",
            ))
        }
    }
}

/// The address of the bulk data at `path` of `instance`.
fn location(base: &str, instance: &DicomRef, path: &[Step]) -> String {
    let steps: Vec<String> = path
        .iter()
        .map(|s| match s {
            Step::Tag(t) => format!("{:08X}", t.as_u32()),
            Step::Item(i) => i.to_string(),
        })
        .collect();
    format!(
        "{base}/studies/{}/series/{}/instances/{}/bulkdata/{}",
        instance.study_uid(),
        instance.series_uid().unwrap_or_default(),
        instance.sop_instance_uid().unwrap_or_default(),
        steps.join("/")
    )
}
