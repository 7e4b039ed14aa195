//! `Engine::handle`: the one router every host uses.

use crate::Engine;
use crate::auth::{BackendAccess, Denial, Grant, Interaction, PatientPolicy, Restriction};
use crate::dicom::FrameTable;
use crate::http::{Body, Chunk, Request, Response};
use crate::index::search::Level;
use crate::storage::{FileError, OpenFile};
use crate::wado::{self, AcceptHeader, Multipart, Route, qido};

impl Engine {
    /// Answers one HTTP request: status, headers and body, with every DICOMweb rule
    /// applied here so that hosts only move bytes. Never panics on any input; failures
    /// inside the engine become 500 responses with a message.
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
            Response::internal(format!("panic while answering {}: {what}", req.path))
        });
        if head {
            resp.body = Body::new();
        }
        resp
    }

    fn route(&self, req: &Request) -> Response {
        let fhir_prefix = format!("{}/", self.fhir_path.trim_end_matches('/'));
        if let Some(rest) = req.path.strip_prefix(fhir_prefix.as_str()) {
            return self.fhir(req, rest);
        }
        if req.path == self.wado_uri_path || req.path == format!("{}/", self.wado_uri_path) {
            return self.wado_uri(req);
        }
        let prefix = format!("{}/", self.dicomweb_path.trim_end_matches('/'));
        let Some(rest) = req.path.strip_prefix(prefix.as_str()) else {
            return Response::error(404, &format!("no resource at {}", req.path));
        };
        // A capability URL: `cap/{capability}/studies/{uid}/...`, bound to one study.
        let (rest, base, cap_study) = match rest.strip_prefix("cap/") {
            Some(after) => {
                let Some(key) = &self.capabilities else {
                    return Response::error(404, "capability URLs are not enabled");
                };
                let (cap, inner) = after.split_once('/').unwrap_or((after, ""));
                match key.check(cap) {
                    Ok(granted) => {
                        // The grant is checked again at every use: the study must still
                        // belong to the token's (issuer, patient) and meet its granular
                        // restrictions, so an unlinked patient ends the capability.
                        match self.check_study_for(
                            &granted.study,
                            &granted.iss,
                            &granted.patient,
                            granted.restrictions.as_deref(),
                        ) {
                            Ok(()) => {}
                            Err(Refusal::Denied(_)) => {
                                return Denial::unauthorized_capability(
                                    "the capability no longer grants its study",
                                )
                                .response();
                            }
                            Err(r) => return r.plain(),
                        }
                        (
                            inner,
                            format!("{}/cap/{cap}", self.fhir.dicomweb_base),
                            Some(granted.study),
                        )
                    }
                    Err(m) => return Denial::unauthorized_capability(m).response(),
                }
            }
            None => (rest, self.fhir.dicomweb_base.clone(), None),
        };
        let route = match wado::parse_path(rest.trim_end_matches('/')) {
            Ok(r) => r,
            Err(e) => return Response::error(e.status, &e.message),
        };
        let study = match &route {
            Route::Frames { study, .. }
            | Route::Metadata { study, .. }
            | Route::Retrieve { study, .. }
            | Route::Bulkdata { study, .. } => Some(study.clone()),
            Route::Search { study, .. } => study.clone(),
            // Resources not served yet are authorized like the others before the 501.
            Route::Other(p) => match p.split('/').collect::<Vec<_>>().as_slice() {
                ["studies", s, ..] => Some(s.to_string()),
                _ => None,
            },
        };
        let mut filter = Vec::new();
        if let Some(granted) = &cap_study {
            // Under a capability only its study exists, whatever path is appended;
            // searches without a study in the path (OHIF's `studies?StudyInstanceUID=`)
            // are filtered to it below.
            let unscoped_search = matches!(&route, Route::Search { study: None, .. });
            if !unscoped_search && study.as_deref() != Some(granted.as_str()) {
                return Denial::patient_mismatch("this capability grants one study only")
                    .response();
            }
            if let Route::Search { .. } = &route {
                filter.push(crate::index::search::Condition {
                    sql: "st.study_uid = ?".into(),
                    params: vec![rusqlite::types::Value::Text(granted.clone())],
                });
            }
        } else {
            // Every DICOMweb resource is checked: retrieval (frames, metadata and bulk
            // data included) needs `r` on the study's patient, search needs `s` and is
            // filtered to the patient.
            match &route {
                Route::Search { .. } => match self.search_filter(req) {
                    Ok(f) => filter = f,
                    Err(denied) => return denied,
                },
                _ => match &study {
                    Some(study) => {
                        if let Some(denied) = self.guard_study(req, study) {
                            return denied;
                        }
                    }
                    // Never dispatched without a decision.
                    None => {
                        if let Err(r) = self.grant(req, Interaction::Read) {
                            return r.plain();
                        }
                    }
                },
            }
        }
        let base = base.as_str();
        match route {
            Route::Frames {
                study,
                series,
                instance,
                frames,
            } => self.frames(req, base, &study, &series, &instance, &frames),
            Route::Metadata {
                study,
                series,
                instance,
            } => self.metadata(req, base, &study, series.as_deref(), instance.as_deref()),
            Route::Search {
                level,
                study,
                series,
            } => self.search(
                req,
                base,
                level,
                study.as_deref(),
                series.as_deref(),
                filter,
            ),
            Route::Retrieve {
                study,
                series,
                instance,
            } => self.retrieve(req, base, &study, series.as_deref(), instance.as_deref()),
            Route::Bulkdata {
                study,
                series,
                instance,
                path,
            } => self.bulkdata(req, base, &study, &series, &instance, &path),
            // Rendered and thumbnail resources (wado/rendered.rs); the rest is 501.
            Route::Other(p) => self.rendered(req, base, &p),
        }
    }

    /// Instances as DICOM files: `multipart/related; type="application/dicom"`, one part
    /// per instance. Files in Explicit VR Little Endian (or compressed) go out as they
    /// are, without copying; Implicit VR, big-endian and deflated files are rewritten.
    fn retrieve(
        &self,
        req: &Request,
        base: &str,
        study: &str,
        series: Option<&str>,
        instance: Option<&str>,
    ) -> Response {
        let accept = match accept_of(req) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let instances = match self.index.instance_files(study, series, instance) {
            Ok(v) if !v.is_empty() => v,
            Ok(_) => return Response::error(404, &format!("nothing at {}", req.path)),
            Err(e) => return Response::internal(format!("index: {e}")),
        };
        let mut parts: Vec<(String, String, Vec<Chunk>)> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        let mut single_only = true;
        let mut left_out = LeftOut::new(instance.is_none());
        for inst in &instances {
            let (ts, body) = match self.dicom_file(&inst.file) {
                Ok(v) => v,
                Err(r) => match left_out.add(&inst.sop_instance_uid, r) {
                    Some(r) => return r,
                    None => continue,
                },
            };
            // Compressed instances decoded to Explicit VR Little Endian when asked or by
            // default for lossless sources (wado/decoded.rs).
            let ask = wado::decoded::DicomAsk::Accept(&accept);
            let (ts, body) = match self.dicom_as_asked(&ask, &inst.sop_instance_uid, ts, body) {
                Ok(v) => v,
                Err(r) => match left_out.add(&inst.sop_instance_uid, r) {
                    Some(r) => return r,
                    None => continue,
                },
            };
            match wado::accepts_dicom(&accept, &ts) {
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
            return left_out.all_failed();
        }
        if parts.is_empty() {
            return Response::error(
                406,
                &format!(
                    "no instance can be sent in an accepted form: {}",
                    refused.join(", ")
                ),
            );
        }
        let mut resp = if single_only && parts.len() == 1 {
            // Only a bare `application/dicom` was accepted, for one instance.
            let (ts, url, chunks) = parts.pop().expect("one part");
            let mut body = Body::new();
            chunks.into_iter().for_each(|c| body.push(c));
            let mut r = Response::with_body(
                200,
                &format!("application/dicom; transfer-syntax={ts}"),
                body,
            );
            r.headers.push(("Content-Location".into(), url));
            r
        } else if single_only {
            return Response::error(406, "several instances are sent only as multipart/related");
        } else {
            let mut mp = Multipart::new();
            for (ts, url, chunks) in parts {
                let ct = format!("application/dicom; transfer-syntax={ts}");
                mp.part(&[("Content-Type", &ct), ("Content-Location", &url)], chunks);
            }
            let (boundary, body) = mp.finish();
            Response::with_body(
                200,
                &format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
                body,
            )
        };
        if !refused.is_empty() {
            resp.status = 206;
            resp.headers.push((
                "Warning".into(),
                format!(
                    "299 sia \"not in an accepted transfer syntax: {}\"",
                    refused.join(", ")
                ),
            ));
        }
        left_out.mark(resp)
    }

    /// The value a `BulkDataURI` names, as `application/octet-stream` (little endian);
    /// encapsulated Pixel Data is sent as its frames.
    fn bulkdata(
        &self,
        req: &Request,
        base: &str,
        study: &str,
        series: &str,
        instance: &str,
        path: &[crate::dicom::bulk::Step],
    ) -> Response {
        let accept = match accept_of(req) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let loc = match self.located(study, series, instance) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let file = match self.files.open(&loc.file) {
            Ok(f) => f,
            Err(e) => return file_error(e),
        };
        let bytes = match file.whole() {
            Ok(b) => b,
            Err(e) => return file_error(e),
        };
        let value = match crate::dicom::bulk::find(&bytes, path, loc.bits_allocated) {
            Ok(Some(v)) => v,
            Ok(None) => return Response::error(404, &format!("no bulk data at {}", req.path)),
            Err(e) => return Response::internal(format!("{}: {e}", loc.file.path)),
        };
        let chunk = match value {
            crate::dicom::bulk::BulkValue::EncapsulatedPixelData => {
                let all: Vec<u32> = (1..=loc.frames.count()).collect();
                return self.frames(req, base, study, series, instance, &all);
            }
            crate::dicom::bulk::BulkValue::Bytes {
                data,
                file_offset: Some(at),
            } if matches!(file, OpenFile::Mapped(_)) => match file.chunk(at, data.len() as u64) {
                Ok(c) => c,
                Err(e) => return file_error(e),
            },
            crate::dicom::bulk::BulkValue::Bytes { data, .. } => Chunk::Owned(data.into_owned()),
        };
        drop(bytes);
        let steps: Vec<String> = path
            .iter()
            .map(|s| match s {
                crate::dicom::bulk::Step::Tag(t) => format!("{:08X}", t.as_u32()),
                crate::dicom::bulk::Step::Item(i) => i.to_string(),
            })
            .collect();
        let location = format!(
            "{base}/studies/{study}/series/{series}/instances/{instance}/bulkdata/{}",
            steps.join("/")
        );
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
            Response::with_body(
                200,
                &format!(
                    "multipart/related; type=\"application/octet-stream\"; boundary={boundary}"
                ),
                body,
            )
        } else if single {
            let mut body = Body::new();
            body.push(chunk);
            let mut r = Response::with_body(200, "application/octet-stream", body);
            r.headers.push(("Content-Location".into(), location));
            r
        } else {
            Response::error(406, "bulk data is sent as application/octet-stream")
        }
    }

    /// A file ready to send as `application/dicom`: its transfer syntax and body chunks.
    fn dicom_file(
        &self,
        id: &crate::storage::FileIdentity,
    ) -> Result<(String, Vec<Chunk>), Response> {
        let file = self.files.open(id).map_err(file_error)?;
        let bytes = file.whole().map_err(file_error)?;
        match crate::dicom::transcode::for_web(&bytes) {
            Ok(crate::dicom::transcode::Output::AsStored(ts)) => {
                // Read once in pread mode; a slice of the mapping in mmap mode.
                let chunk = match bytes {
                    std::borrow::Cow::Owned(v) => Chunk::Owned(v),
                    std::borrow::Cow::Borrowed(_) => file.chunk(0, id.size).map_err(file_error)?,
                };
                Ok((ts, vec![chunk]))
            }
            Ok(crate::dicom::transcode::Output::Rewritten(v)) => Ok((
                crate::dicom::tag::ts::EXPLICIT_VR_LE.to_string(),
                vec![Chunk::Owned(v)],
            )),
            Err(e) => Err(Response::internal(format!(
                "{}: cannot read the file again: {e}",
                id.path
            ))),
        }
    }

    /// WADO-URI (PS3.18 chapter 9): `requestType=WADO` with study, series and object UIDs;
    /// `application/dicom` only (rendered images answer 406 until rendering exists).
    fn wado_uri(&self, req: &Request) -> Response {
        let mut params: Vec<(String, String)> = Vec::new();
        for pair in req.query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match (qido::decode(k), qido::decode(v)) {
                (Ok(k), Ok(v)) => params.push((k, v)),
                _ => return Response::error(400, "bad percent-encoding in the query"),
            }
        }
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if get("requestType") != Some("WADO") {
            return Response::error(400, "requestType=WADO is required");
        }
        let mut uids = Vec::new();
        for name in ["studyUID", "seriesUID", "objectUID"] {
            match get(name) {
                Some(u) if wado::is_uid(u) => uids.push(u.to_string()),
                Some(u) => {
                    return Response::error(400, &format!("{name} {u:?} is not a valid UID"));
                }
                None => return Response::error(400, &format!("{name} is required")),
            }
        }
        if let Some(denied) = self.guard_study(req, &uids[0]) {
            return denied;
        }
        if get("anonymize") == Some("yes") {
            return Response::error(406, "anonymize=yes is not supported");
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
        let instances = match self
            .index
            .instance_files(&uids[0], Some(&uids[1]), Some(&uids[2]))
        {
            Ok(v) if !v.is_empty() => v,
            Ok(_) => {
                return Response::error(
                    404,
                    &format!(
                        "no object {} in series {} of study {}",
                        uids[2], uids[1], uids[0]
                    ),
                );
            }
            Err(e) => return Response::internal(format!("index: {e}")),
        };
        let (ts, chunks) = match self.dicom_file(&instances[0].file) {
            Ok(v) => v,
            Err(r) => return r,
        };
        // Explicit VR Little Endian by default (PS3.18 9.4.1; wado/decoded.rs).
        let ask = wado::decoded::DicomAsk::Uri(get("transferSyntax"));
        let (ts, chunks) = match self.dicom_as_asked(&ask, &uids[2], ts, chunks) {
            Ok(v) => v,
            Err(r) => return r,
        };
        if let Some(wanted) = get("transferSyntax")
            && wanted != ts
        {
            return Response::error(
                406,
                &format!("the object is available in {ts}, not {wanted}"),
            );
        }
        let mut body = Body::new();
        chunks.into_iter().for_each(|c| body.push(c));
        Response::with_body(200, "application/dicom", body)
    }

    /// QIDO-RS: a JSON array of matches (an empty array when nothing matches, PS3.18 as
    /// amended by CP-2473).
    fn search(
        &self,
        req: &Request,
        base: &str,
        level: Level,
        study: Option<&str>,
        series: Option<&str>,
        filter: Vec<crate::index::search::Condition>,
    ) -> Response {
        if let Some(r) = self.require_json(req) {
            return r;
        }
        let mut q = match qido::parse(level, study, series, &req.query) {
            Ok(q) => q,
            Err((status, m)) => return Response::error(status, &m),
        };
        q.search.conditions.extend(filter);
        let mut rows = match self.index.search(&q.search) {
            Ok(r) => r,
            Err(e) => return Response::internal(format!("index: {e}")),
        };
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
        let mut resp = Response::with_body(200, "application/dicom+json", Body::from_vec(out));
        let mut warnings = Vec::new();
        if more && q.asked_limit.is_none_or(|l| l > qido::MAX_RESULTS) {
            warnings.push(format!(
                "299 sia \"The number of results exceeded the maximum supported by the server ({}). Additional results can be requested.\"",
                qido::MAX_RESULTS
            ));
        }
        if !q.ignored_fields.is_empty() {
            warnings.push(format!(
                "299 sia \"The fields {} are not supported and were not returned.\"",
                q.ignored_fields.join(",")
            ));
        }
        for w in warnings {
            resp.headers.push(("Warning".into(), w));
        }
        resp
    }

    /// Checks the token for reading `study`: `None` to go on, else the refusal. Without
    /// an authorizer (no configuration) everything is allowed.
    fn guard_study(&self, req: &Request, study: &str) -> Option<Response> {
        self.check_study(req, study).err().map(|r| r.plain())
    }

    /// The token's grant for `interaction`; `Ok(None)` without an authorizer.
    pub(crate) fn grant(
        &self,
        req: &Request,
        interaction: Interaction,
    ) -> Result<Option<Grant>, Refusal> {
        match self.auth.as_ref() {
            None => Ok(None),
            Some(auth) => auth
                .authorize(req, interaction)
                .map(Some)
                .map_err(Refusal::Denied),
        }
    }

    /// Whether the token may read `study` (its patient and granular scopes).
    pub(crate) fn check_study(&self, req: &Request, study: &str) -> Result<(), Refusal> {
        let Some(grant) = self.grant(req, Interaction::Read)? else {
            return Ok(());
        };
        if let Some(access) = &grant.backend {
            return self.check_study_backend(
                study,
                &grant.token.iss,
                access,
                grant.restrictions.as_deref(),
            );
        }
        self.check_study_for(
            study,
            &grant.token.iss,
            &grant.patient,
            grant.restrictions.as_deref(),
        )
    }

    /// Whether a grant of issuer `iss` for FHIR Patient `patient` within granular
    /// `restrictions` reaches `study` (a study not in the index passes: its route
    /// answers 404).
    pub(crate) fn check_study_for(
        &self,
        study: &str,
        iss: &str,
        patient: &str,
        restrictions: Option<&[Vec<Restriction>]>,
    ) -> Result<(), Refusal> {
        let Some((pid, issuer, modalities)) =
            self.index.study_owner(study).map_err(Refusal::internal)?
        else {
            return Ok(()); // nothing there: the route answers 404
        };
        let linked = match self.auth.as_ref().map(|a| a.patients) {
            Some(PatientPolicy::Identity) => pid == patient,
            _ => self
                .index
                .is_linked(
                    iss,
                    self.unassigned_links_serve(iss),
                    patient,
                    &pid,
                    &issuer,
                )
                .map_err(Refusal::internal)?,
        };
        if !linked {
            return Err(Refusal::Denied(Denial::patient_mismatch(format!(
                "study {study} does not belong to the token's patient"
            ))));
        }
        if !meets_restrictions(&modalities, restrictions) {
            return Err(Refusal::Denied(Denial::patient_mismatch(format!(
                "study {study} is outside the token's granular scopes"
            ))));
        }
        Ok(())
    }

    /// Whether a Backend Services grant of issuer `iss` with policy `access` reaches
    /// `study` (every study, or those of the policy's patients), within `restrictions`.
    pub(crate) fn check_study_backend(
        &self,
        study: &str,
        iss: &str,
        access: &BackendAccess,
        restrictions: Option<&[Vec<Restriction>]>,
    ) -> Result<(), Refusal> {
        match access {
            BackendAccess::AllStudies => {
                let Some((_, _, modalities)) =
                    self.index.study_owner(study).map_err(Refusal::internal)?
                else {
                    return Ok(()); // nothing there: the route answers 404
                };
                if !meets_restrictions(&modalities, restrictions) {
                    return Err(Refusal::Denied(Denial::patient_mismatch(format!(
                        "study {study} is outside the token's granular scopes"
                    ))));
                }
                Ok(())
            }
            BackendAccess::Patients(patients) => {
                for p in patients {
                    match self.check_study_for(study, iss, p, restrictions) {
                        Ok(()) => return Ok(()),
                        Err(Refusal::Denied(_)) => continue,
                        Err(other) => return Err(other),
                    }
                }
                Err(Refusal::Denied(Denial::patient_mismatch(format!(
                    "study {study} is outside the backend client's policy"
                ))))
            }
        }
    }

    /// The search conditions of a grant: its patient's studies, or for a Backend
    /// Services grant those its policy reaches; within its granular restrictions.
    pub(crate) fn conditions_of(&self, g: &Grant) -> Vec<crate::index::search::Condition> {
        use crate::index::search::Condition;
        let Some(access) = &g.backend else {
            return self.grant_conditions(
                Some(&g.token.iss),
                &g.patient,
                g.restrictions.as_deref(),
            );
        };
        // The restriction condition alone: a grant for a patient, minus its first
        // (patient) condition.
        let mut out: Vec<Condition> = self
            .grant_conditions(Some(&g.token.iss), "", g.restrictions.as_deref())
            .into_iter()
            .skip(1)
            .collect();
        if let BackendAccess::Patients(patients) = access {
            let mut sql = Vec::new();
            let mut params = Vec::new();
            for p in patients {
                if let Some(c) = self
                    .grant_conditions(Some(&g.token.iss), p, None)
                    .into_iter()
                    .next()
                {
                    sql.push(format!("({})", c.sql));
                    params.extend(c.params);
                }
            }
            out.push(Condition {
                sql: if sql.is_empty() {
                    "0 = 1".into()
                } else {
                    sql.join(" OR ")
                },
                params,
            });
        }
        out
    }

    /// The conditions that limit a search to the token's patient (and granular scopes).
    fn search_filter(
        &self,
        req: &Request,
    ) -> Result<Vec<crate::index::search::Condition>, Response> {
        match self.grant(req, Interaction::Search) {
            Ok(Some(g)) => Ok(self.conditions_of(&g)),
            Ok(None) => Ok(Vec::new()),
            Err(r) => Err(r.plain()),
        }
    }

    /// Whether links made without a token issuer serve tokens of `iss` (only while it
    /// is the one configured issuer).
    pub(crate) fn unassigned_links_serve(&self, iss: &str) -> bool {
        self.auth
            .as_ref()
            .is_some_and(|a| a.unassigned_links_serve(iss))
    }

    /// Conditions (over `st` and `p`) for the studies of FHIR Patient `patient` of token
    /// issuer `iss` (`None`: of any issuer, for the local administrator), within granular
    /// `restrictions` when there are any.
    pub(crate) fn grant_conditions(
        &self,
        iss: Option<&str>,
        patient: &str,
        restrictions: Option<&[Vec<Restriction>]>,
    ) -> Vec<crate::index::search::Condition> {
        use crate::index::search::Condition;
        use rusqlite::types::Value;
        let identity = self
            .auth
            .as_ref()
            .is_some_and(|a| a.patients == PatientPolicy::Identity);
        let mut out = vec![if identity {
            Condition {
                sql: "p.patient_id = ?".into(),
                params: vec![Value::Text(patient.to_string())],
            }
        } else {
            match iss {
                Some(iss) => {
                    let other = if self.unassigned_links_serve(iss) { "" } else { iss };
                    Condition {
                        sql: "EXISTS (SELECT 1 FROM patient_links l WHERE l.fhir_issuer IN (?, ?) AND l.fhir_patient = ? AND l.patient_id = p.patient_id AND l.issuer = p.issuer)".into(),
                        params: vec![
                            Value::Text(iss.to_string()),
                            Value::Text(other.to_string()),
                            Value::Text(patient.to_string()),
                        ],
                    }
                }
                None => Condition {
                    sql: "EXISTS (SELECT 1 FROM patient_links l WHERE l.fhir_patient = ? AND l.patient_id = p.patient_id AND l.issuer = p.issuer)".into(),
                    params: vec![Value::Text(patient.to_string())],
                },
            }
        }];
        if let Some(sets) = restrictions {
            let mut alternatives = Vec::new();
            let mut params = Vec::new();
            for set in sets {
                let mut all = Vec::new();
                for r in set {
                    match r {
                        Restriction::Modality(m) => {
                            let c = Condition::study_has_modality(vec![Value::Text(m.clone())]);
                            all.push(c.sql);
                            params.extend(c.params);
                        }
                    }
                }
                alternatives.push(format!("({})", all.join(" AND ")));
            }
            out.push(Condition {
                sql: alternatives.join(" OR "),
                params,
            });
        }
        out
    }

    /// `None` when the client accepts DICOM JSON, else the 400 or 406 to send.
    fn require_json(&self, req: &Request) -> Option<Response> {
        let accept = match accept_of(req) {
            Ok(a) => a,
            Err(r) => return Some(r),
        };
        let ok = accept.ranges.iter().any(|r| {
            r.q > 0 && (r.matches("application/dicom+json") || r.matches("application/json"))
        });
        (!ok).then(|| Response::error(406, "this resource is sent as application/dicom+json"))
    }

    /// Study, series or instance metadata: a JSON array of DICOM JSON objects, written
    /// from each file's header at request time.
    fn metadata(
        &self,
        req: &Request,
        base: &str,
        study: &str,
        series: Option<&str>,
        instance: Option<&str>,
    ) -> Response {
        if let Some(r) = self.require_json(req) {
            return r;
        }
        let listing = format!(
            "{study}/{}/{}\n{base}",
            series.unwrap_or(""),
            instance.unwrap_or("")
        );
        if let Some(jsons) = self.metadata_cache.fresh_listing(&listing, base) {
            return json_array(jsons);
        }
        let instances = match self.index.instance_files(study, series, instance) {
            Ok(v) => v,
            Err(e) => return Response::internal(format!("index: {e}")),
        };
        if instances.is_empty() {
            let what = match (series, instance) {
                (_, Some(i)) => format!("instance {i}"),
                (Some(se), None) => format!("series {se}"),
                _ => format!("study {study}"),
            };
            return Response::error(404, &format!("no {what} in the index"));
        }
        // Each instance's JSON is written from its header once and then shared from the
        // cache while its file keeps the indexed identity (see `metadata_cache`).
        let mut jsons = Vec::with_capacity(instances.len());
        // At study and series level an instance that cannot be read (malformed, changed
        // or gone since indexing) is left out and named, never failing the others.
        let mut left_out = LeftOut::new(instance.is_none());
        for inst in &instances {
            if let Some(json) = self.metadata_cache.get(&inst.file, base) {
                jsons.push(json);
                continue;
            }
            let file = match self.files.open(&inst.file) {
                Ok(f) => f,
                Err(e) => match left_out.add(&inst.sop_instance_uid, file_error(e)) {
                    Some(r) => return r,
                    None => continue,
                },
            };
            let bytes = match file.whole() {
                Ok(b) => b,
                Err(e) => match left_out.add(&inst.sop_instance_uid, file_error(e)) {
                    Some(r) => return r,
                    None => continue,
                },
            };
            let url = format!(
                "{}/studies/{}/series/{}/instances/{}",
                base, inst.study_uid, inst.series_uid, inst.sop_instance_uid
            );
            let ctx = crate::dicom::json::JsonContext { instance_url: &url };
            match crate::dicom::json::instance_json(&bytes, &ctx) {
                Ok(json) => {
                    let json: std::sync::Arc<[u8]> = json.into();
                    self.metadata_cache.put(&inst.file, base, json.clone());
                    jsons.push(json);
                }
                Err(e) => {
                    let r = Response::internal(format!(
                        "{}: cannot read the header again: {e}",
                        inst.file.path
                    ));
                    if let Some(r) = left_out.add(&inst.sop_instance_uid, r) {
                        return r;
                    }
                }
            }
        }
        if jsons.is_empty() {
            return left_out.all_failed();
        }
        if left_out.is_empty() {
            self.metadata_cache
                .put_listing(listing, instances.into_iter().map(|i| i.file).collect());
        }
        left_out.mark(json_array(jsons))
    }

    fn frames(
        &self,
        req: &Request,
        base: &str,
        study: &str,
        series: &str,
        instance: &str,
        wanted: &[u32],
    ) -> Response {
        let accept = match accept_of(req) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let loc = match self.located(study, series, instance) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let count = loc.frames.count();
        if loc.frames == FrameTable::None {
            return Response::error(404, &format!("instance {instance} has no pixel data"));
        }
        let present: Vec<u32> = wanted.iter().copied().filter(|&n| n <= count).collect();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|&&n| n > count)
            .map(u32::to_string)
            .collect();
        if present.is_empty() {
            return Response::error(
                404,
                &format!(
                    "instance {instance} has {count} frame(s); asked for {}",
                    missing.join(",")
                ),
            );
        }
        // Frames of a deflated data set are native frames once inflated.
        let native = matches!(
            loc.frames,
            FrameTable::Native { .. } | FrameTable::Deflated { .. }
        );
        let Some(rep) =
            wado::negotiate_frames(&accept, native, &loc.transfer_syntax, present.len())
        else {
            // Uncompressed frames of a compressed instance: decoded (wado/decoded.rs).
            let location = |n: u32| {
                format!("{base}/studies/{study}/series/{series}/instances/{instance}/frames/{n}")
            };
            let asked = wado::decoded::FrameRequest {
                present: &present,
                missing: &missing,
            };
            if let Some(resp) = self.decoded_frames(&accept, location, instance, &loc, asked) {
                return resp;
            }
            let offer = if native {
                "multipart/related; type=\"application/octet-stream\"".to_string()
            } else {
                format!(
                    "multipart/related; type=\"{}\"; transfer-syntax={}",
                    wado::frame_media_type(&loc.transfer_syntax),
                    loc.transfer_syntax
                )
            };
            return Response::error(
                406,
                &format!("none of the accepted media types can be sent; available: {offer}"),
            );
        };
        let file = match self.files.open(&loc.file) {
            Ok(f) => f,
            Err(e) => return file_error(e),
        };
        // A deflated data set is inflated (bounded as for retrieval) and its frames cut
        // from the inflated bytes with a native table built as at index time.
        let inflated;
        let (file, table) = match &loc.frames {
            FrameTable::Deflated { .. } => {
                let bytes = match file.whole() {
                    Ok(b) => b,
                    Err(e) => return file_error(e),
                };
                let (data, table) = match crate::dicom::inflated_frames(&bytes) {
                    Ok(v) => v,
                    Err(e) => {
                        return Response::error(
                            500,
                            &format!("{}: cannot inflate the data set: {e}", loc.file.path),
                        );
                    }
                };
                if present.iter().any(|&n| n > table.count()) {
                    return Response::error(
                        500,
                        &format!(
                            "{}: the inflated data set holds {} frame(s), the index {count}",
                            loc.file.path,
                            table.count()
                        ),
                    );
                }
                inflated = data;
                (FrameBytes::Inflated(&inflated), table)
            }
            _ => (FrameBytes::File(&file), loc.frames.clone()),
        };
        let part_type = format!(
            "{}; transfer-syntax={}",
            rep.media_type, rep.transfer_syntax
        );
        let location = |n: u32| {
            format!(
                "{}/studies/{study}/series/{series}/instances/{instance}/frames/{n}",
                base
            )
        };
        let mut resp = if rep.multipart {
            let mut mp = Multipart::new();
            for &n in &present {
                let chunks = match frame_chunks(&file, &table, n) {
                    Ok(c) => c,
                    Err(e) => return file_error(e),
                };
                mp.part(
                    &[
                        ("Content-Type", &part_type),
                        ("Content-Location", &location(n)),
                    ],
                    chunks,
                );
            }
            let (boundary, body) = mp.finish();
            let ct = format!(
                "multipart/related; type=\"{}\"; boundary={boundary}",
                rep.media_type
            );
            Response::with_body(200, &ct, body)
        } else {
            let mut body = Body::new();
            match frame_chunks(&file, &table, present[0]) {
                Ok(chunks) => chunks.into_iter().for_each(|c| body.push(c)),
                Err(e) => return file_error(e),
            }
            let mut r = Response::with_body(200, &part_type, body);
            r.headers
                .push(("Content-Location".into(), location(present[0])));
            r
        };
        if !missing.is_empty() {
            resp.status = 206;
            resp.headers.push((
                "Warning".into(),
                format!(
                    "299 sia \"frames {} do not exist; the instance has {count}\"",
                    missing.join(",")
                ),
            ));
        }
        resp
    }
}

