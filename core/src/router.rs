//! `Engine::handle`: the one router every host uses. It only parses the route, applies
//! the guard (the authorization decision of `auth::access`) and dispatches to the typed
//! calls; each handler lives with its resource (`fhir/api.rs`, `wado/frames.rs`,
//! `wado/metadata.rs`, `wado/retrieve.rs`, `wado/search.rs`, `wado/bulkdata.rs`,
//! `wado/uri.rs`, `wado/rendered.rs`), and every failure becomes an answer through
//! [`crate::Error`].

use crate::auth::{Access, Credentials, Denial, ResourceKind};
use crate::http::{Body, Request, Response};
use crate::wado::{self, AcceptHeader, DicomJson, DicomRef, Route, RouteError};
use crate::{Engine, Error, Result};

impl Engine {
    /// Answers one HTTP request: status, headers and body, with every DICOMweb rule
    /// applied here so that hosts only move bytes. Never panics on any input; failures
    /// inside the engine become 500 responses whose cause is in [`Response::detail`].
    pub fn handle(&self, req: &Request) -> Response {
        let head = req.method == "HEAD";
        if req.method != "GET" && !head {
            let mut r = Response::error(
                405,
                &format!("method {} is not allowed; use GET", req.method),
            );
            r.headers.push(("Allow".into(), "GET, HEAD".into()));
            return r;
        }
        // A bug must cost one request a 500, never the host process (a PACS links this).
        let routed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.route(req)));
        let mut resp = routed.unwrap_or_else(|panic| {
            let what = (panic.downcast_ref::<&str>().copied())
                .or(panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic");
            Error::internal(format!("panic while answering {}: {what}", req.path)).to_response()
        });
        if head {
            resp.body = Body::new();
        }
        resp.sanitize_headers();
        resp
    }

    /// Answers `req` as [`Engine::handle`] does, unless that would decode pixel data or
    /// render an image (a frame of a compressed instance asked for uncompressed and not
    /// in the decoded-frame cache, a rendered or thumbnail resource), or write metadata
    /// that is not kept from an earlier request: then `None`, with nothing decoded or
    /// read, and the host calls [`Engine::handle`] where blocking is fine.
    ///
    /// For hosts that answer cheap requests (frames in their stored syntax, searches) on
    /// a few async workers and the rest on a blocking pool: a decode takes milliseconds
    /// to seconds, and a burst of them on the async workers would stall the frames that
    /// need none. The work done before the refusal (routing, authorization, the index
    /// lookup) is done again by `handle`; it costs microseconds.
    pub fn handle_without_decoding(&self, req: &Request) -> Option<Response> {
        let (resp, refused) = crate::pixels::quick_only(|| self.handle(req));
        (!refused).then_some(resp)
    }

    fn route(&self, req: &Request) -> Response {
        if let Some(rest) = under(&req.path, &self.fhir_path) {
            return self.fhir(req, rest);
        }
        if req.path.strip_suffix('/').unwrap_or(&req.path) == self.wado_uri_path {
            return self.wado_uri(req).unwrap_or_else(|e| e.to_response());
        }
        let Some(rest) = under(&req.path, &self.dicomweb_path) else {
            return Response::error(404, &format!("no resource at {}", req.path));
        };
        self.dicomweb(req, rest).unwrap_or_else(|e| e.to_response())
    }

    /// A request under the DICOMweb base; `rest` is the path after it.
    fn dicomweb(&self, req: &Request, rest: &str) -> Result<Response> {
        // A capability URL: `cap/{capability}/studies/{uid}/...`, bound to one study.
        let (rest, base, capability) = match rest.strip_prefix("cap/") {
            Some(after) => {
                let (cap, inner) = after.split_once('/').unwrap_or((after, ""));
                let grant = self.authorize_capability(cap)?;
                let base = format!("{}/cap/{cap}", self.fhir.dicomweb_base);
                (inner, base, Some(grant))
            }
            None => (rest, self.fhir.dicomweb_base.clone(), None),
        };
        let route = wado::parse_path(rest.trim_end_matches('/')).map_err(route_error)?;
        let study = match &route {
            Route::Frames { study, .. }
            | Route::Metadata { study, .. }
            | Route::Retrieve { study, .. }
            | Route::Bulkdata { study, .. } => Some(study.clone()),
            Route::Search { study, .. } => study.clone(),
            // Rendered, thumbnail and unserved resources are authorized like the others.
            Route::Other(p) => match p.split('/').collect::<Vec<_>>().as_slice() {
                ["studies", s, ..] => Some(s.to_string()),
                _ => None,
            },
        };
        // Every DICOMweb resource is checked: retrieval (frames, metadata and bulk data
        // included) needs `r` on the study's patient, search needs `s` and is filtered
        // to the patient. Under a capability only its study exists, whatever path is
        // appended; searches without a study in the path (OHIF's
        // `studies?StudyInstanceUID=`) are filtered to it.
        let grant = match capability {
            Some(grant) => {
                if !matches!(&route, Route::Search { study: None, .. }) {
                    match &study {
                        Some(s) => self.require_study(&grant, s)?,
                        None => {
                            return Err(Denial::patient_mismatch(
                                "this capability grants one study only",
                            )
                            .into());
                        }
                    }
                }
                grant
            }
            None => {
                let creds = Credentials::from_request(req);
                let access = match (&route, &study) {
                    (Route::Search { .. }, _) => Access::search(ResourceKind::ImagingStudy),
                    (_, Some(s)) => Access::study(s),
                    (_, None) => Access::read(),
                };
                self.authorize(&creds, &access)?
            }
        };
        let base = base.as_str();
        match route {
            Route::Frames {
                study,
                series,
                instance,
                frames,
            } => {
                let accept = accept_of(req)?;
                let at = DicomRef::instance(&study, &series, &instance);
                let found = self.frames_with(&at, &frames, &accept)?;
                Ok(wado::frames::frames_response(found, base, &at))
            }
            Route::Metadata {
                study,
                series,
                instance,
            } => {
                wado::metadata::require_json(&*accept_of(req)?)?;
                let at = DicomRef::from_parts(&study, series.as_deref(), instance.as_deref());
                Ok(json_response(self.metadata_with(&at, base)?))
            }
            Route::Search {
                level,
                study,
                series,
            } => {
                wado::metadata::require_json(&*accept_of(req)?)?;
                let filter = self.search_conditions(&grant)?;
                let query =
                    wado::qido::decode_query(&req.query).map_err(wado::search::query_error)?;
                Ok(json_response(self.qido_with(
                    level,
                    study.as_deref(),
                    series.as_deref(),
                    &query,
                    filter,
                    base,
                )?))
            }
            Route::Retrieve {
                study,
                series,
                instance,
            } => {
                let accept = accept_of(req)?;
                let at = DicomRef::from_parts(&study, series.as_deref(), instance.as_deref());
                Ok(self.retrieve_with(&at, &accept, base)?.into_response())
            }
            Route::Bulkdata {
                study,
                series,
                instance,
                path,
            } => {
                let accept = accept_of(req)?;
                let at = DicomRef::instance(&study, &series, &instance);
                self.bulkdata_response(&accept, base, &at, &path)
            }
            // Rendered and thumbnail resources (wado/rendered.rs); the rest is 501.
            Route::Other(p) => self.rendered(req, base, &p),
        }
    }
}

/// The part of `path` after base path `base` and a `/` (`base` may end in `/`).
fn under<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    path.strip_prefix(base.trim_end_matches('/'))?
        .strip_prefix('/')
}

/// A path that names no resource: 404, or 400 when malformed.
fn route_error(e: RouteError) -> Error {
    match e.status {
        404 => Error::not_found(e.message),
        _ => Error::invalid(e.message),
    }
}

/// The request's `Accept` fields (400 when malformed).
fn accept_of(req: &Request) -> Result<std::rc::Rc<AcceptHeader>> {
    AcceptHeader::parse_fields_remembered(req.header_values("accept"))
        .map_err(|e| Error::invalid(e.to_string()))
}

/// DICOM JSON as `application/dicom+json`, 206 with `Warning`s when partial.
fn json_response(json: DicomJson) -> Response {
    let partial = json.is_partial();
    let warnings = json.warnings().to_vec();
    let mut r = Response::with_body(
        if partial { 206 } else { 200 },
        "application/dicom+json",
        json.into_body(),
    );
    for w in warnings {
        r.headers.push(crate::http::warning(&w));
    }
    r
}
