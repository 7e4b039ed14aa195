//! Issue 14, kind 3: one set of structural rules for every reader (a stray delimiter
//! inside a defined-length sequence read as pydicom reads it), and an instance that
//! cannot be read never failing the rest of its study or series.

use serde_json::{Value, json};
use sia::Engine;
use sia::internal::dicom::json::{JsonContext, instance_json};
use sia::internal::dicom::tag::{Encoding, Tag, Vr, tags, ts};
use sia::internal::dicom::transcode::{Output, for_web};
use sia::internal::dicom::write::DataSetWriter;
use sia::{Request, Response};

use crate::common::*;

const SQ: Tag = Tag(0x2001, 0x105F);

/// The file: private sequence (2001,105F) of defined length holding one item
/// {(2001,1060) SH "ABCD"} and then a Sequence Delimitation Item of length 0; normal
/// elements after it. `extra` adds an OB (2001,1062) to the item.
fn stray_delimiter_file(enc: Encoding, sop: &str, extra: bool) -> Vec<u8> {
    let mut w = DataSetWriter::new(enc);
    identity(&mut w, sop, "P1", "Doe^Jane");
    let mut item = DataSetWriter::new(enc);
    item.str(Tag(0x2001, 0x1060), Vr::SH, "ABCD");
    if extra {
        item.element(Tag(0x2001, 0x1062), Vr::OB, &[9, 8, 7, 6]);
    }
    let item = item.into_bytes();
    w.str(Tag(0x2001, 0x0010), Vr::LO, "SIA TEST")
        .header(SQ, Vr::SQ, (8 + item.len() + 8) as u32)
        .header(tags::ITEM, Vr::UN, item.len() as u32)
        .raw(&item)
        .header(tags::SEQUENCE_DELIMITATION, Vr::UN, 0)
        .str(Tag(0x2001, 0x1061), Vr::SH, "AFTER");
    image(&mut w, 2, 2, 8, 1);
    w.native_pixel_data(Vr::OB, &[1, 2, 3, 4]);
    let ts_uid = if enc.big_endian {
        ts::EXPLICIT_VR_BE
    } else {
        ts::EXPLICIT_VR_LE
    };
    let mut out = sia::internal::dicom::write::file_meta(CT, sop, ts_uid);
    out.extend_from_slice(w.as_bytes());
    out
}

fn engine_of(dir: &std::path::Path, files: &[(&str, Vec<u8>)]) -> Engine {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for (name, bytes) in files {
        std::fs::write(data.join(name), bytes).unwrap();
    }
    let engine = Engine::open(crate::common::config_in(dir).build()).unwrap();
    let r = engine.index(&[&data], &Default::default()).unwrap();
    assert_eq!(r.indexed, files.len() as u64, "{r:?}");
    engine
}

fn get(engine: &Engine, target: &str) -> Response {
    engine.handle(&Request::get(target))
}

fn json_of(resp: &Response) -> Value {
    serde_json::from_slice(&resp.body.to_vec()).unwrap()
}

fn instance_url(sop: &str) -> String {
    format!("/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{sop}")
}

#[test]
fn stray_sequence_delimiter_in_a_defined_length_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_of(
        dir.path(),
        &[(
            "a.dcm",
            stray_delimiter_file(Encoding::EXPLICIT_LE, SOP, false),
        )],
    );
    for target in [
        format!("{}/metadata", instance_url(SOP)),
        format!("/dicom-web/studies/{STUDY}/metadata"),
        format!("/dicom-web/studies/{STUDY}/series/{SERIES}/metadata"),
    ] {
        let resp = get(&engine, &target);
        assert_eq!(resp.status, 200, "{target}");
        let meta = json_of(&resp);
        assert_eq!(
            meta[0]["2001105F"],
            json!({"vr":"SQ","Value":[{"20011060":{"vr":"SH","Value":["ABCD"]}}]})
        );
        assert_eq!(meta[0]["20011061"]["Value"][0], "AFTER");
        assert_eq!(meta[0]["00280010"]["Value"][0], 2);
    }
}

