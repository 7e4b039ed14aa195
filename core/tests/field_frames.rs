//! Issue 14, kind 1: degenerate Number of Frames, decided in one place
//! (`sia::internal::dicom::frames::frame_count`) for native and encapsulated pixel data.

use sia::ReadMode;
use sia::internal::dicom::FrameTable;
use sia::internal::dicom::frames::frame_count;
use sia::internal::dicom::tag::{Encoding, Vr, tags, ts};
use sia::internal::dicom::write::{DataSetWriter, basic_offsets};

use crate::common::*;
use crate::wado_frames::{engine_with, get, parts};

const FRAMES: &str = "/dicom-web/studies/1.2.3.4/series/1.2.3.4.5/instances/1.2.3.4.5.6/frames";

/// How Number of Frames is written in a test file.
#[derive(Clone, Copy)]
enum Nof<'a> {
    Absent,
    Is(&'a str),
    Us(u16),
}

/// The attributes of a 2x2 8-bit MONOCHROME2 image with the given Number of Frames.
fn mono8_2x2(w: &mut DataSetWriter, nof: Nof<'_>) {
    identity(w, SOP, "P1", "Doe^Jane");
    w.us(tags::SAMPLES_PER_PIXEL, 1)
        .str(tags::PHOTOMETRIC_INTERPRETATION, Vr::CS, "MONOCHROME2");
    match nof {
        Nof::Absent => {}
        Nof::Is(v) => {
            w.str(tags::NUMBER_OF_FRAMES, Vr::IS, v);
        }
        Nof::Us(v) => {
            w.us(tags::NUMBER_OF_FRAMES, v);
        }
    }
    w.us(tags::ROWS, 2)
        .us(tags::COLUMNS, 2)
        .us(tags::BITS_ALLOCATED, 8)
        .us(tags::BITS_STORED, 8)
        .us(tags::PIXEL_REPRESENTATION, 0);
}

fn native_2x2(nof: Nof<'_>, pixels: &[u8]) -> Vec<u8> {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    mono8_2x2(&mut w, nof);
    w.native_pixel_data(Vr::OB, pixels);
    with_meta(ts::EXPLICIT_VR_LE, w.as_bytes())
}

fn encapsulated_2x2(nof: Nof<'_>, bot: &[u32], fragments: &[&[u8]]) -> Vec<u8> {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    mono8_2x2(&mut w, nof);
    w.encapsulated_pixel_data(bot, fragments);
    with_meta(ts::RLE_LOSSLESS, w.as_bytes())
}

/// The frames served for `list`, as `*/*` multipart parts; the status too.
fn served(file: Vec<u8>, list: &str) -> (u16, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(dir.path(), &[("a.dcm", file)], ReadMode::Mmap);
    let resp = get(&engine, &format!("{FRAMES}/{list}"), Some("*/*"));
    let p = if resp.status < 300 {
        parts(&resp)
    } else {
        Vec::new()
    };
    (resp.status, p)
}

#[test]
fn the_rule() {
    // Absent, empty, not a number (None), zero and negative: one frame.
    for declared in [None, Some(0), Some(-1), Some(i64::MIN)] {
        assert_eq!(frame_count(declared, 5), 1, "{declared:?}");
    }
    assert_eq!(frame_count(Some(3), 5), 3);
    // More than the data holds: what it holds.
    assert_eq!(frame_count(Some(9), 5), 5);
    assert_eq!(frame_count(Some(i64::MAX), u64::MAX), u32::MAX);
    // Nothing held: no frame (the scanner refuses such a file).
    assert_eq!(frame_count(None, 0), 0);
}

#[test]
fn number_of_frames_zero_is_one_native_frame() {
    // The example: 200 with one part 01 02 03 04.
    let file = native_2x2(Nof::Is("0"), &[1, 2, 3, 4]);
    let r = record(&file);
    assert_eq!(r.frames.count(), 1);
    assert_eq!(r.image.as_ref().unwrap().frames, 1);
    assert_eq!(served(file, "1"), (200, vec![vec![1, 2, 3, 4]]));
}

#[test]
fn degenerate_number_of_frames_native_variants() {
    for nof in [
        Nof::Absent,
        Nof::Is(""),
        Nof::Is(" "),
        Nof::Is("0"),
        Nof::Is("00"),
        Nof::Is("-2"),
        Nof::Is("abc"),
        Nof::Is("1A"),
        Nof::Is("2.5"),
        Nof::Us(0),
    ] {
        let file = native_2x2(nof, &[1, 2, 3, 4]);
        assert_eq!(record(&file).frames.count(), 1);
        assert_eq!(served(file, "1"), (200, vec![vec![1, 2, 3, 4]]));
    }
}

#[test]
fn number_of_frames_larger_than_the_native_data_holds() {
    // 5 declared, 4 bytes: the one frame there is.
    let file = native_2x2(Nof::Is("5"), &[1, 2, 3, 4]);
    assert_eq!(record(&file).frames.count(), 1);
    assert_eq!(served(file.clone(), "1"), (200, vec![vec![1, 2, 3, 4]]));
    let (status, p) = served(file.clone(), "1,2");
    assert_eq!((status, p), (206, vec![vec![1, 2, 3, 4]]));
    assert_eq!(served(file, "2").0, 404);
    // 3 declared, 10 bytes: two whole frames (the partial third does not exist).
    let px: Vec<u8> = (1..=10).collect();
    let file = native_2x2(Nof::Is("3"), &px);
    assert_eq!(record(&file).frames.count(), 2);
    assert_eq!(
        served(file, "2,1"),
        (200, vec![px[4..8].to_vec(), px[0..4].to_vec()])
    );
    // Far beyond u32: the same rule.
    let file = native_2x2(Nof::Is("99999999999"), &[1, 2, 3, 4]);
    assert_eq!(record(&file).frames.count(), 1);
    // Spaces around a good value are padding.
    let file = native_2x2(Nof::Is(" 2 "), &px[..8]);
    assert_eq!(record(&file).frames.count(), 2);
}

