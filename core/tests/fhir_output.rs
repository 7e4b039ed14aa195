//! ImagingStudy and Bundle content (validated against fhir.resources in tests/py).

use sia::Engine;
use sia::internal::index::StudyFilter;

#[test]
fn demo_bundle_maps_dicom_to_imaging_study() {
    let dir = tempfile::tempdir().unwrap();
    sia::write_demo(&dir.path().join("data")).unwrap();
    let engine = Engine::open(
        crate::common::config_in(dir.path())
            .base_url("https://pacs.example/")
            .build(),
    )
    .unwrap();
    let report = engine
        .index(&[dir.path().join("data")], &Default::default())
        .unwrap();
    assert_eq!(report.indexed, 40);
    let filter = StudyFilter {
        patient_id: Some("DEMO-002".into()),
        ..Default::default()
    };
    let bundle = engine.imaging_study_bundle(&filter).unwrap();
    assert_eq!(bundle["total"], 1);
    let study = &bundle["entry"][0]["resource"];
    let uid = format!("{}.3", sia::DEMO_UID_ROOT);
    assert_eq!(
        bundle["entry"][0]["fullUrl"],
        format!("https://pacs.example/fhir/ImagingStudy/{uid}")
    );
    assert_eq!(study["identifier"][0]["value"], format!("urn:oid:{uid}"));
    assert_eq!(study["identifier"][1]["type"]["coding"][0]["code"], "ACSN");
    assert_eq!(study["identifier"][1]["value"], "ACC2001");
    assert_eq!(study["started"], "2023-11-05T14:20:00+01:00");
    assert_eq!(study["numberOfSeries"], 2);
    assert_eq!(study["numberOfInstances"], 24);
    assert_eq!(study["modality"][0]["code"], "MR");
    assert_eq!(
        study["subject"]["identifier"]["system"],
        "urn:oid:2.25.228146457203842916711418316839742735.999"
    );
    assert_eq!(study["subject"]["display"], "Dr. John A Smith");
    assert_eq!(study["referrer"]["display"], "Meredith Grey");
    let series = &study["series"][0];
    assert_eq!(series["laterality"]["code"], "7771000");
    assert_eq!(series["numberOfInstances"], 12);
    assert_eq!(
        series["instance"][0]["sopClass"]["code"],
        "urn:oid:1.2.840.10008.5.1.4.1.1.4"
    );
    let endpoint = &bundle["entry"][1]["resource"];
    assert_eq!(endpoint["resourceType"], "Endpoint");
    assert_eq!(endpoint["address"], "https://pacs.example/dicom-web");
    assert_eq!(bundle["entry"][1]["search"]["mode"], "include");

    // Linking the DICOM patient to a FHIR Patient puts a reference in subject.
    engine
        .index_db()
        .link_patient(
            "123",
            "DEMO-002",
            "2.25.228146457203842916711418316839742735.999",
        )
        .unwrap();
    let bundle = engine.imaging_study_bundle(&filter).unwrap();
    assert_eq!(
        bundle["entry"][0]["resource"]["subject"]["reference"],
        "Patient/123"
    );
}

/// FHIR date parameters take partial dates (`2024`, `2024-03`) as the range of days they
/// cover, and dateTimes at day precision; the demo studies are dated 2023-11-05,
/// 2024-03-12, 2024-05-20 and 2025-01-30.
#[test]
fn date_searches_cover_partial_dates() {
    use sia::Request;
    let (_dir, engine) = crate::common::demo_engine();
    let total = |q: &str| {
        let resp = engine.handle(&Request::get(&format!("/fhir/ImagingStudy?{q}")));
        let body: serde_json::Value = serde_json::from_slice(&resp.body.to_vec()).unwrap();
        (resp.status == 200).then(|| body["total"].as_u64().unwrap())
    };
    for (q, n) in [
        ("started=2024", 2),
        ("started=eq2024-03", 1),
        ("started=2024-03-12", 1),
        ("started=2024-03-12T23:59:59%2B14:00", 1),
        ("started=ne2024", 2),
        ("started=gt2024", 1),
        ("started=sa2024-03", 2),
        ("started=ge2024-05", 2),
        ("started=lt2024", 1),
        ("started=eb2024-05-20", 2),
        ("started=le2024-03", 2),
        ("started=le2024-12-31", 3),
        ("started=ge2024&started=lt2025", 2),
        ("_lastUpdated=ge2000", 4),
        ("_lastUpdated=lt2000-06", 0),
        ("_lastUpdated=2000-02-29", 0),
    ] {
        assert_eq!(total(q), Some(n), "{q}");
    }
    for bad in [
        "2024-02-30",
        "2023-02-29",
        "2024-13",
        "2024-3",
        "20240312",
        "24",
        "2024-",
        "ge",
    ] {
        assert_eq!(total(&format!("started={bad}")), None, "{bad}");
    }
}
