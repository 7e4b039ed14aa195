//! Hostile and broken files: a clear error, no panic, no hang, no allocation by a
//! declared length.

use sia::internal::dicom::ScanErrorKind;
use sia::internal::dicom::tag::{Encoding, Tag, Vr, tags, ts};
use sia::internal::dicom::write::DataSetWriter;

use crate::alloc_meter::peak_during;
use crate::common::*;

/// Small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let (native, _) = explicit_le_file(2);
    let encaps = encapsulated(
        2,
        &[0, 12],
        &[b"\xFF\xD8ab", b"\xFF\xD8cd"],
        Some((&[0, 12], &[4, 4])),
    );
    let (implicit, _) = native16(Encoding::IMPLICIT_LE, 1);
    vec![native, encaps, with_meta(ts::IMPLICIT_VR_LE, &implicit)]
}

/// Scanning must not allocate more than this beyond the input's size.
const SLACK: usize = 4 << 20;

#[test]
fn truncated_at_every_byte() {
    for file in corpus() {
        let full = scan_bytes(&file);
        assert!(full.is_ok(), "{full:?}");
        for cut in 0..file.len() {
            let (r, peak) = peak_during(|| scan_bytes(&file[..cut]));
            assert!(peak <= cut + SLACK, "cut {cut}: peak {peak}");
            // Cuts inside the data set before Pixel Data may still be valid DICOM (a
            // shorter data set); cuts inside Pixel Data must be reported.
            if let Err(e) = r {
                assert!(!e.message().is_empty());
            }
        }
        // Cut inside the pixel data: always an error.
        assert!(scan_bytes(&file[..file.len() - 3]).is_err());
    }
}

#[test]
fn random_mutations_never_panic_or_allocate_by_declared_length() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for file in corpus() {
        for _ in 0..4000 {
            let mut m = file.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() as usize) % m.len();
                m[at] = match rng.next() % 4 {
                    0 => 0xFF,
                    1 => 0x00,
                    _ => rng.next() as u8,
                };
            }
            let (_, peak) = peak_during(|| scan_bytes(&m));
            assert!(
                peak <= m.len() + SLACK,
                "peak {peak} for a {}-byte input",
                m.len()
            );
        }
    }
}

#[test]
fn random_bytes_are_not_dicom() {
    let mut rng = Rng(42);
    for len in [0usize, 1, 7, 8, 131, 132, 133, 1000, 65536] {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(scan_bytes(&bytes).is_err(), "{len} random bytes accepted");
    }
}

#[test]
fn declared_length_beyond_the_file() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    w.header(Tag(0x0009, 0x1010), Vr::OB, 0x7FFF_FFF0)
        .raw(b"short");
    let (r, peak) = peak_during(|| scan_bytes(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes())));
    let err = r.unwrap_err();
    assert_eq!(err.kind(), ScanErrorKind::Truncated);
    assert!(err.message().contains("(0009,1010)"), "{err}");
    assert!(peak < SLACK, "peak {peak}");
}

#[test]
fn undefined_length_where_it_is_not_allowed() {
    // On a US element (short length form cannot even say it, so use a long-form VR).
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    w.header(Tag(0x0018, 0x9999), Vr::UT, 0xFFFF_FFFF)
        .raw(&[0; 16]);
    let err = scan_bytes(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes())).unwrap_err();
    assert_eq!(err.kind(), ScanErrorKind::Malformed, "{err}");

    // On a pixel-data fragment.
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    image(&mut w, 2, 2, 8, 1);
    w.header(tags::PIXEL_DATA, Vr::OB, 0xFFFF_FFFF)
        .header(tags::ITEM, Vr::UN, 0);
    w.header(tags::ITEM, Vr::UN, 0xFFFF_FFFF).raw(&[0; 32]);
    let err = scan_bytes(&with_meta("1.2.840.10008.1.2.4.50", w.as_bytes())).unwrap_err();
    assert_eq!(err.kind(), ScanErrorKind::Malformed, "{err}");

    // In the File Meta group.
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    let mut meta = DataSetWriter::new(Encoding::EXPLICIT_LE);
    meta.header(Tag(0x0002, 0x0010), Vr::UN, 0xFFFF_FFFF)
        .raw(&[0; 16]);
    file.extend_from_slice(meta.as_bytes());
    assert!(scan_bytes(&file).is_err());
}

#[test]
fn deeply_nested_sequences_do_not_overflow_the_stack() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    w.str(tags::SOP_CLASS_UID, Vr::UI, CT)
        .str(tags::SOP_INSTANCE_UID, Vr::UI, SOP);
    for _ in 0..100_000 {
        w.sequence_start(Tag(0x0008, 0x1110)).item_start();
    }
    let err = scan_bytes(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes())).unwrap_err();
    assert!(err.message().contains("nested deeper"), "{err}");
}

#[test]
fn many_empty_fragments_are_bounded() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, SOP, "P1", "Doe^Jane");
    image(&mut w, 2, 2, 8, 1);
    w.header(tags::PIXEL_DATA, Vr::OB, 0xFFFF_FFFF)
        .header(tags::ITEM, Vr::UN, 0);
    for _ in 0..200_000 {
        w.header(tags::ITEM, Vr::UN, 0);
    }
    w.sequence_end();
    let file = with_meta("1.2.840.10008.1.2.4.50", w.as_bytes());
    let (_, peak) = peak_during(|| scan_bytes(&file));
    assert!(
        peak <= 3 * file.len() + SLACK,
        "peak {peak} for {} bytes",
        file.len()
    );
}

#[test]
fn invalid_uids_are_refused_with_a_reason() {
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    identity(&mut w, "1.2.3/../../etc/passwd", "P1", "Doe^Jane");
    let err = scan_bytes(&with_meta(ts::EXPLICIT_VR_LE, w.as_bytes())).unwrap_err();
    assert!(err.message().contains("not a valid UID"), "{err}");
}
