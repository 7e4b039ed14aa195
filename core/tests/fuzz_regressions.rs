//! Inputs the fuzzers found, kept as regression tests (see fuzz/README.md).

use sia::internal::dicom::FrameTable;

/// frame_table_blob: a Deflated table with a non-zero reserved byte read back, then
/// wrote different bytes. Reserved bytes are now required to be zero.
#[test]
fn frame_table_with_nonzero_reserved_bytes_is_corrupt() {
    assert!(FrameTable::from_bytes(&[3, 0, 0x5d, 0, 1, 0, 0, 0]).is_err());
    assert!(FrameTable::from_bytes(&[3, 7, 0, 0, 1, 0, 0, 0]).is_err());
    assert_eq!(
        FrameTable::from_bytes(&[3, 0, 0, 0, 1, 0, 0, 0]).unwrap(),
        FrameTable::Deflated { count: 1 }
    );
}

/// router: `ImagingStudy?patient=123\0\0\0\0ZZZZ…` answered 403 as if the patient were on an
/// unknown server; a malformed Patient reference is a 400 (and the fuzz target's status
/// list now includes the 401/403 the FHIR routes give).
#[test]
fn a_malformed_patient_reference_is_a_bad_request() {
    use sia::Engine;
    use sia::Request;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(crate::common::config_in(dir.path()).build()).unwrap();
    let req = Request::get("/fhir/ImagingStudy?patient=123%00%00%00%00ZZZZZZZZZZZZdZZZZ");
    assert_eq!(engine.handle(&req).status, 400);
    let req = Request::get("/fhir/ImagingStudy?patient=https://elsewhere.example/fhir/Patient/123");
    assert_eq!(engine.handle(&req).status, 403);
    assert_eq!(
        engine
            .handle(&Request::get("/fhir/ImagingStudy?patient=Patient/123"))
            .status,
        200
    );
}

/// dicom_json: a DS value `-143.00045100E7625` was written as a JSON number beyond any
/// double, so serde_json (like any parser reading numbers as doubles) rejected the whole
/// metadata document. Out-of-range numbers are now sent as strings, as non-numbers are.
#[test]
fn a_decimal_beyond_a_double_is_sent_as_a_string() {
    use crate::common::{SOP, identity, with_meta};
    use sia::internal::dicom::json::{JsonContext, instance_json};
    use sia::internal::dicom::tag::{Encoding, Tag, Vr, ts};
    use sia::internal::dicom::write::DataSetWriter;
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    w.str(
        Tag(0x0020, 0x0032),
        Vr::DS,
        "-72.2\\-143.00045100E7625\\1E-400",
    );
    let file = with_meta(ts::EXPLICIT_VR_LE, &w.into_bytes());
    let json = instance_json(
        &file,
        &JsonContext {
            instance_url: "http://x/i",
        },
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).expect("parses as JSON");
    assert_eq!(
        v["00200032"]["Value"],
        serde_json::json!([-72.2, "-143.00045100E7625", 0.0])
    );
}

