//! FHIR R4 resources built from the index: `ImagingStudy` (R4 DICOM mapping and the
//! Argonaut `SmartImagingStudy` profile), its WADO-RS `Endpoint`, and searchset Bundles.

pub(crate) mod api;
mod datetime;
mod resource;

pub use datetime::{fhir_date_time, instant_from_unix_ms};

use serde_json::{Value, json};

use crate::index::StudyRow;

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
    serde_json::to_value(resource::ImagingStudy::new(study, ctx)).unwrap_or(Value::Null)
}

/// The same `ImagingStudy`, serialised straight to JSON bytes (no intermediate `Value`:
/// this is the hot path of a search).
pub fn imaging_study_json(
    study: &StudyRow,
    ctx: &FhirContext,
    capability: Option<String>,
) -> Vec<u8> {
    let mut r = resource::ImagingStudy::new(study, ctx);
    if let Some(address) = capability {
        r = r.with_capability(address, ctx);
    }
    serde_json::to_vec(&r).unwrap_or_default()
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
    serde_json::from_slice(&searchset_json(studies, page, include_endpoint, ctx, &[]))
        .unwrap_or(Value::Null)
}

/// [`searchset`] as JSON bytes, written without an intermediate `Value`. With
/// `capabilities` (an address or `None` per study), each study with an address gets a
/// contained capability Endpoint instead of the shared one.
pub fn searchset_json(
    studies: &[StudyRow],
    page: &Page,
    include_endpoint: bool,
    ctx: &FhirContext,
    capabilities: &[Option<String>],
) -> Vec<u8> {
    let bundle = resource::Bundle::new(studies, page, include_endpoint, ctx, capabilities);
    serde_json::to_vec(&bundle).unwrap_or_default()
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