/// The request's `Accept` fields, or the 400 to send.
fn accept_of(req: &Request) -> Result<AcceptHeader, Response> {
    AcceptHeader::parse_fields(req.header_values("accept"))
        .map_err(|e| Response::error(400, &e.to_string()))
}

impl Engine {
    /// Where `instance` is, when it is in `series` of `study`; else the 404 (or 500).
    fn located(
        &self,
        study: &str,
        series: &str,
        instance: &str,
    ) -> Result<std::sync::Arc<crate::index::InstanceLocation>, Response> {
        match self.instance_location(instance) {
            Ok(Some(l)) if l.study_uid == study && l.series_uid == series => Ok(l),
            Ok(_) => Err(Response::error(
                404,
                &format!("no instance {instance} in series {series} of study {study}"),
            )),
            Err(e) => Err(Response::internal(format!("index: {e}"))),
        }
    }
}

fn file_error(e: FileError) -> Response {
    let status = match e {
        FileError::Gone(_) | FileError::Changed(_) => 410,
        FileError::Io(_) => 500,
    };
    Response::error(status, e.client_message()).with_detail(e.detail())
}

/// Where frame bytes are read from: the file, or a deflated file's inflated data set.
pub(crate) enum FrameBytes<'a> {
    File(&'a OpenFile),
    Inflated(&'a [u8]),
}

impl FrameBytes<'_> {
    fn chunk(&self, start: u64, len: u64) -> Result<Chunk, FileError> {
        match self {
            FrameBytes::File(f) => f.chunk(start, len),
            FrameBytes::Inflated(b) => Ok(Chunk::Owned(self_range(b, start, len)?.to_vec())),
        }
    }

    fn read(&self, start: u64, len: u64) -> Result<Vec<u8>, FileError> {
        match self {
            FrameBytes::File(f) => f.read(start, len),
            FrameBytes::Inflated(b) => Ok(self_range(b, start, len)?.to_vec()),
        }
    }
}

