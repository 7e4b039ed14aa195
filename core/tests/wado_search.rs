//! QIDO-RS through `Engine::handle`, on the demo set.

use serde_json::Value;
use sia::Engine;
use sia::Request;

use crate::common::demo_engine;

const ROOT: &str = sia::DEMO_UID_ROOT;

fn search(engine: &Engine, target: &str) -> Vec<Value> {
    let resp = engine.handle(&Request::get(target));
    assert_eq!(
        resp.status,
        200,
        "{target}: {}",
        String::from_utf8_lossy(&resp.body.to_vec())
    );
    serde_json::from_slice::<Value>(&resp.body.to_vec())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn strings(results: &[Value], tag: &str) -> Vec<String> {
    results
        .iter()
        .map(|r| r[tag]["Value"][0].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn study_matching() {
    let (_d, e) = demo_engine();
    assert_eq!(search(&e, "/dicom-web/studies").len(), 4);
    assert_eq!(
        strings(
            &search(&e, "/dicom-web/studies?PatientID=DEMO-001"),
            "00080050"
        ),
        ["ACC1001", "ACC1002"]
    );
    assert_eq!(search(&e, "/dicom-web/studies?PatientID=DEMO-00?").len(), 4);
    assert_eq!(
        search(&e, "/dicom-web/studies?00100020=demo-001").len(),
        0,
        "PatientID is case-sensitive"
    );
    // Person names: wildcards ignore case; fuzzy matching finds any component.
    assert_eq!(search(&e, "/dicom-web/studies?PatientName=doe*").len(), 2);
    assert_eq!(
        search(&e, "/dicom-web/studies?PatientName=john&fuzzymatching=true").len(),
        1
    );
    assert_eq!(search(&e, "/dicom-web/studies?PatientName=john").len(), 0);
    // Date and time ranges.
    assert_eq!(
        strings(
            &search(&e, "/dicom-web/studies?StudyDate=20240101-20241231"),
            "00080050"
        ),
        ["ACC1001", "ACC1002"]
    );
    assert_eq!(
        search(&e, "/dicom-web/studies?StudyDate=-20231231").len(),
        1
    );
    assert_eq!(search(&e, "/dicom-web/studies?StudyDate=20250130").len(), 1);
    assert_eq!(
        strings(
            &search(&e, "/dicom-web/studies?StudyTime=0800-1100"),
            "00080050"
        ),
        ["ACC1001", "ACC1002"]
    );
    assert_eq!(search(&e, "/dicom-web/studies?StudyTime=1420").len(), 1);
    assert_eq!(
        strings(
            &search(&e, "/dicom-web/studies?ModalitiesInStudy=MR,XA"),
            "00080050"
        ),
        ["ACC2001", "ACC3001"]
    );
    assert_eq!(
        search(&e, "/dicom-web/studies?AccessionNumber=ACC2*").len(),
        1
    );
    let uids = format!("{ROOT}.1,{ROOT}.4");
    assert_eq!(
        search(&e, &format!("/dicom-web/studies?StudyInstanceUID={uids}")).len(),
        2
    );
    assert!(search(&e, "/dicom-web/studies?PatientID=nobody").is_empty());
}

#[test]
fn study_attributes_and_counts() {
    let (_d, e) = demo_engine();
    let r = &search(&e, &format!("/dicom-web/studies?StudyInstanceUID={ROOT}.3"))[0];
    assert_eq!(r["00201206"]["Value"][0], 2);
    assert_eq!(r["00201208"]["Value"][0], 24);
    assert_eq!(r["00080061"]["Value"], serde_json::json!(["MR"]));
    assert_eq!(r["00100010"]["Value"][0]["Alphabetic"], "Smith^John^A^Dr.");
    assert_eq!(
        r["00081190"]["Value"][0],
        format!("http://127.0.0.1:8080/dicom-web/studies/{ROOT}.3")
    );
    assert_eq!(r["00080201"]["Value"][0], "+0100");
    let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn series_and_instance_levels() {
    let (_d, e) = demo_engine();
    let series = search(&e, &format!("/dicom-web/studies/{ROOT}.1/series"));
    assert_eq!(strings(&series, "0008103E"), ["Axial 5mm", "Scout"]);
    assert_eq!(series[0]["00201209"]["Value"][0], 8);
    assert!(
        series[0].get("00100020").is_none(),
        "study attributes only for all-series searches"
    );
    let all = search(&e, "/dicom-web/series?Modality=US");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["00100020"]["Value"][0], "DEMO-001");
    let inst = search(
        &e,
        &format!("/dicom-web/studies/{ROOT}.2/series/{ROOT}.2.1/instances"),
    );
    assert_eq!(inst.len(), 1);
    assert_eq!(inst[0]["00280008"]["Value"][0], 20);
    assert_eq!(inst[0]["00280010"]["Value"][0], 64);
    assert_eq!(
        inst[0]["00081190"]["Value"][0],
        format!(
            "http://127.0.0.1:8080/dicom-web/studies/{ROOT}.2/series/{ROOT}.2.1/instances/{ROOT}.2.1.1"
        )
    );
    let study_instances = search(
        &e,
        &format!("/dicom-web/studies/{ROOT}.3/instances?InstanceNumber=3"),
    );
    assert_eq!(study_instances.len(), 2);
    assert_eq!(
        search(
            &e,
            "/dicom-web/instances?SOPClassUID=1.2.840.10008.5.1.4.1.1.7"
        )
        .len(),
        4
    );
}

#[test]
fn includefield_limit_offset_and_errors() {
    let (_d, e) = demo_engine();
    let r = search(
        &e,
        "/dicom-web/series?includefield=BodyPartExamined&Modality=MR",
    );
    assert_eq!(r[0]["00180015"]["Value"][0], "KNEE");
    let page1 = search(&e, "/dicom-web/instances?limit=5");
    let page2 = search(&e, "/dicom-web/instances?limit=5&offset=5");
    assert_eq!((page1.len(), page2.len()), (5, 5));
    assert_ne!(page1[0]["00080018"], page2[0]["00080018"]);
    assert_eq!(search(&e, "/dicom-web/instances?offset=38").len(), 2);
    let resp = e.handle(&Request::get("/dicom-web/studies?includefield=NoSuchThing"));
    assert!(resp.header("Warning").unwrap().contains("NoSuchThing"));
    for bad in [
        "/dicom-web/studies?Modality=CT",
        "/dicom-web/studies?StudyDate=2020-01-01",
        "/dicom-web/studies?limit=-1",
        "/dicom-web/studies?StudyInstanceUID=1.2%2Fx",
        "/dicom-web/studies?Unknown=1",
        "/dicom-web/studies?fuzzymatching=yes",
    ] {
        assert_eq!(e.handle(&Request::get(bad)).status, 400, "{bad}");
    }
    let resp =
        e.handle(&Request::get("/dicom-web/studies").with_header("Accept", "application/dicom"));
    assert_eq!(resp.status, 406);
}
