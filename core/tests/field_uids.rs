//! Issue 14, kind 6: UIDs that are not DICOM UIDs. A safe identifier (such as 64
//! hexadecimal digits) is indexed, reported as non-conformant and accepted in paths by
//! the same rule (`sia::internal::dicom::is_safe_uid`); anything else stays refused.

use sia::Engine;
use sia::Request;
use sia::internal::dicom::tag::{Encoding, Vr, tags, ts};
use sia::internal::dicom::write::DataSetWriter;
use sia::internal::dicom::{is_conformant_uid, is_safe_uid};

use crate::common::*;

fn file_with_uids(study: &str, series: &str, sop: &str) -> Vec<u8> {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    w.str(tags::SOP_CLASS_UID, Vr::UI, CT)
        .str(tags::SOP_INSTANCE_UID, Vr::UI, sop)
        .str(tags::MODALITY, Vr::CS, "CT")
        .str(tags::PATIENT_NAME, Vr::PN, "Anon^Ymous")
        .str(tags::PATIENT_ID, Vr::LO, "ANON1")
        .str(tags::STUDY_INSTANCE_UID, Vr::UI, study)
        .str(tags::SERIES_INSTANCE_UID, Vr::UI, series);
    image(&mut w, 2, 2, 8, 1);
    w.native_pixel_data(Vr::OB, &[1, 2, 3, 4]);
    with_meta(ts::EXPLICIT_VR_LE, w.as_bytes())
}

fn engine_of(
    dir: &std::path::Path,
    files: &[(&str, Vec<u8>)],
) -> (Engine, sia::internal::index::IndexReport) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for (name, bytes) in files {
        std::fs::write(data.join(name), bytes).unwrap();
    }
    let engine = Engine::open(crate::common::config_in(dir).build()).unwrap();
    let report = engine.index(&[&data], &Default::default()).unwrap();
    (engine, report)
}

fn status(engine: &Engine, target: &str) -> u16 {
    engine.handle(&Request::get(target)).status
}

const HEX_STUDY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const HEX_SERIES: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";
const HEX_SOP: &str = "fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13";

#[test]
fn the_rule() {
    for ok in [
        "1.2.3",
        HEX_SOP,
        "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        "1.2.03.4",
        "1.2.840.ABC",
        "urn:x_1~2+3",
    ] {
        assert!(is_safe_uid(ok), "{ok}");
    }
    for bad in [
        "",
        ".",
        "1..2",
        "../etc",
        "a/b",
        "a\\b",
        "1.2\u{e9}",
        "1.2\u{1}",
        "1 2",
        "1,2",
        "a?b",
        "a#b",
        "a%2Fb",
        "a\"b",
        &"1".repeat(65),
    ] {
        assert!(!is_safe_uid(bad), "{bad:?}");
    }
    assert!(is_conformant_uid("1.2.3") && !is_conformant_uid(HEX_SOP));
}

#[test]
fn hexadecimal_uids_are_indexed_reported_and_served() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, report) = engine_of(
        dir.path(),
        &[("anon.dcm", file_with_uids(HEX_STUDY, HEX_SERIES, HEX_SOP))],
    );
    assert_eq!((report.indexed, report.skipped.len()), (1, 0), "{report:?}");
    let named: Vec<(&str, &str)> = report
        .nonconformant_uids
        .iter()
        .map(|u| (u.attribute.as_str(), u.uid.as_str()))
        .collect();
    assert_eq!(
        named,
        vec![
            ("SOPInstanceUID", HEX_SOP),
            ("SeriesInstanceUID", HEX_SERIES),
            ("StudyInstanceUID", HEX_STUDY)
        ]
    );
    assert!(report.nonconformant_uids[0].path.ends_with("anon.dcm"));
    let study = format!("/dicom-web/studies/{HEX_STUDY}");
    let instance = format!("{study}/series/{HEX_SERIES}/instances/{HEX_SOP}");
    for target in [
        format!("{study}/metadata"),
        format!("{instance}/metadata"),
        format!("{instance}/frames/1"),
        format!("{instance}/bulkdata/7FE00010"),
        study.clone(),
        format!("/dicom-web/studies?StudyInstanceUID={HEX_STUDY}"),
        format!("{study}/series/{HEX_SERIES}/instances"),
        format!(
            "/wado?requestType=WADO&studyUID={HEX_STUDY}&seriesUID={HEX_SERIES}&objectUID={HEX_SOP}&contentType=application/dicom"
        ),
    ] {
        assert_eq!(status(&engine, &target), 200, "{target}");
    }
    let found = engine.handle(&Request::get(&format!(
        "/dicom-web/studies?StudyInstanceUID={HEX_STUDY}"
    )));
    let found: serde_json::Value = serde_json::from_slice(&found.body.to_vec()).unwrap();
    assert_eq!(found[0]["0020000D"]["Value"][0], HEX_STUDY);
}

#[test]
fn uuid_and_leading_zero_uids_are_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, report) = engine_of(
        dir.path(),
        &[(
            "uuid.dcm",
            file_with_uids(
                "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
                "1.2.03.4",
                "2.25.ABC.1",
            ),
        )],
    );
    assert_eq!(report.indexed, 1, "{report:?}");
    assert_eq!(report.nonconformant_uids.len(), 2, "{report:?}");
    assert_eq!(
        status(
            &engine,
            "/dicom-web/studies/f81d4fae-7dec-11d0-a765-00a0c91e6bf6/series/1.2.03.4/instances/2.25.ABC.1/frames/1"
        ),
        200
    );
}

#[test]
fn a_conformant_file_reports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, report) = engine_of(dir.path(), &[("ok.dcm", explicit_le_file(1).0)]);
    assert_eq!(report.indexed, 1);
    assert!(report.nonconformant_uids.is_empty());
}

#[test]
fn unsafe_uids_are_still_refused() {
    let long = "1".repeat(65);
    for bad in [
        "../../etc/passwd",
        "1.2/3",
        "1.2\\3",
        "1..2",
        "1.2\u{e9}",
        "1.2\u{7}",
        "1 2",
        long.as_str(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_, report) = engine_of(
            dir.path(),
            &[("bad.dcm", file_with_uids(bad, "1.2", "1.3"))],
        );
        assert_eq!((report.indexed, report.skipped.len()), (0, 1), "{bad:?}");
        assert!(
            report.skipped[0].reason.contains("Study Instance UID"),
            "{:?}",
            report.skipped[0]
        );
    }
    let (_, engine) = demo_engine();
    for target in [
        "/dicom-web/studies/a%5Cb",
        "/dicom-web/studies/1..2/metadata",
        "/dicom-web/studies/1.2%2F..%2Fetc",
        "/dicom-web/studies/..",
        "/dicom-web/studies/1,2",
        "/dicom-web/studies?StudyInstanceUID=..%2Fetc",
        "/dicom-web/studies?StudyInstanceUID=1%202",
        "/wado?requestType=WADO&studyUID=..%2Fx&seriesUID=1&objectUID=2&contentType=application/dicom",
    ] {
        assert_eq!(status(&engine, target), 400, "{target}");
    }
    let long_path = format!("/dicom-web/studies/{long}");
    assert_eq!(status(&engine, &long_path), 400);
}
