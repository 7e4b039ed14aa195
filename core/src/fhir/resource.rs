//! Typed, borrowing FHIR JSON: `ImagingStudy` and the searchset `Bundle`, serialised
//! straight to bytes. Field order follows the FHIR JSON order.

use serde::Serialize;

use super::{
    DCM_SYSTEM, ENDPOINT_ID, FhirContext, Page, endpoint, fhir_date_time, instant_from_unix_ms,
    is_oid, person_name_display,
};
use crate::index::{SeriesRow, StudyRow};

#[derive(Serialize)]
struct Meta {
    #[serde(rename = "lastUpdated")]
    last_updated: String,
}

#[derive(Serialize)]
struct Coding<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<&'a str>,
}

fn dcm(code: &str) -> Coding<'_> {
    Coding {
        system: Some(DCM_SYSTEM),
        code: Some(code),
        display: None,
    }
}

#[derive(Serialize)]
struct CodeableConcept<'a> {
    coding: [Coding<'a>; 1],
}

#[derive(Serialize)]
struct Identifier<'a> {
    #[serde(rename = "use")]
    use_: &'static str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<CodeableConcept<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    value: String,
}

#[derive(Serialize)]
struct Display {
    display: String,
}

#[derive(Serialize)]
struct PatientIdentifier<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assigner: Option<Display>,
    value: &'a str,
}

#[derive(Serialize)]
struct Subject<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    identifier: Option<PatientIdentifier<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display: Option<String>,
}

#[derive(Serialize)]
struct Reference {
    reference: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Instance<'a> {
    uid: &'a str,
    sop_class: OidCoding,
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<i64>,
    #[serde(skip_serializing_if = "str::is_empty")]
    title: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Series<'a> {
    uid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<i64>,
    modality: Coding<'a>,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    number_of_instances: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_site: Option<Coding<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    laterality: Option<Coding<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    instance: Vec<Instance<'a>>,
}

/// An R4 `ImagingStudy` (DICOM mapping, Argonaut `SmartImagingStudy`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ImagingStudy<'a> {
    resource_type: &'static str,
    id: &'a str,
    meta: Meta,
    identifier: Vec<Identifier<'a>>,
    status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    modality: Vec<Coding<'a>>,
    subject: Subject<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started: Option<String>,
    /// A capability Endpoint, when capability URLs are on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    contained: Vec<serde_json::Value>,
    endpoint: [Reference; 1],
    number_of_series: i64,
    number_of_instances: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    referrer: Option<Display>,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    series: Vec<Series<'a>>,
}

impl<'a> ImagingStudy<'a> {
    pub(super) fn new(study: &'a StudyRow, ctx: &FhirContext) -> ImagingStudy<'a> {
        let mut identifier = vec![Identifier {
            use_: "official",
            kind: None,
            system: Some("urn:dicom:uid".into()),
            value: format!("urn:oid:{}", study.uid),
        }];
        if !study.accession_number.is_empty() {
            identifier.push(Identifier {
                use_: "usual",
                kind: Some(CodeableConcept {
                    coding: [Coding {
                        system: Some("http://terminology.hl7.org/CodeSystem/v2-0203"),
                        code: Some("ACSN"),
                        display: None,
                    }],
                }),
                system: None,
                value: study.accession_number.clone(),
            });
        }
        let p = &study.patient;
        let identifier_of_patient = (!p.id.is_empty()).then(|| PatientIdentifier {
            // Issuer of Patient ID is free text, not a URI: an OID becomes urn:oid:, other
            // text is kept as the assigner rather than passed off as a system.
            system: is_oid(&p.issuer).then(|| format!("urn:oid:{}", p.issuer)),
            assigner: (!p.issuer.is_empty() && !is_oid(&p.issuer)).then(|| Display {
                display: p.issuer.clone(),
            }),
            value: &p.id,
        });
        let subject = Subject {
            reference: study
                .fhir_patient
                .as_ref()
                .map(|id| format!("Patient/{id}")),
            kind: "Patient",
            identifier: identifier_of_patient,
            display: (!p.name.is_empty()).then(|| person_name_display(&p.name)),
        };
        let offset = if study.timezone_offset.is_empty() {
            ""
        } else {
            study.timezone_offset.as_str()
        };
        let series = study
            .series
            .iter()
            .map(|s: &'a SeriesRow| Series {
                uid: &s.uid,
                number: s.number.filter(|n| *n >= 0),
                // R4 requires a modality on every series; an empty one is OT (Other).
                modality: dcm(if s.modality.is_empty() {
                    "OT"
                } else {
                    &s.modality
                }),
                description: &s.description,
                number_of_instances: s.num_instances,
                // A DICOM defined term, given as text rather than an invented code.
                body_site: (!s.body_part.is_empty()).then(|| Coding {
                    system: None,
                    code: None,
                    display: Some(&s.body_part),
                }),
                laterality: match s.laterality.as_str() {
                    "R" => Some(Coding {
                        system: Some("http://snomed.info/sct"),
                        code: Some("24028007"),
                        display: Some("Right"),
                    }),
                    "L" => Some(Coding {
                        system: Some("http://snomed.info/sct"),
                        code: Some("7771000"),
                        display: Some("Left"),
                    }),
                    _ => None,
                },
                started: fhir_date_time(&s.date, &s.time, offset, ctx.assumed_offset.as_deref()),
                instance: s
                    .instances
                    .iter()
                    .map(|i| Instance {
                        uid: &i.uid,
                        sop_class: OidCoding {
                            system: "urn:ietf:rfc:3986",
                            code: format!("urn:oid:{}", i.sop_class_uid),
                        },
                        number: i.number.filter(|n| *n >= 0),
                        title: &i.title,
                    })
                    .collect(),
            })
            .collect();
        ImagingStudy {
            resource_type: "ImagingStudy",
            id: &study.uid,
            meta: Meta {
                last_updated: instant_from_unix_ms(study.updated_ms),
            },
            identifier,
            status: "available",
            modality: study.modalities.iter().map(|m| dcm(m)).collect(),
            subject,
            started: fhir_date_time(
                &study.date,
                &study.time,
                &study.timezone_offset,
                ctx.assumed_offset.as_deref(),
            ),
            contained: Vec::new(),
            endpoint: [Reference {
                reference: format!("Endpoint/{ENDPOINT_ID}"),
            }],
            number_of_series: study.num_series,
            number_of_instances: study.num_instances,
            referrer: (!study.referring_physician.is_empty()).then(|| Display {
                display: person_name_display(&study.referring_physician),
            }),
            description: &study.description,
            series,
        }
    }
}

