//! The FHIR API under `{base}/fhir`: ImagingStudy search and read, the Endpoint,
//! `metadata` (CapabilityStatement) and `.well-known/smart-configuration`. Errors are
//! OperationOutcomes; authorization failures keep their `WWW-Authenticate`.

use rusqlite::types::Value as Sql;
use serde_json::{Value, json};

use super::{ENDPOINT_ID, Page, endpoint, operation_outcome};
use crate::Engine;
use crate::auth::Interaction;
use crate::http::{Body, Request, Response};
use crate::index::search::{Condition, MAX_LIST_VALUES};
use crate::wado::{is_uid, qido::decode};

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

fn outcome(status: u16, code: &str, text: &str) -> Response {
    json_response(status, &operation_outcome(code, text))
}

/// A 500 OperationOutcome; the index error goes to the response's detail, for the log.
fn internal(e: crate::Error) -> Response {
    outcome(500, "exception", crate::http::INTERNAL_ERROR).with_detail(format!("index: {e}"))
}

/// A date comparison prefix (FHIR search `date` parameters). The value is a FHIR date
/// (`2024`, `2024-03`, `2024-03-12`) or dateTime, compared at day precision (DICOM dates
/// have no more): it stands for the range of days it covers, so `eq2024` is any day of
/// 2024, `gt2024` after it, `le2024-03` up to the end of March.
fn date_condition(column: &str, raw: &str, is_ms: bool) -> Result<Condition, String> {
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
    let (sql, params) = if is_ms {
        // Milliseconds since the epoch: the range is [lo, hi).
        let (lo, hi) = (
            Sql::Integer(lo_day * 86_400_000),
            Sql::Integer(hi_day * 86_400_000),
        );
        match prefix {
            "eq" => (format!("{column} >= ? AND {column} < ?"), vec![lo, hi]),
            "ne" => (format!("({column} < ? OR {column} >= ?)"), vec![lo, hi]),
            "gt" | "sa" => (format!("{column} >= ?"), vec![hi]),
            "ge" => (format!("{column} >= ?"), vec![lo]),
            "lt" | "eb" => (format!("{column} < ?"), vec![lo]),
            _ => (format!("{column} < ?"), vec![hi]),
        }
    } else {
        // DICOM dates (YYYYMMDD, '' when unknown): the range is [lo, hi], inclusive;
        // an unknown date is in no range but differs from every date.
        let text = |(y, m, d): (i64, i64, i64)| Sql::Text(format!("{y:04}{m:02}{d:02}"));
        let last = civil_from_days(hi_day - 1);
        let (lo, hi) = (text(first), text(last));
        match prefix {
            "eq" => (format!("{column} >= ? AND {column} <= ?"), vec![lo, hi]),
            "ne" => (format!("({column} < ? OR {column} > ?)"), vec![lo, hi]),
            "gt" | "sa" => (format!("{column} > ?"), vec![hi]),
            "ge" => (format!("{column} >= ? AND {column} != ''"), vec![lo]),
            "lt" | "eb" => (format!("{column} < ? AND {column} != ''"), vec![lo]),
            _ => (format!("{column} <= ? AND {column} != ''"), vec![hi]),
        }
    };
    Ok(Condition { sql, params })
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

impl Engine {
    /// Answers a request under the FHIR base; `rest` is the path after it.
    pub(crate) fn fhir(&self, req: &Request, rest: &str) -> Response {
        match rest.trim_end_matches('/') {
            "metadata" => self.capability_statement(),
            ".well-known/smart-configuration" => self.smart_configuration(),
            "ImagingStudy" => self.search_studies(req),
            r if r.starts_with("ImagingStudy/") => {
                let id = &r["ImagingStudy/".len()..];
                if !is_uid(id) {
                    return outcome(404, "not-found", &format!("no ImagingStudy/{id}"));
                }
                self.read_study(req, id)
            }
            r if r == format!("Endpoint/{ENDPOINT_ID}") => {
                if let Err(r) = self.grant(req, Interaction::Read) {
                    return r.fhir();
                }
                json_response(200, &endpoint(&self.fhir))
            }
            other => outcome(404, "not-found", &format!("no FHIR resource at {other:?}")),
        }
    }

    /// A capability address for `study` when capability URLs are on and the request
    /// carries a token that may itself read (`r`) that study: the capability carries the
    /// token's issuer, patient and granular restrictions, and lives no longer than the
    /// token nor than the configured bound.
    fn capability_for(&self, req: &Request, study: &str, modalities: &[String]) -> Option<String> {
        let key = self.capabilities.as_ref()?;
        let grant = self.grant(req, Interaction::Read).ok()??;
        self.capability_of(key, &grant, study, modalities)
    }

    /// The capability address for `study` under a read `grant`, when the grant reaches
    /// the study's modalities (the caller has checked its patient).
    fn capability_of(
        &self,
        key: &crate::auth::capability::CapabilityKey,
        grant: &crate::auth::Grant,
        study: &str,
        modalities: &[String],
    ) -> Option<String> {
        // A capability carries one patient: none for a Backend Services grant.
        if grant.backend.is_some()
            || !crate::router::meets_restrictions(modalities, grant.restrictions.as_deref())
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

    fn read_study(&self, req: &Request, id: &str) -> Response {
        if let Err(r) = self.check_study(req, id) {
            return r.fhir();
        }
        let cond = Condition {
            sql: "st.study_uid = ?".into(),
            params: vec![Sql::Text(id.to_string())],
        };
        let grant = match self.grant(req, Interaction::Read) {
            Ok(g) => g,
            Err(r) => return r.fhir(),
        };
        match self.index.find_studies(&[cond], 1, 0) {
            Ok((mut rows, _)) if !rows.is_empty() => {
                if let Some(g) = grant.as_ref().filter(|g| g.backend.is_none()) {
                    rows[0].fhir_patient = Some(g.patient.clone());
                }
                Response::with_body(
                    200,
                    FHIR_JSON,
                    Body::from_vec(super::imaging_study_json(
                        &rows[0],
                        &self.fhir,
                        self.capability_for(req, id, &rows[0].modalities),
                    )),
                )
            }
            Ok(_) => outcome(404, "not-found", &format!("no ImagingStudy/{id}")),
            Err(e) => internal(e),
        }
    }

    /// The FHIR Patient id a `patient`/`subject` value names: `123`, `Patient/123`, or
    /// an absolute URL on a known FHIR base (a configured audience, or this server's).
    fn patient_id(&self, value: &str, iss: Option<&str>) -> Result<String, Response> {
        let unknown = || {
            outcome(
                403,
                "forbidden",
                &format!("{value:?} is not a patient on a FHIR base this server knows"),
            )
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
            return Err(outcome(
                400,
                "invalid",
                &format!("{value:?} is not a Patient reference"),
            ));
        }
        Ok(id.to_string())
    }

    fn search_studies(&self, req: &Request) -> Response {
        let grant = match self.grant(req, Interaction::Search) {
            Ok(g) => g,
            Err(r) => return r.fhir(),
        };
        let mut conditions: Vec<Condition> = Vec::new();
        let (mut count, mut offset) = (DEFAULT_COUNT, 0u64);
        let (mut include, mut summary_count) = (false, false);
        let mut asked_patient: Option<String> = None;
        let mut asked_identifier: Option<(String, String)> = None;
        let mut kept: Vec<(String, String)> = Vec::new();
        let pairs: Vec<&str> = req.query.split('&').filter(|p| !p.is_empty()).collect();
        if pairs.len() > MAX_PARAMETERS {
            return outcome(
                400,
                "too-costly",
                &format!("at most {MAX_PARAMETERS} search parameters are accepted"),
            );
        }
        for pair in pairs {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (Ok(key), Ok(value)) = (decode(k), decode(v)) else {
                return outcome(400, "invalid", "bad percent-encoding in the query");
            };
            // "Parameters with no value are ignored" (FHIR R4 search, 3.1.1.0).
            if value.is_empty() {
                continue;
            }
            let bad = |m: String| outcome(400, "invalid", &m);
            match key.as_str() {
                // Repeated compartment parameters must agree: `patient=bob&patient=alice`
                // is a 400, never "the last one wins".
                "patient" | "subject" => {
                    match self.patient_id(&value, grant.as_ref().map(|g| g.token.iss.as_str())) {
                        Ok(id) if asked_patient.as_ref().is_some_and(|p| *p != id) => {
                            return bad("patient/subject parameters name different patients".into());
                        }
                        Ok(id) => asked_patient = Some(id),
                        Err(r) => return r,
                    }
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
                    conditions.push(Condition {
                        sql: "p.patient_id = ? AND p.issuer = ?".into(),
                        params: vec![Sql::Text(id.into()), Sql::Text(issuer.into())],
                    });
                }
                "identifier" => {
                    let v = value.strip_prefix("urn:dicom:uid|").unwrap_or(&value);
                    let Some(uid) = v.strip_prefix("urn:oid:").filter(|u| is_uid(u)) else {
                        return bad(format!(
                            "identifier {value:?} is not urn:oid:<Study Instance UID>"
                        ));
                    };
                    conditions.push(Condition {
                        sql: "st.study_uid = ?".into(),
                        params: vec![Sql::Text(uid.into())],
                    });
                }
                "started" | "_lastUpdated" => {
                    let (column, ms) = if key == "started" {
                        ("st.date", false)
                    } else {
                        ("st.updated_ms", true)
                    };
                    match date_condition(column, &value, ms) {
                        Ok(c) => conditions.push(c),
                        Err(m) => return bad(m),
                    }
                }
                "modality" => {
                    let mut params = Vec::new();
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
                        params.push(Sql::Text(code.into()));
                    }
                    if params.len() > MAX_LIST_VALUES {
                        return bad(format!(
                            "modality lists {} codes; at most {MAX_LIST_VALUES} are accepted",
                            params.len()
                        ));
                    }
                    if !params.is_empty() {
                        conditions.push(Condition::study_has_modality(params));
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
                    return outcome(
                        400,
                        "not-supported",
                        &format!("search parameter {other:?} is not supported"),
                    );
                }
            }
            if !matches!(key.as_str(), "_count" | "_offset") {
                kept.push((key, value));
            }
        }
        // The patient compartment: a token sees its own patient's studies only, and
        // asking for another patient is refused, not answered with an empty Bundle.
        if let (Some(g), Some((pid, issuer))) = (&grant, &asked_identifier) {
            // The FHIR patients the grant is for: its one patient, or a Backend Services
            // policy's (every patient for "all").
            let patients: Vec<&str> = match &g.backend {
                None => vec![g.patient.as_str()],
                Some(crate::auth::BackendAccess::Patients(list)) => {
                    list.iter().map(String::as_str).collect()
                }
                Some(crate::auth::BackendAccess::AllStudies) => Vec::new(),
            };
            let mut linked = matches!(g.backend, Some(crate::auth::BackendAccess::AllStudies));
            for p in patients {
                linked = linked
                    || match self.auth.as_ref().map(|a| a.patients) {
                        Some(crate::auth::PatientPolicy::Identity) => pid == p,
                        _ => match self.index.is_linked(
                            &g.token.iss,
                            self.unassigned_links_serve(&g.token.iss),
                            p,
                            pid,
                            issuer,
                        ) {
                            Ok(l) => l,
                            Err(e) => return internal(e),
                        },
                    };
            }
            if !linked {
                return outcome(
                    403,
                    "forbidden",
                    "the patient identifier asked for is not the token's patient",
                );
            }
        }
        match (&grant, &asked_patient) {
            (Some(g), asked) if g.backend.is_some() => match asked {
                None => conditions.extend(self.conditions_of(g)),
                Some(p)
                    if match &g.backend {
                        Some(crate::auth::BackendAccess::Patients(list)) => list.contains(p),
                        _ => true,
                    } =>
                {
                    conditions.extend(self.grant_conditions(
                        Some(&g.token.iss),
                        p,
                        g.restrictions.as_deref(),
                    ))
                }
                Some(_) => {
                    return outcome(
                        403,
                        "forbidden",
                        "the patient asked for is outside the backend client's policy",
                    );
                }
            },
            (Some(g), Some(p)) if *p != g.patient => {
                return outcome(
                    403,
                    "forbidden",
                    "the patient asked for is not the token's patient",
                );
            }
            (Some(g), _) => conditions.extend(self.grant_conditions(
                Some(&g.token.iss),
                &g.patient,
                g.restrictions.as_deref(),
            )),
            (None, Some(p)) => conditions.extend(self.grant_conditions(None, p, None)),
            (None, None) => {}
        }
        let limit = if summary_count { 0 } else { count };
        let (mut studies, total) = match self.index.find_studies(&conditions, limit, offset) {
            Ok(r) => r,
            Err(e) => return internal(e),
        };
        // The subject is the patient the compartment was decided for (a DICOM patient
        // may be linked to several FHIR ids, and on several issuers).
        if let Some(subject) = grant
            .as_ref()
            .filter(|g| g.backend.is_none())
            .map(|g| &g.patient)
            .or(asked_patient.as_ref())
        {
            for s in &mut studies {
                s.fhir_patient = Some(subject.clone());
            }
        }
        // A capability only for a study the token could read itself (`r`, within its
        // granular scopes): a search-only token gets none.
        let capabilities: Vec<Option<String>> = match (&self.capabilities, &grant) {
            (Some(key), Some(_)) => match self.grant(req, Interaction::Read) {
                Ok(Some(read)) => studies
                    .iter()
                    .map(|s| self.capability_of(key, &read, &s.uid, &s.modalities))
                    .collect(),
                _ => Vec::new(),
            },
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
        Response::with_body(
            200,
            FHIR_JSON,
            Body::from_vec(super::searchset_json(
                &studies,
                &page,
                include,
                &self.fhir,
                &capabilities,
            )),
        )
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
