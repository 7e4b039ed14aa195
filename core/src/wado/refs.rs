//! The inputs and outputs of the typed DICOMweb calls: what they address
//! ([`DicomRef`]) and the JSON they answer ([`DicomJson`]).

use crate::http::{Body, Chunk};
use crate::{Error, Result};

/// A study, a series of it, or an instance of that series, by UIDs (PS3.18 10.4.1:
/// the `studies/{study}[/series/{series}[/instances/{instance}]]` hierarchy).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DicomRef {
    study: String,
    series: Option<String>,
    instance: Option<String>,
}

impl DicomRef {
    /// Study `study_uid`.
    pub fn study(study_uid: &str) -> DicomRef {
        DicomRef {
            study: study_uid.to_string(),
            series: None,
            instance: None,
        }
    }

    /// Series `series_uid` of study `study_uid`.
    pub fn series(study_uid: &str, series_uid: &str) -> DicomRef {
        DicomRef {
            series: Some(series_uid.to_string()),
            ..DicomRef::study(study_uid)
        }
    }

    /// Instance `sop_instance_uid` of series `series_uid` of study `study_uid`.
    pub fn instance(study_uid: &str, series_uid: &str, sop_instance_uid: &str) -> DicomRef {
        DicomRef {
            instance: Some(sop_instance_uid.to_string()),
            ..DicomRef::series(study_uid, series_uid)
        }
    }

    pub(crate) fn from_parts(study: &str, series: Option<&str>, instance: Option<&str>) -> Self {
        DicomRef {
            study: study.to_string(),
            series: series.map(str::to_string),
            instance: series.and(instance).map(str::to_string),
        }
    }

    /// Study Instance UID.
    pub fn study_uid(&self) -> &str {
        &self.study
    }

    /// Series Instance UID, for a series or an instance.
    pub fn series_uid(&self) -> Option<&str> {
        self.series.as_deref()
    }

    /// SOP Instance UID, for an instance.
    pub fn sop_instance_uid(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// (study, series, instance) of an instance reference; `InvalidInput` otherwise.
    pub(crate) fn as_instance(&self) -> Result<(&str, &str, &str)> {
        match (&self.series, &self.instance) {
            (Some(se), Some(i)) => Ok((&self.study, se, i)),
            _ => Err(Error::invalid("frames and bulk data belong to an instance")),
        }
    }
}

/// A DICOM JSON answer (PS3.18 F.2: an array of DICOM JSON objects), as bytes that may
/// be shared with the engine's metadata cache, and the warnings that go with it.
#[derive(Clone, Debug, Default)]
pub struct DicomJson {
    body: Body,
    warnings: Vec<String>,
    partial: bool,
}

impl DicomJson {
    pub(crate) fn new(body: Body, warnings: Vec<String>, partial: bool) -> DicomJson {
        DicomJson {
            body,
            warnings,
            partial,
        }
    }

    /// A JSON array of the objects in `items` (each one JSON object, as bytes).
    pub(crate) fn array(items: impl IntoIterator<Item = Chunk>) -> DicomJson {
        let mut body = Body::new();
        body.push(Chunk::from_static(b"["));
        for (k, json) in items.into_iter().enumerate() {
            if k > 0 {
                body.push(Chunk::from_static(b","));
            }
            body.push(json);
        }
        body.push(Chunk::from_static(b"]"));
        DicomJson::new(body, Vec::new(), false)
    }

    /// The JSON text, as chunks (`application/dicom+json`).
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The JSON text by value.
    pub fn into_body(self) -> Body {
        self.body
    }

    /// The JSON text in one buffer (copies).
    pub fn to_vec(&self) -> Vec<u8> {
        self.body.to_vec()
    }

    /// The JSON parsed (an array).
    ///
    /// # Errors
    /// `Internal` if the engine wrote invalid JSON (a bug).
    pub fn to_value(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body.to_vec()).map_err(Error::internal)
    }

    /// Human-readable warnings (PS3.18 8.3.5.1 `Warning` texts): results cut at the
    /// limit, fields not returned, instances left out.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether part of what was asked for is missing (HTTP 206): instances that cannot
    /// be read were left out and named in a warning.
    pub fn is_partial(&self) -> bool {
        self.partial
    }
}

/// Instances left out of a study- or series-level answer because they cannot be read.
pub(crate) struct LeftOut {
    /// Whether the answer is for a study or series (else one instance: no leaving out).
    several: bool,
    /// SOP Instance UID and why, per instance left out.
    names: Vec<String>,
    /// The first failure, answered when nothing could be read.
    first: Option<Error>,
}

impl LeftOut {
    pub(crate) fn new(several: bool) -> LeftOut {
        LeftOut {
            several,
            names: Vec::new(),
            first: None,
        }
    }

    /// Notes that `sop` cannot be read (`failure` says why); `Some` when the request
    /// must fail with it instead (instance level).
    pub(crate) fn add(&mut self, sop: &str, failure: Error) -> Option<Error> {
        if !self.several {
            return Some(failure);
        }
        let why = failure
            .message()
            .trim()
            .chars()
            .map(|c| if c == '"' || c.is_control() { '\'' } else { c })
            .take(200)
            .collect::<String>();
        self.names.push(format!("{sop} ({why})"));
        self.first.get_or_insert(failure);
        None
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The answer when no instance could be read: the first failure.
    pub(crate) fn all_failed(self) -> Error {
        self.first
            .unwrap_or_else(|| Error::new(crate::ErrorKind::Internal, "no instance could be read"))
    }

    /// The warning naming the instances left out (PS3.18 8.3.5.1: partial content).
    pub(crate) fn warning(&self) -> Option<String> {
        (!self.names.is_empty()).then(|| {
            format!(
                "instances left out because they cannot be read: {}",
                self.names.join(", ")
            )
        })
    }
}