/// router: `ImagingStudy?modality=CT,...` with many codes was a chain of ORs deeper than
/// SQLite's 1,000, so the search failed with a 500. Codes are one IN list now; lists are
/// bounded (400 past `MAX_LIST_VALUES`), and so is the number of parameters (each is a
/// condition). Looking for the same failure in QIDO found a list of only empty values
/// (`ModalitiesInStudy=,`) bound fewer values than its SQL named (500), and `Key=`
/// matching nothing instead of everything (PS3.4 C.2.2.2.3: a zero-length value is
/// universal matching); FHIR parameters with no value are now ignored, as FHIR says.
#[test]
fn long_or_empty_search_lists_are_answered_not_failed() {
    use crate::common::demo_engine;
    use sia::Request;
    use sia::internal::index::search::MAX_LIST_VALUES;
    let (_dir, engine) = demo_engine();
    let get = |target: &str| {
        let resp = engine.handle(&Request::get(target));
        let body: serde_json::Value =
            serde_json::from_slice(&resp.body.to_vec()).unwrap_or(serde_json::Value::Null);
        (resp.status, body)
    };
    let total = |target: &str| {
        let (status, body) = get(target);
        assert_eq!(status, 200, "{target}: {body}");
        body["total"].as_u64().unwrap()
    };
    let rows = |target: &str| {
        let (status, body) = get(target);
        assert_eq!(status, 200, "{target}: {body}");
        body.as_array().unwrap().len()
    };
    let ct = total("/fhir/ImagingStudy?modality=CT");
    assert!(ct > 0 && ct < 4);
    let mut codes = vec!["XX"; MAX_LIST_VALUES - 1];
    codes.push("CT");
    assert_eq!(
        total(&format!("/fhir/ImagingStudy?modality={}", codes.join(","))),
        ct
    );
    codes.push("YY");
    let (status, body) = get(&format!("/fhir/ImagingStudy?modality={}", codes.join(",")));
    assert_eq!(
        (status, body["resourceType"].as_str()),
        (400, Some("OperationOutcome"))
    );
    let repeated = |n: usize| vec!["started=ge2000-01-01"; n].join("&");
    assert_eq!(total(&format!("/fhir/ImagingStudy?{}", repeated(100))), 4);
    let (status, body) = get(&format!("/fhir/ImagingStudy?{}", repeated(101)));
    assert_eq!(
        (status, body["issue"][0]["code"].as_str()),
        (400, Some("too-costly"))
    );
    assert_eq!(total("/fhir/ImagingStudy?modality="), 4);
    assert_eq!(total("/fhir/ImagingStudy?modality=,&started="), 4);

    assert_eq!(rows("/dicom-web/studies?ModalitiesInStudy=,"), 4);
    assert_eq!(rows("/dicom-web/studies?AccessionNumber="), 4);
    assert_eq!(rows("/dicom-web/studies?StudyInstanceUID=%5C"), 4);
    assert_eq!(rows("/dicom-web/series?Modality=,"), 8);
    let uids = |n: usize| vec![format!("{}.1", sia::DEMO_UID_ROOT); n].join(",");
    assert_eq!(
        rows(&format!(
            "/dicom-web/studies?StudyInstanceUID={}",
            uids(MAX_LIST_VALUES)
        )),
        1
    );
    let (status, _) = get(&format!(
        "/dicom-web/studies?StudyInstanceUID={}",
        uids(MAX_LIST_VALUES + 1)
    ));
    assert_eq!(status, 400);
}

/// router: a QIDO `PatientName=` of 55,193 bytes became a LIKE pattern SQLite refuses
/// (over 50,000 bytes), answered 500. A single match value is now at most 1,024 bytes
/// (DICOM values are a few dozen), past which the answer is a 400.
#[test]
fn an_overlong_match_value_is_a_bad_request() {
    use crate::common::demo_engine;
    use sia::Request;
    let (_dir, engine) = demo_engine();
    let status = |target: String| engine.handle(&Request::get(&target)).status;
    for key in ["PatientName", "AccessionNumber", "StudyDescription"] {
        assert_eq!(
            status(format!("/dicom-web/studies?{key}={}", "a*".repeat(30_000))),
            400
        );
        assert_eq!(
            status(format!("/dicom-web/studies?{key}={}", "a*".repeat(512))),
            200
        );
    }
    let fuzzy = format!(
        "/dicom-web/studies?fuzzymatching=true&PatientName={}",
        "x".repeat(60_000)
    );
    assert_eq!(status(fuzzy), 400);
}

/// Probing the FHIR API for more of the router target's 500s: `_offset` near `u64::MAX`
/// overflowed computing the next page (a panic, caught as a 500). It is an empty page.
#[test]
fn an_offset_past_everything_is_an_empty_page() {
    use sia::Request;
    let (_dir, engine) = crate::common::demo_engine();
    let resp = engine.handle(&Request::get(
        "/fhir/ImagingStudy?_offset=18446744073709551615",
    ));
    assert_eq!(resp.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&resp.body.to_vec()).unwrap();
    assert_eq!(body["total"], 4);
    assert!(body.get("entry").is_none());
    let relations: Vec<&str> = body["link"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["relation"].as_str().unwrap())
        .collect();
    assert_eq!(relations, ["self", "previous"]);
}
