//! WADO-RS retrieval of instances (PS3.18 10.4.1.1.1-3): a study, series or instance
//! as `multipart/related; type="application/dicom"`, one part per instance, or a bare
//! `application/dicom` for one instance. Files in Explicit VR Little Endian (or
//! compressed) go out as they are; Implicit VR, big-endian and deflated files are
//! rewritten; compressed files are decoded to Explicit VR Little Endian when the client
//! asks for it, or by default for lossless sources (`wado/decoded.rs`).

use super::refs::{DicomRef, LeftOut};
use super::{AcceptHeader, Multipart};
use crate::auth::Grant;
use crate::http::{Body, Chunk, Response};
use crate::{Engine, Error, Result};

/// Instances as [`Engine::retrieve`] answers them: the body and its `Content-Type`.
#[derive(Clone, Debug)]
pub struct Retrieved {
    content_type: String,
    body: Body,
    content_location: Option<String>,
    warnings: Vec<String>,
    partial: bool,
}

impl Retrieved {
    /// `multipart/related; type="application/dicom"; boundary=...`, or
    /// `application/dicom; transfer-syntax=...` for a single instance asked for bare.
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The body, as chunks that own what they point at.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The body by value.
    pub fn into_body(self) -> Body {
        self.body
    }

    /// The instance's address, for a single-part answer.
    pub fn content_location(&self) -> Option<&str> {
        self.content_location.as_deref()
    }

    /// Why instances were left out (not in an accepted syntax, unreadable).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether instances were left out (HTTP 206).
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    pub(crate) fn into_response(self) -> Response {
        let mut r = Response::with_body(
            if self.partial { 206 } else { 200 },
            &self.content_type,
            self.body,
        );
        if let Some(l) = self.content_location {
            r.headers.push(("Content-Location".into(), l));
        }
        for w in self.warnings {
            r.headers.push(crate::http::warning(&w));
        }
        r
    }
}

impl Engine {
    /// The instances of `what` (a study, series or instance) as DICOM files, in the
    /// form `accept` (an `Accept` value; empty accepts anything) allows (PS3.18
    /// 10.4.1.1.1-3, 8.7.3.3). Instances that cannot be read, or are not in an accepted
    /// transfer syntax, are left out of a study or series and named in a warning.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `NotAcceptable` (no instance in an accepted form),
    /// `TooCostly` (an instance decodes past the request limit), `Unavailable` (every
    /// decoder busy), `Gone` (an instance's file changed), `InvalidInput` (bad
    /// `accept`), `Internal`.
    pub fn retrieve(&self, what: &DicomRef, accept: &str, grant: &Grant) -> Result<Retrieved> {
        self.require_study(grant, what.study_uid())?;
        let base = self.fhir.dicomweb_base.clone();
        self.retrieve_with(what, &super::frames::accept_str(accept)?, &base)
    }

