//! WADO-URI (PS3.18 chapter 9): `requestType=WADO` with study, series and object UIDs;
//! `application/dicom` (Explicit VR Little Endian by default, decoded when stored
//! compressed and lossless), else a rendered image (`wado/rendered.rs`).

use super::{is_uid, qido};
use crate::auth::{Access, Credentials};
use crate::http::{Body, Request, Response};
use crate::{Engine, Error, Result};

impl Engine {
    /// Answers a WADO-URI request.
    pub(crate) fn wado_uri(&self, req: &Request) -> Result<Response> {
        let mut params: Vec<(String, String)> = Vec::new();
        for pair in req.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match (qido::decode(k), qido::decode(v)) {
                (Ok(k), Ok(v)) => params.push((k, v)),
                _ => return Err(Error::invalid("bad percent-encoding in the query")),
            }
        }
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if get("requestType") != Some("WADO") {
            return Err(Error::invalid("requestType=WADO is required"));
        }
        let mut uids = Vec::new();
        for name in ["studyUID", "seriesUID", "objectUID"] {
            match get(name) {
                Some(u) if is_uid(u) => uids.push(u.to_string()),
                Some(u) => return Err(Error::invalid(format!("{name} {u:?} is not a valid UID"))),
                None => return Err(Error::invalid(format!("{name} is required"))),
            }
        }
        self.authorize(&Credentials::from_request(req), &Access::study(&uids[0]))?;
        if get("anonymize") == Some("yes") {
            return Err(Error::not_acceptable("anonymize=yes is not supported"));
        }
        let content_type = match get("contentType") {
            Some(ct) => ct
                .split(',')
                .map(|t| t.split(';').next().unwrap_or("").trim())
                .any(|t| t == "application/dicom"),
            // Without contentType, the default is a rendered image/jpeg unless the Accept
            // header asks for application/dicom (PS3.18 9.4.1).
            None => req
                .header_values("accept")
                .any(|a| a.contains("application/dicom")),
        };
        if !content_type {
            // A rendered image (wado/rendered.rs): image/jpeg by default.
            return self.wado_uri_rendered(&get, &uids);
        }
        let instances = self
            .index
            .instance_files(&uids[0], Some(&uids[1]), Some(&uids[2]))?;
        let Some(first) = instances.first() else {
            return Err(Error::not_found(format!(
                "no object {} in series {} of study {}",
                uids[2], uids[1], uids[0]
            )));
        };
        let (ts, chunks) = self.dicom_file(&first.file)?;
        // Explicit VR Little Endian by default (PS3.18 9.4.1; wado/decoded.rs).
        let ask = super::decoded::DicomAsk::Uri(get("transferSyntax"));
        let (ts, chunks) = self.dicom_as_asked(&ask, &uids[2], ts, chunks)?;
        if let Some(wanted) = get("transferSyntax")
            && wanted != ts
        {
            return Err(Error::not_acceptable(format!(
                "the object is available in {ts}, not {wanted}"
            )));
        }
        let mut body = Body::new();
        chunks.into_iter().for_each(|c| body.push(c));
        Ok(Response::with_body(200, "application/dicom", body))
    }
}
