//! One test per kind of file the scanner must read.

use std::io::Write;

use sia::internal::dicom::tag::{Encoding, Tag, Vr, tags, ts};
use sia::internal::dicom::write::{DataSetWriter, basic_offsets};
use sia::internal::dicom::{FrameBoundaries, FrameTable, ScanErrorKind, Scanned};

use crate::common::*;

#[test]
fn explicit_vr_little_endian_native_frames() {
    let (file, pixels) = explicit_le_file(3);
    let r = record(&file);
    assert_eq!(r.sop_instance_uid, SOP);
    assert_eq!(r.transfer_syntax, ts::EXPLICIT_VR_LE);
    assert_eq!(r.patient.name, "Doe^Jane");
    assert_eq!(r.frames.count(), 3);
    let frames = frames_of(&file, &r);
    assert_eq!(frames.concat(), pixels);
    assert!(matches!(r.frames, FrameTable::Native { swap_unit: 0, .. }));
}

#[test]
fn implicit_vr_little_endian() {
    let (ds, pixels) = native16(Encoding::IMPLICIT_LE, 2);
    let file = with_meta(ts::IMPLICIT_VR_LE, &ds);
    let r = record(&file);
    assert_eq!(r.image.as_ref().unwrap().rows, 4);
    assert_eq!(frames_of(&file, &r).concat(), pixels);
}

#[test]
fn explicit_vr_big_endian_notes_the_swap() {
    let (ds, pixels) = native16(Encoding::EXPLICIT_BE, 1);
    let file = with_meta(ts::EXPLICIT_VR_BE, &ds);
    let r = record(&file);
    assert_eq!(
        r.image.as_ref().unwrap().columns,
        3,
        "US values read big endian"
    );
    assert!(matches!(r.frames, FrameTable::Native { swap_unit: 2, .. }));
    assert_eq!(frames_of(&file, &r).concat(), pixels);
}

#[test]
fn deflated_data_set_is_indexed_with_frames_marked_for_decoding() {
    let (ds, _) = native16(Encoding::EXPLICIT_LE, 2);
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&ds).unwrap();
    let file = with_meta(ts::DEFLATED_EXPLICIT_VR_LE, &z.finish().unwrap());
    let r = record(&file);
    assert_eq!(r.patient.name, "Doe^Jane");
    assert_eq!(r.frames, FrameTable::Deflated { count: 2 });
}

#[test]
fn deflate_bomb_is_refused_not_inflated() {
    // 200 MiB of zeros inside one element: compresses to ~200 KB.
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    w.header(Tag(0x0009, 0x1010), Vr::OB, 200 << 20);
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(w.as_bytes()).unwrap();
    z.write_all(&vec![0u8; 200 << 20]).unwrap();
    let file = with_meta(ts::DEFLATED_EXPLICIT_VR_LE, &z.finish().unwrap());
    let (result, peak) = crate::alloc_meter::peak_during(|| scan_bytes(&file));
    assert!(result.is_err(), "{result:?}");
    assert!(
        peak < 80 << 20,
        "peak {peak} bytes while refusing a deflate bomb"
    );
}

#[test]
fn dicm_without_preamble() {
    let (file, pixels) = explicit_le_file(1);
    let r = record(&file[128..]);
    assert_eq!(frames_of(&file[128..], &r).concat(), pixels);
}

#[test]
fn no_file_meta_at_all_is_sniffed() {
    for (enc, ts_uid) in [
        (Encoding::EXPLICIT_LE, ts::EXPLICIT_VR_LE),
        (Encoding::IMPLICIT_LE, ts::IMPLICIT_VR_LE),
        (Encoding::EXPLICIT_BE, ts::EXPLICIT_VR_BE),
    ] {
        let mut w = DataSetWriter::new(enc);
        w.str(tags::SPECIFIC_CHARACTER_SET, Vr::CS, "ISO_IR 100");
        let (rest, pixels) = native16(enc, 1);
        w.raw(&rest);
        let file = w.into_bytes();
        let r = record(&file);
        assert_eq!(r.transfer_syntax, ts_uid);
        assert_eq!(frames_of(&file, &r).concat(), pixels);
    }
}