fn self_range(b: &[u8], start: u64, len: u64) -> Result<&[u8], FileError> {
    start
        .checked_add(len)
        .and_then(|end| b.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?))
        .ok_or_else(|| FileError::Io("frame runs past the inflated data set".into()))
}

/// The bytes of frame `n` (1-based): ranges of the file where they can be sent as they
/// are, owned buffers where they must change (big-endian swap, 1-bit realignment).
pub(crate) fn frame_chunks(
    file: &FrameBytes<'_>,
    table: &FrameTable,
    n: u32,
) -> Result<Vec<Chunk>, FileError> {
    let i = u64::from(n - 1);
    match table {
        FrameTable::Native {
            offset,
            frame_bits,
            swap_unit,
            ..
        } => {
            let start_bit = i * frame_bits;
            let unit = u64::from(*swap_unit);
            if frame_bits % 8 == 0 && unit == 0 {
                return Ok(vec![file.chunk(offset + start_bit / 8, frame_bits / 8)?]);
            }
            // Read whole swap units around the frame (relative to the start of Pixel
            // Data: a frame of 8-bit samples in big-endian OW may start inside a word),
            // swap them, then cut the frame out.
            let first = start_bit / 8;
            let last = (start_bit + frame_bits).div_ceil(8);
            let (lo, hi) = if unit > 1 {
                (first - first % unit, last.div_ceil(unit) * unit)
            } else {
                (first, last)
            };
            let mut src = file.read(offset + lo, hi - lo)?;
            if unit > 1 {
                for u in src.chunks_exact_mut(unit as usize) {
                    u.reverse();
                }
            }
            let skip = (first - lo) as usize;
            if frame_bits % 8 == 0 {
                let len = (frame_bits / 8) as usize;
                src.truncate(skip + len);
                src.drain(..skip);
                return Ok(vec![Chunk::Owned(src)]);
            }
            // Bits Allocated 1: frames are not padded, so frame n may start inside a
            // byte. Shift it to start at bit 0 of its first byte (pixels fill bytes from
            // the least significant bit, PS3.5 8.1.1).
            let src = &src[skip..];
            let shift = (start_bit % 8) as u32;
            let out_len = frame_bits.div_ceil(8) as usize;
            let mut out = vec![0u8; out_len];
            for (k, byte) in out.iter_mut().enumerate() {
                let lo = src.get(k).copied().unwrap_or(0) >> shift;
                let hi = if shift == 0 {
                    0
                } else {
                    src.get(k + 1).copied().unwrap_or(0) << (8 - shift)
                };
                *byte = lo | hi;
            }
            let tail = (frame_bits % 8) as u32;
            if tail != 0 {
                out[out_len - 1] &= (1u8 << tail) - 1;
            }
            Ok(vec![Chunk::Owned(out)])
        }
        FrameTable::Encapsulated {
            fragments,
            frame_starts,
            ..
        } => {
            let (a, b) = (
                frame_starts[i as usize] as usize,
                frame_starts[i as usize + 1] as usize,
            );
            fragments[a..b]
                .iter()
                .map(|f| file.chunk(f.offset, u64::from(f.len)))
                .collect()
        }
        FrameTable::None | FrameTable::Deflated { .. } => Ok(Vec::new()),
    }
}

