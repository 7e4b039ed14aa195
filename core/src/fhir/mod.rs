//! FHIR R4 resources built from the index: `ImagingStudy` (R4 DICOM mapping and the
//! Argonaut `SmartImagingStudy` profile), its WADO-RS `Endpoint`, and searchset Bundles.

pub(crate) mod api;
mod datetime;

pub use datetime::{fhir_date_time, instant_from_unix_ms};

use serde_json::{Map, Value, json};

use crate::index::{SeriesRow, StudyRow};

/// DICOM Controlled Terminology, the code system of modalities.
pub const DCM_SYSTEM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// Code system of Endpoint.connectionType.
pub const CONNECTION_TYPE_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/endpoint-connection-type";
/// The SMART extension that says the endpoint needs the bearer token on every request.
pub const REQUIRES_ACCESS_TOKEN: &str =
    "http://hl7.org/fhir/smart-app-launch/StructureDefinition/requires-access-token";
/// The id of the one Endpoint resource, the DICOMweb WADO-RS base.
pub const ENDPOINT_ID: &str = "dicom-wado-rs";

/// Where the resources point, and how times without a zone are read.
#[derive(Clone, Debug)]
pub struct FhirContext {
    /// The FHIR base (`{base_url}/fhir`), for `fullUrl` and links.
    pub fhir_base: String,
    /// The DICOMweb base (`{base_url}/dicom-web`), the Endpoint address.
    pub dicomweb_base: String,
    /// UTC offset (`+01:00`) assumed for Study/Series Time when the file has no
    /// Timezone Offset From UTC; `None` gives the date alone, since FHIR requires a zone
    /// with any time and guessing one would be wrong by hours.
    pub assumed_offset: Option<String>,
}

impl FhirContext {
    /// Context for a server at `base_url` (no trailing slash needed).
    pub fn for_base_url(base_url: &str) -> FhirContext {
        let base = base_url.trim_end_matches('/');
        FhirContext {
            fhir_base: format!("{base}/fhir"),
            dicomweb_base: format!("{base}/dicom-web"),
            assumed_offset: None,
        }
    }
}

/// The WADO-RS Endpoint every ImagingStudy references (Argonaut `SmartWadoEndpoint`).
pub fn endpoint(ctx: &FhirContext) -> Value {
    json!({
        "resourceType": "Endpoint",
        "id": ENDPOINT_ID,
        "extension": [{ "url": REQUIRES_ACCESS_TOKEN, "valueBoolean": true }],
        "status": "active",
        "connectionType": { "system": CONNECTION_TYPE_SYSTEM, "code": "dicom-wado-rs" },
        "name": "DICOMweb WADO-RS",
        "payloadType": [{
            "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type", "code": "any" }]
        }],
        "payloadMimeType": ["application/dicom"],
        "address": ctx.dicomweb_base,
    })
}

/// An `ImagingStudy` for one indexed study.
pub fn imaging_study(study: &StudyRow, ctx: &FhirContext) -> Value {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("ImagingStudy"));
    r.insert("id".into(), json!(study.uid));
    r.insert(
        "meta".into(),
        json!({ "lastUpdated": instant_from_unix_ms(study.updated_ms) }),
    );
    let mut identifiers = vec![
        json!({ "use": "official", "system": "urn:dicom:uid", "value": format!("urn:oid:{}", study.uid) }),
    ];
    if !study.accession_number.is_empty() {
        identifiers.push(json!({
            "use": "usual",
            "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN" }] },
            "value": study.accession_number,
        }));
    }
    r.insert("identifier".into(), Value::Array(identifiers));
    r.insert("status".into(), json!("available"));
    if !study.modalities.is_empty() {
        r.insert(
            "modality".into(),
            Value::Array(study.modalities.iter().map(|m| modality(m)).collect()),
        );
    }
    r.insert("subject".into(), subject(study));
    if let Some(started) = fhir_date_time(
        &study.date,
        &study.time,
        &study.timezone_offset,
        ctx.assumed_offset.as_deref(),
    ) {
        r.insert("started".into(), json!(started));
    }
    r.insert(
        "endpoint".into(),
        json!([{ "reference": format!("Endpoint/{ENDPOINT_ID}") }]),
    );
    r.insert("numberOfSeries".into(), json!(study.num_series));
    r.insert("numberOfInstances".into(), json!(study.num_instances));
    if !study.referring_physician.is_empty() {
        r.insert(
            "referrer".into(),
            json!({ "display": person_name_display(&study.referring_physician) }),
        );
    }
    if !study.description.is_empty() {
        r.insert("description".into(), json!(study.description));
    }
    let series: Vec<Value> = study
        .series
        .iter()
        .map(|s| series_json(s, study, ctx))
        .collect();
    if !series.is_empty() {
        r.insert("series".into(), Value::Array(series));
    }
    Value::Object(r)
}

fn modality(code: &str) -> Value {
    json!({ "system": DCM_SYSTEM, "code": code })
}

fn subject(study: &StudyRow) -> Value {
    let p = &study.patient;
    let mut s = Map::new();
    if let Some(id) = &study.fhir_patient {
        s.insert("reference".into(), json!(format!("Patient/{id}")));
    }
    s.insert("type".into(), json!("Patient"));
    if !p.id.is_empty() {
        let mut ident = Map::new();
        if is_oid(&p.issuer) {
            ident.insert("system".into(), json!(format!("urn:oid:{}", p.issuer)));
        } else if !p.issuer.is_empty() {
            // Issuer of Patient ID is free text, not a URI: keep it as the assigner.
            ident.insert("assigner".into(), json!({ "display": p.issuer }));
        }
        ident.insert("value".into(), json!(p.id));
        s.insert("identifier".into(), Value::Object(ident));
    }
    if !p.name.is_empty() {
        s.insert("display".into(), json!(person_name_display(&p.name)));
    }
    Value::Object(s)
}

