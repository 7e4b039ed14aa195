//! The data set of the WADO benchmarks, shared by `benches/wado.rs` and
//! `examples/wado_latency.rs`.

use std::path::Path;

use sia::internal::dicom::tag::{Encoding, Vr, tags, ts};
use sia::internal::dicom::write::{DataSetWriter, basic_offsets, file_meta};

pub const STUDY: &str = "1.2.826.0.1.3680043.10.1";

fn header(
    w: &mut DataSetWriter,
    series: &str,
    sop: &str,
    number: u32,
    rows: u16,
    bits: u16,
    frames: u32,
) {
    w.str(tags::SOP_CLASS_UID, Vr::UI, "1.2.840.10008.5.1.4.1.1.7")
        .str(tags::SOP_INSTANCE_UID, Vr::UI, sop)
        .str(tags::MODALITY, Vr::CS, "OT")
        .str(tags::PATIENT_NAME, Vr::PN, "Bench^Mark")
        .str(tags::PATIENT_ID, Vr::LO, "BENCH")
        .str(tags::STUDY_INSTANCE_UID, Vr::UI, STUDY)
        .str(tags::SERIES_INSTANCE_UID, Vr::UI, series)
        .str(tags::INSTANCE_NUMBER, Vr::IS, &number.to_string())
        .us(tags::SAMPLES_PER_PIXEL, 1)
        .str(tags::PHOTOMETRIC_INTERPRETATION, Vr::CS, "MONOCHROME2")
        .str(tags::NUMBER_OF_FRAMES, Vr::IS, &frames.to_string())
        .us(tags::ROWS, rows)
        .us(tags::COLUMNS, rows)
        .us(tags::BITS_ALLOCATED, bits)
        .us(tags::BITS_STORED, bits)
        .us(tags::PIXEL_REPRESENTATION, 0);
}

fn write(path: &Path, sop: &str, ts_uid: &str, ds: &[u8]) {
    let mut f = file_meta("1.2.840.10008.5.1.4.1.1.7", sop, ts_uid);
    f.extend_from_slice(ds);
    std::fs::write(path, f).unwrap();
}

/// Writes the three data sets into `dir`.
pub fn build(dir: &Path) {
    std::fs::create_dir_all(dir.join("study")).unwrap();
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    header(
        &mut w,
        &format!("{STUDY}.1"),
        &format!("{STUDY}.1.1"),
        1,
        512,
        16,
        600,
    );
    w.native_pixel_data(Vr::OW, &vec![7u8; 600 * 512 * 512 * 2]);
    write(
        &dir.join("native600.dcm"),
        &format!("{STUDY}.1.1"),
        ts::EXPLICIT_VR_LE,
        w.as_bytes(),
    );

    let frame: Vec<u8> = std::iter::once([0xFFu8, 0xD8])
        .flatten()
        .chain(std::iter::repeat_n(0x55, 40_000))
        .collect();
    let frames: Vec<Vec<&[u8]>> = (0..2000).map(|_| vec![frame.as_slice()]).collect();
    let flat: Vec<&[u8]> = frames.iter().map(|f| f[0]).collect();
    let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
    header(
        &mut w,
        &format!("{STUDY}.2"),
        &format!("{STUDY}.2.1"),
        1,
        512,
        8,
        2000,
    );
    w.encapsulated_pixel_data(&basic_offsets(&frames), &flat);
    write(
        &dir.join("jpeg2000.dcm"),
        &format!("{STUDY}.2.1"),
        ts::JPEG_BASELINE,
        w.as_bytes(),
    );

    for i in 1..=1000u32 {
        let sop = format!("{STUDY}.3.{i}");
        let mut w = DataSetWriter::new(Encoding::EXPLICIT_LE);
        header(&mut w, &format!("{STUDY}.3"), &sop, i, 64, 16, 1);
        w.native_pixel_data(Vr::OW, &vec![1u8; 64 * 64 * 2]);
        write(
            &dir.join(format!("study/{i:04}.dcm")),
            &sop,
            ts::EXPLICIT_VR_LE,
            w.as_bytes(),
        );
    }
}
