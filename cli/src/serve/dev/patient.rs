//! The development EHR's FHIR `Patient` server, built from the indexed DICOM
//! demographics. The FHIR id is the DICOM Patient ID (the `identity` policy), the
//! identifier carries the Issuer of Patient ID as its system (type `MR`), and every
//! request needs one of this EHR's tokens whose scopes reach `Patient` — in the
//! patient compartment, only the token's patient.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use sia::internal::auth::scope::Context;
use sia::internal::auth::{Interaction, ScopeSet, VerifiedToken};
use sia::internal::index::PatientRow;

use super::{DevEhr, fhir_response};

fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    let mut r = fhir_response(status, &sia::internal::fhir::operation_outcome(code, text));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sia dev EHR\", error=\"invalid_token\""),
        );
    }
    r
}

/// `outcome` with its own `WWW-Authenticate` challenge (RFC 6750 §3): none of the error
/// codes when the request had no token at all, `insufficient_scope` for scopes.
fn challenged(status: StatusCode, code: &str, text: &str, challenge: &'static str) -> Response {
    let mut r = outcome(status, code, text);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}

/// Who may see which patients: `Ok(None)` any, `Ok(Some(id))` only that one.
#[allow(clippy::result_large_err)] // a Response is the natural error of a handler step
fn access(
    ehr: &DevEhr,
    headers: &HeaderMap,
    interaction: Interaction,
) -> Result<Option<String>, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string())
        .ok_or_else(|| {
            challenged(
                StatusCode::UNAUTHORIZED,
                "login",
                "a bearer token is required",
                "Bearer realm=\"sia dev EHR\"",
            )
        })?;
    let token: VerifiedToken = ehr
        .verify_token(&bearer)
        .map_err(|reason| outcome(StatusCode::UNAUTHORIZED, "login", &reason))?;
    if token.iss != ehr.fhir_base {
        return Err(outcome(
            StatusCode::UNAUTHORIZED,
            "login",
            "the token is not from this EHR",
        ));
    }
    let scopes = ScopeSet::parse(&token.scope);
    let covering: Vec<_> = scopes
        .scopes
        .iter()
        .filter(|s| s.covers("Patient", interaction))
        .collect();
    if covering.is_empty() {
        return Err(challenged(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token's scopes do not reach Patient",
            "Bearer realm=\"sia dev EHR\", error=\"insufficient_scope\"",
        ));
    }
    if covering.iter().any(|s| s.context != Context::Patient) {
        return Ok(None);
    }
    match token.patient.filter(|p| !p.is_empty()) {
        Some(p) => Ok(Some(p)),
        None => Err(outcome(
            StatusCode::FORBIDDEN,
            "forbidden",
            "patient scopes need a patient in the token's context",
        )),
    }
}

/// A FHIR `Patient` from an indexed DICOM patient (PS3.3 C.7.1.1 → FHIR R4 Patient).
pub fn patient_resource(row: &PatientRow) -> Value {
    let p = &row.patient;
    let mut identifier = json!({
        "use": "usual",
        "type": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
            "code": "MR"
        }]},
        "value": p.id,
    });
    if !p.issuer.is_empty() {
        identifier["system"] = json!(p.issuer);
    }
    let mut r = json!({
        "resourceType": "Patient",
        "id": p.id,
        "identifier": [identifier],
        "active": true,
    });
    if let Some(name) = human_name(&p.name) {
        r["name"] = json!([name]);
    }
    r["gender"] = json!(match p.sex.trim() {
        "M" => "male",
        "F" => "female",
        "O" => "other",
        _ => "unknown",
    });
    if let Some(d) = fhir_date(&p.birth_date) {
        r["birthDate"] = json!(d);
    }
    r
}

/// PN `Family^Given^Middle^Prefix^Suffix` (alphabetic group) as a HumanName.
fn human_name(pn: &str) -> Option<Value> {
    let alphabetic = pn.split('=').next().unwrap_or("");
    let parts: Vec<&str> = alphabetic.split('^').map(str::trim).collect();
    let part = |i: usize| parts.get(i).copied().filter(|s| !s.is_empty());
    let mut name = json!({ "use": "official" });
    if let Some(f) = part(0) {
        name["family"] = json!(f);
    }
    let given: Vec<&str> = [part(1), part(2)].into_iter().flatten().collect();
    if !given.is_empty() {
        name["given"] = json!(given);
    }
    if let Some(p) = part(3) {
        name["prefix"] = json!([p]);
    }
    if let Some(s) = part(4) {
        name["suffix"] = json!([s]);
    }
    let text = sia::internal::fhir::person_name_display(pn);
    if text.is_empty() {
        return None;
    }
    name["text"] = json!(text);
    Some(name)
}