#[test]
fn native_data_shorter_than_one_frame_is_refused_with_a_reason() {
    let file = native_2x2(Nof::Is("0"), &[1, 2]);
    let e = scan_bytes(&file).unwrap_err();
    assert!(e.message().contains("one frame"), "{e}");
}

#[test]
fn number_of_frames_zero_encapsulated() {
    // One fragment.
    let file = encapsulated_2x2(Nof::Is("0"), &[], &[b"abcd"]);
    assert_eq!(record(&file).frames.count(), 1);
    assert_eq!(served(file, "1"), (200, vec![b"abcd".to_vec()]));
    // Three fragments, no offset table: one frame of all of them.
    let file = encapsulated_2x2(Nof::Is("0"), &[], &[b"ab", b"cd", b"ef"]);
    assert_eq!(record(&file).frames.count(), 1);
    assert_eq!(served(file, "1"), (200, vec![b"abcdef".to_vec()]));
    for nof in [Nof::Absent, Nof::Is(""), Nof::Is("x"), Nof::Us(0)] {
        let file = encapsulated_2x2(nof, &[], &[b"ab", b"cd"]);
        assert_eq!(served(file, "1"), (200, vec![b"abcd".to_vec()]));
    }
}

#[test]
fn number_of_frames_larger_than_the_encapsulated_data_holds() {
    // No offset table, 2 fragments, 5 declared: a frame per fragment.
    let file = encapsulated_2x2(Nof::Is("5"), &[], &[b"ab", b"cd"]);
    let r = record(&file);
    assert_eq!(r.frames.count(), 2);
    assert_eq!(
        served(file, "2,1,3"),
        (206, vec![b"cd".to_vec(), b"ab".to_vec()])
    );
    // A Basic Offset Table naming 2 frames of 2 fragments each, 7 declared: the table.
    let frames: Vec<Vec<&[u8]>> = vec![vec![b"ab", b"cd"], vec![b"ef", b"gh"]];
    let bot = basic_offsets(&frames);
    let file = encapsulated_2x2(Nof::Is("7"), &bot, &[b"ab", b"cd", b"ef", b"gh"]);
    let r = record(&file);
    assert!(matches!(
        r.frames,
        FrameTable::Encapsulated {
            boundaries: sia::internal::dicom::FrameBoundaries::BasicOffsetTable,
            ..
        }
    ));
    assert_eq!(
        served(file, "1,2"),
        (200, vec![b"abcd".to_vec(), b"efgh".to_vec()])
    );
}

// Issue 14, kind 7: frames of a deflated data set are served inflated.

fn deflated(data_set: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data_set).unwrap();
    with_meta(ts::DEFLATED_EXPLICIT_VR_LE, &z.finish().unwrap())
}

#[test]
fn deflated_native_frames_are_served_inflated() {
    let (ds, pixels) = native16(Encoding::EXPLICIT_LE, 3);
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(dir.path(), &[("dfl.dcm", deflated(&ds))], ReadMode::Mmap);
    for accept in [
        None,
        Some("*/*"),
        Some("multipart/related; type=\"application/octet-stream\""),
    ] {
        let resp = get(&engine, &format!("{FRAMES}/3,1"), accept);
        assert_eq!(resp.status, 200, "{accept:?}");
        assert_eq!(
            parts(&resp),
            vec![pixels[48..72].to_vec(), pixels[0..24].to_vec()]
        );
    }
    let one = get(
        &engine,
        &format!("{FRAMES}/2"),
        Some("application/octet-stream"),
    );
    assert_eq!(one.status, 200);
    assert_eq!(one.body.to_vec(), pixels[24..48].to_vec());
    assert_eq!(
        one.header("Content-Type").unwrap(),
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    );
    let partial = get(&engine, &format!("{FRAMES}/1,4"), None);
    assert_eq!(partial.status, 206);
    assert_eq!(parts(&partial), vec![pixels[0..24].to_vec()]);
    assert_eq!(get(&engine, &format!("{FRAMES}/4"), None).status, 404);
    // Compressed frames asked for: nothing acceptable.
    assert_eq!(
        get(&engine, &format!("{FRAMES}/1"), Some("image/jpeg")).status,
        406
    );
}

#[test]
fn deflated_frames_follow_the_frame_count_rule() {
    // Number of Frames 0 inside a deflated data set: one frame, as for a native file.
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    mono8_2x2(&mut w, Nof::Is("0"));
    w.native_pixel_data(Vr::OB, &[1, 2, 3, 4]);
    let file = deflated(w.as_bytes());
    assert_eq!(record(&file).frames, FrameTable::Deflated { count: 1 });
    assert_eq!(served(file, "1"), (200, vec![vec![1, 2, 3, 4]]));
    // 1-bit frames are realigned as for a native file: 3 frames of 3x3.
    let bits: [u8; 27] = [
        1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1,
    ];
    let mut packed = vec![0u8; 4];
    for (i, b) in bits.iter().enumerate() {
        packed[i / 8] |= b << (i % 8);
    }
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    image(&mut w, 3, 3, 1, 3);
    w.native_pixel_data(Vr::OB, &packed);
    let (status, got) = served(deflated(w.as_bytes()), "2");
    assert_eq!(status, 200);
    let mut want = [0u8; 2];
    for (i, b) in bits[9..18].iter().enumerate() {
        want[i / 8] |= b << (i % 8);
    }
    assert_eq!(got, vec![want.to_vec()]);
}
