//! The pixel-data locator: a valid header (with Number of Frames and an optional
//! Extended Offset Table taken from the input) followed by arbitrary encapsulated or
//! native Pixel Data bytes, so the fuzzer spends its time in the fragment walk and the
//! offset-table rules rather than in the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sia::internal::dicom::source::SliceSource;
use sia::internal::dicom::tag::{Encoding, Vr, tags};
use sia::internal::dicom::write::{DataSetWriter, file_meta};
use sia::internal::dicom::{FrameTable, Scanned, scan};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let frames = u16::from_le_bytes([data[0], data[1]]) % 512;
    let flags = data[2];
    let eot_len = usize::from(data[3] % 64) * 8;
    let rest = &data[4..];
    let (eot, pixels) = rest.split_at(eot_len.min(rest.len()));

    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    w.str(tags::SOP_CLASS_UID, Vr::UI, "1.2.840.10008.5.1.4.1.1.7")
        .str(tags::SOP_INSTANCE_UID, Vr::UI, "1.2.3.4")
        .str(tags::STUDY_INSTANCE_UID, Vr::UI, "1.2.3")
        .str(tags::SERIES_INSTANCE_UID, Vr::UI, "1.2.3.5")
        .us(tags::SAMPLES_PER_PIXEL, 1)
        .str(tags::NUMBER_OF_FRAMES, Vr::IS, &frames.to_string())
        .us(tags::ROWS, 4)
        .us(tags::COLUMNS, 4)
        .us(tags::BITS_ALLOCATED, if flags & 2 != 0 { 1 } else { 8 });
    if !eot.is_empty() {
        w.element(tags::EXTENDED_OFFSET_TABLE, Vr::OV, eot);
        if flags & 4 != 0 {
            w.element(tags::EXTENDED_OFFSET_TABLE_LENGTHS, Vr::OV, eot);
        }
    }
    if flags & 1 != 0 {
        // Encapsulated: an undefined-length Pixel Data header, then raw fuzz bytes as
        // the items (Basic Offset Table, fragments, delimiter).
        w.header(tags::PIXEL_DATA, Vr::OB, 0xFFFF_FFFF).raw(pixels);
    } else {
        w.native_pixel_data(Vr::OB, pixels);
    }
    let ts = if flags & 1 != 0 {
        "1.2.840.10008.1.2.4.50"
    } else {
        "1.2.840.10008.1.2.1"
    };
    let mut file = file_meta("1.2.840.10008.5.1.4.1.1.7", "1.2.3.4", ts);
    file.extend_from_slice(w.as_bytes());
    if let Ok(Scanned::Instance(record)) = scan(&mut SliceSource(&file)) {
        if let FrameTable::Encapsulated {
            fragments,
            frame_starts,
            ..
        } = &record.frames
        {
            // `frame_count`'s rule: 0 declared means one frame; more declared than the
            // data holds means the frames it holds; never more than declared.
            let n = frame_starts.len() - 1;
            assert!(n >= 1 && n <= usize::from(frames).max(1), "{n} of {frames}");
            for f in fragments {
                assert!(f.offset + u64::from(f.len) <= file.len() as u64);
            }
        }
        assert_eq!(
            FrameTable::from_bytes(&record.frames.to_bytes()).unwrap(),
            record.frames
        );
    }
});