#[test]
fn undefined_length_sequences_private_and_un_are_skipped() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    w.str(tags::SOP_CLASS_UID, Vr::UI, CT)
        .str(tags::SOP_INSTANCE_UID, Vr::UI, SOP);
    // Undefined-length SQ with an undefined-length item holding a nested sequence.
    w.sequence_start(Tag(0x0008, 0x1110)).item_start();
    w.str(Tag(0x0008, 0x1150), Vr::UI, "1.2");
    w.sequence_start(Tag(0x0008, 0x1199))
        .item_start()
        .str(Tag(0x0008, 0x1155), Vr::UI, "1.3")
        .item_end()
        .sequence_end();
    w.item_end();
    // A defined-length item inside the same sequence.
    let mut item = DataSetWriter::new(Encoding::EXPLICIT_LE);
    item.str(Tag(0x0008, 0x1150), Vr::UI, "1.4");
    w.header(tags::ITEM, Vr::UN, item.as_bytes().len() as u32)
        .raw(item.as_bytes())
        .sequence_end();
    // Private creator + undefined-length private SQ.
    w.str(Tag(0x0009, 0x0010), Vr::LO, "ACME");
    w.sequence_start(Tag(0x0009, 0x1001))
        .item_start()
        .str(Tag(0x0009, 0x1002), Vr::LO, "x")
        .item_end()
        .sequence_end();
    // UN with undefined length: its content is Implicit VR Little Endian.
    w.header(Tag(0x0009, 0x1003), Vr::UN, 0xFFFF_FFFF);
    let mut implicit = DataSetWriter::new(Encoding::IMPLICIT_LE);
    implicit
        .item_start()
        .str(Tag(0x0009, 0x1004), Vr::LO, "implicit inside UN")
        .item_end()
        .sequence_end();
    w.raw(implicit.as_bytes());
    w.str(tags::MODALITY, Vr::CS, "CT")
        .str(tags::PATIENT_NAME, Vr::PN, "After^Sequences")
        .str(tags::PATIENT_ID, Vr::LO, "P9")
        .str(tags::STUDY_INSTANCE_UID, Vr::UI, STUDY)
        .str(tags::SERIES_INSTANCE_UID, Vr::UI, SERIES);
    let r = record(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes()));
    assert_eq!(r.patient.name, "After^Sequences");
    assert_eq!(r.frames, FrameTable::None);
}

#[test]
fn implicit_element_inside_explicit_file_and_odd_lengths() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    // A private element written implicitly (tag + 4-byte length) in an explicit file.
    w.raw(&[0x11, 0x00, 0x10, 0x10, 3, 0, 0, 0, b'a', b'b', b'c']);
    // An odd-length text value.
    w.element_unpadded(Tag(0x0018, 0x0015), Vr::CS, b"HAND");
    w.element_unpadded(Tag(0x0020, 0x0010), Vr::SH, b"ABC");
    let r = record(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes()));
    assert_eq!(r.study.study_id, "ABC");
}

#[test]
fn dicomdir_is_recognised() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    w.sequence_start(tags::DIRECTORY_RECORD_SEQUENCE)
        .item_start();
    w.str(Tag(0x0004, 0x1430), Vr::CS, "PATIENT")
        .item_end()
        .sequence_end();
    let mut file =
        sia::internal::dicom::write::file_meta("1.2.840.10008.1.3.10", "1.2.3", ts::EXPLICIT_VR_LE);
    file.extend_from_slice(w.as_bytes());
    assert_eq!(scan_bytes(&file).unwrap(), Scanned::Dicomdir);
}

#[test]
fn iso_2022_japanese_name() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    w.str(tags::SPECIFIC_CHARACTER_SET, Vr::CS, "\\ISO 2022 IR 87");
    let name: &[u8] =
        b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
    w.str(tags::SOP_CLASS_UID, Vr::UI, CT)
        .str(tags::SOP_INSTANCE_UID, Vr::UI, SOP);
    w.element(tags::PATIENT_NAME, Vr::PN, name)
        .str(tags::PATIENT_ID, Vr::LO, "P1");
    w.str(tags::STUDY_INSTANCE_UID, Vr::UI, STUDY)
        .str(tags::SERIES_INSTANCE_UID, Vr::UI, SERIES);
    let r = record(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes()));
    assert_eq!(r.patient.name, "Yamada^Tarou=山田^太郎=やまだ^たろう");
}

