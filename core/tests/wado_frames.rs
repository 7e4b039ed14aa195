//! Frames through `Engine::handle`: statuses, zero-copy, changed files, bit and byte
//! order.

use std::path::Path;

use sia::Engine;
use sia::ReadMode;
use sia::internal::dicom::tag::{Encoding, Vr, tags, ts};
use sia::internal::dicom::write::DataSetWriter;
use sia::{Request, Response};

use crate::common::*;

const FRAMES: &str = "/dicom-web/studies/1.2.3.4/series/1.2.3.4.5/instances/1.2.3.4.5.6/frames";

pub(crate) fn engine_with(dir: &Path, files: &[(&str, Vec<u8>)], mode: ReadMode) -> Engine {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for (name, bytes) in files {
        std::fs::write(data.join(name), bytes).unwrap();
    }
    let engine = Engine::open(crate::common::config_in(dir).read_mode(mode).build()).unwrap();
    let r = engine.index(&[&data], &Default::default()).unwrap();
    assert_eq!(r.indexed, files.len() as u64, "{r:?}");
    engine
}

pub(crate) fn get(engine: &Engine, target: &str, accept: Option<&str>) -> Response {
    let mut req = Request::get(target);
    if let Some(a) = accept {
        req = req.with_header("Accept", a);
    }
    engine.handle(&req)
}

/// The payloads of a multipart body (parts split on the boundary).
pub(crate) fn parts(resp: &Response) -> Vec<Vec<u8>> {
    let ct = resp.header("Content-Type").unwrap();
    let boundary = ct.split("boundary=").nth(1).unwrap();
    let body = resp.body.to_vec();
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let text = body.as_slice();
    let mut at = 0;
    let find = |hay: &[u8], from: usize, needle: &[u8]| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    while let Some(start) = find(text, at, delim.as_bytes()) {
        let after = start + delim.len();
        if text[after..].starts_with(b"--") {
            break;
        }
        let content = find(text, after, b"\r\n\r\n").unwrap() + 4;
        let end = find(text, content, format!("\r\n{delim}").as_bytes()).unwrap();
        out.push(text[content..end].to_vec());
        at = end + 2;
    }
    out
}

#[test]
fn native_frames_are_zero_copy_slices_of_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let (file, pixels) = explicit_le_file(3);
    let engine = engine_with(dir.path(), &[("a.dcm", file)], ReadMode::Mmap);
    let resp = get(&engine, &format!("{FRAMES}/2,3"), None);
    assert_eq!(resp.status, 200);
    assert!(
        resp.body
            .chunks()
            .iter()
            .any(|c| c.is_mapped() && c.len() == 24)
    );
    assert_eq!(
        parts(&resp),
        vec![pixels[24..48].to_vec(), pixels[48..72].to_vec()]
    );
    assert_eq!(
        resp.header("Content-Length").unwrap(),
        resp.body.len().to_string()
    );
}

#[test]
fn pread_mode_serves_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (file, pixels) = explicit_le_file(2);
    let engine = engine_with(dir.path(), &[("a.dcm", file)], ReadMode::Pread);
    let resp = get(&engine, &format!("{FRAMES}/1,2"), None);
    assert!(resp.body.chunks().iter().all(|c| !c.is_mapped()));
    assert_eq!(parts(&resp).concat(), pixels);
}

#[test]
fn big_endian_frames_are_sent_little_endian() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, pixels) = native16(Encoding::EXPLICIT_BE, 1);
    let engine = engine_with(
        dir.path(),
        &[("be.dcm", with_meta(ts::EXPLICIT_VR_BE, &ds))],
        ReadMode::Mmap,
    );
    let resp = get(&engine, &format!("{FRAMES}/1"), None);
    let swapped: Vec<u8> = pixels.chunks(2).flat_map(|w| [w[1], w[0]]).collect();
    assert_eq!(parts(&resp), vec![swapped]);
}

#[test]
fn one_bit_frames_start_on_a_byte_boundary() {
    // 3 frames of 3x3 = 9 bits: frame 2 starts at bit 9, frame 3 at bit 18.
    let bits: Vec<u8> = vec![
        1, 0, 1, 1, 0, 0, 1, 1, 1, // frame 1
        0, 1, 1, 0, 1, 0, 0, 0, 1, // frame 2
        1, 1, 0, 0, 0, 1, 1, 0, 1, // frame 3
    ];
    let mut packed = vec![0u8; 4];
    for (i, b) in bits.iter().enumerate() {
        packed[i / 8] |= b << (i % 8);
    }
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    image(&mut w, 3, 3, 1, 3);
    w.native_pixel_data(Vr::OB, &packed);
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(
        dir.path(),
        &[("bits.dcm", with_meta(ts::EXPLICIT_VR_LE, w.as_bytes()))],
        ReadMode::Mmap,
    );
    let got = parts(&get(&engine, &format!("{FRAMES}/1,2,3"), None));
    for (f, frame) in got.iter().enumerate() {
        assert_eq!(frame.len(), 2);
        let want: u16 = bits[f * 9..f * 9 + 9]
            .iter()
            .enumerate()
            .map(|(i, b)| u16::from(*b) << i)
            .sum();
        assert_eq!(
            u16::from_le_bytes([frame[0], frame[1]]),
            want,
            "frame {}",
            f + 1
        );
    }
}

