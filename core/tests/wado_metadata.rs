//! Metadata (DICOM JSON) through `Engine::handle`.

use sia::Engine;
use sia::Request;
use sia::internal::dicom::tag::{Encoding, Tag, Vr, tags, ts};
use sia::internal::dicom::write::DataSetWriter;

use crate::common::*;

fn json(engine: &Engine, target: &str) -> serde_json::Value {
    let resp = engine.handle(&Request::get(target));
    assert_eq!(
        resp.status,
        200,
        "{}",
        String::from_utf8_lossy(&resp.body.to_vec())
    );
    assert_eq!(resp.header("Content-Type"), Some("application/dicom+json"));
    serde_json::from_slice(&resp.body.to_vec()).unwrap()
}

/// An engine over an index of the one file `bytes`.
fn engine_of(bytes: &[u8]) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a.dcm"), bytes).unwrap();
    let engine = Engine::open(crate::common::config_in(dir.path()).build()).unwrap();
    engine.index(&[&data], &Default::default()).unwrap();
    (dir, engine)
}

#[test]
fn study_series_and_instance_metadata() {
    let (_dir, engine) = demo_engine();
    let root = sia::DEMO_UID_ROOT;
    let study = json(&engine, &format!("/dicom-web/studies/{root}.3/metadata"));
    assert_eq!(study.as_array().unwrap().len(), 24);
    let series = json(
        &engine,
        &format!("/dicom-web/studies/{root}.3/series/{root}.3.2/metadata"),
    );
    let series = series.as_array().unwrap();
    assert_eq!(series.len(), 12);
    // Ordered by Instance Number; the big-endian series reads back the same values.
    let numbers: Vec<i64> = series
        .iter()
        .map(|i| i["00200013"]["Value"][0].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=12).collect::<Vec<_>>());
    let first = &series[0];
    assert_eq!(
        first["00280010"],
        serde_json::json!({"vr": "US", "Value": [64]})
    );
    assert_eq!(
        first["00100010"]["Value"][0]["Alphabetic"],
        "Smith^John^A^Dr."
    );
    let pixels = first["7FE00010"]["BulkDataURI"].as_str().unwrap();
    assert!(
        pixels.ends_with(&format!("/instances/{root}.3.2.1/bulkdata/7FE00010")),
        "{pixels}"
    );
    // Keys are sorted and carry no group lengths or File Meta.
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    assert!(
        keys.iter()
            .all(|k| !k.starts_with("0002") && !k.ends_with("0000"))
    );

    let instance = json(
        &engine,
        &format!("/dicom-web/studies/{root}.4/series/{root}.4.2/instances/{root}.4.2.1/metadata"),
    );
    assert_eq!(
        instance[0]["00100010"]["Value"][0],
        serde_json::json!({"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎"})
    );
    assert_eq!(instance[0]["00081030"]["Value"][0], "心臓カテーテル");
}

#[test]
fn metadata_statuses() {
    let (_dir, engine) = demo_engine();
    let root = sia::DEMO_UID_ROOT;
    let target = format!("/dicom-web/studies/{root}.3/metadata");
    let resp = engine.handle(&Request::get(&target).with_header("Accept", "image/jpeg"));
    assert_eq!(resp.status, 406);
    let resp = engine.handle(&Request::get(&target).with_header("Accept", "application/json"));
    assert_eq!(resp.status, 200);
    assert_eq!(
        engine
            .handle(&Request::get("/dicom-web/studies/1.2.3/metadata"))
            .status,
        404
    );
}

