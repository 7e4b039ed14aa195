//! The FHIR API under `{base}/fhir`: ImagingStudy search and read, the Endpoint,
//! `metadata` (CapabilityStatement) and `.well-known/smart-configuration`. Errors are
//! OperationOutcomes; authorization failures keep their `WWW-Authenticate`.

use serde_json::{Value, json};

use super::{ENDPOINT_ID, Page, endpoint};
use crate::auth::{Access, AskedPatient, Credentials, Grant, ResourceKind};
use crate::http::{Body, Chunk, Request, Response};
use crate::index::search::{Condition, DayRange, Field, MAX_LIST_VALUES};
use crate::wado::is_uid;
use crate::{Engine, Error, Result};

const FHIR_JSON: &str = "application/fhir+json";
const DEFAULT_COUNT: u64 = 50;
const MAX_COUNT: u64 = 500;
/// Most parameters one search may carry: each becomes a condition, and SQLite limits an
/// expression's depth to 1,000.
const MAX_PARAMETERS: usize = 100;

fn json_response(status: u16, v: &Value) -> Response {
    Response::with_body(
        status,
        FHIR_JSON,
        Body::from_vec(serde_json::to_vec(v).unwrap_or_default()),
    )
}

/// The decoded parameters of a FHIR query string.
fn decode_query(query: &str) -> Result<Vec<(String, String)>> {
    crate::wado::qido::decode_query(query)
        .map_err(|_| Error::invalid("bad percent-encoding in the query"))
}

/// A date comparison prefix (FHIR search `date` parameters). The value is a FHIR date
/// (`2024`, `2024-03`, `2024-03-12`) or dateTime, compared at day precision (DICOM dates
/// have no more): it stands for the range of days it covers, so `eq2024` is any day of
/// 2024, `gt2024` after it, `le2024-03` up to the end of March.
fn date_condition(field: Field, raw: &str) -> Result<Condition, String> {
    let is_ms = field == Field::LastUpdated;
    let (prefix, value) = match raw.get(..2) {
        Some(p @ ("eq" | "ne" | "gt" | "ge" | "lt" | "le" | "sa" | "eb")) => (p, &raw[2..]),
        _ => ("eq", raw),
    };
    let not_a_date = || format!("{raw:?} is not a FHIR date");
    // YYYY, YYYY-MM or YYYY-MM-DD, then anything a dateTime adds after the day.
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (y, m, d) = {
        let date = value.get(..10.min(value.len())).ok_or_else(not_a_date)?;
        let mut parts = date.split('-');
        let y = parts.next().filter(|y| y.len() == 4 && digits(y));
        let m = parts.next();
        let d = parts.next();
        match (y, m, d) {
            (Some(y), None, None) if value.len() == 4 => (y, None, None),
            (Some(y), Some(m), None) if m.len() == 2 && digits(m) && value.len() == 7 => {
                (y, Some(m), None)
            }
            (Some(y), Some(m), Some(d))
                if m.len() == 2 && d.len() == 2 && digits(m) && digits(d) =>
            {
                (y, Some(m), Some(d))
            }
            _ => return Err(not_a_date()),
        }
    };
    let num = |s: &str| s.parse::<i64>().map_err(|_| not_a_date());
    let year = num(y)?;
    // The first day covered, and the first day after.
    let (first, hi_day) = match (m, d) {
        (None, _) => ((year, 1, 1), raw_days(year + 1, 1, 1)),
        (Some(m), None) => {
            let m = num(m)?;
            ((year, m, 1), raw_days(year, m + 1, 1))
        }
        (Some(m), Some(d)) => {
            let first = (year, num(m)?, num(d)?);
            (first, raw_days(first.0, first.1, first.2) + 1)
        }
    };
    let lo_day = days_from_civil(first.0, first.1, first.2).ok_or_else(not_a_date)?;
    let range = if is_ms {
        DayRange::Millis {
            lo: lo_day * 86_400_000,
            hi: hi_day * 86_400_000,
        }
    } else {
        let text = |(y, m, d): (i64, i64, i64)| format!("{y:04}{m:02}{d:02}");
        DayRange::DicomDate {
            first: text(first),
            last: text(civil_from_days(hi_day - 1)),
        }
    };
    Ok(Condition::day_range(field, prefix, &range))
}