/// Whether a study with `modalities` meets granular `restrictions` (one set in full).
pub(crate) fn meets_restrictions(
    modalities: &[String],
    restrictions: Option<&[Vec<Restriction>]>,
) -> bool {
    restrictions.is_none_or(|sets| {
        sets.iter().any(|set| {
            set.iter().all(|r| match r {
                Restriction::Modality(m) => modalities.iter().any(|x| x == m),
            })
        })
    })
}

/// Why a request cannot go on: a token decision, or a failure inside the engine.
pub(crate) enum Refusal {
    /// 401 or 403.
    Denied(Denial),
    /// 500.
    Internal(String),
}

impl Refusal {
    fn internal(e: crate::Error) -> Refusal {
        Refusal::Internal(format!("index: {e}"))
    }

    /// As a plain-text response (DICOMweb).
    pub(crate) fn plain(&self) -> Response {
        match self {
            Refusal::Denied(d) => d.response(),
            Refusal::Internal(m) => Response::internal(m),
        }
    }

    /// As an OperationOutcome (FHIR).
    pub(crate) fn fhir(&self) -> Response {
        let mut r = self.plain();
        let (code, text) = match self {
            Refusal::Denied(d) if d.status == 401 => ("login", d.reason.as_str()),
            Refusal::Denied(d) => ("forbidden", d.reason.as_str()),
            Refusal::Internal(_) => ("exception", crate::http::INTERNAL_ERROR),
        };
        let body =
            serde_json::to_vec(&crate::fhir::operation_outcome(code, text)).unwrap_or_default();
        r.headers.retain(|(n, _)| {
            !n.eq_ignore_ascii_case("content-type") && !n.eq_ignore_ascii_case("content-length")
        });
        r.headers
            .push(("Content-Type".into(), "application/fhir+json".into()));
        r.headers
            .push(("Content-Length".into(), body.len().to_string()));
        r.body = Body::from_vec(body);
        r
    }
}

