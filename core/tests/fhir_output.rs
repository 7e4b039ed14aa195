//! ImagingStudy and Bundle content (validated against fhir.resources in tests/py).

use sia::index::StudyFilter;
use sia::{Config, Engine};

#[test]
fn demo_bundle_maps_dicom_to_imaging_study() {
    let dir = tempfile::tempdir().unwrap();
    sia::demo::write_demo(&dir.path().join("data")).unwrap();
    let engine = Engine::open(Config {
        db: dir.path().join("i.db"),
        base_url: "https://pacs.example/".into(),
        ..Config::default()
    })
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
    let uid = format!("{}.3", sia::demo::DEMO_UID_ROOT);
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