#[test]
fn every_reader_tolerates_the_stray_delimiter() {
    // Big endian: the retrieve rewriter walks the sequence too.
    let file = stray_delimiter_file(Encoding::EXPLICIT_BE, SOP, true);
    let Output::Rewritten(le) = for_web(&file).unwrap() else {
        panic!("a big-endian file is rewritten");
    };
    let ctx = JsonContext {
        instance_url: "http://x/i",
    };
    let meta: Value = serde_json::from_slice(&instance_json(&le, &ctx).unwrap()).unwrap();
    assert_eq!(meta["2001105F"]["Value"][0]["20011060"]["Value"][0], "ABCD");
    assert_eq!(meta["20011061"]["Value"][0], "AFTER");
    // The bulk data finder reaches into the item and past the sequence.
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_of(
        dir.path(),
        &[(
            "a.dcm",
            stray_delimiter_file(Encoding::EXPLICIT_LE, SOP, true),
        )],
    );
    let meta = json_of(&get(&engine, &format!("{}/metadata", instance_url(SOP))));
    let uri = meta[0]["2001105F"]["Value"][0]["20011062"]["BulkDataURI"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(uri.ends_with("/bulkdata/2001105F/0/20011062"), "{uri}");
    let octets = |path: &str| {
        let r = engine.handle(
            &Request::get(&format!("{}/bulkdata/{path}", instance_url(SOP)))
                .with_header("Accept", "application/octet-stream"),
        );
        (r.status, r.body.to_vec())
    };
    assert_eq!(octets("2001105F/0/20011062"), (200, vec![9, 8, 7, 6]));
    assert_eq!(octets("7FE00010"), (200, vec![1, 2, 3, 4]));
    assert_eq!(get(&engine, &instance_url(SOP)).status, 200);
}

fn strays_elsewhere_file() -> Vec<u8> {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    let mut item = DataSetWriter::new(Encoding::EXPLICIT_LE);
    item.header(tags::ITEM_DELIMITATION, Vr::UN, 0)
        .str(Tag(0x2001, 0x1060), Vr::SH, "ABCD");
    let item = item.into_bytes();
    w.str(Tag(0x2001, 0x0010), Vr::LO, "SIA TEST")
        .header(SQ, Vr::SQ, (8 + item.len()) as u32)
        .header(tags::ITEM, Vr::UN, item.len() as u32)
        .raw(&item)
        .sequence_start(Tag(0x2001, 0x1070))
        .item_start()
        .header(tags::SEQUENCE_DELIMITATION, Vr::UN, 0)
        .str(Tag(0x2001, 0x1071), Vr::SH, "IN")
        .item_end()
        .header(tags::ITEM, Vr::UN, 12)
        .str(Tag(0x2001, 0x1072), Vr::SH, "ITEM")
        .sequence_end();
    with_meta(ts::EXPLICIT_VR_LE, w.as_bytes())
}

#[test]
fn stray_delimiters_elsewhere_are_stepped_over() {
    // An Item Delimitation Item inside a defined-length item, and a Sequence
    // Delimitation Item inside an undefined-length item.
    let file = strays_elsewhere_file();
    let r = record(&file);
    assert_eq!(r.sop_instance_uid, SOP);
    let meta: Value = serde_json::from_slice(
        &instance_json(
            &file,
            &JsonContext {
                instance_url: "http://x/i",
            },
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["2001105F"]["Value"][0]["20011060"]["Value"][0], "ABCD");
    assert_eq!(meta["20011070"]["Value"][0]["20011071"]["Value"][0], "IN");
}

/// A defined-length sequence holding no item: the scanner steps over it unread.
fn itemless_sequence_file(enc: Encoding, sop: &str) -> Vec<u8> {
    let mut w = DataSetWriter::new(enc);
    identity(&mut w, sop, "P1", "Doe^Jane");
    w.str(Tag(0x2001, 0x0010), Vr::LO, "SIA TEST")
        .header(SQ, Vr::SQ, 12)
        .str(Tag(0x2001, 0x1060), Vr::SH, "ABCD")
        .str(Tag(0x2001, 0x1061), Vr::SH, "AFTER");
    let ts_uid = if enc.big_endian {
        ts::EXPLICIT_VR_BE
    } else {
        ts::EXPLICIT_VR_LE
    };
    let mut out = sia::internal::dicom::write::file_meta(CT, sop, ts_uid);
    out.extend_from_slice(w.as_bytes());
    out
}

#[test]
fn a_defined_length_sequence_of_no_items_is_kept_as_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_of(
        dir.path(),
        &[("a.dcm", itemless_sequence_file(Encoding::EXPLICIT_LE, SOP))],
    );
    let resp = get(&engine, &format!("{}/metadata", instance_url(SOP)));
    assert_eq!(resp.status, 200);
    let meta = json_of(&resp);
    assert_eq!(meta[0]["2001105F"]["vr"], "UN");
    assert!(
        meta[0]["2001105F"]["BulkDataURI"]
            .as_str()
            .unwrap()
            .ends_with("/bulkdata/2001105F")
    );
    assert_eq!(meta[0]["20011061"]["Value"][0], "AFTER");
    let raw = engine.handle(
        &Request::get(&format!("{}/bulkdata/2001105F", instance_url(SOP)))
            .with_header("Accept", "application/octet-stream"),
    );
    assert_eq!(raw.status, 200);
    assert_eq!(&raw.body.to_vec()[..4], &[0x01, 0x20, 0x60, 0x10]);
    // The retrieve rewriter keeps it the same way.
    let file = itemless_sequence_file(Encoding::EXPLICIT_BE, SOP);
    let Output::Rewritten(le) = for_web(&file).unwrap() else {
        panic!("a big-endian file is rewritten");
    };
    let ctx = JsonContext {
        instance_url: "http://x/i",
    };
    let meta: Value = serde_json::from_slice(&instance_json(&le, &ctx).unwrap()).unwrap();
    assert_eq!(meta["2001105F"]["vr"], "UN");
    assert_eq!(meta["20011061"]["Value"][0], "AFTER");
}

/// An undefined-length sequence whose defined-length item (stepped over unread by the
/// scanner) holds an element longer than the item.
fn broken_item_file(sop: &str) -> Vec<u8> {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, sop, "P1", "Doe^Jane");
    w.str(Tag(0x2001, 0x0010), Vr::LO, "SIA TEST")
        .sequence_start(SQ)
        .header(tags::ITEM, Vr::UN, 8)
        .header(Tag(0x2001, 0x1060), Vr::SH, 0x100)
        .sequence_end();
    with_meta(ts::EXPLICIT_VR_LE, w.as_bytes())
}