/// Days since 1970-01-01 of a proleptic Gregorian date; `None` when it is not one.
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    if !(1..=12).contains(&m) || d < 1 {
        return None;
    }
    let month_len = raw_days(y, m + 1, 1) - raw_days(y, m, 1);
    (d <= month_len).then(|| raw_days(y, m, d))
}

/// The date of a day count (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Days since 1970-01-01 by the civil-calendar formula (days past a month's end roll
/// into the next month).
fn raw_days(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What a searchset is made of once the query is parsed and the grant applied.
struct SearchsetInputs<'a> {
    conditions: &'a [Condition],
    limit: u64,
    count: u64,
    offset: u64,
    include: bool,
    summary_count: bool,
    /// The parameters repeated in the paging links.
    kept: &'a [(String, String)],
    /// The FHIR Patient the compartment was decided for.
    subject: Option<&'a String>,
}

impl Engine {
    /// Answers a request under the FHIR base; `rest` is the path after it.
    pub(crate) fn fhir(&self, req: &Request, rest: &str) -> Response {
        let creds = Credentials::from_request(req);
        let answer = match rest.trim_end_matches('/') {
            "metadata" => return self.capability_statement(),
            ".well-known/smart-configuration" => return self.smart_configuration(),
            "ImagingStudy" => self
                .authorize(&creds, &Access::search(ResourceKind::ImagingStudy))
                .and_then(|grant| self.searchset_bytes(&decode_query(&req.query)?, &grant))
                .map(|shared| Body::from_chunk(Chunk::from_shared(shared))),
            r if r.starts_with("ImagingStudy/") => {
                let id = &r["ImagingStudy/".len()..];
                if !is_uid(id) {
                    return Error::not_found(format!("no ImagingStudy/{id}")).to_fhir_response();
                }
                self.authorize(&creds, &Access::study(id))
                    .and_then(|grant| self.imaging_study_bytes(id, &grant))
                    .map(Body::from_vec)
            }
            r if r == format!("Endpoint/{ENDPOINT_ID}") => {
                self.authorize(&creds, &Access::read()).map(|_| {
                    Body::from_vec(serde_json::to_vec(&endpoint(&self.fhir)).unwrap_or_default())
                })
            }
            other => Err(Error::not_found(format!("no FHIR resource at {other:?}"))),
        };
        match answer {
            Ok(body) => Response::with_body(200, FHIR_JSON, body),
            Err(e) => e.to_fhir_response(),
        }
    }

    /// FHIR read of `ImagingStudy/{id}` (FHIR R4 §3.1.0.3; SMART Imaging Access): the
    /// study with its series and the DICOMweb Endpoint reference, when `grant` reaches
    /// it (a capability URL in the Endpoint when those are enabled).
    ///
    /// # Errors
    /// `NotFound`, `Forbidden`, `Internal`.
    pub fn read_imaging_study(&self, id: &str, grant: &Grant) -> Result<Value> {
        let bytes = self.imaging_study_bytes(id, grant)?;
        serde_json::from_slice(&bytes).map_err(Error::internal)
    }

    fn imaging_study_bytes(&self, id: &str, grant: &Grant) -> Result<Vec<u8>> {
        self.require_study(grant, id)?;
        let (mut rows, _) = self.index.find_studies(&[Condition::study_is(id)], 1, 0)?;
        if rows.is_empty() {
            return Err(Error::not_found(format!("no ImagingStudy/{id}")));
        }
        let read = grant.read_grant();
        if let Some(g) = read.filter(|g| g.backend.is_none()) {
            rows[0].fhir_patient = Some(g.patient.clone());
        }
        let capability = match (&self.capabilities, read) {
            (Some(key), Some(g)) => self.capability_of(key, g, id, &rows[0].modalities),
            _ => None,
        };
        Ok(super::imaging_study_json(&rows[0], &self.fhir, capability))
    }