fn series_json(s: &SeriesRow, study: &StudyRow, ctx: &FhirContext) -> Value {
    let mut r = Map::new();
    r.insert("uid".into(), json!(s.uid));
    if let Some(n) = s.number.filter(|n| *n >= 0) {
        r.insert("number".into(), json!(n));
    }
    // R4 requires a modality on every series; an empty DICOM Modality gets OT (Other).
    r.insert(
        "modality".into(),
        modality(if s.modality.is_empty() {
            "OT"
        } else {
            &s.modality
        }),
    );
    if !s.description.is_empty() {
        r.insert("description".into(), json!(s.description));
    }
    r.insert("numberOfInstances".into(), json!(s.num_instances));
    if !s.body_part.is_empty() {
        // Body Part Examined is a DICOM defined term; without a vetted SNOMED map it is
        // given as text rather than as an invented code.
        r.insert("bodySite".into(), json!({ "display": s.body_part }));
    }
    let laterality = match s.laterality.as_str() {
        "R" => Some(("24028007", "Right")),
        "L" => Some(("7771000", "Left")),
        _ => None,
    };
    if let Some((code, display)) = laterality {
        r.insert(
            "laterality".into(),
            json!({ "system": "http://snomed.info/sct", "code": code, "display": display }),
        );
    }
    let offset = if study.timezone_offset.is_empty() {
        None
    } else {
        Some(study.timezone_offset.as_str())
    };
    if let Some(started) = fhir_date_time(
        &s.date,
        &s.time,
        offset.unwrap_or(""),
        ctx.assumed_offset.as_deref(),
    ) {
        r.insert("started".into(), json!(started));
    }
    let instances: Vec<Value> = s
        .instances
        .iter()
        .map(|i| {
            let mut o = Map::new();
            o.insert("uid".into(), json!(i.uid));
            o.insert("sopClass".into(), json!({ "system": "urn:ietf:rfc:3986", "code": format!("urn:oid:{}", i.sop_class_uid) }));
            if let Some(n) = i.number.filter(|n| *n >= 0) {
                o.insert("number".into(), json!(n));
            }
            if !i.title.is_empty() {
                o.insert("title".into(), json!(i.title));
            }
            Value::Object(o)
        })
        .collect();
    if !instances.is_empty() {
        r.insert("instance".into(), Value::Array(instances));
    }
    Value::Object(r)
}

/// `Family^Given^Middle^Prefix^Suffix` (first component group) as "Prefix Given Middle
/// Family Suffix".
pub fn person_name_display(pn: &str) -> String {
    let alphabetic = pn.split('=').find(|g| !g.is_empty()).unwrap_or("");
    let parts: Vec<&str> = alphabetic.split('^').map(str::trim).collect();
    let get = |i: usize| parts.get(i).copied().unwrap_or("");
    [get(3), get(1), get(2), get(0), get(4)]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_oid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && (c == "0" || !c.starts_with('0'))
        })
}

/// A searchset Bundle of ImagingStudy resources; `include_endpoint` adds the Endpoint
/// as an `include` entry (what `_include=ImagingStudy:endpoint` asks for).
pub fn searchset(
    studies: &[StudyRow],
    page: &Page,
    include_endpoint: bool,
    ctx: &FhirContext,
) -> Value {
    let mut entries: Vec<Value> = studies
        .iter()
        .map(|s| {
            json!({
                "fullUrl": format!("{}/ImagingStudy/{}", ctx.fhir_base, s.uid),
                "resource": imaging_study(s, ctx),
                "search": { "mode": "match" },
            })
        })
        .collect();
    if include_endpoint && !studies.is_empty() {
        entries.push(json!({
            "fullUrl": format!("{}/Endpoint/{ENDPOINT_ID}", ctx.fhir_base),
            "resource": endpoint(ctx),
            "search": { "mode": "include" },
        }));
    }
    let mut links = vec![json!({ "relation": "self", "url": page.self_link })];
    if let Some(next) = &page.next {
        links.push(json!({ "relation": "next", "url": next }));
    }
    if let Some(prev) = &page.previous {
        links.push(json!({ "relation": "previous", "url": prev }));
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": page.total,
        "link": links,
    });
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

/// Where a searchset page sits in the whole result.
#[derive(Clone, Debug, Default)]
pub struct Page {
    /// All matches, not just this page's.
    pub total: u64,
    /// This page.
    pub self_link: String,
    /// The next page, if any.
    pub next: Option<String>,
    /// The previous page, if any.
    pub previous: Option<String>,
}

/// An `OperationOutcome` with one issue.
pub fn operation_outcome(code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": diagnostics }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_names() {
        assert_eq!(
            person_name_display("Doe^John^Q^Dr.^Jr"),
            "Dr. John Q Doe Jr"
        );
        assert_eq!(
            person_name_display("Yamada^Tarou=山田^太郎"),
            "Tarou Yamada"
        );
        assert_eq!(person_name_display("=山田^太郎"), "太郎 山田");
        assert_eq!(person_name_display(""), "");
    }

    #[test]
    fn oids() {
        assert!(is_oid("1.2.840.10008"));
        assert!(!is_oid("1.02.3"));
        assert!(!is_oid("HOSPITAL_A"));
        assert!(!is_oid(""));
    }
}