#[test]
fn a_broken_item_in_an_undefined_length_sequence_is_kept_as_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_of(dir.path(), &[("a.dcm", broken_item_file(SOP))]);
    let meta = json_of(&get(&engine, &format!("{}/metadata", instance_url(SOP))));
    assert_eq!(meta[0]["2001105F"]["vr"], "UN");
    let raw = engine.handle(
        &Request::get(&format!("{}/bulkdata/2001105F", instance_url(SOP)))
            .with_header("Accept", "application/octet-stream"),
    );
    assert_eq!(raw.status, 200);
    // The item as it is: its header, then the element header that runs past it.
    assert_eq!(&raw.body.to_vec()[..4], &[0xFE, 0xFF, 0x00, 0xE0]);
    assert_eq!(raw.body.len(), 16);
}

#[test]
fn one_unreadable_instance_does_not_fail_its_study() {
    let good = "1.2.3.4.5.7";
    let bad = "1.2.3.4.5.8";
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_of(
        dir.path(),
        &[
            (
                "good.dcm",
                stray_delimiter_file(Encoding::EXPLICIT_LE, good, false),
            ),
            (
                "bad.dcm",
                stray_delimiter_file(Encoding::EXPLICIT_LE, bad, false),
            ),
        ],
    );
    // Overwritten in place after indexing, same size and time: the index still takes
    // it for the indexed file, and its bytes are no DICOM.
    let path = dir.path().join("data/bad.dcm");
    let meta = std::fs::metadata(&path).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, &vec![0xFFu8; meta.len() as usize], 0).unwrap();
    f.set_modified(meta.modified().unwrap()).unwrap();
    drop(f);
    for level in [
        format!("/dicom-web/studies/{STUDY}/metadata"),
        format!("/dicom-web/studies/{STUDY}/series/{SERIES}/metadata"),
    ] {
        let resp = get(&engine, &level);
        assert_eq!(resp.status, 206, "{level}");
        let warning = resp.header("Warning").unwrap();
        assert!(
            warning.starts_with("299 ") && warning.contains(bad),
            "{warning}"
        );
        assert!(!warning.contains(good));
        let meta = json_of(&resp);
        assert_eq!(meta.as_array().unwrap().len(), 1);
        assert_eq!(meta[0]["00080018"]["Value"][0], good);
    }
    // The instance itself still says what is wrong.
    assert_eq!(
        get(&engine, &format!("{}/metadata", instance_url(bad))).status,
        500
    );
    assert_eq!(
        get(&engine, &format!("{}/metadata", instance_url(good))).status,
        200
    );
}