#[test]
fn huge_defined_length_sequence_is_skipped_without_reading_it() {
    // A 64 MiB per-frame functional groups sequence of defined length: skipped by length.
    struct Counting {
        len: u64,
        head: Vec<u8>,
        tail: Vec<u8>,
        tail_at: u64,
        read: u64,
        buf: Vec<u8>,
    }
    impl sia::internal::dicom::source::ByteSource for Counting {
        fn len(&self) -> u64 {
            self.len
        }
        fn get(&mut self, offset: u64, n: usize) -> std::io::Result<&[u8]> {
            self.read += n as u64;
            self.buf.clear();
            for i in 0..n as u64 {
                let at = offset + i;
                let b = if at < self.head.len() as u64 {
                    self.head[at as usize]
                } else if at >= self.tail_at {
                    self.tail[(at - self.tail_at) as usize]
                } else {
                    0
                };
                self.buf.push(b);
            }
            Ok(&self.buf)
        }
    }
    let huge: u32 = 64 << 20;
    let mut head = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut head, SOP, "P1", "Doe^Jane");
    image(&mut head, 2, 2, 8, 1);
    head.header(Tag(0x5200, 0x9230), Vr::SQ, huge);
    let head = with_meta(ts::EXPLICIT_VR_LE, head.as_bytes());
    let mut tail = DataSetWriter::new(Encoding::EXPLICIT_LE);
    tail.native_pixel_data(Vr::OB, &[1, 2, 3, 4]);
    let tail = tail.into_bytes();
    let tail_at = head.len() as u64 + u64::from(huge);
    let mut src = Counting {
        len: tail_at + tail.len() as u64,
        head,
        tail,
        tail_at,
        read: 0,
        buf: Vec::new(),
    };
    let scanned = sia::internal::dicom::scan(&mut src).unwrap();
    assert!(matches!(scanned, Scanned::Instance(_)));
    assert!(
        src.read < 4096,
        "read {} bytes to skip a 64 MiB sequence",
        src.read
    );
}

#[test]
fn one_bit_frames_are_not_byte_aligned() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    image(&mut w, 3, 3, 1, 3); // 9 bits a frame, 27 bits in all -> 4 bytes
    w.native_pixel_data(Vr::OB, &[0xAB, 0xCD, 0xEF, 0x01]);
    let r = record(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes()));
    match r.frames {
        FrameTable::Native {
            frame_bits, count, ..
        } => assert_eq!((frame_bits, count), (9, 3)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ybr_full_422_frames_hold_two_samples_per_pixel() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    w.us(tags::SAMPLES_PER_PIXEL, 3)
        .str(tags::PHOTOMETRIC_INTERPRETATION, Vr::CS, "YBR_FULL_422");
    w.us(tags::PLANAR_CONFIGURATION, 0)
        .str(tags::NUMBER_OF_FRAMES, Vr::IS, "2");
    w.us(tags::ROWS, 2)
        .us(tags::COLUMNS, 4)
        .us(tags::BITS_ALLOCATED, 8)
        .us(tags::BITS_STORED, 8);
    w.native_pixel_data(Vr::OB, &[7u8; 2 * 2 * 4 * 2]);
    let r = record(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes()));
    assert!(
        matches!(
            r.frames,
            FrameTable::Native {
                frame_bits: 128,
                count: 2,
                ..
            }
        ),
        "{:?}",
        r.frames
    );
}

#[test]
fn number_of_frames_written_as_us() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    w.us(tags::SAMPLES_PER_PIXEL, 1)
        .us(tags::NUMBER_OF_FRAMES, 2);
    w.us(tags::ROWS, 2)
        .us(tags::COLUMNS, 2)
        .us(tags::BITS_ALLOCATED, 8);
    w.native_pixel_data(Vr::OB, &[1, 2, 3, 4, 5, 6, 7, 8]);
    let r = record(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes()));
    assert_eq!(r.frames.count(), 2);
}