/// DICOM DA `YYYYMMDD` as a FHIR date, when it is one.
fn fhir_date(da: &str) -> Option<String> {
    let d = da.trim();
    if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (y, m, day) = (&d[..4], &d[4..6], &d[6..]);
    let (mi, di): (u32, u32) = (m.parse().ok()?, day.parse().ok()?);
    ((1..=12).contains(&mi) && (1..=31).contains(&di)).then(|| format!("{y}-{m}-{day}"))
}

/// `GET /dev/fhir/Patient/{id}`.
pub async fn read(
    State(ehr): State<Arc<DevEhr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let only = match access(&ehr, &headers, Interaction::Read) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if only.as_deref().is_some_and(|p| p != id) {
        return outcome(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token's patient is another patient",
        );
    }
    match ehr.engine.index_db().patients_with_id(&id, None) {
        Ok(rows) => match rows.first() {
            Some(row) => fhir_response(StatusCode::OK, &patient_resource(row)),
            None => outcome(
                StatusCode::NOT_FOUND,
                "not-found",
                &format!("no Patient/{id}"),
            ),
        },
        Err(_) => outcome(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "the index could not be read",
        ),
    }
}

/// `GET /dev/fhir/Patient?identifier=[system|]value` or `?_id=`: a searchset Bundle,
/// limited to the token's patient in the patient compartment.
pub async fn search(
    State(ehr): State<Arc<DevEhr>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let only = match access(&ehr, &headers, Interaction::Search) {
        Ok(o) => o,
        Err(r) => return r,
    };
    for k in q.keys() {
        if !matches!(k.as_str(), "identifier" | "_id" | "_format") {
            return outcome(
                StatusCode::BAD_REQUEST,
                "not-supported",
                &format!("search parameter {k:?} is not supported"),
            );
        }
    }
    let (id, issuer) = match (q.get("_id"), q.get("identifier")) {
        (Some(id), None) => (id.clone(), None),
        (None, Some(ident)) => match ident.split_once('|') {
            Some((system, value)) => (
                value.to_string(),
                (!system.is_empty()).then(|| system.to_string()),
            ),
            None => (ident.clone(), None),
        },
        (None, None) => match &only {
            Some(p) => (p.clone(), None),
            None => {
                return outcome(
                    StatusCode::BAD_REQUEST,
                    "too-costly",
                    "give _id or identifier",
                );
            }
        },
        (Some(_), Some(_)) => {
            return outcome(
                StatusCode::BAD_REQUEST,
                "invalid",
                "give _id or identifier, not both",
            );
        }
    };
    let rows = match ehr
        .engine
        .index_db()
        .patients_with_id(&id, issuer.as_deref())
    {
        Ok(r) => r,
        Err(_) => {
            return outcome(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "the index could not be read",
            );
        }
    };
    let visible: Vec<&PatientRow> = rows
        .iter()
        .filter(|r| only.as_deref().is_none_or(|p| p == r.patient.id))
        .collect();
    let entries: Vec<Value> = visible
        .iter()
        .map(|r| {
            json!({
                "fullUrl": format!("{}/Patient/{}", ehr.fhir_base, r.patient.id),
                "resource": patient_resource(r),
                "search": { "mode": "match" }
            })
        })
        .collect();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "link": [{ "relation": "self", "url": format!("{}/Patient", ehr.fhir_base) }],
        "entry": entries,
    });
    fhir_response(StatusCode::OK, &bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_demographics_become_fhir() {
        assert_eq!(fhir_date("19700102"), Some("1970-01-02".into()));
        assert_eq!(fhir_date("1970"), None);
        assert_eq!(fhir_date("19701302"), None);
        let n = human_name("Doe^Jane^Q^Dr^III").unwrap();
        assert_eq!(n["family"], "Doe");
        assert_eq!(n["given"], json!(["Jane", "Q"]));
        assert_eq!(n["prefix"], json!(["Dr"]));
        assert_eq!(n["suffix"], json!(["III"]));
        assert!(human_name("").is_none());
    }
}