    /// [`Engine::retrieve`] after the grant check, with addresses under `base`.
    pub(crate) fn retrieve_with(
        &self,
        what: &DicomRef,
        accept: &AcceptHeader,
        base: &str,
    ) -> Result<Retrieved> {
        let (study, series, instance) =
            (what.study_uid(), what.series_uid(), what.sop_instance_uid());
        let instances = self.index.instance_files(study, series, instance)?;
        if instances.is_empty() {
            return Err(Error::not_found(format!("nothing at {}", path_of(what))));
        }
        let mut parts: Vec<(String, String, Vec<Chunk>)> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        let mut single_only = true;
        let mut left_out = LeftOut::new(instance.is_none());
        for inst in &instances {
            let (ts, body) = match self.dicom_file(&inst.file) {
                Ok(v) => v,
                Err(e) => match left_out.add(&inst.sop_instance_uid, e) {
                    Some(e) => return Err(e),
                    None => continue,
                },
            };
            // Compressed instances decoded to Explicit VR Little Endian when asked or by
            // default for lossless sources (wado/decoded.rs).
            let ask = super::decoded::DicomAsk::Accept(accept);
            let (ts, body) = match self.dicom_as_asked(&ask, &inst.sop_instance_uid, ts, body) {
                Ok(v) => v,
                Err(e) => match left_out.add(&inst.sop_instance_uid, e) {
                    Some(e) => return Err(e),
                    None => continue,
                },
            };
            match super::accepts_dicom(accept, &ts) {
                Some(multipart) => {
                    single_only &= !multipart;
                    let url = format!(
                        "{}/studies/{}/series/{}/instances/{}",
                        base, inst.study_uid, inst.series_uid, inst.sop_instance_uid
                    );
                    parts.push((ts, url, body));
                }
                None => refused.push(format!("{} ({ts})", inst.sop_instance_uid)),
            }
        }
        if parts.is_empty() && refused.is_empty() {
            return Err(left_out.all_failed());
        }
        if parts.is_empty() {
            return Err(Error::not_acceptable(format!(
                "no instance can be sent in an accepted form: {}",
                refused.join(", ")
            )));
        }
        let mut out = if single_only && parts.len() == 1 {
            // Only a bare `application/dicom` was accepted, for one instance.
            let (ts, url, chunks) = parts.pop().expect("one part");
            let mut body = Body::new();
            chunks.into_iter().for_each(|c| body.push(c));
            Retrieved {
                content_type: format!("application/dicom; transfer-syntax={ts}"),
                body,
                content_location: Some(url),
                warnings: Vec::new(),
                partial: false,
            }
        } else if single_only {
            return Err(Error::not_acceptable(
                "several instances are sent only as multipart/related",
            ));
        } else {
            let mut mp = Multipart::new();
            for (ts, url, chunks) in parts {
                let ct = format!("application/dicom; transfer-syntax={ts}");
                mp.part(&[("Content-Type", &ct), ("Content-Location", &url)], chunks);
            }
            let (boundary, body) = mp.finish();
            Retrieved {
                content_type: format!(
                    "multipart/related; type=\"application/dicom\"; boundary={boundary}"
                ),
                body,
                content_location: None,
                warnings: Vec::new(),
                partial: false,
            }
        };
        if !refused.is_empty() {
            out.partial = true;
            out.warnings.push(format!(
                "not in an accepted transfer syntax: {}",
                refused.join(", ")
            ));
        }
        if let Some(w) = left_out.warning() {
            out.partial = true;
            out.warnings.push(w);
        }
        Ok(out)
    }

    /// A file ready to send as `application/dicom`: its transfer syntax and body chunks.
    pub(crate) fn dicom_file(
        &self,
        id: &crate::storage::FileIdentity,
    ) -> Result<(String, Vec<Chunk>)> {
        let file = self.files.open(id)?;
        let bytes = file.whole()?;
        match crate::dicom::transcode::for_web(&bytes) {
            Ok(crate::dicom::transcode::Output::AsStored(ts)) => {
                // Read once in pread mode; a slice of the mapping in mmap mode.
                let chunk = match bytes {
                    std::borrow::Cow::Owned(v) => Chunk::from_vec(v),
                    std::borrow::Cow::Borrowed(_) => file.chunk(0, id.size)?,
                };
                Ok((ts, vec![chunk]))
            }
            Ok(crate::dicom::transcode::Output::Rewritten(v)) => Ok((
                crate::dicom::tag::ts::EXPLICIT_VR_LE.to_string(),
                vec![Chunk::from_vec(v)],
            )),
            Err(e) => Err(
                Error::new(crate::ErrorKind::InvalidDicom, crate::error::INTERNAL_ERROR)
                    .with_detail(format!("{}: cannot read the file again: {e}", id.path)),
            ),
        }
    }
}

/// The DICOMweb path of `what` (for messages: UIDs only).
pub(crate) fn path_of(what: &DicomRef) -> String {
    let mut p = format!("/studies/{}", what.study_uid());
    if let Some(se) = what.series_uid() {
        p.push_str(&format!("/series/{se}"));
    }
    if let Some(i) = what.sop_instance_uid() {
        p.push_str(&format!("/instances/{i}"));
    }
    p
}