#[test]
fn encapsulated_frames_pass_through_fragment_by_fragment() {
    let dir = tempfile::tempdir().unwrap();
    let file = encapsulated(2, &[], &[b"\xFF\xD8a1", b"a2", b"\xFF\xD8b1", b"b2"], None);
    let engine = engine_with(dir.path(), &[("j.dcm", file)], ReadMode::Mmap);
    let resp = get(
        &engine,
        &format!("{FRAMES}/2,1"),
        Some("multipart/related; type=\"image/jpeg\""),
    );
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("Content-Type")
            .unwrap()
            .starts_with("multipart/related; type=\"image/jpeg\"; boundary=")
    );
    assert_eq!(
        parts(&resp),
        vec![b"\xFF\xD8b1b2".to_vec(), b"\xFF\xD8a1a2".to_vec()]
    );
}

#[test]
fn a_file_changed_or_removed_after_indexing_is_gone_not_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = explicit_le_file(2);
    let engine = engine_with(dir.path(), &[("a.dcm", file.clone())], ReadMode::Mmap);
    assert_eq!(get(&engine, &format!("{FRAMES}/1"), None).status, 200);
    // Truncated in place (the mapping cached by the first request must be re-checked).
    std::fs::write(dir.path().join("data/a.dcm"), &file[..file.len() / 2]).unwrap();
    let resp = get(&engine, &format!("{FRAMES}/1"), None);
    assert_eq!(
        resp.status,
        410,
        "{}",
        String::from_utf8_lossy(&resp.body.to_vec())
    );
    assert!(String::from_utf8_lossy(&resp.body.to_vec()).contains("sia index"));
    std::fs::remove_file(dir.path().join("data/a.dcm")).unwrap();
    assert_eq!(get(&engine, &format!("{FRAMES}/1"), None).status, 410);
}

#[test]
fn methods_head_and_unknown_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = explicit_le_file(1);
    let engine = engine_with(dir.path(), &[("a.dcm", file)], ReadMode::Mmap);
    let mut post = Request::get(&format!("{FRAMES}/1"));
    post.method = "POST".into();
    let resp = engine.handle(&post);
    assert_eq!(
        (resp.status, resp.header("Allow")),
        (405, Some("GET, HEAD"))
    );
    let mut head = Request::get(&format!("{FRAMES}/1"));
    head.method = "HEAD".into();
    let resp = engine.handle(&head);
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty() && resp.header("Content-Length").unwrap() != "0");
    assert_eq!(get(&engine, "/elsewhere", None).status, 404);
    // Rendered resources are served (issue 13); pixeldata is not.
    let rendered = get(&engine, "/dicom-web/studies/1.2.3.4/rendered", None);
    assert_eq!(
        (
            rendered.status,
            rendered
                .header("Content-Type")
                .is_some_and(|t| t.starts_with("multipart/related; type=\"image/jpeg\""))
        ),
        (200, true)
    );
    assert_eq!(
        get(&engine, "/dicom-web/studies/1.2.3.4/pixeldata", None).status,
        501
    );
    assert_eq!(
        get(
            &engine,
            "/dicom-web/studies/1.2.3.4/series/1.2.3.4.5/instances/1.9/frames/1",
            None
        )
        .status,
        404
    );
}

#[test]
fn instance_without_pixel_data_has_no_frames() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    w.str(tags::STUDY_ID, Vr::SH, "1");
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(
        dir.path(),
        &[("sr.dcm", with_meta(ts::EXPLICIT_VR_LE, w.as_bytes()))],
        ReadMode::Mmap,
    );
    assert_eq!(get(&engine, &format!("{FRAMES}/1"), None).status, 404);
}

#[test]
fn eight_bit_samples_in_big_endian_ow_are_swapped_in_words_across_frame_boundaries() {
    // 3 frames of 3x3 8-bit samples = 27 bytes in OW (padded to 28): frames 2 and 3
    // start inside a 16-bit word.
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_BE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    image(&mut w, 3, 3, 8, 3);
    let stored: Vec<u8> = (0..28u8).collect();
    w.native_pixel_data(Vr::OW, &stored);
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(
        dir.path(),
        &[("be8.dcm", with_meta(ts::EXPLICIT_VR_BE, w.as_bytes()))],
        ReadMode::Mmap,
    );
    let le: Vec<u8> = stored.chunks(2).flat_map(|p| [p[1], p[0]]).collect();
    let got = parts(&get(&engine, &format!("{FRAMES}/3,1,2"), None));
    assert_eq!(
        got,
        vec![le[18..27].to_vec(), le[0..9].to_vec(), le[9..18].to_vec()]
    );
}