impl ImagingStudy<'_> {
    /// Points the study at a contained Endpoint whose address carries a capability
    /// (`requires-access-token` false: the address itself grants this study).
    pub(super) fn with_capability(mut self, address: String, ctx: &FhirContext) -> Self {
        let mut ep = endpoint(ctx);
        ep["id"] = serde_json::json!("wado");
        ep["address"] = serde_json::json!(address);
        ep["extension"][0]["valueBoolean"] = serde_json::json!(false);
        self.contained = vec![ep];
        self.endpoint = [Reference {
            reference: "#wado".into(),
        }];
        self
    }
}

/// A `Coding` whose code is an owned `urn:oid:` string.
#[derive(Serialize)]
struct OidCoding {
    system: &'static str,
    code: String,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EntryResource<'a> {
    Study(Box<ImagingStudy<'a>>),
    Other(serde_json::Value),
}

#[derive(Serialize)]
struct Search {
    mode: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry<'a> {
    full_url: String,
    resource: EntryResource<'a>,
    search: Search,
}

#[derive(Serialize)]
struct Link<'a> {
    relation: &'static str,
    url: &'a str,
}

/// A searchset `Bundle`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Bundle<'a> {
    resource_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    total: u64,
    link: Vec<Link<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entry: Vec<Entry<'a>>,
}

impl<'a> Bundle<'a> {
    pub(super) fn new(
        studies: &'a [StudyRow],
        page: &'a Page,
        include_endpoint: bool,
        ctx: &FhirContext,
        capabilities: &[Option<String>],
    ) -> Bundle<'a> {
        let mut entry: Vec<Entry<'a>> = studies
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let mut study = ImagingStudy::new(s, ctx);
                if let Some(Some(address)) = capabilities.get(k) {
                    study = study.with_capability(address.clone(), ctx);
                }
                Entry {
                    full_url: format!("{}/ImagingStudy/{}", ctx.fhir_base, s.uid),
                    resource: EntryResource::Study(Box::new(study)),
                    search: Search { mode: "match" },
                }
            })
            .collect();
        // Studies with a capability have their Endpoint contained; the shared one is
        // included when a study on the page has none.
        let shared = (0..studies.len()).any(|k| !matches!(capabilities.get(k), Some(Some(_))));
        if include_endpoint && shared {
            entry.push(Entry {
                full_url: format!("{}/Endpoint/{ENDPOINT_ID}", ctx.fhir_base),
                resource: EntryResource::Other(endpoint(ctx)),
                search: Search { mode: "include" },
            });
        }
        let mut link = vec![Link {
            relation: "self",
            url: &page.self_link,
        }];
        if let Some(n) = &page.next {
            link.push(Link {
                relation: "next",
                url: n,
            });
        }
        if let Some(p) = &page.previous {
            link.push(Link {
                relation: "previous",
                url: p,
            });
        }
        Bundle {
            resource_type: "Bundle",
            kind: "searchset",
            total: page.total,
            link,
            entry,
        }
    }
}