#[test]
fn a_file_changed_since_indexing_is_left_out_of_study_answers() {
    let (a, b) = ("1.2.3.4.5.7", "1.2.3.4.5.8");
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_of(
        dir.path(),
        &[
            (
                "a.dcm",
                stray_delimiter_file(Encoding::EXPLICIT_LE, a, false),
            ),
            (
                "b.dcm",
                stray_delimiter_file(Encoding::EXPLICIT_LE, b, false),
            ),
        ],
    );
    std::fs::write(dir.path().join("data/b.dcm"), b"changed").unwrap();
    let resp = get(&engine, &format!("/dicom-web/studies/{STUDY}/metadata"));
    assert_eq!(resp.status, 206);
    assert!(resp.header("Warning").unwrap().contains(b));
    assert_eq!(json_of(&resp).as_array().unwrap().len(), 1);
    // Retrieval of the study: the readable instance, the other named.
    let resp = engine.handle(
        &Request::get(&format!("/dicom-web/studies/{STUDY}"))
            .with_header("Accept", "multipart/related; type=\"application/dicom\""),
    );
    assert_eq!(resp.status, 206);
    assert!(resp.header("Warning").unwrap().contains(b));
    // Instance level: 410 as before.
    assert_eq!(
        get(&engine, &format!("{}/metadata", instance_url(b))).status,
        410
    );
    // Every instance gone: the failure itself.
    std::fs::write(dir.path().join("data/a.dcm"), b"changed").unwrap();
    assert_eq!(
        get(&engine, &format!("/dicom-web/studies/{STUDY}/metadata")).status,
        410
    );
}

/// Random byte mutations of the files above: no reader panics, and (the point of the
/// shared rules) every instance the scanner accepts has its DICOM JSON written.
#[test]
fn mutated_files_never_panic_and_what_is_indexed_is_readable() {
    let seeds = [
        stray_delimiter_file(Encoding::EXPLICIT_LE, SOP, true),
        stray_delimiter_file(Encoding::EXPLICIT_BE, SOP, true),
        itemless_sequence_file(Encoding::EXPLICIT_LE, SOP),
        strays_elsewhere_file(),
        broken_item_file(SOP),
        {
            use std::io::Write;
            let ds = stray_delimiter_file(Encoding::EXPLICIT_LE, SOP, true);
            let body =
                &ds[sia::internal::dicom::write::file_meta(CT, SOP, ts::EXPLICIT_VR_LE).len()..];
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(body).unwrap();
            sia::internal::dicom::write::file_meta(CT, SOP, ts::DEFLATED_EXPLICIT_VR_LE)
                .into_iter()
                .chain(z.finish().unwrap())
                .collect()
        },
    ];
    let ctx = JsonContext {
        instance_url: "http://x/i",
    };
    let path = sia::internal::dicom::bulk::parse_path(&["2001105F", "0", "20011062"]).unwrap();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut accepted, mut unreadable) = (0, Vec::new());
    for round in 0..20_000 {
        let mut file = seeds[round % seeds.len()].clone();
        let start = 132;
        for _ in 0..1 + next() % 3 {
            let at = start + (next() as usize) % (file.len() - start);
            file[at] = next() as u8;
        }
        let scanned = scan_bytes(&file);
        let json = instance_json(&file, &ctx);
        let _ = for_web(&file);
        let _ = sia::internal::dicom::bulk::find(&file, &path, 8);
        let _ = sia::internal::dicom::inflated_frames(&file);
        if matches!(scanned, Ok(sia::internal::dicom::Scanned::Instance(_))) {
            accepted += 1;
            if let Err(e) = json {
                unreadable.push(format!("round {round}: {e}"));
            }
        }
    }
    assert!(accepted > 1000, "{accepted}");
    eprintln!("accepted {accepted}, unreadable {}", unreadable.len());
    assert!(
        unreadable.is_empty(),
        "{} of {accepted}: {:?}",
        unreadable.len(),
        &unreadable[..unreadable.len().min(5)]
    );
}

#[test]
fn fewer_bytes_than_a_header_at_the_end_are_ignored_by_every_reader() {
    // As pydicom does: 1 to 7 trailing bytes end the data set.
    for tail in 1..8usize {
        let mut file = itemless_sequence_file(Encoding::EXPLICIT_LE, SOP);
        file.extend(std::iter::repeat_n(0xAB, tail));
        assert_eq!(record(&file).sop_instance_uid, SOP, "{tail}");
        let ctx = JsonContext {
            instance_url: "http://x/i",
        };
        let meta: Value = serde_json::from_slice(&instance_json(&file, &ctx).unwrap()).unwrap();
        assert_eq!(meta["20011061"]["Value"][0], "AFTER");
        let mut be = itemless_sequence_file(Encoding::EXPLICIT_BE, SOP);
        be.extend(std::iter::repeat_n(0xAB, tail));
        assert!(matches!(for_web(&be).unwrap(), Output::Rewritten(_)));
        let path = sia::internal::dicom::bulk::parse_path(&["20011061"]).unwrap();
        assert!(
            sia::internal::dicom::bulk::find(&file, &path, 8)
                .unwrap()
                .is_some()
        );
    }
}