#[test]
fn instance_retrieval_of_an_explicit_le_file_is_the_file_itself_without_copying() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = explicit_le_file(2);
    let engine = engine_with(dir.path(), &[("a.dcm", file.clone())], ReadMode::Mmap);
    let resp = get(
        &engine,
        "/dicom-web/studies/1.2.3.4/series/1.2.3.4.5/instances/1.2.3.4.5.6",
        None,
    );
    assert_eq!(resp.status, 200);
    assert!(
        resp.body
            .chunks()
            .iter()
            .any(|c| c.is_mapped() && c.len() == file.len())
    );
    assert_eq!(parts(&resp), vec![file]);
}

#[test]
fn implicit_vr_instances_are_rewritten_to_explicit_vr_little_endian() {
    let dir = tempfile::tempdir().unwrap();
    let (ds, pixels) = native16(Encoding::IMPLICIT_LE, 2);
    let engine = engine_with(
        dir.path(),
        &[("i.dcm", with_meta(ts::IMPLICIT_VR_LE, &ds))],
        ReadMode::Mmap,
    );
    let resp = get(
        &engine,
        "/dicom-web/studies/1.2.3.4/series/1.2.3.4.5/instances/1.2.3.4.5.6",
        None,
    );
    let out = parts(&resp).pop().unwrap();
    let r = record(&out);
    assert_eq!(r.transfer_syntax, ts::EXPLICIT_VR_LE);
    assert_eq!(r.patient.name, "Doe^Jane");
    assert_eq!(frames_of(&out, &r).concat(), pixels);
}

#[test]
fn frames_located_by_an_extended_offset_table_come_out_through_handle() {
    // Two frames of two fragments each; only the Extended Offset Table (with lengths)
    // tells where frame 2 starts: the Basic Offset Table is empty and there are more
    // fragments than frames, and no fragment starts with a marker.
    let frags: [&[u8]; 4] = [b"aaaa", b"bb", b"cccc", b"dd"];
    let offsets = [0u64, 8 + 4 + 8 + 2];
    let lengths = [6u64, 6];
    let file = encapsulated(2, &[], &frags, Some((&offsets, &lengths)));
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(dir.path(), &[("eot.dcm", file)], ReadMode::Mmap);
    let resp = get(
        &engine,
        &format!("{FRAMES}/2,1"),
        Some("multipart/related; type=\"image/jpeg\""),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(parts(&resp), vec![b"ccccdd".to_vec(), b"aaaabb".to_vec()]);
}

/// `Engine::handle_without_decoding` (what `sia serve` runs on its async workers)
/// answers what needs no decoding and refuses, having decoded nothing, what does:
/// frames of an RLE instance asked uncompressed (until they are in the decoded-frame
/// cache), rendered images; frames in their stored syntax are answered as by `handle`.
#[test]
fn quick_handling_leaves_decoding_to_the_blocking_path() {
    let plane: Vec<u8> = (0..64u8).collect();
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, "1.2.3.4.5.6", "P1", "Doe^Jane");
    image(&mut w, 8, 8, 8, 2);
    let frames = [
        sia::internal::demo::rle_frame(&plane),
        sia::internal::demo::rle_frame(&plane),
    ];
    w.encapsulated_pixel_data(&[], &[&frames[0], &frames[1]]);
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(
        dir.path(),
        &[("rle.dcm", with_meta("1.2.840.10008.1.2.5", w.as_bytes()))],
        ReadMode::Pread,
    );
    let req = |target: String, accept: &str| Request::get(&target).with_header("Accept", accept);
    let stored = req(
        format!("{FRAMES}/1"),
        "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
    );
    let quick = engine
        .handle_without_decoding(&stored)
        .expect("a stored-syntax frame is answered");
    assert_eq!(quick.status, 200);
    assert_eq!(parts(&quick), parts(&engine.handle(&stored)));

    let decoded = req(
        format!("{FRAMES}/2"),
        "multipart/related; type=\"application/octet-stream\"",
    );
    assert!(
        engine.handle_without_decoding(&decoded).is_none(),
        "a decode is refused"
    );
    let full = engine.handle(&decoded);
    assert_eq!(full.status, 200);
    assert_eq!(parts(&full), vec![plane.clone()]);
    // Now in the decoded-frame cache: no decode needed, answered quickly.
    let again = engine
        .handle_without_decoding(&decoded)
        .expect("a cached decoded frame is answered");
    assert_eq!(parts(&again), vec![plane]);

    let rendered = req(format!("{FRAMES}/1/rendered"), "image/png");
    assert!(engine.handle_without_decoding(&rendered).is_none());
    assert_eq!(engine.handle(&rendered).status, 200);
    // A failure found before any decoding is an answer, as from `handle`.
    let missing = req(
        format!("{FRAMES}/3"),
        "multipart/related; type=\"application/octet-stream\"",
    );
    assert_eq!(
        engine.handle_without_decoding(&missing).unwrap().status,
        404
    );
}