#[test]
fn native_pixel_data_shorter_than_its_frames_has_the_frames_it_holds() {
    // Issue 14: 2 frames declared, 1 held: the one frame (frames::frame_count).
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    image(&mut w, 4, 4, 8, 2);
    w.native_pixel_data(Vr::OB, &[0u8; 16]);
    let r = record(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes()));
    assert_eq!(r.frames.count(), 1);
    // Not even one frame: refused.
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    image(&mut w, 4, 4, 8, 2);
    w.native_pixel_data(Vr::OB, &[0u8; 8]);
    let err = scan_bytes(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes())).unwrap_err();
    assert_eq!(err.kind(), ScanErrorKind::Malformed, "{err}");
}

fn check_frames(file: &[u8], expected: &[Vec<u8>], how: FrameBoundaries) {
    let r = record(file);
    match &r.frames {
        FrameTable::Encapsulated { boundaries, .. } => assert_eq!(*boundaries, how),
        other => panic!("{other:?}"),
    }
    assert_eq!(&frames_of(file, &r), expected);
}

#[test]
fn extended_offset_table_is_used_first() {
    let frames: Vec<Vec<u8>> = (0..3u8)
        .map(|i| vec![0xFF, 0xD8, i, i, 0xFF, 0xD9])
        .collect();
    let frags: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let offsets = [0u64, 14, 28];
    let lengths = [6u64, 6, 6];
    let file = encapsulated(3, &[], &frags, Some((&offsets, &lengths)));
    check_frames(&file, &frames, FrameBoundaries::ExtendedOffsetTable);
}

#[test]
fn basic_offset_table_with_several_fragments_per_frame() {
    let parts: Vec<Vec<&[u8]>> = vec![
        vec![b"\xFF\xD8ab", b"cd"],
        vec![b"\xFF\xD8ef", b"gh", b"ij"],
    ];
    let bot = basic_offsets(&parts);
    let flat: Vec<&[u8]> = parts.iter().flatten().copied().collect();
    let file = encapsulated(2, &bot, &flat, None);
    check_frames(
        &file,
        &[b"\xFF\xD8abcd".to_vec(), b"\xFF\xD8efghij".to_vec()],
        FrameBoundaries::BasicOffsetTable,
    );
}

#[test]
fn empty_basic_offset_table_one_fragment_per_frame() {
    let file = encapsulated(2, &[], &[b"AAAA", b"BBBB"], None);
    check_frames(
        &file,
        &[b"AAAA".to_vec(), b"BBBB".to_vec()],
        FrameBoundaries::OneFragmentPerFrame,
    );
}

#[test]
fn single_frame_made_of_all_fragments() {
    let file = encapsulated(1, &[], &[b"AAAA", b"BB", b"CC"], None);
    check_frames(&file, &[b"AAAABBCC".to_vec()], FrameBoundaries::SingleFrame);
}

#[test]
fn marker_scan_when_no_table_and_more_fragments_than_frames() {
    let file = encapsulated(2, &[], &[b"\xFF\xD8aa", b"bb", b"\xFF\xD8cc", b"dd"], None);
    check_frames(
        &file,
        &[b"\xFF\xD8aabb".to_vec(), b"\xFF\xD8ccdd".to_vec()],
        FrameBoundaries::MarkerScan,
    );
}

#[test]
fn ambiguous_fragments_are_refused_with_a_reason() {
    let err = scan_bytes(&encapsulated(2, &[], &[b"aa", b"bb", b"cc"], None)).unwrap_err();
    assert!(
        err.message().contains("cannot tell where 2 frames start"),
        "{err}"
    );
}

#[test]
fn sequence_delimiter_bytes_inside_a_fragment_do_not_end_the_pixel_data() {
    let tricky: &[u8] = &[0xFF, 0x4F, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0, 1, 2];
    let file = encapsulated(1, &[], &[tricky], None);
    check_frames(
        &file,
        &[tricky.to_vec()],
        FrameBoundaries::OneFragmentPerFrame,
    );
}

#[test]
fn inconsistent_offset_tables_fall_back_to_the_next_rule() {
    // A BOT pointing into the middle of a fragment, and an EOT with wrong lengths.
    let frames: Vec<Vec<u8>> = vec![b"AAAA".to_vec(), b"BBBB".to_vec()];
    let frags: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let file = encapsulated(2, &[0, 5], &frags, Some((&[0, 12], &[4, 99])));
    check_frames(&file, &frames, FrameBoundaries::OneFragmentPerFrame);
}