#[test]
fn values_follow_ps3_18_f2() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    w.str(tags::IMAGE_TYPE, Vr::CS, "ORIGINAL\\\\AXIAL");
    identity(&mut w, SOP, "P1", "");
    w.str(Tag(0x0018, 0x0050), Vr::DS, "0.123456789012345678901");
    w.str(Tag(0x0018, 0x1020), Vr::LO, "");
    w.element(Tag(0x0020, 0x0013), Vr::IS, b"+007");
    let at: Vec<u8> = [0x0018u16, 0x1063]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    w.element(Tag(0x0028, 0x0009), Vr::AT, &at);
    w.element(Tag(0x0029, 0x0010), Vr::LO, b"ACME 1.0");
    w.element(Tag(0x0029, 0x1001), Vr::OB, &[1, 2, 3, 4]);
    w.sequence_start(Tag(0x0040, 0x0260))
        .item_start()
        .item_end()
        .sequence_end();
    let (_dir, engine) = engine_of(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes()));
    let body = engine.handle(&Request::get(&format!(
        "/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}/metadata"
    )));
    let text = String::from_utf8(body.body.to_vec()).unwrap();
    // The DS keeps all its digits (a float would not).
    assert!(
        text.contains(r#""00180050":{"vr":"DS","Value":[0.123456789012345678901]}"#),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let i = &v[0];
    assert_eq!(
        i["00080008"]["Value"],
        serde_json::json!(["ORIGINAL", null, "AXIAL"])
    );
    assert_eq!(i["00100010"], serde_json::json!({"vr": "PN"}));
    assert_eq!(i["00181020"], serde_json::json!({"vr": "LO"}));
    assert_eq!(i["00200013"]["Value"], serde_json::json!([7]));
    assert_eq!(i["00280009"]["Value"], serde_json::json!(["00181063"]));
    assert_eq!(i["00290010"]["Value"], serde_json::json!(["ACME 1.0"]));
    assert!(
        i["00291001"]["BulkDataURI"]
            .as_str()
            .unwrap()
            .ends_with("/bulkdata/00291001")
    );
    assert_eq!(
        i["00400260"],
        serde_json::json!({"vr": "SQ", "Value": [{}]})
    );
}

#[test]
fn bulkdata_uris_resolve_to_their_values() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_BE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    w.element(Tag(0x0029, 0x0010), Vr::LO, b"ACME");
    w.element(Tag(0x0029, 0x1001), Vr::OB, &[9, 8, 7, 6]);
    w.sequence_start(Tag(0x0040, 0x0260))
        .item_start()
        .item_end()
        .item_start();
    w.element(Tag(0x0066, 0x0023), Vr::OW, &[0x01, 0x02, 0x03, 0x04]);
    w.item_end().sequence_end();
    let (_dir, engine) = engine_of(&with_meta(ts::EXPLICIT_VR_BE, w.as_bytes()));
    let instance = format!("/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{SOP}");
    let meta = json(&engine, &format!("{instance}/metadata"));
    let nested = meta[0]["00400260"]["Value"][1]["00660023"]["BulkDataURI"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        nested.ends_with("/bulkdata/00400260/1/00660023"),
        "{nested}"
    );
    let get = |uri: &str| {
        let path = uri.strip_prefix("http://127.0.0.1:8080").unwrap();
        engine.handle(&Request::get(path).with_header("Accept", "application/octet-stream"))
    };
    let resp = get(&nested);
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.body.to_vec(),
        vec![0x02, 0x01, 0x04, 0x03],
        "OW swapped to little endian"
    );
    let private = meta[0]["00291001"]["BulkDataURI"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        get(&private).body.to_vec(),
        vec![9, 8, 7, 6],
        "OB unchanged"
    );
    let multipart = engine.handle(&Request::get(
        private.strip_prefix("http://127.0.0.1:8080").unwrap(),
    ));
    assert!(
        multipart
            .header("Content-Type")
            .unwrap()
            .starts_with("multipart/related; type=\"application/octet-stream\"")
    );
    assert_eq!(
        engine
            .handle(&Request::get(&format!(
                "{instance}/bulkdata/00400260/5/00660023"
            )))
            .status,
        404
    );
    assert_eq!(
        engine
            .handle(&Request::get(&format!("{instance}/bulkdata/00400260/1")))
            .status,
        400
    );
    assert_eq!(
        engine
            .handle(&Request::get(&format!("{instance}/bulkdata/zz")))
            .status,
        400
    );
}