    /// The capability address for `study` under a read `grant`, when the grant reaches
    /// the study's modalities (the caller has checked its patient).
    fn capability_of(
        &self,
        key: &crate::auth::capability::CapabilityKey,
        grant: &crate::auth::TokenGrant,
        study: &str,
        modalities: &[String],
    ) -> Option<String> {
        // A capability carries one patient: none for a Backend Services grant.
        if grant.backend.is_some()
            || !crate::auth::meets_restrictions(modalities, grant.restrictions.as_deref())
        {
            return None;
        }
        Some(format!(
            "{}/cap/{}",
            self.fhir.dicomweb_base,
            key.issue(
                study,
                &grant.token.iss,
                &grant.patient,
                grant.restrictions.as_deref(),
                grant.token.exp
            )
        ))
    }

    /// The FHIR Patient id a `patient`/`subject` value names: `123`, `Patient/123`, or
    /// an absolute URL on a known FHIR base (a configured audience, or this server's).
    fn patient_id(&self, value: &str, iss: Option<&str>) -> Result<String> {
        let unknown = || {
            Error::forbidden(format!(
                "{value:?} is not a patient on a FHIR base this server knows"
            ))
        };
        let id = match value.rsplit_once("/Patient/") {
            // An absolute reference must be on a FHIR base this server knows: its own, or
            // one of the token issuer's (Patient ids are per issuer; without a token, any
            // configured issuer's).
            Some((base, id)) if base.contains("://") => {
                let own = base == self.fhir.fhir_base.trim_end_matches('/');
                let audience = self.auth.as_ref().is_some_and(|a| {
                    let bases = match iss {
                        Some(iss) => a.audiences_of(iss),
                        None => a.audiences(),
                    };
                    bases.iter().any(|x| x.trim_end_matches('/') == base)
                });
                if !(own || audience) {
                    return Err(unknown());
                }
                id
            }
            Some(_) => return Err(unknown()),
            None => value.strip_prefix("Patient/").unwrap_or(value),
        };
        // A FHIR id: [A-Za-z0-9\-\.]{1,64}.
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return Err(Error::invalid(format!(
                "{value:?} is not a Patient reference"
            )));
        }
        Ok(id.to_string())
    }

    /// FHIR search of ImagingStudy (FHIR R4 §3.1.1; SMART Imaging Access) with the
    /// decoded `query` parameters (`patient`, `patient.identifier`, `identifier`,
    /// `started`, `modality`, `_lastUpdated`, `_count`, `_offset`, `_include`,
    /// `_summary`): a searchset Bundle of the studies `grant` (from
    /// [`Access::search`]) reaches. Asking for another patient than the token's is
    /// refused, never answered with an empty Bundle.
    ///
    /// # Errors
    /// `InvalidInput` (bad or unsupported parameter), `TooCostly` (too many
    /// parameters), `Forbidden`, `Internal`.
    pub fn search_imaging_studies(
        &self,
        query: &[(String, String)],
        grant: &Grant,
    ) -> Result<Value> {
        let bytes = self.searchset_bytes(query, grant)?;
        serde_json::from_slice(&bytes).map_err(Error::internal)
    }

    fn searchset_bytes(
        &self,
        query: &[(String, String)],
        grant: &Grant,
    ) -> Result<std::sync::Arc<[u8]>> {
        let token = grant.search_grant()?;
        let mut conditions: Vec<Condition> = Vec::new();
        let (mut count, mut offset) = (DEFAULT_COUNT, 0u64);
        let (mut include, mut summary_count) = (false, false);
        let mut asked_patient: Option<String> = None;
        let mut asked_identifier: Option<(String, String)> = None;
        let mut kept: Vec<(String, String)> = Vec::new();
        if query.len() > MAX_PARAMETERS {
            return Err(Error::new(
                crate::ErrorKind::TooCostly,
                format!("at most {MAX_PARAMETERS} search parameters are accepted"),
            ));
        }
        for (key, value) in query {
            // "Parameters with no value are ignored" (FHIR R4 search, 3.1.1.0).
            if value.is_empty() {
                continue;
            }
            let bad = |m: String| Err(Error::invalid(m));
            match key.as_str() {
                // Repeated compartment parameters must agree: `patient=bob&patient=alice`
                // is a 400, never "the last one wins".
                "patient" | "subject" => {
                    let id = self.patient_id(value, token.map(|g| g.token.iss.as_str()))?;
                    if asked_patient.as_ref().is_some_and(|p| *p != id) {
                        return bad("patient/subject parameters name different patients".into());
                    }
                    asked_patient = Some(id);
                }
                "patient.identifier" | "subject.identifier" => {
                    let Some((system, id)) = value
                        .split_once('|')
                        .filter(|(s, v)| !s.is_empty() && !v.is_empty())
                    else {
                        return bad(format!(
                            "{key} needs system|value (a value alone is never matched)"
                        ));
                    };
                    let issuer = system.strip_prefix("urn:oid:").unwrap_or(system);
                    let named = (id.to_string(), issuer.to_string());
                    if asked_identifier.as_ref().is_some_and(|p| *p != named) {
                        return bad(format!("{key} parameters name different patients"));
                    }
                    asked_identifier = Some(named);
                    conditions.push(Condition::patient_is(id, Some(issuer)));
                }
                "identifier" => {
                    let v = value.strip_prefix("urn:dicom:uid|").unwrap_or(value);
                    let Some(uid) = v.strip_prefix("urn:oid:").filter(|u| is_uid(u)) else {
                        return bad(format!(
                            "identifier {value:?} is not urn:oid:<Study Instance UID>"
                        ));
                    };
                    conditions.push(Condition::study_is(uid));
                }
                "started" | "_lastUpdated" => {
                    let field = if key == "started" {
                        Field::StudyDate
                    } else {
                        Field::LastUpdated
                    };
                    match date_condition(field, value) {
                        Ok(c) => conditions.push(c),
                        Err(m) => return bad(m),
                    }
                }
                "modality" => {
                    let mut codes = Vec::new();
                    for one in value.split(',').filter(|v| !v.is_empty()) {
                        let code = match one.split_once('|') {
                            Some((s, c)) if s == super::DCM_SYSTEM || s.is_empty() => c,
                            Some(_) => {
                                return bad(format!(
                                    "modality {one:?}: only the DCM system is known"
                                ));
                            }
                            None => one,
                        };
                        codes.push(code.to_string());
                    }
                    if codes.len() > MAX_LIST_VALUES {
                        return bad(format!(
                            "modality lists {} codes; at most {MAX_LIST_VALUES} are accepted",
                            codes.len()
                        ));
                    }
                    if !codes.is_empty() {
                        conditions.push(Condition::study_has_modality_code(&codes));
                    }
                }
                "_count" => match value.parse::<u64>() {
                    Ok(n) => count = n.min(MAX_COUNT),
                    Err(_) => return bad(format!("_count={value:?} is not a number")),
                },
                "_offset" => match value.parse::<u64>() {
                    Ok(n) => offset = n,
                    Err(_) => return bad(format!("_offset={value:?} is not a number")),
                },
                "_include" => match value.as_str() {
                    "ImagingStudy:endpoint" | "*" => include = true,
                    _ => {
                        return bad(format!(
                            "_include={value:?} is not supported (ImagingStudy:endpoint is)"
                        ));
                    }
                },
                "_summary" => match value.as_str() {
                    "count" => summary_count = true,
                    "false" => {}
                    _ => return bad(format!("_summary={value:?} is not supported")),
                },
                "_format"
                    if matches!(
                        value.as_str(),
                        "json" | "application/fhir+json" | "application/json"
                    ) => {}
                other => {
                    return Err(Error::invalid(format!(
                        "search parameter {other:?} is not supported"
                    ))
                    .with_fhir_code("not-supported"));
                }
            }
            if !matches!(key.as_str(), "_count" | "_offset") {
                kept.push((key.clone(), value.clone()));
            }
        }
        // The patient compartment: a token sees its own patient's studies only, and
        // asking for another patient is refused, not answered with an empty Bundle.
        let asked = AskedPatient {
            reference: asked_patient.as_deref(),
            identifier: asked_identifier
                .as_ref()
                .map(|(p, i)| (p.as_str(), i.as_str())),
        };
        conditions.extend(self.fhir_search_conditions(token, asked)?);
        let limit = if summary_count { 0 } else { count };
        // Everything the answer depends on is decided by now (the compartment is in
        // `conditions`), except the index's contents and, when capability URLs are
        // issued, the read grant they are issued for and the clock.
        let subject = token
            .filter(|g| g.backend.is_none())
            .map(|g| &g.patient)
            .or(asked_patient.as_ref());
        let capabilities = match (&self.capabilities, token, grant.read_grant()) {
            (Some(key), Some(_), Some(read)) => Some((key, read)),
            _ => None,
        };
        let answer = self.search_answer(
            || {
                use crate::search_cache::{CacheKey, search_key};
                let mut head =
                    format!("fhir {limit} {count} {offset} {include} {summary_count} {subject:?}");
                let parts = kept.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]);
                let Some((key, read)) = capabilities else {
                    return Some(CacheKey::lasting(search_key(&head, parts, &conditions)));
                };
                // A capability holds the read grant's issuer, patient, restrictions and
                // expiry, and its own issue time: kept per grant, for a small part of a
                // capability's lifetime (so one served from the cache still has at
                // least 29/30 of its life left), not at all for short lifetimes.
                let window = capability_answer_window(key.max_lifetime())?;
                use std::fmt::Write;
                let _ = write!(
                    head,
                    " cap {:?} {:?} {:?} {} {}",
                    read.token.iss,
                    read.patient,
                    read.restrictions,
                    read.token.exp,
                    read.backend.is_some()
                );
                Some(CacheKey::for_at_most(
                    search_key(&head, parts, &conditions),
                    window,
                ))
            },
            || {
                let bytes = self.searchset_from_index(
                    SearchsetInputs {
                        conditions: &conditions,
                        limit,
                        count,
                        offset,
                        include,
                        summary_count,
                        kept: &kept,
                        subject,
                    },
                    token,
                    grant,
                )?;
                Ok(crate::search_cache::Answer {
                    body: std::sync::Arc::from(bytes),
                    warnings: Vec::new(),
                })
            },
        )?;
        Ok(answer.body.clone())
    }

    /// The searchset of `inputs` read from the index.
    fn searchset_from_index(
        &self,
        inputs: SearchsetInputs<'_>,
        token: Option<&crate::auth::TokenGrant>,
        grant: &Grant,
    ) -> Result<Vec<u8>> {
        let SearchsetInputs {
            conditions,
            limit,
            count,
            offset,
            include,
            summary_count,
            kept,
            subject,
        } = inputs;
        let (mut studies, total) = self.index.find_studies(conditions, limit, offset)?;
        // The subject is the patient the compartment was decided for (a DICOM patient
        // may be linked to several FHIR ids, and on several issuers).
        if let Some(subject) = subject {
            for s in &mut studies {
                s.fhir_patient = Some(subject.clone());
            }
        }
        // A capability only for a study the token could read itself (`r`, within its
        // granular scopes): a search-only token gets none.
        let capabilities: Vec<Option<String>> =
            match (&self.capabilities, token, grant.read_grant()) {
                (Some(key), Some(_), Some(read)) => studies
                    .iter()
                    .map(|s| self.capability_of(key, read, &s.uid, &s.modalities))
                    .collect(),
                _ => Vec::new(),
            };
        let query: String = kept
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::engine::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let link = |off: u64| {
            let sep = if query.is_empty() { "" } else { "&" };
            format!(
                "{}/ImagingStudy?{query}{sep}_count={count}&_offset={off}",
                self.fhir.fhir_base
            )
        };
        let page = Page {
            total,
            self_link: link(offset),
            next: (!summary_count && count > 0 && offset.saturating_add(count) < total)
                .then(|| link(offset + count)),
            previous: (!summary_count && offset > 0).then(|| link(offset.saturating_sub(count))),
        };
        Ok(super::searchset_json(
            &studies,
            &page,
            include,
            &self.fhir,
            &capabilities,
        ))
    }

    fn capability_statement(&self) -> Response {
        let params = [
            ("patient", "reference"),
            ("subject", "reference"),
            ("identifier", "token"),
            ("started", "date"),
            ("modality", "token"),
            ("_lastUpdated", "date"),
        ];
        let mut rest = json!({
            "mode": "server",
            "resource": [
                {
                    "type": "ImagingStudy",
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "searchInclude": ["ImagingStudy:endpoint"],
                    "searchParam": params.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
                },
                { "type": "Endpoint", "interaction": [{"code": "read"}] },
            ],
        });
        if self.auth.is_some() {
            rest["security"] = json!({
                "service": [{ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"
                }]}]
            });
        }
        json_response(
            200,
            &json!({
                "resourceType": "CapabilityStatement",
                "status": "active",
                "date": &super::instant_from_unix_ms(now_ms())[..10],
                "kind": "instance",
                "software": { "name": "sia", "version": env!("CARGO_PKG_VERSION") },
                "implementation": { "description": "SMART Imaging Access", "url": self.fhir.fhir_base },
                "fhirVersion": "4.0.1",
                "format": ["json"],
                "rest": [rest],
            }),
        )
    }

    fn smart_configuration(&self) -> Response {
        let mut doc = json!({
            "capabilities": [
                "smart-imaging-access",
                "http://fhir.org/argonaut/smart-imaging/capabilities/app-launch",
                "permission-patient",
                "permission-v1",
                "permission-v2",
            ],
            "associated_endpoints": [{ "url": self.fhir.dicomweb_base, "capabilities": ["smart-imaging-access"] }],
        });
        // Backend Services mode only when a policy says which client may see what.
        if self
            .auth
            .as_ref()
            .is_some_and(|a| !a.backend_clients().is_empty())
        {
            doc["capabilities"]
                .as_array_mut()
                .expect("an array")
                .push(json!(
                    "http://fhir.org/argonaut/smart-imaging/capabilities/backend-services"
                ));
            doc["scopes_supported"] = json!(["patient/ImagingStudy.rs", "system/ImagingStudy.rs"]);
        }
        json_response(200, &doc)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How long a FHIR search answer carrying capability URLs may be served from the cache:
/// a thirtieth of a capability's lifetime (`max_lifetime`, seconds), at most 10 s;
/// `None` (not kept) when that is under a second.
fn capability_answer_window(max_lifetime: i64) -> Option<std::time::Duration> {
    let seconds = (max_lifetime / 30).min(10);
    (seconds >= 1).then(|| std::time::Duration::from_secs(seconds as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_counts_round_trip() {
        assert_eq!(raw_days(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29), Some(11_016));
        assert_eq!(days_from_civil(1900, 2, 29), None);
        assert_eq!(days_from_civil(2024, 4, 31), None);
        for z in (-1_000_000..1_000_000).step_by(13) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), Some(z), "{y}-{m}-{d}");
        }
    }
}