/// Instances left out of a study- or series-level answer because they cannot be read.
struct LeftOut {
    /// Whether the answer is for a study or series (else one instance: no leaving out).
    several: bool,
    /// SOP Instance UID and why, per instance left out.
    names: Vec<String>,
    /// The first failure, answered when nothing could be read.
    first: Option<Response>,
}

impl LeftOut {
    fn new(several: bool) -> LeftOut {
        LeftOut {
            several,
            names: Vec::new(),
            first: None,
        }
    }

    /// Notes that `sop` cannot be read (`failure` says why); `Some` when the request
    /// must fail with it instead (instance level).
    fn add(&mut self, sop: &str, failure: Response) -> Option<Response> {
        if !self.several {
            return Some(failure);
        }
        let why = String::from_utf8_lossy(&failure.body.to_vec())
            .trim()
            .chars()
            .map(|c| if c == '"' || c.is_control() { '\'' } else { c })
            .take(200)
            .collect::<String>();
        self.names.push(format!("{sop} ({why})"));
        self.first.get_or_insert(failure);
        None
    }

    fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The answer when no instance could be read: the first failure.
    fn all_failed(self) -> Response {
        self.first
            .unwrap_or_else(|| Response::error(500, "no instance could be read"))
    }

    /// `resp` as 206 with a `Warning` naming the instances left out (PS3.18 8.3.5.1:
    /// partial content), or as it is when none was.
    fn mark(self, mut resp: Response) -> Response {
        if self.names.is_empty() {
            return resp;
        }
        resp.status = 206;
        resp.headers.push((
            "Warning".into(),
            format!(
                "299 sia \"instances left out because they cannot be read: {}\"",
                self.names.join(", ")
            ),
        ));
        resp
    }
}

/// A DICOM JSON array of instance objects, sharing their bytes with the metadata cache.
fn json_array(instances: Vec<std::sync::Arc<[u8]>>) -> Response {
    let mut body = Body::new();
    body.push(Chunk::Static(b"["));
    for (k, json) in instances.into_iter().enumerate() {
        if k > 0 {
            body.push(Chunk::Static(b","));
        }
        body.push(Chunk::Shared(json));
    }
    body.push(Chunk::Static(b"]"));
    Response::with_body(200, "application/dicom+json", body)
}
